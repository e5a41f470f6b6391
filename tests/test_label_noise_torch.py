"""The torch twins of 1-SAM, logit-SAM and J-SAM (``sampy.torch.jsam``) and the Hessian helper.

- float64 twins: the same trajectories as the NumPy reference on the linear model and the DLN
  (MSharpnessSAM(m=1), LogitSAM, JSAM), to 1e-12;
- Proposition 4.1: J-SAM's per-example gradient in torch equals the closed form to 1e-10;
- the multi-class (cross-entropy) forms against a per-example loop with plain autograd;
- the twin contract: ρ = 0 is the base optimizer, per-group ρ, state_dict round trip,
  validation, float32;
- the top Hessian eigenvalue from Hessian-vector products and ARPACK against ``eigvalsh``.
"""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402

import sampy  # noqa: E402
from sampy import dln  # noqa: E402
from sampy.label_noise import make_noisy_binary_data  # noqa: E402
from sampy.label_noise.hessian import top_hessian_eigenvalue  # noqa: E402
from sampy.optim import SGD, MSharpnessSAM  # noqa: E402
from sampy.optim import jsam as reference  # noqa: E402
from sampy.torch.jsam import JSAM, LogitSAM, PerExampleSAM, functional_forward  # noqa: E402

STEPS = 20
REFERENCES = {
    "1-sam": lambda base, rho: MSharpnessSAM(base, rho=rho, m=1),
    "logit": lambda base, rho: reference.LogitSAM(base, rho=rho),
    "jacobian": lambda base, rho: reference.JSAM(base, rho=rho),
}


def _raises_naming(name):
    return pytest.raises(ValueError, match=rf"(?<![A-Za-z_]){re.escape(name)}(?![A-Za-z_])")


def _linear_forward(ps, x):
    return x @ ps[0]


def _dln_forward(ps, x):
    return (x @ ps[1].T) @ ps[0]


def _params(model, x0, h, p):
    if model == "linear":
        return [torch.tensor(x0, requires_grad=True)]
    v = torch.tensor(x0[:h], requires_grad=True)
    big_w = torch.tensor(x0[h:].reshape(h, p).copy(), requires_grad=True)
    return [v, big_w]


def _flat(params):
    return torch.cat([q.detach().reshape(-1) for q in params]).numpy()


@pytest.mark.parametrize("model", ["linear", "dln"])
@pytest.mark.parametrize("mode", sorted(REFERENCES))
def test_twin_follows_the_reference_in_float64(model, mode):
    data = make_noisy_binary_data(n=25, dim=5, noise=0.3, seed=3)
    h = 3
    problem = data.linear() if model == "linear" else data.dln(h)
    x0 = 0.6 * np.random.default_rng(1).standard_normal(problem.dim)
    traj = sampy.run(REFERENCES[mode](SGD(lr=0.3, momentum=0.9), 0.25), problem, x0, STEPS)
    params = _params(model, x0, h, 5)
    opt = PerExampleSAM(params, torch.optim.SGD, rho=0.25, mode=mode, lr=0.3, momentum=0.9)
    forward = _linear_forward if model == "linear" else _dln_forward
    inputs, targets = torch.tensor(data.features), torch.tensor(data.labels)
    xs = [x0]
    for _ in range(STEPS):
        loss = opt.step(forward, inputs, targets)
        xs.append(_flat(params))
    np.testing.assert_allclose(np.array(xs), traj.xs, rtol=0, atol=1e-12)
    assert np.abs(traj.xs[-1] - x0).max() > 1e-2
    # The returned loss is the mean loss at the w of the last step.
    assert float(loss) == pytest.approx(float(problem.loss(traj.xs[-2])), rel=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_proposition_4_1_in_the_torch_twin(seed):
    """One example, plain SGD with lr = 1: the step is minus J-SAM's per-example gradient."""
    rng = np.random.default_rng(seed)
    h, p = 4, 6
    v, big_w, x = rng.standard_normal(h), rng.standard_normal((h, p)), rng.standard_normal(p)
    t = float(rng.choice([-1.0, 1.0]))
    params = [torch.tensor(v, requires_grad=True), torch.tensor(big_w, requires_grad=True)]
    opt = JSAM(params, torch.optim.SGD, rho=0.4, perturb_eps=0.0, lr=1.0)
    opt.step(_dln_forward, torch.tensor(x)[None], torch.tensor([t], dtype=torch.float64))
    step = np.concatenate([v, big_w.ravel()]) - _flat(params)
    expected = dln.jsam_gradients(v, big_w, x, int(t), 0.4).flat()
    np.testing.assert_allclose(step, expected, rtol=0, atol=1e-10)


def _mlp(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3)
    ).double()


