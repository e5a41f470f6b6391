"""Tests of the catalogue functions (``sampy/functions/catalogue.py``) and ``sharp_flat_wells``.

The generic contract (stationary minima with value ``fmin``, nothing below ``fmin`` on a grid, hand
gradient = autograd, Hessian = finite differences) is tested for every registered name with its
defaults in ``test_functions.py``; here it is repeated for non-default parameters. The expected
numbers come from outside the code under test: a reference table of the test functions (the VLSE
pages of Surjanovic & Bingham, with Hessian eigenvalues at the minima computed independently by BFGS
and finite differences, to the table's precision), closed forms, values computed by hand,
independent root finding (bisection, the trigonometric solution of a cubic).
"""

from __future__ import annotations

import math
import re

import autograd
import numpy as np
import pytest

import sampy
from sampy import functions
from sampy.functions.toys import sharp_flat_wells_minima
from sampy.optim import SGD

NEW = [
    "ill_conditioned",
    "beale",
    "booth",
    "matyas",
    "three_hump_camel",
    "six_hump_camel",
    "goldstein_price",
    "styblinski_tang",
    "levy",
    "griewank",
    "sharp_flat_wells",
]


def test_registry_has_the_catalogue():
    got = functions.names()
    assert set(NEW) <= set(got)
    assert len(got) >= 16


# ---------------------------------------------------------------------------------------------
# The reference table: Hessian eigenvalues (λmin, λmax) at the global minima, to its digits


def _assert_table(eigs, table):
    """Each eigenvalue rounds to the table entry, given as a string with its own precision."""
    for got, entry in zip(eigs, table, strict=True):
        decimals = len(entry.split(".")[1]) if "." in entry else 0
        assert abs(got - float(entry)) <= 0.5 * 10.0**-decimals + 1e-12, (eigs, table)


@pytest.mark.parametrize(
    ("name", "table"),
    [
        ("ill_conditioned", ("0.2", "4")),  # d2l's 0.1x₁² + 2x₂²
        ("beale", ("0.30", "49.0")),
        ("booth", ("2", "18")),
        ("matyas", ("0.04", "1.0")),
        ("three_hump_camel", ("1.59", "4.41")),
        ("six_hump_camel", ("7.68", "16.49")),
        ("goldstein_price", ("403", "965")),
        ("styblinski_tang", ("34.58", "34.58")),
        ("levy", ("0.125", "2.24")),
        ("griewank", ("0.50", "1.00")),
    ],
)
def test_hessian_eigenvalues_at_the_minima_match_the_book_table(name, table):
    f = functions.get(name)
    for x_star in f.minima:  # six-hump camel: both global minima
        eigs = np.linalg.eigvalsh(f.hessian(x_star))
        _assert_table(eigs, table)


def test_closed_form_hessians_at_the_minima():
    # Booth and Matyas are quadratics: Hessians [[10, 8], [8, 10]] and [[.52, −.48], [−.48, .52]].
    np.testing.assert_allclose(functions.get("booth").hessian(np.zeros(2)), [[10, 8], [8, 10]])
    np.testing.assert_allclose(
        functions.get("matyas").hessian(np.array([3.0, -1.0])), [[0.52, -0.48], [-0.48, 0.52]]
    )
    # Three-hump camel at 0: [[4, 1], [1, 2]], eigenvalues 3 ± √2.
    eigs = np.linalg.eigvalsh(functions.get("three_hump_camel").hessian(np.zeros(2)))
    np.testing.assert_allclose(eigs, [3 - math.sqrt(2), 3 + math.sqrt(2)], rtol=1e-14)
    # Griewank: diag(1/2000 + 1/i).
    f = functions.get("griewank", dim=5)
    np.testing.assert_allclose(
        f.hessian(np.zeros(5)), np.diag(1 / 2000 + 1 / np.arange(1, 6)), rtol=1e-14, atol=1e-15
    )
    # Levy at (1, …, 1): diag(π²/8 + m, m, …, m, 1/8) with m = (1 + 10 sin²1)/8.
    m = (1 + 10 * math.sin(1.0) ** 2) / 8
    f = functions.get("levy", dim=4)
    expected = np.diag([math.pi**2 / 8 + m, m, m, 1 / 8])
    np.testing.assert_allclose(f.hessian(np.ones(4)), expected, rtol=1e-12, atol=1e-14)
    f = functions.get("levy", dim=1)
    np.testing.assert_allclose(f.hessian(np.ones(1)), [[(math.pi**2 + 1) / 8]], rtol=1e-12)
    # Styblinski–Tang: 6x² − 16 per coordinate.
    x = functions.get("styblinski_tang").minima[0, 0]
    f = functions.get("styblinski_tang", dim=3)
    np.testing.assert_allclose(f.hessian(f.minima[0]), (6 * x * x - 16) * np.eye(3), rtol=1e-13)


