"""What is ImbSAM's and bSAM's own: closure calls, the tail, sub-batches, reductions, noise.

Both twins take an example closure (``sampy.torch.examples``); on a ``SumOfExamples`` problem it
is built with ``sampy.torch.functional.as_torch_example_losses``. The contracts every twin keeps
(trajectory against the reference on the landscapes and on sums of examples, checkpoints,
several tensors, host reads, signatures) run for these rows and their settings in the
registry-driven suites (``test_torch_twins_from_registry.py``, ``test_torch_contracts.py``,
``test_torch_registry.py``). bSAM's comparisons use ``noise="numpy"`` (the reference's draws).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from twin_helpers import (  # noqa: E402
    STEPS,
    SYNCING,
    counting_closure,
    data,
    flat,
    mlp,
    start,
    two_groups,
)

import sampy  # noqa: E402
from sampy import optim as ref  # noqa: E402
from sampy.problems import TAIL, LogisticRegression, SumOfExamples, make_logistic_problem  # noqa: E402
from sampy.torch import host_reads  # noqa: E402
from sampy.torch.bsam import BSAM  # noqa: E402
from sampy.torch.functional import as_torch_example_losses, as_torch_loss  # noqa: E402
from sampy.torch.imbsam import ImbSAM  # noqa: E402
from sampy.torch.sam import SAM  # noqa: E402

F = torch.nn.functional


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# -- problems with head and tail examples ------------------------------------------------------


def _random_split() -> LogisticRegression:
    """Tail examples drawn at random, unrelated to the labels (40 % of 48)."""
    base = make_logistic_problem(n=48, dim=3, noise=0.1, l2=0.01, seed=5)
    groups = np.where(np.random.default_rng(7).random(48) < 0.4, "tail", "head")
    return LogisticRegression(base.features, base.labels, 0.01, groups=groups)


SPLITS: dict[str, Callable[[], SumOfExamples]] = {
    "imbalance-0.25": lambda: make_logistic_problem(imbalance=0.25, l2=0.01, noise=0.1),
    "imbalance-0.6-3d": lambda: make_logistic_problem(
        n=40, dim=3, imbalance=0.6, noise=0.2, seed=2
    ),
    "random-groups": _random_split,
}
X0 = {2: np.array([2.0, -1.5]), 3: np.array([1.5, -1.0, 0.5])}


def _example_run(make_opt, problem: SumOfExamples, x0, steps: int, step_args):
    """The twin on ``problem``: trajectory, closure calls (forwards) and backward passes."""
    x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    opt = make_opt([x])
    losses = as_torch_example_losses(problem)
    counts = {"forward": 0, "backward": 0}

    def closure(indices=None):
        counts["forward"] += 1
        return losses(x, indices)

    x.register_hook(lambda g: counts.__setitem__("backward", counts["backward"] + 1))
    xs = [x.detach().numpy().copy()]
    for _ in range(steps):
        opt.step(closure, *step_args)
        xs.append(x.detach().numpy().copy())
    return np.array(xs), counts


def _tail(problem: SumOfExamples, as_indices: bool = False) -> torch.Tensor:
    mask = torch.as_tensor(problem.groups == TAIL)
    return mask.nonzero().reshape(-1) if as_indices else mask


# -- ImbSAM's closure calls and its tail ------------------------------------------------------


@pytest.mark.parametrize("split", sorted(SPLITS))
def test_imbsam_takes_three_gradients_from_two_forwards_a_step(split):
    """All examples at w (head and tail gradients from one forward), the tail at w + ε."""
    problem = SPLITS[split]()
    x0 = X0[problem.dim]
    reference = sampy.run(ref.ImbSAM(ref.SGD(lr=0.1, momentum=0.9), rho=0.1), problem, x0, STEPS)
    _, counts = _example_run(
        lambda ps: ImbSAM(ps, rho=0.1, lr=0.1, momentum=0.9), problem, x0, STEPS, (_tail(problem),)
    )
    assert counts["backward"] == reference.grad_evals == 3 * STEPS
    assert counts["forward"] == 2 * STEPS


@pytest.mark.parametrize("groups", ["all-head", "all-tail"])
def test_imbsam_with_one_empty_side_spends_what_the_reference_spends(groups):
    base = make_logistic_problem(imbalance=0.5, noise=0.1, l2=0.01)
    label = "tail" if groups == "all-tail" else "head"
    problem = LogisticRegression(base.features, base.labels, 0.01, groups=[label] * base.n)
    x0 = X0[2]
    # Not as far as the minimum: there SAM's ε = ρ g/‖g‖ flips direction chaotically.
    hyper = {"rho": 0.1, "tail_weight": 1.5}
    reference = sampy.run(ref.ImbSAM(ref.SGD(lr=0.05), **hyper), problem, x0, STEPS)
    twin, counts = _example_run(
        lambda ps: ImbSAM(ps, lr=0.05, **hyper), problem, x0, STEPS, (_tail(problem),)
    )
    np.testing.assert_allclose(twin, reference.xs, rtol=0, atol=1e-10)
    assert np.abs(reference.xs[-1] - x0).max() > 1e-2
    assert counts["backward"] == reference.grad_evals == (1 if label == "head" else 2) * STEPS
    assert counts["forward"] == (1 if label == "head" else 2) * STEPS


def test_imbsam_tail_indices_equal_the_tail_mask():
    problem = SPLITS["random-groups"]()
    runs = [
        _example_run(
            lambda ps: ImbSAM(ps, torch.optim.Adam, lr=0.05),
            problem,
            X0[3],
            30,
            (_tail(problem, as_indices),),
        )[0]
        for as_indices in (False, True)
    ]
    assert np.array_equal(runs[0], runs[1])


# -- bSAM's sub-batches ------------------------------------------------------------------------


def test_bsam_calls_the_closure_with_array_split_sub_batches():
    x = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    seen: list[list[int]] = []

    def closure(indices=None):
        seen.append(indices.tolist())
        return (x.sum() * torch.ones(len(indices), dtype=torch.float64)) ** 2

    BSAM([x], batchsplit=3, num_data=math.inf).step(closure, batch_size=7)
    parts = [b.tolist() for b in np.array_split(np.arange(7), 3)]
    assert seen == [parts[0], parts[0], parts[1], parts[1], parts[2], parts[2]]


# -- reductions --------------------------------------------------------------------------------

INPUTS, TARGETS = data()
TAIL_MASK = TARGETS == 2  # one of the three classes is the tail


def _ce(model: torch.nn.Module, indices: torch.Tensor | None = None) -> torch.Tensor:
    x, y = (INPUTS, TARGETS) if indices is None else (INPUTS[indices], TARGETS[indices])
    return F.cross_entropy(model(x), y, reduction="none")


def _imbsam_on_mlp(tail: torch.Tensor, steps: int = 10, **hyper: Any) -> torch.Tensor:
    model = mlp()
    opt = ImbSAM(model.parameters(), torch.optim.SGD, lr=0.1, momentum=0.9, **hyper)
    for _ in range(steps):
        opt.step(lambda indices=None: _ce(model, indices), tail)
    return flat(model)


def _plain_on_mlp(cls, loss: Callable[[torch.nn.Module], torch.Tensor], steps=10, **kw):
    model = mlp()
    opt = cls(model.parameters(), lr=0.1, momentum=0.9, **kw)
    closure = counting_closure(opt, lambda: loss(model))
    for _ in range(steps):
        opt.step(closure)
    return flat(model)


def test_imbsam_with_an_empty_tail_is_the_base_on_the_head_loss():
    ours = _imbsam_on_mlp(torch.zeros(32, dtype=torch.bool))
    base = _plain_on_mlp(torch.optim.SGD, lambda m: _ce(m).mean())
    torch.testing.assert_close(ours, base, rtol=0, atol=1e-12)


@pytest.mark.parametrize("tail_weight", [1.0, 2.0])
def test_imbsam_with_an_empty_head_is_sam_on_the_tail_loss(tail_weight):
    """tail_weight = 1 is SAM itself; otherwise SAM on c·L (eps 1e-16 in both)."""
    ours = _imbsam_on_mlp(torch.ones(32, dtype=torch.bool), tail_weight=tail_weight)
    sam = _plain_on_mlp(
        SAM,
        lambda m: tail_weight * _ce(m).mean(),
        base_optimizer=torch.optim.SGD,
        rho=0.05,
        perturb_eps=1e-16,
    )
    torch.testing.assert_close(ours, sam, rtol=0, atol=1e-12)
    # The reduction is not trivial: a head example makes a difference.
    assert not torch.allclose(ours, _imbsam_on_mlp(TARGETS != 0, tail_weight=tail_weight))


def test_imbsam_with_rho_0_is_the_base_on_the_sum_of_both_losses():
    ours = _imbsam_on_mlp(TAIL_MASK, rho=0.0)
    weights = torch.where(TAIL_MASK, 2.0 / 32, 1.0 / 32).double()
    base = _plain_on_mlp(torch.optim.SGD, lambda m: (_ce(m) * weights).sum())
    torch.testing.assert_close(ours, base, rtol=0, atol=1e-12)
    assert not torch.allclose(ours, _imbsam_on_mlp(TAIL_MASK, rho=0.05))


def _adam_like(f, x0, steps, lr, betas, weight_decay, damping, s_init, order):
    """bSAM's deterministic limit, written from the formulas (ρ = 0, N = ∞)."""
    x, m, s = x0.astype(float), np.zeros_like(x0), np.full_like(x0, s_init)
    xs = [x]
    for _ in range(steps):
        g = f.grad(x)
        m = betas[0] * m + (1 - betas[0]) * (g + weight_decay * x)
        s_new = betas[1] * s + (1 - betas[1]) * (np.sqrt(s) * np.abs(g) + damping + weight_decay)
        x = x - lr * m / (s if order == "code" else s_new)
        s = s_new
        xs.append(x)
    return np.array(xs)


