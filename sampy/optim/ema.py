"""Exponential moving average of the weights, with Keras semantics, around any optimizer.

Keras 3 ``Optimizer(use_ema=True, ema_momentum=μ, ema_overwrite_frequency=k)``
(keras-team/keras @ 001750db, ``keras/src/optimizers/base_optimizer.py``). After the update of step
``t = 0, 1, …``:

1. ``μ_t = 0`` if ``t = 0`` else ``μ``                (the first update copies the weights)
2. ``avg ← μ_t · avg + (1 − μ_t) · w``
3. if ``k`` and ``(t + 1) mod k = 0``: ``w ← avg``      (otherwise the average is only read,
   e.g. for evaluation: ``ema_weights(state)``; Keras' ``fit`` copies it in at the end)

The same as torch's ``AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(μ))``.

SAM interplay: the average is of the **unperturbed** weights. SAM-type steps return the
unperturbed point anyway; MSAM-style variants store a perturbed point ``w̃`` and say how to
get back (``unperturbed(w̃, state)``), so the average tracks ``w`` and an overwrite stores
``move_to_ascent(avg)``. With gradient accumulation a step here is one parameter update
(Keras' public ``iterations``); Keras also runs line 2 on the ``N − 1`` calls that only
accumulate, pulling the average ``N − 1`` more times toward the unchanged weights — not
reproduced (the two agree when ``N = 1``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from sampy.optim.base import Oracle, State
from sampy.optim.hyper import Hyper, validate
from sampy.optim.transforms import OptimizerWrapper, perturbed_point, unperturbed_point

USE_EMA = Hyper("use_ema", False, "keep a moving average of the weights (Keras)", kind="bool")
EMA_MOMENTUM = Hyper("ema_momentum", 0.99, "momentum μ of the weight average", 0.0, 1.0)
EMA_OVERWRITE_FREQUENCY = Hyper(
    "ema_overwrite_frequency",
    None,
    "replace the weights by their average every k steps (None = never)",
    1,
    None,
    kind="int",
)


class EMAState(NamedTuple):
    """The wrapped optimizer's state, the weight average and the completed steps."""

    inner: Any
    average: np.ndarray
    count: int


class WithEMA(OptimizerWrapper):
    """Any optimizer, plus a moving average of its (unperturbed) weights.

    Args:
        optimizer: the optimizer to wrap (any variant).
        ema_momentum: μ in ``avg ← μ avg + (1 − μ) w`` (Keras' default 0.99).
        ema_overwrite_frequency: every k steps the weights are replaced by the average
            (None: never; read the average with ``ema_weights``).
    """

    HYPERPARAMETERS = (EMA_MOMENTUM, EMA_OVERWRITE_FREQUENCY)

    def __init__(
        self,
        optimizer: Any,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: int | None = None,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        super().__init__(optimizer)
        self.ema_momentum = float(ema_momentum)
        self.ema_overwrite_frequency = (
            None if ema_overwrite_frequency is None else int(ema_overwrite_frequency)
        )

    def init(self, x: np.ndarray) -> EMAState:
        """The wrapped state; the average starts at the weights (overwritten by step 0)."""
        inner = self.optimizer.init(x)
        w = np.array(unperturbed_point(self.optimizer, x, inner), dtype=float)
        return EMAState(inner=inner, average=w, count=0)

    def step(self, x: np.ndarray, state: EMAState, oracle: Oracle) -> tuple[np.ndarray, EMAState]:
        """One step of the wrapped optimizer, then the average (and maybe the overwrite)."""
        x, inner = self.optimizer.step(x, state.inner, oracle)
        w = unperturbed_point(self.optimizer, x, inner)
        if state.count == 0:
            # Keras: μ_0 = 0, i.e. 0·avg + 1·w; copying says the same without touching avg.
            average = np.array(w, dtype=float)
        else:
            mu = self.ema_momentum
            average = mu * state.average + (1.0 - mu) * w
        k = self.ema_overwrite_frequency
        if k is not None and (state.count + 1) % k == 0:
            x = perturbed_point(self.optimizer, average.copy(), inner)
        return x, EMAState(inner=inner, average=average, count=state.count + 1)

    def unperturbed(self, x: np.ndarray, state: EMAState) -> np.ndarray:
        """The wrapped optimizer's un-perturbed point (not the average: see ``ema_weights``)."""
        return unperturbed_point(self.optimizer, x, state.inner)

    def move_to_ascent(self, w: np.ndarray, state: EMAState) -> np.ndarray:
        """The point to store for un-perturbed ``w``."""
        return perturbed_point(self.optimizer, w, state.inner)

    @staticmethod
    def ema_weights(state: EMAState) -> np.ndarray:
        """The weight average (what to evaluate), shape ``(..., d)``."""
        return ema_weights(state)

    def __repr__(self) -> str:
        return (
            f"WithEMA({self.optimizer!r}, ema_momentum={self.ema_momentum}, "
            f"ema_overwrite_frequency={self.ema_overwrite_frequency})"
        )


def ema_weights(state: State) -> np.ndarray:
    """The weight average kept in a ``WithEMA`` state (``ValueError`` for any other state)."""
    if not isinstance(state, EMAState):
        raise ValueError(
            f"use_ema: this state keeps no weight average (build the optimizer with "
            f"use_ema=True or WithEMA), got {type(state).__name__}"
        )
    return state.average
