"""The torch twins of RandomSAM, MultiStepSAM and MSharpnessSAM against their references.

RandomSAM and MSharpnessSAM draw random numbers: with ``noise="numpy"`` they make the
reference's draws, so the trajectories agree to 1e-10; ``noise="torch"`` is checked for
reproducibility, checkpoints and the absence of host synchronisation. MSharpnessSAM takes an
example closure (``sampy.torch.examples``) and is compared with the reference on
``sampy.problems`` through ``sampy.torch.functional.as_torch_example_losses``.
"""

from __future__ import annotations

import inspect
import io
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from twin_helpers import (  # noqa: E402
    FUNCTIONS,
    STEPS,
    counting_closure,
    data,
    flat,
    guard_methods,
    mlp,
    start,
    two_groups,
)

import sampy  # noqa: E402
import sampy.torch as st  # noqa: E402
from sampy import optim as ref  # noqa: E402
from sampy.problems import SumOfExamples, make_logistic_problem  # noqa: E402
from sampy.torch.functional import as_torch_example_losses  # noqa: E402
from sampy.torch.msharpness import MSharpnessSAM, MultiStepSAM  # noqa: E402
from sampy.torch.random_sam import RandomSAM  # noqa: E402

TWINS = (RandomSAM, MultiStepSAM, MSharpnessSAM)
RANDOM = (RandomSAM, MSharpnessSAM)  # the twins with a twin-only ``noise`` argument
REFERENCE = {
    RandomSAM: ref.RandomSAM,
    MultiStepSAM: ref.MultiStepSAM,
    MSharpnessSAM: ref.MSharpnessSAM,
}
BASES = {
    "sgd-momentum": (ref.SGD, torch.optim.SGD, {"lr": 1e-3, "momentum": 0.5}),
    "adam": (ref.Adam, torch.optim.Adam, {"lr": 1e-3}),
}
INPUTS, TARGETS = data()
N = INPUTS.shape[0]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _numpy_noise(cls: type) -> dict[str, str]:
    return {"noise": "numpy"} if cls in RANDOM else {}


def _mlp_loss(model: torch.nn.Module) -> Callable[[], torch.Tensor]:
    return lambda: torch.nn.functional.cross_entropy(model(INPUTS), TARGETS)


def _mlp_losses(model: torch.nn.Module):
    """The example closure of ``mlp()`` on ``data()``."""

    def losses(indices: torch.Tensor | None = None) -> torch.Tensor:
        losses.calls += 1
        x, y = (INPUTS, TARGETS) if indices is None else (INPUTS[indices], TARGETS[indices])
        return torch.nn.functional.cross_entropy(model(x), y, reduction="none")

    losses.calls = 0
    return losses


# -- names, defaults, signatures ----------------------------------------------------------------


@pytest.mark.parametrize("cls", TWINS, ids=lambda c: c.__name__)
def test_twin_has_the_reference_name_hyperparameters_and_defaults(cls):
    reference = REFERENCE[cls]
    assert cls.__name__ == reference.__name__
    assert cls.HYPERPARAMETERS is reference.HYPERPARAMETERS
    twin = inspect.signature(cls).parameters
    names = list(twin)
    assert names[:2] == ["params", "base_optimizer"]
    assert twin["base_optimizer"].default is torch.optim.SGD
    extra = ["noise"] if cls in RANDOM else []
    assert names[2:-1] == list(inspect.signature(reference).parameters)[1:] + extra
    assert twin[names[-1]].kind is inspect.Parameter.VAR_KEYWORD
    for spec in reference.HYPERPARAMETERS:
        assert twin[spec.name].default == spec.default, spec.name
    if cls in RANDOM:
        assert twin["noise"].default == "torch"


# -- (1) twins on the test functions -------------------------------------------------------------


