"""The statements of the chapter "Adaptive and geometric variants" (book/adaptive.md).

Each test's docstring names the lemma or proposition it checks (the page's reproducibility note
names this file; no statement names a test). ξ, ASAM's offset, is the keyword ``eta``; κ,
Fisher SAM's scale, the keyword ``fisher_eta``.
"""

from __future__ import annotations

import math

import autograd.numpy as anp
import numpy as np
import pytest

import sampy
from sampy import sharpness
from sampy.optim import (
    SAM,
    SGD,
    FisherSAM,
    Partition,
    centralize,
    dual_direction,
    lp_norm,
    norm_ball_perturbation,
    with_knobs,
)

# -- the network-like toy of the chapter: y ≈ w2ᵀ relu(W1 x), W1 ∈ R^{2×3}, w2 ∈ R^2 ----------

RNG = np.random.default_rng(0)
X = RNG.standard_normal((12, 3))
Y = np.maximum(X @ RNG.standard_normal((2, 3)).T, 0) @ np.array([1.0, -0.7])
Y = Y + 0.1 * RNG.standard_normal(12)
W0 = 0.7 * np.random.default_rng(1).standard_normal(8)
RHO_SAM, RHO_ASAM = 0.05, 0.1
SHAPES = ((2, 3), (2,))


def net_loss(w):
    W1 = anp.reshape(w[..., :6], (*w.shape[:-1], 2, 3))
    hidden = anp.maximum(anp.einsum("...ij,nj->...ni", W1, X), 0.0)
    out = anp.einsum("...ni,...i->...n", hidden, w[..., 6:8])
    return anp.mean((out - Y) ** 2, axis=-1)


NET = sampy.functions.from_callable(net_loss, 8, name="relu net")
ALPHAS = np.geomspace(0.2, 5.0, 9)


def rescaling(a):
    """The diagonal of A: the first layer times a, the second divided by a."""
    return np.r_[np.full(6, a), np.full(2, 1.0 / a)]


AW = np.stack([rescaling(a) * W0 for a in ALPHAS])


def asam_geometry(grad, w, lr, rho, steps):
    """ASAM's ascent with the descent taken in the same geometry: w ← w − lr T² g̃."""
    path = [w]
    for _ in range(steps):
        e = norm_ball_perturbation(w, grad(w), rho, adaptive=True)
        w = w - lr * np.abs(w) ** 2 * grad(w + e)
        path.append(w)
    return np.stack(path)


# -- ASAM ------------------------------------------------------------------------------------


def test_from_scratch_asam_perturbation_equals_sampy():
    rng = np.random.default_rng(3)
    w, g = rng.standard_normal((2, 50, 8))
    for eta in (0.0, 0.01):
        t = np.abs(w) + eta
        u = t * g
        e = 0.5 * t * u / (np.linalg.norm(u, axis=-1, keepdims=True) + 1e-12)
        opt = SAM(SGD(lr=0.1), rho=0.5, adaptive=True, eta=eta)
        np.testing.assert_allclose(opt.perturbation(w, g), e, rtol=1e-14, atol=1e-16)


def test_layer_rescaling_asam_invariant_sam_not():
    """prop-ad-layer: the loss, ASAM's ε and sharpness are carried along by A; SAM's are not."""
    assert np.ptp(NET(AW)) < 1e-12
    g = NET.grad(AW)
    np.testing.assert_allclose(g, NET.grad(W0) / np.stack([rescaling(a) for a in ALPHAS]))
    e_asam = norm_ball_perturbation(AW, g, RHO_ASAM, adaptive=True)
    carried = np.stack([rescaling(a) for a in ALPHAS]) * e_asam[ALPHAS == 1.0]
    np.testing.assert_allclose(e_asam, carried, rtol=1e-10, atol=1e-14)
    rise_asam = NET(AW + e_asam) - NET(AW)
    assert np.ptp(rise_asam) < 1e-10
    rise_sam = NET(AW + norm_ball_perturbation(AW, g, RHO_SAM)) - NET(AW)
    assert np.ptp(rise_sam) > 0.04 and rise_sam.max() > 4 * rise_sam.min()
    # the exact (not first-order) sharpnesses, computed as in the page
    exact_sam = sharpness.sharpness(NET, AW, RHO_SAM)
    assert np.ptp(exact_sam) > 0.04
    t = np.abs(AW)
    exact_asam = sharpness.sharpness(lambda d: net_loss(AW + t * d), np.zeros_like(AW), RHO_ASAM)
    assert np.ptp(exact_asam) < 1e-10 and exact_asam.min() >= rise_asam.min() - 1e-12


