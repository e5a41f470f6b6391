"""The laboratory's pictures: one reusable matplotlib figure per view, updated by blitting.

``LabPicture`` draws the landscape (2-D filled contours at equal scales with a colour bar, or a 3-D
surface), a side panel (loss against steps, loss against gradient evaluations, or the anatomy of one
variant's gradient: its checkpoints) and a legend beside them (``figure_layout``: a wide landscape
across the figure with the side panel under it, any other on the left with the side panel on the
right), and returns PNG bytes for a ``widgets.Image``.

Why it is fast enough to follow a slider: everything that does not change when a
hyperparameter moves (the landscape, axes, ticks, legend) is drawn once into a pixel buffer
(the "background"), cached per function, scale, view, side panel, steps and variant names;
an update pastes the buffer back and draws only the moving artists on top
(``draw_artist``: paths, end points, ascent arrows, ρ-balls, loss curves, notes), then
encodes the pixels (PNG, fast compression: the bytes go to a browser on 127.0.0.1).

``BasinPicture`` draws two basin maps side by side, in the basin colours of ``PALETTES``
(none of them a variant's colour), into its own reusable figure. Both are bare
``matplotlib.figure.Figure`` s, never pyplot figures, so that nothing is shown twice in a
notebook and nothing is kept alive by pyplot.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib import patheffects
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator
from PIL import Image

from sampy import functions
from sampy.basins import NONE, BasinMap
from sampy.functions import TestFunction
from sampy.playground.choices import LESSON, PALETTES
from sampy.playground.compute import (
    Anatomy,
    LandscapeGrid,
    VariantRun,
    all_minima,
    ascent_arrows,
    ball_outline,
    ball_shape,
    landscape_grid,
    loss_curve,
    loss_floor,
)

VIEWS = ("2-D contour", "3-D surface")
SIDES = ("loss / step", "loss / gradient evaluations", "anatomy (checkpoints)")
# The colours (``PALETTES`` in ``sampy.playground.choices``: one meaning each, on every
# panel). One colour per variant slot, all visible on viridis and on the dark side panel; the
# first slot is dashed white (the baseline, SGD by default).
SLOT_COLOURS = tuple(PALETTES["variants"])
SLOT_STYLES = tuple(PALETTES["variant_lines"])
CKPT_COLOURS = tuple(PALETTES["checkpoints"])
CKPT_NAMES = (
    "ckpt0: r undefined (g = 0), 0 or ±1",
    "ckpt1: r > 1 (amplified)",
    "ckpt2: 0 < r < 1 (shrunk)",
    "ckpt3: r < −1 (flipped, larger)",
    "ckpt4: −1 < r < 0 (flipped, smaller)",
)
# The figure, in pixels (a projector's 1366 × 768 shows it beside the controls). Fonts are
# at least 8 pt = 11 px at this dpi.
FIGURE_PX = (900, 560)
DPI = 100
FONT = 9  # tick labels, axis labels, legend (12.5 px)
# A domain at least this much wider than tall is drawn across the figure, the side panel
# under it; any other is drawn on the left, the side panel on the right.
WIDE = 1.6
# A dark rim under every path: white, orange, pink and cyan all show on viridis's yellow.
_RIM = (patheffects.Stroke(linewidth=3.6, foreground="black", alpha=0.55), patheffects.Normal())

Rect = tuple[float, float, float, float]  # (left, top, width, height) in image pixels


@dataclass(frozen=True)
class FigureLayout:
    """Where the parts of the figure go, in image pixels (origin top-left, y down).

    Attributes:
        landscape: the landscape axes, at equal scales on x and y (a Euclidean ρ-ball is
            drawn round): its width / height is the domain's.
        colourbar: the colour bar, right of the landscape.
        side: the side panel.
        legend: the legend's upper-left corner.
        wide: the arrangement: the landscape across the figure, the side panel under it.
    """

    landscape: Rect
    colourbar: Rect
    side: Rect
    legend: tuple[float, float]
    wide: bool


def figure_layout(domain: Sequence[Sequence[float]]) -> FigureLayout:
    """The layout of a landscape of ``domain`` (``((x_lo, x_hi), (y_lo, y_hi))``)."""
    height = FIGURE_PX[1]
    (x_lo, x_hi), (y_lo, y_hi) = domain
    aspect = (x_hi - x_lo) / (y_hi - y_lo)
    left, top = 64, 30
    if aspect >= WIDE:
        w, h = 580.0, 580.0 / aspect
        if h > 290:
            w, h = 290 * aspect, 290.0
        side_top = top + h + 62
        side = (left, side_top, 290.0, height - side_top - 44)
        return FigureLayout((left, top, w, h), (left + w + 10, top, 14, h), side,
                            (400.0, side_top - 20), True)  # fmt: skip
    room_w, room_h = 460.0, 460.0
    w, h = (room_w, room_w / aspect) if aspect >= room_w / room_h else (room_h * aspect, room_h)
    side = (690.0, top, 198.0, 220.0)
    return FigureLayout((left, top, w, h), (left + w + 10, top, 14, h), side,
                        (622.0, top + 220 + 48), False)  # fmt: skip


def _fraction(rect: Rect) -> Rect:
    """A pixel rectangle as matplotlib's ``(left, bottom, width, height)`` figure fractions."""
    width, height = FIGURE_PX
    left, top, w, h = rect
    return left / width, 1 - (top + h) / height, w / width, h / height


