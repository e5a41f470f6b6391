"""The practical knobs of ``sampy.torch``: ρ following the LR, gradient centralization, clipping
placements, weight EMA; and the runnable examples of their docstrings."""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402

import sampy.torch as st  # noqa: E402
from sampy.optim.gsam import proportional_rho  # noqa: E402
from sampy.torch import clipping, gc  # noqa: E402

LR, RHO_MAX, RHO_MIN = 0.05, 0.05, 0.01


def _mlp(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)
    ).double()


def _batch(step: int, n: int = 12):
    gen = torch.Generator().manual_seed(step)
    x = torch.randn(n, 5, generator=gen, dtype=torch.float64)
    return x, torch.randint(0, 3, (n,), generator=gen)


def _flat(model) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def _two_groups(model, lr: float = LR):
    weights = [p for p in model.parameters() if p.ndim > 1]
    biases = [p for p in model.parameters() if p.ndim <= 1]
    return [{"params": weights, "lr": lr}, {"params": biases, "lr": 2 * lr}]


def _sam_step(model, opt, x, y) -> float:
    """A two-call step; returns ‖ε‖ (how far first_step moved the weights)."""
    F.cross_entropy(model(x), y).backward()
    w = _flat(model)
    opt.first_step(zero_grad=True)
    moved = (_flat(model) - w).norm().item()
    F.cross_entropy(model(x), y).backward()
    opt.second_step(zero_grad=True)
    return moved


# -- ProportionalRho -------------------------------------------------------------------------


@pytest.mark.parametrize("twin", [st.SAM, st.GSAM])
def test_eps_norm_follows_the_learning_rate_over_one_cycle(twin):
    model = _mlp()
    opt = twin(model.parameters(), torch.optim.SGD, lr=LR, momentum=0.9)
    steps = 30
    lr_scheduler = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=steps)
    rho_scheduler = st.ProportionalRho(opt, LR, 0.0, RHO_MAX, RHO_MIN)
    formula = proportional_rho(lambda t: opt.param_groups[0]["lr"], LR, 0.0, RHO_MAX, RHO_MIN)
    lrs, moves = [], []
    for step in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        expected = formula(step)
        assert opt.param_groups[0]["rho"] == expected
        moves.append(_sam_step(model, opt, *_batch(step)))
        assert moves[-1] == pytest.approx(expected, rel=1e-9)
        lr_scheduler.step()
        rho_scheduler.step()
    # Up and down with the cycle: the largest ε comes with the largest learning rate.
    assert int(np.argmax(moves)) == int(np.argmax(lrs))
    assert moves[0] < 0.5 * max(moves) and moves[-1] < 0.5 * max(moves)


def test_each_group_follows_its_own_learning_rate():
    model = _mlp()
    opt = st.SAM(_two_groups(model), torch.optim.SGD, momentum=0.9)
    lr_scheduler = torch.optim.lr_scheduler.OneCycleLR(
        opt.base_optimizer, max_lr=[LR, 2 * LR], total_steps=10
    )
    rho_scheduler = st.ProportionalRho(opt, [LR, 2 * LR], 0.0, RHO_MAX, RHO_MIN)
    for step in range(10):
        for group, lr_max in zip(opt.param_groups, [LR, 2 * LR], strict=True):
            lr = group["lr"]
            assert group["rho"] == proportional_rho(
                lambda t, lr=lr: lr, lr_max, 0.0, RHO_MAX, RHO_MIN
            )(0)
            assert RHO_MIN <= group["rho"] <= RHO_MAX
        _sam_step(model, opt, *_batch(step))
        lr_scheduler.step()
        rho_scheduler.step()
    assert rho_scheduler.get_last_rho() == [g["rho"] for g in opt.param_groups]


def test_rho_follows_reduce_lr_on_plateau():
    model = _mlp()
    opt = st.SAM(model.parameters(), torch.optim.SGD, lr=LR)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0)
    rho_scheduler = st.ProportionalRho(opt, LR, 0.0, RHO_MAX, RHO_MIN)
    assert opt.param_groups[0]["rho"] == RHO_MAX
    for _ in range(2):
        plateau.step(1.0)  # no improvement after the first: the lr halves
        rho_scheduler.step()
    assert opt.param_groups[0]["lr"] == LR / 2
    assert opt.param_groups[0]["rho"] == pytest.approx(RHO_MIN + (RHO_MAX - RHO_MIN) / 2)


