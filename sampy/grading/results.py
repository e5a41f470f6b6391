"""What grading one exercise of one submission can come to, and the points it earns."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Outcome(StrEnum):
    """How one exercise of one submission ended."""

    PASSED = "passed"
    FAILED = "failed"  # the checker ran and named what is wrong
    MISSING = "missing"  # no function of that name, or one that raises NotImplementedError
    TIMED_OUT = "timed out"
    OUT_OF_MEMORY = "out of memory"
    CRASHED = "crashed"  # the submission itself raised, or its process died
    CHECKER_ERROR = "checker error"  # the checker raised: sampy's fault, not the student's


@dataclass(frozen=True)
class ExerciseResult:
    """One exercise of one submission: its outcome and what to tell the student.

    ``messages`` are the checker's lines for a failure (one per failed check), or the trimmed
    traceback and the limit that was hit for the other outcomes.
    """

    grade_id: str
    outcome: Outcome
    messages: tuple[str, ...] = ()

    def points(self, available: int) -> int:
        """All or nothing: a checker's cases are not of equal weight, so no partial credit."""
        return available if self.outcome is Outcome.PASSED else 0


@dataclass(frozen=True)
class StudentResult:
    """Every graded exercise of one student, and what went wrong while loading their code."""

    student: str
    results: tuple[ExerciseResult, ...]
    load_problems: tuple[str, ...] = field(default=())

    def result(self, grade_id: str) -> ExerciseResult:
        """The result for the exercise ``grade_id``."""
        for result in self.results:
            if result.grade_id == grade_id:
                return result
        raise KeyError(f"{self.student} has no result for {grade_id!r}")
