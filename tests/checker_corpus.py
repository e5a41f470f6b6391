"""A corpus of right and wrong answers for every checker of ``sampy.exercises``.

Each entry is an ``Answer``: a function written the way students write it, the checker it is
for, and what the checker must say — ``None`` for a right answer (it must pass), else a piece of
the expected message (the named mistake, "returns None", "shape", …). Right answers come in
several styles (vectorised, loops, float32, torch float32/float64, in place); the wrong ones
include the attempts of the classroom review's student. ``tests/test_exercises_corpus.py`` runs
them all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from sampy.exercises import feedback


class OpenGuard:
    """A guard that lets everything through: the checkers' own mistakes (which call sampy's
    helpers) stand in for students in the per-checker tests."""

    def __init__(self, passed_in):
        self.culprit = None

    def __call__(self, frame, event, arg):
        return None


@pytest.fixture
def mistakes_may_answer(monkeypatch):
    """Lets a checker's own mistake functions be graded as if a student wrote them."""
    monkeypatch.setattr(feedback, "_ReferenceGuard", OpenGuard)


# --------------------------------------------------------------------------- the corpus

ANY_FAILURE = ""  # a wrong answer no single mistake explains: it must fail, on any message


@dataclass(frozen=True)
class Answer:
    """One answer to one checker, and what the checker must say about it."""

    checker: str  # the checker's name in sampy.exercises
    style: str  # how the answer is written, for the test's id
    function: Callable
    says: str | None = None  # None: must pass; else a fragment of a failure message
    torch: bool = False  # needs torch (skipped where it is not installed)


CORPUS: list[Answer] = []


def right(checker: str, style: str, *, torch: bool = False):
    """Register a right answer: the checker must pass it."""

    def register(function):
        CORPUS.append(Answer(checker, style, function, None, torch))
        return function

    return register


def wrong(checker: str, style: str, says: str, *, torch: bool = False):
    """Register a wrong answer: the checker must fail it, saying ``says``."""

    def register(function):
        CORPUS.append(Answer(checker, style, function, says, torch))
        return function

    return register


def f32(*values):
    """The values as float32 arrays, as a student working in float32 would have them."""
    return tuple(np.asarray(v, dtype=np.float32) for v in values)


def tensors(*values, dtype="float32", requires_grad=False):
    """The values as torch tensors of ``dtype`` (torch is imported only when a test runs)."""
    import torch

    kind = getattr(torch, dtype)
    return tuple(
        torch.tensor(np.asarray(v), dtype=kind, requires_grad=requires_grad) for v in values
    )


def norm(v):
    return np.sqrt(np.sum(np.asarray(v) ** 2))


# --------------------------------------------------------------------------- sam_step


@right("check_sam_step", "vectorised")
def sam_step(grad, w, lr, rho):
    g = grad(w)
    return w - lr * grad(w + rho * g / np.linalg.norm(g))


@right("check_sam_step", "loops, returns a list")
def sam_step_loops(grad, w, lr, rho):
    g = grad(w)
    length = sum(gi * gi for gi in g) ** 0.5
    perturbed = np.array([wi + rho * gi / length for wi, gi in zip(w, g, strict=True)])
    return [wi - lr * hi for wi, hi in zip(w, grad(perturbed), strict=True)]


@right("check_sam_step", "float32")
def sam_step_float32(grad, w, lr, rho):
    (w,) = f32(w)
    g = grad(w).astype(np.float32)
    eps = np.float32(rho) * g / np.linalg.norm(g)
    return w - np.float32(lr) * grad(w + eps).astype(np.float32)


@right("check_sam_step", "torch float32", torch=True)
def sam_step_torch32(grad, w, lr, rho):
    import torch

    (wt,) = tensors(w)
    g = torch.as_tensor(grad(wt.numpy()), dtype=torch.float32)
    eps = rho * g / g.norm()
    return wt - lr * torch.as_tensor(grad((wt + eps).numpy()), dtype=torch.float32)


@right("check_sam_step", "torch float64, requires grad", torch=True)
def sam_step_torch64(grad, w, lr, rho):
    import torch

    (wt,) = tensors(w, dtype="float64", requires_grad=True)
    g = torch.as_tensor(grad(wt.detach().numpy()))
    eps = rho * g / g.norm()
    return wt - lr * torch.as_tensor(grad((wt + eps).detach().numpy()))  # still requires grad


@right("check_sam_step", "in place (w -= …)")
def sam_step_in_place(grad, w, lr, rho):
    g = grad(w)
    w -= lr * grad(w + rho * g / np.linalg.norm(g))
    return w


@right("check_sam_step", "guard 1e-8")
def sam_step_guarded(grad, w, lr, rho):
    g = grad(w)
    return w - lr * grad(w + rho * g / (np.linalg.norm(g) + 1e-8))


@wrong("check_sam_step", "no normalisation", "normalise the gradient")
def sam_step_no_norm(grad, w, lr, rho):
    return w - lr * grad(w + rho * grad(w))


@wrong("check_sam_step", "no normalisation, in place", "normalise the gradient")
def sam_step_no_norm_in_place(grad, w, lr, rho):
    w -= lr * grad(w + rho * grad(w))
    return w


