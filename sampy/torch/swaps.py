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
from sampy.torch.closures import Params
from sampy.torch.groups import Elementwise
from sampy.torch.sam import NormBallAscent
from sampy.torch.sharpness_aware import DescentRule, SharpnessAware


class SAMDirectionRule(Elementwise):
    """``d = sign(g̃) ⊙ |g|``: SAM's direction, SGD's magnitude."""

    def combine(self, g: Tensor, g_adv: Tensor) -> Tensor:
        """``sign(g̃) ⊙ |g|``."""
        return torch.sign(g_adv) * torch.abs(g)


class SAMMagnitudeRule(Elementwise):
    """``d = |g̃| ⊙ sign(g)``: SAM's magnitude, SGD's direction."""

    def combine(self, g: Tensor, g_adv: Tensor) -> Tensor:
        """``|g̃| ⊙ sign(g)``."""
        return torch.abs(g_adv) * torch.sign(g)


class AgreementRule(Elementwise):
    """Keep one gradient where ``g̃ ⊙ g > 0``; elsewhere zero or the other gradient."""

    def __init__(self, keep_sam: bool, fill: str) -> None:
        self.keep_sam = keep_sam
        self.fill = fill

    def combine(self, g: Tensor, g_adv: Tensor) -> Tensor:
        """``where(g̃ ⊙ g > 0, kept, other or 0)``."""
        kept, other = (g_adv, g) if self.keep_sam else (g, g_adv)
        elsewhere = other if self.fill == "other" else torch.zeros_like(other)
        return torch.where(g_adv * g > 0, kept, elsewhere)


class _Swap(SharpnessAware):
    HYPERPARAMETERS = reference.SAMDirection.HYPERPARAMETERS
    rule: type[DescentRule] = SAMDirectionRule

    def __init__(
        self,
        params: Params,
        base_optimizer: type[torch.optim.Optimizer] = torch.optim.SGD,
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
        base_optimizer: type[torch.optim.Optimizer] = torch.optim.SGD,
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
