"""The NumPy reference SAM / ASAM / p-norm SAM (Foret et al., ICLR 2021; Kwon et al., ICML 2021).

Closed forms on the quadratic, reduction identities, Hölder equalities, ASAM's scale
covariance (Kwon et al., Section 3; and SAM's failure of it), per-point norms and gradient counting.
"""

from __future__ import annotations

import math

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import sampy
from sampy import functions
from sampy.optim import (
    SAM,
    SGD,
    Adam,
    AdamW,
    NormBallAscent,
    Oracle,
    dual_direction,
    dual_norm_exponent,
    lp_norm,
    norm_ball_perturbation,
)

PS = [1.0, 1.5, 2.0, 3.0, 7.0, math.inf]

A = np.array([[4.0, 1.0, 0.5], [1.0, 3.0, -0.2], [0.5, -0.2, 2.0]])
B = np.array([1.0, -2.0, 0.5])


def _quadratic():
    return functions.get("quadratic", A=A, b=B)


def _conjugate(p):
    """Hölder conjugate, written independently of the code under test."""
    if p == 1:
        return math.inf
    if math.isinf(p):
        return 1.0
    return 1.0 / (1.0 - 1.0 / p)


class RecordingBase:
    """A base optimizer that records the directions it is handed and moves by −d."""

    grad_evals_per_step = 1

    def __init__(self):
        self.directions = []

    def init(self, x):
        return None

    def update(self, x, d, state):
        self.directions.append(np.array(d))
        return x - d, None

    def step(self, x, state, oracle):
        return self.update(x, oracle.grad(x), state)


def _one_step(opt, f, x):
    oracle = Oracle(f)
    new, _ = opt.step(x, opt.init(x), oracle)
    return new, oracle.calls


# ---------------------------------------------------------------------------------------------
# Closed forms on the quadratic


@pytest.mark.parametrize("perturb_eps", [1e-12, 0.0])
def test_one_sam_step_on_quadratic_closed_form(perturb_eps):
    w = np.array([1.5, -0.5, 2.0])
    lr, rho = 0.07, 0.3
    g = A @ w - B
    expected = w - lr * (g + rho * A @ g / np.linalg.norm(g))
    sam = SAM(SGD(lr=lr), rho=rho, perturb_eps=perturb_eps)
    new, calls = _one_step(sam, _quadratic(), w)
    # ‖g‖ ≈ 5: the 1e-12 guard changes ε by a relative 2e-13, far below 1e-12.
    np.testing.assert_allclose(new, expected, rtol=0, atol=1e-12)
    assert calls == 2


def test_sam_steps_on_quadratic_batch_with_momentum_and_rho_grid():
    rng = np.random.default_rng(3)
    w = rng.normal(size=(5, 3))
    rhos = np.array([0.0, 0.01, 0.1, 0.5, 2.0])
    lr, mu = 0.05, 0.9
    sam = SAM(SGD(lr=lr, momentum=mu), rho=rhos)
    traj = sampy.run(sam, _quadratic(), w, 20)
    for k in range(5):
        x, buf = w[k].copy(), None
        for step in range(20):
            g = A @ x - B
            d = g + rhos[k] * A @ g / (np.linalg.norm(g) + 1e-12)  # the documented guard
            buf = d if buf is None else mu * buf + d
            x = x - lr * buf
            np.testing.assert_allclose(traj.xs[step + 1, k], x, rtol=0, atol=1e-12)


@pytest.mark.parametrize("eta", [0.0, 0.1])
def test_one_asam_step_on_quadratic_closed_form(eta):
    w = np.array([1.5, -0.5, 2.0])
    lr, rho = 0.07, 0.8
    g = A @ w - B
    t = np.abs(w) + eta
    eps = rho * t**2 * g / np.linalg.norm(t * g)
    expected = w - lr * (A @ (w + eps) - B)
    new, _ = _one_step(SAM(SGD(lr=lr), rho=rho, adaptive=True, eta=eta), _quadratic(), w)
    np.testing.assert_allclose(new, expected, rtol=0, atol=1e-12)


