"""Torch twins of the ascent and descent rules of ``sampy.optim`` (same names, same order).

Each rule works on lists of tensors, one list per parameter group (see
``sampy.torch.sharpness_aware``). Norms and inner products are global over all groups and stay
on the device; per-group hyperparameters (``rho``, ``adaptive``, ``eta``) are read from the
group dicts, the others are attributes of the rule. Memory lives in ``ctx.state[p]`` (tensors)
or ``ctx.shared`` (counters), so ``state_dict()`` saves it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from sampy.torch.perturbation import dual_direction, lp_norm, norm_ball_perturbation
from sampy.torch.sharpness_aware import Groups, RuleContext


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
    """``⟨a, b⟩`` over all tensors (a 0-dim tensor on the device)."""
    if not a:
        return torch.zeros(())
    return torch.stack(
        [torch.vdot(x.reshape(-1), y.reshape(-1)) for x, y in zip(a, b, strict=True)]
    ).sum()


def global_norm(a: list[Tensor]) -> Tensor:
    """``‖a‖₂`` over all tensors (a 0-dim tensor on the device)."""
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


# -- ascent rules ------------------------------------------------------------------------------


class NormBallAscent:
    """SAM/ASAM/p-norm ascent: the first-order worst case in the (adaptive) p-norm ball."""

    def __init__(self, p: float = 2.0, perturb_eps: float = 1e-12) -> None:
        self.p = float(p)
        self.perturb_eps = float(perturb_eps)

    def rhos(self, ctx: RuleContext) -> list[float]:
        """The radius of every group (a schedule overrides it in the subclass)."""
        return radii(ctx)

    def __call__(self, ctx: RuleContext, grads: Groups, inplace: bool) -> Groups:
        """``ε = T · dual(T g)`` with ``T = |w| + η`` where ``adaptive``, else ``dual(g)``."""
        rhos = self.rhos(ctx)  # first: a schedule counts every step, even one without gradients
        if not flat(grads):
            return grads
        return norm_ball_perturbation(
            ctx.params,
            grads,
            rhos,
            self.p,
            [group.get("adaptive", False) for group in ctx.groups],
            [group.get("eta", 0.0) for group in ctx.groups],
            self.perturb_eps,
            inplace=inplace,
        )


class ScheduledNormBallAscent(NormBallAscent):
    """The norm-ball ascent with ``ρ_t = rho_schedule(t)`` for every group; ``t`` in ``shared``.

    ρ_t is not validated: an unclamped warm-up gives ρ_t < 0, as big_vision's GSAM does.
    """

    def __init__(self, rho_schedule: Callable[[int], float], **kwargs: float) -> None:
        super().__init__(**kwargs)
        self.rho_schedule = rho_schedule

    def rhos(self, ctx: RuleContext) -> list[float]:
        """``rho_schedule(t)`` for every group, then ``t ← t + 1``."""
        t = ctx.shared.get("step", 0)
        ctx.shared["step"] = t + 1
        return [self.rho_schedule(t)] * len(ctx.groups)


class UnnormalizedAscent:
    """USAM: ``ε = ρ g`` (no normalisation)."""

    def __call__(self, ctx: RuleContext, grads: Groups, inplace: bool) -> Groups:
        """``ρ g`` per group."""
        if inplace:
            for gs, rho in zip(grads, radii(ctx), strict=True):
                torch._foreach_mul_(gs, rho)
            return grads
        return [torch._foreach_mul(gs, rho) for gs, rho in zip(grads, radii(ctx), strict=True)]


class FriendlyAscent:
    """F-SAM: perturb along ``g − σ m``; ``m`` an EMA of raw gradients in ``state[p]["m"]``.

    Official code order: a parameter without ``m`` gets ``m ← g`` and ``d = g``; afterwards
    ``d = g − σ m_{t−1}``, then ``m ← λ m + (1 − λ) g``. Paper order: ``m`` first, ``d = g − σ m_t``
    (``m_0 = 0``). ``ε = ρ d/(‖d‖ + eps)``.
    """

    def __init__(self, sigma: float, lmbda: float, momentum_order: str, eps: float) -> None:
        self.sigma = sigma
        self.lmbda = lmbda
        self.momentum_order = momentum_order
        self.eps = eps

    def _ema(self, m: list[Tensor], g: list[Tensor]) -> None:
        torch._foreach_mul_(m, self.lmbda)
        torch._foreach_add_(m, g, alpha=1.0 - self.lmbda)

    def __call__(self, ctx: RuleContext, grads: Groups, inplace: bool) -> Groups:
        """``ε`` (the EMA is updated in place)."""
        gs, ps = flat(grads), flat(ctx.params)
        fresh = [i for i, p in enumerate(ps) if "m" not in ctx.state[p]]
        ready = [i for i, p in enumerate(ps) if "m" in ctx.state[p]]
        d: list[Tensor] = [gs[0]] * len(gs) if gs else []
        official = self.momentum_order == "official_code"
        for i in fresh:
            if official:
                ctx.state[ps[i]]["m"] = gs[i].clone()
                d[i] = gs[i]
            else:
                m = ctx.state[ps[i]]["m"] = gs[i] * (1.0 - self.lmbda)
                d[i] = gs[i] - self.sigma * m
        if ready:
            m = [ctx.state[ps[i]]["m"] for i in ready]
            g = [gs[i] for i in ready]
            if official:
                new = torch._foreach_sub(g, torch._foreach_mul(m, self.sigma))
                self._ema(m, g)
            else:
                self._ema(m, g)
                new = torch._foreach_sub(g, torch._foreach_mul(m, self.sigma))
            for i, x in zip(ready, new, strict=True):
                d[i] = x
        return unit(regroup(d, grads), radii(ctx), self.eps)


class VarianceSuppressedAscent:
    """VaSSO: perturb along ``d_t = (1 − θ) d_{t−1} + θ g`` (``d_0 = 0``, in ``state[p]["d"]``)."""

    def __init__(self, theta: float, eps: float) -> None:
        self.theta = theta
        self.eps = eps

    def __call__(self, ctx: RuleContext, grads: Groups, inplace: bool) -> Groups:
        """``ρ d_t/(‖d_t‖ + eps)`` (``d_t`` updated in place)."""
        gs, ps = flat(grads), flat(ctx.params)
        for p, g in zip(ps, gs, strict=True):
            if "d" not in ctx.state[p]:
                ctx.state[p]["d"] = torch.zeros_like(g)
        d = [ctx.state[p]["d"] for p in ps]
        if d:
            torch._foreach_mul_(d, 1.0 - self.theta)
            torch._foreach_add_(d, gs, alpha=self.theta)
        return unit(regroup(d, grads), radii(ctx), self.eps)


class FisherAscent:
    """Fisher-SAM: ``ε = ρ F⁻¹g / (√(gᵀF⁻¹g) + eps)`` with ``F = diag(1 + η g²)``."""

    def __init__(self, fisher_eta: float, eps: float) -> None:
        self.fisher_eta = fisher_eta
        self.eps = eps

    def __call__(self, ctx: RuleContext, grads: Groups, inplace: bool) -> Groups:
        """``ε`` per group."""
        gs = flat(grads)
        if not gs:
            return grads
        fisher = torch._foreach_mul(torch._foreach_mul(gs, self.fisher_eta), gs)
        torch._foreach_add_(fisher, 1.0)
        precond = torch._foreach_div(gs, fisher)
        length = torch.sqrt(global_dot(gs, precond))
        return [
            torch._foreach_mul(pc, rho / (length + self.eps))
            for pc, rho in zip(regroup(precond, grads), radii(ctx), strict=True)
        ]


class ClampedAscent:
    """ClampSAM: SAM's ascent clipped element-wise to ``[−τ, τ]`` (optionally back to ρ)."""

    def __init__(self, tau: float, renorm: bool, eps: float) -> None:
        self.tau = tau
        self.renorm = renorm
        self.eps = eps

    def __call__(self, ctx: RuleContext, grads: Groups, inplace: bool) -> Groups:
        """``ε`` per group."""
        e = unit(grads, radii(ctx), self.eps, inplace=inplace)
        for es in e:
            torch._foreach_clamp_min_(es, -self.tau)
            torch._foreach_clamp_max_(es, self.tau)
        return unit(e, radii(ctx), self.eps, inplace=True) if self.renorm else e


