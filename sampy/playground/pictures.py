"""The laboratory's pictures: one reusable matplotlib figure per view, updated by blitting.

``LabPicture`` draws the landscape (2-D filled contours or a 3-D surface) on the left and a
side panel on the right (loss against steps, loss against gradient evaluations, or the
seed-003 anatomy of one variant), and returns PNG bytes for a ``widgets.Image``.

Why it is fast enough to follow a slider: everything that does not change when a
hyperparameter moves (the landscape, axes, ticks, legend) is drawn once into a pixel buffer
(the "background"), cached per function, scale, view, side panel, steps and variant names;
an update pastes the buffer back and draws only the moving artists on top
(``draw_artist``: paths, end points, ascent arrows, ρ-balls, loss curves, notes), then
encodes the pixels (PNG, fast compression: the bytes go to a browser on 127.0.0.1).

``BasinPicture`` draws two basin maps side by side (``sampy.basins.plot_basins``) into its
own reusable figure. Both are bare ``matplotlib.figure.Figure`` s, never pyplot figures, so
that nothing is shown twice in a notebook and nothing is kept alive by pyplot.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from PIL import Image

from sampy.basins import BasinMap, plot_basins
from sampy.functions import TestFunction
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
)

VIEWS = ("2-D contour", "3-D surface")
SIDES = ("loss / step", "loss / gradient evaluations", "anatomy (seed 003)")
# One colour per variant slot, all visible on viridis and on the dark side panel; the first
# slot is dashed white (the baseline, SGD by default), as in the classic explorer.
SLOT_COLOURS = ("white", "tab:orange", "#ff5ad9", "#29e4ff")
SLOT_STYLES = ("--", "-", "-", "-")
CKPT_COLOURS = ("#7f7f7f", "#d62728", "#ff9896", "#1f77b4", "#aec7e8")
CKPT_NAMES = (
    "ckpt0 (r = 0, ±1 or undefined)",
    "ckpt1: r > 1 (amplified)",
    "ckpt2: 0 < r < 1 (shrunk)",
    "ckpt3: r < −1 (flipped, larger)",
    "ckpt4: −1 < r < 0 (flipped, smaller)",
)
# The landscape axes, in figure fractions: fixed, so that a layout engine never re-measures
# text on an update, and so that a click's pixel maps to data coordinates without a draw.
LANDSCAPE_RECT = (0.06, 0.25, 0.5, 0.67)
SIDE_RECT = (0.64, 0.25, 0.345, 0.67)


@dataclass(frozen=True)
class DrawOptions:
    """How to draw (nothing here changes a run).

    Attributes:
        view: one of ``VIEWS``.
        log: colour (and the 3-D height) by ``log10(f − min)`` instead of ``f``.
        arrows_every: draw the ascent w → w + ε at every k-th step (0: none).
        balls: draw each variant's ρ-ball around its end point.
        side: the side panel, one of ``SIDES``.
        anatomy_of: which variant the anatomy panel dissects (an index into the runs).
    """

    view: str = VIEWS[0]
    log: bool = False
    arrows_every: int = 20
    balls: bool = True
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


class LabPicture:
    """The laboratory's figure: landscape + side panel, redrawn by blitting.

    Args:
        width, height, dpi: the figure's size; the PNG is ``width·dpi × height·dpi`` pixels.
    """

    def __init__(self, width: float = 9.4, height: float = 4.0, dpi: int = 90) -> None:
        self.figure = Figure(figsize=(width, height), dpi=dpi)
        self.canvas = FigureCanvasAgg(self.figure)
        self._grids: dict[tuple, LandscapeGrid] = {}
        self._key: tuple | None = None
        self._background = None
        self.ax = None  # the landscape axes (2-D or 3-D)
        self.side = None
        self.grid: LandscapeGrid | None = None
        self.view = VIEWS[0]

    # ----------------------------------------------------------------- geometry for clicks

    def pixel_box(self) -> tuple[float, float, float, float]:
        """The landscape axes in image pixels: ``(left, top, right, bottom)``, origin at the
        image's top-left corner (as a browser reports a click)."""
        width, height = self.canvas.get_width_height()
        x, y, w, h = LANDSCAPE_RECT
        return x * width, (1 - y - h) * height, (x + w) * width, (1 - y) * height

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
        arrows = options.arrows_every > 0
        return (landscape_key(f), options.log, options.view, options.side, side_x, labels,
                anatomy, arrows, options.balls)  # fmt: skip

    def _draw_background(self, f, runs, options, evals_max, texts: tuple[str, str]) -> None:
        self.figure.clear()
        self.view = options.view
        three_d = options.view == VIEWS[1]
        self.grid = grid = self.landscape(f, options.log, 60 if three_d else 120)
        if three_d:
            self.ax = self.figure.add_axes(LANDSCAPE_RECT, projection="3d")
            self._surface(f, grid)
        else:
            self.ax = self.figure.add_axes(LANDSCAPE_RECT)
            self._contours(f, grid)
        title = f.description or f.name
        self.ax.set_title(f"{f.name}: {title}"[:70], fontsize=9)
        self.side = self.figure.add_axes(SIDE_RECT, facecolor="0.22")
        self._side_axes(f, runs, options, evals_max)
        self._artists(runs, three_d, texts)
        self._legend(runs, options, three_d)
        self.canvas.draw()
        self._background = self.canvas.copy_from_bbox(self.figure.bbox)

    def _contours(self, f: TestFunction, grid: LandscapeGrid) -> None:
        levels = np.linspace(grid.vmin, grid.vmax, 25)
        self.ax.contourf(grid.X, grid.Y, grid.C, levels=levels, cmap="viridis", extend="both")
        points, labels = all_minima(f)
        if len(points):
            self.ax.plot(points[:, 0], points[:, 1], "w*", ms=10, mec="k")
            for label, point in zip(labels, points, strict=False):
                self.ax.annotate(label, point, textcoords="offset points", xytext=(5, 5),
                                 color="w", fontsize=8)  # fmt: skip
        self.ax.set_xlim(*f.domain[0])
        self.ax.set_ylim(*f.domain[1])
        self.ax.set_xlabel("$x$", fontsize=9, labelpad=1)
        self.ax.set_ylabel("$y$", fontsize=9, labelpad=1)
        self.ax.tick_params(labelsize=8)

    def _surface(self, f: TestFunction, grid: LandscapeGrid) -> None:
        C = np.clip(grid.C, grid.vmin, grid.vmax)
        self.ax.plot_surface(grid.X, grid.Y, C, cmap="viridis", linewidth=0, antialiased=False,
                             rcount=60, ccount=60, alpha=0.9)  # fmt: skip
        self.ax.set_xlim(*f.domain[0])
        self.ax.set_ylim(*f.domain[1])
        self.ax.set_zlim(grid.vmin, grid.vmax)
        self.ax.set_zlabel("log₁₀(f − min)" if grid.log else "f", fontsize=8)
        self.ax.tick_params(labelsize=7)
        self.ax.view_init(elev=35, azim=-60)

    def _side_axes(self, f, runs, options, evals_max) -> None:
        side, grid = self.side, self.grid
        steps = max((len(r.xs) - 1 for r in runs if r.ok), default=1)
        side.tick_params(labelsize=8)
        side.grid(True, color="0.4", lw=0.5)
        if options.side == SIDES[2]:
            side.set_xlim(0, max(steps, 1))
            side.set_ylim(0, 1)
            side.set_xlabel("step", fontsize=8, labelpad=1)
            side.set_ylabel("fraction of coordinates", fontsize=8)
            return
        finite = grid.Z[np.isfinite(grid.Z)]
        span = max(float(finite.max()) - grid.floor, 1e-12)
        self._loss_floor = grid.floor
        self._loss_low = 1e-9 * span
        side.set_yscale("log")
        side.set_ylim(self._loss_low, 30 * span)
        side.set_ylabel("loss − min", fontsize=8, labelpad=1)
        if options.side == SIDES[1]:
            side.set_xlim(0, max(evals_max, 1))
            side.set_xlabel("gradient evaluations", fontsize=8, labelpad=1)
        else:
            side.set_xlim(0, max(steps, 1))
            side.set_xlabel("step", fontsize=8, labelpad=1)

    def _artists(self, runs: Sequence[VariantRun], three_d: bool, texts: tuple[str, str]) -> None:
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
                (path,) = ax.plot([], [], style, color=colour, lw=1.8, animated=True)
                (end,) = ax.plot([], [], "X", color=colour, mec="k", ms=9, animated=True)
                arrows = LineCollection([], colors=colour, linewidths=1.0, animated=True)
                ax.add_collection(arrows)
                (heads,) = ax.plot([], [], "o", color=colour, ms=2.5, animated=True)
                (ball,) = ax.plot([], [], ":", color=colour, lw=1.2, animated=True)
                self.arrows.append(arrows)
                self.heads.append(heads)
                self.balls.append(ball)
            (loss,) = side.plot([], [], style, color=colour, lw=1.4, animated=True)
            self.paths.append(path)
            self.ends.append(end)
            self.losses.append(loss)
        if three_d:
            (self.start,) = ax.plot([], [], [], "o", color="white", mec="k", ms=6, animated=True)
        else:
            (self.start,) = ax.plot([], [], "o", color="white", mec="k", ms=7, animated=True)
        self.note = self.figure.text(
            LANDSCAPE_RECT[0] + 0.005, LANDSCAPE_RECT[1] + LANDSCAPE_RECT[3] - 0.01, "",
            color="crimson", fontsize=8, animated=True, va="top",
            bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "none"},
        )  # fmt: skip
        # The side panel's title and the gradient evaluations are part of the background
        # (its key holds them): drawing text is the slowest thing an update could do, and
        # they change only when the variants, the steps or a divergence change.
        title, evals = texts
        box = {"facecolor": "0.22", "alpha": 0.8, "edgecolor": "none"}
        side.text(0.02, 0.03, evals, transform=side.transAxes, color="white", fontsize=7,
                  va="bottom", bbox=box)  # fmt: skip
        side.text(0.5, 1.02, title, transform=side.transAxes, ha="center", fontsize=8)

    def _legend(self, runs: Sequence[VariantRun], options: DrawOptions, three_d: bool) -> None:
        handles, labels = [], []
        for slot, vrun in enumerate(runs):
            if vrun.ok:
                handles.append(Line2D([], [], ls=SLOT_STYLES[slot % 4], lw=1.8,
                                      color=SLOT_COLOURS[slot % 4]))  # fmt: skip
                labels.append(vrun.label)
        if not three_d and options.arrows_every > 0:
            handles.append(Line2D([], [], color="0.9", lw=1, marker="o", ms=2.5))
            labels.append(f"ascent w→w+ε (every {options.arrows_every} steps)")
        if not three_d and options.balls:
            handles.append(Line2D([], [], color="0.9", lw=1.2, ls=":"))
            labels.append("ρ-ball at the end point")
        if options.side == SIDES[2]:
            handles += [Line2D([], [], color=c, lw=6) for c in CKPT_COLOURS[1:]]
            labels += list(CKPT_NAMES[1:])
        if handles:
            # Below both panels, where it hides nothing; grey so the white path shows.
            self.figure.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, 0.0),
                               ncols=min(len(handles), 4), fontsize=7, facecolor="0.6",
                               framealpha=0.9, handlelength=1.6, columnspacing=1.0,
                               borderaxespad=0.3)  # fmt: skip

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
        texts = (_side_title(options, anatomy), _evals_text(runs))
        key = (*self._background_key(f, runs, options, evals_max), texts)
        if key != self._key or self._background is None:
            self._draw_background(f, runs, options, evals_max, texts)
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
            moving += self._side_panel(runs, options, anatomy)
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

    def _side_panel(self, runs, options, anatomy: Anatomy | None) -> list:
        if options.side == SIDES[2]:
            if anatomy is None or len(anatomy.steps) == 0:
                return []
            window = _window(anatomy)
            smooth = anatomy.smoothed(window)
            # ckpt1..ckpt4 stacked (ckpt0, the undefined ratios, is the gap to 1).
            polys = self.side.stackplot(
                anatomy.steps, smooth[:, 1:].T, colors=CKPT_COLOURS[1:], animated=True
            )
            self._temporary = list(polys)
            return list(polys)
        moving = []
        for slot, vrun in enumerate(runs):
            if not vrun.ok:
                continue
            gap = np.maximum(loss_curve(vrun) - self._loss_floor, self._loss_low)
            if options.side == SIDES[1]:
                x = vrun.evals_per_step
            else:
                x = np.arange(len(gap))
            self.losses[slot].set_data(x, gap)
            moving.append(self.losses[slot])
        return moving


