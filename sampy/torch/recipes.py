"""Copy-and-adapt recipes for SAM-type optimizers in real training loops (needs PyTorch).

Each function is one optimisation step of a ``sampy.torch`` SAM-type optimizer (an instance of
``SharpnessAware``: ``SAM``, ``ASAM``, ``GSAM``, ...) under a setting that the plain
``step(closure)`` does not cover. They are short on purpose: read them, call them, or paste them
into your loop and change what you need.

- :func:`amp_sam_step` — float16 mixed precision with ``torch.amp.GradScaler`` (davda54/sam #55,
  #97; juntang-zhuang/GSAM #2; nblt/F-SAM #5).
- :func:`bf16_sam_step` — bfloat16 autocast, no scaler (the F-SAM authors' advice, nblt/F-SAM #5).
- :func:`accumulated_sam_step` — gradient accumulation, mode (A): m-sharpness, each micro-batch
  perturbs with its own gradient (davda54/sam #62, nblt/F-SAM #3).
- :func:`union_batch_sam_step` — gradient accumulation, mode (B): SAM on the union of the
  micro-batches, replaying them.
- :func:`same_dropout_masks` — every pass of a step draws the first pass's dropout masks.

In every recipe ``loss_fn`` computes and returns the loss (a scalar tensor) **without** calling
``backward()``; the recipe does the backward passes, because it must scale, split or accumulate
them. BatchNorm: pass ``model=`` to any recipe and the running statistics see only the clean
passes at ``w`` (``sampy.torch.running_stats_from_first_pass``), so ``loss_fn`` need not know
which call it is; a skipped fp16 step leaves the statistics as they were before it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from sampy.torch.batchnorm import (
    RunningStatsFromFirstPass,
    running_stats_from_first_pass,
    running_stats_frozen,
)
from sampy.torch.sharpness_aware import SharpnessAware

Batch = TypeVar("Batch")

__all__ = [
    "accumulated_sam_step",
    "amp_sam_step",
    "bf16_sam_step",
    "same_dropout_masks",
    "union_batch_sam_step",
]


def _params_with_grad(optimizer: torch.optim.Optimizer) -> list[Tensor]:
    return [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]


def _clear_grads(optimizer: torch.optim.Optimizer) -> None:
    for group in optimizer.param_groups:
        for p in group["params"]:
            p.grad = None


def _first_pass_block(
    model: nn.Module | None,
) -> RunningStatsFromFirstPass | contextlib.nullcontext[None]:
    """The BatchNorm block of a recipe's step (nothing to do without a model)."""
    return contextlib.nullcontext() if model is None else running_stats_from_first_pass(model)


def _running_stats_frozen(model: nn.Module | None) -> contextlib.AbstractContextManager[None]:
    """Frozen BatchNorm statistics for a recipe's later passes (nothing without a model)."""
    return contextlib.nullcontext() if model is None else running_stats_frozen(model)


# -- float16 + GradScaler ----------------------------------------------------------------------


class _SecondPass:
    """A second "optimizer" for ``GradScaler``: the same ``param_groups``, ``step() = second_step``.

    ``GradScaler`` keeps its per-step state (stage, found-inf flags) per optimizer *object*
    (``id(optimizer)``) and refuses to ``unscale_`` the same object twice before ``update()``
    (davda54/sam #97). SAM has two backward passes per step, so the second pass is unscaled
    through this view: two objects, two slots, one ``update()`` that sees both.
    """

    def __init__(self, optimizer: SharpnessAware) -> None:
        self.optimizer = optimizer

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.optimizer.param_groups

    def step(self) -> bool:
        self.optimizer.second_step()
        return True  # GradScaler.step returns None when it skipped, this value otherwise


