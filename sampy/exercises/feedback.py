"""The machinery every checker shares: cases, known mistakes, and the feedback they produce.

:func:`compare_with_reference` runs a student's function on each case next to the reference
and, where they differ, next to each known mistake. What a class needs from it:

- **Fresh cases.** Every call (the student's, the reference's, each mistake's) gets its own deep
  copy of the case's arguments, so an answer that works in place (``w -= …``) changes neither
  the cases nor what the next submission is graded on.
- **Any dtype.** NumPy float32 and torch tensors (any device, requiring grad or not) are read
  through ``.detach().cpu()``; an answer in a lower precision is compared within
  :data:`ULPS` units of its own precision relative to the case's scale, a float64 answer
  within the checker's own tight tolerance. torch is never imported here: a tensor can only
  reach the checker when the student's code has imported it.
- **Three kinds of failure told apart.** A missing ``return``, an exception in the student's
  code (with the student's frames of the traceback), and the checker's own failure (a bug in
  sampy, never blamed on the student).
- **No borrowed answers.** While the student's function runs, a profiler notes every call into
  ``sampy.optim``, ``sampy.torch`` or ``sampy.exercises`` that does not happen inside a callable
  the case passed in (such as ``grad``): such an answer fails with a message saying so.
- **Readable differences.** Arrays are printed whole (up to 200 entries); when expected and got
  print alike, the differing entries are listed; masks print as True/False; a shape mismatch
  and a near miss (float32 arithmetic) are said as such.
"""

from __future__ import annotations

import copy
import html
import os
import sys
import sysconfig
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import CodeType, FrameType
from typing import Any

import numpy as np

#: A lower-precision answer passes within this many units in the last place of its own dtype,
#: relative to the case's scale: float32's 256 ulps are about 3e-5 of the largest value.
ULPS = 256

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the sampy folder
# Calling into these while the student's function runs means using sampy's own answer.
_GUARDED = tuple(os.path.join(_PACKAGE, name) + os.sep for name in ("optim", "torch", "exercises"))
_LIBRARY = tuple(
    {os.path.abspath(sysconfig.get_paths()[key]) + os.sep for key in ("stdlib", "purelib")}
    | {_PACKAGE + os.sep}
)


@dataclass(frozen=True)
class CheckResult:
    """One check: its name, whether it passed, what to tell the student, and why it failed.

    ``cause`` is ``""`` for a passed check, else one of ``"mistake"`` (a known mistake named),
    ``"wrong"`` (an unrecognised answer), ``"none"`` (the function returned None),
    ``"outputs"`` (the wrong number of outputs), ``"raised"`` (the student's code raised),
    ``"refused"`` (the answer called sampy's implementation) and ``"checker"`` (the checker
    itself failed: a bug in sampy, not in the answer).
    """

    name: str
    passed: bool
    message: str = ""
    cause: str = ""


@dataclass(frozen=True)
class Feedback:
    """The outcome of a checker: passed only if every check passed."""

    exercise: str
    checks: tuple[CheckResult, ...]

    @property
    def passed(self) -> bool:
        """True when every check passed."""
        return all(c.passed for c in self.checks)

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        """The checks that failed, in order."""
        return tuple(c for c in self.checks if not c.passed)

    @property
    def checker_failed(self) -> bool:
        """True when a check failed because of the checker itself, not the answer."""
        return any(c.cause == "checker" for c in self.checks)

    def __str__(self) -> str:
        if self.passed:
            return f"✓ {self.exercise}: all {len(self.checks)} checks passed"
        lines = [f"✗ {self.exercise}: {len(self.failures)} of {len(self.checks)} checks failed"]
        # One line per message: the cases that share it are named together, not repeated.
        grouped: dict[str, list[str]] = {}
        for check in self.failures:
            grouped.setdefault(check.message, []).append(check.name)
        lines += [f"  - {', '.join(names)}: {message}" for message, names in grouped.items()]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        colour = "#1a7f37" if self.passed else "#cf222e"
        items = "".join(
            f"<li>{'✓' if c.passed else '✗'} <b>{html.escape(c.name)}</b>"
            f"{': ' + html.escape(c.message) if c.message else ''}</li>"
            for c in self.checks
        )
        head = html.escape(str(self).splitlines()[0])
        return f'<div style="color:{colour}"><b>{head}</b><ul>{items}</ul></div>'


@dataclass(frozen=True)
class Case:
    """Arguments for the student's function and the reference, and a name to report."""

    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Mistake:
    """A typical wrong answer, written as a function with the student's signature."""

    explanation: str
    function: Callable[..., Any]


