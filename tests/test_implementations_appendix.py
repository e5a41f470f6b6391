"""The computed differences of the appendix ``book/implementations.md`` ("Implementations
compared"): papers, official code, library ports and the documents the project started from.

Only the claims no other test checks; the chapters' and the optimizers' tests cover the rest
(``test_friendly_sam_matches_pytorch_optimizer``,
``test_sds_selects_exactly_k_and_the_official_strict_rule_does_not``, …).
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from stepping import QUADRATIC, W0, points_and_states

import sampy
from sampy.optim import (
    GSAM,
    SAM,
    SGD,
    AdamWMSAMScheduleFree,
    ImbSAM,
    LookSAM,
    NotesAdamWMSAMScheduleFree,
)
from sampy.optim.checkpoints import checkpoints
from sampy.optim.schedule_free import ScheduleFreeAdamW

F = sampy.functions.get("rosenbrock")
X0 = np.array([-1.0, 1.5])
LR = 1e-3


def _ours(opt, steps: int) -> np.ndarray:
    return sampy.run(opt, F, X0, steps).xs[1:]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _defaults(cls) -> dict:
    return {
        k: p.default
        for k, p in inspect.signature(cls.__init__).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def test_keras_port_sam_is_gradient_descent_and_not_sam():
    """The Keras port's update_step: perturb, restore, then the base step with the same clean
    gradient."""
    x, xs = X0, []
    for _ in range(100):
        g = F.grad(x)
        eps = 0.05 * g / (np.linalg.norm(g) + 1e-12)
        x = (x + eps) - eps - LR * g
        xs.append(x)
    xs = np.array(xs)
    assert np.abs(xs - _ours(SGD(lr=LR), 100)).max() < 1e-12
    assert np.abs(xs - _ours(SAM(SGD(lr=LR), rho=0.05), 100)).max() > 1e-2


def _total_minus_sam_gradient(rho: float, h: float = 1e-6) -> np.ndarray:
    """∇_w L(w + ε̂(w)) by central differences, minus SAM's ∇L(w + ε̂)."""

    def objective(w):
        return F.fn(w + rho * _unit(F.grad(w)))

    total = np.array([(objective(X0 + h * e) - objective(X0 - h * e)) / (2 * h) for e in np.eye(2)])
    return total - F.grad(X0 + rho * _unit(F.grad(X0)))


def test_total_derivative_is_not_sams_gradient_and_the_dropped_term_is_second_order():
    """The total derivative keeps the term (dε̂/dw)ᵀ∇L(w + ε̂) that SAM drops.

    The transpose (dε̂/dw)ᵀ = ρH(I − ĝĝᵀ)/‖g‖ annihilates g (the Jacobian itself does not), so
    what is left is ρ²H(I − ĝĝᵀ)Hĝ/‖g‖ + …: halving ρ divides the difference by about 4.
    """
    gap = np.linalg.norm(_total_minus_sam_gradient(0.05))
    assert gap > 1e-2
    ratio = gap / np.linalg.norm(_total_minus_sam_gradient(0.025))
    assert 3.5 < ratio < 5.0
    g = F.grad(X0)
    g_hat = _unit(g)
    jacobian = 0.05 * (np.eye(2) - np.outer(g_hat, g_hat)) @ F.hessian(X0) / np.linalg.norm(g)
    assert np.abs(jacobian.T @ g).max() < 1e-9 * np.linalg.norm(g)
    assert np.linalg.norm(jacobian @ g) > 1e-3 * np.linalg.norm(g)


def test_esam_paper_and_code_perturbation_lengths_differ_and_sampy_defaults_to_the_paper():
    rng = np.random.default_rng(0)
    rho, beta, dim = 0.05, 0.5, 10_000
    g = rng.normal(size=dim)
    masks = rng.random((200, dim)) < beta
    paper = np.mean(np.sum((rho / beta * masks * _unit(g)) ** 2, axis=1))
    assert abs(paper / (rho**2 / beta) - 1) < 0.01
    assert abs(np.sum((rho / beta * _unit(g)) ** 2) - (rho / beta) ** 2) < 1e-12
    hyper = sampy.variant("ESAM").defaults()
    assert hyper["swp_granularity"] == "coordinate" and hyper["swp_norm"] == "full"


def _looksam_loop(steps, *, stale, lr, rho=0.05, k=5, alpha=0.7):
    x, xs, saved, gv = X0, [], X0, None
    for t in range(steps):
        g = F.grad(x)
        if t % k == 0:
            saved = x
            gs = F.grad(x + rho * g / (np.linalg.norm(g) + 1e-12))
            gv = gs - (g @ gs) / (g @ g + 1e-12) * g
            d = gs
        else:
            d = g + alpha * np.linalg.norm(g) / (np.linalg.norm(gv) + 1e-8) * gv
        if stale:
            x = saved
        x = x - lr * d
        xs.append(x)
    return np.array(xs)


