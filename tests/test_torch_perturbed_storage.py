"""Where the torch template keeps ``w`` while the parameters are at ``w + ε``.

On the CPU, when the ascent rule wrote ``ε`` into the consumed gradients (SAM, ASAM with
``first_step(zero_grad=True)``, hence ``step``) or into new tensors of its own (the norm ball's
ascent when the descent keeps ``g``: GSAM, SAME), ``w + ε`` is formed in those tensors and the
parameters point at them for the pass at ``w + ε``; ``w`` never leaves the parameters' own
storage. Where that is not safe (a parameter or gradient that is a view into a larger buffer,
a gradient kept by the caller) the weights are copied as before. Either way the results are the
same floats.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import sampy.torch as st
import sampy.torch.sharpness_aware as template


@pytest.fixture(autouse=True)
def _swap_every_tensor(monkeypatch):
    """These models are small: swap every tensor, whatever its size."""
    monkeypatch.setattr(template, "SWAP_MIN_NUMEL", 0)


def _model(dtype: torch.dtype) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).to(dtype)


def _batch(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    return torch.randn(11, 5, dtype=dtype), torch.randn(11, 3, dtype=dtype)


def _train(opt_cls, dtype, steps=4, copy_only=False, monkeypatch=None, **kwargs):
    model = _model(dtype)
    x, y = _batch(dtype)
    opt = opt_cls(model.parameters(), torch.optim.SGD, lr=0.1, momentum=0.9, **kwargs)
    if copy_only:
        monkeypatch.setattr(template, "_swappable", lambda *args: [])

    def closure():
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        return loss

    storages = [p.data_ptr() for p in model.parameters()]
    for _ in range(steps):
        opt.step(closure)
    assert [p.data_ptr() for p in model.parameters()] == storages
    return opt, [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(
    "opt_cls, kwargs",
    [
        (st.SAM, {"rho": 0.05}),
        (st.SAM, {"rho": 0.5, "adaptive": True, "eta": 0.01}),
        # The descent reads g, so the ascent's new tensors (not the gradients) take w + eps.
        (st.GSAM, {"rho": 0.05, "alpha": 0.4}),
        (st.SAME, {"rho": 0.05}),
        # Ascents whose eps is always new tensors, not the gradients.
        (st.FisherSAM, {"rho": 0.05}),
        (st.VaSSO, {"rho": 0.05, "theta": 0.4}),
    ],
)
def test_the_swap_gives_the_copied_path_s_floats_and_keeps_each_parameter_s_storage(
    opt_cls, kwargs, dtype, monkeypatch
):
    opt, swapped = _train(opt_cls, dtype, **kwargs)
    assert opt._saved_w == {}  # every tensor was swapped, none copied
    _, copied = _train(opt_cls, dtype, copy_only=True, monkeypatch=monkeypatch, **kwargs)
    for a, b in zip(swapped, copied, strict=True):
        assert torch.equal(a, b)


def test_sam_on_the_cpu_keeps_no_copy_of_the_weights():
    opt, _ = _train(st.SAM, torch.float32)
    assert opt._saved_w == {}


def test_only_tensors_above_the_threshold_are_swapped_and_the_floats_stay(monkeypatch):
    monkeypatch.setattr(template, "SWAP_MIN_NUMEL", 7 * 5)  # the first weight only
    opt, swapped = _train(st.SAM, torch.float64, rho=0.05)
    first = next(iter(opt.param_groups[0]["params"]))
    assert first not in opt._saved_w and len(opt._saved_w) == 3
    _, copied = _train(st.SAM, torch.float64, copy_only=True, monkeypatch=monkeypatch, rho=0.05)
    for a, b in zip(swapped, copied, strict=True):
        assert torch.equal(a, b)


def test_parameters_that_are_views_of_one_buffer_are_perturbed_through_it():
    # FSDP1-style flat parameters: the forward reads the buffer, so w + eps must be in it.
    model = _model(torch.float64)
    x, y = _batch(torch.float64)
    params = list(model.parameters())
    buffer = torch.cat([p.detach().reshape(-1) for p in params])
    offset = 0
    for p in params:
        p.data = buffer[offset : offset + p.numel()].view_as(p)
        offset += p.numel()
    opt = st.SAM(params, torch.optim.SGD, rho=0.05, lr=0.1)
    seen = []

    def closure():
        opt.zero_grad()
        seen.append(buffer.clone())
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        return loss

    w = buffer.clone()
    opt.step(closure)
    assert torch.equal(seen[0], w)
    assert not torch.equal(seen[1], w)  # the pass at w + eps ran on the buffer's w + eps
    assert all(p.data_ptr() >= buffer.data_ptr() for p in params)


def test_gradients_that_are_views_of_one_bucket_are_left_to_the_copy(monkeypatch):
    # DDP's gradient_as_bucket_view: the bucket is written by the next backward.
    model = _model(torch.float64)
    x, y = _batch(torch.float64)
    params = list(model.parameters())
    opt = st.SAM(params, torch.optim.SGD, rho=0.05, lr=0.1)
    swapped = []
    real = template._swappable
    monkeypatch.setattr(
        template,
        "_swappable",
        lambda *args: swapped.append(real(*args)) or swapped[-1],
    )
    ((model(x) - y) ** 2).mean().backward()
    bucket = torch.cat([p.grad.reshape(-1) for p in params])
    offset = 0
    for p in params:
        p.grad = bucket[offset : offset + p.numel()].view_as(p)
        offset += p.numel()
    opt.first_step(zero_grad=True)
    ((model(x) - y) ** 2).mean().backward()
    opt.second_step(zero_grad=True)
    assert swapped == [[]]
    opt.zero_grad()
    ((model(x) - y) ** 2).mean().backward()
    opt.first_step(zero_grad=True)
    opt.restore()
    assert swapped == [[], [0, 1, 2, 3]]


def test_an_error_at_the_perturbed_point_points_the_parameters_back_at_w():
    model = _model(torch.float32)
    x, y = _batch(torch.float32)
    opt = st.SAM(model.parameters(), torch.optim.SGD, rho=0.05, lr=0.1)
    w = [p.detach().clone() for p in model.parameters()]
    storages = [p.data_ptr() for p in model.parameters()]
    calls = []

    def closure():
        calls.append(1)
        if len(calls) == 2:
            raise FloatingPointError("at w + eps")
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        return loss

    with pytest.raises(FloatingPointError):
        opt.step(closure)
    assert [p.data_ptr() for p in model.parameters()] == storages
    assert all(torch.equal(p, v) for p, v in zip(model.parameters(), w, strict=True))


def test_between_steps_the_optimizer_holds_no_reference_to_the_step_s_tensors():
    opt, _ = _train(st.SAM, torch.float32)
    assert "_swapped" not in vars(opt) and opt._perturbed is None


@pytest.mark.parametrize(("dtype", "rtol"), [(torch.float64, 1e-14), (torch.float32, 1e-6)])
def test_sam_s_fused_perturbation_is_w_plus_each_group_s_rho_times_g_over_the_global_norm(
    dtype, rtol, monkeypatch
):
    """SAM's ε = c_i g is never formed: ``w + c_i g`` is one pass (swapped or copied tensors),
    the rule's ``__call__`` is not used, and the restore is exact."""
    monkeypatch.setattr(template, "SWAP_MIN_NUMEL", 30)  # the 7×5 weight swapped, the rest copied

    def no_call(*args, **kwargs):
        raise AssertionError("the fused path must not call the rule")

    monkeypatch.setattr(st.sam.NormBallAscent, "__call__", no_call)
    model, unused = _model(dtype), nn.Linear(2, 2).to(dtype)
    first, second = list(model[0].parameters()), list(model[2].parameters())
    groups = [{"params": first, "rho": 0.3}, {"params": unused.parameters()}]
    opt = st.SAM([*groups, {"params": second, "rho": 0.02}], torch.optim.SGD, rho=0.05, lr=0.1)
    x, y = _batch(dtype)
    ((model(x) - y) ** 2).mean().backward()
    params = first + second
    w = [p.detach().clone() for p in params]
    g = [p.grad.clone() for p in params]
    norm = torch.linalg.vector_norm(torch.cat([t.reshape(-1) for t in g]))
    opt.first_step(zero_grad=True)
    assert set(opt._saved_w) == set(params[1:])  # the big weight swapped, the rest copied
    for i, (p, w0, g0) in enumerate(zip(params, w, g, strict=True)):
        rho = 0.3 if i < 2 else 0.02
        torch.testing.assert_close(p.detach(), w0 + rho * g0 / (norm + 1e-12), rtol=rtol, atol=0)
    opt.restore()
    for p, w0 in zip(params, w, strict=True):
        assert torch.equal(p.detach(), w0)


