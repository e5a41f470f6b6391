"""F-SAM as a ``torch.optim.Optimizer``: the twin of ``sampy.optim.FriendlySAM``.

T. Li, P. Zhou, Z. He, X. Cheng, X. Huang, "Friendly Sharpness-Aware Minimization",
CVPR 2024, arXiv:2403.12350. Two gradient evaluations per step (official code order):

1. ``g = ∇L(w)``
2. first step: ``m ← g``, ``d = g``; later: ``d = g − σ m_{t−1}``, ``m ← λ m + (1 − λ) g``
3. ``ε = ρ d/(‖d‖ + eps)``; ``w ← w + ε``                  — ``first_step``
4. ``g̃ = ∇L(w + ε)``;  base step with ``g̃`` at ``w``      — ``second_step``

``momentum_order="paper"`` updates m first and uses ``d = g − σ m_t``. The EMA ``m`` is a
per-parameter tensor in ``state[p]["m"]`` (saved by ``state_dict()``). Reduces to SAM when
σ = 0; to the base optimizer when ρ = 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from sampy.optim import friendly_sam as reference
from sampy.optim.hyper import validate
from sampy.torch.base_optimizer import BaseOptimizer
from sampy.torch.groups import (
    Buffers,
    flat,
    radii,
    regroup,
    sum_in_scratch,
    unit_into,
)
from sampy.torch.perturbation import per_device
from sampy.torch.sharpness_aware import Groups, PerturbedGradient, RuleContext, SharpnessAware


class FriendlyAscent(Buffers):
    """F-SAM: perturb along ``g − σ m``; ``m`` an EMA of raw gradients in ``state[p]["m"]``.

    Official code order: a parameter without ``m`` gets ``m ← g`` and ``d = g``; afterwards
    ``d = g − σ m_{t−1}``, then ``m ← λ m + (1 − λ) g``. Paper order: ``m`` first, ``d = g − σ m_t``
    (``m_0 = 0``). ``ε = ρ d/(‖d‖ + eps)``.
    """

    # ε is written into the consumed gradients (inplace=True) or into new tensors, never into m
    # or the scratch that holds d.
    fresh_perturbation = True

    def __init__(self, sigma: float, lmbda: float, momentum_order: str, eps: float) -> None:
        self.sigma = sigma
        self.lmbda = lmbda
        self.momentum_order = momentum_order
        self.eps = eps

    def __call__(self, ctx: RuleContext, grads: Groups, inplace: bool) -> Groups:
        """``ε`` (the EMA is updated in place)."""
        gs, ps = flat(grads), flat(ctx.params)
        states = [ctx.state[p] for p in ps]
        ms = [state.get("m") for state in states]
        # ε = ρ d/(‖d‖ + eps) in the consumed gradients (with inplace), else in new tensors:
        # d itself may be a scratch buffer of this rule's.
        out = grads if inplace else None
        if all(m is not None for m in ms):  # every step but the first
            d = regroup(self._directions(ms, gs, inplace), grads)
            return unit_into(d, radii(ctx), self.eps, out)
        fresh = [i for i, m in enumerate(ms) if m is None]
        ready = [i for i, m in enumerate(ms) if m is not None]
        d: list[Tensor] = list(gs)
        official = self.momentum_order == "official_code"
        for i in fresh:
            if official:
                states[i]["m"] = gs[i].clone()
            else:
                m = states[i]["m"] = gs[i] * (1.0 - self.lmbda)
                d[i] = gs[i] - self.sigma * m
        if ready:
            new = self._directions([ms[i] for i in ready], [gs[i] for i in ready], inplace)
            for i, x in zip(ready, new, strict=True):
                d[i] = x
        return unit_into(regroup(d, grads), radii(ctx), self.eps, out)

    def _directions(self, m: list[Tensor], g: list[Tensor], inplace: bool) -> list[Tensor]:
        """``d = g − σ m``, ``m`` updated before (paper) or after (official code) in place.

        ``d`` is written into ``g`` where it may be (paper order, ``inplace``); else into this
        rule's scratch (large CPU tensors) or new tensors: the official EMA reads ``g`` after.
        """
        official = self.momentum_order == "official_code"
        if not official:
            self._ema(m, g)
        if inplace and not official:
            torch._foreach_add_(g, m, alpha=-self.sigma)
            d = g
        else:
            d = sum_in_scratch(g, m, -self.sigma, self, "d")
        if official:
            self._ema(m, g)
        return d

    def _ema(self, m: list[Tensor], g: list[Tensor]) -> None:
        """``m ← λ m + (1 − λ) g`` in place, rounded as the reference rounds it (λ m first):
        near a minimum d = g − σ m is a difference of nearly equal vectors, and a rounding of
        m in another order sends a chaotic run elsewhere."""
        torch._foreach_mul_(m, per_device(self.lmbda, m))
        torch._foreach_add_(m, g, alpha=1.0 - self.lmbda)


class FriendlySAM(SharpnessAware):
    """F-SAM around a torch optimizer (``rho`` per group; the norm of ``d`` is global)."""

    HYPERPARAMETERS = reference.FriendlySAM.HYPERPARAMETERS

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        base_optimizer: BaseOptimizer = torch.optim.SGD,
        rho: float = 0.05,
        sigma: float = 1.0,
        lmbda: float = 0.9,
        momentum_order: str = "official_code",
        perturb_eps: float = 1e-12,
        **base_kwargs: Any,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        super().__init__(
            params,
            base_optimizer,
            ascent=FriendlyAscent(sigma, lmbda, momentum_order, perturb_eps),
            descent=PerturbedGradient(),
            group_hyperparameters=dict(rho=rho),
            **base_kwargs,
        )
