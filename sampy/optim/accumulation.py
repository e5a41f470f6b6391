"""Gradient accumulation over N micro-batches, and the two things it can mean for SAM.

Keras 3 ``Optimizer(gradient_accumulation_steps=N)`` (keras-team/keras @ 001750db,
``keras/src/optimizers/base_optimizer.py``) adds up N gradients and makes one update with
``ĝ = (g_N + Σ_{j<N} g_j)/N`` (then clipping, weight decay, the update). A SAM-type step asks for
several gradients, so "accumulate" has two legitimate meanings; ``accumulation_mode`` picks one:

- ``"msharpness"`` (A, the default): each micro-batch runs the variant's own gradient computations —
  its own ``ε_j``, its own ``g̃_j`` — and the N directions ``d_j`` the variant hands to its base are
  averaged into ONE base update. This is m-sharpness with m = the micro-batch size (Foret et al.,
  ICLR 2021, Section 4.1; ``MSharpnessSAM``), and what DDP with per-worker perturbations does.
  Generic for every variant that takes a base (``variant.base``): the base is replaced by one that
  records ``d_1 … d_{N−1}`` and makes the real update with their average at micro-step N.
- ``"union"`` (B): SAM on the union of the micro-batches — every gradient the variant asks
  for is the average over the N micro-batches at the same point (one ``ε`` from the
  accumulated clean gradient, then the perturbed gradients over the same micro-batches).
  Generic for every optimizer: it is a view of the oracle.

Both cost N times the variant's gradient evaluations. For an optimizer without a base that
takes one gradient per step (MSAM, Schedule-Free, SGD) the two modes coincide (there is no
ε built from a gradient) and the union view is used; for other optimizers without a base
(bSAM, ``NotesAdamWMSAMScheduleFree``'s two-gradient mode) only ``"union"`` is defined.

Micro-batches: on a ``sampy.problems.SumOfExamples`` the examples ``0 … n−1`` are cut into N
consecutive micro-batches (``np.array_split``; averages weighted by ``|B_j|/n`` when the
sizes differ); on a plain function every micro-step asks the same oracle again — the same
gradient for a deterministic function, a fresh draw for ``NoisyGradient``. With a
deterministic function N micro-steps are one step (up to the rounding of the average).
Variants that choose their own examples (m-SAM, ESAM, SSAM-F, ImbSAM, bSAM's sub-batches)
cannot also be split into micro-batches: a ``ValueError`` says so.

Choices stated (mode A): each micro-step starts from the same variant state and the state
of the last micro-step is kept, so counters, schedules and memories advance once per update
(LookSAM's k, GSAM's ρ schedule) — a memory built from gradients (F-SAM's and VaSSO's EMA,
LookSAM's stored ``g_v``) therefore holds the last micro-batch's. A move made after the
base update (WSAM's decoupled sharpness term) is averaged like the direction, except for
variants that store a perturbed point (``unperturbed``), whose offset belongs to their state.
Keras clips after accumulating: in mode B the oracle-stage transformation is applied to the
average; in mode A the variant's gradients are transformed per micro-step (its descent-stage
clipping, inside the base, still sees the average).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sampy.optim.base import BaseOptimizer, Oracle, State
from sampy.optim.hyper import Hyper, validate
from sampy.optim.transforms import (
    DelegatingWrapper,
    OptimizerWrapper,
    OracleView,
    Transform,
    base_of,
    takes_one_gradient,
    with_base,
)

ACCUMULATION_MODES = ("msharpness", "union")

GRADIENT_ACCUMULATION_STEPS = Hyper(
    "gradient_accumulation_steps",
    1,
    "micro-batches per parameter update (Keras; 1 = off)",
    1,
    None,
    kind="int",
)
ACCUMULATION_MODE = Hyper(
    "accumulation_mode",
    "msharpness",
    "average the variant's directions over micro-batches ('msharpness') or its gradients ('union')",
    kind="choice",
    choices=ACCUMULATION_MODES,
)


def combine(parts: Sequence[np.ndarray], weights: np.ndarray | None) -> np.ndarray:
    """The average of the micro-batch parts.

    Equal weights (``None``): Keras' order of operations, ``(g_N + (0 + g_1 + … + g_{N−1}))/N``.
    Otherwise ``Σ_j w_j g_j``.
    """
    if weights is None:
        acc = np.zeros_like(parts[-1], dtype=float)
        for part in parts[:-1]:
            acc = acc + part
        return (parts[-1] + acc) / len(parts)
    return sum(w * part for w, part in zip(weights, parts, strict=True))


def split_examples(oracle: Oracle, steps: int) -> tuple[list[np.ndarray | None], np.ndarray | None]:
    """The micro-batches (``None`` for a plain function) and their weights (``None``: equal)."""
    problem = getattr(oracle, "problem", None)
    if problem is None:
        return [None] * steps, None
    if steps > problem.n:
        raise ValueError(
            f"gradient_accumulation_steps={steps} is more than the {problem.n} examples of the "
            f"problem: a micro-batch would be empty"
        )
    batches = np.array_split(np.arange(problem.n), steps)
    sizes = np.array([b.size for b in batches], dtype=float)
    weights = None if np.all(sizes == sizes[0]) else sizes / problem.n
    return batches, weights


def _refuse(what: str) -> ValueError:
    return ValueError(
        f"{what}: this variant chooses its own examples, which cannot also be split into "
        f"micro-batches (gradient_accumulation_steps > 1); use gradient_accumulation_steps=1"
    )


class MicroBatchView(OracleView):
    """The oracle restricted to one micro-batch of examples (all of them: ``None``)."""

    def __init__(self, oracle: Any, examples: np.ndarray | None, transform: Transform | None):
        super().__init__(oracle, transform)
        self.examples = examples

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Loss and transformed gradient over the micro-batch (one evaluation)."""
        if self.examples is None:
            return super().__call__(x)
        g = self.grad(x)
        # The forward pass belongs to the backward pass just counted.
        return self.oracle.problem.loss(x, self.examples), g

    def grad(self, x: np.ndarray, examples: object = None) -> np.ndarray:
        """The transformed mean gradient over the micro-batch."""
        if self.examples is None:
            return super().grad(x, examples)
        if examples is not None:
            raise _refuse("a gradient over chosen examples")
        return self._t(self.oracle.grad(x, self.examples))

    def per_example_losses(self, x: np.ndarray, examples: object = None) -> np.ndarray:
        """Refused inside a micro-batch (see the module docstring)."""
        if self.examples is not None:
            raise _refuse("per-example losses")
        return super().per_example_losses(x, examples)

    def per_example_grads(self, x: np.ndarray, examples: object = None) -> np.ndarray:
        """Refused inside a micro-batch (see the module docstring)."""
        if self.examples is not None:
            raise _refuse("per-example gradients")
        return super().per_example_grads(x, examples)

    def batch_grads(self, points: np.ndarray, batches: Sequence[Sequence[int]]) -> np.ndarray:
        """Refused inside a micro-batch (see the module docstring)."""
        if self.examples is not None:
            raise _refuse("micro-batch gradients")
        return super().batch_grads(points, batches)


