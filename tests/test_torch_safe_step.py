"""The safe step, for every torch twin that perturbs the weights (registry-driven).

An exception between perturbing and restoring leaves ``w`` as it was, bit for bit; misuse of
``first_step``/``second_step``/``restore`` and a closure without ``backward()`` give errors
that say what happened; ``skip_nonfinite`` drops a step whose gradient at ``w + ε`` is not
finite; the step hooks fire once per step whichever loop drives the optimizer.
"""

from __future__ import annotations

import math
import warnings

import pytest

torch = pytest.importorskip("torch")

from sampy.registry import variants  # noqa: E402
from sampy.torch import BSAM, SharpnessAware  # noqa: E402
from sampy.torch.imbsam import ImbSAM  # noqa: E402
from sampy.torch.looksam import LookSAM  # noqa: E402
from sampy.torch.msharpness import MSharpnessSAM, MultiStepSAM  # noqa: E402
from sampy.torch.samanatomy import SAMAnatomy  # noqa: E402
from sampy.torch.ssam import SSAMD  # noqa: E402

N = 8
ROWS = [row for row in variants() if row.twin() is not None]
# Twins that move the parameters to a perturbed point inside a step.
PERTURBING = [
    row for row in ROWS if issubclass(row.twin(), SharpnessAware) or issubclass(row.twin(), BSAM)
]
# Those whose step takes an ordinary closure (the loss and its backward).
PLAIN = [row for row in PERTURBING if not row.needs_examples and not issubclass(row.twin(), SSAMD)]
ids = [row.name for row in PERTURBING]
plain_ids = [row.name for row in PLAIN]


def _problem():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    model = model.double()
    x = torch.randn(N, 3, dtype=torch.float64)
    y = torch.randn(N, 2, dtype=torch.float64)
    return model, x, y


def _make(row, model, **kwargs):
    return row.make_twin(model.parameters(), lr=0.1, **kwargs)


def _weights(model) -> list:
    return [p.detach().clone() for p in model.parameters()]


def _same(a, b) -> bool:
    return all(torch.equal(u, v) for u, v in zip(a, b, strict=True))


class Closures:
    """A plain and an example closure over one batch, counting calls, with a fault on call k."""

    def __init__(self, opt, model, x, y, fault=None, at_call=2):
        self.opt, self.model, self.x, self.y = opt, model, x, y
        self.fault, self.at_call, self.calls = fault, at_call, 0

    def losses(self, indices=None):
        self.calls += 1
        x, y = (self.x, self.y) if indices is None else (self.x[indices], self.y[indices])
        out = ((self.model(x) - y) ** 2).sum(dim=1)
        if self.fault is not None and self.calls == self.at_call:
            if self.fault == "raise":
                raise RuntimeError("CUDA out of memory (simulated)")
            if self.fault == "nan":
                out = out * math.nan
        return out

    def plain(self):
        self.opt.zero_grad()
        loss = self.losses().mean()
        if not (self.fault == "no_backward" and self.calls >= self.at_call):
            loss.backward()
        return loss

    def step(self, row):
        """One ``step`` in the call shape of ``row``'s twin."""
        cls = row.twin()
        if issubclass(cls, ImbSAM):
            return self.opt.step(self.losses, tail=torch.arange(N) % 2 == 0)
        if issubclass(cls, (MSharpnessSAM, BSAM)):
            return self.opt.step(self.losses, batch_size=N)
        if row.needs_examples:
            return self.opt.step(self.losses)
        return self.opt.step(self.plain)


def _by_hand(opt, closures: Closures) -> None:
    """One step in the two-call style (``first_step``, backward, ``second_step``)."""
    closures.plain()
    if isinstance(opt, LookSAM) and not opt.is_sam_step:
        opt.second_step(zero_grad=True)
        return
    opt.first_step(zero_grad=True)
    if isinstance(opt, SAMAnatomy):
        closures.plain()
        opt.second_ascent_step(zero_grad=True)
    if isinstance(opt, MultiStepSAM):
        for _ in range(opt.ascent_steps - 1):
            closures.plain()
            opt.ascent_step(zero_grad=True)
    closures.plain()
    opt.second_step(zero_grad=True)