def test_rho_scheduler_state_round_trips(tmp_path):
    model = _mlp()
    opt = st.SAM(_two_groups(model), torch.optim.SGD)
    rho_scheduler = st.ProportionalRho(
        opt, [LR, 2 * LR], [0.0, 0.001], RHO_MAX, RHO_MIN, clamp=True
    )
    for group in opt.param_groups:
        group["lr"] *= 0.3
    rho_scheduler.step()
    torch.save(rho_scheduler.state_dict(), tmp_path / "rho.pt")
    fresh = st.ProportionalRho(opt, 1.0, 0.0, 0.1, 0.0)
    fresh.load_state_dict(torch.load(tmp_path / "rho.pt", weights_only=True))
    assert fresh.state_dict() == rho_scheduler.state_dict()
    for group in opt.param_groups:
        group["lr"] *= 0.5
    rho_scheduler.step()
    expected = rho_scheduler.get_last_rho()
    fresh.step()
    assert fresh.get_last_rho() == expected
    with pytest.raises(ValueError, match="unknown keys"):
        fresh.load_state_dict({"rho": 1.0})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr_max": 0.01, "lr_min": 0.1}, "lr_max must be >= lr_min"),
        ({"lr_max": float("nan")}, "lr_max must be a finite real number"),
        ({"rho_max": -0.1}, "rho_max"),
        ({"lr_max": [0.1, 0.2]}, "2 entries for 1 parameter groups"),
        ({"clamp": 1}, "clamp must be True or False"),
    ],
)
def test_rho_scheduler_rejects_bad_arguments(kwargs, message):
    opt = st.SAM(_mlp().parameters(), torch.optim.SGD, lr=LR)
    arguments = {"lr_max": LR, "lr_min": 0.0, "rho_max": RHO_MAX, "rho_min": RHO_MIN, **kwargs}
    with pytest.raises(ValueError, match=message):
        st.ProportionalRho(opt, **arguments)


def test_rho_scheduler_rejects_optimizers_it_cannot_drive():
    params = list(_mlp().parameters())
    with pytest.raises(ValueError, match="has no 'rho'"):
        st.ProportionalRho(torch.optim.SGD(params, lr=LR), LR, 0.0, RHO_MAX, RHO_MIN)
    gsam = st.GSAM(params, torch.optim.SGD, lr=LR, rho_schedule=lambda t: 0.05)
    with pytest.raises(ValueError, match="rho_schedule"):
        st.ProportionalRho(gsam, LR, 0.0, RHO_MAX, RHO_MIN)


def test_a_learning_rate_below_lr_min_needs_clamp():
    """Below lr_min the line goes on down: a warm-up from lr 0 with rho_min = 0 gives ρ < 0."""
    opt = st.SAM(_mlp().parameters(), torch.optim.SGD, lr=0.001)
    with pytest.raises(ValueError, match="below lr_min"):
        st.ProportionalRho(opt, LR, 0.01, RHO_MAX, 0.0)
    st.ProportionalRho(opt, LR, 0.01, RHO_MAX, 0.0, clamp=True)
    assert opt.param_groups[0]["rho"] == 0.0


