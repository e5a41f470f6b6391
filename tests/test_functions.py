"""Tests of ``sampy.functions``: minima, gradients, Hessians, shapes, registry, constructors.

Expected values are derived here independently of the code under test: by hand (closed-form
minimisers and curvatures), by autograd, by finite differences, or by a brute-force grid.
"""

from __future__ import annotations

import math
import re

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sampy
from sampy import functions
from sampy.optim import SGD

# Every registered function with its defaults, plus non-default shapes/parameters.
REGISTERED = functions.names()
VARIANTS = [(name, {}) for name in REGISTERED] + [
    ("sphere", {"dim": 1}),
    ("sphere", {"dim": 5}),
    ("rosenbrock", {"dim": 3}),
    ("rosenbrock", {"dim": 6}),
    ("rosenbrock", {"dim": 2, "a": 2.0}),
    ("rosenbrock", {"dim": 2, "a": -0.5, "b": 10.0}),
    ("rastrigin", {"dim": 1}),
    ("rastrigin", {"dim": 4, "A": 3.0}),
    ("ackley", {"dim": 1}),
    ("ackley", {"dim": 3}),
    ("sharp_flat", {"sharpness": 30.0}),
    (
        "quadratic",
        {"A": [[4.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.5, 0.2, 2.0]], "b": [1.0, -2.0, 0.5]},
    ),
]


def _ids(variants):
    return [f"{n}-{p}" if p else n for n, p in variants]


def _box(f):
    lo = np.array([a for a, _ in f.domain])
    hi = np.array([b for _, b in f.domain])
    return lo, hi


def _random_points(f, shape, seed):
    lo, hi = _box(f)
    return np.random.default_rng(seed).uniform(lo, hi, size=(*shape, f.dim))


# Value at a minimiser: Ackley's −a·1 − e + a + e cancels only up to rounding of numbers of
# size ~23 (ulp ≈ 3.6e-15); nothing else comes close to 1e-12.
VALUE_TOL = 1e-12


# ---------------------------------------------------------------------------------------------
# Registry


def test_names_contains_the_documented_functions():
    required = {"sphere", "quadratic", "rosenbrock", "rastrigin", "ackley", "himmelblau"}
    required.add("sharp_flat")
    got = functions.names()
    assert required <= set(got)
    assert got == sorted(got)


def test_get_unknown_name_raises_naming_it():
    with pytest.raises(ValueError, match="no_such_function"):
        functions.get("no_such_function")


def test_register_twice_raises():
    with pytest.raises(ValueError, match="sphere"):
        functions.register("sphere")(lambda: None)


@pytest.mark.parametrize(("name", "params"), VARIANTS, ids=_ids(VARIANTS))
def test_metadata_is_consistent(name, params):
    f = functions.get(name, **params)
    assert f.name == name
    assert len(f.domain) == f.dim
    assert all(lo < hi for lo, hi in f.domain)
    assert f.minima.ndim == 2
    assert f.minima.shape[1] == f.dim
    assert f.minima.shape[0] >= 1
    assert math.isfinite(f.fmin)
    if f.minima_labels:
        assert len(f.minima_labels) == f.minima.shape[0]


@pytest.mark.parametrize(("name", "params"), VARIANTS, ids=_ids(VARIANTS))
def test_known_minimisers_lie_in_the_plotting_domain(name, params):
    f = functions.get(name, **params)
    lo, hi = _box(f)
    assert np.all((f.minima >= lo) & (f.minima <= hi)), "a known minimiser lies outside domain"


# ---------------------------------------------------------------------------------------------
# Minima


@pytest.mark.parametrize(("name", "params"), VARIANTS, ids=_ids(VARIANTS))
def test_minima_are_stationary_with_value_fmin(name, params):
    f = functions.get(name, **params)
    values = np.asarray(f(f.minima))
    np.testing.assert_allclose(values, f.fmin, rtol=0, atol=VALUE_TOL)
    # Gradients at the minimisers: the listed minimisers are accurate to ~1e-15 (closed forms
    # or Newton-refined roots); with Hessian norms up to ~1e3 (Rosenbrock, b = 100) this gives
    # gradients ~1e-12; 1e-8 leaves room without accepting a wrong point (an error of 1e-6 in
    # a minimiser already gives a gradient ≳ 1e-6).
    for grad in (f.grad(f.minima), f.autograd_grad(f.minima)):
        assert np.all(np.isfinite(grad))
        assert np.max(np.abs(grad)) <= 1e-8


