"""The functional optimizer interface and the counting gradient oracle.

An optimizer is plain data plus two pure functions::

    state = opt.init(x)                     # x: (..., d), a batch of independent points
    x, state = opt.step(x, state, oracle)   # one optimisation step for every point

``oracle(x)`` returns ``(loss, grad)`` at every point of ``x``, ``oracle.grad(x)`` only the
gradient; both count as one gradient evaluation, so the number a method spends is measured,
not claimed. Norms are always
taken per point (over the last axis), never over the batch.

Base optimizers (SGD, Adam, AdamW) also expose ``update(x, d, state)``: the move they make
when handed a direction ``d`` in place of the gradient. SAM-type methods only choose which
``d`` to hand over, and always at the unperturbed ``x``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, Protocol, runtime_checkable

import numpy as np

from sampy.functions._base import TestFunction, autograd_value_and_grad

State = Any


class Oracle:
    """Loss and gradient of a batched function, with a call counter.

    ``calls`` counts gradient evaluations of the whole batch: a step that asks for two
    gradients adds 2, however many points the batch holds.
    """

    def __init__(self, f: Callable[[np.ndarray], np.ndarray]) -> None:
        if isinstance(f, TestFunction):
            self._value_and_grad = f.value_and_grad
            self._grad = f.analytic_grad or f.autograd_grad
        else:
            self._value_and_grad = partial(autograd_value_and_grad, f)
            self._grad = lambda x: autograd_value_and_grad(f, x)[1]
        self.calls = 0

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.calls += 1
        return self._value_and_grad(x)

    def grad(self, x: np.ndarray) -> np.ndarray:
        """The gradient alone (cheaper where the loss is not needed)."""
        self.calls += 1
        return self._grad(x)


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
