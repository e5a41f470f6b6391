"""The chapter "What SAM provably does" (book/sam_theory.md): every result, recomputed with sampy.

Each test names the statement it checks. The tests do not read the page: they recompute the
claims independently (the exact worst case of a quadratic by bisection on the secular equation,
finite differences, chi-square tails, runs of sampy's optimizers). All randomness is seeded.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from scipy import optimize, stats
from toy_landscapes import PRODUCT

import sampy
from sampy import functions, sharpness
from sampy.functions import TestFunction
from sampy.optim import SAM, SGD, USAM, MSharpnessSAM, norm_ball_perturbation
from sampy.problems import SumOfExamples

TOY = functions.get("sharp_flat")


# ---------------------------------------------------------------- Danskin (prop-th-danskin)


def exact_worst_perturbation(H, w, rho):
    """argmax of ½(w+ε)ᵀH(w+ε) over ‖ε‖ ≤ ρ (H ≻ 0): ε = (μI − H)⁻¹Hw, μ > λ_max, by bisection."""
    lam, V = np.linalg.eigh(H)
    c = V.T @ (H @ w)
    lo, hi = lam[-1], lam[-1] + np.linalg.norm(c) / rho
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if np.linalg.norm(c / (mid - lam)) > rho:
            lo = mid
        else:
            hi = mid
    return V @ (c / (hi - lam))


H3 = np.diag([1.0, 4.0, 10.0])
W3 = np.array([1.0, 0.5, 0.3])


def quad_worst(w, rho, H=H3):
    v = w + exact_worst_perturbation(H, w, rho)
    return 0.5 * v @ H @ v


def central_differences(fun, w, h):
    return np.array([(fun(w + h * e) - fun(w - h * e)) / (2 * h) for e in np.eye(len(w))])


def test_exact_worst_perturbation_is_the_maximum_of_the_ball():
    """The secular-equation solution beats 20,000 random points of the ball and has norm ρ."""
    rng = np.random.default_rng(0)
    for rho in [0.05, 0.3, 1.0]:
        e = exact_worst_perturbation(H3, W3, rho)
        assert np.linalg.norm(e) == pytest.approx(rho, rel=1e-12)
        z = rng.standard_normal((20_000, 3))
        z *= (
            rho
            * rng.uniform(size=(20_000, 1)) ** (1 / 3)
            / np.linalg.norm(z, axis=1, keepdims=True)
        )
        values = 0.5 * np.einsum("ni,ij,nj->n", W3 + z, H3, W3 + z)
        assert values.max() <= quad_worst(W3, rho) + 1e-12


@pytest.mark.parametrize("rho", [0.01, 0.1, 0.3])
def test_danskin_gradient_has_no_jacobian_term(rho):
    """prop-th-danskin: ∇φ(w) = ∇L(w + ε*(w)), to finite-difference accuracy."""
    danskin = H3 @ (W3 + exact_worst_perturbation(H3, W3, rho))
    fd = central_differences(lambda w: quad_worst(w, rho), W3, 1e-5)
    np.testing.assert_allclose(danskin, fd, atol=1e-8)
    # a rotated quadratic and another point too
    rng = np.random.default_rng(1)
    Q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    H = Q @ np.diag([0.5, 1.0, 3.0, 7.0]) @ Q.T
    w = rng.standard_normal(4)
    fd = central_differences(lambda v: quad_worst(v, rho, H), w, 1e-5)
    np.testing.assert_allclose(H @ (w + exact_worst_perturbation(H, w, rho)), fd, atol=1e-8)


def test_sam_error_is_second_order_and_the_surrogate_third_order():
    """sam_theory.md: ‖g̃ − ∇φ‖ shrinks like ρ², the surrogate's gradient (Jacobian term
    included) like ρ³ on diag(1, 4, 10)."""

    def surrogate(w, rho):
        g = anp.dot(H3, w)
        v = w + rho * g / anp.sqrt(anp.sum(g**2))
        return 0.5 * anp.dot(v, anp.dot(H3, v))

    rhos = np.geomspace(4e-3, 0.3, 8)
    sam_err, sur_err = [], []
    for rho in rhos:
        exact = H3 @ (W3 + exact_worst_perturbation(H3, W3, rho))
        g = H3 @ W3
        sam_err.append(np.linalg.norm(H3 @ (W3 + rho * g / np.linalg.norm(g)) - exact))
        sur_err.append(np.linalg.norm(autograd.grad(surrogate)(W3, rho) - exact))
    slope = lambda err: np.polyfit(np.log(rhos), np.log(err), 1)[0]  # noqa: E731
    assert slope(sam_err) == pytest.approx(2.0, abs=0.1)
    assert slope(sur_err) == pytest.approx(3.0, abs=0.15)
    assert np.all(np.array(sur_err) < np.array(sam_err))


def worst_on_circle(fun, w, rho, n=4096):
    theta = np.linspace(0, 2 * np.pi, n, endpoint=False)
    t0 = theta[np.argmax(fun(w + rho * np.stack([np.cos(theta), np.sin(theta)], -1)))]
    best = optimize.minimize_scalar(
        lambda t: -fun(w + rho * np.array([np.cos(t), np.sin(t)])),
        bounds=(t0 - 2 * np.pi / n, t0 + 2 * np.pi / n),
        method="bounded",
        options={"xatol": 1e-13},
    )
    return rho * np.array([np.cos(best.x), np.sin(best.x)])


def test_danskin_on_the_toy():
    """sam_theory.md: at (1, 0.1), ρ = 0.1, the exact worst point is on the circle, ~30° from
    ε̂; ∇L(w + ε*) matches finite differences of the worst case, SAM's g̃ does not."""
    w, rho = np.array([1.0, 0.1]), 0.1
    e = worst_on_circle(TOY, w, rho)
    r, t = np.meshgrid(np.linspace(0, rho, 150), np.linspace(0, 2 * np.pi, 300))
    assert TOY(w + np.stack([r * np.cos(t), r * np.sin(t)], -1)).max() <= TOY(w + e) + 1e-12
    assert TOY(w + e) >= sharpness.worst_case_loss(TOY, w, rho) - 1e-12
    fd = central_differences(lambda v: TOY(v + worst_on_circle(TOY, v, rho)), w, 1e-6)
    g = TOY.grad(w)
    e_hat = rho * g / np.linalg.norm(g)
    assert np.linalg.norm(TOY.grad(w + e) - fd) < 1e-6
    assert np.linalg.norm(TOY.grad(w + e_hat) - fd) > 0.1
    assert 25 < np.degrees(np.arccos(e @ e_hat / rho**2)) < 35


