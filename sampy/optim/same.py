"""SAME, CustomSAME and SAMCkpt: change SAM's gradient checkpoint by checkpoint.

From the research notes on the anatomy of SAM's gradient and their code
(lhchau/sam-hessian @ 0c4c993d, ``sam_hessian/optimizer/``); no paper. Two gradient evaluations per
step, SAM's ascent ``ε = ρ g/(‖g‖ + eps)``, then with ``ck = checkpoints(g, g̃)`` (see
``sampy.optim.checkpoints``):

- ``SAME``:       ``d = g̃ ⊙ (1 + (c − 1)·1[ck = k])`` — amplify checkpoint k by c. The notes'
  formula ``g̃ + g̃ ⊙ mask`` is c = 2 (our default); its code calls c ``condition``, default 1.
- ``CustomSAME``: ``d = g̃ ⊙ c[ck]`` with one factor per checkpoint 0…4; the default
  ``(1, c, 1, 1/c, c)`` with c = 2 is the notes' "increase ckpt1, keep ckpt2, reduce ckpt3,
  increase ckpt4" (ckpt0 keeps g̃: our choice, the notes' code zeroed it).
- ``SAMCkpt``:    ``d_i = g̃_i`` for coordinates in the selected checkpoints, ``g_i`` elsewhere.

Reduces to SAM when c = 1 (SAME), all factors are 1 (CustomSAME), or all checkpoints 0…4 are
selected (SAMCkpt).
"""

from __future__ import annotations

import numpy as np

from sampy._deprecated import renamed_value
from sampy.optim.base import BaseOptimizer
from sampy.optim.checkpoints import CheckpointHybrid, CheckpointScaling
from sampy.optim.hyper import Hyper, validate
from sampy.optim.sam import PERTURB_EPS, RHO, NormBallAscent
from sampy.optim.sharpness_aware import SharpnessAware

RATIO = (
    Hyper("ratio_eps", 1e-8, "guard of the ratio g̃/g", 0.0, None),
    Hyper(
        "ratio_mode",
        "sign_safe",
        "ratio guard: sign-safe, or as in the notes' code",
        kind="choice",
        choices=("sign_safe", "notes_code"),
    ),
)


class CustomSAME(SharpnessAware):
    """SAM with one factor per checkpoint (ckpt0…ckpt4)."""

    HYPERPARAMETERS = (
        RHO,
        Hyper(
            "factors",
            (1.0, 2.0, 1.0, 0.5, 2.0),
            "factors for ckpt0…ckpt4 (all 1 = SAM)",
            0.0,
            None,
            kind="tuple",
            size=5,
        ),
        *RATIO,
        PERTURB_EPS,
    )

    def __init__(
        self,
        base: BaseOptimizer,
        rho: float | np.ndarray = 0.05,
        factors: tuple[float, float, float, float, float] = (1.0, 2.0, 1.0, 0.5, 2.0),
        ratio_eps: float = 1e-8,
        ratio_mode: str = "sign_safe",
        perturb_eps: float = 1e-12,
    ) -> None:
        ratio_mode = renamed_value("ratio_mode", ratio_mode)
        validate(self.HYPERPARAMETERS, locals())
        super().__init__(
            base,
            NormBallAscent(rho=rho, perturb_eps=perturb_eps),
            CheckpointScaling(tuple(factors), ratio_eps, ratio_mode),
        )


class SAME(CustomSAME):
    """SAM with one checkpoint of the gradient amplified by ``factor``."""

    HYPERPARAMETERS = (
        RHO,
        Hyper("checkpoint", 1, "the checkpoint k ∈ {1, 2, 3, 4} to scale", 1, 4, kind="int"),
        Hyper("factor", 2.0, "factor c for that checkpoint (1 = SAM)", 0.0, None),
        *RATIO,
        PERTURB_EPS,
    )

    def __init__(
        self,
        base: BaseOptimizer,
        rho: float | np.ndarray = 0.05,
        checkpoint: int = 1,
        factor: float = 2.0,
        ratio_eps: float = 1e-8,
        ratio_mode: str = "sign_safe",
        perturb_eps: float = 1e-12,
    ) -> None:
        ratio_mode = renamed_value("ratio_mode", ratio_mode)
        validate(self.HYPERPARAMETERS, locals())
        factors = [1.0] * 5
        factors[int(checkpoint)] = float(factor)
        super().__init__(base, rho, tuple(factors), ratio_eps, ratio_mode, perturb_eps)


class SAMCkpt(SharpnessAware):
    """A SAM/SGD hybrid: SAM's coordinate in the selected checkpoints, SGD's elsewhere."""

    HYPERPARAMETERS = (
        RHO,
        Hyper(
            "checkpoints",
            (1,),
            "checkpoints (subset of 0…4) that take SAM's coordinate",
            0,
            4,
            kind="subset",
        ),
        *RATIO,
        PERTURB_EPS,
    )

    def __init__(
        self,
        base: BaseOptimizer,
        rho: float | np.ndarray = 0.05,
        checkpoints: tuple[int, ...] = (1,),
        ratio_eps: float = 1e-8,
        ratio_mode: str = "sign_safe",
        perturb_eps: float = 1e-12,
    ) -> None:
        ratio_mode = renamed_value("ratio_mode", ratio_mode)
        validate(self.HYPERPARAMETERS, locals())
        super().__init__(
            base,
            NormBallAscent(rho=rho, perturb_eps=perturb_eps),
            CheckpointHybrid(tuple(checkpoints), ratio_eps, ratio_mode),
        )
