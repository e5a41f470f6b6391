"""Grading a folder of submissions: every checked exercise of every student, in parallel."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sampy.exercises import CHECKED_EXERCISES, CheckedExercise, checked_exercise
from sampy.grading.discover import Submission, discover_submissions
from sampy.grading.results import StudentResult
from sampy.grading.sandbox import Limits, grade_submission


def select_exercises(keys: Sequence[str] = ()) -> tuple[CheckedExercise, ...]:
    """The checked exercises named by ``keys``, in book order; all of them when ``keys`` is
    empty.

    A key is a label (a label shared by two functions selects both), a grade id, a function
    name, or the start of labels: ``dir-`` selects every checked exercise of the direction
    chapter, whose labels all start so, for grading that chapter's notebooks.

    Raises:
        ValueError: a key names no checked exercise (the message lists the labels).
    """
    if not keys:
        return CHECKED_EXERCISES
    chosen = set()
    for key in keys:
        by_prefix = {e.grade_id for e in CHECKED_EXERCISES if e.label.startswith(key)}
        try:
            entry = checked_exercise(key)
        except KeyError as error:
            if not by_prefix:
                raise ValueError(f"--only: {error.args[0]}") from None
            chosen |= by_prefix
            continue
        chosen |= {e.grade_id for e in CHECKED_EXERCISES if key in (e.label, e.grade_id)}
        chosen.add(entry.grade_id)
    return tuple(entry for entry in CHECKED_EXERCISES if entry.grade_id in chosen)


def grade_folder(
    folder: Path | str,
    exercises: Sequence[CheckedExercise] = CHECKED_EXERCISES,
    limits: Limits | None = None,
    jobs: int = 1,
    progress: Callable[[StudentResult], None] | None = None,
) -> list[StudentResult]:
    """Grade every submission of ``folder`` on ``exercises``, ``jobs`` students at a time.

    Each student runs in processes of their own (``sampy.grading.sandbox``) under ``limits``
    (default ``Limits()``); the results come back sorted by student id. ``progress`` is
    called as each student is done.
    """
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a whole number >= 1, got {jobs!r}")
    submissions = discover_submissions(folder)
    grade_ids = [entry.grade_id for entry in exercises]

    limits = limits or Limits()

    def grade(submission: Submission) -> StudentResult:
        result = grade_submission(submission, grade_ids, limits)
        if progress is not None:
            progress(result)
        return result

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(grade, submissions))
