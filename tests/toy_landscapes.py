"""Landscapes the book's chapters build by hand, shared by their tests.

``PRODUCT``: ``L(w) = (w₀w₁ − 1)²``, the loss of a two-layer scalar network, whose minima form
the hyperbola ``w₀w₁ = 1``; rescaling ``(w₀, w₁) → (c w₀, w₁/c)`` leaves it unchanged, so it is
the book's example of a rescaling symmetry (chapters "Deriving SAM", "SAM on toy landscapes"
and "What SAM provably does").
"""

from __future__ import annotations

import numpy as np

from sampy.functions import TestFunction


def product_loss(w: np.ndarray) -> np.ndarray:
    """``(w₀w₁ − 1)²`` over the last axis."""
    return (w[..., 0] * w[..., 1] - 1.0) ** 2


def product_grad(w: np.ndarray) -> np.ndarray:
    """``2(w₀w₁ − 1)(w₁, w₀)``."""
    r = w[..., 0] * w[..., 1] - 1.0
    return 2.0 * r[..., None] * w[..., ::-1]


PRODUCT = TestFunction(
    name="product",
    fn=product_loss,
    dim=2,
    domain=((0.0, 3.0), (0.0, 2.4)),
    minima=np.array([[1.0, 1.0]]),
    fmin=0.0,
    analytic_grad=product_grad,
)
