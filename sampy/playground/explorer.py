"""The first explorer: ONE method of the registry against its base optimizer on a 2-D test
function (ipywidgets), and the pieces it is made of. The laboratory with up to four variants,
overlays, basin maps and exports is ``sampy.playground.app.Playground``.

Three layers, so that each can be used, read and tested on its own:

1. ``explore(...)``: a pure function from settings to an ``ExplorerResult`` (the path of the
   chosen method, the path of the same without SAM from the same start, a summary text).
   It never raises for numerical trouble: a run that blows up is reported as "diverged at
   step k".
2. ``PathPicture``: draws a result into ONE reusable matplotlib figure and returns PNG bytes.
   The landscape is drawn once per function; an update only moves the paths (blitting).
3. ``Explorer``: the controls (function, method, the method's hyperparameters, learning
   rate, steps, start point) wired to a ``widgets.Image``. Every change re-runs ``explore``
   and redraws the picture.

The methods and their controls are generated from the registry of variants
(``sampy.variants()``): the menu is ``methods()`` ("SGD" and every variant that runs on a
plain test function), and a method's controls are built from its ``Hyper`` specs
(``knob_specs``, ``knob_range``, ``make_knob``) when it is chosen.

The explorer needs a Python kernel (Jupyter, or Voila). In the static book its controls
render but cannot recompute.

In a notebook (``sampy.widgets`` re-exports these names)::

    from sampy.widgets import Explorer, explore

    Explorer()  # the widget, as the last expression of a cell
    print(explore("sharp_flat", "SAM", rho=0.1, x0=(0.8, -0.2)).summary)  # the same, as text
    explore("sharp_flat", "LookSAM", hyperparameters={"rho": 0.1, "k": 5}, x0=(0.8, -0.2))
"""

from __future__ import annotations

import html
import io
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import ipywidgets as widgets
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from sampy import functions, plot
from sampy.functions import TestFunction
from sampy.playground.choices import (
    LOG_COLOURS,
    as_start,
    diverged_step,
    knob_specs,
    make_base,
    method_row,
    methods,
    resolve_hyperparameters,
    suggested_start,
    two_d_function_names,
    where_is,
)
from sampy.playground.controls import knob_note, make_knob
from sampy.run import Trajectory, run

# --------------------------------------------------------------------------- the pure function


@dataclass(frozen=True, eq=False)
class ExplorerResult:
    """What ``explore`` computed: two runs from the same start, and their summary.

    Attributes:
        function: the test function.
        method: the name of the chosen method, e.g. ``"SAM"``.
        baseline: the name of the run without SAM: the base optimizer alone, e.g. ``"SGD"``
            (``"MSAM ρ=0"`` for a variant with a built-in base and a ρ).
        run: the chosen method's trajectory (``run.xs`` has shape ``(steps + 1, 2)``).
        baseline_run: the trajectory of the run without SAM, from the same start.
        settings: the settings ``explore`` was called with; ``"hyperparameters"`` holds every
            hyperparameter the method ran with (defaults included).
        lines: the summary, one line per run.
    """

    function: TestFunction
    method: str
    baseline: str
    run: Trajectory
    baseline_run: Trajectory
    settings: dict[str, object] = field(default_factory=dict)
    lines: tuple[str, ...] = ()

    @property
    def summary(self) -> str:
        """The summary as one text, a line per run."""
        return "\n".join(self.lines)

    @property
    def same_run(self) -> bool:
        """True when the method *is* the base optimizer ("SGD"): there is one path, not two."""
        return self.method == self.baseline

    @property
    def diverged_at(self) -> int | None:
        """The step at which the chosen method diverged, or ``None``."""
        return diverged_step(self.run)

    @property
    def baseline_diverged_at(self) -> int | None:
        """The step at which the base optimizer diverged, or ``None``."""
        return diverged_step(self.baseline_run)


def _describe(name: str, f: TestFunction, traj: Trajectory) -> str:
    """One line: where a run ended, its loss, its cost, and whether it diverged."""
    end = traj.final
    with np.errstate(all="ignore"):  # a diverged run may have an overflowing loss: say so
        loss = float(np.asarray(f(end)))
    line = (
        f"{name}: ends at ({end[0]:.3f}, {end[1]:.3f}), loss {loss:.4g}, "
        f"{traj.grad_evals} gradient evaluations"
    )
    k = diverged_step(traj)
    if k is not None:
        return f"{line}; diverged at step {k} (|x| passed {traj.bound:g} or became NaN)"
    return f"{line}; {where_is(f, end)}"