def test_asam_trajectory_invariant_only_with_a_covariant_descent():
    """prop-ad-descent: ASAM + SGD changes with a; ASAM's ascent with the descent w − lr T²g̃
    does not, and on the page's settings that invariant run trains (the loss falls by 5×)."""
    losses = {}
    for name, opt in {
        "SAM": SAM(SGD(lr=0.05), rho=RHO_SAM),
        "ASAM": SAM(SGD(lr=0.05), rho=RHO_ASAM, adaptive=True),
    }.items():
        losses[name] = sampy.run(opt, NET, AW, 300).losses
        assert np.ptp(losses[name][-1]) > 0.05, name
    geometric = NET(asam_geometry(NET.grad, AW, 0.2, RHO_ASAM, 300))
    assert np.abs(geometric - geometric[:, :1]).max() < 1e-10
    assert geometric[-1, 0] < 0.2 * geometric[0, 0]
    for name in losses:
        assert losses[name][-1].min() < geometric[-1, 0] < losses[name][-1].max(), name


def test_eta_zero_weight_is_never_perturbed_and_eta_fixes_it():
    """lem-ad-eta (ξ = ``eta``)."""
    w = W0.copy()
    w[[2, 7]] = 0.0
    g = NET.grad(w)
    assert np.all(g[[2, 7]] != 0)
    e0 = norm_ball_perturbation(w, g, 0.5, adaptive=True, eta=0.0)
    assert np.all(e0[[2, 7]] == 0.0)
    np.testing.assert_allclose(np.linalg.norm(e0[w != 0] / np.abs(w[w != 0])), 0.5)
    for eta in (0.01, 0.1):
        e = norm_ball_perturbation(w, g, 0.5, adaptive=True, eta=eta)
        assert np.all(np.abs(e[[2, 7]]) > 0)
        t = np.abs(w) + eta
        np.testing.assert_allclose(e[[2, 7]], 0.5 * eta**2 * g[[2, 7]] / np.linalg.norm(t * g))
        np.testing.assert_allclose(np.linalg.norm(e / t), 0.5)
    # at w = 0 with η = 0 (and g ≠ 0): no perturbation at all, the ASAM step is the base step
    shifted = sampy.functions.from_callable(lambda v: anp.sum((v - 1.0) ** 2, axis=-1), 3)
    zero = np.zeros(3)
    assert np.all(shifted.grad(zero) != 0)
    gd = sampy.run(SGD(lr=0.1), shifted, zero, 1).final
    asam = SAM(SGD(lr=0.1), rho=0.5, adaptive=True)
    np.testing.assert_array_equal(sampy.run(asam, shifted, zero, 1).final, gd)
    eta_asam = SAM(SGD(lr=0.1), rho=0.5, adaptive=True, eta=0.01)
    assert not np.array_equal(sampy.run(eta_asam, shifted, zero, 1).final, gd)


def test_eta_breaks_the_invariance_by_a_little():
    g = NET.grad(AW)
    carry = np.stack([rescaling(a) for a in ALPHAS])
    errors = []
    for eta in (0.0, 0.001, 0.01, 0.1):
        e = norm_ball_perturbation(AW, g, RHO_ASAM, adaptive=True, eta=eta)
        rise = NET(AW + e) - NET(AW)
        errors.append(np.ptp(rise))
        if eta == 0.0:
            np.testing.assert_allclose(e, carry * e[ALPHAS == 1.0], rtol=1e-10, atol=1e-14)
    assert errors[0] < 1e-12 < errors[1] < errors[2] < errors[3]


# -- p-norms ---------------------------------------------------------------------------------


