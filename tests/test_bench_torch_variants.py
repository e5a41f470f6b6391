"""The per-variant torch benchmark's harness, without timing: it must not silently rot.

``benchmarks/torch_variants.py`` builds every registry row's torch twin with the registry's
defaults and steps it with a counting closure. Here that row builder runs on a tiny model for
every row with a twin: each steps without error, keeps finite weights, and makes exactly the
registry's gradient evaluations per step, counted as backward passes (2 for SAM, 3 for
SAMAnatomy, 1.1 for LookSAM with k = 10; for the example rows, on a batch of DEFAULT_N
examples: 16 micro-batch passes for m-SAM, 2 + 64/5 for SSAM-F, 3 for ImbSAM, ...). The
example-closure path is also checked on a stand-in optimizer, independent of the twins.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the benchmarks package lives at the repository root
    sys.path.insert(0, str(ROOT))

import sampy  # noqa: E402
from benchmarks import torch_variants as tv  # noqa: E402

STEPS = tv.STEPS_PER_CALL  # one LookSAM cycle, two SSAM mask refreshes
BATCH = sampy.problems.DEFAULT_N  # the registry's per-example counts assume this many examples
WITH_TWIN = [v for v in sampy.variants() if v.twin() is not None]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def problem() -> tv.Problem:
    return tv.mlp_problem("tiny MLP", [6, 8, 3], batch=BATCH)


def _flat(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


@pytest.mark.parametrize("variant", WITH_TWIN, ids=lambda v: v.name)
def test_every_twin_steps_in_the_harness_and_makes_the_declared_evaluations(variant, problem):
    runner = tv.build_runner(variant, problem)
    before = _flat(runner.model).clone()
    runner.steps(STEPS)
    after = _flat(runner.model)
    assert torch.isfinite(after).all()
    assert not torch.equal(before, after), "the twin did not move the weights"
    forward, backward = runner.meter.per_step()
    assert forward > 0 and backward > 0
    # Gradient evaluations = backward passes (of the whole batch, a micro-batch, an example).
    if variant.name == "LogitSAM":  # vmapped passes: counted as n each, an upper bound
        assert runner.meter.passes_per_step == 3 * problem.n  # forward at w, w + ε_i, and w
    else:
        assert runner.meter.passes_per_step == pytest.approx(runner.declared)
    if not variant.needs_examples:
        # A plain closure is one forward and one backward of the whole batch per call.
        assert forward == backward == pytest.approx(runner.meter.calls_per_step)
        declared = getattr(runner.opt, "grad_evals_per_step", None)
        if isinstance(declared, (int, float)):
            assert runner.meter.calls_per_step == pytest.approx(declared)
    # Another cycle costs the same (the denominator of the timed rounds is per step).
    runner.meter.reset()
    runner.steps(STEPS)
    assert runner.meter.per_step() == pytest.approx((forward, backward))


def test_rows_without_a_twin_are_reported_not_raised(problem):
    setup = tv.prepare(problem, peers=False)
    names = {v.name for v in sampy.variants()}
    assert set(setup.runners) | set(setup.missing) | set(setup.failed) == names
    assert set(setup.runners) == {v.name for v in WITH_TWIN} - set(setup.failed)
    assert not setup.failed, setup.failed
    # Every twin's base optimizer has its plain training step (the denominator's base step).
    assert {r.base for r in setup.runners.values()} == set(setup.trains)
    for base, plain in setup.trains.items():
        assert plain.base == base and plain.meter.calls_per_step == 1


def test_natural_bases():
    rows = {v.name: v for v in sampy.variants()}
    assert tv.natural_base(rows["SAM"], tv.hyperparameters(rows["SAM"])) == tv.WRAPPED_BASE
    msam = tv.natural_base(rows["MSAM"], tv.hyperparameters(rows["MSAM"]))
    assert msam.cls is torch.optim.SGD and dict(msam.kwargs)["momentum"] == 0.9
    adamw = tv.natural_base(rows["AdamWMSAM"], tv.hyperparameters(rows["AdamWMSAM"]))
    assert adamw.cls is torch.optim.AdamW


@pytest.mark.parametrize("name", tv.PEERS)
def test_pytorch_optimizer_peers_step_with_two_evaluations(name, problem):
    pytest.importorskip("pytorch_optimizer")
    peer = tv.build_peer(name, problem)
    before = _flat(peer.model).clone()
    peer.steps(2)
    assert peer.meter.calls_per_step == 2  # LookSAM too: its calling pattern takes g every step
    assert not torch.equal(before, _flat(peer.model))


def test_state_bytes_counts_buffers_once_and_not_the_parameters(problem):
    runner = tv.build_runner(sampy.registry.variant("SAM"), problem)
    runner.steps(2)
    numel = sum(p.numel() for p in runner.model.parameters())
    # SAM's saved copy of w (reused, allocated once) + SGD's momentum buffer.
    assert tv.state_bytes(runner.opt, runner.model) == 2 * 4 * numel
    base = tv.plain_training_step(problem, tv.WRAPPED_BASE)
    base.steps(2)
    assert tv.state_bytes(base.opt, base.model) == 4 * numel


def test_the_bare_sam_step_takes_sam_s_step(problem):
    """The floor row is a floor only if it does SAM's work: the twin's weights, to rounding."""
    sam = tv.build_runner(sampy.registry.variant("SAM"), problem)
    floor = tv.bare_sam_training_step(problem)
    start = _flat(sam.model).clone()
    sam.steps(4)
    floor.steps(4)
    assert floor.meter.calls_per_step == 2
    assert (_flat(sam.model) - start).abs().max() > 1e-4
    torch.testing.assert_close(_flat(floor.model), _flat(sam.model), rtol=0, atol=1e-6)


def test_the_plain_training_step_is_one_gradient_and_one_base_step(problem):
    """The denominator's base step is a plain step's time less ``fwd_bwd``: the plain step must
    be exactly zero_grad + forward + backward + the base optimizer's step."""
    plain = tv.plain_training_step(problem, tv.WRAPPED_BASE)
    model = problem.copy()
    opt = tv.WRAPPED_BASE.make(model.parameters())
    for _ in range(3):
        plain.steps(1)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(problem.x), problem.y).backward()
        opt.step()
    assert plain.meter.calls_per_step == 1
    assert torch.equal(_flat(plain.model), _flat(model))
    assert not torch.equal(_flat(model), _flat(problem.model))


