"""Variants that need examples or randomness: m-SAM, multi-step SAM, ESAM, SSAM-F/D, ImbSAM, bSAM.

The reduction identities of each of them (ρ = 0 gives the base, and so on), steps written out by
hand (per-example gradients by autograd on a loss written here), Monte Carlo checks of the random
parts, measured gradient-evaluation counts, validation, zero gradients and divergence.
"""

from __future__ import annotations

import math
import re

import autograd
import autograd.numpy as anp
import numpy as np
import pytest

import sampy
from sampy import functions
from sampy.functions import TestFunction
from sampy.optim import SAM, SGD, Adam, Oracle
from sampy.optim.bsam import BSAM
from sampy.optim.esam import ESAM
from sampy.optim.imbsam import ImbSAM
from sampy.optim.msharpness import MSharpnessSAM, MultiStepSAM
from sampy.optim.ssam import SSAMD, SSAMF
from sampy.problems import HEAD, TAIL, LogisticRegression, make_logistic_problem

RNG = np.random.default_rng(12)
FEATURES = RNG.normal(size=(12, 3))
LABELS = np.where(RNG.random(12) < 0.5, -1.0, 1.0)
L2 = 0.05
X0 = np.array([[0.4, -0.3, 0.8], [-1.0, 0.6, 0.1]])


def _problem(groups=None, features=FEATURES, labels=LABELS):
    return LogisticRegression(features, labels, l2=L2, groups=groups)


def _example_loss(w, i, features=FEATURES, labels=LABELS):
    return anp.log(1.0 + anp.exp(-labels[i] * anp.dot(w, features[i]))) + 0.5 * L2 * anp.dot(w, w)


_example_grad = autograd.grad(_example_loss)


def _mean_grad(w, idx):
    return np.mean([_example_grad(w, i) for i in idx], axis=0)


def _unit(v, eps):
    return v / (np.linalg.norm(v) + eps)


def _run(opt, f, x0=X0, steps=15):
    return sampy.run(opt, f, x0, steps)


def _quadratic():
    return functions.get(
        "quadratic", A=[[3.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 2.0]], b=[1.0, -1.0, 0.5]
    )


def _raises_naming(name):
    return pytest.raises(ValueError, match=rf"(?<![A-Za-z_]){re.escape(name)}(?![A-Za-z_])")


# ---------------------------------------------------------------------------------------------
# m-sharpness SAM


@pytest.mark.parametrize("m", [12, 100])
def test_msharpness_with_m_at_least_n_is_sam_on_the_full_problem(m):
    p = _problem()
    ours = _run(MSharpnessSAM(SGD(lr=0.5), rho=0.1, m=m), p)
    sam = _run(SAM(SGD(lr=0.5), rho=0.1), p)
    np.testing.assert_allclose(ours.xs, sam.xs, rtol=0, atol=1e-13)
    assert ours.grad_evals == 2 * 15 == sam.grad_evals


def test_msharpness_with_identical_micro_batches_is_sam():
    tiled = _problem(features=np.tile(FEATURES, (4, 1)), labels=np.tile(LABELS, 4))
    ours = _run(MSharpnessSAM(SGD(lr=0.5), rho=0.2, m=12), tiled)
    sam = _run(SAM(SGD(lr=0.5), rho=0.2), _problem())
    np.testing.assert_allclose(ours.xs, sam.xs, rtol=0, atol=1e-13)
    assert ours.grad_evals == 2 * 4 * 15


def test_msharpness_with_m_1_is_one_sam_written_by_hand():
    rho, lr = 0.3, 0.4
    opt = MSharpnessSAM(SGD(lr=lr), rho=rho, m=1)
    oracle = Oracle(_problem())
    x, state = X0, opt.init(X0)
    for _ in range(3):
        expected = []
        for w in x:
            per = [_example_grad(w + rho * _unit(_example_grad(w, i), 1e-12), i) for i in range(12)]
            expected.append(w - lr * np.mean(per, axis=0))
        x, state = opt.step(x, state, oracle)
        np.testing.assert_allclose(x, expected, rtol=1e-12, atol=1e-14)
    assert oracle.calls == 3 * 2 * 12  # 2 per example


def test_msharpness_ragged_micro_batches_are_weighted_by_size():
    rho, lr = 0.25, 0.5
    oracle = Oracle(_problem())
    opt = MSharpnessSAM(SGD(lr=lr), rho=rho, m=5)  # micro-batches of 5, 5, 2
    x, _ = opt.step(X0, opt.init(X0), oracle)
    batches = [range(0, 5), range(5, 10), range(10, 12)]
    for b, w in enumerate(X0):
        d = sum(
            len(bj) / 12 * _mean_grad(w + rho * _unit(_mean_grad(w, bj), 1e-12), bj)
            for bj in batches
        )
        np.testing.assert_allclose(x[b], w - lr * d, rtol=1e-12)
    assert oracle.calls == 6 == opt.grad_evals(12)