@dataclass(frozen=True)
class DrawOptions:
    """How to draw (nothing here changes a run).

    Attributes:
        view: one of ``VIEWS``.
        log: colour (and the 3-D height) by ``log10(f − min)`` instead of ``f``.
        arrows_every: draw the ascent w → w + ε at the steps k and k + 1 for every k-th k
            (``compute.arrow_steps``; 0: none).
        balls: draw each variant's ρ-ball around its end point.
        side: the side panel, one of ``SIDES``.
        anatomy_of: which variant the anatomy panel dissects (an index into the runs).
    """

    view: str = VIEWS[0]
    log: bool = False
    arrows_every: int = LESSON["arrows_every"]
    balls: bool = LESSON["balls"]
    side: str = SIDES[0]
    anatomy_of: int = 1


def encode_png(canvas: FigureCanvasAgg) -> bytes:
    """The canvas's pixels as PNG bytes, without redrawing (``savefig`` would redraw all).

    Compression level 1: a third of the encoding time of the default for a slightly larger
    file, which costs nothing on 127.0.0.1.
    """
    width, height = canvas.get_width_height()
    image = Image.frombuffer("RGBA", (width, height), canvas.buffer_rgba())
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="png", compress_level=1)
    return buffer.getvalue()


def landscape_key(f: TestFunction) -> tuple[str, str, str]:
    """What identifies a landscape: the function, its parameters and its domain."""
    return f.name, repr(f.params), repr(f.domain)


def arrows_label(every: int) -> str:
    """The legend's words for the ascent arrows drawn at ``arrows_every = every``."""
    if every <= 2:
        return "ascent w → w+ε at every step"
    return f"ascent w → w+ε at steps k and k+1\nfor k = 1, {1 + every}, {1 + 2 * every}, …"


