"""The checked-exercise catalogue matches the book: labels, order, functions and checkers."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

import sampy.exercises
from sampy.exercises import CHECKED_EXERCISES, CheckedExercise, checked_exercise

ROOT = Path(__file__).resolve().parents[1]
EXERCISE = re.compile(
    r"^(?P<fence>`{3,}|:{3,})\{exercise\}[^\n]*\n(?P<body>.*?)^(?P=fence)\s*$", re.M | re.S
)


def chapters() -> list[Path]:
    """The book's chapters in reading order (``_toc.yml``)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [entry["file"] for part in toc["parts"] for entry in part["chapters"]]
    return [ROOT / f"{name}.md" for name in files if (ROOT / f"{name}.md").is_file()]


def book_exercises() -> list[tuple[str, str]]:
    """(label, statement) of every labelled exercise, in reading order."""
    found = []
    for chapter in chapters():
        for match in EXERCISE.finditer(chapter.read_text(encoding="utf-8")):
            label = re.search(r"^:label:\s*(\S+)", match["body"], re.M)
            if label:
                found.append((label[1], match["body"]))
    return found


def test_every_label_exists_in_the_book_in_book_order():
    labels = [label for label, _ in book_exercises()]
    positions = [labels.index(entry.label) for entry in CHECKED_EXERCISES]  # ValueError if absent
    assert positions == sorted(positions)


def test_every_checker_exists_and_is_exported():
    for entry in CHECKED_EXERCISES:
        assert entry.checker in sampy.exercises.__all__, entry
        assert callable(getattr(sampy.exercises, entry.checker)), entry


@pytest.mark.parametrize("entry", CHECKED_EXERCISES, ids=lambda e: e.grade_id)
def test_signature_is_a_def_line_of_the_function_the_statement_asks_for(entry: CheckedExercise):
    tree = ast.parse(entry.signature + "\n    pass\n")
    assert tree.body[0].name == entry.function
    statement = dict(book_exercises())[entry.label]
    assert f"`{entry.function}(" in statement, "the statement names the function"
    chapter = next(c for c in chapters() if f":label: {entry.label}\n" in c.read_text())
    assert entry.checker in chapter.read_text(), "the chapter names the checker"


def test_every_exercise_whose_statement_names_a_checker_is_catalogued():
    checkers = {name for name in sampy.exercises.__all__ if name.startswith("check_")}
    named = {
        (label, checker)
        for label, statement in book_exercises()
        for checker in set(re.findall(r"\bcheck_\w+", statement)) & checkers
    }
    assert named <= {(entry.label, entry.checker) for entry in CHECKED_EXERCISES}


def test_lookup_by_label_function_and_grade_id():
    assert checked_exercise("ch-ex-looksam").function == "looksam_reuse"
    assert checked_exercise("sam_edge").checker == "check_sam_edge"
    assert checked_exercise("th-ex-stability-sam_edge").function == "sam_edge"
    assert len({entry.grade_id for entry in CHECKED_EXERCISES}) == len(CHECKED_EXERCISES)
    with pytest.raises(KeyError, match="no checked exercise 'nope'"):
        checked_exercise("nope")
