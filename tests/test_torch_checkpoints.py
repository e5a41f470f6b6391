"""Checkpoints of the torch twins: what ``state_dict()`` holds, ``torch.distributed.checkpoint``,
``deepcopy`` and pickle, ``add_param_group``, the ``base_optimizer`` argument and mixed dtypes."""

from __future__ import annotations

import copy
import functools
import io
import pickle

import pytest

torch = pytest.importorskip("torch")

import torch.distributed.checkpoint.state_dict as dcp_state  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import sampy  # noqa: E402
import sampy.torch as st  # noqa: E402
from sampy.torch import call_shapes  # noqa: E402
from sampy.torch.jsam import functional_forward  # noqa: E402

# -- (1) state_dict() holds no copy of the weights ----------------------------------------------


def _float32_mlp(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))


def _batch(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(48, 32, generator=gen), torch.randint(0, 10, (48,), generator=gen)


def _two_pass_steps(model, opt, steps: int = 3) -> None:
    x, y = _batch()
    for _ in range(steps):
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.first_step(zero_grad=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.second_step(zero_grad=True)


def _saved_bytes(obj) -> int:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.tell()


def _param_bytes(model: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def test_the_checkpoint_of_sam_is_the_size_of_sgd_s_and_holds_no_weights():
    sizes, keys = {}, {}
    for name in ("SGD", "SAM", "GSAM", "LookSAM"):
        model = _float32_mlp()
        if name == "SGD":
            opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
            x, y = _batch()
            for _ in range(3):
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(x), y).backward()
                opt.step()
        else:
            opt = getattr(st, name)(model.parameters(), torch.optim.SGD, lr=0.1, momentum=0.9)
            _two_pass_steps(model, opt)
        saved = opt.state_dict()
        sizes[name] = _saved_bytes(saved)
        keys[name] = {key for entry in saved["state"].values() for key in entry}
    weights = _param_bytes(_float32_mlp())
    assert "old_p" not in keys["SAM"] | keys["LookSAM"]
    # SGD: one momentum buffer (the weights' size); SAM and GSAM add a few counters, not a copy
    # of the weights; LookSAM adds its stored direction g_v (one more buffer), nothing else.
    assert sizes["SGD"] > weights
    assert sizes["SAM"] - sizes["SGD"] < weights / 10
    assert sizes["GSAM"] - sizes["SGD"] < weights / 10
    assert weights < sizes["LookSAM"] - sizes["SGD"] < weights * 1.1


def _reloaded(obj):
    """``obj`` through ``torch.save``/``torch.load``: detached from the live tensors."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def _checkpoint_with_old_p(opt) -> dict:
    """``opt``'s checkpoint as sampy wrote it before the saved w left the state (``old_p``)."""
    saved = opt.state_dict()
    ids = [i for group in saved["param_groups"] for i in group["params"]]
    params = [p for group in opt.param_groups for p in group["params"]]
    for i, p in zip(ids, params, strict=True):
        saved["state"].setdefault(i, {})["old_p"] = p.detach().clone()
    return saved


def test_a_checkpoint_with_the_old_saved_weights_loads_and_drops_them():
    model = _float32_mlp()
    opt = st.LookSAM(model.parameters(), torch.optim.SGD, k=2, lr=0.1, momentum=0.9)
    _two_pass_steps(model, opt)
    old = _reloaded(_checkpoint_with_old_p(opt))
    expected = {n: p.detach().clone() for n, p in model.named_parameters()}
    _two_pass_steps(model, opt, steps=2)
    expected_after = [p.detach().clone() for p in model.parameters()]

    model2 = _float32_mlp(seed=5)
    model2.load_state_dict(expected)
    opt2 = st.LookSAM(model2.parameters(), torch.optim.SGD, k=2, lr=0.1, momentum=0.9)
    opt2.load_state_dict(old)
    assert all("old_p" not in entry for entry in opt2.state.values())
    _two_pass_steps(model2, opt2, steps=2)
    for a, b in zip(model2.parameters(), expected_after, strict=True):
        assert torch.equal(a, b)


def test_state_dict_between_the_two_passes_is_refused_and_after_them_allowed():
    model = _float32_mlp()
    opt = st.SAM(model.parameters(), torch.optim.SGD, lr=0.1, momentum=0.9)
    x, y = _batch()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.first_step(zero_grad=True)
    with pytest.raises(RuntimeError, match=r"between first_step\(\) and second_step\(\)"):
        opt.state_dict()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.second_step(zero_grad=True)
    assert len(opt.state_dict()["param_groups"]) == 1


# -- (2) torch.distributed.checkpoint: get_/set_optimizer_state_dict round-trip every twin ------


ROWS = call_shapes.call_shapes()
N, D, C = 12, 5, 3
BASES = {"sgd-momentum": (torch.optim.SGD, {"momentum": 0.9}), "adam": (torch.optim.Adam, {})}


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(D, 6), torch.nn.Tanh(), torch.nn.Linear(6, C))


def _groups(model: torch.nn.Module) -> list[dict]:
    first, second = model[0], model[2]
    return [{"params": list(first.parameters())}, {"params": list(second.parameters())}]


def _twin(row, model, base: str | None):
    variant = sampy.variant(row.variant)
    if not row.takes_base_optimizer:
        return variant.make_twin(_groups(model), lr=0.05)
    base_cls, kwargs = BASES[base]
    return variant.make_twin(_groups(model), base_cls, lr=0.05, **kwargs)


def _train(row, model, opt, steps: int, start: int = 0) -> None:
    """``steps`` steps of ``row``'s call shape on the batches ``start``, ``start + 1``, ..."""
    for t in range(start, start + steps):
        gen = torch.Generator().manual_seed(t)
        x, y = torch.randn(N, D, generator=gen), torch.randint(0, C, (N,), generator=gen)
        if row.closure == call_shapes.FORWARD:
            opt.step(functional_forward(model), x, y)
        elif row.closure == call_shapes.EXAMPLES:

            def losses(indices=None, x=x, y=y):
                xs, ys = (x, y) if indices is None else (x[indices], y[indices])
                return F.cross_entropy(model(xs), ys, reduction="none")

            extra = {"tail": y == C - 1} if "tail=" in row.step else {}
            if "batch_size=" in row.step:
                extra["batch_size"] = N
            opt.step(losses, **extra)
        else:

            def closure(x=x, y=y):
                opt.zero_grad()
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                return loss

            opt.step(closure)


def _cases():
    for row in ROWS:
        for base in sorted(BASES) if row.takes_base_optimizer else [None]:
            yield pytest.param(row, base, id=f"{row.variant}-{base}" if base else row.variant)


@pytest.mark.parametrize(("row", "base"), list(_cases()))
def test_distributed_checkpoint_round_trips_the_base_state_the_rule_state_and_counters(row, base):
    model = _model(0)
    opt = _twin(row, model, base)
    _train(row, model, opt, 5)  # LookSAM (k = 5 by default) and SSAM save mid-period
    saved_model = _reloaded(model.state_dict())
    saved = _reloaded(dcp_state.get_optimizer_state_dict(model, opt))
    if base is not None:
        names = {"sgd-momentum": "momentum_buffer", "adam": "exp_avg_sq"}
        assert all(names[base] in entry for entry in saved["state"].values()), saved["state"]
    _train(row, model, opt, 5, start=5)
    expected = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    model2 = _model(7)
    model2.load_state_dict(saved_model)
    opt2 = _twin(row, model2, base)
    dcp_state.set_optimizer_state_dict(model2, opt2, saved)
    _train(row, model2, opt2, 5, start=5)
    got = torch.cat([p.detach().reshape(-1) for p in model2.parameters()])
    assert torch.equal(got, expected), (got - expected).abs().max()


def test_only_dcp_s_initialisation_is_read_as_one_a_warm_up_at_lr_0_takes_its_step():
    """DCP's call: no state, every lr 0, zero gradients. A fresh MSAM at lr 0 (a warm-up that
    starts at 0) with real gradients takes its step (its momentum starts), and a fresh SAM
    asked for a step without a closure is refused as usual."""
    model = _model(0)
    msam = st.MSAM(model.parameters(), lr=0.1)
    warm_up = torch.optim.lr_scheduler.LambdaLR(msam, lambda t: t / 10)  # lr 0 at first
    assert msam.param_groups[0]["lr"] == 0.0 and warm_up.get_last_lr()[0] == 0.0
    F.cross_entropy(model(torch.randn(4, D)), torch.tensor([0, 1, 2, 0])).backward()
    msam.step()
    assert len(msam.state) == len(list(model.parameters()))
    sam = st.SAM(model.parameters(), lr=0.0)
    with pytest.raises(ValueError, match="closure"):
        sam.step()
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    sgd_momentum = st.SAM(model.parameters(), torch.optim.SGD, lr=0.0, momentum=0.9)
    w = [p.detach().clone() for p in model.parameters()]
    assert sgd_momentum.step() is None  # DCP's call: the base state appears, w stays
    assert len(sgd_momentum.base_optimizer.state) == len(w) and not sgd_momentum.state
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), w, strict=True))


