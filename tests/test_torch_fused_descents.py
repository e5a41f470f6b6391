"""The fused torch rules of the swaps, ClampSAM, USAM, FisherSAM and RandomSAM against their
textbook expressions, in float32 as well as float64.

The rules compute their expressions with few ``_foreach`` kernels in the storage of dead
gradients (a 0/1 mask from ``max(sign(g̃ ⊙ g), 0)``, a clip in one ``clamp_`` for large tensors,
``ρ`` per tensor in one call over the groups); these tests pin that the fusion changes no value:
exactly where the expression is a product, a selection or a clip, to rounding where the fused
form reassociates (a fused multiply-add).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from sampy.torch.clampsam import ClampedAscent  # noqa: E402
from sampy.torch.fisher_sam import FisherAscent  # noqa: E402
from sampy.torch.groups import global_dot, unit  # noqa: E402
from sampy.torch.random_sam import MixedDescent  # noqa: E402
from sampy.torch.sharpness_aware import RuleContext  # noqa: E402
from sampy.torch.swaps import AgreementRule  # noqa: E402
from sampy.torch.usam import UnnormalizedAscent  # noqa: E402

DTYPES = (torch.float32, torch.float64)
SHAPES = ((300, 120), (7,), (50, 3))  # one tensor above 2^15 elements, two small


def _gradients(dtype: torch.dtype, seed: int) -> list[torch.Tensor]:
    """Random tensors with exact zeros, negative zeros and tiny values among them."""
    gen = torch.Generator().manual_seed(seed)
    out = [torch.randn(shape, generator=gen, dtype=dtype) for shape in SHAPES]
    flat = out[0].view(-1)
    flat[:50] = 0.0
    flat[50:60] = -0.0
    flat[60:70] = 1e-30
    return out


def _context(rhos: list[float], params: list[list[torch.Tensor]]) -> RuleContext:
    return RuleContext([{"rho": rho} for rho in rhos], params, {}, {})


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("fill", ["zero", "other"])
@pytest.mark.parametrize("keep_sam", [True, False], ids=["SAMAgree", "SGDAgree"])
def test_agreement_rule_is_the_where_of_the_reference(
    keep_sam: bool, fill: str, dtype: torch.dtype
) -> None:
    g, g_adv = _gradients(dtype, 0), _gradients(dtype, 1)
    g_adv[0].view(-1)[40:45] = 0.0  # both zero
    g_adv[0].view(-1)[100:110] = 1e-30  # a product that underflows in float32
    expected = []
    for a, b in zip(g, g_adv, strict=True):
        kept, other = (b, a) if keep_sam else (a, b)
        fallback = other if fill == "other" else torch.zeros((), dtype=dtype)
        expected.append(torch.where(b * a > 0, kept, fallback))
    rule = AgreementRule(keep_sam, fill)
    d = rule(None, [[x.clone() for x in g]], [[x.clone() for x in g_adv]])  # type: ignore[arg-type]
    assert [x.shape for x in d[0]] == [x.shape for x in expected]
    for x, y in zip(d[0], expected, strict=True):
        assert torch.equal(x, y)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("renorm", [False, True])
def test_clamped_ascent_clips_large_and_small_tensors_alike(
    renorm: bool, dtype: torch.dtype
) -> None:
    g = _gradients(dtype, 2)
    rho, tau, eps = 5.0, 0.02, 1e-12
    ctx = _context([rho], [g])
    expected = [x.clamp(-tau, tau) for x in unit([[x.clone() for x in g]], [rho], eps)[0]]
    assert not torch.equal(expected[0], unit([g], [rho], eps)[0][0])  # the clip bites
    if renorm:
        expected = unit([expected], [rho], eps)[0]
    e = ClampedAscent(tau, renorm, eps)(ctx, [[x.clone() for x in g]], True)
    for x, y in zip(e[0], expected, strict=True):
        assert torch.equal(x, y)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("inplace", [True, False])
def test_unnormalized_ascent_scales_each_group_by_its_rho(
    inplace: bool, dtype: torch.dtype
) -> None:
    g = _gradients(dtype, 3)
    groups = [g[:1], [], g[1:]]
    rhos = [0.5, 0.7, 0.03]
    e = UnnormalizedAscent()(
        _context(rhos, groups), [[x.clone() for x in gs] for gs in groups], inplace
    )
    assert [len(es) for es in e] == [1, 0, 2]
    for es, gs, rho in zip(e, groups, rhos, strict=True):
        for x, y in zip(es, gs, strict=True):
            assert torch.equal(x, y * rho)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("rhos", [[0.05, 0.05], [0.05, 0.2]], ids=["same-rho", "two-rhos"])
def test_fisher_ascent_is_the_reference_expression(rhos: list[float], dtype: torch.dtype) -> None:
    g = _gradients(dtype, 4)
    groups = [g[:2], g[2:]]
    eta, eps = 1.5, 1e-12
    precond = [x / (1.0 + eta * x * x) for x in g]
    length = torch.sqrt(global_dot(g, precond))
    expected = [
        p * (rho / (length + eps))
        for p, rho in zip(precond, [rhos[0]] * 2 + [rhos[1]], strict=True)
    ]
    grads = [[x.clone() for x in gs] for gs in groups]
    e = FisherAscent(eta, eps)(_context(rhos, groups), grads, True)
    assert [len(es) for es in e] == [2, 1]
    for x, y in zip([t for es in e for t in es], expected, strict=True):
        torch.testing.assert_close(x, y)
    for x, y in zip([t for gs in grads for t in gs], g, strict=True):
        assert torch.equal(x, y)  # ε is new tensors: the gradients are not written


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_mixed_descent_is_the_convex_combination(dtype: torch.dtype) -> None:
    g, g_adv = _gradients(dtype, 5), _gradients(dtype, 6)
    c = 0.3
    expected = [c * a + (1 - c) * b for a, b in zip(g, g_adv, strict=True)]
    d = MixedDescent(
        c
    )(
        None,
        [[x.clone() for x in g[:1]], [x.clone() for x in g[1:]]],  # type: ignore[arg-type]
        [[x.clone() for x in g_adv[:1]], [x.clone() for x in g_adv[1:]]],
    )
    assert [len(ds) for ds in d] == [1, 2]
    for x, y in zip([t for ds in d for t in ds], expected, strict=True):
        torch.testing.assert_close(x, y)
    assert torch.equal(MixedDescent(1.0)(None, [g], [[x.clone() for x in g_adv]])[0][0], g[0])  # type: ignore[arg-type]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_samanatomy_second_ascent_is_the_sign_filtered_direction(dtype: torch.dtype) -> None:
    from sampy.torch.samanatomy import SAMAnatomy

    w = _gradients(dtype, 7)
    g, g1, g2 = _gradients(dtype, 8), _gradients(dtype, 9), _gradients(dtype, 10)
    g1[0].view(-1)[:20] = 0.0  # a zero ratio: dropped
    params = [torch.nn.Parameter(x.clone()) for x in w]
    rho, eps = 0.3, 1e-8
    opt = SAMAnatomy(params, torch.optim.SGD, rho=rho, perturb_eps=eps, lr=0.0)
    for p, x in zip(params, g, strict=True):
        p.grad = x.clone()
    opt.first_step(zero_grad=True)
    for p, x in zip(params, g1, strict=True):
        p.grad = x.clone()
    opt.second_ascent_step(zero_grad=True)
    kept = [torch.where(b / (a + eps) > 0, a, 0.0) for a, b in zip(g, g1, strict=True)]
    e2 = unit([kept], [rho], eps)[0]
    for p, x, e in zip(params, w, e2, strict=True):
        assert torch.equal(p.detach(), x + e)
    for p, x in zip(params, g2, strict=True):
        p.grad = x.clone()
    opt.second_step(zero_grad=True)
    for p, x in zip(params, w, strict=True):
        assert torch.equal(p.detach(), x)  # lr = 0: w restored bit for bit
