"""Ascent rules that change only where the second gradient is taken.

Each rule is a small object with ``init(x) -> state`` and ``(x, g, state) -> (ε, state)``; the
variant classes in ``sampy.optim.variants`` plug them into ``SharpnessAware`` with SAM's descent
rule ``d = g̃``. All norms are per point; ``eps`` guards every division by a norm.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sampy.optim.base import copy_rng, per_point
from sampy.optim.perturbation import dual_direction, per_point_dot


def _unit(v: np.ndarray, radius: Any, eps: float) -> np.ndarray:
    return dual_direction(v, 2.0, radius, eps)


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
        return _unit(d, self.rho, self.eps), m_new


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
        return _unit(d, self.rho, self.eps), d


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


class RandomAscent:
    """Random perturbation (average-case sharpness): ``ε ~ N(0, σ²I)`` or ``ε = ρ u/‖u‖``.

    ``kind="gaussian"`` draws ``ε = σ z``; ``kind="sphere"`` draws a uniform direction of
    length ρ. The generator lives in the state, so a run is reproducible from ``seed``.
    """

    def __init__(self, rho: Any, kind: str, seed: int) -> None:
        self.rho = per_point(rho)
        self.kind = kind
        self.seed = seed

    def init(self, x: np.ndarray) -> np.random.Generator:
        """A generator seeded with ``seed``."""
        return np.random.default_rng(self.seed)

    def __call__(
        self, x: np.ndarray, g: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.random.Generator]:
        """``(ε, rng)`` — drawn from a copy, so the given state is never changed."""
        rng = copy_rng(rng)
        z = rng.standard_normal(np.shape(x))
        if self.kind == "gaussian":
            return self.rho * z, rng
        return _unit(z, self.rho, 0.0), rng
