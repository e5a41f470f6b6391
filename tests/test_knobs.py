"""The Keras SAM library's standard parameters for every variant: GC, clipping, EMA, ….

Gradient centralization (Yong et al., ECCV 2020; pytorch-optimizer's ``use_gc``; GCSAM), clipping,
weight EMA, gradient accumulation and loss scaling (Keras 3's ``base_optimizer.py``), the knobs the
Keras SAM library (NoteDance/SAM) documents. Expected values are written by hand from those formulas
on a 15-dimensional quadratic ``½wᵀAw − bᵀw`` (gradient ``Aw − b``) whose coordinates are a 3×4
weight matrix and a bias of 3; where a value is compared with another sampy optimizer, that
optimizer is the independent reference (plain SAM, ``MSharpnessSAM``, WSAM's own ``max_norm``) and
the test says so. One peer test runs pytorch-optimizer's ``SAM(use_gc=True)``. Equality is exact
where both sides do the same floating-point operations; every tolerance says where it comes from.
"""

from __future__ import annotations

import math
import re
from functools import partial

import numpy as np
import pytest

import sampy
from sampy import functions
from sampy.optim import (
    BSAM,
    GSAM,
    MSAM,
    SAM,
    SGD,
    WSAM,
    AdamWMSAMScheduleFree,
    FriendlySAM,
    LookSAM,
    MSharpnessSAM,
    NormBallAscent,
    Oracle,
)
from sampy.optim.accumulation import WithAccumulation
from sampy.optim.clipping import (
    clip_by_global_norm,
    clip_by_norm,
    clip_by_value,
    clip_transform,
)
from sampy.optim.ema import WithEMA, ema_weights
from sampy.optim.gc import centralize, centralized_ascent
from sampy.optim.knobs import KNOBS, WithKnobs, with_knobs
from sampy.optim.transforms import (
    OracleView,
    Partition,
    TransformedAscent,
    TransformedBase,
    WithGradientTransform,
    loss_scaled,
    scale_loss,
    unscale_gradient,
)
from sampy.problems import NoisyGradient, make_logistic_problem

PART = Partition(shapes=((3, 4), (3,)))  # a 3×4 weight matrix, then a bias of 3: d = 15
D = 15
_rng = np.random.default_rng(20240501)
_M = _rng.standard_normal((D, D))
A = _M @ _M.T / D + np.eye(D)  # SPD, eigenvalues in about [1, 5]
B = _rng.standard_normal(D)
X0 = _rng.standard_normal((3, D))  # three independent start points
W = X0[0]
LR = 0.05
RHO = 0.05
EPS = 1e-12


def _quadratic():
    return functions.get("quadratic", A=A, b=B)


def _grad(w):
    """∇(½wᵀAw − bᵀw) = Aw − b, by hand (A is symmetric)."""
    return w @ A - B


def _gc_by_hand(g):
    """GC for PART: the 3×4 block minus its row means, the bias untouched."""
    rows = g[..., :12].reshape(*g.shape[:-1], 3, 4)
    rows = rows - rows.mean(axis=-1, keepdims=True)
    return np.concatenate([rows.reshape(*g.shape[:-1], 12), g[..., 12:]], axis=-1)


def _clipnorm_by_hand(g, c):
    """Keras per-variable clipnorm for PART: each block times c/max(‖block‖, c)."""
    out = g.copy()
    for sl in (slice(0, 12), slice(12, 15)):
        n = np.linalg.norm(g[..., sl], axis=-1, keepdims=True)
        out[..., sl] = g[..., sl] * c / np.maximum(n, c)
    return out


def _norm(v):
    return np.linalg.norm(v, axis=-1)


def _raises_naming(name):
    return pytest.raises(ValueError, match=rf"(?<![A-Za-z_]){re.escape(name)}(?![A-Za-z_])")


def _run(opt, steps=8, f=None, x0=X0):
    return sampy.run(opt, _quadratic() if f is None else f, x0, steps)


# ---------------------------------------------------------------------------------------------
# The partition


def test_partition_layout_and_validation():
    assert PART.sizes == (12, 3)
    assert PART.size == D
    assert PART.bounds == ((0, 12), (12, 15))
    assert Partition([[2, 3, 2], [], [5]]).shapes == ((2, 3, 2), (), (5,))  # () is a scalar
    for bad in ((), "ab", ((3, 0),), ((3, -1),), ((2.5,),), ((True,),), (3, 4)):
        with _raises_naming("partition"):
            Partition(bad)
    opt = with_knobs(SAM(SGD(lr=LR)), partition=((3, 4), (2,)), use_gc=True)
    with _raises_naming("partition"):
        opt.init(X0)  # covers 14 coordinates, the points have 15
    with _raises_naming("partition"):
        centralize(X0[:, :14], PART)


# ---------------------------------------------------------------------------------------------
# gradient centralization


