"""LookSAM: compute SAM's extra direction every k steps and reuse it in between.

Y. Liu, S. Mai, X. Chen, C.-J. Hsieh, Y. You, "Towards Efficient and Scalable Sharpness-Aware
Minimization", CVPR 2022, arXiv:2203.02714 (no official code). Global norms (as MSAM's authors
implement it, MarlonBecker/MSAM ``optimizer/looksam.py``), with its own step counter t = 0, 1, …
(step 0 is a SAM step):

1. ``g = ∇L(w)``
2. if ``t mod k = 0`` (2 evaluations):
   ``g_s = ∇L(w + ρ g/(‖g‖ + eps))``;  ``g_v = g_s − (⟨g_s, g⟩/‖g‖²) g``  (⟂ g; 0 if g = 0);
   ``d = g_s``
3. else (1 evaluation): ``d = g + ψ (‖g‖/(‖g_v‖ + 1e-8)) g_v``
4. ``w ← base.update(w, d)`` at ``w``

On average ``1 + 1/k`` gradient evaluations per step. Unlike pytorch-optimizer's and
rollovd's LookSAM, the weights are restored only on SAM steps (they restore a stale copy on
every step, discarding the progress of the reuse steps), and the projection uses global,
eps-guarded norms (theirs are per tensor with no eps).
ψ = ``alpha`` (Liu et al. call it α). Reduces to: SAM when k = 1; the base optimizer on g at reuse
steps when ψ = 0; the base optimizer when ρ = 0 (then ``g_v = 0``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from sampy.optim.base import BaseOptimizer, Oracle, check_base, per_point
from sampy.optim.hyper import Hyper, validate
from sampy.optim.perturbation import per_point_dot
from sampy.optim.sam import PERTURB_EPS, NormBallAscent


def projection_coefficient(g_s: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``⟨g_s, g⟩/‖g‖²`` per point, 0 where g = 0.

    No eps in the denominator (unlike the ``‖g‖² + eps`` of some implementations): with ρ = 0, g_s =
    g and the coefficient must be exactly 1 so that g_v = 0 and the reuse steps are base steps; an
    eps would leave g·eps/‖g‖², which the reuse scaling ‖g‖/(‖g_v‖ + 1e-8) then amplifies.
    """
    gg = per_point_dot(g, g)
    positive = gg > 0
    return np.where(positive, per_point_dot(g_s, g) / np.where(positive, gg, 1.0), 0.0)


class LookSAMState(NamedTuple):
    """Step counter, the stored orthogonal direction ``g_v`` and the base optimizer's state."""

    count: int
    g_v: np.ndarray | None
    base: object


class LookSAM:
    """LookSAM around a base optimizer: 2 evaluations every k-th step, 1 otherwise."""

    HYPERPARAMETERS = (
        Hyper("rho", 0.1, "radius ρ of the SAM steps' ball", 0.0, None, per_point=True),
        Hyper("k", 10, "a SAM step every k steps", 1, None, kind="int"),
        Hyper("alpha", 0.7, "weight ψ of the reused direction", 0.0, None),
        Hyper("adaptive", False, "ASAM's ball on SAM steps", kind="bool"),
        PERTURB_EPS,
    )

    def __init__(
        self,
        base: BaseOptimizer,
        rho: float | np.ndarray = 0.1,
        k: int = 10,
        alpha: float = 0.7,
        adaptive: bool = False,
        perturb_eps: float = 1e-12,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        check_base(base)
        self.base = base
        self.ascent = NormBallAscent(rho=rho, adaptive=adaptive, perturb_eps=perturb_eps)
        self.k = int(k)
        self.alpha = alpha
        self._alpha = per_point(alpha)
        self.perturb_eps = perturb_eps

    @property
    def grad_evals_per_step(self) -> float:
        """Average gradient evaluations per step: ``1 + 1/k``."""
        return 1.0 + 1.0 / self.k

    def init(self, x: np.ndarray) -> LookSAMState:
        """Counter 0, no stored direction yet."""
        return LookSAMState(count=0, g_v=None, base=self.base.init(x))

    def step(
        self, x: np.ndarray, state: LookSAMState, oracle: Oracle
    ) -> tuple[np.ndarray, LookSAMState]:
        """A SAM step (t mod k = 0) or a reuse step."""
        g = oracle.grad(x)
        g_v = state.g_v
        if state.count % self.k == 0:
            e, _ = self.ascent(x, g, None)
            g_s = oracle.grad(x + e)
            g_v = g_s - projection_coefficient(g_s, g) * g
            d = g_s
        else:
            scale = np.sqrt(per_point_dot(g, g)) / (np.sqrt(per_point_dot(g_v, g_v)) + 1e-8)
            d = g + self._alpha * scale * g_v
        x, base_state = self.base.update(x, d, state.base)
        return x, LookSAMState(count=state.count + 1, g_v=g_v, base=base_state)
