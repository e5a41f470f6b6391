"""Torch: every registered variant's step against the forward/backward passes it must pay for.

For each row of ``sampy.variants()`` whose torch twin exists (``Variant.twin()``), built with the
registry's defaults (``{**preset, **defaults()}``) around ``torch.optim.SGD(lr=0.01,
momentum=0.9)``, or with its own defaults where the base is built in (MSAM, AdamW-MSAM, the
schedule-free ones, bSAM), this times ``opt.step(closure)`` on an MLP 784-256-256-10 and on a
20-layer 64-wide MLP (batch 128, random data, cross-entropy) and compares it with

    expected = evals × fwd_bwd + base

timed in the same interleaved rounds: ``fwd_bwd`` = ``zero_grad`` + forward + backward of the
mean loss on the same model and batch; ``base`` = one step of the variant's base optimizer as
it costs in a training step, that is a plain training step (``fwd_bwd`` + ``base.step()``)
less ``fwd_bwd``, with the base optimizer ``SGD(momentum=0.9)`` for the wrapped twins and for
the built-in ones the plain optimizer they extend (SGD with momentum for a twin with a
``momentum`` hyperparameter, AdamW for the others); and ``evals`` = the closure calls per step
COUNTED over the timed steps (1.1 for LookSAM with k = 10). Goal: ≤ 1.05 (the perturbation,
the restore and the rule's own arithmetic nearly free).

The base step is not timed alone: repeated on the same tensors it runs from warm caches and
costs less than after a backward pass (on the 784-256-256-10 MLP here, ``SGD(momentum=0.9)``
took 0.29 ms alone and 0.35 ms in a training step), and with that smaller ``base`` a plain
training step scored 1.03 and 1.06 on the two MLPs. So measured, a plain
training step scores 1 by construction, and a twin's ratio is what its step costs above the
passes it pays for.

The twins that need examples (``Variant.needs_examples``) take an example closure
(``sampy.torch.examples``): ``closure(indices)`` returns un-reduced per-example losses and the
optimizer calls ``backward`` itself, on micro-batches, subsets or several times on one forward.
For them the harness counts, over the timed steps, the examples forwarded (``F``: the size of
every closure call) and the examples back-propagated (``B``: the size of the loss tensor each
time a backward pass reaches it, counted by a tensor hook), both in batches (divided by the
batch size), and

    expected = F × fwd + B × (fwd_bwd − fwd) + base

with ``fwd`` = forward + mean loss alone, timed in the same rounds. A plain closure call has
F = B = 1, so this is the formula above; for micro-batches it is linear in the examples, which
small batches do not reach (per-call overhead): m-SAM's and bSAM's ratios show that price.
ImbSAM gets a fixed half/half ``tail`` mask, bSAM and m-SAM ``batch_size``, bSAM
``num_data = 50,000``.
A row without a twin reads "no twin yet"; a twin that raises is reported in its row (a missed
goal), never fatal.

Extra rows: the floor, a bare SAM step (``benchmarks.torch_step.bare_sam_step``: the norm,
one fused pass, the base step, nothing else) against the same denominator as SAM's, and SAM's
step against that floor (goal ≤ 1.05: what sampy's checks, groups and safety may cost);
LookSAM (k = 10) step / SAM step (goal ≤ 0.60); MSAM step / one SGD training step with MSAM's
hyperparameters (goal ≤ 1.05); and against pytorch-optimizer's class of the same
algorithm (SAM, ASAM, GSAM, WSAM, FriendlySAM, LookSAM), same hyperparameters and base, each
driven as its documentation says (goal < 1).

Memory: the bytes of every tensor the optimizer keeps (its ``state``, the base optimizer's,
shared counters and rule buffers: everything reachable from the optimizer object except the
parameters and their gradients) after the timed steps, against the natural base optimizer
alone, also as extra floats per parameter; on CUDA also the peak allocated during one step
(that state + the step's transient memory) against one plain base training step.

Every candidate makes ``STEPS_PER_CALL`` = 10 steps per timed call (a whole LookSAM cycle, two
SSAM mask refreshes), so periodic costs are averaged in, and on CUDA ends with
``torch.cuda.synchronize()``. Where CUDA is available a compact ResNet-18 (CIFAR layout,
32×32 inputs, BatchNorm; SAM's later passes run with ``disable_running_stats``) runs on it
with goal ≤ 1.03; on the CPU that model is skipped unless ``--conv`` is given (then narrowed:
width 16, batch 32). Run alone: ``python -m benchmarks.torch_variants [--quick] [--device cuda]``.
"""

from __future__ import annotations

import argparse
import copy
import inspect
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

import sampy
import sampy.torch
from benchmarks._common import (
    NOISY,
    Table,
    cell,
    interleaved,
    median,
    ms,
    noisy,
    spread,
    usable_cores,
)
from benchmarks.torch_step import BATCH, MODELS, bare_sam_step, mlp

LR = 0.01
MOMENTUM = 0.9
NUM_DATA = 50_000  # bSAM's N (posterior variance 1/(N s)): a CIFAR-sized training set
STEPS_PER_CALL = 10
GOAL = 1.05
GOAL_CONV = 1.03
GOAL_LOOKSAM = 0.60
FLOOR = "bare SAM step"  # the timings' key of ``bare_sam_training_step``
GOAL_MSAM = 1.05
PEERS = ("SAM", "ASAM", "GSAM", "WSAM", "FriendlySAM", "LookSAM")

