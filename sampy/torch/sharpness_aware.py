"""The torch twin of ``sampy.optim.sharpness_aware``: an ascent rule, a descent rule, a base.

One step, with the gradients in ``p.grad`` (the same five lines as the reference):

1. ``g = ∇L(w)``                  — ``closure()`` (or your own ``loss.backward()``)
2. ``ε = ascent(w, g)``; ``w ← w + ε``              — ``first_step()``
3. ``g̃ = ∇L(w + ε)``              — ``closure()`` again
4. ``w ← saved w``; ``d = descent(g, g̃)``           — ``second_step()`` ...
5. ``base_optimizer.step()`` with ``d`` in ``p.grad``  — ... at the ORIGINAL ``w``

Rules are small objects over lists of tensors (one list per parameter group, only the
parameters that have a gradient). Every norm and inner product is global over all groups,
computed with ``torch._foreach_*`` kernels and kept on the device: no ``.item()``, no Python
branch on a tensor value, so a step never waits for the device (on the CPU, where there is no
device to wait for, a factor is read as a Python number to fuse a product into an addition:
``sampy.torch.host_reads``). Rules with memory keep it in
``RuleContext.state[p]`` (per-parameter tensors: an EMA, a stored direction) or in
``RuleContext.shared`` (counters); both are saved by ``state_dict()``.

The clean gradient ``g`` is kept between the two passes only when the descent rule reads it
(``needs_clean_grad``); with ``first_step(zero_grad=True)`` it is kept by reference (the
``p.grad`` tensor itself, which the next backward no longer writes into), never copied.

The step is safe: an exception at ``w + ε`` inside ``step`` (or inside ``restore_on_error()``
in a loop of your own) restores ``w`` bit for bit before it propagates; ``first_step`` twice,
``second_step``/``restore`` with nothing perturbed and a closure that computed no gradient
are ``RuntimeError``s that say so; ``skip_nonfinite=True`` drops a step whose gradient at
``w + ε`` is not finite (counted in ``skipped_steps``). ``step(closure)`` follows the
convention of davda54/sam and pytorch-optimizer when gradients are already present (see
``SharpnessAware.step``), and the step hooks fire once per step in either loop.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from itertools import chain
from typing import Any, Protocol

import torch
from torch import Tensor
from torch.optim.optimizer import _global_optimizer_post_hooks, _global_optimizer_pre_hooks

from sampy.optim.hyper import Hyper
from sampy.optim.sam import NORM_BALL
from sampy.torch.base_optimizer import (
    BaseOptimizer,
    build_base_optimizer,
    check_base_optimizer,
    group_repr,
    validate_group,
)
from sampy.torch.checkpoint_layout import (
    CLEAN_GRAD,
    SHARED_KEY,
    load_from_groups,
    non_float_state_dtypes,
    save_in_groups,
    split_base_state,
    with_base_state,
)
from sampy.torch.closures import discard_gradients_on_entry
from sampy.torch.dtensors import local_tensors
from sampy.torch.host_reads import alpha_value
from sampy.torch.perturbation import per_device
from sampy.torch.storage import LARGE_TENSOR_NUMEL, owns_storage
from sampy.torch.twin_optimizer import TwinOptimizer

Groups = list[list[Tensor]]
"""Tensors per parameter group (the parameters with a gradient, in group order)."""

Factor = Tensor | float
"""A global factor of a rule's: a 0-dim tensor on the device, or a Python float where the
rule read it on the host (the CPU, ``sampy.torch.host_reads``)."""

SKIPPED = "skipped_steps"  # shared counter of the steps skip_nonfinite dropped
NO_GRAD_AT_W = (
    "no parameter has a gradient at w (did the closure call backward()? do the optimizer's "
    "parameters still belong to the model, e.g. after model.to_empty()?)"
)
NO_GRAD_AT_W_ADV = (
    "no parameter has a gradient at w + eps (did the closure call backward()?); w has been restored"
)


@dataclass
class RuleContext:
    """What a rule may read and where it keeps its memory.

    Attributes:
        groups: the parameter-group dicts (per-group hyperparameters such as ``rho``).
        params: the parameters with a gradient, per group (aligned with the gradients).
        state: the optimizer's per-parameter state (``state[p]`` is a dict of tensors).
        shared: per-optimizer scalars (step counters), saved by ``state_dict()``.
    """

    groups: list[dict[str, Any]]
    params: Groups
    state: Any
    shared: dict[str, Any]


class AscentRule(Protocol):
    """Chooses the perturbation ``ε`` from the parameters and their clean gradient."""

    def __call__(self, ctx: RuleContext, grads: Groups, inplace: bool) -> Groups:
        """``ε`` per group; ``inplace=True`` allows writing it into ``grads`` (consumed)."""
        ...


class DescentRule(Protocol):
    """Chooses the direction handed to the base optimizer from ``g`` and ``g̃``."""

    needs_clean_grad: bool

    def __call__(self, ctx: RuleContext, g: Groups | None, g_adv: Groups) -> Groups:
        """``d`` per group (may return the ``g_adv`` tensors themselves)."""
        ...


class PerturbedGradient:
    """SAM's descent rule: hand the gradient at the perturbed point to the base, ``d = g̃``."""

    needs_clean_grad = False

    def __call__(self, ctx: RuleContext, g: Groups | None, g_adv: Groups) -> Groups:
        """``d = g̃`` (no copy: ``p.grad`` stays as it is)."""
        return g_adv