TWIN_ROWS = [
    pytest.param(RandomSAM, {"rho": 0.02}, id="RandomSAM-gaussian"),
    pytest.param(RandomSAM, {"rho": 0.05, "kind": "sphere"}, id="RandomSAM-sphere"),
    pytest.param(RandomSAM, {"rho": 0.03, "mix": 0.4, "seed": 7}, id="RandomSAM-gaussian-mix"),
    pytest.param(RandomSAM, {"kind": "sphere", "mix": 0.7, "seed": 3}, id="RandomSAM-sphere-mix"),
    pytest.param(MultiStepSAM, {"ascent_steps": 1}, id="MultiStepSAM-k1"),
    # ρ = 0.03 with SGD on six_hump_camel agrees to 1e-17 for 100 steps, then turns chaotic
    # (the ascent steps straddle a ridge where ∇L flips; 6e-11 at step 130, 6e-4 at 200).
    pytest.param(MultiStepSAM, {"rho": 0.05, "ascent_steps": 3}, id="MultiStepSAM-k3"),
]


def _torch_trajectory(f, x0, steps, cls, hyper, base_cls, base_kwargs):
    x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    opt = cls([x], base_cls, **hyper, **_numpy_noise(cls), **base_kwargs)
    loss = st.as_torch_loss(f)
    closure = counting_closure(opt, lambda: loss(x))
    xs = [x.detach().numpy().copy()]
    for _ in range(steps):
        opt.step(closure)
        xs.append(x.detach().numpy().copy())
    return np.array(xs), closure.calls


@pytest.mark.parametrize("base", sorted(BASES))
@pytest.mark.parametrize(("cls", "hyper"), TWIN_ROWS)
@pytest.mark.parametrize("name", FUNCTIONS)
def test_twin_follows_reference_trajectory(name, cls, hyper, base):
    f = sampy.functions.get(name)
    np_cls, torch_cls, kwargs = BASES[base]
    x0 = start(f)
    reference = sampy.run(REFERENCE[cls](np_cls(**kwargs), **hyper), f, x0, STEPS)
    twin, calls = _torch_trajectory(f, x0, STEPS, cls, hyper, torch_cls, kwargs)
    assert not reference.diverged.any()
    np.testing.assert_allclose(twin, reference.xs, rtol=0, atol=1e-10)
    assert np.abs(reference.xs[-1] - x0).max() > 1e-4  # the run moves
    assert calls == reference.grad_evals


# -- (1') m-SAM on a sum-of-examples problem -----------------------------------------------------


LOGISTIC = make_logistic_problem()
LOGISTIC_X0 = np.array([1.0, -0.5])
MSHARPNESS_ROWS = [
    pytest.param({"m": 8}, id="m8"),
    pytest.param({"m": 10, "rho": 0.1}, id="m10-not-dividing"),
    pytest.param({"m": 10, "shuffle": True, "seed": 3}, id="m10-shuffle"),
    pytest.param({"m": 16, "shuffle": True, "perturb_eps": 1e-3}, id="m16-shuffle-eps"),
    pytest.param({"m": 100}, id="m-above-n"),
]
LOGISTIC_BASES = {
    "sgd-momentum": (ref.SGD, torch.optim.SGD, {"lr": 0.1, "momentum": 0.5}),
    "adam": (ref.Adam, torch.optim.Adam, {"lr": 1e-2}),
}


def _example_run(problem, x0, steps, hyper, base_cls, base_kwargs, noise="numpy"):
    """The twin on ``problem`` through its example closure; counts the two kinds of call."""
    x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    opt = MSharpnessSAM([x], base_cls, **hyper, noise=noise, **base_kwargs)
    losses = as_torch_example_losses(problem)
    calls = {"all": 0, "indexed": 0}

    def closure(indices=None):
        calls["all" if indices is None else "indexed"] += 1
        return losses(x, indices)

    xs = [x.detach().numpy().copy()]
    for _ in range(steps):
        opt.step(closure)
        xs.append(x.detach().numpy().copy())
    return np.array(xs), calls, opt