# --- the models ------------------------------------------------------------------------------


class BasicBlock(nn.Module):
    """ResNet's two 3×3 convolutions with BatchNorm and an identity (or 1×1) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


def resnet18(num_classes: int = 10, width: int = 64) -> nn.Module:
    """ResNet-18 for 32×32 inputs (CIFAR layout: 3×3 stem, no max-pool); width 64 = 11.2 M."""
    widths = [width, 2 * width, 4 * width, 8 * width]
    layers: list[nn.Module] = [
        nn.Conv2d(3, width, 3, 1, 1, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(),
    ]
    cin = width
    for i, cout in enumerate(widths):
        for j in range(2):
            layers.append(BasicBlock(cin, cout, 2 if i > 0 and j == 0 else 1))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes)]
    return nn.Sequential(*layers)


@dataclass
class Problem:
    """A model and one fixed batch; every candidate trains its own copy of the model."""

    name: str
    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    goal: float = GOAL

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    @property
    def has_batchnorm(self) -> bool:
        return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.model.modules())

    def copy(self) -> nn.Module:
        return copy.deepcopy(self.model)


def mlp_problem(name: str, widths: list[int], device: str = "cpu", batch: int = BATCH) -> Problem:
    torch.manual_seed(0)
    model = mlp(widths).to(device)
    x = torch.randn(batch, widths[0], device=device)
    y = torch.randint(0, widths[-1], (batch,), device=device)
    return Problem(name, model, x, y)


def conv_problem(
    device: str = "cpu", batch: int = BATCH, width: int = 64, size: int = 32
) -> Problem:
    torch.manual_seed(0)
    model = resnet18(width=width).to(device)
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    name = f"ResNet-18 (width {width}, {size}x{size}, {params:.1f} M parameters)"
    return Problem(name, model, x, y, goal=GOAL_CONV)


# --- closures that count what they cost ------------------------------------------------------


@dataclass
class Meter:
    """Closure calls, examples forwarded, backward passes and examples back-propagated."""

    n: int
    steps: int = 0
    calls: int = 0
    forward: int = 0
    passes: int = 0  # backward passes (gradient evaluations, of any subset)
    backward: int = 0

    def per_step(self) -> tuple[float, float]:
        """(F, B): forward and backward passes per step, in batches of ``n`` examples."""
        steps = max(self.steps, 1)
        return self.forward / (self.n * steps), self.backward / (self.n * steps)

    @property
    def calls_per_step(self) -> float:
        return self.calls / max(self.steps, 1)

    @property
    def passes_per_step(self) -> float:
        """Gradient evaluations per step: backward passes, whatever examples they cover."""
        return self.passes / max(self.steps, 1)

    def reset(self) -> None:
        """Start counting afresh (in place: the closures hold this object)."""
        self.steps = self.calls = self.forward = self.passes = self.backward = 0


class BatchNormGuard:
    """Running statistics see only the first pass of a step (``disable_running_stats`` after).

    ``begin()`` before a step, ``end()`` after it, ``enter()`` at every forward pass: the
    first pass of a step updates the statistics, the later ones (at w + ε) leave them.
    """

    def __init__(self, model: nn.Module, active: bool) -> None:
        self.model = model
        self.active = active
        self.passes = 0

    def begin(self) -> None:
        self.passes = 0

    def enter(self) -> None:
        if self.active:
            if self.passes == 1:
                sampy.torch.disable_running_stats(self.model)
            self.passes += 1

    def end(self) -> None:
        if self.active and self.passes > 1:
            sampy.torch.enable_running_stats(self.model)


def mean_closure(model, opt, x, y, meter: Meter, guard: BatchNormGuard) -> Callable:
    """The usual closure: zero the gradients, mean loss, ``backward()``; counted."""

    def closure() -> torch.Tensor:
        meter.calls += 1
        meter.forward += meter.n
        meter.passes += 1
        meter.backward += meter.n
        guard.enter()
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    return closure


def example_closure(model, x, y, meter: Meter, guard: BatchNormGuard) -> Callable:
    """``closure(indices=None)`` → per-example losses (``sampy.torch.examples``); counted."""

    def closure(indices: torch.Tensor | None = None) -> torch.Tensor:
        xb, yb = (x, y) if indices is None else (x[indices], y[indices])
        meter.calls += 1
        meter.forward += int(xb.shape[0])
        guard.enter()
        losses = F.cross_entropy(model(xb), yb, reduction="none")
        if losses.requires_grad:
            size = losses.numel()

            def count(grad: torch.Tensor) -> None:
                meter.passes += 1
                meter.backward += size

            losses.register_hook(count)
        return losses

    return closure


# --- building the optimizers -----------------------------------------------------------------


@dataclass(frozen=True)
class Base:
    """A plain torch optimizer: the denominator's base step."""

    cls: type
    kwargs: tuple[tuple[str, Any], ...]

    @property
    def label(self) -> str:
        args = ", ".join(
            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.kwargs
        )
        return f"{self.cls.__name__}({args})"

    @property
    def short(self) -> str:
        return self.cls.__name__

    def make(self, params) -> torch.optim.Optimizer:
        return self.cls(params, **dict(self.kwargs))


WRAPPED_BASE = Base(torch.optim.SGD, (("lr", LR), ("momentum", MOMENTUM)))


