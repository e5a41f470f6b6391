"""AdamW with Momentum-SAM and schedule-free averaging: the notes' formula, and a construction.

Source: the Momentum-SAM-ScheduleFree notes, the README of opooladz/Momentum-SAM-ScheduleFree
(@ 07958a19). No paper. The repository's own code (``AdamWMSAMScheduleFree.py`` @ ca11c5f8)
implements yet another algorithm (a per-tensor ascent along ``z − p``, applied again inside
``step`` and never removed); neither class follows it. The book's appendix "Implementations
compared" sets the three side by side.

``NotesAdamWMSAMScheduleFree`` — the notes' formula, literally (per point; t = 1, 2, …; W
warm-up steps)::

    1. d_t   = x_{t−1} / (‖x_{t−1}‖ + 1e-12)          (eps guard: x_0 = 0 gives d_1 = 0)
    2. θ'_t  = θ_{t−1} + ρ d_t                          (ascent, along +momentum)
    3. g_t   = ∇L(θ_{t−1}) + ∇L(θ'_t)   (grad_mode "sum_two", the notes' loop: 2 evaluations)
             | ∇L(θ'_t)                  ("perturbed_only", 1)  | ∇L(θ_{t−1})  ("clean_only", 1)
    4. α_t   = η · min(1, t/W) · √(1 − β2ᵗ) / (1 − β1ᵗ)
    5. m_t   = β1 m_{t−1} + (1−β1) g_t ;   v_t = β2 v_{t−1} + (1−β2) g_t²
    6. θ''_t = θ'_t − α_t m_t/(√v_t + ε) − α_t λ θ'_t     (AdamW step taken FROM θ'_t)
    7. x_t   = β1 x_{t−1} + g_t
    8. ω_t   = t^r (max_{s≤t} α_s)^p ;   c_t = ω_t / Σ_{i≤t} ω_i    (c_t ≡ 1 if not interpolate)
    9. θ_t   = (1 − c_t) θ_{t−1} + c_t θ''_t

The notes' training loop is ``zero_grad(); backward at θ; move_to_ascent(); backward at
θ + ascent; move_from_ascent(); step()`` with no ``zero_grad`` between the two backward calls,
so the gradient ``step()`` consumes is the *sum* of both; "sum_two" emulates it (we read the
loop's ascent as the formula's ``ρ d_t``). What the formula does: the ascent is along
``+x/‖x‖`` (official MSAM uses ``−v/‖v‖``) and is never removed (``c_t ρ d_t`` stays in θ_t);
there is a single sequence θ, so with ρ = 0 it is AdamW with step ``c_t α_t`` — a 1/t
learning-rate decay for r = p = 0, not schedule-free averaging — and nothing separate to
evaluate (``eval``/``train`` are the identity); ``x_t = m_t/(1 − β1)``, so x duplicates m.
The notes leave the scope of ‖x‖ open; here it is global per point (the choice of MSAM's
official code, MarlonBecker/MSAM; the repository's code takes it per tensor, which a flat
point does not have).
Identities: ρ = 0, c_t ≡ 1: Adam with the bias correction folded into α_t (Kingma & Ba's
"efficient" form, eps not bias-corrected) and decay ``α_t λ``; ρ = 0, r = p = 0, constant η:
``θ_t = θ_{t−1} − (1/t)·(that AdamW increment)``.

``AdamWMSAMScheduleFree`` — our construction (no paper): the ascent of Momentum-SAM (Becker,
Altrock, Risse, arXiv:2401.12033, 2024) on Schedule-Free AdamW (Defazio et al., "The Road Less
Scheduled", NeurIPS 2024). Per point, with the state of ``ScheduleFreeAdamW`` (z, x, v, …), an
EMA ``m`` of the gradients and ``scale = ρ/(‖m‖ + 1e-12)`` (0 at first); the parameters hold
the perturbed ``ỹ``::

    1. g  = ∇L(ỹ)                                  (the only gradient evaluation)
    2. y  = ỹ + scale · m                          (remove the last perturbation)
    3. (y, z, x, v) ← ScheduleFreeAdamW.update(y, g)  (decay at y; steps 1–7 of
                                                       ``sampy.optim.schedule_free``)
    4. m  ← μ m + (1 − μ) g                        (μ = ascent_momentum)
    5. scale ← ρ/(‖m‖ + 1e-12);  ỹ ← y − scale · m (perturb along −m: the direction of descent)

One gradient per step. ``eval`` returns the un-perturbed average x; ``train`` the stored ỹ;
``move_from_ascent``/``move_to_ascent`` move between ỹ and y exactly. Reduces to
``ScheduleFreeAdamW`` bit for bit when ρ = 0. How it differs from the notes' formula: the
perturbation has MSAM's sign (−m, along the update) and is removed before the update, so it
never accumulates in the iterate; the base is Schedule-Free AdamW with its three sequences
(no Adam first moment in the step, SF's bias correction, decay at y), so x is a true average
to evaluate and the step does not decay like 1/t; one gradient per step instead of two summed.
A buffer-free alternative direction would be ``z − x`` (SF's own lead of z over its average);
the explicit EMA keeps MSAM's meaning of "momentum" and a memory of about 1/(1 − μ) steps.
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import numpy as np

from sampy.optim.adam import ADAM_EPS, BETAS, adam_moments
from sampy.optim.base import Oracle, per_point
from sampy.optim.hyper import Hyper, validate
from sampy.optim.msam import NORM_EPS
from sampy.optim.perturbation import lp_norm
from sampy.optim.sam import RHO
from sampy.optim.schedule_free import (
    SCHEDULE_FREE_HYPERPARAMETERS,
    ScheduleFreeAdamW,
    ScheduleFreeState,
    averaging_weight,
    polynomial_weight,
)
from sampy.optim.sgd import LR, WEIGHT_DECAY

GRAD_MODES = ("sum_two", "perturbed_only", "clean_only")


class NotesAdamWMSAMScheduleFreeState(NamedTuple):
    """Step count t, ascent momentum ``x``, Adam moments ``m``/``v``, ``max α`` and ``Σ ω``."""

    count: int
    x: np.ndarray
    m: np.ndarray
    v: np.ndarray
    alpha_max: float | np.ndarray
    weight_sum: float | np.ndarray


class NotesAdamWMSAMScheduleFree:
    """The Momentum-SAM-ScheduleFree notes' formula, literally: 2 gradients ("sum_two") or 1.

    Args:
        lr: learning rate η (a number, or one value per start point).
        betas: (β1, β2) of m, v and of the ascent momentum x.
        eps: added to √v.
        weight_decay: λ, applied at θ' with step α_t.
        rho: length ρ of the ascent ``+ρ x/‖x‖``.
        warmup_steps: W in ``min(1, t/W)`` (0 = no warm-up).
        r: power of t in the interpolation weights.
        weight_lr_power: power p of ``max α`` in the interpolation weights.
        grad_mode: which gradients make g_t (see the module docstring).
        interpolate: False forces ``c_t ≡ 1`` (θ_t = θ''_t), for the identity tests.
    """

    HYPERPARAMETERS = (
        LR,
        BETAS,
        ADAM_EPS,
        replace(WEIGHT_DECAY, default=1e-2, meaning="weight decay λ, at θ' with step α_t"),
        Hyper("rho", 0.05, "length ρ of the ascent +ρ x/‖x‖", 0.0, None, per_point=True),
        Hyper("warmup_steps", 0, "warm-up steps W in min(1, t/W)", 0, None, kind="int"),
        Hyper("r", 0.0, "power r of t in the interpolation weights", 0.0, None),
        Hyper("weight_lr_power", 2.0, "power p of max α in the interpolation weights", 0.0, None),
        Hyper(
            "grad_mode",
            "sum_two",
            "g_t = ∇L(θ) + ∇L(θ') (the notes' loop), ∇L(θ') or ∇L(θ)",
            kind="choice",
            choices=GRAD_MODES,
        ),
        Hyper("interpolate", True, "θ_t = (1−c)θ + cθ''; False forces c ≡ 1", kind="bool"),
    )

    def __init__(
        self,
        lr: float | np.ndarray = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        rho: float | np.ndarray = 0.05,
        warmup_steps: int = 0,
        r: float = 0.0,
        weight_lr_power: float = 2.0,
        grad_mode: str = "sum_two",
        interpolate: bool = True,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        self.lr = lr
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = eps
        self.weight_decay = weight_decay
        self.rho = rho
        self.warmup_steps = int(warmup_steps)
        self.r = r
        self.weight_lr_power = weight_lr_power
        self.grad_mode = grad_mode
        self.interpolate = bool(interpolate)
        self._lr = per_point(lr)
        self._rho = per_point(rho)

    def __repr__(self) -> str:
        return (
            f"NotesAdamWMSAMScheduleFree(lr={self.lr}, betas={self.betas}, eps={self.eps}, "
            f"weight_decay={self.weight_decay}, rho={self.rho}, "
            f"warmup_steps={self.warmup_steps}, r={self.r}, "
            f"weight_lr_power={self.weight_lr_power}, grad_mode={self.grad_mode!r}, "
            f"interpolate={self.interpolate})"
        )

    @property
    def grad_evals_per_step(self) -> int:
        """2 for the notes' loop ("sum_two"), 1 otherwise."""
        return 2 if self.grad_mode == "sum_two" else 1

    def init(self, x: np.ndarray) -> NotesAdamWMSAMScheduleFreeState:
        """Zero buffers, t = 0."""
        zeros = np.zeros_like(x, dtype=float)
        return NotesAdamWMSAMScheduleFreeState(
            count=0, x=zeros, m=zeros.copy(), v=zeros.copy(), alpha_max=-1.0, weight_sum=0.0
        )

    def ascent(self, state: NotesAdamWMSAMScheduleFreeState) -> np.ndarray:
        """The notes' ascent ``ρ d_t = ρ x/(‖x‖ + 1e-12)`` (global norm per point)."""
        return self._rho * (state.x / (lp_norm(state.x, 2) + NORM_EPS))

    def move_to_ascent(
        self, theta: np.ndarray, state: NotesAdamWMSAMScheduleFreeState
    ) -> np.ndarray:
        """``θ + ρ d_t``: where the notes' loop takes its second gradient."""
        return theta + self.ascent(state)

    def move_from_ascent(
        self, theta: np.ndarray, state: NotesAdamWMSAMScheduleFreeState
    ) -> np.ndarray:
        """``θ − ρ d_t``: the exact inverse of ``move_to_ascent`` (same state)."""
        return theta - self.ascent(state)

    def eval(self, theta: np.ndarray, state: NotesAdamWMSAMScheduleFreeState) -> np.ndarray:
        """The identity: the formula keeps a single sequence θ, nothing else to evaluate."""
        return theta

    def train(self, theta: np.ndarray, state: NotesAdamWMSAMScheduleFreeState) -> np.ndarray:
        """The identity (see ``eval``)."""
        return theta

    def step(
        self, theta: np.ndarray, state: NotesAdamWMSAMScheduleFreeState, oracle: Oracle
    ) -> tuple[np.ndarray, NotesAdamWMSAMScheduleFreeState]:
        """One step of the notes' formula (steps 1–9 of the module docstring)."""
        beta1, beta2 = self.betas
        t = state.count + 1
        theta_up = theta + self.ascent(state)
        if self.grad_mode == "sum_two":
            g = oracle.grad(theta) + oracle.grad(theta_up)
        elif self.grad_mode == "perturbed_only":
            g = oracle.grad(theta_up)
        else:
            g = oracle.grad(theta)
        warm = min(1.0, t / self.warmup_steps) if self.warmup_steps > 0 else 1.0
        alpha = self._lr * warm * np.sqrt(1.0 - beta2**t) / (1.0 - beta1**t)
        m, v = adam_moments(state.m, state.v, g, self.betas)
        theta_2 = (
            theta_up - alpha * (m / (np.sqrt(v) + self.eps)) - alpha * self.weight_decay * theta_up
        )
        x = beta1 * state.x + g
        alpha_max = np.maximum(state.alpha_max, alpha)
        weight = polynomial_weight(t, self.r, alpha_max, self.weight_lr_power)
        weight_sum = state.weight_sum + weight
        c = averaging_weight(weight, weight_sum) if self.interpolate else 1.0
        theta = (1.0 - c) * theta + c * theta_2
        return theta, NotesAdamWMSAMScheduleFreeState(
            count=t, x=x, m=m, v=v, alpha_max=alpha_max, weight_sum=weight_sum
        )