def test_msharpness_shuffling_is_seeded_and_pure():
    p = _problem()
    opt = MSharpnessSAM(SGD(lr=0.5), rho=0.2, m=3, shuffle=True, seed=5)
    a, b = _run(opt, p), _run(opt, p)
    np.testing.assert_array_equal(a.xs, b.xs)
    fixed = _run(MSharpnessSAM(SGD(lr=0.5), rho=0.2, m=3), p)
    assert not np.allclose(a.xs, fixed.xs)
    state = opt.init(X0)
    first, _ = opt.step(X0, state, Oracle(p))
    again, _ = opt.step(X0, state, Oracle(p))
    np.testing.assert_array_equal(first, again)


# ---------------------------------------------------------------------------------------------
# Multi-step ascent


def test_multistep_with_one_ascent_step_is_sam():
    f = functions.get("rosenbrock")
    x0 = np.array([[-1.5, 2.0], [0.5, -0.5]])
    ours = _run(MultiStepSAM(SGD(lr=1e-3), rho=0.05), f, x0, 50)
    sam = _run(SAM(SGD(lr=1e-3), rho=0.05), f, x0, 50)
    np.testing.assert_array_equal(ours.xs, sam.xs)


def test_multistep_two_ascent_steps_written_by_hand():
    f = _quadratic()
    rho, lr = 0.3, 0.1
    opt = MultiStepSAM(SGD(lr=lr), rho=rho, ascent_steps=2, perturb_eps=0.0)
    oracle = Oracle(f)
    x, _ = opt.step(X0, opt.init(X0), oracle)
    for b, w in enumerate(X0):
        w1 = w + rho * _unit(f.grad(w), 0.0)
        w2 = w1 + rho * _unit(f.grad(w1), 0.0)
        np.testing.assert_allclose(x[b], w - lr * f.grad(w2), rtol=1e-14)
    assert oracle.calls == 3 == opt.grad_evals_per_step


def test_multistep_runs_on_a_problem_with_full_batch_gradients():
    p = _problem()
    ours = _run(MultiStepSAM(SGD(lr=0.5), rho=0.1, ascent_steps=3), p, steps=5)
    assert ours.grad_evals == 4 * 5 and np.all(np.isfinite(ours.xs))


# ---------------------------------------------------------------------------------------------
# ESAM


def test_esam_with_beta_gamma_1_is_sam_with_eps_1e7():
    f = functions.get("rosenbrock")
    x0 = np.array([[-1.5, 2.0], [0.5, -0.5]])
    ours = _run(ESAM(SGD(lr=1e-3), rho=0.05, beta=1.0, gamma=1.0), f, x0, 50)
    sam = _run(SAM(SGD(lr=1e-3), rho=0.05, perturb_eps=1e-7), f, x0, 50)
    np.testing.assert_array_equal(ours.xs, sam.xs)
    p = _problem()
    ours = _run(ESAM(SGD(lr=0.5), beta=1.0, gamma=1.0), p)
    sam = _run(SAM(SGD(lr=0.5), perturb_eps=1e-7), p)
    np.testing.assert_allclose(ours.xs, sam.xs, rtol=0, atol=1e-14)


def test_sds_selects_exactly_k_examples_ties_by_index():
    esam = ESAM(SGD(lr=0.1), gamma=0.5)
    s = np.array([[0.3, 0.9, 0.3, -1.0, 0.3, 0.9, 0.0, 0.3]])
    chosen = esam.select(s)  # k = floor(8 · 0.5) = 4: both 0.9s, then the first two 0.3s
    np.testing.assert_array_equal(np.flatnonzero(chosen[0]), [0, 1, 2, 5])
    assert esam.select(np.zeros((3, 8))).sum(axis=-1).tolist() == [4, 4, 4]
    assert ESAM(SGD(lr=0.1), gamma=0.3).select(np.arange(10.0)).sum() == 3
    assert ESAM(SGD(lr=0.1), gamma=0.01).select(np.arange(10.0)).sum() == 1  # never empty


def test_esam_data_selection_step_written_by_hand():
    p = _problem()
    rho, lr = 0.4, 0.3
    opt = ESAM(SGD(lr=lr), rho=rho, beta=1.0, gamma=0.4)
    oracle = Oracle(p)
    x, _ = opt.step(X0, opt.init(X0), oracle)
    for b, w in enumerate(X0):
        e = rho * _unit(_mean_grad(w, range(12)), 1e-7)
        sharp = [_example_loss(w + e, i) - _example_loss(w, i) for i in range(12)]
        top = sorted(range(12), key=lambda i: (-sharp[i], i))[:4]  # floor(12 · 0.4) = 4
        np.testing.assert_allclose(x[b], w - lr * _mean_grad(w + e, top), rtol=1e-12)
    assert (oracle.calls, oracle.loss_calls) == (2, 2)