def test_kink_at_the_minimum_and_sam_is_gradient_descent_on_the_worst_case():
    """Exercise th-ex-kink: on ½λx², φ(x) = ½λ(|x| + ρ)², φ'(0; ±1) = λρ; SAM's step is a
    gradient step on φ for x ≠ 0 (one sampy.optim.SAM step)."""
    lam, rho, lr = 4.0, 0.3, 0.1
    q = functions.get("quadratic", A=[[lam]])
    xs = np.linspace(-1, 1, 41)[:, None]
    np.testing.assert_allclose(
        sharpness.worst_case_loss(q, xs, rho), 0.5 * lam * (np.abs(xs[:, 0]) + rho) ** 2, rtol=1e-9
    )
    phi = lambda x: 0.5 * lam * (abs(x) + rho) ** 2  # noqa: E731
    for u in [1.0, -1.0]:
        assert (phi(1e-8 * u) - phi(0.0)) / 1e-8 == pytest.approx(lam * rho, rel=1e-6)
    x = xs[xs[:, 0] != 0]
    step = sampy.run(SAM(SGD(lr=lr), rho=rho, perturb_eps=0.0), q, x, 1).final
    grad_phi = lam * (np.abs(x) + rho) * np.sign(x)
    np.testing.assert_allclose(step, x - lr * grad_phi, atol=1e-14)


# ---------------------------------------------- the first-order objective (prop-th-first-order)


def test_first_order_objective_within_the_bound():
    """prop-th-first-order: |L_SAM − L − ρ‖g‖| ≤ ½Mρ² on 120 points of the toy and Himmelblau."""
    rng = np.random.default_rng(0)
    cases = [
        (TOY, np.concatenate([rng.uniform((-0.3, -0.15), (0.3, 0.15), (40, 2)),
                              rng.uniform((1.0, -0.8), (2.8, 0.8), (40, 2))]), 0.05),
        (functions.get("himmelblau"), rng.uniform((-4, -4), (4, 4), (40, 2)), 0.1),
    ]  # fmt: skip
    for f, points, rho in cases:
        worst = sharpness.worst_case_loss(f, points, rho, steps=100)
        first = f(points) + rho * np.linalg.norm(f.grad(points), axis=-1)
        r, t = np.meshgrid(np.linspace(0, rho, 13), np.linspace(0, 2 * np.pi, 36, endpoint=False))
        offsets = np.stack([r * np.cos(t), r * np.sin(t)], -1).reshape(-1, 2)
        v = points[:, None, :] + offsets[None]
        h = 1e-5  # Hessians by central differences of the analytic gradient (fast, ~1e-9 exact)
        cols = [(f.grad(v + h * e) - f.grad(v - h * e)) / (2 * h) for e in np.eye(2)]
        hess = np.stack(cols, axis=-1)
        hess = 0.5 * (hess + np.swapaxes(hess, -1, -2))
        M = np.abs(np.linalg.eigvalsh(hess)).max(axis=(1, 2))
        assert np.all(np.abs(worst - first) <= 0.5 * M * rho**2 * (1 + 1e-6))
        # and the bound is not empty: the gap is of that order somewhere
        assert np.max(np.abs(worst - first) / (0.5 * M * rho**2)) > 0.5