class SharpnessAware(TwinOptimizer):
    """Compose an ascent rule, a descent rule and a torch base optimizer into a SAM-type step.

    Args:
        params: parameters or parameter groups.
        base_optimizer: the base optimizer (default ``torch.optim.SGD``): its class, a factory
            ``(param_groups, **kwargs) -> Optimizer`` (``functools.partial(torch.optim.SGD,
            momentum=0.9)``) or an instance built on the same parameters (then no
            ``**base_kwargs``); see ``build_base_optimizer``.
        ascent: the ascent rule (where the second gradient is taken).
        descent: the descent rule (which direction the base optimizer gets).
        group_hyperparameters: the per-group hyperparameters and their defaults (``rho`` and,
            where the variant has them, ``adaptive`` and ``eta``): a group may set its own, a
            scheduler may change them; they are validated with ``HYPERPARAMETERS``.
        skip_nonfinite: when True, a step whose gradient at ``w + ε`` or direction ``d`` is
            not finite (inf/NaN) is skipped: ``w`` is restored, the base optimizer does not
            step, ``skipped_steps`` counts it and a ``RuntimeWarning`` says so. It costs one
            read of a device value per step (a sync), so it is off by default.
        **base_kwargs: passed to ``base_optimizer`` (``lr``, ``momentum``, ...).

    ``param_groups`` are shared with the base optimizer; ``state_dict()`` holds this
    optimizer's state (rule buffers), the shared counters and the base optimizer's state.

    Twins whose step is more than ``ascent + descent + base`` (LookSAM, ESAM, SSAM, ImbSAM,
    m-sharpness, SAMAnatomy, WSAM's decoupled term) override ``first_step``/``second_step``/
    ``step`` and build them from these protected helpers, the template's contract with its
    subclasses (every other underscore name is private to this module):

    - ``_params_to_perturb()``: the parameters with a gradient per group, after the checks of
      a first step (not perturbed already, some gradient present); ``_params_with_grad()``
      without the checks; ``_context(params)`` the rules' ``RuleContext``; ``_ascent(params,
      grads, inplace)`` the ascent rule over the groups that have gradients.
    - ``_save_and_perturb(params, e)``: save ``w`` and move to ``w + ε``; ``_restore(...)``:
      back to ``w`` exactly, returning ``(params, g, g̃)``; ``_perturbed``: None unless the
      parameters are at ``w + ε``; ``_stash_clean_grads`` keeps ``g`` for the descent.
    - ``_set_grads(params, d)`` then ``_base_step()``: the base optimizer's step with ``d``;
      ``_skips(tensors)``: ``skip_nonfinite``'s check (it counts, warns and drops the grads).
    - ``_require(closure)``, ``_has_grads()``, ``_drop_grads()``, ``_zero_grads(params)``,
      ``_discard_entry_grads()``: the closure convention of ``step`` (see there).

    A twin's ``step`` runs its passes at ``w + ε`` inside ``restore_on_error()``, the one place
    that puts ``w`` back when anything raises.
    """

    HYPERPARAMETERS: tuple[Hyper, ...] = NORM_BALL
    grad_evals_per_step: float = 2

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        base_optimizer: BaseOptimizer = torch.optim.SGD,
        *,
        ascent: AscentRule,
        descent: DescentRule,
        group_hyperparameters: dict[str, Any],
        skip_nonfinite: bool = False,
        **base_kwargs: Any,
    ) -> None:
        check_base_optimizer(base_optimizer)
        self.ascent = ascent
        self.descent = descent
        # add_param_group validates every group against these, the constructor's included.
        self._group_keys = tuple(group_hyperparameters)
        super().__init__(params, {**group_hyperparameters, **base_kwargs})
        self.base_optimizer = build_base_optimizer(
            self, base_optimizer, base_kwargs, self._group_keys
        )
        self.shared: dict[str, Any] = {}
        self.skip_nonfinite = bool(skip_nonfinite)
        self._perturbed: tuple[Groups, list[Tensor], list[Tensor]] | None = None
        self._saved_cache: tuple[list[Tensor], list[Tensor]] | None = None
        self._saved_w: dict[Tensor, Tensor] = {}

    # -- helpers shared by every variant ---------------------------------------------------

    def _params_with_grad(self) -> Groups:
        return [[p for p in group["params"] if p.grad is not None] for group in self.param_groups]

    def _context(self, params: Groups) -> RuleContext:
        return RuleContext(self.param_groups, params, self.state, self.shared)

    def _saved_copies(self, flat: list[Tensor]) -> list[Tensor]:
        """The buffers that hold ``w`` of ``flat`` between the passes: allocated once, reused.

        They live in ``self._saved_w`` (keyed by parameter), not in ``self.state``: a checkpoint
        never carries this copy of the weights (it is scratch, dead between steps).
        """
        cached = self._saved_cache
        if cached is not None and len(cached[0]) == len(flat):
            if all(a is b for a, b in zip(cached[0], flat, strict=True)):
                return cached[1]
        local = local_tensors(flat)
        self._sharded = any(a is not b for a, b in zip(local, flat, strict=True))
        saved = []
        for p, shard in zip(flat, local, strict=True):
            buffer = self._saved_w.get(p)
            if buffer is None or buffer.shape != shard.shape or buffer.dtype != shard.dtype:
                buffer = self._saved_w[p] = torch.empty_like(shard)
            saved.append(buffer)
        self._saved_cache = (flat, saved)
        return saved

    _sharded = False  # whether some parameter is a DTensor (FSDP2): see local_tensors

    def _local(self, flat: list[Tensor]) -> list[Tensor]:
        """``flat`` as the tensors the saved ``w`` is copied from and back to (local shards)."""
        return local_tensors(flat) if self._sharded else flat

    def _save_and_perturb(
        self,
        params: Groups,
        e: Groups,
        consumed: bool = False,
        fresh: bool = False,
        factors: list[Factor | None] | None = None,
    ) -> None:
        """Save ``w`` and move to ``w + ε``, so that the restore is exact.

        ``consumed=True`` says the ``ε`` tensors may be overwritten where they are the consumed
        gradients; ``fresh=True`` that those which are not gradients are new tensors of the
        ascent rule's (see ``_fresh``). ``factors`` (one per group) says that ``ε`` is
        ``factors[i] · e`` in group ``i``, not yet multiplied: the product is fused into the
        addition, written into ``e`` where consumed, else (the descent keeps ``g``) into new
        tensors that the swappable parameters point at.
        Where an ``ε`` tensor is such a tensor, large, on the CPU and the whole of its storage
        (see ``_swappable``), ``w + ε`` is written into it and the parameter points at it for
        the pass at ``w + ε``: ``w`` stays untouched in the parameter's own storage, to which
        the restore points it back. That is one read-add-write instead of copying ``w`` out,
        adding ``ε`` and copying ``w`` back, and no copy of those weights is kept. The other
        tensors' ``w`` is copied into reused buffers.
        """
        flat = [p for ps in params for p in ps]
        eps = [x for es in e for x in es]
        scale = None
        if factors is not None:
            scale = [c for c, ps in zip(factors, params, strict=True) for _ in ps]
        new_sums = scale is not None and not consumed
        may_swap = consumed or fresh or new_sums
        swap = _swappable(flat, eps, consumed, fresh, new_sums) if may_swap else []
        kept, xs, kept_scale = flat, eps, scale
        if swap:
            swapped = set(swap)
            copied = [i for i in range(len(flat)) if i not in swapped]
            kept, xs = [flat[i] for i in copied], [eps[i] for i in copied]
            if scale is not None:
                kept_scale = [scale[i] for i in copied]
        copies = self._saved_copies(kept) if kept else []
        if kept:
            torch._foreach_copy_(copies, self._local(kept))
            if kept_scale is None:
                torch._foreach_add_(kept, xs)
            else:
                _add_scaled(kept, xs, kept_scale, consumed)
        saved = copies  # w of every parameter, aligned with flat
        if swap:
            saved = list(flat)
            for i, buffer in zip(copied, copies, strict=True):
                saved[i] = buffer
            ws, xs = [flat[i].data for i in swap], [eps[i] for i in swap]
            if scale is None:
                torch._foreach_add_(xs, ws)  # ε + w: the same float as w + ε (addition commutes)
            elif consumed:
                _write_scaled_sum(ws, xs, [scale[i] for i in swap])
            else:
                xs = _new_scaled_sums(ws, xs, [scale[i] for i in swap])
            for i, w, x in zip(swap, ws, xs, strict=True):
                saved[i] = w
                flat[i].data = x
        self._swapped = (swap, kept, copies)
        self._perturbed = (params, flat, saved)

    # While perturbed: the indices of the parameters pointed at other storage, and the
    # parameters whose w was copied with their copies (see _save_and_perturb).
    _swapped: tuple[list[int], list[Tensor], list[Tensor]] = ([], [], [])

    def _stash_clean_grads(self, params: Groups, zero_grad: bool) -> None:
        """Keep ``g`` for the descent rule: by reference after ``zero_grad``, else a copy."""
        for ps in params:
            for p in ps:
                self.state[p][CLEAN_GRAD] = p.grad if zero_grad else p.grad.clone()

    def _restore(
        self, need_clean: bool | None = None, call: str = "second_step()"
    ) -> tuple[Groups, Groups | None, Groups]:
        """Return to the saved ``w``; ``(params, g, g̃)`` for the parameters with both grads.

        ``g`` is the stashed clean gradient (None unless ``need_clean``, by default the descent
        rule's ``needs_clean_grad``); the stash is emptied either way. ``call`` names the public
        call that asked, for the error raised when nothing is perturbed.
        """
        if self._perturbed is None:
            if call == "restore()":
                raise RuntimeError(
                    "restore() called with nothing to restore: no first_step() since the last "
                    "second_step() or restore(), so the parameters are at w already"
                )
            raise RuntimeError(
                f"{call} called without first_step(): nothing to restore; call first_step() "
                "after the backward at w, then the backward at w + eps, then " + call
            )
        params, flat, saved = self._perturbed
        swap, kept, copies = self._swapped
        for i in swap:
            flat[i].data = saved[i]
        if kept:
            torch._foreach_copy_(self._local(kept), copies)
        self._perturbed = None
        self.__dict__.pop("_swapped", None)  # the empty default: a copy or pickle carries none
        if need_clean is None:
            need_clean = self.descent.needs_clean_grad
        if not need_clean:
            # A parameter may lose its gradient in the second pass (a data-dependent graph).
            params = [[p for p in ps if p.grad is not None] for ps in params]
            return params, None, [[p.grad for p in ps] for ps in params]
        pairs = [[(p, self.state[p].pop(CLEAN_GRAD, None)) for p in ps] for ps in params]
        pairs = [[(p, g) for p, g in ps if p.grad is not None] for ps in pairs]
        params = [[p for p, _ in ps] for ps in pairs]
        g_adv = [[p.grad for p in ps] for ps in params]
        return params, [[g for _, g in ps] for ps in pairs], g_adv

    @torch.no_grad()
    def restore(self) -> None:
        """Undo ``first_step()`` without a base step: back to the saved ``w``, bit for bit.

        For a step that must be abandoned after the perturbation — a mixed-precision pass that
        overflowed (``sampy.torch.recipes.amp_sam_step``), a NaN loss at ``w + ε``. The stashed
        clean gradient is dropped, the base optimizer and the rule state are untouched, and the
        next ``first_step()`` starts afresh. Raises ``RuntimeError`` when nothing is perturbed.
        """
        self._restore(need_clean=False, call="restore()")
        for group in self.param_groups:
            for p in group["params"]:
                if p in self.state:
                    self.state[p].pop(CLEAN_GRAD, None)

    @staticmethod
    def _set_grads(params: Groups, d: Groups) -> None:
        """Hand ``d`` to the base optimizer through ``p.grad`` (by reference, no copy)."""
        for ps, ds in zip(params, d, strict=True):
            for p, x in zip(ps, ds, strict=True):
                if x is not p.grad:
                    p.grad = x

    def _base_step(self) -> None:
        """The base optimizer's step: the one place where this optimizer's step happens.

        Marks the step as taken for ``torch.optim.lr_scheduler``, which otherwise warns that
        ``scheduler.step()`` came before ``optimizer.step()`` in a training loop that calls
        ``first_step``/``second_step`` (it only sees calls of ``step``).
        """
        self.base_optimizer.step()
        self._opt_called = True

    def _zero_grads(self, params: Groups) -> None:
        # What zero_grad() does for these tensors, without its profiler and group loops.
        for ps in params:
            for p in ps:
                p.grad = None

    # -- the step ----------------------------------------------------------------------------

    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """A whole step; the closure computes the loss and calls ``backward()``.

        When no parameter has a gradient on entry (sampy's loop: ``opt.step(closure)`` alone),
        the closure runs at ``w`` and at ``w + ε``, and ``step`` returns the loss at ``w``. When
        gradients are present, they are taken as ``∇L(w)`` (the davda54/sam and
        pytorch-optimizer loop: ``loss.backward(); opt.step(closure)``) and the closure runs
        once, at ``w + ε``; ``step`` returns None. Either way two gradients per step, and
        ``step`` ends with every gradient set to None, so the two loops cannot mix.
        ``zero_grad(set_to_none=False)`` before ``step`` leaves zero tensors, which read as a
        zero gradient at ``w``: use torch's default ``set_to_none=True``. An exception at
        ``w + ε`` restores ``w`` before it propagates.
        """
        closure = self._require(closure)
        loss = None if self._has_grads() else closure()
        self.first_step(zero_grad=True)
        with self.restore_on_error():
            closure()
            self.second_step()
        self._drop_grads()
        return loss

    @torch.no_grad()
    def first_step(self, zero_grad: bool = False) -> None:
        """Save ``w`` and move to ``w + ε`` (needs the clean gradient in ``p.grad``).

        With ``zero_grad=True`` the clean gradients are not needed afterwards (unless the descent
        rule reads them, then they are kept by reference), so ε may be computed in their storage.
        Raises ``RuntimeError`` when the parameters are already perturbed (a second
        ``first_step()`` would save ``w + ε`` as ``w``) or when no parameter has a gradient.
        """
        params = self._params_to_perturb()
        grads = [[p.grad for p in ps] for ps in params]
        keep = self.descent.needs_clean_grad
        inplace = zero_grad and not keep
        # ε = c u (SAM's ball): w + c u is then written in one pass, ε never formed.
        factors = self._ascent_factors(params, grads, consumed=inplace)
        e = grads if factors is not None else self._ascent(params, grads, inplace=inplace)
        if keep:
            self._stash_clean_grads(params, zero_grad)
        self._save_and_perturb(
            params, e, consumed=inplace, fresh=_fresh(self.ascent), factors=factors
        )
        if zero_grad:
            self._zero_grads(params)

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False) -> None:
        """Return to the saved ``w`` exactly and take the base step with ``d = descent(g, g̃)``.

        With ``skip_nonfinite``, a non-finite ``g̃`` or ``d`` skips the base step (``w`` stays
        restored; see ``skipped_steps``). Outside ``step()``, it fires the step hooks
        (``register_step_pre_hook``/``register_step_post_hook``) once, as ``step()`` does. A
        global hook (``torch.optim.optimizer.register_optimizer_step_pre_hook``) fires twice
        per step: for this optimizer and for its base optimizer, which steps too.
        """
        params, g, g_adv = self._restore()
        if not any(params):
            raise RuntimeError(NO_GRAD_AT_W_ADV)
        skip = self.skip_nonfinite
        if skip and self._skips(g_adv):
            return
        d = self.descent(self._context(params), g, g_adv)
        if skip and self._skips(d):
            return
        self._set_grads(params, d)
        self._base_step()
        if zero_grad:
            self.zero_grad()

    def restore_on_error(self) -> AbstractContextManager[None]:
        """Between ``first_step()`` and ``second_step()``: on any exception, restore ``w``.

        ``step()`` runs its pass at ``w + ε`` inside it; in a loop of your own::

            opt.first_step(zero_grad=True)
            with opt.restore_on_error():
                loss_fn(model(x), y).backward()     # an OOM here leaves the weights at w
            opt.second_step(zero_grad=True)

        The exception propagates; the rule state and the base optimizer are untouched.
        """
        return _RestoreOnError(self)

    @property
    def skipped_steps(self) -> int:
        """How many steps ``skip_nonfinite`` dropped (saved by ``state_dict()``)."""
        return int(self.shared.get(SKIPPED, 0))

    def _ascent(self, params: Groups, grads: Groups, inplace: bool) -> Groups:
        """The ascent rule's ``ε`` per group; a group in which no parameter has a gradient (a
        frozen embedding, an unused head) gets ``[]`` and is never shown to the rule."""
        if all(params):
            return self.ascent(self._context(params), grads, inplace=inplace)
        active = [i for i, ps in enumerate(params) if ps]
        e = self.ascent(self._active_context(params, active), [grads[i] for i in active], inplace)
        out: Groups = [[] for _ in params]
        for i, es in zip(active, e, strict=True):
            out[i] = es
        return out

    def _ascent_factors(
        self, params: Groups, grads: Groups, consumed: bool
    ) -> list[Factor | None] | None:
        """Per group, ``c`` with ``ε = c u`` (``u`` the gradients, rewritten in place only
        where ``consumed``), where the ascent rule gives its ``ε`` that way (its ``factors``,
        e.g. ``sam.NormBallAscent`` for p = 2); else None. A group without gradients gets
        None."""
        if not _gives_factors(type(self.ascent)):
            return None
        if all(params):
            return self.ascent.factors(self._context(params), grads, consumed)
        active = [i for i, ps in enumerate(params) if ps]
        found = self.ascent.factors(
            self._active_context(params, active), [grads[i] for i in active], consumed
        )
        if found is None:
            return None
        out: list[Factor | None] = [None] * len(params)
        for i, c in zip(active, found, strict=True):
            out[i] = c
        return out

    def _active_context(self, params: Groups, active: list[int]) -> RuleContext:
        return RuleContext(
            [self.param_groups[i] for i in active],
            [params[i] for i in active],
            self.state,
            self.shared,
        )

    def _params_to_perturb(self) -> Groups:
        """The parameters with a gradient at ``w``, once the step may perturb them.

        Raises ``RuntimeError`` when the parameters are already perturbed (a second
        ``first_step()`` would save ``w + ε`` as ``w``) or when no parameter has a gradient.
        """
        if self._perturbed is not None:
            raise RuntimeError(
                "first_step() called twice: w is already saved and the parameters are at w + eps; "
                "call second_step() to finish this step, or restore() to abandon it"
            )
        params = self._params_with_grad()
        if not any(params):
            raise RuntimeError(NO_GRAD_AT_W)
        return params

    def _skips(self, tensors: Groups) -> bool:
        """With ``skip_nonfinite``: whether ``tensors`` hold an inf/NaN (then count and warn)."""
        if not self.skip_nonfinite:
            return False
        flat = [t for ts in tensors for t in ts]
        if not flat or bool(torch.stack([torch.isfinite(t).all() for t in flat]).all()):
            return False
        self.shared[SKIPPED] = self.skipped_steps + 1
        warnings.warn(
            f"{type(self).__name__}: a non-finite gradient at w + eps (or direction); the step "
            f"was skipped and w restored ({self.skipped_steps} skipped so far)",
            RuntimeWarning,
            stacklevel=3,
        )
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None
        return True

    def _require(self, closure: Callable[[], Tensor] | None) -> Callable[[], Tensor]:
        if closure is None:
            raise ValueError(
                f"closure is required: {type(self).__name__} needs {self.grad_evals_per_step:g} "
                "gradients per step (on average); pass a closure that computes the loss and calls "
                "backward(), or call first_step()/second_step() yourself"
            )
        return functools.partial(_with_grad, closure)

    def _has_grads(self) -> bool:
        """Whether some parameter has a gradient (the caller computed ``∇L(w)`` already)."""
        return any(p.grad is not None for group in self.param_groups for p in group["params"])

    def _drop_grads(self) -> None:
        """Every gradient to None: the next step starts clean, whatever loop the caller runs."""
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    _warned_entry_grads = False

    def _discard_entry_grads(self) -> None:
        """For twins whose closure returns per-example losses (they compute ``g`` themselves)."""
        discard_gradients_on_entry(self, [p for g in self.param_groups for p in g["params"]])

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "step" in cls.__dict__:
            cls.step = _marks_whole_step(cls.step)  # type: ignore[method-assign]
        if "second_step" in cls.__dict__:
            cls.second_step = _fires_step_hooks(cls.second_step)  # type: ignore[method-assign]

    _in_step = False  # inside step(): torch fires the step hooks around it
    _in_second_step = False  # inside a (possibly overridden, nested) second_step()

    # -- checkpoints -------------------------------------------------------------------------

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group to this optimizer and its base at once (one shared list).

        Its hyperparameters (``rho``, ...) are checked as the constructor's are, before it is
        added: a bad value raises the constructor's ``ValueError`` and adds nothing.
        """
        validate_group(self, self._group_keys, param_group)
        super().add_param_group(param_group)

    def __repr__(self) -> str:
        return group_repr(self, self.base_optimizer)

    def _initialise_state(self) -> None:
        """The base optimizer's state (momentum, moments), by its own step at lr 0.

        For ``torch.distributed.checkpoint`` (see ``TwinOptimizer``): its gradients are zero
        and its learning rates 0, so the weights do not move; a base that has a state already
        is left alone (a second step would decay its momentum). The rule state is untouched.
        """
        if not self.base_optimizer.state:
            self.base_optimizer.step()

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        if self._perturbed is None:  # the saved w is scratch between steps: re-made when needed
            state["_saved_cache"], state["_saved_w"] = None, {}
        return state

    def state_dict(self) -> dict[str, Any]:
        """The base optimizer's state (momentum, moments), the rule buffers and the counters.

        torch's layout, ``{"state": ..., "param_groups": ...}`` and nothing else: each
        parameter's entry is the base's (``momentum_buffer``, ``exp_avg``, ...) with the rule
        buffers under ``"rule_state"``; the shared counters ride in the first group under
        ``"shared"``. So ``torch.distributed.checkpoint.state_dict.get_optimizer_state_dict`` /
        ``set_optimizer_state_dict`` (which keep only those two keys) round-trip all of it.
        Never a copy of the weights. Refused between ``first_step()`` and ``second_step()``:
        the parameters are then at ``w + ε`` (a model checkpoint would hold them) and ``w``
        lives only in this optimizer's scratch buffers, which are not saved.
        """
        if self._perturbed is not None:
            raise RuntimeError(
                f"{type(self).__name__}.state_dict() called between first_step() and "
                "second_step(): the parameters are at w + eps and w is not saved; call "
                "second_step() (or restore()) first, then save the model and the optimizer"
            )
        saved = with_base_state(super().state_dict(), self.base_optimizer.state_dict())
        save_in_groups(saved, SHARED_KEY, dict(self.shared))
        return saved

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load the base optimizer's state, the rule buffers and the counters.

        Takes what ``state_dict()`` wrote (also through ``torch.distributed.checkpoint``, which
        keys the state by parameter name) and the older layout with a ``"base_optimizer"``
        entry and a saved ``old_p`` (dropped). Re-binds the shared ``param_groups`` (davda54/sam
        PR #39).
        """
        state_dict, shared = load_from_groups(state_dict, SHARED_KEY)
        own, base = split_base_state(self, state_dict)
        kept_dtypes = non_float_state_dtypes(own)
        super().load_state_dict(own)
        # torch casts every loaded state tensor to its (float) parameter's dtype: masks and
        # counters must come back as they were saved.
        for p, key, dtype in kept_dtypes(self.param_groups):
            self.state[p][key] = self.state[p][key].to(dtype)
        self._saved_cache = None
        self._saved_w = {}
        self._perturbed = None
        self.shared = dict(shared or {})
        self.base_optimizer.load_state_dict(base)
        self.base_optimizer.param_groups = self.param_groups


