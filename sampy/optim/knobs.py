"""The Keras SAM library's "standard parameters", for every variant, by composition.

The Keras SAM library's documentation (NoteDance/SAM, a Keras port of pytorch-optimizer)
documents ``use_gc`` and the Keras optimizer knobs ``clipnorm``, ``clipvalue``,
``global_clipnorm``, ``use_ema``, ``ema_momentum``, ``ema_overwrite_frequency``,
``loss_scale_factor`` and ``gradient_accumulation_steps`` for its SAM classes — and its code
(NoteDance/optimizers @ 68c03d09, ``optimizers/sam.py``) silently ignores them. ``with_knobs``
gives them a meaning for every variant, without touching any variant's code:

    opt = with_knobs(GSAM(SGD(lr=0.1)), partition=((3, 4), (3,)), use_gc=True,
                     clipnorm=1.0, use_ema=True, gradient_accumulation_steps=4)

How it is assembled, innermost first (each piece is usable alone):

1. the variant, with its ascent rule wrapped (``TransformedAscent``: GC as ``gc_ascent``
   says, clipping when ``clip_stage="ascent"``) and its base wrapped (``TransformedBase``:
   clipping when ``clip_stage="descent"``, then GC when ``gc_descent``);
2. an oracle view (``WithGradientTransform``, or the accumulation's views): the loss-scale
   round trip, then clipping when ``clip_stage="both"`` (Keras: unscale → accumulate → clip);
3. ``WithAccumulation`` when ``gradient_accumulation_steps > 1``;
4. ``WithEMA`` when ``use_ema``.

An optimizer without a base that takes one gradient per step (MSAM, Schedule-Free) gets
its descent-stage transformations at the oracle: that one gradient is its descent
direction. A knob that cannot act on the given optimizer (an ascent stage for a variant
without an ascent rule, ``gc_descent`` without ``use_gc``, …) raises ``ValueError`` naming
it, never silently does nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np

from sampy.optim.accumulation import (
    ACCUMULATION_MODE,
    GRADIENT_ACCUMULATION_STEPS,
    WithAccumulation,
)
from sampy.optim.base import Oracle, State
from sampy.optim.clipping import (
    CLIP_STAGE,
    CLIPNORM,
    CLIPVALUE,
    GLOBAL_CLIPNORM,
    clip_transform,
)
from sampy.optim.ema import (
    EMA_MOMENTUM,
    EMA_OVERWRITE_FREQUENCY,
    USE_EMA,
    WithEMA,
    ema_weights,
)
from sampy.optim.gc import GC_ASCENT_SPEC, GC_DESCENT, USE_GC, centralize, centralized_ascent
from sampy.optim.hyper import Hyper, validate
from sampy.optim.transforms import (
    LOSS_SCALE_FACTOR,
    OptimizerWrapper,
    Partition,
    Transform,
    TransformedAscent,
    TransformedBase,
    WithGradientTransform,
    as_partition,
    ascent_rule_of,
    base_of,
    chain,
    loss_scaled,
    takes_one_gradient,
    with_ascent,
    with_base,
)

KNOBS: tuple[Hyper, ...] = (
    USE_GC,
    GC_ASCENT_SPEC,
    GC_DESCENT,
    CLIPNORM,
    CLIPVALUE,
    GLOBAL_CLIPNORM,
    CLIP_STAGE,
    USE_EMA,
    EMA_MOMENTUM,
    EMA_OVERWRITE_FREQUENCY,
    GRADIENT_ACCUMULATION_STEPS,
    ACCUMULATION_MODE,
    LOSS_SCALE_FACTOR,
)


def _needs(knob: str, what: str, optimizer: Any, instead: str) -> ValueError:
    return ValueError(f"{knob}: {what}, and {type(optimizer).__name__} has none; {instead}")


def _check_switches(
    use_gc: bool,
    gc_ascent: str,
    gc_descent: bool,
    use_ema: bool,
    ema_overwrite_frequency: int | None,
) -> None:
    """A knob that asks for an action its master switch turns off raises, never does nothing.

    Knobs that only say *how* (``gc_ascent``, ``clip_stage``, ``ema_momentum``,
    ``accumulation_mode``) have defaults and are simply unused while their switch is off.
    """
    if gc_descent and not use_gc:
        raise ValueError("gc_descent=True centralizes nothing without use_gc=True")
    if use_gc and gc_ascent == "off" and not gc_descent:
        raise ValueError(
            "use_gc=True with gc_ascent='off' and gc_descent=False centralizes nothing"
        )
    if ema_overwrite_frequency is not None and not use_ema:
        raise ValueError("ema_overwrite_frequency needs use_ema=True")


class WithKnobs(OptimizerWrapper):
    """A variant with the Keras SAM library's standard parameters (see the module docstring).

    Args:
        optimizer: any sampy optimizer (a SAM variant, or a base used alone).
        partition: the tensor layout of the flat coordinates (``Partition`` or a sequence of
            shapes); None = one 1-D tensor (then GC is the identity and ``clipnorm`` is
            global).
        use_gc, gc_ascent, gc_descent: gradient centralization and where (``sampy.optim.gc``).
        clipnorm, clipvalue, global_clipnorm, clip_stage: Keras clipping (at most one) and
            which gradients it clips (``sampy.optim.clipping``).
        use_ema, ema_momentum, ema_overwrite_frequency: Keras' weight EMA
            (``sampy.optim.ema``).
        gradient_accumulation_steps, accumulation_mode: one update per N micro-batches
            (``sampy.optim.accumulation``).
        loss_scale_factor: gradients of ``s·L`` divided by ``s`` (``sampy.optim.transforms``).
    """

    HYPERPARAMETERS = KNOBS

    def __init__(
        self,
        optimizer: Any,
        *,
        partition: Partition | Sequence[Sequence[int]] | None = None,
        use_gc: bool = False,
        gc_ascent: str = "kozistr",
        gc_descent: bool = False,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        clip_stage: str = "descent",
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: int | None = None,
        gradient_accumulation_steps: int = 1,
        accumulation_mode: str = "msharpness",
        loss_scale_factor: float | None = None,
    ) -> None:
        values = dict(locals())
        validate(self.HYPERPARAMETERS, values)
        super().__init__(optimizer)  # checks that it is an optimizer instance
        _check_switches(use_gc, gc_ascent, gc_descent, use_ema, ema_overwrite_frequency)
        self.variant = optimizer
        self.partition = as_partition(partition)
        self.knobs = {spec.name: values[spec.name] for spec in KNOBS}
        clip = clip_transform(self.partition, clipnorm, clipvalue, global_clipnorm)
        gc = partial(centralize, partition=self.partition) if use_gc else None

        inner = self._ascent_stage(
            optimizer,
            clip if clip_stage == "ascent" else None,
            gc_ascent if use_gc else "off",
        )
        oracle = chain(
            None if loss_scale_factor is None else loss_scaled(loss_scale_factor),
            clip if clip_stage == "both" else None,
        )
        inner, oracle = self._descent_stage(
            inner,
            oracle,
            clip if clip_stage == "descent" else None,
            gc if gc_descent else None,
        )
        if gradient_accumulation_steps > 1:
            inner = WithAccumulation(inner, gradient_accumulation_steps, accumulation_mode, oracle)
        elif oracle is not None:
            inner = WithGradientTransform(inner, oracle)
        if use_ema:
            inner = WithEMA(inner, ema_momentum, ema_overwrite_frequency)
        self.optimizer = inner

    def _ascent_stage(self, variant: Any, clip: Transform | None, gc_ascent: str) -> Any:
        """The variant with its ascent rule seeing ``GC(clip(g))`` (or ``GC(ε)``, kozistr)."""
        if clip is None and gc_ascent == "off":
            return variant
        rule = ascent_rule_of(variant)
        if rule is None:
            raise _needs(
                "clip_stage" if clip is not None else "gc_ascent",
                "the ascent stage is the gradient a variant's ascent rule builds ε from",
                variant,
                "use gc_ascent='off' (and gc_descent=True) or clip_stage='descent'/'both'",
            )
        # GC inside, clipping outside: clipping acts on the raw gradient, as Keras' apply
        # does, and GC belongs to the step, as in pytorch-optimizer.
        rule = centralized_ascent(rule, self.partition, gc_ascent)
        if clip is not None:
            rule = TransformedAscent(rule, clip)
        return with_ascent(variant, rule)

    @staticmethod
    def _descent_stage(
        variant: Any, oracle: Transform | None, clip: Transform | None, gc: Transform | None
    ) -> tuple[Any, Transform | None]:
        """The variant with its base moving along ``GC(clip(d))``; and the oracle transform."""
        descent = chain(clip, gc)
        if descent is None:
            return variant, oracle
        base = base_of(variant)
        if base is not None:
            return with_base(variant, TransformedBase(base, descent)), oracle
        if takes_one_gradient(variant):
            return variant, chain(oracle, descent)  # its one gradient is its descent direction
        raise _needs(
            "clip_stage" if clip is not None else "gc_descent",
            "the descent stage is the direction a variant hands to its base optimizer",
            variant,
            "use clip_stage='both' to clip every gradient it sees",
        )

    def init(self, x: np.ndarray) -> State:
        """The assembled optimizer's state (the partition must cover the points' d)."""
        if self.partition is not None:
            self.partition.check(np.shape(x)[-1])
        return self.optimizer.init(x)

    def step(self, x: np.ndarray, state: State, oracle: Oracle) -> tuple[np.ndarray, State]:
        """One step of the assembled optimizer."""
        return self.optimizer.step(x, state, oracle)

    def ema_weights(self, state: State) -> np.ndarray:
        """The weight average (``use_ema=True`` only)."""
        return ema_weights(state)

    def __repr__(self) -> str:
        changed = ", ".join(
            f"{spec.name}={self.knobs[spec.name]!r}"
            for spec in KNOBS
            if self.knobs[spec.name] != spec.default
        )
        partition = "" if self.partition is None else f", partition={self.partition.shapes}"
        return f"with_knobs({self.variant!r}{partition}{', ' if changed else ''}{changed})"


def with_knobs(optimizer: Any, **knobs: Any) -> WithKnobs:
    """``optimizer`` with the Keras SAM library's standard parameters; see ``WithKnobs``."""
    return WithKnobs(optimizer, **knobs)
