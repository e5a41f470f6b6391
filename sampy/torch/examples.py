"""The closure contract of the twins that need examples (m-SAM, ESAM, SSAM-F, ImbSAM, bSAM).

Plain twins take the usual closure (zero the gradients, compute the mean loss, ``backward()``).
The variants that treat examples differently — perturb every micro-batch with its own gradient,
select the examples whose loss rises most, weigh head and tail classes apart — cannot work from
a mean gradient. Their ``step`` takes an **example closure** instead::

    def losses(indices=None):
        # the un-reduced losses of the batch's examples ``indices`` (all of them, in order, when
        # None); no backward(), no zero_grad(): the optimizer reduces and differentiates
        x, y = inputs, targets
        if indices is not None:
            x, y = x[indices], y[indices]
        return loss_fn(model(x), y, reduction="none")

    opt.step(losses)

``indices`` is a 1-D int64 tensor on the batch's device. Each call is one forward pass over
those examples; the optimizer calls ``backward`` on a weighted sum of the returned losses, so
it can ask for several gradients from one forward (ImbSAM) or skip the backward entirely
(ESAM's data selection only reads the losses).
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable

import torch
from torch import Tensor

ExampleLosses = Callable[[Tensor | None], Tensor]
"""``closure(indices) -> per-example losses``, shape ``(len(indices),)`` (``(n,)`` for None)."""


def example_losses(closure: ExampleLosses, indices: Tensor | None = None) -> Tensor:
    """Call ``closure(indices)`` with gradients on and check it returned one loss per example."""
    with torch.enable_grad():
        losses = closure(indices)
    expected = None if indices is None else indices.numel()
    if not isinstance(losses, Tensor) or losses.dim() != 1 or losses.numel() == 0:
        raise ValueError(
            "the example closure must return a non-empty 1-D tensor of per-example losses "
            f"(use reduction='none'), got {_describe(losses)}"
        )
    if expected is not None and losses.numel() != expected:
        raise ValueError(
            f"the example closure returned {losses.numel()} losses for {expected} indices"
        )
    return losses


def _describe(value: object) -> str:
    if isinstance(value, Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return repr(value)


def require_example_closure(name: str, closure: ExampleLosses | None) -> ExampleLosses:
    """Raise a ``ValueError`` naming the contract when ``closure`` is missing or takes no
    ``indices`` (an ordinary training closure passed by mistake), before a step changes state.
    """
    if closure is None or not _takes_indices(closure):
        what = "closure is required" if closure is None else "closure takes no indices"
        raise ValueError(
            f"{what}: {name} needs per-example losses; pass closure(indices=None) returning the "
            "un-reduced losses of those examples, without backward() (see sampy.torch.examples)"
        )
    return closure


# Whether each closure takes indices, remembered while it lives: a step checks its closure,
# and inspect.signature costs more than the optimizer's own arithmetic on a small model.
_TAKES_INDICES: weakref.WeakKeyDictionary[Callable[..., Tensor], bool] = weakref.WeakKeyDictionary()


def _takes_indices(closure: Callable[..., Tensor]) -> bool:
    try:
        return _TAKES_INDICES[closure]
    except (KeyError, TypeError):  # not seen yet, or not weakly referenceable
        pass
    try:
        signature = inspect.signature(closure)
    except (TypeError, ValueError):  # a builtin or C callable: nothing to check
        return True
    try:
        signature.bind(None)
        takes = True
    except TypeError:
        takes = False
    try:
        _TAKES_INDICES[closure] = takes
    except TypeError:
        pass
    return takes
