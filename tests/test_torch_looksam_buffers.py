"""LookSAM's SAM steps release the ``g_v`` they replace before they allocate ``w + ε`` (no
model-sized temporary on top of it), and its reuse steps read their norms on the host on the CPU.

The old ``g_v`` is released only where nothing can read it again: a step abandoned at
``w + ε`` leaves the counter where it was, so the next step writes a new ``g_v`` first; a step
that ``skip_nonfinite`` drops advances the counter, so there the old ``g_v`` must survive.
"""

from __future__ import annotations

import gc
import weakref

import pytest

torch = pytest.importorskip("torch")

from sampy.torch import LookSAM, host_reads  # noqa: E402


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(16, 5, generator=generator), torch.randint(0, 3, (16,), generator=generator)


def _closure(model, opt, x, y, fail_at: set[int] | None = None):
    calls = [0]

    def closure() -> torch.Tensor:
        calls[0] += 1
        if fail_at and calls[0] in fail_at:
            raise RuntimeError("failing pass")
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss

    return closure


def test_an_abandoned_sam_step_does_not_change_the_run():
    """A pass at w + ε that raises, then training goes on: the same floats as without it."""
    x, y = _data()
    reference, interrupted = _model(), _model()
    opt_ref = LookSAM(reference.parameters(), torch.optim.SGD, k=2, lr=0.1, momentum=0.9)
    opt_int = LookSAM(interrupted.parameters(), torch.optim.SGD, k=2, lr=0.1, momentum=0.9)
    closure_ref = _closure(reference, opt_ref, x, y)
    # calls 1, 2: step 0 (SAM); 3: step 1 (reuse); 4 at w, 5 at w + ε: step 2 (SAM) raises
    closure_int = _closure(interrupted, opt_int, x, y, fail_at={5})
    for _ in range(2):
        opt_ref.step(closure_ref)
        opt_int.step(closure_int)
    with pytest.raises(RuntimeError, match="failing pass"):
        opt_int.step(closure_int)
    assert opt_int.is_sam_step  # the counter stayed: the next step writes a new g_v first
    for _ in range(5):
        opt_ref.step(closure_ref)
        opt_int.step(closure_int)
    for a, b in zip(reference.parameters(), interrupted.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_skipped_sam_step_keeps_the_old_g_v():
    """skip_nonfinite drops a SAM step and advances the counter: the reuse steps read the old
    g_v, which must still be there, unchanged."""
    model = _model()
    x, y = _data()
    opt = LookSAM(model.parameters(), torch.optim.SGD, k=2, lr=0.1, skip_nonfinite=True)
    closure = _closure(model, opt, x, y)
    opt.step(closure)  # step 0: SAM, stores g_v
    opt.step(closure)  # step 1: reuse
    kept = {p: opt.state[p]["g_v"].clone() for p in model.parameters()}
    calls = [0]

    def nan_at_w_adv() -> torch.Tensor:
        calls[0] += 1
        loss = closure()
        if calls[0] == 2:  # the pass at w + ε
            for p in model.parameters():
                p.grad.fill_(float("nan"))
        return loss

    with pytest.warns(RuntimeWarning, match="skipped"):
        opt.step(nan_at_w_adv)  # step 2: SAM, skipped
    assert opt.skipped_steps == 1
    assert not opt.is_sam_step
    for p in model.parameters():
        assert torch.equal(opt.state[p]["g_v"], kept[p])


def test_sam_steps_release_the_old_g_v_before_the_pass_at_w_adv():
    """With step(closure), nothing holds the g_v being replaced during the pass at w + ε: its
    memory is free for ``w + ε`` (the optimizer's state, its reuse cache and its norm cache
    all let go of it)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(256, 160), torch.nn.Tanh(), torch.nn.Linear(160, 3))
    x, y = torch.randn(16, 256), torch.randint(0, 3, (16,))
    opt = LookSAM(model.parameters(), torch.optim.SGD, k=2, lr=0.1)
    closure = _closure(model, opt, x, y)
    opt.step(closure)  # step 0: SAM, stores g_v
    opt.step(closure)  # step 1: reuse, caches g_v and its norm
    old = [weakref.ref(opt.state[p]["g_v"]) for p in model.parameters()]
    alive: list[int] = []

    def record() -> torch.Tensor:
        loss = closure()
        if not alive and opt._perturbed is not None:  # the pass at w + ε
            gc.collect()
            alive.append(sum(ref() is not None for ref in old))
        return loss

    opt.step(record)  # step 2: SAM
    assert alive == [0]
    assert all("g_v" in opt.state[p] for p in model.parameters())  # the new one


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_reuse_steps_read_their_norms_on_the_host_only_on_the_cpu(dtype, monkeypatch):
    """A reuse step's ``ψ ‖g‖/(‖g_v‖ + 1e-8)`` is read on the host on the CPU and fused into
    one ``add_(g_v, alpha=…)``; kept on the device (the accelerator path, ``addcmul_``) the
    run agrees to rounding, and no reuse step reads a value on the host."""
    x, y = _data()
    x = x.to(dtype)
    reads: dict[bool, list[str]] = {True: [], False: []}

    def read(name: str, on_host: bool):
        original = getattr(torch.Tensor, name)
        return lambda t, *a: reads[on_host].append(name) or original(t, *a)

    runs = []
    for on_host in (True, False):
        monkeypatch.setattr(host_reads, "READ_CPU_VALUES", on_host)
        model = _model().to(dtype)
        opt = LookSAM(model.parameters(), torch.optim.SGD, k=3, alpha=0.7, lr=0.1, momentum=0.9)
        closure = _closure(model, opt, x, y)
        for _ in range(7):
            if opt.is_sam_step:
                opt.step(closure)
                continue
            torch.nn.functional.cross_entropy(model(x), y).backward()
            with monkeypatch.context() as patch:  # a reuse step: g is in p.grad already
                for name in ("item", "tolist", "__float__", "__bool__"):
                    patch.setattr(torch.Tensor, name, read(name, on_host))
                opt.step(closure)
        assert opt.shared["step"] == 7
        runs.append([p.detach().clone() for p in model.parameters()])
    assert reads[False] == []
    # ‖g‖ in each of the 4 reuse steps, ‖g_v‖ in the first one after each of the 2 SAM steps
    assert len(reads[True]) == 6
    start = [p.detach() for p in _model().to(dtype).parameters()]
    assert max(float((a - b).abs().max()) for a, b in zip(runs[0], start, strict=True)) > 1e-3
    tolerance = 1e-12 if dtype is torch.float64 else 1e-5
    for a, b in zip(*runs, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=tolerance)
