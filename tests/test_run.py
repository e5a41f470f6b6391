"""``sampy.run``: trajectory shapes, losses, divergence handling and a behavioural check."""

from __future__ import annotations

import math

import autograd.numpy as anp
import numpy as np
import pytest

import sampy
from sampy import functions
from sampy.optim import SAM, SGD


def _sphere_by_hand(x):
    return np.sum(np.asarray(x) ** 2, axis=-1)


# ---------------------------------------------------------------------------------------------
# Shapes and values


@pytest.mark.parametrize("batch", [(), (5,), (3, 4)])
def test_shapes_losses_final(batch):
    f = functions.get("sphere", dim=3)
    x0 = np.random.default_rng(0).normal(size=(*batch, 3))
    x0_copy = x0.copy()
    traj = sampy.run(SGD(lr=0.1), f, x0, 7)
    assert traj.xs.shape == (8, *batch, 3)
    assert traj.steps == 7
    assert traj.losses.shape == (8, *batch)
    np.testing.assert_allclose(traj.losses, _sphere_by_hand(traj.xs), rtol=1e-15)
    np.testing.assert_array_equal(traj.final, traj.xs[-1])
    np.testing.assert_array_equal(traj.final_loss, traj.losses[-1])
    assert traj.final_loss.shape == batch
    np.testing.assert_array_equal(traj.xs[0], x0_copy)
    np.testing.assert_array_equal(x0, x0_copy)  # the input is not modified
    # SGD on Σx²: x_k = (1 − 2·lr)^k x_0.
    factors = 0.8 ** np.arange(8)
    np.testing.assert_allclose(
        traj.xs, factors.reshape(8, *([1] * (len(batch) + 1))) * x0, rtol=1e-14, atol=0
    )
    assert traj.diverged_at.shape == batch
    assert np.all(traj.diverged_at == -1)
    assert not traj.diverged.any()
    assert traj.grad_evals == 7
    assert "none diverged" in traj.report()


def test_function_by_name_and_losses_of_a_quadratic():
    traj = sampy.run(SAM(SGD(lr=0.05), rho=0.1), "quadratic", np.array([[1.0, 1.0], [-2, 0.5]]), 4)
    # default quadratic: ½(x² + 10 y²)
    x, y = traj.xs[..., 0], traj.xs[..., 1]
    np.testing.assert_allclose(traj.losses, 0.5 * (x**2 + 10 * y**2), rtol=1e-14)
    assert traj.grad_evals == 8


def test_plain_callable_is_accepted():
    def fn(x):
        return anp.sum(anp.cosh(x), axis=-1)

    x0 = np.array([[0.5, -1.0], [2.0, 0.1]])
    traj = sampy.run(SGD(lr=0.1), fn, x0, 3)
    expected = [x0]
    for _ in range(3):
        expected.append(expected[-1] - 0.1 * np.sinh(expected[-1]))
    np.testing.assert_allclose(traj.xs, np.array(expected), rtol=1e-14)
    np.testing.assert_allclose(traj.losses, np.sum(np.cosh(traj.xs), axis=-1), rtol=1e-14)


@pytest.mark.parametrize("batch", [(), (4,), (2, 3)])
def test_zero_steps(batch):
    x0 = np.ones((*batch, 2))
    traj = sampy.run(SAM(SGD(lr=0.1)), "rosenbrock", x0, 0)
    assert traj.xs.shape == (1, *batch, 2)
    np.testing.assert_array_equal(traj.xs[0], x0)
    np.testing.assert_array_equal(traj.final, x0)
    np.testing.assert_array_equal(traj.final_loss, np.zeros(batch))  # (1, 1) is the minimum
    assert traj.steps == 0
    assert traj.grad_evals == 0
    assert np.all(traj.diverged_at == -1)
    assert "none diverged" in traj.report()


# ---------------------------------------------------------------------------------------------
# Divergence


def test_divergence_is_recorded_and_the_point_frozen():
    # SGD with lr = 1.5 on Σx²: x_k = (1 − 3)^k x_0 = (−2)^k x_0. With x_0 = (1, 0.5),
    # max|x_k| = 2^k, which first exceeds the bound 1e6 at k = 20 (2^19 = 524288,
    # 2^20 = 1048576).
    x0 = np.array([1.0, 0.5])
    traj = sampy.run(SGD(lr=1.5), "sphere", x0, 30)
    assert int(traj.diverged_at) == 20
    assert bool(traj.diverged)
    for k in range(20):
        np.testing.assert_array_equal(traj.xs[k], (-2.0) ** k * x0)
    for k in range(20, 31):
        np.testing.assert_array_equal(traj.xs[k], traj.xs[19])
    assert "diverged" in traj.report()
    assert "20" in traj.report()
    assert np.all(np.isfinite(traj.xs))