@wrong("check_sam_step", "downhill", "goes downhill")
def sam_step_downhill(grad, w, lr, rho):
    g = grad(w)
    return w - lr * grad(w - rho * g / np.linalg.norm(g))


@wrong("check_sam_step", "step from w + ε", "starts from the perturbed point")
def sam_step_from_perturbed(grad, w, lr, rho):
    g = grad(w)
    eps = rho * g / np.linalg.norm(g)
    return w + eps - lr * grad(w + eps)


@wrong("check_sam_step", "clean gradient", "the clean gradient ∇L(w)")
def sam_step_clean(grad, w, lr, rho):
    return w - lr * grad(w)


@wrong("check_sam_step", "divided by ‖g‖²", "expected [")
def sam_step_squared_norm(grad, w, lr, rho):
    g = grad(w)
    return w - lr * grad(w + rho * g / (g @ g))


@wrong("check_sam_step", "returns ε", "expected [")
def sam_step_returns_eps(grad, w, lr, rho):
    g = grad(w)
    return rho * g / np.linalg.norm(g)


@wrong("check_sam_step", "axis=1 on a 1-D array", "your function raised AxisError")
def sam_step_axis(grad, w, lr, rho):
    g = grad(w)
    return w - lr * grad(w + rho * g / np.linalg.norm(g, axis=1))


@wrong("check_sam_step", "no return", "returns None: did you forget `return`?")
def sam_step_no_return(grad, w, lr, rho):
    g = grad(w)
    w = w - lr * grad(w + rho * g / np.linalg.norm(g))  # and no return


@wrong("check_sam_step", "float32 for the wrong answer", "normalise the gradient")
def sam_step_no_norm_float32(grad, w, lr, rho):
    (w,) = f32(w)
    return w - np.float32(lr) * grad(w + np.float32(rho) * grad(w)).astype(np.float32)


@wrong("check_sam_step", "sampy.optim.SAM", "calls sampy's own implementation")
def sam_step_borrowed(grad, w, lr, rho):
    from sampy.optim import SAM, SGD, Oracle

    opt = SAM(SGD(lr=lr), rho=rho)
    return opt.step(w, opt.init(w), Oracle.from_gradient(grad))[0]


# --------------------------------------------------------------------------- LookSAM's reuse


def orthogonal(a, b):
    return a - (a @ b) / (b @ b) * b


@right("check_looksam_reuse", "the book's formula")
def looksam_reuse(g0, g_s, g, alpha):
    g_v = orthogonal(g_s, g0)
    return g + alpha * np.linalg.norm(g) / (np.linalg.norm(g_v) + 1e-8) * g_v


@right("check_looksam_reuse", "loops")
def looksam_reuse_loops(g0, g_s, g, alpha):
    d = len(g)
    along = sum(g_s[i] * g0[i] for i in range(d)) / sum(x * x for x in g0)
    g_v = [g_s[i] - along * g0[i] for i in range(d)]
    ratio = sum(x * x for x in g) ** 0.5 / sum(x * x for x in g_v) ** 0.5
    return [g[i] + alpha * ratio * g_v[i] for i in range(d)]


@right("check_looksam_reuse", "float32")
def looksam_reuse_float32(g0, g_s, g, alpha):
    g0, g_s, g = f32(g0, g_s, g)
    g_v = orthogonal(g_s, g0)
    return g + np.float32(alpha) * np.linalg.norm(g) / np.linalg.norm(g_v) * g_v


@right("check_looksam_reuse", "torch float32", torch=True)
def looksam_reuse_torch(g0, g_s, g, alpha):
    g0, g_s, g = tensors(g0, g_s, g)
    g_v = g_s - (g_s @ g0) / (g0 @ g0) * g0
    return g + alpha * g.norm() / g_v.norm() * g_v


@right("check_looksam_reuse", "in place (g += …)")
def looksam_reuse_in_place(g0, g_s, g, alpha):
    g_s -= (g_s @ g0) / (g0 @ g0) * g0
    g += alpha * np.linalg.norm(g) / np.linalg.norm(g_s) * g_s
    return g


@wrong("check_looksam_reuse", "no ratio", "without the ratio")
def looksam_no_ratio(g0, g_s, g, alpha):
    return g + alpha * orthogonal(g_s, g0)


@wrong("check_looksam_reuse", "projection kept", "projection of g_s onto g0")
def looksam_projection(g0, g_s, g, alpha):
    p = (g_s @ g0) / (g0 @ g0) * g0
    return g + alpha * np.linalg.norm(g) / np.linalg.norm(p) * p


@wrong("check_looksam_reuse", "whole g_s", "reused the whole SAM gradient")
def looksam_whole(g0, g_s, g, alpha):
    return g + alpha * np.linalg.norm(g) / np.linalg.norm(g_s) * g_s


@wrong("check_looksam_reuse", "orthogonal to the current g", "orthogonal to the current g")
def looksam_current(g0, g_s, g, alpha):
    g_v = orthogonal(g_s, g)
    return g + alpha * np.linalg.norm(g) / np.linalg.norm(g_v) * g_v


@wrong("check_looksam_reuse", "sign flipped", ANY_FAILURE)
def looksam_sign(g0, g_s, g, alpha):
    g_v = orthogonal(g_s, g0)
    return g - alpha * np.linalg.norm(g) / np.linalg.norm(g_v) * g_v


