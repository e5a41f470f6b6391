"""The template family's twins: their manual API, phases out of order, and their peers.

The contracts every twin keeps run once for every registry row in the registry-driven suites:
the trajectory against the reference (``test_torch_twins_from_registry.py``), checkpoints,
several tensors against the flat reference, host reads and skipped parameters
(``test_torch_contracts.py``), signatures and bad input (``test_torch_registry.py``). Here,
generated from ``ROWS`` (one row per reference class, torch class and hyperparameters): the two- and
three-phase manual API and CUDA, and the comparisons with pytorch-optimizer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from twin_helpers import (  # noqa: E402
    STEPS,
    counting_closure,
    data,
    decaying_rho,
    flat,
    mlp,
    two_groups,
)

import sampy  # noqa: E402
import sampy.torch as st  # noqa: E402
from sampy import optim as ref  # noqa: E402
from sampy.torch import (  # noqa: E402
    clampsam,
    fisher_sam,
    friendly_sam,
    gsam,
    looksam,
    samanatomy,
    same,
    swaps,
    usam,
    vasso,
    wsam,
)
from sampy.torch.sharpness_aware import SharpnessAware  # noqa: E402


@dataclass(frozen=True)
class Row:
    """A reference class, its torch twin and the hyperparameters the tests run them with."""

    id: str
    reference: type
    twin: type
    hyper: dict[str, Any] = field(default_factory=dict)


ROWS = [
    Row("GSAM", ref.GSAM, gsam.GSAM, {"alpha": 0.4}),
    Row("GSAM-schedule", ref.GSAM, gsam.GSAM, {"alpha": 0.2, "rho_schedule": decaying_rho}),
    Row("GSAM-asam", ref.GSAM, gsam.GSAM, {"alpha": 0.4, "adaptive": True, "eta": 0.01}),
    # Decoupled WSAM moves by lr·α·(g̃ − g) ≈ lr·α·ρ·H outside the base optimizer: with
    # Rosenbrock's H ~ 1e3 and γ = 0.9 (α = 9) that dwarfs Adam's steps and the run turns
    # chaotic (the twins separate from 1e-12 by ×10 every few steps). ρ = 0.02, γ = 0.6 is tame.
    Row("WSAM", ref.WSAM, wsam.WSAM, {"rho": 0.02, "gamma": 0.6}),
    Row(
        "WSAM-coupled-clip",
        ref.WSAM,
        wsam.WSAM,
        {"decouple": False, "gamma": 0.7, "max_norm": 1.0},
    ),
    Row(
        "WSAM-asam-clip",
        ref.WSAM,
        wsam.WSAM,
        {"rho": 0.02, "gamma": 0.6, "adaptive": True, "max_norm": 5.0},
    ),
    # ε = ρ g carries the gradient's units: ρ = 0.05 throws Rosenbrock's |g| ≈ 500 far away.
    Row("USAM", ref.USAM, usam.USAM, {"rho": 1e-3}),
    Row("FriendlySAM", ref.FriendlySAM, friendly_sam.FriendlySAM),
    Row(
        "FriendlySAM-paper",
        ref.FriendlySAM,
        friendly_sam.FriendlySAM,
        {"momentum_order": "paper", "sigma": 0.5},
    ),
    Row("VaSSO", ref.VaSSO, vasso.VaSSO),
    Row("FisherSAM", ref.FisherSAM, fisher_sam.FisherSAM),
    Row("LookSAM", ref.LookSAM, looksam.LookSAM, {"rho": 0.05, "k": 3}),
    Row("SAME", ref.SAME, same.SAME),
    Row("CustomSAME", ref.CustomSAME, same.CustomSAME),
    Row("SAMCkpt", ref.SAMCkpt, same.SAMCkpt, {"checkpoints": (1, 2)}),
    Row("SAMDirection", ref.SAMDirection, swaps.SAMDirection),
    Row("SAMMagnitude", ref.SAMMagnitude, swaps.SAMMagnitude),
    Row("SAMAgree", ref.SAMAgree, swaps.SAMAgree, {"fill": "other"}),
    Row("SGDAgree", ref.SGDAgree, swaps.SGDAgree),
    Row("ClampSAM", ref.ClampSAM, clampsam.ClampSAM),
    Row("ClampSAM-renorm", ref.ClampSAM, clampsam.ClampSAM, {"renorm": True}),
    Row("ClipSAM", ref.ClipSAM, clampsam.ClipSAM, {"condition": 1.5}),
    Row("SAMAnatomy", ref.SAMAnatomy, samanatomy.SAMAnatomy),
]
IDS = [row.id for row in ROWS]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


_backward = counting_closure


# -- small models: several tensors in two parameter groups ------------------------------------


_mlp = mlp
_groups = two_groups
_flat = flat
INPUTS, TARGETS = data()


def _mlp_loss(model: torch.nn.Module) -> Callable[[], torch.Tensor]:
    return lambda: torch.nn.functional.cross_entropy(model(INPUTS), TARGETS)


# -- the step by hand ------------------------------------------------------------------------


def _manual_step(opt: SharpnessAware, backward: Callable[[], None]) -> None:
    """One step through the public two- (three-) phase API, as a training loop writes it."""
    backward()
    if isinstance(opt, looksam.LookSAM):
        if opt.is_sam_step:
            opt.first_step(zero_grad=True)
            backward()
    elif isinstance(opt, samanatomy.SAMAnatomy):
        opt.first_step(zero_grad=True)
        backward()
        opt.second_ascent_step(zero_grad=True)
        backward()
    else:
        opt.first_step(zero_grad=True)
        backward()
    opt.second_step(zero_grad=True)


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_manual_steps_equal_step_with_closure(row):
    models = [_mlp(), _mlp()]
    opts = [row.twin(_groups(m), torch.optim.SGD, **row.hyper, lr=0.1) for m in models]
    closure = _backward(opts[0], _mlp_loss(models[0]))
    for _ in range(5):
        opts[0].step(closure)
        _manual_step(opts[1], lambda: _mlp_loss(models[1])().backward())
    assert torch.equal(_flat(models[0]), _flat(models[1]))


def test_looksam_also_accepts_the_pytorch_optimizer_calling_pattern():
    """first_step, backward, second_step on every step: a reuse step recomputes g at w."""
    models = [_mlp(), _mlp()]
    opts = [looksam.LookSAM(_groups(m), rho=0.05, k=3, lr=0.1) for m in models]
    closure = _backward(opts[0], _mlp_loss(models[0]))
    for _ in range(7):
        opts[0].step(closure)
        _mlp_loss(models[1])().backward()
        opts[1].first_step(zero_grad=True)
        _mlp_loss(models[1])().backward()
        opts[1].second_step(zero_grad=True)
    assert torch.equal(_flat(models[0]), _flat(models[1]))
    assert closure.calls == 7 + 3  # SAM steps at t = 0, 3, 6
    # The step counter is saved: after 7 steps (t = 7, k = 3) the next step reuses g_v, also
    # for a fresh optimizer that loads the state (a fresh one alone would take a SAM step).
    resumed = looksam.LookSAM(_groups(_mlp()), rho=0.05, k=3, lr=0.1)
    assert resumed.is_sam_step
    resumed.load_state_dict(opts[0].state_dict())
    assert not opts[0].is_sam_step and not resumed.is_sam_step


# -- GSAM's schedule, SAMAnatomy's phases (a missing closure: test_torch_contracts.py) -------


def test_gsam_rejects_a_schedule_that_is_not_callable():
    x = torch.ones(2, requires_grad=True)
    with pytest.raises(ValueError, match="rho_schedule"):
        gsam.GSAM([x], rho_schedule=0.05, lr=0.1)


def test_samanatomy_phases_must_come_in_order():
    x = torch.ones(2, dtype=torch.float64, requires_grad=True)
    opt = samanatomy.SAMAnatomy([x], lr=0.1)
    with pytest.raises(RuntimeError, match="first_step"):
        opt.second_ascent_step()
    (x**2).sum().backward()
    opt.first_step(zero_grad=True)
    (x**2).sum().backward()
    with pytest.raises(RuntimeError, match="second_ascent_step"):
        opt.second_step()


# -- peers: pytorch-optimizer, where it implements the same algorithm -------------------------
#
# pytorch-optimizer (4.1.0) computes the global gradient norm of ε in float32 even for float64
# parameters (measured). The equality tests reproduce the peer in float64 by swapping its
# norm helper for a float64 one (``_float64_peer``); ``test_peers_as_shipped_...`` bounds what
# the float32 norm alone changes.

po = pytest.importorskip("pytorch_optimizer")
import pytorch_optimizer.optimizer.sam as po_sam  # noqa: E402
from pytorch_optimizer.lr_scheduler.proportion import ProportionScheduler  # noqa: E402

PEER_X0 = (-1.0, 1.5)
PEER_BASES = {
    "sgd-momentum": (torch.optim.SGD, {"lr": 1e-3, "momentum": 0.5}),
    "adam": (torch.optim.Adam, {"lr": 1e-3}),
}


def _float64_norm(param_groups, device=None, *, weight_adaptive=False):
    """pytorch-optimizer's ``get_global_gradient_norm`` (squared, shape (1,)) in float64."""
    grads = []
    for group in param_groups:
        adaptive = weight_adaptive and group.get("adaptive", False)
        grads += [
            p.grad * p.abs() if adaptive else p.grad for p in group["params"] if p.grad is not None
        ]
    return torch.stack([g.norm() for g in grads]).square().sum().reshape(1)


