"""Top-k masks: which examples (ESAM) or coordinates (SSAM) to keep, in linear time."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from sampy.torch.host_norms import readable

# Below this many entries a float32 running count of 0/1 values is exact (2^24).
_EXACT_FLOAT_COUNT = 1 << 24

SAMPLE_FROM = 1 << 15
"""From this many entries on, ``kth_largest`` on the CPU brackets the k-th largest value with a
sample (below it one ``topk`` is as fast)."""

SAMPLE_STRIDE = 61
"""The sample is every 61st entry: a prime, so that no tensor shape lines it up with a period
of the scores (a row of a weight matrix, a channel)."""


def top_k_mask(scores: Tensor, k: int, dtype: torch.dtype = torch.bool) -> Tensor:
    """Mask of the ``k`` largest entries of a 1-D tensor (ties: lower index).

    The mirror of ``sampy.optim.esam.top_k_mask`` (a stable sort of ``−scores``, NaN last), in
    linear time: the k-th largest value ``t`` (``kth_largest``), every entry above ``t``, and
    of the entries equal to ``t`` the first ones, as many as are still missing. NaN
    ranks below every number, as in the reference (it ties with ``−inf``, which no score of
    ESAM or SSAM produces). A stable sort of a 270k-entry vector takes ~5× longer on a CPU.
    ``dtype``: booleans (the default) or a floating dtype (1.0 kept, 0.0 not).
    """
    n = scores.numel()
    if k <= 0 or k >= n:
        return torch.full(scores.shape, k > 0, dtype=dtype, device=scores.device)
    if _in_numpy(scores):
        return torch.from_numpy(_host_top_k_mask(scores.detach().numpy(), k)).to(dtype)
    key = torch.nan_to_num(scores, nan=-torch.inf, posinf=torch.inf, neginf=-torch.inf)
    kth = kth_largest(key, k)
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


def _in_numpy(scores: Tensor) -> bool:
    """Whether ``top_k_mask`` computes in NumPy: a large plain CPU tensor of float32/float64
    (NumPy's comparisons and counts are several times faster there than torch's boolean
    ones, and reading the values waits for nothing: ``sampy.torch.host_reads``)."""
    return scores.numel() >= SAMPLE_FROM and readable([scores])


def _host_top_k_mask(scores: np.ndarray, k: int) -> np.ndarray:
    """``top_k_mask``'s booleans, computed in NumPy (0 < k < n)."""
    key = np.nan_to_num(scores, nan=-np.inf, posinf=np.inf, neginf=-np.inf)
    kth = _bracketed(key, k)
    if kth is None:  # the bracket missed: torch's topk decides
        kth = key.dtype.type(kth_largest(torch.from_numpy(key), k, bracket=False).item())
    above = key > kth
    tied = key == kth
    missing = k - np.count_nonzero(above)
    if np.count_nonzero(tied) != missing:  # keep the first ties only
        tied &= np.cumsum(tied) <= missing
    return np.logical_or(above, tied, out=above)


def kth_largest(key: Tensor, k: int, bracket: bool = True) -> Tensor:
    """The ``k``-th largest entry of a 1-D tensor without NaN (a 0-dim tensor), 1 ≤ k ≤ n.

    One ``topk``: of the k largest or of the n − k + 1 smallest, whichever keeps fewer. On the
    CPU, where that takes milliseconds for a few hundred thousand entries, a large tensor is
    first bracketed by a sorted sample (``_bracketed``), in NumPy, whose comparisons and
    counts are several times faster there than torch's boolean ones; the full ``topk``
    decides only where the bracket misses. Reading the counts waits for nothing on the CPU
    (``sampy.torch.host_reads``). ``bracket=False``: the ``topk`` alone.
    """
    n = key.numel()
    if bracket and _in_numpy(key):
        found = _bracketed(key.detach().numpy(), k)
        if found is not None:
            return torch.tensor(found, dtype=key.dtype)
    if k <= n - k + 1:
        return torch.topk(key, k, sorted=False).values.min()
    return torch.topk(key, n - k + 1, largest=False, sorted=False).values.max()


def _bracketed(a: np.ndarray, k: int) -> np.floating | None:
    """The k-th largest of ``a`` from a bracket ``lo ≤ hi`` of two sample values a few
    standard deviations of the sample's rank on either side of it, or None where it misses.

    Counted from the top, the entries above ``hi`` come first, then those equal to ``hi``,
    those strictly between, those equal to ``lo``: the k-th falls in one of the three bands,
    and only the middle one, a few per cent of the entries, is partitioned (NumPy's
    introselect, slow on many equal values, never sees the two ends, where ties pile up:
    the zeros of a masked score).
    """
    n = a.size
    if k > n - k + 1:  # from the other end: the (n − k + 1)-th smallest
        found = _bracketed(np.negative(a), n - k + 1)
        return None if found is None else -found
    sample = np.sort(a[::SAMPLE_STRIDE])[::-1]
    m = sample.size
    rank = (k - 1) * m / n  # the k-th largest's expected place in the descending sample
    margin = 2.0 * math.sqrt(m) + 2.0  # ≥ 4 standard deviations of that place
    top = int(rank - margin)
    hi = sample[top] if top > 0 else a.dtype.type(np.inf)  # near the top: no upper bound
    lo = sample[min(int(rank + margin) + 1, m - 1)]
    need = k - np.count_nonzero(a > hi)  # the k-th's rank among the entries ≤ hi
    if need < 1:
        return None
    at_hi = np.count_nonzero(a == hi)
    if need <= at_hi:
        return hi
    need -= at_hi
    if lo == hi:
        return None
    between = a[(a > lo) & (a < hi)]
    if need <= between.size:
        return np.partition(between, between.size - need)[between.size - need]
    if need - between.size <= np.count_nonzero(a == lo):
        return lo
    return None


def top_k_indices(scores: Tensor, k: int) -> Tensor:
    """The indices of the ``k`` largest entries of a 1-D tensor, ascending (ties: lower index)."""
    return torch.sort(torch.sort(-scores, stable=True).indices[:k]).values
