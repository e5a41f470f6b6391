"""Exercise: one SAM step by hand (book chapter "Deriving SAM").

Write ``sam_step(grad, w, lr, rho) -> w_next`` for plain gradient descent as the base:

    g = ∇L(w);  ε = ρ g/‖g‖;  w_next = w − lr ∇L(w + ε)

(P. Foret, A. Kleiner, H. Mobahi, B. Neyshabur, "Sharpness-Aware Minimization for Efficiently
Improving Generalization", ICLR 2021.) The checker recognises the four mistakes students make
most: no normalisation, the perturbation taken downhill, the base step taken from the perturbed
point, and the clean gradient used in the descent.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sampy.exercises.feedback import Case, Feedback, Mistake, compare_with_reference
from sampy.optim import SAM, SGD, Oracle

Grad = Callable[[np.ndarray], np.ndarray]


def _reference_sam_step(grad: Grad, w: np.ndarray, lr: float, rho: float) -> np.ndarray:
    """One SAM step with a plain gradient-descent base, by ``sampy.optim.SAM``."""
    opt = SAM(SGD(lr=lr), rho=rho)
    w = np.asarray(w, dtype=float)
    return opt.step(w, opt.init(w), Oracle.from_gradient(grad))[0]


def _unit(g: np.ndarray) -> np.ndarray:
    return g / (np.linalg.norm(g) + 1e-12)


MISTAKES = (
    Mistake(
        "ε = ρ g, not ρ g/‖g‖: normalise the gradient, so that the perturbation has length ρ "
        "whatever the gradient's size",
        lambda grad, w, lr, rho: w - lr * grad(w + rho * grad(w)),
    ),
    Mistake(
        "the perturbation goes downhill (w − ε): SAM looks for the worst point of the ball, "
        "uphill, w + ρ g/‖g‖",
        lambda grad, w, lr, rho: w - lr * grad(w - rho * _unit(grad(w))),
    ),
    Mistake(
        "the step starts from the perturbed point (w + ε − lr g̃): go back to w first; the "
        "perturbation only decides where the gradient is taken",
        lambda grad, w, lr, rho: w + rho * _unit(grad(w)) - lr * grad(w + rho * _unit(grad(w))),
    ),
    Mistake(
        "the descent uses the clean gradient ∇L(w): the whole point is the gradient at w + ε",
        lambda grad, w, lr, rho: w - lr * grad(w),
    ),
)


def _quadratic(scales: np.ndarray) -> Grad:
    return lambda w: scales * w


def _cubic(w: np.ndarray) -> np.ndarray:
    return np.array([3 * w[0] ** 2 + w[1], w[0] - 2 * w[1]])


CASES = (
    Case("steep quadratic", (_quadratic(np.array([10.0, 1.0])), np.array([1.0, 2.0]), 0.05, 0.1)),
    Case("gentle quadratic", (_quadratic(np.array([0.5, 0.2])), np.array([-3.0, 1.0]), 0.5, 0.3)),
    Case("non-quadratic", (_cubic, np.array([0.7, -0.4]), 0.1, 0.05)),
)


def check_sam_step(sam_step: Callable[[Grad, np.ndarray, float, float], np.ndarray]) -> Feedback:
    """Check ``sam_step(grad, w, lr, rho) -> w_next`` against ``sampy.optim.SAM``."""
    return compare_with_reference("sam_step", sam_step, _reference_sam_step, CASES, MISTAKES)
