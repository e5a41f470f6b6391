"""The browser twin (``lab/src``, JavaScript) against the NumPy reference, in float64.

Generated from ``sampy.variants()``: every row either has a browser twin, and then runs here
on every registered 2-D function with two hyperparameter settings from three start points, or
is listed in ``sampy.lab_metadata.PYTHON_ONLY`` with the reason. A new registry row is covered
without a line of test code, or fails ``test_every_row_is_a_twin_or_python_only``.

Every case runs ``STEPS`` steps in node (one process for all cases) and with ``sampy.run``,
and must agree at every step: points and losses within 1e-10 (relative beyond magnitude 1),
the same number of gradient evaluations, divergence detected at the same step.

The two settings of every row: the laboratory's first values (the registry's defaults, with
``sampy.lab_metadata.FIRST_VALUES`` where those are sized for a network) on plain SGD, and
every knob moved away from its default (``moved``) on SGD with Nesterov momentum. The bases
alone (SGD, SGD with Nesterov momentum and weight decay, Adam, AdamW) and SAM on Adam and AdamW
run on every function too, and every row sends the quadratic bowl a step size past its
stability limit, so that divergence is compared as well.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from lab_helpers import LAB, as_json_value, ask_lab, close

import sampy
from sampy import lab_metadata, optim
from sampy.playground import choices

STEPS = 200
TOLERANCE = 1e-10
ROWS = sampy.variants()
TWIN_ROWS = [row for row in ROWS if row.name not in lab_metadata.PYTHON_ONLY]
FUNCTIONS = choices.two_d_function_names()


def moved(spec, value: Any = None) -> Any:
    """A valid value of a knob other than ``value`` (default: its default), inside its
    slider's range: a flag flipped, the next choice, an integer one up, a real half as large
    again in the lower half of its slider (0 moves to a tenth of the range) and a third of the
    way towards the lower end in the upper half."""
    value = spec.default if value is None else value
    if spec.kind == "bool":
        return not value
    if spec.kind == "choice":
        return spec.choices[(spec.choices.index(value) + 1) % len(spec.choices)]
    lo, hi, _ = choices.knob_range(spec, value)
    if spec.kind == "int":
        return int(value + 1 if value + 1 <= hi else value - 1)
    if value == lo:
        return float(lo + (hi - lo) / 10)
    if value - lo <= hi - value:
        return float(value * 1.5 if lo >= 0 else value + (hi - value) / 3)
    return float(value - (value - lo) / 3)


def first_values(row) -> dict[str, Any]:
    """The laboratory's first values for a row (network-sized defaults made 2-D sized)."""
    return dict(lab_metadata.FIRST_VALUES.get(row.name, {}))


@dataclass(frozen=True)
class Case:
    """One comparison: a variant (or the base alone) on a function with a setting."""

    variant: str  # a registry row, or "base"
    function: str
    setting: str
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    base: str = "SGD"
    base_hyperparameters: dict[str, Any] = field(default_factory=dict)
    x0: tuple[tuple[float, float], ...] = ()
    steps: int = STEPS

    @property
    def id(self) -> str:
        return f"{self.variant}-{self.function}-{self.setting}"

    def request(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "variant": self.variant,
            "hyperparameters": {k: as_json_value(v) for k, v in self.hyperparameters.items()},
            "base": self.base,
            "base_hyperparameters": dict(self.base_hyperparameters),
            "x0": [list(p) for p in self.x0],
            "steps": self.steps,
        }

    def optimizer(self):
        base = getattr(optim, self.base)(**self.base_hyperparameters)
        if self.variant == "base":
            return base
        return sampy.variant(self.variant).make(base, **self.hyperparameters)

    def reference(self, f=None) -> sampy.Trajectory:
        f = sampy.functions.get(self.function) if f is None else f
        return sampy.run(self.optimizer(), f, np.array(self.x0), self.steps)


# Rounding-level noise on every gradient: 2⁻⁵⁰ (a few ulps) of the coordinate plus of the
# start point's largest gradient coordinate (the size of the terms that cancel in a gradient
# near a minimum). Two correct implementations of one formula differ by about this much.
ROUNDING = 2.0**-50


def rounding_sensitivity(case: Case, seed: int = 0) -> float:
    """How far rounding-level gradient noise moves the reference's path (largest difference).

    A run that meets an unstable fixed point (SAM's direction g/‖g‖ at a minimum, a 2-cycle
    being born) or a chaotic region amplifies rounding: there the phase of the bounce is
    decided by the last bits of the gradient, and any two correct implementations part. The
    equality test is only meaningful where this is far below its tolerance.
    """
    f = sampy.functions.get(case.function)
    rng = np.random.default_rng(seed)
    x0 = np.array(case.x0)
    scale = np.abs(f.grad(x0)).max(axis=-1, keepdims=True)  # one per start point

    def noisy(x: np.ndarray) -> np.ndarray:
        g = f.analytic_grad(x)
        return g + ROUNDING * (np.abs(g) + scale) * rng.uniform(-1.0, 1.0, np.shape(g))

    exact = case.reference(f)
    rounded = case.reference(dataclasses.replace(f, analytic_grad=noisy))
    with np.errstate(invalid="ignore"):
        gap = np.abs(exact.xs - rounded.xs) / np.maximum(1.0, np.abs(exact.xs))
    return float(np.nanmax(gap))


