"""More test functions: an ill-conditioned quadratic and the usual 2-D and d-D benchmarks.

Formulas, usual domains and minima follow the Virtual Library of Simulation Experiments
(Surjanovic & Bingham, https://www.sfu.ca/~ssurjano/, one page per function) and Jamil & Yang,
"A literature survey of benchmark functions for global optimisation problems", Int. J. Math.
Modelling and Numerical Optimisation 4(2), 2013. Each ``value`` is written with
``autograd.numpy``; each ``grad`` is the hand-written NumPy gradient the optimizers use.

Minimisers without a closed form are hard-coded to full double precision: they are roots of
the gradient found with mpmath (40 digits, ``mpmath.findroot``), rounded to the nearest double,
and checked with Newton's method in double precision (autograd Hessian, ``|∇f| < 1e-15``).
"""

from __future__ import annotations

import math

import autograd.numpy as anp
import numpy as np

from sampy._checks import check_real
from sampy.functions._base import TestFunction, register
from sampy.functions.classic import _check_dim

# ---------------------------------------------------------------------------------------------
# Quadratic with a chosen condition number


# d2l's ill-conditioned example f(x) = 0.1 x₁² + 2 x₂² (chapter_optimization/momentum.md) is
# ½ Σ λᵢ xᵢ² with λ = (0.2, 4): GD is stable for η < 2/4 = 0.5 (d2l: η = 0.4 converges slowly,
# η = 0.6 diverges).
_D2L_LAMBDAS = (0.2, 4.0)


@register("ill_conditioned")
def ill_conditioned(lambdas: object = None, condition: float | None = None) -> TestFunction:
    """``f(x) = ½ Σ λᵢ xᵢ²``: an axis-aligned bowl with condition number ``κ = max λ / min λ``.

    The default ``λ = (0.2, 4)`` makes ``f = 0.1 x₁² + 2 x₂²``, the ill-conditioned example of
    Dive into Deep Learning (Zhang, Lipton, Li & Smola, d2l.ai, "Optimization Algorithms",
    section "Momentum"), with ``κ = 20``. Give ``lambdas`` (any number of positive
    curvatures, one per coordinate) or ``condition = κ >= 1``, which means ``λ = (4/κ, 4)``:
    the steep curvature, and so the GD stability limit ``η < 2/λmax = 0.5``, stays fixed while
    the flat direction gets flatter. Minimum 0 at the origin; the Hessian is ``diag(λ)``.
    """
    if lambdas is not None and condition is not None:
        raise ValueError("give lambdas or condition, not both (condition means λ = (4/κ, 4))")
    if condition is not None:
        check_real("condition", condition, 1.0, math.inf, high_open=True)
        lam = np.array([_D2L_LAMBDAS[1] / float(condition), _D2L_LAMBDAS[1]])
    else:
        if lambdas is None:
            lambdas = _D2L_LAMBDAS
        if isinstance(lambdas, (str, bytes)):
            raise ValueError(f"lambdas must be a sequence of positive numbers, got {lambdas!r}")
        try:
            lam = np.array(lambdas, dtype=float)
        except (TypeError, ValueError):
            raise ValueError(
                f"lambdas must be a sequence of positive numbers, got {lambdas!r}"
            ) from None
        if lam.ndim != 1 or lam.size < 1:
            raise ValueError(f"lambdas must be a non-empty 1-D sequence, got shape {lam.shape}")
        check_real("lambdas", lam, 0.0, math.inf, low_open=True, high_open=True)
    d = lam.size

    def value(x):
        return 0.5 * anp.sum(lam * x**2, axis=-1)

    def grad(x):
        return lam * x

    # d2l draws x₁ ∈ [−5.5, 1], x₂ ∈ [−3, 1]; a box symmetric about the minimum, wider along the
    # flattest coordinate.
    flattest = int(np.argmin(lam))
    return TestFunction(
        name="ill_conditioned",
        fn=value,
        dim=d,
        domain=tuple((-5.5, 5.5) if i == flattest else (-3.0, 3.0) for i in range(d)),
        minima=np.zeros((1, d)),
        fmin=0.0,
        analytic_grad=grad,
        params={"lambdas": lam.tolist()},
        description=f"½ Σ λ x², condition number κ = {lam.max() / lam.min():g}",
    )


