"""The statements of the chapter "Fixing SAM's direction" (book/direction.md).

GSAM: the correction is orthogonal to g̃ (⟨d, g̃⟩ = ‖g̃‖²), it lowers the first-order surrogate
gap by α‖g_⊥‖² more than SAM, d = g̃ when g ∥ g̃, α = 0 is SAM and ρ = 0 the base; the page's
from-scratch GSAM equals sampy's. WSAM: the coupled direction is ω g̃ + (1 − ω) g, γ = 0 is
the base on g, γ = 0.5 is SAM, coupled = decoupled for plain SGD but not with momentum; its
hyperparameters are not LookSAM's (the appendix "Implementations compared" shows where they
were mixed up). F-SAM: σ = 0 is SAM, the three momentum orders agree on steps 1-2 and differ
from step 3, the mean of d is (1 − σ) ḡ. VaSSO: θ = 1 is SAM; the EMA's noise variance is
θ(1 − (1 − θ)^{2t})/(2 − θ). RWP on a quadratic: d = g + (1 − c)ρHz, the average sharpness is
½ρ² tr H, the stationary spread is η(1 − c)²ρ²λ/(2 − ηλ).
"""

from __future__ import annotations

import numpy as np
import pytest

import sampy
from sampy import sharpness
from sampy.direction import (
    ema_noise_factor,
    first_order_gap,
    friendly_directions,
    gsam_direction,
    gsam_direction_min_f,
    gsam_split,
)
from sampy.optim import GSAM, SAM, SGD, WSAM, FriendlySAM, RandomSAM, VaSSO
from sampy.optim.rules import FriendlyAscent, GSAMDescent, VarianceSuppressedAscent

RNG = np.random.default_rng(0)
F = sampy.functions.get("sharp_flat")
STARTS = np.random.default_rng(1).uniform((-1, -1), (3, 1), size=(8, 2))


def gsam_from_scratch(grad, w0, lr, rho, alpha, steps):
    """The page's from-scratch GSAM (SGD base), kept identical to book/direction.md."""
    w = np.array(w0, dtype=float)
    path = [w]
    for _ in range(steps):
        g = grad(w)
        g_norm = np.sqrt(np.vecdot(g, g))[..., None]
        g_adv = grad(w + g * (rho / (g_norm + 1e-12)))
        h_norm = np.sqrt(np.vecdot(g_adv, g_adv))[..., None]
        cos = np.vecdot(g, g_adv)[..., None] / (h_norm * g_norm + 1e-12)
        g_perp = g - cos * g_norm * g_adv / (h_norm + 1e-12)
        w = w - lr * (g_adv - alpha * g_perp)
        path.append(w)
    return np.stack(path)


# ---------------------------------------------------------------- GSAM


def test_gsam_split_is_an_orthogonal_decomposition():
    g, h = RNG.normal(size=(50, 5)), RNG.normal(size=(50, 5))
    par, perp = gsam_split(g, h)
    np.testing.assert_allclose(par + perp, g)
    np.testing.assert_allclose(np.sum(perp * h, -1), 0, atol=1e-12)
    np.testing.assert_allclose(
        np.abs(np.sum(par * h, -1)),
        np.linalg.norm(par, axis=-1) * np.linalg.norm(h, axis=-1),
        rtol=1e-12,
    )


