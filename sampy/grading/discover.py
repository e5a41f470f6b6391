"""Finding the submissions in a folder: one file or one sub-folder per student."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SUFFIXES = (".py", ".ipynb")
# Editors' and Jupyter's leftovers are not submissions.
_IGNORED_DIRECTORIES = {"__pycache__", ".ipynb_checkpoints"}


class SubmissionsError(ValueError):
    """The submissions folder cannot be graded as it is (the teacher's input, not a student's)."""


@dataclass(frozen=True)
class Submission:
    """One student's work.

    Attributes:
        student: the student's id, the file's stem or the sub-folder's name.
        source: what is copied into the student's sandbox: the single file, or the whole
            sub-folder (so that the student's own helper modules and data files are there).
        files: the code to load, relative to the sandbox, in the order it is run.
    """

    student: str
    source: Path
    files: tuple[str, ...]


def _code_files(folder: Path) -> list[Path]:
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file()
        and path.suffix in SUFFIXES
        and not _IGNORED_DIRECTORIES.intersection(path.relative_to(folder).parts)
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )


def discover_submissions(folder: Path | str) -> list[Submission]:
    """Every submission in ``folder``, sorted by student id.

    A ``.py`` or ``.ipynb`` file directly in ``folder`` is one student (id: the file's stem);
    a sub-folder is one student (id: its name) whose ``.py`` and ``.ipynb`` files are all
    loaded, in sorted order, into one namespace. Hidden files, ``__pycache__`` and
    ``.ipynb_checkpoints`` are skipped.

    Raises:
        SubmissionsError: ``folder`` is not a folder, holds no submission, or holds two for one
            student (``alice.py`` and ``alice.ipynb``).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SubmissionsError(
            f"SUBMISSIONS must be a folder with one .py or .ipynb file (or one sub-folder) per "
            f"student, got {str(folder)!r}, which is not a folder"
        )
    found: dict[str, Submission] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or entry.name in _IGNORED_DIRECTORIES:
            continue
        if entry.is_dir():
            files = _code_files(entry)
            if not files:
                continue
            submission = Submission(
                entry.name, entry, tuple(path.relative_to(entry).as_posix() for path in files)
            )
        elif entry.is_file() and entry.suffix in SUFFIXES:
            submission = Submission(entry.stem, entry, (entry.name,))
        else:
            continue
        if submission.student in found:
            other = found[submission.student]
            raise SubmissionsError(
                f"two submissions for the student {submission.student!r}: "
                f"{other.source} and {entry}; keep one of them"
            )
        found[submission.student] = submission
    if not found:
        raise SubmissionsError(
            f"no submission in {str(folder)!r}: expected one .py or .ipynb file, or one "
            f"sub-folder, per student"
        )
    return list(found.values())
