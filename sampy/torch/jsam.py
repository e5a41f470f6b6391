"""1-SAM, logit-SAM and J-SAM as ``torch.optim.Optimizer``: twins of ``sampy.optim.jsam``.

C. Baek, Z. Kolter, A. Raghunathan, "Why is SAM Robust to Label Noise?", ICLR 2024,
arXiv:2405.03676, Sections 3-4. Every example gets its own perturbation
``ε_i = ρ ∇ℓ_i(w)/(‖∇ℓ_i(w)‖ + eps)`` (norm global over all parameters of all groups, ρ the
group's own), and with ``r = ∂ℓ/∂f`` (the logit scale) and ``J_i = ∂f_i/∂w`` the examples give

1. ``g_i = ∇ℓ_i(w)``, the logits ``f_i(w)``                      (per-example gradients)
2. ``ε_i = ρ g_i/(‖g_i‖ + eps)``
3. ``mode="1-sam"``:    ``G_i = ∇ℓ_i(w + ε_i)``                (1-SAM, ``MSharpnessSAM(m=1)``)
   ``mode="logit"``:    ``G_i = J_i(w)ᵀ r(f_i(w + ε_i))``       (``LogitSAM``)
   ``mode="jacobian"``: ``G_i = J_i(w + ε_i)ᵀ r(f_i(w))``       (``JSAM``)
4. ``d = (1/k) Σ_i G_i``; the base optimizer steps with ``d`` in ``p.grad`` at ``w``

The same steps, in the same order, as the NumPy reference. Two losses, chosen by the targets:

- **binary** (float targets ``t ∈ {−1, +1}``, logits of shape ``(k,)``): ``ℓ = log(1 + e^{−t f})``,
  ``r = −t σ(−t f)`` — the setting of the paper and of the reference;
- **classes** (integer targets, logits of shape ``(k, C)``): cross-entropy,
  ``r = softmax(f) − e_t`` (our multi-class reading of the paper's logit/Jacobian split).

**The contract.** Each example needs its own parameters, so these optimizers evaluate the model
*functionally* and vectorise over examples with ``torch.func.vmap``. ``step`` takes a pure
function and the batch::

    forward(params, inputs) -> logits     # params: the optimizer's parameters, in order
    loss = opt.step(forward, inputs, targets)

``forward`` must compute the logits of ``inputs`` from the tensors in ``params`` (a tuple, in the
order of the optimizer's ``param_groups``) and nothing else that is trained. For an
``nn.Module``, ``functional_forward(model)`` builds it with ``torch.func.functional_call``;
construct the optimizer with ``model.parameters()`` (same order). The model must treat examples
independently (no BatchNorm in training mode) and draw no random numbers (no dropout):
``vmap`` refuses randomness. ``step`` returns the mean loss at ``w`` (detached).

Costs per step on ``k`` examples, as in the reference: 1-SAM and J-SAM ``2k`` gradient
evaluations (vectorised), logit-SAM ``k + 1`` (the second pass is one batched backward at ``w``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call, grad, vmap

from sampy.optim import jsam as reference
from sampy.optim.hyper import validate
from sampy.torch.base_optimizer import (
    BaseOptimizer,
    build_base_optimizer,
    check_base_optimizer,
    group_repr,
    validate_group,
)
from sampy.torch.checkpoint_layout import split_base_state, with_base_state
from sampy.torch.twin_optimizer import TwinOptimizer

__all__ = ["JSAM", "LogitSAM", "PerExampleSAM", "functional_forward"]

Forward = Callable[[Sequence[Tensor], Tensor], Tensor]
"""``forward(params, inputs) -> logits``: a pure function of the parameters."""

MODES = ("1-sam", "logit", "jacobian")


def functional_forward(model: torch.nn.Module) -> Forward:
    """``forward(params, inputs)`` for ``model``: its logits with ``params`` in place of
    ``model.parameters()`` (same order; buffers are the model's own).

    The returned function carries the model's parameters as ``forward.parameters``, so the
    optimizers can check that they were built from the same tensors in the same order.
    """
    names = [name for name, _ in model.named_parameters()]

    def forward(params: Sequence[Tensor], inputs: Tensor) -> Tensor:
        if len(params) != len(names):
            raise ValueError(
                f"forward got {len(params)} parameter tensors, the model has {len(names)}"
            )
        return functional_call(model, dict(zip(names, params, strict=True)), (inputs,))

    forward.parameters = tuple(model.parameters())
    return forward


# -- the logistic and cross-entropy losses, as functions of one example's logits ------------


def _loss(logit: Tensor, target: Tensor) -> Tensor:
    """ℓ of one example: binary ``softplus(−t f)`` or cross-entropy."""
    if logit.dim() == 0:
        return F.softplus(-target * logit)
    return torch.logsumexp(logit, dim=-1) - logit.gather(-1, target.unsqueeze(-1)).squeeze(-1)


def _losses(logits: Tensor, targets: Tensor) -> Tensor:
    """ℓ of every example of a batch (the same numbers as ``_loss``)."""
    if logits.dim() == 1:
        return F.softplus(-targets * logits)
    return torch.logsumexp(logits, dim=-1) - logits.gather(1, targets[:, None]).squeeze(1)


def _logit_scale(logits: Tensor, targets: Tensor) -> Tensor:
    """``r = ∂ℓ/∂f`` per example: ``−t σ(−t f)``, or ``softmax(f) − e_t``."""
    if logits.dim() == 1:
        return -targets * torch.sigmoid(-targets * logits)
    return torch.softmax(logits, dim=-1) - F.one_hot(targets, logits.shape[-1]).to(logits.dtype)


class PerExampleSAM(TwinOptimizer):
    """Per-example SAM around a torch optimizer: 1-SAM, logit-SAM or J-SAM (``mode``).

    Args:
        params: parameters or parameter groups (a group may set its own ``rho``; the norm of
            each example's gradient is global over all groups).
        base_optimizer: the base optimizer (default ``torch.optim.SGD``): a class, a factory or
            an instance, as ``SharpnessAware``'s.
        rho: radius ρ ≥ 0 of every example's perturbation.
        perturb_eps: the guard in ``ρ/(‖∇ℓ_i‖ + eps)``.
        mode: ``"1-sam"`` (both factors at ``w + ε_i``), ``"logit"`` (only the logit scale),
            ``"jacobian"`` (only the Jacobian).
        **base_kwargs: passed to ``base_optimizer`` (``lr``, ``momentum``, ...).

    ``param_groups`` are shared with the base optimizer; ``state_dict()`` includes its state.
    """

    HYPERPARAMETERS = reference.LogitSAM.HYPERPARAMETERS

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        base_optimizer: BaseOptimizer = torch.optim.SGD,
        rho: float = 0.05,
        perturb_eps: float = 1e-12,
        mode: str = "1-sam",
        **base_kwargs: Any,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        check_base_optimizer(base_optimizer)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
        self.mode = mode
        self.perturb_eps = float(perturb_eps)
        super().__init__(params, {"rho": rho, **base_kwargs})
        self.base_optimizer = build_base_optimizer(self, base_optimizer, base_kwargs, ("rho",))

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group to this optimizer and its base at once, its ``rho`` checked first."""
        validate_group(self, ("rho",), param_group)
        super().add_param_group(param_group)

    def __repr__(self) -> str:
        return group_repr(self, self.base_optimizer)

    @property
    def grad_evals_per_step(self) -> str:
        """Gradient evaluations per step on ``k`` examples, as text."""
        return "k + 1" if self.mode == "logit" else "2k"

    def _params(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def _check(self, forward: Forward, inputs: Tensor, targets: Tensor) -> None:
        if not callable(forward):
            raise ValueError(
                f"forward must be a function forward(params, inputs) -> logits, got {forward!r} "
                "(see sampy.torch.jsam.functional_forward)"
            )
        own = getattr(forward, "parameters", None)
        params = self._params()
        if own is not None and (
            len(own) != len(params) or any(a is not b for a, b in zip(own, params, strict=False))
        ):
            raise ValueError(
                "forward was built from other parameters than this optimizer's (or in another "
                "order): construct the optimizer with model.parameters()"
            )
        if not isinstance(inputs, Tensor) or not isinstance(targets, Tensor):
            raise ValueError("inputs and targets must be tensors")
        if inputs.shape[0] != targets.shape[0] or targets.dim() != 1 or targets.numel() == 0:
            raise ValueError(
                f"targets must be a non-empty 1-D tensor with one entry per input, got shapes "
                f"{tuple(inputs.shape)} and {tuple(targets.shape)}"
            )

    @torch.no_grad()
    def step(self, forward: Forward, inputs: Tensor, targets: Tensor) -> Tensor:  # type: ignore[override]
        """One step on the batch ``(inputs, targets)``; returns the mean loss at ``w``.

        Binary targets are floats ``±1`` with logits of shape ``(k,)``; class targets are
        integers with logits of shape ``(k, C)``.
        """
        self._check(forward, inputs, targets)
        params = self._params()
        w = tuple(p.detach() for p in params)
        k = targets.shape[0]

        def logit_of(ps: Sequence[Tensor], x: Tensor) -> Tensor:
            return forward(ps, x.unsqueeze(0)).squeeze(0)

        def loss_and_logit(ps: Sequence[Tensor], x: Tensor, t: Tensor):
            logit = logit_of(ps, x)
            return _loss(logit, t), logit

        with torch.enable_grad():
            # 1. per-example gradients and logits at w
            g, logits = vmap(grad(loss_and_logit, has_aux=True), in_dims=(None, 0, 0))(
                w, inputs, targets
            )
            # 2. ε_i = ρ g_i/(‖g_i‖ + eps), the norm global over every tensor
            norm = torch.stack([gi.reshape(k, -1).square().sum(1) for gi in g]).sum(0).sqrt()
            rhos = [group["rho"] for group in self.param_groups for _ in group["params"]]
            w_adv = tuple(
                p.unsqueeze(0) + gi * (rho / (norm + self.perturb_eps)).view(k, *[1] * p.dim())
                for p, gi, rho in zip(w, g, rhos, strict=True)
            )
            # 3. the variant's G_i, averaged over the examples
            if self.mode == "1-sam":

                def example_loss(ps, x, t):
                    return _loss(logit_of(ps, x), t)

                per_example = vmap(grad(example_loss), in_dims=(0, 0, 0))(w_adv, inputs, targets)
                d = [gi.mean(0) for gi in per_example]
            elif self.mode == "jacobian":
                r = _logit_scale(logits, targets)

                def pulled_back(ps, x, ri):
                    return (logit_of(ps, x) * ri).sum()

                per_example = vmap(grad(pulled_back), in_dims=(0, 0, 0))(w_adv, inputs, r)
                d = [gi.mean(0) for gi in per_example]
            else:
                logits_adv = vmap(logit_of, in_dims=(0, 0))(w_adv, inputs)
                r_adv = _logit_scale(logits_adv, targets)

                def batch_pulled_back(ps):
                    return (forward(ps, inputs) * r_adv).sum() / k

                d = list(grad(batch_pulled_back)(w))
            loss = _losses(logits, targets).mean()
        # 4. the base step at w
        for p, di in zip(params, d, strict=True):
            p.grad = di.to(p.dtype)
        self.base_optimizer.step()
        self._opt_called = True  # for torch.optim.lr_scheduler: this was the optimizer's step
        return loss.detach()

    def _initialise_state(self) -> None:
        """The base optimizer's state, by its own step at lr 0 (see ``TwinOptimizer``)."""
        if not self.base_optimizer.state:
            self.base_optimizer.step()

    def state_dict(self) -> dict[str, Any]:
        """The base optimizer's state (momentum, moments) in torch's layout, as the template's
        (``SharpnessAware.state_dict``)."""
        return with_base_state(super().state_dict(), self.base_optimizer.state_dict())

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load it (also the older layout with a ``"base_optimizer"`` entry) and re-bind the
        shared ``param_groups``."""
        own, base = split_base_state(self, state_dict)
        super().load_state_dict(own)
        self.base_optimizer.load_state_dict(base)
        self.base_optimizer.param_groups = self.param_groups


class LogitSAM(PerExampleSAM):
    """logit-SAM: each example's logit scale at its own ``w + ε_i``, the Jacobian at ``w``.

    Args:
        params: parameters or parameter groups.
        base_optimizer: the base optimizer (a class, a factory or an instance).
        rho: radius ρ of every example's perturbation.
        perturb_eps: the guard in ``ρ/(‖∇ℓ_i‖ + eps)``.
        **base_kwargs: passed to ``base_optimizer``.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        base_optimizer: BaseOptimizer = torch.optim.SGD,
        rho: float = 0.05,
        perturb_eps: float = 1e-12,
        **base_kwargs: Any,
    ) -> None:
        super().__init__(params, base_optimizer, rho, perturb_eps, mode="logit", **base_kwargs)


class JSAM(PerExampleSAM):
    """J-SAM: each example's Jacobian at its own ``w + ε_i``, the logit scale at ``w``.

    Args:
        params: parameters or parameter groups.
        base_optimizer: the base optimizer (a class, a factory or an instance).
        rho: radius ρ of every example's perturbation.
        perturb_eps: the guard in ``ρ/(‖∇ℓ_i‖ + eps)``.
        **base_kwargs: passed to ``base_optimizer``.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        base_optimizer: BaseOptimizer = torch.optim.SGD,
        rho: float = 0.05,
        perturb_eps: float = 1e-12,
        **base_kwargs: Any,
    ) -> None:
        super().__init__(params, base_optimizer, rho, perturb_eps, mode="jacobian", **base_kwargs)
