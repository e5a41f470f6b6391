"""What the twin tests share: the landscapes, the counting closure, a tiny two-group model, and
the registry-driven cases the contract suites run.

Imported by the ``test_torch_*`` files (``tests/`` is on ``sys.path`` under pytest).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import torch

import sampy
from sampy.problems import HEAD, TAIL, SumOfExamples

STEPS = 200
OFFSET = 0.3
# Well-conditioned runs on five kinds of landscape (curved valley, four minima, multimodal,
# camel-shaped, ill-conditioned quadratic). Excluded, measured with every row and both bases
# from the default start (last minimum + (0.3, -0.3)): ackley and rastrigin (LookSAM's reuse
# scale ‖g‖/‖g_v‖ amplifies rounding to 1e-9; FisherSAM/WSAM drift after ~100 steps), beale
# and styblinski_tang (FriendlySAM + SGD: d = g − m is a difference of nearly equal vectors near
# the minimum, so ε's direction is chaotic), goldstein_price (|g| ~ 1e3; USAM diverges).
# Every excluded case agrees to 1e-13 for the first 50 steps, then jumps: chaos, not a mismatch.
FUNCTIONS = (
    "rosenbrock",
    "himmelblau",
    "levy",
    "six_hump_camel",
    "three_hump_camel",
    "ill_conditioned",
)
# Starts away from the defaults: near Rosenbrock's and Himmelblau's minima FisherSAM and
# FriendlySAM with SGD bounce chaotically (drift 1e-2 after 150 steps); these starts give
# long, smooth runs (the classic Rosenbrock start, and Himmelblau's central maximum).
STARTS = {"rosenbrock": (-1.0, 1.5), "himmelblau": (0.0, 0.0)}

# Tensor methods that read a value on the host (a device synchronisation inside a step).
SYNCING = ("item", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__")


def start(f) -> np.ndarray:
    """The start point of the twin runs on test function ``f``."""
    if f.name in STARTS:
        return np.array(STARTS[f.name])
    return f.minima[-1] + np.array([OFFSET, -OFFSET])


def counting_closure(opt: torch.optim.Optimizer, loss: Callable[[], torch.Tensor]):
    """The closure every test uses: zero the gradients, evaluate, backward; counts its calls."""

    def closure() -> torch.Tensor:
        closure.calls += 1
        opt.zero_grad()
        value = loss()
        value.backward()
        return value

    closure.calls = 0
    return closure


def mlp(seed: int = 0) -> torch.nn.Module:
    """A float64 5-8-3 tanh network: four tensors."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)
    ).double()


