"""Base optimizers (SGD, Adam, AdamW) against torch.optim semantics.

Two independent oracles: a hand-written scalar implementation of the torch.optim update rules
(plain Python loops over coordinates, written from the torch documentation), and, when torch
is installed, ``torch.optim`` itself in float64 with the gradient computed by hand.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import sampy
from sampy import functions
from sampy.optim import SGD, Adam, AdamW, Oracle
from sampy.optim.adam import AdamState
from sampy.optim.sgd import SGDState

A = [[3.0, 1.0, 0.4], [1.0, 2.0, -0.3], [0.4, -0.3, 1.5]]
B = [1.0, -1.0, 0.5]
X0 = [2.0, -1.5, 0.7]
STEPS = 50


def _quadratic():
    return functions.get("quadratic", A=A, b=B)


def _grad_by_hand(x):
    """g_i = Σ_j A_ij x_j − b_i, in plain Python."""
    n = len(x)
    return [sum(A[i][j] * x[j] for j in range(n)) - B[i] for i in range(n)]


# ---------------------------------------------------------------------------------------------
# Hand-written torch.optim semantics, one coordinate at a time


def _sgd_by_hand(x0, steps, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
    x = list(x0)
    buf = None
    out = [list(x)]
    for _ in range(steps):
        g = _grad_by_hand(x)
        d = [g[i] + weight_decay * x[i] for i in range(len(x))]
        if momentum != 0:
            if buf is None:
                buf = list(d)  # torch: the first buffer is the gradient, no dampening
            else:
                buf = [momentum * buf[i] + (1 - dampening) * d[i] for i in range(len(x))]
            d = [d[i] + momentum * buf[i] for i in range(len(x))] if nesterov else list(buf)
        x = [x[i] - lr * d[i] for i in range(len(x))]
        out.append(list(x))
    return np.array(out)


def _adam_by_hand(x0, steps, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False):
    b1, b2 = betas
    x = list(x0)
    m = [0.0] * len(x)
    v = [0.0] * len(x)
    out = [list(x)]
    for t in range(1, steps + 1):
        g = _grad_by_hand(x)
        if weight_decay != 0:
            if decoupled:
                x = [x[i] * (1 - lr * weight_decay) for i in range(len(x))]
            else:
                g = [g[i] + weight_decay * x[i] for i in range(len(x))]
        m = [b1 * m[i] + (1 - b1) * g[i] for i in range(len(x))]
        v = [b2 * v[i] + (1 - b2) * g[i] * g[i] for i in range(len(x))]
        new = []
        for i in range(len(x)):
            m_hat_lr = lr / (1 - b1**t)
            denom = math.sqrt(v[i]) / math.sqrt(1 - b2**t) + eps
            new.append(x[i] - m_hat_lr * m[i] / denom)
        x = new
        out.append(list(x))
    return np.array(out)


SGD_CONFIGS = [
    {"lr": 0.05},
    {"lr": 0.05, "momentum": 0.9},
    {"lr": 0.05, "momentum": 0.8, "dampening": 0.3},
    {"lr": 0.03, "momentum": 0.9, "nesterov": True},
    {"lr": 0.05, "weight_decay": 0.1},
    {"lr": 0.04, "momentum": 0.7, "dampening": 0.1, "weight_decay": 0.05},
    {"lr": 0.02, "momentum": 0.95, "nesterov": True, "weight_decay": 0.2},
]
ADAM_CONFIGS = [
    {"lr": 0.05},
    {"lr": 0.1, "betas": (0.5, 0.9)},
    {"lr": 0.05, "eps": 1e-3},
    {"lr": 0.05, "weight_decay": 0.1},
    {"lr": 0.02, "betas": (0.0, 0.99), "weight_decay": 0.3},
]


def _close(actual, expected):
    # 50 steps of a contracting linear recursion: rounding differences stay at a few ulp of
    # the iterate; 1e-12 relative to the scale of the trajectory is far above that and far
    # below any change of the update rule.
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-12 * scale)


@pytest.mark.parametrize("cfg", SGD_CONFIGS, ids=str)
def test_sgd_follows_hand_written_torch_semantics(cfg):
    traj = sampy.run(SGD(**cfg), _quadratic(), np.array(X0), STEPS)
    _close(traj.xs, _sgd_by_hand(X0, STEPS, **cfg))
    assert traj.grad_evals == STEPS


@pytest.mark.parametrize("cls", [Adam, AdamW])
@pytest.mark.parametrize("cfg", ADAM_CONFIGS, ids=str)
def test_adam_follows_hand_written_torch_semantics(cls, cfg):
    traj = sampy.run(cls(**cfg), _quadratic(), np.array(X0), STEPS)
    expected_cfg = dict(cfg)
    if cls is AdamW:
        expected_cfg.setdefault("weight_decay", 1e-2)  # torch.optim.AdamW's default
    expected = _adam_by_hand(X0, STEPS, decoupled=cls is AdamW, **expected_cfg)
    _close(traj.xs, expected)
    assert traj.grad_evals == STEPS


def test_adam_and_adamw_differ_when_decay_is_on():
    """Coupled and decoupled decay are different rules (the test above could not tell)."""
    f = _quadratic()
    x0 = np.array(X0)
    a = sampy.run(Adam(lr=0.05, weight_decay=0.1), f, x0, 10).xs
    w = sampy.run(AdamW(lr=0.05, weight_decay=0.1), f, x0, 10).xs
    assert np.abs(a - w).max() > 1e-4
    # ...and agree without decay.
    np.testing.assert_array_equal(
        sampy.run(Adam(lr=0.05), f, x0, 10).xs,
        sampy.run(AdamW(lr=0.05, weight_decay=0.0), f, x0, 10).xs,
    )


def test_adam_first_step_moves_every_coordinate_by_lr():
    """Bias correction: at t = 1, m̂/√v̂ = sign(g), so each coordinate moves by lr (eps = 0)."""
    f = _quadratic()
    x0 = np.array(X0)
    x1 = sampy.run(Adam(lr=0.01, eps=0.0), f, x0, 1).xs[1]
    g = np.array(_grad_by_hand(X0))
    np.testing.assert_allclose(x1, x0 - 0.01 * np.sign(g), rtol=0, atol=1e-15)


# ---------------------------------------------------------------------------------------------
# torch.optim itself


def _torch_trajectory(torch, opt_cls, kwargs, steps=STEPS):
    a = torch.tensor(A, dtype=torch.float64)
    b = torch.tensor(B, dtype=torch.float64)
    w = torch.tensor(X0, dtype=torch.float64, requires_grad=True)
    opt = opt_cls([w], **kwargs)
    out = [w.detach().clone()]
    for _ in range(steps):
        with torch.no_grad():
            w.grad = a @ w - b
        opt.step()
        out.append(w.detach().clone())
    return torch.stack(out).numpy()


@pytest.mark.parametrize("cfg", SGD_CONFIGS, ids=str)
def test_sgd_matches_torch_optim(cfg):
    torch = pytest.importorskip("torch")
    expected = _torch_trajectory(torch, torch.optim.SGD, cfg)
    _close(sampy.run(SGD(**cfg), _quadratic(), np.array(X0), STEPS).xs, expected)


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
@pytest.mark.parametrize("cfg", ADAM_CONFIGS, ids=str)
def test_adam_matches_torch_optim(name, cfg):
    torch = pytest.importorskip("torch")
    expected = _torch_trajectory(torch, getattr(torch.optim, name), cfg)
    ours = {"Adam": Adam, "AdamW": AdamW}[name]
    _close(sampy.run(ours(**cfg), _quadratic(), np.array(X0), STEPS).xs, expected)


# ---------------------------------------------------------------------------------------------
# State and update interface


def test_init_states():
    x = np.ones((4, 3))
    assert SGD(lr=0.1, momentum=0.9).init(x) == SGDState(momentum=None)
    state = Adam().init(x)
    assert isinstance(state, AdamState)
    assert state.count == 0
    np.testing.assert_array_equal(state.m, np.zeros((4, 3)))
    np.testing.assert_array_equal(state.v, np.zeros((4, 3)))


def test_update_uses_the_given_direction_not_the_gradient():
    x = np.array([[1.0, 2.0], [3.0, -4.0]])
    d = np.array([[0.5, -1.0], [2.0, 0.0]])
    new, _ = SGD(lr=0.1).update(x, d, SGD(lr=0.1).init(x))
    np.testing.assert_allclose(new, x - 0.1 * d, rtol=1e-15)
    opt = SGD(lr=0.1, momentum=0.5)
    x1, s1 = opt.update(x, d, opt.init(x))
    x2, s2 = opt.update(x1, d, s1)
    np.testing.assert_allclose(s1.momentum, d)
    np.testing.assert_allclose(s2.momentum, 1.5 * d)
    np.testing.assert_allclose(x2, x - 0.1 * d - 0.1 * 1.5 * d, rtol=1e-15)


def test_step_asks_the_oracle_once():
    f = _quadratic()
    x = np.array([X0, X0])
    for opt in (SGD(lr=0.1, momentum=0.9), Adam(), AdamW()):
        oracle = Oracle(f)
        state = opt.init(x)
        for _ in range(3):
            x, state = opt.step(x, state, oracle)
        assert oracle.calls == 3
        assert opt.grad_evals_per_step == 1


# ---------------------------------------------------------------------------------------------
# Vectorization: a batch is a batch of independent runs


OPTIMIZERS = [
    pytest.param(lambda lr: SGD(lr=lr), id="sgd"),
    pytest.param(lambda lr: SGD(lr=lr, momentum=0.9, nesterov=True, weight_decay=0.01), id="nag"),
    pytest.param(lambda lr: SGD(lr=lr, momentum=0.6, dampening=0.2), id="sgd-damp"),
    pytest.param(lambda lr: Adam(lr=lr, weight_decay=0.01), id="adam"),
    pytest.param(lambda lr: AdamW(lr=lr, betas=(0.8, 0.95)), id="adamw"),
]


@pytest.mark.parametrize("make", OPTIMIZERS)
def test_batch_of_start_points_equals_separate_runs(make):
    f = functions.get("rosenbrock")
    x0 = np.random.default_rng(0).uniform([-2.0, -1.0], [2.0, 3.0], size=(7, 2))
    together = sampy.run(make(2e-4), f, x0, 40)
    for k in range(7):
        alone = sampy.run(make(2e-4), f, x0[k], 40)
        # Rosenbrock's gradient is elementwise arithmetic: the same operations on the same
        # numbers, so equality is exact.
        np.testing.assert_array_equal(together.xs[:, k], alone.xs)


@pytest.mark.parametrize("make", OPTIMIZERS)
def test_batch_on_quadratic_with_matrix_product(make):
    f = _quadratic()
    x0 = np.random.default_rng(1).normal(size=(7, 3))
    together = sampy.run(make(0.05), f, x0, 30)
    for k in range(7):
        alone = sampy.run(make(0.05), f, x0[k], 30)
        # x @ A for a batch and for one point may sum in a different order (BLAS): ulps only.
        np.testing.assert_allclose(together.xs[:, k], alone.xs, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("make", OPTIMIZERS)
def test_learning_rate_grid_equals_separate_runs(make):
    f = functions.get("rosenbrock")
    lrs = np.array([1e-5, 5e-5, 1e-4, 2e-4, 4e-4, 6e-4, 8e-4])
    x0 = np.tile([-1.5, 2.0], (7, 1))
    grid = sampy.run(make(lrs), f, x0, 40)
    for k, lr in enumerate(lrs):
        alone = sampy.run(make(float(lr)), f, x0[k], 40)
        np.testing.assert_array_equal(grid.xs[:, k], alone.xs)
    # Different learning rates really did different things.
    assert len({tuple(p) for p in grid.final}) == 7


def test_learning_rate_grid_with_two_batch_axes():
    f = functions.get("sphere", dim=3)
    lrs = np.array([[0.01, 0.1], [0.2, 0.3], [0.4, 0.45]])
    x0 = np.random.default_rng(2).normal(size=(3, 2, 3))
    traj = sampy.run(SGD(lr=lrs), f, x0, 12)
    # On the sphere, x_k = (1 − 2 lr)^k x_0 for each point with its own lr.
    k = np.arange(13)[:, None, None, None]
    expected = (1 - 2 * lrs[None, :, :, None]) ** k * x0[None]
    np.testing.assert_allclose(traj.xs, expected, rtol=1e-13, atol=1e-15)