@pytest.mark.parametrize("alpha", [0.0, 0.4, 1.0, 3.0])
def test_gsam_correction_is_orthogonal_to_the_perturbed_gradient(alpha):
    g, h = RNG.normal(size=(50, 4)), RNG.normal(size=(50, 4))
    d, _ = GSAMDescent(alpha, 1e-12)(g, h, None)
    np.testing.assert_allclose(np.sum(d * h, -1), np.sum(h * h, -1), rtol=1e-10)
    np.testing.assert_allclose(d, gsam_direction(g, h, alpha), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("alpha", [0.0, 0.4, 2.0])
def test_gsam_lowers_the_first_order_gap_by_alpha_perp_squared(alpha):
    """⟨d, g̃ − g⟩ = ⟨g̃, g̃ − g⟩ + α‖g_⊥‖²: w − ηd lowers f_p − f by ηα‖g_⊥‖² more than SAM."""
    g, h = RNG.normal(size=(50, 3)), RNG.normal(size=(50, 3))
    d = gsam_direction(g, h, alpha)
    perp = gsam_split(g, h)[1]
    lhs = np.sum(d * (h - g), -1)
    rhs = np.sum(h * (h - g), -1) + alpha * np.sum(perp * perp, -1)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-10)
    # and ⟨d, g⟩ = ⟨g̃, g⟩ − α‖g_⊥‖² (f itself goes up by that much more)
    np.testing.assert_allclose(
        np.sum(d * g, -1), np.sum(h * g, -1) - alpha * np.sum(perp * perp, -1), rtol=1e-10
    )


def test_gsam_direction_is_the_perturbed_gradient_when_parallel():
    g = RNG.normal(size=(10, 3))
    for h in (2.5 * g, -0.5 * g):
        np.testing.assert_allclose(gsam_direction(g, h, 0.7), h, atol=1e-12)
    q = sampy.functions.get("quadratic", A=[[3.0]])
    a = sampy.run(GSAM(SGD(lr=0.1), rho=0.05, alpha=0.9), q, [[0.7], [-0.3]], 30)
    b = sampy.run(SAM(SGD(lr=0.1), rho=0.05), q, [[0.7], [-0.3]], 30)
    np.testing.assert_allclose(a.xs, b.xs, atol=1e-12)


def test_gsam_min_f_mode_keeps_the_descent_on_l():
    """minimize_fp=False: ⟨d', g⟩ = ‖g‖² and ⟨d', g̃ − g⟩ = ⟨g, g̃ − g⟩ + α‖g̃_⊥‖²."""
    g, h = RNG.normal(size=(50, 3)), RNG.normal(size=(50, 3))
    d = gsam_direction_min_f(g, h, 0.7)
    h_perp = gsam_split(h, g)[1]
    np.testing.assert_allclose(np.sum(d * g, -1), np.sum(g * g, -1), rtol=1e-10)
    np.testing.assert_allclose(
        np.sum(d * (h - g), -1),
        np.sum(g * (h - g), -1) + 0.7 * np.sum(h_perp * h_perp, -1),
        rtol=1e-9,
        atol=1e-12,
    )
    np.testing.assert_allclose(gsam_direction_min_f(g, 2 * g, 0.7), g)


def test_gsam_reductions_alpha0_is_sam_and_rho0_is_the_base():
    a = sampy.run(GSAM(SGD(lr=0.008), rho=0.1, alpha=0.0), F, STARTS, 200)
    b = sampy.run(SAM(SGD(lr=0.008), rho=0.1), F, STARTS, 200)
    np.testing.assert_array_equal(a.xs, b.xs)
    c = sampy.run(GSAM(SGD(lr=0.008), rho=0.0, alpha=0.5), F, STARTS, 200)
    np.testing.assert_allclose(c.xs, sampy.run(SGD(lr=0.008), F, STARTS, 200).xs, atol=1e-12)


def test_gsam_from_scratch_equals_sampy():
    for alpha in (0.4, 1.5):
        lib = sampy.run(GSAM(SGD(lr=0.008), rho=0.1, alpha=alpha), F, STARTS, 300).xs
        np.testing.assert_allclose(
            gsam_from_scratch(F.grad, STARTS, 0.008, 0.1, alpha, 300), lib, rtol=0, atol=1e-12
        )


def test_first_order_gap_is_below_the_true_gap_and_nonnegative_near_a_minimum():
    x = np.array([[0.05, 0.01], [1.9, 0.02]])
    gap = first_order_gap(F, x, 0.05)
    true = sharpness.sharpness(F, x, 0.05, steps=60, random_starts=4)
    assert np.all(gap > 0) and np.all(gap <= true + 1e-9)


