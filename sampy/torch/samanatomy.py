"""SAMAnatomy as a ``torch.optim.Optimizer``: the twin of ``sampy.optim.SAMAnatomy``.

From the code of the research notes on the anatomy of SAM's gradient (lhchau/sam-hessian @ 0c4c993d,
``sam_hessian/optimizer/samanatomy.py``); no paper. Three gradient evaluations per step:

1. ``g = ∇L(w)``;  ``ε1 = ρ g/(‖g‖ + eps)``; ``w ← w + ε1``             — ``first_step``
2. ``g1 = ∇L(w + ε1)``;  ``m = g ⊙ 1[g1/(g + eps) > 0]``;
   ``ε2 = ρ m/(‖m‖ + eps)``; ``w ← saved w + ε2``                        — ``second_ascent_step``
3. ``g2 = ∇L(w + ε2)``;  restore ``w``; base step with ``g2``            — ``second_step``

Evaluation pattern: ``step(closure)`` calls the closure three times. By hand::

    loss_fn(model(x), y).backward()
    opt.first_step(zero_grad=True)
    loss_fn(model(x), y).backward()
    opt.second_ascent_step(zero_grad=True)
    loss_fn(model(x), y).backward()
    opt.second_step(zero_grad=True)

When no coordinate has a ratio ≤ 0, ``ε2 = ε1`` and the update equals SAM's; ρ = 0 gives the
base optimizer. The notes' code uses eps = 1e-8 in both places; so does this class by default.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from sampy.optim import samanatomy as reference
from sampy.optim.hyper import validate
from sampy.torch.base_optimizer import BaseOptimizer
from sampy.torch.groups import positive_mask_, radii, regroup, unit
from sampy.torch.sam import NormBallAscent
from sampy.torch.sharpness_aware import CLEAN_GRAD, PerturbedGradient, SharpnessAware


class SAMAnatomy(SharpnessAware):
    """SAM with a second, sign-filtered ascent around a torch optimizer (``rho`` per group)."""

    HYPERPARAMETERS = reference.SAMAnatomy.HYPERPARAMETERS
    grad_evals_per_step = 3

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        base_optimizer: BaseOptimizer = torch.optim.SGD,
        rho: float = 0.05,
        perturb_eps: float = 1e-8,
        **base_kwargs: Any,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        self.perturb_eps = perturb_eps
        super().__init__(
            params,
            base_optimizer,
            ascent=NormBallAscent(perturb_eps=perturb_eps),
            descent=PerturbedGradient(),
            group_hyperparameters=dict(rho=rho),
            **base_kwargs,
        )
        self._ascents_done = 0

    @torch.no_grad()
    def first_step(self, zero_grad: bool = False) -> None:
        """Keep ``g``, save ``w``, move to ``w + ε1``."""
        params = self._params_to_perturb()
        grads = [[p.grad for p in ps] for ps in params]
        e = self._ascent(params, grads, inplace=False)
        self._stash_clean_grads(params, zero_grad)
        # ε1 are new tensors of SAM's ascent: w + ε1 may be written into them (no copy of w).
        fresh = getattr(self.ascent, "fresh_perturbation", False) is True
        self._save_and_perturb(params, e, fresh=fresh)
        self._ascents_done = 1
        if zero_grad:
            self._zero_grads(params)

    @torch.no_grad()
    def second_ascent_step(self, zero_grad: bool = False) -> None:
        """With ``g1`` in ``p.grad``: move to ``w + ε2``, ε2 from the same-sign part of ``g``."""
        if self._perturbed is None or self._ascents_done != 1:
            raise RuntimeError("second_ascent_step() must follow first_step()")
        params, flat_params, saved = self._perturbed
        # m = g ⊙ 1[g1/(g + eps) > 0] over all tensors at once, in the storage of g (popped:
        # dead after this) and of g1 (dead when zero_grad drops it): g + eps, the ratio, its
        # 0/1 mask (a NaN ratio drops the coordinate, as the reference's comparison does),
        # then m = g ⊙ mask.
        clean = [self.state[p].pop(CLEAN_GRAD) for p in flat_params]
        g1 = [
            p.grad if p.grad is not None else torch.zeros_like(g)
            for p, g in zip(flat_params, clean, strict=True)
        ]
        denominator = torch._foreach_add(clean, self.perturb_eps)
        if zero_grad:
            torch._foreach_div_(g1, denominator)
            same_sign = g1
        else:
            same_sign = torch._foreach_div(g1, denominator)
        torch._foreach_mul_(clean, positive_mask_(same_sign))
        kept = regroup(clean, params)
        e2 = unit(kept, radii(self._context(params)), self.perturb_eps, inplace=True)
        torch._foreach_copy_(flat_params, saved)
        torch._foreach_add_(flat_params, [x for es in e2 for x in es])
        self._ascents_done = 2
        if zero_grad:
            self._zero_grads(params)

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False) -> None:
        """Restore ``w`` and take the base step with ``g2`` in ``p.grad``."""
        if self._ascents_done != 2:
            raise RuntimeError(
                "second_step() must follow first_step() and second_ascent_step() "
                "(SAMAnatomy takes three gradients per step)"
            )
        self._ascents_done = 0
        super().second_step(zero_grad)

    def restore(self) -> None:
        """Undo the ascent(s) of this step without a base step (see ``SharpnessAware``)."""
        super().restore()
        self._ascents_done = 0

    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """One step; the closure runs at w, w + ε1 and w + ε2. Returns the loss at w.

        The convention of ``SharpnessAware.step``: gradients present on entry are ``∇L(w)``
        (then the closure runs twice and None is returned), and every gradient is None after.
        """
        closure = self._require(closure)
        loss = None if self._has_grads() else closure()
        self.first_step(zero_grad=True)
        with self.restore_on_error():
            closure()
            self.second_ascent_step(zero_grad=True)
            closure()
            self.second_step()
        self._drop_grads()
        return loss
