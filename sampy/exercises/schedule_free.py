"""Exercise: schedule-free averaging and interpolation (book chapter "Schedule-free training").

Write ``schedule_free_average(x, z, lrs, beta1) -> (x_new, y_new)``: given the average ``x``
of the earlier base iterates, the new base iterate ``z = z_{t}`` and the steps ``lrs = (η_1,
…, η_t)`` taken so far (this one last), return the new average (the point to evaluate) and the
new interpolation (where the next gradient is taken), as in Schedule-Free AdamW (A. Defazio,
X. A. Yang, H. Mehta, K. Mishchenko, A. Khaled, A. Cutkosky, "The Road Less Scheduled",
NeurIPS 2024; official code ``facebookresearch/schedule_free``)::

    ω_i = (max_{j ≤ i} η_j)²                 (weight_lr_power p = 2, r = 0)
    c   = ω_t / Σ_{i ≤ t} ω_i
    x_new = (1 − c) x + c z
    y_new = β1 x_new + (1 − β1) z

(The paper writes ``c_{t+1} = γ_t² / Σ_{i ≤ t} γ_i²``, its γ_t being the step η_t here; the
code's running maximum makes no difference while the steps do not decrease, as with a
warm-up.) The checker recognises
uniform averaging (c = 1/t), weights η instead of η², the running maximum left out (a case
whose steps decay), β1 on the wrong sequence, and the two points swapped (evaluating at y).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sampy.exercises.feedback import Case, Feedback, Mistake, compare_with_reference
from sampy.optim.schedule_free import averaging_weight

Average = Callable[..., tuple[np.ndarray, np.ndarray]]


def _weights(lrs: np.ndarray, power: float) -> np.ndarray:
    return np.maximum.accumulate(np.asarray(lrs, dtype=float)) ** power


def _average(
    x, z, lrs, beta1, *, power=2.0, uniform=False, swap_beta=False, swap_out=False, peak=True
):
    w = _weights(lrs, power) if peak else np.asarray(lrs, dtype=float) ** power
    c = 1.0 / len(w) if uniform else averaging_weight(w[-1], w.sum())
    x_new = (1.0 - c) * np.asarray(x, float) + c * np.asarray(z, float)
    if swap_beta:
        y_new = (1.0 - beta1) * x_new + beta1 * z
    else:
        y_new = beta1 * x_new + (1.0 - beta1) * z
    return (y_new, x_new) if swap_out else (x_new, y_new)


def _reference_schedule_free_average(x, z, lrs, beta1) -> tuple[np.ndarray, np.ndarray]:
    """``(x_new, y_new)`` with ``sampy``'s averaging weight."""
    return _average(x, z, lrs, beta1)


MISTAKES = (
    Mistake(
        "c = 1/t, a uniform average: Schedule-Free weights each iterate by its step squared, "
        "c = η_t²/Ση_i², so the small steps of a warm-up count little",
        lambda x, z, lrs, b: _average(x, z, lrs, b, uniform=True),
    ),
    Mistake(
        "c = η_t/Ση_i: the weights are the squared steps (weight_lr_power = 2)",
        lambda x, z, lrs, b: _average(x, z, lrs, b, power=1.0),
    ),
    Mistake(
        "β1 weighs the wrong sequence: y = β1 x + (1 − β1) z, mostly the average x",
        lambda x, z, lrs, b: _average(x, z, lrs, b, swap_beta=True),
    ),
    Mistake(
        "the two points are swapped: evaluate at the average x (optimizer.eval()); the "
        "gradient is taken at the interpolation y",
        lambda x, z, lrs, b: _average(x, z, lrs, b, swap_out=True),
    ),
    Mistake(
        "ω_i = η_i²: the weight of an iterate is the square of the largest step so far, "
        "ω_i = (max_{j ≤ i} η_j)², so the steps of a decay after the peak count as much as "
        "the peak",
        lambda x, z, lrs, b: _average(x, z, lrs, b, peak=False),
    ),
)

CASES = (
    Case(
        "second step of a warm-up",
        (np.array([1.0, -2.0]), np.array([0.5, -1.0]), np.array([0.1, 0.2]), 0.9),
    ),
    Case(
        "fifth step of a warm-up",
        (
            np.array([0.3, 0.7, -1.1]),
            np.array([0.1, 0.2, -0.4]),
            np.array([0.01, 0.02, 0.03, 0.04, 0.05]),
            0.8,
        ),
    ),
    Case(
        "after a warm-up",
        (np.array([2.0, 1.0]), np.array([1.0, 3.0]), np.array([0.05, 0.1, 0.1, 0.1]), 0.95),
    ),
    # The steps decay after their peak: only the running maximum gives the last ones the
    # peak's weight (without it, c = 0.0025/0.1125 instead of 0.04/0.17).
    Case(
        "during a decay",
        (
            np.array([0.4, -0.6, 1.2]),
            np.array([1.0, 0.5, -0.5]),
            np.array([0.1, 0.2, 0.2, 0.1, 0.05]),
            0.9,
        ),
    ),
)


def check_schedule_free_average(schedule_free_average: Average) -> Feedback:
    """Check ``schedule_free_average(x, z, lrs, beta1) -> (x_new, y_new)``."""
    return compare_with_reference(
        "schedule_free_average",
        schedule_free_average,
        _reference_schedule_free_average,
        CASES,
        MISTAKES,
        atol=1e-12,
        rtol=1e-9,
        outputs=("x_new", "y_new"),
    )
