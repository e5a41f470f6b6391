"""SAME, CustomSAME and SAMCkpt as ``torch.optim.Optimizer``s: twins of ``sampy.optim.same``.

From the research notes on the anatomy of SAM's gradient and their code
(lhchau/sam-hessian @ 0c4c993d, ``sam_hessian/optimizer/``); no paper. Two gradient evaluations per
step: SAM's ascent ``ε = ρ g/(‖g‖ + eps)`` (``first_step``), then with ``ck = checkpoints(g, g̃)``
(the element-wise ratio ``g̃/g``, ``sampy.optim.checkpoints``) a descent rule at the unperturbed
``w`` (``second_step``):

- ``SAME``:       ``d = g̃ ⊙ (1 + (c − 1)·1[ck = k])`` — amplify checkpoint k by c.
- ``CustomSAME``: ``d = g̃ ⊙ c[ck]`` with one factor per checkpoint 0…4.
- ``SAMCkpt``:    ``d_i = g̃_i`` in the selected checkpoints, ``g_i`` elsewhere.

The clean gradient is kept between the passes: on the CPU as the concatenation the descent
reads (so the ascent may still write ``ε`` into the consumed gradients), else by reference with
``zero_grad=True``. Reduce to SAM when c = 1, all factors are 1, or all checkpoints 0…4 are
selected.
"""

from __future__ import annotations

from typing import Any

import torch

from sampy._deprecated import renamed_value
from sampy.optim import same as reference
from sampy.optim.hyper import validate
from sampy.torch.base_optimizer import BaseOptimizer
from sampy.torch.checkpoints import CheckpointHybrid, CheckpointScaling, _CheckpointRule
from sampy.torch.closures import Params
from sampy.torch.sam import NormBallAscent
from sampy.torch.sharpness_aware import CLEAN_GRAD, SharpnessAware


class _StashesFlat(SharpnessAware):
    """The first step hands ``g`` to the checkpoint rule, which keeps its own copy of it."""

    descent: _CheckpointRule

    @torch.no_grad()
    def first_step(self, zero_grad: bool = False) -> None:
        """Save ``w`` and move to ``w + ε``; ``g`` is kept in the descent rule's buffer.

        The copy the descent makes of ``g`` anyway is made now, so the template treats the
        gradients as it does SAM's: consumed with ``zero_grad=True`` (``ε`` and ``w + ε`` in
        their storage, no fresh tensors), never cloned.
        """
        if self._perturbed is not None or not self.descent.stash(
            self.state, self._params_with_grad()
        ):
            super().first_step(zero_grad)
            return
        self.descent.needs_clean_grad = False  # kept already: not again by the template
        try:
            super().first_step(zero_grad)
        except BaseException:
            for group in self.param_groups:
                for p in group["params"]:
                    if p in self.state:
                        self.state[p].pop(CLEAN_GRAD, None)
            raise
        finally:
            del self.descent.needs_clean_grad


class CustomSAME(_StashesFlat):
    """SAM with one factor per checkpoint (ckpt0…ckpt4)."""

    HYPERPARAMETERS = reference.CustomSAME.HYPERPARAMETERS

    def __init__(
        self,
        params: Params,
        base_optimizer: BaseOptimizer = torch.optim.SGD,
        rho: float = 0.05,
        factors: tuple[float, float, float, float, float] = (1.0, 2.0, 1.0, 0.5, 2.0),
        ratio_eps: float = 1e-8,
        ratio_mode: str = "sign_safe",
        perturb_eps: float = 1e-12,
        **base_kwargs: Any,
    ) -> None:
        ratio_mode = renamed_value("ratio_mode", ratio_mode)
        validate(self.HYPERPARAMETERS, locals())
        super().__init__(
            params,
            base_optimizer,
            ascent=NormBallAscent(perturb_eps=perturb_eps),
            descent=CheckpointScaling(tuple(factors), ratio_eps, ratio_mode),
            group_hyperparameters=dict(rho=rho),
            **base_kwargs,
        )


class SAME(CustomSAME):
    """SAM with one checkpoint of the gradient amplified by ``factor``."""

    HYPERPARAMETERS = reference.SAME.HYPERPARAMETERS

    def __init__(
        self,
        params: Params,
        base_optimizer: BaseOptimizer = torch.optim.SGD,
        rho: float = 0.05,
        checkpoint: int = 1,
        factor: float = 2.0,
        ratio_eps: float = 1e-8,
        ratio_mode: str = "sign_safe",
        perturb_eps: float = 1e-12,
        **base_kwargs: Any,
    ) -> None:
        ratio_mode = renamed_value("ratio_mode", ratio_mode)
        validate(self.HYPERPARAMETERS, locals())
        factors = [1.0] * 5
        factors[int(checkpoint)] = float(factor)
        super().__init__(
            params,
            base_optimizer,
            rho=rho,
            factors=tuple(factors),
            ratio_eps=ratio_eps,
            ratio_mode=ratio_mode,
            perturb_eps=perturb_eps,
            **base_kwargs,
        )


class SAMCkpt(_StashesFlat):
    """A SAM/SGD hybrid: SAM's coordinate in the selected checkpoints, SGD's elsewhere."""

    HYPERPARAMETERS = reference.SAMCkpt.HYPERPARAMETERS

    def __init__(
        self,
        params: Params,
        base_optimizer: BaseOptimizer = torch.optim.SGD,
        rho: float = 0.05,
        checkpoints: tuple[int, ...] = (1,),
        ratio_eps: float = 1e-8,
        ratio_mode: str = "sign_safe",
        perturb_eps: float = 1e-12,
        **base_kwargs: Any,
    ) -> None:
        ratio_mode = renamed_value("ratio_mode", ratio_mode)
        validate(self.HYPERPARAMETERS, locals())
        super().__init__(
            params,
            base_optimizer,
            ascent=NormBallAscent(perturb_eps=perturb_eps),
            descent=CheckpointHybrid(tuple(checkpoints), ratio_eps, ratio_mode),
            group_hyperparameters=dict(rho=rho),
            **base_kwargs,
        )