@pytest.mark.parametrize(("name", "params"), VARIANTS, ids=_ids(VARIANTS))
def test_minima_are_local_minima(name, params):
    """Second-order check: f grows in every direction around each listed minimiser."""
    f = functions.get(name, **params)
    rng = np.random.default_rng(1)
    for x_star in f.minima:
        directions = rng.normal(size=(64, f.dim))
        directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
        for r in (1e-3, 1e-2):
            assert np.all(f(x_star + r * directions) > f.fmin - VALUE_TOL)


@pytest.mark.parametrize(
    ("name", "params"),
    [(n, p) for n, p in VARIANTS if functions.get(n, **p).dim == 2],
    ids=_ids([(n, p) for n, p in VARIANTS if functions.get(n, **p).dim == 2]),
)
def test_no_grid_point_in_domain_is_below_fmin(name, params):
    f = functions.get(name, **params)
    (x_lo, x_hi), (y_lo, y_hi) = f.domain
    xs = np.linspace(x_lo, x_hi, 601)
    ys = np.linspace(y_lo, y_hi, 601)
    grid = np.stack(np.meshgrid(xs, ys, indexing="ij"), axis=-1)
    values = np.asarray(f(grid))
    assert values.shape == (601, 601)
    assert np.all(np.isfinite(values))
    assert values.min() >= f.fmin - VALUE_TOL
    # The grid minimum is close to fmin (the grid spacing is < 0.02, and every function is
    # smooth near a minimiser, so the grid minimum cannot be far above fmin).
    assert values.min() <= f.fmin + 1.0


# ---------------------------------------------------------------------------------------------
# Gradients, shapes, Hessians


def _assert_grad_close(hand, auto, rtol=1e-9):
    """Per point: ‖hand − auto‖ ≤ rtol ‖auto‖ (plus an absolute floor far below any signal)."""
    err = np.linalg.norm(hand - auto, axis=-1)
    scale = np.linalg.norm(auto, axis=-1)
    assert np.all(err <= rtol * scale + 1e-300), (err / np.maximum(scale, 1e-300)).max()


@pytest.mark.parametrize("shape", [(), (5,), (3, 4)], ids=["(d,)", "(5,d)", "(3,4,d)"])
@pytest.mark.parametrize(("name", "params"), VARIANTS, ids=_ids(VARIANTS))
def test_hand_gradient_matches_autograd(name, params, shape):
    f = functions.get(name, **params)
    x = _random_points(f, shape, seed=len(shape) + 7)
    hand = f.grad(x)
    auto = f.autograd_grad(x)
    assert hand.shape == (*shape, f.dim)
    assert auto.shape == (*shape, f.dim)
    _assert_grad_close(hand, auto)
    # And autograd itself differentiates point by point (independently of the batch helper).
    single = autograd.grad(f.fn)
    for idx in np.ndindex(*shape):
        np.testing.assert_allclose(auto[idx], single(x[idx]), rtol=1e-12, atol=1e-300)


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(REGISTERED),
    seed=st.integers(0, 2**32 - 1),
    spread=st.floats(0.1, 2.0),
)
def test_hand_gradient_matches_autograd_property(name, seed, spread):
    """Also slightly outside the plotting box."""
    f = functions.get(name)
    lo, hi = _box(f)
    centre, half = (lo + hi) / 2, (hi - lo) / 2
    x = np.random.default_rng(seed).uniform(
        centre - spread * half, centre + spread * half, (6, f.dim)
    )
    _assert_grad_close(f.grad(x), f.autograd_grad(x))