def test_expected_step_takes_the_base_step_from_the_plain_training_step():
    """evals × fb + (plain step − fb): a plain step with one evaluation is its own denominator."""
    base = tv.WRAPPED_BASE
    per_step = {"fwd_bwd": [2.0], tv.train_key(base): [2.5], "SAM": [5.0]}
    t = tv.Timings(per_step, {}, 1, 0.0)
    meter = tv.Meter(8)
    meter.steps, meter.calls, meter.forward, meter.backward = 2, 4, 32, 32
    runner = tv.Runner("SAM", None, None, lambda: None, meter, base)
    expected, counted, formula = tv.expected_step(runner, t)
    assert expected == pytest.approx(2 * 2.0 + 0.5)
    assert counted == "2 ∇" and formula == "2 fb"
    meter.calls = 2  # one evaluation per step: the plain step itself
    assert tv.expected_step(runner, t)[0] == pytest.approx(2.5)


def test_batchnorm_running_statistics_see_only_the_first_pass():
    conv = tv.conv_problem(batch=4, width=2, size=8)
    runner = tv.build_runner(sampy.registry.variant("SAM"), conv)
    bn = next(m for m in runner.model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    runner.steps(3)
    assert runner.meter.calls_per_step == 2
    assert int(bn.num_batches_tracked) == 3  # one per step, not two
    assert bn.momentum == 0.1  # restored after every step


# -- the example-closure path, on a stand-in optimizer ---------------------------------------


class _MicroBatchSAM(torch.optim.Optimizer):
    """A stand-in example-aware twin: m-SAM-like micro-batches, a head/tail mask argument."""

    def __init__(self, params, lr: float = 0.1, m: int = 16) -> None:
        super().__init__(params, {"lr": lr})
        self.m = m

    @torch.no_grad()
    def step(self, closure, tail=None):
        assert tail is not None and tail.dtype == torch.bool
        params = [p for g in self.param_groups for p in g["params"]]
        n = int(tail.numel())
        total = [torch.zeros_like(p) for p in params]
        for start in range(0, n, self.m):
            idx = torch.arange(start, min(start + self.m, n))
            with torch.enable_grad():
                grads = torch.autograd.grad(closure(idx).mean(), params)
            for t, g in zip(total, grads, strict=True):
                t.add_(g, alpha=len(idx) / n)
        with torch.enable_grad():
            losses = closure(None)  # one forward, two backward passes through it
            torch.autograd.grad(losses[tail].sum(), params, retain_graph=True)
            torch.autograd.grad(losses[~tail].sum(), params)
        for p, g in zip(params, total, strict=True):
            p.sub_(g, alpha=self.param_groups[0]["lr"])


@dataclass(frozen=True)
class _Row:
    """What ``build_runner`` reads of a registry row."""

    name: str = "StandIn"
    preset: dict[str, Any] = field(default_factory=dict)
    takes_base: bool = False
    needs_examples: bool = True

    def defaults(self) -> dict[str, Any]:
        return {"lr": 0.1, "m": 16}

    def twin(self) -> type:
        return _MicroBatchSAM

    def evals_per_step(self, hyper: dict[str, Any]) -> float:
        return 2.0


def test_example_closures_count_examples_forwarded_and_back_propagated(problem):
    runner = tv.build_runner(_Row(), problem)
    assert runner.examples and runner.base.cls is torch.optim.AdamW
    runner.steps(2)
    forward, backward = runner.meter.per_step()
    # Micro-batches: 1 batch forward and backward; then one forward, two backward passes.
    assert forward == pytest.approx(2.0)
    assert backward == pytest.approx(3.0)
    assert runner.meter.calls_per_step == BATCH // 16 + 1
    assert runner.meter.passes_per_step == BATCH // 16 + 2


def test_a_step_argument_the_harness_does_not_know_is_reported(problem):
    class _Needy(_MicroBatchSAM):
        def step(self, closure, tail=None, temperature=None, *, mystery):
            raise AssertionError("not reached")

    row = _Row()
    object.__setattr__(row, "twin", lambda: _Needy)
    with pytest.raises(TypeError, match="mystery"):
        tv.build_runner(row, problem)


def _row(name: str):
    return next(v for v in sampy.variants() if v.name == name)


@pytest.mark.parametrize(
    "name, scratch",
    [
        ("SAM", 0.0),
        ("GSAM", 0.0),
        # g stashed in the rule's flat buffer at the first step, and the ratio r, into which
        # the checkpoints are written as 0.0/1.0 floats (no bool masks).
        ("SAME", 2.0),
        ("SAMCkpt", 2.0),
    ],
)
def test_what_a_twin_keeps_on_the_cpu_beyond_the_momentum(name, scratch):
    """Floats per parameter kept between steps (the harness's memory table), on an MLP whose
    two weight matrices are above the template's swap threshold: their ``w`` is never copied,
    so only the small tensors' ``w`` is kept in scratch, besides the rule's own buffers."""
    from sampy.torch.sharpness_aware import SWAP_MIN_NUMEL

    wide = tv.mlp_problem("wide MLP", [784, 256, 256, 10])
    params = list(wide.model.parameters())
    n = sum(p.numel() for p in params)
    copied = sum(p.numel() for p in params if p.numel() < SWAP_MIN_NUMEL) / n
    runner = tv.build_runner(_row(name), wide)
    runner.steps(3)
    floats = tv.state_bytes(runner.opt, runner.model) / 4 / n
    # 1.0: SGD's momentum; abs: a few scalars (the ratio's guard, counters), 1e-5 floats each.
    assert floats == pytest.approx(1.0 + copied + scratch, abs=1e-4)
