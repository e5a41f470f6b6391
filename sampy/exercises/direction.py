"""Exercises: GSAM's descent direction, WSAM's weighted direction and VaSSO's perturbations
(chapter "Fixing SAM's direction").

``gsam_direction(g, g_adv, alpha) -> d``: split the clean gradient ``g`` into its part along the
perturbed gradient ``g̃`` and the rest, ``g_⊥ = g − (⟨g, g̃⟩/‖g̃‖²) g̃``, and return
``d = g̃ − α g_⊥`` (J. Zhuang et al., "Surrogate Gap Guided Sharpness-Aware Minimization",
ICLR 2022). The checker compares with ``sampy.optim.gsam.GSAMDescent`` and names four typical
mistakes: ``g`` instead of ``g_⊥``, the wrong sign, the roles of ``g`` and ``g̃`` swapped in the
projection, and a projection that forgets to divide by ``‖g̃‖²``.

``wsam_direction(g, g_adv, gamma) -> d``: the coupled WSAM direction ``ω g̃ + (1 − ω) g`` with
``ω = γ/(1 − γ)`` (the paper's α; Y. Yue et al., "Sharpness-Aware Minimization Revisited:
Weighted Sharpness as a Regularization Term", KDD 2023); typical mistakes: γ used as the
weight, the weights swapped, the sharpness term added to g̃ instead of g.

``vasso_perturbations(grads, rho, theta) -> eps``: for gradients ``g_1, …, g_T`` (rows), VaSSO's
perturbations ``ε_t = ρ d_t/‖d_t‖`` with ``d_t = (1 − θ) d_{t−1} + θ g_t``, ``d_0 = 0``
(B. Li, G. B. Giannakis, "Enhancing Sharpness-Aware Optimization Through Variance
Suppression", NeurIPS 2023). The reference is ``sampy.optim.VaSSO``'s ascent rule; typical
mistakes: θ and 1 − θ swapped, ε = ρ d_t unnormalised, the average started at ``g_1`` instead
of 0, SAM's ``ρ g_t/‖g_t‖`` (no average at all).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sampy.exercises.feedback import Case, Feedback, Mistake, compare_with_reference
from sampy.optim import SGD, WSAM, Oracle
from sampy.optim.perturbation import unit
from sampy.optim.random_sam import MixedDescent
from sampy.optim.rules import GSAMDescent, VarianceSuppressedAscent

Vector = np.ndarray


def _reference_gsam_direction(g: Vector, g_adv: Vector, alpha: float) -> Vector:
    """GSAM's ``d = g̃ − α g_⊥``, by ``sampy.optim.gsam.GSAMDescent`` (eps = 1e-12)."""
    g, g_adv = np.asarray(g, dtype=float), np.asarray(g_adv, dtype=float)
    return GSAMDescent(alpha, 1e-12)(g, g_adv, None)[0]


def _proj(a: Vector, b: Vector) -> Vector:
    """The projection of ``a`` on ``b``."""
    return (a @ b) / (b @ b) * b


GSAM_MISTAKES = (
    Mistake(
        "d = g̃ − α g: subtract only the part of g orthogonal to g̃, g_⊥ = g − (⟨g, g̃⟩/‖g̃‖²) g̃; "
        "the parallel part would change the descent on the perturbed loss",
        lambda g, g_adv, alpha: g_adv - alpha * g,
    ),
    Mistake(
        "d = g̃ + α g_⊥: wrong sign; the step w − η d must move along +g_⊥ (uphill on L, which "
        "shrinks the surrogate gap), so d = g̃ − α g_⊥",
        lambda g, g_adv, alpha: g_adv + alpha * (g - _proj(g, g_adv)),
    ),
    Mistake(
        "you projected g̃ on g (g̃ − (⟨g̃, g⟩/‖g‖²) g): GSAM decomposes the clean gradient g "
        "along the perturbed gradient g̃, g_⊥ = g − (⟨g, g̃⟩/‖g̃‖²) g̃",
        lambda g, g_adv, alpha: g_adv - alpha * (g_adv - _proj(g_adv, g)),
    ),
    Mistake(
        "the projection is not normalised (g − ⟨g, g̃⟩ g̃): divide by ‖g̃‖², i.e. use the unit "
        "vector g̃/‖g̃‖ twice",
        lambda g, g_adv, alpha: g_adv - alpha * (g - (g @ g_adv) * g_adv),
    ),
)