@pytest.mark.parametrize("w0", [(0.3, 0.1), (1.2, -0.3), (-0.2, 0.05)])
def test_sam_and_usam_follow_the_penalty_gradients(w0):
    """sam_theory.md: g̃ = ∇(L + ρ‖∇L‖) + O(ρ²), ∇L(w + ρg) = ∇(L + ρ/2‖∇L‖²) + O(ρ²)."""
    w0 = np.array(w0)
    g, H = TOY.grad(w0), sharpness.hessian(TOY, w0)
    g_hat = g / np.linalg.norm(g)
    rs = np.geomspace(1e-4, 1e-2, 6)
    sam = [np.linalg.norm(TOY.grad(w0 + r * g_hat) - (g + r * H @ g_hat)) for r in rs]
    rs_u = rs / np.linalg.norm(g)
    usam = [np.linalg.norm(TOY.grad(w0 + r * g) - (g + r * H @ g)) for r in rs_u]
    assert np.polyfit(np.log(rs), np.log(sam), 1)[0] == pytest.approx(2.0, abs=0.1)
    assert np.polyfit(np.log(rs_u), np.log(usam), 1)[0] == pytest.approx(2.0, abs=0.1)
    # the gradient of the penalty ρ‖∇L‖ is ρHĝ (autograd on the toy's own function)
    norm_grad = lambda w: anp.sqrt(anp.sum(autograd.grad(TOY.fn)(w) ** 2))  # noqa: E731
    np.testing.assert_allclose(autograd.grad(norm_grad)(w0), H @ g_hat, rtol=1e-8)


def test_zhao_update_with_weight_equal_to_step_is_sam():
    """sam_theory.md: (1 − λ/r) g + (λ/r) ∇L(w + r ĝ) with λ = r = ρ is SAM's g̃."""
    w, rho = np.array([0.3, 0.1]), 0.07
    g = TOY.grad(w)
    g_tilde = TOY.grad(w + rho * g / np.linalg.norm(g))
    lam = r = rho
    np.testing.assert_allclose((1 - lam / r) * g + (lam / r) * g_tilde, g_tilde)
    opt = SAM(SGD(lr=1.0), rho=rho, perturb_eps=0.0)
    step = sampy.run(opt, TOY, w, 1).final
    np.testing.assert_allclose(w - step, g_tilde, rtol=1e-12)


# -------------------------------------------------------------------- PAC-Bayes (lem-th-gauss-ball)


@pytest.mark.parametrize("k", [2, 20, 200, 2000])
def test_laurent_massart_tail_bound(k):
    """lem-th-gauss-ball: P(χ²_k ≥ k + 2√(kx) + 2x) ≤ e^{−x}, and ρ = σ(√k + √(log n)) leaves
    probability at most 1/√n outside the ball."""
    x = np.linspace(0.01, 10, 200)
    assert np.all(stats.chi2.sf(k + 2 * np.sqrt(k * x) + 2 * x, k) <= np.exp(-x))
    for n in [10, 1000, 10**6]:
        radius2 = (np.sqrt(k) + np.sqrt(np.log(n))) ** 2  # (ρ/σ)²
        assert stats.chi2.sf(radius2, k) <= 1 / np.sqrt(n)


def test_gaussian_shell_concentrates():
    """sam_theory.md: 98 % of ‖ε‖/(σ√k) lies within ±4 % of 1 at k = 2000, not at k = 2."""
    lo, hi = np.sqrt(stats.chi2.ppf([0.01, 0.99], 2000) / 2000)
    assert 0.96 < lo < 1 < hi < 1.04
    lo2, hi2 = np.sqrt(stats.chi2.ppf([0.01, 0.99], 2) / 2)
    assert lo2 < 0.2 and hi2 > 2
    rng = np.random.default_rng(0)
    eps = rng.normal(0, 0.3, (4000, 2000))
    ratio = np.linalg.norm(eps, axis=1) / (0.3 * np.sqrt(2000))
    assert np.mean((ratio > lo) & (ratio < hi)) == pytest.approx(0.98, abs=0.01)


def test_gaussian_average_below_the_ball_bound_on_the_toy():
    """lem-th-gauss-ball on the toy (k = 2, B = 0): E L(w+ε) ≤ (1 − δ₀) max_ball L at both minima,
    and the Gaussian average is higher at the sharp minimum."""
    rho, n = 0.1, 10_000
    sigma = rho / (np.sqrt(2) + np.sqrt(np.log(n)))
    delta0 = np.exp(-(rho**2) / (2 * sigma**2))
    assert delta0 == pytest.approx(stats.chi2.sf((rho / sigma) ** 2, 2), rel=1e-12)
    rng = np.random.default_rng(5)
    eps = rng.normal(0, sigma, (400_000, 2))
    means = []
    for m in TOY.minima:
        values = TOY(m + eps)
        mean, err = values.mean(), values.std() / np.sqrt(len(values))
        bound = (1 - delta0) * float(sharpness.worst_case_loss(TOY, m, rho))
        assert mean + 5 * err <= bound
        means.append(mean)
    assert means[0] > means[1] + 0.03


