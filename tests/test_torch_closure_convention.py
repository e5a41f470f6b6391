"""The closure convention of ``step(closure)``: the loops of davda54/sam, pytorch-optimizer and
sampy run unchanged and give the two-call loop's weights bit for bit, at its cost.

davda54/sam's README computes ``∇L(w)`` before ``opt.step(closure)`` and its closure does not
zero the gradients; pytorch-optimizer's docstring calls the closure (which zeroes them) once
before ``opt.step(closure)``; sampy's loop calls only ``opt.step(closure)``. Gradients present
when ``step`` is entered are ``∇L(w)``: the closure then runs once, at ``w + ε``.
"""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")

from sampy.registry import variants  # noqa: E402
from sampy.torch import BSAM, SAM, SharpnessAware  # noqa: E402
from sampy.torch.imbsam import ImbSAM  # noqa: E402
from sampy.torch.looksam import LookSAM  # noqa: E402
from sampy.torch.msharpness import MSharpnessSAM, MultiStepSAM  # noqa: E402
from sampy.torch.samanatomy import SAMAnatomy  # noqa: E402
from sampy.torch.ssam import SSAMD  # noqa: E402

N, STEPS = 8, 7
ROWS = [row for row in variants() if row.twin() is not None]
# The twins whose closure computes the loss and calls backward() (a "plain" closure).
PLAIN = [
    row
    for row in ROWS
    if issubclass(row.twin(), SharpnessAware)
    and not row.needs_examples
    and not issubclass(row.twin(), SSAMD)
]
# The twins whose closure returns per-example losses (they compute the gradient at w).
EXAMPLES = [
    row for row in ROWS if (issubclass(row.twin(), (SharpnessAware, BSAM)) and row not in PLAIN)
]
KWARGS = {"LookSAM": {"k": 3}}


class Model:
    """A small regression network whose forward passes are counted."""

    def __init__(self):
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2)
        ).double()
        gen = torch.Generator().manual_seed(1)
        self.x = torch.randn(N, 3, dtype=torch.float64, generator=gen)
        self.y = torch.randn(N, 2, dtype=torch.float64, generator=gen)
        self.passes = 0

    def losses(self, indices=None):
        self.passes += 1
        x, y = (self.x, self.y) if indices is None else (self.x[indices], self.y[indices])
        return ((self.net(x) - y) ** 2).sum(dim=1)

    def loss(self):
        return self.losses().mean()

    def weights(self):
        return [p.detach().clone() for p in self.net.parameters()]


def _make(row, model):
    return row.make_twin(model.net.parameters(), lr=0.05, **KWARGS.get(row.name, {}))


def _two_call_step(opt, model: Model) -> None:
    """The reference: ``first_step``/``second_step`` by hand (davda54's two-call style)."""
    model.loss().backward()
    if isinstance(opt, LookSAM) and not opt.is_sam_step:
        opt.second_step(zero_grad=True)
        return
    opt.first_step(zero_grad=True)
    if isinstance(opt, SAMAnatomy):
        model.loss().backward()
        opt.second_ascent_step(zero_grad=True)
    if isinstance(opt, MultiStepSAM):
        for _ in range(opt.ascent_steps - 1):
            model.loss().backward()
            opt.ascent_step(zero_grad=True)
    model.loss().backward()
    opt.second_step(zero_grad=True)


def _davda54_step(opt, model: Model) -> None:
    # davda54/sam's README: the closure does not zero the gradients.
    def closure():
        loss = model.loss()
        loss.backward()
        return loss

    model.loss().backward()
    opt.step(closure)
    opt.zero_grad()


def _pytorch_optimizer_step(opt, model: Model) -> None:
    # pytorch-optimizer's SAM docstring: the closure zeroes them; it is called once before.
    def closure():
        opt.zero_grad()
        loss = model.loss()
        loss.backward()
        return loss

    closure()
    opt.step(closure)


def _sampy_step(opt, model: Model) -> None:
    def closure():
        opt.zero_grad()
        loss = model.loss()
        loss.backward()
        return loss

    opt.step(closure)


LOOPS = {
    "davda54": _davda54_step,
    "pytorch-optimizer": _pytorch_optimizer_step,
    "sampy": _sampy_step,
}


