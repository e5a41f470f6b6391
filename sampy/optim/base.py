"""The functional optimizer interface and the counting gradient oracle.

An optimizer is plain data plus two pure functions::

    state = opt.init(x)                     # x: (..., d), a batch of independent points
    x, state = opt.step(x, state, oracle)   # one optimisation step for every point

``oracle(x)`` returns ``(loss, grad)`` at every point of ``x``, ``oracle.grad(x)`` only the
gradient; both count as one gradient evaluation, so the number a method spends is measured, not
claimed. Norms are always taken per point (over the last axis), never over the batch.

On a sum-of-examples problem (``sampy.problems.SumOfExamples``) the oracle also answers per-example
questions, each counted as sampy counts cost everywhere: one backward pass is one gradient
evaluation, whatever examples it covers —

- ``grad(x, examples)``: the mean gradient over a subset of examples (1 evaluation);
- ``per_example_grads(x, examples)``: one gradient per example (k evaluations for k examples);
- ``batch_grads(points, batches)``: each micro-batch at its own point (1 per micro-batch);
- ``per_example_losses(x, examples)`` / ``loss(x)``: forward passes only, counted in
  ``loss_calls``, not in ``calls``.

For ``sampy.problems.NoisyGradient`` the oracle owns the noise generator and adds
``N(0, σ²)`` noise to every gradient it returns; values stay exact.

Base optimizers (SGD, Adam, AdamW) also expose ``update(x, d, state)``: the move they make
when handed a direction ``d`` in place of the gradient. SAM-type methods only choose which
``d`` to hand over, and always at the unperturbed ``x``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Protocol, runtime_checkable

import numpy as np

from sampy.functions import TestFunction, autograd_value_and_grad
from sampy.problems import NoisyGradient, SumOfExamples

State = Any


class Oracle:
    """Loss and gradient of a batched function, with call counters.

    ``calls`` counts gradient evaluations of the whole batch: a step that asks for two
    gradients adds 2, however many points the batch holds. ``loss_calls`` counts forward-only
    evaluations (per-example losses, as ESAM's data selection needs).

    ``f`` may be a ``TestFunction``, a batched ``autograd.numpy`` callable, a
    ``sampy.problems.SumOfExamples`` (then ``problem`` is set and the per-example methods
    work) or a ``sampy.problems.NoisyGradient`` wrapping any of these.
    """

    def __init__(self, f: Callable[[np.ndarray], np.ndarray]) -> None:
        self.sigma = 0.0
        self.rng: np.random.Generator | None = None
        if isinstance(f, NoisyGradient):
            # The generator lives here, not in the optimizer state: noise belongs to the oracle.
            self.sigma = f.sigma
            self.rng = np.random.default_rng(f.seed)
            f = f.f
        self.problem: SumOfExamples | None = f if isinstance(f, SumOfExamples) else None
        self._f = f
        if self.problem is not None:
            self._value_and_grad = f.value_and_grad
            self._grad = f.grad
        elif isinstance(f, TestFunction):
            self._value_and_grad = f.value_and_grad
            self._grad = f.analytic_grad or f.autograd_grad
        else:
            self._value_and_grad = partial(autograd_value_and_grad, f)
            self._grad = lambda x: autograd_value_and_grad(f, x)[1]
        self.calls = 0
        self.loss_calls = 0

    @classmethod
    def from_gradient(
        cls,
        grad: Callable[[np.ndarray], np.ndarray],
        loss: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> Oracle:
        """An oracle for a hand-written gradient (an exercise, a model outside sampy).

        ``grad(x)`` maps points ``(..., d)`` to gradients ``(..., d)``; ``loss(x)``, if given,
        to values ``(...)`` (NaN otherwise: optimizers that read only gradients never notice).
        """

        def value(x: np.ndarray) -> np.ndarray:
            if loss is None:
                return np.full(np.shape(x)[:-1], np.nan)
            return np.asarray(loss(x), dtype=float)

        oracle = cls(value)
        oracle._value_and_grad = lambda x: (value(x), np.asarray(grad(x), dtype=float))
        oracle._grad = lambda x: np.asarray(grad(x), dtype=float)
        return oracle

    def _noisy(self, g: np.ndarray) -> np.ndarray:
        if self.rng is None or self.sigma == 0:
            return g
        return g + self.sigma * self.rng.standard_normal(np.shape(g))

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.calls += 1
        value, g = self._value_and_grad(x)
        return value, self._noisy(g)

    def grad(self, x: np.ndarray, examples: object = None) -> np.ndarray:
        """The gradient alone (cheaper where the loss is not needed).

        ``examples`` (problems only): the mean gradient over a subset — an index array shared
        by every point, or a boolean array ``(..., n)`` with one subset per point.
        """
        if examples is None:
            self.calls += 1
            return self._noisy(self._grad(x))
        problem = self.require_problem("a gradient over a subset of examples")
        self.calls += 1
        return self._noisy(problem.grad(x, examples))

    def loss(self, x: np.ndarray) -> np.ndarray:
        """The loss alone (a forward pass: counted in ``loss_calls``)."""
        self.loss_calls += 1
        return np.asarray(self._f(x))

    def per_example_losses(self, x: np.ndarray, examples: object = None) -> np.ndarray:
        """``ℓ_i(x)`` per example, shape ``(..., k)`` (one forward pass)."""
        problem = self.require_problem("per-example losses")
        self.loss_calls += 1
        return problem.per_example_losses(x, examples)

    def per_example_grads(self, x: np.ndarray, examples: object = None) -> np.ndarray:
        """``∇ℓ_i(x)`` per example, shape ``(..., k, d)`` (k gradient evaluations)."""
        problem = self.require_problem("per-example gradients")
        grads = problem.per_example_grads(x, examples)
        self.calls += grads.shape[-2]
        return self._noisy(grads)

    def batch_grads(self, points: np.ndarray, batches: Sequence[Sequence[int]]) -> np.ndarray:
        """Micro-batch ``j``'s mean gradient at ``points[..., j, :]``: ``(..., M, d)``.

        One gradient evaluation per micro-batch.
        """
        problem = self.require_problem("micro-batch gradients")
        grads = problem.batch_grads(points, batches)
        self.calls += len(batches)
        return self._noisy(grads)

    def require_problem(self, what: str) -> SumOfExamples:
        """The sum-of-examples problem, or a ``ValueError`` saying who needed it."""
        if self.problem is None:
            name = getattr(self._f, "name", type(self._f).__name__)
            raise ValueError(
                f"{what} needs a sum-of-examples problem (sampy.problems.SumOfExamples, e.g. "
                f"sampy.problems.make_logistic_problem()), got the plain function {name!r}"
            )
        return self.problem


def copy_rng(rng: np.random.Generator) -> np.random.Generator:
    """An independent copy of ``rng`` in the same state.

    Optimizers that draw random numbers keep a generator in their state and draw from a copy,
    so ``step`` never mutates the state it was given: stepping twice from one state gives the
    same result, and states stay plain values.
    """
    # Copying the bit generator's state is several times cheaper than a deepcopy.
    bit_generator = type(rng.bit_generator)()
    bit_generator.state = rng.bit_generator.state
    return np.random.Generator(bit_generator)


@runtime_checkable
class Optimizer(Protocol):
    """What ``sampy.run`` needs from an optimizer."""

    def init(self, x: np.ndarray) -> State:
        """The initial state for the points ``x``."""
        ...

    def step(self, x: np.ndarray, state: State, oracle: Oracle) -> tuple[np.ndarray, State]:
        """One step for every point of ``x``."""
        ...


@runtime_checkable
class BaseOptimizer(Optimizer, Protocol):
    """A base optimizer: it can also move along a given direction instead of the gradient."""

    def update(self, x: np.ndarray, d: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """Move ``x`` using ``d`` in place of the gradient."""
        ...


def per_point(value: float | np.ndarray) -> float | np.ndarray:
    """A hyperparameter as something that broadcasts against ``(..., d)`` points.

    A scalar stays a scalar; an array of shape ``batch`` (one value per point, e.g. a grid of
    learning rates) gets a trailing axis so it multiplies each point's coordinates.
    """
    if isinstance(value, np.ndarray):
        return value[..., None]
    return value


def check_base(base: object) -> None:
    """Raise ``ValueError`` unless ``base`` is a base optimizer *instance*.

    A class passes the protocol check (it has the methods), so classes are rejected
    explicitly: torch users write ``base_optimizer=torch.optim.SGD``, here the base is
    ``SGD(lr=0.01)``.
    """
    if isinstance(base, type) or not isinstance(base, BaseOptimizer):
        raise ValueError(
            f"base must be a base optimizer instance with init/update/step "
            f"(e.g. sampy.optim.SGD(lr=0.01)), got {base!r}"
        )
