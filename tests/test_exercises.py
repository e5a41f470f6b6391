"""Every exercise checker accepts the reference solution and names each typical mistake."""

from __future__ import annotations

import numpy as np
import pytest

from sampy.exercises import Case, Feedback, check_sam_step, compare_with_reference
from sampy.exercises.sam_step import CASES, MISTAKES
from sampy.optim import SAM, SGD, Oracle


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
    from sampy.exercises.sam_step import reference_sam_step

    for case in CASES:
        outputs = [reference_sam_step(*case.args)] + [m.function(*case.args) for m in MISTAKES]
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
