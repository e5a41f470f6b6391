"""sampy.sharpness: exact curvature, Hessian-vector products, and the worst case in a ρ-ball."""

from __future__ import annotations

import math

import autograd.numpy as anp
import numpy as np
import pytest

from sampy import functions, sharpness
from sampy.optim import lp_norm, norm_ball_perturbation

RNG_SEED = 20260


def random_spd(d: int, rng: np.random.Generator) -> np.ndarray:
    m = rng.standard_normal((d, d))
    return m @ m.T + 0.5 * np.eye(d)


def grid_max(f, x: np.ndarray, rho: float, p: float, n: int = 601) -> float:
    """Max of f over a dense grid of the 2-D ball (interior lattice plus 4000 boundary points)."""
    t = np.linspace(-rho, rho, n)
    lattice = np.stack(np.meshgrid(t, t), -1).reshape(-1, 2)
    lattice = lattice[lp_norm(lattice, p)[:, 0] <= rho * (1 + 1e-12)]
    theta = np.linspace(0, 2 * np.pi, 4000, endpoint=False)
    circle = np.stack([np.cos(theta), np.sin(theta)], -1)
    boundary = circle * (rho / lp_norm(circle, p))
    return float(np.max(f(x + np.concatenate([lattice, boundary]))))


# --------------------------------------------------------------------------- curvature


def test_hessian_of_a_quadratic_is_its_matrix():
    rng = np.random.default_rng(RNG_SEED)
    A = random_spd(4, rng)
    q = functions.get("quadratic", A=A)
    points = rng.standard_normal((3, 2, 4))
    H = sharpness.hessian(q, points)
    assert H.shape == (3, 2, 4, 4)
    np.testing.assert_allclose(H, np.broadcast_to(A, H.shape), atol=1e-12)
    eig = np.linalg.eigvalsh(A)
    np.testing.assert_allclose(sharpness.top_eigenvalue(q, points), eig[-1], rtol=1e-12)
    np.testing.assert_allclose(sharpness.hessian_trace(q, points), eig.sum(), rtol=1e-12)


def test_hessian_of_a_plain_callable_matches_the_closed_form():
    def f(w):  # (ab − 1)²: Hessian 2 [[b², 2ab − 1], [2ab − 1, a²]]
        return (w[..., 0] * w[..., 1] - 1.0) ** 2

    w = np.array([[0.5, 3.0], [2.0, 0.25]])
    a, b = w[:, 0], w[:, 1]
    expected = 2 * np.stack(
        [np.stack([b**2, 2 * a * b - 1], -1), np.stack([2 * a * b - 1, a**2], -1)], -2
    )
    np.testing.assert_allclose(sharpness.hessian(f, w), expected, rtol=1e-12)
    np.testing.assert_allclose(sharpness.hessian(f, w[0]), expected[0], rtol=1e-12)


def test_rosenbrock_curvature_at_its_minimum():
    # ∇²f(1, 1) = [[802, −400], [−400, 200]] for b = 100: λmax = 501 + √(301² + 400²).
    r = functions.get("rosenbrock")
    np.testing.assert_allclose(sharpness.hessian(r, r.minima[0]), [[802, -400], [-400, 200]])
    assert sharpness.top_eigenvalue(r, r.minima[0]) == pytest.approx(501 + math.hypot(301, 400))
    assert sharpness.hessian_trace(r, r.minima[0]) == pytest.approx(1002.0)


def test_hessian_vector_product_matches_the_hessian():
    rng = np.random.default_rng(RNG_SEED)
    h = functions.get("himmelblau")
    for w in rng.uniform(-4, 4, size=(5, 2)):
        hvp = sharpness.hessian_vector_product(h, w)
        H = sharpness.hessian(h, w)
        for v in rng.standard_normal((3, 2)):
            np.testing.assert_allclose(hvp(v), H @ v, rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="one point"):
        sharpness.hessian_vector_product(h, np.zeros((2, 2)))


@pytest.mark.parametrize("d", [2, 6, 20])
def test_power_iteration_matches_eigvalsh(d):
    rng = np.random.default_rng(d)
    A = random_spd(d, rng)
    exact = np.linalg.eigvalsh(A)[-1]
    estimate = sharpness.power_iteration_top_eigenvalue(
        lambda v: A @ v, d, iters=5000, tol=1e-14, seed=3
    )
    assert estimate == pytest.approx(exact, rel=1e-8)


def test_power_iteration_through_autograd_on_the_toys():
    for name in ["sharp_flat", "himmelblau", "rosenbrock"]:
        f = functions.get(name)
        for w in f.minima:
            hvp = sharpness.hessian_vector_product(f, w)
            estimate = sharpness.power_iteration_top_eigenvalue(hvp, 2, iters=2000, tol=1e-14)
            assert estimate == pytest.approx(sharpness.top_eigenvalue(f, w), rel=1e-8)


def test_power_iteration_stops_early_and_handles_a_zero_hessian():
    calls = []

    def hvp(v):
        calls.append(1)
        return np.diag([5.0, 1.0]) @ v

    assert sharpness.power_iteration_top_eigenvalue(hvp, 2, iters=10_000) == pytest.approx(5.0)
    assert len(calls) < 100
    assert sharpness.power_iteration_top_eigenvalue(lambda v: 0 * v, 3) == 0.0
    with pytest.raises(ValueError, match="d must"):
        sharpness.power_iteration_top_eigenvalue(lambda v: v, 0)
    with pytest.raises(ValueError, match="iters must"):
        sharpness.power_iteration_top_eigenvalue(lambda v: v, 2, iters=0)


