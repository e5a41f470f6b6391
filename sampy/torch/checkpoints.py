"""Element-wise checkpoints as torch descent rules: the twin of ``sampy.optim.checkpoints``.

For every coordinate the ratio ``r_i = g̃_i / g_i`` of the perturbed to the clean gradient
falls in one of four checkpoints (the research notes on the anatomy of SAM's gradient,
lhchau/sam-hessian): ckpt1 ``r > 1`` (amplified), ckpt2 ``0 < r < 1`` (shrunk), ckpt3
``r < −1`` (flipped, larger), ckpt4 ``−1 < r < 0`` (flipped, smaller); boundaries and undefined
ratios are ckpt0. ``mode="notes_code"`` computes ``r = g̃/(g + ratio_eps)`` as the notes' code
does; ``mode="sign_safe"`` uses ``g + ratio_eps·sign(g)`` and puts ``|g| ≤ ratio_eps`` in ckpt0.
The rules are the descents of ``SAME``, ``CustomSAME`` and ``SAMCkpt`` (``sampy.torch.same``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from sampy.torch.groups import Elementwise, flat, same_kind_indices
from sampy.torch.sharpness_aware import CLEAN_GRAD, Groups, RuleContext


def ratio(g: Tensor, g_adv: Tensor, ratio_eps: float, mode: str) -> Tensor:
    """``r = g̃/g`` with the notes' code's guard or the sign-safe one (NaN where undefined)."""
    if mode == "notes_code":
        return g_adv / (g + ratio_eps)
    # g ± eps with the sign of g: copysign(eps, g) + g is exactly the reference's g + eps or
    # g - eps wherever |g| > eps, and |g| ≤ eps (where the sign of zero would differ) is NaN.
    # Four passes over the tensor instead of eight.
    guarded = torch.copysign(torch.tensor(ratio_eps, dtype=g.dtype, device=g.device), g)
    guarded.add_(g).masked_fill_(g.abs() <= ratio_eps, math.nan)
    return torch.div(g_adv, guarded, out=guarded)


# The masks of the checkpoints 1…4 from r (NaN compares false: checkpoint 0).
_CHECKPOINT_MASKS = (
    lambda r: r > 1,
    lambda r: (r > 0) & (r < 1),
    lambda r: r < -1,
    lambda r: (r > -1) & (r < 0),
)


def checkpoints(g: Tensor, g_adv: Tensor, ratio_eps: float, mode: str) -> Tensor:
    """The checkpoint 0…4 of every coordinate (an int64 tensor shaped like ``g``)."""
    r = ratio(g, g_adv, ratio_eps, mode)
    out = torch.zeros_like(r, dtype=torch.int64)
    for k, mask in enumerate(_CHECKPOINT_MASKS, start=1):
        out.masked_fill_(mask(r), k)
    return out


# The checkpoints 1…4 in their order along the line of r, and the boundary above each one
# (checkpoint 0 holds the boundaries −1, 0, 1 and the undefined ratios).
_ORDER = (3, 4, 2, 1)
_UPPER = (-1.0, 0.0, 1.0, math.inf)

# One term of an indicator, ``sign · 1[r op value]``; ``("eq", nan)`` is ``1[r = r]``.
_Term = tuple[str, float, int]


def _runs(selected: frozenset[int], down: bool = False) -> list[tuple[int, list[_Term]]]:
    """``1[ckpt ∈ selected]`` (selected ⊆ {1…4}) as runs of comparisons of r.

    Consecutive checkpoints along the line of r form one run ``lo < r < hi`` less the boundaries
    inside it: ``1[r > lo] − 1[r ≥ hi] − Σ 1[r = b]``, whose terms are nonzero only above
    ``lo`` and sum to zero above ``hi`` (to be added from the lowest run up), or, with
    ``down``, ``1[r < hi] − 1[r ≤ lo] − Σ 1[r = b]``, the mirror image (from the highest run
    down). Each run comes with the position of its first checkpoint along the line.
    """
    runs = []
    i = 0
    while i < len(_ORDER):
        if _ORDER[i] not in selected:
            i += 1
            continue
        j = i
        while j + 1 < len(_ORDER) and _ORDER[j + 1] in selected:
            j += 1
        lo = _UPPER[i - 1] if i else -math.inf
        hi = _UPPER[j]
        if lo == -math.inf and hi == math.inf:
            terms = [("eq", math.nan, 1)]  # every ratio but NaN
        elif lo == -math.inf or (down and hi != math.inf):
            terms = [("lt", hi, 1)] + ([("le", lo, -1)] if lo != -math.inf else [])
        else:
            terms = [("gt", lo, 1)] + ([("ge", hi, -1)] if hi != math.inf else [])
        terms.extend(("eq", b, -1) for b in _UPPER[i:j])
        runs.append((i, terms))
        i = j + 1
    return runs


def _compare(op: str, r: Tensor, value: float, out: Tensor) -> Tensor:
    """``1[r op value]`` as 0.0/1.0 in the float tensor ``out`` (which may be ``r``).

    A float result is one vectorised pass on the CPU, a bool one several times slower, and so
    is every kernel that reads a bool mask (masked_fill, where): the rules use none.
    """
    other = r if math.isnan(value) else value
    return getattr(torch, op)(r, other, out=out)


PER_TENSOR_NUMEL = 1 << 14
"""Tensors of this many elements on average, or more, are divided one by one rather than
copied into one concatenation first: a call costs about what a pass over that many floats
does (a few microseconds)."""


def _is_stash(gs: list[Tensor], stashed: list[Tensor] | None, buffer: Tensor) -> bool:
    """Whether ``gs`` are the pieces ``stash`` cut of ``buffer``, all of them, in order."""
    return (
        stashed is not None
        and len(gs) == len(stashed)
        and all(a is b for a, b in zip(gs, stashed, strict=True))
        and stashed[0].untyped_storage().data_ptr() == buffer.untyped_storage().data_ptr()
    )


def _is_whole_stash(
    clean: list[Tensor], stashed: list[Tensor] | None, perturbed: list[Tensor]
) -> bool:
    """Whether ``clean`` is the whole stash and the ``perturbed`` tensors can join one
    concatenation with it (what ``same_kind_indices`` would find, in fewer checks)."""
    if stashed is None or len(clean) != len(stashed):
        return False
    if not all(a is b for a, b in zip(clean, stashed, strict=True)):
        return False
    dtype, device = stashed[0].dtype, stashed[0].device
    return all(
        type(t) is Tensor and t.dtype == dtype and t.device == device and t.is_contiguous()
        for t in perturbed
    )


def _views(x: Tensor, like: list[Tensor]) -> list[Tensor]:
    """The concatenation ``x`` cut back into tensors shaped like ``like``."""
    if len(like) == 1:
        return [x.view_as(like[0])]
    pieces = x.split([t.numel() for t in like])
    return [p.view_as(t) for p, t in zip(pieces, like, strict=True)]


class _CheckpointRule(Elementwise):
    """The ratio and the checkpoints of the concatenated gradients, in reused buffers.

    The checkpoints are 0.0/1.0 floats from comparisons, and the direction is picked from them
    with exact arithmetic (SAME, CustomSAME) or bit masks (SAMCkpt): each coordinate the float
    the reference's indexing picks, NaN and inf included. ``g`` is concatenated (at the first
    step, see ``stash``); ``g̃`` only where the tensors are many and small, else each ``g̃``
    tensor is read and written in place (fewer passes, one buffer less). Passes over the
    model per step with the defaults: SAME 10, CustomSAME 16, SAMCkpt 12 (and one or two more
    for many small tensors); SAM's rule makes none.
    """

    ratio_eps: float
    mode: str

    def stash(self, state: Any, params: Groups) -> bool:
        """Keep ``g`` (in ``p.grad``) for the descent as its concatenation, at the first step.

        On the CPU, with plain contiguous gradients of one dtype: ``g`` is copied into the
        buffer the descent reads it from (a copy the descent makes anyway), and
        ``state[p][CLEAN_GRAD]`` is that buffer's piece of ``p``. Then the gradients are free
        for the ascent to overwrite (no fresh tensors for ``ε``) and the descent skips its
        copy of ``g``. Returns False (nothing kept) otherwise.
        """
        ps = flat(params)
        grads = [p.grad for p in ps]
        if not grads:
            return False
        dtype, device = grads[0].dtype, grads[0].device
        if device.type != "cpu" or any(
            type(t) is not Tensor or t.dtype != dtype or t.device != device or not t.is_contiguous()
            for t in grads
        ):
            return False
        shape = torch.Size([sum(t.numel() for t in grads)])
        views = self._pieces(self._scratch("clean", shape, dtype, device), grads)
        torch._foreach_copy_(views, grads)
        for p, view in zip(ps, views, strict=True):
            state[p][CLEAN_GRAD] = view
        self._buffers["stashed"] = views
        return True

    def __call__(self, ctx: RuleContext, g: Groups | None, g_adv: Groups) -> Groups:
        """``d`` per group, written into the ``g̃`` tensors (``g`` and ``g̃`` concatenated once
        per device and dtype; a tensor that cannot join is combined alone)."""
        if g is None:
            raise RuntimeError(f"{type(self).__name__} needs the clean gradient g, got None")
        clean, perturbed = flat(g), flat(g_adv)
        stashed = self.__dict__.get("_buffers", {}).pop("stashed", None)
        if _is_whole_stash(clean, stashed, perturbed):  # the usual step: one kind, known
            kinds, alone = [list(range(len(clean)))], []
        else:
            kinds, alone = same_kind_indices(clean, perturbed)
        for i in alone:  # on copies: the rules write into both
            self._direction(clean[i].clone(), perturbed[i].clone(), [perturbed[i]])
        for indices in kinds:
            dest = [perturbed[i] for i in indices]
            shape = torch.Size([sum(t.numel() for t in dest)])
            gs = [clean[i] for i in indices]
            gf = self._scratch("clean", shape, dest[0].dtype, dest[0].device)
            if not _is_stash(gs, stashed, gf):
                if stashed is not None:  # some of them, in the buffer: copy out first
                    gs = [t.clone() for t in gs]
                torch._foreach_copy_(self._pieces(gf, gs), gs)
            pf = None
            if len(dest) - 1 >= shape[0] / PER_TENSOR_NUMEL:
                pf = self._scratch("perturbed", shape, dest[0].dtype, dest[0].device)
                torch._foreach_copy_(self._pieces(pf, dest), dest)
            self._direction(gf, pf, dest)
        return g_adv

    def _pieces(
        self, x: Tensor, like: list[Tensor], dtype: torch.dtype | None = None
    ) -> list[Tensor]:
        """``x`` cut into tensors shaped like ``like`` (their bits as ``dtype``, if given); for
        a buffer of this rule's, the views are kept for the next step (they cost a dozen small
        calls to make)."""
        shapes = [t.shape for t in like]
        buffers = self.scratch_store()
        key = ("pieces", x.data_ptr(), x.dtype, dtype)
        found = buffers.get(key)
        if found is not None and found[0] is x and found[1] == shapes:
            return found[2]
        pieces = _views(x, like)
        if dtype is not None:
            pieces = [piece.view(dtype) for piece in pieces]
        scratch = [v for v in buffers.values() if type(v) is Tensor]
        if any(v is x for v in scratch):
            for k in [k for k in buffers if isinstance(k, tuple) and k[0] == "pieces"]:
                if not any(buffers[k][0] is v for v in scratch):
                    del buffers[k]  # the views of a buffer that was replaced
            buffers[key] = (x, shapes, pieces)
        return pieces

    def _direction(self, g: Tensor, g_adv: Tensor | None, dest: list[Tensor]) -> None:
        """Write ``d`` into ``dest``, the tensors whose values ``g_adv`` holds (``g`` and
        ``g_adv`` are this rule's copies, to be overwritten; ``g_adv`` None: not copied)."""
        raise NotImplementedError

    def _ratio(
        self, g: Tensor, g_adv: Tensor | None, dest: list[Tensor], keep_g: bool = True
    ) -> Tensor:
        """``ratio(g, g̃)`` in the buffer ``"ratio"``, but ±0 or NaN where it is undefined:
        checkpoint 0 either way, so the same checkpoints, bit for bit. ``keep_g=False`` lets
        it overwrite ``g``."""
        r = self.buffer("ratio", g)
        if self.mode == "notes_code":
            torch.add(g, self.ratio_eps, out=r)
        else:
            # g + eps·sign(g) is ±(|g| + eps), the same float (rounding is symmetric); where
            # |g| ≤ eps (or g is NaN) the denominator is ±inf, or NaN where sign(g) is 0.
            torch.abs(g, out=r)
            torch.nn.functional.threshold_(r, self.ratio_eps, math.inf)
            r.add_(self.ratio_eps)
            if keep_g:
                r.copysign_(g)
            else:  # two vectorised passes, cheaper than copysign's one
                r.mul_(g.sign_())
        if g_adv is not None:
            return torch.div(g_adv, r, out=r)
        for t, piece in zip(dest, self._pieces(r, dest), strict=True):
            torch.div(t, piece, out=piece)
        return r


def _same_offsets(factors: tuple[float, ...], dtype: torch.dtype) -> bool:
    """Whether ``c0 + (c_k − c0)`` rounds to ``c_k`` in ``dtype`` for every factor."""
    c0 = factors[0]
    return all(
        bool(torch.tensor(c - c0, dtype=dtype) + c0 == torch.tensor(c, dtype=dtype))
        for c in factors
    )


class CheckpointScaling(_CheckpointRule):
    """SAME/CustomSAME: ``d = g̃ ⊙ c[ckpt]``."""

    def __init__(self, factors: tuple[float, ...], ratio_eps: float, mode: str) -> None:
        self.factors = tuple(float(c) for c in factors)
        self.ratio_eps = ratio_eps
        self.mode = mode
        # The runs of the checkpoints whose factor differs from c0, each with its factor, from
        # the lowest up or from the highest down: the way whose first offset is 1 if there is
        # one, which saves a multiplication (SAME's defaults: the one comparison r > 1).
        groups: dict[float, set[int]] = {}
        for k, c in enumerate(self.factors[1:], start=1):
            if c != self.factors[0]:
                groups.setdefault(c, set()).add(k)
        ways = []
        for down in (False, True):
            runs = [
                (i, c, terms) for c, ks in groups.items() for i, terms in _runs(frozenset(ks), down)
            ]
            runs.sort(key=lambda run: run[0], reverse=down)
            ways.append([(c, terms) for _, c, terms in runs])
        up = not ways[0] or ways[0][0][0] - self.factors[0] == 1.0
        self._runs = ways[0] if up or ways[1][0][0] - self.factors[0] != 1.0 else ways[1]
        # Decided here for the usual dtypes: a step reads no tensor value on the host.
        self._exact_offsets = {
            dtype: _same_offsets(self.factors, dtype) for dtype in (torch.float32, torch.float64)
        }

    def _direction(self, g: Tensor, g_adv: Tensor, dest: list[Tensor]) -> None:
        """``g̃ ⊙ c[ckpt]``: the factor of every coordinate in the buffer of ``g``, then one
        multiplication into ``dest``."""
        c0 = self.factors[0]
        if not self._runs:
            if c0 != 1.0:
                torch._foreach_mul_(dest, c0)
            return
        r = self._ratio(g, g_adv, dest, keep_g=False)
        factor = g  # read for the last time by the ratio
        term = g_adv  # the same, or (None) made when a term needs it
        exact = self._exact_offsets.get(r.dtype)
        if exact is None:
            exact = self._exact_offsets[r.dtype] = _same_offsets(self.factors, r.dtype)
        if exact:
            # c0 + Σ (c − c0)·1[r in the run]. The runs are disjoint and added from the lowest
            # up, and a run's terms add up to zero above it, where nothing is added yet: every
            # partial sum is 0 or one offset, so each coordinate gets exactly c0 + (c − c0).
            first = True
            for c, terms in self._runs:
                for op, value, sign in terms:
                    if first:
                        _compare(op, r, value, factor)
                        if c - c0 != 1.0:
                            factor.mul_(c - c0)
                        first = False
                    else:
                        term = self.buffer("perturbed", r) if term is None else term
                        factor.add_(_compare(op, r, value, term), alpha=sign * (c - c0))
            factor.add_(c0)
        else:
            # Any factors: c0, then each run's factor above its lo and c0 again above its hi
            # and on its inner boundaries (a lerp with weight 0 or 1 is exactly one end).
            factor.fill_(c0)
            for c, terms in self._runs:
                for op, value, sign in terms:
                    end = torch.tensor(c if sign > 0 else c0, dtype=r.dtype, device=r.device)
                    term = self.buffer("perturbed", r) if term is None else term
                    factor.lerp_(end, _compare(op, r, value, term))
        torch._foreach_mul_(dest, self._pieces(factor, dest))


class CheckpointHybrid(_CheckpointRule):
    """SAMCkpt: ``d_i = g̃_i`` in the selected checkpoints, ``g_i`` elsewhere."""

    def __init__(self, selected: tuple[int, ...], ratio_eps: float, mode: str) -> None:
        self.selected = tuple(int(k) for k in selected)
        self.ratio_eps = ratio_eps
        self.mode = mode
        # Checkpoint 0 is marked by no comparison: with it selected, mark the others instead.
        chosen = set(self.selected)
        self._zero = 0 in chosen
        marked = frozenset(k for k in range(1, 5) if (k in chosen) != self._zero)
        self._terms = [term for _, terms in _runs(marked) for term in terms]

    def _direction(self, g: Tensor, g_adv: Tensor | None, dest: list[Tensor]) -> None:
        """``where(ckpt ∈ selected, g̃, g)``, with the marked coordinates as a bit mask."""
        if not self._terms:  # nothing marked: all of g̃, or all of g
            if not self._zero:
                torch._foreach_copy_(dest, self._pieces(g, dest))
            return
        bits = _BITS.get(g.dtype)
        if g_adv is None and bits is None:
            g_adv = self.buffer("perturbed", g)
            torch._foreach_copy_(self._pieces(g_adv, dest), dest)
        r = self._ratio(g, g_adv, dest)
        marked = self._marked(r)
        # The marked coordinates take the selected g̃ (or, with checkpoint 0 selected, g).
        if bits is None or type(r) is not Tensor:
            at_marked, at_unmarked = (g, g_adv) if self._zero else (g_adv, g)
            torch.where(marked.bool(), at_marked, at_unmarked, out=at_marked)
            torch._foreach_copy_(dest, self._pieces(at_marked, dest))
            return
        # 1.0 − 0.5 > 0 > 0.0 − 0.5: the sign bit, spread by an arithmetic shift, is a mask of
        # the coordinates that take g, where x ^ ((x ^ g) & mask) is g, bit for bit.
        takes_g = marked.sub_(0.5).neg_() if self._zero else marked.sub_(0.5)
        mask = takes_g.view(bits[0]).bitwise_right_shift_(bits[1])
        if g_adv is None:  # into the g̃ tensors themselves, one by one
            pieces = self._pieces(g, dest, bits[0])
            ints = [(x, t.view(bits[0])) for x, t in zip(pieces, dest, strict=True)]
            for diff, into in ints:
                diff.bitwise_xor_(into)
            g.view(bits[0]).bitwise_and_(mask)
            for diff, into in ints:
                into.bitwise_xor_(diff)
            return
        diff = g.view(bits[0]).bitwise_xor_(g_adv.view(bits[0])).bitwise_and_(mask)
        g_adv.view(bits[0]).bitwise_xor_(diff)
        torch._foreach_copy_(dest, self._pieces(g_adv, dest))

    def _marked(self, r: Tensor) -> Tensor:
        """The indicator of the marked checkpoints as 0.0/1.0 (r is overwritten): one
        comparison in place, or a sum of them in a buffer of its own."""
        (op, value, _), *rest = self._terms
        if not rest:
            return _compare(op, r, value, r)
        total = _compare(op, r, value, self.buffer("marked", r))
        for i, (op, value, sign) in enumerate(rest):
            last = i == len(rest) - 1
            total.add_(_compare(op, r, value, r if last else self.buffer("term", r)), alpha=sign)
        return total


# The signed integer of each float's width and the shift that spreads its sign bit.
_BITS = {
    torch.float64: (torch.int64, 63),
    torch.float32: (torch.int32, 31),
    torch.float16: (torch.int16, 15),
    torch.bfloat16: (torch.int16, 15),
}
