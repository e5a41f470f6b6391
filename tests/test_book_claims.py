"""Every lemma, proposition and numerical claim of the book's chapters, checked numerically.

Each test names the page and the statement it checks; each chapter's reproducibility note
names this file. The chapters are book/sharp_flat.md (ch. 1), book/deriving_sam.md (ch. 2),
book/sam_toys.md (ch. 3) and book/pytorch_scaling.md. All randomness is seeded.
"""

from __future__ import annotations

import math
from pathlib import Path

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from toy_landscapes import PRODUCT

import sampy
from sampy import functions, sharpness
from sampy.optim import (
    SAM,
    SGD,
    USAM,
    dual_direction,
    dual_norm_exponent,
    lp_norm,
    norm_ball_perturbation,
)

P_VALUES = [1.1, 1.5, 2.0, 3.0, 7.0]


def random_ball_points(rng, n, shape, p, rho):
    """n random points of the p-ball of radius rho (interior and boundary)."""
    z = rng.standard_normal((n, *shape))
    radius = rho * rng.uniform(size=(n, *shape[:-1], 1)) ** 0.5
    radius[: n // 2] = rho  # half of them on the boundary, where the maximum lives
    return z * (radius / lp_norm(z, p))


# =========================================================================== chapter 2
# Lemma lem-holder, corollary cor-special-p, eq. eq-ds-total, lemma lem-asam,
# proposition prop-asam-covariance.


@pytest.mark.parametrize("p", P_VALUES)
def test_holder_lemma_norm_and_inner_product(p):
    """lem-holder: ‖ε̂‖_p = ρ and ⟨ε̂, g⟩ = ρ‖g‖_q, for random g (the formula written out)."""
    rng = np.random.default_rng(1)
    q = dual_norm_exponent(p)
    assert 1 / p + 1 / q == pytest.approx(1.0)
    g = rng.standard_normal((500, 6)) * rng.uniform(0.01, 100, size=(500, 1))
    rho = 0.37
    # the lemma's formula, independently of sampy
    formula = rho * np.sign(g) * np.abs(g) ** (q - 1) / lp_norm(g, q) ** (q - 1)
    e = dual_direction(g, p, rho, eps=0.0)
    np.testing.assert_allclose(e, formula, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(lp_norm(e, p)[:, 0], rho, rtol=1e-12)
    np.testing.assert_allclose(np.sum(e * g, axis=-1), rho * lp_norm(g, q)[:, 0], rtol=1e-12)


@pytest.mark.parametrize("p", [*P_VALUES, 1.0, math.inf])
def test_holder_solution_beats_random_feasible_points(p):
    """lem-holder / cor-special-p: no feasible ε does better than ε̂ on ⟨ε, g⟩."""
    rng = np.random.default_rng(2)
    g = rng.standard_normal((200, 4))
    rho = 0.8
    e = dual_direction(g, p, rho, eps=0.0)
    best = np.sum(e * g, axis=-1)
    z = random_ball_points(rng, 2000, (200, 4), p, rho)
    random_values = np.sum(z * g, axis=-1)
    assert np.all(random_values <= best + 1e-12)
    # and the random search gets close, so the check is not vacuous
    assert np.all(random_values.max(axis=0) >= 0.5 * best)
    # a perturbed ε̂, pushed back onto the sphere, is strictly worse (uniqueness for 1 < p < ∞)
    if 1 < p < math.inf:
        other = e + 0.05 * rng.standard_normal(e.shape)
        other *= rho / lp_norm(other, p)
        assert np.all(np.sum(other * g, axis=-1) < best)


def test_special_cases_p2_pinf_p1():
    """cor-special-p: p = 2 → ρg/‖g‖; p = ∞ → ρ sign g; p = 1 → ρ sign(g_j) e_j, ties split."""
    rng = np.random.default_rng(3)
    g = rng.standard_normal((100, 5))
    rho = 0.2
    np.testing.assert_allclose(
        dual_direction(g, 2, rho, 0.0), rho * g / np.linalg.norm(g, axis=-1, keepdims=True)
    )
    np.testing.assert_array_equal(dual_direction(g, math.inf, rho, 0.0), rho * np.sign(g))
    e1 = dual_direction(g, 1, rho, 0.0)
    j = np.argmax(np.abs(g), axis=-1)
    expected = np.zeros_like(g)
    expected[np.arange(100), j] = rho * np.sign(g[np.arange(100), j])
    np.testing.assert_array_equal(e1, expected)
    np.testing.assert_allclose(np.sum(e1 * g, -1), rho * np.abs(g).max(-1))
    np.testing.assert_allclose(
        np.sum(dual_direction(g, math.inf, rho, 0.0) * g, -1), rho * np.abs(g).sum(-1)
    )
    # ties: the radius is split equally; zero coordinates are left alone (exercise ds-ex-zero)
    np.testing.assert_allclose(
        dual_direction(np.array([2.0, -2.0, 1.0]), 1, 1.0, 0.0), [0.5, -0.5, 0.0]
    )
    np.testing.assert_array_equal(
        dual_direction(np.array([3.0, 0.0, -1.0]), math.inf, 1.0, 0.0), [1.0, 0.0, -1.0]
    )
    # the lemma's formula approaches the p = 1 and p = ∞ answers at the ends of the range
    np.testing.assert_allclose(dual_direction(g, 1.0001, rho, 0.0), e1, atol=2e-3)
    np.testing.assert_allclose(dual_direction(g, 1e4, rho, 0.0), rho * np.sign(g), atol=2e-3)


def test_total_derivative_and_dropped_term_on_quadratic():
    """eq-ds-total and exercise ds-ex-dropped: ∇_w L(w + ε̂(w)) = (I + J)ᵀ∇L(w + ε̂), and on a
    quadratic the term SAM drops is (ρ²/‖g‖) H (I − ĝĝᵀ) H ĝ (non-zero in general)."""
    rng = np.random.default_rng(4)
    d, rho = 5, 0.3
    m = rng.standard_normal((d, d))
    H = m @ m.T + np.eye(d)

    def loss(w):
        return 0.5 * anp.dot(w, anp.dot(H, w))

    def eps_hat(w):
        g = anp.dot(H, w)
        return rho * g / anp.sqrt(anp.sum(g**2))

    def perturbed(w):
        return loss(w + eps_hat(w))

    for w in rng.standard_normal((5, d)):
        g = H @ w
        g_hat = g / np.linalg.norm(g)
        e = eps_hat(w)
        g_tilde = H @ (w + e)
        J = autograd.jacobian(eps_hat)(w)
        total = autograd.grad(perturbed)(w)
        np.testing.assert_allclose(total, (np.eye(d) + J).T @ g_tilde, rtol=1e-10)
        np.testing.assert_allclose(
            J,
            rho / np.linalg.norm(g) * (np.eye(d) - np.outer(g_hat, g_hat)) @ H,
            rtol=1e-10,
            atol=1e-12,
        )
        dropped = rho**2 / np.linalg.norm(g) * H @ (np.eye(d) - np.outer(g_hat, g_hat)) @ H @ g_hat
        np.testing.assert_allclose(total - g_tilde, dropped, rtol=1e-9, atol=1e-12)
        assert np.linalg.norm(dropped) > 1e-4 * np.linalg.norm(g_tilde)  # not zero
        # the Jacobian is not symmetric, so the transpose in eq-ds-total matters
        assert not np.allclose(J, J.T)
        # SAM's gradient is ∇L at w + ε̂ (eq-ds-samgrad), as sampy computes it
        traj = sampy.run(SAM(SGD(lr=1.0), rho=rho, perturb_eps=0.0), loss_fn(H), w, 1)
        np.testing.assert_allclose(w - traj.final, g_tilde, rtol=1e-10)


def loss_fn(H):
    return functions.get("quadratic", A=H)


def test_first_order_point_is_feasible_and_below_the_worst_case():
    """Seed-002 admonition: L(w + ε*) ≥ L(w + ε̂) (ε* exact maximiser, ε̂ feasible)."""
    f = functions.get("sharp_flat")
    rng = np.random.default_rng(5)
    w = np.stack([rng.uniform(-1, 3, 50), rng.uniform(-1, 1, 50)], -1)
    for p in [1.0, 2.0, math.inf]:
        e = norm_ball_perturbation(w, f.grad(w), 0.2, p)
        assert np.all(lp_norm(e, p)[:, 0] <= 0.2 * (1 + 1e-12))
        assert np.all(sharpness.worst_case_loss(f, w, 0.2, p) >= f(w + e) - 1e-12)


@pytest.mark.parametrize("p", [1.0, 1.5, 2.0, 4.0, math.inf])
@pytest.mark.parametrize("eta", [0.0, 0.01, 0.5])
def test_asam_solution_on_adaptive_boundary_and_maximal(p, eta):
    """lem-asam: ‖T⁻¹ε̂‖_p = ρ, ⟨ε̂, g⟩ = ρ‖Tg‖_q, and no feasible point does better."""
    rng = np.random.default_rng(6)
    w = rng.standard_normal((100, 4)) * 3
    g = rng.standard_normal((100, 4))
    rho = 0.5
    T = np.abs(w) + eta
    e = norm_ball_perturbation(w, g, rho, p, adaptive=True, eta=eta, eps=0.0)
    np.testing.assert_allclose(lp_norm(e / T, p)[:, 0], rho, rtol=1e-10)
    value = np.sum(e * g, axis=-1)
    np.testing.assert_allclose(value, rho * lp_norm(T * g, dual_norm_exponent(p))[:, 0], rtol=1e-10)
    if p == 2:
        np.testing.assert_allclose(
            e, rho * T**2 * g / np.linalg.norm(T * g, axis=-1, keepdims=True), rtol=1e-12
        )
    if math.isinf(p):
        np.testing.assert_allclose(e, rho * T * np.sign(g), rtol=1e-12)
    feasible = T * random_ball_points(rng, 2000, (100, 4), p, rho)  # ‖T⁻¹ z‖_p ≤ ρ
    assert np.all(np.sum(feasible * g, axis=-1) <= value + 1e-12)
    # T ≡ 1 (w = 0, η = 1) is SAM
    np.testing.assert_allclose(
        norm_ball_perturbation(np.zeros(4), g[0], rho, p, adaptive=True, eta=1.0, eps=0.0),
        norm_ball_perturbation(np.zeros(4), g[0], rho, p, eps=0.0),
    )


def scale_symmetric_loss(w):
    """L(Aw) = L(w) for A = diag(c, 1/c, s, 1/s): depends on w0·w1 and w2·w3 only."""
    u, v = w[..., 0] * w[..., 1], w[..., 2] * w[..., 3]
    return (u - 1.0) ** 2 + 0.5 * (u * v - 0.3) ** 2 + anp.sin(v) ** 2


@pytest.mark.parametrize("p", [1.5, 2.0, math.inf])
def test_asam_scale_covariance(p):
    """prop-asam-covariance (η = 0): ∇L(Aw) = A⁻¹∇L(w), ε̂(Aw) = Aε̂(w), equal perturbed loss,
    g̃(Aw) = A⁻¹g̃(w)."""
    f = functions.from_callable(scale_symmetric_loss, dim=4)
    rng = np.random.default_rng(7)
    rho = 0.4
    for _ in range(5):
        w = rng.uniform(0.3, 2.0, 4) * rng.choice([-1, 1], 4)
        a = rng.uniform(0.2, 5.0, 2)
        A = np.diag([a[0], 1 / a[0], a[1], 1 / a[1]])
        assert f(A @ w) == pytest.approx(f(w), rel=1e-12)
        g_w, g_Aw = f.grad(w), f.grad(A @ w)
        np.testing.assert_allclose(g_Aw, np.linalg.solve(A, g_w), rtol=1e-9, atol=1e-12)
        e_w = norm_ball_perturbation(w, g_w, rho, p, adaptive=True, eps=0.0)
        e_Aw = norm_ball_perturbation(A @ w, g_Aw, rho, p, adaptive=True, eps=0.0)
        np.testing.assert_allclose(e_Aw, A @ e_w, rtol=1e-9, atol=1e-12)
        assert f(A @ w + e_Aw) == pytest.approx(f(w + e_w), rel=1e-9)
        np.testing.assert_allclose(
            f.grad(A @ w + e_Aw), np.linalg.solve(A, f.grad(w + e_w)), rtol=1e-8, atol=1e-12
        )
        # the exact adaptive sharpness is invariant too (the remark after the proposition)
        worst_w = sharpness.worst_case_loss(
            lambda z, w=w: scale_symmetric_loss(w + np.abs(w) * z), np.zeros(4), rho, p
        )
        worst_Aw = sharpness.worst_case_loss(
            lambda z, v=A @ w: scale_symmetric_loss(v + np.abs(v) * z), np.zeros(4), rho, p
        )
        assert worst_Aw == pytest.approx(worst_w, rel=1e-6)


def test_sam_is_not_scale_covariant():
    """prop-asam-covariance, last sentence: SAM's ε̂ is not carried along by A; with η > 0
    ASAM's is only approximately (exercise ds-ex-eta); the SGD step is not covariant either."""
    w = np.array([0.8, 0.9])
    A = np.diag([10.0, 0.1])
    g_w, g_Aw = PRODUCT.grad(w), PRODUCT.grad(A @ w)
    sam_w = norm_ball_perturbation(w, g_w, 0.5)
    sam_Aw = norm_ball_perturbation(A @ w, g_Aw, 0.5)
    assert np.linalg.norm(sam_Aw - A @ sam_w) > 0.1
    errors = []
    for eta in [0.0, 0.01, 0.1]:
        e_w = norm_ball_perturbation(w, g_w, 0.5, adaptive=True, eta=eta)
        e_Aw = norm_ball_perturbation(A @ w, g_Aw, 0.5, adaptive=True, eta=eta)
        errors.append(np.linalg.norm(e_Aw - A @ e_w))
    assert errors[0] < 1e-12 < errors[1] < errors[2]
    step = sampy.run(SAM(SGD(lr=0.1), rho=0.5, adaptive=True), PRODUCT, np.stack([w, A @ w]), 1)
    assert not np.allclose(step.final[1], A @ step.final[0], rtol=1e-3)


# =========================================================================== chapter 1


def test_sharp_flat_hessian_eigenvalues():
    """sharp_flat.md: eigenvalues (1.70, 199.7) at the sharp minimum, (1.70, 6.33) at the flat
    one, equal depth; λmax ratio about 30; y-curvature 2e^{-(x-2)²} + 2s e^{-x²} (ex. sf-ex-s)."""
    f = functions.get("sharp_flat")
    eig = np.linalg.eigvalsh(sharpness.hessian(f, f.minima))
    np.testing.assert_allclose(eig[0], [1.7004, 199.6825], atol=1e-4)
    np.testing.assert_allclose(eig[1], [1.7004, 6.3304], atol=1e-4)
    assert f(f.minima[0]) == pytest.approx(f(f.minima[1]), abs=1e-14)
    assert 30 < eig[0, 1] / eig[1, 1] < 32
    for s in [0.5, 1.0, 10.0, 1000.0]:
        fs = functions.get("sharp_flat", sharpness=s)
        H = sharpness.hessian(fs, fs.minima)
        for (x, _), h in zip(fs.minima, H, strict=True):
            predicted = 2 * np.exp(-((x - 2) ** 2)) + 2 * s * np.exp(-(x**2))
            assert h[1, 1] == pytest.approx(predicted, rel=1e-10)
            assert h[0, 1] == pytest.approx(0.0, abs=1e-12)
        # at s = 1 the two minima are mirror images with the same curvature
        if s == 1.0:
            np.testing.assert_allclose(H[0], H[1], rtol=1e-10)


def test_sharp_flat_slices_and_worst_case_curve():
    """sharp_flat.md: a step 0.1 across raises the loss by 0.63 (sharp) vs 0.02 (flat); S_ρ ≈
    ½ρ²λmax for ρ ≤ 0.05; the sharp worst case saturates near 1.02; sharp worse at every ρ."""
    f = functions.get("sharp_flat")
    rise = f(f.minima + np.array([0.0, 0.1])) - f.fmin
    np.testing.assert_allclose(rise, [0.631, 0.0236], atol=1e-3)
    lam = sharpness.top_eigenvalue(f, f.minima)
    for rho in [0.01, 0.03, 0.05]:
        s = sharpness.sharpness(f, f.minima, rho)
        np.testing.assert_allclose(s, 0.5 * rho**2 * lam, rtol=0.13)
    rhos = np.linspace(0.02, 0.5, 25)
    curve = np.array([sharpness.sharpness(f, f.minima, r) for r in rhos])
    assert np.all(curve[:, 0] > curve[:, 1])
    assert curve[-1, 0] == pytest.approx(1.016, abs=0.01)


def test_small_rho_sharpness_is_half_rho2_lambda_max():
    """sharp_flat.md: S_ρ(w*) = ½ρ²λmax + O(ρ³) at a minimum (Rayleigh quotient)."""
    for name in ["sharp_flat", "himmelblau", "rosenbrock"]:
        f = functions.get(name)
        lam = sharpness.top_eigenvalue(f, f.minima)
        errors = []
        for rho in [1e-2, 5e-3]:
            s = sharpness.sharpness(f, f.minima, rho)
            errors.append(np.abs(s / (0.5 * rho**2 * lam) - 1))
        assert np.all(errors[1] < 0.1)
        assert np.all(errors[1] < 0.6 * errors[0] + 1e-6)  # the error shrinks with ρ


def test_himmelblau_rankings_differ():
    """sharp_flat.md table: λmax ranks m2 flattest, the trace ranks m1 = (3, 2) flattest (m2
    third); S_0.1 follows λmax; m3 is the sharpest by all three; tr = 8(x² + y²) + 4."""
    h = functions.get("himmelblau")
    lam = sharpness.top_eigenvalue(h, h.minima)
    tr = sharpness.hessian_trace(h, h.minima)
    worst = sharpness.sharpness(h, h.minima, 0.1)
    rank = lambda v: np.argsort(np.argsort(v)) + 1  # noqa: E731
    np.testing.assert_array_equal(rank(lam), [2, 1, 4, 3])
    np.testing.assert_array_equal(rank(tr), [1, 3, 4, 2])
    np.testing.assert_array_equal(rank(worst), rank(lam))
    np.testing.assert_allclose(lam, [82.28, 80.55, 133.79, 105.42], atol=0.01)
    np.testing.assert_allclose(tr, [108.0, 145.39, 204.50, 134.11], atol=0.01)
    np.testing.assert_allclose(tr, 8 * np.sum(h.minima**2, axis=-1) + 4, rtol=1e-10)
    assert tr[0] == pytest.approx(108.0, abs=1e-9)


def test_rescaling_changes_sharpness_of_equivalent_minima():
    """sharp_flat.md exercise sf-ex-dinh: at (a, 1/a), λmax = 2(a² + a⁻²), minimal (4) at a = 1."""
    a = np.array([0.1, 0.5, 1.0, 2.0, 10.0])
    w = np.stack([a, 1 / a], -1)
    lam = sharpness.top_eigenvalue(PRODUCT, w)
    np.testing.assert_allclose(lam, 2 * (a**2 + a**-2), rtol=1e-10)
    assert lam.min() == pytest.approx(4.0)
    np.testing.assert_allclose(PRODUCT(w), 0.0, atol=1e-15)


def test_diagonal_quadratic_box_worst_case_is_half_rho2_trace():
    """sharp_flat.md exercise sf-ex-quadratic: on the box, ½ρ² tr H; on the l2 ball, ½ρ²λmax."""
    lam = np.array([0.5, 2.0, 3.0, 7.0])
    q = functions.get("quadratic", A=np.diag(lam))
    rho = 0.25
    assert sharpness.worst_case_loss(q, np.zeros(4), rho, math.inf) == pytest.approx(
        0.5 * rho**2 * lam.sum()
    )
    assert sharpness.worst_case_loss(q, np.zeros(4), rho, 2) == pytest.approx(
        0.5 * rho**2 * lam.max(), rel=1e-6
    )


def keskar_by_corners(f, w, eps):
    """Keskar et al.'s epsilon-sharpness (A = I) as the best corner of the box (exact for a
    quadratic with a diagonally dominant Hessian; near a minimum the corners win)."""
    half = eps * (np.abs(w) + 1.0)
    corners = np.array([[sx, sy] for sx in (-1, 1) for sy in (-1, 1)]) * half
    return 100 * (np.max(f(w + corners)) - f(w)) / (1 + f(w))


def test_keskar_sharpness_sides_with_the_trace_on_himmelblau():
    """sharp_flat.md: Keskar's box picks m1 = (3, 2) as the flattest (like the trace, unlike
    λmax, which picks m2 by about 2 %, against a trace margin of about 35 %); m3 the sharpest;
    L-BFGS-B inside the box finds the same maximum as the corners."""
    from scipy.optimize import minimize

    h = functions.get("himmelblau")
    eps = 1e-3
    by_corners = np.array([keskar_by_corners(h, m, eps) for m in h.minima])
    rank = lambda v: np.argsort(np.argsort(v)) + 1  # noqa: E731
    np.testing.assert_array_equal(rank(by_corners), [1, 2, 4, 3])
    for m, value in zip(h.minima, by_corners, strict=True):
        half = eps * (np.abs(m) + 1.0)
        best = -np.inf
        for quadrant in ([0.5, 0.5], [0.5, -0.5], [-0.5, 0.5], [-0.5, -0.5]):  # one start each
            res = minimize(
                lambda y, m=m: (-float(h(m + y)), -h.grad(m + y)),
                np.array(quadrant) * half,
                jac=True,
                method="L-BFGS-B",
                bounds=list(zip(-half, half, strict=True)),
            )
            best = max(best, -res.fun)
        assert 100 * (best - h(m)) / (1 + h(m)) == pytest.approx(value, rel=1e-6)
    lam = sharpness.top_eigenvalue(h, h.minima)
    tr = sharpness.hessian_trace(h, h.minima)
    assert 0.01 < (lam[0] - lam[1]) / lam[0] < 0.05
    assert 0.3 < (tr[1] - tr[0]) / tr[0] < 0.4


def test_power_iteration_returns_the_dominant_eigenvalue_and_a_shift_gives_lambda_max():
    """sharp_flat.md: at Himmelblau's local maximum power iteration returns the most negative
    eigenvalue (largest |λ|); power iteration on H − λ_dom I, plus λ_dom, returns λmax."""
    h = functions.get("himmelblau")
    w = np.array([-0.270845, -0.923039])
    assert np.linalg.norm(h.grad(w)) < 1e-4  # a critical point
    eig = np.linalg.eigvalsh(sharpness.hessian(h, w))
    assert eig[1] < 0 and abs(eig[0]) > abs(eig[1])  # a maximum; the dominant one is λmin
    hvp = sharpness.hessian_vector_product(h, w)
    dominant = sharpness.power_iteration_top_eigenvalue(hvp, d=2, seed=3)
    assert dominant == pytest.approx(eig[0], rel=1e-8)
    shifted = dominant + sharpness.power_iteration_top_eigenvalue(
        lambda v: hvp(v) - dominant * v, d=2, seed=3
    )
    assert shifted == pytest.approx(eig[1], rel=1e-8)


def test_direction_only_loss_is_c_squared_flatter_at_c_times_the_weights():
    """sharp_flat.md (normalisation): L(cw) = L(w) implies ∇L(cw) = ∇L(w)/c, ∇²L(cw) = ∇²L(w)/c²."""

    def direction_only(w):
        return (w[..., 1] / anp.sqrt(anp.sum(w**2, axis=-1)) - 0.6) ** 2

    d = functions.from_callable(direction_only, dim=2)
    w = np.array([1.3, -0.4])  # not a minimum: the gradient scales too
    for c in (0.3, 2.0, 7.0):
        assert d(c * w) == pytest.approx(d(w), rel=1e-12)
        np.testing.assert_allclose(d.grad(c * w), d.grad(w) / c, rtol=1e-10)
        np.testing.assert_allclose(
            sharpness.hessian(d, c * w), sharpness.hessian(d, w) / c**2, rtol=1e-9, atol=1e-14
        )


def test_one_sharpness_is_at_least_rho_times_the_mean_gradient_norm():
    """sharp_flat.md and exercise sf-ex-convex: for convex per-example losses (logistic), the
    1-sharpness is at least ρ·mean‖∇L_i‖ (and strictly above it: the loss is not affine)."""
    from sampy.problems import make_logistic_problem

    problem = make_logistic_problem()
    points = np.vstack([problem.minima[:1], np.random.default_rng(1).uniform(-2, 2, (3, 2))])
    for rho in (0.2, 0.5):
        one = np.atleast_1d(sharpness.m_sharpness(problem, points, rho, 1))
        first_order = rho * np.linalg.norm(
            np.stack([problem.per_example_grads(x) for x in points]), axis=-1
        ).mean(axis=-1)
        assert np.all(one > first_order)


# =========================================================================== chapter 3


BOOK = Path(__file__).resolve().parents[1] / "book"


def book_function(page: str, name: str):
    """The function ``name`` exactly as a code cell of ``book/<page>`` defines it."""
    lines = (BOOK / page).read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"def {name}("))
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or lines[end].startswith((" ", "\t"))):
        end += 1
    namespace = {"np": np}
    exec("\n".join(lines[start:end]), namespace)  # the book's own code
    return namespace[name]