def explore(
    function: str | TestFunction = "sharp_flat",
    optimizer: str = "SAM",
    rho: float | None = None,
    lr: float = 0.01,
    steps: int = 300,
    x0: Sequence[float] = (-0.4, -0.4),
    base: str = "SGD",
    adaptive: bool | None = None,
    p: float | None = None,
    eta: float | None = None,
    bound: float = 1e6,
    hyperparameters: Mapping[str, object] | None = None,
) -> ExplorerResult:
    """Run ``optimizer`` and, for comparison, the same without SAM, from the same start.

    Args:
        function: a registered 2-D test function name (``sampy.functions.names()``) or a 2-D
            ``TestFunction``.
        optimizer: an entry of ``methods()``: ``"SGD"`` (no ascent step: the base alone) or
            the name of a registry row that runs on a plain test function (``"SAM"``,
            ``"ASAM"``, ``"LookSAM"``, …); or an alias of ``ALIASES`` (``"SAM p=∞"``,
            ``"SAM p=1"``: SAM with p fixed).
        rho: the radius ρ of the ascent (ignored by methods without a ``rho``).
        lr: the learning rate of the base optimizer, > 0. A variant with a built-in base
            (``takes_base=False``: MSAM, the schedule-free ones) gets it as its own ``lr``.
        steps: number of steps, an integer ≥ 0.
        x0: the start point ``(x, y)``. The default is the start of the optax SAM example;
            from there both basins are thousands of small steps away (``Explorer`` starts
            where 300 steps suffice, see ``SUGGESTED``).
        base: the base optimizer: ``"SGD"``, ``"momentum"`` (SGD, momentum 0.9) or ``"Adam"``.
        adaptive, p, eta: SAM's ball (ASAM's ball, its norm, ASAM's offset η in
            ``T = |w| + η``), for methods that have them; ignored by the others.
        bound: a run whose ``max|x_i|`` passes ``bound`` (or turns NaN) stops and is reported
            as diverged.
        hyperparameters: the method's hyperparameters by name (``sampy.variant(name)
            .hyperparameters``); the ones not given take the registry's defaults. ``rho``,
            ``adaptive``, ``p`` and ``eta``, when given as arguments, override the same names
            here; an alias's fixed values override both.

    The comparison run ("… (no SAM)") is the base optimizer alone, with the same ``lr``; for a
    variant with a built-in base that has a ``rho``, it is the same variant with ``rho = 0``.

    Returns:
        An ``ExplorerResult``. A diverging run is reported in its summary, never raised.

    Raises:
        ValueError: a setting is invalid (the message names it), e.g. ``lr <= 0``, or a
            hyperparameter the method does not have.
    """
    f = functions.get(function) if isinstance(function, str) else function
    if not isinstance(f, TestFunction) or f.dim != 2:
        raise ValueError(f"function must be a 2-D test function, got {function!r}")
    row, fixed = method_row(optimizer)
    start = as_start(x0)
    baseline_name = base if base != "momentum" else "SGD+momentum"
    baseline_opt = make_base(base, lr)  # validates lr and base

    if row is None:  # "SGD": the method is the base optimizer itself
        method_name, method_opt, values = baseline_name, baseline_opt, {}
    else:
        legacy = {"rho": rho, "adaptive": adaptive, "p": p, "eta": eta}
        values = resolve_hyperparameters(row, lr, hyperparameters, legacy, fixed)
        method_name = optimizer
        method_opt = row.make(make_base(base, lr), **values)
        if not row.takes_base and "rho" in values:  # its own base: compare with rho = 0
            baseline_name = f"{row.name} ρ=0"
            baseline_opt = row.make(None, **{**values, "rho": 0.0})

    with np.errstate(all="ignore"):  # a diverging run is reported, not warned about
        baseline_run = run(baseline_opt, f, start, steps, bound=bound)
        # The base alone is the comparison; when the method is the base, one run serves both.
        method_run = baseline_run if row is None else run(method_opt, f, start, steps, bound=bound)

    lines = [_describe(method_name, f, method_run)]
    if row is not None:
        lines.append(_describe(f"{baseline_name} (no SAM)", f, baseline_run))
    settings = {
        "function": f.name,
        "optimizer": optimizer,
        "lr": lr,
        "steps": steps,
        "x0": tuple(float(c) for c in start),
        "base": base,
        "hyperparameters": values,
    }
    return ExplorerResult(
        function=f,
        method=method_name,
        baseline=baseline_name,
        run=method_run,
        baseline_run=baseline_run,
        settings=settings,
        lines=tuple(lines),
    )


