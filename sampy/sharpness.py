"""Sharpness of a minimum: Hessian spectrum, trace and the worst-case loss in a ρ-ball.

Three ways to say how sharp a point ``x`` of a loss ``f`` is, as the book uses them:

- **curvature**: the largest Hessian eigenvalue ``λmax(∇²f(x))`` (a worst direction) and the
  trace ``tr ∇²f(x)`` (the sum over all directions, an average-case measure). Keskar et al.
  measured large-batch minima this way: N. S. Keskar, D. Mudigere, J. Nocedal,
  M. Smelyanskiy, P. T. P. Tang, "On Large-Batch Training for Deep Learning: Generalization
  Gap and Sharp Minima", ICLR 2017, arXiv:1609.04836.
- **ρ-sharpness**: ``max_{‖ε‖_p ≤ ρ} f(x + ε) − f(x)``, the quantity SAM minimises
  (P. Foret, A. Kleiner, H. Mobahi, B. Neyshabur, "Sharpness-Aware Minimization for
  Efficiently Improving Generalization", ICLR 2021, arXiv:2010.01412). Near a minimum with
  Hessian ``H`` and ``p = 2`` it is ``½ ρ² λmax(H) + O(ρ³)``.
- **Hessian-vector products** and power iteration: how ``λmax`` is found when the Hessian is
  too big to form (a deep network). Here the exact value is at hand, so the book checks the
  iteration against it.

Every function takes a ``sampy.functions.TestFunction`` (or a batched ``autograd.numpy``
callable) and one point ``(d,)`` or a batch of points ``(..., d)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import autograd
import numpy as np

from sampy._checks import check_int, check_p, check_real
from sampy.functions import TestFunction, autograd_value_and_grad
from sampy.optim.perturbation import lp_norm, norm_ball_perturbation

Function = TestFunction | Callable[[np.ndarray], np.ndarray]

__all__ = [
    "hessian",
    "hessian_trace",
    "hessian_vector_product",
    "m_sharpness",
    "power_iteration_top_eigenvalue",
    "project_to_ball",
    "sharpness",
    "top_eigenvalue",
    "worst_case_loss",
]


def _points(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if x.ndim == 0:
        raise ValueError("x must have shape (d,) or (..., d), got a scalar")
    return x


def hessian(f: Function, x: np.ndarray) -> np.ndarray:
    """The exact Hessian ``∇²f(x)`` by autograd, shape ``(..., d, d)``.

    Uses ``f.hessian`` for a ``TestFunction``; any other batched ``autograd.numpy`` callable is
    differentiated point by point.
    """
    x = _points(x)
    if isinstance(f, TestFunction):
        return f.hessian(x)
    single = autograd.hessian(f)
    flat = x.reshape(-1, x.shape[-1])
    out = np.stack([np.asarray(single(p)) for p in flat])
    return out.reshape(*x.shape, x.shape[-1])


def top_eigenvalue(f: Function, x: np.ndarray) -> np.ndarray:
    """``λmax(∇²f(x))``, the curvature along the sharpest direction, shape ``(...)``.

    Keskar et al. (ICLR 2017) and Foret et al. (ICLR 2021) report it as the sharpness of a
    minimum.
    """
    return np.linalg.eigvalsh(hessian(f, x))[..., -1]


def hessian_trace(f: Function, x: np.ndarray) -> np.ndarray:
    """``tr ∇²f(x)``, the summed curvature over all directions, shape ``(...)``.

    Up to a factor ``σ²/2`` it is the expected loss increase under a small isotropic Gaussian
    perturbation of standard deviation ``σ``: an average-case (not worst-case) sharpness.
    """
    return np.trace(hessian(f, x), axis1=-2, axis2=-1)


def hessian_vector_product(f: Function, x: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """``v ↦ ∇²f(x) v`` at one point ``x`` of shape ``(d,)``, without forming the Hessian.

    Autograd differentiates ``⟨∇f(x), v⟩`` with respect to ``x`` (reverse over reverse): the
    cost is a small multiple of one gradient, whatever ``d`` is.
    """
    x = _points(x)
    if x.ndim != 1:
        raise ValueError(f"x must be one point of shape (d,), got shape {x.shape}")
    fn = f.fn if isinstance(f, TestFunction) else f
    product = autograd.hessian_tensor_product(fn)
    return lambda v: np.asarray(product(x, np.asarray(v, dtype=float)))


def power_iteration_top_eigenvalue(
    hvp: Callable[[np.ndarray], np.ndarray],
    d: int,
    *,
    iters: int = 200,
    tol: float = 1e-10,
    seed: int = 0,
) -> float:
    """The Hessian eigenvalue of largest magnitude, from Hessian-vector products only.

    Power iteration ``v ← Hv/‖Hv‖`` from a seeded random start; the estimate is the Rayleigh
    quotient ``vᵀHv``. It converges at the rate ``|λ₂/λ₁|`` per product, and finds the
    eigenvalue of largest *magnitude*: at a minimum (``H`` positive semi-definite) that is
    ``λmax``. This is how PyHessian-style tools measure the sharpness of a network
    (Keskar et al., ICLR 2017, used a related subspace maximisation).

    Args:
        hvp: ``v ↦ Hv`` for ``v`` of shape ``(d,)`` (e.g. :func:`hessian_vector_product`).
        d: dimension.
        iters: maximum number of products.
        tol: stop when the Rayleigh quotient changes by less than ``tol·max(1, |λ|)``.
        seed: seed of the random start vector.
    """
    check_int("d", d, 1)
    check_int("iters", iters, 1)
    check_real("tol", tol, 0.0, None)
    v = np.random.default_rng(seed).standard_normal(int(d))
    v /= np.linalg.norm(v)
    estimate = math.nan
    for _ in range(int(iters)):
        hv = np.asarray(hvp(v), dtype=float)
        new = float(v @ hv)
        norm = float(np.linalg.norm(hv))
        if norm == 0.0:  # v lies in the null space: the Hessian is 0 on it
            return 0.0
        v = hv / norm
        if abs(new - estimate) <= tol * max(1.0, abs(new)):
            return new
        estimate = new
    return estimate


def project_to_ball(e: np.ndarray, rho: float | np.ndarray, p: float = 2.0) -> np.ndarray:
    """Map each ``e`` (last axis) into the ball ``‖e‖_p ≤ ρ``.

    For ``p`` in {1, 2, ∞} this is the Euclidean projection (the nearest point of the ball;
    for ``p = 1`` by the sort-based algorithm of Duchi, Shalev-Shwartz, Singer and Chandra,
    ICML 2008). For other ``p`` it is the radial retraction ``e · min(1, ρ/‖e‖_p)``: a point of
    the ball, not always the nearest one, which is all the ascent below needs.
    """
    e = np.asarray(e, dtype=float)
    radius = np.asarray(rho, dtype=float)
    if radius.ndim:
        radius = radius[..., None]
    if math.isinf(p):
        return np.clip(e, -radius, radius)
    if p == 1:
        a = np.abs(e)
        inside = np.sum(a, axis=-1, keepdims=True) <= radius
        # Soft-threshold at θ chosen so that Σ max(|e_i| − θ, 0) = ρ.
        u = -np.sort(-a, axis=-1)
        cumulative = np.cumsum(u, axis=-1) - radius
        k = np.arange(1, e.shape[-1] + 1)
        positive = u - cumulative / k > 0
        last = e.shape[-1] - 1 - np.argmax(positive[..., ::-1], axis=-1)
        theta = np.take_along_axis(cumulative, last[..., None], axis=-1) / (last[..., None] + 1)
        projected = np.sign(e) * np.maximum(a - theta, 0.0)
        return np.where(inside, e, projected)
    norm = lp_norm(e, p)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(norm > radius, radius / norm, 1.0)
    return e * scale


def _value_and_grad(f: Function, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(f, TestFunction) or callable(getattr(f, "value_and_grad", None)):
        return f.value_and_grad(x)  # analytic gradients: test functions and sums of examples
    return autograd_value_and_grad(f, x)


def worst_case_loss(
    f: Function,
    x: np.ndarray,
    rho: float,
    p: float = 2.0,
    *,
    steps: int = 100,
    random_starts: int = 16,
    step_size: float = 0.5,
    seed: int = 0,
    return_perturbation: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """``max_{‖ε‖_p ≤ ρ} f(x + ε)``, by projected gradient ascent from several starts.

    The inner maximisation of SAM (Foret et al., ICLR 2021), solved numerically instead of to
    first order. Starts, all moved at once in one batch:

    1. ``ε = 0``;
    2. the first-order SAM point ``ε̂`` (the maximiser of the linearisation, see
       ``sampy.optim.norm_ball_perturbation``), so the result is never below ``f(x + ε̂)``;
    3. ``random_starts`` seeded random points: half on the ball's boundary, half inside.

    Every start is moved twice over, in the same batch:

    - by **projected gradient ascent**: ``ε ← Π(ε + α_k ρ g/‖g‖₂)`` with ``g = ∇f(x + ε)``
      and :func:`project_to_ball` as ``Π``;
    - by **Frank–Wolfe** (conditional gradient) steps ``ε ← ε + α_k (ŝ − ε)``, where
      ``ŝ = argmax_{‖s‖_p ≤ ρ} ⟨s, g⟩`` is the SAM lemma's solution at ``x + ε``; this is the
      better move for ``p ∉ {1, 2, ∞}``, where ``Π`` is only a retraction.

    ``α_k`` decays geometrically from ``step_size`` to ``step_size/100``. The answer is the
    largest loss seen at any iterate, so it is attained (at the returned ``ε``) and can only
    err low: for a non-concave ``f`` on a large ball the maximum can hide where no start goes
    (the tests compare with a 2-D grid search on the book's functions).

    Args:
        f: a ``TestFunction`` or a batched ``autograd.numpy`` callable.
        x: one point ``(d,)`` or a batch ``(..., d)``.
        rho: radius ρ ≥ 0.
        p: the ball's norm, ``p ≥ 1`` or ``math.inf``.
        steps: ascent steps per start.
        random_starts: number of random starts.
        step_size: first step (a fraction of ρ for the gradient step, the Frank–Wolfe weight).
        seed: seed of the random starts.
        return_perturbation: also return the maximising ``ε``, shape ``(..., d)``.

    Returns:
        The worst-case loss, shape ``(...)`` (and ``ε`` if asked).
    """
    x = _points(x)
    check_real("rho", rho, 0.0, None)
    check_p(p)
    check_real("step_size", step_size, 0.0, 1.0, low_open=True)
    for name, value in (("steps", steps), ("random_starts", random_starts)):
        check_int(name, value, 0)
    rho = float(rho)
    batch, d = x.shape[:-1], x.shape[-1]

    f0, g0 = _value_and_grad(f, x)
    first_order = norm_ball_perturbation(x, g0, rho, p)
    rng = np.random.default_rng(seed)
    random = rng.standard_normal((random_starts, *batch, d))
    with np.errstate(divide="ignore", invalid="ignore"):
        random = random * (rho / lp_norm(random, p))
    random[random_starts // 2 :] *= rng.uniform(
        size=(random_starts - random_starts // 2, *batch, 1)
    )
    starts = np.concatenate([np.zeros((1, *batch, d)), first_order[None], random], axis=0)
    n = starts.shape[0]
    e = np.concatenate([starts, starts], axis=0)  # first n: gradient ascent; last n: Frank-Wolfe
    points = np.broadcast_to(x, e.shape)

    best_value = np.array(f0, dtype=float)
    best_e = np.zeros_like(x)
    decay = 0.01 ** (1.0 / max(steps - 1, 1))
    with np.errstate(all="ignore"):
        for k in range(steps + 1):
            values, grads = _value_and_grad(f, points + e)
            values = np.where(np.isfinite(values), values, -np.inf)
            which = np.argmax(values, axis=0)
            top = np.take_along_axis(values, which[None], axis=0)[0]
            better = top > best_value
            best_value = np.where(better, top, best_value)
            top_e = np.take_along_axis(e, which[None, ..., None], axis=0)[0]
            best_e = np.where(better[..., None], top_e, best_e)
            if k == steps or rho == 0.0:
                break
            alpha = step_size * decay**k
            g_pga, g_fw = grads[:n], grads[n:]
            norm = np.sqrt(np.sum(g_pga * g_pga, axis=-1, keepdims=True))
            direction = np.where(norm > 0, g_pga / np.where(norm > 0, norm, 1.0), 0.0)
            ascended = project_to_ball(e[:n] + (alpha * rho) * direction, rho, p)
            target = norm_ball_perturbation(points[n:], g_fw, rho, p)
            e = np.concatenate([ascended, e[n:] + alpha * (target - e[n:])], axis=0)
    if return_perturbation:
        return best_value, best_e
    return best_value


def sharpness(f: Function, x: np.ndarray, rho: float, p: float = 2.0, **kwargs) -> np.ndarray:
    """ρ-sharpness ``max_{‖ε‖_p ≤ ρ} f(x + ε) − f(x)`` (Foret et al., ICLR 2021).

    The worst-case loss increase in the ρ-ball, from :func:`worst_case_loss` (``kwargs`` go
    there). It is ≥ 0, and near a minimum with Hessian ``H`` (and ``p = 2``) it is close to
    ``½ ρ² λmax(H)``.
    """
    x = _points(x)
    worst = worst_case_loss(f, x, rho, p, **kwargs)
    return worst - np.asarray(f(x), dtype=float)


class _MicroBatch:
    """The mean loss of a subset of a sum-of-examples problem, as a function of ``x``."""

    def __init__(self, problem: Any, examples: np.ndarray) -> None:
        self.problem = problem
        self.examples = examples

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.problem.loss(x, self.examples)

    def value_and_grad(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.problem.value_and_grad(x, self.examples)


def m_sharpness(
    problem: Any, x: np.ndarray, rho: float, m: int, p: float = 2.0, **kwargs
) -> np.ndarray:
    """m-sharpness: ``Σ_j (|B_j|/n) max_{‖ε_j‖_p ≤ ρ} L_{B_j}(x + ε_j) − L(x)``.

    The sharpness that SAM with per-micro-batch perturbations (m-SAM) penalises: the
    ``n`` examples of a ``sampy.problems.SumOfExamples`` are split into consecutive
    micro-batches ``B_j`` of ``m`` (the last one smaller), each perturbed on its own; ``m ≥ n``
    is :func:`sharpness`. It is at least the batch's sharpness, since the average of the
    micro-batch maxima bounds the maximum of the average (M. Andriushchenko, N. Flammarion,
    "Towards Understanding Sharpness-Aware Minimization", ICML 2022; Foret et al., ICLR 2021,
    Section 4.1). Worst cases come from :func:`worst_case_loss` (``kwargs`` go there).
    """
    check_real("rho", rho, low=0.0)
    check_int("m", m, 1)
    x = _points(x)
    order = np.arange(problem.n)
    total = np.zeros(x.shape[:-1])
    for start in range(0, problem.n, int(m)):
        examples = order[start : start + int(m)]
        worst = worst_case_loss(_MicroBatch(problem, examples), x, rho, p, **kwargs)
        total = total + worst * (examples.size / problem.n)
    return total - np.asarray(problem.loss(x), dtype=float)
