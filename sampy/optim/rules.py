"""Every ascent and descent rule of the NumPy references, and the two protocols they follow.

This module only re-exports; each rule lives in its variant's file (``FriendlyAscent`` in
``friendly_sam.py``, ``GSAMDescent`` in ``gsam.py``, …) and ``sampy.torch.rules`` lists the
torch twins under the same names.

A sharpness-aware step is three parts, each a small object (``SharpnessAware`` composes them):

- an **ascent rule** (``AscentRule``): ``init(x) -> state`` and
  ``rule(x, g, state) -> (ε, state)``: where the second gradient is taken, ``w + ε``;
- a **descent rule** (``DescentRule``): ``init(x) -> state`` and
  ``rule(g, g̃, state) -> (d, state)``: which direction goes to the base optimizer;
- a **base optimizer** (``SGD``, ``Adam``, …) that moves the unperturbed ``w`` along ``d``.

A variant is a choice of the three, as optax composes gradient transformations with
``optax.chain``: rules with memory (F-SAM's average of past gradients, GSAM's ρ schedule) keep
it in their state, which ``SharpnessAware`` threads through the steps. So F-SAM's ascent and
GSAM's descent make a variant that neither paper wrote, without a new class:

>>> import numpy as np
>>> import sampy
>>> from sampy.optim import SGD
>>> from sampy.optim.rules import FriendlyAscent, GSAMDescent, SharpnessAware
>>> friendly_gsam = SharpnessAware(
...     SGD(lr=1e-3),
...     FriendlyAscent(rho=0.05, sigma=1.0, lmbda=0.9, momentum_order="official_code", eps=1e-12),
...     GSAMDescent(alpha=0.1, eps=1e-12),
... )
>>> run = sampy.run(friendly_gsam, "rosenbrock", np.array([[-1.0, 1.5]]), steps=200)
>>> bool(run.losses[-1, 0] < run.losses[0, 0]), run.grad_evals
(True, 400)

With ``sigma=0`` the ascent is SAM's and with ``alpha=0`` the descent is ``d = g̃``, so the
composition takes SAM's steps:

>>> sam_again = SharpnessAware(
...     SGD(lr=1e-3),
...     FriendlyAscent(rho=0.05, sigma=0.0, lmbda=0.9, momentum_order="official_code", eps=1e-12),
...     GSAMDescent(alpha=0.0, eps=1e-12),
... )
>>> x0 = np.array([[-1.0, 1.5]])
>>> plain = sampy.run(sampy.optim.SAM(SGD(lr=1e-3), rho=0.05), "rosenbrock", x0, steps=200)
>>> bool(np.allclose(sampy.run(sam_again, "rosenbrock", x0, steps=200).xs, plain.xs))
True
"""

from __future__ import annotations

from sampy.optim.checkpoints import CheckpointHybrid, CheckpointScaling
from sampy.optim.clampsam import ClampedAscent, RatioClip
from sampy.optim.fisher_sam import FisherAscent
from sampy.optim.friendly_sam import FriendlyAscent
from sampy.optim.gsam import GSAMDescent, ScheduledNormBallAscent
from sampy.optim.random_sam import MixedDescent, RandomAscent
from sampy.optim.sam import NormBallAscent
from sampy.optim.sharpness_aware import AscentRule, DescentRule, PerturbedGradient, SharpnessAware
from sampy.optim.swaps import AgreementRule, SAMDirectionRule, SAMMagnitudeRule
from sampy.optim.usam import UnnormalizedAscent
from sampy.optim.vasso import VarianceSuppressedAscent

__all__ = [
    "AgreementRule",
    "AscentRule",
    "CheckpointHybrid",
    "CheckpointScaling",
    "ClampedAscent",
    "DescentRule",
    "FisherAscent",
    "FriendlyAscent",
    "GSAMDescent",
    "MixedDescent",
    "NormBallAscent",
    "PerturbedGradient",
    "RandomAscent",
    "RatioClip",
    "SAMDirectionRule",
    "SAMMagnitudeRule",
    "ScheduledNormBallAscent",
    "SharpnessAware",
    "UnnormalizedAscent",
    "VarianceSuppressedAscent",
]