# ---------------------------------------------------------------------------------------------
# 2-D benchmarks


@register("beale")
def beale() -> TestFunction:
    """``f(x, y) = (1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)²``.

    E. M. L. Beale, "On an iterative method for finding a local minimum of a function of more
    than one variable", Technical Report 25, Statistical Techniques Research Group, Princeton
    University, 1958 (VLSE page ``beale``). Minimum 0 at (3, 0.5), Hessian eigenvalues
    (0.30, 49.0) there: flat plateaus and steep ridges towards the corners.
    """
    c = (1.5, 2.25, 2.625)

    def value(x):
        u, v = x[..., 0], x[..., 1]
        return (c[0] - u + u * v) ** 2 + (c[1] - u + u * v**2) ** 2 + (c[2] - u + u * v**3) ** 2

    def grad(x):
        u, v = x[..., 0], x[..., 1]
        grad = np.zeros_like(x)
        power = np.ones_like(v)  # v^(k−1)
        for k, ck in enumerate(c, start=1):
            residual = ck - u + u * power * v
            grad[..., 0] += 2.0 * residual * (power * v - 1.0)
            grad[..., 1] += 2.0 * residual * (k * u * power)
            power = power * v
        return grad

    return TestFunction(
        name="beale",
        fn=value,
        dim=2,
        domain=((-4.5, 4.5), (-4.5, 4.5)),
        minima=np.array([[3.0, 0.5]]),
        fmin=0.0,
        analytic_grad=grad,
        description="flat plateaus and steep ridges, minimum at (3, 0.5)",
    )


@register("booth")
def booth() -> TestFunction:
    """``f(x, y) = (x + 2y − 7)² + (2x + y − 5)²``: a tilted convex quadratic.

    VLSE page ``booth``; Jamil & Yang (2013). Minimum 0 at (1, 3); the Hessian is
    ``[[10, 8], [8, 10]]`` everywhere, eigenvalues (2, 18), κ = 9.
    """

    def value(x):
        u, v = x[..., 0], x[..., 1]
        return (u + 2.0 * v - 7.0) ** 2 + (2.0 * u + v - 5.0) ** 2

    def grad(x):
        u, v = x[..., 0], x[..., 1]
        r1 = u + 2.0 * v - 7.0
        r2 = 2.0 * u + v - 5.0
        grad = np.empty_like(x)
        grad[..., 0] = 2.0 * r1 + 4.0 * r2
        grad[..., 1] = 4.0 * r1 + 2.0 * r2
        return grad

    return TestFunction(
        name="booth",
        fn=value,
        dim=2,
        domain=((-10.0, 10.0), (-10.0, 10.0)),
        minima=np.array([[1.0, 3.0]]),
        fmin=0.0,
        analytic_grad=grad,
        description="tilted convex quadratic, κ = 9",
    )


@register("matyas")
def matyas() -> TestFunction:
    """``f(x, y) = 0.26 (x² + y²) − 0.48 xy``: a convex quadratic, nearly flat along x = y.

    VLSE page ``matya``; Jamil & Yang (2013). Minimum 0 at the origin; the Hessian is
    ``[[0.52, −0.48], [−0.48, 0.52]]``, eigenvalues 0.04 (along the diagonal) and 1.0, κ = 25.
    """

    def value(x):
        u, v = x[..., 0], x[..., 1]
        return 0.26 * (u**2 + v**2) - 0.48 * u * v

    def grad(x):
        u, v = x[..., 0], x[..., 1]
        grad = np.empty_like(x)
        grad[..., 0] = 0.52 * u - 0.48 * v
        grad[..., 1] = 0.52 * v - 0.48 * u
        return grad

    return TestFunction(
        name="matyas",
        fn=value,
        dim=2,
        domain=((-10.0, 10.0), (-10.0, 10.0)),
        minima=np.zeros((1, 2)),
        fmin=0.0,
        analytic_grad=grad,
        description="convex quadratic, flat along the diagonal, κ = 25",
    )


