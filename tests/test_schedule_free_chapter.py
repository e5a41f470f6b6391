"""The claims of the schedule-free chapter (book/schedule_free.md), checked against sampy.

Defazio et al., "The Road Less Scheduled", NeurIPS 2024 (official code
facebookresearch/schedule_free); Becker et al., "Momentum-SAM", 2024, for the perturbation.
"""

from __future__ import annotations

import numpy as np
import pytest
from stepping import QUADRATIC, W0, points_and_states

import sampy
from sampy.optim import SAM, AdamW, Oracle
from sampy.optim.msam_schedule_free import AdamWMSAMScheduleFree
from sampy.optim.schedule_free import ScheduleFreeAdamW


def _weights(opt, steps):
    lr_max, weight_sum, cs = -1.0, 0.0, []
    for k in range(steps):
        _, _, lr_max, weight_sum, c = opt._schedule(k, lr_max, weight_sum)
        cs.append(c)
    return np.array(cs)


@pytest.mark.parametrize("warmup, variant", [(0, "gen_b"), (15, "gen_b"), (15, "gen_a")])
def test_average_is_the_step_weighted_mean(warmup, variant):
    """Lemma lem-sf-average: x_{t+1} = Σ_{i≤t} η_i² z_{i+1} / Σ η_i² for a non-decreasing step
    (constant step: the arithmetic mean of the z's)."""
    noisy = sampy.problems.NoisyGradient(QUADRATIC, sigma=0.5, seed=1)
    opt = ScheduleFreeAdamW(lr=0.05, warmup_steps=warmup, variant=variant)
    _, states = points_and_states(opt, noisy, W0, 60)
    steps = np.array([opt._schedule(k, -1.0, 0.0)[0] for k in range(60)])
    assert np.all(np.diff(steps) >= 0)
    zs = np.stack([s.z for s in states[1:]])
    for t in (1, 7, 30, 60):
        w = steps[:t] ** 2
        expected = (w[:, None] * zs[:t]).sum(axis=0) / w.sum()
        np.testing.assert_allclose(states[t].x, expected, rtol=1e-10, atol=1e-13)
    if warmup == 0:
        np.testing.assert_allclose(states[60].x, zs.mean(axis=0), rtol=1e-10)


def test_averaging_weights_grow_like_t_to_the_q():
    """Lemma lem-sf-weights: ω_i = i^q ⇒ t c_t → q + 1; gen_a's exact formula, ≈ 2/(t+1) for
    t(1 − β2) ≪ 1 and → 1/t much later; a linear warm-up gives 6t/((t+1)(2t+1)) ≈ 3/t."""
    for q in (0, 1, 2, 3):
        t = 100_000
        assert t * t**q / np.sum(np.arange(1, t + 1, dtype=float) ** q) == pytest.approx(
            q + 1, rel=1e-4
        )
    beta2, t = 0.999, np.arange(1, 20_001)
    c = _weights(ScheduleFreeAdamW(lr=0.05, variant="gen_a"), t.size)
    exact = (1 - beta2**t) / (t - beta2 * (1 - beta2**t) / (1 - beta2))
    np.testing.assert_allclose(c, exact, rtol=1e-9)
    early = t <= 20
    np.testing.assert_allclose(c[early], 2 / (t[early] + 1), rtol=0.01)
    assert 1.8 < 10 * c[9] < 1.82 and 1.85 < 300 * c[299] < 1.95 and 20_000 * c[-1] < 1.06
    warm = _weights(ScheduleFreeAdamW(lr=0.05, warmup_steps=50), 50)
    tw = np.arange(1, 51)
    np.testing.assert_allclose(warm, 6 * tw / ((tw + 1) * (2 * tw + 1)), rtol=1e-12)