@pytest.mark.parametrize(("bound", "first"), [(100.0, 7), (1.0, 1), (2.0**10, 11)])
def test_divergence_step_depends_on_the_bound(bound, first):
    # max|x_k| = 2^k > bound first at: 2^7 = 128 > 100; 2^1 = 2 > 1; 2^11 > 2^10 (2^10 is
    # not beyond the bound: the test is strict).
    traj = sampy.run(SGD(lr=1.5), "sphere", np.array([1.0, 0.5]), 15, bound=bound)
    assert int(traj.diverged_at) == first
    np.testing.assert_array_equal(
        traj.xs[first:], np.broadcast_to(traj.xs[first - 1], (16 - first, 2))
    )


def test_a_diverging_learning_rate_in_a_grid_does_not_affect_the_others():
    lrs = np.array([0.1, 1.5, 0.25, 0.45])
    x0 = np.tile([1.0, 0.5], (4, 1))
    traj = sampy.run(SGD(lr=lrs), "sphere", x0, 30)
    np.testing.assert_array_equal(traj.diverged_at, [-1, 20, -1, -1])
    np.testing.assert_array_equal(traj.diverged, [False, True, False, False])
    for k, lr in enumerate(lrs):
        if k == 1:
            continue
        alone = sampy.run(SGD(lr=float(lr)), "sphere", x0[k], 30)
        np.testing.assert_array_equal(traj.xs[:, k], alone.xs)
    # The diverged point: (−2)^k x0 until step 19, then frozen.
    np.testing.assert_array_equal(traj.xs[19, 1], (-2.0) ** 19 * x0[1])
    np.testing.assert_array_equal(traj.xs[20:, 1], np.broadcast_to(traj.xs[19, 1], (11, 2)))
    report = traj.report()
    assert "1 of 4" in report
    assert "20" in report
    assert np.all(np.isfinite(traj.losses))


def test_nan_from_a_pole_is_reported_not_raised():
    """f = √x: from x = 1 with lr = 4 the first step lands at −1 (gradient 0.5 ⇒ 1 − 2), where
    the gradient 1/(2√x) is NaN, so the second iterate is NaN: diverged at step 2."""

    def root(x):
        return anp.sum(anp.sqrt(x), axis=-1)

    for f in (root, functions.from_callable(root, dim=1)):
        traj = sampy.run(SGD(lr=4.0), f, np.array([[1.0], [4.0]]), 6)
        assert traj.diverged_at[0] == 2
        # The second point by hand: x ← x − 4/(2√x) until √ of a negative number.
        x, expected = 4.0, [4.0]
        while math.isfinite(x) and len(expected) < 7:
            x = x - 2.0 / math.sqrt(x) if x > 0 else math.nan
            expected.append(x)
        assert traj.diverged_at[1] == len(expected) - 1 == 5
        # autograd writes the derivative as ½x^(−½): a few ulp from 1/(2√x).
        np.testing.assert_allclose(traj.xs[:5, 1, 0], expected[:5], rtol=1e-14)
        np.testing.assert_array_equal(traj.xs[5:, 1, 0], [traj.xs[4, 1, 0]] * 2)
        np.testing.assert_array_equal(traj.xs[:, 0, 0], [1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0])
        assert np.all(np.isfinite(traj.xs[:, 0]))
        assert "diverged" in traj.report()
        assert np.isnan(traj.losses[1, 0])  # √(−1): reported as NaN, no exception


def test_all_points_diverging_still_returns_full_shapes():
    traj = sampy.run(SGD(lr=np.array([2.0, 3.0])), "sphere", np.ones((2, 2)), 50, bound=10.0)
    # lr 2: x_k = (−3)^k; 27 > 10 at k = 3. lr 3: x_k = (−5)^k; 25 > 10 at k = 2.
    np.testing.assert_array_equal(traj.diverged_at, [3, 2])
    assert traj.xs.shape == (51, 2, 2)
    np.testing.assert_array_equal(traj.xs[3:, 0], np.broadcast_to([9.0, 9.0], (48, 2)))
    np.testing.assert_array_equal(traj.xs[2:, 1], np.broadcast_to([-5.0, -5.0], (49, 2)))
    assert "2 of 2" in traj.report()
    assert "step 2" in traj.report()


class _Scripted:
    """An optimizer that adds a scripted displacement per step (no gradient)."""

    grad_evals_per_step = 0

    def __init__(self, moves):
        self.moves = np.asarray(moves, dtype=float)

    def init(self, x):
        return 0

    def step(self, x, state, oracle):
        return x + self.moves[state], state + 1


def test_a_diverged_point_stays_frozen_when_later_steps_are_in_bounds():
    # Point 0 moves +0.5, then jumps +100 (beyond bound 10: diverged at step 2, frozen at 0.5),
    # then the optimizer would move it by +1 per step; point 1 never moves.
    moves = np.zeros((6, 2, 1))
    moves[:, 0, 0] = [0.5, 100.0, 1.0, 1.0, 1.0, 1.0]
    f = functions.get("sphere", dim=1)
    traj = sampy.run(_Scripted(moves), f, np.zeros((2, 1)), 6, bound=10.0)
    assert traj.diverged_at[0] == 2
    np.testing.assert_array_equal(traj.xs[:, 0, 0], [0.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5])


