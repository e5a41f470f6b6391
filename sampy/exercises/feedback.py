"""The machinery every checker shares: cases, known mistakes, and the feedback they produce."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class CheckResult:
    """One check: its name, whether it passed, and what to tell the student."""

    name: str
    passed: bool
    message: str = ""


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

    def __str__(self) -> str:
        if self.passed:
            return f"✓ {self.exercise}: all {len(self.checks)} checks passed"
        lines = [f"✗ {self.exercise}: {len(self.failures)} of {len(self.checks)} checks failed"]
        lines += [f"  - {c.name}: {c.message}" for c in self.failures]
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


def _close(a: Any, b: Any, atol: float, rtol: float) -> bool:
    try:
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    except (TypeError, ValueError):
        return False
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True))


def _describe(value: Any) -> str:
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        return f"a {type(value).__name__}"
    return np.array2string(array, precision=5, threshold=6)


def compare_with_reference(
    exercise: str,
    student: Callable[..., Any],
    reference: Callable[..., Any],
    cases: Sequence[Case],
    mistakes: Sequence[Mistake] = (),
    *,
    atol: float = 1e-9,
    rtol: float = 1e-7,
) -> Feedback:
    """Run ``student`` and ``reference`` on every case; name the mistake where they differ.

    A case passes when the two outputs agree (same shape, ``np.allclose``). Otherwise the
    message names the first known mistake whose output matches the student's, or shows the
    expected and the received values. An exception in the student's code fails its case.
    """
    if not callable(student):
        return Feedback(exercise, (CheckResult("a function", False, "pass your function"),))
    results = []
    for case in cases:
        expected = reference(*case.args, **case.kwargs)
        try:
            got = student(*case.args, **case.kwargs)
        except Exception as error:  # the student's bug is feedback, not a crash
            message = f"your function raised {type(error).__name__}: {error}"
            results.append(CheckResult(case.name, False, message))
            continue
        if _close(got, expected, atol, rtol):
            results.append(CheckResult(case.name, True))
            continue
        for mistake in mistakes:
            if _close(got, mistake.function(*case.args, **case.kwargs), atol, rtol):
                results.append(CheckResult(case.name, False, mistake.explanation))
                break
        else:
            message = f"expected {_describe(expected)}, got {_describe(got)}"
            results.append(CheckResult(case.name, False, message))
    return Feedback(exercise, tuple(results))