@wrong("check_looksam_reuse", "no ratio, in place", "without the ratio")
def looksam_no_ratio_in_place(g0, g_s, g, alpha):
    g_s -= (g_s @ g0) / (g0 @ g0) * g0
    g += alpha * g_s
    return g


@wrong("check_looksam_reuse", "the reference itself", "calls sampy's own implementation")
def looksam_reference(g0, g_s, g, alpha):
    from sampy.exercises.cheaper import _reference_looksam_reuse

    return _reference_looksam_reuse(g0, g_s, g, alpha)


# --------------------------------------------------------------------------- LookSAM's schedule


@right("check_looksam_schedule", "vectorised")
def looksam_sam_steps(k, steps):
    return np.arange(steps) % k == 0


@right("check_looksam_schedule", "loops, a list of bools")
def looksam_sam_steps_loops(k, steps):
    out, since = [], k
    for _ in range(steps):
        out.append(since == k)
        since = 1 if since == k else since + 1
    return out


@right("check_looksam_schedule", "0/1 integers")
def looksam_sam_steps_ints(k, steps):
    return [1 if t % k == 0 else 0 for t in range(steps)]


@right("check_looksam_schedule", "torch bool tensor", torch=True)
def looksam_sam_steps_torch(k, steps):
    import torch

    return torch.arange(steps) % k == 0


@wrong("check_looksam_schedule", "(t + 1) % k", "(t + 1) % k == 0")
def looksam_off_by_one(k, steps):
    return [(t + 1) % k == 0 for t in range(steps)]


@wrong("check_looksam_schedule", "period k + 1", "every k + 1 steps")
def looksam_period_plus(k, steps):
    return np.arange(steps) % (k + 1) == 0


@wrong("check_looksam_schedule", "period k − 1", "every k − 1 steps")
def looksam_period_minus(k, steps):
    return np.arange(steps) % max(k - 1, 1) == 0


@wrong("check_looksam_schedule", "step indices, not a mask", "shape (")
def looksam_indices(k, steps):
    return np.arange(0, steps, k)


# --------------------------------------------------------------------------- ESAM's selection


def rises(before, after):
    return np.asarray(after) - np.asarray(before)


@right("check_sds_selection", "stable argsort")
def sds_select(loss_before, loss_after, gamma):
    s = rises(loss_before, loss_after)
    mask = np.zeros(len(s), dtype=bool)
    mask[np.argsort(-s, kind="stable")[: max(1, int(len(s) * gamma))]] = True
    return mask


@right("check_sds_selection", "sorted with a (−s, i) key, a list")
def sds_select_loops(loss_before, loss_after, gamma):
    s = [a - b for a, b in zip(loss_after, loss_before, strict=True)]
    k = max(1, int(len(s) * gamma))
    kept = sorted(range(len(s)), key=lambda i: (-s[i], i))[:k]
    return [i in kept for i in range(len(s))]


@right("check_sds_selection", "float32")
def sds_select_float32(loss_before, loss_after, gamma):
    before, after = f32(loss_before, loss_after)
    return sds_select(before, after, gamma)


@right("check_sds_selection", "torch, stable sort", torch=True)
def sds_select_torch(loss_before, loss_after, gamma):
    import torch

    before, after = tensors(loss_before, loss_after)
    s = after - before
    k = max(1, int(len(s) * gamma))
    mask = torch.zeros(len(s), dtype=torch.bool)
    mask[torch.sort(s, descending=True, stable=True).indices[:k]] = True
    return mask


@wrong("check_sds_selection", "s >= c keeps every tie", "reaches the k-th largest")
def sds_at_least(loss_before, loss_after, gamma):
    s = rises(loss_before, loss_after)
    return s >= np.sort(s)[::-1][max(1, int(len(s) * gamma)) - 1]


@wrong("check_sds_selection", "k rounded up", "k was rounded up")
def sds_ceil(loss_before, loss_after, gamma):
    s = rises(loss_before, loss_after)
    mask = np.zeros(len(s), dtype=bool)
    mask[np.argsort(-s, kind="stable")[: int(np.ceil(len(s) * gamma))]] = True
    return mask


@wrong("check_sds_selection", "by the loss after", "largest loss after")
def sds_by_loss(loss_before, loss_after, gamma):
    return sds_select(np.zeros(len(loss_after)), loss_after, gamma)


@wrong("check_sds_selection", "indices, not a mask", "shape (")
def sds_indices(loss_before, loss_after, gamma):
    s = rises(loss_before, loss_after)
    return np.sort(np.argsort(-s, kind="stable")[: max(1, int(len(s) * gamma))])


@wrong("check_sds_selection", "default (unstable) argsort", ANY_FAILURE)
def sds_quicksort(loss_before, loss_after, gamma):
    s = rises(loss_before, loss_after)
    mask = np.zeros(len(s), dtype=bool)
    mask[np.argsort(s)[::-1][: max(1, int(len(s) * gamma))]] = True
    return mask


# --------------------------------------------------------------------------- SSAM's mask


@right("check_ssam_mask", "stable argsort")
def ssam_mask(fisher, sparsity):
    k = int(len(fisher) * (1 - sparsity))
    mask = np.zeros(len(fisher), dtype=bool)
    mask[np.argsort(-np.asarray(fisher), kind="stable")[:k]] = True
    return mask


