"""An interactive explorer of SAM and its variants on 2-D test functions (ipywidgets), and
the pieces it is made of.

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

The explorer needs a Python kernel (Jupyter, or Voila: ``make playground``). In the static
book its controls render but cannot recompute; the book shows precomputed pictures next to it.

In a notebook::

    from sampy.widgets import Explorer, explore

    Explorer()  # the widget, as the last expression of a cell
    print(explore("sharp_flat", "SAM", rho=0.1, x0=(0.8, -0.2)).summary)  # the same, as text
    explore("sharp_flat", "LookSAM", hyperparameters={"rho": 0.1, "k": 5}, x0=(0.8, -0.2))
"""

from __future__ import annotations

import html
import io
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import ipywidgets as widgets
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from sampy import functions, plot, registry
from sampy.functions import TestFunction
from sampy.optim import SGD, Adam
from sampy.optim.hyper import Hyper
from sampy.run import Trajectory, run

# --------------------------------------------------------------------------- the choices

# The method menu is generated from the registry of variants (``sampy.variants()``): every
# row that runs on a plain 2-D test function (``not row.needs_examples``), after "SGD", which
# takes no ascent step at all: it is the base optimizer alone. A new registry row appears in
# the menu, with its knobs, without a change here.
SGD_METHOD = "SGD"

# Names ``explore`` still accepts for backward compatibility, though they are no menu entries:
# a registry row with some hyperparameters fixed (the fixed values win over any given).
ALIASES: dict[str, tuple[str, dict[str, object]]] = {
    "SAM p=∞": ("SAM", {"p": math.inf}),
    "SAM p=1": ("SAM", {"p": 1.0}),
}

# The base optimizer that actually moves the point (SAM only chooses the direction it gets).
BASES = ("SGD", "momentum", "Adam")

# The knobs: at most MAX_KNOBS controls per method, "rho" first, then the rest in the order of
# the row's specs. Left out (they keep their defaults): tuple and subset kinds (Adam's betas,
# SAMCkpt's checkpoints), knobs whose default is None (an optional feature that is off),
# random seeds and numerical guards (``eps``, ``*_eps``), and ``lr`` of a variant with a
# built-in base (``takes_base=False``): the explorer's lr slider sets that one.
MAX_KNOBS = 5
KNOB_KINDS = frozenset({"real", "int", "bool", "choice"})
HIDDEN_KNOBS = frozenset({"seed", "lr"})


def plain_variants() -> list[registry.Variant]:
    """The registry rows that run on a plain 2-D test function (``not row.needs_examples``)."""
    return [row for row in registry.variants() if not row.needs_examples]


def methods() -> list[str]:
    """The explorer's method menu: ``"SGD"``, then every row of ``plain_variants()``."""
    return [SGD_METHOD, *(row.name for row in plain_variants())]


def _method(name: str) -> tuple[registry.Variant | None, dict[str, object]]:
    """The registry row of a menu entry or alias (``None`` for "SGD"), and its fixed values."""
    if name == SGD_METHOD:
        return None, {}
    if name in ALIASES:
        row_name, fixed = ALIASES[name]
        return registry.variant(row_name), dict(fixed)
    for row in plain_variants():
        if row.name == name:
            return row, {}
    raise ValueError(f"optimizer must be one of {methods()} (or {list(ALIASES)}), got {name!r}")


def knob_specs(name: str) -> tuple[Hyper, ...]:
    """The hyperparameters of method ``name`` that get a control (see ``MAX_KNOBS``)."""
    row, fixed = _method(name)
    if row is None:
        return ()
    shown = [
        spec
        for spec in row.hyperparameters
        if spec.kind in KNOB_KINDS
        and spec.default is not None
        and spec.name not in fixed
        and spec.name not in HIDDEN_KNOBS
        and not (spec.name == "eps" or spec.name.endswith("_eps"))
    ]
    shown.sort(key=lambda spec: spec.name != "rho")  # stable: rho first, then spec order
    return tuple(shown[:MAX_KNOBS])


def _nice_step(span: float, ticks: int = 200) -> float:
    """The smallest 1, 2 or 5 times a power of ten that cuts ``span`` into ≤ ``ticks`` steps."""
    raw = span / ticks
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw * (1 - 1e-9))