sam_from_scratch = book_function("sam_toys.md", "sam_from_scratch")


def test_sam_from_scratch_matches_sampy():
    """sam_toys.md: the book's dozen-line SAM and sampy.optim.SAM agree bit for bit."""
    f = functions.get("sharp_flat")
    starts = np.random.default_rng(8).uniform((-1, -1), (3, 1), size=(30, 2))
    mine = sam_from_scratch(f.grad, starts, 0.008, 0.1, 400)
    lib = sampy.run(SAM(SGD(lr=0.008), rho=0.1), f, starts, 400)
    np.testing.assert_array_equal(mine, lib.xs)
    assert lib.grad_evals == 800


def test_sam_escapes_the_sharp_minimum_and_gd_does_not():
    """sam_toys.md: from (−0.4, −0.4), η = 0.008 < 2/λmax, ρ = 0.1, 5000 steps: GD ends in the
    sharp minimum, SAM in the flat one; both have about the same loss."""
    f = functions.get("sharp_flat")
    assert 0.008 < 2 / sharpness.top_eigenvalue(f, f.minima[0]) < 0.0101
    gd = sampy.run(SGD(lr=0.008), f, [-0.4, -0.4], 5000)
    sam = sampy.run(SAM(SGD(lr=0.008), rho=0.1), f, [-0.4, -0.4], 5000)
    assert np.linalg.norm(gd.final - f.minima[0]) < 1e-3
    assert np.linalg.norm(sam.final - f.minima[1]) < 0.01
    assert sam.final_loss - gd.final_loss < 1e-4
    assert sharpness.top_eigenvalue(f, gd.final) > 25 * sharpness.top_eigenvalue(f, sam.final)