GSAM_CASES = (
    Case("2-D, acute angle", (np.array([1.0, 2.0]), np.array([1.5, 1.0]), 0.4)),
    Case("3-D, obtuse angle", (np.array([0.3, -1.2, 0.5]), np.array([-0.8, 0.4, 2.0]), 0.6)),
    Case("large gradients", (np.array([4.0, 3.0, -2.0]), np.array([5.0, -1.0, 1.0]), 1.0)),
)


def check_gsam_direction(gsam_direction: Callable[[Vector, Vector, float], Vector]) -> Feedback:
    """Check ``gsam_direction(g, g_adv, alpha) -> d`` against ``sampy.optim.GSAM``'s rule."""
    return compare_with_reference(
        "gsam_direction", gsam_direction, _reference_gsam_direction, GSAM_CASES, GSAM_MISTAKES
    )


def _reference_wsam_direction(g: Vector, g_adv: Vector, gamma: float) -> Vector:
    """The direction coupled WSAM hands to SGD(lr = 1), read off ``sampy.optim.WSAM``."""
    g, g_adv = np.asarray(g, dtype=float), np.asarray(g_adv, dtype=float)
    grads = {0: g, 1: g_adv}
    count = iter(range(2))
    oracle = Oracle.from_gradient(lambda x: grads[next(count)])
    opt = WSAM(SGD(lr=1.0), rho=0.1, gamma=gamma, decouple=False)
    x = np.zeros_like(g)
    return x - opt.step(x, opt.init(x), oracle)[0]


def _alpha(gamma: float) -> float:
    return gamma / (1 - gamma)


WSAM_MISTAKES = (
    Mistake(
        "you weighted with γ itself (γ g̃ + (1 − γ) g): the objective L + (γ/(1−γ))(L_ρ − L) "
        "weights the sharpness by ω = γ/(1 − γ), so d = ω g̃ + (1 − ω) g",
        lambda g, g_adv, gamma: gamma * g_adv + (1 - gamma) * g,
    ),
    Mistake(
        "the weights are swapped (ω g + (1 − ω) g̃): the sharpness weight ω multiplies the "
        "perturbed gradient g̃",
        lambda g, g_adv, gamma: _alpha(gamma) * g + (1 - _alpha(gamma)) * g_adv,
    ),
    Mistake(
        "d = g̃ + ω(g̃ − g): the regulariser's gradient ω(g̃ − g) is added to the clean gradient g "
        "(the gradient of L), not to g̃",
        lambda g, g_adv, gamma: g_adv + _alpha(gamma) * (g_adv - g),
    ),
)

WSAM_CASES = (
    Case("γ = 0.9 (ω = 9)", (np.array([1.0, -2.0]), np.array([0.5, 1.0]), 0.9)),
    Case("γ = 0.2 (ω = 1/4)", (np.array([0.3, 0.7, -1.1]), np.array([1.3, -0.2, 0.4]), 0.2)),
)


def check_wsam_direction(wsam_direction: Callable[[Vector, Vector, float], Vector]) -> Feedback:
    """Check ``wsam_direction(g, g_adv, gamma) -> d`` against ``sampy.optim.WSAM`` (coupled)."""
    return compare_with_reference(
        "wsam_direction", wsam_direction, _reference_wsam_direction, WSAM_CASES, WSAM_MISTAKES
    )


