"""Exercises of the chapter "Adaptive and geometric variants": ASAM's ε, the p-norm ε and
Fisher SAM's ε.

``check_asam_perturbation(student)``: write ``asam_perturbation(w, g, rho, eta) -> ε``, ASAM's
first-order worst case in the adaptive ball ``‖T⁻¹ε‖₂ ≤ ρ`` with ``T = diag(|w| + ξ)`` (the
offset ξ, Kwon et al.'s η, is the argument ``eta``):

    ε = ρ T² g / ‖T g‖

(J. Kwon, J. Kim, H. Park, I. K. Choi, "ASAM: Adaptive Sharpness-Aware Minimization for
Scale-Invariant Learning of Deep Neural Networks", ICML 2021.) The checker names four typical
mistakes: ``T`` instead of ``T²``, the norm of ``g`` instead of ``T g``, no ξ, and ``w`` instead
of ``|w|``.

``check_dual_direction(student)``: write ``dual_direction(g, p, rho) -> ε`` for ``1 < p < ∞``,
the maximiser of ``εᵀg`` over ``‖ε‖_p ≤ ρ`` (Hölder, with ``1/p + 1/q = 1``):

    ε = ρ sign(g) |g|^{q−1} / ‖g‖_q^{q−1}

The checker names: ``p`` used where the dual exponent ``q`` belongs, the sign forgotten, SAM's
direction ``g`` rescaled onto the p-sphere, and ``‖g‖_q`` without the power ``q − 1``.

``check_fisher_perturbation(student)``: write ``fisher_perturbation(g, rho, kappa) -> ε``, the
maximiser of ``εᵀg`` over the ellipsoid ``εᵀFε ≤ ρ²`` with the diagonal ``F = diag(1 + κ g²)``
(M. Kim, D. Li, S. X. Hu, T. Hospedales, "Fisher SAM: Information Geometry and Sharpness Aware
Minimisation", ICML 2022; κ is ``sampy.optim.FisherSAM``'s ``fisher_eta``):

    ε = ρ F⁻¹g / √(gᵀF⁻¹g)

The checker names: ``F`` where ``F⁻¹`` belongs, the Euclidean norm ``‖F⁻¹g‖`` in place of
``√(gᵀF⁻¹g)`` (a point on the sphere, not on the ellipsoid), the square root forgotten, the
change of variables not undone (``F^{-1/2}`` once), and ``1 + κ|g|`` instead of ``1 + κg²``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sampy.exercises.feedback import Case, Feedback, Mistake, compare_with_reference
from sampy.optim import (
    SGD,
    FisherSAM,
    dual_direction,
    dual_norm_exponent,
    lp_norm,
    norm_ball_perturbation,
)

# -- ASAM's perturbation ----------------------------------------------------------------------


def _reference_asam_perturbation(
    w: np.ndarray, g: np.ndarray, rho: float, eta: float
) -> np.ndarray:
    """ASAM's ε (p = 2), by ``sampy.optim.norm_ball_perturbation(..., adaptive=True)``."""
    w, g = np.asarray(w, dtype=float), np.asarray(g, dtype=float)
    return norm_ball_perturbation(w, g, rho, p=2.0, adaptive=True, eta=eta)


def _asam_with(t: np.ndarray, g: np.ndarray, rho: float, power: int, norm_of: str) -> np.ndarray:
    u = t * g if norm_of == "Tg" else g
    return rho * t**power * g / np.linalg.norm(u)


