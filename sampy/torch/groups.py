"""Lists of tensors per parameter group: the vocabulary the torch rules are written in.

A rule sees its tensors as ``Groups`` (one list per parameter group, only the parameters that
have a gradient). Norms and inner products are global over all groups (one number for the
whole model) and stay on the device; on a model split over several devices the per-tensor
pieces are brought to the first tensor's device before they are combined
(``sampy.torch.perturbation.on_one_device``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from sampy.torch.dtensors import is_dtensor, replicated
from sampy.torch.perturbation import (
    accumulation_dtype,
    dual_direction,
    lp_norm,
    on_one_device,
    per_device,
)
from sampy.torch.sharpness_aware import Groups, RuleContext

__all__ = [
    "Buffers",
    "Elementwise",
    "Scalar",
    "factor_for",
    "flat",
    "global_dot",
    "global_norm",
    "norms_and_dot",
    "radii",
    "regroup",
    "unit",
]

Scalar = float | Tensor
"""A global number: a Python float where the tensors live on the CPU (read there at no cost),
else a 0-dim tensor on the first tensor's device (never read by the host)."""

FLAT_BELOW = 1 << 13
"""Tensors with fewer elements than this are gathered into one buffer before a reduction: below
it, a kernel call per tensor costs more than copying the tensor (a 20-layer MLP of 64 units has
40 such tensors)."""


def flat(groups: Groups) -> list[Tensor]:
    """All tensors of all groups in one list."""
    return [t for ts in groups for t in ts]


def regroup(tensors: list[Tensor], like: Groups) -> Groups:
    """Split a flat list back into groups shaped like ``like``."""
    out, i = [], 0
    for ts in like:
        out.append(tensors[i : i + len(ts)])
        i += len(ts)
    return out


def global_dot(a: list[Tensor], b: list[Tensor]) -> Tensor:
    """``⟨a, b⟩`` over all tensors (a 0-dim tensor on the first tensor's device, in
    ``accumulation_dtype(a)``)."""
    if not a:
        return torch.zeros(())
    dtype = accumulation_dtype(a)
    if any(x.dtype != dtype for x in a):  # a narrower group: its products summed in ``dtype``
        a, b = [x.to(dtype) for x in a], [y.to(dtype) for y in b]
    # A sharded DTensor (FSDP2) cannot be flattened without gathering it; its elementwise
    # product and sum are reductions across the ranks instead.
    dots = [
        (x * y).sum() if is_dtensor(x) else torch.vdot(x.reshape(-1), y.reshape(-1))
        for x, y in zip(a, b, strict=True)
    ]
    return replicated(torch.stack(on_one_device(dots)).sum())


def global_norm(a: list[Tensor]) -> Tensor:
    """``‖a‖₂`` over all tensors (a 0-dim tensor on the first tensor's device)."""
    if not a:
        return torch.zeros(())
    return lp_norm(a, 2)


def norms_and_dot(
    a: list[Tensor], b: list[Tensor], buffers: Buffers | None = None
) -> tuple[Scalar, Scalar, Scalar]:
    """``(‖a‖₂, ‖b‖₂, ⟨a, b⟩)`` over all tensors, in one sweep of calls instead of three.

    The values of ``global_norm(a)``, ``global_norm(b)`` and ``global_dot(a, b)``. On the CPU
    they are Python floats: one call reads the per-tensor pieces, which are summed in float64,
    and the scalar arithmetic that follows costs no tensor op (each costs microseconds); the
    many small tensors are first gathered into one scratch buffer of ``buffers`` (a fresh one
    without), whose Gram matrix gives their three pieces in one call. Elsewhere (an accelerator,
    DTensors) they are 0-dim tensors, as from the three functions, and the host reads nothing.
    """
    if not a:
        return 0.0, 0.0, 0.0
    if not _on_host(a, b):
        return global_norm(a), global_norm(b), global_dot(a, b)
    dtype = a[0].dtype
    if (
        any(x.dtype != dtype for x in a)
        or any(y.dtype != dtype for y in b)
        or dtype
        not in (
            torch.float32,
            torch.float64,
        )
    ):  # a narrower or mixed group: the pieces in accumulation_dtype, as the three do
        pieces = torch.stack([global_norm(a), global_norm(b), global_dot(a, b)])
        na, nb, ab = pieces.tolist()
        return na, nb, ab
    big, small = [], []
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        (small if 0 < x.numel() < FLAT_BELOW and x.dim() and y.dim() else big).append(i)
    aa = bb = ab = 0.0
    if big:
        xs, ys = [a[i] for i in big], [b[i] for i in big]
        norms = torch._foreach_norm(xs + ys)
        dots = [torch.vdot(x.reshape(-1), y.reshape(-1)) for x, y in zip(xs, ys, strict=True)]
        values = torch.stack([*norms, *dots]).tolist()
        k = len(big)
        aa = sum(v * v for v in values[:k])
        bb = sum(v * v for v in values[k : 2 * k])
        ab = sum(values[2 * k :])
    if small:
        n = sum(a[i].numel() for i in small)
        out, rows, columns = _gram_scratch(buffers, n, dtype)
        _flatten_into([a[i] for i in small] + [b[i] for i in small], out)
        (gaa, gab), (_, gbb) = torch.mm(rows, columns).tolist()
        aa, bb, ab = aa + gaa, bb + gbb, ab + gab
    return math.sqrt(aa), math.sqrt(bb), ab


