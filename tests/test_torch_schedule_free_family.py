"""Torch twins of MSAM, AdamW-MSAM, Schedule-Free AdamW and the two MSAM-schedule-free optimizers.

The twins are checked against the NumPy references (``sampy.run`` on test functions, float64),
against ``torch.optim.SGD``/``Adam`` (ρ = 0, bit for bit), against the official
``schedulefree`` package, and against their own contract: checkpoints resume bit for bit,
``train()``/``eval()`` and ``move_to_ascent()``/``move_from_ascent()`` land on the promised
points, parameters without gradients are left alone, bad hyperparameters raise.
"""

from __future__ import annotations

import inspect
import io
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import sampy  # noqa: E402
import sampy.torch as st  # noqa: E402
from sampy.optim import Oracle  # noqa: E402
from sampy.optim import msam as np_msam  # noqa: E402
from sampy.optim import msam_schedule_free as np_msf  # noqa: E402
from sampy.optim import schedule_free as np_sf  # noqa: E402
from sampy.torch.msam import MSAM, AdamWMSAM  # noqa: E402
from sampy.torch.msam_schedule_free import AdamWMSAMScheduleFree, NotesAdamWMSAMScheduleFree  # noqa: E402
from sampy.torch.schedule_free import ScheduleFreeAdamW  # noqa: E402

TWINS = {
    np_msam.MSAM: MSAM,
    np_msam.AdamWMSAM: AdamWMSAM,
    np_sf.ScheduleFreeAdamW: ScheduleFreeAdamW,
    np_msf.NotesAdamWMSAMScheduleFree: NotesAdamWMSAMScheduleFree,
    np_msf.AdamWMSAMScheduleFree: AdamWMSAMScheduleFree,
}
# Learning rates small enough that 200 steps from 0.3 off a minimum do not reach it: near a minimum
# the momentum vanishes and the direction v/‖v‖ amplifies rounding by ρ/‖v‖ (chaotic drift).
# Measured agreement: 9e-12 (MSAM on Himmelblau), 1.5e-13 (the notes' formula, perturbed_only, on
# Booth: two moves per step), at most 2e-15 elsewhere.
CASES = {
    "MSAM": (np_msam.MSAM, dict(lr=2e-4, momentum=0.9, weight_decay=1e-2, rho=0.05)),
    "AdamWMSAM": (np_msam.AdamWMSAM, dict(lr=1e-3, weight_decay=1e-2, rho=0.05)),
    "SF-gen_b": (np_sf.ScheduleFreeAdamW, dict(lr=1e-2, weight_decay=0.05, warmup_steps=10, r=0.5)),
    "SF-gen_a-decay_at_z": (
        np_sf.ScheduleFreeAdamW,
        dict(lr=1e-2, weight_decay=0.05, warmup_steps=10, decay_at_z=True, variant="gen_a"),
    ),
    "Notes-sum_two": (np_msf.NotesAdamWMSAMScheduleFree, dict(lr=1e-2, rho=0.05)),
    "Notes-perturbed_only": (
        np_msf.NotesAdamWMSAMScheduleFree,
        dict(lr=1e-2, rho=0.05, grad_mode="perturbed_only", warmup_steps=5, r=1.0),
    ),
    "Notes-clean_only-c=1": (
        np_msf.NotesAdamWMSAMScheduleFree,
        dict(lr=1e-2, rho=0.01, grad_mode="clean_only", interpolate=False),
    ),
    "AdamWMSAMScheduleFree": (
        np_msf.AdamWMSAMScheduleFree,
        dict(lr=2e-3, rho=0.05, weight_decay=0.01, warmup_steps=10, ascent_momentum=0.8),
    ),
}
FUNCTIONS = ["quadratic", "booth", "himmelblau", "six_hump_camel", "styblinski_tang"]
STEPS = 200


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _start(f) -> np.ndarray:
    return f.minima[-1] + np.array([0.3, -0.3])


def _closure(opt, loss, x):
    def closure():
        opt.zero_grad()
        value = loss(x)
        value.backward()
        return value

    return closure