# ---------------------------------------------------------------- WSAM


def test_wsam_gamma0_is_the_base_on_g_and_gamma_half_is_sam():
    base = sampy.run(SGD(lr=0.008), F, STARTS, 200).xs
    for decouple in (False, True):
        w0 = sampy.run(WSAM(SGD(lr=0.008), rho=0.1, gamma=0.0, decouple=decouple), F, STARTS, 200)
        np.testing.assert_allclose(w0.xs, base, atol=1e-12)
        # 30 steps: the decoupled form rounds differently, and the toy amplifies rounding
        w5 = sampy.run(WSAM(SGD(lr=0.008), rho=0.1, gamma=0.5, decouple=decouple), F, STARTS, 30)
        np.testing.assert_allclose(
            w5.xs, sampy.run(SAM(SGD(lr=0.008), rho=0.1), F, STARTS, 30).xs, atol=1e-10
        )


@pytest.mark.parametrize("gamma", [0.2, 0.6, 0.9])
def test_wsam_coupled_is_decoupled_for_sgd_but_not_with_momentum(gamma):
    a = sampy.run(WSAM(SGD(lr=0.004), rho=0.1, gamma=gamma, decouple=False), F, STARTS, 100)
    b = sampy.run(WSAM(SGD(lr=0.004), rho=0.1, gamma=gamma, decouple=True), F, STARTS, 100)
    np.testing.assert_allclose(a.xs, b.xs, atol=1e-12)
    m = dict(lr=0.004, momentum=0.9)
    c = sampy.run(WSAM(SGD(**m), rho=0.1, gamma=gamma, decouple=False), F, STARTS, 100)
    e = sampy.run(WSAM(SGD(**m), rho=0.1, gamma=gamma, decouple=True), F, STARTS, 100)
    assert np.max(np.abs(c.xs - e.xs)) > 1e-6


def test_wsam_coupled_step_is_sgd_on_the_weighted_direction():
    """One coupled WSAM step moves by −η(α g̃ + (1 − α) g), α = γ/(1 − γ)."""
    x, lr, rho, gamma = STARTS, 0.01, 0.1, 0.8
    alpha = gamma / (1 - gamma)
    g = F.grad(x)
    h = F.grad(x + rho * g / np.linalg.norm(g, axis=-1, keepdims=True))
    opt = WSAM(SGD(lr=lr), rho=rho, gamma=gamma, decouple=False)
    stepped, _ = opt.step(x, opt.init(x), sampy.optim.Oracle(F))
    np.testing.assert_allclose(stepped, x - lr * (alpha * h + (1 - alpha) * g), atol=1e-12)


def test_wsam_hyperparameters_are_not_looksams():
    wsam, looksam = sampy.variant("WSAM").defaults(), sampy.variant("LookSAM").defaults()
    assert {"gamma", "decouple", "max_norm"} <= set(wsam) and not {"k", "alpha"} & set(wsam)
    assert {"k", "alpha"} <= set(looksam)
    assert wsam["rho"] == 0.05 and wsam["gamma"] == 0.9 and wsam["decouple"] is True
    with pytest.raises(TypeError):
        WSAM(SGD(lr=0.1), k=10)


# ---------------------------------------------------------------- F-SAM and VaSSO


@pytest.mark.parametrize("order", ["official_code", "paper"])
def test_friendly_sigma0_is_sam(order):
    a = sampy.run(
        FriendlySAM(SGD(lr=0.008), rho=0.1, sigma=0.0, momentum_order=order), F, STARTS, 200
    )
    np.testing.assert_allclose(
        a.xs, sampy.run(SAM(SGD(lr=0.008), rho=0.1), F, STARTS, 200).xs, atol=1e-12
    )


