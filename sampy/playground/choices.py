"""The explorer's choices, without widgets: the method menu (generated from the registry),
which hyperparameters get a control and over which range (and which end at ∞), the
laboratory's first settings (``LESSON``) and colours (``PALETTES``), the functions and where
each one starts, and how a menu entry and its settings become an optimizer.

Everything here is plain Python on plain data, used by the laboratory
(``sampy.playground.app``, ``sampy.playground.compute``) and tested without a widget.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from sampy import functions, registry
from sampy.functions import TestFunction
from sampy.optim import SGD, Adam
from sampy.optim.hyper import Hyper
from sampy.run import Trajectory

# --------------------------------------------------------------------------- the choices

# The method menu is generated from the registry of variants (``sampy.variants()``): every
# row that runs on a plain 2-D test function (``not row.needs_examples``), after "SGD", which
# takes no ascent step at all: it is the base optimizer alone. A new registry row appears in
# the menu, with its knobs, without a change here.
SGD_METHOD = "SGD"

# Names a run still accepts, though they are no menu entries:
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


def method_row(name: str) -> tuple[registry.Variant | None, dict[str, object]]:
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
    row, fixed = method_row(name)
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
    0.05 gets [0, 1], SAM's p (≥ 1, default 2) gets [1, 8] and then ∞ (a knob of
    ``INFINITE_END`` has that one more stop: ``knob_stops``), LookSAM's k (≥ 1, default 10)
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


# Knobs whose slider ends at ∞: one stop past the largest finite value of ``knob_range``. The
# p of a norm ball is the one whose ∞ is a different ball (a square), not just a large number
# (``sampy.lab_metadata`` exports the rule, the JavaScript laboratory reads it from there).
INFINITE_END: frozenset[str] = frozenset({"p"})


def knob_stops(spec: Hyper, value: object = None) -> list[float]:
    """The values a slider with an ∞ end (``INFINITE_END``) can take: the stops of
    ``knob_range`` (``lo``, ``lo + step``, …, ``hi``, rounded to the step), then ``math.inf``;
    ``value``, when it is a number between two stops, is one more stop."""
    lo, hi, step = knob_range(spec, value)
    decimals = max(0, -math.floor(math.log10(step))) + 1
    count = round((hi - lo) / step)
    stops = {round(lo + i * step, decimals) for i in range(count + 1)} | {math.inf}
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value):
        stops.add(float(value))
    return sorted(stops)


def _widen(lo: float, hi: float, value: object) -> tuple[float, float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return min(lo, float(value)), max(hi, float(value))
    return lo, hi


# --------------------------------------------------------------------------- the lesson

# The laboratory's starting settings, in ONE place, as plain data (numbers, strings, lists and
# dicts: ``json.dumps(LESSON)`` is the document a JavaScript laboratory reads). Chosen so that
# the first picture shows the lesson: from (0.8, -0.2), SGD falls into the sharp minimum of
# ``sharp_flat`` and SAM with ρ = 0.1 reaches the flat one in 300 steps; at ρ = 0.1 the
# ρ-ball (a radius of about 15 px: the 4-unit-wide landscape is drawn 580 px wide) and the
# ascent steps are visible, and SAM's bounce across the valley shows in the arrows of two
# consecutive steps (the 0.05 of the registry hid the ball under the end marker).
# The basin map's defaults make the difference plain: on a 100 × 100 grid of starts, after
# 1000 steps, SGD ends in the sharp basin from 16.5 % of the starts, SAM from 0.9 % (about
# 0.8 s for both maps on one CPU core).
LESSON: dict = {
    "function": "sharp_flat",
    "x0": [0.8, -0.2],
    "lr": 0.01,
    "steps": 300,
    "base": "SGD",
    "variants": [
        {"method": "SGD", "hyperparameters": {}},
        {"method": "SAM", "hyperparameters": {"rho": 0.1}},
    ],
    "arrows_every": 20,
    "balls": True,
    "basins": {"left": 0, "right": 1, "grid": 100, "steps": 1000},
}

# The colours of the laboratory, one meaning each, on every panel (hex strings, for CSS and
# JavaScript too): the variant slots (slot 1 dashed white, the baseline), the
# checkpoints of the anatomy panel, the basins of the basin map (no colour of a variant or a
# checkpoint), the start points that reached no minimum, and the diverged ones.
PALETTES: dict = {
    "variants": ["#ffffff", "#ff7f0e", "#ff5ad9", "#29e4ff"],
    "variant_lines": ["--", "-", "-", "-"],
    "checkpoints": ["#7f7f7f", "#d62728", "#ff9896", "#1f77b4", "#aec7e8"],
    "basins": [
        "#9467bd",
        "#2ca02c",
        "#8c564b",
        "#bcbd22",
        "#393b79",
        "#637939",
        "#7b4173",
        "#8ca252",
        "#5254a3",
        "#b5cf6b",
    ],
    "no_basin": "#d9d9d9",
    "diverged": "#222222",
}

# Where each function's explorer starts, and with which learning rate: chosen so that the
# first picture already shows something (sharp_flat: the lesson above).
SUGGESTED: dict[str, tuple[tuple[float, float], float]] = {
    LESSON["function"]: (tuple(LESSON["x0"]), LESSON["lr"]),
    "himmelblau": ((-0.5, 0.0), 0.01),
    "rosenbrock": ((-1.5, 2.0), 0.001),
    "rastrigin": ((2.2, -1.6), 0.002),
    "ackley": ((2.5, 1.5), 0.05),
    "sphere": ((1.5, 1.2), 0.01),
    "quadratic": ((1.5, 1.5), 0.05),
    # Steep walls: a corner start with lr = 0.01 diverges in two steps.
    "beale": ((1.0, 1.6), 0.002),
    "goldstein_price": ((0.6, -0.9), 5e-5),
    "sharp_flat_wells": ((0.2, 0.8), 0.02),
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


def diverged_step(traj: Trajectory) -> int | None:
    """The step at which a one-point run diverged, or ``None``."""
    k = int(np.asarray(traj.diverged_at).reshape(-1)[0])
    return k if k >= 0 else None


def make_base(base: str, lr: float):
    """The base optimizer named in ``BASES`` (``"momentum"`` is SGD with momentum 0.9)."""
    if base == "SGD":
        return SGD(lr=lr)
    if base == "momentum":
        return SGD(lr=lr, momentum=0.9)
    if base == "Adam":
        return Adam(lr=lr)
    raise ValueError(f"base must be one of {list(BASES)}, got {base!r}")


def as_start(x0: object) -> np.ndarray:
    """``x0`` as a finite point of shape ``(2,)``, or a ``ValueError`` naming x0."""
    try:
        start = np.array(x0, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"x0 must be two numbers (x, y), got {x0!r}") from None
    if start.shape != (2,) or not np.all(np.isfinite(start)):
        raise ValueError(f"x0 must be two finite numbers (x, y), got {x0!r}")
    return start


def where_is(f: TestFunction, end: np.ndarray) -> str:
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


def resolve_hyperparameters(
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