ASAM_MISTAKES = (
    Mistake(
        "ε = ρ T g/‖T g‖ has T once: the solution in the adaptive ball is T times the "
        "Euclidean solution for u = T g, so ε = ρ T (T g)/‖T g‖ = ρ T² g/‖T g‖",
        lambda w, g, rho, eta: _asam_with(np.abs(w) + eta, g, rho, 1, "Tg"),
    ),
    Mistake(
        "normalised by ‖g‖: the constraint is ‖T⁻¹ε‖ = ρ, which needs the norm of T g, "
        "ε = ρ T² g/‖T g‖",
        lambda w, g, rho, eta: _asam_with(np.abs(w) + eta, g, rho, 2, "g"),
    ),
    Mistake(
        "ξ is missing: T = |w| + ξ (with T = |w| a weight that is exactly 0 is never perturbed)",
        lambda w, g, rho, eta: _asam_with(np.abs(w), g, rho, 2, "Tg"),
    ),
    Mistake(
        "T = w + ξ uses the signed weight: the operator is T = diag(|w| + ξ), with |w|",
        lambda w, g, rho, eta: _asam_with(w + eta, g, rho, 2, "Tg"),
    ),
)

ASAM_CASES = (
    Case(
        "mixed signs",
        (np.array([0.8, -1.5, 0.3, -0.05]), np.array([0.4, 0.2, -1.0, 0.7]), 0.5, 0.01),
    ),
    Case(
        "a zero weight",
        (np.array([0.0, 2.0, -0.7]), np.array([1.0, -0.5, 0.25]), 1.0, 0.1),
    ),
    Case(
        "layer-like scales",
        (np.array([3.0, -2.0, 0.1, -0.2, 0.5]), np.array([-0.1, 0.3, 2.0, 1.0, -0.6]), 2.0, 0.05),
    ),
)


def check_asam_perturbation(
    asam_perturbation: Callable[[np.ndarray, np.ndarray, float, float], np.ndarray],
) -> Feedback:
    """Check ``asam_perturbation(w, g, rho, eta) -> ε`` against ``sampy``'s ASAM (p = 2)."""
    return compare_with_reference(
        "asam_perturbation",
        asam_perturbation,
        _reference_asam_perturbation,
        ASAM_CASES,
        ASAM_MISTAKES,
    )


# -- the p-norm perturbation ------------------------------------------------------------------


def _reference_dual_direction(g: np.ndarray, p: float, rho: float) -> np.ndarray:
    """The maximiser of ``εᵀg`` over ``‖ε‖_p ≤ ρ``, by ``sampy.optim.dual_direction``."""
    return dual_direction(np.asarray(g, dtype=float), float(p), rho, eps=0.0)


def _holder(g: np.ndarray, exponent: float, rho: float, signed: bool = True) -> np.ndarray:
    direction = np.sign(g) if signed else 1.0
    return rho * direction * np.abs(g) ** (exponent - 1) / lp_norm(g, exponent) ** (exponent - 1)


DUAL_MISTAKES = (
    Mistake(
        "the exponent is p where the dual exponent belongs: use q = p/(p − 1) (1/p + 1/q = 1), "
        "ε = ρ sign(g)|g|^(q−1)/‖g‖_q^(q−1)",
        lambda g, p, rho: _holder(g, p, rho),
    ),
    Mistake(
        "the sign is missing: |g|^(q−1) alone points uphill only where g > 0; multiply by sign(g)",
        lambda g, p, rho: _holder(g, dual_norm_exponent(p), rho, signed=False),
    ),
    Mistake(
        "ρ g/‖g‖_p lies on the p-sphere but is SAM's direction, not the maximiser: for p ≠ 2 "
        "the worst case tilts g entrywise, ε ∝ sign(g)|g|^(q−1)",
        lambda g, p, rho: rho * g / lp_norm(g, p),
    ),
    Mistake(
        "divided by ‖g‖_q instead of ‖g‖_q^(q−1): then ‖ε‖_p ≠ ρ (the power makes the "
        "length right)",
        lambda g, p, rho: (
            rho
            * np.sign(g)
            * np.abs(g) ** (dual_norm_exponent(p) - 1)
            / lp_norm(g, dual_norm_exponent(p))
        ),
    ),
)

DUAL_CASES = (
    Case("p = 3", (np.array([0.5, -2.0, 1.0]), 3.0, 0.2)),
    Case("p = 1.5", (np.array([-1.0, 0.25, 3.0, -0.5]), 1.5, 1.0)),
    Case("p = 4", (np.array([2.0, -0.3, -1.2]), 4.0, 0.5)),
)


