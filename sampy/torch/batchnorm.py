"""Keep BatchNorm running statistics out of the extra forward passes of a SAM-type step.

A SAM step runs the model more than once (at ``w`` and at ``w + ε``; ESAM, ImbSAM and
m-sharpness run more passes). The running mean and variance should see only the first, clean
pass: the official JAX code keeps the first pass's BatchNorm state (google-research/sam @
dae9904c, ``sam_jax/training_utils/flax_training.py``). The later passes still normalise with
their batch statistics (the layer stays in training mode); they only stop writing.

Two ways to get there:

- :func:`running_stats_from_first_pass`, a context manager around the whole step (every twin,
  every call shape, no counting of closure calls): inside the block, the first forward of each
  BatchNorm layer updates its statistics and every later forward leaves them alone.
- :func:`disable_running_stats` / :func:`enable_running_stats` by hand around the later passes
  (or the block :func:`running_stats_frozen`).

A frozen layer writes nothing: it runs with ``track_running_stats = False``, so torch passes no
running buffers to ``F.batch_norm`` and does not count the batch. That is what makes the freeze
NaN-safe: freezing with ``momentum = 0`` (davda54/sam's ``bypass_bn``) still computes
``0 · batch_stat`` into the buffers, and an overflowing pass (``inf`` activations, the fp16
case) turns that into ``0 · inf = NaN`` for good. The buffers are also copied when the layer is
frozen and copied back when it is released, so a BatchNorm subclass that writes anyway is undone
too. ``num_batches_tracked`` counts one batch per step, also for davda54's ordering
(``enable_running_stats`` before the first pass, ``disable_running_stats`` before the second and
never again): the frozen pass counts nothing, so the counter is exact even while a layer stays
frozen after the loop (it then stays frozen: call ``enable_running_stats`` before evaluating in
training mode).

With ``torch.compile(model)`` the switch of ``track_running_stats`` costs one recompilation
(a guard on the attribute); the second graph is cached.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

_FROZEN = "_sampy_frozen_running_stats"  # (track_running_stats, buffer copies) while frozen
_BLOCK = "_sampy_first_pass_block"  # the outermost running_stats_from_first_pass over a layer
_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")

__all__ = [
    "RunningStatsFromFirstPass",
    "disable_running_stats",
    "enable_running_stats",
    "running_stats_from_first_pass",
    "running_stats_frozen",
]


def _tracking_layers(model: nn.Module) -> Iterator[_BatchNorm]:
    """The BatchNorm layers of ``model`` that keep running statistics."""
    for module in model.modules():
        if isinstance(module, _BatchNorm) and module.running_mean is not None:
            yield module


def _copy_buffers(module: _BatchNorm) -> dict[str, Tensor]:
    with torch.no_grad():
        return {
            name: getattr(module, name).clone()
            for name in _BUFFERS
            if getattr(module, name, None) is not None
        }


def _put_back(module: _BatchNorm, buffers: dict[str, Tensor]) -> None:
    with torch.no_grad():
        for name, value in buffers.items():
            getattr(module, name).copy_(value)


def _freeze(module: _BatchNorm) -> None:
    setattr(module, _FROZEN, (module.track_running_stats, _copy_buffers(module)))
    module.track_running_stats = False


def _release(module: _BatchNorm) -> None:
    track, buffers = getattr(module, _FROZEN)
    _put_back(module, buffers)
    module.track_running_stats = track
    delattr(module, _FROZEN)


def disable_running_stats(model: nn.Module) -> None:
    """Freeze the running statistics of every BatchNorm layer (call before a later pass).

    The layers keep normalising with batch statistics but write nothing, not even under an
    ``inf`` or NaN forward, and count no batch. Idempotent: a layer already frozen stays frozen
    with its first copy.

    Example:
        >>> import torch
        >>> from sampy.torch import disable_running_stats, enable_running_stats
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
        >>> _ = model(torch.randn(8, 3))  # the clean pass: statistics updated
        >>> disable_running_stats(model)
        >>> _ = model(torch.full((8, 3), float("inf")))  # an overflowing later pass
        >>> enable_running_stats(model)
        >>> bool(model[1].running_var.isfinite().all()), int(model[1].num_batches_tracked)
        (True, 1)
    """
    for module in _tracking_layers(model):
        if not hasattr(module, _FROZEN):
            _freeze(module)


def enable_running_stats(model: nn.Module) -> None:
    """Undo :func:`disable_running_stats`: statistics and counter exactly as they were frozen.

    Layers that are not frozen are left alone (davda54's ordering calls this before every first
    pass).

    Example:
        >>> import torch
        >>> from sampy.torch import disable_running_stats, enable_running_stats
        >>> bn = torch.nn.BatchNorm1d(2, momentum=None)
        >>> disable_running_stats(bn)
        >>> bn.track_running_stats  # frozen: torch passes no running buffers
        False
        >>> enable_running_stats(bn)
        >>> bn.track_running_stats, bn.momentum
        (True, None)
    """
    for module in model.modules():
        if isinstance(module, _BatchNorm) and hasattr(module, _FROZEN):
            _release(module)


@contextmanager
def running_stats_frozen(model: nn.Module) -> Iterator[None]:
    """A block in which no BatchNorm layer of ``model`` updates its running statistics.

    :func:`disable_running_stats` on entry and the release of the same layers on exit, also
    when the block raises; layers frozen before the block stay frozen after it. For passes that
    must never count, e.g. the replayed micro-batches of
    ``sampy.torch.recipes.union_batch_sam_step``.

    Example:
        >>> import torch
        >>> from sampy.torch.batchnorm import running_stats_frozen
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
        >>> with running_stats_frozen(model):
        ...     _ = model(torch.randn(8, 3))
        >>> int(model[1].num_batches_tracked), model[1].track_running_stats
        (0, True)
    """
    layers = [module for module in _tracking_layers(model) if not hasattr(module, _FROZEN)]
    for module in layers:
        _freeze(module)
    try:
        yield
    finally:
        for module in layers:
            _release(module)


class RunningStatsFromFirstPass:
    """The context manager returned by :func:`running_stats_from_first_pass`.

    Attributes:
        model: the model whose BatchNorm layers it governs.
    """

    def __init__(self, model: nn.Module) -> None:
        if not isinstance(model, nn.Module):
            raise ValueError(
                f"running_stats_from_first_pass needs the model (a torch.nn.Module), got "
                f"{type(model).__name__}"
            )
        self.model = model
        self._layers: list[_BatchNorm] = []
        self._on_entry: dict[int, dict[str, Tensor]] = {}
        self._handles: list[Any] = []
        self._outer: list[RunningStatsFromFirstPass] = []
        self._revert = False

    def __enter__(self) -> RunningStatsFromFirstPass:
        if self._handles or self._layers:
            raise RuntimeError(
                "this running_stats_from_first_pass block is already active; call "
                "running_stats_from_first_pass(model) again for a new block"
            )
        self._revert = False
        for module in _tracking_layers(self.model):
            owner = getattr(module, _BLOCK, None)
            if owner is not None:
                # Nested: the outer block governs the layer; revert() is passed on to it.
                if owner not in self._outer:
                    self._outer.append(owner)
                continue
            if hasattr(module, _FROZEN):
                continue  # frozen by hand around this block: it stays frozen
            setattr(module, _BLOCK, self)
            self._layers.append(module)
            self._on_entry[id(module)] = _copy_buffers(module)
            self._handles.append(module.register_forward_hook(_freeze_after_first_forward))
        return self

    def revert(self) -> None:
        """Put every layer's statistics back as they were on entering the block, on exit.

        For a step that is abandoned (an fp16 overflow, a non-finite loss): the first pass's
        update goes too, so the step leaves no trace. In a nested block the outermost block
        over each layer does it.
        """
        self._revert = True
        for outer in self._outer:
            outer.revert()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for handle in self._handles:
            handle.remove()
        for module in self._layers:
            if hasattr(module, _FROZEN):
                _release(module)
            if self._revert:
                _put_back(module, self._on_entry[id(module)])
            delattr(module, _BLOCK)
        self._handles, self._layers, self._on_entry, self._outer = [], [], {}, []


def _freeze_after_first_forward(module: nn.Module, args: Any, output: Any) -> None:
    if not hasattr(module, _FROZEN):
        _freeze(module)  # type: ignore[arg-type]


def running_stats_from_first_pass(model: nn.Module) -> RunningStatsFromFirstPass:
    """A block in which each BatchNorm layer's running statistics see only its first forward.

    Wrap one whole step, the clean pass included. Inside the block the first forward of every
    BatchNorm layer of ``model`` updates its running statistics as usual; every later forward
    (at ``w + ε``, ESAM's selection pass, LookSAM's pattern, m-sharpness' micro-batches) normalises
    with its batch statistics and writes nothing, NaN-safe (see the module docstring). No closure
    calls are counted, so it works for every twin and every call shape. On exit, normal or by an
    exception, the layers are released with their statistics, counters and settings as the first
    pass left them (or as they were on entry after :meth:`RunningStatsFromFirstPass.revert`).

    A layer called twice within one forward pass (a shared module) updates only on its first
    call. Nested blocks over the same model act as the outermost one; a layer frozen with
    :func:`disable_running_stats` on entry stays frozen. With davda54's
    ``loss.backward(); opt.step(closure)`` put the first ``loss`` inside the block too.
    ``MSharpnessSAM.step(closure, batch_size=n)`` runs its first micro-batch first, so the
    statistics are that micro-batch's (without ``batch_size`` its first pass is the whole batch
    at ``w``).

    Args:
        model: the model (any ``torch.nn.Module``; its BatchNorm layers are found by type).

    Returns:
        The context manager (its ``revert()`` abandons the block's statistics update).

    Example:
        >>> import torch
        >>> import sampy.torch as st
        >>> _ = torch.manual_seed(0)
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
        >>> opt = st.SAM(model.parameters(), torch.optim.SGD, rho=0.05, lr=0.1)
        >>> x = torch.randn(8, 3)
        >>> def closure():
        ...     loss = model(x).square().mean()
        ...     loss.backward()
        ...     return loss
        >>> with st.running_stats_from_first_pass(model):
        ...     _ = opt.step(closure)  # two forward passes, one statistics update
        >>> int(model[1].num_batches_tracked)
        1
    """
    return RunningStatsFromFirstPass(model)