def _reference_vasso_perturbations(grads: Vector, rho: float, theta: float) -> Vector:
    """VaSSO's ``ε_1, …, ε_T`` for the gradients ``grads`` (rows), by ``sampy.optim.VaSSO``'s
    ascent rule (``d_0 = 0``, guard 1e-12)."""
    grads = np.asarray(grads, dtype=float)
    ascent = VarianceSuppressedAscent(rho, theta, 1e-12)
    d = ascent.init(grads[0])
    out = []
    for g in grads:
        e, d = ascent(None, g, d)
        out.append(e)
    return np.stack(out)


def _unit_rows(v: Vector, rho: float) -> Vector:
    return rho * v / np.linalg.norm(v, axis=-1, keepdims=True)


def _ema(grads: Vector, theta: float, first: Vector | None) -> Vector:
    d = np.zeros_like(grads[0]) if first is None else first
    out = []
    for g in grads:
        d = (1 - theta) * d + theta * g
        out.append(d)
    return np.stack(out)


VASSO_MISTAKES = (
    Mistake(
        "the weights are swapped (d_t = θ d_{t−1} + (1 − θ) g_t): θ is the weight of the new "
        "gradient, d_t = (1 − θ) d_{t−1} + θ g_t, so that θ = 1 is SAM",
        lambda grads, rho, theta: _unit_rows(_ema(np.asarray(grads), 1 - theta, None), rho),
    ),
    Mistake(
        "ε = ρ d_t is not normalised: the perturbation is ρ d_t/‖d_t‖, of length ρ whatever "
        "the size of the average",
        lambda grads, rho, theta: rho * _ema(np.asarray(grads), theta, None),
    ),
    Mistake(
        "you started the average at the first gradient (d_0 = g_1): VaSSO starts at d_0 = 0, "
        "so d_1 = θ g_1 and the old gradients weigh (1 − θ)^k θ, not more",
        lambda grads, rho, theta: _unit_rows(
            _ema(np.asarray(grads), theta, np.asarray(grads, dtype=float)[0]), rho
        ),
    ),
    Mistake(
        "this is SAM's ρ g_t/‖g_t‖: VaSSO normalises the moving average d_t of the gradients, "
        "not the current gradient",
        lambda grads, rho, theta: _unit_rows(np.asarray(grads, dtype=float), rho),
    ),
)

_VASSO_GRADS = np.array(
    [[1.0, -2.0, 0.5], [0.2, -1.0, 1.5], [-0.8, -1.6, 0.1], [1.4, 0.3, -0.6], [0.6, -2.2, 0.9]]
)
VASSO_CASES = (
    Case("θ = 0.4, five steps", (_VASSO_GRADS, 0.05, 0.4)),
    Case("θ = 0.7, ρ = 0.5", (_VASSO_GRADS[::-1], 0.5, 0.7)),
    Case("θ = 0.2, 2-D", (np.array([[3.0, 1.0], [-1.0, 2.0], [0.5, -0.5], [2.0, 2.0]]), 0.1, 0.2)),
)


def check_vasso_perturbations(
    vasso_perturbations: Callable[[Vector, float, float], Vector],
) -> Feedback:
    """Check ``vasso_perturbations(grads, rho, theta) -> eps`` against ``sampy.optim.VaSSO``."""
    return compare_with_reference(
        "vasso_perturbations",
        vasso_perturbations,
        _reference_vasso_perturbations,
        VASSO_CASES,
        VASSO_MISTAKES,
    )


# --------------------------------------------------------------------------- random perturbation

GradFn = Callable[[Vector], Vector]


def _random_eps(z: Vector, rho: float, kind: str) -> Vector:
    z = np.asarray(z, dtype=float)
    return rho * z if kind == "gaussian" else unit(z, rho, 0.0)