# -- (3) copy.deepcopy and pickle give an optimizer that steps as the original --------------------


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
@pytest.mark.parametrize(("row", "base"), list(_cases()))
def test_a_copied_optimizer_steps_bit_for_bit_as_the_original(row, base, how):
    model = _model(0)
    opt = _twin(row, model, base)
    _train(row, model, opt, 3)
    if how == "deepcopy":
        model2, opt2 = copy.deepcopy((model, opt))
    else:
        model2, opt2 = pickle.loads(pickle.dumps((model, opt)))
    assert opt2.param_groups[0]["params"][0] is next(model2.parameters())
    _train(row, model, opt, 3, start=3)
    _train(row, model2, opt2, 3, start=3)
    for a, b in zip(model.parameters(), model2.parameters(), strict=True):
        assert torch.equal(a, b)


# -- (4) add_param_group validates like the constructor; the base sees the group once ------------


@pytest.mark.parametrize("row", [r for r in ROWS], ids=lambda r: r.variant)
def test_add_param_group_is_validated_like_the_constructor_and_shared_once(row):
    model = _model(0)
    variant = sampy.variant(row.variant)
    opt = variant.make_twin([model[0].weight], lr=0.05)
    if "rho" not in opt.defaults:
        pytest.skip(f"{row.variant} has no rho")
    with pytest.raises(ValueError) as constructor:
        variant.make_twin([{"params": [model[0].weight], "rho": -3.0}], lr=0.05)
    with pytest.raises(ValueError) as added:
        opt.add_param_group({"params": [model[0].bias], "rho": -3.0})
    assert str(added.value) == str(constructor.value)
    assert "rho" in str(added.value)
    assert len(opt.param_groups) == 1  # a refused group is not added
    opt.add_param_group({"params": [model[2].weight], "rho": 0.1})
    assert len(opt.param_groups) == 2 and opt.param_groups[1]["rho"] == 0.1
    base = getattr(opt, "base_optimizer", None)
    if base is not None:
        assert base.param_groups is opt.param_groups
        assert sum(model[2].weight is p for g in base.param_groups for p in g["params"]) == 1