def test_the_bound_is_vacuous_when_weights_outnumber_examples():
    """sam_theory.md: with ‖w‖ ≥ ρ the complexity term is ≥ 1 once k ≥ (n − 1)/log 2."""
    n = 50_000
    k = math.ceil((n - 1) / math.log(2))
    for ratio in [1.0, 3.0, 100.0]:
        log_term = k * math.log(1 + ratio**2 * (1 + math.sqrt(math.log(n) / k)) ** 2)
        assert math.sqrt(log_term / (n - 1)) >= 1


# -------------------------------------------------------------------------------- convergence


def test_decaying_step_follows_the_cycle_amplitude():
    """sam_theory.md: with η_k = 0.15/(1 + k/100) on ½·10x², |x_k| → c(η_k) (ratio → 1), while
    a constant η keeps |x_k| = c."""
    lam, rho = 10.0, 0.05
    x_c = x_d = 0.6
    for k in range(1, 50_001):
        eta = 0.15 / (1 + k / 100)
        x_c -= 0.15 * lam * (x_c + rho * np.sign(x_c))
        x_d -= eta * lam * (x_d + rho * np.sign(x_d))
    assert abs(x_c) == pytest.approx(0.15 * lam * rho / (2 - 0.15 * lam), rel=1e-9)
    assert abs(x_d) / (eta * lam * rho / (2 - eta * lam)) == pytest.approx(1.0, abs=1e-4)
    # the same iteration is sampy's SAM
    q = functions.get("quadratic", A=[[lam]])
    xs = sampy.run(SAM(SGD(lr=0.15), rho=rho, perturb_eps=0.0), q, [0.6], 200).xs[:, 0]
    x = 0.6
    for _ in range(200):
        x -= 0.15 * lam * (x + rho * np.sign(x))
    assert xs[-1] == pytest.approx(x, rel=1e-12)


class Points(SumOfExamples):
    def __init__(self, a):
        super().__init__(len(a), 1, name="points")
        self.a = np.asarray(a, float)

    def losses_at(self, p, ex):
        return 0.5 * (p[..., 0] - self.a[ex]) ** 2


@pytest.mark.parametrize("rho", [0.3, 0.9, 2.4])
def test_one_sam_settles_off_the_minimum(rho):
    """prop-th-stochastic-bias: on a = (0, 0, 3), averaged 1-SAM converges to 1 − ρ/3 (loss gap
    ½(ρ/3)²); full-batch SAM bounces around ā = 1 with the cycle amplitude ηρ/(2 − η)."""
    problem = Points([0.0, 0.0, 3.0])
    lr = 0.1
    one = sampy.run(MSharpnessSAM(SGD(lr=lr), rho=rho, m=1), problem, [2.0], 600)
    assert one.final[0] == pytest.approx(1 - rho / 3, abs=1e-10)
    assert float(problem(one.final)) - float(problem(np.array([1.0]))) == pytest.approx(
        0.5 * (rho / 3) ** 2, rel=1e-8
    )
    full = sampy.run(SAM(SGD(lr=lr), rho=rho, perturb_eps=0.0), problem, [2.0], 600).xs[:, 0]
    np.testing.assert_allclose(np.abs(full[-6:] - 1.0), lr * rho / (2 - lr), rtol=1e-9)


def test_stochastic_one_sam_hovers_around_the_same_point():
    """sam_theory.md: 1-SAM with one random example per step and a decaying step averages near
    1 − ρ/3 = 0.9, not near the minimum 1."""
    rng = np.random.default_rng(1)
    a, rho, x, path = np.array([0.0, 0.0, 3.0]), 0.3, 2.0, []
    for k in range(20_000):
        a_i = a[rng.integers(3)]
        x -= 0.5 / (1 + k / 50) * (x + rho * np.sign(x - a_i) - a_i)
        path.append(x)
    assert np.mean(path[-2000:]) == pytest.approx(0.9, abs=0.02)


def test_normalisation_lets_sam_drift_and_usam_stop():
    """sam_theory.md (Dai, Ahn, Sra): on (ab − 1)², SAM ends at the balanced minimum, USAM
    stays as unbalanced as gradient descent leaves it."""
    starts = np.array([[2.5, 0.1], [0.3, 2.0], [2.0, 1.5]])
    ends = {
        name: sampy.run(opt, PRODUCT, starts, 5000).final
        for name, opt in {
            "GD": SGD(lr=0.02),
            "SAM": SAM(SGD(lr=0.02), rho=0.1),
            "USAM": USAM(SGD(lr=0.02), rho=0.1),
        }.items()
    }
    imbalance = {k: np.abs(np.log(v[:, 0] / v[:, 1])) for k, v in ends.items()}
    assert np.all(imbalance["SAM"] < 0.1)
    assert np.all(imbalance["USAM"] > 0.5)
    assert np.all(imbalance["USAM"] > 0.75 * imbalance["GD"])
    np.testing.assert_allclose(PRODUCT(ends["USAM"]), 0.0, atol=1e-10)