class AdamWMSAMScheduleFreeState(NamedTuple):
    """The Schedule-Free state ``base``, the ascent EMA ``m`` and ``scale`` = ρ/(‖m‖ + 1e-12).

    Invariant between steps: stored ``ỹ = y − scale · m``.
    """

    base: ScheduleFreeState
    m: np.ndarray
    scale: np.ndarray


class AdamWMSAMScheduleFree:
    """MSAM's ascent on Schedule-Free AdamW (our construction, see the module docstring).

    One gradient per step, at the stored perturbed point ``ỹ``.

    Args:
        rho: length ρ of the perturbation ``−ρ m/‖m‖`` (a number, or one per start point).
        ascent_momentum: μ of the gradient EMA ``m`` the perturbation follows.
        lr, betas, eps, weight_decay, warmup_steps, r, weight_lr_power, decay_at_z, variant:
            those of ``ScheduleFreeAdamW``.
    """

    grad_evals_per_step = 1
    HYPERPARAMETERS = (
        *SCHEDULE_FREE_HYPERPARAMETERS,
        Hyper("rho", 0.05, RHO.meaning + " (−ρ m/‖m‖)", 0.0, None, per_point=True),
        Hyper(
            "ascent_momentum",
            0.9,
            "EMA rate μ of the gradients the ascent follows",
            0.0,
            1.0,
            high_open=True,
        ),
    )

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
        rho: float | np.ndarray = 0.05,
        ascent_momentum: float = 0.9,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        self.base = ScheduleFreeAdamW(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            warmup_steps=warmup_steps,
            r=r,
            weight_lr_power=weight_lr_power,
            decay_at_z=decay_at_z,
            variant=variant,
        )
        self.lr = lr
        self.rho = rho
        self.ascent_momentum = ascent_momentum
        self._rho = per_point(rho)

    def __repr__(self) -> str:
        inner = repr(self.base).removeprefix("ScheduleFreeAdamW(").removesuffix(")")
        return (
            f"AdamWMSAMScheduleFree({inner}, rho={self.rho}, "
            f"ascent_momentum={self.ascent_momentum})"
        )

    def init(self, x: np.ndarray) -> AdamWMSAMScheduleFreeState:
        """Schedule-Free's state, a zero EMA and a zero first perturbation."""
        return AdamWMSAMScheduleFreeState(
            base=self.base.init(x),
            m=np.zeros_like(x, dtype=float),
            scale=np.zeros((*np.shape(x)[:-1], 1)),
        )

    def move_from_ascent(self, x: np.ndarray, state: AdamWMSAMScheduleFreeState) -> np.ndarray:
        """The un-perturbed ``y = ỹ + scale · m``."""
        return x + state.scale * state.m

    def move_to_ascent(self, x: np.ndarray, state: AdamWMSAMScheduleFreeState) -> np.ndarray:
        """The stored ``ỹ = y − scale · m``."""
        return x - state.scale * state.m

    def unperturbed(self, x: np.ndarray, state: AdamWMSAMScheduleFreeState) -> np.ndarray:
        """Alias of ``move_from_ascent``: the training point y behind the stored ỹ."""
        return self.move_from_ascent(x, state)

    def eval(self, x: np.ndarray, state: AdamWMSAMScheduleFreeState) -> np.ndarray:
        """The point to evaluate: Schedule-Free's average x (never perturbed)."""
        return self.base.eval(x, state.base)

    def train(self, x: np.ndarray, state: AdamWMSAMScheduleFreeState) -> np.ndarray:
        """The point to hand back to ``step``: the perturbed ``ỹ``."""
        return self.move_to_ascent(self.base.train(x, state.base), state)

    def step(
        self, x: np.ndarray, state: AdamWMSAMScheduleFreeState, oracle: Oracle
    ) -> tuple[np.ndarray, AdamWMSAMScheduleFreeState]:
        """One step from the stored ``ỹ``; returns the next stored point."""
        g = oracle.grad(x)
        y = x + state.scale * state.m
        y, base = self.base.update(y, g, state.base)
        mu = self.ascent_momentum
        m = mu * state.m + (1.0 - mu) * g
        scale = (1.0 / (lp_norm(m, 2) + NORM_EPS)) * self._rho
        return y - scale * m, AdamWMSAMScheduleFreeState(base=base, m=m, scale=scale)