# ---------------------------------------------------------------------------------------------
# Values at hand-computed points


@pytest.mark.parametrize(
    ("name", "params", "point", "expected"),
    [
        ("booth", {}, (0.0, 0.0), 74.0),  # 7² + 5²
        ("booth", {}, (1.0, 3.0), 0.0),
        ("beale", {}, (0.0, 0.0), 1.5**2 + 2.25**2 + 2.625**2),
        ("beale", {}, (1.0, 1.0), 1.5**2 + 2.25**2 + 2.625**2),  # −x + xyᵏ = 0 at (1, 1)
        ("matyas", {}, (1.0, 1.0), 0.04),
        ("matyas", {}, (1.0, -1.0), 1.0),
        ("three_hump_camel", {}, (1.0, 1.0), 2 - 1.05 + 1 / 6 + 1 + 1),
        ("six_hump_camel", {}, (1.0, 1.0), 4 - 2.1 + 1 / 3 + 1 + 0),
        ("six_hump_camel", {}, (0.0, 0.0), 0.0),
        ("goldstein_price", {}, (0.0, 0.0), 20.0 * 30.0),  # (1 + 19)(30 + 0)
        ("goldstein_price", {}, (1.0, 1.0), 28.0 * 67.0),  # (1 + 9·3)(30 + 1·37)
        ("goldstein_price", {}, (0.0, -1.0), 3.0),
        ("styblinski_tang", {"dim": 3}, (1.0, 1.0, 1.0), 3 * 0.5 * (1 - 16 + 5)),
        ("styblinski_tang", {"dim": 2}, (0.0, 0.0), 0.0),
        ("levy", {"dim": 1}, (-3.0,), 1.0),  # w = 0: sin²0 + 1·(1 + sin²0)
        ("levy", {"dim": 2}, (-3.0, -3.0), 2.0 + 10.0 * math.sin(1.0) ** 2),
        ("levy", {"dim": 3}, (1.0, 1.0, 1.0), 0.0),
        ("griewank", {"dim": 2}, (2 * math.pi, 0.0), math.pi**2 / 1000),  # cos 2π = 1
        ("griewank", {"dim": 2}, (math.pi, 0.0), math.pi**2 / 4000 + 2.0),  # cos π = −1
        ("griewank", {"dim": 2}, (0.0, math.pi * math.sqrt(2)), math.pi**2 / 2000 + 2.0),
        ("ill_conditioned", {}, (1.0, 1.0), 0.1 + 2.0),  # d2l: 0.1x₁² + 2x₂²
        ("ill_conditioned", {"lambdas": [1.0, 2.0, 3.0]}, (1.0, 1.0, 1.0), 3.0),
        ("ill_conditioned", {"condition": 100.0}, (10.0, 1.0), 0.5 * (0.04 * 100 + 4)),
    ],
)
def test_values_at_hand_computed_points(name, params, point, expected):
    f = functions.get(name, **params)
    np.testing.assert_allclose(f(np.array(point)), expected, rtol=1e-13, atol=1e-14)


def test_ill_conditioned_reproduces_d2l_gd_stability():
    """d2l (momentum.md): on 0.1x₁² + 2x₂², GD with η = 0.4 converges, with η = 0.6 diverges."""
    f = functions.get("ill_conditioned")
    assert f.params == {"lambdas": [0.2, 4.0]}
    x0 = np.array([-5.0, -2.0])
    good = sampy.run(SGD(lr=0.4), f, x0, 200)
    assert not good.diverged.any()
    assert np.abs(good.xs[-1]).max() < 1e-6
    bad = sampy.run(SGD(lr=0.6), f, x0, 200)
    assert abs(bad.xs[-1][1]) > 1e3 * abs(x0[1]) or bad.diverged.any()
    # condition = κ keeps λmax = 4, so the stability limit 2/λmax = 0.5 does not move.
    g = functions.get("ill_conditioned", condition=1000.0)
    np.testing.assert_allclose(np.linalg.eigvalsh(g.hessian(np.zeros(2))), [0.004, 4.0])
    assert "1000" in g.description