def test_rho_scheduler_agrees_with_pytorch_optimizer_gsam():
    po = pytest.importorskip("pytorch_optimizer")
    from pytorch_optimizer.lr_scheduler.proportion import ProportionScheduler

    steps, alpha = 12, 0.4
    ours, theirs = _mlp(), _mlp()
    opt = st.GSAM(ours.parameters(), torch.optim.SGD, alpha=alpha, lr=LR, momentum=0.9)
    lr_ours = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=steps)
    rho_ours = st.ProportionalRho(opt, LR, 0.0, RHO_MAX, RHO_MIN)

    base = torch.optim.SGD(theirs.parameters(), lr=LR, momentum=0.9)
    lr_theirs = torch.optim.lr_scheduler.OneCycleLR(base, max_lr=LR, total_steps=steps)
    po_rho = ProportionScheduler(
        lr_theirs, max_lr=LR, min_lr=0.0, max_value=RHO_MAX, min_value=RHO_MIN
    )
    po_gsam = po.GSAM(theirs.parameters(), base, theirs, po_rho, alpha=alpha)
    for step in range(steps):
        x, y = _batch(step)
        _sam_step(ours, opt, x, y)
        po_gsam.set_closure(F.cross_entropy, x, y)
        po_gsam.step()
        po_gsam.zero_grad()
        lr_ours.step()
        rho_ours.step()
        lr_theirs.step()
        po_gsam.update_rho_t()
        assert rho_ours.get_last_rho()[0] == pytest.approx(po_gsam.rho_t, rel=1e-12)
    # pytorch-optimizer takes the global gradient norm in float32 (get_global_gradient_norm),
    # so its float64 steps carry relative errors of float32's epsilon, ~1e-7, in ε.
    torch.testing.assert_close(_flat(ours), _flat(theirs), rtol=1e-6, atol=1e-8)


# -- gradient centralization ----------------------------------------------------------------

SHAPES = ((3, 4), (3,), (2, 3, 2, 2), (5,))


def _tensors(seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=gen, dtype=torch.float64) for shape in SHAPES]


def test_centralize_matches_the_numpy_reference():
    from sampy.optim.gc import centralize as numpy_centralize
    from sampy.optim.transforms import Partition

    tensors = _tensors()
    flat = torch.cat([t.reshape(-1) for t in tensors]).numpy()
    expected = numpy_centralize(flat, Partition(SHAPES))
    got = torch.cat([t.reshape(-1) for t in gc.centralize(tensors)]).numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-15)
    assert gc.centralize(tensors)[1] is tensors[1]  # 1-D tensors are left as they are
    in_place = [t.clone() for t in tensors]
    gc.centralize_([*in_place, None])
    for a, b in zip(in_place, gc.centralize(tensors), strict=True):
        assert torch.equal(a, b)


def _quadratic(seed: int = 3):
    """L(W) = ½ Σ (A ⊙ W)², gradient A² ⊙ W: a two-tensor problem with a 2-D weight."""
    gen = torch.Generator().manual_seed(seed)
    w = [
        torch.randn(3, 4, generator=gen, dtype=torch.float64),
        torch.randn(3, generator=gen, dtype=torch.float64),
    ]
    a = [
        torch.rand(3, 4, generator=gen, dtype=torch.float64) + 0.5,
        torch.rand(3, generator=gen, dtype=torch.float64) + 0.5,
    ]
    params = [torch.nn.Parameter(x.clone()) for x in w]

    def backward():
        sum(0.5 * (ai * p).square().sum() for ai, p in zip(a, params, strict=True)).backward()

    def grad(point):
        return [ai.square() * x for ai, x in zip(a, point, strict=True)]

    return w, params, backward, grad


def _norm(vs) -> torch.Tensor:
    return torch.sqrt(sum(v.square().sum() for v in vs))


@pytest.mark.parametrize("gc_ascent", ["kozistr", "gcsam"])
def test_centralized_ascent_against_a_hand_computation(gc_ascent):
    from sampy.torch.sam import NormBallAscent
    from sampy.torch.sharpness_aware import PerturbedGradient

    rho = 0.3
    w, params, backward, grad = _quadratic()
    opt = st.SharpnessAware(
        params,
        torch.optim.SGD,
        lr=1.0,
        ascent=gc.centralized_ascent(NormBallAscent(perturb_eps=0.0), gc_ascent),
        descent=PerturbedGradient(),
        group_hyperparameters={"rho": rho},
    )
    backward()
    opt.first_step(zero_grad=True)
    g = grad(w)
    gc_g = gc.centralize(g)
    scale = rho / (_norm(g) if gc_ascent == "kozistr" else _norm(gc_g))
    for p, w0, x in zip(params, w, gc_g, strict=True):
        torch.testing.assert_close(p.detach() - w0, scale * x, rtol=1e-12, atol=1e-15)
    assert gc.centralized_ascent(NormBallAscent(), "off").__class__ is NormBallAscent
    with pytest.raises(ValueError, match="gc_ascent must be one of"):
        gc.centralized_ascent(NormBallAscent(), "kozister")


