"""The practical knobs of ``sampy.torch``: ρ following the LR, gradient centralization, clipping
placements, weight EMA; and the runnable examples of their docstrings."""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402

import sampy.torch as st  # noqa: E402
from sampy.optim.gsam import proportional_rho  # noqa: E402

LR, RHO_MAX, RHO_MIN = 0.05, 0.05, 0.01


def _mlp(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)
    ).double()


def _batch(step: int, n: int = 12):
    gen = torch.Generator().manual_seed(step)
    x = torch.randn(n, 5, generator=gen, dtype=torch.float64)
    return x, torch.randint(0, 3, (n,), generator=gen)


def _flat(model) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def _two_groups(model, lr: float = LR):
    weights = [p for p in model.parameters() if p.ndim > 1]
    biases = [p for p in model.parameters() if p.ndim <= 1]
    return [{"params": weights, "lr": lr}, {"params": biases, "lr": 2 * lr}]


def _sam_step(model, opt, x, y) -> float:
    """A two-call step; returns ‖ε‖ (how far first_step moved the weights)."""
    F.cross_entropy(model(x), y).backward()
    w = _flat(model)
    opt.first_step(zero_grad=True)
    moved = (_flat(model) - w).norm().item()
    F.cross_entropy(model(x), y).backward()
    opt.second_step(zero_grad=True)
    return moved


# -- ProportionalRho -------------------------------------------------------------------------


@pytest.mark.parametrize("twin", [st.SAM, st.GSAM])
def test_eps_norm_follows_the_learning_rate_over_one_cycle(twin):
    model = _mlp()
    opt = twin(model.parameters(), torch.optim.SGD, lr=LR, momentum=0.9)
    steps = 30
    lr_scheduler = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=steps)
    rho_scheduler = st.ProportionalRho(opt, LR, 0.0, RHO_MAX, RHO_MIN)
    formula = proportional_rho(lambda t: opt.param_groups[0]["lr"], LR, 0.0, RHO_MAX, RHO_MIN)
    lrs, moves = [], []
    for step in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        expected = formula(step)
        assert opt.param_groups[0]["rho"] == expected
        moves.append(_sam_step(model, opt, *_batch(step)))
        assert moves[-1] == pytest.approx(expected, rel=1e-9)
        lr_scheduler.step()
        rho_scheduler.step()
    # Up and down with the cycle: the largest ε comes with the largest learning rate.
    assert int(np.argmax(moves)) == int(np.argmax(lrs))
    assert moves[0] < 0.5 * max(moves) and moves[-1] < 0.5 * max(moves)


def test_each_group_follows_its_own_learning_rate():
    model = _mlp()
    opt = st.SAM(_two_groups(model), torch.optim.SGD, momentum=0.9)
    lr_scheduler = torch.optim.lr_scheduler.OneCycleLR(
        opt.base_optimizer, max_lr=[LR, 2 * LR], total_steps=10
    )
    rho_scheduler = st.ProportionalRho(opt, [LR, 2 * LR], 0.0, RHO_MAX, RHO_MIN)
    for step in range(10):
        for group, lr_max in zip(opt.param_groups, [LR, 2 * LR], strict=True):
            lr = group["lr"]
            assert group["rho"] == proportional_rho(
                lambda t, lr=lr: lr, lr_max, 0.0, RHO_MAX, RHO_MIN
            )(0)
            assert RHO_MIN <= group["rho"] <= RHO_MAX
        _sam_step(model, opt, *_batch(step))
        lr_scheduler.step()
        rho_scheduler.step()
    assert rho_scheduler.get_last_rho() == [g["rho"] for g in opt.param_groups]


def test_rho_follows_reduce_lr_on_plateau():
    model = _mlp()
    opt = st.SAM(model.parameters(), torch.optim.SGD, lr=LR)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0)
    rho_scheduler = st.ProportionalRho(opt, LR, 0.0, RHO_MAX, RHO_MIN)
    assert opt.param_groups[0]["rho"] == RHO_MAX
    for _ in range(2):
        plateau.step(1.0)  # no improvement after the first: the lr halves
        rho_scheduler.step()
    assert opt.param_groups[0]["lr"] == LR / 2
    assert opt.param_groups[0]["rho"] == pytest.approx(RHO_MIN + (RHO_MAX - RHO_MIN) / 2)


