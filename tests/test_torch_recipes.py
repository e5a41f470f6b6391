"""``sampy.torch.recipes``: GradScaler, bf16 autocast, gradient accumulation, torch.compile."""

from __future__ import annotations

import copy
import shutil

import pytest

torch = pytest.importorskip("torch")

import sampy.torch as st  # noqa: E402
from sampy.torch.recipes import (  # noqa: E402
    accumulated_sam_step,
    amp_sam_step,
    bf16_sam_step,
    same_dropout_masks,
    union_batch_sam_step,
)

RHO, LR = 0.05, 0.1


def _model(dtype: torch.dtype = torch.float64) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).to(
        dtype
    )


def _data(n: int = 32, dtype: torch.dtype = torch.float64, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=gen, dtype=dtype)
    y = torch.sin(x.sum(1, keepdim=True)) + 0.1 * torch.randn(n, 1, generator=gen, dtype=dtype)
    return x, y


def _mse(model, x, y):
    return torch.nn.functional.mse_loss(model(x), y)


def _sam(model, **kw):
    return st.SAM(model.parameters(), torch.optim.SGD, rho=RHO, lr=LR, momentum=0.9, **kw)


def _plain_sam_step(opt, model, x, y):
    def closure():
        opt.zero_grad()
        loss = _mse(model, x, y)
        loss.backward()
        return loss

    return opt.step(closure)


def _params(model):
    return [p.detach().clone() for p in model.parameters()]


def _momenta(opt):
    return [
        opt.base_optimizer.state[p]["momentum_buffer"].clone()
        for p in opt.param_groups[0]["params"]
    ]


# -- GradScaler -------------------------------------------------------------------------------


def test_amp_step_equals_unscaled_sam_exactly():
    """The scale is a power of two (2^16): scaling the loss, backpropagating and unscaling is
    exact in binary floating point (no overflow/underflow here), so the step is bit-identical."""
    x, y = _data()
    ref, amp = _model(), _model()
    opt_ref, opt_amp = _sam(ref), _sam(amp)
    scaler = torch.amp.GradScaler("cpu")
    assert scaler.get_scale() == 2.0**16
    for _ in range(3):
        loss_ref = _plain_sam_step(opt_ref, ref, x, y)
        loss_amp, skipped = amp_sam_step(opt_amp, scaler, lambda: _mse(amp, x, y))
        assert not skipped
        assert torch.equal(loss_ref.detach(), loss_amp)
    for a, b in zip(ref.parameters(), amp.parameters(), strict=True):
        assert torch.equal(a, b)
    assert scaler.get_scale() == 2.0**16  # no overflow, no growth before growth_interval
    assert all(p.grad is None for p in amp.parameters())