def test_centralize_direction_moves_along_gc_of_d():
    rho = 0.3
    w, params, backward, grad = _quadratic()
    opt = st.SAM(params, torch.optim.SGD, rho=rho, lr=1.0, perturb_eps=0.0)
    handle = gc.centralize_direction(opt)
    backward()
    opt.first_step(zero_grad=True)
    backward()
    opt.second_step(zero_grad=True)
    g = grad(w)
    eps = [rho * x / _norm(g) for x in g]
    d = gc.centralize(grad([a + b for a, b in zip(w, eps, strict=True)]))
    for p, w0, x in zip(params, w, d, strict=True):
        torch.testing.assert_close(p.detach(), w0 - x, rtol=1e-12, atol=1e-15)
    handle.remove()
    assert not opt.base_optimizer._optimizer_step_pre_hooks


# -- clipping placements --------------------------------------------------------------------

MAX_NORM = 0.02


def _clip(vs):
    """torch's clip_grad_norm_: v · min(1, c/(‖v‖ + 1e-6))."""
    factor = min(1.0, MAX_NORM / (_norm(vs).item() + 1e-6))
    return [factor * v for v in vs]


@pytest.mark.parametrize("placement", ["unclipped", *clipping.PLACEMENTS])
def test_gsam_placements_against_a_hand_computation(placement):
    """GSAM (d = h − α g⊥) with SGD(lr=1): each placement clips its own gradient."""
    rho, alpha, eps = 0.3, 0.4, 1e-12
    w, params, backward, grad = _quadratic()
    opt = st.GSAM(params, torch.optim.SGD, rho=rho, alpha=alpha, lr=1.0, perturb_eps=eps)
    if placement == "direction":
        clipping.clip_direction(opt, MAX_NORM)
    backward()
    if placement == "clean":
        torch.nn.utils.clip_grad_norm_(params, MAX_NORM)
    opt.first_step(zero_grad=True)
    backward()
    if placement == "perturbed":
        torch.nn.utils.clip_grad_norm_(params, MAX_NORM)
    opt.second_step(zero_grad=True)

    g = grad(w)
    if placement == "clean":
        g = _clip(g)
    h = grad([x + rho * gx / (_norm(g) + eps) for x, gx in zip(w, g, strict=True)])
    if placement == "perturbed":
        h = _clip(h)
    cos = sum((a * b).sum() for a, b in zip(g, h, strict=True)) / (_norm(h) * _norm(g) + eps)
    g_orth = [a - cos * _norm(g) * b / (_norm(h) + eps) for a, b in zip(g, h, strict=True)]
    d = [b - alpha * a for a, b in zip(g_orth, h, strict=True)]
    if placement == "direction":
        d = _clip(d)
    for p, w0, x in zip(params, w, d, strict=True):
        torch.testing.assert_close(p.detach(), w0 - x, rtol=1e-12, atol=1e-15)


def test_clip_direction_acts_the_same_in_the_closure_step():
    results = []
    for shape in ("two calls", "closure"):
        model = _mlp()
        opt = st.WSAM(model.parameters(), torch.optim.SGD, lr=0.1, momentum=0.9)
        clipping.clip_direction(opt, MAX_NORM)
        for step in range(3):
            x, y = _batch(step)
            if shape == "closure":
                opt.step(lambda m=model, x=x, y=y: F.cross_entropy(m(x), y).backward())
            else:
                _sam_step(model, opt, x, y)
        results.append(_flat(model))
    torch.testing.assert_close(results[0], results[1], rtol=0, atol=1e-15)


# SAMAnatomy takes three gradients per step (first_step, second_ascent_step, second_step).
NOT_TWO_CALL = {"SAMAnatomy"}


def _two_call_variants():
    import sampy.registry

    rows = []
    for row in sampy.registry.variants():
        twin = row.twin()
        if (
            twin is not None
            and issubclass(twin, st.SharpnessAware)
            and row.takes_base
            and not row.needs_examples
            and row.name not in NOT_TWO_CALL
        ):
            rows.append(row)
    return rows


