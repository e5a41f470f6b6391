"""The contracts every twin keeps, for every registry row, and the twins' shared pieces.

The contracts (state_dict round trip, several tensors against the flat reference, no host
read in a step) are parametrised over ``sampy.variants()`` and the settings the family files
ran them with (``twin_helpers.cases``); the shared pieces are the noise sources, the example
closure and ``restore()``.
"""

from __future__ import annotations

import functools
import inspect
import io

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from twin_helpers import (  # noqa: E402
    BSAM_ON_MLP,
    Case,
    MLPExamples,
    MLPSteps,
    cases,
    decaying_rho,
    flat,
    forbid_host_reads,
    mlp,
    two_groups,
)

import sampy  # noqa: E402
import sampy.torch as st  # noqa: E402
from sampy import optim as ref  # noqa: E402
from sampy.problems import make_logistic_problem  # noqa: E402
from sampy.torch import host_reads  # noqa: E402
from sampy.torch.examples import example_losses, require_example_closure  # noqa: E402
from sampy.torch.functional import as_torch_example_losses  # noqa: E402
from sampy.torch.noise import NumpyNoise, TorchNoise, make_noise  # noqa: E402

LIKE = torch.zeros(1, dtype=torch.float64)


# -- noise sources -------------------------------------------------------------------------------


def test_numpy_noise_draws_exactly_what_the_reference_generator_draws():
    noise, rng = make_noise("numpy", 7), np.random.default_rng(7)
    np.testing.assert_array_equal(noise.normal(5, LIKE).numpy(), rng.standard_normal(5))
    np.testing.assert_array_equal(noise.uniform(3, LIKE).numpy(), rng.random(3))
    np.testing.assert_array_equal(noise.permutation(9, LIKE.device).numpy(), rng.permutation(9))
    # A (M, d) draw is the same stream as M·d flat draws, row by row.
    np.testing.assert_array_equal(
        noise.normal(6, LIKE).reshape(2, 3).numpy(), rng.standard_normal((2, 3))
    )


@pytest.mark.parametrize("source", ["torch", "numpy"])
def test_noise_is_seeded_and_its_state_round_trips(source):
    a, b, c = make_noise(source, 3), make_noise(source, 3), make_noise(source, 4)
    first = a.normal(8, LIKE)
    assert torch.equal(first, b.normal(8, LIKE))
    assert not torch.equal(first, c.normal(8, LIKE))
    buffer = io.BytesIO()
    torch.save(a.state_dict(), buffer)
    expected = (a.normal(4, LIKE), a.uniform(4, LIKE), a.permutation(6, LIKE.device))
    buffer.seek(0)
    resumed = make_noise(source, 0)
    resumed.load_state_dict(torch.load(buffer, weights_only=False))
    got = (resumed.normal(4, LIKE), resumed.uniform(4, LIKE), resumed.permutation(6, LIKE.device))
    for e, g in zip(expected, got, strict=True):
        assert torch.equal(e, g)


def test_noise_draws_follow_the_requested_dtype_and_distribution():
    noise = TorchNoise(0)
    like32 = torch.zeros(1, dtype=torch.float32)
    z = noise.normal(20_000, like32)
    u = noise.uniform(20_000, like32)
    assert z.dtype == torch.float32 and u.dtype == torch.float32
    assert abs(z.mean().item()) < 0.03 and abs(z.std().item() - 1) < 0.03
    assert u.min().item() >= 0 and u.max().item() < 1 and abs(u.mean().item() - 0.5) < 0.01
    assert torch.equal(noise.permutation(50, LIKE.device).sort().values, torch.arange(50))


def test_noise_rejects_an_unknown_source_and_a_foreign_state():
    with pytest.raises(ValueError, match="noise"):
        make_noise("jax", 0)
    with pytest.raises(ValueError, match="numpy"):
        TorchNoise(0).load_state_dict(NumpyNoise(0).state_dict())


# -- the example closure and a SumOfExamples as a torch loss --------------------------------------


PROBLEM = make_logistic_problem()