def _per_example_by_loop(model, x, y, rho, mode):
    """The mean of G_i, one example at a time, with torch.autograd only (no vmap)."""
    params = list(model.parameters())
    total = [torch.zeros_like(q) for q in params]
    for xi, yi in zip(x, y, strict=True):
        logit = model(xi[None])[0]
        g = torch.autograd.grad(F.cross_entropy(logit[None], yi[None]), params)
        norm = torch.sqrt(sum((gi**2).sum() for gi in g))
        r_clean = (torch.softmax(logit, -1) - F.one_hot(yi, 3)).detach()
        with torch.no_grad():
            for q, gi in zip(params, g, strict=True):
                q.add_(rho * gi / norm)
        logit_adv = model(xi[None])[0]
        if mode == "1-sam":
            g_i = torch.autograd.grad(F.cross_entropy(logit_adv[None], yi[None]), params)
        elif mode == "jacobian":
            g_i = torch.autograd.grad((logit_adv * r_clean).sum(), params)
        r_adv = (torch.softmax(logit_adv, -1) - F.one_hot(yi, 3)).detach()
        with torch.no_grad():
            for q, gi in zip(params, g, strict=True):
                q.sub_(rho * gi / norm)
        if mode == "logit":
            g_i = torch.autograd.grad((model(xi[None])[0] * r_adv).sum(), params)
        for acc, gi in zip(total, g_i, strict=True):
            acc += gi / len(x)
    return total


@pytest.mark.parametrize("mode", ["1-sam", "logit", "jacobian"])
def test_multiclass_direction_equals_a_per_example_loop(mode):
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(11, 5, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (11,), generator=gen)
    reference_model, model = _mlp(), _mlp()
    expected = _per_example_by_loop(reference_model, x, y, 0.3, mode)
    before = [q.detach().clone() for q in model.parameters()]
    opt = PerExampleSAM(
        model.parameters(), torch.optim.SGD, rho=0.3, perturb_eps=0.0, mode=mode, lr=1.0
    )
    opt.step(functional_forward(model), x, y)
    for b, q, e in zip(before, model.parameters(), expected, strict=True):
        torch.testing.assert_close(b - q.detach(), e, rtol=0, atol=1e-12)


def test_functional_forward_is_the_model_and_checks_the_parameters():
    model = _mlp()
    x = torch.randn(4, 5, dtype=torch.float64)
    forward = functional_forward(model)
    torch.testing.assert_close(forward(tuple(model.parameters()), x), model(x))
    other = _mlp(1)
    opt = JSAM(other.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="other parameters"):
        opt.step(forward, x, torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="parameter tensors"):
        forward(tuple(model.parameters())[:2], x)


@pytest.mark.parametrize("cls", [JSAM, LogitSAM])
def test_rho_zero_is_the_base_optimizer(cls):
    model, twin = _mlp(), _mlp()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(16, 5, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (16,), generator=gen)
    opt = cls(model.parameters(), torch.optim.SGD, rho=0.0, lr=0.1, momentum=0.9)
    base = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9)
    forward = functional_forward(model)
    for _ in range(5):
        loss = opt.step(forward, x, y)
        base.zero_grad()
        expected = F.cross_entropy(twin(x), y)
        expected.backward()
        base.step()
        assert float(loss) == pytest.approx(float(expected.detach()), rel=1e-12)
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-13)


def test_per_group_rho_and_a_shared_norm():
    """Two groups with the same ρ equal one group; a different ρ changes only its group's ε."""
    data = make_noisy_binary_data(n=15, dim=4, noise=0.2, seed=1)
    x, t = torch.tensor(data.features), torch.tensor(data.labels)
    x0 = 0.5 * np.random.default_rng(0).standard_normal(3 + 12)
    one = _params("dln", x0, 3, 4)
    two = _params("dln", x0, 3, 4)
    a = JSAM(one, torch.optim.SGD, rho=0.3, lr=0.2)
    b = JSAM([{"params": two[:1]}, {"params": two[1:]}], torch.optim.SGD, rho=0.3, lr=0.2)
    for _ in range(5):
        a.step(_dln_forward, x, t)
        b.step(_dln_forward, x, t)
    np.testing.assert_allclose(_flat(one), _flat(two), rtol=0, atol=1e-15)
    three = _params("dln", x0, 3, 4)
    c = JSAM([{"params": three[:1], "rho": 0.0}, {"params": three[1:]}], rho=0.3, lr=0.2)
    assert c.param_groups[0]["rho"] == 0.0 and c.param_groups[1]["rho"] == 0.3
    c.step(_dln_forward, x, t)
    assert np.abs(_flat(three) - x0).max() > 0