def factor_for(x: Scalar, tensors: list[Tensor]) -> float | Tensor | list[Tensor]:
    """A global number as the scalar argument of a ``torch._foreach_*`` call on ``tensors``."""
    return x if isinstance(x, float) else per_device(x, tensors)


def _on_host(a: list[Tensor], b: list[Tensor]) -> bool:
    """Whether every tensor is a plain CPU tensor (no subclass such as a DTensor)."""
    return all(type(x) is Tensor and x.is_cpu for x in a) and all(
        type(y) is Tensor and y.is_cpu for y in b
    )


def _gram_scratch(
    buffers: Buffers | None, n: int, dtype: torch.dtype
) -> tuple[Tensor, Tensor, Tensor]:
    """A CPU scratch matrix of two rows of ``n``: as one row ``(1, 2n)`` (to flatten into), as
    its rows ``(2, n)`` and as their transpose ``(n, 2)``; kept with the views from step to step
    (a view costs a call, as the kernel of a small tensor does)."""
    if buffers is None:
        rows = torch.empty((2, n), dtype=dtype)
        return rows.view(1, 2 * n), rows, rows.t()
    found = buffers.__dict__.setdefault("_buffers", {})
    key = ("norms_and_dot", dtype)
    views = found.get(key)
    if views is None or views[1].shape[1] != n:
        rows = torch.empty((2, n), dtype=dtype)
        views = found[key] = (rows.view(1, 2 * n), rows, rows.t())
    return views


def _flatten_into(tensors: list[Tensor], out: Tensor) -> None:
    """The tensors flattened one after the other into ``out`` (shape ``(1, n)``), in one call."""
    if hasattr(torch, "_chunk_cat"):  # torch >= 2.4: flattens and concatenates at once
        torch._chunk_cat(tensors, 0, 1, out=out)
    else:
        torch.cat([t.reshape(-1) for t in tensors], out=out.view(-1))


def radii(ctx: RuleContext) -> list[float]:
    """The per-group radius ρ."""
    return [group["rho"] for group in ctx.groups]


def unit(vs: Groups, rhos: list[float], eps: float, inplace: bool = False) -> Groups:
    """``ρ v/(‖v‖ + eps)`` per group, the norm global over all groups."""
    if not flat(vs):
        return vs
    return dual_direction(vs, 2.0, rhos, eps, inplace=inplace)


