"""The schedule-free exercise checker accepts the reference and names each typical mistake."""

from __future__ import annotations

import numpy as np
import pytest
from checker_corpus import mistakes_may_answer  # noqa: F401  (a fixture)

import sampy
from sampy.exercises.schedule_free import (
    CASES,
    MISTAKES,
    _reference_schedule_free_average,
    check_schedule_free_average,
)
from sampy.optim import Oracle
from sampy.optim.schedule_free import ScheduleFreeAdamW

pytestmark = pytest.mark.usefixtures("mistakes_may_answer")


def student_average(x, z, lrs, beta1):
    weights = np.maximum.accumulate(np.asarray(lrs)) ** 2
    c = weights[-1] / weights.sum()
    x = (1 - c) * x + c * z
    return x, beta1 * x + (1 - beta1) * z


def test_checker_accepts_a_correct_solution():
    feedback = check_schedule_free_average(student_average)
    assert feedback.passed and len(feedback.checks) == len(CASES)


@pytest.mark.parametrize("mistake", MISTAKES, ids=lambda m: m.explanation[:24])
def test_checker_names_each_typical_mistake(mistake):
    feedback = check_schedule_free_average(lambda *a: tuple(mistake.function(*a)))
    assert not feedback.passed
    assert {c.message for c in feedback.failures} == {mistake.explanation}


def test_the_running_maximum_is_required():
    """The review's answer w = lrs**2 (no running maximum) passed every case while the steps
    only grew; the decay case catches it."""

    def no_running_max(x, z, lrs, beta1):
        weights = np.asarray(lrs) ** 2
        c = weights[-1] / weights.sum()
        x = (1 - c) * x + c * z
        return x, beta1 * x + (1 - beta1) * z

    feedback = check_schedule_free_average(no_running_max)
    assert [c.name for c in feedback.failures] == ["during a decay"]
    assert "max_{j ≤ i} η_j" in feedback.failures[0].message


def test_the_mistakes_are_told_apart_on_every_case():
    for case in CASES:
        outputs = [_reference_schedule_free_average(*case.args)]
        # Without a decay the running maximum changes nothing: that mistake shows on one case.
        outputs += [m.function(*case.args) for m in MISTAKES]
        if not np.all(np.diff(case.args[2]) < 0) and np.all(np.diff(case.args[2]) >= 0):
            outputs.pop()
        for i in range(len(outputs)):
            for j in range(i):
                assert not np.allclose(outputs[i], outputs[j], rtol=1e-6, atol=0), (case.name, i, j)


def test_reference_follows_schedule_free_adamw_step_by_step():
    """Fed the z and the steps η of a ScheduleFreeAdamW run (paper form, warm-up), the
    reference reproduces the run's x and y at every step."""
    f = sampy.functions.get("rosenbrock")
    opt = ScheduleFreeAdamW(lr=0.02, warmup_steps=5, variant="gen_a", betas=(0.9, 0.999))
    oracle = Oracle(f)
    y = np.array([-1.0, 1.5])
    state = opt.init(y)
    x, lrs = y.copy(), []
    for k in range(12):
        y, state = opt.step(y, state, oracle)
        lrs.append(opt._schedule(k, -1.0, 0.0)[0])
        x_new, y_new = _reference_schedule_free_average(x, state.z, np.array(lrs), 0.9)
        np.testing.assert_allclose(x_new, state.x, rtol=1e-12)
        np.testing.assert_allclose(y_new, y, rtol=1e-12)
        x = state.x


def test_errors_and_non_functions_fail():
    crash = check_schedule_free_average(lambda *a: 1 / 0)
    assert "ZeroDivisionError" in crash.failures[0].message
    assert not check_schedule_free_average(None).passed
