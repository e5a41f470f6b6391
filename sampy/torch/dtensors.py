"""FSDP2's sharded parameters (``torch.distributed.tensor.DTensor``) in a twin's step.

Under ``torch.distributed.fsdp.fully_shard`` every parameter is a DTensor. The saved ``w`` is
kept shard by shard (torch has no DTensor rule for ``torch._foreach_copy_``), while norms and
inner products stay DTensor reductions, so a twin computes the global ε of the whole model.
"""

from __future__ import annotations

from torch import Tensor

try:
    from torch.distributed.tensor import DTensor as _DTensor
except ImportError:  # a torch build without torch.distributed

    class _DTensor:  # type: ignore[no-redef]
        """Stands in for DTensor: nothing is an instance of it."""


def is_dtensor(tensor: Tensor) -> bool:
    """Whether ``tensor`` is a ``torch.distributed.tensor.DTensor`` (an FSDP2 parameter)."""
    return isinstance(tensor, _DTensor)


def replicated(tensor: Tensor) -> Tensor:
    """A DTensor reduction (a global norm or inner product, pending as a partial sum) made
    whole on every rank, so that scaling a sharded tensor by it keeps that tensor's sharding;
    any other tensor as it is."""
    if not isinstance(tensor, _DTensor):
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
    return [t.to_local() if isinstance(t, _DTensor) else t for t in tensors]
