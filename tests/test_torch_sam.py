"""The torch twin ``sampy.torch.SAM`` against the NumPy reference and against its contract."""

from __future__ import annotations

import copy
import io
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import sampy  # noqa: E402
import sampy.torch as st  # noqa: E402
from sampy.optim import SAM, SGD, Adam, AdamW  # noqa: E402

MODES = {
    "sam": {},
    "asam": {"adaptive": True},
    "asam-eta": {"adaptive": True, "eta": 0.01},
    "p=inf": {"p": math.inf},
    "p=3": {"p": 3.0},
    "p=1": {"p": 1.0},
}
BASES = {
    "sgd-momentum": (SGD, torch.optim.SGD, {"lr": 1e-3, "momentum": 0.5}),
    "sgd-nesterov-wd": (
        SGD,
        torch.optim.SGD,
        {"lr": 1e-3, "momentum": 0.5, "nesterov": True, "weight_decay": 1e-2},
    ),
    "adam": (Adam, torch.optim.Adam, {"lr": 1e-3}),
    "adamw": (AdamW, torch.optim.AdamW, {"lr": 1e-3, "weight_decay": 0.1}),
}
STEPS = 200
OFFSET = 0.3


def _torch_trajectory(f, x0, steps, base_cls, base_kwargs, **sam_kwargs):
    x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    opt = st.SAM([x], base_cls, **sam_kwargs, **base_kwargs)
    loss = st.as_torch_loss(f)

    def closure():
        opt.zero_grad()
        value = loss(x)
        value.backward()
        return value

    xs = [x.detach().numpy().copy()]
    for _ in range(steps):
        opt.step(closure)
        xs.append(x.detach().numpy().copy())
    return np.array(xs)


# Start and learning-rate scale where the default (a fixed offset from the last minimum, the
# bases' lr) is not a well-conditioned run: Beale's valley floor makes SAM bounce chaotically
# from the default start, and Goldstein-Price's gradients (~1e3) diverge at lr 1e-3.
SETTINGS = {"beale": ((2.5, 0.3), 1.0), "goldstein_price": ((0.1, -1.1), 0.003)}


def _start(f) -> np.ndarray:
    # Near a minimum, where every landscape is smooth, but far enough that 200 steps do not
    # reach the bouncing regime at the minimum (there ε = ρ g/‖g‖ flips with the sign of a
    # vanishing g, which amplifies rounding: chaotic drift).
    if f.name in SETTINGS:
        return np.array(SETTINGS[f.name][0])
    return f.minima[-1] + np.array([OFFSET, -OFFSET])


def _lr_scale(f) -> float:
    return SETTINGS.get(f.name, (None, 1.0))[1]


@pytest.mark.parametrize("base", sorted(BASES))
@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("name", sampy.functions.names())
def test_twin_follows_reference_trajectory(name, mode, base):
    f = sampy.functions.get(name)
    np_cls, torch_cls, kwargs = BASES[base]
    kwargs = {**kwargs, "lr": kwargs["lr"] * _lr_scale(f)}
    sam_kwargs = {"rho": 0.05, **MODES[mode]}
    x0 = _start(f)
    reference = sampy.run(SAM(np_cls(**kwargs), **sam_kwargs), f, x0, STEPS)
    twin = _torch_trajectory(f, x0, STEPS, torch_cls, kwargs, **sam_kwargs)
    assert not reference.diverged.any()
    np.testing.assert_allclose(twin, reference.xs, rtol=0, atol=1e-10)
    # The run must actually move, or equality would be trivial.
    assert np.abs(reference.xs[-1] - x0).max() > 1e-4


def test_rho_zero_is_the_base_optimizer_bit_for_bit():
    f = sampy.functions.get("rosenbrock")
    x0 = np.array([-1.0, 1.5])
    plain = torch.tensor(x0, requires_grad=True)
    base = torch.optim.SGD([plain], lr=1e-3, momentum=0.9)
    loss = st.as_torch_loss(f)
    twin = _torch_trajectory(f, x0, 50, torch.optim.SGD, {"lr": 1e-3, "momentum": 0.9}, rho=0.0)
    for k in range(50):
        base.zero_grad()
        loss(plain).backward()
        base.step()
        assert np.array_equal(plain.detach().numpy(), twin[k + 1])