def test_esam_with_rho_0_still_selects_k_examples():
    p = _problem()
    oracle = Oracle(p)
    opt = ESAM(SGD(lr=0.3), rho=0.0, beta=1.0, gamma=0.5)
    x, _ = opt.step(X0, opt.init(X0), oracle)
    np.testing.assert_allclose(x, X0 - 0.3 * p.grad(X0, np.arange(6)), rtol=1e-13)


def _esam_perturbations(opt, w, count):
    """ε of one step at ``count`` copies of w on ‖x‖² (∇ = 2x, so SGD with lr ½ lands on −ε)."""
    f = functions.get("sphere", dim=w.size)
    x = np.broadcast_to(w, (count, w.size))
    new, _ = opt.step(x, opt.init(x), Oracle(f))
    return -new, f.grad(w)


def test_swp_coordinate_full_perturbation_has_mean_rho_g_over_norm():
    rho, beta = 0.2, 0.6
    w = np.array([1.0, -2.0, 0.5, 3.0])
    opt = ESAM(SGD(lr=0.5), rho=rho, beta=beta, gamma=1.0, seed=1)
    e, g = _esam_perturbations(opt, w, 40_000)
    target = rho * g / np.linalg.norm(g)
    # Each coordinate is (ρ/β) g_i/‖g‖ · Bernoulli(β): standard error of the mean is small.
    sd = (rho / beta) * np.abs(g) / np.linalg.norm(g) * math.sqrt(beta * (1 - beta) / 40_000)
    np.testing.assert_allclose(e.mean(axis=0), target, atol=5 * sd.max())
    assert np.mean(np.sum(e * e, axis=-1)) == pytest.approx(rho**2 / beta, rel=0.02)
    kept = e != 0
    assert kept.mean() == pytest.approx(beta, abs=0.01)


def test_swp_tensor_kept_perturbs_all_or_nothing_with_length_rho_over_beta():
    rho, beta = 0.2, 0.7
    w = np.array([1.0, -2.0, 0.5])
    opt = ESAM(
        SGD(lr=0.5),
        rho=rho,
        beta=beta,
        gamma=1.0,
        swp_granularity="tensor",
        swp_norm="kept",
        seed=2,
    )
    e, g = _esam_perturbations(opt, w, 20_000)
    lengths = np.linalg.norm(e, axis=-1)
    on = lengths > 0
    assert on.mean() == pytest.approx(beta, abs=0.015)
    np.testing.assert_allclose(lengths[on], rho / beta, rtol=1e-7)
    np.testing.assert_allclose(
        e[on] / lengths[on, None], np.broadcast_to(g / np.linalg.norm(g), e[on].shape), rtol=1e-12
    )


def test_swp_coordinate_kept_normalises_by_the_kept_part():
    w = np.array([1.0, -2.0, 0.5, 3.0])
    opt = ESAM(SGD(lr=0.5), rho=0.3, beta=0.5, gamma=1.0, swp_norm="kept", seed=4)
    e, _ = _esam_perturbations(opt, w, 2_000)
    lengths = np.linalg.norm(e, axis=-1)
    np.testing.assert_allclose(lengths[lengths > 0], 0.3 / 0.5, rtol=1e-6)


def test_esam_is_seeded_and_pure():
    p = _problem()
    opt = ESAM(SGD(lr=0.5), beta=0.5, gamma=0.5, seed=9)
    np.testing.assert_array_equal(_run(opt, p).xs, _run(opt, p).xs)
    state = opt.init(X0)
    a, _ = opt.step(X0, state, Oracle(p))
    b, _ = opt.step(X0, state, Oracle(p))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(
        _run(opt, p).xs, _run(ESAM(SGD(lr=0.5), beta=0.5, gamma=0.5, seed=10), p).xs
    )


# ---------------------------------------------------------------------------------------------
# SSAM-F and SSAM-D


def test_ssamf_sparsity_0_is_a_base_step_then_sam():
    f = _quadratic()
    ours = _run(SSAMF(SGD(lr=0.1), rho=0.2, sparsity=0.0, update_freq=1), f)
    x1 = X0 - 0.1 * f.grad(X0)  # the all-zero initial mask: no perturbation on step 0
    sam = _run(SAM(SGD(lr=0.1), rho=0.2, perturb_eps=1e-7), f, x1, 14)
    np.testing.assert_array_equal(ours.xs[1], x1)
    np.testing.assert_allclose(ours.xs[1:], sam.xs, rtol=0, atol=1e-15)


