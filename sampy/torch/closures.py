"""Closures of the torch twins: what they are, how they are called, how ``w`` is kept safe.

A **plain closure** (``Closure``) computes the mean loss at the current weights, calls
``backward()`` and returns the loss, as ``torch.optim.Optimizer.step(closure)`` expects. An
**example closure** (``sampy.torch.examples.ExampleLosses``) returns the per-example losses and
leaves ``backward()`` to the optimizer (ESAM, SSAM, ImbSAM, BSAM, MSharpnessSAM).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

from sampy.torch.examples import example_losses

Params = Iterable[Tensor] | Iterable[dict[str, Any]]
"""Parameters or parameter groups, as every ``torch.optim.Optimizer`` takes them."""

Closure = Callable[[], Tensor]
"""A plain closure: computes the mean loss, calls ``backward()``, returns the loss."""


def with_grad(group: dict[str, Any]) -> list[Tensor]:
    """The parameters of ``group`` that have a gradient (the others are skipped)."""
    return [p for p in group["params"] if p.grad is not None]


def run_closure(closure: Closure | None) -> Tensor | None:
    """Call ``closure`` with gradients enabled (``step`` itself runs under ``no_grad``)."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


def evaluate(closure: Callable[..., Tensor]) -> tuple[Tensor, int | None]:
    """Call a plain or an example closure once, with no argument; gradients land in ``p.grad``.

    A plain closure returns the mean loss (0-dim) and has called ``backward()`` itself; an
    example closure returns the per-example losses (1-D, ``reduction="none"``) and this calls
    ``backward()`` on their mean. Returns the mean loss and the number of examples (None for a
    plain closure). Anything else is a ``ValueError``.
    """
    with torch.enable_grad():
        out = closure()
    if isinstance(out, Tensor) and out.dim() == 0:
        return out, None
    losses = example_losses(lambda indices: out)  # checks: a non-empty 1-D tensor
    mean = losses.mean()
    if mean.requires_grad:
        mean.backward()
    return mean.detach(), losses.numel()


@contextmanager
def restored_on_error(params: list[Tensor], saved: list[Tensor]) -> Iterator[None]:
    """While the ``params`` are perturbed: on any exception, copy ``saved`` (``w``) back.

    The guard of the stand-alone twins (BSAM); those built on ``SharpnessAware`` use its
    ``restore_on_error()``. The exception propagates.
    """
    try:
        yield
    except BaseException:
        with torch.no_grad():
            torch._foreach_copy_(params, saved)
        raise


def discard_gradients_on_entry(opt: torch.optim.Optimizer, params: list[Tensor]) -> None:
    """Set the gradients found on entry to ``step`` to None, with a ``UserWarning`` once.

    For the twins whose closure returns per-example losses: they compute ``∇L(w)`` themselves,
    so a gradient already in ``p.grad`` (``loss.backward(); opt.step(closure)``, the davda54/sam
    convention) would be added to theirs. It is discarded instead, and the first time the
    optimizer says so.
    """
    if not any(p.grad is not None for p in params):
        return
    if not getattr(opt, "_warned_entry_grads", False):
        name = type(opt).__name__
        warnings.warn(
            f"{name}.step(closure) found gradients in p.grad and discards them: its closure "
            f"returns per-example losses and {name} computes the gradient at w itself. Drop the "
            "loss.backward() before step(closure), or call opt.zero_grad() before it.",
            UserWarning,
            stacklevel=3,
        )
        opt._warned_entry_grads = True  # type: ignore[attr-defined]
    for p in params:
        p.grad = None
