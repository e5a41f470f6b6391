"""Lists of tensors per parameter group: the vocabulary the torch rules are written in.

A rule sees its tensors as ``Groups`` (one list per parameter group, only the parameters that
have a gradient). Norms and inner products are global over all groups (one number for the
whole model) and stay on the device; on a model split over several devices the per-tensor
pieces are brought to the first tensor's device before they are combined
(``sampy.torch.perturbation.on_one_device``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from sampy.torch.perturbation import accumulation_dtype, dual_direction, lp_norm, on_one_device
from sampy.torch.sharpness_aware import Groups, RuleContext, is_dtensor, replicated

__all__ = ["Elementwise", "flat", "global_dot", "global_norm", "radii", "regroup", "unit"]


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


def radii(ctx: RuleContext) -> list[float]:
    """The per-group radius ρ."""
    return [group["rho"] for group in ctx.groups]


def unit(vs: Groups, rhos: list[float], eps: float, inplace: bool = False) -> Groups:
    """``ρ v/(‖v‖ + eps)`` per group, the norm global over all groups."""
    if not flat(vs):
        return vs
    return dual_direction(vs, 2.0, rhos, eps, inplace=inplace)


class Elementwise:
    """A descent rule ``d = combine(g, g̃)`` applied element by element (subclasses: ``combine``).

    ``combine`` runs once per device and dtype on the concatenation of the tensors, not once
    per tensor: a rule of a dozen kernels costs a dozen kernel calls for the whole model
    instead of a dozen per parameter (on a 40-tensor MLP that was most of its step), and the
    kernels see one large tensor, which they split over the threads. The result comes back as
    views of that concatenation shaped like the parameters. ``combine`` may write into its
    arguments (they are this rule's copies or, for a tensor handled alone, ``g̃`` itself, which
    the direction replaces in ``p.grad``).
    """

    needs_clean_grad = True

    def combine(self, g: Tensor, g_adv: Tensor) -> Tensor:
        """The direction of one tensor from its clean and perturbed gradient."""
        raise NotImplementedError

    def __call__(self, ctx: RuleContext, g: Groups | None, g_adv: Groups) -> Groups:
        """``d`` per group."""
        if g is None:
            raise RuntimeError(f"{type(self).__name__} needs the clean gradient g, got None")
        clean, perturbed = flat(g), flat(g_adv)
        out: list[Tensor | None] = [None] * len(perturbed)
        for indices in _same_kind(clean, perturbed):
            if len(indices) == 1:
                i = indices[0]
                out[i] = self.combine(clean[i], perturbed[i])
                continue
            d = self.combine(
                torch.cat([clean[i].view(-1) for i in indices]),
                torch.cat([perturbed[i].view(-1) for i in indices]),
            )
            pieces = d.split([perturbed[i].numel() for i in indices])
            for i, piece in zip(indices, pieces, strict=True):
                out[i] = piece.view(perturbed[i].shape)
        return regroup(out, g_adv)


def _same_kind(clean: list[Tensor], perturbed: list[Tensor]) -> list[list[int]]:
    """Indices of the tensors that can be concatenated, by device and dtype; every other
    tensor (a subclass such as a DTensor, a non-contiguous gradient) alone."""
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
            alone.append([i])
    return [*kinds.values(), *alone]
