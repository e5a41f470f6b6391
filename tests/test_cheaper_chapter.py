"""Every identity stated in the chapter "Making SAM cheaper" (book/cheaper.md), checked.

The costs in calls and in passes over the data, LookSAM, ESAM, SSAM, MSAM and AdamW-MSAM,
multi-step ascent (its radius under both conventions) and m-SAM; the page's reproducibility
note names this file, and no lemma names a test.
"""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path

import numpy as np
import pytest

import sampy
from sampy.optim import (
    ESAM,
    MSAM,
    SAM,
    SGD,
    SSAMD,
    SSAMF,
    AdamWMSAM,
    LookSAM,
    MSharpnessSAM,
    MultiStepSAM,
    Oracle,
)
from sampy.problems import make_logistic_problem

PAGE = Path(__file__).resolve().parents[1] / "book" / "cheaper.md"
TOY = sampy.functions.get("sharp_flat")
ROSEN = sampy.functions.get("rosenbrock")
STARTS = np.random.default_rng(3).uniform((-1.0, -1.0), (3.0, 1.0), size=(12, 2))
ROSEN_STARTS = np.random.default_rng(4).uniform(-1.5, 1.5, size=(6, 2))


@pytest.fixture(scope="module")
def logistic():
    return make_logistic_problem(n=64, dim=10, noise=0.1, l2=1e-3, seed=0)


def _dot(a, b):
    return np.einsum("...i,...i->...", a, b)


# --------------------------------------------------------------------------- costs


CHAPTER_SETTINGS = {
    "SAM": {},
    "LookSAM": {"k": 5},
    "ESAM": {"beta": 0.5, "gamma": 0.5},
    "SSAMF": {"sparsity": 0.5, "num_samples": 16, "update_freq": 5},
    "SSAMD": {"sparsity": 0.5},
    "MSAM": {"weight_decay": 0.0},
    "AdamWMSAM": {"weight_decay": 0.0},
    "MultiStepSAM": {"ascent_steps": 3},
    "MSharpnessSAM": {"m": 16},
}


class PassCounter(Oracle):
    """The page's oracle: it also counts passes over the data (examples / n)."""

    def __init__(self, fn):
        super().__init__(fn)
        self.grad_passes = 0.0
        self.forward_passes = 0.0

    def _share(self, examples):
        if self.problem is None or examples is None:
            return 1.0
        examples = np.asarray(examples)
        size = examples.sum(axis=-1).mean() if examples.dtype == bool else examples.size
        return float(size) / self.problem.n

    def grad(self, x, examples=None):
        self.grad_passes += self._share(examples)
        return super().grad(x, examples)

    def per_example_grads(self, x, examples=None):
        self.grad_passes += self._share(examples)
        return super().per_example_grads(x, examples)

    def batch_grads(self, points, batches):
        self.grad_passes += sum(len(b) for b in batches) / self.problem.n
        return super().batch_grads(points, batches)

    def per_example_losses(self, x, examples=None):
        self.forward_passes += self._share(examples)
        return super().per_example_losses(x, examples)


def _passes(opt, problem, x0, steps):
    x, oracle = np.array(x0, dtype=float), PassCounter(problem)
    state = opt.init(x)
    for _ in range(steps):
        x, state = opt.step(x, state, oracle)
    return oracle


@pytest.mark.parametrize("name", list(CHAPTER_SETTINGS))
def test_measured_cost_equals_the_registry(name, logistic):
    row = sampy.variant(name)
    hyper = CHAPTER_SETTINGS[name]
    problem = logistic if row.needs_examples else TOY
    traj = sampy.run(row.make(SGD(lr=0.01), **hyper), problem, np.zeros(problem.dim), 20)
    assert traj.grad_evals / traj.steps == row.evals_per_step({**row.defaults(), **hyper})