def test_pnorm_nesting_and_pinf_sign():
    """lem-ad-nesting: ρ‖g‖_∞ ≤ ρ‖g‖₂ ≤ ρ‖g‖₁; p = ∞ gives ρ sign(g), of length ρ√d."""
    rng = np.random.default_rng(5)
    g = rng.standard_normal((200, 6))
    rho = 0.3
    values = {p: np.sum(dual_direction(g, p, rho, 0.0) * g, -1) for p in (1, 2, math.inf)}
    assert np.all(values[1] <= values[2] + 1e-15) and np.all(values[2] <= values[math.inf])
    np.testing.assert_allclose(values[1], rho * np.abs(g).max(-1))
    np.testing.assert_allclose(values[math.inf], rho * np.abs(g).sum(-1))
    e_inf = SAM(SGD(lr=0.1), rho=rho, p=math.inf).perturbation(g, g)
    np.testing.assert_array_equal(e_inf, rho * np.sign(g))
    np.testing.assert_allclose(np.linalg.norm(e_inf, axis=-1), rho * math.sqrt(6))
    e_1 = dual_direction(g, 1, rho, 0.0)
    np.testing.assert_allclose(np.linalg.norm(e_1, axis=-1), rho)
    assert np.all(np.count_nonzero(e_1, axis=-1) == 1)
    # the balls are nested: the l1 solution lies in the l2 ball, the l2 one in the l-inf ball
    assert np.all(lp_norm(dual_direction(g, 2, rho, 0.0), math.inf) <= rho + 1e-15)
    assert np.all(lp_norm(e_1, 2) <= rho + 1e-15)


# -- gradient centralization -----------------------------------------------------------------


def test_gc_is_an_orthogonal_projection():
    """The GC operator: zero-mean rows, idempotent, symmetric, identity on 1-D tensors."""
    part = Partition(SHAPES)
    rng = np.random.default_rng(7)
    g, h = rng.standard_normal((2, 8))
    c = centralize(g, part)
    np.testing.assert_allclose(c[:6].reshape(2, 3).mean(1), 0, atol=1e-15)
    np.testing.assert_array_equal(c[6:], g[6:])
    np.testing.assert_allclose(centralize(c, part), c, atol=1e-15)
    np.testing.assert_allclose(centralize(g, part) @ h, g @ centralize(h, part))
    assert np.linalg.norm(c) <= np.linalg.norm(g)
    assert centralize(g) is g


def gc_steps(w, lr, rho):
    """One step of each of the three GC placements: with_knobs and the formulas."""
    part = Partition(SHAPES)
    gc = lambda v: centralize(v, part)  # noqa: E731
    g = NET.grad(w)
    knobs = {
        "kozistr": dict(gc_ascent="kozistr", gc_descent=False),
        "gcsam": dict(gc_ascent="gcsam", gc_descent=True),
        "descent": dict(gc_ascent="off", gc_descent=True),
    }
    eps = {
        "kozistr": rho * gc(g) / (np.linalg.norm(g) + 1e-12),
        "gcsam": rho * gc(g) / (np.linalg.norm(gc(g)) + 1e-12),
        "descent": rho * g / (np.linalg.norm(g) + 1e-12),
    }
    by_hand = {
        "kozistr": w - lr * NET.grad(w + eps["kozistr"]),
        "gcsam": w - lr * gc(NET.grad(w + eps["gcsam"])),
        "descent": w - lr * gc(NET.grad(w + eps["descent"])),
    }
    by_sampy = {
        name: sampy.run(
            with_knobs(SAM(SGD(lr=lr), rho=rho), partition=SHAPES, use_gc=True, **k), NET, w, 1
        ).final
        for name, k in knobs.items()
    }
    return eps, by_hand, by_sampy


