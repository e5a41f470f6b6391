"""``sampy.torch.distributed``: SAM under DistributedDataParallel, with real workers.

Two worker processes (this file run as a script) join a gloo process group through a
``FileStore`` in ``tmp_path`` (no rendezvous port at all); gloo's own connections are pinned to
the loopback interface (``GLOO_SOCKET_IFNAME``), so nothing but 127.0.0.1 is ever touched.
Every scenario runs a few float64 steps of a tiny MLP on a 16-example batch split into two
shards of 8; the parent process checks the results against single-process computations:

(a) ``ascent="global"`` equals the single-process twin on the concatenated batch (1e-10);
(b) ``ascent="per_worker"`` equals the average of the per-shard SAM directions, computed by
    hand here (SAM, LookSAM, MultiStepSAM), or by ``accumulated_sam_step`` with the shards
    as micro-batches (GSAM, WSAM), or by one single-process step per shard (SAMAnatomy);
(c) the gradient all-reduces of every step are what the documentation says. Counted inside the
    workers: DDP's bucket all-reduces through a registered comm hook (the model is far below
    DDP's first-bucket size, so one hook call = one synchronised backward pass) plus every
    call of ``torch.distributed.all_reduce`` (the helper's explicit average of ``d``).
"""

from __future__ import annotations

import copy
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import sampy.torch as st  # noqa: E402
from sampy.torch.distributed import (  # noqa: E402
    complete_template,
    ddp_sam_step,
    ddp_step_plan,
)
from sampy.torch.recipes import accumulated_sam_step  # noqa: E402

try:  # MultiStepSAM is newer than the helper; its scenarios run when it is there.
    from sampy.torch.msharpness import MultiStepSAM
except ImportError:  # pragma: no cover
    MultiStepSAM = None

WORLD = 2
N_PER_WORKER = 8
STEPS = 4
RHO, LR, MOMENTUM = 0.05, 0.1, 0.9
LOOK_K, LOOK_ALPHA = 2, 0.7
WORKER_TIMEOUT_S = 90  # a hung worker fails the test instead of hanging the suite

# -- the problem, shared by the workers and the parent ----------------------------------------


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)
    ).double()


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(WORLD * N_PER_WORKER, 4, generator=gen, dtype=torch.float64)
    y = torch.sin(x.sum(1, keepdim=True)) + 0.1 * torch.randn(
        WORLD * N_PER_WORKER, 1, generator=gen, dtype=torch.float64
    )
    return x, y


