"""Lemma 3.1 of Baek et al.: on the linear model, 1-SAM is SGD with per-example weights.

C. Baek, Z. Kolter, A. Raghunathan, "Why is SAM Robust to Label Noise?", ICLR 2024,
arXiv:2405.03676, Lemma 3.1. For ``f(w, x) = ⟨w, x⟩`` with the logistic
loss the 1-SAM perturbation of example i is ``ε_i = −t_i ρ x_i/‖x_i‖``: it does not depend on
``w`` and leaves the Jacobian ``x_i`` alone, and it lowers the margin by ``C_i = ρ‖x_i‖``. So

    ∇ℓ_i(w + ε_i) = ω_i ∇ℓ_i(w),    ω_i = σ(−z_i + C_i)/σ(−z_i) = (1 + e^{z_i})/(1 + e^{z_i − C_i})

with the margin ``z_i = t_i⟨w, x_i⟩``. For ``C > 0`` the factor is strictly increasing in ``z``
(``dω/dz = e^z (1 − e^{−C})/(1 + e^{z−C})² > 0``) and lies in ``(1, e^C)``: examples the model
already fits well — low loss, large margin — get the larger weight. Under label noise the
clean examples are the well-fit ones early in training, so 1-SAM up-weights them.
"""

from __future__ import annotations

import numpy as np

from sampy.optim.perturbation import dual_direction
from sampy.problems import LogisticRegression, SumOfExamples

__all__ = [
    "measured_one_sam_weights",
    "one_sam_weights",
    "reweighting_factor",
    "reweighting_factor_derivative",
]


def _softplus(u: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, u)


def _log_factor(z: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``log ω = softplus(z) − softplus(z − C)``, written so that neither branch cancels: for
    ``z > 0`` it is ``C + softplus(−z) − softplus(C − z)`` (as ``softplus(u) = u + softplus(−u)``).
    """
    small = _softplus(z) - _softplus(z - c)
    large = c + _softplus(-z) - _softplus(c - z)
    return np.where(z > 0, large, small)


def reweighting_factor(z: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``ω(z, C) = σ(−z + C)/σ(−z) = (1 + e^z)/(1 + e^{z − C})``, elementwise (broadcasting).

    Computed in log space (``exp(softplus(z) − softplus(z − C))``, without cancellation for
    large margins): no overflow and full relative precision for any ``z``.
    """
    z, c = np.broadcast_arrays(np.asarray(z, dtype=float), np.asarray(c, dtype=float))
    return np.exp(_log_factor(z, c))


def reweighting_factor_derivative(z: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``∂ω/∂z = e^z (1 − e^{−C}) / (1 + e^{z − C})²`` (positive exactly when ``C > 0``).

    Computed as ``exp(z − 2 softplus(z − C)) · (−expm1(−C))`` (for ``z > C`` the exponent is
    written ``2C − z − 2 softplus(C − z)``): finite and accurate for every ``z``.
    """
    z, c = np.broadcast_arrays(np.asarray(z, dtype=float), np.asarray(c, dtype=float))
    exponent = np.where(z > c, 2.0 * c - z - 2.0 * _softplus(c - z), z - 2.0 * _softplus(z - c))
    return np.exp(exponent) * -np.expm1(-c)


def _check_linear(problem: object) -> LogisticRegression:
    if not isinstance(problem, LogisticRegression):
        name = getattr(problem, "name", type(problem).__name__)
        raise ValueError(f"Lemma 3.1 is about the linear model (LogisticRegression), got {name!r}")
    if problem.l2 != 0:
        raise ValueError(
            f"Lemma 3.1 needs the plain logistic loss: l2 must be 0, got {problem.l2!r} (the ridge "
            "term's gradient is not scaled by the logit factor)"
        )
    return problem


def one_sam_weights(problem: LogisticRegression, w: np.ndarray, rho: float) -> np.ndarray:
    """The closed-form 1-SAM weights ``ω_i`` of every example at ``w``: ``(..., d) -> (..., n)``.

    ``z_i = t_i⟨w, x_i⟩`` and ``C_i = ρ‖x_i‖`` (Lemma 3.1; ``problem.l2`` must be 0).
    """
    problem = _check_linear(problem)
    z = problem.labels * (np.asarray(w, dtype=float) @ problem.features.T)
    c = rho * np.linalg.norm(problem.features, axis=-1)
    return reweighting_factor(z, c)


def measured_one_sam_weights(
    problem: SumOfExamples, w: np.ndarray, rho: float, perturb_eps: float = 0.0
) -> np.ndarray:
    """``‖∇ℓ_i(w + ε_i)‖ / ‖∇ℓ_i(w)‖`` per example, measured by doing 1-SAM's two passes.

    Exactly the computation of ``sampy.optim.MSharpnessSAM`` with ``m = 1``: per-example
    gradients at ``w``, ``ε_i = ρ g_i/(‖g_i‖ + eps)``, and each example's gradient at its own
    ``w + ε_i``. On the linear model it equals ``one_sam_weights`` (Lemma 3.1); on any other
    model it is the factor by which 1-SAM changes each example's gradient *norm* (the direction
    may change too). Shape ``(..., d) -> (..., n)``; a zero gradient gives NaN (0/0).
    """
    w = np.asarray(w, dtype=float)
    g = problem.per_example_grads(w)  # (..., n, d)
    singletons = [[i] for i in range(problem.n)]
    with np.errstate(invalid="ignore", divide="ignore"):  # 0/0 is reported as NaN
        e = dual_direction(g, 2.0, rho, perturb_eps)
        at_w = np.broadcast_to(w[..., None, :], g.shape)
        g_adv = problem.batch_grads(at_w + e, singletons)
        return np.linalg.norm(g_adv, axis=-1) / np.linalg.norm(g, axis=-1)