def _reference_rwp_direction(
    grad: GradFn, w: Vector, z: Vector, rho: float, mix: float, kind: str = "gaussian"
) -> Vector:
    """The direction of one ``sampy.optim.RandomSAM`` step for the noise draw ``z``.

    ε = ρ z (Gaussian) or ρ z/‖z‖ (sphere); ``d = c ∇L(w) + (1 − c) ∇L(w + ε)`` by RandomSAM's
    descent rule (T. Li, W. Yan, Z. Lei, Y. Wu, K. Fang, M. Yang, X. Huang, "Efficient
    Generalization Improvement Guided by Random Weight Perturbation", arXiv:2211.11489, 2022).
    """
    w = np.asarray(w, dtype=float)
    g_adv = np.asarray(grad(w + _random_eps(z, rho, kind)), dtype=float)
    return MixedDescent(mix)(np.asarray(grad(w), dtype=float), g_adv, None)[0]


def _rwp(grad, w, eps, mix, *, swap=False):
    g, g_adv = grad(w), grad(w + eps)
    c = 1.0 - mix if swap else mix
    return c * g + (1.0 - c) * g_adv


RWP_MISTAKES = (
    Mistake(
        "the weights are swapped: mix = c weighs the clean gradient, d = c ∇L(w) + (1 − c) "
        "∇L(w + ε), so that mix = 0 is the perturbed gradient alone",
        lambda grad, w, z, rho, mix, kind="gaussian": _rwp(
            grad, w, _random_eps(z, rho, kind), mix, swap=True
        ),
    ),
    Mistake(
        "the noise has the wrong length: the Gaussian kind uses ε = ρ z as drawn, the sphere "
        "kind rescales it to length ρ, ε = ρ z/‖z‖",
        lambda grad, w, z, rho, mix, kind="gaussian": _rwp(
            grad, w, _random_eps(z, rho, "sphere" if kind == "gaussian" else "gaussian"), mix
        ),
    ),
    Mistake(
        "the gradient is taken at w − ε: the random point is w + ε (the sign matters for the "
        "draw you were given, even if on average it does not)",
        lambda grad, w, z, rho, mix, kind="gaussian": _rwp(
            grad, w, -_random_eps(z, rho, kind), mix
        ),
    ),
    Mistake(
        "you perturbed along the gradient, SAM's ε = ρ g/‖g‖: the random perturbation does not "
        "look at the gradient at all, ε comes from the noise z",
        lambda grad, w, z, rho, mix, kind="gaussian": _rwp(
            grad, w, rho * grad(w) / np.linalg.norm(grad(w)), mix
        ),
    ),
    Mistake(
        "the clean gradient is missing: d = c ∇L(w) + (1 − c) ∇L(w + ε), not ∇L(w + ε) alone",
        lambda grad, w, z, rho, mix, kind="gaussian": grad(w + _random_eps(z, rho, kind)),
    ),
)


def _bowl(w: Vector) -> Vector:
    return np.array([4.0, 1.0, 0.25]) * np.asarray(w, dtype=float)


def _curved(w: Vector) -> Vector:
    x, y = np.asarray(w, dtype=float)
    return np.array([x**3 - y, 2.0 * y - x + 0.5 * np.sin(3.0 * y)])


RWP_CASES = (
    Case(
        "Gaussian noise, c = 0.3",
        (_bowl, np.array([1.0, -2.0, 0.5]), np.array([0.8, 0.3, -1.1]), 0.2, 0.3),
    ),
    Case(
        "a random direction of length ρ, c = 0.25",
        (_curved, np.array([0.7, -0.4]), np.array([1.5, -2.0]), 0.3, 0.25, "sphere"),
    ),
    Case(
        "Gaussian noise on a curved landscape, c = 0.6",
        (_curved, np.array([-0.5, 1.2]), np.array([-0.4, 0.9]), 0.5, 0.6, "gaussian"),
    ),
)


def check_rwp_direction(rwp_direction: Callable[..., Vector]) -> Feedback:
    """Check ``rwp_direction(grad, w, z, rho, mix, kind="gaussian") -> d`` against
    ``sampy.optim.RandomSAM``'s rule for a given noise draw ``z``."""
    return compare_with_reference(
        "rwp_direction", rwp_direction, _reference_rwp_direction, RWP_CASES, RWP_MISTAKES
    )