def test_rho_scheduler_state_round_trips(tmp_path):
    model = _mlp()
    opt = st.SAM(_two_groups(model), torch.optim.SGD)
    rho_scheduler = st.ProportionalRho(
        opt, [LR, 2 * LR], [0.0, 0.001], RHO_MAX, RHO_MIN, clamp=True
    )
    for group in opt.param_groups:
        group["lr"] *= 0.3
    rho_scheduler.step()
    torch.save(rho_scheduler.state_dict(), tmp_path / "rho.pt")
    fresh = st.ProportionalRho(opt, 1.0, 0.0, 0.1, 0.0)
    fresh.load_state_dict(torch.load(tmp_path / "rho.pt", weights_only=True))
    assert fresh.state_dict() == rho_scheduler.state_dict()
    for group in opt.param_groups:
        group["lr"] *= 0.5
    rho_scheduler.step()
    expected = rho_scheduler.get_last_rho()
    fresh.step()
    assert fresh.get_last_rho() == expected
    with pytest.raises(ValueError, match="unknown keys"):
        fresh.load_state_dict({"rho": 1.0})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr_max": 0.01, "lr_min": 0.1}, "lr_max must be >= lr_min"),
        ({"lr_max": float("nan")}, "lr_max must be a finite real number"),
        ({"rho_max": -0.1}, "rho_max"),
        ({"lr_max": [0.1, 0.2]}, "2 entries for 1 parameter groups"),
        ({"clamp": 1}, "clamp must be True or False"),
    ],
)
def test_rho_scheduler_rejects_bad_arguments(kwargs, message):
    opt = st.SAM(_mlp().parameters(), torch.optim.SGD, lr=LR)
    arguments = {"lr_max": LR, "lr_min": 0.0, "rho_max": RHO_MAX, "rho_min": RHO_MIN, **kwargs}
    with pytest.raises(ValueError, match=message):
        st.ProportionalRho(opt, **arguments)


def test_rho_scheduler_rejects_optimizers_it_cannot_drive():
    params = list(_mlp().parameters())
    with pytest.raises(ValueError, match="has no 'rho'"):
        st.ProportionalRho(torch.optim.SGD(params, lr=LR), LR, 0.0, RHO_MAX, RHO_MIN)
    gsam = st.GSAM(params, torch.optim.SGD, lr=LR, rho_schedule=lambda t: 0.05)
    with pytest.raises(ValueError, match="rho_schedule"):
        st.ProportionalRho(gsam, LR, 0.0, RHO_MAX, RHO_MIN)


def test_a_learning_rate_below_lr_min_needs_clamp():
    """Below lr_min the line goes on down: a warm-up from lr 0 with rho_min = 0 gives ρ < 0."""
    opt = st.SAM(_mlp().parameters(), torch.optim.SGD, lr=0.001)
    with pytest.raises(ValueError, match="below lr_min"):
        st.ProportionalRho(opt, LR, 0.01, RHO_MAX, 0.0)
    st.ProportionalRho(opt, LR, 0.01, RHO_MAX, 0.0, clamp=True)
    assert opt.param_groups[0]["rho"] == 0.0


def test_rho_scheduler_agrees_with_pytorch_optimizer_gsam():
    po = pytest.importorskip("pytorch_optimizer")
    from pytorch_optimizer.lr_scheduler.proportion import ProportionScheduler

    steps, alpha = 12, 0.4
    ours, theirs = _mlp(), _mlp()
    opt = st.GSAM(ours.parameters(), torch.optim.SGD, alpha=alpha, lr=LR, momentum=0.9)
    lr_ours = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=steps)
    rho_ours = st.ProportionalRho(opt, LR, 0.0, RHO_MAX, RHO_MIN)

    base = torch.optim.SGD(theirs.parameters(), lr=LR, momentum=0.9)
    lr_theirs = torch.optim.lr_scheduler.OneCycleLR(base, max_lr=LR, total_steps=steps)
    po_rho = ProportionScheduler(
        lr_theirs, max_lr=LR, min_lr=0.0, max_value=RHO_MAX, min_value=RHO_MIN
    )
    po_gsam = po.GSAM(theirs.parameters(), base, theirs, po_rho, alpha=alpha)
    for step in range(steps):
        x, y = _batch(step)
        _sam_step(ours, opt, x, y)
        po_gsam.set_closure(F.cross_entropy, x, y)
        po_gsam.step()
        po_gsam.zero_grad()
        lr_ours.step()
        rho_ours.step()
        lr_theirs.step()
        po_gsam.update_rho_t()
        assert rho_ours.get_last_rho()[0] == pytest.approx(po_gsam.rho_t, rel=1e-12)
    # pytorch-optimizer takes the global gradient norm in float32 (get_global_gradient_norm),
    # so its float64 steps carry relative errors of float32's epsilon, ~1e-7, in ε.
    torch.testing.assert_close(_flat(ours), _flat(theirs), rtol=1e-6, atol=1e-8)


# -- the docstrings' examples ----------------------------------------------------------------

DOCUMENTED_MODULES = (
    "sampy.torch.batchnorm",
    "sampy.torch.recipes",
    "sampy.torch.rho_scheduler",
)


@pytest.mark.parametrize("name", DOCUMENTED_MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    examples = 0
    for test in finder.find(module, name, globs={}):
        examples += len(test.examples)
        runner.run(test)
    assert examples > 0, f"{name} has no runnable example"
    assert runner.failures == 0, f"{runner.failures} example(s) of {name} failed (see output)"


@pytest.mark.parametrize("name", DOCUMENTED_MODULES)
def test_every_public_function_shows_an_example(name):
    module = importlib.import_module(name)
    missing = [
        public
        for public in module.__all__
        if ">>>" not in (getattr(module, public).__doc__ or "")
        and public != "RunningStatsFromFirstPass"  # returned by running_stats_from_first_pass
    ]
    assert not missing, f"{name}: no example in the docstring of {missing}"
