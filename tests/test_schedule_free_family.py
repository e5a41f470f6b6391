"""MSAM, Schedule-Free AdamW and their combinations (the notes' formula and ours).

MSAM: Becker et al., arXiv:2401.12033 (official code MarlonBecker/MSAM); Schedule-Free AdamW:
Defazio et al., NeurIPS 2024 (facebookresearch/schedule_free); the Momentum-SAM-ScheduleFree
notes (opooladz/Momentum-SAM-ScheduleFree README). Expected values are hand-written recursions
of the numbered updates in the modules' docstrings, trajectories of
other optimizers (``sampy.optim.SGD``/``Adam``, ``torch.optim.SGD``) or of the official
``schedulefree`` package; none is taken from the code under test. Equality is exact where both
sides do the same floating-point operations; every tolerance says where it comes from.
"""

from __future__ import annotations

import inspect
import math
import re

import numpy as np
import pytest
from stepping import points_and_states

import sampy
from sampy import functions
from sampy.optim import SAM, SGD, Adam, Oracle
from sampy.optim.base import check_base
from sampy.optim.msam import MSAM, AdamWMSAM
from sampy.optim.msam_schedule_free import AdamWMSAMScheduleFree, NotesAdamWMSAMScheduleFree
from sampy.optim.schedule_free import ScheduleFreeAdamW

A2 = np.array([[3.0, 1.0], [1.0, 2.0]])
B2 = np.array([1.0, -1.0])
X0 = np.array([[1.5, -1.0], [-1.0, 2.0], [0.3, 0.4]])
MINIMUM = np.linalg.solve(A2, B2)  # (0.6, −0.8)
STEPS = 60
EPS = 1e-12  # MSAM's guard in ρ/(‖v‖ + 1e-12)

ALL = [MSAM, AdamWMSAM, ScheduleFreeAdamW, NotesAdamWMSAMScheduleFree, AdamWMSAMScheduleFree]


def _quadratic():
    return functions.get("quadratic", A=A2, b=B2)


def _grad(w):
    """∇(½wᵀAw − bᵀw) = Aw − b, by hand (A is symmetric)."""
    return w @ A2 - B2


def _norm(v):
    return np.linalg.norm(v, axis=-1, keepdims=True)


def _dot(a, b):
    return np.einsum("...i,...i->...", a, b)


def _steps(opt, x0, n, f=None):
    """Points and states of n steps (the states are what ``sampy.run`` does not return)."""
    return points_and_states(opt, f or _quadratic(), x0, n)


def _raises_naming(name):
    return pytest.raises(ValueError, match=rf"(?<![A-Za-z_]){re.escape(name)}(?![A-Za-z_])")


# ---------------------------------------------------------------------------------------------
# MSAM


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
@pytest.mark.parametrize("fname", ["quadratic", "himmelblau"])
def test_msam_rho_zero_is_sgd_momentum_bit_for_bit(weight_decay, fname):
    """ρ = 0: scale = 0, so w = w̃ and MSAM's buffer is torch's SGD buffer (v_1 = d_1)."""
    f = _quadratic() if fname == "quadratic" else functions.get("himmelblau")
    x0 = np.array([[1.5, -1.0], [-1.0, 2.0], [2.5, -1.5]])
    msam = sampy.run(MSAM(lr=0.01, momentum=0.9, weight_decay=weight_decay, rho=0.0), f, x0, STEPS)
    sgd = sampy.run(SGD(lr=0.01, momentum=0.9, weight_decay=weight_decay), f, x0, STEPS)
    assert np.abs(sgd.xs[-1] - x0).max() > 1e-2  # it moved
    np.testing.assert_array_equal(msam.xs, sgd.xs)


