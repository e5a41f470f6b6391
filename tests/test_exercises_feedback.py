"""The checkers' shared machinery: fresh cases, dtypes, the three kinds of failure, refused
answers, and messages that show what differs (the classroom review's §3 and §1.4)."""

from __future__ import annotations

import copy
import subprocess
import sys

import numpy as np
import pytest
from checker_corpus import (
    sam_step,
    sam_step_in_place,
    sam_step_no_norm,
    sam_step_no_norm_in_place,
)

import sampy.exercises.sam_step as sam_step_module
from sampy.exercises import (
    Case,
    check_bsam_precision_update,
    check_sam_step,
    check_schedule_free_average,
    check_sds_selection,
    compare_with_reference,
)
from sampy.exercises.sam_step import MISTAKES


def arrays_of(cases):
    return [[np.array(a, copy=True) for a in c.args if isinstance(a, np.ndarray)] for c in cases]


def test_an_in_place_answer_changes_neither_the_cases_nor_the_next_grade():
    before = arrays_of(sam_step_module.CASES)
    assert check_sam_step(sam_step_in_place).passed
    after = arrays_of(sam_step_module.CASES)
    for old, new in zip(before, after, strict=True):
        for a, b in zip(old, new, strict=True):
            np.testing.assert_array_equal(a, b)
    # The next student is graded on the original inputs: the right answer still passes and a
    # wrong one, in place or not, still gets its named diagnosis on every case.
    assert check_sam_step(sam_step).passed
    for wrong in (sam_step_no_norm_in_place, sam_step_no_norm):
        feedback = check_sam_step(wrong)
        assert [c.message for c in feedback.failures] == [MISTAKES[0].explanation] * 3


def test_a_missing_return_is_named():
    feedback = check_sam_step(lambda grad, w, lr, rho: None)
    assert {c.message for c in feedback.checks} == {
        "your function returns None: did you forget `return`?"
    }
    assert {c.cause for c in feedback.checks} == {"none"}


def test_an_exception_in_the_students_code_shows_the_students_frames():
    def helper(g):
        return g / np.linalg.norm(g, axis=1)

    def sam_step_with_a_bug(grad, w, lr, rho):
        return w - lr * grad(w + rho * helper(grad(w)))

    feedback = check_sam_step(sam_step_with_a_bug)
    message = feedback.failures[0].message
    assert message.startswith("your function raised AxisError")
    assert "in sam_step_with_a_bug" in message and "in helper" in message
    assert "np.linalg.norm(g, axis=1)" in message  # the student's own line
    assert "numpy" not in message.split("(File")[1]  # no frames of NumPy or sampy
    assert {c.cause for c in feedback.checks} == {"raised"}


def test_the_checkers_own_failure_is_not_blamed_on_the_student():
    def broken_reference(x):
        raise KeyError("a bug in the reference")

    feedback = compare_with_reference(
        "f", lambda x: x, broken_reference, [Case("one", (np.ones(2),))]
    )
    message = feedback.checks[0].message
    assert feedback.checker_failed and feedback.checks[0].cause == "checker"
    assert "bug in sampy, not in your answer" in message and "your function raised" not in message


def test_the_wrong_number_of_outputs_is_named_not_unpacked():
    def only_x(x, z, lrs, beta1):
        w = np.maximum.accumulate(lrs) ** 2
        return (1 - w[-1] / w.sum()) * x + w[-1] / w.sum() * z

    feedback = check_schedule_free_average(only_x)
    assert {c.cause for c in feedback.checks} == {"outputs"}  # 2-D cases included
    assert "returns one array (shape (2,)), expected 2 values: (x_new, y_new)" in str(feedback)

    def two_of_three(w, m, s, g, g_adv, lr, betas, damping, weight_decay):
        return w, m

    message = check_bsam_precision_update(two_of_three).failures[0].message
    assert message == "your function returns 2 values, expected 3: (w, m, s)"

    def a_tuple_for_one(grad, w, lr, rho):
        return sam_step(grad, w, lr, rho), rho

    message = check_sam_step(a_tuple_for_one).failures[0].message
    assert message == "your function returns 2 values (a tuple), expected one array of shape (2,)"


def test_answers_that_call_sampys_implementation_are_refused():
    from sampy.exercises.sam_step import _reference_sam_step

    for borrowed in (_reference_sam_step, lambda *a: _reference_sam_step(*a)):
        feedback = check_sam_step(borrowed)
        assert {c.cause for c in feedback.checks} == {"refused"}
        assert "calls sampy's own implementation (sampy.exercises.sam_step." in str(feedback)
    assert sys.getprofile() is None  # the guard is removed after each call


