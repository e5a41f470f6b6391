"""Gradient clipping with Keras semantics: per variable, by value, by global norm.

Keras 3 ``keras.optimizers.Optimizer`` (keras-team/keras @ 001750db,
``keras/src/optimizers/base_optimizer.py``), per point:

- ``clipnorm=c`` — **per variable** (per tensor of the ``Partition``):
  ``g⁽ᵏ⁾ ← (g⁽ᵏ⁾ · c) / max(‖g⁽ᵏ⁾‖, c)``; a zero tensor stays zero. Without a partition the
  point is one tensor and this is global-norm clipping.
- ``clipvalue=v`` — ``g ← clip(g, −v, v)`` coordinate by coordinate.
- ``global_clipnorm=c`` — ``G = ‖g‖`` over all tensors; ``g ← g · c · min(1/G, 1/c)``, and
  ``+ (G − G)`` makes the scale NaN when G is inf or NaN (Keras does this on purpose).
- At most one of the three (Keras raises ``ValueError``; so does ``check_one_clip``).

Keras' ``c · min(1/G, 1/c)`` is exactly the identity only up to one rounding (``c · (1/c)``
need not be 1). torch's ``clip_grad_norm_`` (``clip_by_global_norm(..., convention="torch")``,
which WSAM's ``max_norm`` uses) scales by ``min(1, c/(G + 1e-6))``: exactly the identity while
``G + 1e-6 ≤ c``, but a gradient with ``c − 1e-6 < G`` ends slightly *below* c (``c·G/(G +
1e-6)``).

Where clipping sits in a SAM step is a separate choice (``clip_stage``): the direction handed
to the base (``"descent"``, as the official SAM code, google-research/sam @ dae9904c), the
gradient the ascent rule sees (``"ascent"``), or every gradient the optimizer sees (``"both"``,
as the official WSAM code, dlrover @ 19e5d790). A global
rescaling of the first gradient is normalised away in ε (davda54/sam #32); per-tensor and
per-value clipping change ε's direction.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from sampy.optim.hyper import Hyper
from sampy.optim.perturbation import per_point_dot
from sampy.optim.transforms import Partition, Transform

CLIP_STAGES = ("descent", "both", "ascent")

CLIPNORM = Hyper(
    "clipnorm",
    None,
    "clip each tensor to this norm (Keras, per variable; None = off)",
    0.0,
    None,
    low_open=True,
)
CLIPVALUE = Hyper(
    "clipvalue", None, "clip every coordinate to [−v, v] (None = off)", 0.0, None, low_open=True
)
GLOBAL_CLIPNORM = Hyper(
    "global_clipnorm",
    None,
    "clip the whole gradient to this norm (Keras; None = off)",
    0.0,
    None,
    low_open=True,
)
CLIP_STAGE = Hyper(
    "clip_stage",
    "descent",
    "which gradients are clipped: the direction to the base, every gradient, or the ascent's",
    kind="choice",
    choices=CLIP_STAGES,
)


def _norm(g: np.ndarray) -> np.ndarray:
    return np.sqrt(per_point_dot(g, g))


def _clip_tensor(g: np.ndarray, clipnorm: float) -> np.ndarray:
    # Keras' operation order: multiply first, then divide by max(‖g‖, c).
    return (g * clipnorm) / np.maximum(_norm(g), clipnorm)


def clip_by_norm(g: np.ndarray, clipnorm: float, partition: Partition | None = None) -> np.ndarray:
    """Keras ``clipnorm``: every tensor scaled to norm at most ``clipnorm``, per point."""
    if partition is None:
        return _clip_tensor(g, clipnorm)
    partition.check(np.shape(g)[-1])
    out = np.empty(np.shape(g), dtype=float)
    for start, stop in partition.bounds:
        out[..., start:stop] = _clip_tensor(g[..., start:stop], clipnorm)
    return out


def clip_by_value(g: np.ndarray, clipvalue: float) -> np.ndarray:
    """Keras ``clipvalue``: every coordinate clipped to ``[−v, v]``."""
    return np.clip(g, -clipvalue, clipvalue)


def clip_by_global_norm(
    g: np.ndarray, global_clipnorm: float, convention: str = "keras"
) -> np.ndarray:
    """The whole gradient scaled to norm at most ``global_clipnorm``, per point.

    ``convention="keras"``: ``g · (c · min(1/G, 1/c) + (G − G))`` (NaN for an infinite G);
    ``"torch"``: ``torch.nn.utils.clip_grad_norm_``'s ``g · min(1, c/(G + 1e-6))``.
    """
    if convention not in ("keras", "torch"):
        raise ValueError(f"convention must be 'keras' or 'torch', got {convention!r}")
    norm = _norm(g)
    if convention == "torch":
        return g * np.minimum(1.0, global_clipnorm / (norm + 1e-6))
    with np.errstate(divide="ignore", invalid="ignore"):  # G = 0 gives 1/G = inf: scale 1
        scale = global_clipnorm * np.minimum(1.0 / norm, 1.0 / global_clipnorm)
        scale = scale + (norm - norm)
    return g * scale


def check_one_clip(
    clipnorm: float | None, clipvalue: float | None, global_clipnorm: float | None
) -> None:
    """Keras' rule: at most one of ``clipnorm``, ``clipvalue``, ``global_clipnorm``."""
    given = {
        name: value
        for name, value in (
            ("clipnorm", clipnorm),
            ("clipvalue", clipvalue),
            ("global_clipnorm", global_clipnorm),
        )
        if value is not None
    }
    if len(given) > 1:
        shown = ", ".join(f"{name}={value!r}" for name, value in given.items())
        raise ValueError(
            f"only one of clipnorm, clipvalue and global_clipnorm can be set (as in Keras), "
            f"got {shown}"
        )


def clip_transform(
    partition: Partition | None = None,
    clipnorm: float | None = None,
    clipvalue: float | None = None,
    global_clipnorm: float | None = None,
) -> Transform | None:
    """The one clipping transformation the knobs ask for (``None`` when none is set)."""
    check_one_clip(clipnorm, clipvalue, global_clipnorm)
    if clipnorm is not None:
        return partial(clip_by_norm, clipnorm=clipnorm, partition=partition)
    if clipvalue is not None:
        return partial(clip_by_value, clipvalue=clipvalue)
    if global_clipnorm is not None:
        return partial(clip_by_global_norm, global_clipnorm=global_clipnorm)
    return None
