"""Top-k masks on the device: which examples (ESAM) or coordinates (SSAM) to keep."""

from __future__ import annotations

import torch
from torch import Tensor


def top_k_mask(scores: Tensor, k: int) -> Tensor:
    """Boolean mask of the ``k`` largest entries of a 1-D tensor (ties: lower index).

    The mirror of ``sampy.optim.esam.top_k_mask`` (a stable sort of ``−scores``, NaN last), in
    linear time on the device: the k-th largest value ``t`` by ``topk``, every entry above
    ``t``, and of the entries equal to ``t`` the first ones, as many as are still missing. NaN
    ranks below every number, as in the reference (it ties with ``−inf``, which no score of
    ESAM or SSAM produces). A stable sort of a 270k-entry vector takes ~5× longer on a CPU.
    """
    n = scores.numel()
    if k <= 0 or k >= n:
        return torch.full(scores.shape, k > 0, dtype=torch.bool, device=scores.device)
    key = torch.nan_to_num(scores, nan=-torch.inf, posinf=torch.inf, neginf=-torch.inf)
    kth = torch.topk(key, k, sorted=False).values.min()
    above = key > kth
    tied = key == kth
    missing = k - above.sum()
    return above | (tied & (torch.cumsum(tied, 0) <= missing))


def top_k_indices(scores: Tensor, k: int) -> Tensor:
    """The indices of the ``k`` largest entries of a 1-D tensor, ascending (ties: lower index)."""
    return torch.sort(torch.sort(-scores, stable=True).indices[:k]).values
