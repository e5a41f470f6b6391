"""The bSAM exercise checker accepts the official update and names each typical mistake."""

from __future__ import annotations

import numpy as np
import pytest
from checker_corpus import mistakes_may_answer  # noqa: F401  (a fixture)

from sampy.exercises.bayes import (
    CASES,
    MISTAKES,
    _reference_bsam_update,
    check_bsam_precision_update,
)

pytestmark = pytest.mark.usefixtures("mistakes_may_answer")


def student_bsam_update(w, m, s, g, g_adv, lr, betas, damping, weight_decay):
    beta1, beta2 = betas
    m = beta1 * m + (1 - beta1) * (g_adv + weight_decay * w)
    w = w - lr * m / s
    s = beta2 * s + (1 - beta2) * (np.sqrt(s) * np.abs(g) + damping + weight_decay)
    return w, m, s


def test_checker_accepts_a_correct_solution():
    feedback = check_bsam_precision_update(student_bsam_update)
    assert feedback.passed and len(feedback.checks) == len(CASES)


@pytest.mark.parametrize("mistake", MISTAKES, ids=lambda m: m.explanation[:24])
def test_checker_names_each_typical_mistake(mistake):
    feedback = check_bsam_precision_update(lambda *a: tuple(mistake.function(*a)))
    assert not feedback.passed
    assert [c.message for c in feedback.failures] == [mistake.explanation] * len(CASES)


def test_the_mistakes_are_told_apart_on_every_case():
    for case in CASES:
        outputs = [_reference_bsam_update(*case.args)] + [m.function(*case.args) for m in MISTAKES]
        for i in range(len(outputs)):
            for j in range(i):
                assert not np.allclose(outputs[i], outputs[j], rtol=1e-6, atol=0), (case.name, i, j)


def test_reference_is_the_spec_recursion():
    """The reference (driven through sampy.optim.BSAM) equals the official update, steps 6–8."""
    for case in CASES:
        expected = np.stack(student_bsam_update(*case.args))
        np.testing.assert_allclose(_reference_bsam_update(*case.args), expected, rtol=1e-14)


def test_wrong_shapes_errors_and_non_functions_fail():
    assert not check_bsam_precision_update(lambda *a: (a[0], a[1])).passed
    crash = check_bsam_precision_update(lambda *a: 1 / 0)
    assert "ZeroDivisionError" in crash.failures[0].message
    assert not check_bsam_precision_update(None).passed
