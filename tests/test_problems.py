"""Sum-of-examples problems, the logistic-regression problem, noisy gradients, the oracle.

The per-example gradients are checked against autograd applied to a loss written here
independently (one example, one point at a time); the noisy oracle against its promised mean
and variance by a seeded Monte Carlo estimate.
"""

from __future__ import annotations

import math
import re

import autograd
import autograd.numpy as anp
import numpy as np
import pytest

import sampy
from sampy import functions
from sampy.optim import SGD, Oracle
from sampy.problems import (
    HEAD,
    TAIL,
    LogisticRegression,
    NoisyGradient,
    SumOfExamples,
    make_logistic_problem,
)


def _raises_naming(name):
    return pytest.raises(ValueError, match=rf"(?<![A-Za-z_]){re.escape(name)}(?![A-Za-z_])")


def _example_loss(w, xi, ti, l2):
    """−log σ(t⟨w, x⟩) + (λ/2)‖w‖², for one example at one point."""
    return anp.log(1.0 + anp.exp(-ti * anp.dot(w, xi))) + 0.5 * l2 * anp.dot(w, w)


_example_grad = autograd.grad(_example_loss)


def _small_problem(l2=0.3, n=7, dim=3, seed=4):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, dim))
    labels = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    return LogisticRegression(features, labels, l2=l2)


POINTS = np.array([[0.3, -0.7, 1.1], [-1.5, 0.2, 0.4]])


# ---------------------------------------------------------------------------------------------
# Per-example losses and gradients


def test_per_example_losses_and_grads_match_autograd():
    p = _small_problem()
    losses = p.per_example_losses(POINTS)
    grads = p.per_example_grads(POINTS)
    assert losses.shape == (2, 7)
    assert grads.shape == (2, 7, 3)
    for b, w in enumerate(POINTS):
        for i in range(p.n):
            xi, ti = p.features[i], p.labels[i]
            assert losses[b, i] == pytest.approx(_example_loss(w, xi, ti, 0.3), rel=1e-13)
            np.testing.assert_allclose(grads[b, i], _example_grad(w, xi, ti, 0.3), rtol=1e-12)


def test_autograd_default_of_the_base_class_equals_the_closed_form():
    p = _small_problem()

    class Autograded(SumOfExamples):
        def losses_at(self, points, examples):
            return p.losses_at(points, examples)

    q = Autograded(p.n, p.dim)
    idx = np.array([4, 0, 4, 2])
    np.testing.assert_allclose(
        q.per_example_grads(POINTS, idx), p.per_example_grads(POINTS, idx), rtol=1e-12
    )


def test_mean_gradient_over_all_a_subset_and_per_point_masks():
    p = _small_problem()
    per = np.stack(
        [[_example_grad(w, p.features[i], p.labels[i], 0.3) for i in range(7)] for w in POINTS]
    )
    np.testing.assert_allclose(p.grad(POINTS), per.mean(axis=1), rtol=1e-12)
    idx = np.array([1, 5, 6])
    np.testing.assert_allclose(p.grad(POINTS, idx), per[:, idx].mean(axis=1), rtol=1e-12)
    mask = np.zeros((2, 7), dtype=bool)
    mask[0, [0, 3]] = True
    mask[1, [2, 4, 6]] = True
    expected = np.stack([per[0, [0, 3]].mean(0), per[1, [2, 4, 6]].mean(0)])
    np.testing.assert_allclose(p.grad(POINTS, mask), expected, rtol=1e-12)
    # The matrix-product fast path agrees with the generic per-example path.
    value, grad = SumOfExamples.value_and_grad(p, POINTS, idx)
    np.testing.assert_allclose(p.loss(POINTS, idx), value, rtol=1e-13)
    np.testing.assert_allclose(p.grad(POINTS, idx), grad, rtol=1e-12)
    assert p(POINTS) == pytest.approx(p.per_example_losses(POINTS).mean(axis=1), rel=1e-13)


def test_batch_grads_put_each_micro_batch_at_its_own_point():
    p = _small_problem()
    batches = [np.array([0, 1, 2]), np.array([3, 4]), np.array([5, 6])]
    points = np.array([[[0.1, 0.2, 0.3], [-1.0, 0.5, 0.0], [2.0, -2.0, 1.0]]])  # (1, M=3, d)
    out = p.batch_grads(points, batches)
    assert out.shape == (1, 3, 3)
    for j, b in enumerate(batches):
        hand = np.mean([_example_grad(points[0, j], p.features[i], p.labels[i], 0.3) for i in b], 0)
        np.testing.assert_allclose(out[0, j], hand, rtol=1e-12)


