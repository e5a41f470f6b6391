"""Lemma 3.1 (book/label_noise.md): 1-SAM on the linear model is SGD with weights ω(z, C).

- the factor ``ω(z, C) = σ(−z + C)/σ(−z)`` is strictly increasing in the margin z for C > 0,
  on a dense grid and by hypothesis, lies in (1, e^C), and its closed-form derivative is right;
- the closed-form weights equal the gradient-norm ratios that 1-SAM measures on the linear
  model to 1e-10, and 1-SAM's gradients *are* the reweighted SGD gradients (same direction);
- ``MSharpnessSAM`` with m = 1 hands its base optimizer ``mean_i ω_i ∇ℓ_i(w)``;
- the symmetric label noise used on the digits is exact and uniform over the other classes.
"""

from __future__ import annotations

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import integrate

from sampy.label_noise import (
    make_noisy_binary_data,
    measured_one_sam_weights,
    one_sam_weights,
    reweighting_factor,
    reweighting_factor_derivative,
    symmetric_label_noise,
)
from sampy.optim import MSharpnessSAM, Oracle
from sampy.problems import LogisticRegression

C_VALUES = [0.01, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0]


def _naive(z, c):
    sig = lambda u: 1.0 / (1.0 + np.exp(-u))  # noqa: E731
    return sig(-z + c) / sig(-z)


# ---------------------------------------------------------------------------------------------
# The factor


@pytest.mark.parametrize("c", C_VALUES)
def test_factor_is_strictly_increasing_on_a_dense_grid(c):
    z = np.linspace(-20.0, 20.0, 20_001)
    w = reweighting_factor(z, c)
    assert np.all(np.diff(w) > 0)
    # Bounds 1 < ω < e^C, and the limits at both ends.
    assert np.all(w > 1.0) and np.all(w < np.exp(c))
    assert reweighting_factor(-60.0, c) == pytest.approx(1.0, rel=1e-15)
    assert reweighting_factor(60.0, c) == pytest.approx(np.exp(c), rel=1e-12)


def test_factor_is_the_ratio_of_sigmoids_and_decreasing_for_negative_c():
    z = np.linspace(-30, 30, 601)[:, None]
    c = np.array([-2.0, -0.1, 0.0, 0.3, 4.0])
    np.testing.assert_allclose(reweighting_factor(z, c), _naive(z, c), rtol=1e-13)
    np.testing.assert_array_equal(reweighting_factor(z, 0.0), 1.0)  # C = 0: plain SGD
    assert np.all(np.diff(reweighting_factor(np.linspace(-10, 10, 1001), -1.0)) < 0)


def test_factor_never_overflows():
    z = np.array([-1e6, -800.0, 0.0, 800.0, 1e6])
    w = reweighting_factor(z, 3.0)
    assert np.all(np.isfinite(w))
    np.testing.assert_allclose(w[[0, -1]], [1.0, np.exp(3.0)], rtol=1e-14)
    assert np.all(np.isfinite(reweighting_factor_derivative(z, 3.0)))


@pytest.mark.parametrize("c", [-1.5, 0.0, *C_VALUES])
def test_derivative_formula_matches_autograd_and_integrates_to_the_factor(c):
    def log_omega(z):
        return anp.logaddexp(0.0, z) - anp.logaddexp(0.0, z - c)

    # autograd's d log ω/dz = σ(z) − σ(z − C) cancels for z ≫ C: compare where it does not.
    z = np.linspace(-25.0, max(c, 0.0) + 3.0, 501)
    expected = reweighting_factor(z, c) * autograd.elementwise_grad(log_omega)(z)
    np.testing.assert_allclose(reweighting_factor_derivative(z, c), expected, rtol=1e-9, atol=0)
    # Everywhere (up to z = 30): ∫_a^b ω'(z) dz = ω(b) − ω(a).
    for a, b in [(-30.0, -5.0), (-5.0, 0.0), (0.0, c + 1.0), (c + 1.0, 30.0)]:
        integral, _ = integrate.quad(
            reweighting_factor_derivative, a, b, args=(c,), epsabs=0, epsrel=1e-12, limit=200
        )
        jump = reweighting_factor(b, c) - reweighting_factor(a, c)
        assert integral == pytest.approx(jump, rel=1e-9, abs=1e-15)
    sign = np.sign(reweighting_factor_derivative(np.linspace(-25, 25, 501), c))
    np.testing.assert_array_equal(sign, np.sign(c))  # increasing exactly when C > 0


