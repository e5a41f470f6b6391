"""What is ESAM's, SSAM-F's and SSAM-D's own: closure calls, reductions, SDS, masks, granularity.

The contracts every twin keeps (trajectory against the reference, checkpoints, several tensors,
host reads, signatures) run for these rows and their settings in the registry-driven suites
(``test_torch_twins_from_registry.py``, ``test_torch_contracts.py``, ``test_torch_registry.py``).
Comparisons with the reference use ``noise="numpy"`` (the reference's draws, call for call).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from twin_helpers import (  # noqa: E402
    STEPS,
    counting_closure,
    data,
    flat,
    forbid_host_reads,
    mlp,
    two_groups,
)

from sampy import optim as ref  # noqa: E402
from sampy.problems import make_logistic_problem  # noqa: E402
from sampy.torch import SAM, host_reads  # noqa: E402
from sampy.torch.esam import ESAM  # noqa: E402
from sampy.torch.functional import as_torch_example_losses  # noqa: E402
from sampy.torch.masks import kth_largest, top_k_indices, top_k_mask  # noqa: E402
from sampy.torch.ssam import SSAMD, SSAMF  # noqa: E402

TWINS = (ESAM, SSAMF, SSAMD)
REFERENCES = {ESAM: ref.ESAM, SSAMF: ref.SSAMF, SSAMD: ref.SSAMD}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@dataclass(frozen=True)
class Row:
    """A twin class and the hyperparameters a test runs it (and its reference) with."""

    id: str
    twin: type
    hyper: dict[str, Any] = field(default_factory=dict)

    @property
    def reference(self) -> type:
        return REFERENCES[self.twin]


# -- (1) how ESAM calls an example closure --------------------------------------------------------

PROBLEM = make_logistic_problem(dim=4, noise=0.1)
PROBLEM_X0 = np.array([1.0, -0.5, 0.3, 2.0])
# Learning rates that keep the runs 200 steps away from the minimum: there ‖g‖ ~ 1e-3 and the
# normalised ε = ρ g/‖g‖ turns the rounding of the mean gradient (Σ g_i/n vs Σ (g_i/n)) into
# 1e-9 by step 200 (measured: ESAM with γ = 1, SGD lr 0.1); at these rates every row agrees
# to 1e-15.
EXAMPLE_BASES = {
    "sgd-momentum": (ref.SGD, torch.optim.SGD, {"lr": 0.05, "momentum": 0.5}),
    "adam": (ref.Adam, torch.optim.Adam, {"lr": 1e-2}),
}
# The trajectories of every sparse setting against the reference run in
# test_torch_twins_from_registry.py; here, what ESAM asks of an example closure.
EXAMPLE_ROWS = [
    Row("ESAM-SDS", ESAM, {"rho": 0.2}),
    Row(
        "ESAM-SDS-tensor-kept-asam",
        ESAM,
        {
            "rho": 0.3,
            "gamma": 0.3,
            "beta": 0.7,
            "adaptive": True,
            "swp_granularity": "tensor",
            "swp_norm": "kept",
        },
    ),
    Row("ESAM-no-SDS", ESAM, {"rho": 0.2, "gamma": 1.0}),
    Row("SSAMF-examples", SSAMF, {"rho": 0.3, "sparsity": 0.5, "num_samples": 8, "update_freq": 4}),
    Row("SSAMD", SSAMD, {"rho": 0.3, "sparsity": 0.25, "update_freq": 3, "T_end": 100}),
]


def _reference_on_problem(row: Row, base, steps: int):
    opt = row.reference(base, **row.hyper)
    oracle = ref.Oracle(PROBLEM)
    x = PROBLEM_X0.copy()
    state = opt.init(x)
    xs = [x]
    for _ in range(steps):
        x, state = opt.step(x, state, oracle)
        xs.append(x)
    return np.array(xs), oracle


def _example_closure(losses_of: Callable[[torch.Tensor | None], torch.Tensor]):
    """An example closure that counts its calls with and without gradients."""

    def closure(indices: torch.Tensor | None = None) -> torch.Tensor:
        closure.calls["grad" if torch.is_grad_enabled() else "forward"] += 1
        closure.indices.append(indices)
        return losses_of(indices)

    closure.calls = {"grad": 0, "forward": 0}
    closure.indices = []
    return closure


@pytest.mark.parametrize("base", sorted(EXAMPLE_BASES))
@pytest.mark.parametrize("row", EXAMPLE_ROWS, ids=[r.id for r in EXAMPLE_ROWS])
def test_an_example_closure_is_called_as_the_reference_evaluates(row, base):
    """One backward per gradient the reference takes; ESAM's SDS adds one no-grad forward at
    w + ε a step (the forward at w gives both g and the losses ℓ_i(w)) and then differentiates
    exactly the k = ⌊γn⌋ examples it selected."""
    np_cls, torch_cls, kwargs = EXAMPLE_BASES[base]
    _, oracle = _reference_on_problem(row, np_cls(**kwargs), STEPS)
    x = torch.tensor(PROBLEM_X0, requires_grad=True)
    opt = row.twin([x], torch_cls, **row.hyper, noise="numpy", **kwargs)
    losses = as_torch_example_losses(PROBLEM)
    closure = _example_closure(lambda idx: losses(x, idx))
    for _ in range(STEPS):
        opt.step(closure)
    assert closure.calls["grad"] == oracle.calls
    sds = row.twin is ESAM and row.hyper.get("gamma", 0.5) < 0.99
    assert closure.calls["forward"] == (oracle.loss_calls - STEPS if sds else 0)
    if sds:
        k = max(1, int(PROBLEM.n * row.hyper.get("gamma", 0.5)))
        selected = [i for i in closure.indices if i is not None and i.numel() > 1]
        assert len(selected) == STEPS and all(i.numel() == k for i in selected)


# -- (2) reductions -----------------------------------------------------------------------------

INPUTS, TARGETS = data()


def _mean_loss(model: torch.nn.Module) -> Callable[[], torch.Tensor]:
    return lambda: torch.nn.functional.cross_entropy(model(INPUTS), TARGETS)


def _example_losses(model: torch.nn.Module) -> Callable[[torch.Tensor | None], torch.Tensor]:
    def losses(indices: torch.Tensor | None = None) -> torch.Tensor:
        x, y = (INPUTS, TARGETS) if indices is None else (INPUTS[indices], TARGETS[indices])
        return torch.nn.functional.cross_entropy(model(x), y, reduction="none")

    return losses


def _run(make_opt, steps: int, example: bool = False, seed: int = 0, model=None):
    model = mlp(seed) if model is None else model
    opt = make_opt(two_groups(model))
    closure = _example_losses(model) if example else counting_closure(opt, _mean_loss(model))
    for _ in range(steps):
        opt.step(closure)
    return flat(model), opt


SGD_M = {"lr": 0.1, "momentum": 0.9}


def test_esam_with_beta_and_gamma_1_is_sam_with_eps_1e_7():
    ours, _ = _run(lambda g: ESAM(g, beta=1.0, gamma=1.0, rho=0.1, **SGD_M), 15)
    sam, _ = _run(lambda g: SAM(g, rho=0.1, perturb_eps=1e-7, **SGD_M), 15)
    other, _ = _run(lambda g: SAM(g, rho=0.1, perturb_eps=1e-3, **SGD_M), 15)
    torch.testing.assert_close(ours, sam, rtol=0, atol=1e-13)
    assert (ours - other).abs().max() > 1e-9  # the eps is seen at this precision


def test_esam_with_adaptive_and_beta_1_is_asam_with_eta_0():
    ours, _ = _run(lambda g: ESAM(g, beta=1.0, gamma=1.0, adaptive=True, rho=0.5, **SGD_M), 10)
    asam, _ = _run(lambda g: SAM(g, rho=0.5, adaptive=True, perturb_eps=1e-7, **SGD_M), 10)
    torch.testing.assert_close(ours, asam, rtol=0, atol=1e-13)


@pytest.mark.parametrize("example", [False, True], ids=["plain", "example"])
def test_esam_with_rho_0_and_no_sds_is_the_base_optimizer(example):
    ours, _ = _run(lambda g: ESAM(g, rho=0.0, gamma=1.0, **SGD_M), 8, example=example)
    base, _ = _run(lambda g: torch.optim.SGD(g, **SGD_M), 8)
    if example:  # mean of per-example losses vs the fused mean: rounding only
        torch.testing.assert_close(ours, base, rtol=0, atol=1e-14)
    else:
        assert torch.equal(ours, base)


def test_ssamf_with_sparsity_0_is_a_base_step_then_sam():
    model = mlp()
    ours = SSAMF(two_groups(model), sparsity=0.0, rho=0.1, update_freq=4, lr=0.1)
    closure = counting_closure(ours, _mean_loss(model))
    ours.step(closure)  # the all-zero mask: a plain SGD step, then the first refresh
    after_one = flat(model)
    sgd, _ = _run(lambda g: torch.optim.SGD(g, lr=0.1), 1)
    assert torch.equal(after_one, sgd)
    assert bool(ours.flat_mask().all())
    twin_model = mlp()
    with torch.no_grad():
        for p, q in zip(twin_model.parameters(), model.parameters(), strict=True):
            p.copy_(q)
    for _ in range(8):
        ours.step(closure)
    sam, _ = _run(lambda g: SAM(g, rho=0.1, perturb_eps=1e-7, lr=0.1), 8, model=twin_model)
    torch.testing.assert_close(flat(model), sam, rtol=0, atol=1e-13)


def test_ssamd_with_sparsity_0_and_no_drop_is_sam():
    hyper = {"sparsity": 0.0, "drop_rate": 0.0, "update_freq": 2, "rho": 0.1}
    ours, opt = _run(lambda g: SSAMD(g, **hyper, **SGD_M), 10)
    sam, _ = _run(lambda g: SAM(g, rho=0.1, perturb_eps=1e-7, **SGD_M), 10)
    torch.testing.assert_close(ours, sam, rtol=0, atol=1e-13)
    assert bool(opt.flat_mask().all())


@pytest.mark.parametrize("cls", [SSAMF, SSAMD], ids=lambda c: c.__name__)
@pytest.mark.parametrize("hyper", [{"sparsity": 1.0}, {"rho": 0.0}], ids=["s=1", "rho=0"])
def test_ssam_with_sparsity_1_or_rho_0_is_the_base_optimizer(cls, hyper):
    ours, opt = _run(lambda g: cls(g, update_freq=2, **hyper, **SGD_M), 7)
    base, _ = _run(lambda g: torch.optim.SGD(g, **SGD_M), 7)
    assert torch.equal(ours, base)
    if hyper.get("sparsity") == 1.0:
        assert not bool(opt.flat_mask().any())


# -- (3) SDS selection --------------------------------------------------------------------------


def test_top_k_is_stable_and_global_with_nan_last():
    scores = torch.tensor([1.0, 3.0, 3.0, math.nan, 2.0, 3.0], dtype=torch.float64)
    assert top_k_indices(scores, 2).tolist() == [1, 2]
    assert top_k_indices(scores, 4).tolist() == [1, 2, 4, 5]
    assert top_k_mask(scores, 3).tolist() == [False, True, True, False, False, True]
    assert not top_k_mask(scores, 0).any()
    reference = ref.esam.top_k_mask(scores.numpy(), 5)
    assert top_k_mask(scores, 5).tolist() == reference.tolist()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_linear_time_top_k_mask_equals_the_reference_stable_sort(dtype):
    """Many ties (integer scores), NaNs and ±inf: every k from 0 to n, as the NumPy mirror."""
    gen = np.random.default_rng(5)
    scores = gen.integers(0, 6, 300).astype(float)
    scores[gen.choice(300, 25, replace=False)] = math.nan
    scores[gen.choice(300, 5, replace=False)] = math.inf
    scores[:3] = [math.nan, -1.0, math.inf]
    as_tensor = torch.tensor(scores, dtype=dtype)
    for k in range(301):
        expected = ref.esam.top_k_mask(scores, k)
        assert top_k_mask(as_tensor, k).numpy().tolist() == expected.tolist(), k


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
@pytest.mark.parametrize("ties", [True, False], ids=["ties", "distinct"])
def test_kth_largest_on_the_host_is_the_device_paths(dtype, ties, monkeypatch):
    """On the CPU the k-th largest comes from NumPy's partition, elsewhere from topk: the same
    value, the sorted vector's, for every k tried (with ±inf among the scores)."""
    gen = torch.Generator().manual_seed(3)
    n = 40_000
    if ties:
        scores = torch.randint(0, 50, (n,), generator=gen).to(dtype)
    else:
        scores = torch.randn(n, generator=gen, dtype=torch.float64).to(dtype)
    scores[:2] = torch.tensor([math.inf, -math.inf], dtype=dtype)
    ordered = torch.sort(scores, descending=True).values
    for k in (1, 2, 777, n // 2, n - 1, n):
        host = kth_largest(scores, k)
        monkeypatch.setattr(host_reads, "READ_CPU_VALUES", False)
        device = kth_largest(scores, k)
        monkeypatch.setattr(host_reads, "READ_CPU_VALUES", True)
        assert host.dtype == dtype and host.dim() == 0
        assert host.item() == device.item() == ordered[k - 1].item(), k


@pytest.mark.parametrize("ties", [True, False], ids=["ties", "distinct"])
def test_large_top_k_masks_are_the_reference_stable_sorts(ties):
    """With and without ties at the k-th value (the host's shortcut keeps every tie only when
    all of them fit), on a vector as long as a small model's parameters."""
    gen = np.random.default_rng(11)
    n = 50_000
    scores = gen.integers(0, 200, n).astype(float) if ties else gen.standard_normal(n)
    scores[gen.choice(n, 40, replace=False)] = math.nan
    as_tensor = torch.tensor(scores)
    for k in (1, 999, n // 3, n - 41, n - 1):
        expected = ref.esam.top_k_mask(scores, k)
        assert torch.equal(top_k_mask(as_tensor, k), torch.tensor(expected)), k


def test_large_top_k_masks_when_the_sample_misleads_or_most_scores_tie():
    """Every 61st entry (the CPU path's sample) far above the rest, so that the sample's
    bracket misses and topk decides; and a masked score, four in five entries exactly 0."""
    gen = np.random.default_rng(12)
    n = 61 * 1000
    periodic = gen.random(n)
    periodic[::61] += 1000.0
    masked = gen.random(n) * (gen.random(n) < 0.2)
    for scores in (periodic, masked):
        as_tensor = torch.tensor(scores, dtype=torch.float32)
        for k in (5, 1000, n // 10, n // 2, n - 7):
            expected = ref.esam.top_k_mask(as_tensor.numpy().astype(float), k)
            assert torch.equal(top_k_mask(as_tensor, k), torch.tensor(expected)), k
            assert kth_largest(as_tensor, k).item() == np.sort(as_tensor.numpy())[n - k], k


@pytest.mark.parametrize(
    ("gamma", "expected"),
    [(0.5, [1, 2, 5]), (0.45, [1, 2]), (0.34, [1, 2]), (0.01, [1]), (0.99, [0, 1, 2, 3, 4, 5])],
)
def test_select_keeps_exactly_k_examples_ties_to_the_lower_index(gamma, expected):
    x = torch.zeros(1, requires_grad=True)
    opt = ESAM([x], gamma=gamma, lr=0.1)
    sharpness = torch.tensor([1.0, 3.0, 3.0, -1.0, 2.0, 3.0])
    assert opt.select(sharpness).tolist() == expected
    assert opt.select(torch.zeros(6)).tolist() == list(range(len(expected)))  # ρ = 0: ties only


@pytest.mark.parametrize("rho", [0.5, 0.0])
def test_a_step_selects_the_examples_whose_loss_rises_most(rho):
    """ℓ_i(x) = c_i x: ε = ρ (g > 0, β = 1), so the sharpness is ρ c_i, with ties."""
    c = torch.tensor([1.0, 4.0, 2.0, 4.0, 3.0, 0.5, 4.0, 1.0], dtype=torch.float64)
    x = torch.tensor([0.7], dtype=torch.float64, requires_grad=True)
    opt = ESAM([x], rho=rho, beta=1.0, gamma=0.4, lr=0.1)
    closure = _example_closure(lambda idx: (c if idx is None else c[idx]) * x)
    opt.step(closure)
    assert [i is None for i in closure.indices] == [True, True, False]
    chosen = closure.indices[-1].tolist()
    assert chosen == ([1, 3, 6] if rho > 0 else [0, 1, 2])  # k = int(8 · 0.4) = 3
    # The descent gradient is the mean over the selected examples: c̄_S.
    assert x.item() == pytest.approx(0.7 - 0.1 * c[chosen].mean().item(), abs=1e-15)


# -- (4) state_dict: the noise entry, and the settings CUDA runs (round trip: test_torch_contracts)

STATE_ROWS = [
    Row("ESAM-SDS", ESAM, {}),
    Row("ESAM-tensor-kept", ESAM, {"swp_granularity": "tensor", "swp_norm": "kept"}),
    Row("SSAMF-examples", SSAMF, {"sparsity": 0.5, "num_samples": 6, "update_freq": 3}),
    Row("SSAMF-plain", SSAMF, {"sparsity": 0.5, "update_freq": 3}),
    Row(
        "SSAMD",
        SSAMD,
        {"sparsity": 0.5, "update_freq": 2, "drop_strategy": "random", "growth_strategy": "random"},
    ),
]


def test_load_state_dict_without_the_noise_entry_fails_clearly():
    x = torch.ones(2, requires_grad=True)
    for cls in TWINS:
        opt = cls([x], lr=0.1)
        state = opt.state_dict()
        del state["param_groups"][0]["noise"]
        with pytest.raises(ValueError, match="noise"):
            cls([x], lr=0.1).load_state_dict(state)
        with pytest.raises(ValueError, match="noise"):
            cls([x], lr=0.1, noise="numpy").load_state_dict(opt.state_dict())


# -- (5) ESAM's per-tensor granularity ---------------------------------------------------------


def test_tensor_granularity_freezes_the_dropped_tensors_for_the_first_backward():
    """One draw per tensor; with the kept norm, dropped tensors get no first gradient."""
    hyper = {"gamma": 1.0, "beta": 0.5, "swp_granularity": "tensor", "swp_norm": "kept"}
    model, by_hand = mlp(), mlp()
    params = list(model.parameters())
    opt = ESAM(two_groups(model), **hyper, seed=7, noise="numpy", lr=0.1)
    opt_by_hand = ESAM(two_groups(by_hand), **hyper, seed=7, noise="numpy", lr=0.1)
    rng = np.random.default_rng(7)
    seen: list[list[bool]] = []

    def closure():
        seen.append([p.requires_grad for p in params])
        opt.zero_grad()
        loss = _mean_loss(model)()
        loss.backward()
        return loss

    frozen_any = False
    for _ in range(6):
        keep = (rng.random(len(params)) < 0.5).tolist()
        opt.step(closure)
        first, second = seen[-2], seen[-1]
        if any(keep):
            assert first == keep  # frozen: exactly the dropped tensors
            frozen_any |= not all(keep)
        else:
            assert all(first)  # nothing would be left to differentiate: nothing frozen
        assert all(second) and all(p.requires_grad for p in params)
        # The saving changes nothing: by hand, first_step draws the same mask, unfrozen.
        opt_by_hand.zero_grad()
        _mean_loss(by_hand)().backward()
        opt_by_hand.first_step(zero_grad=True)
        _mean_loss(by_hand)().backward()
        opt_by_hand.second_step(zero_grad=True)
        assert torch.equal(flat(model), flat(by_hand))
    assert frozen_any
    assert not torch.equal(flat(model), flat(mlp()))


def test_a_frozen_tensor_is_thawed_when_the_closure_fails():
    model = mlp()
    opt = ESAM(model.parameters(), gamma=1.0, beta=0.5, swp_granularity="tensor", swp_norm="kept")

    def broken():
        raise RuntimeError("boom")

    for _ in range(4):
        with pytest.raises(RuntimeError, match="boom"):
            opt.step(broken)
        assert all(p.requires_grad for p in model.parameters())


# -- (6) the step by hand, per-tensor host draws -----------------------------------------------


def _manual_esam(opt: ESAM, model) -> None:
    opt.zero_grad()
    opt.begin_step()
    before = _example_losses(model)(None)
    before.mean().backward()
    opt.first_step(zero_grad=True)
    with torch.no_grad():
        after = _example_losses(model)(None)
    idx = opt.select(after - before.detach())
    _example_losses(model)(idx).mean().backward()
    opt.second_step(zero_grad=True)


def _manual_ssam(opt, model, example: bool) -> None:
    def backward():
        loss = _example_losses(model)(None).mean() if example else _mean_loss(model)()
        loss.backward()

    opt.zero_grad()
    backward()
    opt.first_step(zero_grad=True)
    backward()
    opt.second_step(zero_grad=True)
    if isinstance(opt, SSAMF) and opt.refresh_due:
        if example:
            opt.update_mask(_example_losses(model), num_examples=len(TARGETS))
        else:
            backward()
            opt.update_mask()
            opt.zero_grad()


EXAMPLE_IDS = {"ESAM-SDS", "ESAM-tensor-kept", "SSAMF-examples"}
MANUAL_ROWS = [
    Row("ESAM-SDS", ESAM, {}),
    Row("ESAM-tensor-kept", ESAM, {"swp_granularity": "tensor", "swp_norm": "kept"}),
    Row("SSAMF-examples", SSAMF, {"sparsity": 0.5, "num_samples": 4, "update_freq": 2}),
    Row("SSAMF-plain", SSAMF, {"sparsity": 0.5, "update_freq": 2}),
    Row("SSAMD", SSAMD, {"sparsity": 0.5, "update_freq": 2}),
]


@pytest.mark.parametrize("row", MANUAL_ROWS, ids=[r.id for r in MANUAL_ROWS])
def test_manual_steps_equal_step_with_closure(row):
    example = row.id in EXAMPLE_IDS
    models = [mlp(), mlp()]
    opts = [row.twin(two_groups(m), **row.hyper, lr=0.1, momentum=0.9) for m in models]
    closure = (
        _example_losses(models[0]) if example else counting_closure(opts[0], _mean_loss(models[0]))
    )
    for _ in range(5):
        opts[0].step(closure)
        if row.twin is ESAM:
            _manual_esam(opts[1], models[1])
        else:
            _manual_ssam(opts[1], models[1], example)
    assert torch.equal(flat(models[0]), flat(models[1]))
    assert not torch.equal(flat(models[0]), flat(mlp()))


SYNC_ROWS = [
    Row("ESAM-SDS", ESAM, {"adaptive": True}),
    Row("ESAM-plain", ESAM, {"gamma": 1.0, "swp_norm": "kept"}),
    Row("SSAMF-examples", SSAMF, {"sparsity": 0.5, "num_samples": 3, "update_freq": 2}),
    Row("SSAMF-plain", SSAMF, {"sparsity": 0.5, "update_freq": 2}),
    Row(
        "SSAMD",
        SSAMD,
        {"sparsity": 0.5, "update_freq": 1, "drop_strategy": "weight", "growth_strategy": "random"},
    ),
]


def test_tensor_granularity_reads_only_its_host_draw(monkeypatch):
    """Per-tensor decisions are drawn on the CPU generator in begin_step (they pick what to
    freeze); first_step, select and second_step read nothing on the host."""
    model = mlp()
    opt = ESAM(two_groups(model), swp_granularity="tensor", swp_norm="kept", lr=0.1)
    for name in ("first_step", "select", "second_step"):
        setattr(opt, name, forbid_host_reads(getattr(opt, name), monkeypatch))
    before = flat(model)
    for _ in range(4):
        opt.step(_example_losses(model))
    assert not torch.equal(flat(model), before)


# -- (7) wrong closures, degenerate gradients (missing closures: test_torch_contracts.py) -----


def test_ssamd_needs_t_end_after_t_start():
    x = torch.ones(2, requires_grad=True)
    with pytest.raises(ValueError, match="T_end"):
        SSAMD([x], T_start=10, T_end=10, lr=0.1)


@pytest.mark.parametrize(
    ("cls", "hyper"),
    [(ESAM, {}), (ESAM, {"gamma": 1.0}), (SSAMF, {}), (SSAMD, {})],
    ids=["ESAM-SDS", "ESAM", "SSAMF", "SSAMD"],
)
def test_a_closure_of_the_wrong_shape_fails_clearly(cls, hyper):
    x = torch.ones(3, dtype=torch.float64, requires_grad=True)
    opt = cls([x], **hyper, lr=0.1)
    with pytest.raises(ValueError, match="1-D tensor of per-example losses"):
        opt.step(lambda indices=None: torch.outer(x, x))
    with pytest.raises(ValueError, match="reduction='none'"):
        opt.step(lambda indices=None: 1.5)
    assert torch.equal(x, torch.ones(3, dtype=torch.float64)) and x.requires_grad


def test_esam_sds_refuses_a_mean_loss_and_a_closure_that_ignores_indices():
    x = torch.ones(3, dtype=torch.float64, requires_grad=True)
    opt = ESAM([x], lr=0.1)
    with pytest.raises(ValueError, match="reduction='none'"):
        opt.step(lambda indices=None: (x**2).sum())
    with pytest.raises(ValueError, match="losses for"):
        opt.step(lambda indices=None: x**2)  # 3 losses for the k = 1 selected


def test_ssamf_update_mask_needs_the_number_of_examples():
    x = torch.ones(3, dtype=torch.float64, requires_grad=True)
    opt = SSAMF([x], lr=0.1)
    with pytest.raises(ValueError, match="num_examples"):
        opt.update_mask(lambda indices=None: x**2)


@pytest.mark.parametrize(
    ("cls", "hyper"),
    [
        (ESAM, {}),
        (ESAM, {"gamma": 1.0, "swp_granularity": "tensor", "adaptive": True}),
        (SSAMF, {"update_freq": 1, "num_samples": 2}),
        (SSAMD, {"update_freq": 1}),
    ],
    ids=["ESAM-SDS", "ESAM-tensor", "SSAMF", "SSAMD"],
)
@pytest.mark.parametrize("value", [0.0, math.nan], ids=["zero", "nan"])
def test_zero_or_nan_gradients_never_crash(cls, hyper, value):
    x = torch.ones(3, dtype=torch.float64, requires_grad=True)
    opt = cls([x], **hyper, lr=0.1)
    weights = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)

    def losses(indices=None):
        out = weights * (x * value).sum()
        return out if indices is None else out[indices]

    for _ in range(3):
        opt.step(losses)
    if value == 0.0:
        assert torch.equal(x, torch.ones(3, dtype=torch.float64))


# -- CUDA, where there is one ------------------------------------------------------------------


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("row", STATE_ROWS, ids=[r.id for r in STATE_ROWS])
def test_cuda_step_matches_cpu_with_the_numpy_draws(row):
    results = []
    for device in ("cpu", "cuda"):
        model = mlp().to(device)
        opt = row.twin(two_groups(model), **row.hyper, noise="numpy", lr=0.1, momentum=0.9)
        x, y = INPUTS.to(device), TARGETS.to(device)

        def losses(indices=None, model=model, x=x, y=y):
            if indices is not None:
                x, y = x[indices], y[indices]
            return torch.nn.functional.cross_entropy(model(x), y, reduction="none")

        for _ in range(5):
            opt.step(losses)
        results.append(flat(model).cpu())
    torch.testing.assert_close(results[0], results[1], rtol=1e-9, atol=1e-9)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("row", SYNC_ROWS, ids=[r.id for r in SYNC_ROWS])
def test_cuda_steps_with_device_draws_run(row):
    model = mlp().cuda()
    opt = row.twin(two_groups(model), **row.hyper, lr=0.1, momentum=0.9)
    x, y = INPUTS.cuda(), TARGETS.cuda()

    def losses(indices=None):
        xs, ys = (x, y) if indices is None else (x[indices], y[indices])
        return torch.nn.functional.cross_entropy(model(xs), ys, reduction="none")

    for _ in range(5):
        opt.step(losses)
    assert torch.isfinite(flat(model)).all()