def test_gc_rows_have_zero_mean_and_one_dimensional_tensors_are_untouched():
    part = Partition(((3, 4), (3,), (2, 3, 2), ()))  # d = 12 + 3 + 12 + 1 = 28
    g = np.random.default_rng(1).standard_normal((5, 2, 28)) * 3.0 + 1.0
    out = centralize(g, part)
    np.testing.assert_allclose(out[..., :12].reshape(5, 2, 3, 4).mean(axis=-1), 0, atol=1e-15)
    # A 3-D tensor: the mean over all axes but 0, written with numpy's multi-axis mean.
    conv = g[..., 15:27].reshape(5, 2, 2, 3, 2)
    expected = conv - conv.mean(axis=(3, 4), keepdims=True)
    np.testing.assert_allclose(out[..., 15:27].reshape(5, 2, 2, 3, 2), expected, atol=1e-15)
    np.testing.assert_array_equal(out[..., 12:15], g[..., 12:15])  # bias
    np.testing.assert_array_equal(out[..., 27], g[..., 27])  # scalar
    np.testing.assert_allclose(out, _gc_by_hand_general(g, part), atol=1e-15)


def _gc_by_hand_general(g, part):
    pieces = []
    for (start, stop), shape in zip(part.bounds, part.shapes, strict=True):
        block = g[..., start:stop]
        if len(shape) >= 2:
            t = block.reshape(*g.shape[:-1], *shape)
            axes = tuple(range(-(len(shape) - 1), 0))
            block = (t - t.mean(axis=axes, keepdims=True)).reshape(block.shape)
        pieces.append(block)
    return np.concatenate(pieces, axis=-1)


def test_gc_is_an_idempotent_linear_projection():
    rng = np.random.default_rng(2)
    g, h = rng.standard_normal((2, 4, D))
    gc_g = centralize(g, PART)
    np.testing.assert_allclose(centralize(gc_g, PART), gc_g, atol=1e-15)
    np.testing.assert_allclose(
        centralize(2.5 * g - 0.75 * h, PART), 2.5 * gc_g - 0.75 * centralize(h, PART), atol=1e-14
    )
    # An orthogonal projection: the removed part is orthogonal to the kept one, ‖GC(g)‖ ≤ ‖g‖.
    np.testing.assert_allclose(np.sum(gc_g * (g - gc_g), axis=-1), 0, atol=1e-14)
    assert np.all(_norm(gc_g) <= _norm(g))


def test_gc_is_the_identity_without_two_dimensional_tensors():
    g = np.random.default_rng(3).standard_normal((4, D))
    assert centralize(g, None) is g
    assert centralize(g, Partition(((5,), (10,)))) is g


@pytest.mark.parametrize("partition", [None, ((5,), (10,))], ids=["flat", "biases"])
@pytest.mark.parametrize("gc_ascent", ["kozistr", "gcsam"])
def test_use_gc_with_only_one_dimensional_tensors_changes_nothing(partition, gc_ascent):
    plain = _run(SAM(SGD(lr=LR, momentum=0.9), rho=RHO), steps=10)
    gc = _run(
        with_knobs(
            SAM(SGD(lr=LR, momentum=0.9), rho=RHO),
            partition=partition,
            use_gc=True,
            gc_ascent=gc_ascent,
            gc_descent=True,
        ),
        steps=10,
    )
    np.testing.assert_array_equal(gc.xs, plain.xs)  # bit for bit
    assert gc.grad_evals == plain.grad_evals == 20


def test_kozistr_gc_normalises_with_the_raw_gradient():
    """pytorch-optimizer's use_gc: ε = ρ GC(g)/(‖g‖ + eps), so ‖ε‖ = ρ‖GC(g)‖/‖g‖ ≤ ρ."""
    g = _grad(X0)
    rule = centralized_ascent(NormBallAscent(rho=RHO), PART, "kozistr")
    e, _ = rule(X0, g, None)
    gc_g = _gc_by_hand(g)
    np.testing.assert_allclose(e, RHO * gc_g / (_norm(g)[:, None] + EPS), rtol=1e-14, atol=0)
    np.testing.assert_allclose(_norm(e), RHO * _norm(gc_g) / (_norm(g) + EPS), rtol=1e-14)
    assert np.all(_norm(e) < RHO * (1 - 1e-3))  # strictly inside the ball here
    # One step: the descent gradient is NOT centralized (gc_descent=False).
    opt = with_knobs(SAM(SGD(lr=LR), rho=RHO), partition=PART, use_gc=True)
    x1, _ = opt.step(X0, opt.init(X0), Oracle(_quadratic()))
    e_hand = RHO * gc_g / (_norm(g)[:, None] + EPS)
    np.testing.assert_allclose(x1, X0 - LR * _grad(X0 + e_hand), rtol=0, atol=1e-14)


def test_gcsam_gc_perturbs_along_the_centralized_gradient_and_centralizes_the_descent():
    """GCSAM: ε = ρ GC(g)/‖GC(g)‖ (‖ε‖ = ρ) and the base gets GC(g̃)."""
    g = _grad(X0)
    gc_g = _gc_by_hand(g)
    e, _ = centralized_ascent(NormBallAscent(rho=RHO), PART, "gcsam")(X0, g, None)
    np.testing.assert_allclose(_norm(e), RHO * _norm(gc_g) / (_norm(gc_g) + EPS), rtol=1e-14)
    np.testing.assert_allclose(e, RHO * gc_g / (_norm(gc_g)[:, None] + EPS), rtol=1e-14)
    opt = with_knobs(
        SAM(SGD(lr=LR), rho=RHO), partition=PART, use_gc=True, gc_ascent="gcsam", gc_descent=True
    )
    x1, _ = opt.step(X0, opt.init(X0), Oracle(_quadratic()))
    e_hand = RHO * gc_g / (_norm(gc_g)[:, None] + EPS)
    np.testing.assert_allclose(x1, X0 - LR * _gc_by_hand(_grad(X0 + e_hand)), atol=1e-14)


