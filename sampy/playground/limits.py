"""What the laboratory's kernel accepts from its controls, whatever a browser sends.

A widget's ``min`` and ``max`` live in the browser too, and a client can change them: a comm
``update`` of ``{"max": 40000, "value": 40000}`` gives the steps slider 40,000 steps, one of
``1e20`` gives "arrows every" a number no array index can hold, and JSON's ``NaN`` passes
every ``value > max`` test. So the kernel never trusts a widget's range. Every value it
computes with goes through a ``Limit`` here first, the same object that gives the slider its
range (the documented limit lives once): a number outside is clamped to the limit, and the
status line says so; a value that is no number at all is refused with a message.

One update also has a work budget, in the spirit of the basin map's ``MAX_BASIN_WORK``: its
cost in gradient evaluations (steps × the variants' evaluations per step, from the registry's
cost formulas) times the cost of one evaluation (1 for a registered function, more for a
long typed expression: ``evaluation_cost``). An update over ``MAX_UPDATE_WORK`` is refused
with "too much work: …", which says what to reduce, instead of keeping the kernel busy for a
minute.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ARROWS_EVERY",
    "BASIN_GRID",
    "BASIN_STEPS",
    "BOX",
    "EXPRESSION_NODES_PER_UNIT",
    "LR",
    "MAX_UPDATE_WORK",
    "NOISE",
    "STEPS",
    "Limit",
    "TooMuchWork",
    "UpdateWork",
    "evaluation_cost",
]


@dataclass(frozen=True)
class Limit:
    """The range the kernel accepts for one control, whatever the browser's widget says.

    Attributes:
        name: the control's label, as the reader sees it ("steps").
        low, high: the inclusive range.
        integer: True for a control that holds whole numbers.
    """

    name: str
    low: float
    high: float
    integer: bool = False

    def clamp(self, value: object) -> tuple[float, str | None]:
        """``value`` inside ``[low, high]`` and, when it had to be moved, a note saying so.

        Raises ``ValueError`` naming the control when ``value`` is no real number (NaN, a
        string, a bool, ``None``): there is no nearest allowed value to move it to.
        """
        if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)
        ):
            raise ValueError(f"{self.name} must be a number in {self.range_text()}, got {value!r}")
        number = float(value) if not isinstance(value, (int, np.integer)) else value
        if isinstance(number, float) and math.isnan(number):
            raise ValueError(f"{self.name} must be a number in {self.range_text()}, got nan")
        # Compare as exact Python numbers: an int of 400 digits must not overflow a float.
        clamped = min(max(number, self.low), self.high)
        clamped = math.floor(clamped) if self.integer else float(clamped)
        if clamped == number:
            return clamped, None
        shown = f"{value:,}" if isinstance(value, (int, np.integer)) else f"{float(value):g}"
        where = (
            f"is outside {self.range_text()}"
            if clamped in (self.low, self.high)
            else "is not a whole number"
        )
        return clamped, f"{self.name} = {shown} {where}; using {self._show(clamped)}"

    def range_text(self) -> str:
        """``[low, high]`` as the reader reads it (thousands separated)."""
        return f"[{self._show(self.low)}, {self._show(self.high)}]"

    def _show(self, number: float) -> str:
        return f"{int(number):,}" if self.integer else f"{number:g}"


# The controls' documented limits (the Playground builds its sliders from these).
STEPS = Limit("steps", 0, 10_000, integer=True)
LR = Limit("lr (η)", 1e-4, 1.0)
NOISE = Limit("noise σ", 0.0, 2.0)
BOX = Limit("box ±", 0.1, 100.0)
ARROWS_EVERY = Limit("arrows every", 0, 100, integer=True)
BASIN_GRID = Limit("basin grid", 10, 150, integer=True)
BASIN_STEPS = Limit("basin steps", 10, 2000, integer=True)

# One unit of work is one gradient evaluation of a registered 2-D function inside a run
# (about 17 µs on one core, optimizer step included). A typed expression's forward-mode
# gradient walks its tree: about 1.4 µs per node, so 12 nodes cost one more unit.
EXPRESSION_NODES_PER_UNIT = 12
# The most work one update may take: about 250,000 evaluations of a registered function,
# a few seconds on one core (4 × SAM × 10,000 steps is 80,000; the review's heavy setting,
# 4 × MultiStepSAM(k = 11) × 10,000 steps on a 246-node expression, about 10 million).
MAX_UPDATE_WORK = 250_000


def evaluation_cost(nodes: int | None) -> float:
    """Units of work per gradient evaluation: 1 for a registered function (``nodes`` is
    ``None``), ``1 + nodes / EXPRESSION_NODES_PER_UNIT`` for a typed expression."""
    return 1.0 if nodes is None else 1.0 + nodes / EXPRESSION_NODES_PER_UNIT


class TooMuchWork(ValueError):
    """An update or a map that would keep the kernel busy too long; the message says what to
    reduce."""


@dataclass(frozen=True)
class UpdateWork:
    """The work of one update: every variant's run of ``steps`` steps.

    Attributes:
        steps: steps per run.
        evals_per_step: per variant, gradient evaluations per step (the registry's cost).
        nodes: the typed expression's node count, ``None`` for a registered function.
    """

    steps: int
    evals_per_step: Sequence[float]
    nodes: int | None = None

    @property
    def per_step(self) -> float:
        """Units of work per step, all variants together."""
        return sum(self.evals_per_step) * evaluation_cost(self.nodes)

    @property
    def total(self) -> float:
        """Units of work of the whole update (``inf`` for a step count beyond a float)."""
        try:
            return float(self.steps) * self.per_step
        except OverflowError:  # an int of hundreds of digits, as a client can send
            return math.inf

    def check(self, limit: float = MAX_UPDATE_WORK) -> None:
        """Raise ``TooMuchWork`` when ``total`` exceeds ``limit``, saying what to reduce."""
        if self.total <= limit:
            return
        n = len(self.evals_per_step)
        evals = sum(self.evals_per_step)
        what = (
            f"a {self.nodes}-node expression ({evaluation_cost(self.nodes):.3g} units per "
            f"evaluation)"
            if self.nodes is not None
            else "a registered function (1 unit per evaluation)"
        )
        fits = int(limit // self.per_step) if self.per_step > 0 else self.steps
        reduce = [f"fewer steps (at most {fits:,} with these variants)"]
        if max(self.evals_per_step) > 2:
            reduce.append("variants with fewer gradient evaluations per step (ascent_steps)")
        if n > 1:
            reduce.append("fewer variants")
        if self.nodes is not None:
            reduce.append("a shorter expression")
        raise TooMuchWork(
            f"too much work: {self.steps:,} steps × {evals:g} gradient evaluations per step "
            f"({n} variant{'s' if n != 1 else ''} together) on {what} is "
            f"{self.total:,.0f} units; one update may take {limit:,.0f}. Use "
            + ", or ".join(reduce)
        )
