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
    # g ± eps with the sign of g: copysign(eps, g) + g is exactly the reference's g + eps or
    # g - eps wherever |g| > eps, and |g| ≤ eps (where the sign of zero would differ) is NaN.
    # Four passes over the tensor instead of eight.
    guarded = torch.copysign(torch.tensor(ratio_eps, dtype=g.dtype, device=g.device), g)
    guarded.add_(g).masked_fill_(g.abs() <= ratio_eps, math.nan)
    return torch.div(g_adv, guarded, out=guarded)


# The masks of the checkpoints 1…4 from r (NaN compares false: checkpoint 0).
_CHECKPOINT_MASKS = (
    lambda r: r > 1,
    lambda r: (r > 0) & (r < 1),
    lambda r: r < -1,
    lambda r: (r > -1) & (r < 0),
)


def checkpoints(g: Tensor, g_adv: Tensor, ratio_eps: float, mode: str) -> Tensor:
    """The checkpoint 0…4 of every coordinate (an int64 tensor shaped like ``g``)."""
    r = ratio(g, g_adv, ratio_eps, mode)
    out = torch.zeros_like(r, dtype=torch.int64)
    for k, mask in enumerate(_CHECKPOINT_MASKS, start=1):
        out.masked_fill_(mask(r), k)
    return out


# The bounds (lower, upper) of the open interval of r of each checkpoint 1…4.
_BOUNDS = {1: (1.0, None), 2: (0.0, 1.0), 3: (None, -1.0), 4: (-1.0, 0.0)}


class _CheckpointRule(Elementwise):
    """The ratio and the checkpoint masks written into this rule's buffers (no temporaries)."""

    ratio_eps: float
    mode: str

    def _ratio(self, g: Tensor, g_adv: Tensor) -> Tensor:
        """``ratio(g, g̃)`` in the buffer ``"ratio"`` (the same values, bit for bit)."""
        r = self.buffer("ratio", g_adv)
        if self.mode == "notes_code":
            torch.add(g, self.ratio_eps, out=r)
            return torch.div(g_adv, r, out=r)
        # |g| goes through r before r is formed, and the undefined coordinates through the
        # mask buffer before any mask: no scratch tensor of their own (a model-sized float
        # and a bool kept between steps on the CPU).
        undefined = self.buffer("mask", g_adv, torch.bool)
        torch.le(torch.abs(g, out=r), self.ratio_eps, out=undefined)
        eps = self._scratch("eps", torch.Size(), g_adv.dtype, g_adv.device).fill_(self.ratio_eps)
        torch.copysign(eps, g, out=r)
        r.add_(g)
        torch.div(g_adv, r, out=r)
        return r.masked_fill_(undefined, math.nan)

    def _mask(self, k: int, r: Tensor) -> Tensor:
        """``ckpt == k`` (k = 1…4) in the buffer ``"mask"``."""
        lower, upper = _BOUNDS[k]
        mask = self.buffer("mask", r, torch.bool)
        if lower is not None:
            torch.gt(r, lower, out=mask)
        if upper is not None:
            if lower is None:
                return torch.lt(r, upper, out=mask)
            mask &= torch.lt(r, upper, out=self.buffer("below", r, torch.bool))
        return mask


class CheckpointScaling(_CheckpointRule):
    """SAME/CustomSAME: ``d = g̃ ⊙ c[ckpt]``."""

    def __init__(self, factors: tuple[float, ...], ratio_eps: float, mode: str) -> None:
        self.factors = tuple(float(c) for c in factors)
        self.ratio_eps = ratio_eps
        self.mode = mode

    def combine(self, g: Tensor, g_adv: Tensor) -> Tensor:
        """``g̃ ⊙ c[ckpt]``: the factor of checkpoint 0 everywhere, then one masked fill per
        checkpoint whose factor differs (SAME's defaults: one comparison, not a table lookup
        through an int64 index)."""
        c0 = self.factors[0]
        differ = [(k, c) for k, c in enumerate(self.factors[1:], start=1) if c != c0]
        if not differ:
            return g_adv if c0 == 1.0 else g_adv.mul_(c0)
        r = self._ratio(g, g_adv)
        factor = g.fill_(c0)  # g is this rule's copy, no longer needed
        for k, c in differ:
            factor.masked_fill_(self._mask(k, r), c)
        return g_adv.mul_(factor)


class CheckpointHybrid(_CheckpointRule):
    """SAMCkpt: ``d_i = g̃_i`` in the selected checkpoints, ``g_i`` elsewhere."""

    def __init__(self, selected: tuple[int, ...], ratio_eps: float, mode: str) -> None:
        self.selected = tuple(int(k) for k in selected)
        self.ratio_eps = ratio_eps
        self.mode = mode

    def combine(self, g: Tensor, g_adv: Tensor) -> Tensor:
        """``where(ckpt ∈ selected, g̃, g)``: one mask per selected checkpoint, no int64 codes."""
        selected = sorted(set(self.selected))
        if selected == [0, 1, 2, 3, 4]:
            return g_adv
        if not selected:
            return g
        r = self._ratio(g, g_adv)
        # Checkpoint 0 is what no other mask holds: with it selected, mark the rest instead.
        marked = [k for k in range(1, 5) if (k in selected) != (0 in selected)]
        use = self.buffer("use", r, torch.bool)
        use.copy_(self._mask(marked[0], r))
        for k in marked[1:]:
            use |= self._mask(k, r)
        marked_value, other = (g, g_adv) if 0 in selected else (g_adv, g)
        return torch.where(use, marked_value, other, out=g_adv)