@pytest.mark.parametrize("base", sorted(LOGISTIC_BASES))
@pytest.mark.parametrize("hyper", MSHARPNESS_ROWS)
def test_msharpness_follows_reference_on_logistic_regression(hyper, base):
    np_cls, torch_cls, kwargs = LOGISTIC_BASES[base]
    reference = sampy.run(
        ref.MSharpnessSAM(np_cls(**kwargs), **hyper), LOGISTIC, LOGISTIC_X0, STEPS
    )
    twin, calls, opt = _example_run(LOGISTIC, LOGISTIC_X0, STEPS, hyper, torch_cls, kwargs)
    assert not reference.diverged.any()
    np.testing.assert_allclose(twin, reference.xs, rtol=0, atol=1e-10)
    assert np.abs(reference.xs[-1] - LOGISTIC_X0).max() > 1e-2
    # One forward over all examples per step (n, the returned loss), then the backward passes.
    assert calls == {"all": STEPS, "indexed": reference.grad_evals}
    assert calls["indexed"] == STEPS * opt.grad_evals(LOGISTIC.n)


def test_one_sam_m_1_follows_reference():
    """m = 1 (1-SAM): every example perturbed with its own gradient."""
    problem = make_logistic_problem(n=12, seed=2)
    kwargs = {"lr": 0.1, "momentum": 0.5}
    hyper = {"m": 1, "rho": 0.2, "shuffle": True}
    reference = sampy.run(ref.MSharpnessSAM(ref.SGD(**kwargs), **hyper), problem, LOGISTIC_X0, 40)
    twin, calls, _ = _example_run(problem, LOGISTIC_X0, 40, hyper, torch.optim.SGD, kwargs)
    np.testing.assert_allclose(twin, reference.xs, rtol=0, atol=1e-12)
    assert calls["indexed"] == reference.grad_evals == 40 * 2 * 12


def test_msharpness_micro_batches_are_the_references_partition():
    opt = MSharpnessSAM([torch.zeros(1)], m=4, shuffle=True, seed=5, noise="numpy")
    rng = np.random.default_rng(5)
    for _ in range(3):
        order = rng.permutation(10)
        batches = opt.micro_batches(10)
        expected = ref.msharpness.micro_batches(order, 4)
        assert [b.tolist() for b in batches] == [b.tolist() for b in expected]
        assert all(b.dtype == torch.int64 for b in batches)
    consecutive = MSharpnessSAM([torch.zeros(1)], m=4).micro_batches(10)
    assert [b.tolist() for b in consecutive] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [b.tolist() for b in MSharpnessSAM([torch.zeros(1)], m=99).micro_batches(3)] == [
        [0, 1, 2]
    ]


# -- reductions ----------------------------------------------------------------------------------


def _run_mlp(make_opt, steps=6, example=False) -> torch.Tensor:
    model = mlp()
    opt = make_opt(two_groups(model))
    closure = _mlp_losses(model) if example else counting_closure(opt, _mlp_loss(model))
    for _ in range(steps):
        opt.step(closure)
    return flat(model)


def _base_run(kwargs, steps=6) -> torch.Tensor:
    model = mlp()
    opt = torch.optim.SGD(two_groups(model), **kwargs)
    for _ in range(steps):
        opt.zero_grad()
        _mlp_loss(model)().backward()
        opt.step()
    return flat(model)


KW = {"lr": 0.1, "momentum": 0.9}


def test_multistep_with_one_ascent_step_is_sam():
    sam = _run_mlp(lambda g: st.SAM(g, rho=0.1, **KW))
    assert torch.equal(_run_mlp(lambda g: MultiStepSAM(g, rho=0.1, **KW)), sam)
    assert not torch.equal(_run_mlp(lambda g: MultiStepSAM(g, rho=0.1, ascent_steps=2, **KW)), sam)