def test_eval_and_train_switch_between_x_and_y():
    """Lemma lem-sf-modes: eval: x = y + (1 − 1/β1)(z − y); train: y = x + (1 − β1)(z − x)."""
    opt = ScheduleFreeAdamW(lr=0.05, betas=(0.8, 0.999))
    ys, states = points_and_states(opt, QUADRATIC, W0, 25)
    for y, state in zip(ys[1:], states[1:], strict=True):
        z, beta1 = state.z, 0.8
        np.testing.assert_allclose(y + (1 - 1 / beta1) * (z - y), state.x, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(opt.train(state.x, state), y, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(state.x + (1 - beta1) * (z - state.x), y, rtol=1e-12, atol=1e-14)
        np.testing.assert_array_equal(opt.eval(y, state), state.x)


def test_the_average_is_as_good_as_a_schedule_that_knows_the_end():
    """The chapter's comparison: 32 noisy runs, 2000 steps; the loss at x is below y's and z's,
    five times below constant-step AdamW, within 2x of a linear or cosine decay at the end and
    below half the linear decay's halfway."""
    steps, warmup, lr = 2000, 20, 0.05
    starts = np.tile(W0, (32, 1))

    def losses(make, point=lambda p, state: p):
        oracle = Oracle(sampy.problems.NoisyGradient(QUADRATIC, sigma=1.0, seed=0))
        p, state = starts.copy(), make(0).init(starts)
        out = []
        for k in range(steps):
            p, state = make(k).step(p, state, oracle)
            out.append(QUADRATIC(point(p, state)).mean())
        return np.array(out)

    def warm(k):
        return min(1.0, (k + 1) / warmup)

    sf = ScheduleFreeAdamW(lr=lr, warmup_steps=warmup)
    at_x = losses(lambda k: sf, lambda p, s: s.x)
    at_y = losses(lambda k: sf)
    at_z = losses(lambda k: sf, lambda p, s: s.z)
    const = losses(lambda k: AdamW(lr=lr * warm(k), weight_decay=0.0))
    linear = losses(lambda k: AdamW(lr=lr * warm(k) * (1 - k / steps), weight_decay=0.0))
    cosine = losses(
        lambda k: AdamW(lr=lr * warm(k) * 0.5 * (1 + np.cos(np.pi * k / steps)), weight_decay=0.0)
    )
    assert at_x[-1] < at_y[-1] < at_z[-1]
    assert at_x[-1] < const[-1] / 5
    assert at_x[-1] < 2 * min(linear[-1], cosine[-1])
    assert at_x[steps // 2 - 1] < linear[steps // 2 - 1] / 2
    assert at_z[-1] > const[-1]


def _ends_flat(opt, average, steps=1500):
    f = sampy.functions.get("sharp_flat")
    grid = np.stack(
        np.meshgrid(np.linspace(-0.6, 0.6, 13), np.linspace(-0.5, 0.5, 11)), -1
    ).reshape(-1, 2)
    oracle, p = Oracle(f), grid.copy()
    state = opt.init(p)
    for _ in range(steps):
        p, state = opt.step(p, state, oracle)
    return np.mean(np.linalg.norm(average(opt, p, state) - f.minima[1], axis=-1) < 0.3)


def test_msam_on_schedule_free_escapes_once_rho_exceeds_the_valley_width():
    """The radius sweep on the sharp/flat toy (evaluated at the average x): ρ = 0 is the base,
    ρ = 0.05 stays sharp, ρ = 0.2 (twice the valley's width 0.1) ends flat from > 80 % of the
    starts, as SAM on the same base does."""
    base = _ends_flat(ScheduleFreeAdamW(lr=0.02), lambda o, p, s: o.eval(p, s))
    msam = {
        rho: _ends_flat(AdamWMSAMScheduleFree(lr=0.02, rho=rho), lambda o, p, s: o.eval(p, s))
        for rho in (0.0, 0.05, 0.2)
    }
    sam = _ends_flat(
        SAM(ScheduleFreeAdamW(lr=0.02), rho=0.2), lambda o, p, s: o.base.eval(p, s.base)
    )
    assert msam[0.0] == base < 0.1
    assert msam[0.05] < 0.2 and msam[0.2] > 0.8 and sam > 0.8


def test_msam_schedule_free_perturbs_along_the_descent_and_keeps_x_clean():
    """Algorithm alg-sf-msam: the stored ỹ = y − ρ m/‖m‖ (⟨ỹ − y, m⟩ < 0, length ρ), the
    average x never sees the perturbation, and ρ = 0 is Schedule-Free AdamW bit for bit."""
    noisy = sampy.problems.NoisyGradient(QUADRATIC, sigma=0.3, seed=2)
    opt = AdamWMSAMScheduleFree(lr=0.05, rho=0.1, warmup_steps=5)
    ys, states = points_and_states(opt, noisy, W0, 40)
    for stored, state in zip(ys[2:], states[2:], strict=True):
        y = opt.move_from_ascent(stored, state)
        assert np.dot(stored - y, state.m) < 0
        assert np.linalg.norm(stored - y) == pytest.approx(0.1, rel=1e-9)
        np.testing.assert_array_equal(opt.eval(stored, state), state.base.x)
    plain = sampy.run(ScheduleFreeAdamW(lr=0.05, warmup_steps=5), noisy, W0, 40)
    zero = sampy.run(AdamWMSAMScheduleFree(lr=0.05, rho=0.0, warmup_steps=5), noisy, W0, 40)
    np.testing.assert_array_equal(plain.xs, zero.xs)
