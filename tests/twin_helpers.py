"""What the twin tests share: the landscapes, the counting closure, a tiny two-group model.

Imported by the ``test_torch_*`` files (``tests/`` is on ``sys.path`` under pytest).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch

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


def two_groups(model: torch.nn.Module) -> list[dict[str, Any]]:
    """The model's parameters in two groups (first layer, second layer)."""
    params = list(model.parameters())
    return [{"params": params[:2]}, {"params": params[2:]}]


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
