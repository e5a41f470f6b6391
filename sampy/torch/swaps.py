"""Magnitude/direction swaps and sign-agreement masks: twins of ``sampy.optim.swaps``.

From the research notes on the anatomy of SAM's gradient and their code
(lhchau/sam-hessian @ 0c4c993d, ``sam_hessian/optimizer/``); no paper. Two gradient evaluations per
step, SAM's ascent (``first_step``), then a descent rule on ``(g, g̃)`` at the unperturbed ``w``
(``second_step``):

- ``SAMDirection``: ``d = sign(g̃) ⊙ |g|`` (the notes' code calls it ``SAMMAGNITUDE``)
- ``SAMMagnitude``: ``d = |g̃| ⊙ sign(g)`` (the notes' ``SAMDIRECTION``)
- ``SAMAgree``: ``d = g̃ ⊙ 1[g̃ ⊙ g > 0]`` (``fill="other"``: ``g`` elsewhere)
- ``SGDAgree``: ``d = g ⊙ 1[g̃ ⊙ g > 0]`` (``fill="other"``: ``g̃`` elsewhere)

If ``g̃ = g`` all four give SGD's step; ``sign(0) = 0`` zeroes a coordinate.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from sampy._deprecated import module_getattr
from sampy.optim import swaps as reference
from sampy.optim.hyper import validate
from sampy.torch.base_optimizer import BaseOptimizer
from sampy.torch.closures import Params
from sampy.torch.groups import Elementwise, flat, positive_mask_, regroup
from sampy.torch.sam import NormBallAscent
from sampy.torch.sharpness_aware import DescentRule, Groups, RuleContext, SharpnessAware


def _both(rule: Elementwise, g: Groups | None, g_adv: Groups) -> tuple[list[Tensor], list[Tensor]]:
    """The clean and perturbed gradients as flat lists (both are dead after the descent, so a
    rule may write into them)."""
    if g is None:
        raise RuntimeError(f"{type(rule).__name__} needs the clean gradient g, got None")
    return flat(g), flat(g_adv)


class SAMDirectionRule(Elementwise):
    """``d = sign(g̃) ⊙ |g|``: SAM's direction, SGD's magnitude."""

    def combine(self, g: Tensor, g_adv: Tensor) -> Tensor:
        """``sign(g̃) ⊙ |g|`` (in this rule's buffers)."""
        return torch.sign(g_adv, out=g_adv).mul_(g.abs_())

    def __call__(self, ctx: RuleContext, g: Groups | None, g_adv: Groups) -> Groups:
        """``d`` per group, written into the ``g̃`` tensors: three ``_foreach`` kernels, no copy."""
        clean, perturbed = _both(self, g, g_adv)
        torch._foreach_sign_(perturbed)
        torch._foreach_abs_(clean)
        torch._foreach_mul_(perturbed, clean)
        return g_adv


class SAMMagnitudeRule(Elementwise):
    """``d = |g̃| ⊙ sign(g)``: SAM's magnitude, SGD's direction."""

    def combine(self, g: Tensor, g_adv: Tensor) -> Tensor:
        """``|g̃| ⊙ sign(g)`` (in this rule's buffers)."""
        return g_adv.abs_().mul_(torch.sign(g, out=g))

    def __call__(self, ctx: RuleContext, g: Groups | None, g_adv: Groups) -> Groups:
        """``d`` per group, written into the ``g̃`` tensors: three ``_foreach`` kernels, no copy."""
        clean, perturbed = _both(self, g, g_adv)
        torch._foreach_abs_(perturbed)
        torch._foreach_sign_(clean)
        torch._foreach_mul_(perturbed, clean)
        return g_adv


class AgreementRule(Elementwise):
    """Keep one gradient where ``g̃ ⊙ g > 0``; elsewhere zero or the other gradient."""

    def __init__(self, keep_sam: bool, fill: str) -> None:
        self.keep_sam = keep_sam
        self.fill = fill

    def combine(self, g: Tensor, g_adv: Tensor) -> Tensor:
        """``where(g̃ ⊙ g > 0, kept, other or 0)``, written into the kept gradient."""
        agree = torch.mul(g_adv, g) > 0
        kept, other = (g_adv, g) if self.keep_sam else (g, g_adv)
        if self.fill == "other":
            return torch.where(agree, kept, other, out=kept)
        return kept.masked_fill_(agree.logical_not_(), 0.0)

    def __call__(self, ctx: RuleContext, g: Groups | None, g_adv: Groups) -> Groups:
        """``d`` per group, in the storage of the gradients, with four ``_foreach`` kernels.

        The mask is ``1[g̃ ⊙ g > 0]`` as a 0/1 float (``positive_mask_``: a NaN product drops
        the coordinate, as ``>`` does); then ``kept ⊙ mask`` (``fill="zero"``) or
        ``lerp(other, kept, mask)`` (``fill="other"``), which are the reference's ``where``
        exactly wherever the gradients are finite (a dropped coordinate whose kept value is
        infinite gives NaN instead of 0).
        """
        clean, perturbed = _both(self, g, g_adv)
        kept, other = (perturbed, clean) if self.keep_sam else (clean, perturbed)
        if self.fill == "other":
            mask = torch._foreach_mul(kept, other)
        else:  # the other gradient is dead: the mask goes into it
            mask = other
            torch._foreach_mul_(mask, kept)
        positive_mask_(mask)
        if self.fill == "other":
            torch._foreach_lerp_(other, kept, mask)
            return regroup(other, g_adv)
        torch._foreach_mul_(kept, mask)
        return regroup(kept, g_adv)


class _Swap(SharpnessAware):
    HYPERPARAMETERS = reference.SAMDirection.HYPERPARAMETERS
    rule: type[DescentRule] = SAMDirectionRule

    def __init__(
        self,
        params: Params,
        base_optimizer: BaseOptimizer = torch.optim.SGD,
        rho: float = 0.05,
        perturb_eps: float = 1e-12,
        **base_kwargs: Any,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        super().__init__(
            params,
            base_optimizer,
            ascent=NormBallAscent(perturb_eps=perturb_eps),
            descent=self.rule(),
            group_hyperparameters=dict(rho=rho),
            **base_kwargs,
        )


class SAMDirection(_Swap):
    """SAM's direction, SGD's magnitude: ``d = sign(g̃) ⊙ |g|`` (the notes' code: SAMMAGNITUDE)."""

    rule = SAMDirectionRule


class SAMMagnitude(_Swap):
    """SAM's magnitude, SGD's direction: ``d = |g̃| ⊙ sign(g)`` (the notes' code: SAMDIRECTION)."""

    rule = SAMMagnitudeRule


class _Agree(SharpnessAware):
    HYPERPARAMETERS = reference.SAMAgree.HYPERPARAMETERS
    keep_sam = True

    def __init__(
        self,
        params: Params,
        base_optimizer: BaseOptimizer = torch.optim.SGD,
        rho: float = 0.05,
        fill: str = "zero",
        perturb_eps: float = 1e-12,
        **base_kwargs: Any,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        super().__init__(
            params,
            base_optimizer,
            ascent=NormBallAscent(perturb_eps=perturb_eps),
            descent=AgreementRule(self.keep_sam, fill),
            group_hyperparameters=dict(rho=rho),
            **base_kwargs,
        )


class SAMAgree(_Agree):
    """SAM's coordinates where they agree in sign with SGD's (``fill="other"``: SGD's elsewhere)."""

    keep_sam = True


class SGDAgree(_Agree):
    """SGD's coordinates where they agree in sign with SAM's (``fill="other"``: SAM's elsewhere)."""

    keep_sam = False


# The notes' code's class names (SAMMAGNITUDE, SAMDIRECTION) resolve with a warning.
__getattr__ = module_getattr(__name__, globals())
