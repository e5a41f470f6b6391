"""Exercise: the largest Hessian eigenvalue from Hessian-vector products alone (chapter "The torch
twins in a training loop").

``largest_eigenvalue(hvp, d) -> λ_max``: ``hvp`` maps a vector of shape ``(d,)`` to ``Hv`` for a
symmetric ``H``. Power iteration ``v ← Hv/‖Hv‖`` converges to the eigenvalue of largest
*magnitude* ``μ``; when ``μ < 0`` a second power iteration on ``H − μI`` (eigenvalues
``λ_i − μ ≥ 0``, the largest ``λ_max − μ``) gives ``λ_max``. Typical mistakes: the dominant
eigenvalue returned as it is (a saddle or a maximum gives a negative ``μ``), its magnitude
``|μ|``, the shift not added back (``λ_max − μ``), and ``λ_min`` (power iteration on ``−H``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sampy.exercises.feedback import Case, Feedback, Mistake, compare_with_reference
from sampy.functions import get as get_function
from sampy.sharpness import hessian_vector_product

HessianVectorProduct = Callable[[np.ndarray], np.ndarray]


def _spectrum(hvp: HessianVectorProduct, d: int) -> np.ndarray:
    """The eigenvalues of ``H``, ascending, from its columns ``H e_i``."""
    H = np.stack([np.asarray(hvp(e), dtype=float) for e in np.eye(d)], axis=1)
    return np.linalg.eigvalsh((H + H.T) / 2)


def _reference_largest_eigenvalue(hvp: HessianVectorProduct, d: int) -> float:
    """``λ_max(H)``, exactly (the checker builds ``H`` from its ``d`` columns)."""
    return float(_spectrum(hvp, d)[-1])


def _dominant(hvp: HessianVectorProduct, d: int) -> float:
    spectrum = _spectrum(hvp, d)
    return float(spectrum[np.argmax(np.abs(spectrum))])


LARGEST_EIGENVALUE_MISTAKES = (
    Mistake(
        "this is the eigenvalue of largest magnitude, which power iteration finds: here it is "
        "negative, so shift (run power iteration again on H − μI) and add μ back",
        _dominant,
    ),
    Mistake(
        "this is |μ|, the magnitude of the dominant eigenvalue: λ_max can be smaller, and "
        "negative; shift by μ instead of dropping its sign",
        lambda hvp, d: abs(_dominant(hvp, d)),
    ),
    Mistake(
        "the shift was not added back: power iteration on H − μI returns λ_max − μ, so "
        "λ_max is that plus μ",
        lambda hvp, d: _reference_largest_eigenvalue(hvp, d) - _dominant(hvp, d),
    ),
    Mistake(
        "this is λ_min, the smallest eigenvalue: power iteration on −H finds it; λ_max comes "
        "from H − μI",
        lambda hvp, d: float(_spectrum(hvp, d)[0]),
    ),
)


def _rotated(eigenvalues: list[float], seed: int) -> HessianVectorProduct:
    """``v ↦ Q diag(λ) Qᵀ v`` for a seeded random rotation ``Q``."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((len(eigenvalues), len(eigenvalues))))
    H = Q @ np.diag(eigenvalues) @ Q.T
    return lambda v: H @ np.asarray(v, dtype=float)


def _himmelblau_saddle() -> HessianVectorProduct:
    return hessian_vector_product(get_function("himmelblau"), np.array([-0.128, -1.954]))


LARGEST_EIGENVALUE_CASES = (
    Case("a minimum (H positive definite)", (_rotated([4.0, 1.5, 0.2], seed=0), 3)),
    Case("a saddle whose negative curvature dominates", (_rotated([2.0, 0.5, -6.0], seed=1), 3)),
    Case("a maximum (every eigenvalue negative)", (_rotated([-1.0, -3.0, -7.0], seed=2), 3)),
    Case("Himmelblau's saddle near (-0.128, -1.954)", (_himmelblau_saddle(), 2)),
)


def check_largest_eigenvalue(
    largest_eigenvalue: Callable[[HessianVectorProduct, int], float],
) -> Feedback:
    """Check ``largest_eigenvalue(hvp, d) -> λ_max`` on a minimum, two saddles and a maximum.

    Power iteration converges to a tolerance, not exactly: answers within a relative 1e-6
    (absolute 1e-8) of the exact eigenvalue pass.
    """
    return compare_with_reference(
        "largest_eigenvalue",
        largest_eigenvalue,
        _reference_largest_eigenvalue,
        LARGEST_EIGENVALUE_CASES,
        LARGEST_EIGENVALUE_MISTAKES,
        atol=1e-8,
        rtol=1e-6,
    )