def test_sam_basin_statistic():
    """sam_toys.md: of 400 seeded start points, GD sends dozens to the sharp minimum and SAM
    none; SAM ends in the flat one more often; ρ = 0.02 hardly helps and ρ = 0.2 leaves the sharp
    minimum almost empty (exercise st-ex-rho)."""
    f = functions.get("sharp_flat")
    starts = np.random.default_rng(0).uniform((-1, -1), (3, 1), size=(400, 2))

    def counts(opt):
        final = sampy.run(opt, f, starts, 5000).final
        dist = np.linalg.norm(final[:, None, :] - f.minima[None], axis=-1)
        return np.bincount(np.where(dist.min(1) < 0.1, dist.argmin(1), 2), minlength=3)

    gd = counts(SGD(lr=0.008))
    sam = counts(SAM(SGD(lr=0.008), rho=0.1))
    small = counts(SAM(SGD(lr=0.008), rho=0.02))
    large = counts(SAM(SGD(lr=0.008), rho=0.2))
    assert gd[0] >= 50 and sam[0] == 0
    assert sam[1] > gd[1] + 40
    assert small[0] > 0.8 * gd[0]
    assert 0 < large[0] <= 3  # "almost empty" at rho = 0.2, not empty


def test_gd_sends_the_starts_in_or_near_the_slit_to_the_sharp_minimum():
    """sam_toys.md: of the starts left of x = 1, those with |y| < 0.3 (in or near the slit) go to
    the sharp minimum under GD almost all (50 of 51), the others mostly not (19 of 124)."""
    f = functions.get("sharp_flat")
    starts = np.random.default_rng(0).uniform((-1, -1), (3, 1), size=(400, 2))
    final = sampy.run(SGD(lr=0.008), f, starts, 5000).final
    sharp = np.linalg.norm(final - f.minima[0], axis=-1) < 0.1
    left = starts[:, 0] < 1.0
    band = left & (np.abs(starts[:, 1]) < 0.3)
    assert (sharp & band).sum() >= 0.9 * band.sum() and band.sum() > 40
    assert (sharp & left & ~band).sum() <= 0.25 * (left & ~band).sum()


