"""GSAM: Surrogate Gap Guided Sharpness-Aware Minimization.

J. Zhuang, B. Gong, L. Yuan, Y. Cui, H. Adam, N. Dvornek, S. Tatikonda, J. Duncan, T. Liu,
"Surrogate Gap Guided Sharpness-Aware Minimization", ICLR 2022, arXiv:2203.08065.

GSAM descends on the perturbed loss ``f_p`` and, orthogonally to ``∇f_p``, ascends on ``f`` to
shrink the surrogate gap ``h = f_p − f`` without changing ``f_p`` to first order. Two gradient
evaluations per step (the authors' code, juntang-zhuang/GSAM @ a770275b, ``gsam/gsam.py``):

1. ``g = ∇f(w)``;  ``ε = ρ_t g/(‖g‖ + eps)``  (ASAM form with ``adaptive``)
2. ``h = ∇f(w + ε)``
3. ``cos = ⟨g, h⟩ / (‖h‖‖g‖ + eps)``;  ``g_⊥ = g − cos ‖g‖ h/(‖h‖ + eps)``
4. ``d = h − α g_⊥``;  ``w ← base.update(w, d)`` at the unperturbed ``w``

``ρ_t`` follows the learning rate (``rho_schedule``, see ``proportional_rho``); constant by
default. Reduces to: SAM when α = 0 and ρ constant; the base optimizer when ρ = 0 (then
``g_⊥ = 0``). Always ``⟨d, h⟩ = ‖h‖²`` up to eps (the correction is orthogonal to h).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from sampy.optim.base import BaseOptimizer, per_point
from sampy.optim.hyper import Hyper, validate
from sampy.optim.perturbation import norm_ball_perturbation, per_point_dot
from sampy.optim.sam import NORM_BALL, NormBallAscent
from sampy.optim.sharpness_aware import SharpnessAware


def orthogonal_part(g: np.ndarray, h: np.ndarray, eps: float) -> np.ndarray:
    """The part of ``g`` orthogonal to ``h`` in GSAM's eps-guarded form (per point)."""
    g_norm = np.sqrt(per_point_dot(g, g))
    h_norm = np.sqrt(per_point_dot(h, h))
    cos = per_point_dot(g, h) / (h_norm * g_norm + eps)
    return g - cos * g_norm * h / (h_norm + eps)


class GSAMDescent:
    """Descent rule ``d = h − α g_⊥``."""

    def __init__(self, alpha: float, eps: float) -> None:
        self.alpha = alpha
        self.eps = eps

    def init(self, x: np.ndarray) -> None:
        """Stateless."""
        return None

    def __call__(self, g: np.ndarray, g_adv: np.ndarray, state: None) -> tuple[np.ndarray, None]:
        """``(d, None)``."""
        return g_adv - per_point(self.alpha) * orthogonal_part(g, g_adv, self.eps), None


class ScheduledNormBallAscent(NormBallAscent):
    """The norm-ball ascent with ``ρ_t = rho_schedule(t)`` (t = 0, 1, …) in its state."""

    def __init__(self, rho_schedule: Callable[[int], float], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rho_schedule = rho_schedule

    def init(self, x: np.ndarray) -> int:
        """The step counter."""
        return 0

    def __call__(self, x: np.ndarray, g: np.ndarray, state: int) -> tuple[np.ndarray, int]:
        """``(ε with ρ = rho_schedule(t), t + 1)``.

        ρ_t is not validated: an unclamped warm-up gives ρ_t < 0 (a descent "perturbation"),
        as big_vision's GSAM does (google-research/big_vision issue #80).
        """
        rho = self.rho_schedule(state)
        e = norm_ball_perturbation(x, g, rho, self.p, self.adaptive, self.eta, self.perturb_eps)
        return e, state + 1


def proportional_rho(
    lr_schedule: Callable[[int], float],
    lr_max: float,
    lr_min: float,
    rho_max: float,
    rho_min: float,
    clamp: bool = False,
) -> Callable[[int], float]:
    """GSAM's ρ schedule tied to the learning rate (``gsam/scheduler.py`` of the authors' code).

    ``ρ_t = ρ_min + (ρ_max − ρ_min)(lr_t − lr_min)/(lr_max − lr_min)``, and ``ρ_max`` when
    ``lr_max = lr_min``. During a warm-up ``lr_t < lr_min`` makes ρ_t negative
    (google-research/big_vision issue #80); ``clamp=True`` keeps ρ_t ≥ 0.
    """
    validate(
        (Hyper("rho_max", 0.05, "", 0.0), Hyper("rho_min", 0.0, "", 0.0)),
        dict(rho_max=rho_max, rho_min=rho_min),
    )

    def rho(t: int) -> float:
        if lr_max == lr_min:
            return rho_max
        value = rho_min + (rho_max - rho_min) * (lr_schedule(t) - lr_min) / (lr_max - lr_min)
        return max(value, 0.0) if clamp else value

    return rho


class GSAM(SharpnessAware):
    """GSAM around a base optimizer. Two gradient evaluations per step.

    Args:
        base: the base optimizer.
        rho: constant radius (used when ``rho_schedule`` is None).
        alpha: weight α of the surrogate-gap correction (0.4 as pytorch-optimizer).
        rho_schedule: optional ``t -> ρ_t`` (e.g. ``proportional_rho(...)``).
        p, adaptive, eta, perturb_eps: the ball, as in ``SAM``.
    """

    HYPERPARAMETERS = (
        *NORM_BALL,
        Hyper("alpha", 0.4, "weight α of the surrogate-gap correction", 0.0, None),
    )

    def __init__(
        self,
        base: BaseOptimizer,
        rho: float | np.ndarray = 0.05,
        alpha: float = 0.4,
        rho_schedule: Callable[[int], float] | None = None,
        p: float = 2.0,
        adaptive: bool = False,
        eta: float = 0.0,
        perturb_eps: float = 1e-12,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        ball = dict(rho=rho, p=p, adaptive=adaptive, eta=eta, perturb_eps=perturb_eps)
        if rho_schedule is None:
            ascent = NormBallAscent(**ball)
        else:
            if not callable(rho_schedule):
                raise ValueError(f"rho_schedule must be a callable t -> rho, got {rho_schedule!r}")
            ascent = ScheduledNormBallAscent(rho_schedule, **ball)
        super().__init__(base=base, ascent=ascent, descent=GSAMDescent(alpha, perturb_eps))
        self.alpha = alpha
