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

import twin_helpers  # noqa: E402
from twin_helpers import STEPS, Case, counting_closure, decaying_rho, start  # noqa: E402

import sampy  # noqa: E402
from sampy import optim as ref  # noqa: E402
from sampy.problems import TAIL, LogisticRegression, make_logistic_problem  # noqa: E402
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


# -- the settings the families were checked with: other rules, bases, landscapes -------------
#
# Every row above runs at its defaults with one base; here the settings each family chose
# (another rule, mask, granularity, noise kind) run with SGD-momentum and with Adam, on the six
# shared landscapes (``twin_helpers.FUNCTIONS``) or on a sum of examples, 200 steps, 1e-10.

LANDSCAPES = twin_helpers.FUNCTIONS
TWIN_BASES = {
    "sgd-momentum": (ref.SGD, torch.optim.SGD, {"lr": 1e-3, "momentum": 0.5}),
    "adam": (ref.Adam, torch.optim.Adam, {"lr": 1e-3}),
}
# Four of the six landscapes for the sparse family (all six agree to 1e-10; four keep the
# runtime modest).
SPARSE_FUNCTIONS = ("rosenbrock", "himmelblau", "three_hump_camel", "ill_conditioned")
# bSAM's noisy samples throw Rosenbrock's ~1e3 gradients off (the reference diverges) except
# at the smallest step.
NO_ROSENBROCK = tuple(name for name in LANDSCAPES if name != "rosenbrock")
BSAM_PLAIN = {
    "code": {"lr": 0.05, "num_data": 100.0, "rho": 0.01, "seed": 3, "batchsplit": 1},
    "paper-tuned": {
        "lr": 0.02, "num_data": 1000.0, "rho": 0.05, "weight_decay": 1e-3, "damping": 0.5,
        "betas": (0.8, 0.99), "s_init": 2.0, "update_order": "paper", "seed": 1, "batchsplit": 1,
    },
    "small-lr": {"lr": 0.005, "num_data": 50.0, "rho": 0.001, "seed": 4, "batchsplit": 1},
}  # fmt: skip
ON_FUNCTIONS = [
    # The template family.
    (Case("GSAM", {"alpha": 0.4}), LANDSCAPES),
    (Case("GSAM", {"alpha": 0.2, "rho_schedule": decaying_rho}, "schedule"), LANDSCAPES),
    (Case("GSAM", {"alpha": 0.4, "adaptive": True, "eta": 0.01}, "asam"), LANDSCAPES),
    # Decoupled WSAM moves by lr·α·(g̃ − g) ≈ lr·α·ρ·H outside the base optimizer: with
    # Rosenbrock's H ~ 1e3 and γ = 0.9 (α = 9) that dwarfs Adam's steps and the run turns
    # chaotic (the twins separate from 1e-12 by ×10 every few steps). ρ = 0.02, γ = 0.6 is tame.
    (Case("WSAM", {"rho": 0.02, "gamma": 0.6}, "tame"), LANDSCAPES),
    (Case("WSAM", {"decouple": False, "gamma": 0.7, "max_norm": 1.0}, "coupled-clip"), LANDSCAPES),
    (Case("WSAM", {"rho": 0.02, "gamma": 0.6, "adaptive": True, "max_norm": 5.0}, "asam-clip"),
     LANDSCAPES),
    # ε = ρ g carries the gradient's units: ρ = 0.05 throws Rosenbrock's |g| ≈ 500 far away.
    (Case("USAM", {"rho": 1e-3}, "small-rho"), LANDSCAPES),
    (Case("FriendlySAM"), LANDSCAPES),
    (Case("FriendlySAM", {"momentum_order": "paper", "sigma": 0.5}, "paper"), LANDSCAPES),
    (Case("VaSSO"), LANDSCAPES),
    (Case("FisherSAM"), LANDSCAPES),
    (Case("LookSAM", {"rho": 0.05, "k": 3}, "k3"), LANDSCAPES),
    (Case("SAME"), LANDSCAPES),
    (Case("CustomSAME"), LANDSCAPES),
    (Case("SAMCkpt", {"checkpoints": (1, 2)}, "two"), LANDSCAPES),
    (Case("SAMDirection"), LANDSCAPES),
    (Case("SAMMagnitude"), LANDSCAPES),
    (Case("SAMAgree", {"fill": "other"}, "fill-other"), LANDSCAPES),
    (Case("SGDAgree"), LANDSCAPES),
    (Case("ClampSAM"), LANDSCAPES),
    (Case("ClampSAM", {"renorm": True}, "renorm"), LANDSCAPES),
    (Case("ClipSAM", {"condition": 1.5}, "condition"), LANDSCAPES),
    (Case("SAMAnatomy"), LANDSCAPES),
    # Random perturbations and multi-step ascent.
    (Case("RandomSAM", {"rho": 0.02}, "gaussian"), LANDSCAPES),
    (Case("RandomSAM", {"rho": 0.05, "kind": "sphere"}, "sphere"), LANDSCAPES),
    (Case("RandomSAM", {"rho": 0.03, "mix": 0.4, "seed": 7}, "gaussian-mix"), LANDSCAPES),
    (Case("RandomSAM", {"kind": "sphere", "mix": 0.7, "seed": 3}, "sphere-mix"), LANDSCAPES),
    (Case("MultiStepSAM", {"ascent_steps": 1}, "k1"), LANDSCAPES),
    # ρ = 0.03 with SGD on six_hump_camel agrees to 1e-17 for 100 steps, then turns chaotic
    # (the ascent steps straddle a ridge where ∇L flips; 6e-11 at step 130, 6e-4 at 200).
    (Case("MultiStepSAM", {"rho": 0.05, "ascent_steps": 3}, "k3"), LANDSCAPES),
    # The sparse family with an ordinary closure.
    (Case("ESAM", {"gamma": 1.0}, "coordinate-full", examples=False), SPARSE_FUNCTIONS),
    (Case("ESAM", {"gamma": 1.0, "swp_granularity": "tensor", "swp_norm": "kept",
                   "adaptive": True}, "tensor-kept-asam", examples=False), SPARSE_FUNCTIONS),
    (Case("SSAMF", {"sparsity": 0.5, "update_freq": 3}, examples=False), SPARSE_FUNCTIONS),
    (Case("SSAMD", {"sparsity": 0.5, "update_freq": 2, "T_end": 150}), SPARSE_FUNCTIONS),
    (Case("SSAMD", {"sparsity": 0.5, "drop_strategy": "weight", "growth_strategy": "weight",
                    "T_end": 120}, "weight-weight"), SPARSE_FUNCTIONS),
    # bSAM with one sub-batch and an ordinary closure (its own base: no base to vary).
    *[(Case("BSAM", BSAM_PLAIN[name], name, examples=False), NO_ROSENBROCK)
      for name in ("code", "paper-tuned")],
    (Case("BSAM", BSAM_PLAIN["small-lr"], "small-lr", examples=False), LANDSCAPES),
]  # fmt: skip
FUNCTION_CASES = [
    pytest.param(case, base, name, id=f"{case.id}-{base}-{name}")
    for case, names in ON_FUNCTIONS
    for base in (sorted(TWIN_BASES) if case.variant.takes_base else ["own"])
    for name in names
]