def hyperparameters(variant) -> dict[str, Any]:
    """The registry's settings of a row: its preset and every default."""
    return {**variant.preset, **variant.defaults()}


def natural_base(variant, kwargs: dict[str, Any]) -> Base:
    """SGD(momentum) around wrapped twins; what a built-in base extends for the others."""
    if variant.takes_base:
        return WRAPPED_BASE
    lr = float(kwargs.get("lr", 1e-3))
    wd = float(kwargs.get("weight_decay", 0.0))
    if "momentum" in kwargs and "betas" not in kwargs:
        return Base(
            torch.optim.SGD,
            (("lr", lr), ("momentum", float(kwargs["momentum"])), ("weight_decay", wd)),
        )
    betas = tuple(float(b) for b in kwargs.get("betas", (0.9, 0.999)))
    return Base(
        torch.optim.AdamW,
        (
            ("lr", lr),
            ("betas", betas),
            ("eps", float(kwargs.get("eps", 1e-8))),
            ("weight_decay", wd),
        ),
    )


@dataclass
class Runner:
    """One optimizer on its own copy of the model, ready to step."""

    name: str
    opt: Any
    model: nn.Module
    step: Callable[[], None]  # one optimizer step (with its closure calls)
    meter: Meter
    base: Base
    examples: bool = False
    # Gradient evaluations per step the registry declares (for the example rows: on a batch of
    # sampy.problems.DEFAULT_N examples, one per backward pass of any subset).
    declared: float | None = None

    def steps(self, count: int) -> None:
        for _ in range(count):
            self.step()
        self.meter.steps += count


class NoTwin(Exception):
    """The variant has no torch twin yet."""


def _guarded(guard: BatchNormGuard, body: Callable[[], None]) -> Callable[[], None]:
    def step() -> None:
        guard.begin()
        try:
            body()
        finally:
            guard.end()

    return step


def build_runner(variant, problem: Problem) -> Runner:
    """The twin of ``variant`` with the registry's defaults on a copy of ``problem``'s model.

    Raises ``NoTwin`` where the variant has none, ``TypeError`` where its step takes an
    argument this harness cannot supply.
    """
    cls = variant.twin()
    if cls is None:
        raise NoTwin(variant.name)
    kwargs = hyperparameters(variant)
    base = natural_base(variant, kwargs)
    signature = inspect.signature(cls).parameters
    if "num_data" in signature and kwargs.get("num_data") is None:
        kwargs["num_data"] = NUM_DATA
    model = problem.copy()
    if variant.takes_base:
        opt = cls(model.parameters(), torch.optim.SGD, **kwargs, lr=LR, momentum=MOMENTUM)
    else:
        opt = cls(model.parameters(), **kwargs)
    if callable(getattr(opt, "train", None)):
        opt.train()  # schedule-free twins take gradients in train mode
    meter = Meter(problem.n)
    guard = BatchNormGuard(model, problem.has_batchnorm)
    x, y = problem.x, problem.y
    if "forward" in inspect.signature(opt.step).parameters:
        body = _functional_body(opt, model, x, y, meter)
    elif variant.needs_examples:
        closure = example_closure(model, x, y, meter, guard)
        extra = _step_arguments(opt, problem)

        def body() -> None:
            opt.step(closure, **extra)

    else:
        closure = mean_closure(model, opt, x, y, meter, guard)

        def body() -> None:
            opt.step(closure)

    return Runner(
        variant.name,
        opt,
        model,
        _guarded(guard, body),
        meter,
        base,
        examples=variant.needs_examples,
        declared=float(variant.evals_per_step(variant.defaults())),
    )


def _functional_body(opt, model: nn.Module, x: torch.Tensor, y: torch.Tensor, meter: Meter):
    """logit-SAM and J-SAM: ``step(forward, inputs, targets)`` with a pure ``forward``.

    Their per-example passes run under ``torch.func.vmap``, where no hook sees a backward; the
    meter counts every call of ``forward`` as one pass over the batch, forward and backward,
    i.e. n per-example gradient evaluations (exact for J-SAM's 2n; an upper bound for
    logit-SAM: three calls, 3n, for its n + 1).
    """
    forward = sampy.torch.functional_forward(model)

    def counted(params, inputs):
        meter.calls += 1
        meter.passes += meter.n
        meter.forward += meter.n
        meter.backward += meter.n
        return forward(params, inputs)

    def body() -> None:
        opt.step(counted, x, y)

    return body


def tail_mask(n: int, device) -> torch.Tensor:
    """ImbSAM's tail classes: a fixed half/half split of the batch (odd positions are tail)."""
    return torch.arange(n, device=device) % 2 == 1


def _step_arguments(opt, problem: Problem) -> dict[str, Any]:
    """What an example-aware ``step`` needs besides the closure: ImbSAM's ``tail`` mask, bSAM's
    ``batch_size``; a required argument not known here raises ``TypeError`` (reported)."""
    extra: dict[str, Any] = {}
    params = list(inspect.signature(opt.step).parameters.values())[1:]
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.name == "tail":
            extra["tail"] = tail_mask(problem.n, problem.x.device)
        elif p.name == "batch_size":  # bSAM and m-SAM split the batch; no counting forward
            extra["batch_size"] = problem.n
        elif p.name == "num_data":
            extra["num_data"] = NUM_DATA
        elif p.default is inspect.Parameter.empty:
            raise TypeError(
                f"{type(opt).__name__}.step needs {p.name!r}, which this benchmark does not "
                "know how to supply (teach benchmarks/torch_variants._step_arguments)"
            )
    return extra