@pytest.fixture
def _float64_peer(monkeypatch):
    monkeypatch.setattr(po_sam, "get_global_gradient_norm", _float64_norm)


class _Holder(torch.nn.Module):
    """The model pytorch-optimizer's GSAM and WSAM want: it holds the point, returns it."""

    def __init__(self, x0) -> None:
        super().__init__()
        self.x = torch.nn.Parameter(torch.tensor(x0, dtype=torch.float64))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.x


ROSENBROCK = st.as_torch_loss(sampy.functions.get("rosenbrock"))


def _twin_run(cls, steps, base_cls, base_kwargs, **hyper) -> np.ndarray:
    model = _Holder(PEER_X0)
    opt = cls(model.parameters(), base_cls, **hyper, **base_kwargs)
    closure = _backward(opt, lambda: ROSENBROCK(model.x))
    xs = []
    for _ in range(steps):
        opt.step(closure)
        xs.append(model.x.detach().numpy().copy())
    return np.array(xs)


def _peer_run(cls, steps, base_cls, base_kwargs, **hyper) -> np.ndarray:
    """pytorch-optimizer's SAM-style classes: gradient at w first, then ``step(closure)``."""
    model = _Holder(PEER_X0)
    takes_model = cls is po.WSAM
    args = (model, model.parameters()) if takes_model else (model.parameters(),)
    opt = cls(*args, base_cls, **hyper, **base_kwargs)
    closure = _backward(opt, lambda: ROSENBROCK(model.x))
    xs = []
    for _ in range(steps):
        if not takes_model:  # WSAM's step evaluates the first gradient itself
            closure()
        opt.step(closure)
        xs.append(model.x.detach().numpy().copy())
    return np.array(xs)