def data(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """32 random inputs for ``mlp()`` and their random class labels."""
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.randn(32, 5, generator=gen, dtype=torch.float64)
    return inputs, torch.randint(0, 3, (32,), generator=gen)


def two_groups(model: torch.nn.Module, **second: Any) -> list[dict[str, Any]]:
    """The model's parameters in two groups (first layer, second layer with ``second``'s
    settings)."""
    params = list(model.parameters())
    return [{"params": params[:2]}, {"params": params[2:], **second}]


def flat(model: torch.nn.Module) -> torch.Tensor:
    """All the model's parameters as one detached vector."""
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def _host_read(*args, **kwargs):
    raise AssertionError("a tensor value was read on the host during a step")


def forbid_host_reads(method: Callable, monkeypatch, also: Iterable[str] = ()) -> Callable:
    """``method`` wrapped so that reading a tensor value on the host inside it fails.

    Patches the ``SYNCING`` methods of ``torch.Tensor`` (and the names in ``also``, on
    ``torch.Tensor`` and on ``torch``) only while ``method`` runs.
    """
    names = (*SYNCING, *also)

    def guarded(*args, **kwargs):
        with monkeypatch.context() as patch:
            for attr in names:
                patch.setattr(torch.Tensor, attr, _host_read)
                if attr in also and hasattr(torch, attr):
                    patch.setattr(torch, attr, _host_read)
            return method(*args, **kwargs)

    return guarded


def guard_methods(opt: object, names: Iterable[str], monkeypatch) -> None:
    """Replace each of ``opt``'s methods ``names`` (those it has) by its guarded version."""
    for name in names:
        if hasattr(opt, name):
            setattr(opt, name, forbid_host_reads(getattr(opt, name), monkeypatch))


# -- registry-driven cases: one row of sampy.variants() with some hyperparameters --------------
#
# The contract suites (tests/test_torch_contracts.py, test_torch_twins_from_registry.py) are
# parametrised over these, as optax's contrib/_common_test.py is over its optimizers: every
# registry row at its defaults, plus the settings the family files found worth a contract run
# (other rules, masks, noise sources, granularities).

INPUTS, TARGETS = data()
# One of the three classes is the tail (ImbSAM's split of the examples).
TAIL_MASK = TARGETS == 2


@dataclass(frozen=True)
class Case:
    """A registry row run with ``hyper`` on top of its preset (``noise`` included).

    ``examples``: whether the closure returns per-example losses (an example closure), a mean
    loss, or (None) what the row needs.
    """

    row: str
    hyper: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    examples: bool | None = None

    @property
    def id(self) -> str:
        return f"{self.row}-{self.label}" if self.label else self.row

    @property
    def variant(self) -> Any:
        return sampy.variant(self.row)

    @property
    def uses_examples(self) -> bool:
        return self.variant.needs_examples if self.examples is None else self.examples

    def twin(self, params: Any, base: tuple[type, dict] | None = None, **extra: Any) -> Any:
        """The twin on ``params``: with ``base`` (class, kwargs; default SGD lr 0.1 momentum
        0.9) for the rows that take one; the built-in-base rows use their own defaults."""
        row = self.variant
        hyper = {**self.hyper, **extra}
        if not row.takes_base:
            opt = row.make_twin(params, **hyper)
        else:
            base_cls, kwargs = base or (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9})
            opt = row.make_twin(params, base_cls, **kwargs, **hyper)
        if hasattr(opt, "train"):  # the schedule-free twins start in training mode
            opt.train()
        return opt

    def reference(self, base: Any = None) -> Any:
        """The NumPy reference with the same hyperparameters (less the twin-only ``noise``)."""
        row = self.variant
        hyper = {k: v for k, v in self.hyper.items() if k != "noise"}
        return row.make(base, **hyper)


def cases(*extra: Case, skip: dict[str, str] | None = None) -> list[Any]:
    """Every registry row at its defaults, then ``extra``, as pytest params; ``skip`` maps a row
    to the reason a contract does not apply to it (the row is left out, the reason kept)."""
    skip = skip or {}
    unknown = set(skip) - {row.name for row in sampy.variants()}
    assert not unknown, unknown
    out = [Case(row.name) for row in sampy.variants() if row.name not in skip]
    out += [case for case in extra if case.row not in skip]
    ids = [case.id for case in out]
    assert len(ids) == len(set(ids)), ids
    return [pytest.param(case, id=case.id) for case in out]


def example_losses_of(model: torch.nn.Module, inputs=None, targets=None):
    """The example closure of ``model`` on ``data()``: per-example cross-entropies (of the
    examples ``indices``, or all); counts its calls with and without gradients."""
    inputs = INPUTS if inputs is None else inputs
    targets = TARGETS if targets is None else targets

    def losses(indices: torch.Tensor | None = None) -> torch.Tensor:
        losses.calls["grad" if torch.is_grad_enabled() else "no_grad"] += 1
        x, y = (inputs, targets) if indices is None else (inputs[indices], targets[indices])
        return torch.nn.functional.cross_entropy(model(x), y, reduction="none")

    losses.calls = {"grad": 0, "no_grad": 0}
    return losses