# --------------------------------------------------------------------------- reading answers


class _Unreadable(Exception):
    """An answer that is not an array of numbers; the message says what it is instead."""


def _to_numpy(value: Any) -> tuple[np.ndarray, float]:
    """``value`` as a NumPy array, and the machine epsilon of the precision it was computed in.

    Exact types (bool, int) and float64 give float64's epsilon. A torch tensor is read through
    ``.detach().cpu()`` (bfloat16 and float16 through float32, keeping their own epsilon).
    """
    if hasattr(value, "detach") and hasattr(value, "cpu") and hasattr(value, "numpy"):
        torch = sys.modules.get("torch")
        tensor = value.detach().cpu()
        if tensor.is_complex():
            raise _Unreadable("a complex tensor")
        eps = float(np.finfo(float).eps)
        if tensor.is_floating_point():
            eps = float(torch.finfo(tensor.dtype).eps) if torch is not None else eps
            if tensor.dtype not in (
                getattr(torch, "float32", None),
                getattr(torch, "float64", None),
            ):
                tensor = tensor.float()
        return tensor.numpy(), max(eps, float(np.finfo(float).eps))
    if isinstance(value, (list, tuple)):
        if not value:
            return np.asarray(value, dtype=float), float(np.finfo(float).eps)
        parts = [_to_numpy(v) for v in value]
        shapes = {p.shape for p, _ in parts}
        if len(shapes) > 1:
            raise _Unreadable(
                f"a ragged {type(value).__name__} (entries of shapes {sorted(shapes)})"
            )
        return np.stack([p for p, _ in parts]), max(e for _, e in parts)
    try:
        array = np.asarray(value)
    except Exception as error:  # an object NumPy cannot read is the student's to fix
        raise _Unreadable(f"a {type(value).__name__}") from error
    if array.dtype == object or array.dtype.kind in "USVMmOc":
        raise _Unreadable(
            f"a {type(value).__name__}" + (" of complex numbers" if array.dtype.kind == "c" else "")
        )
    if array.dtype.kind == "f":
        return array, max(float(np.finfo(array.dtype).eps), float(np.finfo(float).eps))
    return array, float(np.finfo(float).eps)


def _scale(case: Case, expected: Sequence[np.ndarray]) -> float:
    """The size of the numbers of a case: the largest magnitude among its floats and results."""
    values = [
        np.abs(e[np.isfinite(e)]).max()
        for e in expected
        if e.dtype.kind == "f" and np.isfinite(e).any()
    ]
    for arg in (*case.args, *case.kwargs.values()):
        if isinstance(arg, (float, np.floating)) and np.isfinite(arg):
            values.append(abs(float(arg)))
        elif isinstance(arg, np.ndarray) and arg.dtype.kind == "f" and np.isfinite(arg).any():
            values.append(float(np.abs(arg[np.isfinite(arg)]).max()))
    return max(values, default=1.0)


@dataclass(frozen=True)
class _Tolerance:
    atol: float
    rtol: float

    def widened(self, eps: float, scale: float) -> _Tolerance:
        """The tolerance for an answer of machine epsilon ``eps``: float64 keeps the checker's."""
        if eps <= float(np.finfo(float).eps):
            return self
        return _Tolerance(max(self.atol, ULPS * eps * scale), max(self.rtol, ULPS * eps))


def _as_mask(got: np.ndarray) -> np.ndarray | None:
    """A 0/1 or boolean array as booleans; None when it holds anything else."""
    if got.dtype == bool:
        return got
    if got.dtype.kind in "iuf" and np.isin(got, (0, 1)).all():
        return got.astype(bool)
    return None


def _agrees(got: np.ndarray, expected: np.ndarray, tol: _Tolerance) -> bool:
    if got.shape != expected.shape:
        return False
    if expected.dtype == bool:
        mask = _as_mask(got)
        return mask is not None and bool(np.array_equal(mask, expected))
    if got.dtype == bool:
        got = got.astype(int)
    try:
        return bool(
            np.allclose(
                got.astype(float), expected.astype(float), tol.rtol, tol.atol, equal_nan=True
            )
        )
    except (TypeError, ValueError):
        return False


# --------------------------------------------------------------------------- describing answers