def amp_sam_step(
    optimizer: SharpnessAware,
    scaler: torch.amp.GradScaler,
    loss_fn: Callable[[], Tensor],
    *,
    early_exit: bool = False,
    model: nn.Module | None = None,
) -> tuple[Tensor, bool]:
    """One SAM step with loss scaling (``torch.amp.GradScaler``); returns ``(loss, skipped)``.

    Put the forward pass of ``loss_fn`` under ``torch.autocast(device_type, dtype=torch.float16)``
    yourself; ``loss_fn`` runs twice (at ``w`` and at ``w + ε``). The recipe::

        scale(L(w)).backward();       unscale_(optimizer)       # g, found_inf₁  (slot 1)
        first_step()                                             # ε from the UNSCALED g
        scale(L(w + ε)).backward();   unscale_(view)            # g̃, found_inf₂  (slot 2)
        found_inf₂ += found_inf₁                                 # on the device, no sync
        scaler.step(view)   # one .item(): second_step() if both passes finite, else nothing
        if skipped: restore w exactly (and drop the stash)
        scaler.update()     # sees both slots: the scale backs off if either pass overflowed

    Why each part:

    - **Unscale before the perturbation**: ``ε = ρ g/(‖g‖ + eps)`` is
      invariant to the scale only while ``eps`` is negligible, and the inner products of GSAM,
      WSAM, LookSAM, ... are not invariant at all. The base optimizer must also see ``g̃``
      unscaled. So *each* backward pass is unscaled (juntang-zhuang/GSAM #2; nblt/F-SAM #5:
      "scale → unscale → ascent → scale → unscale → descent").
    - **Two unscale calls per step.** ``GradScaler.unscale_(opt)`` may run once per optimizer
      object between ``update()`` calls; the second call raises "unscale_() has already been
      called on this optimizer since the last update()" (davda54/sam #97; #55 hit the same with
      two ``scaler.step`` calls). The first pass is unscaled as ``optimizer``, the second as a
      lightweight view with the same ``param_groups``; both slots hold found-inf flags, and
      ``update()`` combines all slots, so one overflow in either pass halves the scale once.
      The scale is the same for both passes (``update()`` runs only at the end).
    - **Skip the whole step if either pass overflowed** (GSAM's author, juntang-zhuang/GSAM #2). The
      first pass's flag is added to the second slot's before ``scaler.step``, so its single
      ``.item()`` decides for both. A skipped step restores ``w`` from the saved copy (exact, even
      when ``ε`` was NaN) and leaves the base optimizer untouched.

    Host synchronisation: exactly the one that ``GradScaler.step`` itself does (reading the
    combined found-inf flag to decide whether to call the base step); the returned ``loss`` is
    a device tensor (the detached loss at ``w``) and ``skipped`` comes out of that same read.
    Without ``early_exit`` an overflow in the first pass is only detected after the second pass
    (a wasted forward/backward on rare overflow steps, at a NaN point). ``early_exit=True``
    spends one extra sync after the first pass to skip the second pass and ``first_step`` on
    overflow; use it for variants whose ascent rule keeps state (an EMA of gradients, a stored
    direction), which a NaN gradient would otherwise poison before the skip.

    Gradients are cleared (``p.grad = None``) on return, skipped or not.

    Args:
        optimizer: a ``SharpnessAware`` optimizer (``sampy.torch.SAM``, ...).
        scaler: an enabled or disabled ``torch.amp.GradScaler`` (disabled: a plain SAM step).
        loss_fn: computes and returns the loss at the current parameters (no ``backward``).
        early_exit: sync after the first pass and stop there if it overflowed.
        model: the model, when it has BatchNorm layers: their running statistics are updated
            by the first pass only (``sampy.torch.running_stats_from_first_pass``), and a
            skipped step puts them back as they were before it (an overflowing pass writes
            ``inf``/NaN into nothing).

    Example:
        >>> import torch
        >>> import sampy.torch as st
        >>> from sampy.torch.recipes import amp_sam_step
        >>> _ = torch.manual_seed(0)
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
        >>> opt = st.SAM(model.parameters(), torch.optim.SGD, rho=0.05, lr=0.1)
        >>> scaler = torch.amp.GradScaler("cpu")
        >>> x = torch.randn(8, 3)
        >>> def loss_fn():
        ...     with torch.autocast("cpu", dtype=torch.float16):
        ...         return model(x).float().square().mean()
        >>> loss, skipped = amp_sam_step(opt, scaler, loss_fn, model=model)
        >>> skipped, int(model[1].num_batches_tracked)
        (False, 1)
    """
    with _first_pass_block(model) as block:
        loss, skipped = _amp_sam_step(optimizer, scaler, loss_fn, early_exit)
        if skipped and block is not None:
            block.revert()
    return loss, skipped