# ----------------------------------------------------------------------------- implicit bias

THETA = np.radians(75.0)


class TwoExamples(SumOfExamples):
    """L_1 = ½(1 + t²)x², L_2 = ½(5 + (t − 3)²)(x cos θ + y sin θ)²."""

    def __init__(self):
        super().__init__(2, 3, name="two-examples")

    def losses_at(self, p, ex):
        x, y, t = p[..., 0], p[..., 1], p[..., 2]
        s = np.cos(THETA) * x + np.sin(THETA) * y
        return anp.where(ex == 0, 0.5 * (1 + t**2) * x**2, 0.5 * (5 + (t - 3) ** 2) * s**2)

    def grads_at(self, p, ex):
        x, y, t = p[..., 0], p[..., 1], p[..., 2]
        a, b = 1 + t**2, 5 + (t - 3) ** 2
        s = np.cos(THETA) * x + np.sin(THETA) * y
        g1 = np.stack([a * x, 0 * x, t * x**2], -1)
        g2 = np.stack([b * s * np.cos(THETA), b * s * np.sin(THETA), (t - 3) * s**2], -1)
        return np.where((ex == 0)[..., None], g1, g2)


def test_two_examples_gradients_by_hand_match_autograd():
    """The hand-written per-example gradients (used for speed) are autograd's."""
    problem = TwoExamples()
    p = np.random.default_rng(8).normal(size=(7, 2, 3))
    ex = np.array([0, 1])
    by_autograd = SumOfExamples.grads_at(problem, p, ex)
    np.testing.assert_allclose(problem.grads_at(p, ex), by_autograd, rtol=1e-12, atol=1e-14)


def measures_on_the_line(ts):
    a, b = 1 + ts**2, 5 + (ts - 3) ** 2
    lam = 0.25 * (a + b + np.sqrt((a - b) ** 2 + 4 * a * b * np.cos(THETA) ** 2))
    return lam, 0.5 * (a + b)


def test_the_two_measures_pick_different_minima():
    """sam_theory.md: along x = y = 0, λ_max is minimal near t = 1.96 and tr H at t = 1.5; the
    closed forms agree with the problem's autograd Hessian."""
    problem = TwoExamples()
    ts = np.linspace(-1, 4.5, 23)
    lam, tr = measures_on_the_line(ts)
    hess = np.stack([problem.hessian(np.array([0.0, 0.0, t])) for t in ts])
    np.testing.assert_allclose(np.linalg.eigvalsh(hess)[:, -1], lam, rtol=1e-12)
    np.testing.assert_allclose(np.trace(hess, axis1=1, axis2=2), tr, rtol=1e-12)
    fine = np.linspace(-1, 4.5, 55_001)
    lam, tr = measures_on_the_line(fine)
    assert fine[tr.argmin()] == pytest.approx(1.5, abs=1e-4)
    assert 1.9 < fine[lam.argmin()] < 2.0


def test_full_batch_sam_lowers_lambda_max_and_one_sam_the_trace():
    """sam_theory.md (Wen, Ma, Li): from four starts, SAM drifts along the minima to the
    minimiser of λ_max, 1-SAM (m = 1) to that of the trace, GD stays where it lands."""
    problem = TwoExamples()
    starts = np.array([[0.3, 0.2, -0.5], [0.3, -0.2, 0.5], [-0.2, 0.1, 2.5], [0.1, 0.3, 3.5]])
    fine = np.linspace(-1, 4.5, 55_001)
    lam, tr = measures_on_the_line(fine)
    t_lam, t_tr = fine[lam.argmin()], fine[tr.argmin()]
    lr, rho, steps = 0.05, 0.2, 6000
    gd = sampy.run(SGD(lr=lr), problem, starts, steps).final
    sam = sampy.run(SAM(SGD(lr=lr), rho=rho), problem, starts, steps).final
    one = sampy.run(MSharpnessSAM(SGD(lr=lr), rho=rho, m=1), problem, starts, steps).final
    assert np.all(np.abs(gd[:, 2] - starts[:, 2]) < 0.05)
    assert np.all(np.abs(sam[:, 2] - t_lam) < 0.02)
    assert np.all(np.abs(one[:, 2] - t_tr) < 0.1)
    assert np.all(np.abs(sam[:, :2]) < 0.05) and np.all(np.abs(one[:, :2]) < 0.05)