def test_gc_three_placements_match_their_formulas_and_differ():
    """prop-ad-gc."""
    rho, lr = 0.05, 0.1
    eps, by_hand, by_sampy = gc_steps(W0, lr, rho)
    for name in eps:
        np.testing.assert_allclose(by_sampy[name], by_hand[name], rtol=1e-13, atol=1e-15)
    g = NET.grad(W0)
    c = centralize(g, Partition(SHAPES))
    ratio = np.linalg.norm(c) / np.linalg.norm(g)
    assert ratio < 1
    np.testing.assert_allclose(np.linalg.norm(eps["kozistr"]), rho * ratio)
    np.testing.assert_allclose(np.linalg.norm(eps["gcsam"]), rho)
    np.testing.assert_allclose(np.linalg.norm(eps["descent"]), rho)
    np.testing.assert_allclose(eps["kozistr"] / ratio, eps["gcsam"])  # parallel
    # items 1-2: ε₂ maximises εᵀg over the ρ-ball in the centralized subspace, ε₁ over the
    # ball of radius rρ; random feasible points of each ball never beat them
    part = Partition(SHAPES)
    z = centralize(np.random.default_rng(9).standard_normal((2000, 8)), part)
    z *= np.random.default_rng(10).uniform(size=(2000, 1)) / np.linalg.norm(z, axis=-1)[:, None]
    for e, radius in ((eps["gcsam"], rho), (eps["kozistr"], ratio * rho)):
        np.testing.assert_allclose(centralize(e, part), e, atol=1e-15)
        assert np.all((radius * z) @ g <= e @ g + 1e-15)
        # the value ρ‖Cg‖ of item 1, up to the 1e-12 guard in the denominators (‖Cg‖ ≈ 0.3)
        np.testing.assert_allclose(e @ g, radius * np.linalg.norm(c), rtol=1e-10)
    names = list(by_hand)
    for i in range(3):
        for j in range(i):
            assert np.linalg.norm(by_hand[names[i]] - by_hand[names[j]]) > 1e-5
    # the second-layer vector w2 is 1-D: GC leaves its gradient alone in every placement
    sam_step = sampy.run(SAM(SGD(lr=lr), rho=rho), NET, W0, 1).final
    np.testing.assert_allclose(by_hand["descent"][6:], sam_step[6:])


# -- Fisher SAM ------------------------------------------------------------------------------


def test_fisher_ellipsoid_solution_is_maximal():
    """lem-ad-fisher: on the ellipsoid boundary, value ρ√(gᵀF⁻¹g), no feasible point beats it."""
    rng = np.random.default_rng(11)
    rho = 0.2
    for eta in (0.0, 1.0, 30.0):
        g = rng.standard_normal((300, 4))
        f = 1.0 + eta * g**2
        e = FisherSAM(SGD(lr=0.1), rho=rho, fisher_eta=eta).ascent(g, g, None)[0]
        np.testing.assert_allclose(np.sum(f * e * e, -1), rho**2, rtol=1e-10)
        value = np.sum(e * g, -1)
        np.testing.assert_allclose(value, rho * np.sqrt(np.sum(g * g / f, -1)), rtol=1e-10)
        z = rng.standard_normal((100, 300, 4))
        z *= rho * rng.uniform(size=(100, 300, 1)) / np.sqrt(np.sum(f * z * z, -1, keepdims=True))
        assert np.all(np.sum(z * g, -1) <= value + 1e-12)


def test_fisher_sam_reduces_to_sam_with_identity_fisher():
    for f, x0, lr, rho in [("rosenbrock", [-1.2, 1.5], 1e-3, 0.05), (NET, W0, 0.05, 0.05)]:
        fisher = sampy.run(FisherSAM(SGD(lr=lr), rho=rho, fisher_eta=0.0), f, x0, 300)
        plain = sampy.run(SAM(SGD(lr=lr), rho=rho), f, x0, 300)
        np.testing.assert_allclose(fisher.xs, plain.xs, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("eta", [1.0, 100.0])
def test_fisher_perturbation_shrinks_where_gradients_are_large(eta):
    """ε_i ∝ g_i/(1 + ηg_i²): the Euclidean length ‖ε‖ < ρ, and for large η the smallest
    gradient coordinate gets the largest share."""
    g = np.array([3.0, 0.2])
    e = FisherSAM(SGD(lr=0.1), rho=0.1, fisher_eta=eta).ascent(g, g, None)[0]
    assert np.linalg.norm(e) < 0.1
    if eta == 100.0:
        assert abs(e[1]) > abs(e[0])


def test_other_adaptive_flavour_is_not_invariant():
    """prop-ad-layer item 3: ρ|w|⊙g/‖g‖ (another reading of "adaptive") changes with a."""
    g = NET.grad(AW)
    e = RHO_ASAM * np.abs(AW) * g / np.linalg.norm(g, axis=-1, keepdims=True)
    rise = NET(AW + e) - NET(AW)
    assert np.ptp(rise) > 0.002
    carry = np.stack([rescaling(a) for a in ALPHAS])
    assert not np.allclose(e, carry * e[ALPHAS == 1.0])


def test_the_page_names_no_test_and_its_note_names_this_file():
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "book" / "adaptive.md").read_text()
    assert not re.findall(r"`test_[a-z0-9_]+`", text)
    assert "Checked by" not in text and "tests/test_adaptive_chapter.py" in text
