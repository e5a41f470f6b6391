"""The fused CPU paths of the MSAM / Schedule-Free twins, on tensors large enough to take them.

The family's own tests (tests/test_torch_schedule_free_family.py) use tensors of a few dozen
elements. From ``sampy.torch.storage.LARGE_TENSOR_NUMEL`` elements on, a tensor's intermediate
results are written with ``out=`` into tensors that are dead at that point (the parameters of
Schedule-Free between its decay and the new y, the consumed gradients), and on the CPU every
move between w and w̃ reads its factor on the host (one ``add_(u, alpha=…)``). These tests
check that those paths keep the promises made for the small ones: bit for bit where the family
promises it, the same mathematics as the device path elsewhere.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from twin_helpers import counting_closure, forbid_host_reads, two_groups  # noqa: E402

from sampy.torch import host_reads  # noqa: E402
from sampy.torch.moments import split_large  # noqa: E402
from sampy.torch.msam import MSAM, AdamWMSAM  # noqa: E402
from sampy.torch.msam_schedule_free import AdamWMSAMScheduleFree, NotesAdamWMSAMScheduleFree  # noqa: E402
from sampy.torch.schedule_free import ScheduleFreeAdamW  # noqa: E402
from sampy.torch.storage import LARGE_TENSOR_NUMEL  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

WIDTH = 96  # 400 · 96 = 38400 weights in the first layer: above LARGE_TENSOR_NUMEL


def _model(dtype=torch.float64, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(400, WIDTH), torch.nn.Tanh(), torch.nn.Linear(WIDTH, 3)
    ).to(dtype)


def _data(dtype=torch.float64):
    gen = torch.Generator().manual_seed(1)
    return torch.randn(16, 400, generator=gen, dtype=dtype), torch.randint(
        0, 3, (16,), generator=gen
    )


def _closure(opt, model, inputs, targets):
    return counting_closure(opt, lambda: torch.nn.functional.cross_entropy(model(inputs), targets))


def _run(cls, kwargs, dtype=torch.float64, steps=12, groups=True):
    model = _model(dtype)
    inputs, targets = _data(dtype)
    opt = cls(two_groups(model) if groups else model.parameters(), **kwargs)
    for _ in range(steps):
        opt.step(_closure(opt, model, inputs, targets))
    return model, opt


def test_the_model_takes_the_large_tensor_paths():
    weight = next(_model().parameters())
    assert weight.numel() >= LARGE_TENSOR_NUMEL
    assert split_large([weight.detach().clone()], [weight]) == ([0], [])
    # a view into a shared buffer (a DDP bucket) is never written into
    bucket = torch.zeros(2 * weight.numel(), dtype=weight.dtype)
    view = bucket[: weight.numel()].view_as(weight)
    assert split_large([weight.detach().clone()], [view]) == ([], [0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("ours", "theirs", "kwargs"),
    [
        (MSAM, torch.optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.05)),
        (AdamWMSAM, torch.optim.Adam, dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.0)),
    ],
    ids=["MSAM-SGD", "AdamWMSAM-Adam"],
)
def test_rho_zero_is_the_torch_optimizer_bit_for_bit(ours, theirs, kwargs, dtype):
    a, _ = _run(ours, {**kwargs, "rho": 0.0}, dtype)
    b, _ = _run(theirs, kwargs, dtype)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_combination_with_rho_zero_is_schedule_free_adamw_bit_for_bit(weight_decay, dtype):
    kwargs = dict(lr=0.01, weight_decay=weight_decay, warmup_steps=3)
    a, opt_a = _run(AdamWMSAMScheduleFree, {**kwargs, "rho": 0.0}, dtype)
    b, opt_b = _run(ScheduleFreeAdamW, kwargs, dtype)
    opt_a.eval()
    opt_b.eval()
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


def test_schedule_free_matches_the_official_reference_class_bit_for_bit():
    schedulefree = pytest.importorskip("schedulefree")
    hyper = dict(lr=0.01, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.05, warmup_steps=3, r=0.5)
    ours, _ = _run(ScheduleFreeAdamW, hyper)
    model = _model()
    inputs, targets = _data()
    theirs = schedulefree.AdamWScheduleFreeReference(two_groups(model), **hyper)
    theirs.train()
    for _ in range(12):
        theirs.step(_closure(theirs, model, inputs, targets))
    for p, q in zip(ours.parameters(), model.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (ScheduleFreeAdamW, dict(lr=0.01, weight_decay=0.05)),
        (ScheduleFreeAdamW, dict(lr=0.01, variant="gen_a", decay_at_z=True, weight_decay=0.05)),
        (AdamWMSAMScheduleFree, dict(lr=0.01, rho=0.1)),
        (AdamWMSAMScheduleFree, dict(lr=0.01, rho=0.1, weight_decay=0.05)),
    ],
    ids=["SF", "SF-gen_a-decay_at_z", "MSF", "MSF-decay"],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_eval_then_train_restores_the_training_point_bit_for_bit(cls, kwargs, dtype):
    model, opt = _run(cls, kwargs, dtype)
    stored = [p.detach().clone() for p in model.parameters()]
    opt.eval()
    assert not all(torch.equal(p, s) for p, s in zip(model.parameters(), stored, strict=True))
    opt.train()
    for p, s in zip(model.parameters(), stored, strict=True):
        assert torch.equal(p, s)


@pytest.mark.parametrize("grad_mode", ["sum_two", "perturbed_only"])
def test_notes_loop_by_hand_equals_step_with_closure(grad_mode):
    kwargs = dict(lr=0.01, rho=0.1, weight_decay=0.05, grad_mode=grad_mode)
    inputs, targets = _data()
    auto_model, hand_model = _model(), _model()
    auto = NotesAdamWMSAMScheduleFree(auto_model.parameters(), **kwargs)
    hand = NotesAdamWMSAMScheduleFree(hand_model.parameters(), **kwargs)

    def loss(model):
        return torch.nn.functional.cross_entropy(model(inputs), targets)

    for _ in range(8):
        auto.step(_closure(auto, auto_model, inputs, targets))
        hand.zero_grad()
        if grad_mode == "sum_two":
            loss(hand_model).backward()
        hand.move_to_ascent()
        loss(hand_model).backward()
        hand.move_from_ascent()
        hand.step()
    for p, q in zip(auto_model.parameters(), hand_model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_notes_keeps_a_clean_gradient_that_is_a_view_of_a_reused_buffer():
    """A gradient that is a view into a buffer the next backward writes again (as DDP's
    ``gradient_as_bucket_view``) is copied aside, not kept by reference."""
    kwargs = dict(lr=0.01, rho=0.1, weight_decay=0.05)
    inputs, targets = _data()
    plain_model, bucket_model = _model(), _model()
    plain = NotesAdamWMSAMScheduleFree(plain_model.parameters(), **kwargs)
    bucketed = NotesAdamWMSAMScheduleFree(bucket_model.parameters(), **kwargs)
    params = list(bucket_model.parameters())
    bucket = torch.zeros(sum(p.numel() for p in params), dtype=torch.float64)
    views = list(torch.split(bucket, [p.numel() for p in params]))
    views = [v.view_as(p) for v, p in zip(views, params, strict=True)]

    def bucket_closure():
        for p in params:
            p.grad = None
        value = torch.nn.functional.cross_entropy(bucket_model(inputs), targets)
        grads = torch.autograd.grad(value, params)
        for p, v, g in zip(params, views, grads, strict=True):
            v.copy_(g)  # the same buffer on every backward
            p.grad = v
        return value

    for _ in range(6):
        plain.step(_closure(plain, plain_model, inputs, targets))
        bucketed.step(bucket_closure)
    for p, q in zip(plain_model.parameters(), bucket_model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-15)


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (MSAM, dict(lr=0.05, momentum=0.9, weight_decay=0.01, rho=0.3)),
        (AdamWMSAM, dict(lr=0.01, weight_decay=0.01, rho=0.5)),
        (AdamWMSAMScheduleFree, dict(lr=0.01, rho=0.1, weight_decay=0.05)),
        (NotesAdamWMSAMScheduleFree, dict(lr=0.01, rho=0.1, weight_decay=0.05)),
    ],
    ids=["MSAM", "AdamWMSAM", "MSF", "Notes"],
)
def test_the_device_path_is_the_same_mathematics(cls, kwargs, monkeypatch):
    """With the factors kept as 0-dim tensors (the accelerator path: ``addcmul_``, no host
    read) the trajectory agrees with the CPU path's ``add_(u, alpha=…)`` to rounding."""
    cpu, _ = _run(cls, kwargs)
    monkeypatch.setattr(host_reads, "READ_CPU_VALUES", False)
    device, _ = _run(cls, kwargs)
    for p, q in zip(cpu.parameters(), device.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-13)


