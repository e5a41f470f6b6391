"""VaSSO as a ``torch.optim.Optimizer``: the twin of ``sampy.optim.VaSSO``.

B. Li, G. B. Giannakis, "Enhancing Sharpness-Aware Optimization Through Variance
Suppression", NeurIPS 2023, arXiv:2309.15639. Two gradient evaluations per step:

1. ``g = ∇L(w)``;  ``d_t = (1 − θ) d_{t−1} + θ g`` (``d_0 = 0``)
2. ``ε = ρ d_t/(‖d_t‖ + eps)``; ``w ← w + ε``               — ``first_step``
3. ``g̃ = ∇L(w + ε)``;  base step with ``g̃`` at ``w``        — ``second_step``

``d_t`` is a per-parameter tensor in ``state[p]["d"]`` (saved by ``state_dict()``).
Reduces to SAM when θ = 1; to the base optimizer when ρ = 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from sampy.optim import vasso as reference
from sampy.optim.hyper import validate
from sampy.torch.base_optimizer import BaseOptimizer
from sampy.torch.groups import flat, radii, regroup, unit_into
from sampy.torch.sharpness_aware import Groups, PerturbedGradient, RuleContext, SharpnessAware


class VarianceSuppressedAscent:
    """VaSSO: perturb along ``d_t = (1 − θ) d_{t−1} + θ g`` (``d_0 = 0``, in ``state[p]["d"]``)."""

    fresh_perturbation = True  # ε: the consumed gradients or new tensors (see SharpnessAware)

    def __init__(self, theta: float, eps: float) -> None:
        self.theta = theta
        self.eps = eps

    def __call__(self, ctx: RuleContext, grads: Groups, inplace: bool) -> Groups:
        """``ρ d_t/(‖d_t‖ + eps)`` (``d_t`` updated in place; ``ε`` written into ``grads``
        with ``inplace``, else into new tensors)."""
        gs, ps = flat(grads), flat(ctx.params)
        if not gs:
            return grads
        states = [ctx.state[p] for p in ps]
        d = [state.get("d") for state in states]
        for i, (state, x) in enumerate(zip(states, d, strict=True)):
            if x is None:
                d[i] = state["d"] = torch.zeros_like(gs[i])
        # (1 − θ) d + θ g as d + θ (g − d): one pass.
        torch._foreach_lerp_(d, gs, self.theta)
        return unit_into(regroup(d, grads), radii(ctx), self.eps, grads if inplace else None)


class VaSSO(SharpnessAware):
    """VaSSO around a torch optimizer (``rho`` per group; the norm of ``d_t`` is global)."""

    HYPERPARAMETERS = reference.VaSSO.HYPERPARAMETERS

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        base_optimizer: BaseOptimizer = torch.optim.SGD,
        rho: float = 0.05,
        theta: float = 0.4,
        perturb_eps: float = 1e-12,
        **base_kwargs: Any,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        super().__init__(
            params,
            base_optimizer,
            ascent=VarianceSuppressedAscent(theta, perturb_eps),
            descent=PerturbedGradient(),
            group_hyperparameters=dict(rho=rho),
            **base_kwargs,
        )