@pytest.mark.parametrize("order", ["official_code", "paper"])
def test_friendly_directions_match_the_ascent_rule(order):
    grads = RNG.normal(size=(6, 4, 3))
    d = friendly_directions(grads, 0.7, 0.6, order)
    ascent, m = FriendlyAscent(1.0, 0.7, 0.6, order, 0.0), None
    for t, g in enumerate(grads):
        e, m = ascent(None, g, m)
        np.testing.assert_allclose(e, d[t] / np.linalg.norm(d[t], axis=-1, keepdims=True))


def test_modified_ema_order_differs_from_step_three():
    grads = RNG.normal(size=(5, 3))
    off = friendly_directions(grads, 1.0, 0.9, "official_code")
    koz = friendly_directions(grads, 1.0, 0.9, "modified_ema")
    np.testing.assert_allclose(off[:2], koz[:2])
    assert np.all(np.abs(off[2:] - koz[2:]).max(axis=-1) > 1e-6)
    # λ = 0, official order: d_t = g_t − σ g_{t−1}
    np.testing.assert_allclose(
        friendly_directions(grads, 0.5, 0.0)[1:], grads[1:] - 0.5 * grads[:-1]
    )


def test_friendly_mean_direction_is_one_minus_sigma_times_the_full_gradient():
    """g_t = ḡ + ξ_t: E d_t = (1 − σ) ḡ for t ≥ 2 (official order); σ = 1 leaves only noise."""
    gbar = np.array([1.0, -2.0])
    noise = np.random.default_rng(3).normal(size=(20, 40_000, 2))
    for sigma in (0.5, 1.0):
        d = friendly_directions(gbar + noise, sigma, 0.9)
        np.testing.assert_allclose(d[5:].mean(axis=(0, 1)), (1 - sigma) * gbar, atol=0.02)


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0])
def test_the_modified_ema_keeps_a_full_gradient_component(sigma):
    """The §12.3 EMA of d = g − σm tends to ḡ/(1 + σ), so E d_t → ḡ/(1 + σ)."""
    gbar = np.array([1.0, -2.0])
    grads = gbar + np.random.default_rng(6).normal(size=(80, 20_000, 2))
    d = friendly_directions(grads, sigma, 0.9, "modified_ema")
    np.testing.assert_allclose(d[-1].mean(axis=0), gbar / (1 + sigma), atol=0.03)
    paper = friendly_directions(grads, sigma, 0.9, "paper")
    np.testing.assert_allclose(paper[-1].mean(axis=0), (1 - sigma) * gbar, atol=0.04)


def test_vasso_theta1_is_sam():
    a = sampy.run(VaSSO(SGD(lr=0.008), rho=0.1, theta=1.0), F, STARTS, 200)
    np.testing.assert_allclose(
        a.xs, sampy.run(SAM(SGD(lr=0.008), rho=0.1), F, STARTS, 200).xs, atol=1e-12
    )


@pytest.mark.parametrize("theta", [0.1, 0.4, 1.0])
def test_vasso_ema_noise_variance(theta):
    xi = np.random.default_rng(4).normal(size=(30, 200_000))
    ascent, d = VarianceSuppressedAscent(1.0, theta, 0.0), np.zeros(200_000)
    for t in range(1, 31):
        d = (1 - theta) * d + theta * xi[t - 1]
        assert d.var() == pytest.approx(float(ema_noise_factor(theta, t)), rel=0.02)
    _, state = ascent(None, xi[0][:, None], np.zeros((200_000, 1)))
    np.testing.assert_allclose(state[:, 0], theta * xi[0])
    assert ema_noise_factor(theta, 10_000) == pytest.approx(theta / (2 - theta))


# ---------------------------------------------------------------- random weight perturbation

H_RWP = np.diag([4.0, 0.5, 1.5])
W_STAR = np.array([0.3, -1.0, 2.0])
QUAD = sampy.functions.get("quadratic", A=H_RWP, b=H_RWP @ W_STAR)  # ½(w − w*)ᵀH(w − w*) + const


