"""Where a torch twin may read a tensor's value on the host: only where that waits for nothing.

On an accelerator, ``.item()`` (or ``.tolist()``) waits until every kernel queued before it has
run, a host-device synchronisation; so there the rules keep their norms and factors on the
device as 0-dim tensors. On the CPU there is no device to wait for, and a 0-dim result read
into a Python number lets one fused kernel take it as its ``alpha``: ``w.add_(u, alpha=c)`` is
one pass over the tensors where a 0-dim tensor factor needs a multiply and an add, and on the
small tensors of a deep model every kernel saved is a dispatch saved.

Every such read goes through ``on_host``, so ``READ_CPU_VALUES = False`` sends a CPU-only run
down the device path (the contract tests do, to prove that path reads nothing on the host).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

__all__ = ["READ_CPU_VALUES", "alpha_value", "on_host"]

READ_CPU_VALUES = True
"""Whether values of plain CPU tensors may be read on the host (False: as on an accelerator)."""

EXACT_ALPHA = (torch.float32, torch.float64)
"""The dtypes whose kernels keep an ``alpha`` without rounding it to fewer digits than a 0-dim
tensor factor keeps: a float16 or bfloat16 kernel rounds its ``alpha`` to its own dtype, where
SAM's small factors lose digits or underflow."""


def on_host(tensors: Iterable[Tensor]) -> bool:
    """Whether every tensor is a plain CPU tensor or parameter (no DTensor or other subclass),
    so that reading its values waits for no device (and ``READ_CPU_VALUES`` allows it)."""
    return READ_CPU_VALUES and all(
        type(t) in (Tensor, torch.nn.Parameter) and t.is_cpu for t in tensors
    )


def alpha_value(factor: Tensor | float, tensors: list[Tensor]) -> float | None:
    """``factor`` as a Python number for an ``alpha`` over ``tensors``: a number as it is (a
    rule read it on the host already, from tensors of ``EXACT_ALPHA`` dtypes), a 0-dim tensor
    read where that waits for no device and their dtype keeps it (``EXACT_ALPHA``); else None:
    keep the factor on the device and multiply by it."""
    if not isinstance(factor, Tensor):
        return factor
    if on_host((factor, *tensors)) and all(t.dtype in EXACT_ALPHA for t in tensors):
        return factor.item()
    return None
