"""The 2-layer deep linear network, Proposition 4.1 and the NumPy logit-SAM / J-SAM.

- the DLN problem: closed-form gradients and Jacobians against autograd;
- Proposition 4.1 (book/label_noise.md): the closed-form J-SAM gradients of both layers equal
  J-SAM computed by autograd, to 1e-10, on random networks (seeded and by hypothesis); the
  companions (perturbed logit, 1-SAM, logit-SAM) likewise;
- the reference optimizers: their direction is the mean of the closed forms, the reductions
  (linear model: J-SAM is SGD, logit-SAM is 1-SAM; ρ = 0 is the base), the
  measured cost, validation, and no NaN from a zero gradient.
"""

from __future__ import annotations

import re

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sampy
from sampy import dln
from sampy.dln import DeepLinearNetwork, logit_model
from sampy.label_noise import make_noisy_binary_data
from sampy.optim import SGD, Adam, MSharpnessSAM, Oracle
from sampy.optim.jsam import JSAM, LogitSAM
from sampy.problems import LogisticRegression, NoisyGradient, make_logistic_problem

TOL = 1e-10


def _raises_naming(name):
    return pytest.raises(ValueError, match=rf"(?<![A-Za-z_]){re.escape(name)}(?![A-Za-z_])")


def _random_dln(seed, h=4, p=5, scale=1.0):
    rng = np.random.default_rng(seed)
    v = scale * rng.standard_normal(h)
    big_w = scale * rng.standard_normal((h, p))
    x = rng.standard_normal(p)
    t = int(rng.choice([-1, 1]))
    return v, big_w, x, t


# -- J-SAM, 1-SAM and logit-SAM by autograd, from the definitions (Baek et al., Section 4) -----


def _logit(w, x, h):
    v, big_w = w[:h], anp.reshape(w[h:], (h, x.size))
    return anp.dot(v, anp.dot(big_w, x))


def _loss(w, x, t, h):
    return anp.logaddexp(0.0, -t * _logit(w, x, h))


def _by_autograd(kind, v, big_w, x, t, rho):
    h = v.size
    w = np.concatenate([v, big_w.ravel()])
    g = autograd.grad(_loss)(w, x, t, h)
    w_adv = w + rho * g / np.linalg.norm(g)
    sig = lambda u: 1.0 / (1.0 + np.exp(-u))  # noqa: E731
    jac = autograd.grad(_logit)
    if kind == "jsam":
        out = -t * sig(-t * _logit(w, x, h)) * jac(w_adv, x, h)
    elif kind == "1sam":
        out = autograd.grad(_loss)(w_adv, x, t, h)
    else:  # logit-SAM
        out = -t * sig(-t * _logit(w_adv, x, h)) * jac(w, x, h)
    return out, w_adv


CLOSED = {
    "jsam": dln.jsam_gradients,
    "1sam": dln.one_sam_gradients,
    "logit": dln.logit_sam_gradients,
}


# ---------------------------------------------------------------------------------------------
# The DLN problem


def test_pack_and_unpack_are_inverse():
    rng = np.random.default_rng(0)
    v, big_w = rng.standard_normal((3, 4)), rng.standard_normal((3, 4, 6))
    w = dln.pack(v, big_w)
    assert w.shape == (3, 4 + 24)
    v2, w2 = dln.unpack(w, 4, 6)
    np.testing.assert_array_equal(v2, v)
    np.testing.assert_array_equal(w2, big_w)
    np.testing.assert_array_equal(w[1, 4:10], big_w[1, 0])  # W is stored row by row
    with pytest.raises(ValueError, match="last dimension"):
        dln.unpack(w, 4, 5)