def test_msharpness_with_one_micro_batch_is_sam_on_the_whole_batch():
    model = mlp()
    sam = st.SAM(two_groups(model), rho=0.1, **KW)
    losses = _mlp_losses(model)

    def closure():
        sam.zero_grad()
        loss = losses().mean()
        loss.backward()
        return loss

    for _ in range(6):
        sam.step(closure)
    for m in (N, 1000):
        got = _run_mlp(lambda g, m=m: MSharpnessSAM(g, rho=0.1, m=m, **KW), example=True)
        assert torch.equal(got, flat(model))
    split = _run_mlp(lambda g: MSharpnessSAM(g, rho=0.1, m=N // 2, **KW), example=True)
    assert (split - flat(model)).abs().max() > 1e-6


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda g: RandomSAM(g, rho=0.0, **KW), id="RandomSAM-gaussian-rho0"),
        pytest.param(lambda g: RandomSAM(g, rho=0.0, kind="sphere", **KW), id="RandomSAM-sphere"),
        pytest.param(lambda g: RandomSAM(g, rho=0.5, mix=1.0, **KW), id="RandomSAM-mix1"),
        pytest.param(lambda g: MultiStepSAM(g, rho=0.0, ascent_steps=3, **KW), id="MultiStep"),
    ],
)
def test_no_perturbation_or_only_the_clean_gradient_is_the_base_optimizer(make):
    assert torch.equal(_run_mlp(make), _base_run(KW))
    # ... and a perturbation does change the run (so the equality is not vacuous).
    assert not torch.equal(_run_mlp(lambda g: RandomSAM(g, rho=0.5, mix=0.5, **KW)), _base_run(KW))


def test_msharpness_with_rho_0_is_the_base_optimizer_on_the_batch_mean():
    for m in (5, 8):
        got = _run_mlp(lambda g, m=m: MSharpnessSAM(g, rho=0.0, m=m, **KW), example=True)
        torch.testing.assert_close(got, _base_run(KW), rtol=0, atol=1e-13)
    moved = _run_mlp(lambda g: MSharpnessSAM(g, rho=0.1, m=8, **KW), example=True)
    assert (moved - _base_run(KW)).abs().max() > 1e-6


# -- (2) state_dict: save mid-run, continue bit-identically ---------------------------------------


STATE_ROWS = [
    pytest.param(RandomSAM, {"rho": 0.1}, "torch", id="RandomSAM-torch"),
    pytest.param(RandomSAM, {"kind": "sphere", "mix": 0.3}, "numpy", id="RandomSAM-numpy"),
    pytest.param(MultiStepSAM, {"rho": 0.1, "ascent_steps": 2}, None, id="MultiStepSAM"),
    pytest.param(MSharpnessSAM, {"m": 5, "shuffle": True}, "torch", id="MSharpness-torch"),
    pytest.param(MSharpnessSAM, {"m": 5, "shuffle": True}, "numpy", id="MSharpness-numpy"),
    pytest.param(MSharpnessSAM, {"m": 8}, "torch", id="MSharpness-consecutive"),
]
STATE_BASES = {"sgd": (torch.optim.SGD, {"lr": 0.1}), "adam": (torch.optim.Adam, {"lr": 1e-2})}


@pytest.mark.parametrize("base", sorted(STATE_BASES))
@pytest.mark.parametrize(("cls", "hyper", "noise"), STATE_ROWS)
def test_state_dict_round_trip_continues_bit_identically(cls, hyper, noise, base):
    base_cls, kwargs = STATE_BASES[base]
    extra = {} if noise is None else {"noise": noise}
    example = cls is MSharpnessSAM

    def make(model):
        opt = cls(two_groups(model), base_cls, **hyper, **extra, **kwargs)
        closure = _mlp_losses(model) if example else counting_closure(opt, _mlp_loss(model))
        return opt, closure

    model = mlp()
    opt, closure = make(model)
    for _ in range(3):
        opt.step(closure)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
    for _ in range(3):
        opt.step(closure)
    expected = flat(model)

    def resumed(load: bool) -> torch.Tensor:
        buffer.seek(0)
        saved = torch.load(buffer)  # weights_only: the generator states are plain data
        model2 = mlp(seed=123)
        model2.load_state_dict(saved["model"])
        opt2, closure2 = make(model2)
        if load:
            opt2.load_state_dict(saved["opt"])
            assert opt2.base_optimizer.param_groups is opt2.param_groups
        for _ in range(3):
            opt2.step(closure2)
        return flat(model2)

    assert torch.equal(resumed(load=True), expected)
    random_state = noise is not None and (cls is RandomSAM or hyper.get("shuffle"))
    if random_state or base == "adam":
        assert not torch.equal(resumed(load=False), expected)


