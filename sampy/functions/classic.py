"""Classic optimisation test functions, batched over leading axes.

Formulas and usual domains follow the Virtual Library of Simulation Experiments (Surjanovic &
Bingham, https://www.sfu.ca/~ssurjano/) and Jamil & Yang, "A literature survey of benchmark
functions for global optimisation problems", Int. J. Math. Modelling and Numerical
Optimisation 4(2), 2013. Each ``value`` is written with ``autograd.numpy``; each
``value_and_grad`` is the hand-written gradient the optimizers use.
"""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np

from sampy._checks import check_int, check_real
from sampy.functions._base import TestFunction, register


def _check_dim(dim: object, minimum: int) -> int:
    return check_int("dim", dim, minimum)


@register("sphere")
def sphere(dim: int = 2) -> TestFunction:
    """``f(x) = Σ x_i²``: isotropic bowl, minimum 0 at the origin."""
    d = _check_dim(dim, 1)

    def value(x):
        return anp.sum(x**2, axis=-1)

    def grad(x):
        return 2.0 * x

    return TestFunction(
        name="sphere",
        fn=value,
        dim=d,
        domain=((-2.0, 2.0),) * d,
        minima=np.zeros((1, d)),
        fmin=0.0,
        analytic_grad=grad,
        params={"dim": d},
        description="Σ x², a round bowl",
    )


@register("quadratic")
def quadratic(A: object = None, b: object = None) -> TestFunction:
    """``f(x) = ½ xᵀA x − bᵀx`` with a symmetric positive definite ``A``.

    The minimiser is ``A⁻¹b`` with value ``−½ bᵀA⁻¹b``; every SAM quantity has a closed form
    here (``g = Ax − b``, ``g_adv = g + ρ A g/‖g‖``), which is why the tests use it.
    Default ``A = diag(1, 10)``, ``b = 0``.
    """
    A = np.diag([1.0, 10.0]) if A is None else np.array(A, dtype=float)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"A must be a square matrix, got shape {A.shape}")
    if not np.allclose(A, A.T, rtol=0, atol=1e-12 * max(1.0, np.abs(A).max())):
        raise ValueError("A must be symmetric positive definite; it is not symmetric")
    if np.linalg.eigvalsh(A).min() <= 0:
        raise ValueError("A must be symmetric positive definite; it has an eigenvalue <= 0")
    A = 0.5 * (A + A.T)
    d = A.shape[0]
    b = np.zeros(d) if b is None else np.array(b, dtype=float)
    if b.shape != (d,):
        raise ValueError(f"b must have shape ({d},) to match A, got {b.shape}")
    x_star = np.linalg.solve(A, b)

    def value(x):
        return 0.5 * anp.sum(x * anp.dot(x, A), axis=-1) - anp.dot(x, b)

    def grad(x):
        return x @ A - b

    half = max(2.0, 2.0 * float(np.abs(x_star).max()))
    return TestFunction(
        name="quadratic",
        fn=value,
        dim=d,
        domain=tuple((float(c - half), float(c + half)) for c in x_star),
        minima=x_star[None, :],
        fmin=float(-0.5 * b @ x_star),
        analytic_grad=grad,
        params={"A": A.tolist(), "b": b.tolist()},
        description="½ xᵀAx − bᵀx, curvatures = eigenvalues of A",
    )


@register("rosenbrock")
def rosenbrock(dim: int = 2, a: float = 1.0, b: float = 100.0) -> TestFunction:
    """``f(x) = Σ_{i<d} b (x_{i+1} − x_i²)² + (a − x_i)²``: a curved, narrow valley.

    H. H. Rosenbrock, "An automatic method for finding the greatest or least value of a
    function", The Computer Journal 3(3), 1960. Minimum 0 at ``(a, a²)`` for ``d = 2`` and at
    ``(1, …, 1)`` for ``a = 1``.
    """
    d = _check_dim(dim, 2)
    check_real("b", b, 0.0, None, low_open=True)
    check_real("a", a)
    if d > 2 and a != 1.0:
        raise ValueError(f"a must be 1 when dim > 2 (no closed-form minimiser otherwise), got {a}")
    a, b = float(a), float(b)
    minimum = np.array([a, a * a]) if d == 2 else np.ones(d)

    def value(x):
        head, tail = x[..., :-1], x[..., 1:]
        return anp.sum(b * (tail - head**2) ** 2 + (a - head) ** 2, axis=-1)

    def grad(x):
        if d == 2:
            # The 2-D formula without slicing into a zero array: several times faster on
            # the playground's hot path.
            u = x[..., 0]
            valley = x[..., 1] - u * u
            out = np.empty_like(x)
            out[..., 0] = -4.0 * b * u * valley - 2.0 * (a - u)
            out[..., 1] = 2.0 * b * valley
            return out
        head, tail = x[..., :-1], x[..., 1:]
        valley = tail - head * head
        grad = np.zeros_like(x)
        grad[..., :-1] = -4.0 * b * head * valley - 2.0 * (a - head)
        grad[..., 1:] += 2.0 * b * valley
        return grad

    return TestFunction(
        name="rosenbrock",
        fn=value,
        dim=d,
        # The usual (-2, 2) x (-1, 3) box, shifted so that the minimiser (a, a²) stays inside.
        domain=(((a - 3.0, a + 1.0), (a * a - 2.0, a * a + 2.0)) if d == 2 else ((-2.0, 2.0),) * d),
        minima=minimum[None, :],
        fmin=0.0,
        analytic_grad=grad,
        params={"dim": d, "a": a, "b": b},
        description=f"curved valley, b = {b:g}",
    )


