"""The ImbSAM-direction checker accepts the reference and names every typical mistake."""

from __future__ import annotations

import numpy as np
import pytest
from checker_corpus import mistakes_may_answer  # noqa: F401  (a fixture)

import sampy
from sampy.exercises.imbsam import (
    CASES,
    MISTAKES,
    _reference_imbsam_direction,
    check_imbsam_direction,
)

pytestmark = pytest.mark.usefixtures("mistakes_may_answer")


def student_imbsam_direction(grad, w, head, tail, rho, tail_weight=2.0):
    n = len(head) + len(tail)
    g_h = len(head) / n * grad(w, head)
    scale = tail_weight * len(tail) / n
    g_t = scale * grad(w, tail)
    e = rho * g_t / np.linalg.norm(g_t)
    return g_h + scale * grad(w + e, tail)


def test_the_checker_accepts_a_from_scratch_solution():
    feedback = check_imbsam_direction(student_imbsam_direction)
    assert feedback.passed and len(feedback.checks) == len(CASES), str(feedback)


@pytest.mark.parametrize("mistake", MISTAKES, ids=lambda m: m.explanation[:25])
def test_the_checker_names_each_typical_mistake_on_every_case(mistake):
    feedback = check_imbsam_direction(mistake.function)
    assert [c.message for c in feedback.failures] == [mistake.explanation] * len(CASES)


def test_the_mistakes_are_told_apart_on_every_case():
    for case in CASES:
        outs = [_reference_imbsam_direction(*case.args)] + [
            m.function(*case.args) for m in MISTAKES
        ]
        for i in range(len(outs)):
            for j in range(i):
                assert not np.allclose(outs[i], outs[j]), (case.name, i, j)


def test_the_reference_is_one_imbsam_step_on_the_problem_itself():
    from sampy.optim import SGD, ImbSAM
    from sampy.problems import make_logistic_problem

    p = make_logistic_problem(n=30, dim=4, imbalance=0.25, seed=5)
    w = np.array([0.3, -0.1, 0.2, 0.5])
    opt = ImbSAM(SGD(lr=1.0), rho=0.2)
    stepped = sampy.run(opt, p, w, 1).xs[-1]
    tail = np.flatnonzero(p.groups == "tail")
    head = np.flatnonzero(p.groups != "tail")
    sampy_step = w - _reference_imbsam_direction(p.grad, w, head, tail, 0.2)
    np.testing.assert_allclose(stepped, sampy_step, rtol=1e-12, atol=1e-14)
