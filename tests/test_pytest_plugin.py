"""sampy's pytest plugin: the entry point, the example a user writes, and the messages.

``examples/test_my_sam.py`` (a user's own SAM tested with the plugin) runs in a pytest of its
own, found through the ``pytest11`` entry point as a user's pytest finds it; so does a copy
with a deliberately wrong SAM, which must fail with the step and coordinate that differ.
"""

from __future__ import annotations

import subprocess
import sys
from functools import partial
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest

from sampy import functions
from sampy.optim import SGD
from sampy.pytest_plugin import (
    assert_follows_reference,
    assert_reaches_minimum,
    assert_reduces_to_base_at_rho_zero,
    start_points,
)

REPOSITORY = Path(__file__).resolve().parent.parent
EXAMPLE = REPOSITORY / "examples" / "test_my_sam.py"


def _pytest(*arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *arguments],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def sam_step(x: np.ndarray, grad, lr: float = 0.01, rho: float = 0.05) -> np.ndarray:
    g = grad(x)
    return x - lr * grad(x + rho * g / (np.linalg.norm(g, axis=-1, keepdims=True) + 1e-12))


def test_the_plugin_is_registered_as_a_pytest11_entry_point() -> None:
    plugins = {e.name: e.value for e in entry_points(group="pytest11")}
    assert plugins.get("sampy") == "sampy.pytest_plugin"


def test_the_assertions_need_no_pytest() -> None:
    code = (
        "import sys; sys.modules['pytest'] = None\n"
        "from sampy.testing import assert_reaches_minimum\n"
        "assert_reaches_minimum(lambda x, grad: x - 0.1 * grad(x), 'sphere', [1.0, 2.0], 200)\n"
        "print('reached')"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout == "reached\n"


def test_the_example_passes_under_a_plain_pytest(tmp_path: Path) -> None:
    run = _pytest(str(EXAMPLE), "-q", cwd=REPOSITORY)
    assert run.returncode == 0, run.stdout + run.stderr
    # 7 smooth functions for each of the two trajectory tests, 2 for ρ = 0, 1 for the minimum.
    assert "17 passed" in run.stdout


def test_a_wrong_sam_in_the_example_fails_with_the_step_and_coordinate(tmp_path: Path) -> None:
    wrong = EXAMPLE.read_text(encoding="utf-8").replace(
        "eps = rho * g / (np.linalg.norm(g, axis=-1, keepdims=True) + 1e-12)",
        "eps = rho * g  # forgot to normalise",
    )
    assert wrong != EXAMPLE.read_text(encoding="utf-8")
    (tmp_path / "test_wrong_sam.py").write_text(wrong, encoding="utf-8")
    run = _pytest(
        "test_wrong_sam.py", "-q", "-k", "follows_sampys_sam[sphere]", "--tb=short", cwd=tmp_path
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 failed" in run.stdout
    x0 = start_points(functions.get("sphere"), 4)
    assert (
        "AssertionError: step 1, start point 0, coordinate 0: your step my_sam_step gives "
        f"{float(x0[0, 0] - 0.001 * 2 * (x0[0, 0] + 0.05 * 2 * x0[0, 0]))!r} where sampy's "
        "SAM(rho=0.05) gives "
    ) in run.stdout


def test_the_marker_and_the_option_choose_the_functions(tmp_path: Path) -> None:
    (tmp_path / "test_choice.py").write_text(
        "import pytest\n"
        "def test_all(sampy_function):\n    assert sampy_function.minima.shape[1] == 2\n"
        "@pytest.mark.sampy_functions('booth', 'sphere')\n"
        "def test_two(sampy_function):\n    pass\n",
        encoding="utf-8",
    )
    run = _pytest("--collect-only", "-q", cwd=tmp_path)
    collected = [line for line in run.stdout.splitlines() if "::" in line]
    assert collected == [
        *(f"test_choice.py::test_all[{name}]" for name in functions.names()),
        "test_choice.py::test_two[booth]",
        "test_choice.py::test_two[sphere]",
    ]
    run = _pytest("--collect-only", "-q", "--sampy-functions=rosenbrock", cwd=tmp_path)
    collected = [line for line in run.stdout.splitlines() if "::" in line]
    assert collected == [
        "test_choice.py::test_all[rosenbrock]",
        "test_choice.py::test_two[booth]",
        "test_choice.py::test_two[sphere]",
    ]
    run = _pytest("--collect-only", "-q", "--sampy-functions=nope", cwd=tmp_path)
    assert run.returncode != 0
    assert "--sampy-functions: ['nope'] is not a list of test functions" in run.stdout


# ---------------------------------------------------------------- the assertions, in-process


def test_a_right_step_and_a_right_optimizer_object_pass() -> None:
    x0 = start_points(functions.get("himmelblau"), 3)
    assert_follows_reference(sam_step, "SAM", "himmelblau", x0, 10, base=SGD(lr=0.01), rho=0.05)
    from sampy.optim import SAM

    sampy_own = SAM(SGD(lr=0.01), rho=0.05)
    assert_follows_reference(sampy_own, "SAM", "himmelblau", x0, 10, base=SGD(lr=0.01), rho=0.05)


def test_other_variants_and_a_built_in_base_follow_the_registry_rows() -> None:
    from sampy.optim import MSAM, LookSAM

    x0 = start_points(functions.get("himmelblau"), 3)
    assert_follows_reference(
        MSAM(lr=0.01, rho=0.05), "MSAM", "himmelblau", x0, 10, lr=0.01, rho=0.05
    )
    # LookSAM's period off by one (the classroom review's gap): the schedules part at step 4,
    # where k = 3 takes a SAM step and k = 4 reuses the stored direction.
    off_by_one = LookSAM(SGD(lr=0.01), rho=0.05, k=3, alpha=0.5)
    with pytest.raises(AssertionError) as failure:
        assert_follows_reference(
            off_by_one, "LookSAM", "himmelblau", x0, 10, base=SGD(lr=0.01), rho=0.05, k=4,
            alpha=0.5,
        )  # fmt: skip
    assert str(failure.value).startswith(
        "step 4, start point 0, coordinate 0: your optimizer LookSAM gives "
    )
    assert "where sampy's LookSAM(rho=0.05, k=4, alpha=0.5) gives " in str(failure.value)


def test_float32_answers_are_compared_at_float32_precision() -> None:
    # An error of 1e-6 relative: float32 rounding for a float32 answer, a bug for float64.
    def off_by_a_millionth(x, grad):
        return sam_step(x, grad) * (1 + 1e-6)

    def in_float32(x, grad):
        return off_by_a_millionth(x, grad).astype(np.float32)

    x0 = start_points(functions.get("sphere"), 2)
    settings = {"base": SGD(lr=0.01), "rho": 0.05}
    assert_follows_reference(in_float32, "SAM", "sphere", x0, 5, **settings)
    with pytest.raises(AssertionError, match=r"rtol=1e-07, atol=1e-10"):
        assert_follows_reference(off_by_a_millionth, "SAM", "sphere", x0, 5, **settings)
    with pytest.raises(AssertionError, match=r"rtol=1e-09"):
        assert_follows_reference(in_float32, "SAM", "sphere", x0, 5, **settings, rtol=1e-9)


def test_the_message_names_the_first_step_point_and_coordinate_that_differ() -> None:
    def late_mistake(x, grad, calls=[0]):  # noqa: B006  (counts the steps on purpose)
        calls[0] += 1
        out = sam_step(x, grad)
        if calls[0] == 3:
            out = out.copy()
            out[1, 1] += 1e-3
        return out

    x0 = np.array([[1.0, 1.0], [0.5, -0.5]])
    with pytest.raises(AssertionError) as failure:
        assert_follows_reference(late_mistake, "SAM", "sphere", x0, 5, base=SGD(lr=0.01), rho=0.05)
    message = str(failure.value)
    assert message.startswith("step 3, start point 1, coordinate 1: your step late_mistake gives ")
    assert "sampy's SAM(rho=0.05)" in message and "difference 0.001" in message


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        (lambda x: None, "step 1: your step <lambda> returned None; return the new points"),
        (lambda x: x[0], "step 1: your step <lambda> returned shape (2,), expected (2, 2)"),
        (lambda x: x / 0.0, "step 1: your step <lambda> gave a non-finite point"),
    ],
)
def test_broken_steps_are_named(returned, message: str) -> None:
    def step(x, grad):
        with np.errstate(all="ignore"):
            return returned(x)

    step.__name__ = "<lambda>"
    with pytest.raises(AssertionError) as failure:
        assert_follows_reference(step, "SAM", "sphere", [[1.0, 2.0], [0.5, 0.1]], 3, rho=0.05)
    assert str(failure.value).startswith(message)