# -- an exception at w + eps -------------------------------------------------------------------


@pytest.mark.parametrize("row", PERTURBING, ids=ids)
def test_a_closure_that_raises_at_the_perturbed_point_leaves_w_bit_identical(row):
    model, x, y = _problem()
    opt = _make(row, model)
    closures = Closures(opt, model, x, y, fault="raise", at_call=2)
    w0 = _weights(model)
    with pytest.raises(RuntimeError, match="simulated"):
        closures.step(row)
    assert _same(_weights(model), w0)
    # The optimizer is ready for the next step (nothing half-done is left behind).
    closures.fault = None
    closures.step(row)
    assert not _same(_weights(model), w0)


@pytest.mark.parametrize("row", PLAIN, ids=plain_ids)
def test_restore_on_error_guards_a_pass_written_by_hand(row):
    model, x, y = _problem()
    opt = _make(row, model)
    closures = Closures(opt, model, x, y)
    w0 = _weights(model)
    closures.plain()
    if isinstance(opt, LookSAM):
        assert opt.is_sam_step
    opt.first_step(zero_grad=True)
    assert not _same(_weights(model), w0)
    with pytest.raises(KeyboardInterrupt), opt.restore_on_error():
        raise KeyboardInterrupt
    assert _same(_weights(model), w0)


# -- misuse gives an error that names the call ---------------------------------------------------


FIRST_STEP_TWINS = PLAIN + [row for row in PERTURBING if issubclass(row.twin(), SSAMD)]


@pytest.mark.parametrize("row", FIRST_STEP_TWINS, ids=[r.name for r in FIRST_STEP_TWINS])
def test_first_step_twice_is_refused_and_keeps_w(row):
    model, x, y = _problem()
    opt = _make(row, model)
    closures = Closures(opt, model, x, y)
    w0 = _weights(model)
    closures.plain()
    opt.first_step()
    with pytest.raises(RuntimeError, match=r"first_step\(\) called twice.*restore\(\)"):
        opt.first_step()
    opt.restore()
    assert _same(_weights(model), w0)


TEMPLATE = [row for row in PERTURBING if issubclass(row.twin(), SharpnessAware)]


@pytest.mark.parametrize("row", TEMPLATE, ids=[r.name for r in TEMPLATE])
def test_second_step_without_first_step_names_the_call(row):
    model, x, y = _problem()
    opt = _make(row, model)
    Closures(opt, model, x, y).plain()
    with pytest.raises(RuntimeError, match=r"second_step\(\).*first_step\(\)"):
        opt.second_step()


@pytest.mark.parametrize("row", TEMPLATE, ids=[r.name for r in TEMPLATE])
def test_restore_with_nothing_perturbed_names_restore(row):
    model, _, _ = _problem()
    opt = _make(row, model)
    with pytest.raises(RuntimeError, match=r"^restore\(\) called with nothing to restore"):
        opt.restore()


@pytest.mark.parametrize("row", PLAIN, ids=plain_ids)
def test_a_closure_without_backward_is_named_at_w(row):
    model, x, y = _problem()
    opt = _make(row, model)
    closures = Closures(opt, model, x, y, fault="no_backward", at_call=1)
    with pytest.raises(RuntimeError, match=r"no parameter has a gradient at w \(did the closure"):
        closures.step(row)


@pytest.mark.parametrize("row", PLAIN, ids=plain_ids)
def test_a_closure_without_backward_at_the_perturbed_point_is_named_and_w_restored(row):
    model, x, y = _problem()
    opt = _make(row, model)
    w0 = _weights(model)
    closures = Closures(opt, model, x, y, fault="no_backward", at_call=2)
    with pytest.raises(RuntimeError, match=r"no parameter has a gradient at w \+ eps"):
        closures.step(row)
    assert _same(_weights(model), w0)


# -- skip_nonfinite ------------------------------------------------------------------------------


SKIPPING = [row for row in PLAIN if not issubclass(row.twin(), MSharpnessSAM)]


