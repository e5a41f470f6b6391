"""Top-k masks on the device: which examples (ESAM) or coordinates (SSAM) to keep."""

from __future__ import annotations

import torch
from torch import Tensor

# Below this many entries a float32 running count of 0/1 values is exact (2^24).
_EXACT_FLOAT_COUNT = 1 << 24


def top_k_mask(scores: Tensor, k: int, dtype: torch.dtype = torch.bool) -> Tensor:
    """Mask of the ``k`` largest entries of a 1-D tensor (ties: lower index).

    The mirror of ``sampy.optim.esam.top_k_mask`` (a stable sort of ``−scores``, NaN last), in
    linear time on the device: the k-th largest value ``t`` by ``topk``, every entry above
    ``t``, and of the entries equal to ``t`` the first ones, as many as are still missing. NaN
    ranks below every number, as in the reference (it ties with ``−inf``, which no score of
    ESAM or SSAM produces). A stable sort of a 270k-entry vector takes ~5× longer on a CPU.
    ``dtype``: booleans (the default) or a floating dtype (1.0 kept, 0.0 not).
    """
    n = scores.numel()
    if k <= 0 or k >= n:
        return torch.full(scores.shape, k > 0, dtype=dtype, device=scores.device)
    key = torch.nan_to_num(scores, nan=-torch.inf, posinf=torch.inf, neginf=-torch.inf)
    # topk's cost grows with how many it keeps: the k-th largest is the (n−k+1)-th smallest.
    if k <= n - k + 1:
        kth = torch.topk(key, k, sorted=False).values.min()
    else:
        kth = torch.topk(key, n - k + 1, largest=False, sorted=False).values.max()
    if n >= _EXACT_FLOAT_COUNT:
        above = key > kth
        tied = key == kth
        missing = k - above.sum()
        return (above | (tied & (torch.cumsum(tied, 0) <= missing))).to(dtype)
    # The same formula in float32 0/1 values: on the CPU a comparison that writes booleans, or
    # a sum over them, costs several times one that writes floats.
    above = torch.gt(key, kth, out=torch.empty(n, dtype=torch.float32, device=key.device))
    tied = torch.eq(key, kth, out=torch.empty(n, dtype=torch.float32, device=key.device))
    missing = k - above.sum()
    mask = torch.cumsum(tied, 0).le_(missing).mul_(tied).add_(above)  # disjoint: 0 or 1
    return mask.to(dtype)


def top_k_indices(scores: Tensor, k: int) -> Tensor:
    """The indices of the ``k`` largest entries of a 1-D tensor, ascending (ties: lower index)."""
    return torch.sort(torch.sort(-scores, stable=True).indices[:k]).values