def test_ssamd_sparsity_0_without_dropping_is_sam():
    f = _quadratic()
    ours = _run(SSAMD(SGD(lr=0.1), rho=0.2, sparsity=0.0, drop_rate=0.0, update_freq=1), f)
    sam = _run(SAM(SGD(lr=0.1), rho=0.2, perturb_eps=1e-7), f)
    np.testing.assert_array_equal(ours.xs, sam.xs)


def test_ssamd_sparsity_0_drops_as_the_official_code_does():
    opt = SSAMD(SGD(lr=0.1), sparsity=0.0, drop_rate=0.5, update_freq=1)
    x = np.zeros((1, 10)) + np.arange(10.0)
    state = opt.init(x)
    assert state.mask.sum() == 10
    _, state = opt.step(x, state, Oracle(functions.get("sphere", dim=10)))
    assert state.mask.sum() == 5  # keep int(10 · (1 − 0.5)), grow int(min(5, 0)) = 0


@pytest.mark.parametrize("cls", [SSAMF, SSAMD])
def test_ssam_sparsity_1_is_the_base_optimizer(cls):
    f = _quadratic()
    ours = _run(cls(SGD(lr=0.1), rho=0.3, sparsity=1.0, update_freq=2), f)
    base = _run(SGD(lr=0.1), f)
    np.testing.assert_array_equal(ours.xs, base.xs)
    assert ours.grad_evals >= 2 * 15


def test_ssam_perturbation_is_at_most_rho():
    opt = SSAMF(SGD(lr=0.1), rho=0.7)
    rng = np.random.default_rng(0)
    scale = rng.choice([1e-9, 1.0, 1e6], size=(500, 1))
    g = rng.normal(size=(500, 6)) * scale
    mask = rng.random((500, 6)) < 0.5
    e = opt.masked_perturbation(g, mask)
    assert np.all(np.linalg.norm(e, axis=-1) <= 0.7 + 1e-12)
    assert np.all(e[~mask] == 0)
    full = opt.masked_perturbation(g, np.ones_like(mask))
    big = scale[:, 0] >= 1.0  # where ‖g‖ ≫ the 1e-7 guard the full mask gives length ρ
    np.testing.assert_allclose(np.linalg.norm(full[big], axis=-1), 0.7, rtol=1e-6)


@pytest.mark.parametrize(
    ("d", "s", "live"), [(10, 0.2, 8), (10, 0.5, 5), (7, 0.3, 4), (2, 0.2, 1), (5, 1.0, 0)]
)
def test_mask_counts(d, s, live):
    assert int(d * (1 - s)) == live  # the official count, here equal to floor(d (1 − s))
    f = functions.get("sphere", dim=d)
    x = np.arange(1.0, d + 1)[None, :]
    opt = SSAMF(SGD(lr=0.01), sparsity=s, update_freq=1)
    _, state = opt.step(x, opt.init(x), Oracle(f))
    assert state.mask.sum() == live
    assert SSAMD(SGD(lr=0.01), sparsity=s).init(x).mask.sum() == d - math.ceil(d * s)


def test_ssamf_mask_with_all_examples_is_top_k_of_summed_squared_gradients():
    dim = 5
    features = RNG.normal(size=(9, dim)) * np.array([0.2, 3.0, 1.0, 0.5, 2.0])
    labels = np.where(RNG.random(9) < 0.5, -1.0, 1.0)
    p = LogisticRegression(features, labels, l2=L2)
    x0 = RNG.normal(size=(3, dim))
    opt = SSAMF(SGD(lr=0.2), rho=0.1, sparsity=0.4, num_samples=9, update_freq=3, seed=1)
    oracle = Oracle(p)
    x1, state = opt.step(x0, opt.init(x0), oracle)
    assert oracle.calls == 2 + 9
    for b, w in enumerate(x1):
        fisher = sum(autograd.grad(_example_loss)(w, i, features, labels) ** 2 for i in range(9))
        top = sorted(range(dim), key=lambda j: (-fisher[j], j))[:3]  # int(5 · 0.6) = 3
        np.testing.assert_array_equal(np.flatnonzero(state.mask[b]), sorted(top))
    # Steps 1 and 2 keep the mask; step 3 refreshes it.
    _, state2 = opt.step(x1, state, oracle)
    assert state2.mask is state.mask and oracle.calls == 2 + 9 + 2


def test_ssamf_on_a_plain_function_uses_g_squared_at_the_refresh_point():
    f = _quadratic()
    opt = SSAMF(SGD(lr=0.1), sparsity=0.5, update_freq=1)
    oracle = Oracle(f)
    x1, state = opt.step(X0, opt.init(X0), oracle)
    for b, w in enumerate(x1):
        g = np.abs(f.grad(w))
        assert np.flatnonzero(state.mask[b]).tolist() == [int(np.argmax(g))]  # int(3 · 0.5) = 1
    assert oracle.calls == 3 == opt.grad_evals(1)