@pytest.mark.parametrize("order", ["code", "paper"])
@pytest.mark.parametrize("name", ["himmelblau", "six_hump_camel", "ill_conditioned"])
def test_bsam_without_rho_and_noise_is_the_deterministic_adam_like_method(name, order):
    f = sampy.functions.get(name)
    hyper = {"lr": 0.05, "betas": (0.8, 0.99), "weight_decay": 1e-2, "damping": 0.3}
    x0 = start(f)
    expected = _adam_like(f, x0, 100, s_init=1.5, order=order, **hyper)
    runs = []
    for seed, noise in ((0, "torch"), (9, "torch"), (1, "numpy")):
        x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
        opt = BSAM(
            [x],
            rho=0.0,
            num_data=math.inf,
            s_init=1.5,
            batchsplit=1,
            update_order=order,
            seed=seed,
            noise=noise,
            **hyper,
        )
        closure = counting_closure(opt, lambda x=x: as_torch_loss(f)(x))
        xs = [x.detach().numpy().copy()]
        for _ in range(100):
            opt.step(closure)
            xs.append(x.detach().numpy().copy())
        runs.append(np.array(xs))
    np.testing.assert_allclose(runs[0], expected, rtol=0, atol=1e-12)
    assert np.array_equal(runs[0], runs[1]) and np.array_equal(runs[0], runs[2])  # no noise
    assert np.abs(expected[-1] - x0).max() > 1e-2