def _shard(x: torch.Tensor, y: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    s = slice(rank * N_PER_WORKER, (rank + 1) * N_PER_WORKER)
    return x[s], y[s]


def _mse(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.mse_loss(model(x), y)


def _base(**kw: Any) -> dict[str, Any]:
    return dict(lr=LR, momentum=MOMENTUM) | kw


OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "sam": lambda ps, **kw: st.SAM(ps, torch.optim.SGD, rho=RHO, **_base(**kw)),
    "gsam": lambda ps, **kw: st.GSAM(ps, torch.optim.SGD, rho=RHO, alpha=0.4, **_base(**kw)),
    "wsam": lambda ps, **kw: st.WSAM(
        ps, torch.optim.SGD, rho=RHO, gamma=0.9, decouple=False, **_base(**kw)
    ),
    "looksam": lambda ps, **kw: st.LookSAM(
        ps, torch.optim.SGD, rho=RHO, k=LOOK_K, alpha=LOOK_ALPHA, **_base(**kw)
    ),
    "samanatomy": lambda ps, **kw: st.SAMAnatomy(ps, torch.optim.SGD, rho=RHO, **_base(**kw)),
}
if MultiStepSAM is not None:
    OPTIMIZERS["multistep"] = lambda ps, **kw: MultiStepSAM(
        ps, torch.optim.SGD, rho=RHO, ascent_steps=2, **_base(**kw)
    )

# name -> (optimizer, ascent, DDP keyword arguments)
SCENARIOS: dict[str, tuple[str, str, dict[str, Any]]] = {
    f"{opt}/{ascent}": (opt, ascent, {})
    for opt in OPTIMIZERS
    for ascent in ("global", "per_worker")
}
SCENARIOS["gsam/global/bucket_view"] = ("gsam", "global", {"gradient_as_bucket_view": True})
SCENARIOS["sam/per_worker/bucket_view"] = ("sam", "per_worker", {"gradient_as_bucket_view": True})
# DDP(static_graph=True) with every pass synchronised; per-worker steps need a synchronised
# first backward (STATIC_SCHEDULE below).
SCENARIOS["sam/global/static_graph"] = ("sam", "global", {"static_graph": True})

# The documentation's numbers: gradient all-reduces per step (module docstring table).
DOCUMENTED = {
    "sam/global": [2] * STEPS,
    "sam/per_worker": [1] * STEPS,
    "gsam/global": [2] * STEPS,
    "gsam/per_worker": [1] * STEPS,
    "wsam/global": [2] * STEPS,
    "wsam/per_worker": [1] * STEPS,
    "looksam/global": [2, 1, 2, 1],  # SAM steps (t mod 2 = 0) and reuse steps
    "looksam/per_worker": [1] * STEPS,
    "samanatomy/global": [3] * STEPS,
    "samanatomy/per_worker": [1] * STEPS,
    "multistep/global": [3] * STEPS,  # k + 1 with k = 2
    "multistep/per_worker": [1] * STEPS,
    "gsam/global/bucket_view": [2] * STEPS,
    "sam/per_worker/bucket_view": [1] * STEPS,
    "sam/global/static_graph": [2] * STEPS,
    "sgd": [1] * STEPS,  # plain DDP with SGD, for comparison
}
EXPLICIT = {
    "gsam/per_worker",
    "wsam/per_worker",
    "looksam/per_worker",
}  # the helper averages d itself
STATIC_SCHEDULE = ("global", "per_worker", "per_worker", "per_worker")


# -- the worker (this file as a script) -------------------------------------------------------


def _worker(rank: int, store_path: str, out_dir: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    torch.set_num_threads(1)
    store = dist.FileStore(store_path, WORLD)
    dist.init_process_group(
        "gloo", store=store, rank=rank, world_size=WORLD, timeout=timedelta(seconds=60)
    )
    counts = {"hook": 0, "explicit": 0}
    all_reduce = dist.all_reduce

    def counting_all_reduce(*args: Any, **kwargs: Any) -> Any:
        counts["explicit"] += 1
        return all_reduce(*args, **kwargs)

    dist.all_reduce = counting_all_reduce  # the helper calls torch.distributed.all_reduce

    def counting_hook(state, bucket):  # no annotations: DDP checks them against its own
        # DDP's default all-reduce (divide by W, sum), not counted as an explicit call.
        counts["hook"] += 1
        work = all_reduce(bucket.buffer().div_(WORLD), async_op=True)
        return work.get_future().then(lambda fut: fut.value()[0])

    def ddp(**kwargs: Any) -> DDP:
        model = DDP(_model(), **kwargs)
        model.register_comm_hook(None, counting_hook)
        return model

    x, y = _shard(*_data(), rank)
    results: dict[str, Any] = {}

    def record(name: str, model: DDP, step: Callable[[], torch.Tensor], plans: list) -> None:
        per_step, losses = [], []
        for _ in range(STEPS):
            counts.update(hook=0, explicit=0)
            losses.append(step().item())
            per_step.append((counts["hook"], counts["explicit"]))
        results[name] = dict(
            params=[p.detach().clone() for p in model.parameters()],
            counts=per_step,
            plans=plans,
            losses=losses,
        )

    for name, (opt_name, ascent, ddp_kwargs) in SCENARIOS.items():
        model = ddp(**ddp_kwargs)
        opt = OPTIMIZERS[opt_name](model.parameters())
        plans: list = []

        def step(opt=opt, model=model, ascent=ascent, plans=plans) -> torch.Tensor:
            plan = ddp_step_plan(opt, ascent)
            plans.append((plan.synced, plan.average_direction, plan.all_reduces))
            return ddp_sam_step(opt, model, lambda: _mse(model, x, y), ascent=ascent)

        record(name, model, step, plans)

    model = ddp()
    sgd = torch.optim.SGD(model.parameters(), **_base())

    def sgd_step() -> torch.Tensor:
        sgd.zero_grad()
        loss = _mse(model, x, y)
        loss.backward()
        sgd.step()
        return loss.detach()

    record("sgd", model, sgd_step, [])

    # static_graph=True: a per-worker first step is refused; after a global one, per-worker
    # steps run as on the default DDP (the same weights, the same all-reduces).
    for opt_name in ("sam", "gsam"):
        for static in (True, False):
            model = ddp(static_graph=static)
            opt = OPTIMIZERS[opt_name](model.parameters())
            if static:
                try:
                    ddp_sam_step(opt, model, lambda m=model: _mse(m, x, y), ascent="per_worker")
                except ValueError as exc:
                    results[f"static_graph/{opt_name}/first_per_worker_error"] = str(exc)
            schedule = iter(STATIC_SCHEDULE)

            def scheduled(opt=opt, model=model, schedule=schedule) -> torch.Tensor:
                ascent = next(schedule)
                return ddp_sam_step(opt, model, lambda: _mse(model, x, y), ascent=ascent)

            record(f"static_graph={static}/{opt_name}", model, scheduled, [])

    results.update(_fsdp_runs(rank, x, y, out_dir))

    errors = {}
    plain = _model()
    try:
        ddp_sam_step(OPTIMIZERS["sam"](plain.parameters()), plain, lambda: _mse(plain, x, y))
    except ValueError as exc:
        errors["plain_module"] = str(exc)
    results["errors"] = errors
    torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    dist.barrier()
    dist.destroy_process_group()


FSDP_TWINS = ("sam", "gsam", "looksam")
FSDP_STEPS = (2, 2)  # steps before the checkpoint, steps after it


def _fsdp_model(mesh: Any) -> torch.nn.Module:
    from torch.distributed.fsdp import fully_shard

    model = _model()
    for layer in (model[0], model[2]):
        fully_shard(layer, mesh=mesh)
    return fully_shard(model, mesh=mesh)


def _two_pass(model: torch.nn.Module, opt: Any, x: torch.Tensor, y: torch.Tensor) -> None:
    _mse(model, x, y).backward()
    if getattr(opt, "is_sam_step", True):
        opt.first_step(zero_grad=True)
        _mse(model, x, y).backward()
    opt.second_step(zero_grad=True)


def _fsdp_runs(rank: int, x: torch.Tensor, y: torch.Tensor, out_dir: str) -> dict[str, Any]:
    """FSDP2 (``fully_shard``, parameters sharded as DTensors): each twin trains, a
    ``torch.distributed.checkpoint`` state dict is taken halfway and loaded into a fresh sharded
    model and twin, in memory and through ``dcp.save``/``dcp.load`` with the fresh twin's
    template completed (``complete_template``), and all go on; the full weights are recorded."""
    try:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import (
            get_model_state_dict,
            get_optimizer_state_dict,
            set_model_state_dict,
            set_optimizer_state_dict,
        )
        from torch.distributed.device_mesh import init_device_mesh
    except ImportError:  # pragma: no cover - an older torch without FSDP2
        return {}
    mesh = init_device_mesh("cpu", (WORLD,))
    out: dict[str, Any] = {}
    before, after = FSDP_STEPS
    for name in FSDP_TWINS:
        model = _fsdp_model(mesh)
        opt = OPTIMIZERS[name](model.parameters())
        for _ in range(before):
            _two_pass(model, opt, x, y)
        saved_model = copy.deepcopy(get_model_state_dict(model))
        saved_opt = copy.deepcopy(get_optimizer_state_dict(model, opt))
        on_disk = Path(out_dir) / f"dcp-{name}"  # the same folder for both ranks
        dcp.save({"model": saved_model, "optim": saved_opt}, checkpoint_id=on_disk)
        for _ in range(after):
            _two_pass(model, opt, x, y)
        resumed = _fsdp_model(mesh)
        set_model_state_dict(resumed, saved_model)
        resumed_opt = OPTIMIZERS[name](resumed.parameters())
        set_optimizer_state_dict(resumed, resumed_opt, saved_opt)
        for _ in range(after):
            _two_pass(resumed, resumed_opt, x, y)
        # The same through the files: a fresh twin's template, completed, filled by dcp.load.
        loaded = _fsdp_model(mesh)
        loaded_opt = OPTIMIZERS[name](loaded.parameters())
        template = {
            "model": get_model_state_dict(loaded),
            "optim": get_optimizer_state_dict(loaded, loaded_opt),
        }
        complete_template(template, dcp.FileSystemReader(on_disk).read_metadata(), loaded)
        dcp.load(template, checkpoint_id=on_disk)
        set_model_state_dict(loaded, template["model"])
        set_optimizer_state_dict(loaded, loaded_opt, template["optim"])
        for _ in range(after):
            _two_pass(loaded, loaded_opt, x, y)
        out[f"fsdp/{name}"] = dict(
            params=[p.full_tensor().detach().clone() for p in model.parameters()],
            resumed=[p.full_tensor().detach().clone() for p in resumed.parameters()],
            loaded=[p.full_tensor().detach().clone() for p in loaded.parameters()],
            saved_keys=sorted({k for entry in saved_opt["state"].values() for k in entry}),
        )
    return out


# -- launching ---------------------------------------------------------------------------------


def _loopback_interface() -> str | None:
    names = [name for _, name in socket.if_nameindex()]
    for name in ("lo", "lo0"):
        if name in names:
            return name
    return None


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run both workers once for the whole module; ``{"rank0": ..., "rank1": ..., "time": s}``."""
    dist = torch.distributed
    if not dist.is_available():
        pytest.skip("torch.distributed is not available in this torch build")
    if not dist.is_gloo_available():
        pytest.skip("the gloo backend is not available in this torch build")
    lo = _loopback_interface()
    if lo is None:
        pytest.skip("no loopback network interface (lo/lo0) to pin gloo to 127.0.0.1")
    tmp = tmp_path_factory.mktemp("ddp")
    env = dict(os.environ)
    env.update(
        GLOO_SOCKET_IFNAME=lo,
        MASTER_ADDR="127.0.0.1",
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]), *sys.path]),
    )
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", str(rank), str(tmp / "store"), str(tmp)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in range(WORLD)
    ]
    outputs = []
    try:
        for proc in procs:
            remaining = WORKER_TIMEOUT_S - (time.perf_counter() - start)
            out, _ = proc.communicate(timeout=max(remaining, 1))
            outputs.append(out)
    except subprocess.TimeoutExpired:
        for proc in procs:
            proc.kill()
        pytest.fail(f"a DDP worker did not finish within {WORKER_TIMEOUT_S} s")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for rank, (proc, out) in enumerate(zip(procs, outputs, strict=True)):
        assert proc.returncode == 0, f"worker {rank} failed:\n{out[-4000:]}"
    results = {f"rank{r}": torch.load(tmp / f"rank{r}.pt") for r in range(WORLD)}
    results["time"] = time.perf_counter() - start
    return results


# -- single-process references ----------------------------------------------------------------


def _single_process(opt_name: str, steps: int = STEPS) -> list[torch.Tensor]:
    """The twin on the concatenated batch, in this process (no torch.distributed)."""
    x, y = _data()
    model = _model()
    opt = OPTIMIZERS[opt_name](model.parameters())

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = _mse(model, x, y)
        loss.backward()
        return loss

    for _ in range(steps):
        opt.step(closure)
    return [p.detach().clone() for p in model.parameters()]


def _grad(w: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """∇L(w) of the MLP on (x, y), written out (Linear–Tanh–Linear, mean squared error)."""
    ps = [p.detach().clone().requires_grad_() for p in w]
    w1, b1, w2, b2 = ps
    loss = ((torch.tanh(x @ w1.T + b1) @ w2.T + b2 - y) ** 2).mean()
    return list(torch.autograd.grad(loss, ps))


def _norm(v: list[torch.Tensor]) -> torch.Tensor:
    return torch.sqrt(sum((t * t).sum() for t in v))


def _dot(a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
    return sum((s * t).sum() for s, t in zip(a, b, strict=True))


def _axpy(alpha: float | torch.Tensor, x: list[torch.Tensor], y: list[torch.Tensor]):
    return [b + alpha * a for a, b in zip(x, y, strict=True)]


def _run_by_hand(direction: Callable[[int, list[torch.Tensor], int], list[torch.Tensor]]):
    """``STEPS`` steps of SGD with momentum (torch semantics) on ``d = (1/W) Σ_k d_k``."""
    w = [p.detach().clone() for p in _model().parameters()]
    buf = None
    for t in range(STEPS):
        ds = [direction(t, w, k) for k in range(WORLD)]
        d = [sum(parts) / WORLD for parts in zip(*ds, strict=True)]
        buf = d if buf is None else _axpy(1.0, d, [MOMENTUM * b for b in buf])
        w = _axpy(-LR, buf, w)
    return w


def _per_worker_sam() -> list[torch.Tensor]:
    """``d = mean_k ∇L_k(w + ρ g_k/‖g_k‖)`` (eps 1e-12, as the twin)."""
    x, y = _data()

    def direction(t: int, w: list[torch.Tensor], k: int) -> list[torch.Tensor]:
        xs, ys = _shard(x, y, k)
        g = _grad(w, xs, ys)
        return _grad(_axpy(RHO / (_norm(g) + 1e-12), g, w), xs, ys)

    return _run_by_hand(direction)


def _per_worker_multistep(k_steps: int = 2) -> list[torch.Tensor]:
    """Each worker: k normalised ascent steps of length ρ from its own gradients; d = g_k."""
    x, y = _data()

    def direction(t: int, w: list[torch.Tensor], k: int) -> list[torch.Tensor]:
        xs, ys = _shard(x, y, k)
        v = w
        for _ in range(k_steps):
            g = _grad(v, xs, ys)
            v = _axpy(RHO / (_norm(g) + 1e-12), g, v)
        return _grad(v, xs, ys)

    return _run_by_hand(direction)


def _per_worker_looksam() -> list[torch.Tensor]:
    """Per-worker LookSAM: every worker keeps its own g_v from its own shard."""
    x, y = _data()
    g_v: dict[int, list[torch.Tensor]] = {}

    def direction(t: int, w: list[torch.Tensor], k: int) -> list[torch.Tensor]:
        xs, ys = _shard(x, y, k)
        g = _grad(w, xs, ys)
        if t % LOOK_K == 0:
            g_s = _grad(_axpy(RHO / (_norm(g) + 1e-12), g, w), xs, ys)
            g_v[k] = _axpy(-_dot(g_s, g) / _dot(g, g), g, g_s)
            return g_s
        return _axpy(LOOK_ALPHA * _norm(g) / (_norm(g_v[k]) + 1e-8), g_v[k], g)

    return _run_by_hand(direction)


def _per_worker_samanatomy() -> list[torch.Tensor]:
    """Each shard's direction from one single-process SAMAnatomy step with SGD(lr=1): w − w'."""
    x, y = _data()

    def direction(t: int, w: list[torch.Tensor], k: int) -> list[torch.Tensor]:
        xs, ys = _shard(x, y, k)
        model = _model()
        with torch.no_grad():
            for p, v in zip(model.parameters(), w, strict=True):
                p.copy_(v)
        opt = st.SAMAnatomy(model.parameters(), torch.optim.SGD, rho=RHO, lr=1.0)

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = _mse(model, xs, ys)
            loss.backward()
            return loss

        opt.step(closure)
        return [v - p.detach() for p, v in zip(model.parameters(), w, strict=True)]

    return _run_by_hand(direction)


def _per_worker_accumulated(opt_name: str) -> list[torch.Tensor]:
    """``accumulated_sam_step`` with the two shards as micro-batches (mode A, m-sharpness)."""
    x, y = _data()
    model = _model()
    opt = OPTIMIZERS[opt_name](model.parameters())
    shards = [_shard(x, y, k) for k in range(WORLD)]
    for _ in range(STEPS):
        accumulated_sam_step(opt, shards, lambda b: _mse(model, *b))
    return [p.detach().clone() for p in model.parameters()]


PER_WORKER_REFERENCES = {
    "sam/per_worker": _per_worker_sam,
    "sam/per_worker/bucket_view": _per_worker_sam,
    "gsam/per_worker": lambda: _per_worker_accumulated("gsam"),
    "wsam/per_worker": lambda: _per_worker_accumulated("wsam"),
    "looksam/per_worker": _per_worker_looksam,
    "samanatomy/per_worker": _per_worker_samanatomy,
    "multistep/per_worker": _per_worker_multistep,
}


def _max_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max((s - t).abs().max().item() for s, t in zip(a, b, strict=True))


# -- (a) global ascent = SAM on the concatenated batch ------------------------------------------


@pytest.mark.parametrize("name", [n for n in SCENARIOS if SCENARIOS[n][1] == "global"])
def test_global_ascent_equals_single_process_on_the_concatenated_batch(ddp_results, name):
    expected = _single_process(SCENARIOS[name][0])
    for rank in range(WORLD):
        got = ddp_results[f"rank{rank}"][name]["params"]
        assert _max_diff(got, expected) < 1e-10, (name, rank, _max_diff(got, expected))


# -- (b) per-worker ascent = the average of the per-shard directions ----------------------------


@pytest.mark.parametrize("name", [n for n in SCENARIOS if SCENARIOS[n][1] == "per_worker"])
def test_per_worker_ascent_equals_the_average_of_per_shard_directions(ddp_results, name):
    expected = PER_WORKER_REFERENCES[name]()
    for rank in range(WORLD):
        got = ddp_results[f"rank{rank}"][name]["params"]
        assert _max_diff(got, expected) < 1e-10, (name, rank, _max_diff(got, expected))


def test_the_two_modes_really_differ(ddp_results):
    """m-sharpness is not n-SAM: the per-worker and global runs part after a step."""
    for opt in OPTIMIZERS:
        a = ddp_results["rank0"][f"{opt}/global"]["params"]
        b = ddp_results["rank0"][f"{opt}/per_worker"]["params"]
        assert _max_diff(a, b) > 1e-6, opt


@pytest.mark.parametrize("name", [*SCENARIOS, "sgd"])
def test_replicas_stay_identical(ddp_results, name):
    """Every worker ends with the same weights, bit for bit (rule state may differ)."""
    a, b = (ddp_results[f"rank{r}"][name]["params"] for r in range(WORLD))
    assert all(torch.equal(s, t) for s, t in zip(a, b, strict=True)), name


# -- (c) the all-reduce count is the documented one --------------------------------------------


@pytest.mark.parametrize("name", [*SCENARIOS, "sgd"])
def test_all_reduces_per_step_are_the_documented_ones(ddp_results, name):
    for rank in range(WORLD):
        run = ddp_results[f"rank{rank}"][name]
        measured = [hook + explicit for hook, explicit in run["counts"]]
        assert measured == DOCUMENTED[name], (name, rank, run["counts"])
        if run["plans"]:
            assert measured == [n for _, _, n in run["plans"]], name
        explicit = [e for _, e in run["counts"]]
        assert explicit == ([1] * STEPS if name in EXPLICIT else [0] * STEPS), name


def test_per_worker_sam_communicates_like_plain_ddp_sgd(ddp_results):
    run = ddp_results["rank0"]
    assert run["sam/per_worker"]["counts"] == run["sgd"]["counts"] == [(1, 0)] * STEPS
    assert run["sam/global"]["counts"] == [(2, 0)] * STEPS


def test_plain_module_with_two_workers_is_refused(ddp_results):
    message = ddp_results["rank0"]["errors"]["plain_module"]
    assert "DistributedDataParallel" in message


def test_workers_finish_quickly(ddp_results):
    assert ddp_results["time"] < 60


# -- in this process: plans, errors, the single-process fallback -------------------------------


def test_step_plans():
    ps = list(_model().parameters())
    sam = OPTIMIZERS["sam"](ps)
    assert ddp_step_plan(sam).synced == (False, True)
    assert ddp_step_plan(sam, "global").synced == (True, True)
    gsam = OPTIMIZERS["gsam"](ps)
    plan = ddp_step_plan(gsam)
    assert (plan.synced, plan.average_direction, plan.all_reduces) == ((False, False), True, 1)
    anatomy = OPTIMIZERS["samanatomy"](ps)
    assert ddp_step_plan(anatomy).synced == (False, False, True)
    assert ddp_step_plan(anatomy, "global").all_reduces == 3
    look = OPTIMIZERS["looksam"](ps)
    assert ddp_step_plan(look, "global").synced == (True, True)  # t = 0: a SAM step
    look.shared["step"] = 1
    assert ddp_step_plan(look, "global").synced == (True,)
    assert ddp_step_plan(look).synced == (False,)
    assert ddp_step_plan(look).average_direction
    wsam = st.WSAM(ps, torch.optim.SGD, rho=RHO, lr=LR, decouple=False)
    assert ddp_step_plan(wsam).average_direction  # coupled: d mixes g and g̃


def test_bad_arguments_raise_value_error():
    ps = list(_model().parameters())
    sam = OPTIMIZERS["sam"](ps)
    with pytest.raises(ValueError, match="ascent must be one of"):
        ddp_step_plan(sam, "local")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="one-gradient optimizer"):
        ddp_step_plan(st.MSAM(ps, lr=LR, rho=RHO))
    decoupled = st.WSAM(ps, torch.optim.SGD, rho=RHO, lr=LR, decouple=True)
    with pytest.raises(ValueError, match="decouple"):
        ddp_step_plan(decoupled)
    assert ddp_step_plan(decoupled, "global").all_reduces == 2

    class OwnPattern(st.SAM):
        def first_step(self, zero_grad: bool = False) -> None:
            super().first_step(zero_grad)

    with pytest.raises(ValueError, match="does not support OwnPattern"):
        ddp_step_plan(OwnPattern(ps, rho=RHO, lr=LR))
    with pytest.raises(ValueError, match=r"torch\.nn\.Module"):
        ddp_sam_step(sam, object(), lambda: torch.zeros(()))  # type: ignore[arg-type]


@pytest.mark.parametrize("ascent", ["per_worker", "global"])
@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
def test_single_process_plain_module_is_the_plain_step(ascent, opt_name):
    """Without a process group the helper is the twin's own ``step(closure)``, bit for bit."""
    x, y = _data()
    ref, model = _model(), _model()
    opt_ref = OPTIMIZERS[opt_name](ref.parameters())
    opt = OPTIMIZERS[opt_name](model.parameters())

    def closure() -> torch.Tensor:
        opt_ref.zero_grad()
        loss = _mse(ref, x, y)
        loss.backward()
        return loss

    for _ in range(3):
        loss_ref = opt_ref.step(closure)
        loss = ddp_sam_step(opt, model, lambda: _mse(model, x, y), ascent=ascent)
        assert torch.equal(loss, loss_ref.detach())
    for p, q in zip(ref.parameters(), model.parameters(), strict=True):
        assert torch.equal(p, q)
    assert all(p.grad is None for p in model.parameters())
    shared = opt.state_dict()["param_groups"][0]["shared"]
    assert copy.deepcopy(shared) == opt_ref.state_dict()["param_groups"][0]["shared"]


# -- FSDP2: the twins shard by shard, global norms, checkpoints through DCP --------------------


@pytest.mark.parametrize("name", FSDP_TWINS)
def test_fsdp2_twins_take_the_whole_batch_step_with_global_norms(ddp_results, name):
    """Under ``fully_shard`` every backward reduce-scatters the mean gradient and the norms are
    DTensor reductions over all ranks: the step is the twin's on the concatenated batch (the
    global ascent of DDP), not one normalised shard by shard."""
    if f"fsdp/{name}" not in ddp_results["rank0"]:
        pytest.skip("this torch has no torch.distributed.fsdp.fully_shard")
    expected = _single_process(name, steps=sum(FSDP_STEPS))
    for rank in range(WORLD):
        got = ddp_results[f"rank{rank}"][f"fsdp/{name}"]["params"]
        assert _max_diff(got, expected) < 1e-10, (name, rank, _max_diff(got, expected))


@pytest.mark.parametrize("name", FSDP_TWINS)
def test_fsdp2_checkpoint_through_dcp_resumes_bit_for_bit(ddp_results, name):
    if f"fsdp/{name}" not in ddp_results["rank0"]:
        pytest.skip("this torch has no torch.distributed.fsdp.fully_shard")
    for rank in range(WORLD):
        run = ddp_results[f"rank{rank}"][f"fsdp/{name}"]
        assert "momentum_buffer" in run["saved_keys"]
        assert all(torch.equal(a, b) for a, b in zip(run["params"], run["resumed"], strict=True))
        assert all(torch.equal(a, b) for a, b in zip(run["params"], run["loaded"], strict=True))
    if name == "looksam":
        assert "rule_state" in ddp_results["rank0"]["fsdp/looksam"]["saved_keys"]


# -- DDP(static_graph=True) -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sam", "gsam"])
def test_static_graph_refuses_a_first_unsynchronised_pass_then_steps_as_default_ddp(
    ddp_results, name
):
    for rank in range(WORLD):
        results = ddp_results[f"rank{rank}"]
        assert "ascent='global'" in results[f"static_graph/{name}/first_per_worker_error"]
        static, default = (
            results[f"static_graph=True/{name}"],
            results[f"static_graph=False/{name}"],
        )
        pairs = zip(static["params"], default["params"], strict=True)
        assert all(torch.equal(a, b) for a, b in pairs)
        per_step = [hook + explicit for hook, explicit in static["counts"]]
        assert per_step == [2, 1, 1, 1]  # global first (two passes), then one per step
        assert static["counts"] == default["counts"]


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "--worker":
    _worker(int(sys.argv[2]), sys.argv[3], sys.argv[4])