class UnionView(OracleView):
    """Every gradient is the average over N micro-batches at the same point (mode B)."""

    def __init__(
        self,
        oracle: Any,
        batches: Sequence[np.ndarray | None],
        weights: np.ndarray | None,
        transform: Transform | None,
    ) -> None:
        super().__init__(oracle, transform)
        self.micro = [MicroBatchView(oracle, batch, None) for batch in batches]
        self.weights = weights

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Averaged loss and transformed averaged gradient (N evaluations)."""
        values, grads = zip(*(view(x) for view in self.micro), strict=True)
        return combine(values, self.weights), self._t(combine(grads, self.weights))

    def grad(self, x: np.ndarray, examples: object = None) -> np.ndarray:
        """The transformed average of the N micro-batch gradients (N evaluations)."""
        if examples is not None:
            raise _refuse("a gradient over chosen examples")
        return self._t(combine([view.grad(x) for view in self.micro], self.weights))

    def per_example_losses(self, x: np.ndarray, examples: object = None) -> np.ndarray:
        """Refused (see the module docstring)."""
        raise _refuse("per-example losses")

    def per_example_grads(self, x: np.ndarray, examples: object = None) -> np.ndarray:
        """Refused (see the module docstring)."""
        raise _refuse("per-example gradients")

    def batch_grads(self, points: np.ndarray, batches: Sequence[Sequence[int]]) -> np.ndarray:
        """Refused (see the module docstring)."""
        raise _refuse("micro-batch gradients")


class DeferredBase(DelegatingWrapper):
    """A base that records the first N − 1 directions and updates once with the average.

    Installed in a copy of the variant for one accumulated step (mode A); ``final`` says
    whether the current micro-step is the last one.
    """

    _wrapped_name = "base"

    def __init__(self, base: BaseOptimizer, weights: np.ndarray | None) -> None:
        self.base = base
        self.weights = weights
        self.directions: list[np.ndarray] = []
        self.final = False
        self.calls = 0
        self.x_out: np.ndarray | None = None

    def init(self, x: np.ndarray) -> State:
        """The real base's state."""
        return self.base.init(x)

    def update(self, x: np.ndarray, d: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """Record ``d`` (x and state unchanged), or update with the average at the last call."""
        self.calls += 1
        if not self.final:
            self.directions.append(d)
            self.x_out = x
            return x, state
        x, state = self.base.update(x, combine([*self.directions, d], self.weights), state)
        self.x_out = x
        return x, state

    def step(self, x: np.ndarray, state: State, oracle: Oracle) -> tuple[np.ndarray, State]:
        """As a base used alone."""
        return self.update(x, oracle.grad(x), state)


class WithAccumulation(OptimizerWrapper):
    """Any optimizer, one update per N micro-batches (Keras' ``gradient_accumulation_steps``).

    Args:
        optimizer: the variant to wrap.
        gradient_accumulation_steps: N ≥ 1 micro-batches per update (1: no accumulation).
        accumulation_mode: ``"msharpness"`` (A) or ``"union"`` (B), see the module docstring.
        transform: an oracle-stage gradient transformation (loss-scale round trip, clipping
            of every gradient) applied where Keras applies it: to the average in mode B, to
            each micro-step's gradients in mode A.
    """

    HYPERPARAMETERS = (GRADIENT_ACCUMULATION_STEPS, ACCUMULATION_MODE)

    def __init__(
        self,
        optimizer: Any,
        gradient_accumulation_steps: int = 1,
        accumulation_mode: str = "msharpness",
        transform: Transform | None = None,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        super().__init__(optimizer)
        self.gradient_accumulation_steps = int(gradient_accumulation_steps)
        self.accumulation_mode = accumulation_mode
        self.transform = transform
        self._base = base_of(optimizer)
        if (
            accumulation_mode == "msharpness"
            and self.gradient_accumulation_steps > 1
            and self._base is None
            and not takes_one_gradient(optimizer)
        ):
            raise ValueError(
                f"accumulation_mode='msharpness' averages the directions a variant hands to "
                f"its base optimizer; {type(optimizer).__name__} has no base and takes several "
                f"gradients per step: use accumulation_mode='union'"
            )

    @property
    def grad_evals_per_step(self) -> float:
        """N times those of the wrapped optimizer."""
        return self.gradient_accumulation_steps * self.optimizer.grad_evals_per_step

    def step(self, x: np.ndarray, state: State, oracle: Oracle) -> tuple[np.ndarray, State]:
        """One parameter update from N micro-batches."""
        n = self.gradient_accumulation_steps
        if n == 1:
            return self.optimizer.step(x, state, OracleView(oracle, self.transform))
        batches, weights = split_examples(oracle, n)
        if self.accumulation_mode == "union" or self._base is None:
            return self.optimizer.step(
                x, state, UnionView(oracle, batches, weights, self.transform)
            )
        return self._msharpness_step(x, state, oracle, batches, weights)

    def _msharpness_step(
        self,
        x: np.ndarray,
        state: State,
        oracle: Oracle,
        batches: Sequence[np.ndarray | None],
        weights: np.ndarray | None,
    ) -> tuple[np.ndarray, State]:
        # A fresh recorder (and variant copy) per step keeps the wrapper itself immutable.
        recorder = DeferredBase(self._base, weights)
        variant = with_base(self.optimizer, recorder)
        after_base = []  # each micro-step's move after its base update (WSAM's decoupled term)
        for j, batch in enumerate(batches):
            recorder.final = j == len(batches) - 1
            x_j, state_j = variant.step(x, state, MicroBatchView(oracle, batch, self.transform))
            if recorder.calls != j + 1:
                raise ValueError(
                    f"accumulation_mode='msharpness' needs a variant that calls base.update "
                    f"once per step; {type(self.optimizer).__name__} called it "
                    f"{recorder.calls - j} times"
                )
            after_base.append(x_j - recorder.x_out)
        if hasattr(self.optimizer, "unperturbed") or not any(np.any(r) for r in after_base):
            return x_j, state_j
        return recorder.x_out + combine(after_base, weights), state_j

    def __repr__(self) -> str:
        return (
            f"WithAccumulation({self.optimizer!r}, "
            f"gradient_accumulation_steps={self.gradient_accumulation_steps}, "
            f"accumulation_mode={self.accumulation_mode!r}, transform={self.transform!r})"
        )