# --------------------------------------------------------------------------- the picture


class PathPicture:
    """One reusable figure that draws ``ExplorerResult`` s and returns them as PNG bytes.

    Redrawing a whole matplotlib figure costs tens of milliseconds, mostly the contour
    polygons and the tick labels, and none of that changes when only ρ changes. So the figure
    is drawn in two layers (matplotlib's "blitting"):

    - the background (landscape, axes, legend) is drawn once per function and method and kept
      as a pixel buffer;
    - an update pastes that buffer back, draws only the paths and markers on top
      (``draw_artist``), and encodes the pixels as PNG.

    It is a ``matplotlib.figure.Figure``, not a pyplot figure, so that nothing is ever shown
    in a notebook by accident and nothing is left for pyplot to keep alive.
    """

    method_colour = "tab:orange"
    baseline_colour = "white"

    def __init__(self, width: float = 6.4, height: float = 3.6, dpi: int = 100) -> None:
        self.figure = Figure(figsize=(width, height), dpi=dpi)
        self.canvas = FigureCanvasAgg(self.figure)
        # Fixed margins: a layout engine would re-measure the text on every draw.
        self.ax = self.figure.add_axes((0.12, 0.14, 0.85, 0.78))
        self._function_key: object = None
        self._labels: tuple[str, ...] = ()
        self._background = None

    # The artists that move are created with animated=True: canvas.draw() then leaves them
    # out of the background, and draw_artist() paints them on request.
    def _new_artists(self) -> None:
        ax = self.ax
        (self.baseline_line,) = ax.plot(
            [], [], "--", color=self.baseline_colour, lw=1.6, animated=True
        )
        (self.baseline_end,) = ax.plot(
            [], [], "X", color=self.baseline_colour, mec="k", ms=9, animated=True
        )
        (self.method_line,) = ax.plot([], [], "-", color=self.method_colour, lw=2, animated=True)
        (self.method_end,) = ax.plot(
            [], [], "X", color=self.method_colour, mec="k", ms=9, animated=True
        )
        (self.start,) = ax.plot([], [], "o", color="white", mec="k", ms=7, animated=True)
        self.note = ax.text(
            0.02, 0.04, "", transform=ax.transAxes, color="crimson", fontsize=9,
            bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "none"}, animated=True,
        )  # fmt: skip

    def _draw_background(self, result: ExplorerResult) -> None:
        f = result.function
        key = _landscape_key(f)
        if key != self._function_key:  # a new landscape: the only slow case (≈ 50 ms)
            self.ax.clear()
            plot.landscape(f, self.ax, resolution=120, levels=25, log=f.name in LOG_COLOURS)
            self.ax.set_title(f"{f.name}: {f.description}", fontsize=10)
            self._new_artists()
            self._function_key = key
        labels = _legend_labels(result)
        handles = [self.method_line, self.baseline_line][-len(labels) :]
        # The legend's frame is grey so the white baseline line shows in it.
        self.ax.legend(handles, labels, loc="upper right", fontsize=8, facecolor="0.6")
        self._labels = labels
        self.canvas.draw()
        self._background = self.canvas.copy_from_bbox(self.figure.bbox)

    def png(self, result: ExplorerResult) -> bytes:
        """The picture of ``result`` as PNG bytes (the start, both paths, both end points)."""
        new_landscape = _landscape_key(result.function) != self._function_key
        if new_landscape or _legend_labels(result) != self._labels:
            self._draw_background(result)

        base_xs, method_xs = result.baseline_run.xs, result.run.xs
        self.baseline_line.set_data(base_xs[:, 0], base_xs[:, 1])
        self.baseline_end.set_data(base_xs[-1:, 0], base_xs[-1:, 1])
        self.method_line.set_data(method_xs[:, 0], method_xs[:, 1])
        self.method_end.set_data(method_xs[-1:, 0], method_xs[-1:, 1])
        self.start.set_data(base_xs[:1, 0], base_xs[:1, 1])
        notes = []
        if result.diverged_at is not None:
            notes.append(f"{result.method} diverged at step {result.diverged_at}")
        if not result.same_run and result.baseline_diverged_at is not None:
            notes.append(f"{result.baseline} diverged at step {result.baseline_diverged_at}")
        self.note.set_text("\n".join(notes))

        self.canvas.restore_region(self._background)
        # The method first, so that the dashed baseline stays visible where the paths overlap.
        moving = [] if result.same_run else [self.method_line, self.method_end]
        moving += [self.baseline_line, self.baseline_end, self.start]
        if notes:
            moving.append(self.note)
        with np.errstate(all="ignore"):  # coordinates near the divergence bound are fine
            for artist in moving:
                self.ax.draw_artist(artist)
        return self._encode()

    def _encode(self) -> bytes:
        # The canvas holds RGBA pixels; PNG-encode them directly (savefig would redraw all).
        width, height = self.canvas.get_width_height()
        image = Image.frombuffer("RGBA", (width, height), self.canvas.buffer_rgba())
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="png")
        return buffer.getvalue()


