"""Lists of tensors per parameter group: the vocabulary the torch rules are written in.

A rule sees its tensors as ``Groups`` (one list per parameter group, only the parameters that
have a gradient). Norms and inner products are global over all groups (one number for the
whole model) and stay on the device; on a model split over several devices the per-tensor
pieces are brought to the first tensor's device before they are combined
(``sampy.torch.perturbation.on_one_device``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from sampy.torch.dtensors import is_dtensor, replicated
from sampy.torch.host_norms import FLAT_BELOW, host_norms, readable
from sampy.torch.host_reads import on_host
from sampy.torch.perturbation import (
    accumulation_dtype,
    dual_factors,
    lp_norm,
    on_one_device,
    per_device,
)
from sampy.torch.sharpness_aware import Groups, RuleContext

__all__ = [
    "Buffers",
    "Elementwise",
    "Scalar",
    "flat",
    "global_dot",
    "global_norm",
    "norm_value",
    "norms_and_dot",
    "positive_mask_",
    "radii",
    "regroup",
    "same_kind_indices",
    "sum_in_scratch",
    "unit",
    "unit_into",
]

Scalar = float | Tensor
"""A global number: a Python float where the tensors live on the CPU (read there at no cost),
else a 0-dim tensor on the first tensor's device (never read by the host)."""


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
    if readable(a + b):
        (na, nb), ab = host_norms([a, b], _scratch(buffers))
        return na, nb, ab
    if not on_host(a + b):
        return global_norm(a), global_norm(b), global_dot(a, b)
    # narrow or mixed dtypes on the CPU: accumulated as the three do, read at once
    values = torch.stack([global_norm(a), global_norm(b), global_dot(a, b)]).tolist()
    return values[0], values[1], values[2]


def norm_value(a: list[Tensor], buffers: Buffers | None = None) -> Scalar:
    """``‖a‖₂`` over all tensors (``global_norm``'s value): a Python float on the CPU, where the
    small tensors are gathered into one scratch buffer of ``buffers`` first (see
    ``norms_and_dot``), else a 0-dim tensor on the first tensor's device."""
    if not a:
        return 0.0
    if readable(a):
        (na,), _ = host_norms([a], _scratch(buffers))
        return na
    if not on_host(a):
        return global_norm(a)
    return global_norm(a).item()


def unit_into(
    vs: Groups,
    rhos: list[float],
    eps: float,
    out: Groups | None = None,
    buffers: Buffers | None = None,
) -> Groups:
    """``unit(vs, rhos, eps)``'s values, ``ρ v/(‖v‖ + eps)`` per group, written into ``out``.

    ``out`` holds tensors shaped like ``vs`` that may be overwritten: ``vs`` itself, or dead
    ones such as consumed gradients (no model-sized temporary; on the CPU the small tensors
    get new ones, see ``_scale_into``); None gives new tensors. The returned tensors are each
    ``out``'s tensor or a new one, never one of ``vs`` unless ``out`` is ``vs``. The factors
    are ``perturbation.dual_factors``' (Python floats on the CPU: no 0-dim tensor ops).
    """
    if not flat(vs):
        return vs
    factors = dual_factors(flat(vs), rhos, eps, _scratch(buffers))
    result: Groups = []
    for i, v in enumerate(vs):
        o = None if out is None else out[i]
        if not v:
            result.append([] if o is None else o)
            continue
        factor = per_device(factors[i], v)
        if o is None:
            result.append(list(torch._foreach_mul(v, factor)))
        else:
            result.append(_scale_into(v, factor, o))
    return result


def _scratch(buffers: Buffers | None) -> dict[Any, Any] | None:
    """Where ``host_norms`` keeps its scratch for a rule: beside the rule's own buffers."""
    return None if buffers is None else buffers.scratch_store()