def knob_range(spec: Hyper, value: object = None) -> tuple[float, float, float]:
    """``(min, max, step)`` of the slider of a ``real`` or ``int`` knob.

    The rule: an end the spec bounds is that bound; an unbounded end is ``±max(1, 4·|default|)``
    (reals) or ``max(low + 10, 4·default)`` (ints, upper end; lower end 0). So ρ with default
    0.05 gets [0, 1], SAM's p (≥ 1, default 2) gets [1, 8], LookSAM's k (≥ 1, default 10)
    gets [1, 40]. ``value`` (an initial value other than the default), when it is a finite
    number, widens the range to include it. An open end moves in by one step, so the slider
    cannot reach an invalid value. Reals get a 1-2-5 step of about 1/200 of the range.
    """
    default = float(spec.default)
    if spec.kind == "int":
        lo = 0.0 if spec.low is None else float(spec.low) + spec.low_open
        hi = max(lo + 10, 4 * default) if spec.high is None else float(spec.high) - spec.high_open
        lo, hi = _widen(lo, hi, value)
        return float(math.floor(lo)), float(math.ceil(hi)), 1.0
    reach = max(1.0, 4 * abs(default))
    lo = -reach if spec.low is None else float(spec.low)
    hi = reach if spec.high is None else float(spec.high)
    hi = max(hi, lo + 1.0) if spec.high is None else hi
    step = _nice_step(hi - lo)
    lo, hi = lo + step * spec.low_open, hi - step * spec.high_open
    lo, hi = _widen(lo, hi, value)
    return lo, hi, step


