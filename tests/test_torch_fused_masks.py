"""The fused paths of the masked twins (ESAM, SSAM-D/F, ImbSAM): the same floats as the plain ones.

ε is written into the consumed gradients and the parameters pointed at ``w + ε`` (the
template's swap, taken for tensors of at least ``SWAP_MIN_NUMEL`` elements on the CPU), ESAM's
coordinate masks are drawn into a reused buffer and SSAM multiplies by float copies of its
boolean masks. These tests use a layer large enough for the swap, which the twin tests' small
networks never reach.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest

torch = pytest.importorskip("torch")

from sampy.torch import sharpness_aware  # noqa: E402
from sampy.torch.esam import ESAM  # noqa: E402
from sampy.torch.imbsam import ImbSAM  # noqa: E402
from sampy.torch.masks import top_k_mask  # noqa: E402
from sampy.torch.ssam import MASK, SSAMD, SSAMF  # noqa: E402

WIDTH = 200  # a 200 × 200 weight: above SWAP_MIN_NUMEL, so its w + ε is swapped in


def _model(dtype: torch.dtype = torch.float64, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(6, WIDTH),
        torch.nn.Tanh(),
        torch.nn.Linear(WIDTH, WIDTH),
        torch.nn.Tanh(),
        torch.nn.Linear(WIDTH, 3),
    ).to(dtype)


def _data(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return torch.randn(16, 6, generator=g, dtype=dtype), torch.randint(0, 3, (16,), generator=g)


def _flat(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


ROWS: dict[str, tuple[Callable, bool]] = {
    "ESAM": (lambda ps: ESAM(ps, lr=0.05, momentum=0.9), True),
    "ESAM-no-SDS": (lambda ps: ESAM(ps, gamma=1.0, swp_norm="kept", lr=0.05), False),
    "ESAM-tensor": (lambda ps: ESAM(ps, swp_granularity="tensor", beta=0.5, lr=0.05), True),
    "SSAMD": (lambda ps: SSAMD(ps, update_freq=2, lr=0.05, momentum=0.9), False),
    "SSAMD-weight": (
        lambda ps: SSAMD(ps, update_freq=2, drop_strategy="weight", lr=0.05),
        False,
    ),
    "SSAMF": (lambda ps: SSAMF(ps, update_freq=2, num_samples=3, lr=0.05), True),
    "ImbSAM": (lambda ps: ImbSAM(ps, lr=0.05, momentum=0.9), True),
}


def _runner(name: str, dtype: torch.dtype, seed: int = 0):
    make, examples = ROWS[name]
    model = _model(dtype, seed)
    opt = make(model.parameters())
    x, y = _data(dtype)

    def losses(indices=None):
        xs, ys = (x, y) if indices is None else (x[indices], y[indices])
        return torch.nn.functional.cross_entropy(model(xs), ys, reduction="none")

    def closure():
        opt.zero_grad()
        loss = losses().mean()
        loss.backward()
        return loss

    def step() -> None:
        if name == "ImbSAM":
            opt.step(losses, y == 2)
        else:
            opt.step(losses if examples else closure)

    return model, opt, step


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", list(ROWS))
def test_the_swapped_steps_are_the_copied_steps(name, dtype, monkeypatch):
    """w + ε written into the consumed gradients and swapped in: the same floats as copying w
    out and back (the template's path for small tensors)."""
    swapped, _, step = _runner(name, dtype)
    for _ in range(6):
        step()
    monkeypatch.setattr(sharpness_aware, "SWAP_MIN_NUMEL", 1 << 60)
    copied, _, step = _runner(name, dtype)
    for _ in range(6):
        step()
    assert torch.equal(_flat(swapped), _flat(copied))
    assert not torch.equal(_flat(swapped), _flat(_model(dtype)))


@pytest.mark.parametrize("name", list(ROWS))
def test_an_error_at_w_plus_eps_restores_w_bit_for_bit_and_in_place(name):
    model, _, step = _runner(name, torch.float32)
    for _ in range(3):
        step()
    before = _flat(model).clone()
    storage = [p.data_ptr() for p in model.parameters()]
    forward = model.forward
    calls = {"n": 0}

    def failing(x):
        calls["n"] += 1
        if calls["n"] >= 2:  # the pass at w + ε, with the large weight swapped
            calls["swapped"] = model[2].weight.data_ptr() != storage[2]
            raise RuntimeError("boom")
        return forward(x)

    model.forward = failing
    with pytest.raises(RuntimeError, match="boom"):
        step()
    model.forward = forward
    assert calls["swapped"]
    assert torch.equal(_flat(model), before)
    assert [p.data_ptr() for p in model.parameters()] == storage
    assert all(p.requires_grad for p in model.parameters())
    step()  # training goes on
    assert torch.isfinite(_flat(model)).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_esam_coordinate_masks_are_the_seeded_torch_draws(dtype):
    """The reused buffer draws what ``torch.rand`` with the seeded generator draws, step after
    step: the torch noise stream is unchanged."""
    model = _model(dtype)
    opt = ESAM(model.parameters(), gamma=1.0, beta=0.6, seed=11, lr=0.05)
    params = list(model.parameters())
    d = sum(p.numel() for p in params)
    generator = torch.Generator().manual_seed(11)
    x, y = _data(dtype)
    for _ in range(3):
        opt.begin_step()
        expected = torch.rand(d, generator=generator, dtype=dtype) < 0.6
        keep = torch.cat([opt.ascent.keep[id(p)].reshape(-1) for p in params])
        assert keep.dtype == dtype
        assert torch.equal(keep != 0, expected)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.first_step(zero_grad=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.second_step(zero_grad=True)


def test_a_copy_of_esam_draws_into_its_own_buffer():
    model, opt, step = _runner("ESAM", torch.float32)
    step()
    twin_model = copy.deepcopy(model)
    twin = copy.deepcopy(opt)
    assert "_swp_cache" not in twin.__dict__
    twin.param_groups[0]["params"] = list(twin_model.parameters())  # rebind to the copy
    for _ in range(3):
        step()
    assert opt._swp_cache is not None
    assert not torch.equal(_flat(model), _flat(twin_model))


def test_ssam_float_masks_follow_a_mask_edited_in_place():
    """The float copies are remade when a boolean mask changes, in place or replaced."""
    results = []
    for in_place in (True, False):
        model, opt, step = _runner("SSAMD", torch.float64)
        opt.update_freq = 1000  # no refresh after the first step
        for _ in range(2):
            step()
        for p in model.parameters():
            if in_place:
                opt.state[p][MASK].fill_(False)
            else:
                opt.state[p][MASK] = torch.zeros(p.shape, dtype=torch.bool)
        before = _flat(model).clone()
        step()
        results.append(_flat(model))
        assert not torch.equal(results[-1], before)
    assert torch.equal(results[0], results[1])


def test_ssam_without_perturbation_after_its_masks_are_cleared_is_the_base_step():
    model, opt, step = _runner("SSAMD", torch.float64)
    opt.update_freq = 1000
    step()
    for p in model.parameters():
        opt.state[p][MASK].fill_(False)
    base_model = copy.deepcopy(model)
    base = torch.optim.SGD(base_model.parameters(), lr=0.05, momentum=0.9)
    base.load_state_dict(copy.deepcopy(opt.base_optimizer.state_dict()))
    x, y = _data(torch.float64)
    step()
    base.zero_grad()
    torch.nn.functional.cross_entropy(base_model(x), y).backward()
    base.step()
    assert torch.equal(_flat(model), _flat(base_model))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_top_k_mask_as_floats_is_the_boolean_mask(dtype):
    g = torch.Generator().manual_seed(5)
    scores = torch.randint(0, 7, (5000,), generator=g).to(dtype)
    scores[::13] = float("nan")
    scores[::17] = float("inf")
    for k in (0, 1, 10, 2499, 2500, 2501, 4990, 4999, 5000):
        mask = top_k_mask(scores, k)
        floats = top_k_mask(scores, k, dtype=torch.float32)
        assert floats.dtype == torch.float32
        assert torch.equal(floats, mask.to(torch.float32)), k
        assert int(mask.sum()) == k


def test_torch_noise_fills_a_buffer_with_the_draws_it_would_return():
    """``uniform_into`` is ``uniform`` written into a reused buffer: the same numbers, and the
    generator moves on as far (the next draws agree too)."""
    from sampy.torch.noise import TorchNoise

    fresh, buffered = TorchNoise(7), TorchNoise(7)
    like = torch.zeros(50_000, dtype=torch.float64)
    buffer = torch.empty_like(like)
    for _ in range(2):
        assert torch.equal(fresh.uniform(like.numel(), like), buffered.uniform_into(buffer))