def test_dln_gradients_jacobians_and_logits_match_autograd():
    data = make_noisy_binary_data(n=7, dim=3, noise=0.3, seed=1)
    p = data.dln(hidden=4)
    assert p.dim == 4 * (1 + 3)
    w = p.init(scale=0.8, batch=(2,), seed=3)
    idx = np.arange(p.n)
    pts = np.broadcast_to(w[:, None, :], (2, p.n, p.dim))
    grads = p.per_example_grads(w)
    jac = p.logit_grads_at(pts, idx)
    logits = p.logits_at(pts, idx)
    for b in range(2):
        for i in range(p.n):
            x, t = data.features[i], data.labels[i]
            np.testing.assert_allclose(grads[b, i], autograd.grad(_loss)(w[b], x, t, 4), atol=TOL)
            np.testing.assert_allclose(jac[b, i], autograd.grad(_logit)(w[b], x, 4), atol=TOL)
            np.testing.assert_allclose(logits[b, i], _logit(w[b], x, 4), atol=TOL)
    np.testing.assert_allclose(p.predict(w, data.features), logits, atol=TOL)
    # The mean gradient, the Hessian (autograd through losses_at) and the loss agree.
    np.testing.assert_allclose(p.grad(w), grads.mean(axis=1), atol=TOL)
    hess = p.hessian(w[0])
    fd = (p.grad(w[0] + 1e-6 * np.eye(p.dim)) - p.grad(w[0] - 1e-6 * np.eye(p.dim))) / 2e-6
    np.testing.assert_allclose(hess, fd, atol=1e-6)
    assert p.loss(w).shape == (2,)


def test_dln_init_is_seeded_and_away_from_the_saddle():
    p = make_noisy_binary_data(n=5, dim=3, seed=0).dln(hidden=2)
    a, b = p.init(seed=4), p.init(seed=4)
    np.testing.assert_array_equal(a, b)
    assert np.all(a != p.init(seed=5))
    # The origin is a saddle: every gradient vanishes there.
    np.testing.assert_array_equal(p.grad(np.zeros(p.dim)), 0.0)
    assert np.linalg.norm(p.grad(a)) > 0


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(hidden=0), "hidden"),
        (dict(hidden=1.5), "hidden"),
        (dict(labels=np.array([0.0, 1.0, 1.0])), "labels"),
        (dict(features=np.ones(3)), "features"),
        (dict(features=np.array([[np.nan], [1.0], [2.0]])), "features"),
    ],
)
def test_dln_rejects_bad_input(kwargs, name):
    args = dict(features=np.ones((3, 2)), labels=np.array([1.0, -1.0, 1.0]), hidden=2)
    args.update(kwargs)
    with _raises_naming(name):
        DeepLinearNetwork(**args)


# ---------------------------------------------------------------------------------------------
# Proposition 4.1 and its companions


@pytest.mark.parametrize("kind", sorted(CLOSED))
@pytest.mark.parametrize("seed", range(8))
def test_closed_forms_equal_autograd(kind, seed):
    v, big_w, x, t = _random_dln(seed, h=3 + seed % 3, p=2 + seed % 4)
    rho = [0.05, 0.3, 1.0, 2.5][seed % 4]
    expected, _ = _by_autograd(kind, v, big_w, x, t, rho)
    got = CLOSED[kind](v, big_w, x, t, rho)
    np.testing.assert_allclose(got.flat(), expected, rtol=0, atol=TOL)
    # The flat layout is the DeepLinearNetwork's (v first, then W row by row).
    np.testing.assert_array_equal(got.flat(), np.concatenate([got.v, got.W.ravel()]))


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    h=st.integers(1, 5),
    p=st.integers(1, 5),
    rho=st.floats(1e-3, 3.0),
    scale=st.floats(0.1, 3.0),
)
def test_proposition_4_1_on_random_networks(seed, h, p, rho, scale):
    v, big_w, x, t = _random_dln(seed, h=h, p=p, scale=scale)
    expected, _ = _by_autograd("jsam", v, big_w, x, t, rho)
    got = dln.jsam_gradients(v, big_w, x, t, rho)
    assert np.abs(got.flat() - expected).max() <= TOL * max(1.0, np.abs(expected).max())