@pytest.mark.parametrize("bad_call", [1, 2], ids=["first-pass", "second-pass"])
@pytest.mark.parametrize("early_exit", [False, True])
def test_amp_overflow_skips_the_whole_step(bad_call, early_exit):
    x, y = _data()
    model = _model()
    opt = _sam(model)
    scaler = torch.amp.GradScaler("cpu")
    amp_sam_step(opt, scaler, lambda: _mse(model, x, y))  # one clean step: momentum exists
    w0, m0 = _params(model), _momenta(opt)
    calls = []

    def loss_fn():
        calls.append(1)
        loss = _mse(model, x, y)
        return loss * float("inf") if len(calls) == bad_call else loss

    _, skipped = amp_sam_step(opt, scaler, loss_fn, early_exit=early_exit)
    assert skipped
    assert len(calls) == (1 if early_exit and bad_call == 1 else 2)
    for a, b in zip(w0, model.parameters(), strict=True):
        assert torch.equal(a, b)  # w restored exactly, no base step
    for a, b in zip(m0, _momenta(opt), strict=True):
        assert torch.equal(a, b)  # base optimizer state untouched
    assert scaler.get_scale() == 2.0**15  # backed off once
    # The optimizer is clean: the next step equals a plain SAM step from the same state.
    ref = copy.deepcopy(model)
    opt_ref = _sam(ref)
    opt_ref.load_state_dict(copy.deepcopy(opt.state_dict()))  # torch shares the tensors
    _plain_sam_step(opt_ref, ref, x, y)
    _, skipped = amp_sam_step(opt, scaler, lambda: _mse(model, x, y))
    assert not skipped
    for a, b in zip(ref.parameters(), model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_amp_disabled_scaler_is_plain_sam():
    x, y = _data()
    ref, m = _model(), _model()
    opt_ref, opt = _sam(ref), _sam(m)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    _plain_sam_step(opt_ref, ref, x, y)
    _, skipped = amp_sam_step(opt, scaler, lambda: _mse(m, x, y))
    assert not skipped
    for a, b in zip(ref.parameters(), m.parameters(), strict=True):
        assert torch.equal(a, b)


def test_amp_float16_autocast_on_cpu_trains():
    x, y = _data(dtype=torch.float32)
    model = _model(torch.float32)
    opt = _sam(model)
    scaler = torch.amp.GradScaler("cpu")

    def loss_fn():
        with torch.autocast("cpu", dtype=torch.float16):
            return _mse(model, x, y)

    first = float(loss_fn().detach())
    for _ in range(20):
        loss, skipped = amp_sam_step(opt, scaler, loss_fn)
        assert not skipped and torch.isfinite(loss)
    assert float(loss_fn().detach()) < first


# -- bfloat16 ---------------------------------------------------------------------------------


def test_bf16_autocast_training_reduces_the_loss():
    x, y = _data(dtype=torch.float32)
    model = _model(torch.float32)
    opt = _sam(model)
    losses = [float(bf16_sam_step(opt, lambda: _mse(model, x, y))) for _ in range(20)]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.8 * losses[0]
    assert all(p.dtype == torch.float32 for p in model.parameters())


# -- BatchNorm: model= ---------------------------------------------------------------------------


def _bn_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(4, 16), torch.nn.BatchNorm1d(16), torch.nn.Tanh(), torch.nn.Linear(16, 1)
    )


def _bn_stats(model) -> list[torch.Tensor]:
    bn = model[1]
    return [bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone()]


def _fp16_loss(model, x, y):
    with torch.autocast("cpu", dtype=torch.float16):
        return torch.nn.functional.mse_loss(model(x).float(), y)


def test_amp_with_model_keeps_the_first_pass_statistics_without_counting_calls():
    x, y = _data(dtype=torch.float32)
    model, reference = _bn_model(), _bn_model()
    opt = _sam(model)
    scaler = torch.amp.GradScaler("cpu")
    for _ in range(3):
        reference.load_state_dict(model.state_dict())
        _fp16_loss(reference, x, y)  # one clean pass at w
        _, skipped = amp_sam_step(opt, scaler, lambda: _fp16_loss(model, x, y), model=model)
        assert not skipped
        for got, want in zip(_bn_stats(model), _bn_stats(reference), strict=True):
            assert torch.equal(got, want)
    assert model[1].num_batches_tracked.item() == 3


@pytest.mark.parametrize(("bad_call", "early_exit"), [(2, False), (1, False), (1, True)])
def test_amp_overflow_with_model_leaves_finite_unchanged_statistics(bad_call, early_exit):
    """An fp16 overflow in either pass: the step is skipped, the weights and the eval-mode
    statistics are those of before the step (the review's 0 · inf = NaN running variance)."""
    x, y = _data(dtype=torch.float32)
    model = _bn_model()
    opt = _sam(model)
    scaler = torch.amp.GradScaler("cpu")
    calls = [0]

    def loss_fn():
        calls[0] += 1
        return _fp16_loss(model, x * 1e6 if calls[0] == bad_call else x, y)

    weights, stats = _params(model), _bn_stats(model)
    model.eval()
    outputs = model(x).detach()
    model.train()
    _, skipped = amp_sam_step(opt, scaler, loss_fn, early_exit=early_exit, model=model)
    assert skipped
    assert all(torch.equal(a, b) for a, b in zip(_params(model), weights, strict=True))
    for got, want in zip(_bn_stats(model), stats, strict=True):
        assert torch.equal(got, want)
    model.eval()
    assert torch.equal(model(x).detach(), outputs)
    assert model[1].running_var.isfinite().all()