@register("three_hump_camel")
def three_hump_camel() -> TestFunction:
    """``f(x, y) = 2x² − 1.05x⁴ + x⁶/6 + xy + y²``: three minima, the global one the flattest.

    VLSE page ``camel3``; Jamil & Yang (2013). Global minimum 0 at the origin (Hessian
    ``[[4, 1], [1, 2]]``, eigenvalues 3 ± √2 = (1.59, 4.41)); two local minima, higher
    (f ≈ 0.2986) and sharper (eigenvalues ≈ (1.90, 12.25)), near (±1.7476, ∓0.8738). Only the
    global minimiser is listed in ``minima``.
    """

    def value(x):
        u, v = x[..., 0], x[..., 1]
        return 2.0 * u**2 - 1.05 * u**4 + u**6 / 6.0 + u * v + v**2

    def grad(x):
        u, v = x[..., 0], x[..., 1]
        grad = np.empty_like(x)
        grad[..., 0] = 4.0 * u - 4.2 * u**3 + u**5 + v
        grad[..., 1] = u + 2.0 * v
        return grad

    return TestFunction(
        name="three_hump_camel",
        fn=value,
        dim=2,
        domain=((-5.0, 5.0), (-5.0, 5.0)),
        minima=np.zeros((1, 2)),
        fmin=0.0,
        analytic_grad=grad,
        description="three minima; the global one is also the flattest",
    )


# Six-hump camel: root of ∇f = (8x − 8.4x³ + 2x⁵ + y, x − 8y + 16y³) near (0.0898, −0.7126),
# by mpmath.findroot at 40 digits (0.0898420131003180624…, −0.7126564030207396333…), rounded to
# doubles; f there = −1.0316284534898773504…. The other global minimiser is its mirror image
# (f(−x, −y) = f(x, y)).
_SIX_HUMP_MINIMUM = (0.08984201310031806, -0.7126564030207396)
_SIX_HUMP_FMIN = -1.0316284534898774


@register("six_hump_camel")
def six_hump_camel() -> TestFunction:
    """``f(x, y) = (4 − 2.1x² + x⁴/3) x² + xy + (−4 + 4y²) y²``: six minima, two of them global.

    L. C. W. Dixon and G. P. Szegö, "The global optimisation problem: an introduction", in
    Towards Global Optimisation 2, North-Holland, 1978 (VLSE page ``camel6``). Global minimum
    −1.03163 at ±(0.0898, −0.7126), Hessian eigenvalues (7.68, 16.49) at both (they are mirror
    images under (x, y) ↦ (−x, −y)).
    """

    def value(x):
        u, v = x[..., 0], x[..., 1]
        return (4.0 - 2.1 * u**2 + u**4 / 3.0) * u**2 + u * v + (-4.0 + 4.0 * v**2) * v**2

    def grad(x):
        u, v = x[..., 0], x[..., 1]
        grad = np.empty_like(x)
        grad[..., 0] = 8.0 * u - 8.4 * u**3 + 2.0 * u**5 + v
        grad[..., 1] = u - 8.0 * v + 16.0 * v**3
        return grad

    m = np.array(_SIX_HUMP_MINIMUM)
    return TestFunction(
        name="six_hump_camel",
        fn=value,
        dim=2,
        domain=((-3.0, 3.0), (-2.0, 2.0)),
        minima=np.array([m, -m]),
        fmin=_SIX_HUMP_FMIN,
        analytic_grad=grad,
        description="six minima, two global ones of equal depth",
    )


