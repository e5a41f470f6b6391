"""The fused arithmetic of the torch rules (GSAM, WSAM, F-SAM, VaSSO) and its helpers.

The twins' trajectories against the NumPy references are checked elsewhere
(``test_torch_twins_from_registry.py``, ``test_torch_variants.py``); here, the pieces they are
built from: ``norms_and_dot`` against the three global reductions it replaces, on every kind
of tensor list it sorts (large tensors, small ones gathered into one buffer, 0-dim and empty
ones, mixed dtypes), and the path without host reads (an accelerator's) forced on the CPU.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import sampy.torch as st  # noqa: E402
from sampy.torch import host_reads  # noqa: E402
from sampy.torch.groups import Buffers, global_dot, global_norm, norms_and_dot  # noqa: E402

SHAPES = {
    "large": [(300, 40), (20_000,)],
    "small": [(7, 3), (5,), (64, 64)],
    "mixed": [(300, 40), (7, 3), (5,), (20_000,), (2, 3, 4)],
    "odd": [(), (0,), (3, 0), (9_000,), (4,)],
}


def _lists(shapes, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    a = [torch.randn(s, dtype=dtype, generator=gen) for s in shapes]
    b = [torch.randn(s, dtype=dtype, generator=gen) for s in shapes]
    return a, b


def _expected(a, b):
    return float(global_norm(a)), float(global_norm(b)), float(global_dot(a, b))


@pytest.mark.parametrize("kind", sorted(SHAPES))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
def test_norms_and_dot_gives_the_three_global_reductions(kind, dtype):
    a, b = _lists(SHAPES[kind], dtype)
    got = norms_and_dot(a, b)
    assert all(isinstance(x, float) for x in got)  # on the CPU: read once, no 0-dim tensors
    rtol = 1e-13 if dtype == torch.float64 else 1e-5
    assert got == pytest.approx(_expected(a, b), rel=rtol, abs=rtol)


def test_norms_and_dot_reuses_its_buffer_and_follows_a_change_of_shapes():
    owner = Buffers()
    a, b = _lists(SHAPES["small"])
    first = norms_and_dot(a, b, owner)
    kept = owner._buffers[("gram", 2, torch.float64)][1]
    assert norms_and_dot(a, b, owner) == first
    assert owner._buffers[("gram", 2, torch.float64)][1] is kept
    c, d = _lists([(3, 3), (11,)], seed=1)
    assert norms_and_dot(c, d, owner) == pytest.approx(_expected(c, d), rel=1e-13)
    assert norms_and_dot(a, b, owner) == first


def test_norms_and_dot_of_non_contiguous_tensors():
    a, b = _lists([(40, 30), (300, 50)])
    a, b = [x.t() for x in a], [y.t() for y in b]  # transposed views
    assert norms_and_dot(a, b) == pytest.approx(_expected(a, b), rel=1e-13)


def test_norms_and_dot_accumulates_a_narrow_or_mixed_list_as_the_three_do():
    a, b = _lists(SHAPES["mixed"], torch.float32)
    a[1], b[1] = a[1].double(), b[1].double()
    assert norms_and_dot(a, b) == pytest.approx(_expected(a, b), rel=1e-13)
    x, y = [torch.full((100,), 30_000.0, dtype=torch.float16)], [torch.ones(100).half()]
    na, nb, ab = norms_and_dot(x, y)  # a float16 norm would overflow
    assert na == pytest.approx(300_000.0) and nb == pytest.approx(10.0)
    assert ab == pytest.approx(3_000_000.0)


def test_norms_and_dot_without_host_reads_returns_device_tensors(monkeypatch):
    monkeypatch.setattr(host_reads, "READ_CPU_VALUES", False)
    a, b = _lists(SHAPES["mixed"])
    got = norms_and_dot(a, b)
    assert all(isinstance(x, torch.Tensor) and x.dim() == 0 for x in got)
    assert [float(x) for x in got] == pytest.approx(_expected(a, b), rel=1e-15)


def test_nonfinite_pieces_give_nonfinite_values_not_an_error():
    a = [torch.full((10_000,), float("inf")), torch.full((5,), -float("inf"))]
    b = [torch.ones(10_000), torch.ones(5)]
    na, nb, ab = norms_and_dot(a, b)
    assert na == float("inf") and nb == pytest.approx(10_005**0.5)
    assert ab != ab  # inf − inf: NaN


# -- the twins: the path with host reads and the one without give the same steps ---------------


def _run(name, hyper, steps=4, dtype=torch.float64):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(6, 9000 // 6), torch.nn.Tanh(), torch.nn.Linear(9000 // 6, 3)
    ).to(dtype)
    x, y = torch.randn(17, 6, dtype=dtype), torch.randn(17, 3, dtype=dtype)
    opt = getattr(st, name)(model.parameters(), torch.optim.SGD, lr=0.1, momentum=0.9, **hyper)

    def closure():
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        return loss

    for _ in range(steps):
        opt.step(closure)
    return [p.detach().clone() for p in model.parameters()]


TWINS = [
    ("GSAM", {"alpha": 0.4}),
    ("GSAM", {"alpha": 0.3, "adaptive": True, "eta": 0.01}),
    ("VaSSO", {"theta": 0.4}),
    ("FriendlySAM", {}),
    ("FriendlySAM", {"momentum_order": "paper", "sigma": 0.5}),
    ("WSAM", {"decouple": False, "gamma": 0.7, "max_norm": 1.0}),
    ("WSAM", {"gamma": 0.6, "max_norm": 5.0}),
]


@pytest.mark.parametrize(
    ("name", "hyper"), TWINS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(TWINS)]
)
def test_the_twin_takes_the_same_steps_with_and_without_host_reads(name, hyper, monkeypatch):
    host = _run(name, hyper)
    monkeypatch.setattr(host_reads, "READ_CPU_VALUES", False)
    device = _run(name, hyper)
    for a, b in zip(host, device, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-15)


# -- unit_into and sum_in_scratch: where their results live ------------------------------------


def test_unit_into_writes_large_tensors_into_out_and_gives_the_unit_s_values():
    from sampy.torch.groups import sum_in_scratch, unit, unit_into

    vs, _ = _lists([(200, 50), (7,), (3, 3)])
    out = [torch.empty_like(v) for v in vs]
    got = unit_into([vs], [0.05], 1e-12, [out], Buffers())
    want = unit([vs], [0.05], 1e-12)
    assert got[0][0] is out[0]  # the large tensor: written in place of the dead one
    assert all(g is not v for g, v in zip(got[0], vs, strict=True))  # never one of vs
    for a, b in zip(got[0], want[0], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-15, atol=0)
    same = [v.clone() for v in vs]
    assert unit_into([same], [0.05], 1e-12, [same])[0] is same  # in place
    owner = Buffers()
    a, b = _lists([(200, 50), (7,)])
    s = sum_in_scratch(a, b, -0.5, owner, "d")
    assert s[0] is owner.buffer("d0", a[0])  # kept for the next step
    for x, y, z in zip(s, a, b, strict=True):
        torch.testing.assert_close(x, y - 0.5 * z, rtol=1e-15, atol=1e-15)