def test_switching_the_guard_off_is_refused():
    def sneaky(grad, w, lr, rho):
        sys.setprofile(None)
        return sam_step(grad, w, lr, rho)

    feedback = check_sam_step(sneaky)
    assert {c.cause for c in feedback.checks} == {"refused"}
    assert "sys.setprofile" in str(feedback)


def test_the_reference_is_not_public():
    import sampy.exercises.cheaper as cheaper

    assert not any(name.startswith("reference_") for name in dir(cheaper))
    assert not any(name.startswith(("reference", "_")) for name in sampy_exercises_all())


def sampy_exercises_all():
    import sampy.exercises

    return sampy.exercises.__all__


def reference_ten(x):
    return np.arange(10.0) / 7


def test_values_that_print_alike_show_the_differing_entries():
    def off_in_the_seventh_digit(x):
        out = np.arange(10.0) / 7
        out[3] += 3e-6
        return out

    message = (
        compare_with_reference("f", off_in_the_seventh_digit, reference_ten, [Case("ten", (0.0,))])
        .failures[0]
        .message
    )
    assert "..." not in message  # ten entries printed whole
    assert "they differ at [3] expected 0.4285714286, got 0.4285744286 (difference 3e-06)" in (
        message
    )


def test_a_near_miss_in_float64_suggests_float32():
    def float32_then_float64(x):
        return (np.arange(10.0, dtype=np.float32) / np.float32(7)).astype(float)

    feedback = compare_with_reference(
        "f", float32_then_float64, reference_ten, [Case("ten", (0.0,))], rtol=1e-9, atol=1e-12
    )
    assert "computed in float32?" in feedback.failures[0].message


def test_a_shape_mismatch_is_said():
    message = (
        compare_with_reference(
            "f", lambda x: np.ones((2, 1)), lambda x: np.ones(2), [Case("one", (0.0,))]
        )
        .failures[0]
        .message
    )
    assert message.startswith("shape (2, 1), expected (2,)")


def test_masks_print_as_booleans_and_the_tie_answer_is_not_called_rounding():
    def at_least_kth(before, after, gamma):
        s = after - before
        return (s >= np.sort(s)[::-1][max(1, int(len(s) * gamma)) - 1]).astype(float)

    feedback = check_sds_selection(at_least_kth)
    assert not any("rounded up" in c.message for c in feedback.failures)
    assert all("s_i ≥ c" in c.message for c in feedback.failures)

    message = (
        compare_with_reference(
            "mask",
            lambda x: np.array([1.0, 0.0, 1.0]),
            lambda x: np.array([True, True, False]),
            [Case("one", (0.0,))],
        )
        .failures[0]
        .message
    )
    assert message.startswith("expected [ True True False], got [ True False True]")


def test_float32_is_judged_within_its_precision_and_float64_stays_tight():
    case = [Case("one", (np.array([1.0, -2.0, 3.0]),))]

    def scaled(x):
        return 0.1 * x

    def float32_answer(x):
        return np.float32(0.1) * x.astype(np.float32)

    def float32_wrong(x):
        return np.float32(0.1001) * x.astype(np.float32)  # a 1e-3 slip, not a rounding

    def float64_slightly_off(x):
        return 0.1 * x * (1 + 1e-6)

    assert compare_with_reference("f", float32_answer, scaled, case).passed
    assert not compare_with_reference("f", float32_wrong, scaled, case).passed
    assert not compare_with_reference("f", float64_slightly_off, scaled, case).passed


def test_torch_answers_on_any_device_and_requiring_grad_are_read():
    torch = pytest.importorskip("torch")
    case = [Case("one", (np.array([1.0, -2.0, 3.0]),))]

    def with_grad(x):
        return torch.tensor(x, requires_grad=True) * 0.5

    def half_precision(x):
        return torch.tensor(x, dtype=torch.bfloat16) * 0.5

    assert compare_with_reference("f", with_grad, lambda x: 0.5 * x, case).passed
    assert compare_with_reference("f", half_precision, lambda x: 0.5 * x, case).passed


def test_repeated_messages_are_printed_once_with_their_cases():
    text = str(check_sam_step(lambda grad, w, lr, rho: None))
    assert text.count("did you forget `return`") == 1
    assert "steep quadratic, gentle quadratic, non-quadratic:" in text


def test_importing_the_checkers_does_not_import_torch():
    code = "import sys, sampy.exercises; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cases_are_deep_copied_for_the_reference_and_each_mistake_too():
    seen = []

    def reference(x):
        seen.append(x)
        x[0] = 99.0  # a reference that scribbles on its input must not change the case
        return x * 0

    cases = [Case("one", (np.array([1.0, 2.0]),))]
    snapshot = copy.deepcopy(cases[0].args)
    compare_with_reference("f", lambda x: x, reference, cases)
    np.testing.assert_array_equal(cases[0].args[0], snapshot[0])
    assert seen[0] is not cases[0].args[0]
