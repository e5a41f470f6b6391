"""F-SAM: Friendly Sharpness-Aware Minimization.

T. Li, P. Zhou, Z. He, X. Cheng, X. Huang, "Friendly Sharpness-Aware Minimization",
CVPR 2024, arXiv:2403.12350. The full-gradient component of SAM's perturbation hurts; remove
an EMA estimate ``m`` of it. Two gradient evaluations per step (in the order of the official
code, nblt/F-SAM @ 2e2f9899, ``utils.py``):

1. ``g = ∇L(w)``
2. first step: ``m ← g``, ``d = g``; later: ``d = g − σ m_{t−1}``, ``m ← λ m + (1 − λ) g``
3. ``ε = ρ d/(‖d‖ + eps)``;  ``g̃ = ∇L(w + ε)``;  ``w ← base.update(w, g̃)``

``momentum_order="paper"`` updates m first and uses ``d = g − σ m_t``. pytorch-optimizer's
FriendlySAM differs: it averages the modified ``d`` instead of g.
Reduces to: SAM when σ = 0; the base optimizer when ρ = 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sampy.optim.base import BaseOptimizer, per_point
from sampy.optim.hyper import Hyper, validate
from sampy.optim.perturbation import unit
from sampy.optim.sam import PERTURB_EPS, RHO
from sampy.optim.sharpness_aware import PerturbedGradient, SharpnessAware


class FriendlyAscent:
    """F-SAM: perturb along ``g − σ m``, removing an EMA ``m`` of past gradients.

    Official code order (``momentum_order="official_code"``, nblt/F-SAM ``utils.py``): on the first
    step ``m ← g`` and ``d = g``; afterwards ``d = g − σ m_{t−1}`` and then ``m ← λ m + (1 − λ) g``
    (an EMA of the *raw* gradient). The paper's order (``"paper"``) updates ``m`` first and uses
    ``d = g − σ m_t``. ``ε = ρ d/(‖d‖ + eps)``.
    """

    def __init__(self, rho: Any, sigma: float, lmbda: float, momentum_order: str, eps: float):
        self.rho = per_point(rho)
        self.sigma = sigma
        self.lmbda = lmbda
        self.momentum_order = momentum_order
        self.eps = eps

    def init(self, x: np.ndarray) -> None:
        """No EMA before the first step."""
        return None

    def __call__(
        self, x: np.ndarray, g: np.ndarray, m: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(ε, new EMA)``."""
        if m is None:
            m_new = g.copy() if self.momentum_order == "official_code" else (1 - self.lmbda) * g
            d = g if self.momentum_order == "official_code" else g - self.sigma * m_new
        elif self.momentum_order == "official_code":
            d = g - self.sigma * m
            m_new = self.lmbda * m + (1.0 - self.lmbda) * g
        else:
            m_new = self.lmbda * m + (1.0 - self.lmbda) * g
            d = g - self.sigma * m_new
        return unit(d, self.rho, self.eps), m_new


class FriendlySAM(SharpnessAware):
    """F-SAM around a base optimizer. Two gradient evaluations per step."""

    HYPERPARAMETERS = (
        RHO,
        Hyper("sigma", 1.0, "weight σ of the removed EMA component", 0.0, None),
        Hyper("lmbda", 0.9, "EMA rate λ of the full-gradient estimate", 0.0, 1.0),
        Hyper(
            "momentum_order",
            "official_code",
            "EMA update after (official code) or before (paper) forming d",
            kind="choice",
            choices=("official_code", "paper"),
        ),
        PERTURB_EPS,
    )

    def __init__(
        self,
        base: BaseOptimizer,
        rho: float | np.ndarray = 0.05,
        sigma: float = 1.0,
        lmbda: float = 0.9,
        momentum_order: str = "official_code",
        perturb_eps: float = 1e-12,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        ascent = FriendlyAscent(rho, sigma, lmbda, momentum_order, perturb_eps)
        super().__init__(base, ascent, PerturbedGradient())
