"""The checkers of "Making SAM cheaper" accept the answer and name each typical mistake."""

from __future__ import annotations

import numpy as np
import pytest
from checker_corpus import mistakes_may_answer  # noqa: F401  (a fixture)

from sampy.exercises.cheaper import (
    ASCENT_CASES,
    ASCENT_MISTAKES,
    LOOKSAM_CASES,
    LOOKSAM_MISTAKES,
    SCHEDULE_CASES,
    SCHEDULE_MISTAKES,
    SDS_CASES,
    SDS_MISTAKES,
    SSAM_CASES,
    SSAM_MISTAKES,
    _reference_looksam_reuse,
    _reference_looksam_sam_steps,
    _reference_projected_ascent,
    _reference_sds_select,
    _reference_ssam_mask,
    check_looksam_reuse,
    check_looksam_schedule,
    check_projected_ascent,
    check_sds_selection,
    check_ssam_mask,
)
from sampy.optim import SGD, MultiStepSAM, Oracle

pytestmark = pytest.mark.usefixtures("mistakes_may_answer")


def student_looksam_reuse(g0, g_s, g, alpha):
    g_v = g_s - (g_s @ g0) / (g0 @ g0) * g0
    return g + alpha * np.linalg.norm(g) / np.linalg.norm(g_v) * g_v


def student_sds_select(loss_before, loss_after, gamma):
    rise = np.asarray(loss_after) - np.asarray(loss_before)
    k = max(1, int(len(rise) * gamma))
    mask = np.zeros(len(rise), dtype=bool)
    mask[np.argsort(-rise, kind="stable")[:k]] = True
    return mask


def student_projected_ascent(grad, w, rho, k):
    e = np.zeros_like(w, dtype=float)
    for _ in range(k):
        g = grad(w + e)
        e = e + rho * g / np.linalg.norm(g)
        e = e * min(1.0, rho / np.linalg.norm(e))
    return e


CHECKERS = [
    (check_looksam_reuse, student_looksam_reuse, LOOKSAM_CASES, LOOKSAM_MISTAKES),
    (check_sds_selection, student_sds_select, SDS_CASES, SDS_MISTAKES),
    (check_projected_ascent, student_projected_ascent, ASCENT_CASES, ASCENT_MISTAKES),
]
IDS = ["looksam_reuse", "sds_select", "projected_ascent"]


@pytest.mark.parametrize(("check", "answer", "cases", "mistakes"), CHECKERS, ids=IDS)
def test_checker_accepts_a_correct_solution(check, answer, cases, mistakes):
    feedback = check(answer)
    assert feedback.passed and len(feedback.checks) == len(cases)
    assert str(feedback).startswith("✓")


@pytest.mark.parametrize(
    ("check", "mistake", "n_cases"),
    [(check_looksam_reuse, m, len(LOOKSAM_CASES)) for m in LOOKSAM_MISTAKES]
    + [(check_sds_selection, m, len(SDS_CASES)) for m in SDS_MISTAKES]
    + [(check_projected_ascent, m, len(ASCENT_CASES)) for m in ASCENT_MISTAKES]
    + [(check_looksam_schedule, m, len(SCHEDULE_CASES)) for m in SCHEDULE_MISTAKES]
    + [(check_ssam_mask, m, len(SSAM_CASES)) for m in SSAM_MISTAKES],
    ids=lambda v: v.explanation[:24] if hasattr(v, "explanation") else None,
)
def test_checker_names_each_typical_mistake(check, mistake, n_cases):
    feedback = check(mistake.function)
    assert not feedback.passed
    # Named wherever it shows; a mistake that cannot show on a case (no tie) passes there.
    assert {c.message for c in feedback.failures} == {mistake.explanation}
    assert len(feedback.failures) >= 2
    assert mistake.explanation in str(feedback) and "✗" in feedback._repr_html_()


@pytest.mark.parametrize(
    ("reference", "cases", "mistakes"),
    [
        (_reference_looksam_reuse, LOOKSAM_CASES, LOOKSAM_MISTAKES),
        (_reference_sds_select, SDS_CASES, SDS_MISTAKES),
        (_reference_projected_ascent, ASCENT_CASES, ASCENT_MISTAKES),
        (_reference_looksam_sam_steps, SCHEDULE_CASES, SCHEDULE_MISTAKES),
        (_reference_ssam_mask, SSAM_CASES, SSAM_MISTAKES),
    ],
    ids=[*IDS, "looksam_sam_steps", "ssam_mask"],
)
def test_the_mistakes_are_told_apart_on_every_case(reference, cases, mistakes):
    def same(a, b):
        a, b = np.asarray(a, float), np.asarray(b, float)
        return a.shape == b.shape and np.allclose(a, b)

    for case in cases:
        right = reference(*case.args)
        # The mistakes that show on this case (all of them, except on SDS's no-tie case).
        shown = [m for m in mistakes if not same(m.function(*case.args), right)]
        assert len(shown) >= 2, case.name
        for i, m in enumerate(shown):
            assert not same(m.function(*case.args), right)
            for n in shown[:i]:
                # Keeping every tie (s ≥ c) and rounding k up coincide where two examples tie
                # at the boundary; the no-tie case and the 3-way tie tell them apart.
                if {m.explanation[:12], n.explanation[:12]} != {"you kept eve", "k was rounde"}:
                    assert not same(m.function(*case.args), n.function(*case.args)), case.name
    for i, m in enumerate(mistakes):
        assert any(not same(m.function(*c.args), reference(*c.args)) for c in cases)
        for n in mistakes[:i]:
            assert any(not same(m.function(*c.args), n.function(*c.args)) for c in cases)