def test_centralize_matches_pytorch_optimizer():
    torch = pytest.importorskip("torch")
    gc_module = pytest.importorskip("pytorch_optimizer.optimizer.gradient_centralization")
    part = Partition(((3, 4), (3,), (2, 3, 2, 2), (4, 1)))
    g = np.random.default_rng(4).standard_normal(part.size)
    tensors = []
    for (start, stop), shape in zip(part.bounds, part.shapes, strict=True):
        tensors.append(torch.tensor(g[start:stop].reshape(shape), dtype=torch.float64))
    for t in tensors:
        gc_module.centralize_gradient(t, gc_conv_only=False)
    theirs = np.concatenate([t.numpy().reshape(-1) for t in tensors])
    np.testing.assert_allclose(centralize(g, part), theirs, rtol=0, atol=1e-15)


def test_kozistr_sam_follows_pytorch_optimizer_sam_with_use_gc():
    """Ten steps of SAM(use_gc=True) on the quadratic, parameters split as PART.

    pytorch-optimizer 4.1 takes the global norm in float32 even for float64 parameters
    (measured), so ε carries a relative error of about 1e-7: trajectories agree to 1e-8.
    """
    torch = pytest.importorskip("torch")
    pto = pytest.importorskip("pytorch_optimizer")
    w = torch.tensor(W[:12].reshape(3, 4), dtype=torch.float64, requires_grad=True)
    bias = torch.tensor(W[12:], dtype=torch.float64, requires_grad=True)
    a, b = torch.tensor(A), torch.tensor(B)
    opt = pto.SAM([w, bias], torch.optim.SGD, rho=RHO, use_gc=True, lr=LR, momentum=0.9)

    def closure():
        opt.zero_grad()
        x = torch.cat([w.reshape(-1), bias])
        loss = 0.5 * x @ a @ x - b @ x
        loss.backward()
        return loss

    theirs = [W.copy()]
    for _ in range(10):
        closure()
        opt.step(closure)
        theirs.append(torch.cat([w.reshape(-1), bias]).detach().numpy().copy())
    knobs = _run(
        with_knobs(SAM(SGD(lr=LR, momentum=0.9), rho=RHO), partition=PART, use_gc=True),
        steps=10,
        x0=W,
    )
    plain = _run(SAM(SGD(lr=LR, momentum=0.9), rho=RHO), steps=10, x0=W)
    np.testing.assert_allclose(knobs.xs, np.array(theirs), rtol=0, atol=1e-8)
    assert np.abs(plain.xs - np.array(theirs)).max() > 1e-4  # GC changed the run
    gcsam = _run(
        with_knobs(
            SAM(SGD(lr=LR, momentum=0.9), rho=RHO), partition=PART, use_gc=True, gc_ascent="gcsam"
        ),
        steps=10,
        x0=W,
    )
    assert np.abs(gcsam.xs - np.array(theirs)).max() > 1e-4  # and GCSAM's ascent is another


# ---------------------------------------------------------------------------------------------
# clipping


def test_per_variable_clipnorm_is_global_clipnorm_for_a_single_tensor():
    g = np.random.default_rng(5).standard_normal((6, D)) * np.array(
        [[0.1], [1], [3], [10], [0], [2]]
    )
    for c in (0.5, 2.0):
        # (g·c)/max(G, c) against g·(c·min(1/G, 1/c)): the same number, rounded differently.
        np.testing.assert_allclose(clip_by_norm(g, c), clip_by_global_norm(g, c), rtol=4.5e-16)
        np.testing.assert_allclose(
            clip_by_norm(g, c), g * np.minimum(1, c / np.maximum(_norm(g), 1e-300))[:, None]
        )


def test_per_variable_and_global_clipnorm_differ_with_two_tensors():
    g = np.concatenate([np.full(12, 10.0 / math.sqrt(12)), [0.1, 0.0, 0.0]])  # ‖W‖ = 10
    per_tensor = clip_by_norm(g, 1.0, PART)
    glob = clip_by_global_norm(g, 1.0)
    np.testing.assert_allclose(per_tensor, np.concatenate([g[:12] / 10.0, g[12:]]), rtol=1e-15)
    np.testing.assert_allclose(glob, g / math.hypot(10.0, 0.1), rtol=1e-15)
    np.testing.assert_allclose(per_tensor, _clipnorm_by_hand(g, 1.0), rtol=1e-15)
    assert abs(per_tensor[12] - glob[12]) > 0.09  # the bias is kept by one, shrunk by the other


def test_clipping_is_the_identity_below_the_threshold():
    g = np.random.default_rng(6).standard_normal((4, D))
    c = 1.5 * _norm(g).max()
    # Keras multiplies by c and divides by c (or by c·(1/c)): the identity up to one rounding.
    np.testing.assert_allclose(clip_by_norm(g, c), g, rtol=2.3e-16, atol=0)
    np.testing.assert_allclose(clip_by_norm(g, c, PART), g, rtol=2.3e-16, atol=0)
    np.testing.assert_allclose(clip_by_global_norm(g, c), g, rtol=2.3e-16, atol=0)
    np.testing.assert_array_equal(clip_by_value(g, np.abs(g).max()), g)
    # torch's clip_grad_norm_: min(1, c/(G + 1e-6)) is exactly 1 while G + 1e-6 ≤ c.
    np.testing.assert_array_equal(clip_by_global_norm(g, c, convention="torch"), g)


