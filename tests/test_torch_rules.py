"""The public rule index ``sampy.torch.rules``: composing a variant from it, and global norms
over parameters that live on several devices."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import sampy  # noqa: E402
import sampy.torch as st  # noqa: E402
import sampy.torch.rules as rules  # noqa: E402
from sampy.optim import SGD, Oracle  # noqa: E402
from sampy.optim import rules as reference_rules  # noqa: E402
from sampy.torch.functional import as_torch_loss  # noqa: E402
from sampy.torch.groups import global_dot  # noqa: E402
from sampy.torch.perturbation import dual_direction, lp_norm, on_one_device, per_device  # noqa: E402

ROSENBROCK = sampy.functions.get("rosenbrock")
X0 = np.array([-1.0, 1.5])


def test_the_index_exports_every_rule_of_the_torch_variant_files():
    ascents_and_descents = {
        name
        for module in vars(st).values()
        if getattr(module, "__name__", "").startswith("sampy.torch.")
        for name, obj in vars(module).items()
        if isinstance(obj, type)
        and not name.startswith("_")
        and obj.__module__ == module.__name__
        and name.endswith(("Ascent", "Descent", "Rule", "Scaling", "Hybrid", "Clip", "Gradient"))
        and any("__call__" in vars(c) for c in obj.__mro__[:-1])  # a rule, not a mixin
    }
    assert ascents_and_descents <= set(rules.__all__)
    for name in rules.__all__:
        assert getattr(rules, name).__module__ != "sampy.torch.rules", name


def _friendly_gsam_torch(steps: int) -> np.ndarray:
    w = torch.nn.Parameter(torch.tensor(X0, dtype=torch.float64))
    opt = rules.SharpnessAware(
        [w],
        torch.optim.SGD,
        ascent=rules.FriendlyAscent(
            sigma=1.0, lmbda=0.9, momentum_order="official_code", eps=1e-12
        ),
        descent=rules.GSAMDescent(alpha=0.1, eps=1e-12),
        group_hyperparameters=dict(rho=0.05),
        lr=1e-3,
    )
    loss = as_torch_loss(ROSENBROCK)

    def closure():
        opt.zero_grad()
        value = loss(w)
        value.backward()
        return value

    for _ in range(steps):
        opt.step(closure)
    return w.detach().numpy()


def _friendly_gsam_reference(steps: int) -> np.ndarray:
    opt = reference_rules.SharpnessAware(
        SGD(lr=1e-3),
        reference_rules.FriendlyAscent(
            rho=0.05, sigma=1.0, lmbda=0.9, momentum_order="official_code", eps=1e-12
        ),
        reference_rules.GSAMDescent(alpha=0.1, eps=1e-12),
    )
    oracle = Oracle(ROSENBROCK)
    x, state = X0.copy(), opt.init(X0.copy())
    for _ in range(steps):
        x, state = opt.step(x, state, oracle)
    return x


def test_a_variant_composed_from_the_torch_index_takes_the_references_steps():
    # F-SAM's ascent with GSAM's descent: a variant no paper wrote, from public names only.
    torch_w = _friendly_gsam_torch(50)
    reference_w = _friendly_gsam_reference(50)
    assert not np.allclose(torch_w, X0)
    np.testing.assert_allclose(torch_w, reference_w, rtol=1e-12, atol=1e-14)


# -- parameters on several devices (model parallelism) ---------------------------------------


def test_on_one_device_moves_only_when_devices_differ():
    same = [torch.ones(2), torch.ones(3)]
    assert all(a is b for a, b in zip(on_one_device(same), same, strict=True))
    # The meta device stands in for a second GPU: the code path that moves is the same.
    mixed = [torch.ones(2, device="meta"), torch.ones(3)]
    assert {t.device.type for t in on_one_device(mixed)} == {"meta"}
    assert on_one_device([]) == []


def test_per_device_copies_the_factor_only_when_a_tensor_lives_elsewhere():
    factor = torch.tensor(2.0)
    assert per_device(factor, [torch.ones(2), torch.ones(3)]) is factor
    copies = per_device(factor, [torch.ones(2, device="meta"), torch.ones(3)])
    assert [c.device.type for c in copies] == ["meta", "cpu"]


def _split_model_norms(device_a: str, device_b: str) -> tuple[float, float, float]:
    g = [torch.tensor([3.0, 0.0], device=device_a), torch.tensor([0.0, 4.0], device=device_b)]
    norm = float(lp_norm(g, 2).cpu())
    dot = float(global_dot(g, g).cpu())
    e = dual_direction([g], 2.0, [0.5], 0.0)
    total = float(sum(float(x.norm().cpu()) ** 2 for x in e[0]) ** 0.5)
    return norm, dot, total


def test_global_norms_of_tensors_on_one_device():
    assert _split_model_norms("cpu", "cpu") == pytest.approx((5.0, 25.0, 0.5))


@pytest.mark.skipif(
    not torch.cuda.is_available() or torch.cuda.device_count() < 2, reason="needs two CUDA devices"
)
def test_global_norms_of_a_model_split_over_two_gpus():
    assert _split_model_norms("cuda:0", "cuda:1") == pytest.approx((5.0, 25.0, 0.5))
    assert _split_model_norms("cuda:1", "cpu") == pytest.approx((5.0, 25.0, 0.5))


@pytest.mark.skipif(
    not torch.cuda.is_available() or torch.cuda.device_count() < 2, reason="needs two CUDA devices"
)
def test_sam_steps_a_model_split_over_two_gpus_as_on_one():
    def run(devices):
        torch.manual_seed(0)
        layers = [torch.nn.Linear(4, 4).double().to(d) for d in devices]
        opt = st.SAM([p for m in layers for p in m.parameters()], torch.optim.SGD, lr=0.1)
        x = torch.randn(8, 4, dtype=torch.float64)

        def closure():
            opt.zero_grad()
            h = layers[0](x.to(devices[0]))
            loss = layers[1](h.to(devices[1])).pow(2).mean()
            loss.backward()
            return loss

        for _ in range(3):
            opt.step(closure)
        return [p.detach().cpu() for m in layers for p in m.parameters()]

    for a, b in zip(run(["cuda:0", "cuda:1"]), run(["cuda:0", "cuda:0"]), strict=True):
        torch.testing.assert_close(a, b)


def test_gsam_refuses_a_group_rho_that_its_rho_schedule_would_ignore():
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(3))
    groups = [{"params": [a]}, {"params": [b], "rho": 0.2}]
    with pytest.raises(ValueError, match=r"group 1's own 'rho' would be ignored"):
        st.GSAM(groups, rho_schedule=lambda t: 0.05, lr=0.1)
    st.GSAM(groups, lr=0.1)  # without a schedule the group's rho is used
    st.GSAM([{"params": [a]}, {"params": [b]}], rho_schedule=lambda t: 0.05, lr=0.1)


def test_scratch_buffers_are_kept_between_steps_on_the_cpu_only():
    """A rule's scratch tensors are reused on the CPU (page faults) and not kept elsewhere,
    where the caching allocator reuses memory and kept buffers would only occupy it (the meta
    device stands in for an accelerator)."""
    from sampy.torch.groups import Buffers

    rule = Buffers()
    on_cpu, elsewhere = torch.zeros(4), torch.zeros(4, device="meta")
    assert rule.buffer("x", on_cpu) is rule.buffer("x", on_cpu)
    assert rule.buffers_like("xs", [on_cpu]) is rule.buffers_like("xs", [on_cpu])
    assert rule.buffer("y", elsewhere) is not rule.buffer("y", elsewhere)
    assert rule.buffers_like("ys", [elsewhere]) is not rule.buffers_like("ys", [elsewhere])
    kept = {key if isinstance(key, str) else key[0] for key in rule.__dict__["_buffers"]}
    assert kept == {"x", "xs"}


def test_importing_the_twins_does_not_import_torch_distributed_tensor():
    """``torch.distributed.tensor`` takes longer to import than sampy.torch itself: importing
    the twins leaves it to torch (whose optimizers load it when one is built), and FSDP2's
    DTensors are recognised once it is loaded."""
    import subprocess
    import sys

    code = "import sys, torch, sampy.torch\nprint('torch.distributed.tensor' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
