"""Schedule-Free AdamW: iterate averaging in place of a learning-rate schedule.

A. Defazio, X. A. Yang, H. Mehta, K. Mishchenko, A. Khaled, A. Cutkosky, "The Road Less
Scheduled", NeurIPS 2024, arXiv:2405.15682. Official code: facebookresearch/schedule_free
@ 70785b53 (``AdamWScheduleFreeReference``, the three-buffer form followed here).

Three sequences per point: ``z`` (the base iterate, moved by the AdamW-like step), ``x`` (a
weighted average of the z's, the point to *evaluate*), and ``y = β1 x + (1 − β1) z`` (where the
gradient is taken; the parameters hold y during training). β1 is an interpolation weight,
not a gradient EMA: there is no first moment. Step ``k = 0, 1, …``:

1. ``s = (k+1)/W`` if ``k < W`` else 1                   (linear warm-up over W steps)
2. ``γ = η s √(1 − β2^{k+1})`` (GEN-A)  or  ``γ = η s`` (GEN-B)
3. ``γ_max ← max(γ_max, γ)``;  ``ω = (k+1)^r γ_max^p``;  ``Ω ← Ω + ω``;  ``c = ω/Ω``
4. ``g = ∇L(y)``;  ``v ← β2 v + (1 − β2) g²``
5. ``den = √v + eps`` (GEN-A)  or  ``den = √(v/(1 − β2^{k+1})) + eps`` (GEN-B)
6. ``z ← z − γ λ y`` (or ``γ λ z`` with ``decay_at_z``);  ``z ← z − γ g/den``
7. ``x ← (1 − c) x + c z``;  ``y ← β1 x + (1 − β1) z``  (the new parameters)

Two generations of the official code, chosen by ``variant``: ``"gen_a"`` is the paper's form
and the code before commit 59ed9b66 (2024-11-04, also ``AdamWScheduleFreePaper``); ``"gen_b"``
(default) is the current code, ``AdamWScheduleFree`` / ``AdamWScheduleFreeReference`` of
``pip install schedulefree``. They differ in where ``√(1 − β2^{k+1})`` sits, hence in how eps
is scaled and in the averaging weights ``ω`` during the first steps.

One gradient evaluation per step. Identities: the first step has ``c = 1``, so ``x_1 = z_1``;
``p = r = 0`` gives ``c = 1/(k+1)``, so x is the arithmetic mean of ``z_1 … z_{k+1}``; β1 = 0
gives ``y = z`` (an RMSprop-like z and its Polyak average x).

Modes, as pure functions: the points a ``sampy.run`` trajectory records (and ``step`` takes)
are the training parameters y. ``eval(y, state)`` returns x, the point to evaluate or to
checkpoint; ``train(x, state)`` returns y, the point to give back to ``step``. The official
optimizer raises when stepped in eval mode; here nothing tracks the mode, so handing x to
``step`` silently takes the gradient at the wrong point.

It is also a *base* optimizer: ``update(y, d, state)`` moves with a given direction ``d`` in
place of ``∇L(y)``, so ``SAM(ScheduleFreeAdamW(), rho=…)`` takes SAM's second gradient at
``y + ε`` and the schedule-free step at y (its x is then ``eval(y, state.base)``).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import NamedTuple

import numpy as np

from sampy.optim.adam import ADAM_EPS, BETAS, second_moment
from sampy.optim.base import Oracle, per_point
from sampy.optim.hyper import Hyper, validate
from sampy.optim.sgd import LR, WEIGHT_DECAY

GENERATIONS = ("gen_b", "gen_a")
Real = float | np.ndarray  # a number, or one per point with shape (..., 1)

SCHEDULE_FREE_HYPERPARAMETERS = (
    replace(LR, default=0.0025),
    replace(BETAS, meaning="β1: interpolation weight of y between z and x; β2: EMA rate of v"),
    replace(ADAM_EPS, meaning="added to the (bias-corrected) √v in the denominator"),
    replace(WEIGHT_DECAY, meaning="weight decay λ, applied to z with step η_t"),
    Hyper("warmup_steps", 0, "linear learning-rate warm-up steps W", 0, None, kind="int"),
    Hyper("r", 0.0, "power r of the polynomial averaging weights (k+1)^r", 0.0, None),
    Hyper("weight_lr_power", 2.0, "power p of the averaging weights (max η_t)^p", 0.0, None),
    Hyper("decay_at_z", False, "evaluate the weight decay at z instead of y", kind="bool"),
    Hyper(
        "variant",
        "gen_b",
        "'gen_b': current code, bias-corrected v; 'gen_a': paper, √(1−β2ᵏ) in the step",
        kind="choice",
        choices=GENERATIONS,
    ),
)


class ScheduleFreeState(NamedTuple):
    """Step count ``k`` (0-based), the sequences ``z`` and ``x``, the second moment ``v``,
    the largest step so far ``lr_max`` and the sum of averaging weights ``weight_sum``.

    ``lr_max`` and ``weight_sum`` are numbers, or arrays of shape ``(..., 1)`` when ``lr``
    has one value per point. y is not stored: it is the parameters.
    """

    count: int
    z: np.ndarray
    x: np.ndarray
    v: np.ndarray
    lr_max: float | np.ndarray
    weight_sum: float | np.ndarray


def polynomial_weight(
    t: float, r: float, lr_max: float | np.ndarray, weight_lr_power: float
) -> float | np.ndarray:
    """The averaging weight ``t^r · lr_max^weight_lr_power``, overflowing to ``inf``, never raising.

    Python's float ``**`` raises ``OverflowError`` where the result leaves the float range
    (``lr = 1e155``, ``r = 400``); in float64 under ``errstate`` it is ``inf``, the average
    then turns non-finite and ``sampy.run`` records the divergence. A Python float comes back
    for scalar arguments (a torch ``param_group`` keeps plain floats).
    """
    with np.errstate(over="ignore", invalid="ignore"):
        weight = np.power(np.float64(t), r) * np.power(
            np.asarray(lr_max, dtype=float), weight_lr_power
        )
    return weight if np.ndim(weight) else float(weight)


def averaging_weight(weight: Real, weight_sum: Real) -> Real:
    """``c = weight / weight_sum``, and 1 while every weight so far is 0.

    A tiny learning rate makes ``lr_max ** weight_lr_power`` underflow to 0 (lr = 1e-170, say);
    the official code then divides 0 by 0. With c = 1 the average x simply follows z until the
    weights become representable.
    """
    if isinstance(weight_sum, np.ndarray):
        positive = weight_sum > 0
        with np.errstate(invalid="ignore"):  # inf / inf after an overflow: NaN, a divergence
            return np.where(positive, weight / np.where(positive, weight_sum, 1.0), 1.0)
    return weight / weight_sum if weight_sum > 0 else 1.0


class ScheduleFreeAdamW:
    """Schedule-Free AdamW (reference three-sequence form). One gradient per step.

    Args:
        lr: learning rate η (a number, or one value per start point).
        betas: (β1, β2): β1 interpolates y between z and x, β2 is v's EMA rate.
        eps: added to the denominator.
        weight_decay: decay λ, ``z ← z − γλ y``.
        warmup_steps: linear warm-up of the step over this many steps (0 = none).
        r: power of the polynomial averaging weights.
        weight_lr_power: power p of the largest step so far in the averaging weights.
        decay_at_z: take the decay at z instead of y (newer official versions).
        variant: ``"gen_b"`` (current official code) or ``"gen_a"`` (the paper).
    """

    grad_evals_per_step = 1
    HYPERPARAMETERS = SCHEDULE_FREE_HYPERPARAMETERS

    def __init__(
        self,
        lr: float | np.ndarray = 0.0025,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        r: float = 0.0,
        weight_lr_power: float = 2.0,
        decay_at_z: bool = False,
        variant: str = "gen_b",
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        self.lr = lr
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = eps
        self.weight_decay = weight_decay
        self.warmup_steps = int(warmup_steps)
        self.r = r
        self.weight_lr_power = weight_lr_power
        self.decay_at_z = bool(decay_at_z)
        self.variant = variant
        self._lr = per_point(lr)

    def __repr__(self) -> str:
        return (
            f"ScheduleFreeAdamW(lr={self.lr}, betas={self.betas}, eps={self.eps}, "
            f"weight_decay={self.weight_decay}, warmup_steps={self.warmup_steps}, r={self.r}, "
            f"weight_lr_power={self.weight_lr_power}, decay_at_z={self.decay_at_z}, "
            f"variant={self.variant!r})"
        )

    def init(self, x: np.ndarray) -> ScheduleFreeState:
        """``z = x = y = x0``, ``v = 0``, ``k = 0``, ``lr_max = −1`` (as the official code)."""
        x0 = np.array(x, dtype=float)
        return ScheduleFreeState(
            count=0, z=x0, x=x0.copy(), v=np.zeros_like(x0), lr_max=-1.0, weight_sum=0.0
        )

    def eval(self, y: np.ndarray, state: ScheduleFreeState) -> np.ndarray:
        """The point to evaluate: the average x (the official ``optimizer.eval()``)."""
        return state.x

    def train(self, x: np.ndarray, state: ScheduleFreeState) -> np.ndarray:
        """The training parameters y (the official ``optimizer.train()``)."""
        if state.count == 0:
            return state.x  # z = x = x0, and β1 x0 + (1 − β1) x0 may be 1 ulp off x0
        beta1 = self.betas[0]
        return beta1 * state.x + (1.0 - beta1) * state.z

    def _schedule(
        self, k: int, lr_max: float | np.ndarray, weight_sum: float | np.ndarray
    ) -> tuple[Real, float, Real, Real, Real]:
        """Steps 1–3 for step k: ``(γ, 1 − β2^{k+1}, γ_max, Ω, c)``."""
        sched = (k + 1) / self.warmup_steps if k < self.warmup_steps else 1.0
        bias2 = 1.0 - self.betas[1] ** (k + 1)
        lr = self._lr * sched
        if self.variant == "gen_a":
            lr = lr * math.sqrt(bias2)
        lr_max = np.maximum(lr_max, lr) if isinstance(lr, np.ndarray) else max(lr_max, lr)
        weight = polynomial_weight(k + 1, self.r, lr_max, self.weight_lr_power)
        weight_sum = weight_sum + weight
        return lr, bias2, lr_max, weight_sum, averaging_weight(weight, weight_sum)

    def update(
        self, y: np.ndarray, d: np.ndarray, state: ScheduleFreeState
    ) -> tuple[np.ndarray, ScheduleFreeState]:
        """Steps 1–7 with ``d`` in place of ``∇L(y)``; returns the new y."""
        beta1, beta2 = self.betas
        lr, bias2, lr_max, weight_sum, c = self._schedule(
            state.count, state.lr_max, state.weight_sum
        )
        v = second_moment(state.v, d, beta2)
        if self.variant == "gen_a":
            denom = np.sqrt(v) + self.eps
        else:
            denom = np.sqrt(v / bias2) + self.eps
        z = state.z
        if self.weight_decay != 0:
            z = z - (lr * self.weight_decay) * (z if self.decay_at_z else y)
        z = z - lr * (d / denom)
        x = state.x * (1.0 - c) + c * z
        y = beta1 * x + (1.0 - beta1) * z
        new = ScheduleFreeState(
            count=state.count + 1, z=z, x=x, v=v, lr_max=lr_max, weight_sum=weight_sum
        )
        return y, new

    def step(
        self, y: np.ndarray, state: ScheduleFreeState, oracle: Oracle
    ) -> tuple[np.ndarray, ScheduleFreeState]:
        """One gradient at y, one schedule-free update."""
        return self.update(y, oracle.grad(y), state)
