"""The checker of the PyTorch chapter's exercise on λ_max from Hessian-vector products accepts
power iteration with a shift, and names each typical mistake on a case where it shows."""

from __future__ import annotations

import numpy as np
import pytest
from checker_corpus import mistakes_may_answer  # noqa: F401  (a fixture)

from sampy.exercises import check_largest_eigenvalue
from sampy.exercises.eigenvalues import (
    LARGEST_EIGENVALUE_CASES,
    LARGEST_EIGENVALUE_MISTAKES,
    _reference_largest_eigenvalue,
)
from sampy.sharpness import power_iteration_top_eigenvalue

pytestmark = pytest.mark.usefixtures("mistakes_may_answer")


def shifted_power_iteration(hvp, d):
    """The chapter's solution: power iteration, then again on H − μI when μ < 0."""
    mu = power_iteration_top_eigenvalue(hvp, d)
    if mu >= 0:
        return mu
    return power_iteration_top_eigenvalue(lambda v: hvp(v) - mu * v, d) + mu


def test_the_reference_is_the_largest_eigenvalue_of_each_case():
    for case in LARGEST_EIGENVALUE_CASES:
        hvp, d = case.args
        H = np.stack([hvp(e) for e in np.eye(d)], axis=1)
        np.testing.assert_allclose(H, H.T, atol=1e-12)
        assert _reference_largest_eigenvalue(hvp, d) == pytest.approx(np.linalg.eigvalsh(H)[-1])


def test_power_iteration_with_a_shift_passes():
    feedback = check_largest_eigenvalue(shifted_power_iteration)
    assert feedback.passed, str(feedback)


def test_plain_power_iteration_fails_where_the_negative_curvature_dominates():
    feedback = check_largest_eigenvalue(lambda hvp, d: power_iteration_top_eigenvalue(hvp, d))
    assert not feedback.passed
    failed = feedback.failures
    assert {r.name for r in failed} == {
        "a saddle whose negative curvature dominates",
        "a maximum (every eigenvalue negative)",
        "Himmelblau's saddle near (-0.128, -1.954)",
    }
    assert all("largest magnitude" in r.message for r in failed)


@pytest.mark.parametrize("k", range(len(LARGEST_EIGENVALUE_MISTAKES)))
def test_each_mistake_is_named_on_some_case(k):
    mistake = LARGEST_EIGENVALUE_MISTAKES[k]
    feedback = check_largest_eigenvalue(mistake.function)
    assert not feedback.passed
    assert any(r.message == mistake.explanation for r in feedback.checks), str(feedback)


def test_an_exception_and_a_missing_return_fail_without_crashing():
    def raises(hvp, d):
        raise RuntimeError("boom")

    assert "RuntimeError: boom" in str(check_largest_eigenvalue(raises))
    assert not check_largest_eigenvalue(lambda hvp, d: None).passed