def _widen(lo: float, hi: float, value: object) -> tuple[float, float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return min(lo, float(value)), max(hi, float(value))
    return lo, hi


def make_knob(spec: Hyper, value: object = None, width: str = "110px") -> widgets.Widget:
    """The control of one hyperparameter, labelled with its name, at ``value`` (or default).

    real → ``FloatSlider`` (``FloatLogSlider`` when ``spec.log``: from default/100 to
    default·100, within the spec's bounds), int → ``IntSlider``, bool → ``Checkbox``,
    choice → ``Dropdown``. The tooltip gives the meaning and the valid range.
    """
    value = spec.default if value is None else value
    common = {
        "description": spec.name,
        "tooltip": f"{spec.name}: {spec.meaning}; valid {spec.range_text()}",
        "style": {"description_width": width},
        "layout": widgets.Layout(width="340px"),
    }
    if spec.kind == "bool":
        return widgets.Checkbox(value=bool(value), **common)
    if spec.kind == "choice":
        return widgets.Dropdown(options=list(spec.choices), value=value, **common)
    if spec.kind == "int":
        lo, hi, _ = knob_range(spec, value)
        return widgets.IntSlider(value=int(value), min=int(lo), max=int(hi), step=1, **common)
    if spec.log and float(spec.default) > 0:
        centre = math.log10(float(spec.default))
        lo = centre - 2 if not spec.low else max(centre - 2, math.log10(spec.low))
        hi = centre + 2 if spec.high is None else min(centre + 2, math.log10(spec.high))
        if isinstance(value, (int, float)) and value > 0:
            lo, hi = min(lo, math.log10(value)), max(hi, math.log10(value))
        return widgets.FloatLogSlider(
            value=value, base=10, min=lo, max=hi, step=(hi - lo) / 200, readout_format=".3g",
            **common,
        )  # fmt: skip
    lo, hi, step = knob_range(spec, value)
    decimals = max(0, -math.floor(math.log10(step)))
    return widgets.FloatSlider(
        value=value, min=lo, max=hi, step=step, readout_format=f".{decimals}f", **common
    )


# Where each function's explorer starts, and with which learning rate: chosen so that the
# first picture already shows something (for sharp_flat: SGD falls into the sharp minimum
# and SAM with ρ = 0.05 reaches the flat one in 300 steps).
SUGGESTED: dict[str, tuple[tuple[float, float], float]] = {
    "sharp_flat": ((0.8, -0.2), 0.01),
    "himmelblau": ((-0.5, 0.0), 0.01),
    "rosenbrock": ((-1.5, 2.0), 0.001),
    "rastrigin": ((2.2, -1.6), 0.002),
    "ackley": ((2.5, 1.5), 0.05),
    "sphere": ((1.5, 1.2), 0.01),
    "quadratic": ((1.5, 1.5), 0.05),
}

# Functions whose values span orders of magnitude: coloured by log(f - fmin) so that the
# valleys near the minima are not all one colour.
LOG_COLOURS = frozenset({"rosenbrock", "himmelblau", "sphere", "quadratic"})


def two_d_function_names() -> list[str]:
    """Registered test functions that exist in 2-D with their default parameters."""
    names = []
    for name in functions.names():
        try:
            if functions.get(name).dim == 2:
                names.append(name)
        except ValueError:  # a function that needs parameters to be built: not for the menu
            continue
    return names


def suggested_start(f: TestFunction) -> tuple[tuple[float, float], float]:
    """``(x0, lr)`` that suit ``f``: the table above, else a point towards a domain corner."""
    if f.name in SUGGESTED:
        return SUGGESTED[f.name]
    (x_lo, x_hi), (y_lo, y_hi) = f.domain
    return (x_lo + 0.2 * (x_hi - x_lo), y_lo + 0.8 * (y_hi - y_lo)), 0.01


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
        return _diverged_at(self.run)

    @property
    def baseline_diverged_at(self) -> int | None:
        """The step at which the base optimizer diverged, or ``None``."""
        return _diverged_at(self.baseline_run)


def _diverged_at(traj: Trajectory) -> int | None:
    k = int(np.asarray(traj.diverged_at).reshape(-1)[0])
    return k if k >= 0 else None


def _make_base(base: str, lr: float):
    if base == "SGD":
        return SGD(lr=lr)
    if base == "momentum":
        return SGD(lr=lr, momentum=0.9)
    if base == "Adam":
        return Adam(lr=lr)
    raise ValueError(f"base must be one of {list(BASES)}, got {base!r}")


def _as_start(x0: object) -> np.ndarray:
    try:
        start = np.array(x0, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"x0 must be two numbers (x, y), got {x0!r}") from None
    if start.shape != (2,) or not np.all(np.isfinite(start)):
        raise ValueError(f"x0 must be two finite numbers (x, y), got {x0!r}")
    return start


def _describe(name: str, f: TestFunction, traj: Trajectory) -> str:
    """One line: where a run ended, its loss, its cost, and whether it diverged."""
    end = traj.final
    with np.errstate(all="ignore"):  # a diverged run may have an overflowing loss: say so
        loss = float(np.asarray(f(end)))
    line = (
        f"{name}: ends at ({end[0]:.3f}, {end[1]:.3f}), loss {loss:.4g}, "
        f"{traj.grad_evals} gradient evaluations"
    )
    k = _diverged_at(traj)
    if k is not None:
        return f"{line}; diverged at step {k} (|x| passed {traj.bound:g} or became NaN)"
    return f"{line}; {_where(f, end)}"


def _where(f: TestFunction, end: np.ndarray) -> str:
    """Which known minimum the point is near, if any (within 5% of the domain's diagonal)."""
    if len(f.minima) == 0:
        return "no known minimum to compare with"
    distances = np.linalg.norm(f.minima - end, axis=-1)
    i = int(np.argmin(distances))
    diagonal = float(np.linalg.norm([hi - lo for lo, hi in f.domain]))
    if not distances[i] <= 0.05 * diagonal:
        return "not near a known minimum"
    if i < len(f.minima_labels):
        return f"near the {f.minima_labels[i]} minimum"
    point = ", ".join(f"{c:.3g}" for c in f.minima[i])
    return f"near the minimum ({point})"


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
    row, fixed = _method(optimizer)
    start = _as_start(x0)
    baseline_name = base if base != "momentum" else "SGD+momentum"
    baseline_opt = _make_base(base, lr)  # validates lr and base

    if row is None:  # "SGD": the method is the base optimizer itself
        method_name, method_opt, values = baseline_name, baseline_opt, {}
    else:
        legacy = {"rho": rho, "adaptive": adaptive, "p": p, "eta": eta}
        values = _resolve(row, lr, hyperparameters, legacy, fixed)
        method_name = optimizer
        method_opt = row.make(_make_base(base, lr), **values)
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


def _resolve(
    row: registry.Variant,
    lr: float,
    given: Mapping[str, object] | None,
    legacy: Mapping[str, object],
    fixed: Mapping[str, object],
) -> dict[str, object]:
    """Every hyperparameter of ``row``: defaults < lr (own base) < given < legacy < fixed."""
    names = [spec.name for spec in row.hyperparameters]
    given = dict(given or {})
    unknown = [name for name in given if name not in names]
    if unknown:
        raise ValueError(
            f"{row.name} has no hyperparameter {', '.join(map(repr, unknown))}; "
            f"its hyperparameters are {names}"
        )
    values = row.defaults()
    if not row.takes_base and "lr" in values:
        values["lr"] = lr  # the explorer's lr control is the built-in base's lr
    values.update(given)
    values.update({k: v for k, v in legacy.items() if v is not None and k in values})
    values.update(fixed)
    return values


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
        row, _ = _method(method)
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
        self.knob_note.value = _knob_note(row, specs)
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


def _knob_note(row: registry.Variant | None, specs: Sequence[Hyper]) -> str:
    """One small line under the knobs: what is not shown, and what the lr slider means."""
    if row is None:
        return "<small>the base optimizer alone: no ascent step, nothing to set</small>"
    parts = []
    if not row.takes_base:
        parts.append(f"lr (η) is {html.escape(row.name)}'s own learning rate")
    shown = {spec.name for spec in specs}
    rest = [spec.name for spec in row.hyperparameters if spec.name not in shown]
    rest = [name for name in rest if not (name == "lr" and not row.takes_base)]
    if rest:
        parts.append("at their defaults: " + ", ".join(html.escape(name) for name in rest))
    return f"<small>{'; '.join(parts)}</small>" if parts else ""


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