@pytest.mark.parametrize(("name", "params"), VARIANTS, ids=_ids(VARIANTS))
def test_output_shapes_and_value_and_grad(name, params):
    f = functions.get(name, **params)
    for shape in [(), (5,), (3, 4)]:
        x = _random_points(f, shape, seed=3)
        value = np.asarray(f(x))
        assert value.shape == shape
        v, g = f.value_and_grad(x)
        assert np.shape(v) == shape
        assert g.shape == (*shape, f.dim)
        np.testing.assert_array_equal(v, value)
        np.testing.assert_array_equal(g, f.grad(x))
        # Batched values are the values of each point alone.
        for idx in np.ndindex(*shape):
            np.testing.assert_allclose(value[idx], f(x[idx]), rtol=1e-14, atol=0)


@pytest.mark.parametrize(("name", "params"), VARIANTS, ids=_ids(VARIANTS))
def test_hessian_matches_finite_differences(name, params):
    f = functions.get(name, **params)
    x = _random_points(f, (3,), seed=11)
    hess = f.hessian(x)
    assert hess.shape == (3, f.dim, f.dim)
    for k, point in enumerate(x):
        # Central differences of the hand-written gradient, h = 1e-5: truncation error
        # ~h²·|f''''|/6 (≤ 3e-7 for Rastrigin's (2π)⁴·10) and rounding ~1e-16·|g|/h; compared
        # to 1e-5·(1 + max|H|) this cannot hide a wrong Hessian entry.
        h = 1e-5
        fd = np.empty((f.dim, f.dim))
        for j in range(f.dim):
            step = np.zeros(f.dim)
            step[j] = h
            fd[:, j] = (f.grad(point + step) - f.grad(point - step)) / (2 * h)
        np.testing.assert_allclose(hess[k], fd, rtol=0, atol=1e-5 * (1 + np.abs(fd).max()))
        np.testing.assert_allclose(hess[k], hess[k].T, rtol=0, atol=1e-10 * (1 + np.abs(fd).max()))
        # One point alone gives the same Hessian as within the batch.
        np.testing.assert_allclose(f.hessian(point), hess[k], rtol=1e-14, atol=1e-300)
    batched = f.hessian(_random_points(f, (2, 3), seed=12))
    assert batched.shape == (2, 3, f.dim, f.dim)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_ackley_gradient_at_origin_is_zero_not_nan(dim):
    f = functions.get("ackley", dim=dim)
    zero = np.zeros(dim)
    for grad in (f.grad(zero), f.autograd_grad(zero), f.value_and_grad(zero)[1]):
        assert np.all(np.isfinite(grad))
        np.testing.assert_array_equal(grad, np.zeros(dim))
    batch = np.zeros((4, dim))
    batch[1:] = np.random.default_rng(0).normal(size=(3, dim))
    grad = f.autograd_grad(batch)
    assert np.all(np.isfinite(grad))
    np.testing.assert_array_equal(grad[0], np.zeros(dim))
    # Near (not at) the tip the gradient is the cone's: norm → a·b/√d as x → 0.
    tiny = np.full(dim, 1e-9)
    np.testing.assert_allclose(np.linalg.norm(f.grad(tiny)), 20.0 * 0.2 / math.sqrt(dim), 1e-6)


# ---------------------------------------------------------------------------------------------
# The sharp/flat toy


def _sharp_flat_minimiser_x() -> float:
    """Root in (0, 0.5) of d/dx [−exp(−(x−2)²) − exp(−x²)], by bisection."""

    def slope(x):
        return 2 * (x - 2) * math.exp(-((x - 2) ** 2)) + 2 * x * math.exp(-(x**2))

    lo, hi = 0.0, 0.5
    assert slope(lo) < 0 < slope(hi)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if slope(mid) < 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _sharp_flat_curvatures(x: float, s: float) -> tuple[float, float]:
    """(f_xx, f_yy) of −exp(−(x−2)² − y²) − exp(−(x² + s y²)) at (x, 0); f_xy = 0 there."""
    far, near = math.exp(-((x - 2) ** 2)), math.exp(-(x**2))
    fxx = (2 - 4 * (x - 2) ** 2) * far + (2 - 4 * x**2) * near
    fyy = 2 * far + 2 * s * near
    return fxx, fyy