@pytest.mark.parametrize("row", SKIPPING, ids=[r.name for r in SKIPPING])
def test_skip_nonfinite_drops_a_step_with_a_nan_gradient_at_the_perturbed_point(row):
    model, x, y = _problem()
    opt = _make(row, model, skip_nonfinite=True)
    w0 = _weights(model)
    # The gradient the descent reads: the last of the step's passes.
    last = 3 if isinstance(opt, SAMAnatomy) else 2
    if isinstance(opt, MultiStepSAM):
        last = opt.ascent_steps + 1
    closures = Closures(opt, model, x, y, fault="nan", at_call=last)
    with pytest.warns(RuntimeWarning, match="skipped"):
        closures.step(row)
    assert _same(_weights(model), w0)
    assert opt.skipped_steps == 1
    # Counted in the checkpoint: a fresh optimizer loaded from it reports the same count.
    fresh = _make(row, model, skip_nonfinite=True)
    fresh.load_state_dict(opt.state_dict())
    assert fresh.skipped_steps == 1
    # A finite step afterwards is taken as usual.
    closures.fault = None
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        closures.step(row)
    assert not _same(_weights(model), w0)
    assert opt.skipped_steps == 1


EXAMPLE_SKIPPING = [
    row
    for row in PERTURBING
    if issubclass(row.twin(), (ImbSAM, MSharpnessSAM)) and row not in PLAIN
]


@pytest.mark.parametrize("row", EXAMPLE_SKIPPING, ids=[r.name for r in EXAMPLE_SKIPPING])
def test_skip_nonfinite_in_the_example_closure_twins(row):
    model, x, y = _problem()
    opt = _make(row, model, skip_nonfinite=True)
    w0 = _weights(model)
    closures = Closures(opt, model, x, y, fault="nan", at_call=2)  # the first pass at w + eps
    with pytest.warns(RuntimeWarning, match="skipped"):
        closures.step(row)
    assert _same(_weights(model), w0)
    assert opt.skipped_steps == 1
    closures.fault = None
    closures.step(row)
    assert not _same(_weights(model), w0)


@pytest.mark.parametrize("row", SKIPPING[:3], ids=[r.name for r in SKIPPING[:3]])
def test_without_skip_nonfinite_the_nan_reaches_the_weights(row):
    model, x, y = _problem()
    opt = _make(row, model)
    closures = Closures(opt, model, x, y, fault="nan", at_call=2)
    closures.step(row)
    assert any(not torch.isfinite(p).all() for p in model.parameters())
    assert opt.skipped_steps == 0


# -- step hooks ----------------------------------------------------------------------------------


@pytest.mark.parametrize("row", PLAIN, ids=plain_ids)
@pytest.mark.parametrize("style", ["closure", "two-call"])
def test_step_hooks_fire_once_per_step_in_both_styles(row, style):
    model, x, y = _problem()
    opt = _make(row, model)
    closures = Closures(opt, model, x, y)
    fired = {"pre": 0, "post": 0}
    opt.register_step_pre_hook(lambda *_: fired.__setitem__("pre", fired["pre"] + 1))
    opt.register_step_post_hook(lambda *_: fired.__setitem__("post", fired["post"] + 1))
    for _ in range(4):
        if style == "closure":
            closures.step(row)
        else:
            _by_hand(opt, closures)
    assert fired == {"pre": 4, "post": 4}


# -- a parameter group that the loss does not reach ------------------------------------------


@pytest.mark.parametrize("row", PLAIN, ids=plain_ids)
def test_a_group_without_any_gradient_is_left_alone(row):
    model, x, y = _problem()
    unused = torch.nn.Parameter(torch.tensor([5.0], dtype=torch.float64))
    groups = [{"params": list(model.parameters())}, {"params": [unused]}]
    opt = row.make_twin(groups, lr=0.1)
    closures = Closures(opt, model, x, y)
    w0 = _weights(model)
    for _ in range(2):
        closures.step(row)
    assert not _same(_weights(model), w0)
    assert unused.grad is None and unused.item() == 5.0