def _twin_run(opt_cls, kwargs, f, x0, steps):
    """The stored parameters after every step, as ``sampy.run`` records them."""
    x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    opt = opt_cls([x], **kwargs)
    closure = _closure(opt, st.as_torch_loss(f), x)
    xs = [x.detach().numpy().copy()]
    for _ in range(steps):
        opt.step(closure)
        xs.append(x.detach().numpy().copy())
    return np.array(xs), opt, x


def _reference_run(opt, f, x0, steps):
    """The reference's last point and state (``sampy.run`` does not return states)."""
    oracle = Oracle(f)
    x = np.array(x0, dtype=float)
    state = opt.init(x)
    for _ in range(steps):
        x, state = opt.step(x, state, oracle)
    return x, state


@pytest.mark.parametrize("fname", FUNCTIONS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_twin_follows_the_reference_trajectory(case, fname):
    f = sampy.functions.get(fname)
    ref_cls, kwargs = CASES[case]
    x0 = _start(f)
    reference = sampy.run(ref_cls(**kwargs), f, x0, STEPS)
    twin, _, _ = _twin_run(TWINS[ref_cls], kwargs, f, x0, STEPS)
    assert not reference.diverged.any()
    # Both record the STORED parameters: w̃ (MSAM family), y (Schedule-Free), θ (the notes' formula).
    np.testing.assert_allclose(twin, reference.xs, rtol=0, atol=1e-10)
    assert np.abs(reference.xs[-1] - x0).max() > 0.1  # it moved


@pytest.mark.parametrize(
    "case", ["MSAM", "AdamWMSAM", "SF-gen_b", "SF-gen_a-decay_at_z", "AdamWMSAMScheduleFree"]
)
def test_evaluation_points_match_the_reference(case):
    """``move_from_ascent`` gives the reference's ``unperturbed``, ``eval`` its ``eval``."""
    f = sampy.functions.get("himmelblau")
    ref_cls, kwargs = CASES[case]
    x0 = _start(f)
    ref = ref_cls(**kwargs)
    x_ref, state = _reference_run(ref, f, x0, 60)
    _, opt, x = _twin_run(TWINS[ref_cls], kwargs, f, x0, 60)
    stored = x.detach().clone()
    if hasattr(ref, "unperturbed"):
        opt.move_from_ascent()
        w = ref.unperturbed(x_ref, state)
        np.testing.assert_allclose(x.detach().numpy(), w, rtol=0, atol=1e-12)
        assert np.abs(w - x_ref).max() > 1e-3  # the perturbation is not trivial
        opt.move_to_ascent()
        torch.testing.assert_close(x.detach(), stored, rtol=0, atol=1e-15)  # one rounding
        x.data.copy_(stored)
    if hasattr(ref, "eval"):
        opt.eval()
        np.testing.assert_allclose(x.detach().numpy(), ref.eval(x_ref, state), rtol=0, atol=1e-12)
        opt.train()
        assert torch.equal(x.detach(), stored)  # y (or ỹ) again, bit for bit


def test_notes_loop_by_hand_equals_step_with_closure():
    """The README loop (no zero_grad between the backward passes) = ``step(closure)``."""
    f = sampy.functions.get("himmelblau")
    loss = st.as_torch_loss(f)
    kwargs = dict(lr=1e-2, rho=0.1, weight_decay=0.05)
    points = [torch.tensor(_start(f), requires_grad=True) for _ in range(4)]
    auto = NotesAdamWMSAMScheduleFree([points[0]], **kwargs)
    hand = NotesAdamWMSAMScheduleFree([points[1]], **kwargs)
    auto_p = NotesAdamWMSAMScheduleFree([points[2]], grad_mode="perturbed_only", **kwargs)
    hand_p = NotesAdamWMSAMScheduleFree([points[3]], grad_mode="perturbed_only", **kwargs)
    for _ in range(30):
        auto.step(_closure(auto, loss, points[0]))
        hand.zero_grad()
        loss(points[1]).backward()
        hand.move_to_ascent()
        loss(points[1]).backward()
        hand.move_from_ascent()
        hand.step()
        auto_p.step(_closure(auto_p, loss, points[2]))
        hand_p.zero_grad()
        hand_p.move_to_ascent()
        loss(points[3]).backward()
        hand_p.move_from_ascent()
        hand_p.step()
        assert torch.equal(points[0], points[1])
        assert torch.equal(points[2], points[3])
    assert not torch.equal(points[0], points[2])


# ---------------------------------------------------------------------------------------------
# Identities with torch's own optimizers, and with the official schedulefree package


def _mlp(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)
    ).double()