# -- descent rules -----------------------------------------------------------------------------


def orthogonal_part(g: list[Tensor], h: list[Tensor], eps: float) -> list[Tensor]:
    """The part of ``g`` orthogonal to ``h`` in GSAM's eps-guarded form (global norms)."""
    g_norm = global_norm(g)
    h_norm = global_norm(h)
    cos = global_dot(g, h) / (h_norm * g_norm + eps)
    along = torch._foreach_div(torch._foreach_mul(h, cos * g_norm), h_norm + eps)
    return torch._foreach_sub(g, along)


class GSAMDescent:
    """GSAM: ``d = h − α g_⊥``."""

    needs_clean_grad = True

    def __init__(self, alpha: float, eps: float) -> None:
        self.alpha = alpha
        self.eps = eps

    def __call__(self, ctx: RuleContext, g: Groups | None, g_adv: Groups) -> Groups:
        """``d`` per group."""
        assert g is not None
        h = flat(g_adv)
        if not h:
            return g_adv
        correction = torch._foreach_mul(orthogonal_part(flat(g), h, self.eps), self.alpha)
        return regroup(torch._foreach_sub(h, correction), g_adv)


def ratio(g: Tensor, g_adv: Tensor, ratio_eps: float, mode: str) -> Tensor:
    """``r = g̃/g`` with the notes' code's guard or the sign-safe one (NaN where undefined)."""
    if mode == "notes_code":
        return g_adv / (g + ratio_eps)
    # g + eps·sign(g) with sign(0) = 1, written as two sums so the eps stays float64-exact.
    r = g_adv / torch.where(g >= 0, g + ratio_eps, g - ratio_eps)
    return torch.where(g.abs() <= ratio_eps, torch.full_like(r, math.nan), r)