def _window(anatomy: Anatomy) -> int:
    """The anatomy's moving-average window: about 40 windows over the ascent steps."""
    return max(1, len(anatomy.steps) // 40)


def _side_title(options: DrawOptions, anatomy: Anatomy | None) -> str:
    if options.side == SIDES[2]:
        if anatomy is None or len(anatomy.steps) == 0:
            return "anatomy: this variant takes no ascent step"
        window = _window(anatomy)
        average = f" (moving average over {window} steps)" if window > 1 else ""
        return f"anatomy of {anatomy.label}{average}"
    if options.side == SIDES[1]:
        return "loss against gradient evaluations (the cost)"
    return "loss along the paths"


def _evals_text(runs: Sequence[VariantRun]) -> str:
    lines = [f"{vrun.label} {vrun.grad_evals}" for vrun in runs if vrun.ok]
    return "gradient evaluations\n" + "\n".join(lines)


class BasinPicture:
    """Two basin maps side by side in one reusable figure (``plot_basins``), as PNG bytes."""

    def __init__(self, width: float = 9.4, height: float = 4.3, dpi: int = 80) -> None:
        self.figure = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
        self.canvas = FigureCanvasAgg(self.figure)

    def png(self, maps: Sequence[BasinMap]) -> bytes:
        """The maps (sharing their basins, from ``compare_basins``) as PNG bytes."""
        self.figure.clear()
        axes = self.figure.subplots(1, len(maps), squeeze=False)[0]
        plot_basins(list(maps), axes=axes,
                    titles=[f"{m.optimizer}: {m.steps} steps" for m in maps])  # fmt: skip
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