@pytest.mark.parametrize("m", [1, 5, 16, 64])
def test_msharpness_costs_two_passes_whatever_m(m, logistic):
    oracle = _passes(MSharpnessSAM(SGD(lr=0.1), m=m), logistic, np.zeros(10), 3)
    assert oracle.calls == 3 * 2 * math.ceil(64 / m)
    assert oracle.grad_passes == pytest.approx(3 * 2.0, rel=1e-12)


@pytest.mark.parametrize("gamma", [0.25, 0.5, 1.0])
def test_esam_costs_one_plus_phi_passes_and_a_forward_pass(gamma, logistic):
    oracle = _passes(ESAM(SGD(lr=0.1), rho=0.05, beta=0.5, gamma=gamma), logistic, np.zeros(10), 4)
    assert oracle.calls == 8
    assert oracle.grad_passes == pytest.approx(4 * (1 + gamma), rel=1e-12)
    assert oracle.forward_passes == (0 if gamma >= 0.99 else 8)


@pytest.mark.parametrize("update_freq", [1, 5, 10])
def test_ssamf_passes_count_its_fisher_examples_as_a_fraction_of_n(update_freq, logistic):
    steps, n_s = 20, 16
    opt = SSAMF(SGD(lr=0.1), sparsity=0.5, num_samples=n_s, update_freq=update_freq)
    oracle = _passes(opt, logistic, np.zeros(10), steps)
    refreshes = math.ceil(steps / update_freq)
    assert oracle.calls == 2 * steps + refreshes * n_s
    assert oracle.grad_passes == pytest.approx(2 * steps + refreshes * n_s / 64, rel=1e-12)


def test_msharpness_cost_is_two_ceil_n_over_m(logistic):
    for m in (1, 5, 16, 64, 100):
        traj = sampy.run(MSharpnessSAM(SGD(lr=0.1), m=m), logistic, np.zeros(10), 3)
        assert traj.grad_evals == 3 * 2 * math.ceil(64 / min(m, 64))


# --------------------------------------------------------------------------- LookSAM


def test_looksam_gv_is_orthogonal_and_the_reuse_has_length_alpha_g():
    alpha = 0.7
    opt = LookSAM(SGD(lr=1e-3), rho=0.1, k=3, alpha=alpha)
    x = ROSEN_STARTS
    g0 = ROSEN.grad(x)
    x1, state = opt.step(x, opt.init(x), Oracle(ROSEN))
    np.testing.assert_allclose(_dot(state.g_v, g0), 0.0, atol=1e-9 * np.abs(g0).max() ** 2)
    # a reuse step with SGD(lr) moves by lr d: read d off and compare with g + c g_v
    g1 = ROSEN.grad(x1)
    x2, _ = opt.step(x1, state, Oracle(ROSEN))
    d = (x1 - x2) / 1e-3
    extra = d - g1
    g_v = state.g_v
    cross = extra[:, 0] * g_v[:, 1] - extra[:, 1] * g_v[:, 0]  # parallel in 2-D: zero cross
    np.testing.assert_allclose(cross, 0.0, atol=1e-8 * np.abs(extra).max() * np.abs(g_v).max())
    assert np.all(_dot(extra, g_v) >= 0)
    nv = np.linalg.norm(g_v, axis=-1)
    expected = alpha * np.linalg.norm(g1, axis=-1) * nv / (nv + 1e-8)
    np.testing.assert_allclose(np.linalg.norm(extra, axis=-1), expected, rtol=1e-6)


def test_looksam_k1_is_sam():
    for f, x0 in [(TOY, STARTS), (ROSEN, ROSEN_STARTS)]:
        look = sampy.run(LookSAM(SGD(lr=1e-3), rho=0.05, k=1), f, x0, 200)
        sam = sampy.run(SAM(SGD(lr=1e-3), rho=0.05), f, x0, 200)
        np.testing.assert_allclose(look.xs, sam.xs, rtol=0, atol=1e-12)
        assert look.grad_evals == sam.grad_evals == 400