def _mlp(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)
    ).double()


def _data(seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(32, 5, generator=gen, dtype=torch.float64), torch.randint(
        0, 3, (32,), generator=gen
    )


def test_multi_tensor_model_uses_one_global_norm_like_the_flat_reference():
    """A model with 4 tensors in 2 groups equals the reference on the flattened vector."""
    model = _mlp()
    inputs, targets = _data()
    params = list(model.parameters())
    shapes = [p.shape for p in params]
    sizes = [p.numel() for p in params]

    def unflatten(w):
        return [t.reshape(s) for t, s in zip(torch.split(w, sizes), shapes, strict=True)]

    def loss_of(w):
        w1, b1, w2, b2 = unflatten(w)
        hidden = torch.tanh(inputs @ w1.T + b1)
        return torch.nn.functional.cross_entropy(hidden @ w2.T + b2, targets)

    def value_and_grad(x):
        w = torch.tensor(x, requires_grad=True)
        value = loss_of(w)
        (grad,) = torch.autograd.grad(value, w)
        return value.detach().numpy(), grad.numpy()

    flat0 = torch.cat([p.detach().reshape(-1) for p in params]).numpy()
    oracle = sampy.optim.Oracle(lambda x: value_and_grad(x)[0])
    oracle._grad = lambda x: value_and_grad(x)[1]
    opt = SAM(SGD(lr=0.1, momentum=0.9), rho=0.1)
    state, x = opt.init(flat0), flat0.copy()

    groups = [{"params": params[:2]}, {"params": params[2:]}]
    twin = st.SAM(groups, torch.optim.SGD, rho=0.1, lr=0.1, momentum=0.9)

    def closure():
        twin.zero_grad()
        value = torch.nn.functional.cross_entropy(model(inputs), targets)
        value.backward()
        return value

    for _ in range(20):
        x, state = opt.step(x, state, oracle)
        twin.step(closure)
    now = torch.cat([p.detach().reshape(-1) for p in params]).numpy()
    np.testing.assert_allclose(now, x, rtol=0, atol=1e-12)
    assert oracle.calls == 40


def test_manual_first_and_second_step_equal_step_with_closure():
    inputs, targets = _data()
    models = [_mlp(), _mlp()]
    opts = [st.SAM(m.parameters(), torch.optim.SGD, rho=0.05, lr=0.1) for m in models]

    def closure():
        opts[0].zero_grad()
        value = torch.nn.functional.cross_entropy(models[0](inputs), targets)
        value.backward()
        return value

    for _ in range(5):
        opts[0].step(closure)
        torch.nn.functional.cross_entropy(models[1](inputs), targets).backward()
        opts[1].first_step(zero_grad=True)
        torch.nn.functional.cross_entropy(models[1](inputs), targets).backward()
        opts[1].second_step(zero_grad=True)
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        assert torch.equal(a, b)


def test_first_step_moves_by_rho_and_second_step_restores_exactly():
    model = _mlp()
    inputs, targets = _data()
    opt = st.SAM(model.parameters(), torch.optim.SGD, rho=0.3, perturb_eps=0.0, lr=1e-9)
    before = [p.detach().clone() for p in model.parameters()]
    torch.nn.functional.cross_entropy(model(inputs), targets).backward()
    opt.first_step()
    moved = torch.sqrt(
        sum(((p - b) ** 2).sum() for p, b in zip(model.parameters(), before, strict=True))
    )
    assert moved.item() == pytest.approx(0.3, rel=1e-12)
    opt.second_step()
    # Restored exactly, then a tiny base step: compare against the base step done by hand.
    for p, b in zip(model.parameters(), before, strict=True):
        assert torch.allclose(p, b - 1e-9 * p.grad, rtol=0, atol=1e-15)


def test_zero_gradient_gives_no_nan_for_every_mode():
    for kwargs in MODES.values():
        x = torch.zeros(3, dtype=torch.float64, requires_grad=True)
        opt = st.SAM([x], torch.optim.SGD, lr=0.1, **kwargs)

        def closure(x=x, opt=opt):
            opt.zero_grad()
            value = (x * 0.0).sum()
            value.backward()
            return value

        opt.step(closure)
        assert torch.isfinite(x).all() and torch.equal(x, torch.zeros(3, dtype=torch.float64))


def test_parameters_without_gradient_are_skipped():
    used = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    unused = torch.tensor([5.0], dtype=torch.float64, requires_grad=True)
    opt = st.SAM([used, unused], torch.optim.SGD, rho=0.1, perturb_eps=0.0, lr=0.1)

    def closure():
        opt.zero_grad()
        value = (used**2).sum()
        value.backward()
        return value

    opt.step(closure)
    assert unused.grad is None and unused.item() == 5.0
    # SAM on Σw² by hand: g = 2w, ε = ρ g/‖g‖, g̃ = 2(w + ε), w ← w − lr g̃.
    w = np.array([1.0, 2.0])
    g = 2 * w
    expected = w - 0.1 * 2 * (w + 0.1 * g / np.linalg.norm(g))
    np.testing.assert_allclose(used.detach().numpy(), expected, rtol=1e-14, atol=0)


def test_per_group_rho_with_a_shared_global_norm():
    a = torch.tensor([3.0], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([4.0], dtype=torch.float64, requires_grad=True)
    opt = st.SAM([{"params": [a], "rho": 1.0}, {"params": [b], "rho": 2.0}], lr=0.1)
    ((a**2).sum() / 2 + (b**2).sum() / 2).backward()  # g = (3, 4), ‖g‖ = 5
    opt.first_step()
    assert a.item() == pytest.approx(3.0 + 1.0 * 3 / 5, abs=1e-12)
    assert b.item() == pytest.approx(4.0 + 2.0 * 4 / 5, abs=1e-12)


def test_state_dict_round_trip_continues_bit_identically():
    inputs, targets = _data()
    for base_cls, kwargs in [
        (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9}),
        (torch.optim.Adam, {"lr": 1e-2}),
    ]:
        model = _mlp()
        opt = st.SAM(model.parameters(), base_cls, rho=0.05, adaptive=True, **kwargs)

        def closure(model=model, opt=opt):
            opt.zero_grad()
            value = torch.nn.functional.cross_entropy(model(inputs), targets)
            value.backward()
            return value

        for _ in range(5):
            opt.step(closure)
        buffer = io.BytesIO()
        torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
        for _ in range(5):
            opt.step(closure)
        expected = [p.detach().clone() for p in model.parameters()]

        buffer.seek(0)
        saved = torch.load(buffer)
        model2 = _mlp(seed=123)
        model2.load_state_dict(saved["model"])
        opt2 = st.SAM(model2.parameters(), base_cls, rho=0.05, adaptive=True, **kwargs)
        opt2.load_state_dict(saved["opt"])
        assert opt2.base_optimizer.param_groups is opt2.param_groups
        assert len(opt2.base_optimizer.state) == len(list(model2.parameters()))

        def closure2(model2=model2, opt2=opt2):
            opt2.zero_grad()
            value = torch.nn.functional.cross_entropy(model2(inputs), targets)
            value.backward()
            return value

        for _ in range(5):
            opt2.step(closure2)
        for p, e in zip(model2.parameters(), expected, strict=True):
            assert torch.equal(p, e)


def test_lr_scheduler_drives_the_shared_param_groups():
    x = torch.ones(2, dtype=torch.float64, requires_grad=True)
    opt = st.SAM([x], torch.optim.SGD, lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    for _ in range(3):
        opt.step(lambda: (opt.zero_grad(), (x**2).sum().backward())[0])
        scheduler.step()
    assert opt.base_optimizer.param_groups[0]["lr"] == pytest.approx(0.125)


def test_step_without_closure_and_second_step_without_first_step_fail_clearly():
    x = torch.ones(2, requires_grad=True)
    opt = st.SAM([x], lr=0.1)
    with pytest.raises(ValueError, match="closure"):
        opt.step()
    with pytest.raises(RuntimeError, match="first_step"):
        opt.second_step()


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"rho": -0.1}, "rho"),
        ({"p": 0.5}, "p"),
        ({"p": float("nan")}, "p"),
        ({"eta": -1.0}, "eta"),
        ({"adaptive": "yes"}, "adaptive"),
        ({"perturb_eps": -1.0}, "perturb_eps"),
        ({"base_optimizer": object}, "base_optimizer"),
    ],
)
def test_bad_hyperparameters_raise_value_error_naming_them(kwargs, name):
    x = torch.ones(2, requires_grad=True)
    with pytest.raises(ValueError, match=name):
        st.SAM([x], **{"lr": 0.1, **kwargs})