def test_hessian_is_the_logistic_closed_form():
    p = _small_problem()
    w = POINTS[0]
    z = p.labels * (p.features @ w)
    s = 1.0 / (1.0 + np.exp(-z))
    hand = (p.features.T * (s * (1 - s))) @ p.features / p.n + 0.3 * np.eye(3)
    np.testing.assert_allclose(p.hessian(w), hand, rtol=1e-10)
    assert p.hessian(POINTS).shape == (2, 3, 3)


def test_no_overflow_for_huge_margins():
    p = LogisticRegression(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([1.0, -1.0]))
    x = np.array([[1e4, 1e4], [-1e4, -1e4]])
    assert np.all(np.isfinite(p.per_example_losses(x)))
    assert np.all(np.isfinite(p.per_example_grads(x)))
    assert np.all(np.isfinite(p.value_and_grad(x)[1]))


# ---------------------------------------------------------------------------------------------
# The synthetic problem


def test_make_logistic_problem_is_seeded_and_has_the_promised_counts():
    a = make_logistic_problem(n=50, noise=0.1, imbalance=0.25, seed=3)
    b = make_logistic_problem(n=50, noise=0.1, imbalance=0.25, seed=3)
    np.testing.assert_array_equal(a.features, b.features)
    np.testing.assert_array_equal(a.labels, b.labels)
    clean = make_logistic_problem(n=50, noise=0.0, imbalance=0.25, seed=3)
    assert int(np.sum(clean.labels > 0)) == 10  # round(50 · 0.25/1.25)
    assert int(np.sum(a.labels != clean.labels)) == 5  # round(0.1 · 50) flipped
    np.testing.assert_array_equal(a.groups == TAIL, a.labels > 0)
    np.testing.assert_array_equal(a.groups == HEAD, a.labels < 0)
    assert a.n == 50 and a.dim == 2 and a(np.zeros(2)) == pytest.approx(math.log(2))


def test_the_minimum_is_a_stationary_point_with_the_right_value():
    p = make_logistic_problem()
    assert p.minima.shape == (1, 2)
    np.testing.assert_allclose(p.grad(p.minima[0]), 0.0, atol=1e-10)
    assert p.fmin == pytest.approx(float(p(p.minima[0])), rel=1e-14)
    lo, hi = p.domain[0]
    assert lo < p.minima[0, 0] < hi
    # Nearby points are higher (a minimum, not a saddle).
    rng = np.random.default_rng(0)
    assert np.all(p(p.minima[0] + 0.05 * rng.normal(size=(20, 2))) > p.fmin)


def test_separable_data_has_no_finite_minimum():
    p = LogisticRegression(np.array([[1.0, 0.0], [-1.0, 0.0]]), np.array([1.0, -1.0]))
    assert p.minima.shape == (0, 2)
    assert math.isnan(p.fmin)
    ridge = LogisticRegression(p.features, p.labels, l2=0.1)
    assert ridge.minima.shape == (1, 2)


def test_a_problem_runs_where_a_function_runs():
    p = make_logistic_problem(seed=1)
    x0 = np.array([[2.0, -2.0], [-3.0, 1.0]])
    traj = sampy.run(SGD(lr=2.0), p, x0, 300)
    np.testing.assert_allclose(traj.final, np.broadcast_to(p.minima[0], (2, 2)), atol=1e-4)
    assert traj.losses.shape == (301, 2)
    np.testing.assert_allclose(traj.losses[0], p(x0), rtol=1e-14)
    assert traj.grad_evals == 300
    with _raises_naming("x0"):
        sampy.run(SGD(lr=0.1), p, np.zeros(3), 2)


@pytest.mark.parametrize(
    ("param", "call"),
    [
        ("labels", lambda: LogisticRegression(np.ones((3, 2)), np.array([1.0, 0.0, -1.0]))),
        ("labels", lambda: LogisticRegression(np.ones((3, 2)), np.ones(2))),
        ("features", lambda: LogisticRegression(np.ones(3), np.ones(3))),
        ("features", lambda: LogisticRegression(np.full((2, 2), np.nan), np.ones(2))),
        ("l2", lambda: LogisticRegression(np.ones((2, 2)), np.ones(2), l2=-1.0)),
        ("groups", lambda: LogisticRegression(np.ones((2, 2)), np.ones(2), groups=["tail"])),
        ("n", lambda: make_logistic_problem(n=1)),
        ("dim", lambda: make_logistic_problem(dim=0)),
        ("noise", lambda: make_logistic_problem(noise=0.6)),
        ("imbalance", lambda: make_logistic_problem(imbalance=0.0)),
        ("imbalance", lambda: make_logistic_problem(imbalance=1.5)),
        ("seed", lambda: make_logistic_problem(seed=-1)),
        ("sigma", lambda: NoisyGradient("sphere", sigma=-0.1)),
        ("seed", lambda: NoisyGradient("sphere", seed=1.5)),
        ("f", lambda: NoisyGradient(42)),
        ("examples", lambda: _small_problem().grad(POINTS, np.array([7]))),
        ("examples", lambda: _small_problem().grad(POINTS, np.array([], dtype=int))),
        ("examples", lambda: _small_problem().grad(POINTS, np.zeros((2, 7), dtype=bool))),
    ],
)
def test_bad_problem_input_raises_naming_it(param, call):
    with _raises_naming(param):
        call()