def test_loading_needs_the_noise_state_of_the_same_source():
    x = torch.zeros(2, requires_grad=True)
    saved = RandomSAM([x], noise="numpy").state_dict()
    with pytest.raises(ValueError, match="noise"):
        RandomSAM([x], noise="torch").load_state_dict(saved)
    del saved["param_groups"][0]["noise"]
    with pytest.raises(ValueError, match="noise"):
        RandomSAM([x], noise="numpy").load_state_dict(saved)


# -- (3) several tensors in two groups equal the reference on the flat vector ---------------------


def _unflatten(w: torch.Tensor, model: torch.nn.Module) -> list[torch.Tensor]:
    params = list(model.parameters())
    sizes = [p.numel() for p in params]
    return [t.reshape(p.shape) for t, p in zip(torch.split(w, sizes), params, strict=True)]


def _mlp_logits(w: torch.Tensor, x: torch.Tensor, model: torch.nn.Module) -> torch.Tensor:
    w1, b1, w2, b2 = _unflatten(w, model)
    return torch.tanh(x @ w1.T + b1) @ w2.T + b2


def _flat_oracle(model: torch.nn.Module) -> ref.Oracle:
    def value_and_grad(x):
        w = torch.tensor(x, requires_grad=True)
        value = torch.nn.functional.cross_entropy(_mlp_logits(w, INPUTS, model), TARGETS)
        (grad,) = torch.autograd.grad(value, w)
        return value.detach().numpy(), grad.numpy()

    oracle = ref.Oracle(lambda x: value_and_grad(x)[0])
    oracle._grad = lambda x: value_and_grad(x)[1]
    return oracle