def test_looksam_stale_restore_differs_and_the_correct_loop_is_sampy():
    """Restoring the saved weights on reuse steps (LookSAM's siblings) discards their progress."""
    lr = LR / 2
    ref = _ours(LookSAM(SGD(lr=lr), rho=0.05, k=5, alpha=0.7), 300)
    assert np.abs(_looksam_loop(300, stale=False, lr=lr) - ref).max() < 1e-9
    assert np.abs(_looksam_loop(300, stale=True, lr=lr) - ref).max() > 1e-2


def test_notes_formula_and_schedule_free_msam_are_different_algorithms():
    notes = _ours(NotesAdamWMSAMScheduleFree(lr=1e-2, weight_decay=0.0), 300)
    consistent = _ours(AdamWMSAMScheduleFree(lr=1e-2), 300)
    assert np.abs(notes - consistent).max() > 1e-2
    assert sampy.variant("AdamWMSAMScheduleFree").grad_evals == "1"
    assert sampy.variant("NotesAdamWMSAMScheduleFree").grad_evals.startswith("2")


def test_gsam_step_is_the_decomposition_with_pytorch_optimizers_alpha():
    g = F.grad(X0)
    g_sam = F.grad(X0 + 0.05 * _unit(g))
    g_perp = g - (g @ g_sam) / (g_sam @ g_sam) * g_sam
    step = _ours(GSAM(SGD(lr=LR), rho=0.05, alpha=0.4), 1)[0]
    np.testing.assert_allclose(step, X0 - LR * (g_sam - 0.4 * g_perp), rtol=0, atol=1e-12)
    po = pytest.importorskip("pytorch_optimizer")
    assert sampy.variant("GSAM").defaults()["alpha"] == _defaults(po.GSAM)["alpha"] == 0.4


def test_documented_wsam_parameters_are_pytorch_optimizers_looksam_defaults():
    """The Keras SAM library's documentation lists LookSAM's parameters under WSAM."""
    po = pytest.importorskip("pytorch_optimizer")
    documented_wsam = {"rho": 0.1, "k": 10, "alpha": 0.7, "use_gc": False}
    look, wsam = _defaults(po.LookSAM), _defaults(po.WSAM)
    assert all(look[k] == v for k, v in documented_wsam.items())
    assert not {"k", "alpha", "use_gc"} & set(wsam)


def test_notes_clamp_with_a_lower_bound_sets_every_coordinate_to_the_bound():
    torch = pytest.importorskip("torch")
    eps = 0.05 * _unit(F.grad(X0))
    assert np.all(torch.clamp(torch.tensor(eps), min=1.0).numpy() == 1.0)
    assert np.all(np.abs(eps) < 1.0)


def test_pytorch_optimizer_sam_as_shipped_differs_by_its_float32_norm(monkeypatch):
    """About 1e-8 as shipped, rounding with the norm taken in float64."""
    torch = pytest.importorskip("torch")
    po = pytest.importorskip("pytorch_optimizer")
    import pytorch_optimizer.optimizer.sam as po_sam

    import sampy.torch as st

    loss = st.as_torch_loss(F)

    def run(steps):
        x = torch.nn.Parameter(torch.tensor(X0, dtype=torch.float64))
        opt = po.SAM([x], torch.optim.SGD, rho=0.05, lr=LR, momentum=0.5)

        def closure():
            opt.zero_grad()
            value = loss(x)
            value.backward()
            return value

        xs = []
        for _ in range(steps):
            closure()
            opt.step(closure)
            xs.append(x.detach().numpy().copy())
        return np.array(xs)

    def float64_norm(param_groups, device=None, *, weight_adaptive=False):
        grads = [p.grad for group in param_groups for p in group["params"] if p.grad is not None]
        return torch.stack([g.norm() for g in grads]).square().sum().reshape(1)

    ours = _ours(SAM(SGD(lr=LR, momentum=0.5), rho=0.05), 100)
    shipped = run(100)
    monkeypatch.setattr(po_sam, "get_global_gradient_norm", float64_norm)
    patched = run(100)
    assert 1e-10 < np.abs(shipped - ours).max() < 1e-6
    assert np.abs(patched - ours).max() < 1e-13


# -- the Momentum-SAM-ScheduleFree notes' formula ----------------------------------------------