def test_bf16_with_model_keeps_the_first_pass_statistics():
    x, y = _data(dtype=torch.float32)
    model, reference = _bn_model(), _bn_model()
    opt = _sam(model)

    def loss_of(net):
        return torch.nn.functional.mse_loss(net(x).float(), y)

    for _ in range(3):
        reference.load_state_dict(model.state_dict())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss_of(reference)
        bf16_sam_step(opt, lambda: loss_of(model), model=model)
        for got, want in zip(_bn_stats(model), _bn_stats(reference), strict=True):
            assert torch.equal(got, want)
    assert model[1].num_batches_tracked.item() == 3


@pytest.mark.parametrize("recipe", [accumulated_sam_step, union_batch_sam_step])
def test_accumulation_with_model_counts_the_clean_passes_only(recipe):
    """One statistics update per micro-batch, from its pass at w; none from the passes at w + ε."""
    x, y = _data(n=24, dtype=torch.float32)
    micro_batches = [(x[i : i + 8], y[i : i + 8]) for i in range(0, 24, 8)]
    model, reference = _bn_model(), _bn_model()
    opt = _sam(model)
    for _ in range(2):
        reference.load_state_dict(model.state_dict())
        for xb, _yb in micro_batches:
            reference(xb)  # the clean passes at w, in order
        recipe(opt, micro_batches, lambda batch: _mse(model, *batch), model=model)
        for got, want in zip(_bn_stats(model), _bn_stats(reference), strict=True):
            assert torch.equal(got, want)
    assert model[1].num_batches_tracked.item() == 2 * len(micro_batches)
    assert model[1].track_running_stats


def _dropout_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(4, 16), torch.nn.Dropout(0.5), torch.nn.Tanh(), torch.nn.Linear(16, 1)
    ).double()


def _masks_of_one_step(model, opt, x, y) -> list[torch.Tensor]:
    masks = []
    handle = model[1].register_forward_hook(lambda m, args, out: masks.append(out != 0))
    opt.step(lambda: _mse(model, x, y).backward())
    handle.remove()
    return masks


def test_same_dropout_masks_in_every_pass_of_a_step():
    x, y = _data()
    model = _dropout_model()
    opt = _sam(model)
    plain = _masks_of_one_step(model, opt, x, y)
    assert len(plain) >= 2 and not torch.equal(plain[0], plain[-1])  # the default: new masks
    torch.manual_seed(5)
    with same_dropout_masks(model):
        shared = _masks_of_one_step(model, opt, x, y)
    assert len(shared) >= 2 and all(torch.equal(shared[0], m) for m in shared)
    after_step = torch.rand(3)
    torch.manual_seed(5)
    model(x)  # one pass from the same state: the stream goes on as after one pass
    assert torch.equal(torch.rand(3), after_step)
    assert not model._forward_pre_hooks
    with pytest.raises(ValueError, match="needs the model"):
        with same_dropout_masks(opt):
            pass


# -- gradient accumulation ----------------------------------------------------------------------


@pytest.mark.parametrize("n", [4, 3])
def test_accumulation_identical_micro_batches_is_one_sam_step(n):
    x, y = _data(8)
    ref, acc = _model(), _model()
    opt_ref, opt_acc = _sam(ref), _sam(acc)
    for _ in range(2):
        _plain_sam_step(opt_ref, ref, x, y)
        accumulated_sam_step(opt_acc, [(x, y)] * n, lambda b: _mse(acc, *b))
    for a, b in zip(ref.parameters(), acc.parameters(), strict=True):
        if n == 4:  # (4 d)/4 is exact
            assert torch.equal(a, b)
        else:
            torch.testing.assert_close(a, b, rtol=0, atol=1e-14)