def test_the_worst_case_landscape_has_no_sharp_well():
    """sam_toys.md, right panel: in L^SAM_0.1 the sharp well is much shallower than the flat one."""
    f = functions.get("sharp_flat")
    worst = sharpness.worst_case_loss(f, f.minima, 0.1)
    assert worst[0] - f.fmin > 0.6 and worst[1] - f.fmin < 0.03


def test_gd_at_the_edge_of_stability():
    """sam_toys.md exercise st-ex-eos: η = 0.009 converges to the sharp minimum; η = 0.011 and
    0.02 cannot converge to it (η > 2/λmax) but keep bouncing in its slit; η = 0.05 ends flat."""
    f = functions.get("sharp_flat")
    ends = {
        lr: sampy.run(SGD(lr=lr), f, [-0.4, -0.4], 8000).xs[-2:]
        for lr in [0.009, 0.011, 0.02, 0.05]
    }
    assert np.linalg.norm(ends[0.009][-1] - f.minima[0]) < 1e-6
    for lr in [0.011, 0.02]:
        last = ends[lr]
        assert np.all(np.abs(last[:, 0] - f.minima[0, 0]) < 0.1)  # still in the slit
        assert np.all(np.abs(last[:, 1]) > 0.01)  # but not at its bottom
        assert last[0, 1] * last[1, 1] < 0  # bouncing across
    assert np.linalg.norm(ends[0.05][-1] - f.minima[1]) < 1e-6


