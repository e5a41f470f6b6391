"""The shared pieces of the twins: noise sources, the example closure, ``restore()``."""

from __future__ import annotations

import io

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import sampy  # noqa: E402
import sampy.torch as st  # noqa: E402
from sampy.problems import make_logistic_problem  # noqa: E402
from sampy.torch.examples import example_losses, require_example_closure  # noqa: E402
from sampy.torch.functional import as_torch_example_losses  # noqa: E402
from sampy.torch.noise import NumpyNoise, TorchNoise, make_noise  # noqa: E402

LIKE = torch.zeros(1, dtype=torch.float64)


# -- noise sources -------------------------------------------------------------------------------


def test_numpy_noise_draws_exactly_what_the_reference_generator_draws():
    noise, rng = make_noise("numpy", 7), np.random.default_rng(7)
    np.testing.assert_array_equal(noise.normal(5, LIKE).numpy(), rng.standard_normal(5))
    np.testing.assert_array_equal(noise.uniform(3, LIKE).numpy(), rng.random(3))
    np.testing.assert_array_equal(noise.permutation(9, LIKE.device).numpy(), rng.permutation(9))
    # A (M, d) draw is the same stream as M·d flat draws, row by row.
    np.testing.assert_array_equal(
        noise.normal(6, LIKE).reshape(2, 3).numpy(), rng.standard_normal((2, 3))
    )


@pytest.mark.parametrize("source", ["torch", "numpy"])
def test_noise_is_seeded_and_its_state_round_trips(source):
    a, b, c = make_noise(source, 3), make_noise(source, 3), make_noise(source, 4)
    first = a.normal(8, LIKE)
    assert torch.equal(first, b.normal(8, LIKE))
    assert not torch.equal(first, c.normal(8, LIKE))
    buffer = io.BytesIO()
    torch.save(a.state_dict(), buffer)
    expected = (a.normal(4, LIKE), a.uniform(4, LIKE), a.permutation(6, LIKE.device))
    buffer.seek(0)
    resumed = make_noise(source, 0)
    resumed.load_state_dict(torch.load(buffer, weights_only=False))
    got = (resumed.normal(4, LIKE), resumed.uniform(4, LIKE), resumed.permutation(6, LIKE.device))
    for e, g in zip(expected, got, strict=True):
        assert torch.equal(e, g)


def test_noise_draws_follow_the_requested_dtype_and_distribution():
    noise = TorchNoise(0)
    like32 = torch.zeros(1, dtype=torch.float32)
    z = noise.normal(20_000, like32)
    u = noise.uniform(20_000, like32)
    assert z.dtype == torch.float32 and u.dtype == torch.float32
    assert abs(z.mean().item()) < 0.03 and abs(z.std().item() - 1) < 0.03
    assert u.min().item() >= 0 and u.max().item() < 1 and abs(u.mean().item() - 0.5) < 0.01
    assert torch.equal(noise.permutation(50, LIKE.device).sort().values, torch.arange(50))


def test_noise_rejects_an_unknown_source_and_a_foreign_state():
    with pytest.raises(ValueError, match="noise"):
        make_noise("jax", 0)
    with pytest.raises(ValueError, match="numpy"):
        TorchNoise(0).load_state_dict(NumpyNoise(0).state_dict())


# -- the example closure and a SumOfExamples as a torch loss --------------------------------------


PROBLEM = make_logistic_problem()


def test_problem_as_torch_loss_gives_the_problem_s_losses_and_weighted_gradients():
    losses = as_torch_example_losses(PROBLEM)
    x0 = np.array([0.4, -0.7])
    x = torch.tensor(x0, requires_grad=True)
    idx = torch.tensor([3, 0, 11, 3])
    weights = torch.tensor([0.5, 2.0, -1.0, 0.25], dtype=torch.float64)
    value = losses(x, idx)
    np.testing.assert_array_equal(value.detach().numpy(), PROBLEM.per_example_losses(x0, idx))
    (value * weights).sum().backward()
    expected = weights.numpy() @ PROBLEM.per_example_grads(x0, idx.numpy())
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=0, atol=1e-15)
    assert losses(x).shape == (PROBLEM.n,)
    with pytest.raises(ValueError, match="shape"):
        losses(torch.zeros(3, dtype=torch.float64))