@right("check_ssam_mask", "sorted, a 0/1 float array")
def ssam_mask_floats(fisher, sparsity):
    k = int(len(fisher) * (1 - sparsity))
    kept = sorted(range(len(fisher)), key=lambda i: (-fisher[i], i))[:k]
    return np.array([1.0 if i in kept else 0.0 for i in range(len(fisher))])


@right("check_ssam_mask", "torch stable sort", torch=True)
def ssam_mask_torch(fisher, sparsity):
    import torch

    (f,) = tensors(fisher)
    mask = torch.zeros(len(f), dtype=torch.bool)
    mask[torch.sort(f, descending=True, stable=True).indices[: int(len(f) * (1 - sparsity))]] = 1
    return mask


@wrong("check_ssam_mask", "keeps the fraction s", "fraction s")
def ssam_fraction_s(fisher, sparsity):
    return ssam_mask(fisher, 1 - sparsity)


@wrong("check_ssam_mask", "smallest scores", "smallest Fisher score")
def ssam_smallest(fisher, sparsity):
    return ssam_mask(-np.asarray(fisher), sparsity)


@wrong("check_ssam_mask", "strict threshold", "strict threshold")
def ssam_strict(fisher, sparsity):
    f = np.asarray(fisher)
    return f > np.sort(f)[::-1][int(len(f) * (1 - sparsity)) - 1]


# --------------------------------------------------------------------------- projected ascent


def project(e, rho):
    length = np.linalg.norm(e)
    return e if length <= rho else e * rho / length


@right("check_projected_ascent", "vectorised")
def projected_ascent(grad, w, rho, k):
    e = np.zeros_like(w)
    for _ in range(k):
        g = grad(w + e)
        e = project(e + rho * g / np.linalg.norm(g), rho)
    return e


@right("check_projected_ascent", "float32")
def projected_ascent_float32(grad, w, rho, k):
    (w,) = f32(w)
    e = np.zeros_like(w)
    for _ in range(k):
        g = np.asarray(grad(w + e), dtype=np.float32)
        e = project(e + np.float32(rho) * g / np.linalg.norm(g), np.float32(rho))
    return e.astype(np.float32)


@wrong("check_projected_ascent", "no projection", "no projection")
def projected_ascent_unprojected(grad, w, rho, k):
    e = np.zeros_like(w)
    for _ in range(k):
        g = grad(w + e)
        e = e + rho * g / np.linalg.norm(g)
    return e


@wrong("check_projected_ascent", "returns the point", "you returned the point")
def projected_ascent_point(grad, w, rho, k):
    return w + projected_ascent(grad, w, rho, k)


# --------------------------------------------------------------------------- GSAM, WSAM, VaSSO


def along(a, b):
    return (a @ b) / (b @ b) * b


@right("check_gsam_direction", "vectorised")
def gsam_direction(g, g_adv, alpha):
    return g_adv - alpha * (g - along(g, g_adv))


@right("check_gsam_direction", "the official cos form with guards")
def gsam_direction_cos(g, g_adv, alpha):
    gn, hn = np.linalg.norm(g), np.linalg.norm(g_adv)
    cos = (g @ g_adv) / (gn * hn + 1e-12)
    return g_adv - alpha * (g - cos * gn * g_adv / (hn + 1e-12))


@right("check_gsam_direction", "loops")
def gsam_direction_loops(g, g_adv, alpha):
    d = len(g)
    c = sum(g[i] * g_adv[i] for i in range(d)) / sum(g_adv[i] ** 2 for i in range(d))
    return [g_adv[i] - alpha * (g[i] - c * g_adv[i]) for i in range(d)]


@right("check_gsam_direction", "torch float32", torch=True)
def gsam_direction_torch(g, g_adv, alpha):
    g, h = tensors(g, g_adv)
    return h - alpha * (g - (g @ h) / (h @ h) * h)


@right("check_gsam_direction", "in place (g_adv -= …)")
def gsam_direction_in_place(g, g_adv, alpha):
    g -= along(g, g_adv)
    g_adv -= alpha * g
    return g_adv


@wrong("check_gsam_direction", "wrong sign", "wrong sign")
def gsam_plus(g, g_adv, alpha):
    return g_adv + alpha * (g - along(g, g_adv))


@wrong("check_gsam_direction", "g instead of g_⊥", "subtract only the part of g orthogonal")
def gsam_whole_g(g, g_adv, alpha):
    return g_adv - alpha * g


@wrong("check_gsam_direction", "roles swapped", "you projected g̃ on g")
def gsam_swapped(g, g_adv, alpha):
    return g_adv - alpha * (g_adv - along(g_adv, g))


@wrong("check_gsam_direction", "projection not normalised", "not normalised")
def gsam_unnormalised(g, g_adv, alpha):
    return g_adv - alpha * (g - (g @ g_adv) * g_adv)


@wrong("check_gsam_direction", "the reference imported", "calls sampy's own implementation")
def gsam_borrowed(g, g_adv, alpha):
    from sampy.exercises.direction import _reference_gsam_direction

    return _reference_gsam_direction(g, g_adv, alpha)


@right("check_wsam_direction", "vectorised")
def wsam_direction(g, g_adv, gamma):
    omega = gamma / (1 - gamma)
    return omega * g_adv + (1 - omega) * g


