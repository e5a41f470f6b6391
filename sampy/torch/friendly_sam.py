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

from sampy.optim import friendly_sam as reference
from sampy.optim.hyper import validate
from sampy.torch.rules import FriendlyAscent
from sampy.torch.sharpness_aware import PerturbedGradient, SharpnessAware


class FriendlySAM(SharpnessAware):
    """F-SAM around a torch optimizer (``rho`` per group; the norm of ``d`` is global)."""

    HYPERPARAMETERS = reference.FriendlySAM.HYPERPARAMETERS

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        base_optimizer: type[torch.optim.Optimizer] = torch.optim.SGD,
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