def test_ssamd_cosine_drop_rate():
    opt = SSAMD(SGD(lr=0.1), drop_rate=0.4, T_start=10, T_end=50)
    assert opt.drop_rate_at(10) == pytest.approx(0.4)
    assert opt.drop_rate_at(30) == pytest.approx(0.2)
    assert opt.drop_rate_at(50) == pytest.approx(0.0, abs=1e-15)


def test_ssamd_drop_and_grow_written_by_hand():
    d, s, dr = 10, 0.3, 0.5
    opt = SSAMD(
        SGD(lr=0.1),
        sparsity=s,
        drop_rate=dr,
        drop_strategy="gradient",
        growth_strategy="weight",
        T_start=0,
        T_end=100,
    )
    mask = np.array([1, 1, 1, 1, 1, 1, 1, 0, 0, 0], dtype=bool)
    g = np.array([0.5, -3.0, 0.1, 2.0, -0.2, 1.0, 0.05, 9.0, 9.0, 9.0])
    w = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.3, -5.0, 1.0])
    new = opt.refresh(mask, w, g, 0, np.random.default_rng(0))
    live = d - d * s  # 7 (as a float, as the official code)
    keep_num, grow_num = int(live * (1 - dr)), int(min(live * dr, d * s))
    assert (keep_num, grow_num) == (3, 3)
    # Survivors: the 3 live entries of largest |g| (1, 3, 5); growth: dead by |w| (8, 9, 7).
    np.testing.assert_array_equal(np.flatnonzero(new), [1, 3, 5, 7, 8, 9])


def test_ssamd_refreshes_with_the_perturbed_weights_after_the_ascent():
    f = _quadratic()
    opt = SSAMD(
        SGD(lr=0.1),
        rho=0.5,
        sparsity=0.34,
        drop_strategy="weight",
        growth_strategy="gradient",
        update_freq=2,
        seed=3,
    )
    state = opt.init(X0)
    g = f.grad(X0)
    e = opt.masked_perturbation(g, state.mask)
    expected = opt.refresh(state.mask, X0 + e, g, 0, np.random.default_rng(0))
    oracle = Oracle(f)
    x1, state1 = opt.step(X0, state, oracle)
    np.testing.assert_array_equal(state1.mask, expected)
    # The new mask takes effect next step: this step used the initial one.
    np.testing.assert_allclose(x1, X0 - 0.1 * f.grad(X0 + e), rtol=1e-14)
    _, state2 = opt.step(x1, state1, oracle)  # step 1: no refresh (update_freq = 2)
    assert state2.mask is state1.mask and oracle.calls == 4


# ---------------------------------------------------------------------------------------------
# ImbSAM

GROUPS = np.array([TAIL if i % 3 == 0 else HEAD for i in range(12)])  # 4 tail, 8 head


def test_imbsam_step_written_by_hand():
    rho, lr, c = 0.3, 0.5, 2.0
    oracle = Oracle(_problem(GROUPS))
    opt = ImbSAM(SGD(lr=lr), rho=rho)
    x, _ = opt.step(X0, opt.init(X0), oracle)
    tail, head = range(0, 12, 3), [i for i in range(12) if i % 3]
    for b, w in enumerate(X0):
        g_h = sum(_example_grad(w, i) for i in head) / 12
        g_t = c * sum(_example_grad(w, i) for i in tail) / 12
        e = rho * g_t / (np.linalg.norm(g_t) + 1e-16)
        g_adv = c * sum(_example_grad(w + e, i) for i in tail) / 12
        np.testing.assert_allclose(x[b], w - lr * (g_adv + g_h), rtol=1e-12)
    assert oracle.calls == 3 == opt.grad_evals_per_step


def test_imbsam_empty_tail_is_the_base_optimizer_on_the_head_loss():
    p = _problem(np.full(12, HEAD))
    np.testing.assert_allclose(_run(ImbSAM(SGD(lr=0.5)), p).xs, _run(SGD(lr=0.5), p).xs, atol=1e-14)


def test_imbsam_empty_head_is_sam_on_the_tail_loss():
    p = _problem(np.full(12, TAIL))
    ours = _run(ImbSAM(SGD(lr=0.25), rho=0.2, tail_weight=2.0), p)
    # SAM on 2L: the same ε (up to the 1e-16 guard) and twice the gradient.
    sam = _run(SAM(SGD(lr=0.5), rho=0.2, perturb_eps=1e-16), p)
    np.testing.assert_allclose(ours.xs, sam.xs, rtol=0, atol=1e-13)