def _landscape_key(f: TestFunction) -> tuple[str, str]:
    """What identifies a landscape: the function and its parameters (e.g. the sharpness)."""
    return f.name, repr(f.params)


def _legend_labels(result: ExplorerResult) -> tuple[str, ...]:
    if result.same_run:
        return (result.baseline,)
    return (result.method, f"{result.baseline} (no SAM)")


def render(result: ExplorerResult) -> bytes:
    """PNG bytes of ``result`` in a fresh figure (an ``Explorer`` keeps and reuses one)."""
    return PathPicture().png(result)


# --------------------------------------------------------------------------- the widget


class Explorer(widgets.VBox):
    """SAM and its variants on a 2-D test function: move a control and the picture answers.

    The picture shows the chosen method's path (orange) and, from the same start, the same
    without SAM (white, dashed: the base optimizer alone): the difference is what SAM
    changes. The status line below says where each run ended, at what loss and cost, and
    whether it diverged; an invalid combination of settings is explained there instead.

    The method menu (``optimizer_menu``) is ``methods()``: "SGD" and every registry variant
    that runs on a plain test function. Choosing a method builds its hyperparameter controls
    from its registry specs (``knob_specs``, ``make_knob``): they are ``knobs``, a dict from
    hyperparameter name to control, shown under the menu; ``rho_slider`` is ``knobs["rho"]``
    (``None`` for a method without ρ, e.g. "SGD"). The other controls are attributes
    (``function_menu``, ``lr_slider``, ``steps_slider``, ``x_slider``, ``y_slider``); the
    picture is ``image`` (a ``widgets.Image``) and the text ``status``. Changing a control's
    ``value``, by hand or in code, redraws at once. Display it as the last expression of a
    cell: ``Explorer()``.

    The lr slider is the base optimizer's learning rate; for a variant with a built-in base
    (``takes_base=False``, e.g. MSAM) it is that variant's own ``lr``, which therefore gets no
    knob of its own.

    Args:
        function: the function shown first (a name from ``two_d_function_names()``).
        optimizer: the method shown first, an entry of ``methods()``.
        rho: the first ρ (default: the method's registry default).
        lr: the first learning rate (default: the function's entry in ``SUGGESTED``).
        steps: the first number of steps.
        x0: the first start point (default: the function's entry in ``SUGGESTED``).
        base: the base optimizer of every run (``BASES``); fixed, there is no control for it.
        hyperparameters: the first method's hyperparameters (the rest take the registry's
            defaults); those without a control keep their value until the method changes.
    """

    def __init__(
        self,
        function: str = "sharp_flat",
        optimizer: str = "SAM",
        rho: float | None = None,
        lr: float | None = None,
        steps: int = 300,
        x0: Sequence[float] | None = None,
        base: str = "SGD",
        hyperparameters: Mapping[str, object] | None = None,
    ) -> None:
        f = functions.get(function)
        if optimizer not in methods():
            raise ValueError(f"optimizer must be one of {methods()}, got {optimizer!r}")
        start, suggested_lr = suggested_start(f)
        start = tuple(x0) if x0 is not None else start
        self.base = base
        self.picture = PathPicture()
        self._quiet = False  # True while several controls change together: redraw once after
        self.knobs: dict[str, widgets.Widget] = {}
        self._fixed: dict[str, object] = {}  # hyperparameters given that have no control

        wide = {"description_width": "70px"}
        column = widgets.Layout(width="320px")
        self.function_menu = widgets.Dropdown(
            options=two_d_function_names(), value=f.name, description="function",
            style={"description_width": "110px"}, layout=widgets.Layout(width="340px"),
        )  # fmt: skip
        self.optimizer_menu = widgets.Dropdown(
            options=methods(), value=optimizer, description="method",
            style={"description_width": "110px"}, layout=widgets.Layout(width="340px"),
        )  # fmt: skip
        # A log slider: useful learning rates span four orders of magnitude.
        self.lr_slider = widgets.FloatLogSlider(
            value=lr if lr is not None else suggested_lr, base=10, min=-4, max=0, step=0.05,
            readout_format=".4f", description="lr (η)", style=wide, layout=column,
        )  # fmt: skip
        # Not continuous: thousands of steps take a moment, so redraw when the handle drops.
        self.steps_slider = widgets.IntSlider(
            value=steps, min=0, max=10_000, step=50, continuous_update=False,
            description="steps", style=wide, layout=column,
        )  # fmt: skip
        self.x_slider = widgets.FloatSlider(description="start x", style=wide, layout=column)
        self.y_slider = widgets.FloatSlider(description="start y", style=wide, layout=column)
        self._fit_start_sliders(f, start)
        self.knob_box = widgets.VBox()
        self.knob_note = widgets.HTML(layout=widgets.Layout(width="340px"))  # what is not shown
        initial = dict(hyperparameters or {})
        if rho is not None:
            initial["rho"] = rho
        self._build_knobs(optimizer, initial)

        # At its own pixel size (a stretched PNG is blurred), but never wider than the page.
        width = int(self.picture.figure.get_figwidth() * self.picture.figure.dpi)
        self.image = widgets.Image(
            format="png", layout=widgets.Layout(width=f"{width}px", max_width="100%")
        )
        self.status = widgets.HTML()
        self.function_menu.observe(self._on_function, names="value")
        self.optimizer_menu.observe(self._on_method, names="value")
        for control in (self.lr_slider, self.steps_slider, self.x_slider, self.y_slider):
            control.observe(self._on_change, names="value")

        left = widgets.VBox([self.function_menu, self.optimizer_menu, self.knob_box])
        right = widgets.VBox([self.lr_slider, self.steps_slider, self.x_slider, self.y_slider])
        super().__init__([widgets.HBox([left, right]), self.image, self.status])
        self.refresh()

    @property
    def rho_slider(self) -> widgets.Widget | None:
        """The ρ control of the current method (``None`` when it has no ρ)."""
        return self.knobs.get("rho")

    @property
    def controls(self) -> list[widgets.Widget]:
        """Every control, the current method's knobs included."""
        return [
            self.function_menu, self.optimizer_menu, *self.knobs.values(), self.lr_slider,
            self.steps_slider, self.x_slider, self.y_slider,
        ]  # fmt: skip

    def settings(self) -> dict[str, object]:
        """The settings the controls show, as keyword arguments of ``explore``."""
        return {
            "function": self.function_menu.value,
            "optimizer": self.optimizer_menu.value,
            "lr": self.lr_slider.value,
            "steps": self.steps_slider.value,
            "x0": (self.x_slider.value, self.y_slider.value),
            "base": self.base,
            "hyperparameters": {
                **self._fixed,
                **{name: knob.value for name, knob in self.knobs.items()},
            },
        }

    def refresh(self, **overrides: object) -> ExplorerResult | None:
        """Re-run ``explore`` with the controls' settings (``overrides`` replace some) and redraw.

        A bad setting is shown in the status line, not raised: in a notebook or under Voila an
        exception in a widget callback would vanish into a log and leave a stale picture with
        no explanation. Returns the result, or ``None`` when there was nothing to draw.
        """
        settings = {**self.settings(), **overrides}
        try:
            result = explore(**settings)
            png = self.picture.png(result)
        except ValueError as error:  # an invalid setting: say which, keep the last picture
            self.status.value = f"<b>Invalid setting</b>: {html.escape(str(error))}"
            return None
        except Exception as error:  # anything else: report it rather than lose it
            self.status.value = (
                f"<b>Could not draw this setting</b> ({type(error).__name__}): "
                f"{html.escape(str(error))}"
            )
            return None
        self.image.value = png
        self.status.value = "<br>".join(html.escape(line) for line in result.lines)
        return result

    def _build_knobs(self, method: str, values: Mapping[str, object]) -> None:
        """Replace the knobs by those of ``method``, at ``values`` (else the defaults)."""
        row, _ = method_row(method)
        specs = knob_specs(method)
        names = [spec.name for spec in row.hyperparameters] if row is not None else []
        unknown = [name for name in values if name not in names]
        if unknown:
            raise ValueError(
                f"{method} has no hyperparameter {', '.join(map(repr, unknown))}; "
                f"its hyperparameters are {names}"
            )
        for knob in self.knobs.values():
            knob.close()  # its comm too: a browser page must not collect dead controls
        self.knobs = {spec.name: make_knob(spec, values.get(spec.name)) for spec in specs}
        for knob in self.knobs.values():
            knob.observe(self._on_change, names="value")
        self._fixed = {name: value for name, value in values.items() if name not in self.knobs}
        self.knob_note.value = knob_note(row, specs)
        self.knob_box.children = (*self.knobs.values(), self.knob_note)

    def _on_change(self, change: dict) -> None:
        if not self._quiet:
            self.refresh()

    def _on_method(self, change: dict) -> None:
        # New knobs at the new method's defaults, built only now (not on every update).
        self._build_knobs(change["new"], {})
        self.refresh()

    def _on_function(self, change: dict) -> None:
        # A new function has a new domain: move the start sliders into it and pick the start
        # point and learning rate that suit it, then redraw once (not once per slider).
        f = functions.get(change["new"])
        start, lr = suggested_start(f)
        self._quiet = True
        try:
            self._fit_start_sliders(f, start)
            self.lr_slider.value = lr
        finally:
            self._quiet = False
        self.refresh()

    def _fit_start_sliders(self, f: TestFunction, start: Sequence[float]) -> None:
        for slider, (lo, hi), value in zip(
            (self.x_slider, self.y_slider), f.domain, start, strict=True
        ):
            # hold_sync sends the new range and value to the browser in ONE message. Sent one
            # by one, the browser's slider would see the new range with the old value, snap
            # that old value to the new range and send it back, undoing the new start point.
            with slider.hold_sync():
                # Widen, set the value, then narrow: ipywidgets refuses min > max and clamps
                # a value outside [min, max], so the order matters.
                slider.min, slider.max = min(slider.min, lo), max(slider.max, hi)
                slider.value = float(np.clip(value, lo, hi))
                slider.min, slider.max = lo, hi
                slider.step = (hi - lo) / 400
                slider.readout_format = ".2f"


# --------------------------------------------------------------------------- timing


def time_update(n: int = 30, steps: int = 300, **settings: object) -> np.ndarray:
    """Seconds taken by ``n`` explorer updates (``steps`` steps of the method and of its base,
    and a new PNG).

    Each update sets the ρ knob to a new value, as a reader dragging it would (the lr slider
    for a method without ρ), and is timed from the assignment until ``image.value`` holds
    the new picture. ``settings`` go to ``Explorer`` (e.g. ``optimizer="LookSAM"``). For the
    benchmarks; take the median.
    """
    explorer = Explorer(steps=steps, **settings)
    if explorer.rho_slider is not None:
        slider, warm_up = explorer.rho_slider, 0.11
        values = [0.02 + 0.005 * (i % 40) for i in range(n)]
    else:
        slider, warm_up = explorer.lr_slider, 0.011
        values = [0.002 + 0.0002 * (i % 40) for i in range(n)]
    slider.value = warm_up  # one warm-up update
    times = np.empty(n)
    for i in range(n):
        start = time.perf_counter()
        slider.value = values[i]
        times[i] = time.perf_counter() - start
    return times
