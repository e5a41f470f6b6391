"""AdamW with Momentum-SAM and schedule-free averaging in torch: the notes' formula, and ours.

Twins of ``sampy.optim.msam_schedule_free``. Source: the Momentum-SAM-ScheduleFree notes, the
README of opooladz/Momentum-SAM-ScheduleFree (@ 07958a19); no paper. The repository's own code
(``AdamWMSAMScheduleFree.py`` @ ca11c5f8) implements yet another algorithm; neither twin
follows it (the book's appendix "Implementations compared" sets the three side by side).

``NotesAdamWMSAMScheduleFree`` — the notes' formula, literally (per group; t = 1, 2, …)::

    1. d_t   = x_{t−1} / (‖x_{t−1}‖ + 1e-12)        (‖x‖ global over all tensors with state)
    2. θ'_t  = θ_{t−1} + ρ d_t                        (ascent, along +momentum)
    3. g_t   = ∇L(θ) + ∇L(θ')  ("sum_two")  |  ∇L(θ')  ("perturbed_only")  |  ∇L(θ)  ("clean_only")
    4. α_t   = η · min(1, t/W) · √(1 − β2ᵗ) / (1 − β1ᵗ)
    5. m_t   = β1 m + (1−β1) g_t ;   v_t = β2 v + (1−β2) g_t²
    6. θ''_t = θ'_t − α_t m_t/(√v_t + ε) − α_t λ θ'_t
    7. x_t   = β1 x_{t−1} + g_t
    8. ω_t   = t^r (max_{s≤t} α_s)^p ;   c_t = ω_t / Σ_{i≤t} ω_i    (c_t ≡ 1 if not interpolate)
    9. θ_t   = (1 − c_t) θ_{t−1} + c_t θ''_t

The parameters hold θ (not θ'). The notes' training loop, which the step consumes as is::

    opt.zero_grad()
    loss_fn(model(inputs), targets).backward()    # ∇L(θ)
    opt.move_to_ascent()                          # parameters ← θ' = θ + ρ d_t
    loss_fn(model(inputs), targets).backward()    # + ∇L(θ'): no zero_grad, so they add up
    opt.move_from_ascent()                        # parameters ← θ
    opt.step()

With a closure, ``step(closure)`` runs that loop itself as ``grad_mode`` says (the closure may
zero the gradients; the clean one is kept aside). ``train()``/``eval()`` are the identity: the
formula keeps one sequence θ. What the formula does (an ascent never removed, a 1/t step for
r = p = 0, …) is discussed in the reference module.

``AdamWMSAMScheduleFree`` — MSAM's perturbation on ``ScheduleFreeAdamW``. The parameters hold
the perturbed ``ỹ = y − scale · m``; one gradient per step, taken there::

    1. g  = ∇L(ỹ)                                  (your backward at the parameters)
    2. y  = ỹ + scale · m                          (remove the last perturbation)
    3. Schedule-Free AdamW step from y with g     (z, x, v; parameters ← the new y)
    4. m  ← μ m + (1 − μ) g                        (μ = ascent_momentum)
    5. scale ← ρ/(‖m‖ + 1e-12);  ỹ ← y − scale · m  (‖m‖ global over every stepped tensor)

Usage::

    opt = AdamWMSAMScheduleFree(model.parameters(), lr=2.5e-3, rho=0.05)
    for inputs, targets in loader:
        opt.zero_grad()
        loss_fn(model(inputs), targets).backward()   # at the stored ỹ
        opt.step()
    opt.eval()        # parameters ← x, Schedule-Free's average (never perturbed)
    evaluate(model)
    opt.train()       # parameters ← ỹ, bit for bit

``move_from_ascent()``/``move_to_ascent()`` move between ỹ and y in train mode.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from sampy.optim import msam_schedule_free as reference
from sampy.optim.hyper import validate
from sampy.optim.msam import NORM_EPS
from sampy.optim.schedule_free import averaging_weight, polynomial_weight
from sampy.torch.checked_optimizer import CheckedOptimizer
from sampy.torch.closures import Closure, Params, run_closure, with_grad
from sampy.torch.foreach_scalars import add_scalar_, cpu_dtype, scalar
from sampy.torch.moments import ema_of_squares_
from sampy.torch.msam import MomentumAscent, Stepped, move_along
from sampy.torch.perturbation import lp_norm
from sampy.torch.schedule_free import (
    ScheduleFreeAdamW,
    interpolate,
    saturated,
    schedule_free_defaults,
)
from sampy.torch.storage import owns_storage


class NotesAdamWMSAMScheduleFree(CheckedOptimizer):
    """The Momentum-SAM-ScheduleFree notes' formula, literally: 2 gradients ("sum_two") or 1.

    Args:
        params: parameters or parameter groups (‖x‖ is global over all groups).
        lr: learning rate η.
        betas: (β1, β2) of m, v and of the ascent momentum x.
        eps: added to √v.
        weight_decay: λ, applied at θ' with step α_t.
        rho: length ρ of the ascent ``+ρ x/‖x‖``.
        warmup_steps: W in ``min(1, t/W)`` (0 = no warm-up).
        r: power of t in the interpolation weights.
        weight_lr_power: power p of ``max α`` in the interpolation weights.
        grad_mode: which gradients ``step(closure)`` computes (without a closure: what the
            caller left in ``p.grad``).
        interpolate: False forces ``c_t ≡ 1`` (θ_t = θ''_t).

    State per tensor: ``x``, ``exp_avg`` (m), ``exp_avg_sq`` (v); per group the counters
    ``step`` (t), ``alpha_max``, ``weight_sum`` and ``at_ascent``.
    """

    HYPERPARAMETERS = reference.NotesAdamWMSAMScheduleFree.HYPERPARAMETERS

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        rho: float = 0.05,
        warmup_steps: int = 0,
        r: float = 0.0,
        weight_lr_power: float = 2.0,
        grad_mode: str = "sum_two",
        interpolate: bool = True,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        self.grad_mode = grad_mode
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            rho=rho,
            warmup_steps=int(warmup_steps),
            r=r,
            weight_lr_power=weight_lr_power,
            interpolate=bool(interpolate),
            step=0,
            alpha_max=-1.0,
            weight_sum=0.0,
            at_ascent=False,
        )
        super().__init__(params, defaults)

    @property
    def grad_evals_per_step(self) -> int:
        """2 for the notes' loop ("sum_two"), 1 otherwise."""
        return 2 if self.grad_mode == "sum_two" else 1

    def _state(self, p: Tensor) -> dict[str, Any]:
        state = self.state[p]
        if not state:
            for key in ("x", "exp_avg", "exp_avg_sq"):
                state[key] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state

    def _with_state(self, group: dict[str, Any]) -> list[Tensor]:
        return [p for p in group["params"] if "x" in self.state.get(p, {})]

    def _x_norm(self) -> Tensor | None:
        """‖x‖ over every tensor with state (None before the first step: then d_t = 0)."""
        xs = [self.state[p]["x"] for group in self.param_groups for p in self._with_state(group)]
        return lp_norm(xs, 2) if xs else None

    @staticmethod
    def _inverse(norm: Tensor) -> Tensor:
        """``1/(‖x‖ + 1e-12)``: ``ρ d_t = (ρ · that) · x``, a 0-dim tensor (no host sync)."""
        return (norm + NORM_EPS).reciprocal_()

    def _move(self, to_ascent: bool, inverse: Tensor | None = None) -> None:
        """θ ± ρ x/(‖x‖ + 1e-12) for the groups not there yet, in one pass over the tensors
        (``inverse``: ``1/(‖x‖ + 1e-12)`` if known)."""
        if inverse is None:
            norm = self._x_norm()
            inverse = None if norm is None else self._inverse(norm)
        for group in self.param_groups:
            if group["at_ascent"] == to_ascent:
                continue
            params = self._with_state(group)
            if params and inverse is not None:
                xs = [self.state[p]["x"] for p in params]
                move_along(params, xs, inverse * group["rho"], 1.0 if to_ascent else -1.0)
            group["at_ascent"] = to_ascent

    @torch.no_grad()
    def move_to_ascent(self) -> None:
        """Parameters ← θ' = θ + ρ x/(‖x‖ + 1e-12): where the notes take the 2nd gradient."""
        self._move(True)

    @torch.no_grad()
    def move_from_ascent(self) -> None:
        """Parameters ← θ, subtracting the same ascent (the state has not changed)."""
        self._move(False)

    def train(self) -> None:
        """The identity: the formula keeps a single sequence θ."""

    def eval(self) -> None:
        """The identity: there is no separate average to evaluate."""

    def _gradients(self, closure: Closure, inverse: Tensor | None) -> Tensor | None:
        """Run the notes' loop with ``closure`` as ``grad_mode`` says; returns the first loss.

        ``inverse`` is ``1/(‖x‖ + 1e-12)`` (None before the first step): x does not change
        until the update.
        """
        if self.grad_mode == "clean_only":
            return run_closure(closure)
        if self.grad_mode == "perturbed_only":
            self._move(True, inverse)
            loss = run_closure(closure)
            self._move(False, inverse)
            return loss
        loss = run_closure(closure)
        params = [p for group in self.param_groups for p in with_grad(group)]
        # Kept aside, so the closure may zero the gradients as usual: the tensors themselves
        # once p.grad lets go of them, a copy where something else may write into them (a
        # DDP bucket view)
        clean = [p.grad if owns_storage(p.grad) else p.grad.clone() for p in params]
        for p in params:
            p.grad = None
        self._move(True, inverse)
        run_closure(closure)
        self._move(False, inverse)
        both = [(p, g) for p, g in zip(params, clean, strict=True) if p.grad is not None]
        if both:
            torch._foreach_add_([p.grad for p, _ in both], [g for _, g in both])
        for p, g in zip(params, clean, strict=True):
            if p.grad is None:
                p.grad = g
        return loss

    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> Tensor | None:
        """One step of the formula with ``g_t`` in ``p.grad``; the parameters must hold θ."""
        if any(group["at_ascent"] for group in self.param_groups):
            raise RuntimeError("step() called at θ + ascent: call move_from_ascent() first")
        # d_t uses x_{t−1} of every group: no x moves before the update
        norm = self._x_norm()
        inverse = None if norm is None else self._inverse(norm)
        loss = None if closure is None else self._gradients(closure, inverse)
        active = [(group, with_grad(group)) for group in self.param_groups]
        for _, params in active:
            for p in params:
                self._state(p)
        for group, params in active:
            if params:
                self._step_group(group, params, inverse)
        return loss

    def _step_group(
        self, group: dict[str, Any], params: list[Tensor], inverse: Tensor | None
    ) -> None:
        beta1, beta2 = group["betas"]
        states = [self.state[p] for p in params]
        xs = [s["x"] for s in states]
        ms = [s["exp_avg"] for s in states]
        vs = [s["exp_avg_sq"] for s in states]
        grads = [p.grad for p in params]
        # 4. α_t (a host float: the counters live in the group)
        t = group["step"] = group["step"] + 1
        warmup = group["warmup_steps"]
        warm = min(1.0, t / warmup) if warmup > 0 else 1.0
        alpha = group["lr"] * warm * math.sqrt(1.0 - beta2**t) / (1.0 - beta1**t)
        # 8. c_t (host floats)
        alpha_max = group["alpha_max"] = max(group["alpha_max"], alpha)
        weight = polynomial_weight(t, group["r"], alpha_max, group["weight_lr_power"])
        weight_sum = group["weight_sum"] = group["weight_sum"] + weight
        c = averaging_weight(weight, weight_sum) if group["interpolate"] else 1.0
        dtype = cpu_dtype(vs)
        # 5. m, v
        torch._foreach_lerp_(ms, grads, 1.0 - beta1)
        ema_of_squares_(vs, grads, beta2, dtype)
        # 1–2, 6, 9 without θ' or θ'' in memory: (1 − c) θ + c θ'' with θ' = θ + ρ d_t and
        # θ'' = (1 − αλ) θ' − α m/(√v + ε) is θ (1 − cαλ) + c(1 − αλ) ρ d_t − cα m/(√v + ε),
        # three passes over θ (the ρ d_t term before x moves)
        decay = alpha * group["weight_decay"]
        if decay != 0:
            torch._foreach_mul_(params, scalar(saturated(1.0 - c * decay, ms), dtype))
        if inverse is not None:
            move_along(params, xs, inverse * group["rho"], saturated(c * (1.0 - decay), ms))
        # 7. x ← β1 x + g
        torch._foreach_mul_(xs, scalar(beta1, dtype))
        torch._foreach_add_(xs, grads)
        # √v + ε in fresh tensors, as torch's Adam: p.grad stays the gradient for the caller
        denom = torch._foreach_sqrt(vs)
        add_scalar_(denom, group["eps"], dtype)
        torch._foreach_addcdiv_(params, ms, denom, value=saturated(-(c * alpha), ms))