@settings(max_examples=300, deadline=None)
@given(
    z1=st.floats(-40.0, 40.0),
    z2=st.floats(-40.0, 40.0),
    c=st.floats(1e-3, 12.0),
)
def test_factor_is_strictly_increasing_by_hypothesis(z1, z2, c):
    lo, hi = min(z1, z2), max(z1, z2)
    # The true increase is at least (hi − lo) · min(ω'(lo), ω'(hi)) (ω' is unimodal): require
    # it to be well above rounding, then the computed values must be strictly ordered.
    bound = (hi - lo) * min(
        reweighting_factor_derivative(lo, c), reweighting_factor_derivative(hi, c)
    )
    assume(bound > 1e-12 * np.exp(c))
    assert reweighting_factor(lo, c) < reweighting_factor(hi, c)
    assert reweighting_factor_derivative(lo, c) > 0


@settings(max_examples=200, deadline=None)
@given(z=st.floats(-700.0, 700.0), c=st.floats(1e-6, 50.0))
def test_derivative_is_positive_for_positive_c_by_hypothesis(z, c):
    assert reweighting_factor_derivative(z, c) > 0
    assert 1.0 <= reweighting_factor(z, c) <= np.exp(c) * (1 + 4e-16)


# ---------------------------------------------------------------------------------------------
# The lemma on the linear model


@pytest.mark.parametrize("seed", range(6))
def test_closed_form_weights_equal_the_measured_one_sam_ratios(seed):
    data = make_noisy_binary_data(n=40, dim=7, noise=0.3, seed=seed)
    problem = data.linear()
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((3, problem.dim))  # three points at once
    rho = [0.05, 0.3, 1.0][seed % 3]
    measured = measured_one_sam_weights(problem, w, rho)
    closed = one_sam_weights(problem, w, rho)
    assert closed.shape == (3, problem.n)
    np.testing.assert_allclose(measured, closed, rtol=1e-10, atol=0)
    # The vector identity ∇ℓ_i(w + ε_i) = ω_i ∇ℓ_i(w): 1-SAM only rescales each gradient.
    g = problem.per_example_grads(w)
    e = rho * g / np.linalg.norm(g, axis=-1, keepdims=True)
    g_adv = problem.batch_grads(w[..., None, :] + e, [[i] for i in range(problem.n)])
    np.testing.assert_allclose(g_adv, closed[..., None] * g, rtol=1e-10, atol=1e-14)
    # The perturbation is −t_i ρ x_i/‖x_i‖, whatever w is.
    x = problem.features
    np.testing.assert_allclose(
        e,
        -problem.labels[:, None] * rho * x / np.linalg.norm(x, axis=-1, keepdims=True)
        + 0 * w[..., None, :],
        atol=1e-14,
    )


class RecordingBase:
    grad_evals_per_step = 1

    def __init__(self):
        self.directions = []

    def init(self, x):
        return None

    def update(self, x, d, state):
        self.directions.append(np.array(d))
        return x - 0.1 * d, None

    def step(self, x, state, oracle):
        return self.update(x, oracle.grad(x), state)


def test_one_sam_hands_the_base_the_reweighted_sgd_gradient():
    problem = make_noisy_binary_data(n=30, dim=4, noise=0.2, seed=5).linear()
    w = np.random.default_rng(0).standard_normal((2, 4))
    base = RecordingBase()
    opt = MSharpnessSAM(base, rho=0.4, m=1, perturb_eps=0.0)
    opt.step(w, opt.init(w), Oracle(problem))
    omega = one_sam_weights(problem, w, 0.4)
    expected = np.mean(omega[..., None] * problem.per_example_grads(w), axis=-2)
    np.testing.assert_allclose(base.directions[0], expected, rtol=0, atol=1e-14)


