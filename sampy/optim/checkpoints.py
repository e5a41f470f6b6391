"""Element-wise "checkpoints": how SAM changes each coordinate of the gradient.

For every coordinate the ratio ``r_i = g̃_i / g_i`` of the perturbed to the clean gradient
falls in one of four checkpoints (the research notes on the anatomy of SAM's gradient,
lhchau/sam-hessian):

- ckpt1: ``r > 1``        SAM amplifies the coordinate (same sign)
- ckpt2: ``0 < r < 1``    SAM shrinks it (same sign)
- ckpt3: ``r < −1``       sign flip, larger magnitude
- ckpt4: ``−1 < r < 0``   sign flip, smaller magnitude

Boundaries (r = 0, ±1) and undefined ratios are "ckpt0". ``mode="notes_code"`` computes
``r = g̃/(g + ratio_eps)`` as the notes' code does (the eps ignores the sign of g);
``mode="sign_safe"`` uses ``g + ratio_eps·sign(g)`` and puts ``|g| ≤ ratio_eps`` in ckpt0 (so
with ``ratio_eps = 0`` exactly the zero coordinates).
"""

from __future__ import annotations

import numpy as np


def ratio(
    g: np.ndarray, g_adv: np.ndarray, ratio_eps: float = 1e-8, mode: str = "sign_safe"
) -> np.ndarray:
    """``r = g̃/g`` with the notes' code's guard or the sign-safe one (NaN where undefined)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if mode == "notes_code":
            return g_adv / (g + ratio_eps)
        sign = np.where(g >= 0, 1.0, -1.0)
        return np.where(np.abs(g) <= ratio_eps, np.nan, g_adv / (g + ratio_eps * sign))


def checkpoints(
    g: np.ndarray, g_adv: np.ndarray, ratio_eps: float = 1e-8, mode: str = "sign_safe"
) -> np.ndarray:
    """The checkpoint 0…4 of every coordinate (an int array shaped like ``g``)."""
    r = ratio(g, g_adv, ratio_eps, mode)
    out = np.zeros(np.shape(g), dtype=np.int8)
    out[r > 1] = 1
    out[(r > 0) & (r < 1)] = 2
    out[r < -1] = 3
    out[(r > -1) & (r < 0)] = 4
    return out


def checkpoint_fractions(
    g: np.ndarray, g_adv: np.ndarray, ratio_eps: float = 1e-8, mode: str = "sign_safe"
) -> np.ndarray:
    """Per point, the fraction of coordinates in ckpt0…ckpt4 (shape ``(..., 5)``)."""
    ck = checkpoints(g, g_adv, ratio_eps, mode)
    return np.stack([np.mean(ck == k, axis=-1) for k in range(5)], axis=-1)


class CheckpointScaling:
    """Descent rule ``d = g̃ ⊙ c[ckpt]``: scale each coordinate by its checkpoint's factor."""

    def __init__(self, factors: tuple[float, ...], ratio_eps: float, mode: str) -> None:
        self.factors = np.asarray(factors, dtype=float)
        self.ratio_eps = ratio_eps
        self.mode = mode

    def init(self, x: np.ndarray) -> None:
        """Stateless."""
        return None

    def __call__(self, g: np.ndarray, g_adv: np.ndarray, state: None) -> tuple[np.ndarray, None]:
        """``(d, None)``."""
        return g_adv * self.factors[checkpoints(g, g_adv, self.ratio_eps, self.mode)], None


class CheckpointHybrid:
    """Descent rule: ``d_i = g̃_i`` in the chosen checkpoints, ``g_i`` elsewhere (SAMCkpt)."""

    def __init__(self, selected: tuple[int, ...], ratio_eps: float, mode: str) -> None:
        self.selected = tuple(selected)
        self.ratio_eps = ratio_eps
        self.mode = mode

    def init(self, x: np.ndarray) -> None:
        """Stateless."""
        return None

    def __call__(self, g: np.ndarray, g_adv: np.ndarray, state: None) -> tuple[np.ndarray, None]:
        """``(d, None)``."""
        use_sam = np.isin(checkpoints(g, g_adv, self.ratio_eps, self.mode), self.selected)
        return np.where(use_sam, g_adv, g), None
