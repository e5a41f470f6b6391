"""Global norms and inner products of CPU tensors, read on the host as Python floats.

On the CPU there is no device to wait for (``sampy.torch.host_reads``), so a rule's global
norm is best read at once: the scalar arithmetic that follows (``ρ/(‖g‖ + eps)``, GSAM's
projection) is then Python arithmetic on floats, where every 0-dim tensor op costs microseconds,
and the factor goes straight into a fused kernel as its ``alpha``. The per-tensor pieces are
computed by torch in the tensors' dtype and combined in float64.

A deep model has many small tensors, and a kernel per small tensor costs more than the
arithmetic on it: the small tensors are first flattened into one scratch buffer (kept between
steps in a dict the caller owns) whose Gram matrix gives all their pieces in one call.

Every function here expects plain CPU tensors of one dtype, float32 or float64
(``readable``); the callers keep 0-dim tensors on the device for anything else.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from sampy.torch import host_reads
from sampy.torch.foreach_scalars import cpu_dtype

__all__ = ["FLAT_BELOW", "GATHER_FROM", "host_norms", "readable"]

FLAT_BELOW = 1 << 13
"""Tensors with fewer elements than this are gathered into one buffer before a reduction: below
it, a kernel call per tensor costs more than copying the tensor (a 20-layer MLP of 64 units has
40 such tensors)."""

GATHER_FROM = {1: 8, 2: 2}
"""How many small tensors of one list (of two) are worth gathering for a norm (a norm and an
inner product): in ``_foreach_norm`` a small tensor costs little, a ``vdot`` of its own more
than the gathering."""


def readable(tensors: list[Tensor]) -> bool:
    """Whether ``host_norms`` may read these tensors: some, all plain CPU tensors (and
    ``host_reads`` allows reading them), of one dtype, float32 or float64."""
    return bool(tensors) and host_reads.READ_CPU_VALUES and cpu_dtype(tensors) is not None


def host_norms(
    lists: list[list[Tensor]], scratch: dict[Any, Any] | None = None
) -> tuple[list[float], float]:
    """The 2-norm of each list (one or two, aligned, ``readable``) and, of two, their inner
    product, as Python floats (the pieces combined in float64).

    A large tensor's pieces come from one ``_foreach_norm`` over all lists and one ``vdot``
    per pair; the small ones are flattened into the rows of one scratch matrix (kept in
    ``scratch`` for the next call; a fresh one without), whose Gram matrix is one ``mm``. The
    norms are ``hypot``s of the pieces: a single tensor's norm is passed on as torch computed
    it. One list without small tensors is combined as ``perturbation.lp_norm`` combines it
    (one ``vector_norm`` of the pieces): the same float.
    """
    k, first = len(lists), lists[0]
    small = [i for i, x in enumerate(first) if 0 < x.numel() < FLAT_BELOW and x.dim()]
    if len(small) < GATHER_FROM[k]:
        small = []
    if k == 1 and not small:  # combined as lp_norm does: its float, bit for bit
        norms = torch._foreach_norm(first)
        return [torch.linalg.vector_norm(torch.stack(norms)).item()], 0.0
    gathered = set(small)
    big = [i for i in range(len(first)) if i not in gathered]
    pieces: list[list[float]] = [[] for _ in range(k)]
    cross = 0.0
    if big:
        columns = [[xs[i] for i in big] for xs in lists]
        norms = torch._foreach_norm([x for xs in columns for x in xs])
        dots = []
        if k == 2:
            dots = [
                torch.vdot(x.reshape(-1), y.reshape(-1))
                for x, y in zip(columns[0], columns[1], strict=True)
            ]
        values = torch.stack([*norms, *dots]).tolist()
        m = len(big)
        for j in range(k):
            pieces[j] = values[j * m : (j + 1) * m]
        cross = sum(values[k * m :])
    if small:
        n = sum(first[i].numel() for i in small)
        out, rows, columns_t = _gram_scratch(scratch, k, n, first[0].dtype)
        _flatten_into([xs[i] for xs in lists for i in small], out)
        gram = torch.mm(rows, columns_t).tolist()
        for j in range(k):
            pieces[j].append(math.sqrt(gram[j][j]))
        if k == 2:
            cross += gram[0][1]
    return [math.hypot(*p) for p in pieces], cross


def _gram_scratch(
    scratch: dict[Any, Any] | None, k: int, n: int, dtype: torch.dtype
) -> tuple[Tensor, Tensor, Tensor]:
    """A CPU scratch matrix of ``k`` rows of ``n``: as one row ``(1, kn)`` (to flatten into), as
    its rows ``(k, n)`` and as their transpose ``(n, k)``; kept with the views from call to
    call in ``scratch`` (a view costs a call, as the kernel of a small tensor does)."""
    if scratch is None:
        rows = torch.empty((k, n), dtype=dtype)
        return rows.view(1, k * n), rows, rows.t()
    key = ("gram", k, dtype)
    views = scratch.get(key)
    if views is None or views[1].shape[1] != n:
        rows = torch.empty((k, n), dtype=dtype)
        views = scratch[key] = (rows.view(1, k * n), rows, rows.t())
    return views


def _flatten_into(tensors: list[Tensor], out: Tensor) -> None:
    """The tensors flattened one after the other into ``out`` (shape ``(1, n)``), in one call."""
    if hasattr(torch, "_chunk_cat"):  # torch >= 2.4: flattens and concatenates at once
        torch._chunk_cat(tensors, 0, 1, out=out)
    else:
        torch.cat([t.reshape(-1) for t in tensors], out=out.view(-1))