def _describe(value: np.ndarray) -> str:
    """The whole array (no elision up to 200 entries) on one line; masks as True/False."""
    if value.dtype == bool:
        text = np.array2string(value, threshold=200, max_line_width=10_000)
    elif value.dtype.kind in "iu":
        text = np.array2string(value, threshold=200, max_line_width=10_000)
    else:
        text = np.array2string(
            value.astype(float), precision=5, threshold=200, max_line_width=10_000
        )
    return " ".join(text.split())


def _entry(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return f"{float(value):.10g}"


def _differences(got: np.ndarray, expected: np.ndarray, tol: _Tolerance, limit: int = 8) -> str:
    """The entries where ``got`` and ``expected`` differ: index, expected, got, difference."""
    if expected.dtype == bool:
        got_b = _as_mask(got)
        wrong = np.argwhere(got_b != expected) if got_b is not None else np.empty((0, got.ndim))
        diff = None
    else:
        g, e = got.astype(float), expected.astype(float)
        close = np.isclose(g, e, tol.rtol, tol.atol, equal_nan=True)
        wrong = np.argwhere(~close)
        diff = g - e
    parts = []
    for index in wrong[:limit]:
        at = tuple(int(i) for i in index)
        where = str(at[0]) if len(at) == 1 else str(at)
        text = f"[{where}] expected {_entry(expected[at])}, got {_entry(got[at])}"
        if diff is not None:
            text += f" (difference {diff[at]:.2g})"
        parts.append(text)
    more = f" and {len(wrong) - limit} more" if len(wrong) > limit else ""
    return "; ".join(parts) + more


def _mismatch(
    got: np.ndarray, expected: np.ndarray, got_eps: float, tol: _Tolerance, scale: float
) -> str:
    """Why ``got`` is not ``expected``, for an answer no known mistake explains."""
    if got.shape != expected.shape:
        shapes = f"shape {got.shape}, expected {expected.shape}"
        return f"{shapes}: got {_describe(got)}, expected {_describe(expected)}"
    if expected.dtype == bool and _as_mask(got) is None:
        return f"expected a boolean mask (True/False), got {_describe(got)}"
    shown = _as_mask(got) if expected.dtype == bool else got
    message = f"expected {_describe(expected)}, got {_describe(shown)}"
    if _describe(expected) == _describe(shown):
        message += f"; they differ at {_differences(got, expected, tol)}"
    if expected.dtype.kind == "f" and got.dtype.kind in "fiu":
        with np.errstate(invalid="ignore"):
            error = float(np.nanmax(np.abs(got.astype(float) - expected))) / max(scale, 1e-300)
        if np.isfinite(error) and error < 1e-5 and got_eps <= float(np.finfo(float).eps):
            message += f"; your answer agrees to {error:.0e} (relative): computed in float32?"
        elif np.isfinite(error) and error < 1e-3:
            message += f"; close but not equal (relative difference {error:.0e})"
    return message


# --------------------------------------------------------------------------- running answers


def _code_of(obj: Any) -> CodeType | None:
    """The code object a callable runs: a function's, a method's, a partial's, a __call__'s."""
    for candidate in (obj, getattr(obj, "__func__", None), getattr(obj, "func", None)):
        code = getattr(candidate, "__code__", None)
        if isinstance(code, CodeType):
            return code
    call = type(obj).__dict__.get("__call__") if callable(obj) else None
    return getattr(call, "__code__", None)


class _ReferenceGuard:
    """A profiler that notes calls into sampy's implementation not made through the case.

    Calls inside a callable the case passed in (``grad``, ``hvp``) are the case's own business
    and free; any other call into ``sampy.optim``, ``sampy.torch`` or ``sampy.exercises`` means
    the answer borrows sampy's.
    """

    def __init__(self, passed_in: Sequence[Any]) -> None:
        self.allowed = {code for code in map(_code_of, passed_in) if code is not None}
        self.inside: set[int] = set()  # ids of the frames of passed-in callables now running
        self.culprit: str | None = None
        self._guarded: dict[CodeType, bool] = {}

    def _is_guarded(self, code: CodeType) -> bool:
        if code not in self._guarded:
            self._guarded[code] = os.path.abspath(code.co_filename).startswith(_GUARDED)
        return self._guarded[code]

    def __call__(self, frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            code = frame.f_code
            if code in self.allowed:
                self.inside.add(id(frame))
            elif not self.inside and self.culprit is None and self._is_guarded(code):
                module = frame.f_globals.get("__name__", "sampy")
                self.culprit = f"{module}.{getattr(code, 'co_qualname', code.co_name)}"
        elif event == "return" and self.inside:
            self.inside.discard(id(frame))


def _student_frames(error: BaseException) -> str:
    """The frames of the traceback in the student's code (not sampy's, NumPy's or Python's)."""
    frames = traceback.extract_tb(error.__traceback__)[1:]  # the first is the checker's call
    own = [f for f in frames if not os.path.abspath(f.filename).startswith(_LIBRARY)]
    lines = [
        f'File "{f.filename}", line {f.lineno}, in {f.name}'
        + (f": {f.line.strip()}" if f.line else "")
        for f in own[-3:]
    ]
    return (" (" + "; ".join(lines) + ")") if lines else ""


@dataclass(frozen=True)
class _Outcome:
    """What the student's function did on one case: a value, or the reason there is none."""

    value: Any = None
    failure: CheckResult | None = None


def _call_student(student: Callable[..., Any], case: Case) -> _Outcome:
    args, kwargs = copy.deepcopy((case.args, case.kwargs))
    guard = _ReferenceGuard([*case.args, *case.kwargs.values(), *args, *kwargs.values()])
    previous = sys.getprofile()
    sys.setprofile(guard)
    try:
        value = student(*args, **kwargs)
    except Exception as error:  # the student's bug is feedback, not a crash
        sys.setprofile(previous)
        if guard.culprit is not None:
            return _Outcome(failure=_refused(case, guard.culprit))
        message = f"your function raised {type(error).__name__}: {error}{_student_frames(error)}"
        return _Outcome(failure=CheckResult(case.name, False, message, "raised"))
    finally:
        replaced = sys.getprofile() is not guard
        sys.setprofile(previous)
    if replaced and guard.culprit is None:
        guard.culprit = "sys.setprofile, which switched off the checker's watch for such calls"
    if guard.culprit is not None:
        return _Outcome(failure=_refused(case, guard.culprit))
    return _Outcome(value=value)


def _refused(case: Case, culprit: str) -> CheckResult:
    message = (
        f"your function calls sampy's own implementation ({culprit}): write the computation "
        "yourself; only the callables the case passes in (such as grad) may be called"
    )
    return CheckResult(case.name, False, message, "refused")


def _split(value: Any, outputs: Sequence[str], expected: Sequence[np.ndarray]) -> list[Any] | str:
    """The student's outputs, one per name in ``outputs``; or why they cannot be read so."""
    n = len(outputs)
    names = ", ".join(outputs)
    if isinstance(value, (tuple, list)):
        if len(value) == n:
            return list(value)
        return f"your function returns {len(value)} values, expected {n}: ({names})"
    try:
        array, _ = _to_numpy(value)
    except _Unreadable as error:
        return f"your function returns {error}, expected {n} values: ({names})"
    if array.ndim == expected[0].ndim + 1 and array.shape[0] == n:
        return list(array)  # the outputs stacked in one array: accepted as they are
    return f"your function returns one array (shape {array.shape}), expected {n} values: ({names})"


def _parts(value: Any, outputs: Sequence[str] | None) -> list[np.ndarray]:
    """A reference's or a mistake's result as arrays, one per output."""
    parts = list(value) if outputs else [value]
    return [_to_numpy(p)[0] for p in parts]


def _check_case(
    case: Case,
    student: Callable[..., Any],
    reference: Callable[..., Any],
    mistakes: Sequence[Mistake],
    tolerance: _Tolerance,
    outputs: Sequence[str] | None,
) -> CheckResult | _Matched:
    try:
        expected = _parts(
            reference(*copy.deepcopy(case.args), **copy.deepcopy(case.kwargs)), outputs
        )
    except Exception as error:  # never the student's fault
        return _checker_failed(case, error)
    try:
        outcome = _call_student(student, case)
    except Exception as error:  # copying the case or installing the guard: the checker's
        return _checker_failed(case, error)
    if outcome.failure is not None:
        return outcome.failure
    value = outcome.value
    if value is None:
        return CheckResult(
            case.name, False, "your function returns None: did you forget `return`?", "none"
        )
    raw = [value]
    if not outputs and isinstance(value, tuple) and len(value) != 1:
        shape = expected[0].shape
        what = "a number" if shape == () else f"one array of shape {shape}"
        message = f"your function returns {len(value)} values (a tuple), expected {what}"
        return CheckResult(case.name, False, message, "outputs")
    if outputs:
        raw = _split(value, outputs, expected)
        if isinstance(raw, str):
            return CheckResult(case.name, False, raw, "outputs")
    got = []
    for name, part in zip(outputs or [""], raw, strict=True):
        if part is None:
            return CheckResult(
                case.name, False, f"{name} is None: did you forget to compute it?", "none"
            )
        try:
            got.append(_to_numpy(part))
        except _Unreadable as error:
            label = f"{name}: " if name else ""
            shape = expected[len(got)].shape
            what = "a number" if shape == () else f"an array of shape {shape}"
            return CheckResult(
                case.name, False, f"{label}your function returns {error}, expected {what}", "wrong"
            )
    try:
        scale = _scale(case, expected)
        tolerances = [tolerance.widened(eps, scale) for _, eps in got]
        if all(_agrees(g, e, t) for (g, _), e, t in zip(got, expected, tolerances, strict=True)):
            return CheckResult(case.name, True)
        matches = []
        for index, mistake in enumerate(mistakes):
            try:
                wrong = _parts(
                    mistake.function(*copy.deepcopy(case.args), **copy.deepcopy(case.kwargs)),
                    outputs,
                )
            except Exception:  # a mistake that cannot happen on this case explains nothing
                continue
            if len(wrong) == len(got) and all(
                _agrees(g, w, t) for (g, _), w, t in zip(got, wrong, tolerances, strict=True)
            ):
                matches.append(index)
        if matches:
            return _Matched(case.name, tuple(matches))
        for name, (g, eps), e, t in zip(outputs or [""], got, expected, tolerances, strict=True):
            if not _agrees(g, e, t):
                label = f"{name}: " if name else ""
                return CheckResult(
                    case.name, False, label + _mismatch(g, e, eps, t, scale), "wrong"
                )
    except Exception as error:  # a failure of the comparison is the checker's
        return _checker_failed(case, error)
    return _checker_failed(case, RuntimeError("no output differs, yet the answer was not accepted"))


@dataclass(frozen=True)
class _Matched:
    """A wrong answer that one or more known mistakes reproduce on this case."""

    name: str
    mistakes: tuple[int, ...]


def _name_mistakes(
    results: Sequence[CheckResult | _Matched], mistakes: Sequence[Mistake]
) -> list[CheckResult]:
    """Name, on each case, the mistake that explains the most cases of this answer.

    Two mistakes can agree on one case (keeping every tie and rounding k up keep the same
    examples when two tie at the boundary); the one that also explains the other cases is
    what the student did, so it is named everywhere it matches.
    """
    matched = [r for r in results if isinstance(r, _Matched)]
    explained = [sum(i in r.mistakes for r in matched) for i in range(len(mistakes))]
    named = []
    for result in results:
        if isinstance(result, _Matched):
            best = max(result.mistakes, key=lambda i: (explained[i], -i))
            result = CheckResult(result.name, False, mistakes[best].explanation, "mistake")
        named.append(result)
    return named


def _checker_failed(case: Case, error: BaseException) -> CheckResult:
    message = (
        f"the checker itself failed on this case ({type(error).__name__}: {error}): this is a "
        "bug in sampy, not in your answer; please report it"
    )
    return CheckResult(case.name, False, message, "checker")


def compare_with_reference(
    exercise: str,
    student: Callable[..., Any],
    reference: Callable[..., Any],
    cases: Sequence[Case],
    mistakes: Sequence[Mistake] = (),
    *,
    atol: float = 1e-9,
    rtol: float = 1e-7,
    outputs: Sequence[str] | None = None,
) -> Feedback:
    """Run ``student`` and ``reference`` on every case; name the mistake where they differ.

    Args:
        exercise: the name shown in the feedback (the student's function's name).
        student: the student's function.
        reference: the right answer, with the student's signature.
        cases: the arguments to try; each call gets a deep copy of them.
        mistakes: typical wrong answers, tried in order where the student's answer is wrong.
        atol, rtol: the tolerance for a float64 answer (``np.allclose``); a lower-precision
            answer gets ``ULPS`` units of its own precision relative to the case's scale.
        outputs: the names of the outputs when the function returns several (a tuple); the
            reference and the mistakes then return tuples too.

    A case passes when every output agrees (same shape, close; masks equal as booleans).
    Otherwise the message names the first known mistake that matches the student's answer, or
    shows the expected and the received values (the differing entries where they print alike).
    """
    if not callable(student):
        return Feedback(
            exercise, (CheckResult("a function", False, "pass your function", "wrong"),)
        )
    tolerance = _Tolerance(atol, rtol)
    results = [
        _check_case(case, student, reference, mistakes, tolerance, outputs) for case in cases
    ]
    return Feedback(exercise, tuple(_name_mistakes(results, mistakes)))