def test_msam_rho_zero_is_torch_sgd_in_float64():
    torch = pytest.importorskip("torch")
    lr, mu, wd = 0.02, 0.9, 0.05
    traj = sampy.run(MSAM(lr=lr, momentum=mu, weight_decay=wd, rho=0.0), _quadratic(), X0[0], 80)
    p = torch.tensor(X0[0], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([p], lr=lr, momentum=mu, weight_decay=wd)
    grad = _quadratic().analytic_grad  # the gradient sampy.run used, to the last bit
    xs = [p.detach().numpy().copy()]
    for _ in range(80):
        p.grad = torch.from_numpy(grad(p.detach().numpy()))
        opt.step()
        xs.append(p.detach().numpy().copy())
    # Same operations in the same order (d + λw, μb + d, w − ηb), but torch's CPU kernels fuse
    # a + αb (one rounding instead of two): last-bit differences, nothing more.
    np.testing.assert_allclose(traj.xs, np.array(xs), rtol=0, atol=4e-16)


def _msam_by_hand(x0, n, lr, mu, wd, rho):
    """MSAM's official update written on the un-perturbed w: w̃ = w − ρ v/(‖v‖ + 1e-12), g at w̃."""
    w, v = x0.copy(), np.zeros_like(x0)
    ws, vs = [w], [v]
    for _ in range(n):
        w_tilde = w - rho * v / (_norm(v) + EPS)
        d = _grad(w_tilde) + wd * w_tilde
        v = mu * v + d
        w = w - lr * v
        ws.append(w)
        vs.append(v)
    return np.array(ws), np.array(vs)


def test_msam_follows_the_official_update_and_keeps_its_invariant():
    lr, mu, wd, rho = 0.02, 0.9, 0.01, 0.3
    xs, states = _steps(MSAM(lr=lr, momentum=mu, weight_decay=wd, rho=rho), X0, STEPS)
    ws, vs = _msam_by_hand(X0, STEPS, lr, mu, wd, rho)
    opt = MSAM(lr=lr, momentum=mu, weight_decay=wd, rho=rho)
    for t in range(1, STEPS + 1):
        w_tilde, state = xs[t], states[t]
        # The direction v/‖v‖ turns a round-off δv into ρ δv/‖v‖ (×40 where v nearly
        # vanishes, around step 20): the two recursions agree to 1e-10, not to the last bit.
        np.testing.assert_allclose(state.momentum, vs[t], rtol=0, atol=1e-10)
        # Invariant w̃ + ρ v/(‖v‖+1e-12) = w.
        w = w_tilde + rho * state.momentum / (_norm(state.momentum) + EPS)
        np.testing.assert_allclose(w, ws[t], rtol=0, atol=1e-10)
        np.testing.assert_allclose(opt.unperturbed(w_tilde, state), ws[t], rtol=0, atol=1e-10)
        # The perturbation has length ρ‖v‖/(‖v‖ + 1e-12) and points against the momentum.
        n = _norm(state.momentum)
        np.testing.assert_allclose(_norm(w_tilde - w), rho * n / (n + EPS), rtol=1e-13)
        assert (_dot(w_tilde - w, state.momentum) < 0).all()
    assert np.abs(ws[-1] - X0).max() > 0.1


@pytest.mark.parametrize("cls", [MSAM, AdamWMSAM])
def test_move_to_and_from_ascent_are_inverse(cls):
    opt = cls(lr=0.02, rho=0.5)
    xs, states = _steps(opt, X0, 10)
    w = opt.move_from_ascent(xs[-1], states[-1])
    np.testing.assert_allclose(opt.move_to_ascent(w, states[-1]), xs[-1], rtol=0, atol=1e-15)
    n = _norm(states[-1].momentum if cls is MSAM else states[-1].m)
    np.testing.assert_allclose(_norm(w - xs[-1]), 0.5 * n / (n + EPS), rtol=1e-13)
    # Before any step the perturbation is zero (v = 0): the stored point is x0 itself.
    s0 = opt.init(X0)
    np.testing.assert_array_equal(opt.move_from_ascent(X0, s0), X0)


def _adamw_after_by_hand(x0, n, lr, b1, b2, eps, wd, rho):
    """AdamW-MSAM's official update on the un-perturbed w.

    ρ = 0: AdamW with the decay applied AFTER the step.
    """
    w, m, v = x0.copy(), np.zeros_like(x0), np.zeros_like(x0)
    ws, ms = [w], [m]
    for t in range(1, n + 1):
        g = _grad(w - rho * m / (_norm(m) + EPS))
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        w = (w - lr * m_hat / (np.sqrt(v_hat) + eps)) * (1 - lr * wd)
        ws.append(w)
        ms.append(m)
    return np.array(ws), np.array(ms)


@pytest.mark.parametrize("rho", [0.0, 0.4])
def test_adamw_msam_follows_the_official_update(rho):
    lr, betas, eps, wd = 0.03, (0.9, 0.99), 1e-8, 0.1
    opt = AdamWMSAM(lr=lr, betas=betas, eps=eps, weight_decay=wd, rho=rho)
    xs, states = _steps(opt, X0, STEPS)
    ws, ms = _adamw_after_by_hand(X0, STEPS, lr, *betas, eps, wd, rho)
    unperturbed = np.array([opt.unperturbed(x, s) for x, s in zip(xs, states, strict=True)])
    # m̂/√v̂ is written differently from the code (round-off ~1e-16 per step), and with ρ > 0
    # the direction m/‖m‖ amplifies it by ρ/‖m‖ (×40 where m nearly vanishes): 1e-10.
    np.testing.assert_allclose(unperturbed, ws, rtol=0, atol=1e-10 if rho else 1e-13)
    if rho == 0:
        np.testing.assert_allclose(xs, ws, rtol=0, atol=1e-12)
    else:
        for t in range(1, STEPS + 1):
            n = _norm(ms[t])
            np.testing.assert_allclose(_norm(xs[t] - ws[t]), rho * n / (n + EPS), atol=2e-10)
            assert (_dot(xs[t] - ws[t], ms[t]) < 0).all()  # against the first moment


def test_adamw_msam_rho_zero_differs_from_torch_adamw_by_the_decay_order():
    """torch.optim.AdamW shrinks w before the Adam step: a small (O(η²λ)), nonzero difference."""
    lr, wd = 0.05, 0.5
    msam = sampy.run(AdamWMSAM(lr=lr, weight_decay=wd, rho=0.0), _quadratic(), X0, 20)
    adamw = sampy.run(sampy.optim.AdamW(lr=lr, weight_decay=wd), _quadratic(), X0, 20)
    gap = np.abs(msam.xs - adamw.xs).max()
    assert 0 < gap < 20 * 5 * lr**2 * wd


# ---------------------------------------------------------------------------------------------
# Schedule-Free AdamW


def _sf_by_hand(x0, n, lr, b1, b2, eps, wd, warmup, r, p, gen):
    """``AdamWScheduleFreeReference``'s update, in its order of operations."""
    z, x, y, v = x0.copy(), x0.copy(), x0.copy(), np.zeros_like(x0)
    lr_max, weight_sum = -1.0, 0.0
    ys = [y]
    for k in range(n):
        sched = (k + 1) / warmup if k < warmup else 1.0
        bc2 = 1 - b2 ** (k + 1)
        gamma = lr * sched * math.sqrt(bc2) if gen == "gen_a" else lr * sched
        lr_max = max(lr_max, gamma)
        weight = (k + 1) ** r * lr_max**p
        weight_sum += weight
        c = weight / weight_sum
        g = _grad(y)
        v = v * b2 + (1 - b2) * (g * g)
        den = (np.sqrt(v) if gen == "gen_a" else np.sqrt(v / bc2)) + eps
        z = z - (gamma * wd) * y
        z = z - gamma * (g / den)
        x = x * (1 - c) + c * z
        y = b1 * x + (1 - b1) * z
        ys.append(y)
    return np.array(ys), x


@pytest.mark.parametrize("gen", ["gen_a", "gen_b"])
def test_schedule_free_matches_a_hand_reference_for_50_steps_exactly(gen):
    hyper = dict(lr=0.05, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1)
    sched = dict(warmup_steps=5, r=0.5, weight_lr_power=2.0)
    opt = ScheduleFreeAdamW(**hyper, **sched, variant=gen)
    ys, states = _steps(opt, X0, 50)
    ref, x_ref = _sf_by_hand(X0, 50, 0.05, 0.9, 0.99, 1e-8, 0.1, 5, 0.5, 2.0, gen)
    np.testing.assert_array_equal(ys, ref)
    np.testing.assert_array_equal(opt.eval(ys[-1], states[-1]), x_ref)


def test_schedule_free_generations_differ():
    a = sampy.run(ScheduleFreeAdamW(lr=0.05, variant="gen_a"), _quadratic(), X0, STEPS)
    b = sampy.run(ScheduleFreeAdamW(lr=0.05, variant="gen_b"), _quadratic(), X0, STEPS)
    # GEN-A's first step is √(1−β2) ≈ 0.03 times GEN-B's.
    assert np.abs(a.xs - b.xs).max() > 1e-2


@pytest.mark.parametrize("gen", ["gen_a", "gen_b"])
def test_schedule_free_first_step_has_x_equal_to_z(gen):
    _, states = _steps(ScheduleFreeAdamW(lr=0.1, weight_decay=0.1, variant=gen), X0, 1)
    assert not np.array_equal(states[1].z, X0)
    np.testing.assert_array_equal(states[1].x, states[1].z)  # c = 1: x = 0·x + 1·z


def test_schedule_free_with_p_and_r_zero_averages_z_uniformly():
    opt = ScheduleFreeAdamW(lr=0.1, weight_lr_power=0.0, r=0.0, warmup_steps=3)
    _, states = _steps(opt, X0, 40)
    zs = np.array([s.z for s in states[1:]])
    for k in range(1, 41):
        # c = 1/k: the running mean, up to the round-off of the recursive form (~k ulp).
        np.testing.assert_allclose(states[k].x, zs[:k].mean(axis=0), rtol=0, atol=1e-14)


def test_schedule_free_with_beta1_zero_takes_gradients_at_z():
    ys, states = _steps(ScheduleFreeAdamW(lr=0.1, betas=(0.0, 0.999)), X0, 30)
    for k in range(1, 31):
        np.testing.assert_array_equal(ys[k], states[k].z)  # y = 0·x + 1·z


def test_schedule_free_eval_and_train_switch_between_x_and_y():
    opt = ScheduleFreeAdamW(lr=0.1, weight_decay=0.05)
    ys, states = _steps(opt, X0, 25)
    s0 = states[0]
    np.testing.assert_array_equal(opt.train(X0, s0), X0)
    np.testing.assert_array_equal(opt.eval(X0, s0), X0)
    for k in range(1, 26):
        x = opt.eval(ys[k], states[k])
        np.testing.assert_array_equal(x, states[k].x)
        np.testing.assert_array_equal(opt.train(x, states[k]), ys[k])
    # The average differs from where the gradients were taken, and lies closer to the minimum.
    x = opt.eval(ys[-1], states[-1])
    assert np.abs(x - ys[-1]).max() > 1e-3


def test_schedule_free_is_a_base_for_sam():
    """``update`` makes it a base optimizer: SAM with ρ = 0 is Schedule-Free AdamW exactly."""
    base = ScheduleFreeAdamW(lr=0.05, weight_decay=0.1)
    check_base(base)
    plain = sampy.run(base, _quadratic(), X0, STEPS)
    sam0 = sampy.run(
        SAM(ScheduleFreeAdamW(lr=0.05, weight_decay=0.1), rho=0.0), _quadratic(), X0, STEPS
    )
    np.testing.assert_array_equal(sam0.xs, plain.xs)
    sam = sampy.run(SAM(ScheduleFreeAdamW(lr=0.05), rho=0.1), _quadratic(), X0, STEPS)
    assert sam.grad_evals == 2 * STEPS
    assert np.abs(sam.xs - plain.xs).max() > 1e-3


def test_schedule_free_lr_grid_equals_separate_runs():
    lrs = np.array([0.01, 0.05, 0.2])
    grid = sampy.run(ScheduleFreeAdamW(lr=lrs, warmup_steps=4), _quadratic(), X0, 30)
    for i, lr in enumerate(lrs):
        alone = sampy.run(ScheduleFreeAdamW(lr=float(lr), warmup_steps=4), _quadratic(), X0[i], 30)
        np.testing.assert_array_equal(grid.xs[:, i], alone.xs)


A3 = np.array([[4.0, 1.0, 0.5], [1.0, 3.0, -0.2], [0.5, -0.2, 2.0]])
B3 = np.array([1.0, -2.0, 0.5])


@pytest.mark.parametrize(
    ("peer", "gen"),
    [
        ("AdamWScheduleFreeReference", "gen_b"),  # the three-buffer form followed here
        ("AdamWScheduleFree", "gen_b"),  # memory-efficient: updates y by lerp, stores no x
        ("AdamWScheduleFreePaper", "gen_a"),  # the paper's form, also memory-efficient
    ],
)
def test_schedule_free_matches_the_official_package(peer, gen):
    """``pip install schedulefree`` (facebookresearch, 1.4.1), float64 torch, 100 steps.

    Measured: at most 1.1e-15 apart over the whole run (torch fuses some a + b·c; the
    memory-efficient classes reach y by a different but algebraically equal route). The other
    generation is 0.056 away from the same peer, so 1e-14 tells the two apart.
    """
    torch = pytest.importorskip("torch")
    schedulefree = pytest.importorskip("schedulefree")
    w0 = np.array([1.5, -0.5, 2.0])
    hyper = dict(lr=0.05, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.05, warmup_steps=10)
    f = functions.get("quadratic", A=A3, b=B3)
    opt = ScheduleFreeAdamW(**hyper, r=0.5, variant=gen)
    ys, states = _steps(opt, w0, 100, f)
    p = torch.tensor(w0, dtype=torch.float64, requires_grad=True)
    kw = {"foreach": False} if peer != "AdamWScheduleFreeReference" else {}
    theirs = getattr(schedulefree, peer)([p], **hyper, r=0.5, **kw)
    theirs.train()
    for k in range(1, 101):
        p.grad = torch.from_numpy(A3 @ p.detach().numpy() - B3)
        theirs.step()
        np.testing.assert_allclose(p.detach().numpy(), ys[k], rtol=0, atol=1e-14, err_msg=f"{k}")
    theirs.eval()
    np.testing.assert_allclose(p.detach().numpy(), opt.eval(ys[-1], states[-1]), atol=1e-14)
    assert np.abs(ys[-1] - w0).max() > 0.1


# ---------------------------------------------------------------------------------------------
# The Momentum-SAM-ScheduleFree notes' formula


def _notes(**kw):
    base = dict(lr=0.05, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.0, rho=0.0)
    return NotesAdamWMSAMScheduleFree(**{**base, **kw})


@pytest.mark.parametrize("grad_mode", ["clean_only", "perturbed_only"])
def test_notes_rho_zero_without_interpolation_is_adam_with_eps_zero(grad_mode):
    """ρ = 0, c ≡ 1, λ = 0, ε = 0: α_t m/√v = η m̂/√v̂, Kingma & Ba's bias-corrected Adam."""
    notes = sampy.run(_notes(eps=0.0, interpolate=False, grad_mode=grad_mode), _quadratic(), X0, 50)
    adam = sampy.run(Adam(lr=0.05, betas=(0.9, 0.99), eps=0.0), _quadratic(), X0, 50)
    # The bias corrections are folded differently: relative round-off ~1e-16 per step.
    np.testing.assert_allclose(notes.xs, adam.xs, rtol=0, atol=1e-12)


def test_notes_rho_zero_without_interpolation_folds_eps_and_decay_into_alpha():
    """ρ = 0, c ≡ 1: θ ← θ − η m̂/(√v̂ + ε/√(1−β2ᵗ)) − α_t λ θ, written with m̂ and v̂."""
    lr, b1, b2, eps, wd = 0.05, 0.9, 0.99, 1e-3, 0.2
    notes = sampy.run(
        _notes(eps=eps, weight_decay=wd, interpolate=False, grad_mode="clean_only"),
        _quadratic(),
        X0,
        50,
    )
    theta, m, v, xs = X0.copy(), 0.0, 0.0, [X0]
    for t in range(1, 51):
        g = _grad(theta)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        alpha = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
        theta = (
            theta - lr * m_hat / (np.sqrt(v_hat) + eps / math.sqrt(1 - b2**t)) - alpha * wd * theta
        )
        xs.append(theta)
    np.testing.assert_allclose(notes.xs, np.array(xs), rtol=0, atol=1e-12)


def test_notes_rho_zero_with_uniform_weights_is_adamw_with_a_one_over_t_step():
    """ρ = 0, r = p = 0, constant η: c_t = 1/t, θ_t = θ_{t−1} − (1/t)·(AdamW increment)."""
    lr, b1, b2, eps, wd = 0.05, 0.9, 0.99, 1e-8, 0.1
    notes = sampy.run(
        _notes(weight_decay=wd, r=0.0, weight_lr_power=0.0, grad_mode="clean_only"),
        _quadratic(),
        X0,
        50,
    )
    theta, m, v, xs = X0.copy(), 0.0, 0.0, [X0]
    for t in range(1, 51):
        g = _grad(theta)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        alpha = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
        increment = alpha * m / (np.sqrt(v) + eps) + alpha * wd * theta
        theta = theta - increment / t
        xs.append(theta)
    np.testing.assert_allclose(notes.xs, np.array(xs), rtol=0, atol=1e-13)


@pytest.mark.parametrize("grad_mode", ["sum_two", "perturbed_only", "clean_only"])
def test_notes_ascent_momentum_is_m_over_one_minus_beta1(grad_mode):
    """x_0 = m_0 = 0 ⇒ x_t = m_t/(1 − β1) for every t (x duplicates m)."""
    _, states = _steps(_notes(rho=0.1, grad_mode=grad_mode, betas=(0.8, 0.99)), X0, 40)
    for s in states[1:]:
        np.testing.assert_allclose(s.x, s.m / (1 - 0.8), rtol=1e-12, atol=1e-14)


def test_notes_two_steps_by_hand_with_summed_gradients():
    """The README loop: g_t = ∇L(θ) + ∇L(θ + ρ d_t), then the formula from θ' = θ + ρ d_t."""
    lr, b1, b2, eps, wd, rho = 0.05, 0.9, 0.99, 1e-8, 0.1, 0.2
    opt = _notes(weight_decay=wd, rho=rho, grad_mode="sum_two")
    xs, _ = _steps(opt, X0, 3)
    theta, x, m, v, amax, wsum = X0.copy(), 0.0 * X0, 0.0, 0.0, -1.0, 0.0
    for t in (1, 2, 3):
        d = x / (_norm(x) + 1e-12)
        up = theta + rho * d
        g = _grad(theta) + _grad(up)
        alpha = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        theta2 = up - alpha * m / (np.sqrt(v) + eps) - alpha * wd * up
        x = b1 * x + g
        amax = max(amax, alpha)
        wsum += t**0.0 * amax**2
        c = amax**2 / wsum
        theta = (1 - c) * theta + c * theta2
        np.testing.assert_allclose(xs[t], theta, rtol=0, atol=1e-14)
    assert not np.allclose(xs[1], X0)


def test_notes_move_to_and_from_ascent():
    opt = _notes(rho=0.3)
    xs, states = _steps(opt, X0, 5)
    up = opt.move_to_ascent(xs[-1], states[-1])
    np.testing.assert_allclose(_norm(up - xs[-1]), 0.3, rtol=1e-13)
    # Along +x/‖x‖, i.e. along the accumulated gradient: an ascent, the opposite of MSAM.
    assert (_dot(up - xs[-1], states[-1].x) > 0).all()
    np.testing.assert_allclose(opt.move_from_ascent(up, states[-1]), xs[-1], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(opt.eval(xs[-1], states[-1]), xs[-1])  # one sequence only
    np.testing.assert_array_equal(opt.train(xs[-1], states[-1]), xs[-1])


# ---------------------------------------------------------------------------------------------
# AdamW-MSAM-ScheduleFree: the corrected construction


def test_corrected_rho_zero_is_schedule_free_adamw_bit_for_bit():
    hyper = dict(lr=0.05, weight_decay=0.1, warmup_steps=5, variant="gen_a")
    ours = sampy.run(AdamWMSAMScheduleFree(**hyper, rho=0.0), _quadratic(), X0, STEPS)
    sf = sampy.run(ScheduleFreeAdamW(**hyper), _quadratic(), X0, STEPS)
    np.testing.assert_array_equal(ours.xs, sf.xs)


def test_corrected_follows_its_algorithm_box():
    """Steps 1–5 of msam_schedule_free.py by hand (GEN-B, r = 0, p = 2, no warm-up)."""
    lr, b1, b2, eps, wd, rho, mu = 0.05, 0.9, 0.99, 1e-8, 0.1, 0.2, 0.8
    opt = AdamWMSAMScheduleFree(
        lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd, rho=rho, ascent_momentum=mu
    )
    xs, states = _steps(opt, X0, 30)
    z, x, v, m = X0.copy(), X0.copy(), 0.0, 0.0 * X0
    y_tilde, y, weight_sum = X0.copy(), X0.copy(), 0.0
    for k in range(30):
        g = _grad(y_tilde)
        bc2 = 1 - b2 ** (k + 1)
        weight_sum += lr**2
        c = lr**2 / weight_sum
        v = b2 * v + (1 - b2) * g * g
        z = z - lr * wd * y - lr * g / (np.sqrt(v / bc2) + eps)
        x = (1 - c) * x + c * z
        y = b1 * x + (1 - b1) * z
        m = mu * m + (1 - mu) * g
        y_tilde = y - rho * m / (_norm(m) + 1e-12)
        np.testing.assert_allclose(xs[k + 1], y_tilde, rtol=0, atol=1e-13)
        np.testing.assert_allclose(opt.unperturbed(xs[k + 1], states[k + 1]), y, atol=1e-13)
        np.testing.assert_allclose(opt.eval(xs[k + 1], states[k + 1]), x, rtol=0, atol=1e-13)
        # The perturbation has length ρ and points against the momentum.
        np.testing.assert_allclose(_norm(xs[k + 1] - y), rho, rtol=1e-10)
        assert (_dot(xs[k + 1] - y, m) < 0).all()


def test_corrected_train_and_eval():
    opt = AdamWMSAMScheduleFree(lr=0.05, rho=0.1)
    xs, states = _steps(opt, X0, 20)
    s = states[-1]
    x = opt.eval(xs[-1], s)
    np.testing.assert_array_equal(x, s.base.x)
    np.testing.assert_array_equal(opt.train(x, s), xs[-1])  # back to the stored ỹ, exactly
    y = opt.move_from_ascent(xs[-1], s)
    np.testing.assert_allclose(opt.move_to_ascent(y, s), xs[-1], rtol=0, atol=1e-15)


def test_the_notes_formula_keeps_its_ascent_and_the_corrected_version_removes_it():
    """Sphere ‖w‖² (a quadratic), η tiny: gradients, m and x all point radially outwards.

    The notes' formula: θ_t = θ_{t−1} + c_t ρ x/‖x‖ + O(η), so with r = p = 0 (c_t = 1/t) the ascent
    piles up: ‖θ_T‖ = ‖θ_0‖ + ρ Σ_{t=2}^T 1/t (d_1 = 0) — it walks uphill. Corrected: the
    un-perturbed y moves by O(η) only; the stored ỹ sits exactly ρ from it, downhill.
    """
    f = functions.get("sphere")
    w0 = np.array([[0.6, 0.8], [-1.0, 0.5]])
    rho, lr, steps = 0.05, 1e-10, 50
    notes = _notes(lr=lr, rho=rho, r=0.0, weight_lr_power=0.0, grad_mode="sum_two")
    thetas, _ = _steps(notes, w0, steps, f)
    drift = rho * sum(1.0 / t for t in range(2, steps + 1))
    # The descent part is ≤ T·α_t·√d ≈ 1e-8.
    np.testing.assert_allclose(_norm(thetas[-1]), _norm(w0) + drift, rtol=0, atol=1e-7)
    assert (f(thetas[-1]) > f(w0) + 0.1).all()

    ours = AdamWMSAMScheduleFree(lr=lr, rho=rho, r=0.0, weight_lr_power=0.0)
    ys, states = _steps(ours, w0, steps, f)
    y = ours.unperturbed(ys[-1], states[-1])
    np.testing.assert_allclose(y, w0, rtol=0, atol=1e-7)
    np.testing.assert_allclose(_norm(ys[-1] - y), rho, rtol=1e-10)
    assert (_dot(ys[-1] - y, w0) < 0).all()  # perturbed towards the minimum, not away


def test_on_a_quadratic_the_corrected_version_converges_and_the_notes_formula_climbs():
    """Same ρ = 0.2, η = 0.05, 500 steps: the notes' formula ends above its start, ours at
    the minimum."""
    f = _quadratic()
    notes = sampy.run(_notes(lr=0.05, rho=0.2), f, X0, 500)
    assert (notes.final_loss > f(X0)).all()
    ours = AdamWMSAMScheduleFree(lr=0.05, rho=0.2)
    ys, states = _steps(ours, X0, 500)
    x = ours.eval(ys[-1], states[-1])
    assert (f(x) < f.fmin + 0.05).all()


# ---------------------------------------------------------------------------------------------
# Shared: evaluation counts, validation, zero gradients, divergence, per-point ρ


@pytest.mark.parametrize(
    ("make", "per_step"),
    [
        (lambda: MSAM(lr=0.02), 1),
        (lambda: AdamWMSAM(lr=0.02), 1),
        (lambda: ScheduleFreeAdamW(lr=0.02), 1),
        (lambda: AdamWMSAMScheduleFree(lr=0.02), 1),
        (lambda: NotesAdamWMSAMScheduleFree(lr=0.02), 2),
        (lambda: NotesAdamWMSAMScheduleFree(lr=0.02, grad_mode="perturbed_only"), 1),
        (lambda: NotesAdamWMSAMScheduleFree(lr=0.02, grad_mode="clean_only"), 1),
    ],
)
def test_gradient_evaluations_are_measured(make, per_step):
    opt = make()
    traj = sampy.run(opt, _quadratic(), X0, 25)
    assert traj.grad_evals == per_step * 25
    assert opt.grad_evals_per_step == per_step


def _invalid_cases():
    cases = []
    for cls in ALL:
        for spec in cls.HYPERPARAMETERS:
            for i, bad in enumerate(spec.invalid_values()):
                cases.append(
                    pytest.param(cls, spec.name, bad, id=f"{cls.__name__}-{spec.name}-{i}")
                )
    return cases


@pytest.mark.parametrize(("cls", "knob", "bad"), _invalid_cases())
def test_every_invalid_value_raises_naming_the_knob(cls, knob, bad):
    with _raises_naming(knob):
        cls(**{knob: bad})


@pytest.mark.parametrize("cls", ALL)
def test_specs_agree_with_the_constructor(cls):
    params = inspect.signature(cls.__init__).parameters
    specs = {spec.name: spec for spec in cls.HYPERPARAMETERS}
    assert set(params) - {"self"} == set(specs)
    for name, spec in specs.items():
        assert params[name].default == spec.default, name
        spec.check(spec.default)
    cls()  # every default is valid together


@pytest.mark.parametrize("cls", ALL)
def test_zero_gradient_start_gives_no_nan(cls):
    """Sphere at its minimum 0: g = 0, buffers 0, 0/(0 + eps) = 0 — the points stay at 0."""
    traj = sampy.run(cls(), "sphere", np.zeros((3, 2)), 10)
    assert np.isfinite(traj.xs).all()
    np.testing.assert_array_equal(traj.xs, 0.0)


@pytest.mark.parametrize(
    "make",
    [
        lambda: MSAM(lr=np.array([0.01, 2.0]), rho=0.1),
        lambda: AdamWMSAM(lr=np.array([0.01, 1e7])),
        lambda: ScheduleFreeAdamW(lr=np.array([0.01, 1e7])),
        lambda: AdamWMSAMScheduleFree(lr=np.array([0.01, 1e7])),
        lambda: NotesAdamWMSAMScheduleFree(lr=np.array([0.01, 1e8]), weight_lr_power=0.0),
    ],
    ids=["MSAM", "AdamWMSAM", "ScheduleFreeAdamW", "AdamWMSAMScheduleFree", "Notes"],
)
def test_a_diverging_setting_is_recorded_not_raised(make):
    traj = sampy.run(make(), _quadratic(), X0[:2], 30)
    assert traj.diverged.tolist() == [False, True]
    assert np.isfinite(traj.xs).all()


@pytest.mark.parametrize(
    "cls", [MSAM, AdamWMSAM, AdamWMSAMScheduleFree, NotesAdamWMSAMScheduleFree]
)
def test_a_rho_grid_equals_separate_runs(cls):
    rhos = np.array([0.0, 0.05, 0.3])
    x0 = np.tile([1.5, -1.0], (3, 1))
    grid = sampy.run(cls(lr=0.02, rho=rhos), _quadratic(), x0, 30)
    for i, rho in enumerate(rhos):
        alone = sampy.run(cls(lr=0.02, rho=float(rho)), _quadratic(), x0[i], 30)
        np.testing.assert_array_equal(grid.xs[:, i], alone.xs)
    assert len({tuple(p) for p in grid.final}) == 3


@pytest.mark.parametrize("cls", ALL)
def test_a_step_is_a_pure_function_of_point_and_state(cls):
    """The state is plain data: stepping twice from the same (x, state) gives the same result."""
    opt = cls(lr=0.05)
    x0 = np.array(X0)
    s0 = opt.init(x0)
    x1, s1 = opt.step(x0, s0, Oracle(_quadratic()))
    x1_again, _ = opt.step(x0, s0, Oracle(_quadratic()))
    np.testing.assert_array_equal(x1_again, x1)
    x2, _ = opt.step(x1, s1, Oracle(_quadratic()))
    x2_again, _ = opt.step(x1, s1, Oracle(_quadratic()))
    np.testing.assert_array_equal(x2_again, x2)
    np.testing.assert_array_equal(x0, X0)  # the input points are not modified either


# --------------------------------------------------------------------------- overflow


@pytest.mark.parametrize(
    ("make", "steps"),
    [
        (lambda: ScheduleFreeAdamW(lr=1e155), 20),
        (lambda: ScheduleFreeAdamW(lr=1e200), 20),
        (lambda: ScheduleFreeAdamW(r=400.0), 20),
        (lambda: ScheduleFreeAdamW(lr=10.0, weight_lr_power=400.0), 20),
        (lambda: ScheduleFreeAdamW(r=100.0), 3000),  # r > ~77 used to overflow part-way
        (lambda: AdamWMSAMScheduleFree(lr=1e200), 20),
        (lambda: NotesAdamWMSAMScheduleFree(r=400.0), 20),
        (lambda: ScheduleFreeAdamW(lr=np.array([1e-3, 1e200])), 20),
    ],
)
def test_averaging_weights_that_overflow_are_a_recorded_divergence_not_an_error(make, steps):
    """The review's A5: Python-float ``**`` raised OverflowError from inside ``sampy.run``."""
    opt = make()
    x0 = np.array([[0.1, 0.2], [0.3, 0.4]])
    traj = sampy.run(opt, "rosenbrock", x0, steps)
    assert traj.diverged.any(), traj.report()
    frozen = traj.xs[-1][traj.diverged]
    assert np.all(np.isfinite(frozen))  # frozen at the last good position


def test_polynomial_weight_overflows_to_inf_and_keeps_scalars_plain():
    from sampy.optim.schedule_free import polynomial_weight

    assert polynomial_weight(6, 400.0, 1.0, 2.0) == math.inf  # 6**400 > 1.8e308
    assert type(polynomial_weight(2, 1.0, 0.5, 2.0)) is float
    assert polynomial_weight(2, 1.0, 0.5, 2.0) == 2 * 0.25
    np.testing.assert_array_equal(
        polynomial_weight(3, 1.0, np.array([1.0, 1e200]), 2.0), [3.0, math.inf]
    )