def test_accumulation_mode_a_is_the_mean_of_per_micro_batch_sam_gradients():
    x, y = _data(12)
    batches = [(x[i : i + 3], y[i : i + 3]) for i in range(0, 12, 3)]
    model = _model()
    w = [p.detach().clone() for p in model.parameters()]

    # By hand: per micro-batch g_j, ε_j = ρ g_j/(‖g_j‖ + 1e-12), g̃_j at w + ε_j; mean; SGD.
    def loss_at(params, b):
        h = torch.tanh(b[0] @ params[0].T + params[1])
        return torch.nn.functional.mse_loss(h @ params[2].T + params[3], b[1])

    d = [torch.zeros_like(t) for t in w]
    for b in batches:
        wr = [t.clone().requires_grad_() for t in w]
        g = torch.autograd.grad(loss_at(wr, b), wr)
        norm = torch.sqrt(sum((t**2).sum() for t in g))
        wp = [(t + RHO * gi / (norm + 1e-12)).requires_grad_() for t, gi in zip(w, g, strict=True)]
        g_adv = torch.autograd.grad(loss_at(wp, b), wp)
        d = [a + gi / len(batches) for a, gi in zip(d, g_adv, strict=True)]
    expected = [t - LR * di for t, di in zip(w, d, strict=True)]

    opt = st.SAM(model.parameters(), torch.optim.SGD, rho=RHO, lr=LR)
    calls = []

    def loss_fn(b):
        calls.append(1)
        return _mse(model, *b)

    loss = accumulated_sam_step(opt, batches, loss_fn)
    assert len(calls) == 2 * len(batches)
    for a, b in zip(expected, model.parameters(), strict=True):
        torch.testing.assert_close(a, b.detach(), rtol=0, atol=1e-12)
    torch.testing.assert_close(
        loss, torch.stack([loss_at(w, b) for b in batches]).mean(), rtol=0, atol=1e-15
    )
    # ... and it differs from SAM on the union batch (mode B).
    union = _model()
    union_batch_sam_step(
        st.SAM(union.parameters(), rho=RHO, lr=LR), batches, lambda b: _mse(union, *b)
    )
    pairs = zip(union.parameters(), model.parameters(), strict=True)
    assert max((a - b).abs().max() for a, b in pairs) > 1e-6


def test_accumulation_mode_b_is_sam_on_the_union_batch():
    x, y = _data(12)
    batches = [(x[i : i + 3], y[i : i + 3]) for i in range(0, 12, 3)]
    ref, acc = _model(), _model()
    opt_ref, opt_acc = _sam(ref), _sam(acc)
    calls = []

    def loss_fn(b):
        calls.append(1)
        return _mse(acc, *b)

    for _ in range(3):
        _plain_sam_step(opt_ref, ref, x, y)
        union_batch_sam_step(opt_acc, batches, loss_fn)
    assert len(calls) == 3 * 2 * len(batches)
    for a, b in zip(ref.parameters(), acc.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-13)


# -- torch.compile ------------------------------------------------------------------------------


def test_torch_compile_smoke():
    if shutil.which("gcc") is None and shutil.which("cc") is None:
        pytest.skip("torch.compile's inductor backend needs a C compiler (no gcc/cc on PATH)")
    x, y = _data(dtype=torch.float32)
    eager = _model(torch.float32)
    compiled_module = _model(torch.float32)
    compiled = torch.compile(compiled_module)
    opt_e, opt_c = _sam(eager), _sam(compiled_module)
    for _ in range(3):
        le = _plain_sam_step(opt_e, eager, x, y)
        lc = _plain_sam_step(opt_c, compiled, x, y)
        torch.testing.assert_close(le, lc, rtol=1e-5, atol=1e-6)
    for a, b in zip(eager.parameters(), compiled_module.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