class LabPicture:
    """The laboratory's figure: landscape + colour bar + side panel + legend, redrawn by
    blitting. ``FIGURE_PX`` pixels; the layout follows the landscape's domain
    (``figure_layout``)."""

    def __init__(self) -> None:
        width, height = FIGURE_PX
        self.figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
        self.canvas = FigureCanvasAgg(self.figure)
        self._grids: dict[tuple, LandscapeGrid] = {}
        self._key: tuple | None = None
        self._background = None
        self._box: tuple[float, float, float, float] | None = None
        self._floors: dict[tuple, float] = {}
        self.ax = None  # the landscape axes (2-D or 3-D)
        self.side = None
        self.grid: LandscapeGrid | None = None
        self.view = VIEWS[0]

    # ----------------------------------------------------------------- geometry for clicks

    def pixel_box(
        self, domain: Sequence[Sequence[float]] | None = None
    ) -> tuple[float, float, float, float]:
        """The landscape axes in image pixels: ``(left, top, right, bottom)``, origin at the
        image's top-left corner (as a browser reports a click).

        Of the landscape last drawn; with ``domain``, of a landscape of that domain (before
        any drawing: the lesson's function)."""
        if domain is None and self._box is not None:
            return self._box
        if domain is None:
            domain = functions.get(LESSON["function"]).domain
        left, top, w, h = figure_layout(domain).landscape
        return left, top, left + w, top + h

    def image_size(self) -> tuple[int, int]:
        """``(width, height)`` of the PNG in pixels."""
        return self.canvas.get_width_height()

    # ----------------------------------------------------------------- the background

    def landscape(self, f: TestFunction, log: bool, resolution: int = 120) -> LandscapeGrid:
        """The landscape grid of ``f`` (cached: computed once per function and scale)."""
        key = (*landscape_key(f), log, resolution)
        if key not in self._grids:
            if len(self._grids) > 16:  # a long session with many typed expressions
                self._grids.clear()
            self._grids[key] = landscape_grid(f, resolution, log)
        return self._grids[key]

    def _background_key(self, f, runs, options, evals_max) -> tuple:
        labels = tuple((r.label, i) for i, r in enumerate(runs) if r.ok)
        steps = max((len(r.xs) - 1 for r in runs if r.ok), default=0)
        side_x = evals_max if options.side == SIDES[1] else steps
        anatomy = options.anatomy_of if options.side == SIDES[2] else None
        return (landscape_key(f), options.log, options.view, options.side, side_x, labels,
                anatomy, options.arrows_every, options.balls)  # fmt: skip

    def _draw_background(self, f, runs, options, evals_max, title: str) -> None:
        self.figure.clear()
        self.view = options.view
        three_d = options.view == VIEWS[1]
        layout = figure_layout(f.domain)
        self.grid = grid = self.landscape(f, options.log, 60 if three_d else 140)
        if three_d:
            self.ax = self.figure.add_axes(_fraction(layout.landscape), projection="3d")
            self._surface(f, grid)
        else:
            self.ax = self.figure.add_axes(_fraction(layout.landscape))
            filled = self._contours(f, grid)
            bar = self.figure.colorbar(filled, cax=self.figure.add_axes(
                _fraction(layout.colourbar)))  # fmt: skip
            bar.set_label("log₁₀(f − min)" if grid.log else "f(x, y)", fontsize=FONT)
            bar.ax.tick_params(labelsize=FONT - 0.5)
        heading = f"{f.name}: {f.description}" if f.description else f.name
        self.ax.set_title(heading[:75], fontsize=FONT + 1)
        self.side = self.figure.add_axes(_fraction(layout.side), facecolor="0.22")
        self._side_axes(f, runs, options, evals_max)
        self._artists(runs, three_d, title)
        self._legend(runs, options, three_d, layout)
        self.canvas.draw()
        self._background = self.canvas.copy_from_bbox(self.figure.bbox)
        if not three_d:
            # Where matplotlib really put the axes (clicks map through it).
            width, height = FIGURE_PX
            x0, y0, x1, y1 = self.ax.get_position().extents
            self._box = (x0 * width, (1 - y1) * height, x1 * width, (1 - y0) * height)

    def _contours(self, f: TestFunction, grid: LandscapeGrid):
        levels = np.linspace(grid.vmin, grid.vmax, 25)
        filled = self.ax.contourf(grid.X, grid.Y, grid.C, levels=levels, cmap="viridis",
                                  extend="both")  # fmt: skip
        points, labels = all_minima(f)
        if len(points):
            self.ax.plot(points[:, 0], points[:, 1], "w*", ms=11, mec="k")
            for label, point in zip(labels, points, strict=False):
                self.ax.annotate(label, point, textcoords="offset points", xytext=(6, 6),
                                 color="w", fontsize=FONT,
                                 path_effects=[patheffects.withStroke(linewidth=2.5,
                                                                      foreground="k")])  # fmt: skip
        self.ax.set_xlim(*f.domain[0])
        self.ax.set_ylim(*f.domain[1])
        # Equal scales: the layout's box already has the domain's shape, so nothing moves.
        self.ax.set_aspect("equal", adjustable="box")
        self.ax.set_xlabel("$x$", fontsize=FONT, labelpad=1)
        self.ax.set_ylabel("$y$", fontsize=FONT, labelpad=1)
        self.ax.tick_params(labelsize=FONT)
        return filled

    def _surface(self, f: TestFunction, grid: LandscapeGrid) -> None:
        C = np.clip(grid.C, grid.vmin, grid.vmax)
        self.ax.plot_surface(grid.X, grid.Y, C, cmap="viridis", linewidth=0, antialiased=False,
                             rcount=60, ccount=60, alpha=0.9)  # fmt: skip
        self.ax.set_xlim(*f.domain[0])
        self.ax.set_ylim(*f.domain[1])
        self.ax.set_zlim(grid.vmin, grid.vmax)
        self.ax.set_zlabel("log₁₀(f − min)" if grid.log else "f", fontsize=FONT)
        self.ax.tick_params(labelsize=FONT - 1)
        self.ax.view_init(elev=35, azim=-60)
        # The box has the domain's proportions (a 4 × 2 domain is no cube) and fills the
        # landscape's room; few ticks, so that foreshortened labels do not run together.
        (x_lo, x_hi), (y_lo, y_hi) = f.domain
        width, depth = x_hi - x_lo, y_hi - y_lo
        self.ax.set_box_aspect((width, depth, 0.45 * max(width, depth)), zoom=1.25)
        for axis in (self.ax.xaxis, self.ax.yaxis, self.ax.zaxis):
            axis.set_major_locator(MaxNLocator(nbins=4))
        self.ax.set_xlabel("x", fontsize=FONT, labelpad=0)
        self.ax.set_ylabel("y", fontsize=FONT, labelpad=0)

    def _side_axes(self, f, runs, options, evals_max) -> None:
        side, grid = self.side, self.grid
        steps = max((len(r.xs) - 1 for r in runs if r.ok), default=1)
        side.tick_params(labelsize=FONT - 0.5)
        side.grid(True, color="0.4", lw=0.5)
        if options.side == SIDES[2]:
            side.set_xlim(0, max(steps, 1))
            side.set_ylim(0, 1)
            side.set_xlabel("step", fontsize=FONT, labelpad=1)
            # With d coordinates one step's fraction is a multiple of 1/d (0, ½ or 1 on a
            # 2-D landscape): the ticks say so, and values between them are the average's.
            d = len(f.domain)
            side.set_yticks(np.linspace(0, 1, d + 1), [_fraction_label(k, d) for k in range(d + 1)])
            side.set_ylabel(f"share of the {d} coordinates", fontsize=FONT)
            return
        finite = grid.Z[np.isfinite(grid.Z)]
        span = max(float(finite.max()) - grid.floor, 1e-12)
        self._loss_low = 1e-9 * span
        side.set_yscale("log")
        side.set_ylim(self._loss_low, 30 * span)
        side.set_ylabel("loss − min", fontsize=FONT, labelpad=1)
        if options.side == SIDES[1]:
            side.set_xlim(0, max(evals_max, 1))
            side.set_xlabel("gradient evaluations", fontsize=FONT, labelpad=1)
        else:
            side.set_xlim(0, max(steps, 1))
            side.set_xlabel("step", fontsize=FONT, labelpad=1)

    def _artists(self, runs: Sequence[VariantRun], three_d: bool, title: str) -> None:
        # Created with animated=True: canvas.draw() leaves them out of the background, and
        # draw_artist() paints them on request.
        ax, side = self.ax, self.side
        self.paths, self.ends, self.arrows, self.heads, self.balls, self.losses = (
            [] for _ in range(6)
        )
        for slot in range(len(runs)):
            colour, style = SLOT_COLOURS[slot % 4], SLOT_STYLES[slot % 4]
            if three_d:
                (path,) = ax.plot([], [], [], style, color=colour, lw=1.8, animated=True)
                (end,) = ax.plot([], [], [], "X", color=colour, mec="k", ms=8, animated=True)
            else:
                (path,) = ax.plot([], [], style, color=colour, lw=1.8, animated=True,
                                  path_effects=_RIM)  # fmt: skip
                (end,) = ax.plot([], [], "X", color=colour, mec="k", ms=10, animated=True)
                arrows = LineCollection([], colors=colour, linewidths=1.4, animated=True)
                ax.add_collection(arrows)
                (heads,) = ax.plot([], [], "o", color=colour, mec="k", mew=0.5, ms=3.5,
                                   animated=True)  # fmt: skip
                (ball,) = ax.plot([], [], ":", color=colour, lw=1.6, animated=True)
                self.arrows.append(arrows)
                self.heads.append(heads)
                self.balls.append(ball)
            (loss,) = side.plot([], [], style, color=colour, lw=1.5, animated=True)
            self.paths.append(path)
            self.ends.append(end)
            self.losses.append(loss)
        if three_d:
            (self.start,) = ax.plot([], [], [], "o", color="white", mec="k", ms=6, animated=True)
        else:
            (self.start,) = ax.plot([], [], "o", color="white", mec="k", ms=8, animated=True)
        left, bottom, _, height = self.ax.get_position().bounds
        self.note = self.figure.text(
            left + 0.005, bottom + height - 0.01, "", color="crimson", fontsize=FONT,
            animated=True, va="top",
            bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "none"},
        )  # fmt: skip
        # The side panel's title is part of the background (its key holds it): drawing text
        # is the slowest thing an update could do. The cost (gradient evaluations) is in the
        # legend, beside the picture, where no curve can cross it.
        side.set_title(title, fontsize=FONT, pad=3)

    def _legend(self, runs, options: DrawOptions, three_d: bool, layout: FigureLayout) -> None:
        handles, labels = [], []
        for slot, vrun in enumerate(runs):
            if vrun.ok:
                colour = SLOT_COLOURS[slot % 4]
                rim = _RIM if colour == "#ffffff" else ()  # white on the white legend
                handles.append(Line2D([], [], ls=SLOT_STYLES[slot % 4], lw=2, color=colour,
                                      path_effects=rim))  # fmt: skip
                labels.append(f"{vrun.label} · {vrun.grad_evals:,} gradient evals")
        handles.append(Line2D([], [], ls="", marker="o", color="white", mec="k", ms=7))
        labels.append("start (click to move it)")
        if not three_d and options.arrows_every > 0:
            handles.append(Line2D([], [], color="0.25", lw=1.4, marker="o", ms=3.5))
            labels.append(arrows_label(options.arrows_every))
        if not three_d and options.balls:
            handles.append(Line2D([], [], color="0.25", lw=1.6, ls=":"))
            labels.append("ρ-ball at the end point")
        if options.side == SIDES[2]:
            handles += [Patch(facecolor=c, edgecolor="0.4") for c in CKPT_COLOURS]
            labels += list(CKPT_NAMES)
        width, height = FIGURE_PX
        x, y = layout.legend
        crowded = len(handles) > 9  # the anatomy's five checkpoints and many variants
        # Beside the picture, dark text on white; the white path keeps its dark rim.
        self.figure.legend(handles, labels, loc="upper left",
                           bbox_to_anchor=(x / width, 1 - y / height),
                           ncols=2 if layout.wide and crowded else 1,
                           fontsize=FONT - 1 if crowded else FONT - 0.5, labelcolor="black",
                           facecolor="white", edgecolor="0.7", framealpha=1.0,
                           handlelength=2.2, labelspacing=0.3, columnspacing=1.0,
                           borderaxespad=0.0)  # fmt: skip

    # ----------------------------------------------------------------- an update

    def png(
        self,
        f: TestFunction,
        runs: Sequence[VariantRun],
        options: DrawOptions = DrawOptions(),
        anatomy: Anatomy | None = None,
    ) -> bytes:
        """The picture of ``runs`` on ``f`` as PNG bytes.

        ``anatomy`` is the side panel's data when ``options.side`` is the anatomy (computed
        by the caller with ``sampy.playground.compute.anatomy``, so that it is cached there).
        """
        evals_max = max((r.grad_evals for r in runs if r.ok), default=1)
        title = _side_title(options, anatomy)
        evals = tuple(r.grad_evals for r in runs if r.ok)
        key = (*self._background_key(f, runs, options, evals_max), title, evals)
        if key != self._key or self._background is None:
            self._draw_background(f, runs, options, evals_max, title)
            self._key = key
        three_d = self.view == VIEWS[1]
        moving = []
        notes = []
        with np.errstate(all="ignore"):
            for slot, vrun in enumerate(runs):
                if not vrun.ok:
                    notes.append(f"{vrun.label}: {vrun.error}"[:90])
                    continue
                moving += self._update_slot(f, slot, vrun, options, three_d)
                if vrun.diverged_at is not None:
                    notes.append(f"{vrun.label} diverged at step {vrun.diverged_at}")
            start = next((r.xs[0] for r in runs if r.ok), None)
            if start is not None:
                if three_d:
                    z = self.grid.colour_value(f(start[None]))
                    self.start.set_data_3d([start[0]], [start[1]], z)
                else:
                    self.start.set_data([start[0]], [start[1]])
                moving.append(self.start)
            moving += self._side_panel(f, runs, options, anatomy)
            if notes:
                self.note.set_text("\n".join(notes))
                moving.append(self.note)
            self.canvas.restore_region(self._background)
            for artist in moving:
                self.figure.draw_artist(artist)
            for artist in getattr(self, "_temporary", []):
                artist.remove()
            self._temporary = []
        return encode_png(self.canvas)

    def _update_slot(self, f, slot, vrun, options, three_d) -> list:
        xs = vrun.xs
        path, end = self.paths[slot], self.ends[slot]
        if three_d:
            z = self.grid.colour_value(f(xs))
            path.set_data_3d(xs[:, 0], xs[:, 1], z)
            end.set_data_3d(xs[-1:, 0], xs[-1:, 1], z[-1:])
            return [path, end]
        path.set_data(xs[:, 0], xs[:, 1])
        end.set_data(xs[-1:, 0], xs[-1:, 1])
        moving = [path, end]
        tails, heads = ascent_arrows(vrun, options.arrows_every)
        if len(tails):
            self.arrows[slot].set_segments(np.stack([tails, heads], axis=1))
            self.heads[slot].set_data(heads[:, 0], heads[:, 1])
            moving += [self.arrows[slot], self.heads[slot]]
        shape = ball_shape(vrun) if options.balls else None
        if shape is not None and shape[0] > 0:
            outline = ball_outline(xs[-1], *shape)
            self.balls[slot].set_data(outline[:, 0], outline[:, 1])
            moving.append(self.balls[slot])
        return moving

    def loss_floor(self, f: TestFunction, runs: Sequence[VariantRun]) -> float:
        """The side panel's "min" (``compute.loss_floor``), cached per landscape and per
        run end (a local minimization per run is a few milliseconds, not free)."""
        if math.isfinite(f.fmin):
            return min(float(f.fmin), self.grid.floor)
        ends = tuple(tuple(np.round(r.xs[-1], 4)) for r in runs if r.ok)
        key = (landscape_key(f), self.grid.log, ends)
        if key not in self._floors:
            if len(self._floors) > 256:
                self._floors.clear()
            self._floors[key] = min(loss_floor(f, runs, self.grid.floor), self.grid.floor)
        return self._floors[key]

    def _side_panel(self, f, runs, options, anatomy: Anatomy | None) -> list:
        if options.side == SIDES[2]:
            if anatomy is None or len(anatomy.steps) == 0:
                return []
            window = _window(anatomy)
            smooth = anatomy.smoothed(window)
            # ckpt1..ckpt4 stacked from 0, then ckpt0 (the undefined ratios) up to 1.
            polys = self.side.stackplot(
                anatomy.steps, [*smooth[:, 1:].T, smooth[:, 0]],
                colors=[*CKPT_COLOURS[1:], CKPT_COLOURS[0]], animated=True,
            )  # fmt: skip
            self._temporary = list(polys)
            return list(polys)
        moving = []
        floor = self.loss_floor(f, runs)
        for slot, vrun in enumerate(runs):
            if not vrun.ok:
                continue
            gap = np.maximum(loss_curve(vrun) - floor, self._loss_low)
            if options.side == SIDES[1]:
                x = vrun.evals_per_step
            else:
                x = np.arange(len(gap))
            self.losses[slot].set_data(x, gap)
            moving.append(self.losses[slot])
        return moving


