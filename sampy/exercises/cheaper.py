"""Exercises of the chapter "Making SAM cheaper": LookSAM's reuse step, ESAM's data selection
and projected multi-step ascent.

1. ``looksam_reuse(g0, g_s, g, alpha) -> d``. At the last SAM step LookSAM saw the clean
   gradient ``g0`` and the SAM gradient ``g_s``; it stored the part of ``g_s`` orthogonal to
   ``g0``, ``g_v = g_s − (⟨g_s, g0⟩/‖g0‖²) g0``. On a reuse step, with the clean gradient ``g``,
   the direction is ``d = g + ψ (‖g‖/‖g_v‖) g_v`` with ψ = ``alpha`` (the paper's α; Y. Liu,
   S. Mai, X. Chen, C.-J. Hsieh, Y. You,
   "Towards Efficient and Scalable Sharpness-Aware Minimization", CVPR 2022). The reference is
   ``sampy.optim.LookSAM`` itself, driven through one SAM step and one reuse step.
2. ``sds_select(loss_before, loss_after, gamma) -> mask``. ESAM's sharpness-sensitive data
   selection keeps the ``k = max(1, ⌊φn⌋)`` examples (φ = ``gamma``) whose loss rises most under the
   perturbation, ties going to the lower index (J. Du et al., "Efficient Sharpness-aware
   Minimization for Improved Training of Neural Networks", ICLR 2022). The reference is
   ``sampy.optim.ESAM.select``.
3. ``projected_ascent(grad, w, rho, k) -> eps``. Multi-step ascent as P. Foret, A. Kleiner,
   H. Mobahi, B. Neyshabur ("Sharpness-Aware Minimization for Efficiently Improving
   Generalization", ICLR 2021, Appendix C.6) run it: from ``ε_0 = 0``, k steps
   ``ε ← Π(ε + ρ ∇L(w + ε)/‖∇L(w + ε)‖)``, where Π projects onto the ball ``‖ε‖ ≤ ρ``; the
   result is ``ε_k``. The reference is written here (``sampy.optim.MultiStepSAM`` is the
   unprojected form, one of the mistakes).

Each checker recognises the typical mistakes, one wrong function each (``LOOKSAM_MISTAKES``,
``SDS_MISTAKES``, ``ASCENT_MISTAKES``), and every case is built so that no two of them give the
same answer.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sampy.exercises.feedback import Case, Feedback, Mistake, compare_with_reference
from sampy.optim import ESAM, SGD, LookSAM, Oracle
from sampy.optim.masks import top_k_mask

# --------------------------------------------------------------------------- LookSAM's reuse


def _reference_looksam_reuse(
    g0: np.ndarray, g_s: np.ndarray, g: np.ndarray, alpha: float
) -> np.ndarray:
    """LookSAM's reuse direction, read off ``sampy.optim.LookSAM`` with ``k = 2``.

    A scripted oracle hands out ``g0`` (step 0, at w), ``g_s`` (step 0, at w + ε) and ``g``
    (step 1, a reuse step); with ``SGD(lr=1)`` the direction of step 1 is ``w_1 − w_2``.
    """
    script = iter([np.asarray(v, dtype=float) for v in (g0, g_s, g)])
    oracle = Oracle.from_gradient(lambda w: next(script))
    opt = LookSAM(SGD(lr=1.0), rho=0.1, k=2, alpha=alpha)
    w0 = np.zeros(np.shape(g))
    w1, state = opt.step(w0, opt.init(w0), oracle)
    w2, _ = opt.step(w1, state, oracle)
    return w1 - w2


def _orthogonal(g_s: np.ndarray, g0: np.ndarray) -> np.ndarray:
    return g_s - (g_s @ g0) / (g0 @ g0) * g0


def _rescaled(g: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.linalg.norm(g) / (np.linalg.norm(v) + 1e-8) * v


LOOKSAM_MISTAKES = (
    Mistake(
        "the reused part is ψ g_v, without the ratio ‖g‖/‖g_v‖: LookSAM rescales the stored "
        "direction to the size of the current gradient, so that ‖d − g‖ = ψ ‖g‖",
        lambda g0, g_s, g, alpha: g + alpha * _orthogonal(g_s, g0),
    ),
    Mistake(
        "you stored the projection of g_s onto g0 (the part along the old gradient); LookSAM "
        "stores what is left after removing it, g_v = g_s − (⟨g_s, g0⟩/‖g0‖²) g0, orthogonal "
        "to g0",
        lambda g0, g_s, g, alpha: g + alpha * _rescaled(g, (g_s @ g0) / (g0 @ g0) * g0),
    ),
    Mistake(
        "you reused the whole SAM gradient g_s: store only its component orthogonal to g0 "
        "(the part along g is supplied fresh by g on every step)",
        lambda g0, g_s, g, alpha: g + alpha * _rescaled(g, g_s),
    ),
    Mistake(
        "g_v was made orthogonal to the current g; it is computed once, at the SAM step, "
        "orthogonal to that step's clean gradient g0, and then only rescaled",
        lambda g0, g_s, g, alpha: g + alpha * _rescaled(g, _orthogonal(g_s, g)),
    ),
    Mistake(
        "you returned the stale SAM gradient g_s of the last SAM step: a reuse step starts "
        "from the fresh clean gradient g and adds the rescaled g_v",
        lambda g0, g_s, g, alpha: np.array(g_s, dtype=float),
    ),
    Mistake(
        "the clean gradient g is missing: d = g + ψ (‖g‖/‖g_v‖) g_v, not only the reused part",
        lambda g0, g_s, g, alpha: alpha * _rescaled(g, _orthogonal(g_s, g0)),
    ),
)


def _looksam_case(name: str, seed: int, dim: int, alpha: float) -> Case:
    rng = np.random.default_rng(seed)
    g0, g = rng.normal(size=(2, dim))
    g_s = g0 + 0.8 * rng.normal(size=dim)  # a SAM gradient: g0 plus a curvature term
    return Case(name, (g0, g_s, g, alpha))


LOOKSAM_CASES = (
    _looksam_case("3 coordinates, ψ = 0.7", 0, 3, 0.7),
    _looksam_case("5 coordinates, ψ = 0.3", 1, 5, 0.3),
    _looksam_case("8 coordinates, ψ = 1.5", 2, 8, 1.5),
)


def check_looksam_reuse(
    looksam_reuse: Callable[[np.ndarray, np.ndarray, np.ndarray, float], np.ndarray],
) -> Feedback:
    """Check ``looksam_reuse(g0, g_s, g, alpha) -> d`` against ``sampy.optim.LookSAM``."""
    return compare_with_reference(
        "looksam_reuse",
        looksam_reuse,
        _reference_looksam_reuse,
        LOOKSAM_CASES,
        LOOKSAM_MISTAKES,
        rtol=1e-6,
    )


# --------------------------------------------------------------------------- ESAM's SDS


def _reference_sds_select(
    loss_before: np.ndarray, loss_after: np.ndarray, gamma: float
) -> np.ndarray:
    """ESAM's selection, by ``sampy.optim.ESAM.select``: a boolean mask of k examples."""
    esam = ESAM(SGD(lr=1.0), gamma=gamma)
    return esam.select(np.asarray(loss_after, dtype=float) - np.asarray(loss_before, dtype=float))


