"""USAM: un-normalised SAM.

Used by M. Andriushchenko, N. Flammarion, "Towards Understanding Sharpness-Aware
Minimization", ICML 2022, arXiv:2206.06232 (their ``sam_no_grad_norm``). Two gradient
evaluations per step:

1. ``g = ∇L(w)``;  ``ε = ρ g``   (no division by ‖g‖: ρ carries the gradient's units)
2. ``g̃ = ∇L(w + ε)``;  ``w ← base.update(w, g̃)``

On ``½ wᵀAw``: ``g̃ = (I + ρA) A w``. Reduces to the base optimizer when ρ = 0.
"""

from __future__ import annotations

import numpy as np

from sampy.optim.ascents import UnnormalizedAscent
from sampy.optim.base import BaseOptimizer
from sampy.optim.hyper import Hyper, validate
from sampy.optim.sharpness_aware import PerturbedGradient, SharpnessAware


class USAM(SharpnessAware):
    """Un-normalised SAM around a base optimizer (``ε = ρ g``)."""

    HYPERPARAMETERS = (
        Hyper("rho", 0.05, "step ρ of the ascent ε = ρ g", 0.0, None, per_point=True),
    )

    def __init__(self, base: BaseOptimizer, rho: float | np.ndarray = 0.05) -> None:
        validate(self.HYPERPARAMETERS, locals())
        super().__init__(base, UnnormalizedAscent(rho), PerturbedGradient())
        self.rho = rho
