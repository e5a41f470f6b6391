"""The chapter "What SAM provably does" checkers accept the reference solutions and name each
typical mistake, on every case; the mistakes are told apart from each other on every case."""

from __future__ import annotations

import numpy as np
import pytest
from checker_corpus import mistakes_may_answer  # noqa: F401  (a fixture)

from sampy.exercises import (
    check_penalised_worst_case_gradient,
    check_sam_edge,
    check_sam_quadratic_multipliers,
)
from sampy.exercises.theory import (
    EDGE_CASES,
    EDGE_MISTAKES,
    MULTIPLIER_CASES,
    MULTIPLIER_MISTAKES,
    PENALISED_CASES,
    PENALISED_MISTAKES,
    _reference_penalised_worst_case_gradient,
    _reference_sam_edge,
    _reference_sam_quadratic_multipliers,
)

pytestmark = pytest.mark.usefixtures("mistakes_may_answer")

CHECKERS = [
    (
        check_penalised_worst_case_gradient,
        _reference_penalised_worst_case_gradient,
        PENALISED_CASES,
        PENALISED_MISTAKES,
    ),
    (
        check_sam_quadratic_multipliers,
        _reference_sam_quadratic_multipliers,
        MULTIPLIER_CASES,
        MULTIPLIER_MISTAKES,
    ),
    (check_sam_edge, _reference_sam_edge, EDGE_CASES, EDGE_MISTAKES),
]


def student_penalised(H, w, rho):
    return H @ np.linalg.solve(np.eye(len(w)) - rho * H, w)


def student_multipliers(eigenvalues, g_norm, lr, rho):
    lam = np.asarray(eigenvalues, dtype=float)
    return 1 - lr * lam * (1 + rho * lam / g_norm)


def student_edge(g_norm, lr, rho):
    return g_norm / (2 * rho) * (np.sqrt(1 + 8 * rho / (lr * g_norm)) - 1)


@pytest.mark.parametrize(
    "checker, student, cases",
    [
        (check_penalised_worst_case_gradient, student_penalised, PENALISED_CASES),
        (check_sam_quadratic_multipliers, student_multipliers, MULTIPLIER_CASES),
        (check_sam_edge, student_edge, EDGE_CASES),
    ],
)
def test_checker_accepts_a_correct_solution(checker, student, cases):
    feedback = checker(student)
    assert feedback.passed and len(feedback.checks) == len(cases)
    assert str(feedback).startswith("✓")


@pytest.mark.parametrize(
    "checker, mistake, n_cases",
    [(c[0], m, len(c[2])) for c in CHECKERS for m in c[3]],
    ids=lambda v: v.explanation[:25] if hasattr(v, "explanation") else None,
)
def test_checker_names_each_typical_mistake(checker, mistake, n_cases):
    feedback = checker(mistake.function)
    assert not feedback.passed
    assert [c.message for c in feedback.failures] == [mistake.explanation] * n_cases
    assert mistake.explanation in str(feedback) and "✗" in feedback._repr_html_()


@pytest.mark.parametrize("reference, cases, mistakes", [c[1:] for c in CHECKERS])
def test_the_mistakes_are_told_apart_on_every_case(reference, cases, mistakes):
    for case in cases:
        outputs = [reference(*case.args)] + [m.function(*case.args) for m in mistakes]
        for i in range(len(outputs)):
            for j in range(i):
                assert not np.allclose(outputs[i], outputs[j]), (case.name, i, j)


def test_an_exception_or_a_wrong_answer_is_feedback():
    crash = check_sam_edge(lambda g_norm, lr, rho: 1 / 0)
    assert not crash.passed and "ZeroDivisionError" in crash.failures[0].message
    wrong = check_sam_quadratic_multipliers(lambda lam, g_norm, lr, rho: np.zeros(len(lam)))
    assert not wrong.passed and "expected" in wrong.failures[0].message


def test_references_agree_with_the_closed_forms_and_with_runs():
    """The multipliers come from a sampy.optim.SAM step and equal 1 − ηλ(1 + ρλ/‖g‖); the
    penalised gradient is finite differences of the penalised worst case; the edge is where the
    top multiplier reaches −1."""
    for case in MULTIPLIER_CASES:
        np.testing.assert_allclose(
            _reference_sam_quadratic_multipliers(*case.args), student_multipliers(*case.args),
            rtol=1e-12,
        )  # fmt: skip
    for case in PENALISED_CASES:
        H, w, rho = case.args

        def phi(v, H=H, rho=rho):
            e = rho * np.linalg.solve(np.eye(len(v)) - rho * H, H @ v)  # the maximiser
            return 0.5 * (v + e) @ H @ (v + e) - e @ e / (2 * rho)

        fd = np.array([(phi(w + 1e-6 * u) - phi(w - 1e-6 * u)) / 2e-6 for u in np.eye(len(w))])
        np.testing.assert_allclose(
            _reference_penalised_worst_case_gradient(H, w, rho), fd, atol=1e-7
        )
    for case in EDGE_CASES:
        g_norm, lr, rho = case.args
        lam = _reference_sam_edge(g_norm, lr, rho)
        assert _reference_sam_quadratic_multipliers(np.array([lam]), g_norm, lr, rho)[
            0
        ] == pytest.approx(-1.0, abs=1e-9)