def test_a_wrapped_ascent_rule_keeps_its_own_eps_beside_the_fused_path():
    """gc's centralized ascent forwards attributes to the norm ball it wraps; the template
    must not take the ball's factors (``ε = c g``) for the wrapper's ``ε = c GC(g)``."""
    from sampy.torch.gc import centralize, centralized_ascent
    from sampy.torch.sam import NormBallAscent
    from sampy.torch.sharpness_aware import PerturbedGradient, SharpnessAware

    w0 = torch.tensor([[1.0, 2.0], [3.0, 5.0]], dtype=torch.float64)
    w = nn.Parameter(w0.clone())
    opt = SharpnessAware(
        [w],
        torch.optim.SGD,
        lr=0.1,
        ascent=centralized_ascent(NormBallAscent(), "gcsam"),
        descent=PerturbedGradient(),
        group_hyperparameters=dict(rho=0.5),
    )
    w.square().sum().backward()
    opt.first_step(zero_grad=True)
    gc = centralize([2 * w0])[0]
    torch.testing.assert_close(w.detach() - w0, 0.5 * gc / gc.norm(), rtol=1e-12, atol=1e-15)


def test_a_subclass_that_changes_eps_keeps_it_beside_the_fused_path():
    """A norm ball whose ``__call__`` doubles ε, inheriting ``factors``: its own ε is used."""
    from sampy.torch.sam import NormBallAscent
    from sampy.torch.sharpness_aware import PerturbedGradient, SharpnessAware

    class Doubled(NormBallAscent):
        def __call__(self, ctx, grads, inplace):
            return [torch._foreach_mul(e, 2.0) for e in super().__call__(ctx, grads, inplace)]

    w0 = torch.tensor([3.0, 4.0], dtype=torch.float64)
    w = nn.Parameter(w0.clone())
    opt = SharpnessAware(
        [w],
        torch.optim.SGD,
        lr=0.1,
        ascent=Doubled(),
        descent=PerturbedGradient(),
        group_hyperparameters=dict(rho=0.5),
    )
    w.sum().backward()  # g = (1, 1)
    opt.first_step(zero_grad=True)
    torch.testing.assert_close(w.detach() - w0, torch.full((2,), 2 * 0.5 / 2**0.5, dtype=w0.dtype))


@pytest.mark.parametrize("opt_cls", [st.GSAM, st.SAMAgree, st.SAMDirection])
def test_a_descent_that_keeps_g_gets_it_untouched_beside_the_fused_path(opt_cls):
    """w + c g goes into new tensors when the descent reads g: g itself is not rewritten."""
    model = _model(torch.float64)
    x, y = _batch(torch.float64)
    opt = opt_cls(model.parameters(), torch.optim.SGD, lr=0.1, rho=0.05)
    ((model(x) - y) ** 2).mean().backward()
    g = [p.grad.clone() for p in model.parameters()]
    grads = [p.grad for p in model.parameters()]
    opt.first_step(zero_grad=True)
    for kept, before in zip(grads, g, strict=True):
        assert torch.equal(kept, before)
    opt.restore()
