"""USAM (un-normalised SAM) as a ``torch.optim.Optimizer``: the twin of ``sampy.optim.USAM``.

Used by M. Andriushchenko, N. Flammarion, "Towards Understanding Sharpness-Aware
Minimization", ICML 2022, arXiv:2206.06232. Two gradient evaluations per step:

1. ``g = ∇L(w)``;  ``ε = ρ g`` (no division by ‖g‖)     — ``first_step``
2. ``g̃ = ∇L(w + ε)``;  base step with ``g̃`` at ``w``      — ``second_step``

Reduces to the base optimizer when ρ = 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from sampy.optim import usam as reference
from sampy.optim.hyper import validate
from sampy.torch.base_optimizer import BaseOptimizer
from sampy.torch.groups import flat, radii, regroup
from sampy.torch.sharpness_aware import Groups, PerturbedGradient, RuleContext, SharpnessAware


class UnnormalizedAscent:
    """USAM: ``ε = ρ g`` (no normalisation)."""

    def __call__(self, ctx: RuleContext, grads: Groups, inplace: bool) -> Groups:
        """``ρ g`` per group: one ``_foreach_mul`` over all groups (ρ per tensor)."""
        tensors = flat(grads)
        if not tensors:
            return grads
        rhos = [rho for gs, rho in zip(grads, radii(ctx), strict=True) for _ in gs]
        if inplace:
            torch._foreach_mul_(tensors, rhos)
            return grads
        return regroup(list(torch._foreach_mul(tensors, rhos)), grads)


class USAM(SharpnessAware):
    """Un-normalised SAM around a torch optimizer (``ε = ρ g``; ``rho`` per group)."""

    HYPERPARAMETERS = reference.USAM.HYPERPARAMETERS

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        base_optimizer: BaseOptimizer = torch.optim.SGD,
        rho: float = 0.05,
        **base_kwargs: Any,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        super().__init__(
            params,
            base_optimizer,
            ascent=UnnormalizedAscent(),
            descent=PerturbedGradient(),
            group_hyperparameters=dict(rho=rho),
            **base_kwargs,
        )
