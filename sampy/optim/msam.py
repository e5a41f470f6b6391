"""MSAM: Momentum-SAM, SAM's perturbation along the momentum, at no extra gradient.

M. Becker, F. Altrock, B. Risse, "Momentum-SAM: Sharpness Aware Minimization without
Computational Overhead", arXiv:2401.12033, 2024. Official code: MarlonBecker/MSAM
@ 780fa4f6 (``optimizer/msam.py``, ``optimizer/adamW_msam.py``).

Instead of a first gradient, MSAM perturbs along the *negative* momentum direction
``−ρ v/‖v‖`` (the direction the weights are moving, motivated by Nesterov's look-ahead), and
keeps the parameters *stored* at the perturbed point ``w̃``, so the one gradient of a step is
taken there. SGD version (``MSAM``), per point, with ``scale = ρ/(‖v‖ + 1e-12)`` (0 at first):

1. ``g = ∇L(w̃)``                          (the only gradient evaluation, at the stored point)
2. ``d = g + λ w̃``                        (coupled weight decay, at the PERTURBED point)
3. ``w = w̃ + scale · v``                  (remove the last perturbation)
4. ``v ← μ v + d``                         (v starts at 0, so ``v_1 = d_1``)
5. ``w ← w − η v``                         (SGD step)
6. ``scale ← ρ/(‖v‖ + 1e-12)``             (norm over the whole point: one "group")
7. ``w̃ ← w − scale · v``                  (perturb for the next step)

AdamW version (``AdamWMSAM``), with the Adam first moment ``m`` as the momentum:

1. ``g = ∇L(w̃)``;  ``t ← t + 1``
2. ``w = w̃ + scale · m``                  (undo with the OLD m)
3. ``m ← β1 m + (1−β1) g``;  ``v ← β2 v + (1−β2) g²``
4. ``w ← w − (η/(1−β1ᵗ)) · m/(√v/√(1−β2ᵗ) + eps)``
5. ``w ← w (1 − ηλ)``                      (decoupled decay AFTER the Adam step)
6. ``scale ← ρ/(‖m‖ + 1e-12)``;  ``w̃ ← w − scale · m``

One gradient evaluation per step (both). Reduces to: ``torch.optim.SGD(lr, momentum=μ,
weight_decay=λ)`` (= ``sampy.optim.SGD``) when ρ = 0; AdamW with the decay applied after the
Adam step when ρ = 0 (``torch.optim.AdamW`` decays before it: an O(η²λ) difference). Between
steps ``w̃ + scale · v = w`` and ``⟨w̃ − w, v⟩ < 0``: the perturbation points along the update.

The stored iterate is perturbed: the points a ``sampy.run`` trajectory records are the
``w̃``. Evaluate, checkpoint or average (EMA) the un-perturbed ``w = unperturbed(w̃, state)``
(``move_from_ascent``); ``move_to_ascent`` goes back. The official code keeps ``ρ·inv`` in two
factors and re-reads ρ when removing, so a ρ changed between steps leaves a residue; here the
state keeps the product ``scale`` that was applied, so removal is always exact. The official
SGD class also accepts ``nesterov`` and ignores it; it is left out here.
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import numpy as np

from sampy.optim.adam import ADAM_EPS, BETAS, adam_moments
from sampy.optim.base import Oracle, per_point
from sampy.optim.hyper import Hyper, validate
from sampy.optim.perturbation import lp_norm
from sampy.optim.sam import RHO
from sampy.optim.sgd import LR, WEIGHT_DECAY

NORM_EPS = 1e-12  # the official guard in ρ/(‖v‖ + 1e-12); makes the first (v = 0) step unperturbed


def _zero_scale(x: np.ndarray) -> np.ndarray:
    return np.zeros((*np.shape(x)[:-1], 1))


class MSAMState(NamedTuple):
    """``momentum``: the SGD buffer v; ``scale``: ρ/(‖v‖ + 1e-12), shape ``(..., 1)``.

    Invariant between steps: stored point ``w̃ = w − scale · momentum``.
    """

    momentum: np.ndarray
    scale: np.ndarray


class AdamWMSAMState(NamedTuple):
    """Step count ``t``, Adam moments ``m`` and ``v``, and ``scale`` = ρ/(‖m‖ + 1e-12).

    Invariant between steps: stored point ``w̃ = w − scale · m``.
    """

    count: int
    m: np.ndarray
    v: np.ndarray
    scale: np.ndarray


class _MomentumAscent:
    """Shared moves between the stored (perturbed) and the un-perturbed point."""

    @staticmethod
    def _direction(state: MSAMState | AdamWMSAMState) -> np.ndarray:
        raise NotImplementedError

    def move_from_ascent(self, x: np.ndarray, state: MSAMState | AdamWMSAMState) -> np.ndarray:
        """The un-perturbed ``w = w̃ + scale · v`` (for evaluation, checkpoints, EMA)."""
        return x + state.scale * self._direction(state)

    def move_to_ascent(self, x: np.ndarray, state: MSAMState | AdamWMSAMState) -> np.ndarray:
        """The stored point ``w̃ = w − scale · v`` (back to training after an evaluation)."""
        return x - state.scale * self._direction(state)

    def unperturbed(self, x: np.ndarray, state: MSAMState | AdamWMSAMState) -> np.ndarray:
        """Alias of ``move_from_ascent``: the point to report for the stored ``x``."""
        return self.move_from_ascent(x, state)


class MSAM(_MomentumAscent):
    """Momentum-SAM on SGD with momentum (official ``MSAM``). One gradient per step.

    Args:
        lr: learning rate η (a number, or one value per start point).
        momentum: momentum μ of the buffer ``v ← μ v + d``.
        weight_decay: coupled decay λ, added to the gradient at the perturbed point.
        rho: radius ρ of the perturbation ``−ρ v/‖v‖`` (official default 0.3; the paper's
            experiments use larger values, e.g. 3).
    """

    grad_evals_per_step = 1
    HYPERPARAMETERS = (
        replace(LR, default=0.1),
        Hyper("momentum", 0.9, "momentum μ", 0.0, 1.0),
        replace(
            WEIGHT_DECAY, default=1e-2, meaning="weight decay λ (coupled, at the perturbed point)"
        ),
        Hyper("rho", 0.3, RHO.meaning, 0.0, None, per_point=True),
    )

    def __init__(
        self,
        lr: float | np.ndarray = 0.1,
        momentum: float = 0.9,
        weight_decay: float = 1e-2,
        rho: float | np.ndarray = 0.3,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.rho = rho
        self._lr = per_point(lr)
        self._rho = per_point(rho)

    def __repr__(self) -> str:
        return (
            f"MSAM(lr={self.lr}, momentum={self.momentum}, weight_decay={self.weight_decay}, "
            f"rho={self.rho})"
        )

    @staticmethod
    def _direction(state: MSAMState) -> np.ndarray:
        return state.momentum

    def init(self, x: np.ndarray) -> MSAMState:
        """A zero buffer (as the official constructor) and a zero first perturbation."""
        return MSAMState(momentum=np.zeros_like(x, dtype=float), scale=_zero_scale(x))

    def step(self, x: np.ndarray, state: MSAMState, oracle: Oracle) -> tuple[np.ndarray, MSAMState]:
        """One step from the stored point ``x = w̃``; returns the next stored point."""
        d = oracle.grad(x)
        if self.weight_decay != 0:
            d = d + self.weight_decay * x
        w = x + state.scale * state.momentum
        v = self.momentum * state.momentum + d
        w = w - self._lr * v
        # ρ · (1/(‖v‖ + eps)) in the official order of operations.
        scale = self._rho * (1.0 / (lp_norm(v, 2) + NORM_EPS))
        return w - scale * v, MSAMState(momentum=v, scale=scale)


class AdamWMSAM(_MomentumAscent):
    """Momentum-SAM on AdamW (official ``AdamW_MSAM``). One gradient per step.

    Args:
        lr: learning rate η (a number, or one value per start point).
        betas: (β1, β2) of Adam's moments; the ascent follows the first moment m.
        eps: added to the bias-corrected √v.
        weight_decay: decoupled decay λ, applied after the Adam step as ``w (1 − ηλ)``.
        rho: radius ρ of the perturbation ``−ρ m/‖m‖`` (official default 1).
    """

    grad_evals_per_step = 1
    HYPERPARAMETERS = (
        LR,
        BETAS,
        ADAM_EPS,
        replace(WEIGHT_DECAY, default=1e-2, meaning="decoupled weight decay λ (after the step)"),
        Hyper("rho", 1.0, RHO.meaning, 0.0, None, per_point=True),
    )

    def __init__(
        self,
        lr: float | np.ndarray = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        rho: float | np.ndarray = 1.0,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        self.lr = lr
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = eps
        self.weight_decay = weight_decay
        self.rho = rho
        self._lr = per_point(lr)
        self._rho = per_point(rho)

    def __repr__(self) -> str:
        return (
            f"AdamWMSAM(lr={self.lr}, betas={self.betas}, eps={self.eps}, "
            f"weight_decay={self.weight_decay}, rho={self.rho})"
        )

    @staticmethod
    def _direction(state: AdamWMSAMState) -> np.ndarray:
        return state.m

    def init(self, x: np.ndarray) -> AdamWMSAMState:
        """Zero moments, step count 0, zero first perturbation."""
        zeros = np.zeros_like(x, dtype=float)
        return AdamWMSAMState(count=0, m=zeros, v=zeros.copy(), scale=_zero_scale(x))

    def step(
        self, x: np.ndarray, state: AdamWMSAMState, oracle: Oracle
    ) -> tuple[np.ndarray, AdamWMSAMState]:
        """One step from the stored point ``x = w̃``; returns the next stored point."""
        beta1, beta2 = self.betas
        lr = self._lr
        g = oracle.grad(x)
        count = state.count + 1
        w = x + state.scale * state.m
        m, v = adam_moments(state.m, state.v, g, self.betas)
        denom = np.sqrt(v) / np.sqrt(1.0 - beta2**count) + self.eps
        w = w - (lr / (1.0 - beta1**count)) * (m / denom)
        w = w * (1.0 - lr * self.weight_decay)
        # (1/(‖m‖ + eps)) · ρ in the official order of operations.
        scale = (1.0 / (lp_norm(m, 2) + NORM_EPS)) * self._rho
        return w - scale * m, AdamWMSAMState(count=count, m=m, v=v, scale=scale)