def test_rosenbrock_sam_stalls_where_the_worst_case_is_minimal():
    """sam_toys.md: GD (η = 1e-3) reaches loss < 1e-2 in 5000 steps; SAM ends in a 2-cycle
    with loss > 0.3 (ρ = 0.05) near x ≈ 0.44; L^SAM_ρ along the floor is minimal near x = 0.5
    (ρ = 0.05) and closer to 1 for ρ = 0.02."""
    r = functions.get("rosenbrock")
    assert sharpness.top_eigenvalue(r, r.minima[0]) == pytest.approx(1001.6, abs=0.1)
    gd = sampy.run(SGD(lr=1e-3), r, [-1.5, 2.0], 5000)
    sam = sampy.run(SAM(SGD(lr=1e-3), rho=0.05), r, [-1.5, 2.0], 5000)
    assert gd.final_loss < 1e-2
    np.testing.assert_allclose(sam.xs[-1], sam.xs[-3], atol=1e-9)  # a 2-cycle
    assert not np.allclose(sam.xs[-1], sam.xs[-2], atol=1e-3)
    assert sam.final_loss > 0.3 and 0.4 < sam.final[0] < 0.5
    small = sampy.run(SAM(SGD(lr=1e-3), rho=0.02), r, [-1.5, 2.0], 5000)
    assert small.final_loss > 0.05 and 0.7 < small.final[0] < 0.8  # bounces, drifts slowly
    assert not np.allclose(small.xs[-1], small.xs[-2], atol=1e-3)
    xs = np.linspace(0, 1.1, 45)
    floor = np.stack([xs, xs**2], -1)
    best = {rho: xs[np.argmin(sharpness.worst_case_loss(r, floor, rho))] for rho in [0.02, 0.05]}
    assert 0.4 < best[0.05] < 0.6
    assert 0.8 < best[0.02] < 1.0


