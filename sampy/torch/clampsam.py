"""ClampSAM and ClipSAM as ``torch.optim.Optimizer``s: twins of ``sampy.optim.clampsam``.

From the research notes on the anatomy of SAM's gradient (lhchau/sam-hessian, "Project1");
``ClampSAM`` is our reading of the intent of their buggy ``CLAMPSAM`` code. Two gradient evaluations
per step:

- ``ClampSAM``: ``ε = clip(ρ g/(‖g‖ + eps), −τ, τ)`` element-wise (with ``renorm`` rescaled to
  ``‖ε‖ = ρ``; ``first_step``); base step with ``g̃ = ∇L(w + ε)`` at ``w`` (``second_step``).
  τ ≥ ρ clips nothing, so it is SAM.
- ``ClipSAM``: SAM's ascent; the descent coordinates keep the sign of ``g̃`` and are limited to
  ``c`` times the clean ones, ``|d_i| = min(|g̃_i|, c|g_i|)``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from sampy.optim import clampsam as reference
from sampy.optim.hyper import validate
from sampy.torch.base_optimizer import BaseOptimizer
from sampy.torch.closures import Params
from sampy.torch.groups import Elementwise, flat, radii, unit
from sampy.torch.sam import NormBallAscent
from sampy.torch.sharpness_aware import Groups, PerturbedGradient, RuleContext, SharpnessAware
from sampy.torch.storage import LARGE_TENSOR_NUMEL


class ClampedAscent:
    """ClampSAM: SAM's ascent clipped element-wise to ``[−τ, τ]`` (optionally back to ρ)."""

    def __init__(self, tau: float, renorm: bool, eps: float) -> None:
        self.tau = tau
        self.renorm = renorm
        self.eps = eps

    def __call__(self, ctx: RuleContext, grads: Groups, inplace: bool) -> Groups:
        """``ε`` per group."""
        e = unit(grads, radii(ctx), self.eps, inplace=inplace)
        # A large tensor is clipped in one pass by its own clamp_; the small ones share the
        # two _foreach kernels (one call per bound instead of one clamp_ call per tensor).
        small = []
        for x in flat(e):
            if x.numel() >= LARGE_TENSOR_NUMEL:
                x.clamp_(-self.tau, self.tau)
            else:
                small.append(x)
        if small:
            torch._foreach_clamp_min_(small, -self.tau)
            torch._foreach_clamp_max_(small, self.tau)
        return unit(e, radii(ctx), self.eps, inplace=True) if self.renorm else e


class ClampSAM(SharpnessAware):
    """SAM with the ascent clipped coordinate-wise to ``[−tau, tau]``."""

    HYPERPARAMETERS = reference.ClampSAM.HYPERPARAMETERS

    def __init__(
        self,
        params: Params,
        base_optimizer: BaseOptimizer = torch.optim.SGD,
        rho: float = 0.05,
        tau: float = 0.02,
        renorm: bool = False,
        perturb_eps: float = 1e-12,
        **base_kwargs: Any,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        super().__init__(
            params,
            base_optimizer,
            ascent=ClampedAscent(tau, renorm, perturb_eps),
            descent=PerturbedGradient(),
            group_hyperparameters=dict(rho=rho),
            **base_kwargs,
        )


class RatioClip(Elementwise):
    """ClipSAM: ``d = sign(g̃) ⊙ min(|g̃|, c|g|)``."""

    def __init__(self, condition: float) -> None:
        self.condition = condition

    def combine(self, g: Tensor, g_adv: Tensor) -> Tensor:
        """``sign(g̃) ⊙ min(|g̃|, c|g|)`` (in this rule's buffers)."""
        sign = torch.sign(g_adv, out=self.buffer("sign", g_adv))
        limit = g.abs_().mul_(self.condition)
        return torch.minimum(g_adv.abs_(), limit, out=g_adv).mul_(sign)

    def __call__(self, ctx: RuleContext, g: Groups | None, g_adv: Groups) -> Groups:
        """``d`` per group, written into the ``g̃`` tensors with five ``_foreach`` kernels.

        ``sign(g̃) min(|g̃|, L)`` with ``L = c|g| ≥ 0`` is ``g̃`` clamped to ``[−L, L]``, the
        same numbers (NaN where the reference has NaN), without a copy or a temporary.
        """
        if g is None:
            raise RuntimeError(f"{type(self).__name__} needs the clean gradient g, got None")
        limit, perturbed = flat(g), flat(g_adv)
        torch._foreach_abs_(limit)
        torch._foreach_mul_(limit, self.condition)
        torch._foreach_minimum_(perturbed, limit)
        torch._foreach_neg_(limit)
        torch._foreach_maximum_(perturbed, limit)
        return g_adv


class ClipSAM(SharpnessAware):
    """SAM whose descent coordinates are limited to ``condition`` times SGD's."""

    HYPERPARAMETERS = reference.ClipSAM.HYPERPARAMETERS

    def __init__(
        self,
        params: Params,
        base_optimizer: BaseOptimizer = torch.optim.SGD,
        rho: float = 0.05,
        condition: float = 10.0,
        perturb_eps: float = 1e-12,
        **base_kwargs: Any,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        super().__init__(
            params,
            base_optimizer,
            ascent=NormBallAscent(perturb_eps=perturb_eps),
            descent=RatioClip(condition),
            group_hyperparameters=dict(rho=rho),
            **base_kwargs,
        )
