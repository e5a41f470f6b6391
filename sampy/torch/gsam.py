"""GSAM as a ``torch.optim.Optimizer``: the twin of ``sampy.optim.GSAM``.

J. Zhuang, B. Gong, L. Yuan, Y. Cui, H. Adam, N. Dvornek, S. Tatikonda, J. Duncan, T. Liu,
"Surrogate Gap Guided Sharpness-Aware Minimization", ICLR 2022, arXiv:2203.08065.

Two gradient evaluations per step (``step(closure)`` calls the closure twice, or once after
``loss.backward()``: see ``SharpnessAware.step``):

1. ``g = ∇f(w)``;  ``ε = ρ_t g/(‖g‖ + eps)`` (ASAM form with ``adaptive``)  — ``first_step``
2. ``h = ∇f(w + ε)``
3. ``cos = ⟨g, h⟩/(‖h‖‖g‖ + eps)``;  ``g_⊥ = g − cos ‖g‖ h/(‖h‖ + eps)``
4. ``d = h − α g_⊥``;  base step with ``d`` at the unperturbed ``w``       — ``second_step``

All norms and the inner product are global over every parameter of every group. ``ρ_t`` is
the group's ``rho`` (a scheduler may set it), or ``rho_schedule(t)`` for every group when given
(``t`` counts steps from 0 and is saved by ``state_dict()``). Reduces to SAM when α = 0 and ρ
is constant; to the base optimizer when ρ = 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from sampy.optim import gsam as reference
from sampy.optim.hyper import validate
from sampy.torch.base_optimizer import BaseOptimizer
from sampy.torch.groups import flat, global_dot, global_norm, norms_and_dot
from sampy.torch.perturbation import per_device
from sampy.torch.sam import NormBallAscent
from sampy.torch.sharpness_aware import Groups, RuleContext, SharpnessAware


def orthogonal_part(g: list[Tensor], h: list[Tensor], eps: float) -> list[Tensor]:
    """The part of ``g`` orthogonal to ``h`` in GSAM's eps-guarded form (global norms)."""
    g_norm = global_norm(g)
    h_norm = global_norm(h)
    cos = global_dot(g, h) / (h_norm * g_norm + eps)
    along = torch._foreach_mul(h, per_device(cos * g_norm, h))
    torch._foreach_div_(along, per_device(h_norm + eps, h))
    # g − along written as −along + g (the same numbers) into along: one temporary, not two.
    torch._foreach_neg_(along)
    torch._foreach_add_(along, g)
    return list(along)


class GSAMDescent:
    """GSAM: ``d = h − α g_⊥``."""

    needs_clean_grad = True

    def __init__(self, alpha: float, eps: float) -> None:
        self.alpha = alpha
        self.eps = eps

    def __call__(self, ctx: RuleContext, g: Groups | None, g_adv: Groups) -> Groups:
        """``d`` per group (the ``h`` tensors, overwritten)."""
        if g is None:
            raise RuntimeError(f"{type(self).__name__} needs the clean gradient g, got None")
        h = flat(g_adv)
        if not h:
            return g_adv
        gs = flat(g)
        # No scratch kept between steps: the gathered small tensors are a new buffer each time.
        g_norm, h_norm, dot = norms_and_dot(gs, h)
        # g_⊥ = g − k h with k = cos ‖g‖/(‖h‖ + eps), so d = h − α g_⊥ = (1 + α k) h − α g:
        # two passes over h, which the direction replaces in p.grad, after the three reductions.
        cos = dot / (h_norm * g_norm + self.eps)
        scale = 1.0 + self.alpha * (cos * g_norm / (h_norm + self.eps))
        torch._foreach_mul_(h, per_device(scale, h))
        torch._foreach_add_(h, gs, alpha=-self.alpha)
        return g_adv


class ScheduledNormBallAscent(NormBallAscent):
    """The norm-ball ascent with ``ρ_t = rho_schedule(t)`` for every group; ``t`` in ``shared``.

    ρ_t is not validated: an unclamped warm-up gives ρ_t < 0, as big_vision's GSAM does.
    """

    def __init__(self, rho_schedule: Callable[[int], float], **kwargs: float) -> None:
        super().__init__(**kwargs)
        self.rho_schedule = rho_schedule

    def rhos(self, ctx: RuleContext) -> list[float]:
        """``rho_schedule(t)`` for every group, then ``t ← t + 1``."""
        t = ctx.shared.get("step", 0)
        ctx.shared["step"] = t + 1
        return [self.rho_schedule(t)] * len(ctx.groups)


class GSAM(SharpnessAware):
    """GSAM around a torch optimizer (``alpha`` = 0.4 as pytorch-optimizer).

    Args:
        params: parameters or parameter groups (a group may set its own ``rho``/``adaptive``/
            ``eta``).
        base_optimizer: the base optimizer: a class, a factory or an instance.
        rho: constant radius (used when ``rho_schedule`` is None).
        alpha: weight α of the surrogate-gap correction.
        rho_schedule: optional ``t -> ρ_t`` (e.g. ``sampy.optim.proportional_rho(...)``), the
            same for every group: a group that sets its own ``rho`` is refused with it.
        p, adaptive, eta, perturb_eps: the ball, as in ``SAM``.
        **base_kwargs: passed to ``base_optimizer``.
    """

    HYPERPARAMETERS = reference.GSAM.HYPERPARAMETERS

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        base_optimizer: BaseOptimizer = torch.optim.SGD,
        rho: float = 0.05,
        alpha: float = 0.4,
        rho_schedule: Callable[[int], float] | None = None,
        p: float = 2.0,
        adaptive: bool = False,
        eta: float = 0.0,
        perturb_eps: float = 1e-12,
        **base_kwargs: Any,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        ball = dict(p=p, perturb_eps=perturb_eps)
        if rho_schedule is None:
            ascent = NormBallAscent(**ball)
        else:
            if not callable(rho_schedule):
                raise ValueError(f"rho_schedule must be a callable t -> rho, got {rho_schedule!r}")
            params = list(params)
            own = [i for i, g in enumerate(params) if isinstance(g, dict) and "rho" in g]
            if own:
                raise ValueError(
                    f"rho_schedule sets rho_t for every parameter group, so group {own[0]}'s own "
                    "'rho' would be ignored: drop the group's 'rho', or drop rho_schedule and let "
                    "sampy.torch.rho_scheduler.ProportionalRho set each group's rho"
                )
            ascent = ScheduledNormBallAscent(rho_schedule, **ball)
        super().__init__(
            params,
            base_optimizer,
            ascent=ascent,
            descent=GSAMDescent(alpha, perturb_eps),
            group_hyperparameters=dict(rho=rho, adaptive=adaptive, eta=eta),
            **base_kwargs,
        )
        self.alpha = alpha
