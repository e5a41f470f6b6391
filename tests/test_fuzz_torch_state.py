"""Every torch twin × corrupted checkpoints: a named ``ValueError`` and an untouched optimizer,
or a correct load (the reliability review's B3 and issue 15's "torch state" item).

Seeded and bounded: each twin gets the same fixed corruptions plus a few drawn by a seeded
generator (another twin's checkpoint, a hyperparameter set to a hostile value, a state tensor
of another shape). After a refused load the twin's ``state_dict()`` and the weights are what
they were, and it still takes a step.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from twin_helpers import Case, MLPSteps, flat, mlp  # noqa: E402

import sampy  # noqa: E402

TWIN_ROWS = [row.name for row in sampy.variants() if row.twin() is not None]
SEED = 15


def _trained(row: str, steps: int = 1, seed: int = 0):
    model = mlp(seed)
    case = Case(row)
    opt = case.twin(model.parameters())
    MLPSteps(case, opt, model)(steps)
    return model, opt, case


_CHECKPOINTS: dict[str, dict] = {}


def _checkpoint(row: str) -> dict:
    """A trained twin's checkpoint (made once per row, deep-copied for every use)."""
    if row not in _CHECKPOINTS:
        _CHECKPOINTS[row] = copy.deepcopy(_trained(row)[1].state_dict())
    return copy.deepcopy(_CHECKPOINTS[row])


def _first_real_hyperparameter(opt, group: dict) -> str | None:
    specs = getattr(opt, "HYPERPARAMETERS", ())
    names = [s.name for s in specs if s.kind == "real" and s.name in group]
    return "rho" if "rho" in names else (names[0] if names else None)


def _snapshot(opt, model) -> tuple[dict, torch.Tensor]:
    return copy.deepcopy(opt.state_dict()), flat(model).clone()


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return a == b


def _corruptions(row: str, opt, rng: np.random.Generator):
    """``(label, checkpoint)`` pairs that every twin must refuse."""
    good = _checkpoint(row)
    yield "None", None
    yield "a list", [1, 2]
    yield "no 'state'", {k: v for k, v in good.items() if k != "state"}
    yield "no 'param_groups'", {k: v for k, v in good.items() if k != "param_groups"}
    bad = copy.deepcopy(good)
    bad["param_groups"] = {"params": []}
    yield "param_groups a dict", bad
    bad = copy.deepcopy(good)
    bad["param_groups"][0]["params"] = bad["param_groups"][0]["params"][:-1]
    yield "a parameter missing", bad
    bad = copy.deepcopy(good)
    bad["surprise"] = 1
    yield "an unknown top-level entry", bad
    name = _first_real_hyperparameter(opt, good["param_groups"][0])
    if name is not None:
        for value in (math.nan, -1.0, "fast", math.inf, 10**400, np.bool_(True)):
            bad = copy.deepcopy(good)
            bad["param_groups"][0][name] = value
            yield f"{name}={value!r}", bad
    if "lr" in good["param_groups"][0]:
        for value in ("fast", -0.1, math.nan, None):
            bad = copy.deepcopy(good)
            bad["param_groups"][0]["lr"] = value
            yield f"lr={value!r}", bad
    if "shared" in good["param_groups"][0]:
        bad = copy.deepcopy(good)
        del bad["param_groups"][0]["shared"]
        yield "no 'shared' counters", bad
        bad = copy.deepcopy(good)
        bad["param_groups"][0]["shared"] = {"bogus": object()}
        yield "a counter that is an object", bad
        if good["param_groups"][0]["shared"]:
            bad = copy.deepcopy(good)
            bad["param_groups"][0]["shared"] = dict.fromkeys(good["param_groups"][0]["shared"], "x")
            yield "every counter 'x'", bad
    tensors = [
        (pid, key)
        for pid, entry in good["state"].items()
        for key, value in entry.items()
        if isinstance(value, torch.Tensor) and value.dim() > 0
    ]
    if tensors:
        pid, key = tensors[int(rng.integers(len(tensors)))]
        bad = copy.deepcopy(good)
        bad["state"][pid][key] = bad["state"][pid][key].reshape(-1)[:1].clone()
        yield f"state[{pid}][{key!r}] of shape (1,)", bad
        bad = copy.deepcopy(good)
        bad["state"][pid][key] = torch.full_like(bad["state"][pid][key], math.nan)
        yield f"state[{pid}][{key!r}] all NaN", bad
    wider = copy.deepcopy(good)
    for entry in wider["state"].values():
        for key, value in list(entry.items()):
            if isinstance(value, torch.Tensor) and value.dim() > 0:
                entry[key] = torch.zeros((value.shape[0] * 2, *value.shape[1:]), dtype=value.dtype)
    if tensors:
        yield "a wider model's state", wider
    yield (
        "a plain torch SGD checkpoint",
        torch.optim.SGD(mlp().parameters(), lr=0.1, momentum=0.9).state_dict(),
    )
    others = [other for other in TWIN_ROWS if sampy.variant(other).twin() is not opt.__class__]
    for other in rng.choice(others, size=2, replace=False):
        yield f"a {other} checkpoint", _checkpoint(str(other))