def test_imbsam_all_tail_with_weight_1_is_sam():
    p = _problem(np.full(12, TAIL))
    ours = _run(ImbSAM(SGD(lr=0.5), rho=0.2, tail_weight=1.0), p)
    sam = _run(SAM(SGD(lr=0.5), rho=0.2, perturb_eps=1e-16), p)
    np.testing.assert_allclose(ours.xs, sam.xs, rtol=0, atol=1e-14)


def test_imbsam_rho_0_is_the_base_on_head_plus_weighted_tail():
    oracle = Oracle(_problem(GROUPS))
    opt = ImbSAM(SGD(lr=0.5), rho=0.0)
    x, _ = opt.step(X0, opt.init(X0), oracle)
    for b, w in enumerate(X0):
        d = sum((2.0 if i % 3 == 0 else 1.0) * _example_grad(w, i) for i in range(12)) / 12
        np.testing.assert_allclose(x[b], w - 0.5 * d, rtol=1e-12)


def test_imbsam_needs_groups():
    with pytest.raises(ValueError, match="groups"):
        _run(ImbSAM(SGD(lr=0.1)), _problem(), steps=1)
    with pytest.raises(ValueError, match="sum-of-examples"):
        _run(ImbSAM(SGD(lr=0.1)), _quadratic(), steps=1)


# ---------------------------------------------------------------------------------------------
# bSAM


def _recording_quadratic(log):
    q = _quadratic()

    def grad(x):
        log.append(np.array(x))
        return q.grad(x)

    return TestFunction(
        name="rec",
        fn=q.fn,
        dim=3,
        domain=q.domain,
        minima=q.minima,
        fmin=q.fmin,
        analytic_grad=grad,
    )


def test_bsam_samples_have_variance_one_over_n_s():
    log = []
    opt = BSAM(batchsplit=1, num_data=50.0, s_init=2.0, rho=0.0, seed=4)
    w = np.array([0.5, -1.0, 2.0])
    x = np.broadcast_to(w, (40_000, 3))
    opt.step(x, opt.init(x), Oracle(_recording_quadratic(log)))
    theta = log[0]
    dev = theta - w
    # Var = 1/(N s) = 0.01; standard error of the variance 0.01·sqrt(2/40000) ≈ 7e-5.
    np.testing.assert_allclose(dev.var(axis=0), 0.01, atol=5 * 7e-5)
    np.testing.assert_allclose(dev.mean(axis=0), 0.0, atol=5 * 0.1 / 200)
    np.testing.assert_array_equal(log[1], x)  # ρ = 0: the second gradient at the mean w


def test_bsam_sub_batches_get_independent_noise():
    p = make_logistic_problem(n=16, dim=3, seed=2)
    log = []
    grads_at = p.grads_at

    def recording(points, examples):
        log.append(np.array(points))
        return grads_at(points, examples)

    p.grads_at = recording
    w = np.array([0.2, 0.1, -0.3])
    x = np.broadcast_to(w, (20_000, 3))
    opt = BSAM(batchsplit=2, s_init=3.0)  # N = n = 16 ⇒ Var = 1/48
    oracle = Oracle(p)
    opt.step(x, opt.init(x), oracle)
    theta = log[0]  # (20000, 16 examples, 3): examples 0-7 in sub-batch 0, 8-15 in 1
    a, b = theta[:, 0] - w, theta[:, 8] - w
    np.testing.assert_array_equal(theta[:, 0], theta[:, 7])  # one sample per sub-batch
    np.testing.assert_allclose(a.var(axis=0), 1 / 48, rtol=0.05)
    np.testing.assert_allclose(b.var(axis=0), 1 / 48, rtol=0.05)
    assert abs(np.corrcoef(a[:, 0], b[:, 0])[0, 1]) < 0.03
    assert oracle.calls == 4 == opt.grad_evals_per_step


def _bsam_by_hand(f, w, steps, lr, betas, delta, rho, damping, s_init, order):
    m, s = np.zeros_like(w), np.full_like(w, s_init)
    out = [w.copy()]
    for _ in range(steps):
        g = f.grad(w)  # N = ∞: the sample is the mean
        g_adv = f.grad(w + rho * g / s)
        m = betas[0] * m + (1 - betas[0]) * (g_adv + delta * w)
        s_new = betas[1] * s + (1 - betas[1]) * (np.sqrt(s) * np.abs(g) + damping + delta)
        w = w - lr * m / (s if order == "code" else s_new)
        s = s_new
        out.append(w.copy())
    return np.array(out)


@pytest.mark.parametrize("rho", [0.0, 0.05])
@pytest.mark.parametrize("order", ["code", "paper"])
def test_bsam_deterministic_limit_written_by_hand(rho, order):
    f = _quadratic()
    kw = dict(lr=0.05, betas=(0.8, 0.9), weight_decay=0.01, rho=rho, damping=0.1, s_init=1.5)
    opt = BSAM(**kw, num_data=math.inf, batchsplit=1, update_order=order)
    traj = _run(opt, f, X0, 20)
    for b, w in enumerate(X0):
        hand = _bsam_by_hand(f, w, 20, kw["lr"], kw["betas"], 0.01, rho, 0.1, 1.5, order)
        np.testing.assert_allclose(traj.xs[:, b], hand, rtol=1e-13, atol=1e-15)