def _fraction_label(k: int, d: int) -> str:
    """``k/d`` as a tick label: "0", "½", "1", or "k/d"."""
    if k == 0 or k == d:
        return str(k // d)
    return "½" if 2 * k == d else f"{k}/{d}"


def _window(anatomy: Anatomy) -> int:
    """The anatomy's moving-average window: about 40 windows over the ascent steps."""
    return max(1, len(anatomy.steps) // 40)


def _side_title(options: DrawOptions, anatomy: Anatomy | None) -> str:
    if options.side == SIDES[2]:
        if anatomy is None or len(anatomy.steps) == 0:
            return "anatomy: this variant takes no ascent step"
        window = _window(anatomy)
        average = f" ({window}-step average)" if window > 1 else ""
        return f"anatomy of {anatomy.label}{average}"
    if options.side == SIDES[1]:
        return "loss against gradient evaluations (the cost)"
    return "loss along the paths"


def basin_names(m: BasinMap) -> list[str]:
    """The legend's name of each class of ``m``: its basins, then the start points that
    reached none ("not near a minimum after N steps") and the diverged ones."""
    names = list(m.class_names)
    return [*names[:-2], f"not near a minimum after {m.steps:,} steps", "diverged"]


def basin_summary(m: BasinMap) -> str:
    """One line: the fraction per class, e.g. ``SAM: sharp 0.9%, flat 74.8%, not near a
    minimum after 1,000 steps 24.3%`` (the empty "none" and "diverged" classes left out)."""
    parts = [
        f"{name} {100 * frac:.1f}%"
        for name, frac, plain in zip(basin_names(m), m.fractions, m.class_names, strict=True)
        if frac > 0 or plain not in ("none", "diverged")
    ]
    return f"{m.optimizer}: " + ", ".join(parts)


def basin_palette(k: int) -> list[str]:
    """A colour per basin (``PALETTES["basins"]``, none a variant's colour), then "none" and
    "diverged"."""
    colours = PALETTES["basins"]
    return [colours[i % len(colours)] for i in range(k)] + [
        PALETTES["no_basin"],
        PALETTES["diverged"],
    ]


class BasinPicture:
    """Two basin maps side by side in one reusable figure, as PNG bytes: each start point
    coloured by the basin it ended in (``PALETTES["basins"]``: no colour of a variant), the
    minima as stars, equal scales, and under each map a legend with the fraction per basin.

    The figure is laid out by hand, in pixels, for the domain's shape (``PANEL_PX`` wide per
    map, as tall as the domain makes it)."""

    PANEL_PX = 390
    DPI = 90

    def __init__(self) -> None:
        self.figure = Figure(dpi=self.DPI)
        self.canvas = FigureCanvasAgg(self.figure)

    def png(self, maps: Sequence[BasinMap]) -> bytes:
        """The maps (sharing their basins, from ``compare_basins``) as PNG bytes."""
        from matplotlib.colors import BoundaryNorm, ListedColormap

        self.figure.clear()
        maps = list(maps)
        first = maps[0]
        aspect = (first.xs[-1] - first.xs[0]) / max(first.ys[-1] - first.ys[0], 1e-12)
        pw = float(self.PANEL_PX)
        ph = min(pw, pw / aspect)
        pw = ph * aspect
        k = len(first.labels)
        colours = basin_palette(k)
        cmap, norm = ListedColormap(colours), BoundaryNorm(np.arange(k + 3) - 0.5, k + 2)
        legends = [
            [
                Patch(facecolor=colour, edgecolor="0.5", label=f"{name}: {100 * frac:.1f}%")
                for colour, name, plain, frac in zip(
                    colours, basin_names(m), m.class_names, m.fractions, strict=True
                )
                if frac > 0 or plain not in ("none", "diverged")
            ]
            for m in maps
        ]
        left, gap, top, below = 60.0, 90.0, 34.0, 46.0
        legend = 19.0 * max(len(handles) for handles in legends) + 12
        width = left + len(maps) * pw + (len(maps) - 1) * gap + 20
        height = top + ph + below + legend
        self.figure.set_size_inches(width / self.DPI, height / self.DPI)
        for i, (m, handles) in enumerate(zip(maps, legends, strict=True)):
            x0 = left + i * (pw + gap)
            ax = self.figure.add_axes(
                (x0 / width, (below + legend) / height, pw / width, ph / height)
            )
            image = np.where(m.basin >= 0, m.basin, np.where(m.basin == NONE, k, k + 1))
            dx = (m.xs[-1] - m.xs[0]) / (len(m.xs) - 1) / 2
            dy = (m.ys[-1] - m.ys[0]) / (len(m.ys) - 1) / 2
            extent = (m.xs[0] - dx, m.xs[-1] + dx, m.ys[0] - dy, m.ys[-1] + dy)
            ax.imshow(image, origin="lower", extent=extent, cmap=cmap, norm=norm,
                      interpolation="nearest", aspect="auto")  # fmt: skip
            if len(m.minima):
                ax.scatter(*m.minima.T, marker="*", s=140, c="white", edgecolors="black",
                           linewidths=0.8, zorder=3)  # fmt: skip
            ax.set_title(f"{m.optimizer}: start points after {m.steps:,} steps", fontsize=11)
            ax.set_xlabel("start x", fontsize=10, labelpad=1)
            ax.set_ylabel("start y", fontsize=10, labelpad=1)
            ax.tick_params(labelsize=9)
            self.figure.legend(handles=handles, loc="upper left", fontsize=10,
                               bbox_to_anchor=(x0 / width, legend / height), frameon=False,
                               borderaxespad=0, labelspacing=0.3, handlelength=1.6)  # fmt: skip
        self.canvas.draw()
        return encode_png(self.canvas)


def basin_animation(
    maps: Sequence[BasinMap],
    titles: Sequence[str] | None = None,
    figsize: tuple[float, float] = (5.0, 3.2),
    dpi: int = 72,
    interval: int = 800,
):
    """A ``FuncAnimation`` whose frame ``i`` is the basin map ``maps[i]`` (a kernel-free
    scrubber once passed to ``sampy.plot.animation_html``).

    The maps must share their basins (same labels, same grid): e.g. one ``basin_map`` per
    value of ρ with the same ``minima``. Each frame's legend gives the fraction per basin.
    """
    from matplotlib.animation import FuncAnimation
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.patches import Patch

    from sampy.basins import NONE, basin_colours

    maps = list(maps)
    if not maps:
        raise ValueError("maps must hold at least one BasinMap")
    if any(m.labels != maps[0].labels or m.basin.shape != maps[0].basin.shape for m in maps):
        raise ValueError("the maps must share their basins and their grid")
    if titles is not None and len(titles) != len(maps):
        raise ValueError(f"titles must have one entry per map ({len(maps)}), got {len(titles)}")
    k = len(maps[0].labels)
    colours = basin_colours(k)

    def image(m: BasinMap) -> np.ndarray:
        # basin i → i, NONE → k, DIVERGED → k + 1: one colour bin each, as plot_basins does
        return np.where(m.basin >= 0, m.basin, np.where(m.basin == NONE, k, k + 1))

    first = maps[0]
    dx = (first.xs[-1] - first.xs[0]) / (len(first.xs) - 1) / 2
    dy = (first.ys[-1] - first.ys[0]) / (len(first.ys) - 1) / 2
    extent = (first.xs[0] - dx, first.xs[-1] + dx, first.ys[0] - dy, first.ys[-1] + dy)
    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    ax = fig.add_subplot()
    shown = ax.imshow(
        image(first), origin="lower", extent=extent, cmap=ListedColormap(colours),
        norm=BoundaryNorm(np.arange(k + 3) - 0.5, k + 2), interpolation="nearest",
        aspect="auto",
    )  # fmt: skip
    if len(first.minima):
        ax.scatter(*first.minima.T, marker="*", s=110, c="white", edgecolors="black", zorder=3)
    ax.set_xlabel("start x", fontsize=8)
    ax.set_ylabel("start y", fontsize=8)
    ax.tick_params(labelsize=7)
    title = ax.set_title("", fontsize=9)
    legend_box: list = []

    def draw(i: int) -> list:
        m = maps[i]
        shown.set_data(image(m))
        title.set_text(titles[i] if titles is not None else m.optimizer)
        for old in legend_box:
            old.remove()
        handles = [
            Patch(facecolor=colour, edgecolor="0.5", label=f"{name} {100 * frac:.0f}%")
            for colour, name, frac in zip(colours, m.class_names, m.fractions, strict=True)
            if frac > 0 or name not in ("none", "diverged")
        ]
        legend_box[:] = [ax.legend(handles=handles, loc="upper right", fontsize=7)]
        return [shown, title]

    draw(0)
    return FuncAnimation(fig, draw, frames=len(maps), interval=interval, blit=False)
