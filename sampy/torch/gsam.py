"""GSAM as a ``torch.optim.Optimizer``: the twin of ``sampy.optim.GSAM``.

J. Zhuang, B. Gong, L. Yuan, Y. Cui, H. Adam, N. Dvornek, S. Tatikonda, J. Duncan, T. Liu,
"Surrogate Gap Guided Sharpness-Aware Minimization", ICLR 2022, arXiv:2203.08065.

Two gradient evaluations per step (``step(closure)`` calls the closure twice):

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

from sampy.optim import gsam as reference
from sampy.optim.hyper import validate
from sampy.torch.rules import GSAMDescent, NormBallAscent, ScheduledNormBallAscent
from sampy.torch.sharpness_aware import SharpnessAware


class GSAM(SharpnessAware):
    """GSAM around a torch optimizer (``alpha`` = 0.4 as pytorch-optimizer).

    Args:
        params: parameters or parameter groups (a group may set its own ``rho``/``adaptive``/
            ``eta``).
        base_optimizer: the class of the base optimizer.
        rho: constant radius (used when ``rho_schedule`` is None).
        alpha: weight α of the surrogate-gap correction.
        rho_schedule: optional ``t -> ρ_t`` (e.g. ``sampy.optim.proportional_rho(...)``).
        p, adaptive, eta, perturb_eps: the ball, as in ``SAM``.
        **base_kwargs: passed to ``base_optimizer``.
    """

    HYPERPARAMETERS = reference.GSAM.HYPERPARAMETERS

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        base_optimizer: type[torch.optim.Optimizer] = torch.optim.SGD,
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
