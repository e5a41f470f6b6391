"""Adam's moment estimates and denominators over lists of tensors (the official operations).

Shared by the twins with a built-in Adam-type base (``AdamWMSAM``, ``ScheduleFreeAdamW``, the
Momentum-SAM schedule-free pair), whose float64 trajectories must match their references bit
for bit: each helper is the exact sequence of operations they used. The denominators are
written into tensors that are dead at that point where a tensor is large (on the CPU a fresh
model-sized tensor costs its allocation and page faults on top of the pass).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import Parameter

from sampy.torch.foreach_scalars import add_scalar_, scalar
from sampy.torch.storage import LARGE_TENSOR_NUMEL, owns_storage


def ema_of_squares_(
    vs: list[Tensor], grads: list[Tensor], beta2: float, dtype: torch.dtype | None = None
) -> None:
    """``v ← β₂ v + (1 − β₂) g²`` (Adam's second moment); ``dtype`` as ``cpu_dtype(vs)``."""
    torch._foreach_mul_(vs, scalar(beta2, dtype))
    torch._foreach_addcmul_(vs, grads, grads, value=1.0 - beta2)


def split_large(sources: list[Tensor], dests: list[Tensor]) -> tuple[list[int], list[int]]:
    """The indices of the tensors written with ``out=`` (large, plain, their destination a
    tensor of the same kind that is all of its storage: not a DDP bucket view, a flat
    parameter's piece or a DTensor), and of the others."""
    large, small = [], []
    for i, (a, b) in enumerate(zip(sources, dests, strict=True)):
        if (
            a.numel() >= LARGE_TENSOR_NUMEL
            and type(a) in (Tensor, Parameter)
            and owns_storage(b)
            and a.dtype == b.dtype
            and a.device == b.device
            and a.shape == b.shape
        ):
            large.append(i)
        else:
            small.append(i)
    return large, small


def square_roots(
    vs: list[Tensor], into: list[Tensor], bias2: float | None, dtype: torch.dtype | None = None
) -> list[Tensor]:
    """``√(v/bias2)`` (``√v`` for ``bias2`` None) in the official operations, written into the
    tensors ``into`` where they are large (they must be dead: Schedule-Free's parameters between
    the decay and the new y, consumed gradients), fresh tensors for the small ones."""
    large, small = split_large(vs, into)
    roots = list(into)
    for i in large:
        if bias2 is None:
            torch.sqrt(vs[i], out=into[i])
        else:
            torch.div(vs[i], bias2, out=into[i])
            into[i].sqrt_()
    if small:
        small_vs = [vs[i] for i in small]
        if bias2 is None:
            fresh = torch._foreach_sqrt(small_vs)
        else:
            fresh = torch._foreach_div(small_vs, scalar(bias2, dtype))
            torch._foreach_sqrt_(fresh)
        for i, t in zip(small, fresh, strict=True):
            roots[i] = t
    return roots


def denominators(
    vs: list[Tensor],
    into: list[Tensor],
    bias2: float | None,
    eps: float,
    dtype: torch.dtype | None = None,
) -> list[Tensor]:
    """``√(v/bias2) + eps`` (``√v + eps`` for ``bias2`` None), written as ``square_roots``;
    ``dtype`` as ``cpu_dtype(vs)``."""
    denom = square_roots(vs, into, bias2, dtype)
    add_scalar_(denom, eps, dtype)
    return denom
