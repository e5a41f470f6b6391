"""The claims of the migration page (book/migration.md), checked against sampy.torch.

The page runs davda54/sam's README loop, pytorch-optimizer's documented loop, sampy's two-call
loop and its closure-only loop against the twins; these tests run the same four loops (written
here again, independently of the page) and check the passes per step and the weights, the
closure convention's details, and that every ``sampy.torch`` name the page's cells use exists.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
import yaml

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import sampy.torch as st  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "book" / "migration.md"
K = 3
N_STEPS = 6


def batches():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(N_STEPS, 16, 8, generator=generator)
    y = torch.randint(0, 4, (N_STEPS, 16), generator=generator)
    return list(zip(x, y, strict=True))


class Counting(nn.Module):
    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
        self.passes = 0

    def forward(self, x):
        self.passes += 1
        return self.net(x)


def flat(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def davda54(model, opt):
    for x, y in batches():

        def closure(x=x, y=y):
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            return loss

        F.cross_entropy(model(x), y).backward()
        opt.step(closure)
        opt.zero_grad()


def pytorch_optimizer_loop(model, opt):
    for x, y in batches():

        def closure(x=x, y=y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            return loss

        closure()
        opt.step(closure)


def two_call(model, opt):
    for x, y in batches():
        F.cross_entropy(model(x), y).backward()
        if getattr(opt, "is_sam_step", True):
            opt.first_step(zero_grad=True)
            F.cross_entropy(model(x), y).backward()
        opt.second_step(zero_grad=True)


def closure_only(model, opt):
    for x, y in batches():

        def closure(x=x, y=y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            return loss

        opt.step(closure)


BASE = {"lr": 0.1, "momentum": 0.9}
TWINS = {
    "SAM": lambda ps: st.SAM(ps, torch.optim.SGD, rho=0.05, **BASE),
    "ASAM": lambda ps: st.SAM(ps, torch.optim.SGD, rho=0.5, adaptive=True, **BASE),
    "GSAM": lambda ps: st.GSAM(ps, torch.optim.SGD, rho=0.05, alpha=0.4, **BASE),
    "WSAM": lambda ps: st.WSAM(ps, torch.optim.SGD, rho=0.05, **BASE),
    "USAM": lambda ps: st.USAM(ps, torch.optim.SGD, rho=0.05, **BASE),
    "FriendlySAM": lambda ps: st.FriendlySAM(ps, torch.optim.SGD, rho=0.05, **BASE),
    "LookSAM": lambda ps: st.LookSAM(ps, torch.optim.SGD, rho=0.05, k=K, **BASE),
}
LOOPS = {"davda54": davda54, "pytorch-optimizer": pytorch_optimizer_loop, "closure": closure_only}


def run(loop, make):
    model = Counting()
    opt = make(model.parameters())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loop(model, opt)
    return flat(model), model.passes / N_STEPS


@pytest.mark.parametrize("loop", list(LOOPS))
@pytest.mark.parametrize("twin", list(TWINS))
def test_documented_loops_cost_two_passes_and_take_the_two_call_step(twin, loop):
    reference, reference_passes = run(two_call, TWINS[twin])
    w, passes = run(LOOPS[loop], TWINS[twin])
    expected = 1 + 1 / K if twin == "LookSAM" else 2.0
    assert reference_passes == expected
    assert passes == expected, f"{twin} with the {loop} loop: {passes} passes per step"
    assert torch.equal(w, reference), f"{twin} with the {loop} loop left the two-call loop"


def test_pytorch_optimizer_sam_agrees_on_its_own_loop():
    pytorch_optimizer = pytest.importorskip("pytorch_optimizer")
    ours, _ = run(pytorch_optimizer_loop, TWINS["SAM"])
    theirs, passes = run(
        pytorch_optimizer_loop,
        lambda ps: pytorch_optimizer.SAM(ps, torch.optim.SGD, rho=0.05, **BASE),
    )
    assert passes == 2.0
    assert (ours - theirs).abs().max().item() < 1e-5


def _closure(model, opt, x, y, calls):
    def closure():
        calls.append(1)
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    return closure


def test_step_returns_the_loss_at_w_only_when_it_computed_it_and_clears_gradients():
    (x, y), model = batches()[0], Counting()
    opt = TWINS["SAM"](model.parameters())
    calls = []
    loss = opt.step(_closure(model, opt, x, y, calls))
    assert len(calls) == 2 and torch.is_tensor(loss) and loss.dim() == 0
    assert all(p.grad is None for p in model.parameters())
    F.cross_entropy(model(x), y).backward()
    assert opt.step(_closure(model, opt, x, y, calls)) is None and len(calls) == 3
    assert all(p.grad is None for p in model.parameters())


def test_zero_tensors_left_by_set_to_none_false_read_as_a_gradient():
    """The page's caveat: zero tensors in p.grad are a (zero) gradient, so the closure runs once."""
    (x, y), model = batches()[0], Counting()
    opt = TWINS["SAM"](model.parameters())
    F.cross_entropy(model(x), y).backward()
    opt.zero_grad(set_to_none=False)
    calls = []
    opt.step(_closure(model, opt, x, y, calls))
    assert len(calls) == 1