# ---------------------------------------------------------------------------------------------
# Minimisers with no closed form: independent checks


def _grad_six_hump(x, y):
    return 8 * x - 8.4 * x**3 + 2 * x**5 + y, x - 8 * y + 16 * y**3


def test_six_hump_camel_two_mirror_global_minima():
    f = functions.get("six_hump_camel")
    assert f.minima.shape == (2, 2)
    np.testing.assert_array_equal(f.minima[0], -f.minima[1])
    # The table's rounded minimiser and value.
    # (VLSE truncates: 0.0898420… and 0.7126564… are printed as 0.0898 and 0.7126.)
    np.testing.assert_allclose(np.abs(f.minima[0]), [0.0898, 0.7126], atol=1e-4)
    assert round(f.fmin, 4) == -1.0316
    # The gradient typed independently vanishes to rounding, and is far from it one ulp-ish
    # million away (so the digits are not merely "close").
    x, y = f.minima[0]
    assert max(abs(g) for g in _grad_six_hump(x, y)) < 1e-14
    assert max(abs(g) for g in _grad_six_hump(x + 1e-10, y)) > 1e-10
    # No grid point on a fine grid around the minimiser is lower.
    s = np.linspace(-1e-3, 1e-3, 41)
    grid = f.minima[0] + np.stack(np.meshgrid(s, s, indexing="ij"), -1)
    assert f(grid).min() >= f.fmin - 1e-15


def _newton(f, x, steps=50):
    grad, hess = autograd.grad(f.fn), autograd.hessian(f.fn)
    for _ in range(steps):
        x = x - np.linalg.solve(hess(x), grad(x))
    return x


def test_three_hump_camel_local_minima_are_higher_and_sharper_and_not_listed():
    f = functions.get("three_hump_camel")
    np.testing.assert_array_equal(f.minima, [[0.0, 0.0]])
    for sign in (1.0, -1.0):
        local = _newton(f, np.array([1.75, -0.87]) * sign)
        np.testing.assert_allclose(local, sign * np.array([1.7476, -0.8738]), atol=5e-5)
        assert round(float(f(local)), 4) == 0.2986
        eigs = np.linalg.eigvalsh(f.hessian(local))
        _assert_table(eigs, ("1.90", "12.25"))
        assert eigs.min() > 0
        assert f(local) > f.fmin
        assert eigs.max() > np.linalg.eigvalsh(f.hessian(f.minima[0])).max()


def _cubic_roots_trig():
    """Roots of x³ − 8x + 5/4 = 0 (4x³ − 32x + 5 = 0) by the trigonometric formula."""
    p, q = -8.0, 1.25
    r = 2 * math.sqrt(-p / 3)
    phi = math.acos(3 * q / (2 * p) * math.sqrt(-3 / p)) / 3
    return sorted(r * math.cos(phi - 2 * math.pi * k / 3) for k in range(3))


@pytest.mark.parametrize("dim", [1, 2, 5])
def test_styblinski_tang_minimiser_is_the_cubic_root(dim):
    f = functions.get("styblinski_tang", dim=dim)
    low, _middle, high = _cubic_roots_trig()
    np.testing.assert_allclose(f.minima, np.full((1, dim), low), rtol=4e-16)
    assert round(low, 6) == -2.903534
    assert round(high, 4) == 2.7468  # the other well
    assert round(0.5 * (high**4 - 16 * high**2 + 5 * high), 2) == -25.03
    one = 0.5 * (low**4 - 16 * low**2 + 5 * low)
    assert round(one, 7) == -39.1661657
    np.testing.assert_allclose(f.fmin, dim * one, rtol=1e-15)
    # Newton in double precision stays on the stored digits.
    x = f.minima[0, 0]
    assert x - (2 * x**3 - 16 * x + 2.5) / (6 * x**2 - 16) == x
    # The global minimum is the low root in every coordinate: 2ᵈ corners of the two wells.
    for corner in np.ndindex(*(2,) * dim):
        point = np.where(np.array(corner) == 0, low, high)
        assert f(point) >= f.fmin - 1e-12


