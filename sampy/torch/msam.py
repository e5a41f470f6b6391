"""MSAM and AdamW-MSAM as ``torch.optim`` optimizers: the twins of ``sampy.optim.msam``.

M. Becker, F. Altrock, B. Risse, "Momentum-SAM: Sharpness Aware Minimization without
Computational Overhead", arXiv:2401.12033, 2024. Official code: MarlonBecker/MSAM
@ 780fa4f6 (``optimizer/msam.py``, ``optimizer/adamW_msam.py``).

MSAM perturbs along the *negative* momentum ``−ρ v/‖v‖`` and keeps the parameters **stored at
the perturbed point** ``w̃``, so the one gradient of a step — the one you compute, as for any
torch optimizer — is taken there. ``MSAM`` (SGD with momentum), per step, with
``scale = ρ/(‖v‖ + 1e-12)`` (0 before the first step):

1. ``g = ∇L(w̃)``                  — your ``loss.backward()`` at the parameters (= w̃)
2. ``d = g + λ w̃``                (coupled weight decay, at the PERTURBED point)
3. ``w = w̃ + scale · v``          (remove the last perturbation)
4. ``v ← μ v + d``;  5. ``w ← w − η v``
6. ``scale ← ρ/(‖v‖ + 1e-12)``;  7. ``w̃ ← w − scale · v``   (the parameters hold w̃ again)

``AdamWMSAM`` follows the Adam first moment m: undo with the old m, Adam step with bias
corrections, decoupled decay ``w ← w (1 − ηλ)`` *after* the step, re-perturb with
``scale = ρ/(‖m‖ + 1e-12)``. One gradient evaluation per step (both).

Usage (evaluate, checkpoint or average at the un-perturbed w, never at w̃)::

    opt = MSAM(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-2, rho=0.3)
    for inputs, targets in loader:
        opt.zero_grad()
        loss_fn(model(inputs), targets).backward()   # the gradient at the stored w̃
        opt.step()
    opt.move_from_ascent()    # parameters ← w: evaluate, save, update an EMA
    evaluate(model)
    opt.move_to_ascent()      # parameters ← w̃: go on training

``step()`` refuses to run while the parameters sit at w. Moving there and back restores w̃ up
to one rounding (``w̃ + s v − s v``); a checkpoint saved at w̃ resumes bit for bit.

Design decisions (where the official code is silent or restrictive):

- **Several parameter groups are allowed** (the official classes raise for more than one):
  each group has its own ``lr``/``momentum``/``weight_decay``/``rho``, and the norm ‖v‖ is
  global over the momenta of every group, so with one ρ the perturbation is the whole-model
  direction ``−ρ v/‖v‖``; with per-group ρ each group is scaled by its own ρ. One group is
  exactly the official algorithm.
- **Parameters without a gradient are skipped**: not moved, their momentum not updated, and
  they keep the perturbation they have, because each tensor records the ``scale`` applied to
  it (``state["scale"]``, a 0-dim tensor shared by a group). The norm of step 6 is over the
  tensors stepped, so the perturbation they get has length exactly ρ‖v‖/(‖v‖ + 1e-12).
- ``scale`` is kept as the product applied, so removal is exact even when ρ is changed between
  steps (the official code re-reads ρ and would leave a residue).
- The ρ = 0 MSAM does the operations of ``torch.optim.SGD(lr, momentum, weight_decay=λ)``
  in the same order, and ρ = 0, λ = 0 AdamW-MSAM those of ``torch.optim.Adam``: bit for bit.
- No host synchronisation: norms and scales stay 0-dim tensors on the parameters' device. On
  the CPU, where reading one costs nothing, the scale is read as a number so that every move
  ``w ± scale · u`` is a single ``add_(u, alpha=…)`` kernel.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from sampy.optim import msam as reference
from sampy.optim.hyper import validate
from sampy.optim.msam import NORM_EPS
from sampy.torch.checked_optimizer import CheckedOptimizer
from sampy.torch.closures import Closure, Params, run_closure, with_grad
from sampy.torch.foreach_scalars import add_scalar_, cpu_dtype, scalar
from sampy.torch.host_reads import alpha_value
from sampy.torch.moments import ema_of_squares_
from sampy.torch.perturbation import lp_norm

# One stepped group: (group, its tensors that had a gradient, their states, their directions).
Stepped = tuple[dict[str, Any], list[Tensor], list[dict[str, Any]], list[Tensor]]


def _shift(params: list[Tensor], us: list[Tensor], scales: list[Tensor], sign: float) -> None:
    """``w ← w + sign · scale · u`` in place, one pass over the tensors.

    ``scales`` are 0-dim tensors, one per tensor (tensors that were skipped keep an older
    scale object). On the CPU the factor is read as a Python float and the update is one
    ``add_(u, alpha=…)`` kernel: an ``addcmul_`` with a broadcast 0-dim tensor takes twice as
    long there. Every move between w and w̃ goes through here, so a move and its inverse, and
    ``train()`` after ``eval()``, repeat the very operations the step did.
    """
    first = scales[0]
    if all(s is first for s in scales):
        move_along(params, us, first, sign)
        return
    by_scale: dict[int, tuple[Tensor, list[Tensor], list[Tensor]]] = {}
    for p, u, s in zip(params, us, scales, strict=True):
        entry = by_scale.setdefault(id(s), (s, [], []))
        entry[1].append(p)
        entry[2].append(u)
    for s, ps, group_us in by_scale.values():
        move_along(ps, group_us, s, sign)


def move_along(params: list[Tensor], us: list[Tensor], scale: Tensor, sign: float) -> None:
    """``w ← w + sign · scale · u`` for one 0-dim ``scale`` (see ``_shift``): one
    ``add_(u, alpha=…)`` where the scale may be read on the host, else ``addcmul_``."""
    value = alpha_value(scale, us)  # None on a device: the scale stays there
    if value is None:
        torch._foreach_addcmul_(params, us, [scale] * len(us), value=sign)
    else:
        torch._foreach_add_(params, us, alpha=sign * value)


class MomentumAscent:
    """The perturbation ``w̃ = w − scale · u`` shared by the MSAM-style twins (a mixin).

    ``DIRECTION`` names the state buffer u (the momentum); every stepped tensor also stores
    the ``scale`` applied to it, and each group whether its parameters sit at w̃
    (``group["at_ascent"]``, saved in ``state_dict`` with the group).
    """

    DIRECTION: str
    param_groups: list[dict[str, Any]]
    state: dict[Tensor, dict[str, Any]]
    _shift = staticmethod(_shift)

    def _perturbation(
        self, group: dict[str, Any]
    ) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """The tensors of ``group`` that carry a perturbation, their ``u`` and their scales."""
        params = [p for p in group["params"] if self.DIRECTION in self.state.get(p, {})]
        states = [self.state[p] for p in params]
        return params, [s[self.DIRECTION] for s in states], [s["scale"] for s in states]

    @torch.no_grad()
    def move_from_ascent(self) -> None:
        """Parameters ← the un-perturbed ``w = w̃ + scale · u`` (to evaluate, save, average).

        Does nothing for groups already there (safe to call twice).
        """
        for group in self.param_groups:
            if group["at_ascent"]:
                params, us, scales = self._perturbation(group)
                if params:
                    _shift(params, us, scales, 1.0)
                group["at_ascent"] = False

    @torch.no_grad()
    def move_to_ascent(self) -> None:
        """Parameters ← the stored ``w̃ = w − scale · u``, where ``step`` expects them."""
        for group in self.param_groups:
            if not group["at_ascent"]:
                params, us, scales = self._perturbation(group)
                if params:
                    _shift(params, us, scales, -1.0)
                group["at_ascent"] = True

    def _require_ascent(self) -> None:
        if not all(group["at_ascent"] for group in self.param_groups):
            raise RuntimeError(
                "step() called at the un-perturbed point: call move_to_ascent() first "
                "(the gradient must be taken at the stored, perturbed parameters)"
            )

    def _perturb(self, stepped: list[Stepped]) -> None:
        """``scale = ρ/(‖u‖ + 1e-12)`` (‖u‖ over every stepped tensor), then ``w̃ = w − scale u``."""
        if not stepped:
            return
        norm = lp_norm([u for *_, us in stepped for u in us], 2)
        # 1/(‖u‖ + 1e-12) as a 0-dim tensor (no host synchronisation); reciprocal_ is the
        # division 1.0/x without its extra multiplication by 1.0
        inverse = (norm + NORM_EPS).reciprocal_()
        for group, params, states, us in stepped:
            scale = inverse * group["rho"]
            for s in states:
                s["scale"] = scale
            move_along(params, us, scale, -1.0)


class MSAM(MomentumAscent, CheckedOptimizer):
    """Momentum-SAM on SGD with momentum (official ``MSAM``). One gradient per step.

    Args:
        params: parameters or parameter groups (each group may set its own hyperparameters;
            the momentum norm is global over all groups).
        lr: learning rate η.
        momentum: momentum μ of the buffer ``v ← μ v + d``.
        weight_decay: coupled decay λ, added to the gradient at the perturbed point.
        rho: radius ρ of the perturbation ``−ρ v/‖v‖`` (official default 0.3; the paper's
            experiments use larger values, e.g. 3).

    State per tensor: ``momentum_buffer`` (v) and ``scale``. The parameters hold w̃.
    """

    DIRECTION = "momentum_buffer"
    HYPERPARAMETERS = reference.MSAM.HYPERPARAMETERS

    def __init__(
        self,
        params: Params,
        lr: float = 0.1,
        momentum: float = 0.9,
        weight_decay: float = 1e-2,
        rho: float = 0.3,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        defaults = dict(
            lr=lr, momentum=momentum, weight_decay=weight_decay, rho=rho, at_ascent=True
        )
        super().__init__(params, defaults)

    def _state(self, p: Tensor) -> dict[str, Any]:
        state = self.state[p]
        if not state:  # v = 0 and no perturbation yet, as the official constructor
            state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["scale"] = p.new_zeros(())
        return state

    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> Tensor | None:
        """One MSAM step with the gradients in ``p.grad``, taken at the stored w̃.

        ``closure`` (optional) computes the loss at the current parameters and calls
        ``backward()``; it runs once. Returns its loss. With ``weight_decay`` ≠ 0, ``p.grad``
        holds ``d = g + λ w̃`` afterwards (written in place, as LookSAM writes its direction).
        """
        self._require_ascent()
        loss = run_closure(closure)
        stepped: list[Stepped] = []
        for group in self.param_groups:
            params = with_grad(group)
            if not params:
                continue
            states = [self._state(p) for p in params]
            bufs = [s["momentum_buffer"] for s in states]
            grads = [p.grad for p in params]
            wd = group["weight_decay"]
            # 2. d = g + λ w̃ (torch.optim.SGD's rounding), written into p.grad: a fresh
            # model-sized tensor each step costs more than the addition (allocation, page faults).
            if wd != 0:
                torch._foreach_add_(grads, params, alpha=wd)
            # 3. w = w̃ + scale · v (in place: no model-sized temporary)
            _shift(params, bufs, [s["scale"] for s in states], 1.0)
            # 4. v ← μ v + d (v starts at 0, so v_1 = d_1 exactly, like SGD's first clone)
            torch._foreach_mul_(bufs, scalar(group["momentum"], cpu_dtype(bufs)))
            torch._foreach_add_(bufs, grads)
            # 5. w ← w − η v
            torch._foreach_add_(params, bufs, alpha=-group["lr"])
            stepped.append((group, params, states, bufs))
        # 6–7. scale = ρ/(‖v‖ + 1e-12), w̃ = w − scale · v
        self._perturb(stepped)
        return loss


class AdamWMSAM(MomentumAscent, CheckedOptimizer):
    """Momentum-SAM on AdamW (official ``AdamW_MSAM``). One gradient per step.

    Args:
        params: parameters or parameter groups (the norm ‖m‖ is global over all groups).
        lr: learning rate η.
        betas: (β1, β2) of Adam's moments; the perturbation follows the first moment m.
        eps: added to the bias-corrected √v.
        weight_decay: decoupled decay λ, applied after the Adam step as ``w (1 − ηλ)``.
        rho: radius ρ of the perturbation ``−ρ m/‖m‖`` (official default 1).

    State per tensor: ``step`` (t), ``exp_avg`` (m), ``exp_avg_sq`` (v), ``scale``. The
    parameters hold w̃. The step count is per tensor, as in ``torch.optim.AdamW``.
    """

    DIRECTION = "exp_avg"
    HYPERPARAMETERS = reference.AdamWMSAM.HYPERPARAMETERS

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        rho: float = 1.0,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        defaults = dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, rho=rho, at_ascent=True
        )
        super().__init__(params, defaults)

    def _state(self, p: Tensor) -> dict[str, Any]:
        state = self.state[p]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["scale"] = p.new_zeros(())
        return state

    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> Tensor | None:
        """One AdamW-MSAM step with the gradients in ``p.grad``, taken at the stored w̃."""
        self._require_ascent()
        loss = run_closure(closure)
        stepped: list[Stepped] = []
        for group in self.param_groups:
            params = with_grad(group)
            if not params:
                continue
            beta1, beta2 = group["betas"]
            lr = group["lr"]
            states = [self._state(p) for p in params]
            for s in states:
                s["step"] += 1
            ms = [s["exp_avg"] for s in states]
            vs = [s["exp_avg_sq"] for s in states]
            grads = [p.grad for p in params]
            # 2. w = w̃ + scale · m, with the OLD m
            _shift(params, ms, [s["scale"] for s in states], 1.0)
            dtype = cpu_dtype(vs)
            # 3. the moments, in torch.optim.Adam's operations
            torch._foreach_lerp_(ms, grads, 1.0 - beta1)
            ema_of_squares_(vs, grads, beta2, dtype)
            # 4. w ← w − (η/(1−β1ᵗ)) m/(√v/√(1−β2ᵗ) + eps), bias corrections per tensor
            # (√v in fresh tensors, as torch's Adam: p.grad stays the gradient for the caller)
            denom = torch._foreach_sqrt(vs)
            t = states[0]["step"]
            if all(s["step"] == t for s in states):  # the usual case: one number each
                torch._foreach_div_(denom, scalar(math.sqrt(1.0 - beta2**t), dtype))
                add_scalar_(denom, group["eps"], dtype)
                torch._foreach_addcdiv_(params, ms, denom, value=-lr / (1.0 - beta1**t))
            else:
                torch._foreach_div_(denom, [math.sqrt(1.0 - beta2 ** s["step"]) for s in states])
                add_scalar_(denom, group["eps"], dtype)
                step_sizes = [-lr / (1.0 - beta1 ** s["step"]) for s in states]
                torch._foreach_addcdiv_(params, ms, denom, step_sizes)
            # 5. decoupled decay AFTER the step (torch.optim.AdamW decays before it)
            if group["weight_decay"] != 0:
                torch._foreach_mul_(params, scalar(1.0 - lr * group["weight_decay"], dtype))
            stepped.append((group, params, states, ms))
        # 6. scale = ρ/(‖m‖ + 1e-12), w̃ = w − scale · m
        self._perturb(stepped)
        return loss