# -- (5) base_optimizer: a class, a factory or an instance; repr names it -------------------------


def _sam_steps(model, opt, steps: int = 3) -> torch.Tensor:
    _two_pass_steps(model, opt, steps)
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def test_base_optimizer_may_be_a_class_a_factory_or_an_instance_on_the_same_parameters():
    model = _float32_mlp()
    expected = _sam_steps(model, st.SAM(model.parameters(), torch.optim.SGD, lr=0.1, momentum=0.9))
    model = _float32_mlp()
    factory = functools.partial(torch.optim.SGD, momentum=0.9)
    opt = st.SAM(model.parameters(), factory, lr=0.1)
    assert type(opt.base_optimizer) is torch.optim.SGD and opt.defaults["momentum"] == 0.9
    assert torch.equal(_sam_steps(model, opt), expected)

    def make_sgd(param_groups, lr):
        return torch.optim.SGD(param_groups, lr=lr, momentum=0.9)

    model = _float32_mlp()
    assert torch.equal(_sam_steps(model, st.SAM(model.parameters(), make_sgd, lr=0.1)), expected)
    model = _float32_mlp()
    base = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    opt = st.SAM(model.parameters(), base, rho=0.05)
    assert opt.base_optimizer is base and opt.param_groups is base.param_groups
    assert base.param_groups[0]["rho"] == 0.05
    assert torch.equal(_sam_steps(model, opt), expected)
    # A per-example twin takes them too.
    x = torch.ones(2, requires_grad=True)
    assert type(st.JSAM([x], factory, lr=0.1).base_optimizer) is torch.optim.SGD


