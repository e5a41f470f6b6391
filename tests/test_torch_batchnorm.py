"""``sampy.torch.batchnorm``: the NaN-safe freeze and the first-pass block, for every call shape."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402

import sampy.torch as st  # noqa: E402

STEPS = 4


def _net(momentum: float | None = 0.1) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(6, 8),
        torch.nn.BatchNorm1d(8, momentum=momentum),
        torch.nn.ReLU(),
        torch.nn.Linear(8, 3),
    )


def _batch(step: int, n: int = 16):
    gen = torch.Generator().manual_seed(100 + step)
    return torch.randn(n, 6, generator=gen), torch.randint(0, 3, (n,), generator=gen)


def _stats(model: torch.nn.Module) -> list[torch.Tensor]:
    bn = model[1]
    return [bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone()]


def _assert_same_stats(model, reference) -> None:
    for got, want in zip(_stats(model), _stats(reference), strict=True):
        assert torch.equal(got, want)


# -- disable_running_stats / enable_running_stats -------------------------------------------


def test_a_frozen_forward_with_inf_activations_leaves_the_statistics_as_they_were():
    model = _net()
    model(_batch(0)[0])
    before = _stats(model)
    st.disable_running_stats(model)
    with torch.no_grad():
        model(torch.full((16, 6), float("inf")))  # an fp16 overflow at w + ε
    st.enable_running_stats(model)
    for got, want in zip(_stats(model), before, strict=True):
        assert torch.equal(got, want)
    assert model[1].running_var.isfinite().all()


@pytest.mark.parametrize("momentum", [0.1, None])
def test_davda54_ordering_counts_one_batch_per_step_and_keeps_clean_statistics(momentum):
    """``enable`` before pass 1, ``disable`` before pass 2, never enabled after the loop."""
    model, reference = _net(momentum), _net(momentum)
    opt = st.SAM(model.parameters(), torch.optim.SGD, rho=0.5, lr=0.05)
    for step in range(STEPS):
        x, y = _batch(step)
        reference.load_state_dict(model.state_dict())
        reference(x)  # one clean pass at w: the statistics the step should keep
        st.enable_running_stats(model)
        F.cross_entropy(model(x), y).backward()
        opt.first_step(zero_grad=True)
        st.disable_running_stats(model)
        F.cross_entropy(model(x), y).backward()
        opt.second_step(zero_grad=True)
        _assert_same_stats(model, reference)
    assert model[1].num_batches_tracked.item() == STEPS
    st.enable_running_stats(model)
    assert model[1].momentum == momentum and model[1].track_running_stats


def test_disable_twice_keeps_the_first_copy():
    model = _net()
    model(_batch(0)[0])
    before = _stats(model)
    st.disable_running_stats(model)
    model(_batch(1)[0])
    st.disable_running_stats(model)
    st.enable_running_stats(model)
    for got, want in zip(_stats(model), before, strict=True):
        assert torch.equal(got, want)


# -- running_stats_from_first_pass ----------------------------------------------------------


def _plain_closure(model, x, y):
    def closure():
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    return closure


def _example_closure(model, x, y):
    def losses(indices=None):
        xs, ys = (x, y) if indices is None else (x[indices], y[indices])
        return F.cross_entropy(model(xs), ys, reduction="none")

    return losses


def _sam_closure(model, opt, x, y):
    opt.step(_plain_closure(model, x, y))


def _sam_two_calls(model, opt, x, y):
    F.cross_entropy(model(x), y).backward()
    opt.first_step(zero_grad=True)
    F.cross_entropy(model(x), y).backward()
    opt.second_step(zero_grad=True)


def _example_step(model, opt, x, y):
    opt.step(_example_closure(model, x, y))


def _imbsam_step(model, opt, x, y):
    opt.step(_example_closure(model, x, y), y >= 1)


TWINS = {
    "SAM, closure": (lambda p: st.SAM(p, torch.optim.SGD, rho=0.5, lr=0.05), _sam_closure),
    "SAM, two calls": (lambda p: st.SAM(p, torch.optim.SGD, rho=0.5, lr=0.05), _sam_two_calls),
    "LookSAM k=5": (lambda p: st.LookSAM(p, torch.optim.SGD, rho=0.5, k=5, lr=0.05), _sam_closure),
    "ESAM": (lambda p: st.ESAM(p, torch.optim.SGD, rho=0.5, lr=0.05), _example_step),
    "MSharpnessSAM": (
        lambda p: st.MSharpnessSAM(p, torch.optim.SGD, rho=0.5, m=4, lr=0.05),
        _example_step,
    ),
    "ImbSAM": (lambda p: st.ImbSAM(p, torch.optim.SGD, rho=0.5, lr=0.05), _imbsam_step),
}


@pytest.mark.parametrize("name", list(TWINS))
def test_first_pass_block_keeps_one_clean_pass_per_step(name):
    """Every twin and call shape: one batch counted per step, the statistics of one clean pass at
    w (a copy of the model at w, run once on the batch, is the hand-frozen reference)."""
    make, step = TWINS[name]
    model, reference = _net(), _net()
    opt = make(model.parameters())
    for i in range(STEPS + 2):  # LookSAM(k=5): one SAM step and reuse steps
        x, y = _batch(i)
        reference.load_state_dict(model.state_dict())
        reference(x)
        with st.running_stats_from_first_pass(model):
            step(model, opt, x, y)
        _assert_same_stats(model, reference)
    assert model[1].num_batches_tracked.item() == STEPS + 2
    assert model[1].momentum == 0.1 and model[1].track_running_stats
    assert not model[1]._forward_hooks


def test_without_the_block_the_later_passes_count():
    """The defect the block answers: SAM's closure form counts two batches per step."""
    model = _net()
    opt = st.SAM(model.parameters(), torch.optim.SGD, rho=0.5, lr=0.05)
    x, y = _batch(0)
    _sam_closure(model, opt, x, y)
    assert model[1].num_batches_tracked.item() == 2


