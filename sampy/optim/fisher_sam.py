"""Fisher SAM: the SAM ball measured in the Fisher information metric.

M. Kim, D. Li, S. X. Hu, T. Hospedales, "Fisher SAM: Information Geometry and Sharpness Aware
Minimisation", ICML 2022, arXiv:2206.04920. Two gradient evaluations per step:

1. ``g = ∇L(w)``;  ``F = diag(1 + κ g²)`` (diagonal Fisher proxy from the squared gradient)
2. ``ε = ρ F⁻¹g / (√(gᵀF⁻¹g) + eps)`` — the maximiser of ``εᵀg`` over ``εᵀFε ≤ ρ²``
3. ``g̃ = ∇L(w + ε)``;  ``w ← base.update(w, g̃)``

κ = ``fisher_eta`` (Kim et al. call it η). Reduces to: SAM when κ = 0; the base optimizer when
ρ = 0. The proxy's exact constants are not checked against the paper's code.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sampy.optim.base import BaseOptimizer, per_point
from sampy.optim.hyper import Hyper, validate
from sampy.optim.perturbation import per_point_dot
from sampy.optim.sam import PERTURB_EPS, RHO
from sampy.optim.sharpness_aware import PerturbedGradient, SharpnessAware


class FisherAscent:
    """Fisher-SAM: the worst case in the ellipsoid ``εᵀ F ε ≤ ρ²``, ``F = diag(1 + κ g²)``.

    M. Kim, D. Li, S. X. Hu, T. Hospedales, "Fisher SAM: Information Geometry and Sharpness
    Aware Minimisation", ICML 2022. ``ε = ρ F⁻¹g / (√(gᵀF⁻¹g) + eps)``; κ = 0 gives SAM. The
    diagonal Fisher proxy ``1 + κ g²`` is not checked against the paper's code.
    """

    def __init__(self, rho: Any, fisher_eta: float, eps: float) -> None:
        self.rho = per_point(rho)
        self.fisher_eta = fisher_eta
        self.eps = eps

    def init(self, x: np.ndarray) -> None:
        """Stateless."""
        return None

    def __call__(self, x: np.ndarray, g: np.ndarray, state: None) -> tuple[np.ndarray, None]:
        """``(ε, None)``."""
        precond = g / (1.0 + self.fisher_eta * g * g)
        length = np.sqrt(per_point_dot(g, precond))
        return precond * (self.rho / (length + self.eps)), None


class FisherSAM(SharpnessAware):
    """Fisher SAM around a base optimizer. Two gradient evaluations per step."""

    HYPERPARAMETERS = (
        RHO,
        Hyper("fisher_eta", 1.0, "Fisher scale κ in the proxy 1 + κ g² (0 = SAM)", 0.0, None),
        PERTURB_EPS,
    )

    def __init__(
        self,
        base: BaseOptimizer,
        rho: float | np.ndarray = 0.05,
        fisher_eta: float = 1.0,
        perturb_eps: float = 1e-12,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        super().__init__(base, FisherAscent(rho, fisher_eta, perturb_eps), PerturbedGradient())