def test_goldstein_price_dynamic_range():
    f = functions.get("goldstein_price")
    s = np.linspace(-2, 2, 201)
    values = f(np.stack(np.meshgrid(s, s, indexing="ij"), -1))
    assert values.min() == 3.0
    assert values.max() > 1e6  # six orders of magnitude on the plotting box
    # The gradient is relative-accurate even where it is ~10⁷.
    x = np.array([[-2.0, 2.0], [2.0, -2.0], [-1.9, 1.7], [0.0, -0.999]])
    hand, auto = f.grad(x), f.autograd_grad(x)
    err = np.linalg.norm(hand - auto, axis=-1) / np.linalg.norm(auto, axis=-1)
    assert err.max() < 1e-12


# ---------------------------------------------------------------------------------------------
# sharp_flat_wells


def _wells_slope(u, d_s, d_f, w_s, w_f):
    """d/du of f(u, 0) = −d_s exp(−(u+1)²/w_s²) − d_f exp(−(u−1.5)²/w_f²), typed here."""
    return 2 * d_s * (u + 1) / w_s**2 * math.exp(-((u + 1) ** 2) / w_s**2) + 2 * d_f * (
        u - 1.5
    ) / w_f**2 * math.exp(-((u - 1.5) ** 2) / w_f**2)


def _bisect(fn, lo, hi):
    assert fn(lo) < 0 < fn(hi)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        lo, hi = (mid, hi) if fn(mid) < 0 else (lo, mid)
    return 0.5 * (lo + hi)


def test_sharp_flat_wells_default_minima():
    params = (1.0, 1.0, 0.1, 1.0)
    points, labels, values = sharp_flat_wells_minima()
    assert labels == ("sharp", "flat")
    u_sharp = _bisect(lambda u: _wells_slope(u, *params), -1.0, -0.9)
    np.testing.assert_allclose(points[0], [u_sharp, 0.0], rtol=0, atol=1e-15)
    np.testing.assert_allclose(points[1], [1.5, 0.0], rtol=0, atol=1e-15)
    # The wide well still reaches the narrow one (exp(−2.5²) = 0.00193), not the other way.
    typed = -math.exp(-((u_sharp + 1) ** 2) / 0.01) - math.exp(-((u_sharp - 1.5) ** 2))
    np.testing.assert_allclose(values, [typed, -1.0], rtol=1e-15)
    np.testing.assert_allclose(values[0], -1 - math.exp(-6.25), rtol=1e-6)
    assert -1.0 < u_sharp < -1.0 + 1e-4  # pulled slightly towards the flat well
    f = functions.get("sharp_flat_wells")
    # Only the global (the sharp, deeper) minimum is in ``minima``.
    np.testing.assert_array_equal(f.minima, points[:1])
    assert f.minima_labels == ("sharp",)
    assert f.fmin == values[0]
    assert f.params == {
        "depth_sharp": 1.0,
        "depth_flat": 1.0,
        "width_sharp": 0.1,
        "width_flat": 1.0,
    }
    # Curvatures: ≈ 2d/w² in every direction, 200 and 2.
    sharp = np.linalg.eigvalsh(f.hessian(points[0]))
    flat = np.linalg.eigvalsh(f.hessian(points[1]))
    np.testing.assert_allclose(sharp, [200.0, 200.0], rtol=2e-3)
    np.testing.assert_allclose(flat, [2.0, 2.0], rtol=1e-12)


def test_sharp_flat_wells_equal_depth_lists_both_minima_symmetrically():
    # Equal depths and widths: mirror symmetric about u = 0.25, two minima of equal value.
    f = functions.get("sharp_flat_wells", width_sharp=1.0, width_flat=1.0)
    assert f.minima_labels == ("sharp", "flat")
    np.testing.assert_allclose(f.minima[0, 0] + f.minima[1, 0], 0.5, rtol=0, atol=1e-15)
    u = _bisect(lambda u: _wells_slope(u, 1.0, 1.0, 1.0, 1.0), -1.0, -0.5)
    np.testing.assert_allclose(f.minima[0], [u, 0.0], rtol=0, atol=1e-15)