def _noise(case: Case) -> dict:
    """The reference's draws for a twin that draws random numbers."""
    return (
        {"noise": "numpy"} if "noise" in inspect.signature(case.variant.twin()).parameters else {}
    )


@pytest.mark.parametrize(("case", "base", "name"), FUNCTION_CASES)
def test_twin_with_the_family_settings_follows_the_reference(case, base, name):
    f = sampy.functions.get(name)
    x0 = start(f)
    np_cls, torch_cls, kwargs = TWIN_BASES.get(base, (None, None, {}))
    reference_opt = case.reference(np_cls(**kwargs) if np_cls else None)
    reference = sampy.run(reference_opt, f, x0, STEPS)
    x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    opt = case.twin([x], (torch_cls, kwargs) if torch_cls else None, **_noise(case))
    loss = as_torch_loss(f)
    closure = counting_closure(opt, lambda: loss(x))
    xs = [x.detach().numpy().copy()]
    for _ in range(STEPS):
        opt.step(closure)
        xs.append(x.detach().numpy().copy())
    assert not reference.diverged.any()
    np.testing.assert_allclose(np.array(xs), reference.xs, rtol=0, atol=1e-10)
    # The run must move, or equality would be trivial (bSAM's steps are larger: 1e-2); and the
    # closure runs exactly as often as the reference asks for gradients (LookSAM 1 + 1/k,
    # SAMAnatomy 3, SSAM-F 2 + one at every refresh).
    moved = 1e-2 if case.row == "BSAM" else 1e-4
    assert np.abs(reference.xs[-1] - x0).max() > moved
    assert closure.calls == reference.grad_evals


