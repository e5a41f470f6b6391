"""Validation of user input, shared by the NumPy reference and the torch twins.

Every public constructor validates its hyperparameters through these helpers, so the error
messages are the same everywhere: they name the parameter, show the value and state the range.
"""

from __future__ import annotations

from numbers import Real

import numpy as np


def _describe_range(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    left = "(" if low_open else "["
    right = ")" if high_open else "]"
    lo = "-inf" if low is None else f"{low:g}"
    hi = "inf" if high is None else f"{high:g}"
    return f"{left}{lo}, {hi}{right}"


def check_real(
    name: str,
    value: object,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """Raise ``ValueError`` unless every entry of ``value`` is a real number in the range.

    ``value`` may be a Python number or an array (a grid of hyperparameters); every entry must
    be finite-or-infinite real and lie in ``[low, high]`` (open ends where requested).
    """
    rng = _describe_range(low, high, low_open, high_open)
    if isinstance(value, bool) or not isinstance(value, (Real, np.ndarray, np.generic)):
        raise ValueError(f"{name} must be a real number in {rng}, got {value!r}")
    if isinstance(value, (np.ndarray, np.generic)) and np.asarray(value).dtype.kind not in "biuf":
        raise ValueError(f"{name} must be real numbers in {rng}, got dtype {value.dtype}")
    arr = np.asarray(value, dtype=float)
    if np.any(np.isnan(arr)):
        raise ValueError(f"{name} must be a real number in {rng}, got {value!r}")
    too_low = low is not None and np.any(arr <= low if low_open else arr < low)
    too_high = high is not None and np.any(arr >= high if high_open else arr > high)
    if too_low or too_high:
        raise ValueError(f"{name} must lie in {rng}, got {value!r}")


def check_p(p: float) -> None:
    """The p of a p-norm ball: a real number ``p >= 1`` or ``math.inf``."""
    check_real("p", p, 1.0, None)
    if isinstance(p, np.ndarray):
        raise ValueError(f"p must be a single number >= 1 (or math.inf), got an array {p!r}")


def check_bool(name: str, value: object) -> None:
    """Raise ``ValueError`` unless ``value`` is a bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