SWAP_MIN_NUMEL = LARGE_TENSOR_NUMEL
"""The smallest tensor (elements) whose ``w`` is swapped rather than copied: below it, pointing
a parameter at other storage and back (two Python-level calls) costs more than the copies."""


def _by_factor(factors: list[Factor]) -> list[tuple[Factor, list[int]]]:
    """The indices of the tensors per distinct factor (one per parameter group), in order:
    a number by its value, a tensor by its identity."""
    first = factors[0]
    if all(c is first for c in factors):  # one group: the usual case, without a dict
        return [(first, list(range(len(factors))))]
    buckets: dict[object, tuple[Factor, list[int]]] = {}
    for i, c in enumerate(factors):
        buckets.setdefault(c if isinstance(c, float) else id(c), (c, []))[1].append(i)
    return list(buckets.values())


def _add_scaled(ws: list[Tensor], xs: list[Tensor], factors: list[Factor], consumed: bool) -> None:
    """``w ← w + c x`` for every tensor, ``c`` its factor; ``x`` is overwritten only where
    ``consumed``."""
    for c, index in _by_factor(factors):
        w, x = [ws[i] for i in index], [xs[i] for i in index]
        value = alpha_value(c, x)
        if value is not None:
            torch._foreach_add_(w, x, alpha=value)  # one pass: the product is fused
        elif consumed:  # a device factor: no host read (it would wait for the device)
            torch._foreach_mul_(x, per_device(c, x))
            torch._foreach_add_(w, x)
        else:
            torch._foreach_add_(w, torch._foreach_mul(x, per_device(c, x)))