def _huber(x):
    a = anp.abs(x)
    return anp.sum(anp.where(a <= 1.0, 0.5 * x**2, a - 0.5), axis=-1)


def test_heavy_ball_on_huber_diverges_at_the_step_computed_by_hand():
    # Huber loss, gradient clip(x, −1, 1); SGD lr = 2, momentum 0.9 (torch: b_1 = g_1):
    #   x0 = 3:    g = 1,  b = 1,                 x1 = 3 − 2 = 1
    #   x1 = 1:    g = 1,  b = 0.9 + 1 = 1.9,     x2 = 1 − 3.8 = −2.8
    #   x2 = −2.8: g = −1, b = 1.71 − 1 = 0.71,   x3 = −2.8 − 1.42 = −4.22, |x3| > 4
    # ⇒ diverged at step 3, frozen at −2.8. The second point sits at the minimum, g = 0.
    f = functions.from_callable(_huber, dim=1)
    traj = sampy.run(SGD(lr=2.0, momentum=0.9), f, np.array([[3.0], [0.0]]), 3, bound=4.0)
    np.testing.assert_array_equal(traj.diverged_at, [3, -1])
    np.testing.assert_allclose(traj.xs[:, 0, 0], [3.0, 1.0, -2.8, -2.8], rtol=1e-15)
    np.testing.assert_array_equal(traj.xs[:, 1, 0], np.zeros(4))


def test_a_diverged_heavy_ball_point_stays_frozen():
    # The same run one step longer. From the frozen −2.8 the momentum step would be
    # b = 0.9·0.71 − 1 = −0.361, x = −2.8 + 0.722 = −2.078, inside the bound: the point must
    # nevertheless stay at −2.8.
    f = functions.from_callable(_huber, dim=1)
    traj = sampy.run(SGD(lr=2.0, momentum=0.9), f, np.array([[3.0], [0.0]]), 8, bound=4.0)
    assert traj.diverged_at[0] == 3
    np.testing.assert_allclose(traj.xs[:4, 0, 0], [3.0, 1.0, -2.8, -2.8], rtol=1e-15)
    np.testing.assert_array_equal(traj.xs[3:, 0, 0], np.full(6, traj.xs[2, 0, 0]))


# ---------------------------------------------------------------------------------------------
# Behaviour: SAM prefers the flat minimum of the sharp/flat toy


def _nearest_minimum(f, points, radius):
    """Label index of the nearest listed minimiser, −1 when none is within ``radius``."""
    dist = np.linalg.norm(points[..., None, :] - f.minima, axis=-1)
    idx = dist.argmin(axis=-1)
    return np.where(dist.min(axis=-1) <= radius, idx, -1)


def test_sgd_ends_sharp_and_sam_ends_flat_from_the_optax_start():
    f = functions.get("sharp_flat")
    sharp, flat = f.minima_labels.index("sharp"), f.minima_labels.index("flat")
    x0 = np.array([-0.4, -0.4])
    sgd = sampy.run(SGD(lr=0.01), f, x0, 10_000)
    sam = sampy.run(SAM(SGD(lr=0.01), rho=0.1), f, x0, 10_000)
    # SGD converges to the minimiser itself; SAM to a nearby point (its fixed point is where
    # the perturbed gradient vanishes, O(ρ²) away from the minimiser), here within 0.05.
    assert _nearest_minimum(f, sgd.final, 1e-6) == sharp
    assert _nearest_minimum(f, sam.final, 0.05) == flat
    assert not sgd.diverged
    assert not sam.diverged
    assert sam.grad_evals == 20_000


def test_sam_ends_in_the_flat_basin_more_often_than_sgd():
    f = functions.get("sharp_flat")
    sharp, flat = f.minima_labels.index("sharp"), f.minima_labels.index("flat")
    lo = np.array([a for a, _ in f.domain])
    hi = np.array([b for _, b in f.domain])
    x0 = np.random.default_rng(2024).uniform(lo, hi, size=(200, 2))
    sgd = sampy.run(SGD(lr=0.01), f, x0, 10_000)
    sam = sampy.run(SAM(SGD(lr=0.01), rho=0.1), f, x0, 10_000)
    sgd_end = _nearest_minimum(f, sgd.final, 0.05)
    sam_end = _nearest_minimum(f, sam.final, 0.05)
    assert not sgd.diverged.any()
    assert not sam.diverged.any()
    sgd_flat, sam_flat = np.sum(sgd_end == flat), np.sum(sam_end == flat)
    sgd_sharp, sam_sharp = np.sum(sgd_end == sharp), np.sum(sam_end == sharp)
    assert sgd_sharp > 0  # some SGD runs are caught by the sharp minimum...
    assert sam_sharp < sgd_sharp  # ...fewer SAM runs
    assert sam_flat > sgd_flat
    # Among the runs that reached a minimum, SAM's flat share is larger.
    assert sam_flat / (sam_flat + sam_sharp) > sgd_flat / (sgd_flat + sgd_sharp)