@register("goldstein_price")
def goldstein_price() -> TestFunction:
    """``f(x, y) = [1 + (x+y+1)² P(x, y)] · [30 + (2x−3y)² Q(x, y)]``, with
    ``P = 19 − 14x + 3x² − 14y + 6xy + 3y²`` and ``Q = 18 − 32x + 12x² + 48y − 36xy + 27y²``.

    A. A. Goldstein and J. F. Price, "On descent from local minima", Mathematics of Computation
    25(115), 1971 (VLSE page ``goldpr``). Minimum 3 at (0, −1), Hessian eigenvalues ≈ (403, 965)
    there; the values span 3 to ~10⁶ on [−2, 2]², so plot ``log(f − 3)``.
    """

    def value(x):
        u, v = x[..., 0], x[..., 1]
        s, t = u + v + 1.0, 2.0 * u - 3.0 * v
        p = 19.0 - 14.0 * u + 3.0 * u**2 - 14.0 * v + 6.0 * u * v + 3.0 * v**2
        q = 18.0 - 32.0 * u + 12.0 * u**2 + 48.0 * v - 36.0 * u * v + 27.0 * v**2
        return (1.0 + s**2 * p) * (30.0 + t**2 * q)

    def grad(x):
        u, v = x[..., 0], x[..., 1]
        s, t = u + v + 1.0, 2.0 * u - 3.0 * v
        p = 19.0 - 14.0 * u + 3.0 * u * u - 14.0 * v + 6.0 * u * v + 3.0 * v * v
        q = 18.0 - 32.0 * u + 12.0 * u * u + 48.0 * v - 36.0 * u * v + 27.0 * v * v
        a = 1.0 + s * s * p
        b = 30.0 + t * t * q
        # ∂P/∂x = ∂P/∂y = −14 + 6x + 6y, so ∂A/∂x = ∂A/∂y.
        da = 2.0 * s * p + s * s * (-14.0 + 6.0 * u + 6.0 * v)
        db_du = 4.0 * t * q + t * t * (-32.0 + 24.0 * u - 36.0 * v)
        db_dv = -6.0 * t * q + t * t * (48.0 - 36.0 * u + 54.0 * v)
        grad = np.empty_like(x)
        grad[..., 0] = da * b + a * db_du
        grad[..., 1] = da * b + a * db_dv
        return grad

    return TestFunction(
        name="goldstein_price",
        fn=value,
        dim=2,
        domain=((-2.0, 2.0), (-2.0, 2.0)),
        minima=np.array([[0.0, -1.0]]),
        fmin=3.0,
        analytic_grad=grad,
        description="huge dynamic range, one very sharp global minimum",
    )


# ---------------------------------------------------------------------------------------------
# d-D benchmarks

# Styblinski–Tang per coordinate: the smallest root of d/dx (x⁴ − 16x² + 5x) = 4x³ − 32x + 5,
# by mpmath.findroot at 40 digits (−2.903534027771177095118…; the same as the trigonometric
# closed form of the cubic), rounded to a double; Newton in double precision stays on it. The
# half-value ½(x⁴ − 16x² + 5x) there is −39.166165703771415463….
_STYBLINSKI_TANG_X = -2.903534027771177
_STYBLINSKI_TANG_F1 = -39.166165703771415


@register("styblinski_tang")
def styblinski_tang(dim: int = 2) -> TestFunction:
    """``f(x) = ½ Σ (xᵢ⁴ − 16xᵢ² + 5xᵢ)``: separable, two wells per coordinate, 2ᵈ local minima.

    M. A. Styblinski and T.-S. Tang, "Experiments in nonconvex optimization: stochastic
    approximation with function smoothing and simulated annealing", Neural Networks 3(4), 1990
    (VLSE page ``stybtang``). Global minimum −39.16617·d at xᵢ = −2.903534…, curvature 34.58
    along every coordinate; the other well of each coordinate is at 2.7468 (f₁ = −25.03).
    """
    d = _check_dim(dim, 1)

    def value(x):
        return 0.5 * anp.sum(x**4 - 16.0 * x**2 + 5.0 * x, axis=-1)

    def grad(x):
        return 2.0 * x**3 - 16.0 * x + 2.5

    return TestFunction(
        name="styblinski_tang",
        fn=value,
        dim=d,
        domain=((-5.0, 5.0),) * d,
        minima=np.full((1, d), _STYBLINSKI_TANG_X),
        fmin=d * _STYBLINSKI_TANG_F1,
        analytic_grad=grad,
        params={"dim": d},
        description="two wells per coordinate, the global one at xᵢ = −2.9035",
    )