def test_one_linf_sam_step_on_quadratic_closed_form():
    w = np.array([1.5, -0.5, 2.0])
    lr, rho = 0.07, 0.2
    g = A @ w - B
    expected = w - lr * (g + rho * A @ np.sign(g))
    new, _ = _one_step(SAM(SGD(lr=lr), rho=rho, p=math.inf), _quadratic(), w)
    np.testing.assert_allclose(new, expected, rtol=0, atol=1e-12)


def test_base_step_is_taken_at_the_unperturbed_point():
    """With Adam as base: one step equals Adam's first step fed with g̃, at w (not w + ε)."""
    w = np.array([1.5, -0.5, 2.0])
    rho, lr = 0.3, 0.01
    g = A @ w - B
    g_adv = A @ (w + rho * g / np.linalg.norm(g)) - B
    # Adam at t = 1 with eps = 0 moves each coordinate by lr·sign(d); with decoupled decay
    # the point is first shrunk by (1 − lr λ) — at w, so the result is w(1 − lr λ) − lr sign.
    new, _ = _one_step(SAM(AdamW(lr=lr, eps=0.0, weight_decay=0.5), rho=rho), _quadratic(), w)
    np.testing.assert_allclose(new, w * (1 - lr * 0.5) - lr * np.sign(g_adv), atol=1e-15)


def test_sam_hands_the_perturbed_gradient_to_the_base():
    f = _quadratic()
    w = np.random.default_rng(4).normal(size=(4, 3))
    base = RecordingBase()
    sam = SAM(base, rho=0.25)
    sam.step(w, sam.init(w), Oracle(f))
    g = w @ A - B
    e = 0.25 * g / (np.linalg.norm(g, axis=-1, keepdims=True) + 1e-12)  # davda54's guard
    np.testing.assert_allclose(base.directions[0], (w + e) @ A - B, rtol=0, atol=1e-14)
    np.testing.assert_allclose(sam.perturbation(w, g), e, rtol=0, atol=1e-15)


# ---------------------------------------------------------------------------------------------
# Reduction identities


@pytest.mark.parametrize(
    "make_base",
    [
        pytest.param(lambda: SGD(lr=1e-4, momentum=0.9), id="sgd-momentum"),
        pytest.param(lambda: SGD(lr=1e-4, momentum=0.9, nesterov=True, weight_decay=0.1), id="nag"),
        pytest.param(lambda: Adam(lr=0.01), id="adam"),
        pytest.param(lambda: AdamW(lr=0.01, weight_decay=0.1), id="adamw"),
    ],
)
@pytest.mark.parametrize(
    "kw", [{}, {"p": 1.0}, {"p": 3.0}, {"p": math.inf}, {"adaptive": True, "eta": 0.01}], ids=str
)
def test_rho_zero_is_the_base_optimizer_bit_for_bit(make_base, kw):
    f = functions.get("rosenbrock")
    x0 = np.array([[-1.5, 2.0], [0.3, -0.4], [1.2, 1.2]])
    base = sampy.run(make_base(), f, x0, 100)
    sam = sampy.run(SAM(make_base(), rho=0.0, **kw), f, x0, 100)
    np.testing.assert_array_equal(sam.xs, base.xs)
    assert not base.diverged.any()
    assert np.abs(base.xs[-1] - x0).max() > 1e-2  # it moved: the comparison is not vacuous
    assert base.grad_evals == 100
    assert sam.grad_evals == 200