@pytest.mark.parametrize("mix", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("kind", ["gaussian", "sphere"])
def test_rwp_step_on_a_quadratic_is_the_gradient_plus_curvature_noise(mix, kind):
    """prop-dir-rwp 1: with ε the step's perturbation, d = g + (1 − c) H ε (ε = ρz)."""
    opt = RandomSAM(SGD(lr=0.1), rho=0.2, kind=kind, mix=mix, seed=3)
    x = np.random.default_rng(5).normal(size=(50, 3))
    eps, _ = opt.ascent(x, QUAD.grad(x), opt.ascent.init(x))
    x1, _ = opt.step(x, opt.init(x), sampy.optim.Oracle(QUAD))
    d = (x - x1) / 0.1
    np.testing.assert_allclose(d, QUAD.grad(x) + (1 - mix) * eps @ H_RWP, rtol=1e-12, atol=1e-12)
    norms = np.linalg.norm(eps, axis=-1)
    if kind == "sphere":
        np.testing.assert_allclose(norms, 0.2, rtol=1e-12)
    else:
        assert norms.std() > 0.01  # ρ z: a Gaussian, not a fixed length


def test_rwp_average_sharpness_is_half_rho_squared_trace():
    """prop-dir-rwp 2: E L(w + ρz) − L(w) = ½ρ² tr H (and ρ² tr H/(2n) on the sphere)."""
    rho, n = 0.3, 400_000
    opt = RandomSAM(SGD(lr=0.1), rho=rho, seed=1)
    w = np.tile(np.array([1.0, 0.2, -0.5]), (n, 1))
    eps, _ = opt.ascent(w, QUAD.grad(w), opt.ascent.init(w))
    rise = QUAD(w + eps) - QUAD(w)
    expected = 0.5 * rho**2 * np.trace(H_RWP)
    assert rise.mean() == pytest.approx(expected, abs=5 * rise.std() / np.sqrt(n))
    sphere = RandomSAM(SGD(lr=0.1), rho=rho, kind="sphere", seed=1)
    eps, _ = sphere.ascent(w, QUAD.grad(w), sphere.ascent.init(w))
    rise = QUAD(w + eps) - QUAD(w)
    assert rise.mean() == pytest.approx(expected / 3, abs=5 * rise.std() / np.sqrt(n))


@pytest.mark.parametrize("mix", [0.0, 0.5])
def test_rwp_stationary_spread_on_a_quadratic(mix):
    """prop-dir-rwp 3: Var(w_i − w*_i) → η(1 − c)²ρ²λ_i/(2 − ηλ_i), for ηλ_i up to 1.6."""
    lr, rho, n = 0.4, 0.2, 40_000
    run = sampy.run(
        RandomSAM(SGD(lr=lr), rho=rho, mix=mix, seed=7), QUAD, np.tile(W_STAR, (n, 1)), 200
    )
    lam = np.diag(H_RWP)
    expected = lr * (1 - mix) ** 2 * rho**2 * lam / (2 - lr * lam)
    var = (run.final - W_STAR).var(axis=0)
    # the variance of a sample variance of n Gaussians is 2σ⁴/(n − 1): 5 standard errors
    np.testing.assert_array_less(np.abs(var - expected), 5 * expected * np.sqrt(2 / (n - 1)))
    np.testing.assert_allclose(
        (run.final - W_STAR).mean(axis=0), 0, atol=5 * np.sqrt(expected / n).max()
    )


def test_rwp_rho0_and_mix1_are_the_base():
    base = sampy.run(SGD(lr=0.008), F, STARTS, 100).xs
    for opt in (RandomSAM(SGD(lr=0.008), rho=0.0), RandomSAM(SGD(lr=0.008), rho=0.3, mix=1.0)):
        np.testing.assert_allclose(sampy.run(opt, F, STARTS, 100).xs, base, atol=1e-12)


def test_the_page_names_no_test_and_its_note_names_this_file():
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "book" / "direction.md").read_text()
    assert not re.findall(r"`test_[a-z0-9_]+`", text)
    assert "Checked by" not in text and "tests/test_direction_chapter.py" in text
