"""The chapter "Fixing SAM's direction" checkers accept the reference solutions and name each
typical mistake, on every case; the mistakes are told apart from each other on every case."""

from __future__ import annotations

import numpy as np
import pytest
from checker_corpus import mistakes_may_answer  # noqa: F401  (a fixture)

from sampy.exercises.direction import (
    GSAM_CASES,
    GSAM_MISTAKES,
    RWP_CASES,
    RWP_MISTAKES,
    VASSO_CASES,
    VASSO_MISTAKES,
    WSAM_CASES,
    WSAM_MISTAKES,
    _reference_gsam_direction,
    _reference_rwp_direction,
    _reference_vasso_perturbations,
    _reference_wsam_direction,
    check_gsam_direction,
    check_rwp_direction,
    check_vasso_perturbations,
    check_wsam_direction,
)

pytestmark = pytest.mark.usefixtures("mistakes_may_answer")

CHECKERS = [
    (check_gsam_direction, _reference_gsam_direction, GSAM_CASES, GSAM_MISTAKES),
    (check_wsam_direction, _reference_wsam_direction, WSAM_CASES, WSAM_MISTAKES),
    (check_vasso_perturbations, _reference_vasso_perturbations, VASSO_CASES, VASSO_MISTAKES),
    (check_rwp_direction, _reference_rwp_direction, RWP_CASES, RWP_MISTAKES),
]


def student_gsam_direction(g, g_adv, alpha):
    g_par = (g @ g_adv) / (g_adv @ g_adv) * g_adv
    return g_adv - alpha * (g - g_par)


def student_wsam_direction(g, g_adv, gamma):
    omega = gamma / (1 - gamma)
    return g + omega * (g_adv - g)


def student_vasso_perturbations(grads, rho, theta):
    d, out = np.zeros(np.shape(grads)[1]), []
    for g in grads:
        d = d + theta * (g - d)
        out.append(rho * d / np.linalg.norm(d))
    return np.array(out)


@pytest.mark.parametrize(
    "checker, student, cases",
    [
        (check_gsam_direction, student_gsam_direction, GSAM_CASES),
        (check_wsam_direction, student_wsam_direction, WSAM_CASES),
        (check_vasso_perturbations, student_vasso_perturbations, VASSO_CASES),
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


@pytest.mark.parametrize("checker, reference, cases, mistakes", CHECKERS)
def test_the_mistakes_are_told_apart_on_every_case(checker, reference, cases, mistakes):
    for case in cases:
        outputs = [reference(*case.args)] + [m.function(*case.args) for m in mistakes]
        for i in range(len(outputs)):
            for j in range(i):
                assert not np.allclose(outputs[i], outputs[j], atol=1e-6), (case.name, i, j)


def test_references_are_the_library_rules():
    from sampy.direction import gsam_direction

    for case in GSAM_CASES:
        np.testing.assert_allclose(
            _reference_gsam_direction(*case.args), gsam_direction(*case.args)
        )
    for case in WSAM_CASES:
        g, g_adv, gamma = case.args
        a = gamma / (1 - gamma)
        np.testing.assert_allclose(_reference_wsam_direction(*case.args), a * g_adv + (1 - a) * g)


def test_errors_and_non_functions_are_feedback():
    crash = check_gsam_direction(lambda g, g_adv, alpha: 1 / 0)
    assert "ZeroDivisionError" in crash.failures[0].message
    assert not check_wsam_direction("not a function").passed
    wrong = check_wsam_direction(lambda g, g_adv, gamma: g)
    assert not wrong.passed and "expected" in wrong.failures[0].message


def test_vasso_reference_is_the_optimizer_s_perturbation():
    """The checker's reference is what ``sampy.optim.VaSSO`` perturbs by, step after step."""
    from sampy.optim import SGD, Oracle, VaSSO

    for case in VASSO_CASES:
        grads, rho, theta = case.args
        script = iter(np.repeat(grads, 2, axis=0))  # g at w, then (ignored) g̃ at w + ε
        seen = []

        def grad(x, seen=seen, script=script):
            seen.append(np.array(x))
            return next(script)

        opt = VaSSO(SGD(lr=1.0), rho=rho, theta=theta)  # the steps move w; ε = w + ε − w
        x, state, oracle = np.zeros(grads.shape[1]), None, Oracle.from_gradient(grad)
        state = opt.init(x)
        for _ in grads:
            x, state = opt.step(x, state, oracle)
        perturbations = np.array(seen[1::2]) - np.array(seen[0::2])
        np.testing.assert_allclose(
            perturbations, _reference_vasso_perturbations(*case.args), rtol=1e-12, atol=1e-15
        )


def test_rwp_reference_is_random_sams_step():
    """Fed the noise RandomSAM draws, the reference gives the direction of its step."""
    from sampy.optim import SGD, Oracle, RandomSAM

    for kind, rho, mix in (("gaussian", 0.3, 0.25), ("sphere", 0.5, 0.0)):
        opt = RandomSAM(SGD(lr=1.0), rho=rho, kind=kind, mix=mix, seed=3)
        grad = RWP_CASES[1].args[0]
        w = np.array([0.4, -0.9])
        z = np.random.default_rng(3).standard_normal(2)  # RandomSAM's first draw
        stepped = opt.step(w, opt.init(w), Oracle.from_gradient(grad))[0]
        np.testing.assert_allclose(
            w - stepped, _reference_rwp_direction(grad, w, z, rho, mix, kind), rtol=1e-12
        )