def check_dual_direction(
    dual_direction: Callable[[np.ndarray, float, float], np.ndarray],
) -> Feedback:
    """Check ``dual_direction(g, p, rho) -> ε`` (``1 < p < ∞``) against ``sampy``."""
    return compare_with_reference(
        "dual_direction", dual_direction, _reference_dual_direction, DUAL_CASES, DUAL_MISTAKES
    )


# -- Fisher SAM's perturbation ----------------------------------------------------------------


def _reference_fisher_perturbation(g: np.ndarray, rho: float, kappa: float) -> np.ndarray:
    """Fisher SAM's ε for ``F = diag(1 + κ g²)``, by ``sampy.optim.FisherSAM``'s ascent rule."""
    g = np.asarray(g, dtype=float)
    opt = FisherSAM(SGD(lr=1.0), rho=rho, fisher_eta=kappa, perturb_eps=0.0)
    return opt.ascent(g, g, None)[0]


def _ellipsoid(g: np.ndarray, rho: float, f: np.ndarray, normalise: str) -> np.ndarray:
    g = np.asarray(g, dtype=float)
    u = g / f
    if normalise == "F":
        return rho * u / np.sqrt(g @ u)
    if normalise == "euclid":
        return rho * u / np.linalg.norm(u)
    return rho * u / (g @ u)


FISHER_MISTAKES = (
    Mistake(
        "you multiplied by F instead of dividing: the ellipsoid is short where F is large, so "
        "the worst case is ε = ρ F⁻¹g/√(gᵀF⁻¹g)",
        lambda g, rho, kappa: rho * (1 + kappa * g**2) * g / np.sqrt(g @ ((1 + kappa * g**2) * g)),
    ),
    Mistake(
        "normalised by the Euclidean ‖F⁻¹g‖: that point lies on the sphere ‖ε‖ = ρ, not on the "
        "ellipsoid εᵀFε = ρ²; divide by √(gᵀF⁻¹g)",
        lambda g, rho, kappa: _ellipsoid(g, rho, 1 + kappa * np.asarray(g) ** 2, "euclid"),
    ),
    Mistake(
        "the square root is missing: εᵀFε = ρ² needs ε = ρ F⁻¹g/√(gᵀF⁻¹g), not /(gᵀF⁻¹g)",
        lambda g, rho, kappa: _ellipsoid(g, rho, 1 + kappa * np.asarray(g) ** 2, "nosqrt"),
    ),
    Mistake(
        "you returned δ = ρ F^{-1/2}g/‖F^{-1/2}g‖, the solution in the substituted variable "
        "δ = F^{1/2}ε; map it back with ε = F^{-1/2}δ",
        lambda g, rho, kappa: _ellipsoid(g, rho, np.sqrt(1 + kappa * np.asarray(g) ** 2), "euclid"),
    ),
    Mistake(
        "F = diag(1 + κ|g|): the proxy uses the squared gradient, F = diag(1 + κ g²)",
        lambda g, rho, kappa: _ellipsoid(g, rho, 1 + kappa * np.abs(g), "F"),
    ),
)

FISHER_CASES = (
    Case("two coordinates, κ = 1", (np.array([3.0, 0.2]), 0.1, 1.0)),
    Case("mixed signs, κ = 10", (np.array([-0.5, 1.5, 0.05, -2.0]), 0.3, 10.0)),
    Case("small gradients, κ = 0.5", (np.array([0.2, -0.6, 0.9]), 1.0, 0.5)),
)


def check_fisher_perturbation(
    fisher_perturbation: Callable[[np.ndarray, float, float], np.ndarray],
) -> Feedback:
    """Check ``fisher_perturbation(g, rho, kappa) -> ε`` against ``sampy.optim.FisherSAM``."""
    return compare_with_reference(
        "fisher_perturbation",
        fisher_perturbation,
        _reference_fisher_perturbation,
        FISHER_CASES,
        FISHER_MISTAKES,
    )
