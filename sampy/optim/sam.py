"""SAM, ASAM and p-norm SAM.

SAM: P. Foret, A. Kleiner, H. Mobahi, B. Neyshabur, "Sharpness-Aware Minimization for
Efficiently Improving Generalization", ICLR 2021, arXiv:2010.01412.
ASAM: J. Kwon, J. Kim, H. Park, I. K. Choi, "ASAM: Adaptive Sharpness-Aware Minimization for
Scale-Invariant Learning of Deep Neural Networks", ICML 2021, arXiv:2102.11600.

Objective: ``min_w max_{‖T⁻¹ε‖_p ≤ ρ} L(w + ε)`` with ``T = I`` (SAM) or
``T = diag(|w| + η)`` (ASAM). One step, two gradient evaluations:

1. ``g = ∇L(w)``
2. ``u = T g``;  ``ε = T · ρ sign(u) |u|^{q−1} / (‖u‖_q + eps)^{q−1}``, ``1/p + 1/q = 1``
   (p = 2: ``ε = ρ T²g / (‖Tg‖ + eps)``; SAM p = 2: ``ε = ρ g / (‖g‖ + eps)``)
3. ``g̃ = ∇L(w + ε)``
4. ``w ← base.update(w, g̃)`` — at the unperturbed ``w``

Reduces to: the base optimizer when ρ = 0; SAM when p = 2 and ``adaptive=False``; SAM when
``adaptive=True`` and ``T ≡ 1``. ASAM with η = 0 is covariant under rescalings that leave L
unchanged (``ε(Aw) = A ε(w)``); SAM is not.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sampy.optim.base import BaseOptimizer, per_point
from sampy.optim.hyper import Hyper, validate
from sampy.optim.perturbation import dual_direction, norm_ball_perturbation
from sampy.optim.sharpness_aware import PerturbedGradient, SharpnessAware

RHO = Hyper("rho", 0.05, "radius ρ of the perturbation ball", 0.0, None, per_point=True)
PERTURB_EPS = Hyper("perturb_eps", 1e-12, "guard in ρ/(‖g‖ + eps) against a zero gradient", 0.0)
NORM_BALL = (
    RHO,
    Hyper("p", 2.0, "norm of the ball (1 ≤ p ≤ ∞)", 1.0, None, allow_inf=True),
    Hyper("adaptive", False, "ASAM's ball ‖T⁻¹ε‖ ≤ ρ with T = |w| + ξ", kind="bool"),
    Hyper("eta", 0.0, "offset ξ in ASAM's T = |w| + ξ (Kwon et al.'s η)", 0.0, None),
    PERTURB_EPS,
)


class NormBallAscent:
    """Ascent rule: the first-order worst case in the (adaptive) p-norm ball of radius ρ."""

    HYPERPARAMETERS = NORM_BALL

    def __init__(
        self,
        rho: float | np.ndarray = 0.05,
        p: float = 2.0,
        adaptive: bool = False,
        eta: float = 0.0,
        perturb_eps: float = 1e-12,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        self.rho = rho
        self.p = float(p)
        self.adaptive = bool(adaptive)
        self.eta = float(eta)
        self.perturb_eps = float(perturb_eps)
        self._radius = per_point(rho)

    def init(self, x: np.ndarray) -> None:
        """Stateless."""
        return None

    def __call__(self, x: np.ndarray, g: np.ndarray, state: Any) -> tuple[np.ndarray, None]:
        """``(ε, None)``."""
        if self.p == 2 and not self.adaptive:  # plain SAM: skip a call layer on the hot path
            return dual_direction(g, 2.0, self._radius, self.perturb_eps), None
        e = norm_ball_perturbation(
            x, g, self._radius, self.p, self.adaptive, self.eta, self.perturb_eps
        )
        return e, None


class SAM(SharpnessAware):
    """Sharpness-Aware Minimization (and ASAM with ``adaptive=True``) around a base optimizer.

    Args:
        base: the base optimizer, e.g. ``SGD(lr=0.01)`` or ``Adam(lr=1e-3)``.
        rho: radius ρ ≥ 0 of the perturbation ball (a number, or one value per start point).
        p: the ball's norm, p ≥ 1 or ``math.inf`` (default 2).
        adaptive: ASAM's ball ``‖T⁻¹ε‖_p ≤ ρ`` with ``T = |w| + η``.
        eta: η ≥ 0 of ASAM's ``T`` (0 = the davda54 / pytorch-optimizer form).
        perturb_eps: the guard in ``ρ / (‖g‖ + perturb_eps)`` (1e-12 as davda54).
    """

    HYPERPARAMETERS = NORM_BALL

    def __init__(
        self,
        base: BaseOptimizer,
        rho: float | np.ndarray = 0.05,
        p: float = 2.0,
        adaptive: bool = False,
        eta: float = 0.0,
        perturb_eps: float = 1e-12,
    ) -> None:
        ascent = NormBallAscent(rho=rho, p=p, adaptive=adaptive, eta=eta, perturb_eps=perturb_eps)
        super().__init__(base=base, ascent=ascent, descent=PerturbedGradient())

    @property
    def rho(self) -> float | np.ndarray:
        """The radius ρ."""
        return self.ascent.rho

    def perturbation(self, x: np.ndarray, g: np.ndarray) -> np.ndarray:
        """The ascent step ``ε`` this SAM takes at ``x`` with clean gradient ``g``."""
        return self.ascent(x, g, None)[0]

    def __repr__(self) -> str:
        a = self.ascent
        return (
            f"SAM({self.base!r}, rho={a.rho}, p={a.p:g}, adaptive={a.adaptive}, eta={a.eta}, "
            f"perturb_eps={a.perturb_eps})"
        )