def _clipped_run(row, placement: str) -> torch.Tensor:
    model = _mlp()
    # A large ρ flips gradient signs, so the agreements' masks drop coordinates.
    kwargs = {"lr": 0.1, "momentum": 0.9, "rho": 0.5}
    if row.name == "LookSAM":
        kwargs["k"] = 2  # a SAM step, then a reuse step
    if row.name == "ClipSAM":
        kwargs["condition"] = 1.0  # the ratio clip binds where |g̃| > |g|
    opt = row.make_twin(model.parameters(), **kwargs)
    if placement == "direction":
        clipping.clip_direction(opt, MAX_NORM)
    for step in range(3):  # variants with memory (FriendlySAM, VaSSO) differ from step 2 on
        x, y = _batch(step)
        F.cross_entropy(model(x), y).backward()
        if placement == "clean":
            torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_NORM)
        if getattr(opt, "is_sam_step", True):
            opt.first_step(zero_grad=True)
            F.cross_entropy(model(x), y).backward()
            if placement == "perturbed":
                torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_NORM)
        opt.second_step(zero_grad=True)
    return _flat(model)


def test_coinciding_placements_table_is_what_the_steps_do():
    rows = _two_call_variants()
    assert set(clipping.COINCIDING_PLACEMENTS) == {row.name for row in rows}
    placements = ("unclipped", *clipping.PLACEMENTS)
    for row in rows:
        weights = {placement: _clipped_run(row, placement) for placement in placements}
        classes: list[list[str]] = []
        for placement in placements:
            for group in classes:
                if torch.allclose(weights[group[0]], weights[placement], rtol=1e-9, atol=1e-12):
                    group.append(placement)
                    break
            else:
                classes.append([placement])
        found = tuple(tuple(group) for group in classes if len(group) > 1)
        assert found == clipping.COINCIDING_PLACEMENTS[row.name], row.name
        # clipping binds: every placement outside a group changes the step
        assert len(classes) >= 2, row.name


def test_clip_direction_without_a_base_clips_the_one_gradient_and_validates():
    w = torch.nn.Parameter(torch.tensor([3.0, 4.0], dtype=torch.float64))
    opt = st.MSAM([w], lr=1.0, momentum=0.0, weight_decay=0.0, rho=0.0)
    clipping.clip_direction(opt, 0.5)
    (10 * w.square().sum()).backward()
    opt.step()
    assert (w.detach() - torch.tensor([3.0, 4.0], dtype=torch.float64)).norm().item() == (
        pytest.approx(0.5, rel=1e-5)
    )
    with pytest.raises(ValueError, match="max_norm must be a number > 0"):
        clipping.clip_direction(opt, 0.0)
    with pytest.raises(ValueError, match=r"must be a torch\.optim\.Optimizer"):
        clipping.clip_direction(object(), 1.0)


# -- weight EMA ------------------------------------------------------------------------------


def _train(model, opt, ema, steps: int = 4, record=None):
    for step in range(steps):
        x, y = _batch(step)
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        ema.update()
        if record is not None:
            record()


def _hand_ema(points, mu):
    average = points[0].clone()
    for w in points[1:]:
        average = mu * average + (1 - mu) * w
    return average


def test_ema_of_msam_averages_w_not_the_ascent_point():
    mu = 0.8
    model = _mlp()
    opt = st.MSAM(model.parameters(), lr=0.05, rho=0.5)
    ema_model = st.WithEMA(model, opt, ema_momentum=mu)
    plain = torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(mu)
    )
    at_w, at_ascent = [], []

    def record():
        at_ascent.append(_flat(model))
        opt.move_from_ascent()
        at_w.append(_flat(model))
        opt.move_to_ascent()
        plain.update_parameters(model)  # what an EMA without unperturbed() averages

    _train(model, opt, ema_model, record=record)
    torch.testing.assert_close(_flat(ema_model.module), _hand_ema(at_w, mu), rtol=0, atol=1e-14)
    torch.testing.assert_close(_flat(plain.module), _hand_ema(at_ascent, mu), rtol=0, atol=1e-14)
    assert (_flat(ema_model.module) - _flat(plain.module)).norm() > 1e-3
    assert all(group["at_ascent"] for group in opt.param_groups)  # left where step expects


