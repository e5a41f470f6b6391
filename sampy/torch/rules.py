"""Every ascent and descent rule of the torch twins, and how to compose your own variant.

A SAM-type step is five lines (``sampy.torch.sharpness_aware``)::

    g = ∇L(w)                  # closure() or your own backward()
    ε = ascent(ctx, g)         # where the second gradient is taken; w ← w + ε
    g̃ = ∇L(w + ε)              # the closure again
    d = descent(ctx, g, g̃)     # which direction the base optimizer gets, at the restored w
    base_optimizer.step()      # with d in p.grad

An **ascent rule** (``AscentRule``) is a callable ``(ctx, grads, inplace) -> ε``; a **descent
rule** (``DescentRule``) is a callable ``(ctx, g, g_adv) -> d`` with a class attribute
``needs_clean_grad`` (False when it reads only ``g̃``: then ``g`` is neither kept nor passed,
and arrives as None). Both work on ``Groups``, one list of tensors per parameter group (only
the parameters that have a gradient); norms and inner products are global over all groups
(``sampy.torch.groups``). ``ctx`` is a ``RuleContext``: the group dicts (per-group ``rho``,
``adaptive``, ``eta``, which a scheduler may change), the parameters, ``ctx.state[p]`` for
per-parameter tensors (an EMA, a mask) and ``ctx.shared`` for counters; both are saved by
``state_dict()``.

Each rule lives in its variant's module (``NormBallAscent`` in ``sampy.torch.sam``,
``GSAMDescent`` in ``sampy.torch.gsam``, ...); this module gathers them, so a new variant is a
sentence::

    from sampy.torch.rules import FriendlyAscent, GSAMDescent, SharpnessAware

    opt = SharpnessAware(
        model.parameters(),
        torch.optim.SGD,
        ascent=FriendlyAscent(sigma=1.0, lmbda=0.9, momentum_order="official_code", eps=1e-12),
        descent=GSAMDescent(alpha=0.4, eps=1e-12),
        group_hyperparameters=dict(rho=0.05),
        lr=0.1,
    )
    loss = opt.step(closure)

The NumPy reference composes the same rules from ``sampy.optim.rules``.
"""

from __future__ import annotations

from sampy.torch.checkpoints import CheckpointHybrid, CheckpointScaling
from sampy.torch.clampsam import ClampedAscent, RatioClip
from sampy.torch.esam import SWPAscent
from sampy.torch.fisher_sam import FisherAscent
from sampy.torch.friendly_sam import FriendlyAscent
from sampy.torch.gsam import GSAMDescent, ScheduledNormBallAscent
from sampy.torch.looksam import LookSAMDescent
from sampy.torch.random_sam import MixedDescent, RandomAscent
from sampy.torch.sam import NormBallAscent
from sampy.torch.sharpness_aware import (
    AscentRule,
    DescentRule,
    PerturbedGradient,
    RuleContext,
    SharpnessAware,
)
from sampy.torch.ssam import MaskedAscent
from sampy.torch.swaps import AgreementRule, SAMDirectionRule, SAMMagnitudeRule
from sampy.torch.usam import UnnormalizedAscent
from sampy.torch.vasso import VarianceSuppressedAscent
from sampy.torch.wsam import WeightedDescent

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
    "LookSAMDescent",
    "MaskedAscent",
    "MixedDescent",
    "NormBallAscent",
    "PerturbedGradient",
    "RandomAscent",
    "RatioClip",
    "RuleContext",
    "SAMDirectionRule",
    "SAMMagnitudeRule",
    "SWPAscent",
    "ScheduledNormBallAscent",
    "SharpnessAware",
    "UnnormalizedAscent",
    "VarianceSuppressedAscent",
    "WeightedDescent",
]
