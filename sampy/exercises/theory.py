"""Exercises: Danskin's gradient, SAM's multipliers on a quadratic and its edge of stability
(chapter "What SAM provably does").

``penalised_worst_case_gradient(H, w, rho) -> grad``: the gradient in ``w`` of the penalised
worst case ``φ(w) = max_ε L(w + ε) − ‖ε‖²/(2ρ)`` of ``L(w) = ½ wᵀHw`` (strongly concave in ε
when ``ρ λ_max(H) < 1``). By Danskin's theorem it is ``∇L(w + ε*) = H (I − ρH)⁻¹ w``, with no
Jacobian term (J. M. Danskin, "The Theory of Max-Min, with Applications", SIAM J. Appl. Math.,
1966). Typical mistakes: USAM's first-order ``H(I + ρH) w``, the derivative of ``L(w + ε*(w))``
without the penalty (which brings a Jacobian term in), the perturbation taken downhill, and the
maximiser ε* returned instead of the gradient.

``sam_quadratic_multipliers(eigenvalues, g_norm, lr, rho) -> m``: SAM with a gradient-descent
base on ``½ wᵀHw`` multiplies the coordinate along the eigenvector of ``λ_i`` by
``m_i = 1 − η λ_i (1 + ρ λ_i/‖g‖)`` per step. The reference takes one ``sampy.optim.SAM`` step
on ``diag(λ)`` from a point whose gradient has norm ``g_norm``. Typical mistakes: USAM's
``1 − ηλ(1 + ρλ)``, one λ too few (``1 − ηλ(1 + ρ/‖g‖)``), the perturbation downhill, ``‖g‖²``
for ``‖g‖``.

``sam_edge(g_norm, lr, rho) -> λ``: the largest curvature whose multiplier stays above −1,
``(‖g‖/2ρ)(√(1 + 8ρ/(η‖g‖)) − 1)`` (P. M. Long, P. L. Bartlett, "Sharpness-Aware Minimization
and the Edge of Stability", JMLR 2024). Typical mistakes: gradient descent's ``2/η``, USAM's
edge ``(√(1 + 8ρ/η) − 1)/(2ρ)``, the multiplier 0 instead of −1, the "− 1" forgotten.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sampy.exercises.feedback import Case, Feedback, Mistake, compare_with_reference
from sampy.functions import get as get_function
from sampy.optim import SAM, SGD, Oracle

Matrix = np.ndarray
Vector = np.ndarray


# -- Danskin: the penalised worst case of a quadratic -------------------------------------------


def _reference_penalised_worst_case_gradient(H: Matrix, w: Vector, rho: float) -> Vector:
    """``∇_w max_ε [½(w+ε)ᵀH(w+ε) − ‖ε‖²/(2ρ)] = H (I − ρH)⁻¹ w`` (Danskin's theorem)."""
    H, w = np.asarray(H, dtype=float), np.asarray(w, dtype=float)
    return H @ np.linalg.solve(np.eye(len(w)) - rho * H, w)


def _inv(H: Matrix, rho: float, sign: float = -1.0) -> Matrix:
    return np.linalg.inv(np.eye(len(H)) + sign * rho * H)


PENALISED_MISTAKES = (
    Mistake(
        "H(I + ρH) w is USAM's first-order answer (ε = ρg): solve the penalised problem "
        "exactly, H(w + ε) = ε/ρ gives ε* = ρ(I − ρH)⁻¹Hw",
        lambda H, w, rho: H @ (w + rho * H @ w),
    ),
    Mistake(
        "you differentiated L(w + ε*(w)) and kept its Jacobian term, but forgot the penalty "
        "−‖ε‖²/(2ρ): φ's gradient is ∇L(w + ε*) alone (Danskin), H(I − ρH)⁻¹w",
        lambda H, w, rho: H @ _inv(H, rho) @ _inv(H, rho) @ w,
    ),
    Mistake(
        "the perturbation went downhill (ε = −ρ(I + ρH)⁻¹Hw): the worst point is uphill, "
        "H(w + ε) = ε/ρ, which gives (I − ρH)⁻¹, not (I + ρH)⁻¹",
        lambda H, w, rho: H @ _inv(H, rho, +1.0) @ w,
    ),
    Mistake(
        "this is the maximiser ε* = ρ(I − ρH)⁻¹Hw; the question asks for the gradient "
        "∇L(w + ε*) = H(w + ε*)",
        lambda H, w, rho: rho * _inv(H, rho) @ H @ w,
    ),
)


def _spd(seed: int, d: int, top: float) -> Matrix:
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    lam = np.linspace(0.3, top, d)
    return Q @ np.diag(lam) @ Q.T


PENALISED_CASES = (
    Case("diagonal", (np.diag([1.0, 3.0]), np.array([0.5, -1.0]), 0.2)),
    Case("rotated 3-D", (_spd(0, 3, 4.0), np.array([1.0, 0.2, -0.7]), 0.15)),
    Case("close to the limit ρλ_max = 1", (_spd(1, 4, 2.0), np.array([0.3, -0.4, 1.0, 2.0]), 0.45)),
)


def check_penalised_worst_case_gradient(
    penalised_worst_case_gradient: Callable[[Matrix, Vector, float], Vector],
) -> Feedback:
    """Check ``penalised_worst_case_gradient(H, w, rho) -> H (I − ρH)⁻¹ w``."""
    return compare_with_reference(
        "penalised_worst_case_gradient",
        penalised_worst_case_gradient,
        _reference_penalised_worst_case_gradient,
        PENALISED_CASES,
        PENALISED_MISTAKES,
    )


# -- SAM on a quadratic: the multipliers per eigen-direction ------------------------------------


def _reference_sam_quadratic_multipliers(
    eigenvalues: Vector, g_norm: float, lr: float, rho: float
) -> Vector:
    """The factor by which one ``sampy.optim.SAM`` step (SGD base) multiplies each coordinate of
    ``½ wᵀ diag(λ) w``, at a point whose gradient has norm ``g_norm``."""
    lam = np.asarray(eigenvalues, dtype=float)
    w = g_norm / (lam * np.sqrt(lam.size))  # every coordinate non-zero, ‖diag(λ) w‖ = g_norm
    opt = SAM(SGD(lr=lr), rho=rho, perturb_eps=0.0)
    oracle = Oracle(get_function("quadratic", A=np.diag(lam)))
    stepped = opt.step(w, opt.init(w), oracle)[0]
    return stepped / w


MULTIPLIER_MISTAKES = (
    Mistake(
        "1 − ηλ(1 + ρλ) is USAM's multiplier (ε = ρg); SAM normalises, ε = ρg/‖g‖, "
        "so the perturbation term is ρλ/‖g‖",
        lambda lam, g_norm, lr, rho: 1 - lr * np.asarray(lam) * (1 + rho * np.asarray(lam)),
    ),
    Mistake(
        "one λ too few: ∇L(w + ε) = Hw + ρH g/‖g‖, and along v_i, Hg = λ_i² z_i, so the "
        "multiplier is 1 − ηλ(1 + ρλ/‖g‖)",
        lambda lam, g_norm, lr, rho: 1 - lr * np.asarray(lam) * (1 + rho / g_norm),
    ),
    Mistake(
        "the perturbation went downhill (ε = −ρg/‖g‖); SAM's goes uphill, ε = +ρg/‖g‖, "
        "which adds ρλ/‖g‖ to the curvature",
        lambda lam, g_norm, lr, rho: (
            1 - lr * np.asarray(lam) * (1 - rho * np.asarray(lam) / g_norm)
        ),
    ),
    Mistake(
        "‖g‖² in place of ‖g‖: SAM divides the gradient by its norm once",
        lambda lam, g_norm, lr, rho: (
            1 - lr * np.asarray(lam) * (1 + rho * np.asarray(lam) / g_norm**2)
        ),
    ),
)

MULTIPLIER_CASES = (
    Case("three directions", (np.array([10.0, 4.0, 1.0]), 0.5, 0.15, 0.05)),
    Case("large gradient", (np.array([6.0, 3.0, 0.5]), 3.0, 0.2, 0.1)),
    Case("near the minimum", (np.array([2.0, 0.3]), 0.02, 0.1, 0.2)),
)


def check_sam_quadratic_multipliers(
    sam_quadratic_multipliers: Callable[[Vector, float, float, float], Vector],
) -> Feedback:
    """Check ``sam_quadratic_multipliers(eigenvalues, g_norm, lr, rho)`` against one
    ``sampy.optim.SAM`` step on a diagonal quadratic."""
    return compare_with_reference(
        "sam_quadratic_multipliers",
        sam_quadratic_multipliers,
        _reference_sam_quadratic_multipliers,
        MULTIPLIER_CASES,
        MULTIPLIER_MISTAKES,
    )


# -- the SAM edge of stability ---------------------------------------------------------------


def _reference_sam_edge(g_norm: float, lr: float, rho: float) -> float:
    """The positive root λ of ``ηλ(1 + ρλ/‖g‖) = 2``: ``(‖g‖/2ρ)(√(1 + 8ρ/(η‖g‖)) − 1)``."""
    return g_norm / (2 * rho) * (np.sqrt(1 + 8 * rho / (lr * g_norm)) - 1)


EDGE_MISTAKES = (
    Mistake(
        "2/η is gradient descent's edge; SAM's effective curvature λ(1 + ρλ/‖g‖) is larger, "
        "so its edge is lower and depends on ‖g‖",
        lambda g_norm, lr, rho: 2 / lr,
    ),
    Mistake(
        "(√(1 + 8ρ/η) − 1)/(2ρ) is USAM's edge (ηλ(1 + ρλ) = 2); SAM's perturbation is "
        "normalised, which puts ‖g‖ in the formula",
        lambda g_norm, lr, rho: (np.sqrt(1 + 8 * rho / lr) - 1) / (2 * rho),
    ),
    Mistake(
        "you solved ηλ(1 + ρλ/‖g‖) = 1 (the multiplier 0, the fastest step); stability ends "
        "where the multiplier reaches −1, ηλ(1 + ρλ/‖g‖) = 2",
        lambda g_norm, lr, rho: g_norm / (2 * rho) * (np.sqrt(1 + 4 * rho / (lr * g_norm)) - 1),
    ),
    Mistake(
        "the '− 1' of the quadratic formula is missing: λ = (‖g‖/2ρ)(√(1 + 8ρ/(η‖g‖)) − 1)",
        lambda g_norm, lr, rho: g_norm / (2 * rho) * np.sqrt(1 + 8 * rho / (lr * g_norm)),
    ),
)

EDGE_CASES = (
    Case("typical", (1.5, 0.1, 0.05)),
    Case("small gradient", (0.01, 0.05, 0.1)),
    Case("large radius", (3.0, 0.2, 1.0)),
)


def check_sam_edge(sam_edge: Callable[[float, float, float], float]) -> Feedback:
    """Check ``sam_edge(g_norm, lr, rho)``, the largest curvature SAM's step keeps stable."""
    return compare_with_reference(
        "sam_edge", sam_edge, _reference_sam_edge, EDGE_CASES, EDGE_MISTAKES
    )