def test_a_diverging_reference_is_the_settings_fault_not_the_users() -> None:
    with pytest.raises(ValueError, match="itself diverges at step"):
        assert_follows_reference(
            partial(sam_step, lr=5.0), "SAM", "rosenbrock", [1.5, 2.5], 50, base=SGD(lr=5.0)
        )


def test_rho_zero_reduces_to_the_base_and_an_optimizer_ignoring_rho_is_caught() -> None:
    x0 = start_points(functions.get("booth"), 2)
    make = lambda rho: partial(sam_step, rho=rho)  # noqa: E731
    assert_reduces_to_base_at_rho_zero(make, SGD(lr=0.01), "booth", x0, 10)

    def ignores_rho(rho: float):
        return partial(sam_step, rho=0.05)

    with pytest.raises(AssertionError, match=r"step 1, start point 0, coordinate \d"):
        assert_reduces_to_base_at_rho_zero(ignores_rho, SGD(lr=0.01), "booth", x0, 10)

    def gradient_descent(rho: float):
        return lambda x, grad: x - 0.01 * grad(x)

    with pytest.raises(AssertionError, match="still follows the base optimizer for all 10"):
        assert_reduces_to_base_at_rho_zero(gradient_descent, SGD(lr=0.01), "booth", x0, 10)


def test_reaching_a_minimum_and_missing_it() -> None:
    assert_reaches_minimum(partial(sam_step, lr=0.1), "sphere", [[1.0, 1.0]], 300, tol=0.01)
    with pytest.raises(AssertionError) as failure:
        assert_reaches_minimum(partial(sam_step, lr=0.1), "sphere", [[1.0, 1.0]], 300, tol=1e-4)
    message = str(failure.value)
    assert message.startswith("after 300 steps on sphere, your step sam_step is at [")
    assert "from the nearest known minimiser [0.0, 0.0] (tol 0.0001)" in message
    with pytest.raises(AssertionError, match=r"step \d+: your step sam_step diverged on sphere"):
        assert_reaches_minimum(partial(sam_step, lr=1e300), "sphere", [[1.0, 1.0]], 5)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: assert_reaches_minimum(sam_step, "sphere", [1.0, 1.0], 0), "steps must be"),
        (lambda: assert_reaches_minimum(sam_step, "sphere", [1.0, 1.0], tol=0), "tol must be"),
        (lambda: assert_follows_reference(sam_step, "NoSuchSAM", "sphere", [1.0, 1.0]), "NoSuch"),
        (lambda: assert_follows_reference(42, "SAM", "sphere", [1.0, 1.0]), "step function"),
        (lambda: start_points(functions.get("sphere"), 0), "n must be"),
    ],
)
def test_bad_arguments_are_value_errors_that_say_what_to_do(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
