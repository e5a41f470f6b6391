"""WSAM (Weighted SAM) as a ``torch.optim.Optimizer``: the twin of ``sampy.optim.WSAM``.

Y. Yue, J. Jiang, Z. Ye, N. Gao, Y. Liu, K. Zhang, "Sharpness-Aware Minimization Revisited:
Weighted Sharpness as a Regularization Term", KDD 2023, arXiv:2305.15817. With
``α = γ/(1 − γ)``, two gradient evaluations per step:

1. ``g = ∇L(w)``;  ``ε = ρ g/(‖g‖ + eps)`` (ASAM form with ``adaptive``)   — ``first_step``
2. ``g̃ = ∇L(w + ε)``; with ``max_norm`` both g and g̃ are clipped to that global norm
3a. ``decouple=False``: base step with ``d = α g̃ + (1 − α) g``             — ``second_step``
3b. ``decouple=True``:  base step with ``g``, then ``w ← w − lr α (g̃ − g)`` with the group's
    current ``lr``: the sharpness term is not preconditioned by the base (Adam) optimizer.

Reduces to SAM when γ = 0.5 and ``decouple=False``; to the base optimizer on g when γ = 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from sampy.optim import wsam as reference
from sampy.optim.hyper import validate
from sampy.torch.base_optimizer import BaseOptimizer
from sampy.torch.groups import flat, global_norm, regroup
from sampy.torch.perturbation import per_device
from sampy.torch.sam import NormBallAscent
from sampy.torch.sharpness_aware import NO_GRAD_AT_W_ADV, Groups, RuleContext, SharpnessAware


def clip_by_global_norm(g: list[Tensor], max_norm: float, inplace: bool = False) -> list[Tensor]:
    """``torch.nn.utils.clip_grad_norm_``: scale by ``min(1, max_norm/(‖g‖ + 1e-6))`` (into
    ``g`` itself with ``inplace``, else new tensors)."""
    scale = per_device(torch.clamp(max_norm / (global_norm(g) + 1e-6), max=1.0), g)
    if inplace:
        torch._foreach_mul_(g, scale)
        return g
    return list(torch._foreach_mul(g, scale))


class WeightedDescent:
    """WSAM's coupled descent rule ``d = α g̃ + (1 − α) g`` (after the optional clipping)."""

    needs_clean_grad = True

    def __init__(self, alpha: float, max_norm: float | None) -> None:
        self.alpha = alpha
        self.max_norm = max_norm

    def clipped(self, g: Groups, g_adv: Groups) -> tuple[list[Tensor], list[Tensor]]:
        """Both gradients, flat, clipped in place to ``max_norm`` when it is set (both are the
        rule's to overwrite: the stashed clean gradient and the ``g̃`` the direction replaces)."""
        g, h = flat(g), flat(g_adv)
        if self.max_norm is not None and g:
            clip_by_global_norm(g, self.max_norm, inplace=True)
            clip_by_global_norm(h, self.max_norm, inplace=True)
        return g, h

    def __call__(self, ctx: RuleContext, g: Groups | None, g_adv: Groups) -> Groups:
        """``d`` per group (the ``g̃`` tensors, overwritten)."""
        assert g is not None
        g_flat, h = self.clipped(g, g_adv)
        if not h:
            return g_adv
        # α g̃ + (1 − α) g in g̃: two passes and no temporary (the products were two new
        # tensors and their sum a third).
        torch._foreach_mul_(h, per_device(self.alpha, h))
        torch._foreach_add_(h, g_flat, alpha=1.0 - self.alpha)
        return g_adv


class WSAM(SharpnessAware):
    """Weighted SAM around a torch optimizer (``rho``/``adaptive`` per group).

    Args:
        params: parameters or parameter groups.
        base_optimizer: the base optimizer: a class, a factory or an instance (its groups'
            ``lr`` scales the decoupled sharpness term).
        rho: radius ρ of the perturbation ball.
        gamma: weight γ ∈ [0, 1) of the sharpness term (α = γ/(1 − γ); 0.5 gives SAM).
        adaptive: ASAM's ball.
        decouple: apply the sharpness term after the base step (not preconditioned).
        max_norm: clip both gradients to this global norm (None = no clipping).
        perturb_eps: the guard in ``ρ/(‖g‖ + eps)``.
        **base_kwargs: passed to ``base_optimizer``.
    """

    HYPERPARAMETERS = reference.WSAM.HYPERPARAMETERS

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        base_optimizer: BaseOptimizer = torch.optim.SGD,
        rho: float = 0.05,
        gamma: float = 0.9,
        adaptive: bool = False,
        decouple: bool = True,
        max_norm: float | None = None,
        perturb_eps: float = 1e-12,
        **base_kwargs: Any,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        self.gamma = gamma
        self.alpha = gamma / (1.0 - gamma)
        self.decouple = decouple
        self.max_norm = max_norm
        super().__init__(
            params,
            base_optimizer,
            ascent=NormBallAscent(perturb_eps=perturb_eps),
            descent=WeightedDescent(self.alpha, max_norm),
            group_hyperparameters=dict(rho=rho, adaptive=adaptive),
            **base_kwargs,
        )

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False) -> None:
        """Restore ``w``; coupled: base step with the mix; decoupled: base step with ``g``,
        then ``w ← w − lr α (g̃ − g)``."""
        if not self.decouple:
            super().second_step(zero_grad)
            return
        params, g, g_adv = self._restore()
        if not any(params):
            raise RuntimeError(NO_GRAD_AT_W_ADV)
        if g is None:
            raise RuntimeError("WSAM's decoupled step needs the clean gradient g, got None")
        if self._skips(g_adv):
            return
        g_flat, h = self.descent.clipped(g, g_adv)
        if h:  # g̃ − g in g̃, which the base step does not read: no temporary
            torch._foreach_sub_(h, g_flat)
        sharpness = regroup(h, params) if h else []
        self._set_grads(params, regroup(g_flat, params))
        self._base_step()
        for group, ps, s in zip(self.param_groups, params, sharpness, strict=False):
            if ps:
                torch._foreach_add_(ps, s, alpha=-(group["lr"] * self.alpha))
        if zero_grad:
            self.zero_grad()
