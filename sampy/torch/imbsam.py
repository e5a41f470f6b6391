"""ImbSAM as a ``torch.optim.Optimizer``: the twin of ``sampy.optim.ImbSAM``.

Y. Zhou, Y. Qu, X. Xu, H. Shen, "ImbSAM: A Closer Look at Sharpness-Aware Minimization in
Class-Imbalanced Recognition", ICCV 2023, arXiv:2308.07815. Official code:
cool-xuan/Imbalanced_SAM @ c65f41eb (``imbsam.py``). SAM on the tail-class loss only, plain descent
on the head-class loss: ``min_w L_head(w) + max_{‖ε‖≤ρ} L_tail(w + ε)`` with, over the n examples of
the batch,

    L_head = (1/n) Σ_{i ∈ head} ℓ_i,      L_tail = (c/n) Σ_{i ∈ tail} ℓ_i,   c = tail_weight

— both divided by the FULL batch size n, c = 2 as the official training loop hard-codes. One
step (the reference's five lines, with the gradients in ``p.grad``):

1. ``ℓ = closure()``: one forward at ``w`` over the whole batch (per-example losses)
2. ``g_h = ∇L_head(w)``   (backward with ``retain_graph``)    — evaluation 1
3. ``g_t = ∇L_tail(w)``   (same forward)                      — evaluation 2
4. ``ε = ρ g_t/(‖g_t‖ + 1e-16)``; ``w ← w + ε``
5. ``g̃_t = ∇L_tail(w + ε)``: ``closure(tail)``, a forward on the tail examples only — evaluation 3
6. ``w ← saved w`` (a copy: exact); ``d = g̃_t + g_h``; ``base_optimizer.step()`` with d at w

Three backward passes and two forwards per step; an empty head skips evaluation 1, an empty
tail skips evaluations 2 and 3 (and the second forward), as the reference does.

The step takes an **example closure** (``sampy.torch.examples``): ``closure(indices=None)``
returns the un-reduced losses of those examples (all n when None), without ``backward()`` —
the optimizer weighs and differentiates them itself. ``tail`` says which examples belong to a
tail class, either as a bool mask of shape ``(n,)`` or as a 1-D int64 tensor of tail indices
(distinct, in ``[0, n)``). Usage::

    opt = ImbSAM(model.parameters(), torch.optim.SGD, rho=0.05, lr=0.01, momentum=0.9)
    tail_classes = torch.tensor([7, 8, 9])

    for inputs, targets in loader:
        def losses(indices=None):
            x, y = (inputs, targets) if indices is None else (inputs[indices], targets[indices])
            return loss_fn(model(x), y, reduction="none")

        opt.step(losses, torch.isin(targets, tail_classes))

or, by hand (the same numbers)::

    tail = opt.first_step(loss_fn(model(inputs), targets, reduction="none"), tail_mask)
    opt.second_step(loss_fn(model(inputs[tail]), targets[tail], reduction="none")
                    if tail.numel() else None)

**Host synchronisation.** The second forward runs on the tail examples only, so their number
must be known on the host: a bool mask on the device costs one ``nonzero()``, one device
synchronisation per step (the only one). A mask still on the host (labels before ``.to(device)``)
or the tail *indices* (e.g. from the data loader) cost none: the step never waits for the
device. Everything else — the head and tail weights, both norms, the perturbation, the restore
— stays on the device.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from sampy.optim import imbsam as reference
from sampy.optim.hyper import validate
from sampy.torch.base_optimizer import BaseOptimizer
from sampy.torch.examples import ExampleLosses, example_losses, require_example_closure
from sampy.torch.sam import NormBallAscent
from sampy.torch.sharpness_aware import Groups, PerturbedGradient, SharpnessAware

HEAD_GRAD = "head_grad"  # state key of g_h between first_step and second_step


def tail_indices(tail: Any, n: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """``(indices, mask)`` of the tail examples from a bool mask ``(n,)`` or an index tensor.

    A mask is turned into indices with ``nonzero()`` where it lives (a device synchronisation
    for a mask on a GPU, none for one on the host); indices are turned into a mask with an index
    write (none). Raises ``ValueError`` for anything else.
    """
    if not isinstance(tail, Tensor):
        raise ValueError(
            "tail must be a tensor: a bool mask of shape (n,) marking the tail-class examples "
            f"(e.g. torch.isin(targets, tail_classes)) or their int64 indices, got {tail!r}"
        )
    if tail.dtype == torch.bool:
        if tail.shape != (n,):
            raise ValueError(
                f"tail must be a bool mask of shape ({n},) (one entry per example of the "
                f"batch), got shape {tuple(tail.shape)}"
            )
        # nonzero() where the mask lives: on the host it is free, on a device it synchronises.
        return tail.nonzero().reshape(-1).to(device), tail.to(device)
    tail = tail.to(device)
    if tail.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise ValueError(
            f"tail must be a bool mask of shape ({n},) or 1-D integer indices, got dtype "
            f"{tail.dtype}"
        )
    if tail.dim() != 1 or tail.numel() > n:
        raise ValueError(
            f"tail indices must be a 1-D tensor of at most {n} distinct indices in [0, {n}), "
            f"got shape {tuple(tail.shape)}"
        )
    tail = tail.to(torch.int64)
    mask = torch.zeros(n, dtype=torch.bool, device=device)
    mask[tail] = True
    return tail, mask


class ImbSAM(SharpnessAware):
    """ImbSAM around a torch optimizer: SAM on the tail loss, plain descent on the head loss.

    Args:
        params: parameters or parameter groups (a group may set its own ``rho``; the norm of
            ``g_t`` is global over all groups).
        base_optimizer: the base optimizer (default ``torch.optim.SGD``): a class, a factory or
            an instance.
        rho: radius ρ of the tail loss's perturbation.
        tail_weight: the factor c of the tail loss (2 as the official code; 1 for the plain
            formulation).
        perturb_eps: the guard in ``ρ/(‖g_t‖ + eps)`` (1e-16 as the official code).
        **base_kwargs: passed to ``base_optimizer`` (``lr``, ``momentum``, ...).

    Three gradient evaluations per step (backward passes), two forwards.
    """

    HYPERPARAMETERS = reference.ImbSAM.HYPERPARAMETERS
    grad_evals_per_step: float = 3

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        base_optimizer: BaseOptimizer = torch.optim.SGD,
        rho: float = 0.05,
        tail_weight: float = 2.0,
        perturb_eps: float = 1e-16,
        **base_kwargs: Any,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        self.tail_weight = float(tail_weight)
        self.perturb_eps = float(perturb_eps)
        super().__init__(
            params,
            base_optimizer,
            ascent=NormBallAscent(p=2.0, perturb_eps=perturb_eps),
            descent=PerturbedGradient(),
            group_hyperparameters=dict(rho=rho),
            **base_kwargs,
        )
        # (n, whether the tail is non-empty) between first_step and second_step.
        self._pending: tuple[int, bool] | None = None

    def _all_params(self) -> Groups:
        return [list(group["params"]) for group in self.param_groups]

    @torch.no_grad()
    def first_step(self, losses: Tensor, tail: Tensor) -> Tensor:  # type: ignore[override]
        """``g_h`` and ``g_t`` from one forward's per-example ``losses``; move to ``w + ε``.

        ``losses`` are the un-reduced losses of the n examples at ``w`` (with their graph);
        ``tail`` a bool mask ``(n,)`` or the tail indices. Clears every ``p.grad`` first,
        keeps ``g_h``, moves the parameters to ``w + ρ g_t/(‖g_t‖ + eps)`` and returns the tail
        indices: the examples whose losses ``second_step`` needs at ``w + ε`` (none: call
        ``second_step(None)``).
        """
        if not isinstance(losses, Tensor) or losses.dim() != 1 or losses.numel() == 0:
            raise ValueError(
                "losses must be a non-empty 1-D tensor of per-example losses (use "
                f"reduction='none'), got {losses!r}"
            )
        if self._pending is not None:
            raise RuntimeError("first_step() called twice: call second_step() first")
        n = losses.numel()
        indices, mask = tail_indices(tail, n, losses.device)
        n_tail = indices.numel()
        self._zero_grads(self._all_params())
        has_head, has_tail = n_tail < n, n_tail > 0
        with torch.enable_grad():
            if has_head:
                # (1/n) Σ_head ℓ_i as per-example weights: no indexing, no synchronisation.
                head_weights = mask.logical_not().to(losses.dtype) * (1.0 / n)
                torch.autograd.backward((losses * head_weights).sum(), retain_graph=has_tail)
                for ps in self._params_with_grad():
                    for p in ps:
                        self.state[p][HEAD_GRAD] = p.grad
                        p.grad = None
            if has_tail:
                tail_weights = mask.to(losses.dtype) * (self.tail_weight / n)
                torch.autograd.backward((losses * tail_weights).sum())
        params = self._params_with_grad()
        if has_tail and any(params):
            grads = [[p.grad for p in ps] for ps in params]
            e = self._ascent(params, grads, inplace=True)
            # g_t is consumed: w + ε is written into its storage and w pointed there for the
            # pass at w + ε (one pass, no copy of w out and back)
            fresh = getattr(self.ascent, "fresh_perturbation", False) is True
            self._save_and_perturb(params, e, consumed=True, fresh=fresh)
            self._zero_grads(params)
        self._pending = (n, has_tail)
        return indices

    @torch.no_grad()
    def second_step(  # type: ignore[override]
        self, tail_losses: Tensor | None = None, zero_grad: bool = False
    ) -> None:
        """``g̃_t`` from the tail losses at ``w + ε``; restore ``w``; base step with ``g̃_t + g_h``.

        ``tail_losses``: the un-reduced losses of the examples ``first_step`` returned, at
        ``w + ε`` (None when the tail is empty). Leaves ``d`` in ``p.grad`` unless ``zero_grad``.
        """
        if self._pending is None:
            raise RuntimeError("second_step() called without first_step(): nothing to restore")
        n, has_tail = self._pending
        if has_tail != (tail_losses is not None):
            raise ValueError(
                "second_step needs the tail losses at w + ε exactly when first_step returned "
                f"tail indices (the tail is {'non-' if has_tail else ''}empty)"
            )
        self._pending = None
        if tail_losses is not None:
            with torch.enable_grad():
                torch.autograd.backward((tail_losses * (self.tail_weight / n)).sum())
            if self._perturbed is not None:  # None: no parameter had a tail gradient
                self._restore(need_clean=False)
        both: tuple[list[Tensor], list[Tensor]] = ([], [])
        for ps in self._all_params():
            for p in ps:
                head = self.state[p].pop(HEAD_GRAD, None) if p in self.state else None
                if head is None:
                    continue
                if p.grad is None:  # a head-only parameter: d = g_h
                    p.grad = head
                else:
                    both[0].append(p.grad)
                    both[1].append(head)
        if both[0]:
            torch._foreach_add_(both[0], both[1])  # d = g̃_t + g_h, in g̃_t's storage
        if self._skips([[p.grad for p in ps if p.grad is not None] for ps in self._all_params()]):
            return  # skip_nonfinite: a non-finite d, and w is restored
        self._base_step()
        if zero_grad:
            self.zero_grad()

    def step(  # type: ignore[override]
        self, closure: ExampleLosses | None = None, tail: Tensor | None = None
    ) -> Tensor:
        """A whole ImbSAM step: two forwards (``closure()``, ``closure(tail)``), three backwards.

        ``closure(indices=None)`` returns the un-reduced losses of those examples (all of the
        batch when None) and calls no ``backward()``; ``tail`` is a bool mask ``(n,)`` (one
        host synchronisation) or the tail indices (none). Returns the mean loss at ``w``.
        """
        closure = require_example_closure("ImbSAM", closure)
        if tail is None:
            raise ValueError(
                "tail is required: a bool mask of shape (n,) marking the tail-class examples of "
                "the batch (e.g. torch.isin(targets, tail_classes)) or their indices"
            )
        self._discard_entry_grads()
        losses = example_losses(closure)
        indices = self.first_step(losses, tail)
        try:
            self.second_step(example_losses(closure, indices) if indices.numel() else None)
        except BaseException:
            if self._pending is not None or self._perturbed is not None:
                self.restore()
            raise
        self._drop_grads()
        return losses.detach().mean()

    @torch.no_grad()
    def restore(self) -> None:
        """Undo ``first_step()`` without a base step: ``w`` back bit for bit, ``g_h`` dropped."""
        if self._pending is None and self._perturbed is None:
            raise RuntimeError(
                "restore() called with nothing to restore: no first_step() since the last "
                "second_step() or restore(), so the parameters are at w already"
            )
        if self._perturbed is not None:
            super().restore()
        self._pending = None
        for ps in self._all_params():
            for p in ps:
                if p in self.state:
                    self.state[p].pop(HEAD_GRAD, None)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load the state and the base optimizer's (any half-done step is forgotten)."""
        super().load_state_dict(state_dict)
        self._pending = None