def test_stochastic_one_sam_ends_near_the_trace_minimiser():
    """Exercise th-ex-trace (3): one random example per step, η = 0.01, ρ = 0.2: the runs end
    within 0.1 of the trace's minimiser, far from λ_max's."""
    problem = TwoExamples()
    rng = np.random.default_rng(2)
    w = np.array([[0.3, 0.2, -0.5], [0.3, -0.2, 0.5], [-0.2, 0.1, 2.5], [0.1, 0.3, 3.5]])
    for _ in range(60_000):
        i = rng.integers(2, size=len(w))
        g = problem.grads_at(w[:, None, :], i[:, None])[:, 0]
        e = 0.2 * g / (np.linalg.norm(g, axis=-1, keepdims=True) + 1e-12)
        w = w - 0.01 * problem.grads_at((w + e)[:, None, :], i[:, None])[:, 0]
    assert np.all(np.abs(w[:, 2] - 1.5) < 0.1)


class Lines(SumOfExamples):
    def __init__(self, a):
        super().__init__(len(a), 2, name="lines")
        self.a = np.asarray(a, float)

    def losses_at(self, p, ex):
        return 0.5 * anp.sum(p * self.a[ex], axis=-1) ** 2


@pytest.mark.parametrize("rho", [0.1, 0.5])
def test_batch_sharpness_is_lambda_max_and_one_sharpness_the_trace(rho):
    """Exercise th-ex-trace (1, 2): at w = 0, the batch worst-case rise is ½ρ²λ_max(H) and the
    m = 1 sharpness ½ρ² tr H, exactly."""
    lines = Lines([[2.0, 0.0], [1.0, 1.0]])
    H = lines.hessian(np.zeros(2))
    np.testing.assert_allclose(H, 0.5 * (np.outer([2, 0], [2, 0]) + np.outer([1, 1], [1, 1])))
    batch = float(sharpness.worst_case_loss(lines, np.zeros(2), rho))
    assert batch == pytest.approx(0.5 * rho**2 * np.linalg.eigvalsh(H)[-1], rel=1e-8)
    one = float(sharpness.m_sharpness(lines, np.zeros(2), rho, 1))
    assert one == pytest.approx(0.5 * rho**2 * np.trace(H), rel=1e-8)


# ------------------------------------------------------------- the quadratic (prop-th-quadratic)


def test_sam_on_a_quadratic_is_a_preconditioned_step():
    """prop-th-quadratic (1): one sampy SAM step equals Q diag(m_i) Qᵀ w with
    m_i = 1 − ηλ_i(1 + ρλ_i/‖g‖)."""
    rng = np.random.default_rng(3)
    Q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    lams = np.array([6.0, 3.0, 1.0, 0.5])
    H = Q @ np.diag(lams) @ Q.T
    w = rng.standard_normal((50, 4))
    step = sampy.run(
        SAM(SGD(lr=0.2), rho=0.1, perturb_eps=0.0), functions.get("quadratic", A=H), w, 1
    ).final
    g_norm = np.linalg.norm(w @ H, axis=-1, keepdims=True)
    m = 1 - 0.2 * lams * (1 + 0.1 * lams / g_norm)
    np.testing.assert_allclose(step, ((w @ Q) * m) @ Q.T, atol=1e-12)
    P = np.eye(4)[None] + 0.1 * H[None] / g_norm[..., None]  # the preconditioner form
    np.testing.assert_allclose(step, w - 0.2 * np.einsum("nij,nj->ni", P, w @ H), atol=1e-12)


def sam_edge(g_norm, lr, rho):
    return g_norm / (2 * rho) * (np.sqrt(1 + 8 * rho / (lr * g_norm)) - 1)


def test_sam_edge_solves_the_stability_equation():
    """prop-th-quadratic (2): ηλ(1 + ρλ/‖g‖) = 2 at λ = λ_SAM(‖g‖) < 2/η; → 2/η as ρ → 0."""
    rng = np.random.default_rng(4)
    g, lr, rho = rng.uniform(0.01, 10, 100), rng.uniform(0.01, 0.5, 100), rng.uniform(0.01, 1, 100)
    lam = sam_edge(g, lr, rho)
    np.testing.assert_allclose(lr * lam * (1 + rho * lam / g), 2.0, rtol=1e-12)
    assert np.all(lam < 2 / lr)
    assert sam_edge(1.0, 0.1, 1e-9) == pytest.approx(20.0, rel=1e-6)