def test_problem_as_torch_loss_gives_the_problem_s_losses_and_weighted_gradients():
    losses = as_torch_example_losses(PROBLEM)
    x0 = np.array([0.4, -0.7])
    x = torch.tensor(x0, requires_grad=True)
    idx = torch.tensor([3, 0, 11, 3])
    weights = torch.tensor([0.5, 2.0, -1.0, 0.25], dtype=torch.float64)
    value = losses(x, idx)
    np.testing.assert_array_equal(value.detach().numpy(), PROBLEM.per_example_losses(x0, idx))
    (value * weights).sum().backward()
    expected = weights.numpy() @ PROBLEM.per_example_grads(x0, idx.numpy())
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=0, atol=1e-15)
    assert losses(x).shape == (PROBLEM.n,)
    with pytest.raises(ValueError, match="shape"):
        losses(torch.zeros(3, dtype=torch.float64))


def test_example_losses_checks_the_closure_output():
    per_example = as_torch_example_losses(PROBLEM)
    x = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    assert example_losses(lambda idx: per_example(x, idx)).shape == (PROBLEM.n,)
    with pytest.raises(ValueError, match="reduction='none'"):
        example_losses(lambda idx: per_example(x, idx).mean())
    with pytest.raises(ValueError, match="3 indices"):
        example_losses(lambda idx: per_example(x), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="closure is required"):
        require_example_closure("MSharpnessSAM", None)


# -- restore(): abandon a perturbed step ---------------------------------------------------------


@pytest.mark.parametrize("cls", [st.SAM, st.GSAM, st.SAMAnatomy], ids=lambda c: c.__name__)
def test_restore_returns_to_w_exactly_and_the_next_step_is_a_clean_one(cls):
    def run(abandon: bool) -> torch.Tensor:
        x = torch.tensor([0.3, -1.1, 2.0], dtype=torch.float64, requires_grad=True)
        opt = cls([x], torch.optim.SGD, lr=0.1, momentum=0.9)

        def closure():
            opt.zero_grad()
            loss = (x**4).sum() + x.prod()
            loss.backward()
            return loss

        opt.step(closure)
        if abandon:
            before = x.detach().clone()
            momentum = opt.base_optimizer.state[x]["momentum_buffer"].clone()
            closure()
            opt.first_step(zero_grad=True)
            assert not torch.equal(x, before)
            opt.restore()
            assert torch.equal(x, before)
            assert torch.equal(opt.base_optimizer.state[x]["momentum_buffer"], momentum)
            assert "clean_grad" not in opt.state[x]
            with pytest.raises(RuntimeError, match="first_step"):
                opt.restore()
        opt.step(closure)
        return x.detach().clone()

    assert torch.equal(run(abandon=True), run(abandon=False))


# -- an ordinary closure where per-example losses are needed ------------------------------------


def test_a_closure_without_indices_is_refused_before_the_step_changes_anything():
    x = torch.tensor([0.5, -0.5], dtype=torch.float64, requires_grad=True)
    opt = st.ESAM([x], gamma=0.5, lr=0.1)
    generator = opt.noise_source.state_dict()

    def closure():
        opt.zero_grad()
        loss = (x**2).sum()
        loss.backward()
        return loss

    with pytest.raises(ValueError, match="closure takes no indices"):
        opt.step(closure)
    assert torch.equal(x, torch.tensor([0.5, -0.5], dtype=torch.float64))
    after = opt.noise_source.state_dict()["states"]
    assert after.keys() == generator["states"].keys()  # no generator made: nothing was drawn
    assert all(torch.equal(after[k], generator["states"][k]) for k in after)
    with pytest.raises(ValueError, match="closure takes no indices"):
        st.ImbSAM([x], lr=0.1).step(closure, torch.tensor([True, False]))
    assert require_example_closure("m-SAM", lambda indices=None: indices) is not None


# -- LR schedulers see second_step() as the optimizer's step ------------------------------------