@right("check_wsam_direction", "g + ω (g̃ − g), float32")
def wsam_direction_float32(g, g_adv, gamma):
    g, g_adv = f32(g, g_adv)
    return g + np.float32(gamma / (1 - gamma)) * (g_adv - g)


@wrong("check_wsam_direction", "γ as the weight", "weighted with γ itself")
def wsam_gamma(g, g_adv, gamma):
    return gamma * g_adv + (1 - gamma) * g


@wrong("check_wsam_direction", "γ/(1 + γ)", ANY_FAILURE)
def wsam_plus(g, g_adv, gamma):
    omega = gamma / (1 + gamma)
    return omega * g_adv + (1 - omega) * g


@right("check_vasso_perturbations", "a loop over the rows")
def vasso_perturbations(grads, rho, theta):
    d, out = np.zeros(grads.shape[1]), []
    for g in grads:
        d = (1 - theta) * d + theta * g
        out.append(rho * d / np.linalg.norm(d))
    return np.array(out)


@right("check_vasso_perturbations", "float32, a list of rows")
def vasso_perturbations_float32(grads, rho, theta):
    (grads,) = f32(grads)
    d, out = np.zeros_like(grads[0]), []
    for g in grads:
        d = np.float32(1 - theta) * d + np.float32(theta) * g
        out.append(np.float32(rho) * d / np.linalg.norm(d))
    return out


@wrong("check_vasso_perturbations", "θ and 1 − θ swapped", "weights are swapped")
def vasso_swapped(grads, rho, theta):
    return vasso_perturbations(grads, rho, 1 - theta)


@wrong("check_vasso_perturbations", "SAM's ε", "this is SAM's")
def vasso_sam(grads, rho, theta):
    return rho * grads / np.linalg.norm(grads, axis=1, keepdims=True)


# --------------------------------------------------------------------------- random perturbation


@right("check_rwp_direction", "vectorised")
def rwp_direction(grad, w, z, rho, mix, kind="gaussian"):
    eps = rho * z if kind == "gaussian" else rho * z / np.linalg.norm(z)
    return mix * grad(w) + (1 - mix) * grad(w + eps)


@right("check_rwp_direction", "float32")
def rwp_direction_float32(grad, w, z, rho, mix, kind="gaussian"):
    w, z = f32(w, z)
    eps = np.float32(rho) * (z if kind == "gaussian" else z / np.linalg.norm(z))
    g, g_adv = (np.asarray(grad(p), dtype=np.float32) for p in (w, w + eps))
    return np.float32(mix) * g + np.float32(1 - mix) * g_adv


@right("check_rwp_direction", "torch float64", torch=True)
def rwp_direction_torch(grad, w, z, rho, mix, kind="gaussian"):
    import torch

    w, z = tensors(w, z, dtype="float64")
    eps = rho * z if kind == "gaussian" else rho * z / z.norm()
    g, g_adv = (torch.as_tensor(grad(p.numpy())) for p in (w, w + eps))
    return mix * g + (1 - mix) * g_adv


@wrong("check_rwp_direction", "weights swapped", "weights are swapped")
def rwp_swapped(grad, w, z, rho, mix, kind="gaussian"):
    return rwp_direction(grad, w, z, rho, 1 - mix, kind)


@wrong("check_rwp_direction", "SAM's perturbation", "you perturbed along the gradient")
def rwp_sam(grad, w, z, rho, mix, kind="gaussian"):
    g = grad(w)
    return mix * g + (1 - mix) * grad(w + rho * g / np.linalg.norm(g))


@wrong("check_rwp_direction", "noise always normalised", "wrong length")
def rwp_normalised(grad, w, z, rho, mix, kind="gaussian"):
    return rwp_direction(grad, w, z, rho, mix, "sphere" if kind == "gaussian" else "gaussian")


@wrong("check_rwp_direction", "sampy.optim.RandomSAM's rule", "calls sampy's own implementation")
def rwp_borrowed(grad, w, z, rho, mix, kind="gaussian"):
    from sampy.optim.random_sam import MixedDescent

    eps = rho * z if kind == "gaussian" else rho * z / np.linalg.norm(z)
    return MixedDescent(mix)(grad(w), grad(w + eps), None)[0]


# --------------------------------------------------------------------------- ASAM, p-norm, Fisher


@right("check_asam_perturbation", "vectorised")
def asam_perturbation(w, g, rho, eta):
    t = np.abs(w) + eta
    return rho * t**2 * g / np.linalg.norm(t * g)


@right("check_asam_perturbation", "float32")
def asam_perturbation_float32(w, g, rho, eta):
    w, g = f32(w, g)
    t = np.abs(w) + np.float32(eta)
    return np.float32(rho) * t * t * g / np.linalg.norm(t * g)


@right("check_asam_perturbation", "torch float32", torch=True)
def asam_perturbation_torch(w, g, rho, eta):
    w, g = tensors(w, g)
    t = w.abs() + eta
    return rho * t**2 * g / (t * g).norm()


@wrong("check_asam_perturbation", "T once", "has T once")
def asam_t_once(w, g, rho, eta):
    t = np.abs(w) + eta
    return rho * t * g / np.linalg.norm(t * g)


