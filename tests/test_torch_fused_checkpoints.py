"""The torch checkpoint rules (SAME, CustomSAME, SAMCkpt) pick the reference's floats, bit for bit.

The rules classify the ratio ``g̃/g`` with 0.0/1.0 comparisons and pick the direction with exact
arithmetic or bit masks, in reused buffers, over a concatenation or tensor by tensor
(``sampy.torch.checkpoints``). In float64 each coordinate must be the float the NumPy reference
(``sampy.optim.checkpoints``) computes, for every factor set and every subset of checkpoints,
on the edge cases: 0, -0, the guard ``ratio_eps`` and its neighbours, NaN, ±inf, r = ±1 and 0.
The twins keep ``g`` in the rule's buffer from the first step: the step is the same whichever
way the gradients are handed over.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import sampy.torch as st  # noqa: E402
from sampy.optim import checkpoints as reference  # noqa: E402
from sampy.torch import checkpoints  # noqa: E402
from sampy.torch.sharpness_aware import RuleContext  # noqa: E402

SHAPES = [(7, 5), (5,), (30, 40), (3,), (16, 16)]
FACTORS = [
    (1.0, 2.0, 1.0, 0.5, 2.0),
    (1.0, 2.0, 1.0, 1.0, 1.0),
    (1.0, 1.0, 1.0, 1.0, 1.0),
    (0.0, 2.0, 3.0, 0.5, 1.5),
    (1.0, 1.3, 0.7, 1.3, 0.2),  # offsets from c0 that do not round back: the lerp path
    (0.3, 0.7, 0.3, 0.3, 2.0),
    (2.0, 2.0, 2.0, 2.0, 2.0),
    (1.0, 1.0, 1.0, 1.0, 4.0),
]
SUBSETS = [s for n in range(6) for s in itertools.combinations(range(5), n)]


def _gradients(seed: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Float64 gradient pairs with every edge case planted, and a transposed (non-contiguous)
    pair, which the rules combine alone."""
    gen = torch.Generator().manual_seed(seed)
    eps = 1e-8
    up, down = math.nextafter(eps, 1.0), math.nextafter(eps, 0.0)
    specials = [0.0, -0.0, math.nan, math.inf, -math.inf, eps, -eps, up, down, -up, 1e-300]
    gs, gas = [], []
    for shape in SHAPES:
        g = torch.randn(shape, generator=gen, dtype=torch.float64) * 1e-3
        ga = g * torch.randn(shape, generator=gen, dtype=torch.float64) * 1.5
        f, fa = g.view(-1), ga.view(-1)
        for j, i in enumerate(torch.randperm(f.numel(), generator=gen)[:120].tolist()):
            kind = j % 8
            if kind == 0:
                f[i] = specials[j % len(specials)]
            elif kind == 1:
                fa[i] = specials[(j // 3) % len(specials)]
            elif kind == 2:
                fa[i] = f[i]  # r = 1
            elif kind == 3:
                fa[i] = -f[i]  # r = -1
            elif kind == 4:
                fa[i] = 0.0 if j % 2 else -0.0  # r = 0
            elif kind == 5:
                fa[i] = math.nextafter(f[i].item(), math.inf)  # r next to 1
            elif kind == 6:
                f[i] = specials[j % len(specials)]
                fa[i] = specials[(j * 7) % len(specials)]
        gs.append(g)
        gas.append(ga)
    big = torch.randn(6, 8, generator=gen, dtype=torch.float64)
    gs.append(big.t())
    gas.append((big * torch.randn(6, 8, generator=gen, dtype=torch.float64)).t())
    return gs, gas


def _apply(rule, gs, gas):
    """The rule on two groups of copies; the directions, flat."""
    g = [[t.clone() for t in gs[:3]], [t.clone() for t in gs[3:]]]
    ga = [[t.clone() for t in gas[:3]], [t.clone() for t in gas[3:]]]
    ctx = RuleContext([{}, {}], [[None] * 3, [None] * (len(gs) - 3)], {}, {})
    d = rule(ctx, g, ga)
    return np.concatenate([t.detach().reshape(-1).numpy() for ts in d for t in ts])


def _expected(rule, gs, gas):
    g = np.concatenate([t.reshape(-1).numpy() for t in gs])
    ga = np.concatenate([t.reshape(-1).numpy() for t in gas])
    with np.errstate(invalid="ignore", over="ignore"):
        return rule(g, ga, None)[0]


def _same_floats(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal bit for bit, NaN included (any NaN matches any NaN)."""
    both_nan = np.isnan(a) & np.isnan(b)
    return bool(np.all(both_nan | (a.view(np.int64) == b.view(np.int64))))


@pytest.fixture(params=["flat", "per_tensor"])
def layout(request, monkeypatch):
    """The ratio over one concatenation of g̃, or tensor by tensor (few large tensors)."""
    if request.param == "per_tensor":
        monkeypatch.setattr(checkpoints, "PER_TENSOR_NUMEL", 1)
    return request.param


@pytest.mark.parametrize("mode", ["sign_safe", "notes_code"])
@pytest.mark.parametrize("ratio_eps", [1e-8, 0.0])
@pytest.mark.parametrize("factors", FACTORS)
def test_scaling_picks_the_reference_floats(factors, ratio_eps, mode, layout):
    gs, gas = _gradients(0)
    ours = checkpoints.CheckpointScaling(factors, ratio_eps, mode)
    theirs = reference.CheckpointScaling(factors, ratio_eps, mode)
    for _ in range(2):  # the second call reuses the buffers
        assert _same_floats(_apply(ours, gs, gas), _expected(theirs, gs, gas))


@pytest.mark.parametrize("mode", ["sign_safe", "notes_code"])
@pytest.mark.parametrize("selected", SUBSETS, ids=lambda s: "".join(map(str, s)) or "none")
def test_hybrid_picks_the_reference_floats(selected, mode, layout):
    gs, gas = _gradients(1)
    ours = checkpoints.CheckpointHybrid(selected, 1e-8, mode)
    theirs = reference.CheckpointHybrid(selected, 1e-8, mode)
    for _ in range(2):
        assert _same_floats(_apply(ours, gs, gas), _expected(theirs, gs, gas))


def test_the_terms_of_every_subset_are_its_indicator():
    r = torch.tensor([-math.inf, -3.0, -1.0, -0.5, -0.0, 0.0, 0.5, 1.0, 3.0, math.inf, math.nan])
    ck = reference.checkpoints(np.ones(r.numel()), r.numpy(), 0.0, "notes_code")
    for n, down in itertools.product(range(5), (False, True)):
        for selected in itertools.combinations(range(1, 5), n):
            total = torch.zeros_like(r)
            for _, terms in checkpoints._runs(frozenset(selected), down):
                for op, value, sign in terms:
                    total += sign * checkpoints._compare(op, r, value, torch.empty_like(r))
            assert total.tolist() == np.isin(ck, selected).astype(float).tolist(), selected


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 9), torch.nn.Tanh(), torch.nn.Linear(9, 3))


def _loss(model: torch.nn.Module) -> torch.Tensor:
    gen = torch.Generator().manual_seed(3)
    dtype = next(model.parameters()).dtype
    x = torch.randn(17, 6, generator=gen, dtype=dtype)
    return ((model(x) - torch.randn(17, 3, generator=gen, dtype=dtype)) ** 2).mean()


def _train(twin, kwargs, zero_grad, stash=True, monkeypatch=None, dtype=torch.float32):
    model = _model().to(dtype)
    opt = twin(model.parameters(), torch.optim.SGD, rho=0.1, lr=0.1, momentum=0.9, **kwargs)
    if not stash:
        monkeypatch.setattr(checkpoints._CheckpointRule, "stash", lambda *args: False)
    for _ in range(4):
        opt.zero_grad()
        _loss(model).backward()
        kept = [p.grad.clone() for p in model.parameters()]
        opt.first_step(zero_grad=zero_grad)
        if not zero_grad:  # the caller's gradients are untouched
            assert all(
                torch.equal(p.grad, k) for p, k in zip(model.parameters(), kept, strict=True)
            )
            opt.zero_grad()
        _loss(model).backward()
        opt.second_step(zero_grad=True)
    if not stash:
        monkeypatch.undo()
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


TWINS = [
    (st.SAME, {}),
    (st.CustomSAME, {}),
    (st.SAMCkpt, {}),
    (st.SAMCkpt, {"checkpoints": (0, 2)}),
]


@pytest.mark.parametrize("twin, kwargs", TWINS)
def test_keeping_g_in_the_rule_s_buffer_gives_the_same_step(twin, kwargs, monkeypatch):
    """With ``first_step(zero_grad=False)`` the gradients stay the caller's: the same floats
    as the template's copy of g."""
    kept = _train(twin, kwargs, zero_grad=False)
    copied = _train(twin, kwargs, zero_grad=False, stash=False, monkeypatch=monkeypatch)
    assert torch.equal(kept, copied)


@pytest.mark.parametrize("twin, kwargs", TWINS)
def test_with_zero_grad_the_gradients_are_consumed_as_sam_s(twin, kwargs, monkeypatch):
    """With ``zero_grad=True`` the ascent may write into the gradients, since g is in the
    rule's buffer (w + ε as SAM forms it: the same up to its rounding)."""
    consumed = _train(twin, kwargs, zero_grad=True, dtype=torch.float64)
    kept = _train(twin, kwargs, True, stash=False, monkeypatch=monkeypatch, dtype=torch.float64)
    torch.testing.assert_close(consumed, kept, rtol=1e-13, atol=1e-15)


def test_a_parameter_that_loses_its_gradient_at_w_plus_eps_is_skipped():
    """The kept g is the concatenation of every gradient; when one is missing in the second
    pass, the descent reads the others out of it (not from the buffer it overwrites)."""
    results = []
    for lose in (False, True):
        model = _model()
        head = model[2]
        opt = st.SAME(model.parameters(), torch.optim.SGD, rho=0.1, lr=0.1)
        opt.zero_grad()
        _loss(model).backward()
        opt.first_step(zero_grad=True)
        _loss(model).backward()
        if lose:
            head.bias.grad = None
        opt.second_step(zero_grad=True)
        results.append([p.detach().clone() for p in model.parameters()])
    kept, lost = results
    for a, b, p in zip(kept, lost, _model().parameters(), strict=True):
        if p.shape == (3,):  # the head's bias: did not move without a gradient
            assert torch.equal(b, p.detach())
        else:
            assert torch.equal(a, b)
