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


def check_int(name: str, value: object, low: int | None = None) -> int:
    """``value`` as an ``int``; ``ValueError`` unless it is an integer (not a bool) ``>= low``.

    NumPy integers count as integers; ``True``/``False`` and floats with an integer value do
    not, so a flag passed by mistake is caught.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        bound = "" if low is None else f" >= {low}"
        raise ValueError(f"{name} must be an integer{bound}, got {value!r}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def check_binary_data(
    features: object, labels: object, columns: str = "d"
) -> tuple[np.ndarray, np.ndarray]:
    """``(features, labels)`` as float arrays, checked for a binary classification problem.

    ``features`` must be a finite ``(n, columns)`` array with ``n, columns >= 1`` and ``labels``
    one ``-1``/``+1`` per example; ``columns`` names the second axis in the message.
    """
    features = np.asarray(features, dtype=float)
    labels = np.asarray(labels, dtype=float)
    if features.ndim != 2 or features.shape[0] < 1 or features.shape[1] < 1:
        raise ValueError(f"features must have shape (n, {columns}), got {features.shape}")
    if not np.all(np.isfinite(features)):
        raise ValueError("features must be finite")
    if labels.shape != (features.shape[0],) or not np.all(np.isin(labels, (-1.0, 1.0))):
        raise ValueError("labels must be one of -1 / +1 per example (shape (n,))")
    return features, labels


def check_bool(name: str, value: object) -> None:
    """Raise ``ValueError`` unless ``value`` is a bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