@wrong("check_asam_perturbation", "norm of g", "normalised by ‖g‖")
def asam_norm_g(w, g, rho, eta):
    t = np.abs(w) + eta
    return rho * t**2 * g / np.linalg.norm(g)


@right("check_dual_direction", "Hölder's maximiser")
def dual_direction(g, p, rho):
    q = p / (p - 1)
    return rho * np.sign(g) * np.abs(g) ** (q - 1) / np.sum(np.abs(g) ** q) ** ((q - 1) / q)


@right("check_dual_direction", "float32")
def dual_direction_float32(g, p, rho):
    (g,) = f32(g)
    q = np.float32(p / (p - 1))
    v = np.sign(g) * np.abs(g) ** (q - 1)
    return np.float32(rho) * v / np.sum(np.abs(v) ** np.float32(p)) ** np.float32(1 / p)


@right("check_dual_direction", "torch float32", torch=True)
def dual_direction_torch(g, p, rho):
    (g,) = tensors(g)
    q = p / (p - 1)
    return rho * g.sign() * g.abs() ** (q - 1) / g.norm(p=q) ** (q - 1)


@wrong("check_dual_direction", "p for q", "the exponent is p")
def dual_p_for_q(g, p, rho):
    return rho * np.sign(g) * np.abs(g) ** (p - 1) / np.sum(np.abs(g) ** p) ** ((p - 1) / p)


@wrong("check_dual_direction", "SAM's direction on the p-sphere", "SAM's direction")
def dual_sam(g, p, rho):
    return rho * g / np.sum(np.abs(g) ** p) ** (1 / p)


@right("check_fisher_perturbation", "vectorised")
def fisher_perturbation(g, rho, kappa):
    u = g / (1 + kappa * g**2)
    return rho * u / np.sqrt(g @ u)


@right("check_fisher_perturbation", "float32")
def fisher_perturbation_float32(g, rho, kappa):
    (g,) = f32(g)
    u = g / (1 + np.float32(kappa) * g * g)
    return np.float32(rho) * u / np.sqrt(g @ u)


@wrong("check_fisher_perturbation", "multiplied by F", "multiplied by F")
def fisher_times_f(g, rho, kappa):
    u = g * (1 + kappa * g**2)
    return rho * u / np.sqrt(g @ u)


@wrong("check_fisher_perturbation", "Euclidean normalisation", "Euclidean")
def fisher_euclid(g, rho, kappa):
    u = g / (1 + kappa * g**2)
    return rho * u / np.linalg.norm(u)


# --------------------------------------------------------------------------- theory


@right("check_penalised_worst_case_gradient", "solve")
def penalised_worst_case_gradient(H, w, rho):
    return H @ np.linalg.solve(np.eye(len(w)) - rho * H, w)


@right("check_penalised_worst_case_gradient", "float32 inverse")
def penalised_worst_case_gradient_float32(H, w, rho):
    H, w = f32(H, w)
    return H @ np.linalg.inv(np.eye(len(w), dtype=np.float32) - np.float32(rho) * H) @ w


@wrong("check_penalised_worst_case_gradient", "USAM's first order", "USAM's first-order")
def penalised_usam(H, w, rho):
    return H @ (w + rho * H @ w)


@wrong("check_penalised_worst_case_gradient", "returns ε*", "this is the maximiser")
def penalised_maximiser(H, w, rho):
    return rho * np.linalg.solve(np.eye(len(w)) - rho * H, H @ w)


@right("check_sam_quadratic_multipliers", "vectorised")
def sam_quadratic_multipliers(eigenvalues, g_norm, lr, rho):
    lam = np.asarray(eigenvalues)
    return 1 - lr * lam * (1 + rho * lam / g_norm)


@right("check_sam_quadratic_multipliers", "float32 list")
def sam_quadratic_multipliers_float32(eigenvalues, g_norm, lr, rho):
    lr, rho, g_norm = np.float32(lr), np.float32(rho), np.float32(g_norm)
    return [1 - lr * lam * (1 + rho * lam / g_norm) for lam in np.float32(eigenvalues)]


@wrong("check_sam_quadratic_multipliers", "USAM's multiplier", "USAM's multiplier")
def multipliers_usam(eigenvalues, g_norm, lr, rho):
    lam = np.asarray(eigenvalues)
    return 1 - lr * lam * (1 + rho * lam)


@right("check_sam_edge", "the quadratic formula")
def sam_edge(g_norm, lr, rho):
    return g_norm / (2 * rho) * (np.sqrt(1 + 8 * rho / (lr * g_norm)) - 1)


@right("check_sam_edge", "float32")
def sam_edge_float32(g_norm, lr, rho):
    g_norm, lr, rho = np.float32(g_norm), np.float32(lr), np.float32(rho)
    return g_norm / (2 * rho) * (np.sqrt(1 + 8 * rho / (lr * g_norm)) - 1)


@right("check_sam_edge", "torch float64 scalar", torch=True)
def sam_edge_torch(g_norm, lr, rho):
    import torch

    g_norm = torch.tensor(g_norm, dtype=torch.float64)
    return g_norm / (2 * rho) * (torch.sqrt(1 + 8 * rho / (lr * g_norm)) - 1)