@pytest.mark.parametrize("cls", [MSAM, AdamWMSAM])
def test_moves_round_trip_to_one_rounding(cls):
    model, opt = _run(cls, dict(rho=0.5))
    stored = [p.detach().clone() for p in model.parameters()]
    opt.move_from_ascent()
    assert not all(torch.equal(p, s) for p, s in zip(model.parameters(), stored, strict=True))
    opt.move_to_ascent()
    for p, s in zip(model.parameters(), stored, strict=True):
        torch.testing.assert_close(p, s, rtol=0, atol=1e-15)


def test_one_group_or_two_give_the_same_bits():
    for cls, kwargs in [
        (MSAM, dict(rho=0.3)),
        (AdamWMSAM, dict(rho=0.5)),
        (ScheduleFreeAdamW, dict(weight_decay=0.05)),
        (AdamWMSAMScheduleFree, dict(rho=0.1)),
        (NotesAdamWMSAMScheduleFree, dict(rho=0.1)),
    ]:
        two, _ = _run(cls, kwargs, torch.float32)
        one, _ = _run(cls, kwargs, torch.float32, groups=False)
        for p, q in zip(two.parameters(), one.parameters(), strict=True):
            assert torch.equal(p, q), cls.__name__


@pytest.mark.parametrize(
    "cls",
    [MSAM, AdamWMSAM, ScheduleFreeAdamW, AdamWMSAMScheduleFree, NotesAdamWMSAMScheduleFree],
)
def test_the_device_path_reads_no_tensor_value_on_the_host(cls, monkeypatch):
    """The CPU path reads its factors with ``.item()`` (free there); with them kept on the
    device, as on an accelerator, a whole step (closure included) reads nothing."""
    monkeypatch.setattr(host_reads, "READ_CPU_VALUES", False)
    model = _model()
    inputs, targets = _data()
    opt = cls(two_groups(model))
    closure = _closure(opt, model, inputs, targets)
    opt.step(closure)
    guarded = forbid_host_reads(opt.step, monkeypatch, also=("nonzero",))
    before = [p.detach().clone() for p in model.parameters()]
    for _ in range(3):
        guarded(closure)
    assert not all(torch.equal(p, b) for p, b in zip(model.parameters(), before, strict=True))


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (MSAM, dict(lr=0.05, momentum=0.9, weight_decay=0.0, rho=0.3)),
        (AdamWMSAM, dict(lr=0.01, weight_decay=0.01, rho=0.5)),
        (ScheduleFreeAdamW, dict(lr=0.01, weight_decay=0.01)),
        (AdamWMSAMScheduleFree, dict(lr=0.01, rho=0.1, weight_decay=0.05)),
    ],
    ids=["MSAM", "AdamWMSAM", "SF", "MSF"],
)
def test_after_a_step_p_grad_is_still_the_gradient(cls, kwargs):
    """No scratch result (an Adam denominator, say) is left in ``p.grad``: a training loop
    that logs or clips gradients after ``step`` reads what backward wrote, as with torch's
    optimizers (MSAM with weight decay documents its ``d = g + λ w̃`` there)."""
    model = _model()
    inputs, targets = _data()
    opt = cls(model.parameters(), **kwargs)
    closure = _closure(opt, model, inputs, targets)
    for _ in range(3):
        opt.step(closure)
        grads = [p.grad.clone() for p in model.parameters()]
        assert not any(g.eq(0).all() for g in grads)
    opt.zero_grad()
    closure()
    grads = [p.grad.clone() for p in model.parameters()]
    opt.step()
    for p, g in zip(model.parameters(), grads, strict=True):
        assert torch.equal(p.grad, g)