def test_keras_and_torch_global_clipping_differ_at_the_threshold():
    g = np.array([3.0, 4.0] + [0.0] * 13)  # ‖g‖ = 5
    np.testing.assert_allclose(_norm(clip_by_global_norm(g, 5.0)), 5.0, rtol=1e-16)
    torch_norm = _norm(clip_by_global_norm(g, 5.0, convention="torch"))
    np.testing.assert_allclose(torch_norm, 25.0 / (5.0 + 1e-6), rtol=1e-15)
    assert torch_norm < 5.0
    # A zero gradient stays zero without NaN; an infinite norm gives NaN (Keras, on purpose).
    zero = np.zeros(D)
    for clipped in (clip_by_norm(zero, 1.0, PART), clip_by_global_norm(zero, 1.0)):
        np.testing.assert_array_equal(clipped, zero)
    assert np.isnan(clip_by_global_norm(np.array([np.inf, 1.0]), 1.0)).all()
    with _raises_naming("convention"):
        clip_by_global_norm(g, 1.0, convention="jax")


def test_clipvalue_by_hand():
    g = np.array([[-3.0, 0.5, 2.0], [0.1, -0.2, 7.0]])
    np.testing.assert_array_equal(clip_by_value(g, 1.0), [[-1.0, 0.5, 1.0], [0.1, -0.2, 1.0]])


def test_clipping_the_first_gradient_by_global_norm_does_not_change_epsilon():
    """davda54/sam #32: ε = ρ g/‖g‖ renormalises a global rescaling; per-tensor clipping and
    clipvalue change ε's direction (and ‖ε‖ stays ρ)."""
    g = _grad(X0) * np.array([[1.0] * 12 + [30.0] * 3])  # a large bias gradient
    plain, _ = NormBallAscent(rho=RHO)(X0, g, None)
    for transform, changes in (
        (partial(clip_by_global_norm, global_clipnorm=0.1), False),
        (partial(clip_by_norm, clipnorm=0.1, partition=PART), True),
        (partial(clip_by_value, clipvalue=0.1), True),
    ):
        e, _ = TransformedAscent(NormBallAscent(rho=RHO), transform)(X0, g, None)
        # ‖ε‖ = ρ n/(n + eps) with n ≥ 0.1 the clipped norm: ρ to 1e-11.
        np.testing.assert_allclose(_norm(e), RHO, rtol=1e-10)
        cos = np.sum(e * plain, axis=-1) / RHO**2
        if changes:
            assert np.all(cos < 0.99), cos
        else:
            np.testing.assert_allclose(e, plain, rtol=1e-10, atol=0)  # eps/0.1, as above


@pytest.mark.parametrize("stage", ["descent", "ascent", "both"])
def test_clip_stages_by_hand(stage):
    c = 0.5
    g = _grad(X0)
    g_asc = _clipnorm_by_hand(g, c) if stage in ("ascent", "both") else g
    e = RHO * g_asc / (_norm(g_asc)[:, None] + EPS)
    d = _grad(X0 + e)
    if stage in ("descent", "both"):
        d = _clipnorm_by_hand(d, c)
    opt = with_knobs(SAM(SGD(lr=LR), rho=RHO), partition=PART, clipnorm=c, clip_stage=stage)
    oracle = Oracle(_quadratic())
    x1, _ = opt.step(X0, opt.init(X0), oracle)
    np.testing.assert_allclose(x1, X0 - LR * d, rtol=0, atol=1e-14)
    assert oracle.calls == 2


def test_the_descent_stage_is_a_transformed_base():
    """with_knobs(clip_stage="descent") is SAM on TransformedBase, bit for bit."""
    clip = partial(clip_by_norm, clipnorm=0.5, partition=PART)
    by_hand = _run(SAM(TransformedBase(SGD(lr=LR, momentum=0.9), clip), rho=RHO))
    knobs = _run(with_knobs(SAM(SGD(lr=LR, momentum=0.9), rho=RHO), partition=PART, clipnorm=0.5))
    np.testing.assert_array_equal(knobs.xs, by_hand.xs)


def test_wsam_max_norm_is_the_both_stage_with_torch_clipping():
    """Official WSAM clips g and g̃ with torch's clip_grad_norm_: the oracle stage.

    The official WSAM code clips g after building ε from it, the oracle stage before: ε = ρ g/(‖g‖ +
    eps) is the same up to eps/‖clipped g‖ ≈ 3e-12, so the runs agree to 1e-13, not bit for bit.
    """
    c = 0.3
    reference = _run(WSAM(SGD(lr=LR), rho=RHO, max_norm=c))
    torch_clip = partial(clip_by_global_norm, global_clipnorm=c, convention="torch")
    both = _run(WithGradientTransform(WSAM(SGD(lr=LR), rho=RHO), torch_clip))
    np.testing.assert_allclose(both.xs, reference.xs, rtol=0, atol=1e-13)
    unclipped = _run(WSAM(SGD(lr=LR), rho=RHO))
    assert np.abs(unclipped.xs - reference.xs).max() > 1e-3  # clipping is active
    # Keras' global_clipnorm at the same stage differs only by torch's 1e-6 (relative 1e-6/G).
    keras = _run(with_knobs(WSAM(SGD(lr=LR), rho=RHO), global_clipnorm=c, clip_stage="both"))
    assert not np.array_equal(keras.xs, reference.xs)
    np.testing.assert_allclose(keras.xs, reference.xs, rtol=0, atol=1e-7)