@wrong("check_sam_edge", "gradient descent's edge", "gradient descent's edge")
def sam_edge_gd(g_norm, lr, rho):
    return 2 / lr


@wrong("check_sam_edge", "an array of one", "shape (1,), expected ()")
def sam_edge_array(g_norm, lr, rho):
    return np.array([sam_edge(g_norm, lr, rho)])


# --------------------------------------------------------------------------- bSAM


@right("check_bsam_precision_update", "vectorised")
def bsam_update(w, m, s, g, g_adv, lr, betas, damping, weight_decay):
    beta1, beta2 = betas
    m = beta1 * m + (1 - beta1) * (g_adv + weight_decay * w)
    w = w - lr * m / s
    s = beta2 * s + (1 - beta2) * (np.sqrt(s) * np.abs(g) + damping + weight_decay)
    return w, m, s


@right("check_bsam_precision_update", "float32 (the review's reproduction)")
def bsam_update_float32(w, m, s, g, g_adv, lr, betas, damping, weight_decay):
    w, m, s, g, g_adv = f32(w, m, s, g, g_adv)
    return bsam_update(w, m, s, g, g_adv, np.float32(lr), betas, damping, weight_decay)


@right("check_bsam_precision_update", "torch float32", torch=True)
def bsam_update_torch(w, m, s, g, g_adv, lr, betas, damping, weight_decay):
    w, m, s, g, g_adv = tensors(w, m, s, g, g_adv)
    beta1, beta2 = betas
    m = beta1 * m + (1 - beta1) * (g_adv + weight_decay * w)
    w = w - lr * m / s
    s = beta2 * s + (1 - beta2) * (s.sqrt() * g.abs() + damping + weight_decay)
    return w, m, s


@right("check_bsam_precision_update", "in place, a list")
def bsam_update_in_place(w, m, s, g, g_adv, lr, betas, damping, weight_decay):
    beta1, beta2 = betas
    m *= beta1
    m += (1 - beta1) * (g_adv + weight_decay * w)
    w -= lr * m / s
    s *= beta2
    s += (1 - beta2) * (np.sqrt(s / beta2) * np.abs(g) + damping + weight_decay)
    return [w, m, s]


@wrong("check_bsam_precision_update", "precision term squared", "precision term is squared")
def bsam_squared(w, m, s, g, g_adv, lr, betas, damping, weight_decay):
    beta1, beta2 = betas
    m = beta1 * m + (1 - beta1) * (g_adv + weight_decay * w)
    term = np.sqrt(s) * np.abs(g) + damping + weight_decay
    return w - lr * m / s, m, beta2 * s + (1 - beta2) * term**2


@wrong("check_bsam_precision_update", "no return", "returns None")
def bsam_no_return(w, m, s, g, g_adv, lr, betas, damping, weight_decay):
    bsam_update(w, m, s, g, g_adv, lr, betas, damping, weight_decay)


@wrong("check_bsam_precision_update", "only w", "expected 3 values: (w, m, s)")
def bsam_only_w(w, m, s, g, g_adv, lr, betas, damping, weight_decay):
    return bsam_update(w, m, s, g, g_adv, lr, betas, damping, weight_decay)[0]


# --------------------------------------------------------------------------- schedule-free


@right("check_schedule_free_average", "vectorised")
def schedule_free_average(x, z, lrs, beta1):
    weights = np.maximum.accumulate(np.asarray(lrs)) ** 2
    c = weights[-1] / weights.sum()
    x = (1 - c) * x + c * z
    return x, beta1 * x + (1 - beta1) * z


@right("check_schedule_free_average", "loops, lists")
def schedule_free_average_loops(x, z, lrs, beta1):
    peak, total = 0.0, 0.0
    for lr in lrs:
        peak = max(peak, lr)
        total += peak**2
    c = peak**2 / total
    x_new = [(1 - c) * a + c * b for a, b in zip(x, z, strict=True)]
    return x_new, [beta1 * a + (1 - beta1) * b for a, b in zip(x_new, z, strict=True)]


@right("check_schedule_free_average", "float32")
def schedule_free_average_float32(x, z, lrs, beta1):
    x, z, lrs = f32(x, z, lrs)
    return schedule_free_average(x, z, lrs, np.float32(beta1))


@right("check_schedule_free_average", "torch float32", torch=True)
def schedule_free_average_torch(x, z, lrs, beta1):
    import torch

    x, z, lrs = tensors(x, z, lrs)
    weights = torch.cummax(lrs, 0).values ** 2
    c = weights[-1] / weights.sum()
    x = (1 - c) * x + c * z
    return x, beta1 * x + (1 - beta1) * z


@right("check_schedule_free_average", "in place (x *= …)")
def schedule_free_average_in_place(x, z, lrs, beta1):
    weights = np.maximum.accumulate(lrs) ** 2
    c = weights[-1] / weights.sum()
    x *= 1 - c
    x += c * z
    z *= 1 - beta1
    z += beta1 * x
    return x, z


@right("check_schedule_free_average", "stacked in one array")
def schedule_free_average_stacked(x, z, lrs, beta1):
    return np.stack(schedule_free_average(x, z, lrs, beta1))