def test_ema_of_schedule_free_averages_x_and_keeps_train_mode():
    mu = 0.8
    model = _mlp()
    opt = st.ScheduleFreeAdamW(model.parameters(), lr=0.01)
    opt.train()
    ema_model = st.WithEMA(model, opt, ema_momentum=mu)
    at_x = []

    def record():
        opt.eval()
        at_x.append(_flat(model))
        opt.train()

    _train(model, opt, ema_model, record=record)
    torch.testing.assert_close(_flat(ema_model.module), _hand_ema(at_x, mu), rtol=0, atol=1e-14)
    assert all(group["train_mode"] for group in opt.param_groups)
    with pytest.raises(ValueError, match="ema_overwrite_frequency cannot act"):
        st.WithEMA(model, opt, ema_overwrite_frequency=2)


def test_ema_overwrite_puts_the_average_in_w_and_the_twin_back_at_its_ascent_point():
    model = _mlp()
    opt = st.MSAM(model.parameters(), lr=0.05, rho=0.5)
    ema_model = st.WithEMA(model, opt, ema_momentum=0.5, ema_overwrite_frequency=2)
    _train(model, opt, ema_model, steps=2)
    opt.move_from_ascent()
    # w = (avg − s·u) + s·u: one rounding of the move to the ascent point and back.
    torch.testing.assert_close(_flat(model), _flat(ema_model.module), rtol=0, atol=1e-15)
    opt.move_to_ascent()
    assert not torch.equal(_flat(model), _flat(ema_model.module))


def test_ema_state_round_trips_and_refuses_a_perturbed_sam(tmp_path):
    model = _mlp()
    opt = st.SAM(model.parameters(), torch.optim.SGD, lr=0.05)
    ema_model = st.WithEMA(model, opt, ema_momentum=0.7)
    for step in range(2):
        x, y = _batch(step)
        opt.step(lambda x=x, y=y: F.cross_entropy(model(x), y).backward())
        ema_model.update()
    torch.save(ema_model.state_dict(), tmp_path / "ema.pt")
    fresh = st.WithEMA(_mlp(1), opt, ema_momentum=0.7)
    fresh.load_state_dict(torch.load(tmp_path / "ema.pt", weights_only=True))
    assert fresh.updates == 2
    assert torch.equal(_flat(fresh.module), _flat(ema_model.module))
    x, y = _batch(9)
    F.cross_entropy(model(x), y).backward()
    opt.first_step(zero_grad=True)
    with pytest.raises(RuntimeError, match="between first_step"):
        ema_model.update()
    opt.restore()
    with pytest.raises(ValueError, match="ema_momentum"):
        st.WithEMA(model, opt, ema_momentum=1.5)


# -- the docstrings' examples ----------------------------------------------------------------

DOCUMENTED_MODULES = (
    "sampy.torch.batchnorm",
    "sampy.torch.clipping",
    "sampy.torch.ema",
    "sampy.torch.gc",
    "sampy.torch.recipes",
    "sampy.torch.rho_scheduler",
)


@pytest.mark.parametrize("name", DOCUMENTED_MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    examples = 0
    for test in finder.find(module, name, globs={}):
        examples += len(test.examples)
        runner.run(test)
    assert examples > 0, f"{name} has no runnable example"
    assert runner.failures == 0, f"{runner.failures} example(s) of {name} failed (see output)"


@pytest.mark.parametrize("name", DOCUMENTED_MODULES)
def test_every_public_function_shows_an_example(name):
    module = importlib.import_module(name)
    missing = [
        public
        for public in module.__all__
        if ">>>" not in (getattr(module, public).__doc__ or "")
        and not isinstance(getattr(module, public), tuple | dict)  # data, not functions
        and public != "RunningStatsFromFirstPass"  # returned by running_stats_from_first_pass
    ]
    assert not missing, f"{name}: no example in the docstring of {missing}"