@pytest.mark.parametrize("noise", ["torch", "numpy"])
def test_bsam_samples_have_the_posterior_variance(noise):
    """``Var(θ − w) = 1/(N s)``: the first sample of a 20 000-coordinate parameter."""
    w0 = torch.linspace(-1.0, 1.0, 20_000, dtype=torch.float64)
    x = w0.clone().requires_grad_(True)
    opt = BSAM([x], num_data=400.0, s_init=4.0, batchsplit=1, noise=noise, seed=11)
    samples = []

    def closure():
        samples.append(x.detach().clone())
        loss = (x**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    deviation = samples[0] - w0
    assert abs(deviation.std().item() - math.sqrt(1.0 / (400.0 * 4.0))) < 0.02 * 0.025
    assert abs(deviation.mean().item()) < 5e-4


# -- bSAM's checkpoint carries its noise (the round trip: test_torch_contracts.py) -------------

BATCH = len(TARGETS)


def _bsam_on_mlp(model: torch.nn.Module, noise: str = "torch") -> BSAM:
    return BSAM(
        two_groups(model), lr=0.01, rho=0.05, num_data=1000.0, batchsplit=2, noise=noise, seed=5
    )


def _bsam_step(opt: BSAM, model: torch.nn.Module) -> None:
    opt.step(lambda indices=None: _ce(model, indices), batch_size=BATCH)


def _imbsam_step(opt: ImbSAM, model: torch.nn.Module) -> None:
    opt.step(lambda indices=None: _ce(model, indices), TAIL_MASK)


def test_bsam_state_dict_carries_the_noise_state():
    """m and s alone do not resume: the generator must go on from where it was."""
    model = mlp()
    opt = _bsam_on_mlp(model)
    _bsam_step(opt, model)
    saved_model, saved = {k: v.clone() for k, v in model.state_dict().items()}, opt.state_dict()
    _bsam_step(opt, model)
    expected = flat(model)
    model2 = mlp()
    model2.load_state_dict(saved_model)
    opt2 = _bsam_on_mlp(model2)
    fresh_noise = _bsam_on_mlp(mlp()).state_dict()["param_groups"][0]["noise"]
    first, *rest = saved["param_groups"]
    opt2.load_state_dict({**saved, "param_groups": [{**first, "noise": fresh_noise}, *rest]})
    _bsam_step(opt2, model2)
    assert not torch.equal(flat(model2), expected)
    with pytest.raises(ValueError, match="noise"):
        _bsam_on_mlp(mlp(), "numpy").load_state_dict(saved)  # saved with noise="torch"
    with pytest.raises(ValueError, match="noise"):
        without = [{k: v for k, v in g.items() if k != "noise"} for g in saved["param_groups"]]
        opt2.load_state_dict({**saved, "param_groups": without})


# -- the step by hand, skipped parameters, the tail mask's one host read ----------------------


def test_imbsam_manual_steps_equal_step_with_closure():
    models = [mlp(), mlp()]
    opts = [ImbSAM(two_groups(m), torch.optim.SGD, lr=0.1, momentum=0.9) for m in models]
    for _ in range(5):
        _imbsam_step(opts[0], models[0])
        tail = opts[1].first_step(_ce(models[1]), TAIL_MASK)
        opts[1].second_step(_ce(models[1], tail), zero_grad=True)
    assert torch.equal(flat(models[0]), flat(models[1]))
    assert all(p.grad is None for p in models[1].parameters())
    # with an empty tail the second forward is skipped
    tail = opts[1].first_step(_ce(models[1]), torch.zeros(32, dtype=torch.bool))
    assert tail.numel() == 0
    opts[1].second_step(None)


def test_imbsam_phases_must_come_in_order():
    model = mlp()
    opt = ImbSAM(model.parameters(), lr=0.1)
    with pytest.raises(RuntimeError, match="first_step"):
        opt.second_step(None)
    tail = opt.first_step(_ce(model), TAIL_MASK)
    with pytest.raises(RuntimeError, match="second_step"):
        opt.first_step(_ce(model), TAIL_MASK)
    with pytest.raises(ValueError, match="tail losses"):
        opt.second_step(None)
    opt.second_step(_ce(model, tail))


def _used_and_unused():
    used = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64, requires_grad=True)
    unused = torch.tensor([5.0], dtype=torch.float64, requires_grad=True)
    frozen = torch.tensor([3.0], dtype=torch.float64)  # requires_grad=False: never touched
    seen_frozen: list[float] = []

    def closure(indices=None):
        seen_frozen.append(frozen.item())
        rows = torch.arange(4.0, dtype=torch.float64)[:, None] + 1.0
        losses = ((rows * used) ** 2).sum(-1) + used.prod() * frozen
        return losses if indices is None else losses[indices]

    return used, unused, frozen, seen_frozen, closure