def _write_scaled_sum(ws: list[Tensor], xs: list[Tensor], factors: list[Factor]) -> None:
    """``x ← w + c x`` for every tensor, in one pass each (the swap's CPU tensors only)."""
    for c, index in _by_factor(factors):
        value = alpha_value(c, [xs[i] for i in index])
        for i in index:
            if value is not None:
                torch.add(ws[i], xs[i], alpha=value, out=xs[i])
            else:
                xs[i].mul_(c.to(xs[i].device)).add_(ws[i])


@functools.cache
def _gives_factors(rule: type) -> bool:
    """Whether the ascent rule's class gives ``ε`` as factors (``factors``) defined with its
    ``ε`` itself (``__call__``): a subclass that changes ``ε`` but inherits ``factors``, or a
    wrapper that forwards attributes to its inner rule (gc's centralized ascent; hence a
    lookup on the class), keeps its own ``ε``."""
    if getattr(rule, "factors", None) is None:
        return False

    def owner(name: str) -> type:
        return next(k for k in rule.__mro__ if name in k.__dict__)

    return owner("factors") is owner("__call__")


def _new_scaled_sums(ws: list[Tensor], xs: list[Tensor], factors: list[Factor]) -> list[Tensor]:
    """``w + c x`` for every tensor as a new tensor, in one pass each (the swap's CPU tensors
    when the descent keeps ``x``, the clean gradient)."""
    out = list(xs)
    for c, index in _by_factor(factors):
        value = alpha_value(c, [xs[i] for i in index])
        for i in index:
            if value is not None:
                out[i] = torch.add(ws[i], xs[i], alpha=value)
            else:  # ε first, then + w: the floats of the unfused path
                out[i] = torch.mul(xs[i], c.to(xs[i].device)).add_(ws[i])
    return out