def test_sam_never_converges_and_ends_on_the_top_eigenvector_cycle():
    """prop-th-quadratic (3, 4): from 40 random starts SAM ends on ±c₁v₁, the other coordinates
    vanish, the multipliers there are in (−1, 1) and λ₁ is exactly the SAM edge."""
    rng = np.random.default_rng(5)
    Q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    lams = np.array([8.0, 5.0, 2.0, 0.5])
    H = Q @ np.diag(lams) @ Q.T
    lr, rho = 0.15, 0.1
    run = sampy.run(SAM(SGD(lr=lr), rho=rho), functions.get("quadratic", A=H),
                    rng.uniform(-2, 2, (40, 4)), 3000)  # fmt: skip
    z = run.final @ Q
    c1 = lr * lams[0] * rho / (2 - lr * lams[0])
    np.testing.assert_allclose(np.abs(z[:, 0]), c1, rtol=1e-8)
    assert np.all(np.abs(z[:, 1:]) < 1e-10)
    assert np.all(np.abs(run.xs[-1000:] @ Q)[..., 0] > 0.5 * c1)  # never near the minimum
    r = lams[1:] / lams[0]
    m = 1 - lr * lams[1:] - r**2 * (2 - lr * lams[0])
    assert np.all(np.abs(m) < 1)
    assert sam_edge(lams[0] * c1, lr, rho) == pytest.approx(lams[0], rel=1e-12)


def test_stability_map_of_sam_and_usam():
    """sam_theory.md, the (η, ρ) plane on diag(1, 10): SAM stays bounded for η < 0.2 and ends on
    the cycle's loss; USAM converges iff ηλ(1 + ρλ) < 2 (away from the boundary)."""
    q = functions.get("quadratic", A=np.diag([1.0, 10.0]))
    E, R = np.meshgrid(np.linspace(0.005, 0.24, 25), np.linspace(0.0, 0.5, 21))
    start = np.tile([1.0, 0.7], (E.size, 1))
    sam = sampy.run(SAM(SGD(lr=E.ravel()), rho=R.ravel()), q, start, 2000)
    usam = sampy.run(USAM(SGD(lr=E.ravel()), rho=R.ravel()), q, start, 2000)
    e, r = E.ravel(), R.ravel()
    assert not sam.diverged[10 * e < 2].any()
    assert sam.diverged[10 * e > 2.02].all()
    inside = (10 * e < 1.95) & (r > 0)
    c1 = 10 * e * r / (2 - 10 * e)
    loss = sam.losses[-100:].max(axis=0)
    np.testing.assert_allclose(loss[inside], 0.5 * 10 * c1[inside] ** 2, rtol=1e-3)
    converges = ~usam.diverged & (usam.losses[-1] < 1e-6 * q(np.array([1.0, 0.7])))
    predicted = 10 * e * (1 + 10 * r) < 2
    away = np.abs(10 * e * (1 + 10 * r) - 2) > 0.05
    np.testing.assert_array_equal(converges[away], predicted[away])


def test_rosenbrock_cycle_straddles_the_sam_edge():
    """sam_theory.md: at the two points of SAM's stalled 2-cycle on Rosenbrock (η = 1e-3,
    ρ = 0.05), λ_max lies on either side of the SAM edge, far below 2/η."""
    r = functions.get("rosenbrock")
    lr, rho = 1e-3, 0.05
    run = sampy.run(SAM(SGD(lr=lr), rho=rho), r, [-1.5, 2.0], 20_000)
    np.testing.assert_allclose(run.xs[-1], run.xs[-3], atol=1e-9)
    signs = []
    for w in run.xs[-2:]:
        lam = float(sharpness.top_eigenvalue(r, w))
        edge = sam_edge(float(np.linalg.norm(r.grad(w))), lr, rho)
        assert lam < 0.25 * 2 / lr
        signs.append(np.sign(lam - edge))
    assert signs[0] * signs[1] < 0


# -------------------------------------------------------------- scale invariance (lem-th-scale)

A_DIR = np.array([0.6, 0.8])


def direction_loss(w):
    return 1 - anp.dot(w, A_DIR) ** 2 / anp.sum(w**2, axis=-1)


def direction_grad(w):
    n2 = np.sum(w**2, axis=-1, keepdims=True)
    aw = w @ A_DIR
    return -2 * aw[..., None] * A_DIR / n2 + 2 * (aw**2)[..., None] * w / n2**2


SCALE_INV = TestFunction(
    name="direction",
    fn=direction_loss,
    dim=2,
    domain=((-2, 2), (-2, 2)),
    minima=A_DIR[None],
    fmin=0.0,
    analytic_grad=direction_grad,
)


def test_direction_gradient_by_hand_matches_autograd():
    w = np.random.default_rng(9).standard_normal((20, 2))
    auto = functions.from_callable(direction_loss, dim=2, domain=((-2, 2), (-2, 2)))
    np.testing.assert_allclose(SCALE_INV.grad(w), auto.grad(w), rtol=1e-10, atol=1e-14)