@pytest.mark.parametrize("cls", [st.SAM, st.LookSAM, st.WSAM], ids=lambda c: c.__name__)
def test_a_scheduler_in_a_first_step_second_step_loop_does_not_warn(cls, recwarn):
    x = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    opt = cls([x], lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    for _ in range(2):
        (x**2).sum().backward()
        opt.first_step(zero_grad=True)
        (x**2).sum().backward()
        opt.second_step(zero_grad=True)
        scheduler.step()
    assert not [w for w in recwarn if "lr_scheduler.step()" in str(w.message)]
    assert opt.param_groups[0]["lr"] == opt.base_optimizer.param_groups[0]["lr"] == 0.025


def test_make_twin_applies_the_row_preset():
    x = torch.ones(2, dtype=torch.float64, requires_grad=True)
    asam = sampy.variant("ASAM").make_twin([x], lr=0.1)
    assert isinstance(asam, st.SAM) and asam.param_groups[0]["adaptive"] is True
    assert isinstance(sampy.variant("MSAM").make_twin([x], lr=0.1), st.MSAM)
    with pytest.raises(ValueError, match="base_optimizer"):
        sampy.variant("MSAM").make_twin([x], torch.optim.SGD, lr=0.1)


# == The contracts every twin keeps, driven by the registry ====================================
#
# One test per contract, parametrised over every row of ``sampy.variants()`` at its defaults and
# over the settings the family files ran it with (their own rules, masks, noise sources,
# granularities); a row a contract does not apply to is listed with the reason. The family files
# (``test_torch_<family>.py``) keep only what is specific to their variants.

# The settings the template family ran every contract with (the other defaults are rows).
TEMPLATE_SETTINGS = (
    Case("GSAM", {"alpha": 0.2, "rho_schedule": decaying_rho}, "schedule"),
    Case("GSAM", {"alpha": 0.4, "adaptive": True, "eta": 0.01}, "asam"),
    Case("WSAM", {"rho": 0.02, "gamma": 0.6}, "tame"),
    Case("WSAM", {"decouple": False, "gamma": 0.7, "max_norm": 1.0}, "coupled-clip"),
    Case("WSAM", {"rho": 0.02, "gamma": 0.6, "adaptive": True, "max_norm": 5.0}, "asam-clip"),
    Case("USAM", {"rho": 1e-3}, "small-rho"),
    Case("FriendlySAM", {"momentum_order": "paper", "sigma": 0.5}, "paper"),
    Case("LookSAM", {"rho": 0.05, "k": 3}, "k3"),
    Case("SAMCkpt", {"checkpoints": (1, 2)}, "two"),
    Case("SAMAgree", {"fill": "other"}, "fill-other"),
    Case("ClampSAM", {"renorm": True}, "renorm"),
    Case("ClipSAM", {"condition": 1.5}, "condition"),
)

STATE_CASES = cases(
    Case("GSAM", {"alpha": 0.4}, "alpha"),
    *TEMPLATE_SETTINGS,
    Case("RandomSAM", {"rho": 0.1}, "torch"),
    Case("RandomSAM", {"kind": "sphere", "mix": 0.3, "noise": "numpy"}, "sphere-numpy"),
    Case("MultiStepSAM", {"rho": 0.1, "ascent_steps": 2}, "k2"),
    Case("MSharpnessSAM", {"m": 5, "shuffle": True}, "shuffle-torch"),
    Case("MSharpnessSAM", {"m": 5, "shuffle": True, "noise": "numpy"}, "shuffle-numpy"),
    Case("ESAM", {"noise": "numpy"}, "numpy"),
    Case("ESAM", {"swp_granularity": "tensor", "swp_norm": "kept"}, "tensor-kept"),
    Case("ESAM", {"swp_granularity": "tensor", "swp_norm": "kept", "noise": "numpy"},
         "tensor-kept-numpy"),
    Case("SSAMF", {"sparsity": 0.5, "num_samples": 6, "update_freq": 3}, "examples"),
    Case("SSAMF", {"sparsity": 0.5, "num_samples": 6, "update_freq": 3, "noise": "numpy"},
         "examples-numpy"),
    Case("SSAMF", {"sparsity": 0.5, "update_freq": 3}, "plain", examples=False),
    Case("SSAMF", {"sparsity": 0.5, "update_freq": 3, "noise": "numpy"}, "plain-numpy",
         examples=False),
    Case("SSAMD", {"sparsity": 0.5, "update_freq": 2, "drop_strategy": "random",
                   "growth_strategy": "random"}, "random"),
    Case("SSAMD", {"sparsity": 0.5, "update_freq": 2, "drop_strategy": "random",
                   "growth_strategy": "random", "noise": "numpy"}, "random-numpy"),
    Case("BSAM", BSAM_ON_MLP, "mlp"),
    Case("BSAM", {**BSAM_ON_MLP, "noise": "numpy"}, "mlp-numpy"),
)  # fmt: skip
# The bases a checkpoint carries: none (plain SGD: only the rule's own state), momentum, Adam.
STATE_BASES = {
    "sgd": (torch.optim.SGD, {"lr": 0.1}),
    "sgd-momentum": (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9}),
    "adam": (torch.optim.Adam, {"lr": 1e-2}),
}
# Cases whose step depends on w alone with plain SGD (no EMA, no counter, no mask, no draw):
# a fresh optimizer resumes them exactly, so only the equality with the loaded one is checked.
STATELESS_WITH_PLAIN_SGD = {
    "SAM", "ASAM", "USAM", "USAM-small-rho", "FisherSAM", "GSAM", "GSAM-alpha", "GSAM-asam",
    "WSAM", "WSAM-tame", "WSAM-coupled-clip", "WSAM-asam-clip", "MultiStepSAM",
    "MultiStepSAM-k2", "MSharpnessSAM", "LogitSAM", "JSAM", "ImbSAM", "SAME", "CustomSAME",
    "SAMCkpt", "SAMCkpt-two", "SAMDirection", "SAMMagnitude", "SAMAgree", "SAMAgree-fill-other",
    "SGDAgree", "ClampSAM", "ClampSAM-renorm", "ClipSAM", "ClipSAM-condition", "SAMAnatomy",
}  # fmt: skip


