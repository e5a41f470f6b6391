"""Exercise: sort the coordinates of SAM's gradient into their checkpoints.

Write ``checkpoints(g, g_adv) -> labels`` (book chapter "Anatomy of the SAM gradient"): for
every coordinate the ratio ``r = g̃_i / g_i`` of the perturbed to the clean gradient gives

    1 if r > 1,   2 if 0 < r < 1,   3 if r < −1,   4 if −1 < r < 0,

and 0 for the boundaries (``r = 0``, ``r = ±1``) and for ``g_i = 0`` (no ratio). The reference
is ``sampy.optim.checkpoints.checkpoints`` with ``ratio_eps = 0`` (the sign-safe mode then puts
exactly the coordinates with ``g_i = 0`` in checkpoint 0). The checker recognises the ratio
taken upside down (``g/g̃``), the two boundary slips (``r = ±1`` counted in a checkpoint,
``g = 0`` given a checkpoint) and ckpt3/ckpt4 swapped.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sampy.exercises.feedback import Case, Feedback, Mistake, compare_with_reference
from sampy.optim.checkpoints import checkpoints as _checkpoints


def _reference_checkpoints(g: np.ndarray, g_adv: np.ndarray) -> np.ndarray:
    """The checkpoint 0…4 of every coordinate, by ``sampy.optim.checkpoints``."""
    g, g_adv = np.asarray(g, dtype=float), np.asarray(g_adv, dtype=float)
    return _checkpoints(g, g_adv, ratio_eps=0.0, mode="sign_safe").astype(int)


def _label(r: np.ndarray, closed_at_one: bool = False) -> np.ndarray:
    out = np.zeros(r.shape, dtype=int)
    if closed_at_one:
        out[r >= 1] = 1
        out[(r > 0) & (r < 1)] = 2
        out[r <= -1] = 3
    else:
        out[r > 1] = 1
        out[(r > 0) & (r < 1)] = 2
        out[r < -1] = 3
    out[(r > -1) & (r < 0)] = 4
    return out


def _inverted(g: np.ndarray, g_adv: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return _label(np.where(g_adv == 0, np.nan, g / g_adv))


def _closed_boundaries(g: np.ndarray, g_adv: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return _label(np.where(g == 0, np.nan, g_adv / g), closed_at_one=True)


def _zero_gradient_labelled(g: np.ndarray, g_adv: np.ndarray) -> np.ndarray:
    # the guard of the notes' code: g̃/(g + 1e-8), which gives g = 0 a huge ratio of g̃'s sign
    return _label(g_adv / (g + 1e-8))


def _swapped_flips(g: np.ndarray, g_adv: np.ndarray) -> np.ndarray:
    out = _reference_checkpoints(g, g_adv)
    return np.select([out == 3, out == 4], [4, 3], out)


MISTAKES = (
    Mistake(
        "the ratio is upside down (g/g̃): r = g̃_i/g_i compares SAM's gradient with SGD's, so "
        "r > 1 means SAM made the coordinate larger",
        _inverted,
    ),
    Mistake(
        "a boundary r = 1 or r = −1 was put in a checkpoint: the four checkpoints are strict "
        "inequalities, r = ±1 (and r = 0) is checkpoint 0",
        _closed_boundaries,
    ),
    Mistake(
        "a coordinate with g_i = 0 got a checkpoint: there is no ratio there (g̃_i/0), it is "
        "checkpoint 0 — adding a small eps to g_i gives it a huge ratio instead",
        _zero_gradient_labelled,
    ),
    Mistake(
        "ckpt3 and ckpt4 are swapped: ckpt3 is r < −1 (sign flip, larger magnitude), ckpt4 is "
        "−1 < r < 0 (sign flip, smaller magnitude)",
        _swapped_flips,
    ),
)

_G = np.array([1.0, -2.0, 0.5, 3.0, -1.0, 2.0, -0.5, 4.0])

CASES = (
    Case(
        "all four checkpoints",
        (_G, np.array([2.0, -1.0, -1.0, -0.3, 3.0, 5.0, 0.25, -8.0])),
    ),
    Case(
        "boundaries r = ±1 and r = 0",
        (np.array([1.0, -2.0, 3.0, 0.5, 2.0, -1.5]), np.array([1.0, 2.0, 0.0, 2.0, -1.0, 0.3])),
    ),
    Case(
        "zero clean coordinates",
        (np.array([0.0, 1.0, 0.0, -2.0, 4.0]), np.array([0.7, 3.0, -0.2, 1.0, -2.0])),
    ),
    Case(
        "a batch of two points",
        (
            np.stack([_G, np.array([0.0, 1.0, -1.0, 2.0, 0.0, 3.0, -2.0, 1.0])]),
            np.stack([_G * 1.5, np.array([1.0, 1.0, 1.0, -3.0, -1.0, -1.5, 2.0, 0.5])]),
        ),
    ),
)


def check_checkpoints(checkpoints: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Feedback:
    """Check ``checkpoints(g, g_adv) -> labels`` against ``sampy.optim.checkpoints``."""
    return compare_with_reference(
        "checkpoints", checkpoints, _reference_checkpoints, CASES, MISTAKES, atol=0.0, rtol=0.0
    )