def _k(n: int, gamma: float) -> int:
    return max(1, int(n * gamma))


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    mask = np.zeros(scores.shape, dtype=bool)
    mask[np.argsort(-scores, kind="stable")[:k]] = True
    return mask


def _strict(before: np.ndarray, after: np.ndarray, gamma: float) -> np.ndarray:
    s = after - before
    threshold = np.sort(s)[::-1][_k(s.size, gamma) - 1]
    return s > threshold


def _at_least_kth(before: np.ndarray, after: np.ndarray, gamma: float) -> np.ndarray:
    s = after - before
    return s >= np.sort(s)[::-1][_k(s.size, gamma) - 1]


def _ties_to_the_higher_index(before: np.ndarray, after: np.ndarray, gamma: float) -> np.ndarray:
    s = after - before
    mask = np.zeros(s.shape, dtype=bool)
    mask[np.argsort(s, kind="stable")[::-1][: _k(s.size, gamma)]] = True
    return mask


SDS_MISTAKES = (
    Mistake(
        "you chose the examples with the largest loss after the perturbation; SDS ranks by the "
        "increase ℓ_i(w + ε) − ℓ_i(w), the instance sharpness, not by the loss",
        lambda before, after, gamma: _top(np.asarray(after), _k(len(after), gamma)),
    ),
    Mistake(
        "you kept the examples whose loss rises least: sort by decreasing increase",
        lambda before, after, gamma: _top(
            -(np.asarray(after) - np.asarray(before)), _k(len(after), gamma)
        ),
    ),
    Mistake(
        "a strict threshold s_i > c at the k-th largest value c keeps "
        "fewer than k examples — k − 1 without ties, none when every s_i is equal: take the "
        "top k of a stable sort instead",
        lambda before, after, gamma: _strict(np.asarray(before), np.asarray(after), gamma),
    ),
    Mistake(
        "ties at the boundary went to the higher index (a reversed ascending sort); break ties "
        "towards the lower index, e.g. np.argsort(-s, kind='stable')",
        lambda before, after, gamma: _ties_to_the_higher_index(
            np.asarray(before), np.asarray(after), gamma
        ),
    ),
    Mistake(
        "you kept every example whose rise reaches the k-th largest, s_i ≥ c: with ties at "
        "the boundary that is more than k examples; keep exactly k = max(1, ⌊φ n⌋), ties "
        "going to the lower index (a stable sort of −s)",
        lambda before, after, gamma: _at_least_kth(np.asarray(before), np.asarray(after), gamma),
    ),
    Mistake(
        "k was rounded up; ESAM keeps k = max(1, ⌊φ n⌋) examples",
        lambda before, after, gamma: _top(
            np.asarray(after) - np.asarray(before), int(np.ceil(len(after) * gamma))
        ),
    ),
)