def test_scale_invariant_identities():
    """lem-th-scale: wᵀ∇L = 0, ∇L(cw) = ∇L(w)/c, ∇²L(cw) = ∇²L(w)/c², GD's norm identity, and
    SAM's effective radius L(cw + ρĝ) = L(w + (ρ/c)ĝ)."""
    rng = np.random.default_rng(6)
    for w in rng.standard_normal((10, 2)):
        g = SCALE_INV.grad(w)
        assert abs(w @ g) < 1e-12
        for c in [0.3, 3.0]:
            np.testing.assert_allclose(SCALE_INV.grad(c * w), g / c, atol=1e-12)
            np.testing.assert_allclose(
                sharpness.hessian(SCALE_INV, c * w), sharpness.hessian(SCALE_INV, w) / c**2,
                atol=1e-10,
            )  # fmt: skip
            e_cw = norm_ball_perturbation(c * w, SCALE_INV.grad(c * w), 0.3)
            np.testing.assert_allclose(e_cw, 0.3 * g / np.linalg.norm(g), atol=1e-12)
            assert SCALE_INV(c * w + e_cw) == pytest.approx(SCALE_INV(w + e_cw / c), abs=1e-12)
        step = w - 0.2 * g
        assert step @ step == pytest.approx(w @ w + 0.04 * g @ g, rel=1e-12)


def test_weight_decay_sets_the_effective_radius():
    """sam_theory.md: without weight decay SAM's norm keeps growing; with weight decay 0.05 it
    settles (the same value from three starts), and more decay gives a larger ρ/‖w‖."""
    w0 = np.array([[2.0, -1.0], [1.5, 0.5], [2.0, 0.0]])
    sam = sampy.run(SAM(SGD(lr=0.2), rho=0.3), SCALE_INV, w0, 3000)
    n = np.linalg.norm(sam.xs, axis=-1)
    assert np.all(n[-1] > n[1000]) and np.all(n[1000] > n[0])
    ends = {}
    for wd in [0.01, 0.05, 0.2]:
        run = sampy.run(SAM(SGD(lr=0.2, weight_decay=wd), rho=0.3), SCALE_INV, w0, 3000)
        norms = np.linalg.norm(run.xs, axis=-1)
        np.testing.assert_allclose(norms[-1], norms[-500], atol=1e-3)
        np.testing.assert_allclose(norms[-1], norms[-1][0], atol=1e-3)
        ends[wd] = 0.3 / norms[-1][0]
    assert ends[0.01] < ends[0.05] < ends[0.2]


def test_which_ball_is_invariant_under_which_map():
    """sam_theory.md table and exercise th-ex-rotation: SAM's perturbation rotates with the
    weights, ASAM's (ξ = 0) does not; ASAM's is carried by positive diagonal maps, SAM's is not;
    a metric that transforms as JᵀMJ gives the same first-order rise for every invertible J."""
    angle = np.radians(30.0)
    R = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    A = np.diag([2.0, 0.5])
    w, rho = np.array([0.8, 0.9]), 0.3
    g = PRODUCT.grad(w)
    for adaptive, rotation_ok, diagonal_ok in [(False, True, False), (True, False, True)]:
        e = norm_ball_perturbation(w, g, rho, adaptive=adaptive)
        e_rot = norm_ball_perturbation(R @ w, R @ g, rho, adaptive=adaptive)
        e_diag = norm_ball_perturbation(A @ w, PRODUCT.grad(A @ w), rho, adaptive=adaptive)
        assert np.allclose(e_rot, R @ e, atol=1e-12) == rotation_ok
        assert np.allclose(e_diag, A @ e, atol=1e-12) == diagonal_ok
    rng = np.random.default_rng(7)
    for _ in range(20):
        J = rng.standard_normal((3, 3))
        B = rng.standard_normal((3, 3))
        M_w = B @ B.T + np.eye(3)
        g_w = rng.standard_normal(3)
        g_u, M_u = J.T @ g_w, J.T @ M_w @ J
        rise = lambda g, M: rho * np.sqrt(g @ np.linalg.solve(M, g))  # noqa: E731
        assert rise(g_u, M_u) == pytest.approx(rise(g_w, M_w), rel=1e-9)
        assert rise(g_u, np.eye(3)) != pytest.approx(rise(g_w, np.eye(3)), rel=1e-3)


# ------------------------------------------------------------------ the three chapters' hygiene

BOOK = Path(__file__).resolve().parents[1] / "book"


@pytest.mark.parametrize("page", ["deriving_sam.md", "sam_toys.md", "sam_theory.md"])
def test_statements_name_no_test_and_every_exercise_has_a_difficulty(page):
    """Test names left the statements (one reproducibility note per chapter); every exercise has
    exactly one difficulty mark; no project jargon."""
    text = (BOOK / page).read_text(encoding="utf-8")
    assert "Checked by" not in text and "checked by* `test_" not in text
    assert text.count("```{admonition} Reproducibility") == 1
    for word in ["seed 0", "seed-0", "VARIANTS.md", "seed notes"]:
        assert word not in text
    blocks = re.findall(r"^```\{exercise\}[^\n]*\n((?::[\w-]+:[^\n]*\n)*)", text, re.M)
    assert blocks
    for options in blocks:
        marks = re.findall(r"difficulty-[123]\b", options)
        assert len(marks) == 1, options