@pytest.mark.parametrize("seed", range(5))
def test_jsam_is_sgd_plus_activation_and_weight_norm_penalties(seed):
    """G_W − ∇_W ℓ(w) ∝ ∇_W ½‖Wx‖² and G_v − ∇_v ℓ(w) ∝ ∇_v ½‖v‖², with the coefficients
    ρσ(−tf)/J and ρσ(−tf)‖x‖²/J of the proposition."""
    v, big_w, x, t = _random_dln(seed)
    rho = 0.4
    g = dln.jsam_gradients(v, big_w, x, t, rho)
    h = v.size
    w = np.concatenate([v, big_w.ravel()])
    sgd = autograd.grad(_loss)(w, x, t, h)
    activation = autograd.grad(lambda b: 0.5 * anp.sum(anp.dot(b, x) ** 2))(big_w)
    weight = autograd.grad(lambda u: 0.5 * anp.sum(u**2))(v)
    s = 1.0 / (1.0 + np.exp(t * _logit(w, x, h)))  # σ(−t f)
    j = dln.jacobian_norm(v, big_w, x)
    np.testing.assert_allclose(
        g.W - sgd[h:].reshape(big_w.shape), rho * s / j * activation, atol=TOL
    )
    np.testing.assert_allclose(g.v - sgd[:h], rho * s * (x @ x) / j * weight, atol=TOL)


@pytest.mark.parametrize("seed", range(5))
def test_perturbation_and_perturbed_logit(seed):
    v, big_w, x, t = _random_dln(seed)
    rho = 0.7
    _, w_adv = _by_autograd("1sam", v, big_w, x, t, rho)
    e = dln.dln_perturbation(v, big_w, x, t, rho)
    w = np.concatenate([v, big_w.ravel()])
    np.testing.assert_allclose(w + e.flat(), w_adv, atol=TOL)
    assert np.linalg.norm(e.flat()) == pytest.approx(rho, rel=1e-12)
    np.testing.assert_allclose(
        dln.perturbed_logit(v, big_w, x, t, rho), _logit(w_adv, x, v.size), atol=TOL
    )


def test_closed_forms_need_matching_shapes_and_a_sign_label():
    v, big_w, x, _ = _random_dln(0)
    with pytest.raises(ValueError, match="expected v"):
        dln.jsam_gradients(v, big_w[:, :-1], x, 1, 0.1)
    with _raises_naming("t"):
        dln.jsam_gradients(v, big_w, x, 0, 0.1)


def test_closed_forms_are_finite_when_the_jacobian_vanishes():
    """J = 0 (x = 0): ε is undefined; with eps > 0 the formulas stay finite (ε = 0)."""
    v, big_w, _, _ = _random_dln(1)
    x = np.zeros(big_w.shape[1])
    for kind, fn in CLOSED.items():
        out = fn(v, big_w, x, 1, 0.5, eps=1e-12).flat()
        assert np.all(np.isfinite(out)), kind
        np.testing.assert_array_equal(out, 0.0)  # ∇f = 0 at x = 0


# ---------------------------------------------------------------------------------------------
# The reference optimizers


class RecordingBase:
    """Plain SGD that records the direction it is handed."""

    grad_evals_per_step = 1

    def __init__(self, lr=0.1):
        self.lr = lr
        self.directions = []

    def init(self, x):
        return None

    def update(self, x, d, state):
        self.directions.append(np.array(d))
        return x - self.lr * d, None

    def step(self, x, state, oracle):
        return self.update(x, oracle.grad(x), state)