def test_a_bad_base_optimizer_is_refused_with_a_message_that_says_what_to_pass():
    model = _float32_mlp()
    other = _float32_mlp(seed=1)
    with pytest.raises(ValueError, match="built on other parameters"):
        st.SAM(model.parameters(), torch.optim.SGD(other.parameters(), lr=0.1))
    with pytest.raises(ValueError, match=r"instance \(SGD\).*\['lr'\]"):
        st.SAM(model.parameters(), torch.optim.SGD(model.parameters(), lr=0.1), lr=0.2)
    with pytest.raises(ValueError, match=r"returned dict .*not a torch\.optim\.Optimizer"):
        st.SAM(model.parameters(), lambda groups, **kwargs: {"lr": 0.1}, lr=0.1)
    with pytest.raises(ValueError, match=r"base_optimizer must be .* factory"):
        st.SAM(model.parameters(), "SGD", lr=0.1)
    with pytest.raises(ValueError, match="base_optimizer must be"):
        st.SAM(model.parameters(), dict, lr=0.1)  # a class, but not an optimizer


def test_repr_names_the_base_optimizer_and_keeps_its_keys_apart():
    model = _float32_mlp()
    text = repr(st.SAM(model.parameters(), torch.optim.AdamW, lr=0.1))
    assert text.startswith("SAM(base_optimizer=AdamW) (\nParameter Group 0\n")
    own, base = text.split("    AdamW:\n")
    assert "    rho: 0.05" in own and "lr" not in own
    assert "        lr: 0.1" in base and "rho" not in base
    assert repr(st.JSAM(model.parameters(), lr=0.1)).startswith("JSAM(base_optimizer=SGD) (")


def test_the_package_ships_py_typed_in_its_package_data():
    """PEP 561: without the marker, mypy treats every sampy hint as missing."""
    import importlib.resources
    import pathlib
    import tomllib

    assert importlib.resources.files("sampy").joinpath("py.typed").is_file()
    pyproject = pathlib.Path(__file__).parents[1] / "pyproject.toml"
    package_data = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"]
    assert "py.typed" in package_data["sampy"]


# -- (6) mixed dtypes across groups: global norms accumulate in the widest dtype (>= float32) -----


# (name, hyperparameters, how close the float64 group stays to the all-float64 run): SAM and
# GSAM keep no per-parameter state, so the float64 group sees only float64 arithmetic; LookSAM
# stores its direction g_v in each parameter's dtype, and its global norm ‖g_v‖ then carries the
# float32 group's rounding (relative 6e-8) into every group's step.
MIXED_TWINS = [
    ("SAM", {}, 1e-15),
    ("GSAM", {"alpha": 0.3}, 1e-15),
    ("LookSAM", {"k": 2, "alpha": 0.5}, 1e-8),
]