def _sds_case(name: str, before: list[float], rise: list[float], gamma: float) -> Case:
    # Quarters are exact in floating point, so after − before gives the rises (and ties) exactly.
    b = np.array(before, dtype=float)
    return Case(name, (b, b + np.array(rise, dtype=float), gamma))


SDS_CASES = (
    # n = 7, φ = 0.5: k = 3; the 3rd and 4th largest rises tie (indices 2 and 5).
    _sds_case(
        "7 examples, φ = 0.5",
        [3.0, 0.25, 0.5, 2.5, 0.75, 1.0, 0.5],
        [0.25, 1.0, 0.5, 0.0, 0.75, 0.5, 0.0],
        0.5,
    ),
    # n = 10, φ = 0.35: k = 3; a three-way tie at the boundary (indices 3, 6, 8).
    _sds_case(
        "10 examples, φ = 0.35",
        [0.5, 4.0, 1.0, 0.25, 2.0, 0.75, 0.5, 3.0, 1.5, 0.25],
        [1.25, 0.0, 0.25, 0.5, 0.25, 1.0, 0.5, 0.25, 0.5, 0.0],
        0.35,
    ),
    # n = 9, φ = 0.3: k = 2; the 2nd and 3rd largest rises tie (indices 1 and 7).
    _sds_case(
        "9 examples, φ = 0.3",
        [1.0, 0.5, 2.0, 0.25, 1.5, 3.5, 0.75, 0.25, 2.5],
        [0.5, 0.75, 0.25, 1.0, 0.0, 0.25, 0.5, 0.75, 0.5],
        0.3,
    ),
    # n = 8, φ = 0.3: k = 2 (2.4 rounded down), no tie at the boundary: rounding k up keeps
    # 3 examples, while s_i ≥ c keeps the right 2 (told apart from the rounding on the cases
    # above, where both keep the tie).
    _sds_case(
        "8 examples, φ = 0.3, no tie",
        [1.0, 2.0, 0.5, 0.25, 1.5, 3.0, 0.75, 2.5],
        [0.25, 1.25, 0.0, 0.75, 0.5, 1.0, 0.0, 0.25],
        0.3,
    ),
)


