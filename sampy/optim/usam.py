"""USAM: un-normalised SAM.

Used by M. Andriushchenko, N. Flammarion, "Towards Understanding Sharpness-Aware
Minimization", ICML 2022, arXiv:2206.06232 (their ``sam_no_grad_norm``). Two gradient
evaluations per step:

1. ``g = ∇L(w)``;  ``ε = ρ g``   (no division by ‖g‖: ρ carries the gradient's units)
2. ``g̃ = ∇L(w + ε)``;  ``w ← base.update(w, g̃)``

On ``½ wᵀAw``: ``g̃ = (I + ρA) A w``. Reduces to the base optimizer when ρ = 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sampy.optim.base import BaseOptimizer, per_point
from sampy.optim.hyper import Hyper, validate
from sampy.optim.sharpness_aware import PerturbedGradient, SharpnessAware


class UnnormalizedAscent:
    """USAM: ``ε = ρ g`` — no normalisation, so ρ carries the gradient's units.

    Used in theory (Andriushchenko & Flammarion, ICML 2022, whose code calls it
    ``sam_no_grad_norm``).
    """

    def __init__(self, rho: Any) -> None:
        self.rho = per_point(rho)

    def init(self, x: np.ndarray) -> None:
        """Stateless."""
        return None

    def __call__(self, x: np.ndarray, g: np.ndarray, state: None) -> tuple[np.ndarray, None]:
        """``(ρ g, None)``."""
        return self.rho * g, None


class USAM(SharpnessAware):
    """Un-normalised SAM around a base optimizer (``ε = ρ g``)."""

    HYPERPARAMETERS = (
        Hyper("rho", 0.05, "step ρ of the ascent ε = ρ g", 0.0, None, per_point=True),
    )

    def __init__(self, base: BaseOptimizer, rho: float | np.ndarray = 0.05) -> None:
        validate(self.HYPERPARAMETERS, locals())
        super().__init__(base, UnnormalizedAscent(rho), PerturbedGradient())
        self.rho = rho