def test_p2_is_sam_and_the_generic_formula_is_continuous_at_p2():
    g = np.random.default_rng(5).normal(size=(6, 4))
    rho = 0.3
    by_hand = rho * g / (np.sqrt(np.sum(g * g, axis=-1, keepdims=True)) + 1e-12)
    np.testing.assert_allclose(norm_ball_perturbation(g, g, rho, p=2), by_hand, rtol=1e-15)
    np.testing.assert_array_equal(
        NormBallAscent(rho=rho, p=2)(g, g, None)[0], SAM(SGD(), rho=rho).perturbation(g, g)
    )
    # The general-p branch near p = 2 agrees with the p = 2 branch.
    near = dual_direction(g, 2.0 + 1e-9, rho, 1e-12)
    np.testing.assert_allclose(near, by_hand, rtol=1e-7)
    f = functions.get("rosenbrock")
    x0 = np.array([-1.5, 2.0])
    np.testing.assert_array_equal(
        sampy.run(SAM(SGD(lr=1e-3), rho=0.05, p=2), f, x0, 50).xs,
        sampy.run(SAM(SGD(lr=1e-3), rho=0.05), f, x0, 50).xs,
    )


@pytest.mark.parametrize("p", PS)
def test_adaptive_with_unit_scale_is_plain_sam(p):
    """|w| + η = 1 at every coordinate ⇒ T = I ⇒ ASAM is SAM."""
    rng = np.random.default_rng(6)
    eta = 0.25
    w = (1.0 - eta) * rng.choice([-1.0, 1.0], size=(5, 3))
    assert np.all(np.abs(w) + eta == 1.0)
    g = rng.normal(size=(5, 3))
    np.testing.assert_array_equal(
        norm_ball_perturbation(w, g, 0.4, p, adaptive=True, eta=eta),
        norm_ball_perturbation(w, g, 0.4, p, adaptive=False),
    )
    f = _quadratic()
    a, _ = _one_step(SAM(SGD(lr=0.1), rho=0.4, p=p, adaptive=True, eta=eta), f, w)
    s, _ = _one_step(SAM(SGD(lr=0.1), rho=0.4, p=p), f, w)
    np.testing.assert_array_equal(a, s)


# ---------------------------------------------------------------------------------------------
# Hölder: the perturbation has the promised norm and is the maximiser


def _gradients(max_d=6):
    return st.integers(1, max_d).flatmap(
        lambda d: arrays(
            np.float64,
            (3, d),
            elements=st.floats(-100, 100, allow_nan=False, allow_subnormal=False),
        )
    )


@settings(max_examples=150, deadline=None)
@given(g=_gradients(), p=st.sampled_from(PS), rho=st.floats(1e-3, 10.0))
def test_holder_equalities(g, p, rho):
    # Every point's gradient is bounded away from 0: the 1e-12 guard then shifts ‖ε‖ by at
    # most a relative (q − 1)·1e-12/‖g‖_q ≤ 3e-10 (q ≤ 3 here unless p = 1 where no guard).
    assume(np.all(np.abs(g).max(axis=-1) >= 1e-2))
    q = _conjugate(p)
    e = norm_ball_perturbation(np.zeros_like(g), g, rho, p)
    assert e.shape == g.shape
    for k in range(g.shape[0]):
        np.testing.assert_allclose(np.linalg.norm(e[k], ord=p), rho, rtol=1e-9)
        np.testing.assert_allclose(e[k] @ g[k], rho * np.linalg.norm(g[k], ord=q), rtol=1e-9)
        # Ascent: ε points uphill (non-negative product with g, coordinate by coordinate).
        assert np.all(e[k] * g[k] >= 0)


@settings(max_examples=60, deadline=None)
@given(g=_gradients(4), p=st.sampled_from(PS), seed=st.integers(0, 2**32 - 1))
def test_perturbation_maximises_the_linearisation_over_the_ball(g, p, seed):
    assume(np.all(np.abs(g).max(axis=-1) >= 1e-2))
    rho = 0.5
    e = norm_ball_perturbation(g, g, rho, p)
    rng = np.random.default_rng(seed)
    for k in range(g.shape[0]):
        cand = rng.normal(size=(200, g.shape[1])) * rng.exponential(size=(200, 1))
        norms = np.linalg.norm(cand, ord=p, axis=-1, keepdims=True)
        cand = rho * cand / norms  # random points on the sphere ‖δ‖_p = ρ
        assert np.all(cand @ g[k] <= e[k] @ g[k] * (1 + 1e-9) + 1e-12)