def _mixed_run(name: str, hyper: dict, dtypes: tuple[torch.dtype, ...], values: tuple):
    """Weights after three two-pass steps with fixed gradients, one group per dtype.

    Start points and gradients are drawn in float64 and rounded through ``values`` (one dtype
    per group), then stored in ``dtypes``: runs with the same ``values`` see the same numbers,
    so they differ only in the dtype the twin computes in.
    """
    gen = torch.Generator().manual_seed(3)

    def draw() -> list[torch.Tensor]:
        return [torch.randn(4, dtype=torch.float64, generator=gen).to(v) for v in values]

    start = draw()
    grads = [(draw(), draw()) for _ in range(3)]
    params = [w.to(dtype).requires_grad_() for w, dtype in zip(start, dtypes, strict=True)]
    opt = getattr(st, name)([{"params": [p]} for p in params], lr=0.1, **hyper)
    for clean, perturbed in grads:
        for p, g in zip(params, clean, strict=True):
            p.grad = g.to(p.dtype)
        if getattr(opt, "is_sam_step", True):
            opt.first_step(zero_grad=True)
            for p, g in zip(params, perturbed, strict=True):
                p.grad = g.to(p.dtype)
        opt.second_step(zero_grad=True)
    return [p.detach().to(torch.float64) for p in params]


@pytest.mark.parametrize(("name", "hyper", "atol"), MIXED_TWINS, ids=[n for n, *_ in MIXED_TWINS])
def test_a_float64_group_beside_a_float32_group_steps_as_in_an_all_float64_model(name, hyper, atol):
    """The global norm (and GSAM's inner product) accumulate in float64, the widest dtype: the
    float64 group's step is the all-float64 step, not one rounded through a float32 norm."""
    values = (torch.float64, torch.float32)
    mixed = _mixed_run(name, hyper, (torch.float64, torch.float32), values)
    wide = _mixed_run(name, hyper, (torch.float64, torch.float64), values)
    torch.testing.assert_close(mixed[0], wide[0], rtol=0, atol=atol)
    torch.testing.assert_close(mixed[1], wide[1], rtol=0, atol=1e-6)  # its own float32 steps