def _state_runs():
    out = []
    for param in STATE_CASES:
        case = param.values[0]
        bases = sorted(STATE_BASES) if case.variant.takes_base else ["own"]
        out += [pytest.param(case, base, id=f"{case.id}-{base}") for base in bases]
    return out


@pytest.mark.parametrize(("case", "base"), _state_runs())
def test_state_dict_round_trip_continues_bit_identically(case, base):
    """Save mid-run (between two refreshes, in the middle of a LookSAM cycle), load into a
    fresh optimizer on other weights, continue: bit-identical to the run that never stopped."""

    def make(model):
        opt = case.twin(two_groups(model), STATE_BASES.get(base))
        return opt, MLPSteps(case, opt, model)

    model = mlp()
    opt, steps = make(model)
    steps(5)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
    steps(5)
    expected = flat(model)

    def resumed(load: bool) -> torch.Tensor:
        buffer.seek(0)
        saved = torch.load(buffer, weights_only=False)
        model2 = mlp(seed=123)
        model2.load_state_dict(saved["model"])
        opt2, steps2 = make(model2)
        if load:
            opt2.load_state_dict(saved["opt"])
            base_optimizer = getattr(opt2, "base_optimizer", None)
            assert base_optimizer is None or base_optimizer.param_groups is opt2.param_groups
        steps2(5)
        return flat(model2)

    assert torch.equal(resumed(load=True), expected)
    if not (base == "sgd" and case.id in STATELESS_WITH_PLAIN_SGD):
        # The saved state matters: a fresh optimizer from the same weights goes elsewhere.
        assert not torch.equal(resumed(load=False), expected)