def _amp_sam_step(
    optimizer: SharpnessAware,
    scaler: torch.amp.GradScaler,
    loss_fn: Callable[[], Tensor],
    early_exit: bool,
) -> tuple[Tensor, bool]:
    loss = loss_fn()
    scaler.scale(loss).backward()
    if not scaler.is_enabled():
        optimizer.first_step(zero_grad=True)
        loss_fn().backward()
        optimizer.second_step(zero_grad=True)
        return loss.detach(), False

    scaler.unscale_(optimizer)  # slot 1: the first pass
    found_first = scaler._found_inf_per_device(optimizer)
    if early_exit and sum(v.item() for v in found_first.values()):
        _clear_grads(optimizer)
        scaler.update()
        return loss.detach(), True

    optimizer.first_step(zero_grad=True)
    scaler.scale(loss_fn()).backward()
    view = _SecondPass(optimizer)
    scaler.unscale_(view)  # slot 2: the second pass
    found_second = scaler._found_inf_per_device(view)
    for device, flag in found_first.items():
        if device in found_second:
            found_second[device].add_(flag)
        else:  # the second pass left no gradient on that device
            found_second[device] = flag.clone()
    skipped = scaler.step(view) is None  # the one host sync; second_step() only if finite
    if skipped:
        optimizer.restore()  # back to the saved w, exactly; nothing is stepped
    _clear_grads(optimizer)
    scaler.update()
    return loss.detach(), skipped


# -- bfloat16 autocast ---------------------------------------------------------------------------


def bf16_sam_step(
    optimizer: SharpnessAware,
    loss_fn: Callable[[], Tensor],
    *,
    device_type: str = "cpu",
    dtype: torch.dtype = torch.bfloat16,
    model: nn.Module | None = None,
) -> Tensor:
    """One SAM step with both forward passes under ``torch.autocast(device_type, dtype)``.

    bfloat16 has float32's exponent range, so gradients do not underflow or overflow the way
    float16 ones do: no ``GradScaler``, no unscaling, no skipped steps. This is what the F-SAM
    authors recommend over a scaler (nblt/F-SAM #2, #5). Parameters, gradients, ``ε``, the
    saved ``w`` and the base optimizer's state stay in the parameters' dtype (float32); only the
    autocast-eligible operations of the forward pass (matmuls, convolutions) run in bfloat16, and
    the backward pass follows them. ``backward()`` is called outside the autocast region, as the
    PyTorch AMP docs recommend. Use ``device_type="cuda"`` on a GPU.

    Returns the (detached) loss at ``w``; no host synchronisation. With ``model=`` its BatchNorm
    layers' running statistics are updated by the first pass only
    (``sampy.torch.running_stats_from_first_pass``).

    Example:
        >>> import torch
        >>> import sampy.torch as st
        >>> from sampy.torch.recipes import bf16_sam_step
        >>> _ = torch.manual_seed(0)
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
        >>> opt = st.SAM(model.parameters(), torch.optim.SGD, rho=0.05, lr=0.1)
        >>> x = torch.randn(8, 3)
        >>> loss = bf16_sam_step(opt, lambda: model(x).float().square().mean(), model=model)
        >>> int(model[1].num_batches_tracked)
        1
    """

    def closure() -> Tensor:
        with torch.autocast(device_type, dtype=dtype):
            loss = loss_fn()
        loss.backward()
        return loss

    with _first_pass_block(model):
        loss = closure()
        optimizer.first_step(zero_grad=True)
        closure()
        optimizer.second_step(zero_grad=True)
    return loss.detach()


# -- gradient accumulation -----------------------------------------------------------------------


class _Collect:
    """Stands in for the base optimizer during a micro-batch: adds ``p.grad`` (the descent
    direction ``d_j``, at the restored ``w``) into an accumulator instead of stepping."""

    def __init__(self, param_groups: list[dict[str, Any]]) -> None:
        self.param_groups = param_groups
        self.sums: dict[Tensor, Tensor] = {}  # insertion-ordered, keyed by parameter identity

    @torch.no_grad()
    def step(self) -> None:
        for p in _params_with_grad(self):  # type: ignore[arg-type]
            if p in self.sums:
                self.sums[p].add_(p.grad)
            else:
                self.sums[p] = p.grad.clone()


