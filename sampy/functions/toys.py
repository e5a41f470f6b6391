"""Toy landscapes built to show what SAM does: minima of equal depth and different sharpness."""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np

from sampy._checks import check_real
from sampy.functions._base import TestFunction, register

# Critical points of f(x, 0) = −exp(−(x−2)²) − exp(−x²) for the default widths (Newton-refined,
# |∇f| < 1e-16). The function is symmetric under x ↦ 2 − x on the line y = 0, so the two minima
# have exactly the same depth; only the y-curvature differs (≈ 199.7 at the sharp one, ≈ 6.33 at
# the flat one).
_SHARP_X = 0.04249597592273126


@register("sharp_flat")
def sharp_flat(sharpness: float = 100.0) -> TestFunction:
    """``f(x, y) = −exp(−(x−2)² − y²) − exp(−(x² + s y²))``, ``s = sharpness`` (default 100).

    Two minima of equal depth (−1.01987): a flat one near (1.96, 0) and, for ``s > 1``, a sharp
    one near (0.04, 0) that is narrow in ``y``. The toy of the optax SAM example notebook
    (google-deepmind/optax, ``examples/sam.ipynb``); from (−0.4, −0.4) gradient descent
    settles in the sharp minimum and SAM with ρ = 0.1 in the flat one.

    The x-positions of the minima do not depend on ``s`` (on ``y = 0`` the ``s`` term vanishes),
    so the minimisers are known for every ``s``.
    """
    check_real("sharpness", sharpness, 0.0, None, low_open=True)
    s = float(sharpness)

    def value(x):
        u, v = x[..., 0], x[..., 1]
        return -anp.exp(-((u - 2.0) ** 2) - v**2) - anp.exp(-(u**2 + s * v**2))

    def grad(x):
        u, v = x[..., 0], x[..., 1]
        flat = np.exp(-((u - 2.0) ** 2) - v * v)
        sharp = np.exp(-(u * u + s * v * v))
        grad = np.empty_like(x)
        grad[..., 0] = 2.0 * (u - 2.0) * flat + 2.0 * u * sharp
        grad[..., 1] = 2.0 * v * flat + 2.0 * s * v * sharp
        return grad

    minima = np.array([[_SHARP_X, 0.0], [2.0 - _SHARP_X, 0.0]])
    fmin = float(value(minima[0]))
    return TestFunction(
        name="sharp_flat",
        fn=value,
        dim=2,
        domain=((-1.0, 3.0), (-1.0, 1.0)),
        minima=minima,
        fmin=fmin,
        analytic_grad=grad,
        minima_labels=("sharp", "flat"),
        params={"sharpness": s},
        description="one sharp and one flat minimum of equal depth",
    )
