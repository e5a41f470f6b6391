"""Validation of user input, shared by the NumPy reference and the torch twins.

Every public constructor validates its hyperparameters through these helpers (directly, or
through ``sampy.optim.hyper.Hyper.check``), so the error messages are the same everywhere: a
``ValueError`` that names the parameter, shows the value, states the valid range in the
registry's words (``range_text``) and says what to pass instead.

A range whose upper end is "unbounded" (``high=None``) excludes infinity: ``[0, inf)`` means
every finite number ``>= 0``. A knob for which infinity means something (the p of an
:math:`\\ell_\\infty` ball, BSAM's ``num_data``) says so with ``allow_inf=True`` and reads
``[1, inf]``.
"""

from __future__ import annotations

import reprlib
from numbers import Real

import numpy as np

_SHORT = reprlib.Repr()
_SHORT.maxstring = 60
_SHORT.maxother = 60
_SHORT.maxlong = 40


def shown(value: object) -> str:
    """``repr(value)``, shortened (a ``10**400`` or a large array stays readable in a message)."""
    if isinstance(value, np.ndarray):
        text = np.array2string(value, threshold=6, edgeitems=2)
        return (
            f"array({text}, dtype={value.dtype})"
            if len(text) < 80
            else f"an array of shape {value.shape}"
        )
    return _SHORT.repr(value)


def range_text(
    low: float | None,
    high: float | None,
    low_open: bool = False,
    high_open: bool = False,
    allow_inf: bool = False,
) -> str:
    """The range as the registry writes it: ``[0, inf)``, ``(0, 1]``, ``[1, inf]``.

    An end that is ``None`` is unbounded and open (infinity is not a value of the range),
    except the upper end of a range with ``allow_inf``, which includes ``inf``.
    """
    left = "(" if low_open or low is None else "["
    right = ")" if high_open or (high is None and not allow_inf) else "]"
    lo = "-inf" if low is None else f"{low:g}"
    hi = "inf" if high is None else f"{high:g}"
    return f"{left}{lo}, {hi}{right}"


def _kind_of(value: object) -> str:
    """What ``value`` is, in words, when it is not a real number."""
    if isinstance(value, (bool, np.bool_)):
        return "a bool"
    if isinstance(value, (complex, np.complexfloating)):
        return "a complex number"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "None"
    return f"a {type(value).__name__}"


def check_real(
    name: str,
    value: object,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    allow_inf: bool = False,
    array_ok: bool = True,
    hint: str = "",
) -> None:
    """Raise ``ValueError`` unless every entry of ``value`` is a real number in the range.

    ``value`` may be a Python or NumPy number, or (with ``array_ok``) a real array (a grid of
    hyperparameters). Refused, each with the parameter's name, the value, the range and
    ``hint`` (what to pass instead): bools (Python's and NumPy's: a flag is not a number),
    complex numbers, strings, None, object or bool arrays, an integer too large for a float,
    NaN, infinity unless the range includes it (``high=math.inf``, or ``allow_inf``), and
    everything outside ``[low, high]`` (open ends where requested).
    """
    rng = range_text(low, high, low_open, high_open, allow_inf)
    todo = hint or (
        "pass a number in that range" if allow_inf else "pass a finite number in that range"
    )

    def refuse(problem: str) -> ValueError:
        return ValueError(
            f"{name} must be a real number in {rng}, got {shown(value)} ({problem}); {todo}"
        )

    if isinstance(value, np.ndarray):
        if not array_ok:
            raise refuse("an array where one number belongs")
        if value.dtype.kind not in "iuf":
            raise refuse(f"dtype {value.dtype}, not real numbers")
    elif isinstance(value, np.generic):
        if value.dtype.kind not in "iuf":
            raise refuse(_kind_of(value))
    elif isinstance(value, bool) or not isinstance(value, Real):
        raise refuse(_kind_of(value))
    try:
        with np.errstate(over="ignore"):
            arr = np.asarray(value, dtype=float)
    except (OverflowError, TypeError, ValueError):
        raise refuse("too large for a float (above 1.8e308)") from None
    if np.any(np.isnan(arr)):
        raise refuse("NaN")
    if (high is None and not allow_inf and np.any(arr == np.inf)) or (
        low is None and np.any(arr == -np.inf)
    ):
        raise refuse("infinity is not in the range")
    too_low = low is not None and np.any(arr <= low if low_open else arr < low)
    too_high = high is not None and np.any(arr >= high if high_open else arr > high)
    if too_low or too_high:
        raise ValueError(f"{name} must lie in {rng}, got {shown(value)}; {todo}")


def check_p(p: float) -> None:
    """The p of a p-norm ball: a real number ``p >= 1`` or ``math.inf``."""
    check_real("p", p, 1.0, None, allow_inf=True, array_ok=False, hint="pass p >= 1, or math.inf")


def check_int(name: str, value: object, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an ``int``; ``ValueError`` unless it is an integer (not a bool) in range.

    NumPy integers count as integers; ``True``/``False`` and floats with an integer value do
    not, so a flag passed by mistake is caught. ``high`` is the documented maximum of a
    count that bounds a loop or an allocation.
    """
    bounds = (
        ""
        if low is None and high is None
        else f" >= {low}"
        if high is None
        else f" in [{'-inf' if low is None else low}, {high}]"
    )
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(
            f"{name} must be an integer{bounds}, got {shown(value)} ({_kind_of(value)}); "
            "pass a Python int"
        )
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(
            f"{name} must be an integer{bounds}, got {shown(value)}; pass one in that range"
        )
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
        raise ValueError(
            f"{name} must be True or False, got {shown(value)} ({_kind_of(value)}); "
            "pass a Python bool"
        )