def accumulated_sam_step(
    optimizer: SharpnessAware,
    micro_batches: Sequence[Batch],
    loss_fn: Callable[[Batch], Tensor],
    *,
    model: nn.Module | None = None,
) -> Tensor:
    """Gradient accumulation, mode (A): m-sharpness — one base step from N micro-batches.

    For every micro-batch ``B_j`` a full SAM inner step with its **own** perturbation::

        g_j = ∇L_j(w);  ε_j = ascent(g_j);  g̃_j = ∇L_j(w + ε_j);  d_j = descent(g_j, g̃_j)

    then one base step at ``w`` with ``d = (1/N) Σ_j d_j`` (for SAM ``d_j = g̃_j``). This is
    m-sharpness with ``m`` = micro-batch size (Foret et al., ICLR 2021, Section 4.1): what the
    ``acc_steps`` of Andriushchenko & Flammarion's code (tml-epfl/understanding-sam) and
    per-worker DDP perturbation compute (juntang-zhuang/GSAM #5), the recommended default. It is
    **not** SAM on the union batch (that is :func:`union_batch_sam_step`); with N identical
    micro-batches the two coincide.

    Why a recipe: davda54/sam's ``first_step``/``second_step`` cannot accumulate as they are —
    the gradients are consumed between the two steps (maintainer, davda54/sam #62); the F-SAM
    authors keep a separate accumulator of the second-pass gradients (nblt/F-SAM #3,
    ``grad_accumulate`` branch). Here ``second_step`` runs as usual (restore ``w``, apply the
    descent rule) while the base optimizer is temporarily replaced by a collector that adds the
    direction into an accumulator; the real base optimizer steps once at the end.

    Cost: 2 forward/backward passes per micro-batch, 2N in all (the same as SAM on the whole
    batch), plus one accumulator the size of the parameters. Equal-sized micro-batches are
    assumed (``loss_fn`` returns a mean over its micro-batch); weight the losses yourself
    otherwise. A descent or ascent rule with memory (an EMA) is updated once per micro-batch.

    With ``model=`` each micro-batch's clean pass updates the BatchNorm running statistics and
    its pass at ``w + ε_j`` does not (N updates per step, as plain accumulation makes).

    Returns the mean over the micro-batches of the (detached) loss at ``w``; no host sync.

    Example:
        >>> import torch
        >>> import sampy.torch as st
        >>> from sampy.torch.recipes import accumulated_sam_step
        >>> _ = torch.manual_seed(0)
        >>> model = torch.nn.Linear(3, 1)
        >>> opt = st.SAM(model.parameters(), torch.optim.SGD, rho=0.05, lr=0.1)
        >>> batch = torch.randn(8, 3), torch.randn(8, 1)
        >>> micro_batches = [(batch[0][:4], batch[1][:4]), (batch[0][4:], batch[1][4:])]
        >>> def loss_fn(micro_batch):
        ...     x, y = micro_batch
        ...     return torch.nn.functional.mse_loss(model(x), y)
        >>> loss = accumulated_sam_step(opt, micro_batches, loss_fn)  # 4 passes, 1 base step
        >>> loss.shape
        torch.Size([])
    """
    n = len(micro_batches)
    if n == 0:
        raise ValueError("accumulated_sam_step needs at least one micro-batch")
    base = optimizer.base_optimizer
    collect = _Collect(optimizer.param_groups)
    losses = []
    optimizer.base_optimizer = collect  # type: ignore[assignment]
    try:
        for batch in micro_batches:
            _clear_grads(optimizer)
            with _first_pass_block(model):
                with torch.enable_grad():
                    loss = loss_fn(batch)
                    loss.backward()
                losses.append(loss.detach())
                optimizer.first_step(zero_grad=True)
                with torch.enable_grad():
                    loss_fn(batch).backward()
                optimizer.second_step(zero_grad=True)
    finally:
        optimizer.base_optimizer = base
    with torch.no_grad():
        torch._foreach_mul_(list(collect.sums.values()), 1.0 / n)
    for p, d in collect.sums.items():
        p.grad = d
    base.step()
    _clear_grads(optimizer)
    return torch.stack(losses).mean()