def check_sds_selection(
    sds_select: Callable[[np.ndarray, np.ndarray, float], np.ndarray],
) -> Feedback:
    """Check ``sds_select(loss_before, loss_after, gamma) -> boolean mask`` against ESAM."""
    return compare_with_reference(
        "sds_select", sds_select, _reference_sds_select, SDS_CASES, SDS_MISTAKES
    )


# --------------------------------------------------------------------------- projected ascent

GradFn = Callable[[np.ndarray], np.ndarray]


def _unit_step(grad: GradFn, point: np.ndarray, length: float) -> np.ndarray:
    g = np.asarray(grad(point), dtype=float)
    return length * g / (np.linalg.norm(g) + 1e-12)


def _project(e: np.ndarray, rho: float) -> np.ndarray:
    norm = np.linalg.norm(e)
    return e if norm <= rho else e * (rho / norm)


def _reference_projected_ascent(grad: GradFn, w: np.ndarray, rho: float, k: int) -> np.ndarray:
    """Foret et al.'s projected ascent: ``ε ← Π(ε + ρ ĝ(w + ε))`` k times from 0; ``ε_k``."""
    w = np.asarray(w, dtype=float)
    e = np.zeros_like(w)
    for _ in range(k):
        e = _project(e + _unit_step(grad, w + e, rho), rho)
    return e


def _unprojected(grad: GradFn, w: np.ndarray, rho: float, k: int, length: float) -> np.ndarray:
    w = np.asarray(w, dtype=float)
    e = np.zeros_like(w)
    for _ in range(k):
        e = e + _unit_step(grad, w + e, length)
    return e


def _projected_once(grad: GradFn, w: np.ndarray, rho: float, k: int) -> np.ndarray:
    return _project(_unprojected(grad, w, rho, k, rho), rho)


def _point_projected(grad: GradFn, w: np.ndarray, rho: float, k: int) -> np.ndarray:
    w = np.asarray(w, dtype=float)
    u = w.copy()
    for _ in range(k):
        u = _project(u + _unit_step(grad, u, rho), rho)  # the ball around 0, not around w
    return u - w


ASCENT_MISTAKES = (
    Mistake(
        "no projection: k steps of length ρ can end kρ from w (the form of optax's sam and of "
        "sampy.optim.MultiStepSAM); project ε back onto the ball ‖ε‖ ≤ ρ after every step",
        lambda grad, w, rho, k: _unprojected(grad, w, rho, k, rho),
    ),
    Mistake(
        "you projected only once, at the end: the gradients of the later steps must be taken "
        "at the projected points, so project after every step",
        _projected_once,
    ),
    Mistake(
        "you projected the point w + ε onto the ball around the origin; the ball is centred at "
        "w: project the perturbation ε onto ‖ε‖ ≤ ρ",
        _point_projected,
    ),
    Mistake(
        "steps of ρ/k without projection stay in the ball but are a different method (the "
        "chapter's cost-benefit runs); the projected ascent takes steps of ρ and projects",
        lambda grad, w, rho, k: _unprojected(grad, w, rho, k, rho / k),
    ),
    Mistake(
        "only one ascent step (this is SAM's ε = ρ g/‖g‖): take k steps, each from the "
        "current perturbed point w + ε",
        lambda grad, w, rho, k: _unit_step(grad, np.asarray(w, dtype=float), rho),
    ),
    Mistake(
        "you returned the point w + ε_k; return the perturbation ε_k",
        lambda grad, w, rho, k: (
            np.asarray(w, dtype=float) + _reference_projected_ascent(grad, w, rho, k)
        ),
    ),
)


def _quadratic_grad(w: np.ndarray) -> np.ndarray:
    return np.array([1.0, 10.0]) * (np.asarray(w, dtype=float) - np.array([0.5, -0.2]))


def _toy_grad(w: np.ndarray) -> np.ndarray:
    from sampy.functions import get  # imported here: the checkers load without the landscapes

    return get("sharp_flat").grad(np.asarray(w, dtype=float))