def test_ball_choice_on_the_toy_and_on_the_product_loss():
    """sam_toys.md 'Which ball?': p = 2 and p = ∞ end flat, p = 1 and ASAM stay sharp; on
    (ab − 1)² SAM ends near the balanced minimum (1, 1), ASAM and GD far from it."""
    f = functions.get("sharp_flat")
    ends = {
        name: sampy.run(opt, f, [-0.4, -0.4], 5000).final
        for name, opt in {
            "p2": SAM(SGD(lr=0.008), rho=0.1),
            "pinf": SAM(SGD(lr=0.008), rho=0.1, p=math.inf),
            "p1": SAM(SGD(lr=0.008), rho=0.1, p=1),
            "asam": SAM(SGD(lr=0.008), rho=0.5, adaptive=True, eta=0.01),
        }.items()
    }
    for name in ["p2", "pinf"]:
        assert np.linalg.norm(ends[name] - f.minima[1]) < 0.01
    for name in ["p1", "asam"]:
        assert np.linalg.norm(ends[name] - f.minima[0]) < 0.05
    starts = np.array([[2.5, 0.1], [0.3, 2.0], [2.0, 1.5]])
    gd = sampy.run(SGD(lr=0.02), PRODUCT, starts, 5000).final
    sam = sampy.run(SAM(SGD(lr=0.02), rho=0.1), PRODUCT, starts, 5000).final
    asam = sampy.run(SAM(SGD(lr=0.02), rho=0.1, adaptive=True), PRODUCT, starts, 5000).final
    assert np.all(np.linalg.norm(sam - 1.0, axis=-1) < 0.05)
    imbalance = lambda w: np.abs(np.log(np.abs(w[:, 0] / w[:, 1])))  # noqa: E731
    assert np.all(imbalance(asam) > 0.5 * imbalance(gd))
    assert np.all(imbalance(asam) > 0.6)
    np.testing.assert_allclose(PRODUCT(gd), 0.0, atol=1e-12)