class AdamWMSAMScheduleFree(MomentumAscent, ScheduleFreeAdamW):
    """MSAM's ascent on Schedule-Free AdamW (our construction, see the module docstring).

    One gradient per step, at the stored perturbed point ``ỹ``.

    Args:
        rho: length ρ of the perturbation ``−ρ m/‖m‖``.
        ascent_momentum: μ of the gradient EMA ``m`` the perturbation follows.
        lr, betas, eps, weight_decay, warmup_steps, r, weight_lr_power, decay_at_z, variant:
            those of ``ScheduleFreeAdamW``.

    State per tensor: Schedule-Free's ``z``, ``x``, ``exp_avg_sq``, plus ``exp_avg`` (m) and
    ``scale``; per group the Schedule-Free counters, ``train_mode`` and ``at_ascent``.
    """

    DIRECTION = "exp_avg"
    HYPERPARAMETERS = reference.AdamWMSAMScheduleFree.HYPERPARAMETERS

    def __init__(
        self,
        params: Params,
        lr: float = 0.0025,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        r: float = 0.0,
        weight_lr_power: float = 2.0,
        decay_at_z: bool = False,
        variant: str = "gen_b",
        rho: float = 0.05,
        ascent_momentum: float = 0.9,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        defaults = schedule_free_defaults(
            lr, betas, eps, weight_decay, warmup_steps, r, weight_lr_power, decay_at_z, variant
        )
        defaults.update(rho=rho, ascent_momentum=ascent_momentum, at_ascent=True)
        torch.optim.Optimizer.__init__(self, params, defaults)

    def _state(self, p: Tensor) -> dict[str, Any]:
        state = self.state[p]
        if not state:
            super()._state(p)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["scale"] = p.new_zeros(())
        return state

    @torch.no_grad()
    def train(self) -> None:
        """Parameters ← ỹ = β1 x + (1 − β1) z − scale · m, the stored point ``step`` expects."""
        for group in self.param_groups:
            if not group["train_mode"]:
                params, ms, scales = self._perturbation(group)
                if params:
                    states = [self.state[p] for p in params]
                    xs, zs = [s["x"] for s in states], [s["z"] for s in states]
                    interpolate(params, xs, zs, group["betas"][0])
                    self._shift(params, ms, scales, -1.0)
                group["train_mode"] = True
                group["at_ascent"] = True

    @torch.no_grad()
    def move_from_ascent(self) -> None:
        """Parameters ← the un-perturbed training point ``y = ỹ + scale · m`` (train mode)."""
        self._require_train_mode()
        super().move_from_ascent()

    @torch.no_grad()
    def move_to_ascent(self) -> None:
        """Parameters ← the stored ``ỹ = y − scale · m`` (train mode)."""
        self._require_train_mode()
        super().move_to_ascent()

    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> Tensor | None:
        """One step with the gradients in ``p.grad``, taken at the stored ỹ."""
        self._require_train_mode()
        self._require_ascent()
        loss = run_closure(closure)
        stepped: list[Stepped] = []
        for group in self.param_groups:
            params = with_grad(group)
            if not params:
                continue
            states = [self._state(p) for p in params]
            ms = [s["exp_avg"] for s in states]
            grads = [p.grad for p in params]
            # 2. y = ỹ + scale · m, where the step reads y: only its decay at y does (the
            # parameters are overwritten with the new y), so without it the pass is skipped
            if group["weight_decay"] != 0 and not group["decay_at_z"]:
                self._shift(params, ms, [s["scale"] for s in states], 1.0)
            # 3. the Schedule-Free AdamW step from y (parameters ← the new y)
            self._update(group, params, grads, states)
            # 4. m ← μ m + (1 − μ) g, as one lerp m + (1 − μ)(g − m)
            torch._foreach_lerp_(ms, grads, 1.0 - group["ascent_momentum"])
            stepped.append((group, params, states, ms))
        # 5. scale = ρ/(‖m‖ + 1e-12), ỹ = y − scale · m
        self._perturb(stepped)
        return loss
