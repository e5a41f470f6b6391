"""The checkpoint checker accepts the reference and names every typical mistake."""

from __future__ import annotations

import numpy as np
import pytest
from checker_corpus import mistakes_may_answer  # noqa: F401  (a fixture)

from sampy.exercises.anatomy import (
    CASES,
    MISTAKES,
    _reference_checkpoints,
    check_checkpoints,
)
from sampy.optim.checkpoints import checkpoints

pytestmark = pytest.mark.usefixtures("mistakes_may_answer")


def student_checkpoints(g, g_adv):
    out = np.zeros(np.shape(g), dtype=int)
    safe = np.where(g == 0, 1.0, g)
    r = np.where(g == 0, np.nan, g_adv / safe)
    out[r > 1] = 1
    out[(0 < r) & (r < 1)] = 2
    out[r < -1] = 3
    out[(-1 < r) & (r < 0)] = 4
    return out


def test_the_checker_accepts_a_from_scratch_solution_and_the_reference():
    for solution in (student_checkpoints, _reference_checkpoints):
        feedback = check_checkpoints(solution)
        assert feedback.passed and len(feedback.checks) == len(CASES), str(feedback)


@pytest.mark.parametrize("mistake", MISTAKES, ids=lambda m: m.explanation[:25])
def test_the_checker_names_each_typical_mistake_where_it_shows(mistake):
    feedback = check_checkpoints(mistake.function)
    assert not feedback.passed
    differs = [
        not np.array_equal(mistake.function(*c.args), _reference_checkpoints(*c.args))
        for c in CASES
    ]
    assert sum(differs) >= 2
    for check, shows in zip(feedback.checks, differs, strict=True):
        assert check.passed is (not shows)
        if shows:
            assert check.message == mistake.explanation


def test_the_cases_tell_every_mistake_apart_on_some_case():
    for case in CASES:
        outputs = [_reference_checkpoints(*case.args)] + [m.function(*case.args) for m in MISTAKES]
        assert not any(np.array_equal(outputs[0], o) for o in outputs[1:]) or case.name != (
            "boundaries r = ±1 and r = 0"
        )
    boundary = next(c for c in CASES if c.name.startswith("boundaries"))
    outs = [_reference_checkpoints(*boundary.args)] + [m.function(*boundary.args) for m in MISTAKES]
    for i in range(len(outs)):
        for j in range(i):
            assert not np.array_equal(outs[i], outs[j]), (i, j)


def test_reference_agrees_with_the_optimizer_module_away_from_tiny_gradients():
    rng = np.random.default_rng(3)
    g, g_adv = rng.standard_normal((2, 50, 40))
    np.testing.assert_array_equal(_reference_checkpoints(g, g_adv), checkpoints(g, g_adv))


def test_an_exception_is_feedback_not_a_crash():
    feedback = check_checkpoints(lambda g, g_adv: 1 / 0)
    assert not feedback.passed and "ZeroDivisionError" in feedback.failures[0].message
