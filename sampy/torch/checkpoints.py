"""Element-wise checkpoints as torch descent rules: the twin of ``sampy.optim.checkpoints``.

For every coordinate the ratio ``r_i = g̃_i / g_i`` of the perturbed to the clean gradient
falls in one of four checkpoints (the research notes on the anatomy of SAM's gradient,
lhchau/sam-hessian): ckpt1 ``r > 1`` (amplified), ckpt2 ``0 < r < 1`` (shrunk), ckpt3
``r < −1`` (flipped, larger), ckpt4 ``−1 < r < 0`` (flipped, smaller); boundaries and undefined
ratios are ckpt0. ``mode="notes_code"`` computes ``r = g̃/(g + ratio_eps)`` as the notes' code
does; ``mode="sign_safe"`` uses ``g + ratio_eps·sign(g)`` and puts ``|g| ≤ ratio_eps`` in ckpt0.
The rules are the descents of ``SAME``, ``CustomSAME`` and ``SAMCkpt`` (``sampy.torch.same``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sampy.torch.groups import Elementwise


def ratio(g: Tensor, g_adv: Tensor, ratio_eps: float, mode: str) -> Tensor:
    """``r = g̃/g`` with the notes' code's guard or the sign-safe one (NaN where undefined)."""
    if mode == "notes_code":
        return g_adv / (g + ratio_eps)
    # g + eps·sign(g) with sign(0) = 1, written as two sums so the eps stays float64-exact.
    r = g_adv / torch.where(g >= 0, g + ratio_eps, g - ratio_eps)
    return torch.where(g.abs() <= ratio_eps, torch.full_like(r, math.nan), r)


def checkpoints(g: Tensor, g_adv: Tensor, ratio_eps: float, mode: str) -> Tensor:
    """The checkpoint 0…4 of every coordinate (an int64 tensor shaped like ``g``)."""
    r = ratio(g, g_adv, ratio_eps, mode)
    out = torch.zeros_like(r, dtype=torch.int64)
    out = torch.where(r > 1, 1, out)
    out = torch.where((r > 0) & (r < 1), 2, out)
    out = torch.where(r < -1, 3, out)
    return torch.where((r > -1) & (r < 0), 4, out)


class CheckpointScaling(Elementwise):
    """SAME/CustomSAME: ``d = g̃ ⊙ c[ckpt]``."""

    def __init__(self, factors: tuple[float, ...], ratio_eps: float, mode: str) -> None:
        self.factors = tuple(float(c) for c in factors)
        self.ratio_eps = ratio_eps
        self.mode = mode
        self._table: dict[tuple[torch.dtype, torch.device], Tensor] = {}

    def _factors(self, like: Tensor) -> Tensor:
        # Built once per dtype/device, so the step does no host-to-device copy.
        key = (like.dtype, like.device)
        if key not in self._table:
            self._table[key] = torch.tensor(self.factors, dtype=like.dtype, device=like.device)
        return self._table[key]

    def combine(self, g: Tensor, g_adv: Tensor) -> Tensor:
        """``g̃ ⊙ c[ckpt]``."""
        return g_adv * self._factors(g_adv)[checkpoints(g, g_adv, self.ratio_eps, self.mode)]


class CheckpointHybrid(Elementwise):
    """SAMCkpt: ``d_i = g̃_i`` in the selected checkpoints, ``g_i`` elsewhere."""

    def __init__(self, selected: tuple[int, ...], ratio_eps: float, mode: str) -> None:
        self.selected = tuple(int(k) for k in selected)
        self.ratio_eps = ratio_eps
        self.mode = mode

    def combine(self, g: Tensor, g_adv: Tensor) -> Tensor:
        """``where(ckpt ∈ selected, g̃, g)``."""
        ck = checkpoints(g, g_adv, self.ratio_eps, self.mode)
        use_sam = torch.zeros_like(ck, dtype=torch.bool)
        for k in self.selected:
            use_sam |= ck == k
        return torch.where(use_sam, g_adv, g)