# Sums of examples: (problem, start) and the bases each family ran them with.
def _random_split() -> LogisticRegression:
    """Tail examples drawn at random, unrelated to the labels (40 % of 48)."""
    base = make_logistic_problem(n=48, dim=3, noise=0.1, l2=0.01, seed=5)
    groups = np.where(np.random.default_rng(7).random(48) < 0.4, "tail", "head")
    return LogisticRegression(base.features, base.labels, 0.01, groups=groups)


EXAMPLE_PROBLEMS = {
    # Learning rates that keep the runs 200 steps away from the minimum: there ‖g‖ ~ 1e-3 and
    # the normalised ε = ρ g/‖g‖ turns the rounding of the mean gradient (Σ g_i/n vs
    # Σ (g_i/n)) into 1e-9 by step 200 (measured: ESAM with γ = 1, SGD lr 0.1).
    "logistic-4d": (lambda: make_logistic_problem(dim=4, noise=0.1), [1.0, -0.5, 0.3, 2.0]),
    "logistic": (make_logistic_problem, [1.0, -0.5]),
    "imbalance-0.25": (
        lambda: make_logistic_problem(imbalance=0.25, l2=0.01, noise=0.1),
        [2.0, -1.5],
    ),
    "imbalance-0.6-3d": (
        lambda: make_logistic_problem(n=40, dim=3, imbalance=0.6, noise=0.2, seed=2),
        [1.5, -1.0, 0.5],
    ),
    "random-groups": (_random_split, [1.5, -1.0, 0.5]),
    "imbalance-0.5": (
        lambda: make_logistic_problem(imbalance=0.5, l2=0.01, noise=0.1),
        [2.0, -1.5],
    ),
}
EXAMPLE_BASES = {
    "logistic-4d": {
        "sgd-momentum": (ref.SGD, torch.optim.SGD, {"lr": 0.05, "momentum": 0.5}),
        "adam": (ref.Adam, torch.optim.Adam, {"lr": 1e-2}),
    },
    "logistic": {
        "sgd-momentum": (ref.SGD, torch.optim.SGD, {"lr": 0.1, "momentum": 0.5}),
        "adam": (ref.Adam, torch.optim.Adam, {"lr": 1e-2}),
    },
    "imbalance": {
        "sgd-momentum": (ref.SGD, torch.optim.SGD, {"lr": 0.1, "momentum": 0.9}),
        "adam": (ref.Adam, torch.optim.Adam, {"lr": 0.05}),
    },
}
ON_EXAMPLES = [
    (Case("ESAM", {"rho": 0.2}, "SDS"), "logistic-4d"),
    (Case("ESAM", {"rho": 0.3, "gamma": 0.3, "beta": 0.7, "adaptive": True,
                   "swp_granularity": "tensor", "swp_norm": "kept"}, "SDS-tensor-kept-asam"),
     "logistic-4d"),
    (Case("ESAM", {"rho": 0.2, "gamma": 1.0}, "no-SDS"), "logistic-4d"),
    (Case("SSAMF", {"rho": 0.3, "sparsity": 0.5, "num_samples": 8, "update_freq": 4}),
     "logistic-4d"),
    (Case("SSAMD", {"rho": 0.3, "sparsity": 0.25, "update_freq": 3, "T_end": 100},
          examples=True), "logistic-4d"),
    (Case("MSharpnessSAM", {"m": 8}, "m8"), "logistic"),
    (Case("MSharpnessSAM", {"m": 10, "rho": 0.1}, "m10-not-dividing"), "logistic"),
    (Case("MSharpnessSAM", {"m": 10, "shuffle": True, "seed": 3}, "m10-shuffle"), "logistic"),
    (Case("MSharpnessSAM", {"m": 16, "shuffle": True, "perturb_eps": 1e-3}, "m16-shuffle-eps"),
     "logistic"),
    (Case("MSharpnessSAM", {"m": 100}, "m-above-n"), "logistic"),
    *[(Case("ImbSAM", {"rho": 0.1}, split), split)
      for split in ("imbalance-0.25", "imbalance-0.6-3d", "random-groups")],
    (Case("BSAM", {"batchsplit": 1, "lr": 0.05, "rho": 0.05, "seed": 1}, "M1"), "imbalance-0.5"),
    (Case("BSAM", {"batchsplit": 4, "lr": 0.05, "rho": 0.05, "seed": 2}, "M4-code"),
     "imbalance-0.5"),
    # 64 = 13 + 13 + 13 + 13 + 12: the weights |B_b|/n differ.
    (Case("BSAM", {"batchsplit": 5, "lr": 0.1, "rho": 0.2, "weight_decay": 1e-2,
                   "update_order": "paper", "seed": 3}, "M5-uneven-paper"), "imbalance-0.5"),
    (Case("BSAM", {"batchsplit": 3, "lr": 0.05, "rho": 0.05, "num_data": 200.0, "seed": 4},
          "M3-N-given"), "imbalance-0.5"),
]  # fmt: skip


