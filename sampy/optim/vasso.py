"""VaSSO: variance-suppressed sharpness-aware optimization.

B. Li, G. B. Giannakis, "Enhancing Sharpness-Aware Optimization Through Variance
Suppression", NeurIPS 2023, arXiv:2309.15639. The stochastic gradient is a noisy ascent
direction; perturb along an EMA of gradients instead. Two gradient evaluations per step:

1. ``g = ∇L(w)``;  ``d_t = (1 − θ) d_{t−1} + θ g``  (``d_0 = 0``)
2. ``ε = ρ d_t/(‖d_t‖ + eps)``;  ``g̃ = ∇L(w + ε)``;  ``w ← base.update(w, g̃)``

The "+" counterpart of F-SAM's ``g − σ m``. Reduces to: SAM when θ = 1; the base optimizer
when ρ = 0. The default θ = 0.4 is our choice.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sampy.optim.base import BaseOptimizer, per_point
from sampy.optim.hyper import Hyper, validate
from sampy.optim.perturbation import unit
from sampy.optim.sam import PERTURB_EPS, RHO
from sampy.optim.sharpness_aware import PerturbedGradient, SharpnessAware


class VarianceSuppressedAscent:
    """VaSSO: perturb along an EMA of gradients, ``d_t = (1 − θ) d_{t−1} + θ g_t``, ``d_0 = 0``.

    B. Li, G. B. Giannakis, "Enhancing Sharpness-Aware Optimization Through Variance
    Suppression", NeurIPS 2023. ``ε = ρ d_t/(‖d_t‖ + eps)``; θ = 1 gives SAM.
    """

    def __init__(self, rho: Any, theta: float, eps: float) -> None:
        self.rho = per_point(rho)
        self.theta = theta
        self.eps = eps

    def init(self, x: np.ndarray) -> np.ndarray:
        """``d_0 = 0``."""
        return np.zeros_like(x, dtype=float)

    def __call__(
        self, x: np.ndarray, g: np.ndarray, d: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(ε, d_t)``."""
        d = (1.0 - self.theta) * d + self.theta * g
        return unit(d, self.rho, self.eps), d


class VaSSO(SharpnessAware):
    """VaSSO around a base optimizer. Two gradient evaluations per step."""

    HYPERPARAMETERS = (
        RHO,
        Hyper("theta", 0.4, "EMA weight θ of the new gradient (1 = SAM)", 0.0, 1.0, low_open=True),
        PERTURB_EPS,
    )

    def __init__(
        self,
        base: BaseOptimizer,
        rho: float | np.ndarray = 0.05,
        theta: float = 0.4,
        perturb_eps: float = 1e-12,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        super().__init__(
            base, VarianceSuppressedAscent(rho, theta, perturb_eps), PerturbedGradient()
        )