def _data(seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.randn(32, 5, generator=gen, dtype=torch.float64)
    return inputs, torch.randint(0, 3, (32,), generator=gen)


def _model_closure(opt, model, inputs, targets):
    def closure():
        opt.zero_grad()
        value = torch.nn.functional.cross_entropy(model(inputs), targets)
        value.backward()
        return value

    return closure


def _two_groups(model, **second):
    params = list(model.parameters())
    return [{"params": params[:2]}, {"params": params[2:], **second}]


@pytest.mark.parametrize(
    ("ours", "theirs", "kwargs", "second"),
    [
        (MSAM, torch.optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.05), {}),
        (MSAM, torch.optim.SGD, dict(lr=0.1, momentum=0.5, weight_decay=0.0), {"lr": 0.3}),
        (AdamWMSAM, torch.optim.Adam, dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.0), {}),
    ],
    ids=["MSAM-SGD", "MSAM-SGD-group-lr", "AdamWMSAM-Adam"],
)
def test_rho_zero_is_the_torch_optimizer_bit_for_bit(ours, theirs, kwargs, second):
    inputs, targets = _data()
    models = [_mlp(), _mlp()]
    a = ours(_two_groups(models[0], **second), rho=0.0, **kwargs)
    b = theirs(_two_groups(models[1], **second), **kwargs)
    for _ in range(40):
        a.step(_model_closure(a, models[0], inputs, targets))
        b.step(_model_closure(b, models[1], inputs, targets))
        for p, q in zip(models[0].parameters(), models[1].parameters(), strict=True):
            assert torch.equal(p, q)
    first = next(iter(_mlp().parameters()))
    assert not torch.equal(next(iter(models[0].parameters())), first)  # it moved


def test_msam_rho_zero_on_a_test_function_is_torch_sgd_bit_for_bit():
    f = sampy.functions.get("rosenbrock")
    kwargs = dict(lr=1e-3, momentum=0.9, weight_decay=1e-2)
    ours, _, _ = _twin_run(MSAM, {**kwargs, "rho": 0.0}, f, np.array([-1.0, 1.5]), 100)
    theirs, _, _ = _twin_run(torch.optim.SGD, kwargs, f, np.array([-1.0, 1.5]), 100)
    np.testing.assert_array_equal(ours, theirs)


def test_combination_with_rho_zero_is_schedule_free_adamw_bit_for_bit():
    inputs, targets = _data()
    models = [_mlp(), _mlp()]
    kwargs = dict(lr=0.01, weight_decay=0.1, warmup_steps=5, variant="gen_a")
    a = AdamWMSAMScheduleFree(_two_groups(models[0]), rho=0.0, **kwargs)
    b = ScheduleFreeAdamW(_two_groups(models[1]), **kwargs)
    for _ in range(30):
        a.step(_model_closure(a, models[0], inputs, targets))
        b.step(_model_closure(b, models[1], inputs, targets))
    a.eval()
    b.eval()
    for p, q in zip(models[0].parameters(), models[1].parameters(), strict=True):
        assert torch.equal(p, q)


A3 = torch.tensor([[4.0, 1.0, 0.5], [1.0, 3.0, -0.2], [0.5, -0.2, 2.0]], dtype=torch.float64)
B3 = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)


