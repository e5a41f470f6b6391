"""NumPy reference optimizers: base optimizers and the SAM family, functional and batched."""

from sampy.optim.adam import Adam, AdamState, AdamW
from sampy.optim.base import BaseOptimizer, Optimizer, Oracle
from sampy.optim.perturbation import (
    dual_direction,
    dual_norm_exponent,
    lp_norm,
    norm_ball_perturbation,
)
from sampy.optim.sam import SAM, NormBallAscent
from sampy.optim.sgd import SGD, SGDState
from sampy.optim.sharpness_aware import (
    PerturbedGradient,
    SharpnessAware,
    SharpnessAwareState,
)

__all__ = [
    "SAM",
    "SGD",
    "Adam",
    "AdamState",
    "AdamW",
    "BaseOptimizer",
    "NormBallAscent",
    "Optimizer",
    "Oracle",
    "PerturbedGradient",
    "SGDState",
    "SharpnessAware",
    "SharpnessAwareState",
    "dual_direction",
    "dual_norm_exponent",
    "lp_norm",
    "norm_ball_perturbation",
]