@pytest.mark.parametrize(
    ("params", "labels"),
    [
        ({"depth_sharp": 0.001, "width_sharp": 0.5}, ("flat",)),  # the narrow well is swamped
        ({"width_sharp": 2.0, "width_flat": 2.0}, ("sharp",)),  # the wells merge at u = 0.25
        ({"depth_flat": 2.0}, ("sharp", "flat")),
        ({"depth_sharp": 3.0, "depth_flat": 0.5, "width_sharp": 0.6, "width_flat": 1.7}, None),
        ({"width_sharp": 0.01, "width_flat": 0.04}, ("sharp", "flat")),  # no overlap at all
    ],
)
def test_sharp_flat_wells_minima_for_other_parameters(params, labels):
    full = {"depth_sharp": 1.0, "depth_flat": 1.0, "width_sharp": 0.1, "width_flat": 1.0}
    full.update(params)
    points, got_labels, values = sharp_flat_wells_minima(**full)
    if labels is not None:
        assert got_labels == labels
    # Each listed minimum: a root of the independently typed slope, with a sign change around.
    args = (full["depth_sharp"], full["depth_flat"], full["width_sharp"], full["width_flat"])
    for (u, v), value in zip(points, values, strict=True):
        assert v == 0.0
        step = 1e-7 * min(full["width_sharp"], full["width_flat"])
        assert _wells_slope(u - step, *args) < 0 < _wells_slope(u + step, *args)
        f = functions.get("sharp_flat_wells", **full)
        assert f(np.array([u, v])) == value
    # The global one is stored, and nothing on a dense scan of the axis is lower.
    f = functions.get("sharp_flat_wells", **full)
    scan = np.linspace(-3.0, 4.0, 200_001)
    axis = np.stack([scan, np.zeros_like(scan)], -1)
    assert f(axis).min() >= f.fmin - 1e-12
    np.testing.assert_allclose(f.fmin, values.min(), rtol=0, atol=0)


def test_sharp_flat_wells_merged_minimum_is_at_the_midpoint():
    f = functions.get("sharp_flat_wells", width_sharp=2.0, width_flat=2.0)
    np.testing.assert_allclose(f.minima, [[0.25, 0.0]], rtol=0, atol=1e-15)
    np.testing.assert_allclose(f.fmin, -2 * math.exp(-(1.25**2) / 4), rtol=1e-15)


# ---------------------------------------------------------------------------------------------
# The generic contract for non-default parameters


VARIANTS = [
    ("ill_conditioned", {"lambdas": [1.0, 10.0, 100.0]}),
    ("ill_conditioned", {"lambdas": [3.0]}),
    ("ill_conditioned", {"condition": 100.0}),
    ("styblinski_tang", {"dim": 1}),
    ("styblinski_tang", {"dim": 5}),
    ("levy", {"dim": 1}),
    ("levy", {"dim": 3}),
    ("levy", {"dim": 6}),
    ("griewank", {"dim": 1}),
    ("griewank", {"dim": 4}),
    ("sharp_flat_wells", {"depth_sharp": 2.0, "width_sharp": 0.2}),
    ("sharp_flat_wells", {"depth_flat": 2.0, "width_flat": 0.7}),
    ("sharp_flat_wells", {"width_sharp": 1.0, "width_flat": 1.0}),
    ("sharp_flat_wells", {"depth_sharp": 0.3, "width_sharp": 0.3, "width_flat": 1.5}),
    ("sharp_flat_wells", {"width_sharp": 2.0, "width_flat": 2.0}),
    ("sharp_flat_wells", {"depth_sharp": 0.001, "width_sharp": 0.5}),
]


def _ids(variants):
    return [f"{n}-{p}" for n, p in variants]


