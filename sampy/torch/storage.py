"""Which tensors a twin may keep, write into or point a parameter at between the passes.

Only a plain tensor (or parameter) that is the whole of its storage: a gradient that is a view
into a bucket DDP reuses (``gradient_as_bucket_view``) or an FSDP flat parameter may be read or
written behind the optimizer's back, and a DTensor or another tensor subclass has storage rules
of its own.
"""

from __future__ import annotations

from torch import Tensor
from torch.nn import Parameter

LARGE_TENSOR_NUMEL = 1 << 15
"""From this many elements on, a tensor gets a call of its own on the CPU to write into storage
the step owns (a dead gradient, a parameter between two of its uses, a swapped-in buffer)
instead of sharing one ``torch._foreach_*`` call that allocates: below it the Python call per
tensor costs more than the copy or the allocation it saves (measured on the benchmark MLPs)."""


def owns_storage(t: Tensor | None) -> bool:
    """Whether ``t`` is a plain contiguous tensor or parameter that is all of its storage."""
    return (
        type(t) in (Tensor, Parameter)
        and t.is_contiguous()
        and t.storage_offset() == 0
        and t.untyped_storage().nbytes() == t.nbytes
    )