class MLPSteps:
    """Steps of ``opt`` on ``model`` (``mlp()``) and ``data()``, in the call shape its row has:
    a mean-loss closure, an example closure (with ImbSAM's tail, bSAM's batch size), or
    logit-SAM's and J-SAM's pure ``forward``. ``calls``: closure calls with a gradient."""

    def __init__(self, case: Case, opt: Any, model: torch.nn.Module, tail_indices=False) -> None:
        from sampy.torch.jsam import functional_forward

        self.opt, self.model = opt, model
        inputs, targets = INPUTS.to(flat(model).device), TARGETS.to(flat(model).device)
        wanted = inspect.signature(opt.step).parameters
        kwargs: dict[str, Any] = {}
        if "forward" in wanted:
            forward = functional_forward(model)
            self._step = lambda: opt.step(forward, inputs, targets)
            self._calls = lambda: None
            return
        if "tail" in wanted:
            tail = TAIL_MASK.to(inputs.device)
            kwargs["tail"] = tail.nonzero().reshape(-1) if tail_indices else tail
        if "batch_size" in wanted and case.uses_examples:
            kwargs["batch_size"] = len(targets)
        if case.uses_examples:
            closure = example_losses_of(model, inputs, targets)
            self._calls = lambda: closure.calls["grad"]
        else:
            closure = counting_closure(
                opt, lambda: torch.nn.functional.cross_entropy(model(inputs), targets)
            )
            self._calls = lambda: closure.calls
        self._step = lambda: opt.step(closure, **kwargs)

    def __call__(self, steps: int = 1) -> None:
        for _ in range(steps):
            self._step()

    @property
    def calls(self) -> int | None:
        return self._calls()


def decaying_rho(t: int) -> float:
    """A GSAM ρ schedule: ρ_t = 0.05 − 1e-4 t."""
    return 0.05 - 1e-4 * t


# bSAM on mlp(): a small step and radius, N given, two sub-batches of the 32 examples.
BSAM_ON_MLP = {"lr": 0.01, "rho": 0.05, "num_data": 1000.0, "batchsplit": 2, "seed": 5}


class MLPExamples(SumOfExamples):
    """``mlp()``'s per-example cross-entropies on ``data()`` as a reference problem over the
    flattened weights (head/tail groups as ``TAIL_MASK``): the flat twin of the model."""

    def __init__(self) -> None:
        model = mlp()
        self.shapes = [p.shape for p in model.parameters()]
        self.sizes = [p.numel() for p in model.parameters()]
        groups = np.where(TAIL_MASK.numpy(), TAIL, HEAD)
        super().__init__(len(TARGETS), sum(self.sizes), groups=groups, name="mlp")

    def _loss(self, w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        w1, b1, w2, b2 = (
            t.reshape(s) for t, s in zip(torch.split(w, self.sizes), self.shapes, strict=True)
        )
        logits = torch.tanh(x @ w1.T + b1) @ w2.T + b2
        return torch.nn.functional.cross_entropy(logits[None], y[None])

    def _apply(self, fn, points: np.ndarray, examples: np.ndarray) -> np.ndarray:
        pts = torch.as_tensor(np.array(points, dtype=float))
        k = len(examples)
        batch = pts.reshape(-1, k, self.dim)
        idx = torch.as_tensor(np.asarray(examples))
        inner = torch.func.vmap(fn, in_dims=(0, 0, 0))
        out = torch.func.vmap(inner, in_dims=(0, None, None))(batch, INPUTS[idx], TARGETS[idx])
        return out.reshape(*pts.shape[:-1], *out.shape[2:]).numpy()

    def losses_at(self, points: np.ndarray, examples: np.ndarray) -> np.ndarray:
        return self._apply(self._loss, points, examples)

    def grads_at(self, points: np.ndarray, examples: np.ndarray) -> np.ndarray:
        return self._apply(torch.func.grad(self._loss), points, examples)