@register("levy")
def levy(dim: int = 2) -> TestFunction:
    """``f(x) = sin²(πw₁) + Σ_{i<d} (wᵢ−1)² [1 + 10 sin²(πwᵢ + 1)] + (w_d−1)² [1 + sin²(2πw_d)]``,
    with ``wᵢ = 1 + (xᵢ − 1)/4``.

    The form of the VLSE page ``levy`` (Surjanovic & Bingham). Multimodal and non-separable;
    minimum 0 at (1, …, 1). There the Hessian is diagonal: π²/8 + (1 + 10 sin²1)/8 ≈ 2.24 for
    the first coordinate, (1 + 10 sin²1)/8 ≈ 1.01 for the middle ones and 1/8 for the last
    (π²/8 + 1/8 for d = 1).
    """
    d = _check_dim(dim, 1)
    pi = np.pi

    def value(x):
        w = 1.0 + (x - 1.0) / 4.0
        head, last = w[..., :-1], w[..., -1]
        out = anp.sin(pi * w[..., 0]) ** 2
        out = out + (last - 1.0) ** 2 * (1.0 + anp.sin(2.0 * pi * last) ** 2)
        if d > 1:
            out = out + anp.sum(
                (head - 1.0) ** 2 * (1.0 + 10.0 * anp.sin(pi * head + 1.0) ** 2), -1
            )
        return out

    def grad(x):
        w = 1.0 + (x - 1.0) / 4.0
        dw = np.zeros_like(w)  # ∂f/∂w
        dw[..., 0] = pi * np.sin(2.0 * pi * w[..., 0])
        head, last = w[..., :-1], w[..., -1]
        dw[..., :-1] += 2.0 * (head - 1.0) * (1.0 + 10.0 * np.sin(pi * head + 1.0) ** 2) + (
            head - 1.0
        ) ** 2 * (10.0 * pi * np.sin(2.0 * (pi * head + 1.0)))
        dw[..., -1] += 2.0 * (last - 1.0) * (1.0 + np.sin(2.0 * pi * last) ** 2) + (
            last - 1.0
        ) ** 2 * (2.0 * pi * np.sin(4.0 * pi * last))
        return dw / 4.0

    return TestFunction(
        name="levy",
        fn=value,
        dim=d,
        domain=((-10.0, 10.0),) * d,
        minima=np.ones((1, d)),
        fmin=0.0,
        analytic_grad=grad,
        params={"dim": d},
        description="multimodal, non-separable, minimum at (1, …, 1)",
    )


@register("griewank")
def griewank(dim: int = 2) -> TestFunction:
    """``f(x) = Σ xᵢ²/4000 − Π cos(xᵢ/√i) + 1`` (i = 1, …, d): ripples on a very flat bowl.

    A. O. Griewank, "Generalized descent for global optimization", Journal of Optimization
    Theory and Applications 34(1), 1981 (VLSE page ``griewank``). Minimum 0 at the origin, with
    the diagonal Hessian 1/2000 + 1/i there: (1.0005, 0.5005) in 2-D. The usual search box is
    [−600, 600]ᵈ; the plotting domain here is [−10, 10]ᵈ, where the ripples are visible.
    """
    d = _check_dim(dim, 1)
    scale = np.sqrt(np.arange(1.0, d + 1.0))

    def value(x):
        z = x / scale
        # An explicit product: autograd's gradient of ``prod`` divides by the factors.
        prod = anp.cos(z[..., 0])
        for i in range(1, d):
            prod = prod * anp.cos(z[..., i])
        return anp.sum(x**2, axis=-1) / 4000.0 - prod + 1.0

    def grad(x):
        z = x / scale
        cos = np.cos(z)
        # Product of the other cosines, without dividing: prefix × suffix products.
        before = np.ones_like(cos)
        after = np.ones_like(cos)
        before[..., 1:] = np.cumprod(cos[..., :-1], axis=-1)
        after[..., :-1] = np.cumprod(cos[..., :0:-1], axis=-1)[..., ::-1]
        return x / 2000.0 + np.sin(z) / scale * before * after

    return TestFunction(
        name="griewank",
        fn=value,
        dim=d,
        domain=((-10.0, 10.0),) * d,
        minima=np.zeros((1, d)),
        fmin=0.0,
        analytic_grad=grad,
        params={"dim": d},
        description="regular ripples on a very flat bowl",
    )