def test_state_dict_round_trip_continues_the_same_run():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(20, 5, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (20,), generator=gen)
    model = _mlp()
    opt = JSAM(model.parameters(), torch.optim.SGD, rho=0.1, lr=0.05, momentum=0.9)
    forward = functional_forward(model)
    for _ in range(3):
        opt.step(forward, x, y)
    saved_model, saved_opt = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    # torch's layout: the base optimizer's momentum under each parameter
    assert all("momentum_buffer" in entry for entry in saved_opt["state"].values())
    for _ in range(3):
        opt.step(forward, x, y)
    resumed = _mlp(5)
    resumed.load_state_dict(saved_model)
    opt2 = JSAM(resumed.parameters(), torch.optim.SGD, rho=0.1, lr=0.05, momentum=0.9)
    opt2.load_state_dict(saved_opt)
    assert opt2.base_optimizer.param_groups is opt2.param_groups
    forward2 = functional_forward(resumed)
    for _ in range(3):
        opt2.step(forward2, x, y)
    for a, b in zip(model.parameters(), resumed.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_validation():
    model = _mlp()
    with _raises_naming("rho"):
        JSAM(model.parameters(), rho=-1.0, lr=0.1)
    with _raises_naming("perturb_eps"):
        LogitSAM(model.parameters(), perturb_eps=-1.0, lr=0.1)
    with _raises_naming("mode"):
        PerExampleSAM(model.parameters(), mode="2-sam", lr=0.1)
    with _raises_naming("base_optimizer"):
        JSAM(model.parameters(), SGD, lr=0.1)
    with _raises_naming("rho"):
        JSAM([{"params": list(model.parameters()), "rho": float("nan")}], lr=0.1)
    with pytest.raises(ValueError, match="clash"):
        JSAM(model.parameters(), torch.optim.Adadelta)
    opt = JSAM(model.parameters(), lr=0.1)
    forward = functional_forward(model)
    x = torch.randn(4, 5, dtype=torch.float64)
    with pytest.raises(ValueError, match="targets"):
        opt.step(forward, x, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="forward"):
        opt.step(None, x, torch.zeros(4, dtype=torch.long))
    assert opt.grad_evals_per_step == "2k"
    assert LogitSAM(model.parameters(), lr=0.1).grad_evals_per_step == "k + 1"


def test_the_twins_mirror_the_reference_signatures():
    import inspect

    for ours, ref in [(JSAM, reference.JSAM), (LogitSAM, reference.LogitSAM)]:
        mine = inspect.signature(ours).parameters
        for name, param in inspect.signature(ref).parameters.items():
            if name != "base":
                assert mine[name].default == param.default, name
        assert ours.HYPERPARAMETERS == ref.HYPERPARAMETERS


@pytest.mark.parametrize("mode", ["1-sam", "logit", "jacobian"])
def test_float32_and_a_zero_gradient_give_finite_steps(mode):
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    x = torch.zeros(6, 5)  # ReLU(bias) only: the first layer's weights get no gradient
    x[0] = 1.0
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    opt = PerExampleSAM(model.parameters(), rho=0.5, mode=mode, lr=0.1)
    forward = functional_forward(model)
    for _ in range(3):
        loss = opt.step(forward, x, y)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert all(torch.isfinite(q).all() for q in model.parameters())
    # The DLN's origin: every per-example gradient is exactly 0, so ε = 0 (no 0/0) and the
    # saddle point is a fixed point.
    params = [torch.zeros(3, requires_grad=True), torch.zeros(3, 4, requires_grad=True)]
    opt = PerExampleSAM(params, rho=0.5, mode=mode, lr=0.1)
    opt.step(_dln_forward, torch.randn(5, 4), torch.tensor([1.0, -1.0, 1.0, 1.0, -1.0]))
    assert all(torch.equal(q, torch.zeros_like(q)) for q in params)


# ---------------------------------------------------------------------------------------------
# The top Hessian eigenvalue


def test_top_hessian_eigenvalue_matches_the_full_hessian():
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3))
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(30, 4, generator=gen)
    y = torch.randint(0, 3, (30,), generator=gen)
    names = [n for n, _ in model.named_parameters()]
    shapes = [q.shape for q in model.parameters()]
    flat0 = torch.cat([q.detach().double().reshape(-1) for q in model.parameters()])

    def loss(flat):
        pieces, i = {}, 0
        for name, shape in zip(names, shapes, strict=True):
            pieces[name] = flat[i : i + shape.numel()].reshape(shape)
            i += shape.numel()
        return F.cross_entropy(torch.func.functional_call(model, pieces, (x.double(),)), y)

    full = torch.autograd.functional.hessian(loss, flat0)
    expected = float(torch.linalg.eigvalsh(full)[-1])
    got = top_hessian_eigenvalue(model, F.cross_entropy, x, y)
    assert got == pytest.approx(expected, rel=1e-6)
    assert next(model.parameters()).dtype == torch.float32  # the model was not changed


def test_top_hessian_eigenvalue_reports_a_non_finite_loss_as_nan():
    model = torch.nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.fill_(float("inf"))
    x, y = torch.ones(4, 3), torch.zeros(4, dtype=torch.long)
    assert np.isnan(top_hessian_eigenvalue(model, F.cross_entropy, x, y))
