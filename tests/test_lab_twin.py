"""The browser twin (``lab/src``, JavaScript) against the NumPy reference, in float64.

Generated from ``sampy.variants()``: every row either has a browser twin, and then runs here
on every registered 2-D function with two hyperparameter settings from three start points, or
is listed in ``sampy.lab_metadata.PYTHON_ONLY`` with the reason. A new registry row is covered
without a line of test code, or fails ``test_every_row_is_a_twin_or_python_only``.

Every case runs ``STEPS`` steps in node (one process for all cases) and with ``sampy.run``,
and must agree at every step: points and losses within 1e-10 (relative beyond magnitude 1),
the same number of gradient evaluations, divergence detected at the same step.

The two settings: the registry's defaults on plain SGD, and every knob moved away from its
default (``moved``) on SGD with Nesterov momentum. A third case per row sends the quadratic
bowl a step size past its stability limit, so that divergence is compared too.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from lab_helpers import as_json_value, ask_lab, close

import sampy
from sampy import lab_metadata, optim
from sampy.playground import choices

STEPS = 200
TOLERANCE = 1e-10
ROWS = sampy.variants()
TWIN_ROWS = [row for row in ROWS if row.name not in lab_metadata.PYTHON_ONLY]
FUNCTIONS = choices.two_d_function_names()


def moved(spec) -> Any:
    """A valid value of a knob other than its default, inside its slider's range."""
    if spec.kind == "bool":
        return not spec.default
    if spec.kind == "choice":
        return spec.choices[(spec.choices.index(spec.default) + 1) % len(spec.choices)]
    lo, hi, step = choices.knob_range(spec)
    if spec.kind == "int":
        return int(spec.default + 1 if spec.default + 1 <= hi else spec.default - 1)
    value = 2 * spec.default if spec.default > 0 else lo + (hi - lo) / 4
    return float(min(value, hi))


def starts(name: str) -> np.ndarray:
    """Three start points: the laboratory's suggested one and two more inside the domain."""
    f = sampy.functions.get(name)
    (x_lo, x_hi), (y_lo, y_hi) = f.domain
    first, _ = choices.suggested_start(f)
    return np.array(
        [
            first,
            (x_lo + 0.3 * (x_hi - x_lo), y_lo + 0.65 * (y_hi - y_lo)),
            (x_lo + 0.7 * (x_hi - x_lo), y_lo + 0.4 * (y_hi - y_lo)),
        ]
    )


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
# largest gradient coordinate at the start (the size of the terms that cancel in a gradient
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
    scale = float(np.abs(f.grad(x0)).max())

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


def cases() -> list[Case]:
    out = []
    for name in FUNCTIONS:
        f = sampy.functions.get(name)
        _, lr = choices.suggested_start(f)
        x0 = tuple(map(tuple, starts(name)))
        out.append(Case("base", name, "sgd", base_hyperparameters={"lr": lr}, x0=x0))
        for row in TWIN_ROWS:
            knobs = {spec.name: moved(spec) for spec in choices.knob_specs(row.name)}
            knobs.pop("lr", None)
            out.append(
                Case(row.name, name, "defaults", _own_lr(row, lr), "SGD", {"lr": lr}, x0)
            )
            out.append(
                Case(
                    row.name,
                    name,
                    "moved",
                    {**_own_lr(row, lr), **knobs},
                    "SGD",
                    {"lr": lr, "momentum": 0.9, "nesterov": True},
                    x0,
                )
            )
    return out


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

    return node_json(built_lab() / "sampy-lab-cli.cjs", None, "--list")


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