def test_sds_cases_have_a_tie_at_the_boundary_and_a_fractional_gamma_n():
    """Without a tie the tie-breaking mistake is invisible; with γn whole, rounding up is; the
    last case has no tie, so that rounding k up and keeping every tie (s ≥ c) differ."""
    *with_ties, no_tie = SDS_CASES
    before, after, gamma = no_tie.args
    rise, n = np.sort(after - before)[::-1], len(after)
    assert rise[int(n * gamma) - 1] != rise[int(n * gamma)] and np.ceil(n * gamma) > n * gamma
    for case in with_ties:
        before, after, gamma = case.args
        rise = np.sort(after - before)[::-1]
        k = max(1, int(len(rise) * gamma))
        assert rise[k - 1] == rise[k] and len(rise) * gamma != int(len(rise) * gamma)
        assert _reference_sds_select(*case.args).sum() == k


def test_looksam_reference_is_the_formula():
    for case in LOOKSAM_CASES:
        g0, g_s, g, alpha = case.args
        g_v = g_s - (g_s @ g0) / (g0 @ g0) * g0
        expected = g + alpha * np.linalg.norm(g) / (np.linalg.norm(g_v) + 1e-8) * g_v
        np.testing.assert_allclose(_reference_looksam_reuse(*case.args), expected, rtol=1e-12)


@pytest.mark.parametrize(("check", "answer"), [(c[0], c[1]) for c in CHECKERS], ids=IDS)
def test_errors_are_feedback_and_unknown_answers_show_the_expected_value(check, answer):
    crash = check(lambda *args: 1 / 0)
    assert not crash.passed and "ZeroDivisionError" in crash.failures[0].message
    first = next(a for a in CHECKERS if a[0] is check)[2][0].args
    array = next(a for a in first if isinstance(a, np.ndarray))
    wrong = check(lambda *args: np.zeros_like(array, dtype=float) + 0.123)
    assert not wrong.passed and "expected" in wrong.failures[0].message
    assert not check("not a function").passed


def test_projected_ascent_reference_stays_in_the_ball_and_reduces_to_sam_and_to_multistep():
    """k = 1 is SAM's ε; the no-projection mistake is sampy's MultiStepSAM ascent; ‖ε‖ ≤ ρ."""
    for case in ASCENT_CASES:
        grad, w, rho, k = case.args
        e = _reference_projected_ascent(grad, w, rho, k)
        assert np.linalg.norm(e) <= rho * (1 + 1e-12)
        g = grad(w)
        np.testing.assert_allclose(
            _reference_projected_ascent(grad, w, rho, 1), rho * g / np.linalg.norm(g), rtol=1e-10
        )
        asked = []

        def spy(x, asked=asked, grad=grad):
            asked.append(np.array(x))
            return grad(x)

        opt = MultiStepSAM(SGD(lr=1e-3), rho=rho, ascent_steps=k)
        opt.step(w, opt.init(w), Oracle.from_gradient(spy))
        np.testing.assert_allclose(
            asked[-1] - w, ASCENT_MISTAKES[0].function(*case.args), rtol=1e-9
        )


def test_looksam_schedule_reference_counts_the_optimizers_gradient_evaluations():
    """SAM steps are t % k == 0; LookSAM's own count of evaluations (1 + 1/k per step) agrees."""
    for k, steps in ((5, 12), (3, 10), (1, 4)):
        sam_steps = _reference_looksam_sam_steps(k, steps)
        np.testing.assert_array_equal(sam_steps, np.arange(steps) % k == 0)


def test_ssam_mask_reference_is_ssamf_refresh():
    """SSAM-F's mask after a refresh on a plain function (F = g²) is the reference's mask."""
    from sampy.functions import get
    from sampy.optim import SSAMF

    f = get("quadratic", A=np.diag([5.0, 0.5, 3.0, 1.0, 2.0]))
    opt = SSAMF(SGD(lr=0.01), rho=0.05, sparsity=0.4, update_freq=1)
    w = np.array([1.0, -2.0, 0.5, 1.5, -1.0])
    w_next, state = opt.step(w, opt.init(w), Oracle(f))
    np.testing.assert_array_equal(state.mask, _reference_ssam_mask(f.grad(w_next) ** 2, 0.4))