@pytest.mark.parametrize(
    ("name", "hyper"), [t[:2] for t in MIXED_TWINS], ids=[t[0] for t in MIXED_TWINS]
)
@pytest.mark.parametrize("low", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
def test_a_low_precision_group_steps_with_a_float32_norm(name, hyper, low):
    """A float16 gradient of norm 3e5 overflows a float16 norm (inf, so ε = 0 and SAM silently
    takes SGD's step), and a bfloat16 norm keeps three digits; in float32 neither happens."""
    x = torch.zeros(100, dtype=low, requires_grad=True)
    y = torch.zeros(3, requires_grad=True)
    opt = getattr(st, name)([{"params": [x]}, {"params": [y]}], lr=0.1, rho=0.05, **hyper)
    x.grad = torch.full_like(x, 30_000.0)
    y.grad = torch.ones(3)
    opt.first_step(zero_grad=True)
    g = float(torch.tensor(30_000.0, dtype=low))
    norm = (g**2 * 100 + 3) ** 0.5  # bfloat16 holds 30000 as 29952
    assert torch.isfinite(x).all() and torch.isfinite(y).all()
    torch.testing.assert_close(y.detach(), torch.full((3,), 0.05 / norm), rtol=1e-6, atol=0)
    expected_x = torch.full_like(x, 0.05 * g / norm)
    torch.testing.assert_close(x.detach(), expected_x, rtol=1e-2, atol=0)
    opt.restore()


# -- dcp.save / dcp.load: a fresh twin's template completed from the checkpoint's metadata -------


def _gsam_schedule(t: int) -> float:
    return 0.05 / (1 + t)


DCP_LOAD_TWINS = {
    "LookSAM": dict(k=3),  # g_v and the step counter appear at the first step
    "FriendlySAM": {},  # its average m
    "GSAM": dict(rho_schedule=_gsam_schedule),  # the schedule's counter
}


@pytest.mark.parametrize("complete", [False, True], ids=["template-as-is", "completed"])
@pytest.mark.parametrize("name", sorted(DCP_LOAD_TWINS))
def test_dcp_load_into_a_fresh_twin_needs_the_completed_template(name, complete, tmp_path):
    import torch.distributed.checkpoint as dcp

    from sampy.torch.distributed import complete_template

    def make(model):
        opt = getattr(st, name)(
            model.parameters(), torch.optim.SGD, lr=0.05, momentum=0.9, **DCP_LOAD_TWINS[name]
        )
        return opt

    row = next(r for r in ROWS if r.variant == name)
    model = _model(0)
    opt = make(model)
    _train(row, model, opt, 4)
    with pytest.warns(UserWarning):  # DCP in one process, without a process group
        dcp.save(
            {"model": model.state_dict(), "optim": dcp_state.get_optimizer_state_dict(model, opt)},
            checkpoint_id=tmp_path,
        )
    _train(row, model, opt, 4, start=4)
    expected = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    model2 = _model(7)
    opt2 = make(model2)
    template = {
        "model": model2.state_dict(),
        "optim": dcp_state.get_optimizer_state_dict(model2, opt2),
    }
    if complete:
        complete_template(template, dcp.FileSystemReader(tmp_path).read_metadata(), model2)
    with pytest.warns(UserWarning):
        dcp.load(template, checkpoint_id=tmp_path)
    model2.load_state_dict(template["model"])
    dcp_state.set_optimizer_state_dict(model2, opt2, template["optim"])
    _train(row, model2, opt2, 4, start=4)
    got = torch.cat([p.detach().reshape(-1) for p in model2.parameters()])
    assert torch.equal(got, expected) is complete


def test_complete_template_refuses_metadata_without_paths():
    from sampy.torch.distributed import complete_template

    with pytest.raises(ValueError, match="planner_data"):
        complete_template({}, object())


# -- (8) a checkpoint is checked before it loads (issue 15) ---------------------------------------


def test_a_checkpoint_taken_during_a_warm_up_at_lr_0_loads():
    """The constructors refuse lr = 0, a scheduler may set it: a checkpoint then holds 0, and
    the load (and the next step) accept it as torch does."""
    model = _model(0)
    msam = st.MSAM(model.parameters(), lr=0.1)
    torch.optim.lr_scheduler.LambdaLR(msam, lambda t: t / 10)
    assert msam.param_groups[0]["lr"] == 0.0
    fresh = st.MSAM(_model(0).parameters(), lr=0.1)
    fresh.load_state_dict(msam.state_dict())
    assert fresh.param_groups[0]["lr"] == 0.0


def test_a_refused_load_leaves_the_optimizer_and_its_base_as_they_were():
    model = _model(0)
    opt = st.SAM(model.parameters(), torch.optim.SGD, lr=0.1, momentum=0.9)
    x, y = torch.randn(4, D), torch.tensor([0, 1, 2, 0])

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    opt.step(closure)
    saved = copy.deepcopy(opt.state_dict())
    bad = copy.deepcopy(saved)
    bad["param_groups"][0]["rho"] = float("nan")
    groups, base_groups = opt.param_groups, opt.base_optimizer.param_groups
    with pytest.raises(ValueError, match=r"SAM.load_state_dict: param_groups\[0\]\['rho'\]"):
        opt.load_state_dict(bad)
    assert opt.param_groups is groups and opt.base_optimizer.param_groups is base_groups
    assert opt.param_groups[0]["rho"] == saved["param_groups"][0]["rho"]
    after = opt.state_dict()
    for i, entry in saved["state"].items():
        assert torch.equal(entry["momentum_buffer"], after["state"][i]["momentum_buffer"])