def test_bad_learning_rate_is_rejected_by_the_base_optimizer():
    x = torch.ones(2, requires_grad=True)
    with pytest.raises(ValueError, match="learning rate"):
        st.SAM([x], lr=-0.1)


def test_batchnorm_running_stats_are_updated_once_per_step():
    torch.manual_seed(0)
    for momentum in (0.1, None):
        model = torch.nn.Sequential(
            torch.nn.Linear(4, 6), torch.nn.BatchNorm1d(6, momentum=momentum)
        )
        bn = model[1]
        opt = st.SAM(model.parameters(), lr=0.1, rho=0.5)
        inputs = torch.randn(16, 4)
        reference = copy.deepcopy(model)
        reference(inputs)  # one clean forward pass: the statistics a SAM step should keep

        def closure(model=model, opt=opt, inputs=inputs):
            opt.zero_grad()
            value = model(inputs).pow(2).mean()
            value.backward()
            return value

        loss = closure()
        assert torch.isfinite(loss)
        opt.first_step(zero_grad=True)
        st.disable_running_stats(model)
        closure()
        st.enable_running_stats(model)
        opt.second_step()
        assert torch.allclose(bn.running_mean, reference[1].running_mean)
        assert torch.allclose(bn.running_var, reference[1].running_var)
        assert bn.num_batches_tracked.item() == 1
        assert bn.momentum == momentum