def _own_lr(row, lr: float) -> dict[str, Any]:
    """A variant with a built-in base gets the function's learning rate as its own ``lr``."""
    return {"lr": lr} if not row.takes_base and "lr" in row.defaults() else {}


# Per function, the step size and the three start points of its cases, chosen by a search
# (over start points on a grid of the domain and step sizes of 1, 0.5, 0.25, … times the
# laboratory's suggested one) so that every case stays well-conditioned for all of its 200
# steps: no run meets a point where the algorithm amplifies rounding (SAM's direction g/‖g‖
# at a minimum, a 2-cycle being born, LookSAM's reuse direction ‖g‖/‖g_v‖ · g_v for g_v ≈ 0,
# the chaotic bounce of a large ascent between the ripples of Ackley's or Rastrigin's
# function). Where a run does, the phase of the bounce is decided by the last bits of the
# gradient, and two correct implementations part: `rounding_sensitivity` tells the two cases
# apart when a comparison fails.
SETTINGS: dict[str, tuple[float, tuple[tuple[float, float], ...]]] = {
    "ackley": (0.001, ((-4.5, -3.682), (4.5, -3.682), (3.682, 4.5))),
    "beale": (0.002, ((1.0, 1.6), (-3.6, -3.15), (3.15, -3.15))),
    "booth": (0.01, ((-6.0, 6.0), (7.0, -7.0), (-8.0, -7.0))),
    "goldstein_price": (5e-05, ((0.6, -0.9), (-1.6, 1.6), (1.4, 1.6))),
    "griewank": (0.01, ((-6.0, 6.0), (7.0, -7.0), (-8.0, -7.0))),
    "himmelblau": (0.01, ((-0.5, 0.0), (3.5, 4.0), (-4.0, 4.0))),
    "ill_conditioned": (0.01, ((-3.3, 1.8), (3.85, -2.1), (2.2, 2.4))),
    "levy": (0.01, ((-8.0, 1.0), (7.0, 8.0), (-2.0, -7.0))),
    "matyas": (0.01, ((-6.0, 6.0), (7.0, -7.0), (-8.0, -7.0))),
    "quadratic": (0.05, ((1.5, 1.5), (-1.6, -1.4), (-1.6, 1.6))),
    "rastrigin": (0.0005, ((-4.096, -3.584), (3.584, -3.584), (-4.096, 2.56))),
    "rosenbrock": (0.001, ((-1.6, -0.4), (1.4, 2.6), (-1.6, 2.6))),
    "sharp_flat": (0.001, ((-0.6, -0.7), (1.2, 0.1), (-0.6, 0.8))),
    "sharp_flat_wells": (0.01, ((-1.45, -1.4), (-1.45, 1.6), (-1.45, 1.0))),
    "six_hump_camel": (0.001, ((0.245, -0.164), (-1.227, -1.145), (0.736, -0.818))),
    "sphere": (0.01, ((1.5, 1.2), (-1.6, -1.4), (-1.6, 1.6))),
    "styblinski_tang": (0.01, ((-4.0, -1.5), (0.5, 0.5), (-1.0, -3.5))),
    "three_hump_camel": (0.01, ((-3.0, 3.0), (-1.0, -3.5), (3.5, 4.0))),
}


def function_setting(name: str) -> tuple[float, tuple[tuple[float, float], ...]]:
    """The step size and start points of ``name``'s cases."""
    if name not in SETTINGS:
        raise KeyError(f"{name} has no entry in SETTINGS: choose its step size and starts")
    return SETTINGS[name]


MOMENTUM = {"momentum": 0.5, "nesterov": True}


def function_cases(name: str, lr: float, x0: tuple[tuple[float, float], ...]) -> list[Case]:
    """Every case on function ``name`` with step size ``lr`` from the starts ``x0``."""
    out = []
    for setting, base, extra in (
        ("sgd", "SGD", {}),
        ("nesterov-decay", "SGD", {**MOMENTUM, "weight_decay": 1e-3}),
        ("adam", "Adam", {}),
        ("adamw", "AdamW", {}),
    ):
        hyper = {"lr": lr, **extra}
        out.append(Case("base", name, setting, {}, base, hyper, x0))
        if base != "SGD":
            out.append(Case("SAM", name, setting, {}, base, hyper, x0))
    for row in TWIN_ROWS:
        own = _own_lr(row, lr)
        first = {**own, **first_values(row)}
        knobs = {
            spec.name: moved(spec, first.get(spec.name))
            for spec in choices.knob_specs(row.name)
            if spec.name != "lr"
        }
        out.append(Case(row.name, name, "first", first, "SGD", {"lr": lr}, x0))
        out.append(
            Case(row.name, name, "moved", {**own, **knobs}, "SGD", {"lr": lr, **MOMENTUM}, x0)
        )
    return out