@pytest.mark.parametrize(
    "two",
    [
        {"clipnorm": 1.0, "clipvalue": 1.0},
        {"clipnorm": 1.0, "global_clipnorm": 1.0},
        {"clipvalue": 1.0, "global_clipnorm": 1.0},
    ],
)
def test_at_most_one_clip_as_keras(two):
    for name in two:
        with _raises_naming(name):
            with_knobs(SAM(SGD(lr=LR)), **two)
        with _raises_naming(name):
            clip_transform(None, **two)


# ---------------------------------------------------------------------------------------------
# weight EMA


def _sgd_by_hand(x, steps, lr=0.1):
    xs = [x]
    for _ in range(steps):
        xs.append(xs[-1] - lr * _grad(xs[-1]))
    return xs


def test_ema_first_step_copies_then_averages_by_hand():
    mu = 0.9
    opt = WithEMA(SGD(lr=0.1), ema_momentum=mu)
    oracle = Oracle(_quadratic())
    x, state = X0, opt.init(X0)
    xs = _sgd_by_hand(X0, 5)
    expected = None
    for k in range(1, 6):
        x, state = opt.step(x, state, oracle)
        expected = xs[1] if k == 1 else mu * expected + (1 - mu) * xs[k]
        if k == 1:
            np.testing.assert_array_equal(ema_weights(state), x)  # the first update copies
        np.testing.assert_allclose(x, xs[k], rtol=0, atol=1e-14)  # the weights are untouched
        np.testing.assert_allclose(ema_weights(state), expected, rtol=0, atol=1e-14)
    # The same through with_knobs, and the accessor on the wrapper.
    knobs = with_knobs(SGD(lr=0.1), use_ema=True, ema_momentum=mu)
    x, s = X0, knobs.init(X0)
    for _ in range(5):
        x, s = knobs.step(x, s, oracle)
    np.testing.assert_array_equal(knobs.ema_weights(s), ema_weights(state))
    with _raises_naming("use_ema"):
        with_knobs(SGD(lr=0.1)).ema_weights(s.inner)


def test_ema_overwrite_frequency_replaces_the_weights_every_k_steps():
    mu, lr = 0.5, 0.1
    opt = WithEMA(SGD(lr=lr), ema_momentum=mu, ema_overwrite_frequency=2)
    oracle = Oracle(_quadratic())
    x, state = X0, opt.init(X0)
    w, avg = X0, None
    for k in range(1, 7):
        x, state = opt.step(x, state, oracle)
        w = w - lr * _grad(w)
        avg = w if k == 1 else mu * avg + (1 - mu) * w
        if k % 2 == 0:
            w = avg  # steps 2, 4, 6: the weights become the average
        np.testing.assert_allclose(x, w, rtol=0, atol=1e-14)
        np.testing.assert_allclose(ema_weights(state), avg, rtol=0, atol=1e-14)
        if k % 2 == 0:
            np.testing.assert_array_equal(x, ema_weights(state))


