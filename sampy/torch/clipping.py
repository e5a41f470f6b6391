"""Gradient clipping in a SAM step: which gradient to clip, and when two choices are the same.

A SAM-type step meets three gradients, and ``torch.nn.utils.clip_grad_norm_`` can act on any of
them (the Keras SAM library's documentation lists ``clipnorm``/``global_clipnorm`` for every
variant; the NumPy knobs call the choice ``clip_stage``, ``sampy.optim.clipping``):

- ``"clean"``: ``g = ∇L(w)``, right after the first ``backward()`` (two calls: before
  ``first_step()``; davda54's ``loss.backward(); opt.step(closure)``: before ``step``). The
  ascent and every descent rule that reads ``g`` see it clipped; LookSAM's reuse steps too.
- ``"perturbed"``: ``g̃ = ∇L(w + ε)``, right after the second ``backward()`` (two calls: before
  ``second_step()``; davda54's loop: at the end of the closure, which then runs at ``w + ε``
  only).
- ``"direction"``: ``d``, what the base optimizer moves along, whatever the variant made of
  ``g`` and ``g̃``: :func:`clip_direction`, a step pre-hook on the base optimizer, the one moment
  at which ``p.grad`` holds ``d`` in every call shape. The official SAM code clips here
  (google-research/sam @ dae9904c).

A closure that clips and runs at both points (sampy's closure-only loop) clips ``g`` and ``g̃``.

:data:`COINCIDING_PLACEMENTS` says, for global-norm clipping, every registry variant whose twin
takes the two-call step, and the registry's default hyperparameters, which placements give the
same step (``"unclipped"`` included: clipping ``g`` changes nothing where the ascent normalises
``g``). A test derives it from steps with each placement. Why, in short: a positive rescaling
``s·g`` cancels in ``ε`` wherever ``ε`` is built from ``g/‖g‖`` or not from ``g`` at all (SAM,
ASAM, RandomSAM, one-step MultiStepSAM, the swaps and agreements, ClampSAM's clamped unit
vector) and nowhere else (USAM's ``ε = ρ g``, FisherSAM, the memories of FriendlySAM and VaSSO,
SSAMD's mask). Clipping ``g̃`` and clipping ``d`` are the same scaling wherever ``‖d‖ = ‖g̃‖``
and ``d`` is linear in ``g̃``: ``d = g̃`` and SAMMagnitude's ``|g̃| ⊙ sign(g)``; SAMDirection's
``sign(g̃) ⊙ |g|`` has ``‖d‖ = ‖g‖``, so there clipping ``g`` is clipping ``d``, and ``g̃``'s scale
does not matter. A sign mask (SAMAgree, SGDAgree) shrinks ``‖d‖`` below the clipped gradient's
norm, ClipSAM's ``min(|g̃|, c|g|)`` is not linear in ``g̃``, and GSAM (``d = g̃ − α g_⊥``), WSAM
(``α g̃ + (1 − α) g``), LookSAM (reuse steps ``d = g + ψ … g_v``) and the SAME family mix both
gradients: there each placement is its own algorithm (the review measured a WSAM step 5× larger
with ``g`` clipped). Other hyperparameters can break a coincidence: RandomSAM with ``mix > 0``
and the agreements with ``fill="other"`` mix ``g`` into ``d``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.hooks import RemovableHandle

PLACEMENTS = ("clean", "perturbed", "direction")

COINCIDING_PLACEMENTS: dict[str, tuple[tuple[str, ...], ...]] = {
    "SAM": (("unclipped", "clean"), ("perturbed", "direction")),
    "ASAM": (("unclipped", "clean"), ("perturbed", "direction")),
    "USAM": (("perturbed", "direction"),),
    "FisherSAM": (("perturbed", "direction"),),
    "GSAM": (),
    "WSAM": (),
    "FriendlySAM": (("perturbed", "direction"),),
    "VaSSO": (("perturbed", "direction"),),
    "RandomSAM": (("unclipped", "clean"), ("perturbed", "direction")),
    "LookSAM": (),
    "MultiStepSAM": (("unclipped", "clean"), ("perturbed", "direction")),
    "SSAMD": (("perturbed", "direction"),),
    "SAME": (),
    "CustomSAME": (),
    "SAMCkpt": (),
    "SAMDirection": (("unclipped", "perturbed"), ("clean", "direction")),
    "SAMMagnitude": (("unclipped", "clean"), ("perturbed", "direction")),
    "SAMAgree": (("unclipped", "clean"),),
    "SGDAgree": (("unclipped", "perturbed"),),
    "ClampSAM": (("unclipped", "clean"), ("perturbed", "direction")),
    "ClipSAM": (),
}
"""Variant name → the groups of placements (with ``"unclipped"``) that give the same steps
under ``clip_grad_norm_`` (a positive rescaling of the whole gradient), at the registry's default
hyperparameters; a placement in no group is an algorithm of its own. Per-tensor or per-value
clipping changes directions, so only the ``("perturbed", "direction")`` groups of the variants
with ``d = g̃`` carry over to them."""

__all__ = ["COINCIDING_PLACEMENTS", "PLACEMENTS", "clip_direction", "stepping_optimizer"]


def stepping_optimizer(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """The optimizer whose ``step`` moves the weights along ``d``: the base where there is one.

    Example:
        >>> import torch
        >>> import sampy.torch as st
        >>> from sampy.torch.clipping import stepping_optimizer
        >>> opt = st.SAM([torch.nn.Parameter(torch.ones(2))], torch.optim.SGD, lr=0.1)
        >>> stepping_optimizer(opt) is opt.base_optimizer
        True
    """
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ValueError(
            f"optimizer must be a torch.optim.Optimizer (a sampy.torch twin), got "
            f"{type(optimizer).__name__}"
        )
    base = getattr(optimizer, "base_optimizer", None)
    return base if isinstance(base, torch.optim.Optimizer) else optimizer


def clip_direction(
    optimizer: torch.optim.Optimizer,
    max_norm: float,
    norm_type: float = 2.0,
    *,
    error_if_nonfinite: bool = False,
) -> RemovableHandle:
    """Clip the direction ``d`` handed to the base optimizer, with ``clip_grad_norm_``.

    Registers a step pre-hook on ``optimizer.base_optimizer`` (on ``optimizer`` itself when it
    has no base: MSAM, schedule-free AdamW) that calls ``torch.nn.utils.clip_grad_norm_`` on
    the gradients of all its parameter groups: the ``"direction"`` placement, the same in the
    two-call and the closure step, for every variant. Returns the hook's handle
    (``handle.remove()`` undoes it).

    Args:
        optimizer: the twin (or any torch optimizer).
        max_norm: the largest norm of ``d`` (> 0).
        norm_type: the norm, as ``clip_grad_norm_`` takes it (``float("inf")`` allowed).
        error_if_nonfinite: passed to ``clip_grad_norm_`` (raise on a NaN/inf norm of ``d``).

    Example:
        >>> import torch
        >>> import sampy.torch as st
        >>> from sampy.torch.clipping import clip_direction
        >>> w = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
        >>> opt = st.GSAM([w], torch.optim.SGD, rho=0.05, lr=1.0)
        >>> handle = clip_direction(opt, max_norm=0.5)
        >>> (10 * w.square().sum()).backward()
        >>> opt.first_step(zero_grad=True)
        >>> (10 * w.square().sum()).backward()
        >>> opt.second_step(zero_grad=True)
        >>> round(float((w.detach() - torch.tensor([3.0, 4.0])).norm()), 4)  # lr · ‖d‖
        0.5
    """
    if isinstance(max_norm, bool) or not isinstance(max_norm, int | float) or not max_norm > 0:
        raise ValueError(f"clip_direction: max_norm must be a number > 0, got {max_norm!r}")
    target = stepping_optimizer(optimizer)

    def hook(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        params = [p for group in opt.param_groups for p in group["params"] if p.grad is not None]
        if params:
            torch.nn.utils.clip_grad_norm_(
                params, max_norm, norm_type, error_if_nonfinite=error_if_nonfinite
            )

    return target.register_step_pre_hook(hook)