def checkpoints(g: Tensor, g_adv: Tensor, ratio_eps: float, mode: str) -> Tensor:
    """The checkpoint 0…4 of every coordinate (an int64 tensor shaped like ``g``)."""
    r = ratio(g, g_adv, ratio_eps, mode)
    out = torch.zeros_like(r, dtype=torch.int64)
    out = torch.where(r > 1, 1, out)
    out = torch.where((r > 0) & (r < 1), 2, out)
    out = torch.where(r < -1, 3, out)
    return torch.where((r > -1) & (r < 0), 4, out)


class _Elementwise:
    """A descent rule ``d = combine(g, g̃)`` applied tensor by tensor."""

    needs_clean_grad = True

    def combine(self, g: Tensor, g_adv: Tensor) -> Tensor:
        raise NotImplementedError

    def __call__(self, ctx: RuleContext, g: Groups | None, g_adv: Groups) -> Groups:
        """``d`` per group."""
        assert g is not None
        return [
            [self.combine(a, b) for a, b in zip(gs, hs, strict=True)]
            for gs, hs in zip(g, g_adv, strict=True)
        ]


class CheckpointScaling(_Elementwise):
    """SAME/CustomSAME: ``d = g̃ ⊙ c[ckpt]``."""

    def __init__(self, factors: tuple[float, ...], ratio_eps: float, mode: str) -> None:
        self.factors = tuple(float(c) for c in factors)
        self.ratio_eps = ratio_eps
        self.mode = mode
        self._table: dict[tuple[torch.dtype, torch.device], Tensor] = {}

    def _factors(self, like: Tensor) -> Tensor:
        # Built once per dtype/device, so the step does no host-to-device copy.
        key = (like.dtype, like.device)
        if key not in self._table:
            self._table[key] = torch.tensor(self.factors, dtype=like.dtype, device=like.device)
        return self._table[key]

    def combine(self, g: Tensor, g_adv: Tensor) -> Tensor:
        """``g̃ ⊙ c[ckpt]``."""
        return g_adv * self._factors(g_adv)[checkpoints(g, g_adv, self.ratio_eps, self.mode)]


class CheckpointHybrid(_Elementwise):
    """SAMCkpt: ``d_i = g̃_i`` in the selected checkpoints, ``g_i`` elsewhere."""

    def __init__(self, selected: tuple[int, ...], ratio_eps: float, mode: str) -> None:
        self.selected = tuple(int(k) for k in selected)
        self.ratio_eps = ratio_eps
        self.mode = mode

    def combine(self, g: Tensor, g_adv: Tensor) -> Tensor:
        """``where(ckpt ∈ selected, g̃, g)``."""
        ck = checkpoints(g, g_adv, self.ratio_eps, self.mode)
        use_sam = torch.zeros_like(ck, dtype=torch.bool)
        for k in self.selected:
            use_sam |= ck == k
        return torch.where(use_sam, g_adv, g)


class SAMDirectionRule(_Elementwise):
    """``d = sign(g̃) ⊙ |g|``: SAM's direction, SGD's magnitude."""

    def combine(self, g: Tensor, g_adv: Tensor) -> Tensor:
        """``sign(g̃) ⊙ |g|``."""
        return torch.sign(g_adv) * torch.abs(g)


class SAMMagnitudeRule(_Elementwise):
    """``d = |g̃| ⊙ sign(g)``: SAM's magnitude, SGD's direction."""

    def combine(self, g: Tensor, g_adv: Tensor) -> Tensor:
        """``|g̃| ⊙ sign(g)``."""
        return torch.abs(g_adv) * torch.sign(g)


class AgreementRule(_Elementwise):
    """Keep one gradient where ``g̃ ⊙ g > 0``; elsewhere zero or the other gradient."""

    def __init__(self, keep_sam: bool, fill: str) -> None:
        self.keep_sam = keep_sam
        self.fill = fill

    def combine(self, g: Tensor, g_adv: Tensor) -> Tensor:
        """``where(g̃ ⊙ g > 0, kept, other or 0)``."""
        kept, other = (g_adv, g) if self.keep_sam else (g, g_adv)
        elsewhere = other if self.fill == "other" else torch.zeros_like(other)
        return torch.where(g_adv * g > 0, kept, elsewhere)


class RatioClip(_Elementwise):
    """ClipSAM: ``d = sign(g̃) ⊙ min(|g̃|, c|g|)``."""

    def __init__(self, condition: float) -> None:
        self.condition = condition

    def combine(self, g: Tensor, g_adv: Tensor) -> Tensor:
        """``sign(g̃) ⊙ min(|g̃|, c|g|)``."""
        return torch.sign(g_adv) * torch.minimum(torch.abs(g_adv), self.condition * torch.abs(g))