def _scale_into(v: list[Tensor], factor: Any, out: list[Tensor]) -> list[Tensor]:
    """``v · factor`` without a model-sized temporary: in ``out`` (which may be ``v``) where
    that pays, in new tensors for the small ones.

    On the CPU a large tensor is one ``mul`` into its ``out``, and the small ones are one
    ``_foreach_mul`` into new tensors (the allocator reuses small blocks at no cost, while a
    kernel per small tensor, or a copy and a product, costs more); elsewhere a copy into ``out``
    and a product, one call each.
    """
    if out is v or all(x is y for x, y in zip(v, out, strict=True)):
        torch._foreach_mul_(v, factor)
        return out
    if isinstance(factor, list) or not _plain_cpu(v):
        torch._foreach_copy_(out, v)
        torch._foreach_mul_(out, factor)
        return out
    result = list(out)
    small = []
    for i, (x, y) in enumerate(zip(v, out, strict=True)):
        if x.numel() >= FLAT_BELOW:
            torch.mul(x, factor, out=y)
        else:
            small.append(i)
    if small:
        scaled = torch._foreach_mul([v[i] for i in small], factor)
        for i, x in zip(small, scaled, strict=True):
            result[i] = x
    return result


def sum_in_scratch(
    a: list[Tensor], b: list[Tensor], alpha: float, buffers: Buffers, name: str
) -> list[Tensor]:
    """``a + alpha · b``, for a value the caller reads and drops within the step: in scratch
    tensors of ``buffers`` (kept from step to step) for the large CPU tensors, one kernel each,
    in new tensors for the others (one call). Never return these tensors as a fresh ``ε``."""
    if not _plain_cpu(a):
        return list(torch._foreach_add(a, b, alpha=alpha))
    out = list(a)
    small = []
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if x.numel() >= FLAT_BELOW:
            out[i] = torch.add(x, y, alpha=alpha, out=buffers.buffer(f"{name}{i}", x))
        else:
            small.append(i)
    if small:
        new = torch._foreach_add([a[i] for i in small], [b[i] for i in small], alpha=alpha)
        for i, x in zip(small, new, strict=True):
            out[i] = x
    return out


def _plain_cpu(tensors: list[Tensor]) -> bool:
    """Plain CPU tensors (no subclass): where a scratch buffer kept between steps pays."""
    return all(type(t) is Tensor and t.is_cpu for t in tensors)


def radii(ctx: RuleContext) -> list[float]:
    """The per-group radius ρ."""
    return [group["rho"] for group in ctx.groups]


def unit(vs: Groups, rhos: list[float], eps: float, inplace: bool = False) -> Groups:
    """``ρ v/(‖v‖ + eps)`` per group, the norm global over all groups: written into ``vs``
    with ``inplace``, else new tensors (``unit_into``)."""
    return unit_into(vs, rhos, eps, vs if inplace else None)


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
        buffers = self.scratch_store()
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

    def scratch_store(self) -> dict[Any, Any]:
        """The dict these buffers live in (``host_norms`` keeps its own there too)."""
        return self.__dict__.setdefault("_buffers", {})

    def _scratch(self, name: str, shape: Any, dtype: torch.dtype, device: torch.device) -> Tensor:
        if torch.device(device).type != "cpu":
            return torch.empty(shape, dtype=dtype, device=device)
        buffers = self.scratch_store()
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
        kinds, alone = same_kind_indices(clean, perturbed)
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


def same_kind_indices(
    clean: list[Tensor], perturbed: list[Tensor]
) -> tuple[list[list[int]], list[int]]:
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


def positive_mask_(tensors: list[Tensor]) -> list[Tensor]:
    """``1[x > 0]`` as 0/1 floats, in place, with two ``_foreach`` kernels over all tensors.

    ``max(sign(x), 0)``: torch's ``sign`` of NaN is 0, so NaN gives 0, as ``x > 0`` does. A
    per-tensor comparison and a ``masked_fill_``/``where`` on its bool mask cost several times
    these passes on the CPU (the swaps' agreement masks, SAMAnatomy's sign filter).
    """
    torch._foreach_sign_(tensors)
    torch._foreach_clamp_min_(tensors, 0.0)
    return tensors
