"""Every registry row against its torch twin, with the row's default hyperparameters.

Generated from ``sampy.variants()``: a new variant with a twin is covered here without a line
of test code. Each row runs 200 float64 steps of the NumPy reference (``sampy.run``) and of
its twin from the same start and must agree within 1e-10 at every step: plain variants on four
test functions with an ordinary closure, the variants that need examples on a logistic
regression (with head/tail groups) with an example closure (``sampy.torch.examples``), or for
logit-SAM and J-SAM with the linear model as a pure ``forward(params, inputs)``. Twins
that draw random numbers run with ``noise="numpy"`` (the reference's draws). The files
``test_torch_*.py`` test each twin further with other hyperparameters, bases and models.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from twin_helpers import STEPS, counting_closure, start  # noqa: E402

import sampy  # noqa: E402
from sampy import optim as ref  # noqa: E402
from sampy.problems import TAIL, make_logistic_problem  # noqa: E402
from sampy.torch.functional import as_torch_example_losses, as_torch_loss  # noqa: E402

# Four smooth landscapes where every row's default settings give a non-chaotic run (see
# twin_helpers.FUNCTIONS for why Rosenbrock and the multimodal ones amplify rounding).
FUNCTIONS = ("himmelblau", "six_hump_camel", "three_hump_camel", "ill_conditioned")
# A small learning rate keeps the 200 steps on the way to a minimum: near one, FriendlySAM's
# d = g − m and SAME's ratios g̃/g are differences of nearly equal numbers, and rounding grows
# ×10 every few steps (measured at lr = 1e-2: agreement to 1e-17 for 60-150 steps, then 1e-3).
LR = 1e-3
PROBLEM = make_logistic_problem(imbalance=0.3, noise=0.1, seed=3)
PROBLEM_X0 = np.array([0.5, -0.5])
ROWS = sampy.variants()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# MSAM's defaults (ρ = 0.3, 1.0) are for networks: on a 2-D landscape the stored point
# w̃ = w − ρ m/‖m‖ swings by ρ whenever the momentum turns, so ‖m‖ → small makes the direction
# chaotic (measured: 1e-16 for 30 steps, then 1e-9 and 1e-6). ρ = 0.05 keeps them to 1e-11.
OWN_BASE_RHO = {"MSAM": 0.05, "AdamWMSAM": 0.05}


def _own_lr(row) -> dict:
    """Learning rate (and ρ) of a variant with a built-in base (MSAM's default 0.1 diverges)."""
    kwargs = {"lr": LR} if any(spec.name == "lr" for spec in row.hyperparameters) else {}
    if row.name in OWN_BASE_RHO:
        kwargs["rho"] = OWN_BASE_RHO[row.name]
    return kwargs


def _reference(row):
    if not row.takes_base:
        return row.make(None, **_own_lr(row))
    return row.make(ref.SGD(lr=LR, momentum=0.5))


def _twin(row, x: torch.Tensor):
    cls = row.twin()
    kwargs = dict(row.preset)
    if "noise" in inspect.signature(cls).parameters:
        kwargs["noise"] = "numpy"
    if row.takes_base:
        return cls([x], torch.optim.SGD, **kwargs, lr=LR, momentum=0.5)
    return cls([x], **kwargs, **_own_lr(row))


def _step_kwargs(opt) -> dict:
    """What a twin's ``step`` needs besides the closure, read from its signature."""
    wanted = inspect.signature(opt.step).parameters
    kwargs = {}
    if "tail" in wanted:
        kwargs["tail"] = torch.as_tensor(PROBLEM.groups == TAIL)
    if "batch_size" in wanted:
        kwargs["batch_size"] = PROBLEM.n
    return kwargs


def _run_twin(row, f, x0: np.ndarray) -> tuple[np.ndarray, int | None]:
    x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    opt = _twin(row, x)
    if "forward" in inspect.signature(opt.step).parameters:  # logit-SAM, J-SAM: a pure model
        inputs = torch.as_tensor(PROBLEM.features)
        targets = torch.as_tensor(PROBLEM.labels, dtype=torch.float64)

        def step() -> None:
            opt.step(lambda params, batch: batch @ params[0], inputs, targets)

        # The per-example passes run inside torch.func.vmap, where no hook can count them: the
        # reference's count is checked against the registry in test_variants.py.
        count = lambda: None  # noqa: E731
    elif row.needs_examples:
        losses = as_torch_example_losses(PROBLEM)
        backwards = []
        x.register_hook(lambda grad: backwards.append(1))

        def step() -> None:
            opt.step(lambda indices=None: losses(x, indices), **_step_kwargs(opt))

        count = lambda: len(backwards)  # noqa: E731
    else:
        loss = as_torch_loss(f)
        closure = counting_closure(opt, lambda: loss(x))

        def step() -> None:
            opt.step(closure)

        count = lambda: closure.calls  # noqa: E731
    if hasattr(opt, "train"):
        opt.train()
    xs = [x.detach().numpy().copy()]
    for _ in range(STEPS):
        step()
        xs.append(x.detach().numpy().copy())
    return np.array(xs), count()


CASES = [
    pytest.param(row, name, id=f"{row.name}-{name}")
    for row in ROWS
    for name in (("logistic",) if row.needs_examples else FUNCTIONS)
]


def test_every_row_has_a_twin_and_a_case():
    assert all(row.twin() is not None for row in ROWS)
    assert {param.values[0].name for param in CASES} == {row.name for row in ROWS}


@pytest.mark.parametrize(("row", "name"), CASES)
def test_twin_with_defaults_follows_the_reference(row, name):
    if row.needs_examples:
        f, x0 = PROBLEM, PROBLEM_X0
    else:
        f = sampy.functions.get(name)
        x0 = start(f)
    reference = sampy.run(_reference(row), f, x0, STEPS)
    assert not reference.diverged.any()
    twin, evaluations = _run_twin(row, f, x0)
    np.testing.assert_allclose(twin, reference.xs, rtol=0, atol=1e-10)
    assert np.abs(reference.xs[-1] - x0).max() > 1e-4  # the run went somewhere
    assert evaluations in (None, reference.grad_evals)
