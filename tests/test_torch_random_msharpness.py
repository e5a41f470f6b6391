"""What is RandomSAM's, MultiStepSAM's and MSharpnessSAM's own: micro-batches, 1-SAM, reductions,
the manual API, the torch noise source.

The contracts every twin keeps (trajectory against the reference on the landscapes and on a sum
of examples, checkpoints, several tensors, host reads, signatures) run for these rows and their
settings in the registry-driven suites (``test_torch_twins_from_registry.py``,
``test_torch_contracts.py``, ``test_torch_registry.py``). With ``noise="numpy"`` the random
twins make the reference's draws; ``noise="torch"`` is checked for reproducibility here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from twin_helpers import (  # noqa: E402
    counting_closure,
    data,
    flat,
    mlp,
    two_groups,
)

import sampy  # noqa: E402
import sampy.torch as st  # noqa: E402
from sampy import optim as ref  # noqa: E402
from sampy.problems import make_logistic_problem  # noqa: E402
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


# -- m-SAM's micro-batches and 1-SAM ---------------------------------------------------------------


LOGISTIC_X0 = np.array([1.0, -0.5])


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


def test_one_sam_m_1_follows_reference():
    """m = 1 (1-SAM): every example perturbed with its own gradient."""
    problem = make_logistic_problem(n=12, seed=2)
    kwargs = {"lr": 0.1, "momentum": 0.5}
    hyper = {"m": 1, "rho": 0.2, "shuffle": True}
    reference = sampy.run(ref.MSharpnessSAM(ref.SGD(**kwargs), **hyper), problem, LOGISTIC_X0, 40)
    twin, calls, _ = _example_run(problem, LOGISTIC_X0, 40, hyper, torch.optim.SGD, kwargs)
    np.testing.assert_allclose(twin, reference.xs, rtol=0, atol=1e-12)
    assert calls["indexed"] == reference.grad_evals == 40 * 2 * 12
    assert calls["all"] == 40  # one forward a step over all examples, to learn n


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


# -- checkpoints: the noise source (the round trip: test_torch_contracts.py) -----------------


def test_loading_needs_the_noise_state_of_the_same_source():
    x = torch.zeros(2, requires_grad=True)
    saved = RandomSAM([x], noise="numpy").state_dict()
    with pytest.raises(ValueError, match="noise"):
        RandomSAM([x], noise="torch").load_state_dict(saved)
    del saved["param_groups"][0]["noise"]
    with pytest.raises(ValueError, match="noise"):
        RandomSAM([x], noise="numpy").load_state_dict(saved)


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


# -- degenerate gradients ---------------------------------------------------------------------


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
    opt.restore()  # only ε is looked at: back to w, no gradient at w + ε taken

    gauss = RandomSAM(two_groups(model), rho=0.0, lr=0.1)
    gauss.param_groups[1]["rho"] = 0.5  # only the second group moves
    params = list(model.parameters())
    before = [p.detach().clone() for p in params]
    _mlp_loss(model)().backward()
    gauss.first_step(zero_grad=True)
    assert all(torch.equal(p, b) for p, b in zip(params[:2], before[:2], strict=True))
    assert all(not torch.equal(p, b) for p, b in zip(params[2:], before[2:], strict=True))


# -- a wrong closure (a missing one: test_torch_contracts.py) ----------------------------------


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
