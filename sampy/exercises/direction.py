"""Exercises: GSAM's descent direction and WSAM's weighted direction (chapter "Fixing SAM's
direction").

``gsam_direction(g, g_adv, alpha) -> d``: split the clean gradient ``g`` into its part along the
perturbed gradient ``g̃`` and the rest, ``g_⊥ = g − (⟨g, g̃⟩/‖g̃‖²) g̃``, and return
``d = g̃ − α g_⊥`` (J. Zhuang et al., "Surrogate Gap Guided Sharpness-Aware Minimization",
ICLR 2022). The checker compares with ``sampy.optim.gsam.GSAMDescent`` and names four typical
mistakes: ``g`` instead of ``g_⊥``, the wrong sign, the roles of ``g`` and ``g̃`` swapped in the
projection, and a projection that forgets to divide by ``‖g̃‖²``.

``wsam_direction(g, g_adv, gamma) -> d``: the coupled WSAM direction ``α g̃ + (1 − α) g`` with
``α = γ/(1 − γ)`` (Y. Yue et al., "Sharpness-Aware Minimization Revisited: Weighted Sharpness as
a Regularization Term", KDD 2023); typical mistakes: γ used as the weight, the weights swapped,
the sharpness term added to g̃ instead of g.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sampy.exercises.feedback import Case, Feedback, Mistake, compare_with_reference
from sampy.optim import SGD, WSAM, Oracle
from sampy.optim.gsam import GSAMDescent

Vector = np.ndarray


def reference_gsam_direction(g: Vector, g_adv: Vector, alpha: float) -> Vector:
    """GSAM's ``d = g̃ − α g_⊥``, by ``sampy.optim.gsam.GSAMDescent`` (eps = 1e-12)."""
    g, g_adv = np.asarray(g, dtype=float), np.asarray(g_adv, dtype=float)
    return GSAMDescent(alpha, 1e-12)(g, g_adv, None)[0]


def _proj(a: Vector, b: Vector) -> Vector:
    """The projection of ``a`` on ``b``."""
    return (a @ b) / (b @ b) * b


GSAM_MISTAKES = (
    Mistake(
        "d = g̃ − α g: subtract only the part of g ORTHOGONAL to g̃, g_⊥ = g − (⟨g, g̃⟩/‖g̃‖²) g̃; "
        "the parallel part would change the descent on the perturbed loss",
        lambda g, g_adv, alpha: g_adv - alpha * g,
    ),
    Mistake(
        "d = g̃ + α g_⊥: wrong sign; the step w − η d must move ALONG +g_⊥ (uphill on L, which "
        "shrinks the surrogate gap), so d = g̃ − α g_⊥",
        lambda g, g_adv, alpha: g_adv + alpha * (g - _proj(g, g_adv)),
    ),
    Mistake(
        "you projected g̃ on g (g̃ − (⟨g̃, g⟩/‖g‖²) g): GSAM decomposes the CLEAN gradient g "
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
        "gsam_direction", gsam_direction, reference_gsam_direction, GSAM_CASES, GSAM_MISTAKES
    )


def reference_wsam_direction(g: Vector, g_adv: Vector, gamma: float) -> Vector:
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
        "weights the sharpness by α = γ/(1 − γ), so d = α g̃ + (1 − α) g",
        lambda g, g_adv, gamma: gamma * g_adv + (1 - gamma) * g,
    ),
    Mistake(
        "the weights are swapped (α g + (1 − α) g̃): the sharpness weight α multiplies the "
        "PERTURBED gradient g̃",
        lambda g, g_adv, gamma: _alpha(gamma) * g + (1 - _alpha(gamma)) * g_adv,
    ),
    Mistake(
        "d = g̃ + α(g̃ − g): the regulariser's gradient α(g̃ − g) is added to the CLEAN gradient g "
        "(the gradient of L), not to g̃",
        lambda g, g_adv, gamma: g_adv + _alpha(gamma) * (g_adv - g),
    ),
)

WSAM_CASES = (
    Case("γ = 0.9 (α = 9)", (np.array([1.0, -2.0]), np.array([0.5, 1.0]), 0.9)),
    Case("γ = 0.2 (α = 1/4)", (np.array([0.3, 0.7, -1.1]), np.array([1.3, -0.2, 0.4]), 0.2)),
)


def check_wsam_direction(wsam_direction: Callable[[Vector, Vector, float], Vector]) -> Feedback:
    """Check ``wsam_direction(g, g_adv, gamma) -> d`` against ``sampy.optim.WSAM`` (coupled)."""
    return compare_with_reference(
        "wsam_direction", wsam_direction, reference_wsam_direction, WSAM_CASES, WSAM_MISTAKES
    )
