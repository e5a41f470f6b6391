"""The table of step call shapes (``sampy.torch.call_shapes``) against the twins themselves.

Every row's closure kind is exercised on a small model: the step must run with that kind and
move the weights. Plain closures and plain torch steps must call the closure as often as the
registry's gradient evaluations per step say, and the two-call API a row lists must give the
same weights as its closure-only loop.
"""

from __future__ import annotations

import inspect
import warnings

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402

import sampy  # noqa: E402
from sampy.torch import call_shapes as cs  # noqa: E402
from sampy.torch.jsam import functional_forward  # noqa: E402

ROWS = cs.call_shapes()
BY_NAME = {row.variant: row for row in ROWS}
N, D, C = 8, 4, 3
STEPS = 60  # a multiple of every period in the registry's defaults (LookSAM's k, ...)


def data():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(N, D, generator=generator)
    return x, torch.arange(N) % C


def model_and_twin(name, seed=0, **kwargs):
    torch.manual_seed(seed)
    model = torch.nn.Linear(D, C)
    opt = sampy.variant(name).make_twin(model.parameters(), lr=0.1, **kwargs)
    return model, opt


def flat(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def test_every_twin_has_a_row_in_registry_order():
    with_twin = [v.name for v in sampy.variants() if v.twin() is not None]
    assert [row.variant for row in ROWS] == with_twin
    assert {row.closure for row in ROWS} == set(cs.CLOSURE_KINDS)


def test_signatures_are_read_from_the_classes():
    for row in ROWS:
        cls = sampy.variant(row.variant).twin()
        assert row.twin == cls.__name__
        step = inspect.signature(cls.step)
        assert row.step.startswith("step(") and all(
            n in row.step for n in step.parameters if n != "self"
        )
        assert (row.first_step is None) == (not hasattr(cls, "first_step"))
    assert BY_NAME["ImbSAM"].first_step == "first_step(losses, tail)"
    assert BY_NAME["LookSAM"].is_sam_step and not BY_NAME["SAM"].is_sam_step
    assert BY_NAME["SAM"].first_step == "first_step(zero_grad=False)"
    assert BY_NAME["MultiStepSAM"].other_calls == ("ascent_step(zero_grad=False)",)
    assert not BY_NAME["MSAM"].takes_base_optimizer and BY_NAME["MSAM"].closure == cs.TORCH
    assert BY_NAME["JSAM"].closure == cs.FORWARD and BY_NAME["ESAM"].closure == cs.EXAMPLES


def test_table_html_has_one_row_per_twin():
    text = cs.table_html()
    assert text.count("<tr>") == len(ROWS) + 1
    assert "first_step(losses, tail)" in text and "is_sam_step" in text


def expected_calls(name):
    variant = sampy.variant(name)
    return round(STEPS * variant.evals_per_step(variant.defaults()))


@pytest.mark.parametrize("name", [r.variant for r in ROWS if r.closure in (cs.PLAIN, cs.TORCH)])
def test_plain_closure_calls_match_the_gradient_evaluations(name):
    model, opt = model_and_twin(name)
    x, y = data()
    calls = 0

    def closure():
        nonlocal calls
        calls += 1
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    w0 = flat(model)
    for _ in range(STEPS):
        opt.step(closure)
    assert torch.isfinite(flat(model)).all() and not torch.equal(flat(model), w0)
    assert calls == expected_calls(name), f"{name}: {calls} closure calls in {STEPS} steps"
    if BY_NAME[name].closure == cs.PLAIN:  # the closure convention: a step ends without gradients
        assert all(p.grad is None for p in model.parameters()), f"{name} left gradients"


@pytest.mark.parametrize("name", [r.variant for r in ROWS if r.closure == cs.EXAMPLES])
def test_example_closure_steps(name):
    model, opt = model_and_twin(name)
    x, y = data()
    row = BY_NAME[name]

    def losses(indices=None):
        xs, ys = (x, y) if indices is None else (x[indices], y[indices])
        return F.cross_entropy(model(xs), ys, reduction="none")

    extra = {}
    if "tail=" in row.step:
        extra["tail"] = y == C - 1
    if "batch_size=" in row.step:
        extra["batch_size"] = N
    w0 = flat(model)
    with warnings.catch_warnings():
        # A step leaves no gradient behind, so the next one finds none to discard and warn about.
        warnings.simplefilter("error")
        for _ in range(3):
            loss = opt.step(losses, **extra)
            assert loss.dim() == 0 and torch.isfinite(loss)
            assert all(p.grad is None for p in model.parameters()), f"{name} left gradients"
    assert torch.isfinite(flat(model)).all() and not torch.equal(flat(model), w0)


@pytest.mark.parametrize("name", [r.variant for r in ROWS if r.closure == cs.FORWARD])
def test_forward_inputs_targets_steps(name):
    model, opt = model_and_twin(name)
    x, y = data()
    forward = functional_forward(model)
    w0 = flat(model)
    for _ in range(3):
        opt.step(forward, x, y)
    assert torch.isfinite(flat(model)).all() and not torch.equal(flat(model), w0)


@pytest.mark.parametrize("name", [r.variant for r in ROWS if r.closure == cs.TORCH])
def test_plain_torch_step_after_your_own_backward(name):
    model, opt = model_and_twin(name)
    x, y = data()
    w0 = flat(model)
    for _ in range(3):
        F.cross_entropy(model(x), y).backward()
        opt.step()
        opt.zero_grad()
    assert torch.isfinite(flat(model)).all() and not torch.equal(flat(model), w0)


TWO_CALL = [
    r.variant
    for r in ROWS
    if r.closure == cs.PLAIN and r.first_step == "first_step(zero_grad=False)" and not r.other_calls
]


@pytest.mark.parametrize("name", TWO_CALL)
def test_two_call_loop_equals_the_closure_loop(name):
    """The listed two-call API (with ``is_sam_step`` where listed) is the closure's step."""
    x, y = data()
    row = BY_NAME[name]
    model_a, opt_a = model_and_twin(name)

    def closure():
        opt_a.zero_grad()
        loss = F.cross_entropy(model_a(x), y)
        loss.backward()
        return loss

    for _ in range(6):
        opt_a.step(closure)

    model_b, opt_b = model_and_twin(name)
    passes = 0
    for _ in range(6):
        F.cross_entropy(model_b(x), y).backward()
        passes += 1
        if not row.is_sam_step or opt_b.is_sam_step:
            opt_b.first_step(zero_grad=True)
            F.cross_entropy(model_b(x), y).backward()
            passes += 1
        opt_b.second_step(zero_grad=True)
    assert torch.equal(flat(model_a), flat(model_b)), name