def _fresh(ascent: AscentRule) -> bool:
    """Whether the ascent rule's ``ε`` tensors that are not gradients are new ones, which the
    template may overwrite.

    A rule says so with ``fresh_perturbation = True``: every ``ε`` tensor it returns is either
    a gradient it was given (written in place only with ``inplace=True``) or a tensor it made
    in this call (never a state buffer, a view of another tensor or a tensor it keeps).
    """
    return getattr(ascent, "fresh_perturbation", False) is True


def _swappable(
    params: list[Tensor], eps: list[Tensor], consumed: bool, fresh: bool, new: bool = False
) -> list[int]:
    """The indices of the parameters ``_save_and_perturb`` may point at their ``ε`` tensors.

    Only where ``ε`` is the parameter's gradient, ``consumed``, or, with ``fresh``, a new tensor
    of the ascent rule's (no rule state, no user tensor), or, with ``new``, ``w + ε`` goes
    into a new tensor of the template's (``ε`` only read), both are plain CPU tensors that own
    their whole storage, and the tensor is large enough for the swap to pay
    (``SWAP_MIN_NUMEL``): a parameter that is a view into a flat buffer (FSDP1's flat
    parameters) or a gradient that is one (DDP's ``gradient_as_bucket_view``) would be read
    or written through the buffer behind our back, a DTensor has its own storage rules, and
    on an accelerator the copies are cheap next to the passes while compiled CUDA graphs
    expect the parameters' addresses to stay put.
    """
    if len(eps) != len(params):
        return []
    return [
        i
        for i, (p, x) in enumerate(zip(params, eps, strict=True))
        if x.numel() >= SWAP_MIN_NUMEL
        and (new or (consumed if x is p.grad else fresh))
        and type(x) is Tensor
        and x.is_cpu
        and p.is_cpu
        and (new or owns_storage(x))
        and owns_storage(p)
    ]


