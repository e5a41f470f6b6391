"""Testing your own SAM with sampy's pytest plugin: ``pytest examples/test_my_sam.py``.

sampy's plugin is loaded by pytest as soon as sampy is installed: the ``sampy_function``
fixture runs a test once per toy function, and the assertions compare your optimizer with
sampy's reference implementation step by step (P. Foret, A. Kleiner, H. Mobahi,
B. Neyshabur, "Sharpness-Aware Minimization for Efficiently Improving Generalization",
ICLR 2021).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import numpy as np
import pytest

from sampy.optim import SGD
from sampy.pytest_plugin import (
    assert_follows_reference,
    assert_reaches_minimum,
    assert_reduces_to_base_at_rho_zero,
    start_points,
)

LR, RHO, MOMENTUM = 0.001, 0.05, 0.9

# Smooth functions whose steps do not amplify rounding: on Rastrigin or Ackley a trajectory's
# last digits decide which well it falls into, and two correct implementations part ways.
SMOOTH = ("sphere", "quadratic", "ill_conditioned", "booth", "matyas", "himmelblau", "rosenbrock")


def my_sam_step(x: np.ndarray, grad, lr: float = LR, rho: float = RHO) -> np.ndarray:
    """One SAM step with plain gradient descent as the base, for a batch of points."""
    g = grad(x)
    # The small constant keeps a zero gradient from dividing by zero, as sampy does.
    eps = rho * g / (np.linalg.norm(g, axis=-1, keepdims=True) + 1e-12)
    return x - lr * grad(x + eps)


class MomentumSAMState(NamedTuple):
    buffer: np.ndarray | None


class MySAMWithMomentum:
    """SAM around heavy-ball momentum, written with sampy's optimizer protocol: ``init`` and
    ``step(x, state, oracle)``, the oracle counting gradient evaluations."""

    def __init__(self, lr: float = LR, rho: float = RHO, momentum: float = MOMENTUM) -> None:
        self.lr, self.rho, self.momentum = lr, rho, momentum

    def init(self, x: np.ndarray) -> MomentumSAMState:
        return MomentumSAMState(buffer=None)

    def step(self, x: np.ndarray, state: MomentumSAMState, oracle) -> tuple:
        g = oracle.grad(x)
        eps = self.rho * g / (np.linalg.norm(g, axis=-1, keepdims=True) + 1e-12)
        g_adv = oracle.grad(x + eps)
        # torch's convention, which sampy follows: the first buffer is the first gradient.
        buffer = g_adv if state.buffer is None else self.momentum * state.buffer + g_adv
        return x - self.lr * buffer, MomentumSAMState(buffer)


@pytest.mark.sampy_functions(*SMOOTH)
def test_my_sam_step_follows_sampys_sam(sampy_function) -> None:
    x0 = start_points(sampy_function, 4)
    assert_follows_reference(
        my_sam_step, "SAM", sampy_function, x0, steps=20, base=SGD(lr=LR), rho=RHO
    )


@pytest.mark.sampy_functions(*SMOOTH)
def test_my_momentum_sam_follows_sampys_sam_with_a_momentum_base(sampy_function) -> None:
    x0 = start_points(sampy_function, 4)
    base = SGD(lr=LR, momentum=MOMENTUM)
    assert_follows_reference(
        MySAMWithMomentum(), "SAM", sampy_function, x0, steps=20, base=base, rho=RHO
    )


@pytest.mark.sampy_functions("sphere", "rosenbrock")
def test_my_sam_step_is_gradient_descent_at_rho_zero(sampy_function) -> None:
    def gradient_descent(x: np.ndarray, grad) -> np.ndarray:
        return x - LR * grad(x)

    x0 = start_points(sampy_function, 4)
    assert_reduces_to_base_at_rho_zero(
        lambda rho: partial(my_sam_step, rho=rho), gradient_descent, sampy_function, x0
    )


def test_my_sam_step_reaches_the_bottom_of_a_bowl() -> None:
    # SAM keeps a perturbation of length rho even at the minimum, so on f = |x|^2 it ends
    # bouncing between +-w with |w| = lr rho / (1 - lr) = 0.0056 here, not at 0.
    x0 = [[1.5, -1.0], [-0.5, 0.8]]
    assert_reaches_minimum(partial(my_sam_step, lr=0.1), "sphere", x0, steps=300, tol=0.01)