def test_first_pass_block_is_nan_safe():
    model = _net()
    x, _ = _batch(0)
    reference = copy.deepcopy(model)
    reference(x)
    with st.running_stats_from_first_pass(model):
        model(x)
        with torch.no_grad():
            model(torch.full((16, 6), float("inf")))
    _assert_same_stats(model, reference)


def test_first_pass_block_releases_the_layers_when_the_step_raises():
    model = _net()
    x, _ = _batch(0)
    reference = copy.deepcopy(model)
    reference(x)
    with pytest.raises(RuntimeError, match="out of memory at w"):
        with st.running_stats_from_first_pass(model):
            model(x)
            model(2 * x)
            raise RuntimeError("out of memory at w + ε")
    _assert_same_stats(model, reference)
    bn = model[1]
    assert bn.track_running_stats and bn.momentum == 0.1 and not bn._forward_hooks
    assert not hasattr(bn, "_sampy_frozen_running_stats")


def test_nested_blocks_act_as_the_outermost_one():
    model = _net()
    x, _ = _batch(0)
    reference = copy.deepcopy(model)
    reference(x)
    with st.running_stats_from_first_pass(model):
        with st.running_stats_from_first_pass(model):
            model(x)
        model(3 * x)  # still inside the outer block: frozen
        with st.running_stats_from_first_pass(model):
            model(5 * x)
    _assert_same_stats(model, reference)


def test_revert_abandons_the_first_pass_update_too():
    model = _net()
    before = _stats(model)
    with st.running_stats_from_first_pass(model) as block:
        with st.running_stats_from_first_pass(model) as inner:
            model(_batch(0)[0])
            inner.revert()  # passed on to the outer block, which owns the layer
        model(_batch(1)[0])
    assert block is not inner
    for got, want in zip(_stats(model), before, strict=True):
        assert torch.equal(got, want)


def test_a_layer_frozen_by_hand_stays_frozen_in_the_block():
    model = _net()
    model(_batch(0)[0])
    before = _stats(model)
    st.disable_running_stats(model)
    with st.running_stats_from_first_pass(model):
        model(_batch(1)[0])
    for got, want in zip(_stats(model), before, strict=True):
        assert torch.equal(got, want)
    assert not model[1].track_running_stats  # still frozen until enable_running_stats
    st.enable_running_stats(model)
    assert model[1].track_running_stats


def test_first_pass_block_rejects_a_non_module():
    with pytest.raises(ValueError, match="needs the model"):
        st.running_stats_from_first_pass([torch.zeros(2)])


def test_frozen_block_writes_nothing_and_releases_on_error():
    model = _net()
    model(_batch(0)[0])
    before = _stats(model)
    with pytest.raises(RuntimeError, match="replay failed"):
        with st.running_stats_frozen(model):
            model(torch.full((16, 6), float("nan")))
            raise RuntimeError("replay failed")
    for got, want in zip(_stats(model), before, strict=True):
        assert torch.equal(got, want)
    assert model[1].track_running_stats
    st.disable_running_stats(model)
    with st.running_stats_frozen(model):
        pass
    assert not model[1].track_running_stats  # frozen before the block: still frozen
    st.enable_running_stats(model)


def test_davda54_closure_loop_inside_the_block():
    """``loss.backward(); opt.step(closure)``: the first loss inside the block is the clean pass."""
    model, reference = _net(), _net()
    opt = st.SAM(model.parameters(), torch.optim.SGD, rho=0.5, lr=0.05)
    for i in range(STEPS):
        x, y = _batch(i)
        reference.load_state_dict(model.state_dict())
        reference(x)
        with st.running_stats_from_first_pass(model):
            F.cross_entropy(model(x), y).backward()
            opt.step(_plain_closure(model, x, y))
        opt.zero_grad()
        _assert_same_stats(model, reference)
    assert model[1].num_batches_tracked.item() == STEPS