def test_example_closure_twins_discard_a_present_gradient_with_one_warning():
    (x, y), model = batches()[0], Counting()
    opt = st.ESAM(model.parameters(), torch.optim.SGD, lr=0.1)

    def losses(indices=None):
        xs, ys = (x, y) if indices is None else (x[indices], y[indices])
        return F.cross_entropy(model(xs), ys, reduction="none")

    with pytest.warns(UserWarning) as caught:
        for _ in range(2):
            F.cross_entropy(model(x), y).backward()
            opt.step(losses)
    assert len([w for w in caught if issubclass(w.category, UserWarning)]) == 1


def test_fork_rng_replays_the_dropout_mask():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.5), nn.ReLU(), nn.Linear(16, 4))
    opt = st.SAM(model.parameters(), torch.optim.SGD, rho=0.05, lr=0.1)
    masks = []
    model[1].register_forward_hook(lambda m, i, out: masks.append(out != 0))
    x, y = batches()[0]
    state = torch.get_rng_state()
    F.cross_entropy(model(x), y).backward()
    opt.first_step(zero_grad=True)
    before_fork = torch.get_rng_state()
    with torch.random.fork_rng(devices=[]):
        torch.set_rng_state(state)
        F.cross_entropy(model(x), y).backward()
    assert torch.equal(torch.get_rng_state(), before_fork)  # the stream goes on unchanged
    opt.second_step(zero_grad=True)
    F.cross_entropy(model(x), y).backward()  # a third pass, without the replay
    assert torch.equal(masks[0], masks[1]) and not torch.equal(masks[0], masks[2])


def test_page_sits_after_the_pytorch_chapter_and_links_back():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    practice = next(p for p in toc["parts"] if p["caption"] == "In practice")
    files = [c["file"] for c in practice["chapters"]]
    assert files[files.index("book/pytorch") + 1] == "book/migration"
    assert "{doc}`migration`" in (ROOT / "book" / "pytorch.md").read_text()


def _cells(text):
    return re.findall(r"```\{code-cell\}[^\n]*\n(.*?)```", text, re.S)


def test_every_sampy_torch_name_in_the_page_exists():
    text = PAGE.read_text()
    code = "\n".join(_cells(text))
    names = set(re.findall(r"\bst\.([A-Za-z_]\w*)", code))
    assert names, "the page's cells use sampy.torch"
    assert not [n for n in names if not hasattr(st, n)]
    assert "PLACEHOLDER" not in text


def test_page_numbers_are_glued_not_typed():
    """Every {glue:text} name the prose uses is glued by a cell."""
    text = PAGE.read_text()
    used = set(re.findall(r"\{glue:text\}`([A-Za-z_0-9]+)", text))
    glued = set(re.findall(r"glue\(\"([A-Za-z_0-9]+)\"", "\n".join(_cells(text))))
    assert used and used <= glued


def bn_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4))


def test_first_pass_block_counts_one_batch_per_step_in_davda54_s_loop():
    model = bn_model()
    opt = TWINS["SAM"](model.parameters())
    for x, y in batches():

        def closure(x=x, y=y):
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            return loss

        with st.running_stats_from_first_pass(model):
            F.cross_entropy(model(x), y).backward()
            opt.step(closure)
    assert model[1].num_batches_tracked.item() == N_STEPS


