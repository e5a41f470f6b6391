"""The claims of the schedule-free chapter (book/schedule_free.md), checked against sampy.

Defazio et al., "The Road Less Scheduled", NeurIPS 2024; seed 004; VARIANTS.md §15–§16.
"""

from __future__ import annotations

import numpy as np
import pytest

import sampy
from sampy.optim import Oracle
from sampy.optim.msam_schedule_free import NotesAdamWMSAMScheduleFree
from sampy.optim.schedule_free import ScheduleFreeAdamW

QUADRATIC = sampy.functions.get("quadratic", A=np.diag([1.0, 10.0]), b=np.zeros(2))
W0 = np.array([2.0, 1.5])


def _run(opt, f, x0, steps):
    oracle = Oracle(f)
    p, state = np.array(x0, dtype=float), opt.init(np.array(x0, dtype=float))
    points, states = [p], [state]
    for _ in range(steps):
        p, state = opt.step(p, state, oracle)
        points.append(p)
        states.append(state)
    return np.stack(points), states


@pytest.mark.parametrize("warmup, variant", [(0, "gen_b"), (15, "gen_b"), (15, "gen_a")])
def test_average_is_the_step_weighted_mean(warmup, variant):
    """Lemma lem-sf-average: x_{t+1} = Σ_{i≤t} γ_i² z_{i+1} / Σ γ_i² for a non-decreasing step
    (constant step: the arithmetic mean of the z's)."""
    noisy = sampy.problems.NoisyGradient(QUADRATIC, sigma=0.5, seed=1)
    opt = ScheduleFreeAdamW(lr=0.05, warmup_steps=warmup, variant=variant)
    _, states = _run(opt, noisy, W0, 60)
    gammas = np.array([opt._schedule(k, -1.0, 0.0)[0] for k in range(60)])
    assert np.all(np.diff(gammas) >= 0)
    zs = np.stack([s.z for s in states[1:]])
    for t in (1, 7, 30, 60):
        w = gammas[:t] ** 2
        expected = (w[:, None] * zs[:t]).sum(axis=0) / w.sum()
        np.testing.assert_allclose(states[t].x, expected, rtol=1e-10, atol=1e-13)
    if warmup == 0:
        np.testing.assert_allclose(states[60].x, zs.mean(axis=0), rtol=1e-10)


def test_eval_and_train_switch_between_x_and_y():
    """Lemma lem-sf-modes: eval: x = y + (1 − 1/β1)(z − y); train: y = x + (1 − β1)(z − x)."""
    opt = ScheduleFreeAdamW(lr=0.05, betas=(0.8, 0.999))
    ys, states = _run(opt, QUADRATIC, W0, 25)
    for y, state in zip(ys[1:], states[1:], strict=True):
        z, beta1 = state.z, 0.8
        np.testing.assert_allclose(y + (1 - 1 / beta1) * (z - y), state.x, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(opt.train(state.x, state), y, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(state.x + (1 - beta1) * (z - state.x), y, rtol=1e-12, atol=1e-14)
        np.testing.assert_array_equal(opt.eval(y, state), state.x)


@pytest.mark.parametrize("r, p", [(0.0, 0.0), (0.0, 2.0), (1.0, 2.0)])
def test_seed_formula_without_ascent_is_adamw_with_step_c_alpha(r, p):
    """Proposition prop-sf-seed: ρ = 0 ⇒ θ_t = θ_{t−1} − c_t α_t (m_t/(√v_t + ε) + λ θ_{t−1}),
    by a hand-written Adam recursion; r = p = 0 ⇒ c_t = 1/t."""
    lr, (b1, b2), eps, lam = 0.05, (0.9, 0.999), 1e-8, 0.01
    opt = NotesAdamWMSAMScheduleFree(
        lr=lr, rho=0.0, weight_decay=lam, r=r, weight_lr_power=p, grad_mode="clean_only"
    )
    thetas, _ = _run(opt, QUADRATIC, W0, 80)
    theta, m, v, alpha_max, weight_sum = W0.copy(), np.zeros(2), np.zeros(2), -1.0, 0.0
    for t in range(1, 81):
        g = QUADRATIC.grad(theta)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        alpha = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        alpha_max = max(alpha_max, alpha)
        weight = t**r * alpha_max**p
        weight_sum += weight
        c = weight / weight_sum
        if r == 0 and p == 0:
            assert c == pytest.approx(1 / t, rel=1e-14)
        theta = theta - c * alpha * (m / (np.sqrt(v) + eps) + lam * theta)
        np.testing.assert_allclose(thetas[t], theta, rtol=1e-12, atol=1e-14)


def test_seed_ascent_momentum_is_m_over_one_minus_beta1():
    """Lemma lem-sf-seed-x: x_t = m_t/(1 − β1) at every step (README loop, ρ > 0)."""
    opt = NotesAdamWMSAMScheduleFree(lr=0.05, rho=0.1, betas=(0.85, 0.99))
    _, states = _run(opt, QUADRATIC, W0, 40)
    for state in states:
        np.testing.assert_allclose(state.x, state.m / (1 - 0.85), rtol=1e-12, atol=1e-15)
    assert np.array_equal(opt.ascent(states[0]), np.zeros(2))  # d_1 = 0: the norm is guarded


def test_seed_formula_with_ascent_ends_above_its_start_on_the_noisy_quadratic():
    """The chapter's side-by-side run: seed 004 (ρ = 0.05) ends with a higher loss than it
    started with, its ρ = 0 version lower, and Schedule-Free near the minimum."""
    noisy = sampy.problems.NoisyGradient(QUADRATIC, sigma=1.0, seed=0)
    start = QUADRATIC(W0)
    seed = sampy.run(
        NotesAdamWMSAMScheduleFree(lr=0.05, rho=0.05, weight_decay=0.0, warmup_steps=20),
        noisy,
        W0,
        400,
    )
    no_ascent = sampy.run(
        NotesAdamWMSAMScheduleFree(lr=0.05, rho=0.0, weight_decay=0.0, warmup_steps=20),
        noisy,
        W0,
        400,
    )
    sf = ScheduleFreeAdamW(lr=0.05, warmup_steps=20)
    _, states = _run(sf, noisy, W0, 400)
    assert QUADRATIC(seed.final) > start > QUADRATIC(no_ascent.final)
    assert QUADRATIC(sf.eval(None, states[-1])) < 1e-2