@pytest.mark.parametrize("sharpness", [100.0, 30.0])
def test_sharp_flat_minima_depth_curvature_and_labels(sharpness):
    f = functions.get("sharp_flat", sharpness=sharpness)
    assert f.minima_labels == ("sharp", "flat")
    x_s = _sharp_flat_minimiser_x()
    sharp = f.minima[f.minima_labels.index("sharp")]
    flat = f.minima[f.minima_labels.index("flat")]
    np.testing.assert_allclose(sharp, [x_s, 0.0], rtol=0, atol=1e-14)
    np.testing.assert_allclose(flat, [2.0 - x_s, 0.0], rtol=0, atol=1e-14)
    # Equal depth: the function is symmetric under x ↦ 2 − x on y = 0.
    depth = -math.exp(-((x_s - 2) ** 2)) - math.exp(-(x_s**2))
    np.testing.assert_allclose(f(f.minima), [depth, depth], rtol=1e-15)
    np.testing.assert_allclose(f.fmin, depth, rtol=1e-15)
    eig_sharp = np.linalg.eigvalsh(f.hessian(sharp))
    eig_flat = np.linalg.eigvalsh(f.hessian(flat))
    np.testing.assert_allclose(eig_sharp, sorted(_sharp_flat_curvatures(x_s, sharpness)), 1e-10)
    np.testing.assert_allclose(eig_flat, sorted(_sharp_flat_curvatures(2 - x_s, sharpness)), 1e-10)
    assert eig_sharp.max() > eig_flat.max()
    if sharpness == 100.0:
        assert round(eig_sharp.max(), 1) == 199.7
        assert round(eig_flat.max(), 2) == 6.33


# ---------------------------------------------------------------------------------------------
# Quadratic and Rosenbrock with non-default parameters


def test_quadratic_with_custom_spd_matrix():
    rng = np.random.default_rng(5)
    m = rng.normal(size=(4, 4))
    A = m @ m.T + 0.5 * np.eye(4)  # SPD, non-diagonal
    b = rng.normal(size=4)
    f = functions.get("quadratic", A=A, b=b)
    assert f.dim == 4
    x_star = np.linalg.inv(A) @ b
    np.testing.assert_allclose(f.minima, x_star[None], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(f.fmin, -0.5 * b @ np.linalg.inv(A) @ b, rtol=1e-10)
    x = rng.normal(size=(6, 4))
    # value and gradient from the definition, one point at a time
    for point, value, grad in zip(x, f(x), f.grad(x), strict=True):
        np.testing.assert_allclose(value, 0.5 * point @ A @ point - b @ point, rtol=1e-12)
        np.testing.assert_allclose(grad, A @ point - b, rtol=1e-12, atol=1e-12)
    # Every point of a random cloud is above fmin.
    assert np.all(f(x_star + rng.normal(size=(200, 4))) > f.fmin)


def test_quadratic_default_is_diag_1_10():
    f = functions.get("quadratic")
    np.testing.assert_allclose(np.linalg.eigvalsh(f.hessian(np.zeros(2))), [1.0, 10.0])
    np.testing.assert_array_equal(f.minima, [[0.0, 0.0]])


@pytest.mark.parametrize(
    ("params", "expected"),
    [({"dim": 3}, [1.0, 1.0, 1.0]), ({"a": 2.0, "dim": 2}, [2.0, 4.0]), ({}, [1.0, 1.0])],
)
def test_rosenbrock_minima(params, expected):
    f = functions.get("rosenbrock", **params)
    np.testing.assert_array_equal(f.minima, [expected])
    assert f(np.array(expected)) == 0.0
    np.testing.assert_array_equal(f.grad(np.array(expected)), np.zeros(len(expected)))
    # Hand-written value of the sum formula at another point.
    a = params.get("a", 1.0)
    x = np.linspace(-1.0, 1.5, len(expected))
    by_hand = sum(
        100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (a - x[i]) ** 2 for i in range(len(expected) - 1)
    )
    np.testing.assert_allclose(f(x), by_hand, rtol=1e-14)


# ---------------------------------------------------------------------------------------------
# from_callable


def _user_fn(x):
    return anp.log(1.0 + anp.sum(x**2, axis=-1)) + 0.3 * x[..., 0] * x[..., 1]


def _user_grad_by_hand(x):
    r = 1.0 + np.sum(x**2, axis=-1, keepdims=True)
    g = 2.0 * x / r
    g[..., 0] += 0.3 * x[..., 1]
    g[..., 1] += 0.3 * x[..., 0]
    return g


def test_from_callable_gradient_and_run():
    f = functions.from_callable(_user_fn, dim=3, name="user")
    assert f.name == "user"
    assert f.dim == 3
    assert f.minima.shape == (0, 3)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 5, 3))
    np.testing.assert_allclose(f.grad(x), _user_grad_by_hand(x), rtol=1e-12, atol=1e-15)
    v, g = f.value_and_grad(x)
    np.testing.assert_allclose(v, _user_fn(x), rtol=1e-15)
    np.testing.assert_allclose(g, _user_grad_by_hand(x), rtol=1e-12, atol=1e-15)

    x0 = rng.normal(size=(3, 3))
    lr, steps = 0.1, 25
    traj = sampy.run(SGD(lr=lr), f, x0, steps)
    expected = [x0]
    for _ in range(steps):
        expected.append(expected[-1] - lr * _user_grad_by_hand(expected[-1]))
    np.testing.assert_allclose(traj.xs, np.array(expected), rtol=1e-12, atol=1e-14)
    assert traj.grad_evals == steps
    with pytest.raises(ValueError, match="x0"):
        sampy.run(SGD(lr=lr), f, np.zeros(2), 1)


