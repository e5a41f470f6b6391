"""Checkpoints of the torch twins: what ``state_dict()`` holds, ``torch.distributed.checkpoint``,
``deepcopy`` and pickle, ``add_param_group``, the ``base_optimizer`` argument and mixed dtypes."""

from __future__ import annotations

import io

import pytest

torch = pytest.importorskip("torch")

import sampy.torch as st  # noqa: E402

# -- (1) state_dict() holds no copy of the weights ----------------------------------------------


def _float32_mlp(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))


def _batch(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(48, 32, generator=gen), torch.randint(0, 10, (48,), generator=gen)


def _two_pass_steps(model, opt, steps: int = 3) -> None:
    x, y = _batch()
    for _ in range(steps):
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.first_step(zero_grad=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.second_step(zero_grad=True)


def _saved_bytes(obj) -> int:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.tell()


def _param_bytes(model: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def test_the_checkpoint_of_sam_is_the_size_of_sgd_s_and_holds_no_weights():
    sizes, keys = {}, {}
    for name in ("SGD", "SAM", "GSAM", "LookSAM"):
        model = _float32_mlp()
        if name == "SGD":
            opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
            x, y = _batch()
            for _ in range(3):
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(x), y).backward()
                opt.step()
        else:
            opt = getattr(st, name)(model.parameters(), torch.optim.SGD, lr=0.1, momentum=0.9)
            _two_pass_steps(model, opt)
        saved = opt.state_dict()
        sizes[name] = _saved_bytes(saved)
        keys[name] = {key for entry in saved["state"].values() for key in entry}
    weights = _param_bytes(_float32_mlp())
    assert "old_p" not in keys["SAM"] | keys["LookSAM"]
    # SGD: one momentum buffer (the weights' size); SAM and GSAM add a few counters, not a copy
    # of the weights; LookSAM adds its stored direction g_v (one more buffer), nothing else.
    assert sizes["SGD"] > weights
    assert sizes["SAM"] - sizes["SGD"] < weights / 10
    assert sizes["GSAM"] - sizes["SGD"] < weights / 10
    assert weights < sizes["LookSAM"] - sizes["SGD"] < weights * 1.1


def _reloaded(obj):
    """``obj`` through ``torch.save``/``torch.load``: detached from the live tensors."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def _checkpoint_with_old_p(opt) -> dict:
    """``opt``'s checkpoint as sampy wrote it before the saved w left the state (``old_p``)."""
    saved = opt.state_dict()
    ids = [i for group in saved["param_groups"] for i in group["params"]]
    params = [p for group in opt.param_groups for p in group["params"]]
    for i, p in zip(ids, params, strict=True):
        saved["state"].setdefault(i, {})["old_p"] = p.detach().clone()
    return saved


def test_a_checkpoint_with_the_old_saved_weights_loads_and_drops_them():
    model = _float32_mlp()
    opt = st.LookSAM(model.parameters(), torch.optim.SGD, k=2, lr=0.1, momentum=0.9)
    _two_pass_steps(model, opt)
    old = _reloaded(_checkpoint_with_old_p(opt))
    expected = {n: p.detach().clone() for n, p in model.named_parameters()}
    _two_pass_steps(model, opt, steps=2)
    expected_after = [p.detach().clone() for p in model.parameters()]

    model2 = _float32_mlp(seed=5)
    model2.load_state_dict(expected)
    opt2 = st.LookSAM(model2.parameters(), torch.optim.SGD, k=2, lr=0.1, momentum=0.9)
    opt2.load_state_dict(old)
    assert all("old_p" not in entry for entry in opt2.state.values())
    _two_pass_steps(model2, opt2, steps=2)
    for a, b in zip(model2.parameters(), expected_after, strict=True):
        assert torch.equal(a, b)


def test_state_dict_between_the_two_passes_is_refused_and_after_them_allowed():
    model = _float32_mlp()
    opt = st.SAM(model.parameters(), torch.optim.SGD, lr=0.1, momentum=0.9)
    x, y = _batch()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.first_step(zero_grad=True)
    with pytest.raises(RuntimeError, match=r"between first_step\(\) and second_step\(\)"):
        opt.state_dict()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.second_step(zero_grad=True)
    assert len(opt.state_dict()["param_groups"]) == 1