@wrong("check_schedule_free_average", "no running maximum", "max_{j ≤ i} η_j")
def schedule_free_no_max(x, z, lrs, beta1):
    weights = np.asarray(lrs) ** 2
    c = weights[-1] / weights.sum()
    x = (1 - c) * x + c * z
    return x, beta1 * x + (1 - beta1) * z


@wrong("check_schedule_free_average", "returns only x", "returns one array")
def schedule_free_only_x(x, z, lrs, beta1):
    return schedule_free_average(x, z, lrs, beta1)[0]


@wrong("check_schedule_free_average", "y from the old x", ANY_FAILURE)
def schedule_free_old_x(x, z, lrs, beta1):
    x_new, _ = schedule_free_average(x, z, lrs, beta1)
    return x_new, beta1 * x + (1 - beta1) * z


# --------------------------------------------------------------------------- ImbSAM


@right("check_imbsam_direction", "vectorised")
def imbsam_direction(grad, w, head, tail, rho, tail_weight=2.0):
    n = len(head) + len(tail)
    c = tail_weight * len(tail) / n
    g_t = c * grad(w, tail)
    eps = rho * g_t / (np.linalg.norm(g_t) + 1e-12)
    return len(head) / n * grad(w, head) + c * grad(w + eps, tail)


@right("check_imbsam_direction", "sums of per-example gradients")
def imbsam_direction_sums(grad, w, head, tail, rho, tail_weight=2.0):
    n = len(head) + len(tail)

    def total(x, idx):
        return sum(grad(x, np.array([i])) for i in idx)

    g_t = tail_weight * total(w, tail) / n
    eps = rho * g_t / np.linalg.norm(g_t)
    return total(w, head) / n + tail_weight * total(w + eps, tail) / n


@wrong("check_imbsam_direction", "the full gradient's ε", "ε follows the full gradient")
def imbsam_full(grad, w, head, tail, rho, tail_weight=2.0):
    n = len(head) + len(tail)
    c = tail_weight * len(tail) / n
    up = len(head) / n * grad(w, head) + c * grad(w, tail)
    return len(head) / n * grad(w, head) + c * grad(w + rho * up / np.linalg.norm(up), tail)


@wrong("check_imbsam_direction", "both means, no n weights", ANY_FAILURE)
def imbsam_means(grad, w, head, tail, rho, tail_weight=2.0):
    g_t = tail_weight * grad(w, tail)
    return grad(w, head) + tail_weight * grad(w + rho * g_t / np.linalg.norm(g_t), tail)


# --------------------------------------------------------------------------- eigenvalues


def power_iteration(hvp, d, iters=3000, tol=1e-13):
    v = np.ones(d) / np.sqrt(d) + np.arange(d) * 1e-3
    mu = 0.0
    for _ in range(iters):
        hv = np.asarray(hvp(v), dtype=float)
        mu_new = float(v @ hv / (v @ v))
        v = hv / np.linalg.norm(hv)
        if abs(mu_new - mu) <= tol * max(1.0, abs(mu_new)):
            break
        mu = mu_new
    return mu_new


@right("check_largest_eigenvalue", "shifted power iteration")
def largest_eigenvalue(hvp, d):
    mu = power_iteration(hvp, d)
    if mu >= 0:
        return mu
    return power_iteration(lambda v: hvp(v) - mu * v, d) + mu


@right("check_largest_eigenvalue", "sampy.sharpness's power iteration, as the book's solution")
def largest_eigenvalue_book(hvp, d):
    from sampy.sharpness import power_iteration_top_eigenvalue

    mu = power_iteration_top_eigenvalue(hvp, d)
    if mu >= 0:
        return mu
    return power_iteration_top_eigenvalue(lambda v: hvp(v) - mu * v, d) + mu


@wrong("check_largest_eigenvalue", "the dominant eigenvalue", "largest magnitude")
def largest_eigenvalue_dominant(hvp, d):
    return power_iteration(hvp, d)


# --------------------------------------------------------------------------- checkpoints


@right("check_checkpoints", "np.select")
def checkpoints(g, g_adv):
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(g != 0, g_adv / g, np.nan)
    return np.select([r > 1, (r > 0) & (r < 1), r < -1, (r > -1) & (r < 0)], [1, 2, 3, 4], 0)


@right("check_checkpoints", "nested loops over any shape")
def checkpoints_loops(g, g_adv):
    out = np.zeros(np.shape(g), dtype=int)
    for index in np.ndindex(np.shape(g)):
        if g[index] == 0:
            continue
        r = g_adv[index] / g[index]
        out[index] = 1 if r > 1 else 2 if 0 < r < 1 else 3 if r < -1 else 4 if -1 < r < 0 else 0
    return out


@right("check_checkpoints", "float32 inputs")
def checkpoints_float32(g, g_adv):
    return checkpoints(*f32(g, g_adv))


@wrong("check_checkpoints", "ratio upside down", "upside down")
def checkpoints_inverted(g, g_adv):
    return checkpoints(g_adv, g)


@wrong("check_checkpoints", "a 1-D loop (the batch case)", "your function raised ValueError")
def checkpoints_1d(g, g_adv):
    out = []
    for a, b in zip(g, g_adv, strict=True):
        r = b / a if a != 0 else 0.0
        out.append(1 if r > 1 else 2 if 0 < r < 1 else 3 if r < -1 else 4 if -1 < r < 0 else 0)
    return np.array(out)