@pytest.mark.parametrize("row", TWIN_ROWS)
def test_a_corrupted_checkpoint_is_refused_by_name_and_changes_nothing(row):
    rng = np.random.default_rng([SEED, TWIN_ROWS.index(row)])
    model, opt, case = _trained(row, steps=1, seed=3)
    step = MLPSteps(case, opt, model)
    refused = 0
    for label, bad in _corruptions(row, opt, rng):
        before_state, before_weights = _snapshot(opt, model)
        with pytest.raises(ValueError, match=type(opt).__name__) as info:
            opt.load_state_dict(bad)
        after_state, after_weights = _snapshot(opt, model)
        assert _same(before_state, after_state), (label, str(info.value))
        assert torch.equal(before_weights, after_weights), label
        refused += 1
    step()  # the refused loads left a working optimizer
    assert torch.isfinite(flat(model)).all()
    assert refused >= 12


@pytest.mark.parametrize("row", TWIN_ROWS)
def test_its_own_checkpoint_loads_and_resumes_exactly(row):
    model, opt, case = _trained(row, steps=1)
    saved = copy.deepcopy(opt.state_dict())
    twin_model = mlp(7)
    twin_model.load_state_dict(model.state_dict())
    twin = case.twin(twin_model.parameters())
    twin.load_state_dict(saved)
    MLPSteps(case, opt, model)()
    MLPSteps(case, twin, twin_model)()
    assert torch.equal(flat(model), flat(twin_model))


def test_the_checkpoint_names_the_twin_that_wrote_it_and_another_twin_refuses_it():
    _, sam, _ = _trained("SAM")
    saved = sam.state_dict()
    assert saved["param_groups"][0]["twin"] == "SAM"
    model = mlp()
    looksam = Case("LookSAM").twin(model.parameters())
    with pytest.raises(ValueError, match="written by SAM, not by LookSAM"):
        looksam.load_state_dict(saved)
    assert "twin" not in looksam.param_groups[0]


@pytest.mark.parametrize("row", TWIN_ROWS)
def test_a_hyperparameter_edited_between_steps_is_refused_before_the_weights_move(row):
    """A scheduler (or a hand) that writes a bad value into ``param_groups`` is caught at the
    next step, with the group and the hyperparameter named and the weights unchanged."""
    model, opt, case = _trained(row, steps=1)
    step = MLPSteps(case, opt, model)
    group = opt.param_groups[0]
    name = _first_real_hyperparameter(opt, group) or "lr"
    good = group[name]
    before = flat(model).clone()
    for value in (math.nan, -1.0, "fast"):
        group[name] = value
        with pytest.raises(ValueError, match=rf"param_groups\[0\].*{name}"):
            step()
        assert torch.equal(flat(model), before)
    group[name] = good
    step()
    assert not torch.equal(flat(model), before)


def test_the_two_call_loop_checks_the_hyperparameters_at_first_step():
    model, opt, _ = _trained("SAM", steps=1)
    opt.param_groups[0]["rho"] = math.nan
    inputs = torch.randn(4, 5, dtype=torch.float64)
    model(inputs).sum().backward()
    before = flat(model).clone()
    with pytest.raises(ValueError, match="rho"):
        opt.first_step(zero_grad=True)
    assert torch.equal(flat(model), before)