def _peer_gsam_run(steps, base_cls, base_kwargs, alpha, rho) -> np.ndarray:
    """pytorch-optimizer's GSAM, driven through ``set_closure()``/``step()`` with a model."""
    model = _Holder(PEER_X0)
    base = base_cls(model.parameters(), **base_kwargs)
    lr = base_kwargs["lr"]
    constant = torch.optim.lr_scheduler.LambdaLR(base, lambda t: 1.0)
    rho_scheduler = ProportionScheduler(constant, lr, lr, max_value=rho, min_value=rho)
    opt = po.GSAM(model.parameters(), base, model, rho_scheduler, alpha=alpha)
    opt.set_closure(lambda outputs, targets: ROSENBROCK(outputs), torch.zeros(1), torch.zeros(1))
    xs = []
    for _ in range(steps):
        opt.step()
        xs.append(model.x.detach().numpy().copy())
    return np.array(xs)


@pytest.mark.usefixtures("_float64_peer")
@pytest.mark.parametrize("adaptive", [False, True], ids=["SAM", "ASAM"])
@pytest.mark.parametrize("base", sorted(PEER_BASES))
def test_sam_and_asam_match_pytorch_optimizer(base, adaptive):
    """pytorch-optimizer's SAM: ε = ρ T²g/(‖Tg‖ + 1e-12), T = |w| (ASAM) or 1; ours with η = 0."""
    base_cls, kwargs = PEER_BASES[base]
    hyper = {"rho": 0.05, "adaptive": adaptive}
    ours = _twin_run(st.SAM, STEPS, base_cls, kwargs, **hyper)
    theirs = _peer_run(po.SAM, STEPS, base_cls, kwargs, **hyper)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
    assert np.abs(ours[-1] - np.array(PEER_X0)).max() > 1e-2  # the runs went somewhere
    models = [_mlp(), _mlp()]
    for model, cls in zip(models, (st.SAM, po.SAM), strict=True):
        opt = cls(model.parameters(), torch.optim.SGD, **hyper, lr=0.1, momentum=0.9)
        closure = _backward(opt, _mlp_loss(model))
        for _ in range(6):
            if cls is po.SAM:
                closure()
            opt.step(closure)
    np.testing.assert_allclose(_flat(models[0]), _flat(models[1]), rtol=0, atol=1e-13)


