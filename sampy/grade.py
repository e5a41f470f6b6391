"""Grade a folder of submissions: ``python -m sampy.grade SUBMISSIONS/``.

``SUBMISSIONS`` holds one ``.py`` or ``.ipynb`` file per student (the student's id is the
file's stem) or one sub-folder per student. Every checked exercise of the book
(``sampy.exercises.CHECKED_EXERCISES``) is graded by its checker, each student in processes
of their own with a time and a memory limit, and three files are written to ``--out``:
``grades.csv`` (one row per student, one column of points per exercise, a total),
``feedback.md`` and ``feedback.html`` (each exercise's outcome and the checker's messages).

Outcomes: passed, failed (the checker's diagnosis), missing (no function of that name, or
the student edition's ``raise NotImplementedError`` left as handed out), timed out, out of
memory, crashed (the submission raised while loading, or its process died; the traceback is
trimmed to the student's own code), checker error (sampy's fault). Points are all or nothing.

The exit status is 0 whatever the students' results; 2 when the grader cannot run (no such
folder, an unknown ``--only``, a ``--memory`` too small for Python itself), with a message.

This isolates time, memory, the working directory and crashes; it is **not** a security
sandbox (see ``sampy.grading``): grade untrusted code in a container or a separate account.
A teacher who uses nbgrader can grade with it instead, from the teacher edition's notebooks
and their nbgrader metadata (see ``sampy.grading``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from sampy.grading import (
    GraderError,
    Limits,
    StudentResult,
    SubmissionsError,
    grade_folder,
    select_exercises,
    write_reports,
)
from sampy.grading.report import outcome_counts, total_points


def _positive(kind: type) -> object:
    def parse(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
        return value

    return parse


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m sampy.grade``."""
    p = argparse.ArgumentParser(
        prog="python -m sampy.grade",
        description="Grade a folder of student submissions with sampy's exercise checkers.",
        epilog="Each student runs in processes of their own with time and memory limits, in a "
        "temporary folder; this is not a security sandbox: grade untrusted code in a container "
        "or under a user account of its own.",
    )
    p.add_argument("submissions", type=Path, help="one .py/.ipynb file or sub-folder per student")
    p.add_argument(
        "--out", type=Path, default=Path("graded"), metavar="DIR", help="reports (./graded)"
    )
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="LABEL",
        help="grade only this exercise (a label, a function name, or the start of labels: "
        "dir- for a chapter's); repeat for several",
    )
    p.add_argument(
        "--jobs", type=_positive(int), default=1, metavar="N", help="students graded at once (1)"
    )
    p.add_argument(
        "--timeout",
        type=_positive(float),
        default=20.0,
        metavar="SECONDS",
        help="seconds per exercise (20)",
    )
    p.add_argument(
        "--load-timeout",
        type=_positive(float),
        default=60.0,
        metavar="SECONDS",
        help="seconds for running a submission's own code (60)",
    )
    p.add_argument(
        "--memory",
        type=_positive(int),
        default=2048,
        metavar="MB",
        help="address space per submission process, in MiB (2048; torch alone takes ~700)",
    )
    p.add_argument("--quiet", action="store_true", help="no line per student on stderr")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the grader; the exit status (0 when it ran, 2 when it could not)."""
    args = parser().parse_args(argv)
    try:
        exercises = select_exercises(args.only)
    except ValueError as error:
        print(f"sampy.grade: error: {error}", file=sys.stderr)
        return 2
    limits = Limits(timeout=args.timeout, load_timeout=args.load_timeout, memory_mb=args.memory)

    def progress(student: StudentResult) -> None:
        if not args.quiet:
            points = total_points(student, exercises)
            available = sum(e.points for e in exercises)
            print(f"{student.student}: {points}/{available}", file=sys.stderr)

    try:
        students = grade_folder(args.submissions, exercises, limits, args.jobs, progress)
    except (SubmissionsError, GraderError) as error:
        print(f"sampy.grade: error: {error}", file=sys.stderr)
        return 2
    paths = write_reports(args.out, students, exercises)
    counts = ", ".join(f"{n} {o.value}" for o, n in outcome_counts(students).items() if n)
    print(f"graded {len(students)} student(s): {counts}", file=sys.stderr)
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