def _rosenbrock_grad(w: np.ndarray) -> np.ndarray:
    x, y = np.asarray(w, dtype=float)
    return np.array([-2 * (1 - x) - 400 * x * (y - x**2), 200 * (y - x**2)])


ASCENT_CASES = (
    Case("ill-conditioned quadratic, k = 3", (_quadratic_grad, np.array([1.5, 0.3]), 0.5, 3)),
    Case("sharp/flat toy, k = 4", (_toy_grad, np.array([0.6, -0.25]), 0.1, 4)),
    Case("Rosenbrock, k = 5", (_rosenbrock_grad, np.array([-1.0, 1.5]), 0.2, 5)),
)


def check_projected_ascent(
    projected_ascent: Callable[[GradFn, np.ndarray, float, int], np.ndarray],
) -> Feedback:
    """Check ``projected_ascent(grad, w, rho, k) -> eps`` (Foret et al.'s projected ascent)."""
    return compare_with_reference(
        "projected_ascent",
        projected_ascent,
        _reference_projected_ascent,
        ASCENT_CASES,
        ASCENT_MISTAKES,
        rtol=1e-6,
    )


# --------------------------------------------------------------------------- LookSAM's schedule


def _reference_looksam_sam_steps(k: int, steps: int) -> np.ndarray:
    """Which of ``steps`` steps of ``sampy.optim.LookSAM`` evaluate the gradient twice."""
    opt = LookSAM(SGD(lr=0.01), rho=0.1, k=k, alpha=0.7)
    oracle = Oracle.from_gradient(lambda w: w - 1.0)  # any gradient: only the count matters
    w = np.zeros(2)
    state, sam_steps = opt.init(w), []
    for _ in range(steps):
        before = oracle.calls
        w, state = opt.step(w, state, oracle)
        sam_steps.append(oracle.calls - before == 2)
    return np.array(sam_steps)


def _period(k: int, steps: int, period: int, first: int = 0) -> np.ndarray:
    # A period k − 1 = 0 (at k = 1) reads as every step, which is then right.
    return (np.arange(steps) - first) % max(period, 1) == 0


SCHEDULE_MISTAKES = (
    Mistake(
        "your SAM steps are t = k − 1, 2k − 1, … ((t + 1) % k == 0): LookSAM's counter starts "
        "at 0 and its first step is a SAM step (there is no stored direction to reuse yet), "
        "so the SAM steps are t % k == 0: t = 0, k, 2k, …",
        lambda k, steps: _period(k, steps, k, first=k - 1),
    ),
    Mistake(
        "a SAM step every k + 1 steps: between two SAM steps there are k − 1 reuse steps, not "
        "k (t % k == 0, counting from 0)",
        lambda k, steps: _period(k, steps, k + 1),
    ),
    Mistake(
        "a SAM step every k − 1 steps: LookSAM computes the SAM gradient once per k steps, "
        "t % k == 0",
        lambda k, steps: _period(k, steps, k - 1),
    ),
    Mistake(
        "SAM steps and reuse steps are swapped: True marks the steps that compute the SAM "
        "gradient (t % k == 0), False the reuse steps",
        lambda k, steps: ~_period(k, steps, k),
    ),
)

SCHEDULE_CASES = (
    Case("k = 5, 12 steps", (5, 12)),
    Case("k = 3, 10 steps", (3, 10)),
    Case("k = 4, 9 steps", (4, 9)),
    Case("k = 1 (SAM on every step), 4 steps", (1, 4)),
)


def check_looksam_schedule(looksam_sam_steps: Callable[[int, int], np.ndarray]) -> Feedback:
    """Check ``looksam_sam_steps(k, steps) -> mask``: True on the steps t = 0, 1, …, steps − 1
    that compute the SAM gradient, counted from ``sampy.optim.LookSAM``'s gradient evaluations.
    """
    return compare_with_reference(
        "looksam_sam_steps",
        looksam_sam_steps,
        _reference_looksam_sam_steps,
        SCHEDULE_CASES,
        SCHEDULE_MISTAKES,
    )


