"""The SAM ascent step in torch: the mirror of ``sampy.optim.perturbation``.

Same functions, same order of operations, but over a list of parameter tensors instead of one
array per point: every norm is **global** over all tensors of all parameter groups (one number
for the whole model), computed with ``torch._foreach_*`` kernels and no host synchronisation
(no ``.item()``, no Python branching on tensor values) on a device; on the CPU, where reading a
value waits for nothing, ``dual_factors`` reads the p = 2 norm as a Python float
(``sampy.torch.host_norms``) and the factors are numbers. On a model split over several devices
(model parallelism) the per-tensor norms are brought to the first tensor's device before they
are combined, and the global factors are copied to each tensor's device before they scale it.
With parameter groups of several dtypes, norms accumulate in the widest of them and never in
less than float32 (``accumulation_dtype``): a float16 norm overflows at 65504 and a bfloat16
one keeps three significant digits.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from sampy.optim.perturbation import dual_norm_exponent
from sampy.torch.foreach_scalars import cpu_dtype, scalar
from sampy.torch.host_norms import host_norms, readable

__all__ = [
    "accumulation_dtype",
    "dual_direction",
    "dual_factors",
    "dual_norm_exponent",
    "lp_norm",
    "norm_ball_factors",
    "norm_ball_perturbation",
    "on_one_device",
    "per_device",
]


def on_one_device(tensors: tuple[Tensor, ...] | list[Tensor]) -> list[Tensor]:
    """The tensors, moved to the first one's device when some live elsewhere (else as they are).

    ``torch.stack`` and arithmetic between tensors need one device; the per-tensor norms of a
    model split over several GPUs live on each parameter's device.
    """
    if not tensors:
        return list(tensors)
    device = tensors[0].device
    if all(t.device == device for t in tensors):
        return list(tensors)
    return [t.to(device) for t in tensors]


def per_device(factor: Tensor | float, tensors: list[Tensor]) -> Tensor | float | list[Tensor]:
    """``factor`` for a ``torch._foreach_*`` call on ``tensors``: itself when it shares their
    device, else one copy on each tensor's device (a 0-dim tensor on one GPU cannot scale a
    tensor on another); a number read on the host (``dual_factors``) as a 0-dim tensor of
    their dtype where they are CPU float32/float64 tensors, else as it is
    (``foreach_scalars.scalar``)."""
    if not isinstance(factor, Tensor):
        return scalar(factor, cpu_dtype(tensors))
    device = factor.device
    if all(t.device == device for t in tensors):
        return factor
    return [factor.to(t.device) for t in tensors]


def accumulation_dtype(tensors: list[Tensor]) -> torch.dtype:
    """The dtype of global norms and inner products over ``tensors``: the widest of their
    dtypes, at least float32 (float16 and bfloat16 tensors are summed in float32)."""
    dtypes = {t.dtype for t in tensors}
    if dtypes == {torch.float32}:  # the common case, without a loop over promote_types
        return torch.float32
    widest = torch.float32
    for dtype in dtypes:
        widest = torch.promote_types(widest, dtype)
    return widest


def _norms(us: list[Tensor], p: float) -> tuple[Tensor, ...]:
    """Per-tensor p-norms, each in ``accumulation_dtype(us)``."""
    dtype = accumulation_dtype(us)
    if all(u.dtype == dtype for u in us):
        return torch._foreach_norm(us, ord=p)
    return torch._foreach_norm(us, ord=p, dtype=dtype)


def _global(norms: tuple[Tensor, ...] | list[Tensor], p: float) -> Tensor:
    """Combine per-tensor p-norms into the p-norm of all tensors together."""
    try:
        stacked = torch.stack(norms)
    except RuntimeError:  # norms on several devices (a model split over GPUs)
        stacked = torch.stack(on_one_device(norms))
    return torch.linalg.vector_norm(stacked, ord=p)


def lp_norm(us: list[Tensor], p: float) -> Tensor:
    """``‖u‖_p`` over all tensors in ``us`` (a 0-dim tensor)."""
    if p == 2 or p == 1 or math.isinf(p):
        return _global(_norms(us, p), p)
    # Scale by the largest entry first so |u|^p cannot overflow for large p.
    top = _global(_norms(us, math.inf), math.inf)
    safe = torch.where(top > 0, top, torch.ones_like(top))
    scaled = torch._foreach_div(us, per_device(safe, us))
    return top * _global(_norms(scaled, p), p)


def dual_factors(
    us: list[Tensor], radii: list[float], eps: float, scratch: dict[Any, Any] | None = None
) -> list[Tensor] | list[float]:
    """``radius / (‖u‖₂ + eps)`` for each radius, the norm over all of ``us``: the p = 2 dual
    direction of a group is its ``u`` times its factor.

    Python floats where ``us`` may be read on the host (plain float32/float64 CPU tensors:
    ``sampy.torch.host_norms``, whose scratch buffer ``scratch`` keeps), so that the factor
    goes into a fused kernel as its ``alpha`` with no 0-dim tensor op on the way; else 0-dim
    tensors on the first tensor's device, never read by the host.
    """
    if readable(us):
        (norm,), _ = host_norms([us], scratch)
        # radius · (1/(‖u‖ + eps)): how torch divides a number by a tensor (the reciprocal,
        # then the product), so that in float64 the device path's factor from the same norm
        # (and davda54's) is this one, bit for bit.
        inverse = 1.0 / (norm + eps)
        return [r * inverse for r in radii]
    guarded = lp_norm(us, 2) + eps
    return [r / guarded for r in radii]


def dual_direction(
    groups: list[list[Tensor]], p: float, radii: list[float], eps: float, inplace: bool = False
) -> list[list[Tensor]]:
    """The maximiser of ``⟨ε, u⟩`` over ``‖ε‖_p ≤ radius``, the norm global over all groups.

    ``groups[i]`` are the tensors of parameter group ``i`` and ``radii[i]`` its radius (ρ is a
    per-group setting, as in davda54/sam; the normalising norm is shared by all groups).
    ``inplace=True`` may overwrite ``groups`` with the result (done for p = 2, SAM's hot path).
    A group may be empty (none of its parameters has a gradient): its direction is empty too
    (``torch._foreach_*`` refuses an empty list).
    """
    us = [u for group in groups for u in group]
    if p == 2:
        factors = dual_factors(us, radii, eps)
        if inplace:
            for g, f in zip(groups, factors, strict=True):
                if g:
                    torch._foreach_mul_(g, per_device(f, g))
            return groups
        return [
            torch._foreach_mul(g, per_device(f, g)) if g else []
            for g, f in zip(groups, factors, strict=True)
        ]
    if math.isinf(p):
        return [
            torch._foreach_mul(torch._foreach_sign(g), r) if g else []
            for g, r in zip(groups, radii, strict=True)
        ]
    if p == 1:
        top = lp_norm(us, math.inf)
        ties = [[(u.abs() == top.to(u.device)).to(u.dtype) for u in g] for g in groups]
        count = _global(torch._foreach_norm([t for g in ties for t in g], ord=1), 1)
        out = []
        for g, t, r in zip(groups, ties, radii, strict=True):
            if not g:
                out.append([])
                continue
            signed = torch._foreach_mul(torch._foreach_sign(g), t)
            out.append(torch._foreach_mul(signed, per_device(r / count, signed)))
        return out
    q = dual_norm_exponent(p)
    qnorm = lp_norm(us, q) + eps
    out = []
    for g, r in zip(groups, radii, strict=True):
        if not g:
            out.append([])
            continue
        ratio = torch._foreach_div(torch._foreach_abs(g), per_device(qnorm, g))
        magnitude = torch._foreach_pow(ratio, q - 1.0)
        out.append(torch._foreach_mul(torch._foreach_mul(torch._foreach_sign(g), magnitude), r))
    return out


def norm_ball_perturbation(
    params: list[list[Tensor]],
    grads: list[list[Tensor]],
    rhos: list[float],
    p: float = 2.0,
    adaptive: list[bool] | None = None,
    eta: list[float] | None = None,
    eps: float = 1e-12,
    inplace: bool = False,
) -> list[list[Tensor]]:
    """SAM's (or, per group, ASAM's) perturbation ε for every parameter tensor.

    Mirrors ``sampy.optim.perturbation.norm_ball_perturbation``: without ``adaptive`` it is
    ``dual_direction(g)``; with it, ``T = |w| + η`` and ``ε = T · dual_direction(T g)``.
    ``inplace=True`` allows the result to be written into ``grads`` (they are consumed).
    """
    adaptive = adaptive or [False] * len(params)
    eta = eta or [0.0] * len(params)
    # One temporary per step, T itself: T g, the direction and T · direction are written
    # into the consumed grads (inplace) or into the one copy T g (on the CPU every fresh
    # tensor of a megabyte costs more in page faults than the arithmetic on it).
    scales = _adaptive_scales(params, adaptive, eta)
    us = []
    for gs, scale in zip(grads, scales, strict=True):
        if scale is None:
            us.append(gs)
        elif inplace:
            torch._foreach_mul_(gs, scale)
            us.append(gs)
        else:
            us.append(torch._foreach_mul(scale, gs))
    # In place where us are the caller's consumed grads or this function's own copies.
    directions = dual_direction(us, p, rhos, eps, inplace=inplace or all(adaptive))
    for d, scale in zip(directions, scales, strict=True):
        if scale is not None:
            torch._foreach_mul_(d, scale)
    return directions


def norm_ball_factors(
    params: list[list[Tensor]],
    grads: list[list[Tensor]],
    rhos: list[float],
    adaptive: list[bool],
    eta: list[float],
    eps: float = 1e-12,
    scratch: dict[Any, Any] | None = None,
) -> list[Tensor] | list[float]:
    """SAM's and ASAM's p = 2 perturbation as ``ε = c_i u`` per group ``i``: the ``c_i``.

    ``u`` is written into the consumed ``grads``: ``g`` itself in a SAM group, ``T² g`` in an
    ASAM group (``T = |w| + η``), and ``c_i = ρ_i / (‖T g‖ + eps)``, the norm over all groups,
    so that ``c_i u`` is ``norm_ball_perturbation``'s ε (Python floats on the CPU, as from
    ``dual_factors``, whose scratch ``scratch`` keeps). The caller forms ``w + c_i u`` in
    one pass (``SharpnessAware.first_step``); ``ε`` itself is never written.
    """
    scales = _adaptive_scales(params, adaptive, eta)
    for gs, scale in zip(grads, scales, strict=True):
        if scale is not None:
            torch._foreach_mul_(gs, scale)  # T g, whose norm sets the radius
    factors = dual_factors([u for gs in grads for u in gs], rhos, eps, scratch)
    for gs, scale in zip(grads, scales, strict=True):
        if scale is not None:
            torch._foreach_mul_(gs, scale)  # T (T g): ε = c T² g
    return factors


def _adaptive_scales(
    params: list[list[Tensor]], adaptive: list[bool], eta: list[float]
) -> list[list[Tensor] | None]:
    """ASAM's ``T = |w| + η`` for each adaptive group with parameters (else None)."""
    scales: list[list[Tensor] | None] = []
    for ps, a, e in zip(params, adaptive, eta, strict=True):
        scale = None
        if a and ps:
            scale = torch._foreach_abs(ps)
            if e != 0:  # |w| + 0 is |w|: no pass for the default η
                torch._foreach_add_(scale, e)
        scales.append(scale)
    return scales