def test_one_sam_is_gradient_descent_on_the_shifted_loss():
    """Corollary: on the linear model 1-SAM's direction is ∇ (1/n) Σ_i log(1 + e^{C_i − z_i})."""
    problem = make_noisy_binary_data(n=25, dim=4, noise=0.3, seed=8).linear()
    x, t = problem.features, problem.labels
    c = 0.3 * np.linalg.norm(x, axis=1)

    def shifted(w):
        return anp.mean(anp.logaddexp(0.0, c - t * anp.dot(x, w)))

    base = RecordingBase()
    opt = MSharpnessSAM(base, rho=0.3, m=1, perturb_eps=0.0)
    for w in np.random.default_rng(2).standard_normal((4, 4)):
        opt.step(w, opt.init(w), Oracle(problem))
        np.testing.assert_allclose(base.directions[-1], autograd.grad(shifted)(w), atol=1e-14)


def test_weights_refuse_what_the_lemma_does_not_cover():
    data = make_noisy_binary_data(n=10, dim=3, seed=0)
    with pytest.raises(ValueError, match="linear model"):
        one_sam_weights(data.dln(2), np.zeros(8), 0.1)
    ridge = LogisticRegression(data.features, data.labels, l2=0.1)
    with pytest.raises(ValueError, match="l2"):
        one_sam_weights(ridge, np.zeros(3), 0.1)
    # The measured ratio works on any model (the DLN here); a zero gradient gives NaN, no error.
    p = data.dln(2)
    ratios = measured_one_sam_weights(p, p.init(seed=0), 0.1)
    assert ratios.shape == (10,) and np.all(np.isfinite(ratios))
    assert np.all(np.isnan(measured_one_sam_weights(p, np.zeros(p.dim), 0.1)))


# ---------------------------------------------------------------------------------------------
# The data


def test_binary_data_is_seeded_and_flips_exactly_the_requested_share():
    a = make_noisy_binary_data(n=50, dim=4, noise=0.3, seed=2)
    b = make_noisy_binary_data(n=50, dim=4, noise=0.3, seed=2)
    np.testing.assert_array_equal(a.features, b.features)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.flipped.sum() == 15 and a.n == 50 and a.dim == 4
    np.testing.assert_array_equal(a.labels[a.flipped], -a.clean_labels[a.flipped])
    assert a.test_features.shape == (2000, 4) and set(np.unique(a.test_labels)) == {-1.0, 1.0}
    assert a.linear().minima.shape == (0, 4)  # no minimiser search on noisy problems
    with pytest.raises(ValueError, match="noise"):
        make_noisy_binary_data(noise=0.6)
    with pytest.raises(ValueError, match="n_test"):
        make_noisy_binary_data(n_test=0)


def test_symmetric_label_noise_is_exact_and_uniform_over_the_other_classes():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 300)
    noisy = symmetric_label_noise(labels, 10, 0.4, rng)
    changed = noisy != labels
    assert changed.sum() == 1200  # exactly round(0.4 n), and every chosen label changes
    assert noisy.min() >= 0 and noisy.max() <= 9
    # Each wrong label is uniform over the 9 other classes: the offsets (noisy − true) mod 10
    # are uniform on 1..9 (a chi-square test, seeded).
    from scipy import stats

    offsets = (noisy[changed] - labels[changed]) % 10
    counts = np.bincount(offsets, minlength=10)[1:]
    assert stats.chisquare(counts).pvalue > 0.01
    np.testing.assert_array_equal(labels, np.repeat(np.arange(10), 300))  # input untouched
    same = symmetric_label_noise(labels, 10, 0.4, np.random.default_rng(0))
    np.testing.assert_array_equal(noisy, same)
    np.testing.assert_array_equal(symmetric_label_noise(labels, 10, 0.0, rng), labels)
    with pytest.raises(ValueError, match="labels"):
        symmetric_label_noise(np.array([0, 10]), 10, 0.1, rng)
    with pytest.raises(ValueError, match="fraction"):
        symmetric_label_noise(labels, 10, 1.5, rng)