def cases() -> list[Case]:
    return [
        case
        for name in FUNCTIONS
        if name in SETTINGS
        for case in function_cases(name, *function_setting(name))
    ]


def divergence_cases() -> list[Case]:
    """Every row on the bowl ½(x² + 10y²) with η = 0.5 > 2/10: plain SGD diverges."""
    x0 = ((1.5, 1.5), (-1.0, 0.5), (0.2, -1.8))
    out = [Case("base", "quadratic", "diverging", base_hyperparameters={"lr": 0.5}, x0=x0)]
    for row in TWIN_ROWS:
        out.append(
            Case(row.name, "quadratic", "diverging", _own_lr(row, 0.5), "SGD", {"lr": 0.5}, x0)
        )
    return out


CASES = cases() + divergence_cases()


@pytest.fixture(scope="module")
def answers() -> dict[str, dict]:
    """Node's answer to every case, from one process."""
    replies = ask_lab([case.request() for case in CASES])
    return {case.id: reply for case, reply in zip(CASES, replies, strict=True)}


def test_every_function_has_its_setting() -> None:
    assert set(SETTINGS) == set(FUNCTIONS), set(SETTINGS) ^ set(FUNCTIONS)
    for name, (lr, x0) in SETTINGS.items():
        f = sampy.functions.get(name)
        (x_lo, x_hi), (y_lo, y_hi) = f.domain
        assert lr > 0 and len(x0) == 3
        assert all(x_lo <= x <= x_hi and y_lo <= y <= y_hi for x, y in x0), name


def test_every_row_is_a_twin_or_python_only() -> None:
    listing = ask_lab_listing()
    implemented = set(listing["variants"])
    classes = set(listing["implemented_classes"])
    for row in ROWS:
        if row.name in lab_metadata.PYTHON_ONLY:
            assert row.name not in implemented, f"{row.name} is Python-only and has a twin"
            assert lab_metadata.PYTHON_ONLY[row.name].strip(), f"{row.name}: no reason given"
        else:
            assert row.cls.__name__ in classes, f"{row.name}: no browser twin and no reason"
    assert {entry["name"] for entry in listing["python_only"]} == set(lab_metadata.PYTHON_ONLY)


def ask_lab_listing() -> dict:
    from lab_helpers import built_lab, node_json

    return node_json(built_lab() / "node" / "sampy-lab-cli.cjs", None, "--list")


def _compare(case: Case, reply: dict) -> None:
    assert "error" not in reply, f"{case.id}: the twin refused: {reply['error']}"
    ref = case.reference()
    js_xs = np.array(reply["xs"], dtype=float)
    assert js_xs.shape == ref.xs.shape, (js_xs.shape, ref.xs.shape)
    ok = close(js_xs, ref.xs, TOLERANCE)
    if not ok.all():
        step = int(np.argwhere(~ok)[0][0])
        worst = float(np.max(np.abs(js_xs - ref.xs)))
        sensitivity = rounding_sensitivity(case)
        verdict = (
            f"an ill-conditioned case: rounding-level noise alone moves the reference's path "
            f"by {sensitivity:.3g}; choose a step size or starts that keep it well-conditioned"
            if sensitivity > 0.1 * TOLERANCE
            else f"a mismatch: the case is well-conditioned (rounding moves it {sensitivity:.3g})"
        )
        pytest.fail(
            f"{case.id}: the paths part at step {step} (largest difference {worst:.3g}), "
            f"{verdict}; js {js_xs[step].tolist()} vs reference {ref.xs[step].tolist()}"
        )
    losses = np.array([[math.nan if v is None else v for v in row] for row in reply["losses"]])
    assert close(losses, ref.losses, TOLERANCE).all(), f"{case.id}: losses differ"
    assert reply["grad_evals"] == ref.grad_evals, f"{case.id}: gradient evaluations differ"
    assert reply["diverged_at"] == ref.diverged_at.tolist(), f"{case.id}: divergence differs"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_twin_follows_the_reference(case: Case, answers: dict[str, dict]) -> None:
    _compare(case, answers[case.id])


def test_divergence_cases_do_diverge(answers: dict[str, dict]) -> None:
    """The divergence comparison compares something: plain SGD diverges in every start."""
    [base] = [c for c in divergence_cases() if c.variant == "base"]
    assert all(k > 0 for k in answers[base.id]["diverged_at"])


@pytest.mark.parametrize("row", TWIN_ROWS, ids=lambda r: r.name)
def test_the_twin_mirrors_the_references_file(row) -> None:
    """The variant's class lives in the file of the same name on both sides
    (``sampy/optim/gsam.py`` ↔ ``lab/src/optim/gsam.js``), under the same name."""
    module = row.cls.__module__.rsplit(".", 1)[-1]
    twin = LAB / "src" / "optim" / f"{module}.js"
    assert twin.is_file(), f"{row.name}: no {twin.relative_to(LAB.parent)}"
    assert f"export class {row.cls.__name__} " in twin.read_text(encoding="utf-8"), (
        f"{twin.name} does not define {row.cls.__name__}"
    )