class Buffers:
    """Scratch tensors a rule reuses from step to step (a mixin).

    On the CPU a fresh tensor of a megabyte costs some 230 page faults, several times the
    arithmetic done on it (torch's CPU allocator hands large blocks back to the system), so a
    rule that makes three temporaries per step spends most of its time there. The buffers are
    neither state nor saved: a copy or a pickle of the rule starts without them. They are kept
    for CPU tensors only: on an accelerator the caching allocator reuses freed blocks at no
    such cost, and buffers kept between steps would only raise the memory a model can use
    (the checkpoint family's concatenations are several model-sized tensors).
    """

    def buffer(self, name: str, like: Tensor, dtype: torch.dtype | None = None) -> Tensor:
        """A scratch tensor shaped like ``like`` (uninitialised), kept for the next step (a
        tensor subclass, such as a DTensor, gets a fresh one of its kind)."""
        dtype = like.dtype if dtype is None else dtype
        if type(like) is not Tensor:
            return torch.empty_like(like, dtype=dtype)
        return self._scratch(name, like.shape, dtype, like.device)

    def buffers_like(self, name: str, tensors: list[Tensor]) -> list[Tensor]:
        """Scratch tensors shaped like ``tensors`` (uninitialised), kept for the next step."""
        buffers = self.__dict__.setdefault("_buffers", {})
        found = buffers.get(name)
        if (
            found is None
            or len(found) != len(tensors)
            or any(
                type(t) is not Tensor
                or b.shape != t.shape
                or b.dtype != t.dtype
                or b.device != t.device
                for b, t in zip(found, tensors, strict=True)
            )
        ):
            found = buffers[name] = [torch.empty_like(t) for t in tensors]
            if any(type(t) is not Tensor or t.device.type != "cpu" for t in tensors):
                del buffers[name]  # DTensors, accelerators: fresh ones each time
        return found

    def _scratch(self, name: str, shape: Any, dtype: torch.dtype, device: torch.device) -> Tensor:
        if torch.device(device).type != "cpu":
            return torch.empty(shape, dtype=dtype, device=device)
        buffers = self.__dict__.setdefault("_buffers", {})
        key = (name, dtype, device)
        found = buffers.get(key)
        if found is None or found.shape != shape:
            found = buffers[key] = torch.empty(shape, dtype=dtype, device=device)
        return found

    def __getstate__(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if key != "_buffers"}


class Elementwise(Buffers):
    """A descent rule ``d = combine(g, g̃)`` applied element by element (subclasses: ``combine``).

    ``combine`` runs once per device and dtype on the concatenation of the tensors, not once
    per tensor: a rule of a dozen kernels costs a dozen kernel calls for the whole model
    instead of a dozen per parameter (on a 40-tensor MLP that was most of its step), and the
    kernels see one large tensor, which they split over the threads. Its arguments are this
    rule's own buffers, reused from step to step, and it may overwrite them (on the CPU a fresh
    megabyte costs several times the arithmetic in page faults); ``self.buffer`` gives more.
    The result is copied into the ``g̃`` tensors, which the direction replaces in ``p.grad``.
    A tensor that cannot join a concatenation (a DTensor shard, a non-contiguous gradient) is
    combined alone, on ``g`` and ``g̃`` themselves.
    """

    needs_clean_grad = True

    def combine(self, g: Tensor, g_adv: Tensor) -> Tensor:
        """The direction of one tensor from its clean and perturbed gradient."""
        raise NotImplementedError

    def __call__(self, ctx: RuleContext, g: Groups | None, g_adv: Groups) -> Groups:
        """``d`` per group (the ``g̃`` tensors, overwritten)."""
        if g is None:
            raise RuntimeError(f"{type(self).__name__} needs the clean gradient g, got None")
        clean, perturbed = flat(g), flat(g_adv)
        out = list(perturbed)
        kinds, alone = _same_kind(clean, perturbed)
        for i in alone:
            out[i] = self.combine(clean[i], perturbed[i])
        for indices in kinds:
            dest = [perturbed[i] for i in indices]
            sizes = [t.numel() for t in dest]
            shape = torch.Size([sum(sizes)])
            clean_flat = self._scratch("clean", shape, dest[0].dtype, dest[0].device)
            perturbed_flat = self._scratch("perturbed", shape, dest[0].dtype, dest[0].device)
            torch.cat([clean[i].view(-1) for i in indices], out=clean_flat)
            torch.cat([t.view(-1) for t in dest], out=perturbed_flat)
            d = self.combine(clean_flat, perturbed_flat)
            pieces = [x.view_as(t) for x, t in zip(d.split(sizes), dest, strict=True)]
            torch._foreach_copy_(dest, pieces)
        return regroup(out, g_adv)


def _same_kind(clean: list[Tensor], perturbed: list[Tensor]) -> tuple[list[list[int]], list[int]]:
    """The indices of the tensors that can be concatenated, by device and dtype, and those of
    the others (a subclass such as a DTensor, a non-contiguous gradient)."""
    kinds: dict[tuple, list[int]] = {}
    alone = []
    for i, (a, b) in enumerate(zip(clean, perturbed, strict=True)):
        if (
            type(a) is Tensor
            and type(b) is Tensor
            and a.is_contiguous()
            and b.is_contiguous()
            and a.dtype == b.dtype
            and a.device == b.device
        ):
            kinds.setdefault((b.device, b.dtype), []).append(i)
        else:
            alone.append(i)
    return list(kinds.values()), alone