@pytest.mark.usefixtures("_float64_peer")
@pytest.mark.parametrize("base", sorted(PEER_BASES))
def test_gsam_matches_pytorch_optimizer(base):
    base_cls, kwargs = PEER_BASES[base]
    ours = _twin_run(gsam.GSAM, STEPS, base_cls, kwargs, rho=0.05, alpha=0.4)
    theirs = _peer_gsam_run(STEPS, base_cls, kwargs, alpha=0.4, rho=0.05)
    # Theirs un-perturbs by subtracting ε (w + ε − ε ≠ w in the last bit); ours copies w back.
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)


@pytest.mark.usefixtures("_float64_peer")
@pytest.mark.parametrize("decouple", [True, False])
@pytest.mark.parametrize("base", sorted(PEER_BASES))
def test_wsam_matches_pytorch_optimizer(base, decouple):
    base_cls, kwargs = PEER_BASES[base]
    hyper = {"rho": 0.02, "gamma": 0.6, "decouple": decouple}  # tame: see the WSAM row
    ours = _twin_run(wsam.WSAM, STEPS, base_cls, kwargs, **hyper)
    theirs = _peer_run(po.WSAM, STEPS, base_cls, kwargs, **hyper)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)


@pytest.mark.usefixtures("_float64_peer")
def test_wsam_max_norm_differs_from_pytorch_optimizer_as_documented():
    """The official WSAM code clips g and g̃; pytorch-optimizer clips only g̃."""
    base_cls, kwargs = PEER_BASES["sgd-momentum"]
    hyper = {"rho": 0.05, "gamma": 0.7, "max_norm": 1.0}
    ours = _twin_run(wsam.WSAM, 1, base_cls, kwargs, **hyper)
    theirs = _peer_run(po.WSAM, 1, base_cls, kwargs, **hyper)
    unclipped = _twin_run(wsam.WSAM, 1, base_cls, kwargs, **{**hyper, "max_norm": None})
    assert np.abs(ours - theirs).max() > 1e-3
    assert np.abs(theirs - unclipped).max() > 1e-3  # they do clip something: g̃


class _ModifiedEMA:
    """The modified-EMA F-SAM ascent: ``d = g − σ m``, then ``m ← λ m + (1 − λ) d`` (EMA of d)."""

    def __init__(self, rho: float, sigma: float, lmbda: float) -> None:
        self.rho, self.sigma, self.lmbda = rho, sigma, lmbda

    def init(self, x):
        return None

    def __call__(self, x, g, m):
        if m is None:
            d, m = g, g.copy()
        else:
            d = g - self.sigma * m
            m = self.lmbda * m + (1.0 - self.lmbda) * d
        return ref.dual_direction(d, 2.0, self.rho, 1e-12), m


@pytest.mark.usefixtures("_float64_peer")
@pytest.mark.parametrize(("sigma", "lmbda"), [(1.0, 0.9), (0.5, 0.3)])
def test_friendly_sam_matches_pytorch_optimizer(sigma, lmbda):
    """pytorch-optimizer 4.1.0 keeps the EMA of the raw gradient, as the official code does.

    It was once said to average the modified ``d = g − σ m`` instead; that rule (built
    below on the NumPy reference) departs from ours after step 2, so the equality over 200 steps
    shows 4.1.0 no longer does it (both its foreach and per-tensor paths lerp toward raw g).
    """
    base_cls, kwargs = PEER_BASES["sgd-momentum"]
    hyper = {"rho": 0.05, "sigma": sigma, "lmbda": lmbda}
    ours = _twin_run(friendly_sam.FriendlySAM, STEPS, base_cls, kwargs, **hyper)
    theirs = _peer_run(po.FriendlySAM, STEPS, base_cls, kwargs, **hyper)
    np.testing.assert_allclose(ours[:1], theirs[:1], rtol=0, atol=1e-15)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)

    modified = sampy.run(
        ref.SharpnessAware(ref.SGD(**kwargs), _ModifiedEMA(**hyper), ref.PerturbedGradient()),
        sampy.functions.get("rosenbrock"),
        np.array(PEER_X0),
        3,
    ).xs[1:]
    assert np.abs(modified[:2] - ours[:2]).max() < 1e-12  # steps 1 and 2 agree
    assert np.abs(modified[2] - ours[2]).max() > 1e-9  # step 3 sees the other EMA


