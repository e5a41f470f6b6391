"""FSDP2's sharded parameters (``torch.distributed.tensor.DTensor``) in a twin's step.

Under ``torch.distributed.fsdp.fully_shard`` every parameter is a DTensor. The saved ``w`` is
kept shard by shard (torch has no DTensor rule for ``torch._foreach_copy_``), while norms and
inner products stay DTensor reductions, so a twin computes the global ε of the whole model.
"""

from __future__ import annotations

import sys

from torch import Tensor

# torch.distributed.tensor takes longer to import than the rest of sampy.torch together, and a
# DTensor can only exist once that package is imported: look it up then, never import it here.
_DTENSOR_PACKAGE = "torch.distributed.tensor"


def is_dtensor(tensor: Tensor) -> bool:
    """Whether ``tensor`` is a ``torch.distributed.tensor.DTensor`` (an FSDP2 parameter)."""
    package = sys.modules.get(_DTENSOR_PACKAGE)
    return package is not None and isinstance(tensor, package.DTensor)


def replicated(tensor: Tensor) -> Tensor:
    """A DTensor reduction (a global norm or inner product, pending as a partial sum) made
    whole on every rank, so that scaling a sharded tensor by it keeps that tensor's sharding;
    any other tensor as it is."""
    if not is_dtensor(tensor):
        return tensor
    from torch.distributed.tensor import Replicate

    return tensor.redistribute(placements=[Replicate()] * tensor.device_mesh.ndim)


def local_tensors(tensors: list[Tensor]) -> list[Tensor]:
    """Each ``DTensor``'s local shard (``to_local()``, which shares its storage), other tensors
    as they are.

    Under FSDP2 (``torch.distributed.fsdp.fully_shard``) the parameters are DTensors sharded
    over the ranks. torch has no DTensor rule for ``torch._foreach_copy_``, and the saved ``w``
    of a rank is its own shard anyway, so ``w`` is saved and restored shard by shard. Norms and
    inner products stay DTensor operations, which all-reduce across the ranks: the twins
    compute the global ε of the whole model under FSDP2.
    """
    return [t.to_local() if is_dtensor(t) else t for t in tensors]