@pytest.mark.parametrize(("name", "params"), VARIANTS, ids=_ids(VARIANTS))
def test_generic_contract_for_non_default_parameters(name, params):
    f = functions.get(name, **params)
    lo = np.array([a for a, _ in f.domain])
    hi = np.array([b for _, b in f.domain])
    assert len(f.domain) == f.dim and np.all(lo < hi)
    assert f.minima.shape[1] == f.dim and f.minima.shape[0] >= 1
    assert np.all((f.minima >= lo) & (f.minima <= hi))
    if f.minima_labels:
        assert len(f.minima_labels) == len(f.minima)
    # Minima: value fmin, gradient zero, f grows around them.
    np.testing.assert_allclose(f(f.minima), f.fmin, rtol=0, atol=1e-12)
    for grad in (f.grad(f.minima), f.autograd_grad(f.minima)):
        assert np.max(np.abs(grad)) <= 1e-8
    rng = np.random.default_rng(1)
    directions = rng.normal(size=(64, f.dim))
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    for x_star in f.minima:
        for r in (1e-3, 1e-2):
            assert np.all(f(x_star + r * directions) > f.fmin - 1e-12)
    # Nothing below fmin on a grid over the domain (2-D) or at random points (any d).
    if f.dim == 2:
        (x_lo, x_hi), (y_lo, y_hi) = f.domain
        grid = np.stack(
            np.meshgrid(np.linspace(x_lo, x_hi, 601), np.linspace(y_lo, y_hi, 601), indexing="ij"),
            -1,
        )
        assert f(grid).min() >= f.fmin - 1e-12
    assert f(rng.uniform(lo, hi, (20_000, f.dim))).min() >= f.fmin - 1e-12
    # Hand gradient = autograd, batched.
    x = rng.uniform(lo, hi, (3, 4, f.dim))
    hand, auto = f.grad(x), f.autograd_grad(x)
    assert hand.shape == auto.shape == x.shape
    err = np.linalg.norm(hand - auto, axis=-1)
    assert np.all(err <= 1e-9 * np.linalg.norm(auto, axis=-1) + 1e-300)
    # Hessian = central differences of the hand gradient.
    h = 1e-5
    for point in x[0]:
        fd = np.stack(
            [(f.grad(point + h * e) - f.grad(point - h * e)) / (2 * h) for e in np.eye(f.dim)], 1
        )
        np.testing.assert_allclose(f.hessian(point), fd, rtol=0, atol=1e-5 * (1 + np.abs(fd).max()))


# ---------------------------------------------------------------------------------------------
# Bad parameters raise ValueError naming them


@pytest.mark.parametrize(
    ("name", "params", "param"),
    [
        ("ill_conditioned", {"lambdas": [0.0, 1.0]}, "lambdas"),
        ("ill_conditioned", {"lambdas": [-1.0]}, "lambdas"),
        ("ill_conditioned", {"lambdas": [1.0, float("nan")]}, "lambdas"),
        ("ill_conditioned", {"lambdas": [1.0, float("inf")]}, "lambdas"),
        ("ill_conditioned", {"lambdas": [[1.0, 2.0]]}, "lambdas"),
        ("ill_conditioned", {"lambdas": []}, "lambdas"),
        ("ill_conditioned", {"lambdas": "ab"}, "lambdas"),
        ("ill_conditioned", {"lambdas": [1.0, "x"]}, "lambdas"),
        ("ill_conditioned", {"condition": 0.5}, "condition"),
        ("ill_conditioned", {"condition": float("inf")}, "condition"),
        ("ill_conditioned", {"condition": "10"}, "condition"),
        ("ill_conditioned", {"condition": 10.0, "lambdas": [1.0, 2.0]}, "condition"),
        ("styblinski_tang", {"dim": 0}, "dim"),
        ("styblinski_tang", {"dim": 2.5}, "dim"),
        ("levy", {"dim": 0}, "dim"),
        ("levy", {"dim": True}, "dim"),
        ("griewank", {"dim": -1}, "dim"),
        ("griewank", {"dim": "3"}, "dim"),
        ("sharp_flat_wells", {"depth_sharp": 0.0}, "depth_sharp"),
        ("sharp_flat_wells", {"depth_sharp": -1.0}, "depth_sharp"),
        ("sharp_flat_wells", {"depth_flat": float("nan")}, "depth_flat"),
        ("sharp_flat_wells", {"depth_flat": float("inf")}, "depth_flat"),
        ("sharp_flat_wells", {"width_sharp": 0.0}, "width_sharp"),
        ("sharp_flat_wells", {"width_sharp": "0.1"}, "width_sharp"),
        ("sharp_flat_wells", {"width_flat": -2.0}, "width_flat"),
    ],
)
def test_bad_parameters_raise_naming_them(name, params, param):
    with pytest.raises(ValueError, match=rf"\b{re.escape(param)}\b"):
        functions.get(name, **params)
    if name == "sharp_flat_wells":
        with pytest.raises(ValueError, match=rf"\b{re.escape(param)}\b"):
            sharp_flat_wells_minima(**params)