# ---------------------------------------------------------------------------------------------
# Noisy gradients


def test_noisy_gradient_has_the_right_mean_and_variance():
    f = functions.get("rosenbrock")
    noisy = NoisyGradient(f, sigma=0.5, seed=7)
    oracle = Oracle(noisy)
    w = np.array([0.3, -0.4])
    points = np.broadcast_to(w, (40_000, 2))
    g = oracle.grad(points)
    true = f.grad(w)
    # Standard error of the mean 0.5/200 = 0.0025; of the variance 0.25·sqrt(2/40000) ≈ 0.0018.
    np.testing.assert_allclose(g.mean(axis=0), true, atol=5 * 0.0025)
    np.testing.assert_allclose(g.var(axis=0), 0.25, atol=5 * 0.0018)
    corr = np.corrcoef((g - true).T)[0, 1]
    assert abs(corr) < 0.03  # independent coordinates
    value, _ = oracle(points[:3])
    np.testing.assert_array_equal(value, f(points[:3]))  # the value is not noisy
    assert noisy(w) == f(w) and noisy.dim == 2 and noisy.minima.shape == (1, 2)


def test_noise_is_reproducible_from_the_seed_and_fresh_per_call():
    a, b = Oracle(NoisyGradient("sphere", 1.0, seed=3)), Oracle(NoisyGradient("sphere", 1.0, 3))
    x = np.zeros((4, 2))
    first = a.grad(x)
    np.testing.assert_array_equal(first, b.grad(x))
    assert not np.allclose(first, a.grad(x))
    assert np.allclose(Oracle(NoisyGradient("sphere", 0.0)).grad(x), 0.0)


def test_noisy_problem_perturbs_per_example_gradients_independently():
    p = _small_problem()
    oracle = Oracle(NoisyGradient(p, sigma=0.2, seed=0))
    assert oracle.problem is p
    x = np.broadcast_to(POINTS[0], (20_000, 3))
    g = oracle.per_example_grads(x, np.array([1, 2]))
    noise = g - p.per_example_grads(x, np.array([1, 2]))
    np.testing.assert_allclose(noise.std(axis=0), 0.2, atol=0.01)
    assert abs(np.corrcoef(noise[:, 0, 0], noise[:, 1, 0])[0, 1]) < 0.03
    traj = sampy.run(SGD(lr=0.5), NoisyGradient(p, 0.1, seed=2), POINTS, 5)
    assert traj.losses.shape == (6, 2) and np.all(np.isfinite(traj.xs))


# ---------------------------------------------------------------------------------------------
# The oracle's per-example questions and their counts


def test_oracle_counts_each_question_as_the_spec_counts_it():
    p = _small_problem()
    oracle = Oracle(p)
    oracle.grad(POINTS)
    oracle.grad(POINTS, np.array([0, 2]))
    assert oracle.calls == 2
    oracle.per_example_grads(POINTS, np.array([0, 1, 2]))
    assert oracle.calls == 5  # one per example
    oracle.batch_grads(np.stack([POINTS, POINTS], axis=-2), [np.array([0, 1]), np.array([2])])
    assert oracle.calls == 7  # one per micro-batch
    oracle.per_example_losses(POINTS)
    oracle.loss(POINTS)
    assert oracle.calls == 7 and oracle.loss_calls == 2
    value, grad = oracle(POINTS)
    np.testing.assert_allclose(value, p(POINTS), rtol=1e-14)
    np.testing.assert_allclose(grad, p.grad(POINTS), rtol=1e-14)
    assert oracle.calls == 8


def test_plain_functions_refuse_per_example_questions_with_a_clear_message():
    oracle = Oracle(functions.get("sphere"))
    assert oracle.problem is None
    for call in (
        lambda: oracle.per_example_grads(np.zeros(2)),
        lambda: oracle.per_example_losses(np.zeros(2)),
        lambda: oracle.grad(np.zeros(2), np.array([0])),
        lambda: oracle.batch_grads(np.zeros((1, 2)), [np.array([0])]),
    ):
        with pytest.raises(ValueError, match=r"sum-of-examples problem.*'sphere'"):
            call()
    assert oracle.calls == 0
