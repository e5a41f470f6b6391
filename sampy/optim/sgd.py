"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay.

The update is the one of ``torch.optim.SGD`` (the twins rely on it), for a direction ``d``
(the gradient, or what a SAM-type method hands over):

1. ``d ← d + λ w``                                   (coupled weight decay, λ = weight_decay)
2. ``b ← d`` on the first step, else ``b ← μ b + (1 − τ) d``   (μ = momentum, τ = dampening)
3. ``d ← d + μ b`` if nesterov else ``d ← b``               (only when μ > 0)
4. ``w ← w − η d``                                       (η = lr)

Reference: I. Sutskever, J. Martens, G. Dahl, G. Hinton, "On the importance of initialization
and momentum in deep learning", ICML 2013 (momentum and the Nesterov form used here).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from sampy.optim.base import Oracle, per_point
from sampy.optim.hyper import Hyper, validate

LR = Hyper("lr", 1e-3, "learning rate η", 0.0, None, low_open=True, log=True, per_point=True)
WEIGHT_DECAY = Hyper("weight_decay", 0.0, "weight decay λ", 0.0, None)


class SGDState(NamedTuple):
    """``momentum``: the buffer ``b`` (``None`` before the first step or without momentum)."""

    momentum: np.ndarray | None


class SGD:
    """Gradient descent, the base optimizer of most SAM papers. One gradient per step."""

    grad_evals_per_step = 1
    HYPERPARAMETERS = (
        LR,
        Hyper("momentum", 0.0, "momentum μ (0 = none)", 0.0, 1.0),
        Hyper("dampening", 0.0, "dampening τ of the momentum buffer", 0.0, 1.0),
        Hyper("nesterov", False, "Nesterov's form of momentum", kind="bool"),
        WEIGHT_DECAY,
    )

    def __init__(
        self,
        lr: float | np.ndarray = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("nesterov=True requires momentum > 0 and dampening = 0")
        self.lr = lr
        self.momentum = momentum
        self.dampening = dampening
        self.nesterov = nesterov
        self.weight_decay = weight_decay
        self._lr = per_point(lr)

    def __repr__(self) -> str:
        return (
            f"SGD(lr={self.lr}, momentum={self.momentum}, dampening={self.dampening}, "
            f"nesterov={self.nesterov}, weight_decay={self.weight_decay})"
        )

    def init(self, x: np.ndarray) -> SGDState:
        """No momentum buffer until the first step (as in torch)."""
        return SGDState(momentum=None)

    def update(self, x: np.ndarray, d: np.ndarray, state: SGDState) -> tuple[np.ndarray, SGDState]:
        """Move ``x`` along ``d`` (in place of the gradient)."""
        if self.momentum == 0 and self.weight_decay == 0:
            return x - self._lr * d, state  # plain gradient descent: nothing to remember
        if self.weight_decay != 0:
            d = d + self.weight_decay * x
        buf = state.momentum
        if self.momentum != 0:
            if buf is None:
                buf = d.copy()
            else:
                buf = self.momentum * buf + (1.0 - self.dampening) * d
            d = d + self.momentum * buf if self.nesterov else buf
        return x - self._lr * d, SGDState(momentum=buf)

    def step(self, x: np.ndarray, state: SGDState, oracle: Oracle) -> tuple[np.ndarray, SGDState]:
        """One gradient, one update."""
        return self.update(x, oracle.grad(x), state)
