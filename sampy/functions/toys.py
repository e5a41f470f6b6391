"""Toy landscapes built to show what SAM does: minima of equal depth and different sharpness."""

from __future__ import annotations

import autograd
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


# ---------------------------------------------------------------------------------------------
# Two isotropic Gaussian wells with chosen depths and widths

_SHARP_CENTRE = (-1.0, 0.0)
_FLAT_CENTRE = (1.5, 0.0)


def _check_positive_finite(name: str, value: object) -> float:
    check_real(name, value, 0.0, np.inf, low_open=True, high_open=True)
    return float(value)


def sharp_flat_wells_minima(
    depth_sharp: float = 1.0,
    depth_flat: float = 1.0,
    width_sharp: float = 0.1,
    width_flat: float = 1.0,
) -> tuple[np.ndarray, tuple[str, ...], np.ndarray]:
    """Every local minimum of ``sharp_flat_wells``: ``(points (k, 2), labels, values (k,))``.

    ``k`` is 1 or 2: a well that the other one swamps has no minimum of its own. A minimum is
    labelled ``"sharp"`` or ``"flat"`` after the well it belongs to (the left one is the sharp
    well's when there are two; a lone minimum goes to the well it is nearer to, in units of
    that well's width).

    Both wells are round and centred on the x-axis, so every critical point lies on it: at
    ``y ≠ 0`` the y-component of the gradient, ``2y (a_s/w_s² + a_f/w_f²)``, is not zero. On
    the axis ``g(u) = f(u, 0)`` decreases left of the sharp centre and increases right of the
    flat one, so the minima are the sign changes (− to +) of ``g'`` in [−1, 1.5]. Each one is
    bracketed on a grid (fine near each centre, where a narrow well's minimum sits within
    ``w/√2`` of it) and refined by Newton's method with the autograd Hessian, safeguarded by
    bisection, to full double precision.
    """
    d_s = _check_positive_finite("depth_sharp", depth_sharp)
    d_f = _check_positive_finite("depth_flat", depth_flat)
    w_s = _check_positive_finite("width_sharp", width_sharp)
    w_f = _check_positive_finite("width_flat", width_flat)
    value, grad = _sharp_flat_wells(d_s, d_f, w_s, w_f)
    (lo_c, _), (hi_c, _) = _SHARP_CENTRE, _FLAT_CENTRE
    hessian = autograd.hessian(value)

    def slope(u: float) -> float:
        return float(grad(np.array([u, 0.0]))[0])

    # One width beyond each centre the slope is certainly non-zero (− on the left, + on the
    # right), so a minimum exactly at a centre (the other well's pull underflows to 0) is still
    # bracketed.
    grid = np.concatenate(
        [
            np.linspace(lo_c, hi_c, 2001),
            lo_c + w_s * np.linspace(-1.0, 8.0, 901),
            hi_c - w_f * np.linspace(-1.0, 8.0, 901),
        ]
    )
    grid = np.unique(np.clip(grid, lo_c - w_s, hi_c + w_f))
    points = np.stack([grid, np.zeros_like(grid)], axis=-1)
    signs = np.sign(grad(points)[:, 0])
    # Sign changes − → + of g', or − → 0 → + (a root exactly on the grid). A run of several
    # zeros is a plateau where both wells underflow (it hides a maximum), not a minimum.
    falls = signs[1:-1] < 0
    lands = (signs[1:-1] == 0) & (signs[:-2] < 0)
    brackets = np.flatnonzero((falls | lands) & (signs[2:] > 0)) + 1
    found = []
    for i in brackets:
        lo, hi = float(grid[i]), float(grid[i + 1])
        u = lo if signs[i] == 0 else 0.5 * (lo + hi)
        for _ in range(200):
            g = slope(u)
            if g == 0.0:
                break
            if g < 0:
                lo = u
            else:
                hi = u
            curvature = float(hessian(np.array([u, 0.0]))[0, 0])
            step = g / curvature if curvature > 0 else np.inf
            new = u - step
            if new == u:  # converged: the Newton step is below one ulp
                break
            if not lo <= new <= hi:  # safeguard: bisect
                new = 0.5 * (lo + hi)
                if new in (u, lo, hi):
                    break
            u = new
        point = np.array([u, 0.0])
        # A strict minimum only (not the edge of a numerically flat plateau between two far,
        # narrow wells): both curvatures positive.
        if np.linalg.eigvalsh(hessian(point)).min() > 0:
            found.append(point)
    minima = np.array(found)
    if len(found) == 2:
        labels = ("sharp", "flat")
    else:
        (u, _), *_ = found
        near_sharp = abs(u - lo_c) / w_s <= abs(u - hi_c) / w_f
        labels = ("sharp",) if near_sharp else ("flat",)
    return minima, labels, np.asarray(value(minima))


