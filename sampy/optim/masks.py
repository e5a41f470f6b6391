"""Top-k masks: which examples (ESAM's data selection) or coordinates (SSAM) to keep.

The twin is ``sampy.torch.masks``.
"""

from __future__ import annotations

import numpy as np


def top_k_mask(scores: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of the ``k`` largest entries along the last axis (ties: lower index)."""
    order = np.argsort(-scores, axis=-1, kind="stable")[..., :k]
    mask = np.zeros(scores.shape, dtype=bool)
    np.put_along_axis(mask, order, True, axis=-1)
    return mask
