"""Helpers for the chapter "Fixing SAM's direction" (book/direction.md).

Exact (eps-free) forms of the quantities the chapter derives, checked against the optimizers
in ``sampy.optim`` by ``tests/test_direction_chapter.py``:

- ``gsam_split(g, g_adv)``: the parts of ``g`` parallel and orthogonal to ``g̃`` (GSAM,
  Zhuang et al., ICLR 2022), and ``gsam_direction(g, g_adv, alpha)`` = ``g̃ − α g_⊥``;
- ``gsam_direction_min_f(g, g_adv, alpha)``: big_vision's other mode, ``g + α g̃_⊥``;
- ``first_order_gap(f, x, rho)``: the surrogate gap ``f(w + ρ g/‖g‖) − f(w)`` GSAM works with;
- ``friendly_directions(grads, sigma, lmbda, order)``: F-SAM's ascent directions ``d_t`` for a
  sequence of gradients, in the official code's order, the paper's, and the modified-EMA order
  (which averages the modified direction instead of the raw gradient);
- ``ema_noise_factor(theta, t)``: the variance of VaSSO's EMA of i.i.d. noise, relative to one
  gradient's, ``θ (1 − (1 − θ)^{2t}) / (2 − θ)`` (Li & Giannakis, NeurIPS 2023).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

FRIENDLY_ORDERS = ("official_code", "paper", "modified_ema")


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=-1, keepdims=True)


def gsam_split(g: np.ndarray, g_adv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(g_∥, g_⊥)``: ``g`` split along and across ``g̃`` (per point, last axis)."""
    g, g_adv = np.asarray(g, dtype=float), np.asarray(g_adv, dtype=float)
    parallel = _dot(g, g_adv) / _dot(g_adv, g_adv) * g_adv
    return parallel, g - parallel


def gsam_direction(g: np.ndarray, g_adv: np.ndarray, alpha: float) -> np.ndarray:
    """GSAM's descent direction ``d = g̃ − α g_⊥`` without the eps guards."""
    return np.asarray(g_adv, dtype=float) - alpha * gsam_split(g, g_adv)[1]


def gsam_direction_min_f(g: np.ndarray, g_adv: np.ndarray, alpha: float) -> np.ndarray:
    """big_vision's ``minimize_fp=False``: ``d' = g + α g̃_⊥``, ``g̃_⊥`` the part of g̃ across g."""
    g, g_adv = np.asarray(g, dtype=float), np.asarray(g_adv, dtype=float)
    return g + alpha * gsam_split(g_adv, g)[1]


def first_order_gap(f, x: np.ndarray, rho: float) -> np.ndarray:
    """``f(w + ρ g/‖g‖) − f(w)``: the surrogate gap with SAM's first-order worst case."""
    x = np.asarray(x, dtype=float)
    g = f.grad(x)
    e = rho * g / np.sqrt(_dot(g, g))
    return np.asarray(f(x + e) - f(x), dtype=float)


def friendly_directions(
    grads: Sequence[np.ndarray], sigma: float, lmbda: float, order: str = "official_code"
) -> np.ndarray:
    """F-SAM's (un-normalised) ascent directions ``d_1, …, d_T`` for gradients ``g_1, …, g_T``.

    ``official_code``: ``m_1 = g_1, d_1 = g_1``; then ``d_t = g_t − σ m_{t−1}``,
    ``m_t = λ m_{t−1} + (1 − λ) g_t``. ``paper``: ``m_t = λ m_{t−1} + (1 − λ) g_t`` (``m_0 = 0``)
    first, then ``d_t = g_t − σ m_t``. ``modified_ema`` (a rule once attributed to
    pytorch-optimizer; its 4.1.0 does not do it): as the official code but
    ``m_t = λ m_{t−1} + (1 − λ) d_t`` (the EMA of the modified direction).
    """
    if order not in FRIENDLY_ORDERS:
        raise ValueError(f"order must be one of {FRIENDLY_ORDERS}, got {order!r}")
    m = None
    out = []
    for g in grads:
        g = np.asarray(g, dtype=float)
        if order == "paper":
            m = (1 - lmbda) * g if m is None else lmbda * m + (1 - lmbda) * g
            d = g - sigma * m
        elif m is None:
            d, m = g, g.copy()
        else:
            d = g - sigma * m
            m = lmbda * m + (1 - lmbda) * (g if order == "official_code" else d)
        out.append(d)
    return np.stack(out)


def ema_noise_factor(theta: float, t: int | np.ndarray) -> np.ndarray:
    """Variance of ``d_t = (1 − θ) d_{t−1} + θ ξ_t`` (``d_0 = 0``, unit-variance i.i.d. ξ)."""
    t = np.asarray(t, dtype=float)
    return theta * (1.0 - (1.0 - theta) ** (2 * t)) / (2.0 - theta)


__all__ = [
    "FRIENDLY_ORDERS",
    "ema_noise_factor",
    "first_order_gap",
    "friendly_directions",
    "gsam_direction",
    "gsam_direction_min_f",
    "gsam_split",
]
