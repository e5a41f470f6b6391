"""The checkers of the chapter "Adaptive and geometric variants" (sampy.exercises.adaptive)."""

from __future__ import annotations

import numpy as np
import pytest
from checker_corpus import mistakes_may_answer  # noqa: F401  (a fixture)

from sampy.exercises.adaptive import (
    ASAM_CASES,
    ASAM_MISTAKES,
    DUAL_CASES,
    DUAL_MISTAKES,
    FISHER_CASES,
    FISHER_MISTAKES,
    _reference_asam_perturbation,
    _reference_dual_direction,
    _reference_fisher_perturbation,
    check_asam_perturbation,
    check_dual_direction,
    check_fisher_perturbation,
)

pytestmark = pytest.mark.usefixtures("mistakes_may_answer")


def student_asam_perturbation(w, g, rho, eta):
    t = np.abs(w) + eta
    return rho * t**2 * g / np.linalg.norm(t * g)


def student_dual_direction(g, p, rho):
    q = p / (p - 1)
    a = np.abs(g) ** (q - 1)
    return rho * np.sign(g) * a / np.sum(np.abs(g) ** q) ** ((q - 1) / q)


def student_fisher_perturbation(g, rho, kappa):
    u = g / (1 + kappa * g**2)
    return rho * u / np.sqrt(g @ u)


CHECKERS = [
    (check_asam_perturbation, student_asam_perturbation, ASAM_CASES, ASAM_MISTAKES),
    (check_dual_direction, student_dual_direction, DUAL_CASES, DUAL_MISTAKES),
    (check_fisher_perturbation, student_fisher_perturbation, FISHER_CASES, FISHER_MISTAKES),
]
MISTAKE_PARAMS = [
    pytest.param(check, mistake, cases, id=f"{check.__name__}-{i}")
    for check, _, cases, mistakes in CHECKERS
    for i, mistake in enumerate(mistakes)
]


@pytest.mark.parametrize("check, student, cases, _", CHECKERS, ids=["asam", "dual", "fisher"])
def test_checker_accepts_a_correct_solution(check, student, cases, _):
    feedback = check(student)
    assert feedback.passed and len(feedback.checks) == len(cases)
    assert str(feedback).startswith("✓")


@pytest.mark.parametrize("check, mistake, cases", MISTAKE_PARAMS)
def test_checker_names_each_typical_mistake_on_every_case(check, mistake, cases):
    feedback = check(mistake.function)
    assert not feedback.passed
    assert [c.message for c in feedback.failures] == [mistake.explanation] * len(cases)
    assert mistake.explanation in str(feedback) and "✗" in feedback._repr_html_()


@pytest.mark.parametrize(
    "reference, cases, mistakes",
    [
        (_reference_asam_perturbation, ASAM_CASES, ASAM_MISTAKES),
        (_reference_dual_direction, DUAL_CASES, DUAL_MISTAKES),
        (_reference_fisher_perturbation, FISHER_CASES, FISHER_MISTAKES),
    ],
    ids=["asam", "dual", "fisher"],
)
def test_the_mistakes_are_told_apart_on_every_case(reference, cases, mistakes):
    for case in cases:
        outputs = [reference(*case.args)] + [m.function(*case.args) for m in mistakes]
        for i in range(len(outputs)):
            for j in range(i):
                assert not np.allclose(outputs[i], outputs[j]), (case.name, i, j)


def test_references_are_the_closed_forms():
    """ε = ρ T²g/‖Tg‖ on the adaptive boundary; the Hölder ε on the p-sphere, maximal."""
    for case in ASAM_CASES:
        w, g, rho, eta = case.args
        e = _reference_asam_perturbation(w, g, rho, eta)
        t = np.abs(w) + eta
        np.testing.assert_allclose(np.linalg.norm(e / t), rho, rtol=1e-10)
        np.testing.assert_allclose(e @ g, rho * np.linalg.norm(t * g), rtol=1e-10)
    for case in DUAL_CASES:
        g, p, rho = case.args
        e = _reference_dual_direction(g, p, rho)
        q = p / (p - 1)
        np.testing.assert_allclose(np.sum(np.abs(e) ** p) ** (1 / p), rho, rtol=1e-10)
        np.testing.assert_allclose(e @ g, rho * np.sum(np.abs(g) ** q) ** (1 / q), rtol=1e-10)
    for case in FISHER_CASES:
        g, rho, kappa = case.args
        e, f = _reference_fisher_perturbation(g, rho, kappa), 1 + kappa * g**2
        np.testing.assert_allclose(e @ (f * e), rho**2, rtol=1e-10)
        np.testing.assert_allclose(e @ g, rho * np.sqrt(g @ (g / f)), rtol=1e-10)


def test_errors_in_student_code_are_feedback():
    for check in (check_asam_perturbation, check_dual_direction, check_fisher_perturbation):
        crash = check(lambda *args: 1 / 0)
        assert not crash.passed and "ZeroDivisionError" in crash.failures[0].message
        wrong = check(lambda *args: np.zeros(3))
        assert not wrong.passed
        assert not check("not a function").passed