def test_float32_model_runs_and_matches_float64_loosely():
    f = sampy.functions.get("himmelblau")
    x0 = _start(f)
    x = torch.tensor(x0, dtype=torch.float32, requires_grad=True)
    opt = st.SAM([x], torch.optim.SGD, rho=0.05, lr=1e-3)
    loss = st.as_torch_loss(f)
    for _ in range(50):
        opt.step(lambda: (opt.zero_grad(), loss(x).backward())[0])
    reference = sampy.run(SAM(SGD(lr=1e-3), rho=0.05), f, x0, 50)
    np.testing.assert_allclose(x.detach().numpy(), reference.final, rtol=0, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_step_matches_cpu():
    inputs, targets = _data()
    results = []
    for device in ("cpu", "cuda"):
        model = _mlp().to(device)
        opt = st.SAM(model.parameters(), torch.optim.SGD, rho=0.05, lr=0.1, momentum=0.9)
        x, y = inputs.to(device), targets.to(device)
        for _ in range(5):
            opt.step(
                lambda model=model, opt=opt, x=x, y=y: (
                    opt.zero_grad(),
                    torch.nn.functional.cross_entropy(model(x), y).backward(),
                )[0]
            )
        results.append(torch.cat([p.detach().cpu().reshape(-1) for p in model.parameters()]))
    torch.testing.assert_close(results[0], results[1], rtol=1e-9, atol=1e-9)