# logit-SAM's and J-SAM's references perturb a linear logistic model's examples (sampy.problems):
# they have no flat-vector form of a two-layer network; tests/test_label_noise_torch.py checks
# the twins on the model they are written for.
NO_FLAT_REFERENCE = {
    "LogitSAM": "the reference needs a linear logistic model",
    "JSAM": "the reference needs a linear logistic model",
}
MULTI_CASES = cases(
    *TEMPLATE_SETTINGS,
    Case("RandomSAM", {"rho": 0.1, "seed": 4}, "gaussian"),
    Case("RandomSAM", {"rho": 0.2, "kind": "sphere", "mix": 0.5}, "sphere"),
    Case("MultiStepSAM", {"rho": 0.1, "ascent_steps": 3}, "k3"),
    Case("MSharpnessSAM", {"rho": 0.1, "m": 5, "shuffle": True}, "shuffle"),
    Case("ESAM", {"rho": 0.5}, "full"),
    Case("ESAM", {"rho": 0.5, "swp_norm": "kept", "adaptive": True}, "kept-asam"),
    Case("SSAMF", {"sparsity": 0.7, "num_samples": 5, "update_freq": 3}, "examples"),
    Case("SSAMF", {"sparsity": 0.7, "update_freq": 3}, "plain", examples=False),
    Case("SSAMD", {"sparsity": 0.6, "update_freq": 2, "T_end": 12}, "gradient-random"),
    Case("SSAMD", {"sparsity": 0.3, "update_freq": 1, "drop_strategy": "weight", "T_end": 30},
         "weight-random"),
    Case("ImbSAM", {"rho": 0.1}, "rho"),
    Case("BSAM", BSAM_ON_MLP, "mlp"),
    skip=NO_FLAT_REFERENCE,
)  # fmt: skip
MULTI_STEPS = 20
# Twins whose closure calls are not one per gradient: ImbSAM takes 3 gradients from 2 forwards
# (head and tail of one forward at w), logit-SAM and J-SAM call no closure.
FEWER_FORWARDS = {"ImbSAM", "LogitSAM", "JSAM"}


def _flat_oracle(case: Case) -> ref.Oracle:
    """The flattened model as the reference sees it: a sum of examples for an example
    closure, else the mean loss as a plain function (SSAM-F's Fisher is then g²)."""
    problem = MLPExamples()
    if case.uses_examples:
        return ref.Oracle(problem)
    oracle = ref.Oracle(problem.loss)
    oracle._grad = problem.grad
    return oracle


@functools.cache
def _base_run() -> np.ndarray:
    """The flattened model after ``MULTI_STEPS`` steps of the base optimizer alone."""
    base, oracle = ref.SGD(lr=0.1, momentum=0.9), _flat_oracle(Case("SAM"))
    x = flat(mlp()).numpy().copy()
    state = base.init(x)
    for _ in range(MULTI_STEPS):
        x, state = base.update(x, oracle.grad(x), state)
    return x


@pytest.mark.parametrize("case", MULTI_CASES)
def test_multi_tensor_model_equals_the_flat_reference(case):
    """4 tensors in 2 groups equal the reference on the flattened vector at every step: one
    global norm, global top-k masks, one flat draw split in group order (``noise="numpy"``)."""
    model = mlp()
    oracle = _flat_oracle(case)
    row = case.variant
    reference = case.reference(ref.SGD(lr=0.1, momentum=0.9) if row.takes_base else None)
    noise = {"noise": "numpy"} if "noise" in inspect.signature(row.twin()).parameters else {}
    twin = case.twin(two_groups(model), **noise)
    steps = MLPSteps(case, twin, model)
    x = flat(model).numpy().copy()
    start, state = x.copy(), reference.init(x)
    for _ in range(MULTI_STEPS):
        x, state = reference.step(x, state, oracle)
        steps()
        np.testing.assert_allclose(flat(model).numpy(), x, rtol=0, atol=1e-12)
    assert np.abs(x - start).max() > 1e-3  # the run went somewhere
    if row.takes_base:  # and not where the base optimizer alone goes
        assert np.abs(x - _base_run()).max() > 1e-4
    if case.row not in FEWER_FORWARDS:
        assert steps.calls == oracle.calls  # one closure call per reference gradient
    if hasattr(twin, "flat_mask"):  # SSAM's masks: the reference's, global over the tensors
        assert torch.equal(twin.flat_mask(), torch.as_tensor(state.mask))
        live = int(twin.flat_mask().sum())
        if case.row == "SSAMF":
            assert live == int(x.size * (1 - case.hyper.get("sparsity", 0.2)))
        assert 0 < live < x.size