@pytest.mark.parametrize(
    "lam, lr, rho",
    [
        (1.0, 0.1, 0.05),
        (4.0, 0.3, 0.1),
        (10.0, 0.15, 0.05),
        (2.0, 0.05, 0.2),
        (1.0, 1.5, 0.1),
        (3.0, 0.6, 0.02),
    ],
)
def test_sam_two_cycle_amplitude(lam, lr, rho):
    """prop-two-cycle: normalised SAM on ½λx² ends on ±ηλρ/(2 − ηλ), alternating."""
    q = functions.get("quadratic", A=[[lam]])
    c = lr * lam * rho / (2 - lr * lam)
    xs = sampy.run(SAM(SGD(lr=lr), rho=rho), q, [1.3], 600).xs[:, 0]
    np.testing.assert_allclose(np.abs(xs[-10:]), c, rtol=1e-9)
    assert np.all(xs[-10:-1] * xs[-9:] < 0)
    # and the closed-form recursion of the proof is the same iteration
    x = 1.3
    for _ in range(600):
        x = x - lr * lam * (x + rho * np.sign(x))
    assert abs(x) == pytest.approx(c, rel=1e-9)


def test_sam_two_cycle_from_any_start():
    """prop-two-cycle: from every start, |x_k| → c at rate |1 − ηλ| once |x_k| ≤ b/a."""
    rng = np.random.default_rng(9)
    x0 = rng.uniform(-50, 50, size=(200, 1))
    for lam, lr, rho in [(1.0, 0.1, 0.05), (5.0, 0.3, 0.1)]:
        q = functions.get("quadratic", A=[[lam]])
        # perturb_eps = 0: the 1e-12 guard would blur the contraction factor near the cycle
        xs = sampy.run(SAM(SGD(lr=lr), rho=rho, perturb_eps=0.0), q, x0, 3000).xs[..., 0]
        c = lr * lam * rho / (2 - lr * lam)
        np.testing.assert_allclose(np.abs(xs[-1]), c, rtol=1e-9)
        a, b = 1 - lr * lam, lr * lam * rho
        z = np.abs(xs)
        inside = z[:-1] <= (b / a if a > 0 else np.inf)
        ratio = np.abs(z[1:] - c)[inside] / np.abs(z[:-1] - c)[inside].clip(1e-300)
        big = np.abs(z[:-1] - c)[inside] > 1e-7  # avoid rounding noise at the end
        np.testing.assert_allclose(ratio[big], abs(a), rtol=1e-6)


def test_two_d_quadratic_bounces_in_the_steepest_direction():
    """sam_toys.md figure: on diag(1, 10), η = 0.05, ρ = 0.05: x₁ → 0, x₂ → ±1/60."""
    q = functions.get("quadratic", A=np.diag([1.0, 10.0]))
    xs = sampy.run(SAM(SGD(lr=0.05), rho=0.05), q, [1.0, 0.7], 400).xs
    assert np.all(np.abs(xs[-10:, 0]) < 1e-12)
    np.testing.assert_allclose(np.abs(xs[-10:, 1]), 0.05 * 10 * 0.05 / 1.5, rtol=1e-9)
    rng = np.random.default_rng(10)
    many = sampy.run(SAM(SGD(lr=0.05), rho=0.05), q, rng.uniform(-2, 2, (50, 2)), 800).final
    assert np.all(np.abs(many[:, 0]) < 1e-9)
    np.testing.assert_allclose(np.abs(many[:, 1]), 1 / 60, rtol=1e-8)


