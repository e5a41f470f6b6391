"""NumPy reference optimizers: base optimizers and the SAM family, functional and batched."""

from sampy.optim.adam import Adam, AdamState, AdamW
from sampy.optim.base import BaseOptimizer, Optimizer, Oracle
from sampy.optim.clampsam import ClampSAM, ClipSAM
from sampy.optim.fisher_sam import FisherSAM
from sampy.optim.friendly_sam import FriendlySAM
from sampy.optim.gsam import GSAM, proportional_rho
from sampy.optim.hyper import Hyper
from sampy.optim.looksam import LookSAM
from sampy.optim.msam import MSAM, AdamWMSAM
from sampy.optim.perturbation import (
    dual_direction,
    dual_norm_exponent,
    lp_norm,
    norm_ball_perturbation,
)
from sampy.optim.random_sam import RandomSAM
from sampy.optim.sam import SAM, NormBallAscent
from sampy.optim.samanatomy import SAMAnatomy
from sampy.optim.same import SAME, CustomSAME, SAMCkpt
from sampy.optim.schedule_free import ScheduleFreeAdamW
from sampy.optim.seed004 import AdamWMSAMScheduleFree, SeedAdamWMSAMSF
from sampy.optim.sgd import SGD, SGDState
from sampy.optim.sharpness_aware import (
    PerturbedGradient,
    SharpnessAware,
    SharpnessAwareState,
)
from sampy.optim.swaps import (
    SAMDIRECTION,
    SAMMAGNITUDE,
    SAMAgree,
    SAMDirection,
    SAMMagnitude,
    SGDAgree,
)
from sampy.optim.usam import USAM
from sampy.optim.vasso import VaSSO
from sampy.optim.wsam import WSAM

__all__ = [
    "GSAM",
    "MSAM",
    "SAM",
    "SAMDIRECTION",
    "SAME",
    "SAMMAGNITUDE",
    "SGD",
    "USAM",
    "WSAM",
    "Adam",
    "AdamState",
    "AdamW",
    "AdamWMSAM",
    "AdamWMSAMScheduleFree",
    "BaseOptimizer",
    "ClampSAM",
    "ClipSAM",
    "CustomSAME",
    "FisherSAM",
    "FriendlySAM",
    "Hyper",
    "LookSAM",
    "NormBallAscent",
    "Optimizer",
    "Oracle",
    "PerturbedGradient",
    "RandomSAM",
    "SAMAgree",
    "SAMAnatomy",
    "SAMCkpt",
    "SAMDirection",
    "SAMMagnitude",
    "SGDAgree",
    "SGDState",
    "ScheduleFreeAdamW",
    "SeedAdamWMSAMSF",
    "SharpnessAware",
    "SharpnessAwareState",
    "VaSSO",
    "dual_direction",
    "dual_norm_exponent",
    "lp_norm",
    "norm_ball_perturbation",
    "proportional_rho",
]
