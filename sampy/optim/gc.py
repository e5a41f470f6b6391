"""Gradient centralization (GC) and the two ways SAM implementations put it in the ascent.

GC: H. Yong, J. Huang, X. Hua, L. Zhang, "Gradient Centralization: A New Optimization
Technique for Deep Neural Networks", ECCV 2020, arXiv:2004.01461. For a gradient tensor ``G``
with ``ndim ≥ 2`` (torch layout, axis 0 = output row or filter)

    GC(G) = G − mean(G over all axes but 0)

so every output row is made zero-mean; tensors with ``ndim ≤ 1`` (biases, norms) are left
alone. GC is a linear, idempotent orthogonal projection, so ``‖GC(g)‖ ≤ ‖g‖``. On a flat
vector without a ``Partition`` (one 1-D tensor) it is the identity.

Where it enters a SAM step differs between implementations; ``gc_ascent`` names the choice:

- ``"kozistr"`` — pytorch-optimizer's ``use_gc`` (SAM, LookSAM; PR #344): the norm is taken
  *before* centralizing, ``ε = ρ GC(g)/(‖g‖ + eps)``, so ``‖ε‖ = ρ‖GC(g)‖/‖g‖ ≤ ρ``. GC is
  linear, so this is ``GC`` of the rule's ε: ``TransformedAscent(rule, GC,
  on="perturbation")``. Exact for the p = 2 ball; for ASAM (``adaptive=True``) it centralizes
  ``T²g`` where pytorch-optimizer centralizes g inside ``T² g`` — they differ.
- ``"gcsam"`` — M. Hassan, A. Vakanski, B. Zhang, M. Xian, "GCSAM: Gradient Centralized
  Sharpness Aware Minimization", arXiv:2501.11584 (IEEE Access 2025), as its abstract
  describes it: ``ε = ρ GC(g)/‖GC(g)‖`` (``‖ε‖ = ρ``): the rule sees ``GC(g)``.
- ``"off"`` — the ascent is not centralized.

``gc_descent`` (GCSAM's ``GC(g̃)``; ``samgc.py`` of lhchau/sam-hessian) centralizes the direction
handed to the base: the descent stage. pytorch-optimizer centralizes ``g`` in place, so its LookSAM
also projects with ``GC(g)``; here only the named stage changes (the in-place side effect is not
reproduced).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from sampy.optim.hyper import Hyper
from sampy.optim.transforms import Partition, TransformedAscent

GC_ASCENT = ("off", "kozistr", "gcsam")

USE_GC = Hyper("use_gc", False, "gradient centralization of tensors with ndim ≥ 2", kind="bool")
GC_ASCENT_SPEC = Hyper(
    "gc_ascent",
    "kozistr",
    "GC in the ascent: 'kozistr' ε = ρ GC(g)/‖g‖, 'gcsam' ε = ρ GC(g)/‖GC(g)‖, or 'off'",
    kind="choice",
    choices=GC_ASCENT,
)
GC_DESCENT = Hyper("gc_descent", False, "centralize the direction handed to the base", kind="bool")


def centralize(g: np.ndarray, partition: Partition | None = None) -> np.ndarray:
    """``GC`` of every tensor with ``ndim ≥ 2``, per point; other tensors unchanged.

    Returns ``g`` itself when no tensor has two dimensions (no partition, or only biases), so
    ``use_gc`` on a flat vector changes nothing, bit for bit.
    """
    if partition is None:
        return g
    partition.check(np.shape(g)[-1])
    blocks = [
        (start, stop, shape[0])
        for (start, stop), shape in zip(partition.bounds, partition.shapes, strict=True)
        if len(shape) >= 2
    ]
    if not blocks:
        return g
    out = np.array(g, dtype=float, copy=True)
    batch = out.shape[:-1]
    for start, stop, rows in blocks:
        # Row-major storage: the tensor's axis-0 slices are consecutive runs of the block, so
        # "mean over all axes but 0" is the mean of each row of a (rows, rest) view.
        block = out[..., start:stop].reshape(*batch, rows, -1)
        block = block - block.mean(axis=-1, keepdims=True)
        out[..., start:stop] = block.reshape(*batch, stop - start)
    return out


def centralized_ascent(rule: Any, partition: Partition | None, gc_ascent: str) -> Any:
    """The ascent rule with GC placed as ``gc_ascent`` says (``"off"``: the rule itself)."""
    if gc_ascent not in GC_ASCENT:
        raise ValueError(f"gc_ascent must be one of {list(GC_ASCENT)}, got {gc_ascent!r}")
    if gc_ascent == "off":
        return rule
    on = "perturbation" if gc_ascent == "kozistr" else "gradient"
    return TransformedAscent(rule, partial(centralize, partition=partition), on=on)