SYNC_CASES = cases(
    *TEMPLATE_SETTINGS,
    Case("RandomSAM", {"rho": 0.1, "mix": 0.3}, "mix"),
    Case("RandomSAM", {"kind": "sphere"}, "sphere"),
    Case("MultiStepSAM", {"rho": 0.1, "ascent_steps": 3}, "k3"),
    Case("MSharpnessSAM", {"rho": 0.1, "m": 5, "shuffle": True}, "shuffle"),
    Case("ESAM", {"adaptive": True}, "asam"),
    Case("ESAM", {"gamma": 1.0, "swp_norm": "kept"}, "plain-kept", examples=False),
    Case("SSAMF", {"sparsity": 0.5, "num_samples": 3, "update_freq": 2}, "examples"),
    Case("SSAMF", {"sparsity": 0.5, "update_freq": 2}, "plain", examples=False),
    Case("SSAMD", {"sparsity": 0.5, "update_freq": 1, "drop_strategy": "weight",
                   "growth_strategy": "random"}, "weight-random"),
    Case("BSAM", {**BSAM_ON_MLP, "batchsplit": 1}, "plain", examples=False),
    Case("BSAM", BSAM_ON_MLP, "mlp"),
)  # fmt: skip


@pytest.mark.parametrize("case", SYNC_CASES)
def test_a_whole_step_reads_no_tensor_value_on_the_host(case, monkeypatch):
    """With the default ``noise="torch"``, no ``.item()``, ``nonzero()`` or Python branch on a
    tensor anywhere in ``step`` (closure included): on a GPU each would wait for the device.
    ImbSAM gets its tail as indices (a boolean mask costs one documented ``nonzero()``). The
    CPU's fused paths read their factors on the host (``sampy.torch.host_reads``): this runs
    the device path they take everywhere else."""
    monkeypatch.setattr(host_reads, "READ_CPU_VALUES", False)
    model = mlp()
    opt = case.twin(two_groups(model))
    steps = MLPSteps(case, opt, model, tail_indices=True)
    steps()  # warm-up: lazily built generators, buffers and masks
    opt.step = forbid_host_reads(opt.step, monkeypatch, also=("nonzero",))
    before = flat(model)
    steps(4)
    assert not torch.equal(flat(model), before)
    # The guard has teeth: a read inside it fails.
    with pytest.raises(AssertionError, match="host"):
        forbid_host_reads(lambda: flat(model)[0].item(), monkeypatch)()


SKIP_CASES = cases(
    *TEMPLATE_SETTINGS,
    Case("ESAM", {"gamma": 1.0, "adaptive": True}, "plain", examples=False),
    Case("SSAMF", {"sparsity": 0.0, "num_samples": 3, "update_freq": 2}, "examples"),
    Case("SSAMF", {"sparsity": 0.0, "update_freq": 2}, "plain", examples=False),
    Case("SSAMD", {"sparsity": 0.25, "update_freq": 1}, "every-step"),
    Case("BSAM", {**BSAM_ON_MLP, "batchsplit": 1}, "plain", examples=False),
    Case("BSAM", BSAM_ON_MLP, "mlp"),
)


# logit-SAM and J-SAM differentiate forward(params, inputs) with torch.func: every parameter of
# forward gets a gradient, zeros for one the loss does not use, so a weight-decaying base would
# move it (torch's optimizers skip a parameter whose .grad is None).
ZERO_GRADIENT_FOR_UNUSED = "torch.func gives an unused parameter a zero gradient, not None"
SKIP_CASES = [
    pytest.param(*param.values, id=param.id, marks=pytest.mark.xfail(
        strict=True, raises=AssertionError, reason=ZERO_GRADIENT_FOR_UNUSED
    )) if param.values[0].row in ("LogitSAM", "JSAM") else param
    for param in SKIP_CASES
]  # fmt: skip