@pytest.mark.usefixtures("_float64_peer")
@pytest.mark.parametrize("base", sorted(PEER_BASES))
def test_looksam_with_k_1_matches_pytorch_optimizer_on_one_and_on_many_tensors(base):
    base_cls, kwargs = PEER_BASES[base]
    hyper = {"rho": 0.05, "k": 1}
    ours = _twin_run(looksam.LookSAM, STEPS, base_cls, kwargs, **hyper)
    theirs = _peer_run(po.LookSAM, STEPS, base_cls, kwargs, **hyper)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
    # Every step is a SAM step, so their per-tensor projection is never used.
    assert np.array_equal(*_looksam_on_the_mlp(k=1))


def _looksam_on_the_mlp(k: int, steps: int = 6) -> tuple[np.ndarray, np.ndarray]:
    runs = []
    for cls in (looksam.LookSAM, po.LookSAM):
        model = _mlp()
        opt = cls(model.parameters(), torch.optim.SGD, rho=0.1, k=k, lr=0.1, momentum=0.9)
        closure = _backward(opt, _mlp_loss(model))
        for _ in range(steps):
            if cls is po.LookSAM:
                closure()
            opt.step(closure)
        runs.append(_flat(model).numpy())
    return runs[0], runs[1]


@pytest.mark.usefixtures("_float64_peer")
def test_looksam_with_k_above_1_differs_from_pytorch_optimizer_only_across_tensors():
    """pytorch-optimizer projects g_s and rescales g_v per tensor (sampy: globally).

    On one tensor the per-tensor and the global projection coincide (agreement to rounding, which
    the reuse scale ‖g‖/‖g_v‖ amplifies). The stale-weight restore on reuse steps found in other
    LookSAM ports (rollovd/LookSAM) is not in 4.1.0 (it pops ``old_p`` when it restores), or the
    one-tensor runs would differ.
    """
    base_cls, kwargs = PEER_BASES["sgd-momentum"]
    hyper = {"rho": 0.05, "k": 3}
    ours = _twin_run(looksam.LookSAM, STEPS, base_cls, kwargs, **hyper)
    theirs = _peer_run(po.LookSAM, STEPS, base_cls, kwargs, **hyper)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-10)
    ours, theirs = _looksam_on_the_mlp(k=3)
    assert np.abs(ours - theirs).max() > 1e-3


def test_peers_as_shipped_differ_only_by_their_float32_norm():
    """Without the float64 swap the peers drift from the twins by float32 rounding of ‖g‖."""
    base_cls, kwargs = PEER_BASES["sgd-momentum"]
    runs = {
        "GSAM": (
            _twin_run(gsam.GSAM, 10, base_cls, kwargs, rho=0.05, alpha=0.4),
            _peer_gsam_run(10, base_cls, kwargs, alpha=0.4, rho=0.05),
        ),
        "WSAM": (
            _twin_run(wsam.WSAM, 10, base_cls, kwargs, rho=0.05),
            _peer_run(po.WSAM, 10, base_cls, kwargs, rho=0.05),
        ),
        "FriendlySAM": (
            _twin_run(friendly_sam.FriendlySAM, 10, base_cls, kwargs),
            _peer_run(po.FriendlySAM, 10, base_cls, kwargs),
        ),
        "LookSAM": (
            _twin_run(looksam.LookSAM, 10, base_cls, kwargs, rho=0.05, k=1),
            _peer_run(po.LookSAM, 10, base_cls, kwargs, rho=0.05, k=1),
        ),
    }
    for name, (ours, theirs) in runs.items():
        gap = np.abs(ours - theirs).max()
        assert 0 < gap < 1e-7, (name, gap)


# -- CUDA, where there is one ----------------------------------------------------------------


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_cuda_step_matches_cpu(row):
    results = []
    for device in ("cpu", "cuda"):
        model = _mlp().to(device)
        opt = row.twin(_groups(model), torch.optim.SGD, **row.hyper, lr=0.1, momentum=0.9)
        x, y = INPUTS.to(device), TARGETS.to(device)
        closure = _backward(opt, lambda model=model, x=x, y=y: _ce(model, x, y))
        for _ in range(5):
            opt.step(closure)
        results.append(_flat(model).cpu())
    torch.testing.assert_close(results[0], results[1], rtol=1e-9, atol=1e-9)


def _ce(model, x, y):
    return torch.nn.functional.cross_entropy(model(x), y)