def _dln_problem(seed=2, n=9, p=3, h=4, noise=0.3):
    return make_noisy_binary_data(n=n, dim=p, noise=noise, seed=seed).dln(hidden=h)


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (lambda b: JSAM(b, rho=0.3, perturb_eps=0.0), "jsam"),
        (lambda b: LogitSAM(b, rho=0.3, perturb_eps=0.0), "logit"),
        (lambda b: MSharpnessSAM(b, rho=0.3, m=1, perturb_eps=0.0), "1sam"),
    ],
    ids=["JSAM", "LogitSAM", "1-SAM"],
)
def test_optimizer_direction_is_the_mean_of_the_closed_forms(make, kind):
    p = _dln_problem()
    w = p.init(scale=0.7, batch=(2,), seed=1)
    base = RecordingBase()
    opt = make(base)
    opt.step(w, opt.init(w), Oracle(p))
    (d,) = base.directions
    for b in range(2):
        v, big_w = p.split(w[b])
        expected = np.mean(
            [
                CLOSED[kind](v, big_w, p.features[i], int(p.labels[i]), 0.3).flat()
                for i in range(p.n)
            ],
            axis=0,
        )
        np.testing.assert_allclose(d[b], expected, rtol=0, atol=1e-12)


def _linear(l2=0.0, seed=4):
    data = make_noisy_binary_data(n=12, dim=3, noise=0.25, separation=1.0, seed=seed)
    return LogisticRegression(data.features, data.labels, l2=l2)


X0 = np.array([[0.4, -0.3, 0.8], [-1.0, 0.6, 0.1], [0.0, 0.0, 0.0]])


@pytest.mark.parametrize("l2", [0.0, 0.05])
@pytest.mark.parametrize("make_base", [lambda: SGD(lr=0.5, momentum=0.9), lambda: Adam(lr=0.05)])
def test_jsam_on_the_linear_model_is_the_base_optimizer(l2, make_base):
    p = _linear(l2)
    ours = sampy.run(JSAM(make_base(), rho=0.4), p, X0, 40)
    base = sampy.run(make_base(), p, X0, 40)
    np.testing.assert_allclose(ours.xs, base.xs, rtol=0, atol=1e-13)
    assert np.abs(ours.xs[-1] - X0).max() > 1e-2


@pytest.mark.parametrize("make_base", [lambda: SGD(lr=0.5, momentum=0.9), lambda: Adam(lr=0.05)])
def test_logit_sam_on_the_linear_model_is_one_sam(make_base):
    p = _linear()
    ours = sampy.run(LogitSAM(make_base(), rho=0.4), p, X0, 40)
    one = sampy.run(MSharpnessSAM(make_base(), rho=0.4, m=1), p, X0, 40)
    sgd = sampy.run(make_base(), p, X0, 40)
    np.testing.assert_allclose(ours.xs, one.xs, rtol=0, atol=1e-13)
    assert np.abs(ours.xs - sgd.xs).max() > 1e-2  # and it is not SGD


def test_with_a_ridge_logit_sam_differs_from_one_sam_by_the_ridge_at_the_perturbed_points():
    """The ridge does not go through the logit: logit-SAM takes λw, 1-SAM λ(w + ε_i)."""
    p = _linear(l2=0.05)
    base_a, base_b = RecordingBase(), RecordingBase()
    for opt in (LogitSAM(base_a, rho=0.4), MSharpnessSAM(base_b, rho=0.4, m=1)):
        opt.step(X0, opt.init(X0), Oracle(p))
    g = p.per_example_grads(X0)
    e = 0.4 * g / (np.linalg.norm(g, axis=-1, keepdims=True) + 1e-12)
    np.testing.assert_allclose(
        base_b.directions[0] - base_a.directions[0], 0.05 * e.mean(axis=1), atol=1e-14
    )


@pytest.mark.parametrize("cls", [JSAM, LogitSAM])
def test_rho_zero_is_the_base_optimizer_on_the_dln(cls):
    p = _dln_problem()
    w0 = p.init(batch=(2,), seed=0)
    ours = sampy.run(cls(SGD(lr=0.2, momentum=0.5), rho=0.0), p, w0, 25)
    base = sampy.run(SGD(lr=0.2, momentum=0.5), p, w0, 25)
    np.testing.assert_allclose(ours.xs, base.xs, rtol=0, atol=1e-13)