def _example_bases(problem: str) -> dict:
    return EXAMPLE_BASES["imbalance" if problem not in EXAMPLE_BASES else problem]


EXAMPLE_CASES = [
    pytest.param(case, problem, base, id=f"{case.id}-{base}")
    for case, problem in ON_EXAMPLES
    for base in (sorted(_example_bases(problem)) if case.variant.takes_base else ["own"])
]


@pytest.mark.parametrize(("case", "problem_name", "base"), EXAMPLE_CASES)
def test_twin_with_the_family_settings_follows_the_reference_on_examples(case, problem_name, base):
    """An example closure (with ImbSAM's tail mask, bSAM's batch size) on a sum of examples:
    the trajectory to 1e-10 and one backward pass per gradient the reference takes."""
    make_problem, x0 = EXAMPLE_PROBLEMS[problem_name]
    problem, x0 = make_problem(), np.array(x0)
    np_cls, torch_cls, kwargs = _example_bases(problem_name).get(base, (None, None, {}))
    reference = sampy.run(case.reference(np_cls(**kwargs) if np_cls else None), problem, x0, STEPS)
    x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    opt = case.twin([x], (torch_cls, kwargs) if torch_cls else None, **_noise(case))
    losses = as_torch_example_losses(problem)
    backwards = []
    x.register_hook(lambda grad: backwards.append(1))
    wanted = inspect.signature(opt.step).parameters
    kwargs = {}
    if "tail" in wanted:
        kwargs["tail"] = torch.as_tensor(problem.groups == TAIL)
    if "batch_size" in wanted:
        kwargs["batch_size"] = problem.n
    xs = [x0.copy()]
    for _ in range(STEPS):
        opt.step(lambda indices=None: losses(x, indices), **kwargs)
        xs.append(x.detach().numpy().copy())
    assert not reference.diverged.any()
    np.testing.assert_allclose(np.array(xs), reference.xs, rtol=0, atol=1e-10)
    assert np.abs(reference.xs[-1] - x0).max() > 1e-2
    assert len(backwards) == reference.grad_evals
