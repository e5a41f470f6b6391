"""ClampSAM and ClipSAM: keep outlier coordinates from dominating SAM's steps.

The research notes on the anatomy of SAM's gradient (lhchau/sam-hessian, "Project1"): SAM cannot use
a large ρ because a few outlier gradient coordinates push the ascent too far. Their ``CLAMPSAM``
code (@ 805010c) clamped ε with a *lower* bound (every coordinate became ≥ 1: a bug, deleted in the
next commit); ``ClampSAM`` here is our reading of the intent (an upper bound τ on every |ε_i|). Two
gradient evaluations per step.

``ClampSAM``: ``ε_raw = ρ g/(‖g‖ + eps)``; ``ε = clip(ε_raw, −τ, τ)`` element-wise; with
``renorm`` rescale to ``‖ε‖ = ρ``; ``g̃ = ∇L(w + ε)``; ``w ← base.update(w, g̃)``.
Identities: τ ≥ ρ clips nothing (``|ε_i| ≤ ‖ε‖ ≤ ρ``) so it is SAM.

``ClipSAM`` (the notes' later ``CLIPSAM``, condition c): the descent coordinates keep the sign
of g̃ and are limited to ``c`` times the clean ones, ``|d_i| = min(|g̃_i|, c|g_i|)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sampy.optim.base import BaseOptimizer, per_point
from sampy.optim.hyper import Hyper, validate
from sampy.optim.perturbation import dual_direction
from sampy.optim.sam import PERTURB_EPS, RHO, NormBallAscent
from sampy.optim.sharpness_aware import PerturbedGradient, SharpnessAware


class ClampedAscent:
    """SAM's ascent clipped element-wise to ``[−τ, τ]`` (optionally renormalised to ρ)."""

    def __init__(self, rho: Any, tau: float, renorm: bool, eps: float) -> None:
        self.rho = per_point(rho)
        self.tau = tau
        self.renorm = renorm
        self.eps = eps

    def init(self, x: np.ndarray) -> None:
        """Stateless."""
        return None

    def __call__(self, x: np.ndarray, g: np.ndarray, state: None) -> tuple[np.ndarray, None]:
        """``(ε, None)``."""
        e = np.clip(dual_direction(g, 2.0, self.rho, self.eps), -self.tau, self.tau)
        if self.renorm:
            e = dual_direction(e, 2.0, self.rho, self.eps)
        return e, None


class ClampSAM(SharpnessAware):
    """SAM with the ascent clipped coordinate-wise to ``[−tau, tau]``."""

    HYPERPARAMETERS = (
        RHO,
        Hyper("tau", 0.02, "largest ascent move τ of one coordinate", 0.0, None, low_open=True),
        Hyper("renorm", False, "rescale the clipped ε back to length ρ", kind="bool"),
        PERTURB_EPS,
    )

    def __init__(
        self,
        base: BaseOptimizer,
        rho: float | np.ndarray = 0.05,
        tau: float = 0.02,
        renorm: bool = False,
        perturb_eps: float = 1e-12,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        super().__init__(base, ClampedAscent(rho, tau, renorm, perturb_eps), PerturbedGradient())


class RatioClip:
    """Descent rule ``d = sign(g̃) ⊙ min(|g̃|, c|g|)``."""

    def __init__(self, condition: float) -> None:
        self.condition = condition

    def init(self, x: np.ndarray) -> None:
        """Stateless."""
        return None

    def __call__(self, g: np.ndarray, g_adv: np.ndarray, state: None) -> tuple[np.ndarray, None]:
        """``(d, None)``."""
        return np.sign(g_adv) * np.minimum(np.abs(g_adv), self.condition * np.abs(g)), None


class ClipSAM(SharpnessAware):
    """SAM whose descent coordinates are limited to ``condition`` times SGD's."""

    HYPERPARAMETERS = (
        RHO,
        Hyper("condition", 10.0, "largest ratio c = |g̃_i|/|g_i| kept", 0.0, None),
        PERTURB_EPS,
    )

    def __init__(
        self,
        base: BaseOptimizer,
        rho: float | np.ndarray = 0.05,
        condition: float = 10.0,
        perturb_eps: float = 1e-12,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        super().__init__(
            base, NormBallAscent(rho=rho, perturb_eps=perturb_eps), RatioClip(condition)
        )