@pytest.mark.parametrize(
    ("peer", "variant", "atol"),
    [
        ("AdamWScheduleFreeReference", "gen_b", 0.0),  # the same operations: bit for bit
        ("AdamWScheduleFree", "gen_b", 1e-14),  # memory-efficient: y by another route
        ("AdamWScheduleFreePaper", "gen_a", 1e-14),
    ],
)
def test_schedule_free_matches_the_official_package(peer, variant, atol):
    """``schedulefree`` 1.4.1 in float64 for 100 steps, two tensors in two groups.

    Measured: the reference class agrees to the last bit, the memory-efficient ones to
    about 1e-15; the other generation is more than 1e-2 away from the same peer.
    """
    schedulefree = pytest.importorskip("schedulefree")
    hyper = dict(lr=0.05, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.05, warmup_steps=10, r=0.5)
    start = torch.tensor([1.5, -0.5, 2.0], dtype=torch.float64)
    ours_p = [start[:2].clone().requires_grad_(), start[2:].clone().requires_grad_()]
    theirs_p = [start[:2].clone().requires_grad_(), start[2:].clone().requires_grad_()]
    other_p = [start[:2].clone().requires_grad_(), start[2:].clone().requires_grad_()]
    ours = ScheduleFreeAdamW(
        [{"params": ours_p[:1]}, {"params": ours_p[1:]}], **hyper, variant=variant
    )
    other = ScheduleFreeAdamW(other_p, **hyper, variant="gen_a" if variant == "gen_b" else "gen_b")
    kw = {"foreach": False} if peer != "AdamWScheduleFreeReference" else {}
    theirs = getattr(schedulefree, peer)(
        [{"params": theirs_p[:1]}, {"params": theirs_p[1:]}], **hyper, **kw
    )
    theirs.train()

    def quadratic(ps):
        w = torch.cat(ps)
        return 0.5 * w @ A3 @ w - B3 @ w

    for opt, ps in ((ours, ours_p), (theirs, theirs_p), (other, other_p)):
        for _ in range(100):
            opt.zero_grad()
            quadratic(ps).backward()
            opt.step()
    for o, t in zip(ours_p, theirs_p, strict=True):
        torch.testing.assert_close(o.detach(), t.detach(), rtol=0, atol=atol)
    assert max((o - t).abs().max().item() for o, t in zip(other_p, theirs_p, strict=True)) > 1e-2
    ours.eval()
    theirs.eval()
    for o, t in zip(ours_p, theirs_p, strict=True):
        torch.testing.assert_close(o.detach(), t.detach(), rtol=0, atol=max(atol, 1e-14))
    assert (torch.cat(ours_p) - start).abs().max() > 0.1


# ---------------------------------------------------------------------------------------------
# Several tensors and groups: one global norm, like the reference on the flattened vector


def _flat_reference(ref_opt, model, inputs, targets, steps):
    params = list(model.parameters())
    shapes, sizes = [p.shape for p in params], [p.numel() for p in params]

    def value_and_grad(flat):
        w = torch.tensor(flat, requires_grad=True)
        w1, b1, w2, b2 = (t.reshape(s) for t, s in zip(torch.split(w, sizes), shapes, strict=True))
        value = torch.nn.functional.cross_entropy(
            torch.tanh(inputs @ w1.T + b1) @ w2.T + b2, targets
        )
        (grad,) = torch.autograd.grad(value, w)
        return value.detach().numpy(), grad.numpy()

    oracle = Oracle(lambda x: value_and_grad(x)[0])
    oracle._grad = lambda x: value_and_grad(x)[1]
    x = torch.cat([p.detach().reshape(-1) for p in params]).numpy()
    state = ref_opt.init(x)
    for _ in range(steps):
        x, state = ref_opt.step(x, state, oracle)
    return x


@pytest.mark.parametrize(
    "case", ["MSAM", "AdamWMSAM", "Notes-sum_two", "AdamWMSAMScheduleFree", "SF-gen_b"]
)
def test_four_tensors_in_two_groups_use_one_global_norm(case):
    ref_cls, kwargs = CASES[case]
    kwargs = {**kwargs, "lr": 0.05, **({"rho": 0.2} if "rho" in kwargs else {})}
    inputs, targets = _data()
    model = _mlp()
    expected = _flat_reference(ref_cls(**kwargs), _mlp(), inputs, targets, 20)
    opt = TWINS[ref_cls](_two_groups(model), **kwargs)
    for _ in range(20):
        opt.step(_model_closure(opt, model, inputs, targets))
    now = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy()
    np.testing.assert_allclose(now, expected, rtol=0, atol=1e-12)
    # One group or two: the same numbers, to the last bit.
    single_model = _mlp()
    single = TWINS[ref_cls](single_model.parameters(), **kwargs)
    for _ in range(20):
        single.step(_model_closure(single, single_model, inputs, targets))
    for p, q in zip(model.parameters(), single_model.parameters(), strict=True):
        assert torch.equal(p, q)


# ---------------------------------------------------------------------------------------------
# Contract: checkpoints, modes, moves, skipped tensors, validation


