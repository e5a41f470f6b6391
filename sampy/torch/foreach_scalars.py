"""Numbers as the scalar operands of ``torch._foreach_*`` calls on the CPU.

torch's CPU loop behind a foreach call with a Python number wraps and converts the number again
for every tensor (some 2 µs a tensor, 40 µs a call on a 20-layer MLP); a 0-dim tensor of the
tensors' own dtype is taken as it is, with the same bits (the kernel rounds the number to that
dtype either way). Narrower dtypes, devices and tensor subclasses keep the number.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import Parameter

__all__ = ["add_scalar_", "cpu_dtype", "scalar"]


def cpu_dtype(tensors: list[Tensor]) -> torch.dtype | None:
    """The dtype of ``tensors`` where they are plain CPU tensors of one float32 or float64
    dtype, else None: where ``scalar`` may hand a number to a ``torch._foreach_*`` call as a
    0-dim tensor."""
    dtype = tensors[0].dtype
    if dtype not in (torch.float32, torch.float64):
        return None
    for t in tensors:
        if type(t) not in (Tensor, Parameter) or not t.is_cpu or t.dtype is not dtype:
            return None
    return dtype


def scalar(value: float, dtype: torch.dtype | None) -> float | Tensor:
    """``value`` as the scalar operand of a ``torch._foreach_*`` call: a 0-dim tensor of
    ``dtype`` (from ``cpu_dtype``), or the number itself for None.

    torch's CPU loop behind a foreach call with a Python number wraps and converts the number
    again for every tensor (some 2 µs a tensor, 40 µs a call on a 20-layer MLP); a 0-dim
    tensor of the tensors' own dtype is taken as it is, with the same bits (the kernel rounds
    the number to that dtype either way). Narrower dtypes keep the number: their kernels
    compute in float32 with the number unrounded.
    """
    return value if dtype is None else torch.full((), value, dtype=dtype)


def add_scalar_(tensors: list[Tensor], value: float, dtype: torch.dtype | None) -> None:
    """``t ← t + value`` for every tensor (foreach ``add_`` has no fast 0-dim form on the CPU:
    the value goes in as a list of one 0-dim tensor, broadcast)."""
    if dtype is None:
        torch._foreach_add_(tensors, value)
    else:
        torch._foreach_add_(tensors, [torch.full((), value, dtype=dtype)] * len(tensors))