@pytest.mark.parametrize("case", ["imbsam", "bsam", "bsam-plain"])
def test_a_frozen_parameter_is_never_perturbed_and_bsam_keeps_a_state_for_every_sampled_one(case):
    used, unused, frozen, seen_frozen, closure = _used_and_unused()
    params = [used, unused, frozen]
    if case == "imbsam":
        opt = ImbSAM(params, lr=1e-3)
        step = lambda: opt.step(closure, torch.tensor([True, False, True, False]))  # noqa: E731
    elif case == "bsam":
        opt = BSAM(params, lr=1e-3, rho=1e-3, num_data=100.0, batchsplit=2)
        step = lambda: opt.step(closure, batch_size=4)  # noqa: E731
    else:
        opt = BSAM(params, lr=1e-3, rho=1e-3, num_data=100.0, batchsplit=1)

        def plain():
            loss = closure().mean()
            loss.backward()
            return loss

        step = lambda: opt.step(plain)  # noqa: E731
    for _ in range(4):
        step()
    assert unused.grad is None and unused.item() == 5.0
    assert frozen.grad is None and frozen.item() == 3.0 and set(seen_frozen) == {3.0}
    assert torch.isfinite(used).all() and not torch.equal(used, torch.tensor([1.0, -2.0, 0.5]))
    if case != "imbsam":
        assert set(opt.state) == {used, unused}  # sampled, but only `used` moved
        assert torch.equal(opt.state[unused]["m"], torch.zeros(1, dtype=torch.float64))