def test_per_point_rho_grid_matches_separate_runs():
    p = _dln_problem()
    w0 = np.repeat(p.init(seed=3)[None], 3, axis=0)
    rhos = np.array([0.0, 0.1, 0.5])
    grid = sampy.run(JSAM(SGD(lr=0.2), rho=rhos), p, w0, 10)
    for i, rho in enumerate(rhos):
        alone = sampy.run(JSAM(SGD(lr=0.2), rho=float(rho)), p, w0[i], 10)
        np.testing.assert_allclose(grid.xs[:, i], alone.xs, rtol=0, atol=1e-14)


@pytest.mark.parametrize(("cls", "grads", "forwards"), [(JSAM, 2 * 9, 0), (LogitSAM, 9 + 1, 1)])
def test_measured_cost_per_step(cls, grads, forwards):
    p = _dln_problem()
    opt = cls(SGD(lr=0.1))
    oracle = Oracle(p)
    w = p.init(seed=0)
    state = opt.init(w)
    for step in range(1, 4):
        w, state = opt.step(w, state, oracle)
        assert oracle.calls == step * grads == step * opt.grad_evals(p.n)
        assert oracle.loss_calls == step * forwards


@pytest.mark.parametrize("cls", [JSAM, LogitSAM])
def test_validation(cls):
    with _raises_naming("rho"):
        cls(SGD(lr=0.1), rho=-0.1)
    with _raises_naming("perturb_eps"):
        cls(SGD(lr=0.1), perturb_eps=-1.0)
    with _raises_naming("base"):
        cls(SGD)
    with pytest.raises(ValueError, match="sum-of-examples"):
        sampy.run(cls(SGD(lr=0.1)), "rosenbrock", np.zeros(2), 1)
    with pytest.raises(ValueError, match="not supported"):
        sampy.run(cls(SGD(lr=0.1)), NoisyGradient(_dln_problem(), 0.1), np.ones(16), 1)
    assert cls(SGD(lr=0.1)).needs_examples
    assert "rho=0.05" in repr(cls(SGD(lr=0.1)))


def test_logit_model_accepts_linear_and_dln_only():
    lin = make_logistic_problem(n=8, dim=2)
    model = logit_model(lin)
    w = np.array([[0.3, -0.2]])
    pts = np.broadcast_to(w[:, None, :], (1, 8, 2))
    np.testing.assert_allclose(model.logits_at(pts, np.arange(8)), w @ lin.features.T)
    assert model.labels is lin.labels and model.l2 == lin.l2
    p = _dln_problem()
    assert logit_model(p) is p

    class NotALogitModel(sampy.problems.SumOfExamples):
        def losses_at(self, points, examples):
            return anp.sum(points**2, axis=-1)

    with pytest.raises(ValueError, match="binary logit model"):
        logit_model(NotALogitModel(3, 2))
    with pytest.raises(ValueError, match="binary logit model"):
        sampy.run(JSAM(SGD(lr=0.1)), NotALogitModel(3, 2), np.ones(2), 1)


@pytest.mark.parametrize("cls", [JSAM, LogitSAM])
def test_zero_gradients_give_no_nan(cls):
    """An example with x = 0 has ∇ℓ = 0 and J = 0; at the DLN's origin every gradient is 0."""
    feats = np.array([[0.0, 0.0], [1.0, -0.5], [0.3, 0.8]])
    p = DeepLinearNetwork(feats, np.array([1.0, -1.0, 1.0]), hidden=2)
    w0 = np.stack([p.init(seed=1), np.zeros(p.dim)])
    traj = sampy.run(cls(SGD(lr=0.3), rho=0.5), p, w0, 10)
    assert np.all(np.isfinite(traj.xs)) and not traj.diverged.any()
    np.testing.assert_array_equal(traj.xs[:, 1], 0.0)  # the saddle is a fixed point