class _MLPExamples(SumOfExamples):
    """``mlp()`` on ``data()`` as a sum of examples over its flattened parameter vector."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        super().__init__(N, sum(p.numel() for p in model.parameters()), name="mlp")

    def _one(self, w, x, y):
        return torch.nn.functional.cross_entropy(_mlp_logits(w, x[None], self.model), y[None])

    def _points(self, points, examples):
        points = torch.as_tensor(np.asarray(points, dtype=float))
        idx = torch.as_tensor(np.asarray(examples))
        shape = points.shape[:-1]
        x = INPUTS[idx].expand(*shape, -1).reshape(-1, INPUTS.shape[1])
        y = TARGETS[idx].expand(*shape).reshape(-1)
        return points.reshape(-1, self.dim), x, y, shape

    def losses_at(self, points, examples):
        w, x, y, shape = self._points(points, examples)
        return torch.func.vmap(self._one)(w, x, y).reshape(shape).numpy()

    def grads_at(self, points, examples):
        w, x, y, shape = self._points(points, examples)
        return torch.func.vmap(torch.func.grad(self._one))(w, x, y).reshape(*shape, -1).numpy()


MULTI_ROWS = [
    pytest.param(RandomSAM, {"rho": 0.1, "seed": 4}, id="RandomSAM-gaussian"),
    pytest.param(RandomSAM, {"rho": 0.2, "kind": "sphere", "mix": 0.5}, id="RandomSAM-sphere"),
    pytest.param(MultiStepSAM, {"rho": 0.1, "ascent_steps": 3}, id="MultiStepSAM"),
    pytest.param(MSharpnessSAM, {"rho": 0.1, "m": 5, "shuffle": True}, id="MSharpnessSAM"),
]


@pytest.mark.parametrize(("cls", "hyper"), MULTI_ROWS)
def test_multi_tensor_model_equals_the_flat_reference(cls, hyper):
    """4 tensors in 2 groups: global norms, and the draws split in group order."""
    model = mlp()
    example = cls is MSharpnessSAM
    oracle = ref.Oracle(_MLPExamples(model)) if example else _flat_oracle(model)
    opt = REFERENCE[cls](ref.SGD(lr=0.1, momentum=0.9), **hyper)
    x = flat(model).numpy().copy()
    state = opt.init(x)
    twin = cls(two_groups(model), **hyper, **_numpy_noise(cls), lr=0.1, momentum=0.9)
    closure = _mlp_losses(model) if example else counting_closure(twin, _mlp_loss(model))
    for _ in range(15):
        x, state = opt.step(x, state, oracle)
        twin.step(closure)
    np.testing.assert_allclose(flat(model).numpy(), x, rtol=0, atol=1e-12)
    assert np.abs(x - _base_flat(15)).max() > 1e-4  # not the base optimizer's run
    if example:
        assert closure.calls == oracle.calls + 15  # plus one forward per step, for n
    else:
        assert closure.calls == oracle.calls


def _base_flat(steps: int) -> np.ndarray:
    return _base_run({"lr": 0.1, "momentum": 0.9}, steps).numpy()


# -- the step by hand ----------------------------------------------------------------------------


def _manual_random(opt: RandomSAM, backward: Callable[[], None]) -> None:
    backward()
    opt.first_step(zero_grad=True)
    backward()
    opt.second_step(zero_grad=True)


def _manual_multistep(opt: MultiStepSAM, backward: Callable[[], None]) -> None:
    backward()
    opt.first_step(zero_grad=True)
    for _ in range(opt.ascent_steps - 1):
        backward()
        opt.ascent_step(zero_grad=True)
    backward()
    opt.second_step(zero_grad=True)


def _manual_msharpness(opt: MSharpnessSAM, model: torch.nn.Module) -> None:
    def backward(idx):
        torch.nn.functional.cross_entropy(model(INPUTS[idx]), TARGETS[idx]).backward()

    for idx in opt.micro_batches(N):
        backward(idx)
        opt.first_step(zero_grad=True)
        backward(idx)
        opt.accumulate(len(idx) / N, zero_grad=True)
    opt.second_step(zero_grad=True)


MANUAL_ROWS = [
    pytest.param(RandomSAM, {"rho": 0.1, "mix": 0.3}, id="RandomSAM"),
    pytest.param(RandomSAM, {"kind": "sphere"}, id="RandomSAM-sphere"),
    pytest.param(MultiStepSAM, {"rho": 0.1, "ascent_steps": 3}, id="MultiStepSAM"),
    pytest.param(MSharpnessSAM, {"rho": 0.1, "m": 5, "shuffle": True}, id="MSharpnessSAM"),
]


def _manual(opt, model: torch.nn.Module) -> None:
    backward = lambda: _mlp_loss(model)().backward()  # noqa: E731
    if isinstance(opt, MSharpnessSAM):
        _manual_msharpness(opt, model)
    elif isinstance(opt, MultiStepSAM):
        _manual_multistep(opt, backward)
    else:
        _manual_random(opt, backward)


@pytest.mark.parametrize(("cls", "hyper"), MANUAL_ROWS)
def test_manual_steps_equal_step_with_closure(cls, hyper):
    models = [mlp(), mlp()]
    opts = [cls(two_groups(m), **hyper, lr=0.1, momentum=0.9) for m in models]
    example = cls is MSharpnessSAM
    closure = _mlp_losses(models[0]) if example else counting_closure(opts[0], _mlp_loss(models[0]))
    for _ in range(5):
        opts[0].step(closure)
        _manual(opts[1], models[1])
    assert torch.equal(flat(models[0]), flat(models[1]))
    assert not torch.equal(flat(models[0]), flat(mlp()))


def test_phases_out_of_order_fail_clearly():
    x = torch.ones(2, dtype=torch.float64, requires_grad=True)
    opt = MultiStepSAM([x], ascent_steps=2, lr=0.1)
    with pytest.raises(RuntimeError, match="first_step"):
        opt.ascent_step()
    with pytest.raises(RuntimeError, match="first_step"):
        opt.second_step()
    (x**2).sum().backward()
    opt.first_step(zero_grad=True)
    (x**2).sum().backward()
    with pytest.raises(RuntimeError, match="ascent_step"):
        opt.second_step()
    opt.ascent_step(zero_grad=True)
    (x**2).sum().backward()
    with pytest.raises(RuntimeError, match="second_step"):
        opt.ascent_step()
    opt.second_step()

    m_opt = MSharpnessSAM([x], lr=0.1)
    with pytest.raises(RuntimeError, match="first_step"):
        m_opt.second_step()
    with pytest.raises(RuntimeError, match="first_step"):
        m_opt.accumulate(1.0)
    (x**2).sum().backward()
    m_opt.first_step(zero_grad=True)
    (x**2).sum().backward()
    with pytest.raises(RuntimeError, match="accumulate"):
        m_opt.second_step()


# -- parameters without a gradient, degenerate gradients ---------------------------------------


@pytest.mark.parametrize("cls", TWINS, ids=lambda c: c.__name__)
def test_parameters_without_gradient_are_skipped(cls):
    used = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64, requires_grad=True)
    unused = torch.tensor([5.0], dtype=torch.float64, requires_grad=True)
    opt = cls([used, unused], torch.optim.SGD, lr=0.1, momentum=0.9, **_numpy_noise(cls))
    targets = torch.tensor([0.3, -0.2, 0.9, 1.5], dtype=torch.float64)

    def losses(indices=None):
        t = targets if indices is None else targets[indices]
        return (used.sum() * t - 1.0) ** 2 + (used**4).sum()

    if cls is MSharpnessSAM:
        closure = losses
    else:
        closure = counting_closure(opt, lambda: losses().mean())
    for _ in range(4):
        opt.step(closure)
    assert unused.grad is None and unused.item() == 5.0
    assert torch.isfinite(used).all() and not torch.equal(used, torch.tensor([1.0, -2.0, 0.5]))


@pytest.mark.parametrize("cls", TWINS, ids=lambda c: c.__name__)
def test_zero_and_nan_gradients_do_not_crash(cls):
    x = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = cls([x], lr=0.1, **({"kind": "sphere"} if cls is RandomSAM else {}))

    def closure(loss: Callable[[], torch.Tensor]):
        if cls is MSharpnessSAM:  # four identical examples
            return lambda indices=None: loss().expand(4 if indices is None else len(indices))
        return counting_closure(opt, loss)

    opt.step(closure(lambda: (x**2).sum()))  # g = 0 at the minimum
    if cls is not RandomSAM:  # ε = ρ·0/(0 + eps) = 0 and a base step on g̃ = 0
        assert torch.equal(x, torch.zeros(3, dtype=torch.float64))
    opt.step(closure(lambda: x.sum() * math.nan))
    assert torch.isnan(x).all()


# -- no host synchronisation in a step ----------------------------------------------------------


@pytest.mark.parametrize(("cls", "hyper"), MANUAL_ROWS)
def test_a_step_reads_no_tensor_value_on_the_host(cls, hyper, monkeypatch):
    """With ``noise="torch"``: no ``.item()`` or branch on a tensor in the step's phases."""
    model = mlp()
    opt = cls(two_groups(model), **hyper, lr=0.1, momentum=0.9)
    _manual(opt, model)  # warm-up: lazily built buffers
    names = ("first_step", "ascent_step", "accumulate", "micro_batches", "second_step")
    guard_methods(opt, [n for n in names if hasattr(opt, n)], monkeypatch)
    for _ in range(3):
        _manual(opt, model)
    if cls is MSharpnessSAM:  # the whole step(closure), closure included
        guard_methods(opt, ["step"], monkeypatch)
        opt.step(_mlp_losses(model))