# --------------------------------------------------------------------------- SSAM's Fisher mask


def _reference_ssam_mask(fisher: np.ndarray, sparsity: float) -> np.ndarray:
    """SSAM-F's mask: the ``int(d (1 − s))`` largest Fisher scores, ties to the lower index.

    As ``sampy.optim.SSAMF``'s refresh (P. Mi, L. Shen, T. Ren, Y. Zhou, X. Sun, R. Ji, D. Tao,
    "Make Sharpness-Aware Minimization Stronger: A Sparsified Perturbation Approach",
    NeurIPS 2022), by ``sampy.optim.masks.top_k_mask``.
    """
    fisher = np.asarray(fisher, dtype=float)
    return top_k_mask(fisher, int(fisher.shape[-1] * (1.0 - sparsity)))


def _ssam_kept(fisher: np.ndarray, k: int, *, lowest: bool = False) -> np.ndarray:
    scores = -np.asarray(fisher, dtype=float) if lowest else np.asarray(fisher, dtype=float)
    return _top(scores, k)


def _ssam_strict(fisher: np.ndarray, sparsity: float) -> np.ndarray:
    f = np.asarray(fisher, dtype=float)
    k = int(f.size * (1.0 - sparsity))
    return f > np.sort(f)[::-1][k - 1] if k > 0 else np.zeros(f.shape, dtype=bool)


SSAM_MISTAKES = (
    Mistake(
        "you kept a fraction s of the coordinates: the sparsity s is the fraction left out, so "
        "the mask keeps ⌊d (1 − s)⌋ coordinates",
        lambda fisher, s: _ssam_kept(fisher, int(len(fisher) * s)),
    ),
    Mistake(
        "you kept the coordinates of smallest Fisher score: SSAM-F perturbs where the Fisher "
        "information is largest",
        lambda fisher, s: _ssam_kept(fisher, int(len(fisher) * (1.0 - s)), lowest=True),
    ),
    Mistake(
        "k was rounded up: the mask keeps ⌊d (1 − s)⌋ coordinates (int(), as the official code)",
        lambda fisher, s: _ssam_kept(fisher, int(np.ceil(len(fisher) * (1.0 - s)))),
    ),
    Mistake(
        "a strict threshold F_i > c at the k-th largest score c keeps fewer than k coordinates; "
        "take the top k of a stable sort instead",
        _ssam_strict,
    ),
    Mistake(
        "ties at the boundary went to the higher index; break ties towards the lower index, "
        "e.g. np.argsort(-F, kind='stable')",
        lambda fisher, s: _ties_to_the_higher_index(
            np.zeros(len(fisher)), np.asarray(fisher, dtype=float), 1.0 - s
        ),
    ),
)

SSAM_CASES = (
    # d = 10, s = 0.25: k = 7 (7.5 rounded down); the 6th to 8th largest tie (indices 0, 4, 7).
    Case(
        "10 scores, s = 0.25",
        (np.array([0.75, 2.0, 0.125, 1.5, 0.75, 3.0, 0.25, 0.75, 1.0, 4.0]), 0.25),
    ),
    # d = 7, s = 0.4: k = 4 (4.2 rounded down); a tie at the boundary (indices 1 and 4).
    Case("7 scores, s = 0.4", (np.array([2.0, 0.5, 0.25, 3.0, 0.5, 0.125, 1.0]), 0.4)),
    # d = 5, s = 0.3: k = 3 (3.5 rounded down), no tie.
    Case("5 scores, s = 0.3", (np.array([0.2, 1.3, 0.7, 0.05, 2.1]), 0.3)),
)


def check_ssam_mask(ssam_mask: Callable[[np.ndarray, float], np.ndarray]) -> Feedback:
    """Check ``ssam_mask(fisher, sparsity) -> boolean mask`` against SSAM-F's refresh."""
    return compare_with_reference(
        "ssam_mask", ssam_mask, _reference_ssam_mask, SSAM_CASES, SSAM_MISTAKES
    )