def test_bsam_code_and_paper_orders_differ():
    f = _quadratic()
    code = _run(BSAM(lr=0.1, num_data=100.0, batchsplit=1), f, X0, 10)
    paper = _run(BSAM(lr=0.1, num_data=100.0, batchsplit=1, update_order="paper"), f, X0, 10)
    # Same noise (same seed), different s in the w-update: every coordinate moves differently.
    assert np.all(code.xs[1:] != paper.xs[1:])
    assert np.abs(code.xs[-1] - paper.xs[-1]).max() > 1e-4


def test_bsam_is_seeded_and_pure_and_needs_what_it_uses():
    p = make_logistic_problem()
    opt = BSAM(seed=3)
    np.testing.assert_array_equal(_run(opt, p, X0[:, :2]).xs, _run(opt, p, X0[:, :2]).xs)
    state = opt.init(X0[:, :2])
    a, _ = opt.step(X0[:, :2], state, Oracle(p))
    b, _ = opt.step(X0[:, :2], state, Oracle(p))
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="sum-of-examples"):
        _run(BSAM(num_data=10.0), _quadratic(), steps=1)
    with _raises_naming("num_data"):
        _run(BSAM(batchsplit=1), _quadratic(), steps=1)
    with _raises_naming("batchsplit"):
        _run(BSAM(batchsplit=13), _problem(), steps=1)


# ---------------------------------------------------------------------------------------------
# Cross-cutting: counts, validation, zero gradients, divergence, ρ = 0

VARIANTS = {
    "MSharpnessSAM": lambda base: MSharpnessSAM(base, rho=0.1, m=5),
    "MultiStepSAM": lambda base: MultiStepSAM(base, rho=0.1, ascent_steps=2),
    "ESAM": lambda base: ESAM(base, rho=0.1, beta=0.5, gamma=0.5),
    "SSAMF": lambda base: SSAMF(base, rho=0.1, sparsity=0.5, num_samples=4, update_freq=2),
    "SSAMD": lambda base: SSAMD(base, rho=0.1, sparsity=0.5, update_freq=2),
    "ImbSAM": lambda base: ImbSAM(base, rho=0.1),
    "BSAM": lambda base: BSAM(lr=base.lr, rho=0.1, batchsplit=3),
}

