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

import numpy as np

from sampy.optim.ascents import FriendlyAscent
from sampy.optim.base import BaseOptimizer
from sampy.optim.hyper import Hyper, validate
from sampy.optim.sam import PERTURB_EPS, RHO
from sampy.optim.sharpness_aware import PerturbedGradient, SharpnessAware


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