MODEL_CASES = {
    "MSAM": (MSAM, dict(lr=0.1, rho=0.3)),
    "AdamWMSAM": (AdamWMSAM, dict(lr=0.01, rho=0.5)),
    "ScheduleFreeAdamW": (ScheduleFreeAdamW, dict(lr=0.01, weight_decay=0.1, warmup_steps=3)),
    "Notes-sum_two": (NotesAdamWMSAMScheduleFree, dict(lr=0.01, rho=0.1)),
    "Notes-perturbed_only": (
        NotesAdamWMSAMScheduleFree,
        dict(lr=0.01, rho=0.1, grad_mode="perturbed_only"),
    ),
    "AdamWMSAMScheduleFree": (AdamWMSAMScheduleFree, dict(lr=0.01, rho=0.1, warmup_steps=3)),
}


def _same_state(a, b) -> None:
    """Every buffer and counter of two ``state_dict()`` results are equal, to the bit."""
    assert a["param_groups"] == b["param_groups"]
    assert a["state"].keys() == b["state"].keys()
    for key, entries in a["state"].items():
        assert entries.keys() == b["state"][key].keys()
        for name, value in entries.items():
            other = b["state"][key][name]
            assert torch.equal(value, other) if torch.is_tensor(value) else value == other


# The moves to the evaluation point and back, for the twins that have one.
EVAL_MOVES = {
    MSAM: ("move_from_ascent", "move_to_ascent"),
    AdamWMSAM: ("move_from_ascent", "move_to_ascent"),
    ScheduleFreeAdamW: ("eval", "train"),
    AdamWMSAMScheduleFree: ("eval", "train"),
}


@pytest.mark.parametrize(
    ("case", "at_evaluation_point"),
    [(case, False) for case in sorted(MODEL_CASES)]
    + [(case, True) for case in sorted(MODEL_CASES) if MODEL_CASES[case][0] in EVAL_MOVES],
)
def test_state_dict_round_trip_continues_bit_identically(case, at_evaluation_point):
    cls, kwargs = MODEL_CASES[case]
    to_eval, to_train = EVAL_MOVES.get(cls, (None, None))
    inputs, targets = _data()
    model = _mlp()
    opt = cls(_two_groups(model), **kwargs)
    closure = _model_closure(opt, model, inputs, targets)
    for _ in range(5):
        opt.step(closure)
    if at_evaluation_point:  # the official README's advice: checkpoint in eval mode
        getattr(opt, to_eval)()
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
    if at_evaluation_point:
        getattr(opt, to_train)()
    for _ in range(5):
        opt.step(closure)
    expected = [p.detach().clone() for p in model.parameters()]

    buffer.seek(0)
    saved = torch.load(buffer)
    model2 = _mlp(seed=123)
    model2.load_state_dict(saved["model"])
    opt2 = cls(_two_groups(model2), **kwargs)
    opt2.load_state_dict(saved["opt"])
    _same_state(opt2.state_dict(), saved["opt"])
    if at_evaluation_point:
        getattr(opt2, to_train)()  # the same operations on the same bits as the original
    closure2 = _model_closure(opt2, model2, inputs, targets)
    for _ in range(5):
        opt2.step(closure2)
    for p, e in zip(model2.parameters(), expected, strict=True):
        assert torch.equal(p, e)
    _same_state(opt2.state_dict(), opt.state_dict())