# -- the torch noise source: reproducible, seeded ----------------------------------------------


@pytest.mark.parametrize(
    ("cls", "hyper"),
    [
        pytest.param(RandomSAM, {"rho": 0.1}, id="RandomSAM-gaussian"),
        pytest.param(RandomSAM, {"rho": 0.1, "kind": "sphere"}, id="RandomSAM-sphere"),
        pytest.param(MSharpnessSAM, {"m": 5, "shuffle": True}, id="MSharpnessSAM-shuffle"),
    ],
)
def test_torch_noise_is_reproducible_per_seed(cls, hyper):
    example = cls is MSharpnessSAM

    def run(seed: int) -> torch.Tensor:
        return _run_mlp(lambda g: cls(g, **hyper, seed=seed, **KW), steps=4, example=example)

    assert torch.equal(run(0), run(0))
    assert not torch.equal(run(0), run(1))
    # The torch source differs from the numpy one (it is not the reference's stream).
    numpy = _run_mlp(lambda g: cls(g, **hyper, noise="numpy", **KW), steps=4, example=example)
    assert not torch.equal(run(0), numpy)


def test_sphere_perturbation_has_length_rho_over_all_groups():
    model = mlp()
    opt = RandomSAM(two_groups(model), rho=0.3, kind="sphere", lr=0.1)
    before = flat(model)
    _mlp_loss(model)().backward()
    opt.first_step(zero_grad=True)
    torch.testing.assert_close(
        (flat(model) - before).norm(), torch.tensor(0.3, dtype=torch.float64)
    )
    opt.second_step(zero_grad=True)

    gauss = RandomSAM(two_groups(model), rho=0.0, lr=0.1)
    gauss.param_groups[1]["rho"] = 0.5  # only the second group moves
    params = list(model.parameters())
    before = [p.detach().clone() for p in params]
    _mlp_loss(model)().backward()
    gauss.first_step(zero_grad=True)
    assert all(torch.equal(p, b) for p, b in zip(params[:2], before[:2], strict=True))
    assert all(not torch.equal(p, b) for p, b in zip(params[2:], before[2:], strict=True))