def test_zero_and_nan_gradients_do_not_crash():
    x = torch.tensor([0.5, -0.5], dtype=torch.float64, requires_grad=True)

    def flat_losses(indices=None):
        return 0.0 * x.sum() * torch.ones(4 if indices is None else len(indices)).double()

    ImbSAM([x], lr=0.1).step(flat_losses, torch.tensor([True, False, True, False]))
    assert torch.equal(x, torch.tensor([0.5, -0.5], dtype=torch.float64))  # g = 0, ε = 0, d = 0
    BSAM([x], num_data=10.0, batchsplit=2).step(flat_losses, batch_size=4)
    assert torch.isfinite(x).all()

    def nan_losses(indices=None):
        return x.sum() * torch.full((4 if indices is None else len(indices),), math.nan).double()

    ImbSAM([x], lr=0.1).step(nan_losses, torch.tensor([True, False, True, False]))
    BSAM([x], num_data=10.0, batchsplit=2).step(nan_losses, batch_size=4)


def test_imbsam_step_with_a_tail_mask_reads_only_its_indices(monkeypatch):
    """The documented cost: ``nonzero()`` of the mask once a step (a sync for a GPU mask),
    and no other host read on the device path (on the CPU a norm is read on the host, where
    that waits for nothing: ``host_reads``)."""
    model = mlp()
    opt = ImbSAM(two_groups(model), torch.optim.SGD, lr=0.1, momentum=0.9)
    calls = []
    nonzero = torch.Tensor.nonzero

    def counted(self, *args, **kwargs):
        calls.append(1)
        return nonzero(self, *args, **kwargs)

    def forbidden(*args, **kwargs):
        raise AssertionError("a tensor value was read on the host during a step")

    with monkeypatch.context() as patch:
        patch.setattr(host_reads, "READ_CPU_VALUES", False)
        for attr in SYNCING:
            patch.setattr(torch.Tensor, attr, forbidden)
        patch.setattr(torch.Tensor, "nonzero", counted)
        for _ in range(3):
            opt.step(lambda i=None: _ce(model, i), TAIL_MASK)
    assert len(calls) == 3


# -- bad input ----------------------------------------------------------------------------------


def test_bsam_checks_a_group_added_later():
    """Bad hyperparameters at construction: tests/test_torch_registry.py, for every twin."""
    x = torch.ones(2, requires_grad=True)
    opt = BSAM([x])
    with pytest.raises(ValueError, match="lr"):
        opt.add_param_group({"params": [torch.ones(1, requires_grad=True)], "lr": -1.0})