def test_looksam_rho0_is_the_base_optimizer():
    look = sampy.run(LookSAM(SGD(lr=1e-3, momentum=0.9), rho=0.0, k=4), ROSEN, ROSEN_STARTS, 200)
    sgd = sampy.run(SGD(lr=1e-3, momentum=0.9), ROSEN, ROSEN_STARTS, 200)
    np.testing.assert_allclose(look.xs, sgd.xs, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("steps", "k"), [(20, 5), (21, 5), (7, 10), (13, 1), (9, 2)])
def test_looksam_cost_is_t_plus_ceil_t_over_k(steps, k):
    traj = sampy.run(LookSAM(SGD(lr=1e-3), rho=0.1, k=k), TOY, STARTS, steps)
    assert traj.grad_evals == steps + math.ceil(steps / k)


def test_looksam_from_scratch_of_the_page_matches_sampy():
    def looksam_from_scratch(grad, w0, lr, rho, k, alpha, steps):
        w = np.array(w0, dtype=float)
        path, g_v = [w], None
        for t in range(steps):
            g = grad(w)
            gg = np.vecdot(g, g)[..., None]
            if t % k == 0:
                g_s = grad(w + g * (rho / (np.sqrt(gg) + 1e-12)))
                along = np.where(gg > 0, np.vecdot(g_s, g)[..., None] / np.where(gg > 0, gg, 1), 0)
                g_v = g_s - along * g
                d = g_s
            else:
                ratio = np.sqrt(gg) / (np.sqrt(np.vecdot(g_v, g_v))[..., None] + 1e-8)
                d = g + alpha * ratio * g_v
            w = w - lr * d
            path.append(w)
        return np.stack(path)

    mine = looksam_from_scratch(TOY.grad, STARTS, 0.008, 0.1, 5, 0.7, 300)
    lib = sampy.run(LookSAM(SGD(lr=0.008), rho=0.1, k=5, alpha=0.7), TOY, STARTS, 300)
    np.testing.assert_allclose(mine, lib.xs, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- ESAM


def test_swp_is_unbiased_by_exact_enumeration():
    rho, beta = 0.3, 0.6
    esam = ESAM(SGD(lr=0.1), rho=rho, beta=beta, gamma=1.0)
    x = np.array([0.5, -1.0, 2.0])
    g = np.array([1.0, -2.0, 0.5])
    mean, second = np.zeros(3), 0.0
    for bits in itertools.product([False, True], repeat=3):
        keep = np.array(bits)
        weight = beta ** keep.sum() * (1 - beta) ** (3 - keep.sum())
        e = esam.swp_perturbation(x, g, keep)
        mean += weight * e
        second += weight * float(e @ e)
    norm = np.linalg.norm(g)
    np.testing.assert_allclose(mean, rho * g / (norm + 1e-7), rtol=1e-12)
    np.testing.assert_allclose(second, rho**2 / beta * norm**2 / (norm + 1e-7) ** 2, rtol=1e-12)


def test_swp_kept_norm_has_length_rho_over_beta():
    rho, beta = 0.2, 0.5
    esam = ESAM(SGD(lr=0.1), rho=rho, beta=beta, gamma=1.0, swp_norm="kept")
    rng = np.random.default_rng(0)
    x, g = rng.normal(size=(2, 50, 6))
    keep = rng.random((50, 6)) < beta
    keep[:, 0] = True  # at least one kept coordinate per point
    e = esam.swp_perturbation(x, g, keep)
    kept = np.linalg.norm(g * keep, axis=-1)
    np.testing.assert_allclose(
        np.linalg.norm(e, axis=-1), rho / beta * kept / (kept + 1e-7), rtol=1e-12
    )
    assert np.all(e[~keep] == 0)


def test_esam_without_swp_and_sds_is_sam():
    esam = sampy.run(ESAM(SGD(lr=1e-3), rho=0.05, beta=1.0, gamma=1.0), ROSEN, ROSEN_STARTS, 100)
    sam = sampy.run(SAM(SGD(lr=1e-3), rho=0.05, perturb_eps=1e-7), ROSEN, ROSEN_STARTS, 100)
    # the same formula, its products in another order: equal up to rounding
    np.testing.assert_allclose(esam.xs, sam.xs, rtol=0, atol=1e-9)


def test_sds_selects_exactly_k_and_the_official_strict_rule_does_not(logistic):
    esam = ESAM(SGD(lr=0.5), rho=0.05, beta=1.0, gamma=0.5)
    w = np.full(10, 0.3)
    before = logistic.per_example_losses(w)
    g = logistic.grad(w)
    for rho, official_count in [(0.05, 31), (0.0, 0)]:
        s = logistic.per_example_losses(w + rho * g / np.linalg.norm(g)) - before
        assert esam.select(s).sum() == 32
        assert (s > np.sort(s)[::-1][31]).sum() == official_count


def test_esam_with_sds_takes_the_second_gradient_on_the_selected_examples(logistic):
    esam = ESAM(SGD(lr=1.0), rho=0.1, beta=1.0, gamma=0.25)
    w = np.full(10, 0.2)
    g = logistic.grad(w)
    e = 0.1 * g / (np.linalg.norm(g) + 1e-7)
    s = logistic.per_example_losses(w + e) - logistic.per_example_losses(w)
    chosen = np.argsort(-s, kind="stable")[:16]
    expected = w - logistic.grad(w + e, examples=np.sort(chosen))
    stepped, _ = esam.step(w, esam.init(w), Oracle(logistic))
    np.testing.assert_allclose(stepped, expected, rtol=1e-12)


# --------------------------------------------------------------------------- SSAM


def test_ssam_perturbation_is_at_most_rho():
    rng = np.random.default_rng(1)
    g = rng.normal(size=(200, 7))
    mask = rng.random((200, 7)) < 0.5
    for opt in (SSAMF(SGD(lr=0.1), rho=0.3), SSAMD(SGD(lr=0.1), rho=0.3)):
        e = opt.masked_perturbation(g, mask)
        norms = np.linalg.norm(e, axis=-1)
        expected = 0.3 * np.linalg.norm(g * mask, axis=-1) / (np.linalg.norm(g, axis=-1) + 1e-7)
        np.testing.assert_allclose(norms, expected, rtol=1e-12)
        assert np.all(norms <= 0.3)


def test_ssam_s0_is_sam_and_s1_is_the_base():
    lr, rho, steps = 1e-3, 0.05, 60
    sam = SAM(SGD(lr=lr), rho=rho, perturb_eps=1e-7)
    # SSAM-D with s = 0 and no dropping: SAM from the first step
    ssamd = sampy.run(
        SSAMD(SGD(lr=lr), rho=rho, sparsity=0.0, drop_rate=0.0), ROSEN, ROSEN_STARTS, steps
    )
    np.testing.assert_allclose(
        ssamd.xs, sampy.run(sam, ROSEN, ROSEN_STARTS, steps).xs, rtol=0, atol=1e-12
    )
    # SSAM-F with s = 0: the first step is a base step (mask all zeros), SAM after the refresh
    ssamf = sampy.run(
        SSAMF(SGD(lr=lr), rho=rho, sparsity=0.0, update_freq=1000), ROSEN, ROSEN_STARTS, steps
    )
    x1 = ROSEN_STARTS - lr * ROSEN.grad(ROSEN_STARTS)
    np.testing.assert_allclose(ssamf.xs[1], x1, rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        ssamf.xs[1:], sampy.run(sam, ROSEN, x1, steps - 1).xs, rtol=0, atol=1e-12
    )
    # s = 1: the base optimizer, at two evaluations per step
    sgd = sampy.run(SGD(lr=lr), ROSEN, ROSEN_STARTS, steps)
    for opt in (
        SSAMF(SGD(lr=lr), rho=rho, sparsity=1.0, update_freq=1000),
        SSAMD(SGD(lr=lr), rho=rho, sparsity=1.0, drop_rate=0.0),
    ):
        traj = sampy.run(opt, ROSEN, ROSEN_STARTS, steps)
        np.testing.assert_allclose(traj.xs, sgd.xs, rtol=0, atol=1e-12)
        assert traj.grad_evals >= 2 * steps


@pytest.mark.parametrize(("d", "s"), [(10, 0.2), (7, 0.5), (2, 0.5), (13, 0.3), (4, 0.0)])
def test_ssamf_mask_size(d, s):
    opt = SSAMF(SGD(lr=0.1), sparsity=s)
    fisher = np.random.default_rng(d).random((5, d))
    assert np.all(opt.fisher_mask(fisher).sum(axis=-1) == int(d * (1 - s)))


def test_ssamd_mask_empties_on_two_coordinates():
    opt = SSAMD(SGD(lr=0.008), rho=0.1, sparsity=0.5)
    x, state, oracle = np.array([-0.4, -0.4]), None, Oracle(TOY)
    state = opt.init(x)
    live = [int(state.mask.sum())]
    for _ in range(10):
        x, state = opt.step(x, state, oracle)
        live.append(int(state.mask.sum()))
    assert live == [1] + [0] * 10


# --------------------------------------------------------------------------- MSAM


def test_msam_invariant_and_sign():
    lr, mu, rho, wd = 5e-4, 0.9, 0.1, 1e-2
    opt = MSAM(lr=lr, momentum=mu, weight_decay=wd, rho=rho)
    x, state, oracle = STARTS, opt.init(STARTS), Oracle(TOY)
    w, v = STARTS.copy(), np.zeros_like(STARTS)
    for _ in range(50):
        d = TOY.grad(x) + wd * x  # the gradient at the stored, perturbed point
        v = mu * v + d
        w = w - lr * v
        x, state = opt.step(x, state, oracle)
        np.testing.assert_allclose(opt.unperturbed(x, state), w, rtol=1e-10, atol=1e-12)
        shift = rho * v / (np.linalg.norm(v, axis=-1, keepdims=True) + 1e-12)
        np.testing.assert_allclose(x + shift, w, rtol=1e-10, atol=1e-12)
        assert np.all(_dot(x - opt.unperturbed(x, state), state.momentum) <= 0)


def test_msam_rho0_is_heavy_ball():
    lr, mu, wd = 5e-4, 0.9, 1e-2
    traj = sampy.run(MSAM(lr=lr, momentum=mu, weight_decay=wd, rho=0.0), TOY, STARTS, 80)
    w, v = STARTS.copy(), np.zeros_like(STARTS)
    for t in range(80):
        v = mu * v + TOY.grad(w) + wd * w
        w = w - lr * v
        np.testing.assert_allclose(traj.xs[t + 1], w, rtol=1e-12, atol=1e-12)


def test_msam_one_gradient_per_step():
    for steps in (1, 17, 200):
        traj = sampy.run(MSAM(lr=1e-3, rho=0.1), TOY, STARTS, steps)
        assert traj.grad_evals == steps
    assert sampy.variant("MSAM").evals_per_step({}) == 1


# --------------------------------------------------------------------------- expensive ones


def test_multistep_k1_is_sam():
    multi = sampy.run(
        MultiStepSAM(SGD(lr=1e-3), rho=0.05, ascent_steps=1), ROSEN, ROSEN_STARTS, 150
    )
    sam = sampy.run(SAM(SGD(lr=1e-3), rho=0.05), ROSEN, ROSEN_STARTS, 150)
    np.testing.assert_allclose(multi.xs, sam.xs, rtol=0, atol=1e-12)


@pytest.mark.parametrize("k", [1, 2, 4])
def test_multistep_ascent_stays_within_k_rho(k):
    asked = []

    def grad(x):
        asked.append(np.array(x))
        return ROSEN.grad(x)

    rho = 0.05
    opt = MultiStepSAM(SGD(lr=1e-3), rho=rho, ascent_steps=k)
    w = ROSEN_STARTS
    opt.step(w, opt.init(w), Oracle.from_gradient(grad))
    assert len(asked) == k + 1 == opt.grad_evals_per_step
    for j, point in enumerate(asked):
        assert np.all(np.linalg.norm(point - w, axis=-1) <= j * rho * (1 + 1e-12))


@pytest.mark.parametrize("m", [64, 100])
def test_msharpness_m_at_least_n_is_sam(m, logistic):
    x0 = np.random.default_rng(2).normal(size=(4, 10))
    msam = sampy.run(MSharpnessSAM(SGD(lr=0.5), rho=0.3, m=m), logistic, x0, 30)
    sam = sampy.run(SAM(SGD(lr=0.5), rho=0.3), logistic, x0, 30)
    np.testing.assert_allclose(msam.xs, sam.xs, rtol=1e-10, atol=1e-12)
    assert msam.grad_evals == sam.grad_evals == 60


# --------------------------------------------------------------------------- AdamW-MSAM


def test_adamw_msam_invariant_and_rho0_is_adamw_with_the_decay_after_the_step():
    lr, (b1, b2), eps, wd, rho = 1e-2, (0.9, 0.999), 1e-8, 1e-2, 0.1
    for r in (rho, 0.0):
        opt = AdamWMSAM(lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd, rho=r)
        x, state, oracle = STARTS, opt.init(STARTS), Oracle(TOY)
        w, m, v = STARTS.copy(), np.zeros_like(STARTS), np.zeros_like(STARTS)
        for t in range(1, 41):
            g = TOY.grad(x)  # the only gradient, at the stored (perturbed) point
            m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
            w = w - lr / (1 - b1**t) * m / (np.sqrt(v / (1 - b2**t)) + eps)
            w = w * (1 - lr * wd)
            x, state = opt.step(x, state, oracle)
            np.testing.assert_allclose(opt.unperturbed(x, state), w, rtol=1e-10, atol=1e-12)
            shift = r * m / (np.linalg.norm(m, axis=-1, keepdims=True) + 1e-12)
            np.testing.assert_allclose(x, w - shift, rtol=1e-10, atol=1e-12)
            assert np.all(_dot(x - opt.unperturbed(x, state), state.m) <= 0)
        assert oracle.calls == 40


# --------------------------------------------------------------------------- multi-step radius


@pytest.mark.parametrize("k", [2, 3, 5])
def test_multistep_with_steps_of_rho_over_k_stays_in_the_rho_ball(k):
    asked = []

    def grad(x):
        asked.append(np.array(x))
        return TOY.grad(x)

    rho = 0.1
    opt = MultiStepSAM(SGD(lr=1e-3), rho=rho / k, ascent_steps=k)
    opt.step(STARTS, opt.init(STARTS), Oracle.from_gradient(grad))
    dist = np.stack([np.linalg.norm(p - STARTS, axis=-1) for p in asked])
    assert np.all(dist <= rho * (1 + 1e-12))
    # with steps of ρ the last point does leave the ρ-ball (by up to kρ)
    asked.clear()
    opt = MultiStepSAM(SGD(lr=1e-3), rho=rho, ascent_steps=k)
    opt.step(STARTS, opt.init(STARTS), Oracle.from_gradient(grad))
    assert np.linalg.norm(asked[-1] - STARTS, axis=-1).max() > 1.5 * rho


# --------------------------------------------------------------------------- the page


def test_the_page_names_no_test_and_its_note_names_this_file():
    text = PAGE.read_text()
    assert not re.findall(r"`test_[a-z0-9_]+`", text)
    assert "Checked by" not in text and "tests/test_cheaper_chapter.py" in text