# --------------------------------------------------------------------------- projections


@pytest.mark.parametrize("p", [1.0, 2.0, math.inf])
def test_projection_is_the_nearest_point_of_the_ball(p):
    rng = np.random.default_rng(RNG_SEED)
    rho = 0.7
    e = 2.0 * rng.standard_normal((200, 4))
    proj = sharpness.project_to_ball(e, rho, p)
    assert np.all(lp_norm(proj, p)[:, 0] <= rho * (1 + 1e-12))
    # Points inside stay put; projecting twice changes nothing.
    inside = lp_norm(e, p)[:, 0] <= rho
    np.testing.assert_array_equal(proj[inside], e[inside])
    np.testing.assert_allclose(sharpness.project_to_ball(proj, rho, p), proj, atol=1e-12)
    # No random feasible point is closer than the projection.
    z = rng.standard_normal((500, 200, 4))
    z *= rho * rng.uniform(size=(500, 200, 1)) ** 0.25 / lp_norm(z, p)
    best_random = np.linalg.norm(z - e, axis=-1).min(axis=0)
    assert np.all(np.linalg.norm(proj - e, axis=-1) <= best_random + 1e-12)


def test_projection_for_other_p_lands_in_the_ball():
    e = np.array([[3.0, -4.0, 1.0], [0.1, 0.0, 0.0]])
    out = sharpness.project_to_ball(e, 1.0, 3.0)
    np.testing.assert_allclose(lp_norm(out[:1], 3.0), 1.0)
    np.testing.assert_array_equal(out[1], e[1])


# --------------------------------------------------------------------------- worst case


@pytest.mark.parametrize("p", [1.0, 1.5, 2.0, 3.0, math.inf])
@pytest.mark.parametrize("name", ["sharp_flat", "himmelblau", "rosenbrock"])
def test_worst_case_agrees_with_an_exhaustive_grid(name, p):
    f = functions.get(name)
    points = np.concatenate([f.minima, [[0.5, 0.3], [-1.0, 1.5]]])
    for rho in [0.05, 0.3]:
        worst, e = sharpness.worst_case_loss(f, points, rho, p, return_perturbation=True)
        first_order = f(points + norm_ball_perturbation(points, f.grad(points), rho, p))
        for i, x in enumerate(points):
            grid = grid_max(f, x, rho, p)
            scale = max(1.0, abs(grid))
            # never below SAM's first-order point, never above the true maximum (the grid
            # misses at most a sliver near the boundary), and as good as the grid search
            assert worst[i] >= first_order[i] - 1e-12
            assert worst[i] <= grid + 1e-3 * scale
            assert worst[i] >= grid - 1e-4 * scale, (name, p, rho, x, worst[i], grid)
        # the returned perturbation is feasible and attains the returned value
        assert np.all(lp_norm(e, p)[:, 0] <= rho * (1 + 1e-9))
        np.testing.assert_allclose(f(points + e), worst, rtol=1e-12)


def test_worst_case_of_a_quadratic_at_its_minimum_is_exact():
    # ½ eᵀHe on the l2 ball: ½ρ²λmax; on the box (diagonal H): ½ρ² tr H; on the l1 ball: ½ρ²λmax.
    lam = np.array([1.0, 4.0, 9.0])
    q = functions.get("quadratic", A=np.diag(lam))
    rho = 0.3
    x = np.zeros(3)
    assert sharpness.worst_case_loss(q, x, rho, 2) == pytest.approx(0.5 * rho**2 * 9, rel=1e-6)
    assert sharpness.worst_case_loss(q, x, rho, math.inf) == pytest.approx(0.5 * rho**2 * 14)
    assert sharpness.worst_case_loss(q, x, rho, 1) == pytest.approx(0.5 * rho**2 * 9, rel=1e-6)


def test_sharpness_is_nonnegative_batched_and_zero_at_rho_zero():
    f = functions.get("himmelblau")
    points = np.random.default_rng(RNG_SEED).uniform(-5, 5, size=(4, 3, 2))
    s = sharpness.sharpness(f, points, 0.2)
    assert s.shape == (4, 3)
    assert np.all(s >= 0)
    np.testing.assert_array_equal(sharpness.sharpness(f, points, 0.0), 0.0)


def test_worst_case_accepts_a_plain_callable():
    def bowl(w):
        return anp.sum(w**2, axis=-1)

    worst = sharpness.worst_case_loss(bowl, np.array([1.0, 0.0]), 0.5)
    assert worst == pytest.approx(1.5**2, rel=1e-9)


def test_worst_case_is_deterministic_for_a_seed():
    f = functions.get("sharp_flat")
    x = np.array([[0.5, 0.2], [1.5, -0.3]])
    a = sharpness.worst_case_loss(f, x, 0.4, 1.5, random_starts=6, seed=4)
    b = sharpness.worst_case_loss(f, x, 0.4, 1.5, random_starts=6, seed=4)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"rho": -0.1}, "^rho "),
        ({"rho": 0.1, "p": 0.5}, "^p "),
        ({"rho": 0.1, "steps": -1}, "^steps "),
        ({"rho": 0.1, "random_starts": 1.5}, "^random_starts "),
        ({"rho": 0.1, "step_size": 0.0}, "^step_size "),
    ],
)
def test_worst_case_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sharpness.worst_case_loss(functions.get("sphere"), np.zeros(2), **kwargs)