# -- a missing or wrong closure (bad hyperparameters: tests/test_torch_registry.py) ----------


@pytest.mark.parametrize("cls", TWINS, ids=lambda c: c.__name__)
def test_step_without_closure_raises_value_error(cls):
    x = torch.ones(2, requires_grad=True)
    with pytest.raises(ValueError, match="closure"):
        cls([x], lr=0.1).step()


def test_msharpness_rejects_a_reduced_loss_and_a_bad_n():
    x = torch.ones(2, dtype=torch.float64, requires_grad=True)
    opt = MSharpnessSAM([x], lr=0.1)
    with pytest.raises(ValueError, match="reduction='none'"):
        opt.step(lambda indices=None: (x**2).sum())
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="n "):
            opt.micro_batches(bad)


# -- CUDA, where there is one -------------------------------------------------------------------


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize(("cls", "hyper"), MANUAL_ROWS)
def test_cuda_step_matches_cpu_with_the_numpy_draws(cls, hyper):
    results = []
    for device in ("cpu", "cuda"):
        model = mlp().to(device)
        opt = cls(two_groups(model), **hyper, **_numpy_noise(cls), lr=0.1, momentum=0.9)
        x, y = INPUTS.to(device), TARGETS.to(device)

        def losses(indices=None, model=model, x=x, y=y):
            xb, yb = (x, y) if indices is None else (x[indices], y[indices])
            return torch.nn.functional.cross_entropy(model(xb), yb, reduction="none")

        if cls is MSharpnessSAM:
            closure: Any = losses
        else:
            closure = counting_closure(opt, lambda losses=losses: losses().mean())
        for _ in range(5):
            opt.step(closure)
        results.append(flat(model).cpu())
    torch.testing.assert_close(results[0], results[1], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("m", [8, 10])
def test_msharpness_given_the_batch_size_skips_the_counting_forward(m):
    """``step(closure, batch_size=n)``: the same steps, 2⌈n/m⌉ closure calls instead of +1."""
    runs = []
    for batch_size in (None, N):
        model = mlp()
        opt = MSharpnessSAM(two_groups(model), rho=0.1, m=m, shuffle=True, lr=0.1, momentum=0.9)
        closure = _mlp_losses(model)
        losses = []
        for _ in range(3):
            before = _mlp_loss(model)().detach()
            losses.append((opt.step(closure, batch_size=batch_size), before))
        runs.append((flat(model), closure.calls, losses))
    (w_counted, calls_counted, _), (w_given, calls_given, losses) = runs
    assert torch.equal(w_counted, w_given)
    per_step = 2 * math.ceil(N / m)
    assert (calls_counted, calls_given) == (3 * (per_step + 1), 3 * per_step)
    for returned, at_w in losses:  # the weighted micro-batch means are the batch mean at w
        torch.testing.assert_close(returned, at_w, rtol=0, atol=1e-14)
    with pytest.raises(ValueError, match="batch_size"):
        opt.step(closure, batch_size=0)