def test_example_losses_checks_the_closure_output():
    per_example = as_torch_example_losses(PROBLEM)
    x = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    assert example_losses(lambda idx: per_example(x, idx)).shape == (PROBLEM.n,)
    with pytest.raises(ValueError, match="reduction='none'"):
        example_losses(lambda idx: per_example(x, idx).mean())
    with pytest.raises(ValueError, match="3 indices"):
        example_losses(lambda idx: per_example(x), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="closure is required"):
        require_example_closure("MSharpnessSAM", None)


# -- restore(): abandon a perturbed step ---------------------------------------------------------


@pytest.mark.parametrize("cls", [st.SAM, st.GSAM, st.SAMAnatomy], ids=lambda c: c.__name__)
def test_restore_returns_to_w_exactly_and_the_next_step_is_a_clean_one(cls):
    def run(abandon: bool) -> torch.Tensor:
        x = torch.tensor([0.3, -1.1, 2.0], dtype=torch.float64, requires_grad=True)
        opt = cls([x], torch.optim.SGD, lr=0.1, momentum=0.9)

        def closure():
            opt.zero_grad()
            loss = (x**4).sum() + x.prod()
            loss.backward()
            return loss

        opt.step(closure)
        if abandon:
            before = x.detach().clone()
            momentum = opt.base_optimizer.state[x]["momentum_buffer"].clone()
            closure()
            opt.first_step(zero_grad=True)
            assert not torch.equal(x, before)
            opt.restore()
            assert torch.equal(x, before)
            assert torch.equal(opt.base_optimizer.state[x]["momentum_buffer"], momentum)
            assert "clean_grad" not in opt.state[x]
            with pytest.raises(RuntimeError, match="first_step"):
                opt.restore()
        opt.step(closure)
        return x.detach().clone()

    assert torch.equal(run(abandon=True), run(abandon=False))


# -- an ordinary closure where per-example losses are needed ------------------------------------


def test_a_closure_without_indices_is_refused_before_the_step_changes_anything():
    x = torch.tensor([0.5, -0.5], dtype=torch.float64, requires_grad=True)
    opt = st.ESAM([x], gamma=0.5, lr=0.1)
    generator = opt.noise_source.state_dict()

    def closure():
        opt.zero_grad()
        loss = (x**2).sum()
        loss.backward()
        return loss

    with pytest.raises(ValueError, match="closure takes no indices"):
        opt.step(closure)
    assert torch.equal(x, torch.tensor([0.5, -0.5], dtype=torch.float64))
    after = opt.noise_source.state_dict()["states"]
    assert after.keys() == generator["states"].keys()  # no generator made: nothing was drawn
    assert all(torch.equal(after[k], generator["states"][k]) for k in after)
    with pytest.raises(ValueError, match="closure takes no indices"):
        st.ImbSAM([x], lr=0.1).step(closure, torch.tensor([True, False]))
    assert require_example_closure("m-SAM", lambda indices=None: indices) is not None


# -- LR schedulers see second_step() as the optimizer's step ------------------------------------


@pytest.mark.parametrize("cls", [st.SAM, st.LookSAM, st.WSAM], ids=lambda c: c.__name__)
def test_a_scheduler_in_a_first_step_second_step_loop_does_not_warn(cls, recwarn):
    x = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    opt = cls([x], lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    for _ in range(2):
        (x**2).sum().backward()
        opt.first_step(zero_grad=True)
        (x**2).sum().backward()
        opt.second_step(zero_grad=True)
        scheduler.step()
    assert not [w for w in recwarn if "lr_scheduler.step()" in str(w.message)]
    assert opt.param_groups[0]["lr"] == opt.base_optimizer.param_groups[0]["lr"] == 0.025


def test_make_twin_applies_the_row_preset():
    x = torch.ones(2, dtype=torch.float64, requires_grad=True)
    asam = sampy.variant("ASAM").make_twin([x], lr=0.1)
    assert isinstance(asam, st.SAM) and asam.param_groups[0]["adaptive"] is True
    assert isinstance(sampy.variant("MSAM").make_twin([x], lr=0.1), st.MSAM)
    with pytest.raises(ValueError, match="base_optimizer"):
        sampy.variant("MSAM").make_twin([x], torch.optim.SGD, lr=0.1)