@pytest.mark.parametrize("r, p", [(0.0, 0.0), (0.0, 2.0), (1.0, 2.0)])
def test_notes_formula_without_ascent_is_adamw_with_step_c_alpha(r, p):
    """Proposition prop-impl-notes-decay: ρ = 0 ⇒ θ_t = θ_{t−1} − c_t α_t (m_t/(√v_t + ε) +
    λ θ_{t−1}), by a hand-written Adam recursion; r = p = 0 ⇒ c_t = 1/t."""
    lr, (b1, b2), eps, lam = 0.05, (0.9, 0.999), 1e-8, 0.01
    opt = NotesAdamWMSAMScheduleFree(
        lr=lr, rho=0.0, weight_decay=lam, r=r, weight_lr_power=p, grad_mode="clean_only"
    )
    thetas, _ = points_and_states(opt, QUADRATIC, W0, 80)
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


def test_notes_ascent_momentum_is_m_over_one_minus_beta1():
    """Lemma lem-impl-notes-x: x_t = m_t/(1 − β1) at every step (the notes' loop, ρ > 0)."""
    opt = NotesAdamWMSAMScheduleFree(lr=0.05, rho=0.1, betas=(0.85, 0.99))
    _, states = points_and_states(opt, QUADRATIC, W0, 40)
    for state in states:
        np.testing.assert_allclose(state.x, state.m / (1 - 0.85), rtol=1e-12, atol=1e-15)
    assert np.array_equal(opt.ascent(states[0]), np.zeros(2))  # d_1 = 0: the norm is guarded


def test_notes_formula_with_ascent_ends_above_its_start_on_the_noisy_quadratic():
    """The appendix's side-by-side run: the notes' formula (ρ = 0.05) ends with a higher loss
    than it started with, its ρ = 0 version lower, both schedule-free optimizers near 0."""
    noisy = sampy.problems.NoisyGradient(QUADRATIC, sigma=1.0, seed=0)
    start = QUADRATIC(W0)
    finals = {}
    for name, opt in {
        "notes": NotesAdamWMSAMScheduleFree(lr=0.05, rho=0.05, weight_decay=0.0, warmup_steps=20),
        "notes, rho = 0": NotesAdamWMSAMScheduleFree(
            lr=0.05, rho=0.0, weight_decay=0.0, warmup_steps=20
        ),
        "schedule-free": ScheduleFreeAdamW(lr=0.05, warmup_steps=20),
        "msam-sf": AdamWMSAMScheduleFree(lr=0.05, rho=0.05, warmup_steps=20),
    }.items():
        points, states = points_and_states(opt, noisy, W0, 400)
        finals[name] = QUADRATIC(opt.eval(points[-1], states[-1]))
    assert finals["notes"] > start > finals["notes, rho = 0"]
    assert finals["schedule-free"] < 1e-2 and finals["msam-sf"] < 1e-2


def test_notes_interpolation_weight_is_one_over_t_until_the_first_step_stops_being_largest():
    """With p = 2 the weights (max α)² are constant while α_1 (Adam's 1/(1 − β1) correction)
    is the largest step, then grow; t·c_t is 1 until about step 100 and near 1.69 at 300."""
    b1, b2 = 0.9, 0.999
    t = np.arange(1, 301)
    alpha = np.sqrt(1 - b2**t) / (1 - b1**t)
    weights = np.maximum.accumulate(alpha) ** 2
    tc = t * weights / np.cumsum(weights)
    first = int(t[tc > 1 + 1e-9][0])
    assert 50 < first < 200 and 1.6 < tc[-1] < 1.8


# -- ImbSAM's tail weight and the anatomy notes' ratio guard -----------------------------------


def test_imbsam_tail_weight_is_the_official_loops_factor():
    """tail_weight scales the tail's share of the step (official loop since 94a22ba: 2)."""
    problem = sampy.problems.make_logistic_problem(60, 3, imbalance=0.2, seed=0)
    tail = problem.groups == "tail"
    w, n = np.array([0.2, -0.1, 0.3]), problem.n
    g_head = problem.grad(w, np.flatnonzero(~tail)) * (~tail).sum() / n
    g_tail = problem.grad(w, np.flatnonzero(tail)) * tail.sum() / n
    for weight in (1.0, 2.0):
        eps = 0.1 * g_tail / np.linalg.norm(g_tail)
        g_adv = problem.grad(w + eps, np.flatnonzero(tail)) * weight * tail.sum() / n
        lib = sampy.run(ImbSAM(SGD(lr=0.5), rho=0.1, tail_weight=weight), problem, w, 1).xs[-1]
        np.testing.assert_allclose(lib, w - 0.5 * (g_head + g_adv), rtol=1e-12, atol=1e-14)
    assert sampy.variant("ImbSAM").defaults()["tail_weight"] == 2.0


def test_notes_ratio_guard_ignores_the_sign_and_the_default_does_not():
    g = np.array([0.0, -5e-9, 2.0, -3.0])
    g_adv = np.array([1.0, 1.0, 3.0, 1.0])
    assert checkpoints(g, g_adv, mode="notes_code").tolist() == [1, 1, 1, 4]
    assert checkpoints(g, g_adv).tolist() == [0, 0, 1, 4]
