"""Schedule-Free AdamW as a ``torch.optim`` optimizer: the twin of ``sampy.optim.schedule_free``.

A. Defazio, X. A. Yang, H. Mehta, K. Mishchenko, A. Khaled, A. Cutkosky, "The Road Less
Scheduled", NeurIPS 2024, arXiv:2405.15682. Official code: facebookresearch/schedule_free
@ 70785b53 (``AdamWScheduleFreeReference``, the three-buffer form followed here).

Three sequences: ``z`` (the base iterate), ``x`` (a weighted average of the z's, the point to
*evaluate*) and ``y = β1 x + (1 − β1) z`` (where the gradient is taken; the parameters hold y
while training). Per group, step ``k = 0, 1, …``:

1. ``s = (k+1)/W`` if ``k < W`` else 1                   (linear warm-up over W steps)
2. ``γ = η s √(1 − β2^{k+1})`` (GEN-A)  or  ``γ = η s`` (GEN-B)
3. ``γ_max ← max(γ_max, γ)``;  ``ω = (k+1)^r γ_max^p``;  ``Ω ← Ω + ω``;  ``c = ω/Ω``
4. ``g = ∇L(y)``;  ``v ← β2 v + (1 − β2) g²``
5. ``den = √v + eps`` (GEN-A)  or  ``den = √(v/(1 − β2^{k+1})) + eps`` (GEN-B)
6. ``z ← z − γ λ y`` (or ``γ λ z`` with ``decay_at_z``);  ``z ← z − γ g/den``
7. ``x ← (1 − c) x + c z``;  ``y ← β1 x + (1 − β1) z``  (the new parameters)

``variant="gen_b"`` (default) is the current official code (``AdamWScheduleFree``,
``AdamWScheduleFreeReference``); ``"gen_a"`` the paper and the code before 2024-11-04
(``AdamWScheduleFreePaper``). One gradient evaluation per step.

Usage::

    opt = ScheduleFreeAdamW(model.parameters(), lr=2.5e-3, warmup_steps=1000)
    opt.train()                       # parameters ← y (a new optimizer is already in train mode)
    for inputs, targets in loader:
        opt.zero_grad()
        loss_fn(model(inputs), targets).backward()   # the gradient at y
        opt.step()
    opt.eval()                        # parameters ← x: evaluate and checkpoint here
    evaluate(model)
    opt.train()                       # parameters ← y, exactly the bits step() left

Twin choices: the state per tensor is ``z``, ``x`` and ``exp_avg_sq`` (v), as the reference
implementation; y lives in the parameters, and ``train()`` recomputes it with the very
operations ``step`` used, so eval → train restores y bit for bit (no fourth buffer). The
counters ``k``, ``lr_max``, ``weight_sum`` and the mode ``train_mode`` are per group, under the
official names, so they travel with ``state_dict``. Unlike the official class, a new optimizer
starts in train mode (the parameters are y = x = z = w0 then); ``step()`` in eval mode raises,
as there. Tensors without a gradient are skipped (a group with none does not advance k). The
operations are those of ``AdamWScheduleFreeReference``, as ``torch._foreach_*`` calls.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from sampy.optim import schedule_free as reference
from sampy.optim.hyper import validate
from sampy.optim.schedule_free import averaging_weight, polynomial_weight
from sampy.torch.checked_optimizer import CheckedOptimizer
from sampy.torch.closures import Closure, Params, run_closure, with_grad
from sampy.torch.foreach_scalars import cpu_dtype, scalar
from sampy.torch.moments import denominators, ema_of_squares_, split_large


def schedule_free_defaults(
    lr: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
    warmup_steps: int,
    r: float,
    weight_lr_power: float,
    decay_at_z: bool,
    variant: str,
) -> dict[str, Any]:
    """Group defaults: the hyperparameters, the schedule counters and the mode."""
    return dict(
        lr=lr,
        betas=betas,
        eps=eps,
        weight_decay=weight_decay,
        warmup_steps=int(warmup_steps),
        r=r,
        weight_lr_power=weight_lr_power,
        decay_at_z=bool(decay_at_z),
        variant=variant,
        k=0,
        lr_max=-1.0,
        weight_sum=0.0,
        train_mode=True,
    )


def interpolate(
    out: list[Tensor],
    xs: list[Tensor],
    zs: list[Tensor],
    beta1: float,
    dtype: torch.dtype | None = None,
) -> None:
    """``out ← β1 x + (1 − β1) z`` (step 7; ``train()`` repeats it to the last bit).

    ``β1 x`` is written straight into ``out`` where a tensor is large (the same bits as a copy
    followed by an in-place multiply, one pass fewer); ``dtype`` as ``cpu_dtype(xs)``.
    """
    large, small = split_large(xs, out)
    for i in large:
        torch.mul(xs[i], beta1, out=out[i])
    if small:
        dests = [out[i] for i in small]
        torch._foreach_copy_(dests, [xs[i] for i in small])
        torch._foreach_mul_(dests, scalar(beta1, dtype))
    torch._foreach_add_(out, zs, alpha=1.0 - beta1)


def saturated(value: float, like: list[Tensor]) -> float:
    """``value``, or ``±inf`` where it leaves the float range of ``like``'s dtype.

    torch refuses an ``alpha``/``value`` scalar that its tensors' dtype cannot hold (a
    ``RuntimeError``: ``lr = 1e200`` on float32); as ``inf`` it makes the weights non-finite,
    the divergence that a huge learning rate means.
    """
    if not like or not abs(value) > torch.finfo(like[0].dtype).max:
        return value
    return math.copysign(math.inf, value)


class ScheduleFreeAdamW(CheckedOptimizer):
    """Schedule-Free AdamW (reference three-sequence form). One gradient per step.

    Args:
        params: parameters or parameter groups (each group has its own schedule counters).
        lr: learning rate η.
        betas: (β1, β2): β1 interpolates y between z and x, β2 is v's EMA rate.
        eps: added to the denominator.
        weight_decay: decay λ, ``z ← z − γλ y``.
        warmup_steps: linear warm-up of the step over this many steps (0 = none).
        r: power of the polynomial averaging weights.
        weight_lr_power: power p of the largest step so far in the averaging weights.
        decay_at_z: take the decay at z instead of y.
        variant: ``"gen_b"`` (current official code) or ``"gen_a"`` (the paper).
    """

    HYPERPARAMETERS = reference.SCHEDULE_FREE_HYPERPARAMETERS

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
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        defaults = schedule_free_defaults(
            lr, betas, eps, weight_decay, warmup_steps, r, weight_lr_power, decay_at_z, variant
        )
        super().__init__(params, defaults)

    def _state(self, p: Tensor) -> dict[str, Any]:
        state = self.state[p]
        if not state:  # z = x = y = w0, v = 0
            state["z"] = p.detach().clone(memory_format=torch.preserve_format)
            state["x"] = p.detach().clone(memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state

    def _with_state(self, group: dict[str, Any]) -> tuple[list[Tensor], list[dict[str, Any]]]:
        """The tensors of ``group`` that have stepped at least once, and their states."""
        params = [p for p in group["params"] if "z" in self.state.get(p, {})]
        return params, [self.state[p] for p in params]

    @torch.no_grad()
    def eval(self) -> None:
        """Parameters ← x, the average to evaluate and checkpoint (official ``eval()``)."""
        for group in self.param_groups:
            if group["train_mode"]:
                params, states = self._with_state(group)
                if params:
                    torch._foreach_copy_(params, [s["x"] for s in states])
                group["train_mode"] = False

    @torch.no_grad()
    def train(self) -> None:
        """Parameters ← y = β1 x + (1 − β1) z, where ``step`` takes gradients."""
        for group in self.param_groups:
            if not group["train_mode"]:
                params, states = self._with_state(group)
                if params:
                    xs, zs = [s["x"] for s in states], [s["z"] for s in states]
                    interpolate(params, xs, zs, group["betas"][0])
                group["train_mode"] = True

    def _require_train_mode(self) -> None:
        if not all(group["train_mode"] for group in self.param_groups):
            raise RuntimeError(
                "step() called in eval mode: call train() first (the parameters hold x, "
                "the gradient must be taken at y)"
            )

    @staticmethod
    def _schedule(group: dict[str, Any]) -> tuple[float, float, float]:
        """Steps 1–3 (host floats, advancing the group's counters): ``(γ, 1 − β2^{k+1}, c)``."""
        k = group["k"]
        warmup = group["warmup_steps"]
        sched = (k + 1) / warmup if k < warmup else 1.0
        bias2 = 1.0 - group["betas"][1] ** (k + 1)
        lr = group["lr"] * sched
        if group["variant"] == "gen_a":
            lr = lr * math.sqrt(bias2)
        lr_max = group["lr_max"] = max(group["lr_max"], lr)
        weight = polynomial_weight(k + 1, group["r"], lr_max, group["weight_lr_power"])
        weight_sum = group["weight_sum"] = group["weight_sum"] + weight
        group["k"] = k + 1
        return lr, bias2, averaging_weight(weight, weight_sum)

    @staticmethod
    def _update(
        group: dict[str, Any],
        params: list[Tensor],
        grads: list[Tensor],
        states: list[dict[str, Any]],
    ) -> None:
        """Steps 1–7 with ``grads`` at the parameters ``params`` (= y), in place."""
        lr, bias2, c = ScheduleFreeAdamW._schedule(group)
        beta1, beta2 = group["betas"]
        zs = [s["z"] for s in states]
        xs = [s["x"] for s in states]
        vs = [s["exp_avg_sq"] for s in states]
        dtype = cpu_dtype(vs)
        # 4. v ← β2 v + (1 − β2) g²
        ema_of_squares_(vs, grads, beta2, dtype)
        # 6a. z ← z − γλ y (or z): the last read of y, so the parameters can hold den next
        if group["weight_decay"] != 0:
            at = zs if group["decay_at_z"] else params
            torch._foreach_sub_(zs, at, alpha=saturated(lr * group["weight_decay"], zs))
        # 5. the denominator: bias-corrected v (GEN-B) or √(1 − β2^{k+1}) already in γ (GEN-A)
        denom = denominators(
            vs, params, None if group["variant"] == "gen_a" else bias2, group["eps"], dtype
        )
        # 6b. z ← z − γ g/den
        torch._foreach_addcdiv_(zs, grads, denom, value=saturated(-lr, zs))
        # 7. x ← (1 − c) x + c z, y ← β1 x + (1 − β1) z
        torch._foreach_mul_(xs, scalar(1.0 - c, dtype))
        torch._foreach_add_(xs, zs, alpha=c)
        interpolate(params, xs, zs, beta1, dtype)

    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> Tensor | None:
        """One step with the gradients in ``p.grad``, taken at the parameters (= y).

        ``closure`` (optional) computes the loss and calls ``backward()``; it runs once.
        """
        self._require_train_mode()
        loss = run_closure(closure)
        for group in self.param_groups:
            params = with_grad(group)
            if params:
                states = [self._state(p) for p in params]
                self._update(group, params, [p.grad for p in params], states)
        return loss