@pytest.mark.parametrize("cls", [ScheduleFreeAdamW, AdamWMSAMScheduleFree])
def test_train_and_eval_switch_between_x_and_y(cls):
    inputs, targets = _data()
    model = _mlp()
    opt = cls(model.parameters(), lr=0.05, weight_decay=0.1)
    params = list(model.parameters())
    before = [p.detach().clone() for p in params]
    opt.eval()  # before any step: nothing to switch, the parameters are x = y = z = w0
    opt.train()
    assert all(torch.equal(p, b) for p, b in zip(params, before, strict=True))
    for _ in range(15):
        opt.step(_model_closure(opt, model, inputs, targets))
    y = [p.detach().clone() for p in params]
    opt.eval()
    opt.eval()  # idempotent
    for p in params:
        assert torch.equal(p, opt.state[p]["x"])
    assert max((p - q).abs().max().item() for p, q in zip(params, y, strict=True)) > 1e-3
    with pytest.raises(RuntimeError, match="train"):
        opt.step()
    if cls is AdamWMSAMScheduleFree:
        with pytest.raises(RuntimeError, match="train"):
            opt.move_from_ascent()
    opt.train()
    opt.train()
    for p, q in zip(params, y, strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize("cls", [MSAM, AdamWMSAM, AdamWMSAMScheduleFree])
def test_moves_between_the_perturbed_and_the_unperturbed_point(cls):
    inputs, targets = _data()
    model = _mlp()
    rho = 0.3
    opt = cls(_two_groups(model), lr=0.01, rho=rho)
    for _ in range(10):
        opt.step(_model_closure(opt, model, inputs, targets))
    params = list(model.parameters())
    stored = [p.detach().clone() for p in params]
    opt.move_from_ascent()
    opt.move_from_ascent()  # idempotent
    with pytest.raises(RuntimeError, match="move_to_ascent"):
        opt.step()
    delta = [s - p.detach() for s, p in zip(stored, params, strict=True)]  # w̃ − w
    u = [opt.state[p][cls.DIRECTION] for p in params]
    length = torch.sqrt(sum((d**2).sum() for d in delta))
    norm = torch.sqrt(sum((v**2).sum() for v in u))  # global over both groups
    torch.testing.assert_close(length, rho * norm / (norm + 1e-12), rtol=1e-12, atol=0)
    assert sum((d * v).sum() for d, v in zip(delta, u, strict=True)) < 0  # against the momentum
    opt.move_to_ascent()
    opt.move_to_ascent()
    for p, s in zip(params, stored, strict=True):
        torch.testing.assert_close(p.detach(), s, rtol=0, atol=1e-15)


def test_notes_ascent_is_along_plus_x_and_step_refuses_to_run_there():
    inputs, targets = _data()
    model = _mlp()
    opt = NotesAdamWMSAMScheduleFree(_two_groups(model), lr=0.01, rho=0.3)
    for _ in range(5):
        opt.step(_model_closure(opt, model, inputs, targets))
    params = list(model.parameters())
    theta = [p.detach().clone() for p in params]
    opt.move_to_ascent()
    with pytest.raises(RuntimeError, match="move_from_ascent"):
        opt.step()
    delta = [p.detach() - t for p, t in zip(params, theta, strict=True)]
    length = torch.sqrt(sum((d**2).sum() for d in delta))
    torch.testing.assert_close(length, torch.tensor(0.3, dtype=torch.float64), rtol=1e-12, atol=0)
    assert sum((d * opt.state[p]["x"]).sum() for d, p in zip(delta, params, strict=True)) > 0
    opt.move_from_ascent()
    opt.eval()  # the identity
    for p, t in zip(params, theta, strict=True):
        torch.testing.assert_close(p.detach(), t, rtol=0, atol=1e-15)


@pytest.mark.parametrize("case", sorted(MODEL_CASES))
def test_parameters_without_gradient_are_skipped(case):
    cls, kwargs = MODEL_CASES[case]
    used = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    unused = torch.tensor([5.0], dtype=torch.float64, requires_grad=True)
    opt = cls([used, unused], **kwargs)
    closure = _closure(opt, lambda w: (w**2).sum(), used)
    for _ in range(3):
        opt.step(closure)
    if hasattr(opt, "move_from_ascent") and cls is not NotesAdamWMSAMScheduleFree:
        opt.move_from_ascent()
        opt.move_to_ascent()
    if hasattr(opt, "eval"):
        opt.eval()
        opt.train()
    assert unused.grad is None and unused.item() == 5.0
    assert not opt.state.get(unused)
    assert not torch.equal(used.detach(), torch.tensor([1.0, 2.0], dtype=torch.float64))


@pytest.mark.parametrize("case", sorted(MODEL_CASES))
def test_zero_gradient_gives_no_nan(case):
    """At the minimum of Σw²: g = 0, every buffer 0, 0/(0 + eps) = 0 — the point stays."""
    cls, kwargs = MODEL_CASES[case]
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = cls([w], **kwargs)
    for _ in range(5):
        opt.step(_closure(opt, lambda v: (v**2).sum(), w))
    assert torch.equal(w.detach(), torch.zeros(3, dtype=torch.float64))


def _raises_naming(name):
    return pytest.raises(ValueError, match=rf"(?<![A-Za-z_]){re.escape(name)}(?![A-Za-z_])")


def _invalid_cases():
    return [
        pytest.param(cls, spec.name, bad, id=f"{cls.__name__}-{spec.name}-{i}")
        for cls in TWINS.values()
        for spec in cls.HYPERPARAMETERS
        for i, bad in enumerate(spec.invalid_values())
    ]


@pytest.mark.parametrize(("cls", "knob", "bad"), _invalid_cases())
def test_every_invalid_value_raises_naming_the_knob(cls, knob, bad):
    w = torch.ones(2, requires_grad=True)
    with _raises_naming(knob):
        cls([w], **{knob: bad})


@pytest.mark.parametrize("cls", list(TWINS.values()))
def test_a_group_with_an_invalid_value_raises_naming_the_knob(cls):
    a, b = torch.ones(2, requires_grad=True), torch.ones(1, requires_grad=True)
    with _raises_naming("lr"):
        cls([{"params": [a]}, {"params": [b], "lr": -0.1}])
    opt = cls([a])
    with _raises_naming("weight_decay"):
        opt.add_param_group({"params": [b], "weight_decay": -1.0})
    assert len(opt.param_groups) == 1  # checked before it is added


@pytest.mark.parametrize(("reference", "cls"), list(TWINS.items()))
def test_twin_has_the_reference_names_and_defaults(reference, cls):
    ours = inspect.signature(cls.__init__).parameters
    theirs = inspect.signature(reference.__init__).parameters
    assert list(ours)[:2] == ["self", "params"]
    assert [n for n in ours if n != "params"] == list(theirs)
    for name in theirs:
        if name != "self":
            assert ours[name].default == theirs[name].default, name
    assert cls.HYPERPARAMETERS is reference.HYPERPARAMETERS


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("case", sorted(MODEL_CASES))
def test_cuda_steps_match_cpu_without_host_synchronisation(case):
    """Steps, moves and mode switches on CUDA never wait for the device (sync debug mode)."""
    cls, kwargs = MODEL_CASES[case]
    inputs, targets = _data()
    results = []
    for device in ("cpu", "cuda"):
        model = _mlp().to(device)
        opt = cls(_two_groups(model), **kwargs)
        x, y = inputs.to(device), targets.to(device)
        for k in range(5):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            if device == "cuda" and k > 0:  # the first step allocates the state
                torch.cuda.set_sync_debug_mode("error")
            try:
                there, back = EVAL_MOVES.get(cls, ("move_to_ascent", "move_from_ascent"))
                getattr(opt, there)()
                getattr(opt, back)()
                opt.step()
            finally:
                torch.cuda.set_sync_debug_mode(0)
        results.append(torch.cat([p.detach().cpu().reshape(-1) for p in model.parameters()]))
    torch.testing.assert_close(results[0], results[1], rtol=1e-9, atol=1e-9)


# --------------------------------------------------------------------------- overflow


@pytest.mark.parametrize(
    "cls", [st.ScheduleFreeAdamW, st.AdamWMSAMScheduleFree, st.NotesAdamWMSAMScheduleFree]
)
@pytest.mark.parametrize(
    "kwargs",
    [{"r": 400.0}, {"lr": 1e200}, {"lr": 1e200, "weight_decay": 0.5}],
    ids=["r=400", "lr=1e200", "lr=1e200-decay"],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_overflowing_weights_or_learning_rates_make_nan_weights_not_an_error(cls, kwargs, dtype):
    """The review's A5 for the twins: an OverflowError (Python ``**``) or torch's refusal of
    a scalar its dtype cannot hold; now the weights turn non-finite, as a divergence does."""
    w = torch.nn.Parameter(torch.tensor([1.0, 2.0], dtype=dtype))
    opt = cls([w], **kwargs)
    if hasattr(opt, "train"):
        opt.train()

    def closure():
        opt.zero_grad()
        loss = (w**2).sum()
        loss.backward()
        return loss

    for _ in range(8):
        opt.step(closure)
    assert not torch.isfinite(w).all()