@pytest.mark.parametrize("lam", [0.5, 2.0, 10.0])
@pytest.mark.parametrize("rho", [0.0, 0.1, 1.0])
def test_unnormalised_sam_converges_iff(lam, rho):
    """prop-usam: x ← x − ηλ(x + ρλx) converges iff ηλ(1 + ρλ) < 2 (sampy.optim.USAM with an
    SGD base, one step size per start point)."""
    q = functions.get("quadratic", A=[[lam]])
    threshold = 2 / (lam * (1 + rho * lam))
    lrs = threshold * np.array([0.3, 0.9, 0.99, 1.01, 1.1, 2.0])
    usam = USAM(SGD(lr=lrs), rho=rho)
    x0 = np.full((lrs.size, 1), 0.7)
    traj = sampy.run(usam, q, x0, 4000, bound=1e8)
    converged = np.abs(traj.final[:, 0]) < 1e-8
    np.testing.assert_array_equal(converged, lrs * lam * (1 + rho * lam) < 2)
    assert np.all(traj.diverged[lrs * lam * (1 + rho * lam) > 2])
    # one step is multiplication by m = 1 − ηλ(1 + ρλ)
    one = sampy.run(usam, q, x0, 1).final[:, 0]
    np.testing.assert_allclose(one, 0.7 * (1 - lrs * lam * (1 + rho * lam)), rtol=1e-12)


def test_normalised_sam_with_a_large_step_diverges():
    """sam_toys.md exercise st-ex-large-step: for ηλ ≥ 2, |x| grows by at least ηλρ per step,
    even at ηλ = 2, where gradient descent keeps a constant amplitude."""
    q = functions.get("quadratic", A=[[1.0]])
    xs = sampy.run(SAM(SGD(lr=2.0), rho=0.1, perturb_eps=0.0), q, [0.05], 50).xs[:, 0]
    assert np.all(np.diff(np.abs(xs)) >= 0.2 - 1e-12)
    gd = sampy.run(SGD(lr=2.0), q, [0.05], 50).xs[:, 0]
    np.testing.assert_allclose(np.abs(gd), 0.05, rtol=1e-12)
    assert np.all(gd[1:] * gd[:-1] < 0)
    steep = sampy.run(SAM(SGD(lr=2.5), rho=0.1, perturb_eps=0.0), q, [0.05], 30).xs[:, 0]
    assert np.all(np.diff(np.abs(steep)) >= 0.25 - 1e-12)


def test_sam_with_momentum_from_scratch_matches_sampy():
    """sam_toys.md exercise st-ex-momentum: the momentum buffer holds the perturbed gradients."""
    f = functions.get("sharp_flat")
    mine = book_function("sam_toys.md", "sam_momentum_from_scratch")
    path = mine(f.grad, [-0.4, -0.4], 0.002, 0.1, mu=0.9, steps=1000)
    lib = sampy.run(SAM(SGD(lr=0.002, momentum=0.9), rho=0.1), f, [-0.4, -0.4], 1000)
    np.testing.assert_array_equal(path, lib.xs)


def test_intro_example_counts():
    """intro.md: with 100 seeded start points, SAM leaves none in the sharp minimum and GD some."""
    f = functions.get("sharp_flat")
    x0 = np.random.default_rng(0).uniform((-1, -1), (3, 1), size=(100, 2))
    sharp = {}
    for name, opt in [("GD", SGD(lr=0.008)), ("SAM", SAM(SGD(lr=0.008), rho=0.1))]:
        traj = sampy.run(opt, f, x0, steps=4000)
        sharp[name] = np.sum(np.linalg.norm(traj.final - f.minima[0], axis=-1) < 0.05)
        assert traj.grad_evals == (8000 if name == "SAM" else 4000)
    assert sharp["SAM"] == 0 < sharp["GD"]


# =========================================================================== SAM in PyTorch
# Proposition prop-pt-m-sharpness (book/pytorch_scaling.md): the average of the micro-batch worst
# cases bounds the worst case of the average; to first order, the triangle inequality.


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_m_sharpness_bounds_the_batch_sharpness(seed):
    from sampy.problems import make_logistic_problem

    problem = make_logistic_problem(n=48, noise=0.2, seed=seed)
    points = np.random.default_rng(seed).uniform(-1.5, 1.5, (4, 2))
    rho = 0.2
    batch = sharpness.sharpness(problem, points, rho)
    by_m = {m: sharpness.m_sharpness(problem, points, rho, m) for m in (48, 12, 5, 1)}
    np.testing.assert_allclose(by_m[48], batch, rtol=0, atol=1e-12)  # m ≥ n: one micro-batch
    for m in (12, 5, 1):
        assert np.all(by_m[m] >= batch - 1e-9), m
    assert np.all(by_m[1] > batch + 1e-3)  # per-example perturbations see much more
    # First order: ρ·mean‖g_j‖ ≥ ρ‖ḡ‖, with equality when the gradients are parallel.
    for x in points:
        per_example = problem.per_example_grads(x)
        assert np.linalg.norm(per_example, axis=-1).mean() >= np.linalg.norm(
            per_example.mean(axis=0)
        )
    parallel = np.outer([0.5, 2.0, 1.0], [3.0, -4.0])
    np.testing.assert_allclose(
        np.linalg.norm(parallel, axis=-1).mean(), np.linalg.norm(parallel.mean(axis=0))
    )
