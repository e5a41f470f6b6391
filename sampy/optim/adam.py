"""Adam and AdamW.

Adam (D. P. Kingma, J. Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015) for a
direction ``d`` at step ``t = 1, 2, …``, with the operation order of ``torch.optim.Adam``:

1. ``d ← d + λ w``                          (Adam: coupled L2 decay, λ = weight_decay)
2. ``m ← β1 m + (1 − β1) d``,  ``v ← β2 v + (1 − β2) d²``
3. ``w ← w − (η / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + eps)``

AdamW (I. Loshchilov, F. Hutter, "Decoupled Weight Decay Regularization", ICLR 2019) skips
step 1 and instead shrinks the weights first: ``w ← w (1 − η λ)``, as ``torch.optim.AdamW``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import numpy as np

from sampy.optim.base import Oracle, per_point
from sampy.optim.hyper import Hyper, validate
from sampy.optim.sgd import LR, WEIGHT_DECAY

BETAS = Hyper(
    "betas",
    (0.9, 0.999),
    "EMA rates (β1, β2) of the moments",
    0.0,
    1.0,
    high_open=True,
    kind="tuple",
    size=2,
)
ADAM_EPS = Hyper("eps", 1e-8, "added to √v in the denominator", 0.0, None)


def second_moment(v: np.ndarray, g: np.ndarray, beta2: float) -> np.ndarray:
    """Adam's second-moment EMA ``β2 v + (1 − β2) g²``."""
    return beta2 * v + (1.0 - beta2) * (g * g)


def adam_moments(
    m: np.ndarray, v: np.ndarray, g: np.ndarray, betas: tuple[float, float], *, lerp: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Adam's moment EMAs ``m ← β1 m + (1 − β1) g`` and ``v ← β2 v + (1 − β2) g²``.

    D. P. Kingma, J. Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015. ``lerp=True``
    forms m as ``torch.optim.Adam`` does, ``m + (1 − β1)(g − m)``, which can differ from the
    weighted sum (the official MSAM codes' form) in the last bit: each caller keeps the order
    of operations of the code it reproduces, so the float64 twins match step for step.
    """
    beta1, beta2 = betas
    if lerp:
        m = m + (1.0 - beta1) * (g - m)
    else:
        m = beta1 * m + (1.0 - beta1) * g
    return m, second_moment(v, g, beta2)


class AdamState(NamedTuple):
    """Step count ``t`` and the moment estimates ``m`` and ``v``."""

    count: int
    m: np.ndarray
    v: np.ndarray


class Adam:
    """Adam with coupled (L2) weight decay. One gradient per step."""

    decoupled = False
    grad_evals_per_step = 1
    HYPERPARAMETERS = (LR, BETAS, ADAM_EPS, WEIGHT_DECAY)

    def __init__(
        self,
        lr: float | np.ndarray = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        self.lr = lr
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = eps
        self.weight_decay = weight_decay
        self._lr = per_point(lr)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(lr={self.lr}, betas={self.betas}, eps={self.eps}, "
            f"weight_decay={self.weight_decay})"
        )

    def init(self, x: np.ndarray) -> AdamState:
        """Zero moments, step count 0."""
        return AdamState(count=0, m=np.zeros_like(x, dtype=float), v=np.zeros_like(x, dtype=float))

    def update(
        self, x: np.ndarray, d: np.ndarray, state: AdamState
    ) -> tuple[np.ndarray, AdamState]:
        """Move ``x`` using ``d`` in place of the gradient."""
        beta1, beta2 = self.betas
        lr = self._lr
        count = state.count + 1
        if self.weight_decay != 0:
            if self.decoupled:
                x = x * (1.0 - lr * self.weight_decay)
            else:
                d = d + self.weight_decay * x
        m, v = adam_moments(state.m, state.v, d, self.betas, lerp=True)
        step_size = lr / (1.0 - beta1**count)
        denom = np.sqrt(v) / (1.0 - beta2**count) ** 0.5 + self.eps
        return x - step_size * (m / denom), AdamState(count=count, m=m, v=v)

    def step(self, x: np.ndarray, state: AdamState, oracle: Oracle) -> tuple[np.ndarray, AdamState]:
        """One gradient, one update."""
        return self.update(x, oracle.grad(x), state)


class AdamW(Adam):
    """Adam with decoupled weight decay (default λ = 0.01, as ``torch.optim.AdamW``)."""

    decoupled = True
    HYPERPARAMETERS = (
        *Adam.HYPERPARAMETERS[:3],
        replace(WEIGHT_DECAY, default=1e-2, meaning="decoupled weight decay λ"),
    )

    def __init__(
        self,
        lr: float | np.ndarray = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        super().__init__(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