def test_from_callable_rejects_bad_dim():
    for dim in (0, -1, 2.0):
        with pytest.raises(ValueError, match=r"\bdim\b"):
            functions.from_callable(_user_fn, dim=dim)


# ---------------------------------------------------------------------------------------------
# Constructors reject bad parameters, naming them


@pytest.mark.parametrize(
    ("name", "params", "param"),
    [
        ("quadratic", {"A": [[1.0, 2.0], [2.0, 1.0]]}, "A"),  # symmetric, eigenvalue −1
        ("quadratic", {"A": [[1.0, 0.0], [0.0, 0.0]]}, "A"),  # singular
        ("quadratic", {"A": [[2.0, 1.0], [0.0, 2.0]]}, "A"),  # not symmetric
        ("quadratic", {"A": [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]}, "A"),  # not square
        ("quadratic", {"A": [1.0, 2.0]}, "A"),  # not a matrix
        ("quadratic", {"A": np.eye(2), "b": [1.0, 2.0, 3.0]}, "b"),
        ("quadratic", {"A": np.eye(2), "b": [[1.0, 2.0]]}, "b"),
        ("sphere", {"dim": 0}, "dim"),
        ("sphere", {"dim": 2.5}, "dim"),
        ("sphere", {"dim": True}, "dim"),
        ("rosenbrock", {"dim": 1}, "dim"),
        ("rosenbrock", {"dim": 3, "a": 2.0}, "a"),
        ("rosenbrock", {"b": 0.0}, "b"),
        ("rastrigin", {"dim": 0}, "dim"),
        ("rastrigin", {"A": -1.0}, "A"),
        ("ackley", {"dim": 0}, "dim"),
        ("ackley", {"b": 0.0}, "b"),
        ("ackley", {"a": float("nan")}, "a"),
        ("sharp_flat", {"sharpness": 0.0}, "sharpness"),
        ("sharp_flat", {"sharpness": -3.0}, "sharpness"),
    ],
)
def test_bad_constructor_arguments_raise_naming_the_parameter(name, params, param):
    with pytest.raises(ValueError, match=rf"\b{re.escape(param)}\b"):
        functions.get(name, **params)