def test_missing_closure_or_tail_fail_clearly():
    x = torch.ones(2, dtype=torch.float64, requires_grad=True)
    losses = lambda indices=None: x.sum() * torch.ones(4, dtype=torch.float64)  # noqa: E731
    with pytest.raises(ValueError, match="closure"):
        ImbSAM([x], lr=0.1).step()
    with pytest.raises(ValueError, match="closure"):
        ImbSAM([x], lr=0.1).step(None, torch.ones(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="tail"):
        ImbSAM([x], lr=0.1).step(losses)
    with pytest.raises(ValueError, match="closure"):
        BSAM([x], num_data=10.0).step()
    with pytest.raises(ValueError, match="closure"):
        BSAM([x], num_data=10.0, batchsplit=1).step()


@pytest.mark.parametrize(
    "tail",
    [
        torch.ones(5, dtype=torch.bool),  # one too many
        torch.ones(2, 2, dtype=torch.bool),
        torch.ones(4),  # float
        torch.zeros(2, 2, dtype=torch.int64),
        torch.arange(6),  # more indices than examples
        [True, False, True, False],  # not a tensor
    ],
    ids=["mask-too-long", "mask-2d", "float", "indices-2d", "too-many-indices", "list"],
)
def test_imbsam_wrong_tail_gives_a_clear_error(tail):
    x = torch.ones(2, dtype=torch.float64, requires_grad=True)
    opt = ImbSAM([x], lr=0.1)
    with pytest.raises(ValueError, match="tail"):
        opt.step(lambda indices=None: x.sum() * torch.ones(4, dtype=torch.float64), tail)
    assert opt._pending is None  # nothing half done: a correct step works
    opt.step(
        lambda i=None: (x * x).sum() * torch.ones(4 if i is None else len(i)),
        torch.ones(4, dtype=torch.bool),
    )


def test_bsam_closure_contract_errors_are_clear():
    x = torch.ones(2, dtype=torch.float64, requires_grad=True)

    def losses(indices=None):
        return (x**2).sum() * torch.ones(6 if indices is None else len(indices)).double()

    def plain():
        loss = (x**2).sum()
        loss.backward()
        return loss

    with pytest.raises(ValueError, match="batch_size"):
        BSAM([x], batchsplit=2).step(losses)
    with pytest.raises(ValueError, match="num_data"):
        BSAM([x], batchsplit=1).step(plain)
    with pytest.raises(ValueError, match="batchsplit"):
        BSAM([x], batchsplit=8).step(losses, batch_size=6)
    with pytest.raises(ValueError, match="example closure"):
        BSAM([x], batchsplit=2).step(plain, batch_size=6)
    with pytest.raises(ValueError, match="batch_size"):
        BSAM([x], batchsplit=2).step(losses, batch_size=0)
    with pytest.raises(ValueError, match="6 losses"):
        BSAM([x], batchsplit=1).step(losses, batch_size=5)
    with pytest.raises(ValueError, match="1-D"):
        BSAM([x], batchsplit=1, num_data=10.0).step(lambda: torch.ones(2, 2))
    # batchsplit=1 takes either closure; both give the same step when they agree.
    ones = [torch.ones(2, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    BSAM([ones[0]], batchsplit=1, num_data=10.0, seed=1).step(
        lambda: (ones[0] ** 2).sum().backward() or (ones[0] ** 2).sum()
    )
    BSAM([ones[1]], batchsplit=1, num_data=10.0, seed=1).step(lambda: (ones[1] ** 2).sum()[None])
    assert torch.equal(ones[0], ones[1]) and not torch.equal(ones[0], torch.ones(2).double())


# -- CUDA, where there is one ----------------------------------------------------------------


def _run_on(device: str, steps: int = 4) -> torch.Tensor:
    """ImbSAM (tail indices) and bSAM (torch noise) on ``device``; no sync after the warm-up."""
    models = [mlp().to(device), mlp().to(device)]
    x, y = INPUTS.to(device), TARGETS.to(device)
    tail = TAIL_MASK.nonzero().reshape(-1).to(device)
    imb = ImbSAM(two_groups(models[0]), torch.optim.SGD, lr=0.1, momentum=0.9)
    bsam = BSAM(two_groups(models[1]), lr=0.01, num_data=math.inf, batchsplit=2)

    def losses(model, indices=None):
        xs, ys = (x, y) if indices is None else (x[indices], y[indices])
        return F.cross_entropy(model(xs), ys, reduction="none")

    for t in range(steps):
        strict = device == "cuda" and t > 0
        if strict:
            torch.cuda.set_sync_debug_mode("error")
        try:
            imb.step(lambda i=None: losses(models[0], i), tail)
            bsam.step(lambda i=None: losses(models[1], i), batch_size=len(y))
        finally:
            if strict:
                torch.cuda.set_sync_debug_mode(0)
    return torch.cat([flat(m).cpu() for m in models])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_steps_match_cpu_and_do_not_synchronise():
    torch.testing.assert_close(_run_on("cuda"), _run_on("cpu"), rtol=1e-9, atol=1e-9)