class _RestoreOnError:
    """``SharpnessAware.restore_on_error``'s context (a class: a step enters it every time,
    and a generator-based context manager costs several times more)."""

    __slots__ = ("opt",)

    def __init__(self, opt: SharpnessAware) -> None:
        self.opt = opt

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> bool:
        if kind is not None and self.opt._perturbed is not None:
            self.opt.restore()
        return False  # the exception propagates


def _with_grad(closure: Callable[..., Tensor], *args: Any, **kwargs: Any) -> Tensor:
    """``closure(...)`` with gradients on, even when ``step`` is called under ``no_grad``."""
    with torch.enable_grad():
        return closure(*args, **kwargs)


def _marks_whole_step(step: Callable[..., Any]) -> Callable[..., Any]:
    """Mark the optimizer as inside ``step`` while ``step`` runs (nested calls included)."""

    @functools.wraps(step)
    def whole_step(self: SharpnessAware, *args: Any, **kwargs: Any) -> Any:
        outer = self._in_step
        self._in_step = True
        try:
            return step(self, *args, **kwargs)
        finally:
            self._in_step = outer

    return whole_step


def _fires_step_hooks(second_step: Callable[..., Any]) -> Callable[..., Any]:
    """Fire the step hooks around ``second_step`` when it ends a step by hand (not in ``step``).

    torch fires them around ``step`` only, so in the two-call loop they never fired; the
    outermost ``second_step`` of a step fires them once, the order torch uses (global pre-hooks,
    this optimizer's pre-hooks, the step, this optimizer's post-hooks, global post-hooks).
    """

    @functools.wraps(second_step)
    def hooked(self: SharpnessAware, *args: Any, **kwargs: Any) -> Any:
        if self._in_step or self._in_second_step:
            return second_step(self, *args, **kwargs)
        self._in_second_step = True
        try:
            pre = chain(
                _global_optimizer_pre_hooks.values(), self._optimizer_step_pre_hooks.values()
            )
            for hook in pre:
                result = hook(self, args, kwargs)
                if result is not None:
                    args, kwargs = result
            out = second_step(self, *args, **kwargs)
            post = chain(
                self._optimizer_step_post_hooks.values(), _global_optimizer_post_hooks.values()
            )
            for hook in post:
                hook(self, args, kwargs)
            return out
        finally:
            self._in_second_step = False

    return hooked


SharpnessAware.step = _marks_whole_step(SharpnessAware.step)  # type: ignore[method-assign]
SharpnessAware.second_step = _fires_step_hooks(  # type: ignore[method-assign]
    SharpnessAware.second_step
)