@pytest.mark.parametrize("case", SKIP_CASES)
def test_parameters_without_gradient_are_skipped(case):
    """A parameter of the model the loss does not use (no gradient) and one that needs none,
    each in a group with used ones, are left as they are, with no gradient; the used
    parameters move and stay finite."""
    model = mlp()
    model.register_parameter("unused", torch.nn.Parameter(torch.tensor([5.0]).double()))
    frozen = torch.nn.Parameter(torch.tensor([3.0]).double(), requires_grad=False)
    model.register_parameter("frozen", frozen)
    params = list(model.parameters())  # unused, frozen, then the layers'
    opt = case.twin([{"params": params[:4]}, {"params": params[4:]}])
    before = flat(model)
    MLPSteps(case, opt, model)(4)
    assert model.unused.grad is None and model.unused.item() == 5.0
    assert model.frozen.grad is None and model.frozen.item() == 3.0
    after = flat(model)
    assert torch.isfinite(after).all() and not torch.equal(after, before)


def test_a_group_without_any_gradient_is_skipped():
    """A whole group the loss does not reach (a frozen embedding, an unused head)."""
    w = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64, requires_grad=True)
    unused = torch.tensor([5.0], dtype=torch.float64, requires_grad=True)
    opt = st.SAM([{"params": [w]}, {"params": [unused]}], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (w**4).sum() + w.prod()
        loss.backward()
        return loss

    opt.step(closure)
    assert unused.grad is None and unused.item() == 5.0


# Rows whose step needs no closure, and why.
NO_CLOSURE_NEEDED = {
    # One gradient a step, as torch.optim.SGD: step() reads p.grad, the closure is optional.
    "MSAM": "one gradient a step, read from p.grad",
    "AdamWMSAM": "one gradient a step, read from p.grad",
    "ScheduleFreeAdamW": "one gradient a step, read from p.grad",
    "NotesAdamWMSAMScheduleFree": "the notes' loop reads p.grad (and calls a closure if given)",
    "AdamWMSAMScheduleFree": "one gradient a step, read from p.grad",
    # step(forward, inputs, targets): the arguments are required by the signature itself.
    "LogitSAM": "step takes forward, inputs, targets",
    "JSAM": "step takes forward, inputs, targets",
}
CLOSURE_CASES = cases(
    Case("ESAM", {"gamma": 1.0}, "no-SDS"),
    Case("BSAM", {"batchsplit": 1, "num_data": 10.0}, "plain"),
    skip=NO_CLOSURE_NEEDED,
)


@pytest.mark.parametrize("case", CLOSURE_CASES)
def test_step_without_closure_and_second_step_out_of_order_fail_clearly(case):
    """``step()`` without the closure it needs is a ValueError that names the class and asks
    for one; ``second_step()`` before ``first_step()`` a RuntimeError that names first_step."""
    x = torch.ones(2, dtype=torch.float64, requires_grad=True)
    opt = case.twin([x], (torch.optim.SGD, {"lr": 0.1}))
    with pytest.raises(ValueError, match=f"closure is required: {case.variant.cls.__name__}"):
        opt.step()
    assert torch.equal(x, torch.ones(2, dtype=torch.float64))
    if not hasattr(opt, "second_step"):
        return  # bSAM: one step(), no phases
    with pytest.raises(RuntimeError, match="first_step"):
        opt.second_step()


def test_on_the_cpu_sam_reads_one_factor_per_step_on_the_host(monkeypatch):
    """The fused ``w + c g`` takes its factor as a Python number where reading it waits for
    no device: one host read per step on the CPU (the per-tensor pieces of the norm, read at
    once), none on the device path (above)."""
    model = mlp()
    opt = st.SAM(model.parameters(), torch.optim.SGD, lr=0.1, rho=0.05)
    steps = MLPSteps(Case("SAM", {}, "plain", examples=False), opt, model)
    steps()
    reads = []
    for name in ("item", "tolist"):
        read = getattr(torch.Tensor, name)
        monkeypatch.setattr(
            torch.Tensor, name, lambda t, read=read, name=name: reads.append(name) or read(t)
        )
    steps(3)
    assert len(reads) == 3, reads