def _sharp_flat_wells(d_s: float, d_f: float, w_s: float, w_f: float):
    c_s, c_f = np.array(_SHARP_CENTRE), np.array(_FLAT_CENTRE)

    def value(x):
        r_s = anp.sum((x - c_s) ** 2, axis=-1)
        r_f = anp.sum((x - c_f) ** 2, axis=-1)
        return -d_s * anp.exp(-r_s / w_s**2) - d_f * anp.exp(-r_f / w_f**2)

    def grad(x):
        a_s = d_s * np.exp(-np.sum((x - c_s) ** 2, axis=-1) / w_s**2)
        a_f = d_f * np.exp(-np.sum((x - c_f) ** 2, axis=-1) / w_f**2)
        return (2.0 * a_s / w_s**2)[..., None] * (x - c_s) + (2.0 * a_f / w_f**2)[..., None] * (
            x - c_f
        )

    return value, grad


@register("sharp_flat_wells")
def sharp_flat_wells(
    depth_sharp: float = 1.0,
    depth_flat: float = 1.0,
    width_sharp: float = 0.1,
    width_flat: float = 1.0,
) -> TestFunction:
    """``f(x) = −d_s exp(−‖x − c_s‖²/w_s²) − d_f exp(−‖x − c_f‖²/w_f²)``, two round wells.

    Our own construction (not taken from a source), the 2-D version of the "narrow deep well
    plus wide shallow well" sketch: ``c_s = (−1, 0)``, ``c_f = (1.5, 0)``; depths ``d_s, d_f``
    and widths ``w_s, w_f`` are the parameters (slider material). Each isolated well has the
    curvature ``2d/w²`` in every direction (200 and 2 by default).

    The wells overlap a little, so the minima are near, not exactly at, the centres: they are
    computed at construction (``sharp_flat_wells_minima``, Newton's method to full precision).
    ``minima`` and ``fmin`` hold the global minimum only (both wells' minima when they have
    the same depth to 1e-13); by default the sharp well is the deeper one (−1.00193 at
    (−0.99995, 0), against −1 at (1.5, 0)), since the wide flat well still reaches it.
    ``sharp_flat_wells_minima`` lists every local minimum with its label.
    """
    minima, labels, values = sharp_flat_wells_minima(
        depth_sharp, depth_flat, width_sharp, width_flat
    )
    d_s, d_f, w_s, w_f = (float(p) for p in (depth_sharp, depth_flat, width_sharp, width_flat))
    value, grad = _sharp_flat_wells(d_s, d_f, w_s, w_f)
    fmin = float(values.min())
    keep = values <= fmin + 1e-13
    return TestFunction(
        name="sharp_flat_wells",
        fn=value,
        dim=2,
        domain=(
            (_SHARP_CENTRE[0] - max(1.0, 2.0 * w_s), _FLAT_CENTRE[0] + max(2.0, 2.0 * w_f)),
            (-max(2.0, 2.0 * w_s, 2.0 * w_f), max(2.0, 2.0 * w_s, 2.0 * w_f)),
        ),
        minima=minima[keep],
        fmin=fmin,
        analytic_grad=grad,
        minima_labels=tuple(label for label, k in zip(labels, keep, strict=True) if k),
        params={
            "depth_sharp": d_s,
            "depth_flat": d_f,
            "width_sharp": w_s,
            "width_flat": w_f,
        },
        description="a narrow well and a wide well; depths and widths are parameters",
    )