def test_compiled_model_recompiles_once_for_the_batchnorm_freeze():
    """The page: the freeze costs torch.compile one more graph, compiled once and cached."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    model = bn_model()
    compiled = torch.compile(model, backend="eager")
    opt = TWINS["SAM"](model.parameters())
    try:
        for x, y in batches():
            with st.running_stats_from_first_pass(model):
                F.cross_entropy(compiled(x), y).backward()
                opt.first_step(zero_grad=True)
                F.cross_entropy(compiled(x), y).backward()
                opt.second_step(zero_grad=True)
        assert counters["stats"]["unique_graphs"] == 2
    finally:
        torch._dynamo.reset()


@pytest.mark.parametrize("loop", [two_call, closure_only, davda54])
def test_hooks_fire_once_per_step_on_the_twin_and_the_base_and_twice_globally(loop):
    from torch.optim.optimizer import register_optimizer_step_post_hook

    model = Counting()
    opt = TWINS["SAM"](model.parameters())
    fired = {"twin": 0, "base": 0, "global": 0}

    def counter(key):
        def hook(optimizer, args, kwargs):
            fired[key] += 1

        return hook

    handles = [
        opt.register_step_post_hook(counter("twin")),
        opt.base_optimizer.register_step_post_hook(counter("base")),
        register_optimizer_step_post_hook(counter("global")),
    ]
    try:
        loop(model, opt)
    finally:
        for handle in handles:
            handle.remove()
    assert fired == {"twin": N_STEPS, "base": N_STEPS, "global": 2 * N_STEPS}


def test_state_dict_is_torch_s_layout_without_a_copy_of_the_weights():
    import io

    def nbytes(state):
        buffer = io.BytesIO()
        torch.save(state, buffer)
        return buffer.getbuffer().nbytes

    model, sgd_model = Counting(), Counting()
    opt = TWINS["SAM"](model.parameters())
    sgd = torch.optim.SGD(sgd_model.parameters(), **BASE)
    two_call(model, opt)
    for x, y in batches():
        F.cross_entropy(sgd_model(x), y).backward()
        sgd.step()
        sgd.zero_grad()
    state = opt.state_dict()
    assert sorted(state) == ["param_groups", "state"]
    assert all("momentum_buffer" in entry for entry in state["state"].values())
    assert nbytes(state) < 1.05 * nbytes(sgd.state_dict())
    assert "SGD" in repr(opt)


def test_clipping_the_direction_bounds_the_base_step():
    from sampy.torch.clipping import clip_direction

    for make in (TWINS["SAM"], TWINS["GSAM"]):
        model = Counting()
        opt = make(model.parameters())
        for group in opt.param_groups:
            group["momentum"] = 0.0
        handle = clip_direction(opt, 0.01)
        w = flat(model)
        two_call(model, opt)
        handle.remove()
        steps = (flat(model) - w).norm().item()
        assert 0 < steps <= N_STEPS * BASE["lr"] * 0.01 * (1 + 1e-5)


def test_ema_averages_w_for_msam_not_its_ascent_point():
    from sampy.torch.ema import WithEMA, unperturbed

    model = Counting()
    opt = st.MSAM(model.parameters(), lr=0.1, rho=0.3)
    ema = WithEMA(model, opt, ema_momentum=0.9)
    average = None
    for x, y in batches():
        F.cross_entropy(model(x), y).backward()
        opt.step()
        opt.zero_grad()
        ema.update()
        with unperturbed(opt):
            w = flat(model)
        average = w if average is None else 0.9 * average + 0.1 * w
    assert not torch.equal(w, flat(model))  # MSAM's parameters hold another point
    assert (flat(ema.module) - average).abs().max().item() < 1e-6


def test_sampy_s_closure_only_loop_is_one_pass_in_pytorch_optimizer():
    pytorch_optimizer = pytest.importorskip("pytorch_optimizer")
    _, passes = run(
        closure_only,
        lambda ps: pytorch_optimizer.SAM(ps, torch.optim.SGD, rho=0.05, **BASE),
    )
    assert passes == 1.0


def test_base_optimizer_as_class_factory_or_instance_gives_the_same_steps():
    import functools

    weights = []
    for how in ("class", "factory", "instance"):
        model = Counting()
        if how == "class":
            opt = st.SAM(model.parameters(), torch.optim.SGD, rho=0.05, **BASE)
        elif how == "factory":
            factory = functools.partial(torch.optim.SGD, momentum=BASE["momentum"])
            opt = st.SAM(model.parameters(), factory, rho=0.05, lr=BASE["lr"])
        else:
            base = torch.optim.SGD(model.parameters(), **BASE)
            opt = st.SAM(model.parameters(), base, rho=0.05)
        two_call(model, opt)
        weights.append(flat(model))
    assert all(torch.equal(weights[0], w) for w in weights[1:])