@register("rastrigin")
def rastrigin(dim: int = 2, A: float = 10.0) -> TestFunction:
    """``f(x) = A d + Σ (x_i² − A cos 2πx_i)``: a bowl covered with a lattice of local minima.

    L. A. Rastrigin, "Systems of extremal control", Nauka, 1974. Minimum 0 at the origin.
    """
    d = _check_dim(dim, 1)
    check_real("A", A, 0.0, None)
    A = float(A)
    two_pi = 2.0 * np.pi

    def value(x):
        return A * d + anp.sum(x**2 - A * anp.cos(two_pi * x), axis=-1)

    def grad(x):
        return 2.0 * x + (A * two_pi) * np.sin(two_pi * x)

    return TestFunction(
        name="rastrigin",
        fn=value,
        dim=d,
        domain=((-5.12, 5.12),) * d,
        minima=np.zeros((1, d)),
        fmin=0.0,
        analytic_grad=grad,
        params={"dim": d, "A": A},
        description="lattice of local minima on a bowl",
    )


def _safe_sqrt(s):
    # The double-where keeps autograd's gradient finite at s = 0: sqrt is differentiated only
    # at s > 0, and the cone tip gets the subgradient 0.
    positive = s > 0
    return anp.where(positive, anp.sqrt(anp.where(positive, s, 1.0)), 0.0)


@register("ackley")
def ackley(dim: int = 2, a: float = 20.0, b: float = 0.2, c: float = 2 * np.pi) -> TestFunction:
    """``f(x) = −a exp(−b √(mean x²)) − exp(mean cos cx) + a + e``: a hole in a bumpy plate.

    D. H. Ackley, "A connectionist machine for genetic hillclimbing", Kluwer, 1987. Minimum 0
    at the origin, where the function is a cone tip: the gradient there is the subgradient 0
    (a plain autograd of ``√`` would give NaN).
    """
    d = _check_dim(dim, 1)
    check_real("a", a)
    check_real("b", b, 0.0, None, low_open=True)
    check_real("c", c)
    a, b, c = float(a), float(b), float(c)

    def value(x):
        radius = _safe_sqrt(anp.mean(x**2, axis=-1))
        return -a * anp.exp(-b * radius) - anp.exp(anp.mean(anp.cos(c * x), axis=-1)) + a + np.e

    def grad(x):
        radius = np.sqrt(np.mean(x * x, axis=-1))
        cone = a * np.exp(-b * radius)
        waves = np.exp(np.mean(np.cos(c * x), axis=-1))
        with np.errstate(divide="ignore", invalid="ignore"):
            radial = np.where(radius > 0, cone * b / (d * radius), 0.0)
        grad = radial[..., None] * x + (waves * c / d)[..., None] * np.sin(c * x)
        return grad

    return TestFunction(
        name="ackley",
        fn=value,
        dim=d,
        domain=((-5.0, 5.0),) * d,
        minima=np.zeros((1, d)),
        fmin=0.0,
        analytic_grad=grad,
        params={"dim": d, "a": a, "b": b, "c": c},
        description="nearly flat outside, one deep hole at the centre",
    )


# Three of Himmelblau's minimisers have no closed form; these are Newton-refined roots of the
# gradient (|∇f| < 1e-13), checked by the tests.
_HIMMELBLAU_MINIMA = np.array(
    [
        [3.0, 2.0],
        [-2.805118086952745, 3.131312518250573],
        [-3.779310253377747, -3.283185991286170],
        [3.584428340330492, -1.848126526964404],
    ]
)


@register("himmelblau")
def himmelblau() -> TestFunction:
    """``f(x, y) = (x² + y − 11)² + (x + y² − 7)²``: four minima of equal depth 0.

    D. M. Himmelblau, "Applied Nonlinear Programming", McGraw-Hill, 1972. The four minima have
    different curvatures, so "the flattest minimum" depends on the sharpness measure.
    """

    def value(x):
        u, v = x[..., 0], x[..., 1]
        return (u**2 + v - 11.0) ** 2 + (u + v**2 - 7.0) ** 2

    def grad(x):
        u, v = x[..., 0], x[..., 1]
        r1 = u * u + v - 11.0
        r2 = u + v * v - 7.0
        grad = np.empty_like(x)
        grad[..., 0] = 4.0 * u * r1 + 2.0 * r2
        grad[..., 1] = 2.0 * r1 + 4.0 * v * r2
        return grad

    return TestFunction(
        name="himmelblau",
        fn=value,
        dim=2,
        domain=((-5.0, 5.0), (-5.0, 5.0)),
        minima=_HIMMELBLAU_MINIMA.copy(),
        fmin=0.0,
        analytic_grad=grad,
        description="four minima of equal depth and different curvature",
    )