def plain_training_step(problem: Problem, base: Base) -> Runner:
    """``zero_grad`` + forward + backward + ``base.step()``: a plain training step."""
    model = problem.copy()
    opt = base.make(model.parameters())
    meter = Meter(problem.n)
    closure = mean_closure(model, opt, problem.x, problem.y, meter, BatchNormGuard(model, False))

    def step() -> None:
        closure()
        opt.step()

    return Runner(base.label, opt, model, step, meter, base)


def bare_sam_training_step(problem: Problem) -> Runner:
    """``benchmarks.torch_step.bare_sam_step`` around the wrapped twins' base: SAM's floor, the
    least a SAM step costs in torch (no checks, groups, hooks or state), timed like the twins."""
    model = problem.copy()
    opt = WRAPPED_BASE.make(model.parameters())
    meter = Meter(problem.n)
    guard = BatchNormGuard(model, problem.has_batchnorm)
    closure = mean_closure(model, opt, problem.x, problem.y, meter, guard)
    body = _guarded(guard, lambda: bare_sam_step(model, opt, closure))
    return Runner("bare SAM step", opt, model, body, meter, WRAPPED_BASE, declared=2.0)


# --- pytorch-optimizer's classes of the same algorithms --------------------------------------


def _peer_kwargs(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
    accepted = inspect.signature(cls).parameters
    return {k: v for k, v in kwargs.items() if k in accepted and k not in ("params", "model")}


def build_peer(name: str, problem: Problem) -> Runner:
    """pytorch-optimizer's class for registry row ``name``, the same hyperparameters and base.

    SAM, ASAM, FriendlySAM and LookSAM want the gradient at w before ``step(closure)``; WSAM
    takes the model and evaluates it itself; GSAM takes a base optimizer instance, a model and
    a constant ρ scheduler, and its own forward/backward through ``set_closure``.
    """
    import pytorch_optimizer as po
    from pytorch_optimizer.lr_scheduler.proportion import ProportionScheduler

    variant = sampy.registry.variant(name)
    kwargs = hyperparameters(variant)
    model = problem.copy()
    meter = Meter(problem.n)
    # WSAM and GSAM switch the running statistics off for their second pass themselves.
    guard = BatchNormGuard(model, problem.has_batchnorm and name not in ("WSAM", "GSAM"))
    x, y = problem.x, problem.y
    base_kwargs = dict(WRAPPED_BASE.kwargs)
    if name == "GSAM":
        base = torch.optim.SGD(model.parameters(), **base_kwargs)
        constant = torch.optim.lr_scheduler.LambdaLR(base, lambda t: 1.0)
        rho = kwargs["rho"]
        scheduler = ProportionScheduler(constant, LR, LR, max_value=rho, min_value=rho)
        opt = po.GSAM(model.parameters(), base, model, scheduler, **_peer_kwargs(po.GSAM, kwargs))

        def loss_fn(outputs, targets):
            meter.calls += 1
            meter.forward += meter.n
            meter.passes += 1
            meter.backward += meter.n
            return F.cross_entropy(outputs, targets)

        opt.set_closure(loss_fn, x, y)
        body = opt.step  # disables/enables the running statistics itself
        return Runner(f"pytorch_optimizer.{name}", opt, model, body, meter, WRAPPED_BASE)
    cls = po.SAM if name == "ASAM" else getattr(po, name)
    hyper = _peer_kwargs(cls, kwargs)
    if name == "WSAM":
        opt = cls(model, model.parameters(), torch.optim.SGD, **hyper, **base_kwargs)
    else:
        opt = cls(model.parameters(), torch.optim.SGD, **hyper, **base_kwargs)
    closure = mean_closure(model, opt, x, y, meter, guard)

    def body() -> None:
        if name != "WSAM":
            closure()
        opt.step(closure)

    return Runner(
        f"pytorch_optimizer.{name}", opt, model, _guarded(guard, body), meter, WRAPPED_BASE
    )


# --- memory ----------------------------------------------------------------------------------


# Not searched for tensors: models (pytorch-optimizer's GSAM/WSAM hold one), generators, and
# functions (a closure's captured batch is not optimizer state).
_OPAQUE = (
    nn.Module,
    torch.Generator,
    type,
    str,
    bytes,
    types.FunctionType,
    types.MethodType,
    types.BuiltinFunctionType,
)


def _storages(obj: Any, skip: set[int], seen: set[int], out: dict[int, int], depth: int = 0):
    if depth > 8:
        return
    if isinstance(obj, torch.Tensor):
        storage = obj.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in skip and storage.nbytes():
            out[ptr] = storage.nbytes()
        return
    if id(obj) in seen or isinstance(obj, _OPAQUE):
        return
    seen.add(id(obj))
    if isinstance(obj, dict):
        for value in obj.values():
            _storages(value, skip, seen, out, depth + 1)
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for value in obj:
            _storages(value, skip, seen, out, depth + 1)
    elif hasattr(obj, "__dict__"):
        for value in vars(obj).values():
            _storages(value, skip, seen, out, depth + 1)


def state_bytes(opt: Any, model: nn.Module) -> int:
    """Bytes of every tensor reachable from ``opt`` but the parameters and their gradients."""
    skip = set()
    for p in model.parameters():
        skip.add(p.untyped_storage().data_ptr())
        if p.grad is not None:
            skip.add(p.grad.untyped_storage().data_ptr())
    out: dict[int, int] = {}
    _storages(opt, skip, set(), out)
    return sum(out.values())


def cuda_peak(runner: Runner) -> int:
    """Peak bytes allocated during one step above what was allocated before it, + the state."""
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    runner.step()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - before + state_bytes(runner.opt, runner.model)


# --- the benchmark ---------------------------------------------------------------------------


def _sync(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return torch.cuda.synchronize
    return lambda: None


class Candidate:
    """``STEPS_PER_CALL`` steps per call, synchronised on CUDA; an error is kept, not raised.

    Each call also records this thread's CPU time (``cpu``), for ``--cpu-time``.
    """

    def __init__(self, name: str, steps: Callable[[int], None], sync: Callable[[], None]):
        self.name = name
        self._steps = steps
        self._sync = sync
        self.error: str | None = None
        self.cpu: list[float] = []

    def __call__(self) -> None:
        if self.error is not None:
            return
        began = time.thread_time()
        try:
            self._steps(STEPS_PER_CALL)
            self._sync()
        except Exception as error:  # reported in the row
            self.error = f"{type(error).__name__}: {error}"
        self.cpu.append(time.thread_time() - began)


def _repeat(fn: Callable[[], object]) -> Callable[[int], None]:
    def steps(count: int) -> None:
        for _ in range(count):
            fn()

    return steps


def _finite(model: nn.Module) -> bool:
    with torch.no_grad():
        return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def _err(text: str, limit: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class Setup:
    """Everything timed for one problem."""

    runners: dict[str, Runner] = field(default_factory=dict)
    peers: dict[str, Runner] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # no twin yet
    failed: dict[str, str] = field(default_factory=dict)  # name → error
    # a plain training step (zero_grad + forward + backward + base step) per base optimizer
    trains: dict[Base, Runner] = field(default_factory=dict)
    floor: Runner | None = None  # the bare SAM step, where SAM has a twin


def prepare(problem: Problem, peers: bool = True) -> Setup:
    """Build every twin (and peer); one untimed call each, errors reported, not raised."""
    setup = Setup()
    for variant in sampy.variants():
        try:
            runner = build_runner(variant, problem)
            runner.steps(STEPS_PER_CALL)
        except NoTwin:
            setup.missing.append(variant.name)
        except Exception as error:
            setup.failed[variant.name] = f"{type(error).__name__}: {error}"
        else:
            setup.runners[variant.name] = runner
    if peers:
        for name in PEERS:
            if name not in setup.runners:
                continue
            try:
                peer = build_peer(name, problem)
                peer.steps(STEPS_PER_CALL)
            except Exception as error:
                setup.failed[f"pytorch_optimizer.{name}"] = f"{type(error).__name__}: {error}"
            else:
                setup.peers[name] = peer
    for runner in setup.runners.values():
        if runner.base not in setup.trains:
            plain = plain_training_step(problem, runner.base)
            plain.steps(STEPS_PER_CALL)
            setup.trains[runner.base] = plain
    if "SAM" in setup.runners:
        setup.floor = bare_sam_training_step(problem)
        setup.floor.steps(STEPS_PER_CALL)
    return setup


@dataclass
class Timings:
    """Seconds per step of every candidate, from the interleaved rounds."""

    per_step: dict[str, list[float]]
    errors: dict[str, str | None]
    rounds: int
    elapsed: float

    def __post_init__(self) -> None:
        self.med = {k: median(v) for k, v in self.per_step.items()}

    def text(self, key: str) -> str:
        return cell(ms(self.med[key]), spread(self.per_step[key]))

    def ok(self, *keys: str) -> bool:
        return all(k in self.med and self.errors.get(k) is None for k in keys)


def time_setup(problem: Problem, setup: Setup, quick: bool, cpu_time: bool = False) -> Timings:
    """Every twin, peer and denominator part, ``STEPS_PER_CALL`` steps a call, interleaved.

    ``cpu_time``: the calls' CPU time in this thread instead of the wall clock (see ``run``).
    """
    sync = _sync(problem.x.device)
    began = time.perf_counter()
    model_fb = problem.copy()
    opt_fb = torch.optim.SGD(model_fb.parameters(), lr=LR)
    x, y = problem.x, problem.y

    def fwd_bwd() -> None:
        opt_fb.zero_grad()
        F.cross_entropy(model_fb(x), y).backward()

    def fwd() -> None:
        F.cross_entropy(model_fb(x), y)

    parts: dict[str, Candidate] = {"fwd_bwd": Candidate("fwd_bwd", _repeat(fwd_bwd), sync)}
    if any(r.examples for r in setup.runners.values()):
        parts["fwd"] = Candidate("fwd", _repeat(fwd), sync)
    for base, runner in setup.trains.items():
        parts[train_key(base)] = Candidate(base.label, runner.steps, sync)
    if setup.floor is not None:
        parts[FLOOR] = Candidate(FLOOR, setup.floor.steps, sync)
    for part in parts.values():  # warm-up (prepare() made one call of every twin and peer)
        part()
    candidates = dict(parts)
    for name, runner in setup.runners.items():
        candidates[name] = Candidate(name, runner.steps, sync)
    for name, peer in setup.peers.items():
        candidates[f"peer {name}"] = Candidate(name, peer.steps, sync)
    for runner in [*setup.runners.values(), *setup.peers.values()]:
        runner.meter.reset()  # counts over the steps of the rounds alone
    t = interleaved(
        candidates,
        rounds=5 if quick else 25,
        warmup=0 if quick else 1,
        max_seconds=12 if quick else 90,
        min_rounds=4 if quick else 8,  # 4: the fewest that give a spread (±x%)
    )
    if cpu_time:  # the same rounds, each call's CPU time (warm-up calls dropped)
        t = {k: candidates[k].cpu[len(candidates[k].cpu) - len(v) :] for k, v in t.items()}
    return Timings(
        {k: [s / STEPS_PER_CALL for s in v] for k, v in t.items()},
        {k: c.error for k, c in candidates.items()},
        len(t["fwd_bwd"]),
        time.perf_counter() - began,
    )


def train_key(base: Base) -> str:
    """The timings' key of the plain training step with ``base``."""
    return f"train {base.label}"


def base_in_step(base: Base, t: Timings) -> float:
    """The base step's time in a training step: the plain training step less ``fwd_bwd``."""
    return t.med[train_key(base)] - t.med["fwd_bwd"]


def expected_step(runner: Runner, t: Timings) -> tuple[float, str, str]:
    """(seconds, what was counted, the formula): the denominator of a twin's row."""
    base = base_in_step(runner.base, t)
    fb = t.med["fwd_bwd"]
    f_, b_ = runner.meter.per_step()
    if runner.examples and "fwd" in t.med:
        fw = t.med["fwd"]
        counted = f"{runner.meter.passes_per_step:.3g} ∇; F {f_:.3g}, B {b_:.3g}"
        return f_ * fw + b_ * (fb - fw) + base, counted, f"{f_:.3g} fwd + {b_:.3g} bwd"
    calls = runner.meter.calls_per_step
    return calls * fb + base, f"{calls:.3g} ∇", f"{calls:.3g} fb"


def bench_problem(
    problem: Problem,
    quick: bool,
    threads: int | None,
    memory: bool = True,
    why: str = "",
    cpu_time: bool = False,
) -> list[Table]:
    """The speed table of ``problem`` (and its memory table); ``why``: the thread choice."""
    setup = prepare(problem)
    t = time_setup(problem, setup, quick, cpu_time)
    device = problem.x.device
    goal = problem.goal
    threads_text = f", {threads} thread(s)" if threads is not None else ""
    table = Table(
        f"Torch variants, {problem.name}, batch {problem.n}, {device.type}{threads_text}: "
        f"step(closure) vs evals x (zero_grad + forward + backward) + one base step",
        short=f"torch variants {problem.name.split(' (')[0]} {device.type}",
    )
    broken = []
    for variant in sampy.variants():
        name = variant.name
        if name in setup.missing:
            table.add(name, "no twin yet", "", None)
            continue
        error = setup.failed.get(name) or t.errors.get(name)
        if error is not None:
            table.add(name, f"ERROR {_err(error)}", "", None, f"<= {goal}", False)
            continue
        runner = setup.runners[name]
        expected, counted, formula = expected_step(runner, t)
        ratio = t.med[name] / expected
        table.add(
            name,
            cell(t.text(name), f"({counted})"),
            f"{formula} + {runner.base.short} = {ms(expected)}",
            ratio,
            f"<= {goal}",
            ratio <= goal,
        )
        if not _finite(runner.model):
            broken.append(name)

    def extra(label: str, num: str, den: str, den_text: str, goal: float) -> None:
        if t.ok(num, den):
            ratio = t.med[num] / t.med[den]
            table.add(
                label,
                t.text(num),
                f"{den_text} {ms(t.med[den])}",
                ratio,
                f"<= {goal}",
                ratio <= goal,
            )

    if setup.floor is not None and t.ok(FLOOR):
        expected, counted, formula = expected_step(setup.floor, t)
        table.add(
            "floor: a bare SAM step (torch_step.bare_sam_step)",
            cell(t.text(FLOOR), f"({counted})"),
            f"{formula} + {setup.floor.base.short} = {ms(expected)}",
            t.med[FLOOR] / expected,
        )
        extra("SAM step vs the bare SAM step", "SAM", FLOOR, "bare", GOAL)
    looksam = setup.runners.get("LookSAM")
    k = getattr(looksam.opt, "k", "?") if looksam else "?"
    extra(f"LookSAM (k={k}) step vs SAM step", "LookSAM", "SAM", "SAM", GOAL_LOOKSAM)
    if "MSAM" in setup.runners:
        msam_base = setup.runners["MSAM"].base
        extra(
            "MSAM step vs SGD training step",
            "MSAM",
            train_key(msam_base),
            msam_base.label,
            GOAL_MSAM,
        )
    for name, peer in setup.peers.items():
        key = f"peer {name}"
        label = f"{name} vs pytorch_optimizer.{'SAM(adaptive)' if name == 'ASAM' else name}"
        if not t.ok(name, key):
            error = t.errors.get(key) or t.errors.get(name)
            table.add(label, f"ERROR {_err(error or '')}", "", None)
            continue
        ratio = t.med[name] / t.med[key]
        calls = peer.meter.calls_per_step
        table.add(
            label,
            t.text(name),
            cell(f"p-opt {ms(t.med[key])}", f"({calls:.3g} ∇)"),
            ratio,
            "< 1",
            ratio < 1,
        )
    for name, error in setup.failed.items():
        if name.startswith("pytorch_optimizer."):
            table.notes.append(f"{name} could not run: {_err(error, 200)}")
    trains = "; ".join(
        f"{b.label}: {t.text(train_key(b))}, base step {ms(base_in_step(b, t))}"
        for b in setup.trains
    )
    table.notes.append(
        f"fb = zero_grad + forward + backward of the mean loss {t.text('fwd_bwd')}"
        + (f"; fwd = forward alone {t.text('fwd')}" if "fwd" in t.med else "")
        + "; plain training step (fb + base step) and the base step in it = their difference: "
        + trains
    )
    table.notes.append(
        f"medians per step of {t.rounds} interleaved rounds x {STEPS_PER_CALL} steps "
        f"({t.elapsed:.0f} s); wrapped twins around SGD(lr={LR}, momentum={MOMENTUM}), "
        "registry defaults; built-in bases against the plain optimizer they extend; ∇ = "
        "gradient evaluations (backward passes) per step, counted; example closures: F/B = "
        "examples forwarded/back-propagated per step, in batches, expected = F fwd + "
        "B (fb − fwd) + base"
    )
    if why:
        table.notes.append(f"torch threads: {threads}, {why}")
    if cpu_time:
        table.notes.append(
            "times are this thread's CPU time (--cpu-time), not the wall clock: at 1 thread "
            "they leave out the time other processes held the core, so the ratios hardly "
            "depend on the machine's load (the page faults and cache misses a step causes "
            "stay in)"
        )
    if setup.missing:
        table.notes.append(f"no torch twin yet: {', '.join(setup.missing)}")
    if broken:
        table.notes.append(
            f"non-finite weights after the run (timings of NaN arithmetic): {', '.join(broken)}"
        )
    if problem.has_batchnorm:
        table.notes.append(
            "BatchNorm: only each step's first forward updates the running statistics "
            "(sampy.torch.disable_running_stats for the later passes, as the README recipe)"
        )
    if noisy(*t.per_step.values()):
        table.notes.append(NOISY)
    table.print()
    return [table, memory_table(problem, setup)] if memory else [table]


def memory_table(problem: Problem, setup: Setup) -> Table:
    """State each optimizer keeps (bytes of its tensors) against its base optimizer alone."""
    device = problem.x.device
    numel = sum(p.numel() for p in problem.model.parameters())
    elem = next(problem.model.parameters()).element_size()
    table = Table(
        f"Torch variants, memory, {problem.name} ({numel:,} parameters), {device.type}: "
        "tensors the optimizer keeps vs its base optimizer alone",
        short=f"torch memory {problem.name.split(' (')[0]}",
    )
    base_bytes = {b: state_bytes(r.opt, r.model) for b, r in setup.trains.items()}
    cuda = device.type == "cuda"
    base_peak: dict[Base, int] = {}
    if cuda:
        for base in setup.trains:
            plain = plain_training_step(problem, base)
            plain.step()  # the base's state exists before the measured step, as the variants'
            base_peak[base] = cuda_peak(plain)

    def mb(x: int) -> str:
        return f"{x / 2**20:.3g} MB"

    rows: list[tuple[str, Runner | str]] = []
    for variant in sampy.variants():  # the registry's order; then the peers
        name = variant.name
        if name in setup.runners:
            rows.append((name, setup.runners[name]))
        else:
            rows.append((name, "no twin yet" if name in setup.missing else "ERROR (see above)"))
    rows += [(f"pytorch_optimizer.{n}", r) for n, r in setup.peers.items()]
    for name, runner in rows:
        if isinstance(runner, str):
            table.add(name, runner, "", None)
            continue
        got = state_bytes(runner.opt, runner.model)
        base = base_bytes[runner.base]
        extra = (got - base) / (numel * elem)
        measurement = f"{mb(got)} ({got / (numel * elem):.3g} floats/param, {extra:+.3g})"
        baseline = f"{runner.base.short} {mb(base)}"
        if cuda:
            try:
                peak = cuda_peak(runner)
                measurement += f"; peak {mb(peak)}"
                baseline += f"; peak {mb(base_peak[runner.base])}"
            except Exception as error:
                measurement += f"; peak ERROR {_err(str(error), 40)}"
        table.add(name, measurement, baseline, got / base if base else None)
    table.notes.append(
        "state = every tensor reachable from the optimizer (its state, the base optimizer's, "
        "rule buffers, counters) except the parameters and their gradients, after the timed "
        "steps; ratio = state / the base optimizer's state alone; (+x) = extra floats per "
        "parameter"
        + (
            "; peak = max allocated during one step above what was allocated before it, + the "
            "state (baseline: a plain training step with the base optimizer)"
            if cuda
            else "; peak memory during a step: CUDA only (torch.cuda.max_memory_allocated)"
        )
    )
    table.print()
    return table


def problems(device: str, models: list[str]) -> list[Problem]:
    """The problems named by ``models`` (mlp, deep, conv) on ``device``."""
    out = []
    names = list(MODELS)
    for key in models:
        if key == "mlp":
            out.append(mlp_problem(names[0], MODELS[names[0]], device))
        elif key == "deep":
            out.append(mlp_problem(names[1], MODELS[names[1]], device))
        elif key == "conv":
            if device == "cuda":
                out.append(conv_problem(device))
            else:  # narrowed: a full ResNet-18 step takes seconds on a small CPU
                out.append(conv_problem(device, batch=32, width=16))
        else:
            raise ValueError(f"unknown model {key!r}: choose mlp, deep or conv")
    return out


def run(
    quick: bool = False,
    device: str | None = None,
    models: list[str] | None = None,
    threads: int | None = None,
    cpu_time: bool = False,
) -> list[Table]:
    """Default: both MLPs on the CPU, and the ResNet-18 on CUDA where there is one.

    ``threads``: torch's intra-op threads on the CPU (default: the cores this process may use,
    or 1 where a check finds that faster right now: see ``choose_threads``). ``cpu_time``:
    time each call by this thread's CPU time (``time.thread_time``) instead of the wall
    clock, for ratios on a busy machine; only at one thread on the CPU, where all of a step's
    work runs in this thread (``ValueError`` otherwise).
    """
    if cpu_time and (threads != 1 or device == "cuda"):
        raise ValueError(
            "cpu_time=True needs threads=1 on the CPU (--cpu-time --threads 1): with more "
            "threads, or on CUDA, a step's work runs outside this thread and its CPU clock"
        )
    plan: list[tuple[str, list[str]]] = []
    if device is None:
        plan.append(("cpu", models or ["mlp", "deep"]))
        if torch.cuda.is_available() and not cpu_time:
            plan.append(("cuda", ["conv"]))
    else:
        default = ["conv"] if device == "cuda" else ["mlp", "deep"]
        plan.append((device, models or default))
    tables: list[Table] = []
    default_threads = torch.get_num_threads()
    try:
        for dev, keys in plan:
            if dev == "cuda":
                print(f"device: {torch.cuda.get_device_name()}", flush=True)
            for i, problem in enumerate(problems(dev, keys)):
                count, why = None, ""
                if dev == "cpu":
                    count, why = choose_threads(problem, threads)
                    torch.set_num_threads(count)
                    print(
                        f"torch: {count} intra-op thread(s) for {problem.name}: {why}", flush=True
                    )
                # Floats per parameter hardly depend on the MLP: one memory table per device
                # (the conv model gets its own, with the CUDA peak).
                memory = i == 0 or "ResNet" in problem.name
                tables += bench_problem(problem, quick, count, memory, why, cpu_time)
    finally:
        torch.set_num_threads(default_threads)
    return tables


def choose_threads(problem: Problem, asked: int | None) -> tuple[int, str]:
    """The machine's cores, unless a quick check finds one thread faster (a busy machine).

    With more threads than idle cores, torch's thread pool waits at every parallel region for a
    thread that is not running: a forward/backward of these MLPs then takes 10-50x longer at 2
    threads than at 1, and not in proportion to the work, so the ratios mean nothing. This
    times 10 × ``fwd_bwd`` at both counts, interleaved, and keeps the cores unless that is slower.
    """
    if asked:
        return asked, "as asked (--threads)"
    cores = usable_cores()
    if cores == 1:
        return 1, "the one core this process may use"
    model = problem.copy()
    x, y = problem.x, problem.y

    def at(n: int) -> Callable[[], None]:
        def call() -> None:
            torch.set_num_threads(n)
            for _ in range(10):
                model.zero_grad()
                F.cross_entropy(model(x), y).backward()

        return call

    t = interleaved({"1": at(1), "n": at(cores)}, rounds=5, warmup=1)
    one, many = median(t["1"]) / 10, median(t["n"]) / 10
    if many <= one:
        return cores, (
            f"the cores this process may use (forward+backward {ms(many)} vs {ms(one)} at 1)"
        )
    return 1, (
        f"NOT the {cores} cores this process may use: forward+backward took {ms(many)} at "
        f"{cores} threads vs {ms(one)} at 1 (a busy machine: threads wait for each other); "
        f"rerun when it is idle for {cores}-thread numbers, or pass --threads"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (smoke test)")
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default=None,
        help="default: both MLPs on the CPU, plus the ResNet-18 on CUDA if available",
    )
    parser.add_argument(
        "--models",
        default=None,
        help="comma-separated subset of mlp,deep,conv (default: mlp,deep on cpu; conv on cuda)",
    )
    parser.add_argument("--conv", action="store_true", help="add the ResNet-18 (narrowed on CPU)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads on the CPU (default: all cores, or 1 if faster now: a busy machine)",
    )
    parser.add_argument(
        "--cpu-time",
        action="store_true",
        help="time by this thread's CPU time, not the wall clock (needs --threads 1): ratios "
        "that hold on a busy machine",
    )
    args = parser.parse_args()
    if args.cpu_time and (args.threads != 1 or args.device == "cuda"):
        parser.error("--cpu-time needs --threads 1 on the CPU")
    models = args.models.split(",") if args.models else None
    if args.conv:
        if models is None:
            models = ["conv"] if args.device == "cuda" else ["mlp", "deep", "conv"]
        elif "conv" not in models:
            models.append("conv")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available here")
    run(args.quick, args.device, models, args.threads, args.cpu_time)


if __name__ == "__main__":
    main()