@settings(max_examples=80, deadline=None)
@given(
    g=_gradients(5),
    p=st.sampled_from(PS),
    eta=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_adaptive_holder_equalities(g, p, eta, seed):
    """ASAM: ‖T⁻¹ε‖_p = ρ and ⟨ε, g⟩ = ρ‖T g‖_q with T = |w| + η."""
    rng = np.random.default_rng(seed)
    w = rng.uniform(0.1, 3.0, g.shape) * rng.choice([-1.0, 1.0], g.shape)  # |w| > 0: T invertible
    t = np.abs(w) + eta
    assume(np.all(np.abs(t * g).max(axis=-1) >= 1e-2))
    rho = 0.7
    e = norm_ball_perturbation(w, g, rho, p, adaptive=True, eta=eta)
    q = _conjugate(p)
    for k in range(g.shape[0]):
        np.testing.assert_allclose(np.linalg.norm(e[k] / t[k], ord=p), rho, rtol=1e-9)
        np.testing.assert_allclose(e[k] @ g[k], rho * np.linalg.norm(t[k] * g[k], ord=q), 1e-9)


@settings(max_examples=100, deadline=None)
@given(
    u=st.integers(1, 6).flatmap(
        lambda d: arrays(
            np.float64,
            (4, d),
            # Magnitudes where numpy's unscaled Σ|u|^p neither overflows nor underflows for
            # p ≤ 50 (overflow protection has its own test below).
            elements=st.one_of(st.just(0.0), st.floats(1e-5, 1e5), st.floats(-1e5, -1e-5)),
        )
    ),
    p=st.sampled_from([*PS, 1.2, 10.0, 50.0]),
)
def test_lp_norm_matches_numpy(u, p):
    got = lp_norm(u, p)
    assert got.shape == (4, 1)
    np.testing.assert_allclose(got[:, 0], np.linalg.norm(u, ord=p, axis=-1), rtol=1e-12, atol=0)


def test_lp_norm_does_not_overflow_for_large_p():
    u = np.array([[1e200, 3e199, -1e200]])
    got = lp_norm(u, 10.0)
    expected = 1e200 * (2 + 0.3**10) ** 0.1
    np.testing.assert_allclose(got[0, 0], expected, rtol=1e-13)


def test_dual_norm_exponent():
    for p in [1.5, 2.0, 3.0, 7.0]:
        assert math.isclose(1 / p + 1 / dual_norm_exponent(p), 1.0, rel_tol=1e-15)
    assert dual_norm_exponent(1.0) == math.inf
    assert dual_norm_exponent(math.inf) == 1.0


def test_p1_puts_the_radius_on_the_largest_coordinates_split_equally():
    g = np.array(
        [
            [3.0, -3.0, 1.0, 0.0],  # two ties
            [2.0, 2.0, 2.0, -2.0],  # four ties
            [0.1, -5.0, 4.9, 0.0],  # one winner
        ]
    )
    rho = 0.6
    expected = rho * np.array(
        [[0.5, -0.5, 0.0, 0.0], [0.25, 0.25, 0.25, -0.25], [0.0, -1.0, 0.0, 0.0]]
    )
    np.testing.assert_allclose(norm_ball_perturbation(g, g, rho, p=1.0), expected, rtol=1e-15)


def test_linf_moves_every_nonzero_coordinate_by_rho():
    g = np.array([[3.0, -1e-8, 0.0, 2.0]])
    np.testing.assert_array_equal(
        norm_ball_perturbation(g, g, 0.2, p=math.inf), [[0.2, -0.2, 0.0, 0.2]]
    )


# ---------------------------------------------------------------------------------------------
# ASAM scale covariance: L(a, b) = (a·b − 1)² + (a·b)⁴ is invariant under (ca, b/c)


def _scale_symmetric(x):
    prod = x[..., 0] * x[..., 1]
    return (prod - 1.0) ** 2 + prod**4


def _sym_grad(x):
    return functions.autograd_value_and_grad(_scale_symmetric, x)[1]


def _eps_and_adv_grad(x, **kw):
    base = RecordingBase()
    sam = SAM(base, rho=0.3, **kw)
    sam.step(x, sam.init(x), Oracle(_scale_symmetric))
    return sam.perturbation(x, _sym_grad(x)), base.directions[0]


POINTS = np.array([[0.8, 1.7], [-1.2, 0.4], [2.0, -0.3], [0.3, 0.3]])


@pytest.mark.parametrize("c", [0.5, 3.0, 10.0])
@pytest.mark.parametrize("p", [2.0, math.inf, 3.0])
def test_asam_is_scale_covariant(c, p):
    scale = np.array([c, 1.0 / c])
    x = POINTS
    y = x * scale  # Aw with A = diag(c, 1/c)
    np.testing.assert_allclose(_scale_symmetric(y), _scale_symmetric(x), rtol=1e-14)
    e_x, gt_x = _eps_and_adv_grad(x, p=p, adaptive=True, eta=0.0)
    e_y, gt_y = _eps_and_adv_grad(y, p=p, adaptive=True, eta=0.0)
    np.testing.assert_allclose(e_y, scale * e_x, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(gt_y, gt_x / scale, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(
        _scale_symmetric(y + e_y), _scale_symmetric(x + e_x), rtol=1e-12, atol=1e-15
    )
    # The adversarial gradient really is the gradient at w + ε.
    np.testing.assert_allclose(gt_x, _sym_grad(x + e_x), rtol=1e-14)


@pytest.mark.parametrize("c", [0.5, 3.0, 10.0])
def test_sam_is_not_scale_covariant(c):
    scale = np.array([c, 1.0 / c])
    x = POINTS
    e_x, gt_x = _eps_and_adv_grad(x)
    e_y, gt_y = _eps_and_adv_grad(x * scale)
    # Every point fails the identity by far more than rounding.
    assert np.all(np.linalg.norm(e_y - scale * e_x, axis=-1) > 1e-2)
    assert np.all(np.linalg.norm(gt_y - gt_x / scale, axis=-1) > 1e-3)


def test_asam_covariance_is_only_approximate_with_eta():
    scale = np.array([3.0, 1.0 / 3.0])
    errs = []
    for eta in (1e-1, 1e-3, 1e-5):
        e_x, _ = _eps_and_adv_grad(POINTS, adaptive=True, eta=eta)
        e_y, _ = _eps_and_adv_grad(POINTS * scale, adaptive=True, eta=eta)
        errs.append(np.abs(e_y - scale * e_x).max())
    assert errs[0] > 1e-3  # broken by a visible amount at η = 0.1
    assert errs[0] > 10 * errs[1] > 100 * errs[2]  # and O(η)


# ---------------------------------------------------------------------------------------------
# Zero gradient, per-point norms, counting


@pytest.mark.parametrize("p", PS)
@pytest.mark.parametrize("adaptive", [False, True])
@pytest.mark.parametrize("eta", [0.0, 0.1])
def test_zero_gradient_gives_zero_perturbation(p, adaptive, eta):
    x = np.array([[0.0, 0.0, 0.0], [1.0, -2.0, 0.5]])
    e = norm_ball_perturbation(x, np.zeros_like(x), 0.5, p, adaptive=adaptive, eta=eta)
    assert np.all(np.isfinite(e))
    np.testing.assert_array_equal(e, np.zeros_like(x))
    # A SAM run that starts at the minimum of the sphere stays there, without NaN.
    traj = sampy.run(
        SAM(SGD(lr=0.1, momentum=0.9), rho=0.5, p=p, adaptive=adaptive, eta=eta),
        "sphere",
        np.zeros((2, 2)),
        5,
    )
    np.testing.assert_array_equal(traj.xs, np.zeros((6, 2, 2)))
    assert not traj.diverged.any()


@pytest.mark.parametrize("p", PS)
@pytest.mark.parametrize("adaptive", [False, True])
def test_perturbation_is_per_point(p, adaptive):
    rng = np.random.default_rng(8)
    g = rng.normal(size=(6, 3))
    g[1] *= 1e6
    g[2] = 0.0
    g[3] *= 1e-6
    x = rng.normal(size=(6, 3))
    batch = norm_ball_perturbation(x, g, 0.3, p, adaptive=adaptive, eta=0.01)
    for k in range(6):
        alone = norm_ball_perturbation(x[k], g[k], 0.3, p, adaptive=adaptive, eta=0.01)
        np.testing.assert_allclose(batch[k], alone, rtol=1e-15, atol=0)
    # two batch axes
    batch2 = norm_ball_perturbation(
        x.reshape(2, 3, 3), g.reshape(2, 3, 3), 0.3, p, adaptive=adaptive, eta=0.01
    )
    np.testing.assert_allclose(batch2.reshape(6, 3), batch, rtol=1e-15, atol=0)


@pytest.mark.parametrize("p", [2.0, math.inf, 1.0, 3.0])
def test_rho_grid_equals_separate_runs(p):
    f = functions.get("rosenbrock")
    rhos = np.array([0.0, 0.01, 0.05, 0.2])
    x0 = np.tile([-1.5, 2.0], (4, 1))
    grid = sampy.run(SAM(SGD(lr=5e-4), rho=rhos, p=p), f, x0, 30)
    for k, rho in enumerate(rhos):
        alone = sampy.run(SAM(SGD(lr=5e-4), rho=float(rho), p=p), f, x0[k], 30)
        np.testing.assert_array_equal(grid.xs[:, k], alone.xs)
    assert len({tuple(p) for p in grid.final}) == 4


def test_batch_of_start_points_equals_separate_runs():
    f = functions.get("himmelblau")
    x0 = np.random.default_rng(9).uniform(-4, 4, size=(7, 2))
    together = sampy.run(SAM(Adam(lr=0.01), rho=0.1), f, x0, 50)
    for k in range(7):
        alone = sampy.run(SAM(Adam(lr=0.01), rho=0.1), f, x0[k], 50)
        np.testing.assert_array_equal(together.xs[:, k], alone.xs)


@pytest.mark.parametrize("batch", [(), (7,), (2, 3)])
def test_gradient_evaluations_are_counted(batch):
    f = _quadratic()
    x = np.ones((*batch, 3))
    for opt, per_step in [
        (SAM(SGD(lr=0.01), rho=0.1), 2),
        (SAM(Adam(), rho=0.1, p=3.0, adaptive=True), 2),
        (SGD(lr=0.01), 1),
        (Adam(), 1),
        (AdamW(), 1),
    ]:
        _, calls = _one_step(opt, f, x)
        assert calls == per_step
        assert opt.grad_evals_per_step == per_step
        assert sampy.run(opt, f, x, 13).grad_evals == 13 * per_step


def test_oracle_counts_calls_of_either_kind():
    f = _quadratic()
    oracle = Oracle(f)
    x = np.ones((5, 3))
    oracle(x)
    oracle.grad(x)
    oracle.grad(x)
    assert oracle.calls == 3
    plain = Oracle(lambda z: anp.sum(z**3, axis=-1))
    v, g = plain(x * 2)
    np.testing.assert_allclose(g, 12.0 * np.ones((5, 3)))
    np.testing.assert_allclose(v, 24.0 * np.ones(5))
    np.testing.assert_allclose(plain.grad(x), autograd.elementwise_grad(lambda z: z**3)(x))
    assert plain.calls == 2


def test_sam_rejects_a_non_optimizer_base():
    with pytest.raises(ValueError, match="base"):
        SAM(object(), rho=0.1)