EXPECTED_EVALS = {  # 6 steps on 12 examples
    "MSharpnessSAM": 6 * 2 * 3,
    "MultiStepSAM": 6 * 3,
    "ESAM": 6 * 2,
    "SSAMF": 6 * 2 + 3 * 4,
    "SSAMD": 6 * 2,
    "ImbSAM": 6 * 3,
    "BSAM": 6 * 2 * 3,
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_measured_gradient_evaluations(name):
    opt = VARIANTS[name](SGD(lr=0.1))
    traj = _run(opt, _problem(GROUPS), steps=6)
    assert traj.grad_evals == EXPECTED_EVALS[name]
    count = getattr(opt, "grad_evals", None)
    if name == "MSharpnessSAM":
        assert 6 * count(12) == traj.grad_evals
    elif name in ("SSAMF", "SSAMD"):
        assert count(6, 12) == traj.grad_evals
    else:
        assert 6 * opt.grad_evals_per_step == traj.grad_evals


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_no_nan_at_a_zero_gradient(name):
    zero = LogisticRegression(np.zeros((12, 3)), LABELS, groups=GROUPS)  # every ∇ℓ_i = 0
    opt = VARIANTS[name](SGD(lr=0.1))
    traj = _run(opt, zero, np.zeros((2, 3)), 5)
    assert np.all(np.isfinite(traj.xs))
    # Every gradient is 0 (bSAM's too, whatever its noise), and so is bSAM's δw at w = 0.
    np.testing.assert_array_equal(traj.xs[-1], 0.0)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_divergence_is_recorded_not_raised(name):
    opt = VARIANTS[name](SGD(lr=1e9))
    traj = sampy.run(opt, _problem(GROUPS), X0, 20, bound=1e3)
    assert np.all(traj.diverged)
    assert np.all(np.isfinite(traj.xs))


@pytest.mark.parametrize("name", ["MSharpnessSAM", "MultiStepSAM", "SSAMF", "SSAMD", "ImbSAM"])
def test_rho_0_is_the_base_optimizer(name):
    p = _problem(GROUPS)
    make = {
        "MSharpnessSAM": lambda: MSharpnessSAM(Adam(lr=0.05), rho=0.0, m=5),
        "MultiStepSAM": lambda: MultiStepSAM(Adam(lr=0.05), rho=0.0, ascent_steps=3),
        "SSAMF": lambda: SSAMF(Adam(lr=0.05), rho=0.0, sparsity=0.5, num_samples=3),
        "SSAMD": lambda: SSAMD(Adam(lr=0.05), rho=0.0),
        "ImbSAM": lambda: ImbSAM(Adam(lr=0.05), rho=0.0, tail_weight=1.0),
    }[name]
    np.testing.assert_allclose(_run(make(), p).xs, _run(Adam(lr=0.05), p).xs, rtol=0, atol=1e-13)


def test_rho_per_start_point():
    p = _problem(GROUPS)
    rhos = np.array([0.0, 0.3])
    for make in (
        lambda r: MSharpnessSAM(SGD(lr=0.3), rho=r, m=4),
        lambda r: ESAM(SGD(lr=0.3), rho=r, beta=1.0, gamma=0.5),
        lambda r: ImbSAM(SGD(lr=0.3), rho=r),
        lambda r: SSAMF(SGD(lr=0.3), rho=r, num_samples=5, update_freq=2),
    ):
        both = _run(make(rhos), p, steps=4)
        for k, r in enumerate(rhos):
            single = _run(make(float(r)), p, X0[k], 4)
            np.testing.assert_allclose(both.xs[:, k], single.xs, rtol=0, atol=1e-14)


def _classes():
    return [
        (MSharpnessSAM, lambda **kw: MSharpnessSAM(SGD(lr=0.1), **kw)),
        (MultiStepSAM, lambda **kw: MultiStepSAM(SGD(lr=0.1), **kw)),
        (ESAM, lambda **kw: ESAM(SGD(lr=0.1), **kw)),
        (SSAMF, lambda **kw: SSAMF(SGD(lr=0.1), **kw)),
        (SSAMD, lambda **kw: SSAMD(SGD(lr=0.1), **kw)),
        (ImbSAM, lambda **kw: ImbSAM(SGD(lr=0.1), **kw)),
        (BSAM, BSAM),
    ]


CASES = [
    (cls.__name__, spec.name, bad, make)
    for cls, make in _classes()
    for spec in cls.HYPERPARAMETERS
    for bad in spec.invalid_values()
]


@pytest.mark.parametrize(
    ("cls", "param", "bad", "make"), CASES, ids=[f"{c[0]}-{c[1]}-{i}" for i, c in enumerate(CASES)]
)
def test_every_invalid_hyperparameter_raises_naming_it(cls, param, bad, make):
    with _raises_naming(param):
        make(**{param: bad})


@pytest.mark.parametrize(("cls", "make"), _classes())
def test_defaults_construct_and_base_is_checked(cls, make):
    make(**{spec.name: spec.default for spec in cls.HYPERPARAMETERS})
    if cls is not BSAM:
        with _raises_naming("base"):
            cls(SGD)


def test_ssamd_t_end_must_exceed_t_start():
    with _raises_naming("T_end"):
        SSAMD(SGD(lr=0.1), T_start=10, T_end=10)


@pytest.mark.parametrize(
    "make",
    [
        lambda: MSharpnessSAM(SGD(lr=0.1)),
        lambda: ESAM(SGD(lr=0.1), gamma=0.5),
        lambda: SSAMF(SGD(lr=0.1)),
    ],
)
def test_plain_functions_are_refused_only_where_examples_are_needed(make):
    opt = make()
    if isinstance(opt, SSAMF):  # the Fisher mask falls back to g² on a plain function
        assert np.all(np.isfinite(_run(opt, _quadratic(), steps=3).xs))
        return
    with pytest.raises(ValueError, match="sum-of-examples problem"):
        _run(opt, _quadratic(), steps=1)


def test_needs_examples_says_which_settings_need_a_problem():
    needs = {name: make(SGD(lr=0.1)).needs_examples for name, make in VARIANTS.items()}
    assert needs == {
        "MSharpnessSAM": True,
        "MultiStepSAM": False,
        "ESAM": True,
        "SSAMF": False,
        "SSAMD": False,
        "ImbSAM": True,
        "BSAM": True,
    }
    assert not ESAM(SGD(lr=0.1), gamma=1.0).needs_examples
    assert not BSAM(batchsplit=1).needs_examples
    # What claims not to need examples runs on a plain function.
    for opt in (
        ESAM(SGD(lr=0.1), gamma=1.0),
        BSAM(batchsplit=1, num_data=100.0),
        *(make(SGD(lr=0.1)) for make in VARIANTS.values()),
    ):
        if not opt.needs_examples:
            assert np.all(np.isfinite(_run(opt, _quadratic(), steps=4).xs)), opt