def test_ema_tracks_the_unperturbed_point_of_msam():
    mu = 0.8
    msam = MSAM(lr=LR, rho=0.3)
    opt = WithEMA(msam, ema_momentum=mu)
    oracle = Oracle(_quadratic())
    x, state = X0, opt.init(X0)
    avg = None
    for k in range(1, 4):
        x, state = opt.step(x, state, oracle)
        w = x + state.inner.scale * state.inner.momentum  # MSAM's invariant w = w̃ + scale·v
        avg = w if k == 1 else mu * avg + (1 - mu) * w
        np.testing.assert_allclose(ema_weights(state), avg, rtol=0, atol=1e-14)
        # The stored point is perturbed by ρ: the average is not of the stored points.
        np.testing.assert_allclose(_norm(w - x), 0.3, rtol=1e-12)
    # With an overwrite every step the stored point is the average, perturbed again.
    opt = WithEMA(msam, ema_momentum=mu, ema_overwrite_frequency=1)
    x, state = opt.step(*opt.step(X0, opt.init(X0), oracle), oracle)
    np.testing.assert_allclose(msam.unperturbed(x, state.inner), ema_weights(state), atol=1e-15)
    np.testing.assert_allclose(_norm(opt.unperturbed(x, state) - x), 0.3, rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# gradient accumulation

VARIANTS = {
    "SAM": lambda: SAM(SGD(lr=LR, momentum=0.9), rho=RHO),
    "GSAM": lambda: GSAM(SGD(lr=LR, momentum=0.9), rho=RHO, alpha=0.4),
    "WSAM": lambda: WSAM(SGD(lr=LR, momentum=0.9), rho=RHO),
    "WSAM-coupled": lambda: WSAM(SGD(lr=LR, momentum=0.9), rho=RHO, decouple=False),
    "LookSAM": lambda: LookSAM(SGD(lr=LR, momentum=0.9), rho=RHO, k=2),
    "FriendlySAM": lambda: FriendlySAM(SGD(lr=LR, momentum=0.9), rho=RHO),
    "MSAM": lambda: MSAM(lr=LR, rho=0.3),
    "AdamWMSAMScheduleFree": lambda: AdamWMSAMScheduleFree(lr=0.02, rho=0.05),
}
STEPS = 6
EVALS = {  # gradient evaluations of 6 plain steps (LookSAM k = 2: SAM steps at t = 0, 2, 4)
    "SAM": 12,
    "GSAM": 12,
    "WSAM": 12,
    "WSAM-coupled": 12,
    "LookSAM": 9,
    "FriendlySAM": 12,
    "MSAM": 6,
    "AdamWMSAMScheduleFree": 6,
}


@pytest.mark.parametrize("mode", ["msharpness", "union"])
@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("name", list(VARIANTS))
def test_accumulation_of_a_deterministic_function_is_one_step(name, n, mode):
    """N micro-steps see the same gradient: one step (up to the rounding of the average),
    N times the gradient evaluations."""
    plain = _run(VARIANTS[name](), steps=STEPS)
    acc = _run(
        with_knobs(VARIANTS[name](), gradient_accumulation_steps=n, accumulation_mode=mode),
        steps=STEPS,
    )
    assert plain.grad_evals == EVALS[name]
    assert acc.grad_evals == n * EVALS[name]
    # (d + d)/2 = d exactly; (d + (d + d))/3 within a few ulp, grown over 6 steps.
    np.testing.assert_allclose(acc.xs, plain.xs, rtol=0, atol=1e-13)
    if n == 2 and name in ("SAM", "GSAM", "LookSAM", "MSAM"):
        np.testing.assert_array_equal(acc.xs, plain.xs)


def test_mode_a_on_micro_batches_is_m_sharpness_sam():
    """SAM with N micro-batches of n/N examples, mode A ≡ MSharpnessSAM(m = n/N)."""
    problem = make_logistic_problem(n=64, dim=3, noise=0.1, seed=3)
    x0 = np.array([[0.5, -1.0, 0.3], [2.0, 0.1, -0.4]])
    m_sam = sampy.run(MSharpnessSAM(SGD(lr=0.5), rho=0.2, m=16), problem, x0, 5)
    acc = sampy.run(
        with_knobs(SAM(SGD(lr=0.5), rho=0.2), gradient_accumulation_steps=4), problem, x0, 5
    )
    full = sampy.run(SAM(SGD(lr=0.5), rho=0.2), problem, x0, 5)
    np.testing.assert_allclose(acc.xs, m_sam.xs, rtol=0, atol=1e-14)
    assert acc.grad_evals == m_sam.grad_evals == 5 * 8
    assert np.abs(acc.xs - full.xs).max() > 1e-4  # m-SAM is not SAM on the whole batch


def test_mode_b_on_micro_batches_is_sam_on_the_union():
    problem = make_logistic_problem(n=64, dim=3, noise=0.1, seed=3)
    x0 = np.array([[0.5, -1.0, 0.3], [2.0, 0.1, -0.4]])
    full = sampy.run(SAM(SGD(lr=0.5), rho=0.2), problem, x0, 5)
    acc = sampy.run(
        with_knobs(
            SAM(SGD(lr=0.5), rho=0.2), gradient_accumulation_steps=4, accumulation_mode="union"
        ),
        problem,
        x0,
        5,
    )
    # The mean of the four micro-batch means is the full mean, up to rounding.
    np.testing.assert_allclose(acc.xs, full.xs, rtol=0, atol=1e-14)
    assert acc.grad_evals == 4 * full.grad_evals == 40


def test_mode_a_averages_wsams_decoupled_term_by_hand():
    """WSAM (decoupled): the base gets mean g_j, the sharpness term is α·mean(g̃_j − g_j)."""
    problem = make_logistic_problem(n=30, dim=2, noise=0.1, seed=5)
    w = np.array([0.7, -0.4])
    gamma, lr = 0.9, 0.3
    alpha = gamma / (1 - gamma)
    batches = np.array_split(np.arange(30), 3)
    g = [problem.grad(w, b) for b in batches]
    g_adv = [
        problem.grad(w + RHO * gj / (np.linalg.norm(gj) + EPS), b)
        for gj, b in zip(g, batches, strict=True)
    ]
    expected = w - lr * np.mean(g, axis=0) - lr * alpha * np.mean(np.subtract(g_adv, g), axis=0)
    opt = with_knobs(WSAM(SGD(lr=lr), rho=RHO, gamma=gamma), gradient_accumulation_steps=3)
    x1, _ = opt.step(w, opt.init(w), Oracle(problem))
    np.testing.assert_allclose(x1, expected, rtol=0, atol=1e-15)


def test_descent_clipping_acts_on_the_accumulated_direction():
    """Keras clips after accumulating: mode A clips the average of the N directions."""
    problem = make_logistic_problem(n=30, dim=2, noise=0.1, seed=5)
    w, c, lr = np.array([0.7, -0.4]), 0.05, 0.3
    batches = np.array_split(np.arange(30), 3)
    g_adv = []
    for b in batches:
        g = problem.grad(w, b)
        g_adv.append(problem.grad(w + RHO * g / (np.linalg.norm(g) + EPS), b))
    mean = np.mean(g_adv, axis=0)
    assert np.linalg.norm(mean) > 2 * c  # the clip is active
    opt = with_knobs(SAM(SGD(lr=lr), rho=RHO), clipnorm=c, gradient_accumulation_steps=3)
    x1, _ = opt.step(w, opt.init(w), Oracle(problem))
    np.testing.assert_allclose(x1, w - lr * c * mean / np.linalg.norm(mean), rtol=0, atol=1e-15)


def test_accumulation_lowers_the_variance_of_the_direction():
    """With a noisy oracle the N micro-steps are independent: Var(mean) = Var(d)/N."""
    w = np.broadcast_to(W, (4000, D))
    f = NoisyGradient(_quadratic(), sigma=1.0, seed=11)

    def displacement_variance(n):
        opt = with_knobs(SAM(SGD(lr=1.0), rho=RHO), gradient_accumulation_steps=n)
        x1, _ = opt.step(w, opt.init(w), Oracle(f))
        return np.var(W - x1, axis=0).mean()

    ratio = displacement_variance(4) / displacement_variance(1)
    assert 0.2 < ratio < 0.3, ratio  # 1/4, with about 3 % sampling error at 4000 points


def test_accumulation_refusals():
    with _raises_naming("accumulation_mode"):
        with_knobs(BSAM(), gradient_accumulation_steps=2)
    with_knobs(BSAM(), gradient_accumulation_steps=2, accumulation_mode="union")  # defined
    problem = make_logistic_problem(n=8, dim=2, seed=0)
    opt = with_knobs(MSharpnessSAM(SGD(lr=0.1), m=2), gradient_accumulation_steps=2)
    with _raises_naming("gradient_accumulation_steps"):
        opt.step(np.zeros(2), opt.init(np.zeros(2)), Oracle(problem))
    opt = with_knobs(SAM(SGD(lr=0.1)), gradient_accumulation_steps=9)
    with _raises_naming("gradient_accumulation_steps"):
        opt.step(np.zeros(2), opt.init(np.zeros(2)), Oracle(problem))  # 9 > 8 examples


# ---------------------------------------------------------------------------------------------
# loss scaling


def test_gradients_of_the_scaled_loss_divided_by_the_scale_are_the_gradients():
    f = functions.get("rosenbrock")
    x = np.array([[-1.2, 1.0], [0.3, 0.7]])
    plain = Oracle(f.fn).grad(x)  # autograd, both sides
    for s in (1024.0, 3.7, 1e-3):
        scaled = Oracle(lambda v, s=s: scale_loss(f.fn(v), s)).grad(x)
        unscaled = unscale_gradient(scaled, s)
        np.testing.assert_allclose(unscaled, plain, rtol=4.5e-16, atol=0)
        if s == 1024.0:  # a power of two: exact
            np.testing.assert_array_equal(unscaled, plain)


def test_loss_scale_knob_is_the_plain_run_up_to_rounding():
    plain = _run(GSAM(SGD(lr=LR, momentum=0.9), rho=RHO))
    pow2 = _run(with_knobs(GSAM(SGD(lr=LR, momentum=0.9), rho=RHO), loss_scale_factor=1024.0))
    np.testing.assert_array_equal(pow2.xs, plain.xs)
    odd = _run(with_knobs(GSAM(SGD(lr=LR, momentum=0.9), rho=RHO), loss_scale_factor=3.7))
    np.testing.assert_allclose(odd.xs, plain.xs, rtol=0, atol=1e-14)
    assert odd.grad_evals == plain.grad_evals


def test_unscaling_comes_before_the_ascent_and_perturb_eps():
    """Forgetting to unscale changes ε only through eps: ρ sg/(s‖g‖ + eps) = ρ g/(‖g‖ + eps/s).
    Near a zero gradient that matters: with ‖g‖ = eps, ‖ε‖ = ρ/2 unscaled, ρ s/(s + 1) not."""
    s = 1024.0
    g = np.zeros((1, D))
    g[0, 0] = EPS
    ascent = NormBallAscent(rho=RHO, perturb_eps=EPS)
    forgot, _ = ascent(X0[:1], s * g, None)
    smaller_eps, _ = NormBallAscent(rho=RHO, perturb_eps=EPS / s)(X0[:1], g, None)
    np.testing.assert_allclose(forgot, smaller_eps, rtol=1e-15)
    np.testing.assert_allclose(_norm(forgot), RHO * s / (s + 1), rtol=1e-15)
    view = OracleView(Oracle(lambda x: EPS * x[..., 0]), loss_scaled(s))  # ∇ = (eps, 0, …)
    e, _ = ascent(X0[:1], view.grad(X0[:1]), None)
    np.testing.assert_allclose(_norm(e), RHO / 2, rtol=1e-15)  # the knob unscales first


# ---------------------------------------------------------------------------------------------
# Every knob with SAM, GSAM, WSAM, LookSAM and MSAM

SMOKE_VARIANTS = ("SAM", "GSAM", "WSAM", "LookSAM", "MSAM")
SETTINGS = {
    "gc-kozistr": ({"use_gc": True}, 1, True),
    "gc-gcsam-descent": ({"use_gc": True, "gc_ascent": "gcsam", "gc_descent": True}, 1, True),
    "clipnorm-descent": ({"clipnorm": 0.5}, 1, True),
    "clipnorm-both": ({"clipnorm": 0.5, "clip_stage": "both"}, 1, True),
    "clipnorm-ascent": ({"clipnorm": 0.5, "clip_stage": "ascent"}, 1, True),
    "clipvalue": ({"clipvalue": 0.2}, 1, True),
    "global-clipnorm-both": ({"global_clipnorm": 0.5, "clip_stage": "both"}, 1, True),
    "ema-overwrite": (
        {"use_ema": True, "ema_momentum": 0.5, "ema_overwrite_frequency": 2},
        1,
        True,
    ),
    "accumulate-a": ({"gradient_accumulation_steps": 3}, 3, False),
    "accumulate-b": ({"gradient_accumulation_steps": 2, "accumulation_mode": "union"}, 2, False),
    "loss-scale": ({"loss_scale_factor": 128.0}, 1, False),
    "everything": (
        {
            "use_gc": True,
            "gc_descent": True,
            "clipnorm": 0.5,
            "clip_stage": "both",
            "use_ema": True,
            "gradient_accumulation_steps": 2,
            "loss_scale_factor": 3.0,
        },
        2,
        True,
    ),
}
# MSAM has no ascent rule taking a gradient: GC only in the descent, no ascent-stage clipping.
MSAM_GC = {"use_gc": True, "gc_ascent": "off", "gc_descent": True}


@pytest.mark.parametrize("setting", list(SETTINGS))
@pytest.mark.parametrize("name", SMOKE_VARIANTS)
def test_every_knob_works_with_the_main_variants(name, setting):
    knobs, n, changes = SETTINGS[setting]
    if name == "MSAM" and knobs.get("use_gc"):
        knobs = {**knobs, **MSAM_GC}
    if name == "MSAM" and knobs.get("clip_stage") == "ascent":
        with _raises_naming("clip_stage"):
            with_knobs(VARIANTS[name](), partition=PART, **knobs)
        return
    plain = _run(VARIANTS[name](), steps=STEPS)
    run = _run(with_knobs(VARIANTS[name](), partition=PART, **knobs), steps=STEPS)
    assert np.all(np.isfinite(run.xs))
    assert not run.diverged.any()
    assert run.grad_evals == n * EVALS[name]
    if changes:
        assert np.abs(run.xs - plain.xs).max() > 1e-6
    assert run.final_loss.mean() < plain.losses[0].mean()  # it still descends


def test_default_knobs_are_the_plain_variant_bit_for_bit():
    for name in SMOKE_VARIANTS:
        opt = with_knobs(VARIANTS[name]())
        assert opt.optimizer is opt.variant  # nothing wrapped
        np.testing.assert_array_equal(_run(opt).xs, _run(VARIANTS[name]()).xs)


def test_msam_gc_in_the_ascent_is_refused_by_name():
    with _raises_naming("gc_ascent"):
        with_knobs(MSAM(), partition=PART, use_gc=True)  # gc_ascent="kozistr" by default
    with _raises_naming("clip_stage"):
        with_knobs(BSAM(), clipnorm=1.0)  # no base, two gradients: no descent stage


def test_the_stage_wrappers_keep_the_counters_exact():
    oracle = Oracle(_quadratic())
    view = OracleView(OracleView(oracle, loss_scaled(2.0)), partial(clip_by_value, clipvalue=1.0))
    view.grad(X0)
    view(X0)
    view.loss(X0)
    assert (view.calls, view.loss_calls, oracle.calls, oracle.loss_calls) == (2, 1, 2, 1)
    opt = WithAccumulation(WithEMA(SAM(SGD(lr=LR))), 2, "union")
    assert opt.grad_evals_per_step == 4
    assert (
        with_knobs(LookSAM(SGD(lr=LR), k=4), gradient_accumulation_steps=3).grad_evals_per_step
        == 3.75
    )


# ---------------------------------------------------------------------------------------------
# Validation


def _invalid_cases():
    return [
        pytest.param(spec.name, bad, id=f"{spec.name}-{i}")
        for spec in KNOBS
        for i, bad in enumerate(spec.invalid_values())
    ]


@pytest.mark.parametrize(("knob", "bad"), _invalid_cases())
def test_every_invalid_knob_value_raises_naming_it(knob, bad):
    with _raises_naming(knob):
        with_knobs(SAM(SGD(lr=LR)), **{knob: bad})


def test_specs_agree_with_the_constructor():
    import inspect

    params = inspect.signature(WithKnobs.__init__).parameters
    for spec in KNOBS:
        assert params[spec.name].default == spec.default, spec.name
        spec.check(spec.default)
    assert set(params) - {spec.name for spec in KNOBS} == {"self", "optimizer", "partition"}


@pytest.mark.parametrize(
    ("knob", "kwargs"),
    [
        ("gc_descent", {"gc_descent": True}),
        ("use_gc", {"use_gc": True, "gc_ascent": "off"}),
        ("ema_overwrite_frequency", {"ema_overwrite_frequency": 3}),
        ("partition", {"partition": ((3, 0),)}),
    ],
)
def test_knobs_that_would_do_nothing_raise_naming_them(knob, kwargs):
    with _raises_naming(knob):
        with_knobs(SAM(SGD(lr=LR)), **kwargs)


def test_the_optimizer_must_be_an_instance():
    for bad in (SAM, object(), SGD):
        with _raises_naming("optimizer"):
            with_knobs(bad)
    with _raises_naming("on"):
        TransformedAscent(NormBallAscent(), lambda g: g, on="epsilon")
    with _raises_naming("gc_ascent"):
        centralized_ascent(NormBallAscent(), PART, "both")
