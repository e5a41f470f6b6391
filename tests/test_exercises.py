"""Every exercise checker accepts the reference solution and names each typical mistake."""

from __future__ import annotations

import re

import numpy as np
import pytest
from book_helpers import BOOK_ROOT, toc_docnames
from checker_corpus import mistakes_may_answer  # noqa: F401  (a fixture)

from sampy.exercises import Case, Feedback, check_sam_step, compare_with_reference
from sampy.exercises.sam_step import CASES, MISTAKES
from sampy.optim import SAM, SGD, Oracle

pytestmark = pytest.mark.usefixtures("mistakes_may_answer")


def student_sam_step(grad, w, lr, rho):
    g = grad(w)
    e = rho * g / np.linalg.norm(g)
    return w - lr * grad(w + e)


def test_sam_step_checker_accepts_a_correct_solution():
    feedback = check_sam_step(student_sam_step)
    assert feedback.passed and len(feedback.checks) == len(CASES)
    assert str(feedback).startswith("✓")


@pytest.mark.parametrize("mistake", MISTAKES, ids=lambda m: m.explanation[:20])
def test_sam_step_checker_names_each_typical_mistake(mistake):
    feedback = check_sam_step(mistake.function)
    assert not feedback.passed
    assert [c.message for c in feedback.failures] == [mistake.explanation] * len(CASES)
    assert mistake.explanation in str(feedback) and "✗" in feedback._repr_html_()


def test_the_mistakes_are_told_apart_on_every_case():
    """No two mistakes (nor a mistake and the answer) give the same output on a case."""
    from sampy.exercises.sam_step import _reference_sam_step

    for case in CASES:
        outputs = [_reference_sam_step(*case.args)] + [m.function(*case.args) for m in MISTAKES]
        for i in range(len(outputs)):
            for j in range(i):
                assert not np.allclose(outputs[i], outputs[j]), (case.name, i, j)


def test_an_unknown_error_shows_expected_and_received_and_an_exception_is_feedback():
    wrong = check_sam_step(lambda grad, w, lr, rho: w)
    assert not wrong.passed and "expected" in wrong.failures[0].message
    crash = check_sam_step(lambda grad, w, lr, rho: 1 / 0)
    assert "ZeroDivisionError" in crash.failures[0].message
    assert not check_sam_step("not a function").passed


def test_compare_with_reference_checks_shapes():
    cases = [Case("vector", (np.ones(3),))]
    same_values_other_shape = compare_with_reference("f", lambda x: x[None], lambda x: x, cases)
    assert isinstance(same_values_other_shape, Feedback) and not same_values_other_shape.passed


def test_oracle_from_gradient_drives_an_optimizer_like_a_test_function():
    f = __import__("sampy").functions.get("himmelblau")
    x = np.array([0.3, -0.2])
    by_hand = Oracle.from_gradient(f.grad, f)
    opt = SAM(SGD(lr=0.01), rho=0.05)
    stepped, _ = opt.step(x, opt.init(x), by_hand)
    expected, _ = opt.step(x, opt.init(x), Oracle(f))
    np.testing.assert_array_equal(stepped, expected)
    assert by_hand.calls == 2
    assert np.isnan(Oracle.from_gradient(f.grad)(x)[0])


# --------------------------------------------------------------------------- difficulty marks
# Every {exercise} of the book carries exactly one difficulty class, `:class: difficulty-1`
# (★), `difficulty-2` (★★) or `difficulty-3` (★★★), among its options; the collection page
# (book/exercises.md) shows it as stars.

EXERCISE_OPTIONS = re.compile(
    r"^(?:`{3,}|:{3,})\{exercise(?:-start)?\}[^\n]*\n((?:[ \t]*:[\w-]+:.*\n)*)", re.M
)
DIFFICULTIES = {"difficulty-1", "difficulty-2", "difficulty-3"}


def exercise_difficulties(source: str) -> list[tuple[str, list[str]]]:
    """(label, the difficulty classes among its options) for every exercise of a MyST source."""
    found = []
    for options in EXERCISE_OPTIONS.findall(source):
        label = re.search(r"^[ \t]*:label:\s*(\S+)", options, re.M)
        classes = " ".join(re.findall(r"^[ \t]*:class:(.*)$", options, re.M)).split()
        marks = [c for c in classes if c.startswith("difficulty")]
        found.append((label[1] if label else "(no label)", marks))
    return found


def test_the_difficulty_reader_finds_marks_only_among_the_options():
    source = (
        "```{exercise} A\n:label: a\n:class: difficulty-2\n\nText.\n```\n\n"
        "````{exercise}\n:label: b\n\nA difficulty-1 in the text is no mark.\n````\n\n"
        ":::{exercise-start} C\n:class: dropdown difficulty-1 difficulty-3\n:label: c\n:::\n"
        "```{solution} a\n:class: difficulty-2\n```\n"
    )
    assert exercise_difficulties(source) == [
        ("a", ["difficulty-2"]),
        ("b", []),
        ("c", ["difficulty-1", "difficulty-3"]),
    ]


def test_every_exercise_of_the_book_has_exactly_one_difficulty():
    """Every exercise of every page of _toc.yml: one mark among difficulty-1/2/3."""
    problems, counted = [], 0
    for docname in toc_docnames(BOOK_ROOT):
        path = BOOK_ROOT / f"{docname}.md"
        if not path.is_file():
            continue
        for label, marks in exercise_difficulties(path.read_text(encoding="utf-8")):
            counted += 1
            if len(marks) != 1 or marks[0] not in DIFFICULTIES:
                problems.append(f"{docname}#{label}: {marks or 'no difficulty class'}")
    assert counted > 50, f"only {counted} exercises found: is the reader broken?"
    assert not problems, f"{len(problems)} exercises without exactly one difficulty:\n" + "\n".join(
        problems
    )


def collection_markdown(monkeypatch) -> str:
    """The table that book/exercises.md generates, by running its generating cell in book/."""
    source = (BOOK_ROOT / "book" / "exercises.md").read_text(encoding="utf-8")
    cells = re.findall(r"^```\{code-cell\}[^\n]*\n(.*?)^```$", source, re.M | re.S)
    [cell] = [c for c in cells if 'THIS_PAGE = "book/exercises"' in c]
    cell = re.sub(r"\A---\n.*?\n---\n", "", cell, flags=re.S)  # the cell's YAML options
    monkeypatch.chdir(BOOK_ROOT / "book")
    namespace: dict = {}
    exec(compile(cell, "book/exercises.md", "exec"), namespace)
    return namespace["summary"] + "\n".join(namespace["lines"])


def test_the_collection_shows_each_exercise_s_own_difficulty_as_stars(monkeypatch):
    table = collection_markdown(monkeypatch)
    shown = dict(re.findall(r"^\| \{ref\}`([^`]+)` \| ([★—]+) \|", table, re.M))
    stars = {"difficulty-1": "★", "difficulty-2": "★★", "difficulty-3": "★★★"}
    checked = 0
    for docname in toc_docnames(BOOK_ROOT):
        path = BOOK_ROOT / f"{docname}.md"
        if docname == "book/exercises" or not path.is_file():
            continue
        for label, marks in exercise_difficulties(path.read_text(encoding="utf-8")):
            expected = stars[marks[0]] if len(marks) == 1 and marks[0] in stars else "—"
            assert shown.get(label) == expected, (docname, label, shown.get(label), expected)
            checked += 1
    assert checked == len(shown) > 50
    assert re.search(r"\*\*\d+ exercises\*\* \(\d+ ★, \d+ ★★, \d+ ★★★\)", table)