def _run(row, loop):
    model = Model()
    opt = _make(row, model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no loop may warn
        for _ in range(STEPS):
            loop(opt, model)
    return model.weights(), model.passes / STEPS, opt


@pytest.mark.parametrize("loop", list(LOOPS))
@pytest.mark.parametrize("row", PLAIN, ids=[row.name for row in PLAIN])
def test_each_documented_loop_takes_the_two_call_steps_at_the_two_call_cost(row, loop):
    reference, reference_passes, opt = _run(row, _two_call_step)
    weights, passes, _ = _run(row, LOOPS[loop])
    assert passes == reference_passes
    expected = row.evals_per_step({**row.defaults(), **KWARGS.get(row.name, {})})
    if isinstance(opt, LookSAM):
        expected = 1 + (STEPS + 2) // 3 / STEPS  # SAM steps at t = 0, 3, 6 of 7
    assert passes == pytest.approx(expected)
    for w, ref in zip(weights, reference, strict=True):
        assert torch.equal(w, ref)


@pytest.mark.parametrize("row", PLAIN, ids=[row.name for row in PLAIN])
def test_step_returns_the_loss_at_w_only_when_it_computed_it(row):
    model = Model()
    opt = _make(row, model)

    def closure():
        opt.zero_grad()
        loss = model.loss()
        loss.backward()
        return loss

    at_w = model.loss().detach()
    assert torch.equal(opt.step(closure).detach(), at_w)
    assert all(p.grad is None for p in model.net.parameters())
    model.loss().backward()
    assert opt.step(closure) is None
    assert all(p.grad is None for p in model.net.parameters())


def _example_step(row, opt, model: Model) -> None:
    cls = row.twin()
    if issubclass(cls, ImbSAM):
        opt.step(model.losses, tail=torch.arange(N) % 2 == 0)
    elif issubclass(cls, (MSharpnessSAM, BSAM)):
        opt.step(model.losses, batch_size=N)
    else:
        opt.step(model.losses)


@pytest.mark.parametrize("row", EXAMPLES, ids=[row.name for row in EXAMPLES])
def test_example_closure_twins_discard_a_gradient_computed_before_step_and_warn_once(row):
    clean, stale = Model(), Model()
    clean_opt, stale_opt = _make(row, clean), _make(row, stale)
    for _ in range(3):
        _example_step(row, clean_opt, clean)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            stale.loss().backward()  # davda54's habit: a gradient before step
            _example_step(row, stale_opt, stale)
    discarded = [w for w in caught if "discards them" in str(w.message)]
    assert len(discarded) == 1
    assert discarded[0].category is UserWarning
    for w, ref in zip(stale.weights(), clean.weights(), strict=True):
        assert torch.equal(w, ref)


def _float64_squared_norm(param_groups, device=None, *, weight_adaptive=False):
    # pytorch-optimizer's global norm is float32; the weights here are float64.
    grads = [p.grad for group in param_groups for p in group["params"] if p.grad is not None]
    return torch.stack([g.norm() for g in grads]).square().sum().reshape(1)


def test_pytorch_optimizers_sam_and_sampys_take_the_same_steps_in_its_own_loop(monkeypatch):
    po = pytest.importorskip("pytorch_optimizer")
    po_sam = pytest.importorskip("pytorch_optimizer.optimizer.sam")
    monkeypatch.setattr(po_sam, "get_global_gradient_norm", _float64_squared_norm)
    sampy_model, po_model = Model(), Model()
    sampy_opt = SAM(sampy_model.net.parameters(), torch.optim.SGD, rho=0.05, lr=0.05)
    po_opt = po.SAM(po_model.net.parameters(), torch.optim.SGD, rho=0.05, lr=0.05)
    for _ in range(STEPS):
        _pytorch_optimizer_step(sampy_opt, sampy_model)
        _pytorch_optimizer_step(po_opt, po_model)
    assert sampy_model.passes == po_model.passes == 2 * STEPS
    for a, b in zip(sampy_model.weights(), po_model.weights(), strict=True):
        # The two global norms round differently in the last bits (a sum of squares vs
        # torch.linalg.vector_norm); the restore is exact on both sides.
        torch.testing.assert_close(a, b, rtol=0, atol=1e-13)
    assert not torch.equal(sampy_model.weights()[0], Model().weights()[0])