def union_batch_sam_step(
    optimizer: SharpnessAware,
    micro_batches: Sequence[Batch],
    loss_fn: Callable[[Batch], Tensor],
    *,
    model: nn.Module | None = None,
) -> Tensor:
    """Gradient accumulation, mode (B): SAM on the union of the micro-batches (n-SAM).

    ``g = (1/N) Σ_j ∇L_j(w)`` accumulated over all micro-batches, one ``ε`` from it, then
    ``g̃ = (1/N) Σ_j ∇L_j(w + ε)`` accumulated over the **same** micro-batches replayed, one
    base step: exactly SAM on the concatenated batch (for equal-sized micro-batches and a mean
    loss), up to floating-point summation order. Cost: 2N passes, like (A),
    but the micro-batches must be available twice (replay the data loader's output, keep the
    augmentation and dropout randomness in mind), and the clean gradient of every
    micro-batch must be known before any perturbed pass can start.

    With ``model=`` the clean passes update the BatchNorm running statistics (one update per
    micro-batch) and the replayed passes at ``w + ε`` do not.

    Returns the mean (detached) loss at ``w``; no host sync.

    Example:
        >>> import torch
        >>> import sampy.torch as st
        >>> from sampy.torch.recipes import union_batch_sam_step
        >>> _ = torch.manual_seed(0)
        >>> model = torch.nn.Linear(3, 1)
        >>> opt = st.SAM(model.parameters(), torch.optim.SGD, rho=0.05, lr=0.1)
        >>> x, y = torch.randn(8, 3), torch.randn(8, 1)
        >>> micro_batches = [slice(0, 4), slice(4, 8)]  # replayed for the second pass
        >>> loss_fn = lambda rows: torch.nn.functional.mse_loss(model(x[rows]), y[rows])
        >>> loss = union_batch_sam_step(opt, micro_batches, loss_fn)
        >>> bool(loss > 0)
        True
    """
    n = len(micro_batches)
    if n == 0:
        raise ValueError("union_batch_sam_step needs at least one micro-batch")
    _clear_grads(optimizer)
    losses = []
    with torch.enable_grad():
        for batch in micro_batches:
            loss = loss_fn(batch)
            (loss / n).backward()
            losses.append(loss.detach())
    optimizer.first_step(zero_grad=True)
    with torch.enable_grad(), _running_stats_frozen(model):
        for batch in micro_batches:
            (loss_fn(batch) / n).backward()
    optimizer.second_step(zero_grad=True)
    return torch.stack(losses).mean()


# -- the same dropout masks in every pass ------------------------------------------------------


@contextlib.contextmanager
def same_dropout_masks(model: nn.Module) -> Iterator[None]:
    """A block in which every forward of ``model`` draws the random numbers of the first one.

    By default each pass of a SAM step draws new dropout masks (as in davda54/sam and
    pytorch-optimizer), so ``g`` and ``g̃`` are gradients of two different sub-networks. Inside
    this block a forward pre-hook on ``model`` saves torch's global generator states (CPU, and
    every CUDA device once CUDA is initialised) before the first forward and puts them back
    before every later one: the passes at ``w`` and at ``w + ε`` see the same masks (and the
    same draws of any other random layer). Meant for passes over the same batch (SAM's two
    passes, a closure); an example closure that evaluates a subset (ESAM's selection, ImbSAM's
    tail) gets the same random stream on a different shape, not the same masks per example.
    Twins that draw their own noise use their own generators and are not affected.

    Args:
        model: the model whose forward calls share the draws (the module called in the loop).

    Example:
        >>> import torch
        >>> from sampy.torch.recipes import same_dropout_masks
        >>> model = torch.nn.Dropout(0.5)
        >>> x = torch.ones(8)
        >>> with same_dropout_masks(model):
        ...     first, second = model(x), model(x)
        >>> torch.equal(first, second)
        True
    """
    if not isinstance(model, nn.Module):
        raise ValueError(
            f"same_dropout_masks needs the model (a torch.nn.Module), got {type(model).__name__}"
        )
    saved: list[tuple[Tensor, list[Tensor] | None]] = []

    def replay(module: nn.Module, args: Any) -> None:
        if not saved:
            cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
            saved.append((torch.get_rng_state(), cuda))
            return
        cpu, cuda = saved[0]
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)

    handle = model.register_forward_pre_hook(replay)
    try:
        yield
    finally:
        handle.remove()
