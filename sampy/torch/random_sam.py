"""Random-perturbation SAM as a ``torch.optim.Optimizer``: the twin of ``sampy.optim.RandomSAM``.

In the spirit of T. Li, W. Yan, Z. Lei, Y. Wu, K. Fang, M. Yang, X. Huang, "Efficient
Generalization Improvement Guided by Random Weight Perturbation", arXiv:2211.11489 (RWP), in
a generic form (RWP's filter-wise scaling of σ is left out). Two gradient evaluations per step:

1. ``g = ∇L(w)``                                   — ``closure()`` (or your own backward)
2. ``ε = ρ z``, ``z ~ N(0, I)`` (``kind="gaussian"``) or ``ε = ρ z/‖z‖`` (``kind="sphere"``,
   the norm global over all tensors); ``w ← w + ε``                     — ``first_step()``
3. ``g̃ = ∇L(w + ε)``                               — ``closure()`` again
4. ``w ← saved w``; ``d = λ g + (1 − λ) g̃``; base step with ``d``       — ``second_step()``

``z`` is one flat draw over the parameters that have a gradient, in group order (the
reference's order over the flattened parameter vector), split over the tensors; ρ may differ
per group. Reduces to the base optimizer when ρ = 0 or λ = 1. The clean gradient ``g`` is
kept between the passes only when λ > 0.

Seeded: ``noise="torch"`` (default) draws with a ``torch.Generator`` on the parameters'
device, so a step never waits for the host; ``noise="numpy"`` makes the reference's calls
(``rng.standard_normal(d)`` from ``numpy.random.default_rng(seed)``) and copies the draw to
the device, which is how the twin is tested against the reference (see
``sampy.torch.noise``). ``state_dict()`` holds the generator state, so a resumed run draws
the same perturbations.

Usage::

    opt = RandomSAM(model.parameters(), torch.optim.SGD, rho=0.01, mix=0.5, lr=0.1)

    def closure():
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        return loss

    loss = opt.step(closure)          # two forward/backward passes, one base step
                                      # (after loss.backward(): the closure runs once)

or, by hand: ``loss.backward(); opt.first_step(zero_grad=True); loss_fn(model(x), y).backward();
opt.second_step(zero_grad=True)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from sampy.optim import random_sam as reference
from sampy.optim.hyper import validate
from sampy.torch.base_optimizer import BaseOptimizer
from sampy.torch.groups import flat, radii, regroup, unit
from sampy.torch.noise import Noise, SavesNoise, TorchNoise
from sampy.torch.sharpness_aware import Groups, RuleContext, SharpnessAware


class RandomAscent:
    """``ε = ρ z`` (``"gaussian"``) or ``ε = ρ z/‖z‖`` (``"sphere"``), ``z ~ N(0, I)``.

    One flat draw of ``Σ numel`` values over the parameters with a gradient (group order),
    split into views shaped like the tensors; ρ is read per group. The gradients are not read.
    ``noise`` is the generator (default: a torch generator seeded with 0).
    """

    def __init__(self, kind: str, noise: Noise | None = None) -> None:
        self.kind = kind
        self.noise = TorchNoise(0) if noise is None else noise

    def draw(self, params: Groups) -> Groups:
        """``z`` per group: views of one flat draw (cast where a tensor's dtype/device differs)."""
        ps = flat(params)
        sizes = [p.numel() for p in ps]
        first = ps[0]
        z = self.noise.normal(sum(sizes), first)
        out = [
            c.view(p.shape)
            if p.dtype == first.dtype and p.device == first.device
            else c.view(p.shape).to(p)
            for c, p in zip(z.split(sizes), ps, strict=True)
        ]
        return regroup(out, params)

    def __call__(self, ctx: RuleContext, grads: Groups, inplace: bool) -> Groups:
        """``ε`` per group (the draw itself, scaled in place; ``grads`` are left alone).

        Scaling the views in place costs the template a copy of ``w`` out and back (they
        cannot take ``w + ε``); new tensors for ε would save those two passes but cost as
        much in allocation, and the draw itself (some 4 ns a value) outweighs both.
        """
        if not flat(grads):
            return grads
        z = self.draw(ctx.params)
        if self.kind == "gaussian":
            for zs, rho in zip(z, radii(ctx), strict=True):
                if zs:
                    torch._foreach_mul_(zs, rho)
            return z
        return unit(z, radii(ctx), 0.0, inplace=True)  # the reference's eps = 0 on ‖z‖


class MixedDescent:
    """``d = c g + (1 − c) g̃``: a fixed mix of the clean and the perturbed gradient.

    c = 0 is SAM's rule (then ``g`` is neither kept nor read: ``d = g̃``).
    """

    def __init__(self, clean_weight: float) -> None:
        self.clean_weight = float(clean_weight)
        self.needs_clean_grad = self.clean_weight != 0.0

    def __call__(self, ctx: RuleContext, g: Groups | None, g_adv: Groups) -> Groups:
        """``d`` per group, computed in the storage of ``g̃`` (owned by the step): two kernels,
        ``g̃ ← (1 − c) g̃`` then ``g̃ ← g̃ + c g`` (one fused multiply-add)."""
        if not self.needs_clean_grad or not flat(g_adv):
            return g_adv
        assert g is not None
        c = self.clean_weight
        clean, perturbed = flat(g), flat(g_adv)
        torch._foreach_mul_(perturbed, 1.0 - c)
        torch._foreach_add_(perturbed, clean, alpha=c)
        return g_adv


class RandomSAM(SavesNoise, SharpnessAware):
    """SAM with a random perturbation around a torch optimizer (``rho`` per group).

    Args:
        params: parameters or parameter groups (a group may set its own ``rho``).
        base_optimizer: the base optimizer (default ``torch.optim.SGD``): a class, a factory or
            an instance.
        rho: scale ρ ≥ 0 of the perturbation (σ of ``N(0, σ²I)``, or the sphere's radius).
        kind: ``"gaussian"`` (``ε = ρ z``) or ``"sphere"`` (``ε = ρ z/‖z‖``, global norm).
        mix: weight λ ∈ [0, 1] of the clean gradient in ``d = λ g + (1 − λ) g̃``.
        seed: seed of the perturbations.
        noise: ``"torch"`` (draws on the device) or ``"numpy"`` (the reference's draws,
            copied from the host; for tests against the reference).
        **base_kwargs: passed to ``base_optimizer`` (``lr``, ``momentum``, ...).
    """

    HYPERPARAMETERS = reference.RandomSAM.HYPERPARAMETERS

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        base_optimizer: BaseOptimizer = torch.optim.SGD,
        rho: float = 0.05,
        kind: str = "gaussian",
        mix: float = 0.0,
        seed: int = 0,
        noise: str = "torch",
        **base_kwargs: Any,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        self.kind = kind
        self.mix = float(mix)
        super().__init__(
            params,
            base_optimizer,
            noise=noise,
            seed=seed,
            ascent=RandomAscent(kind),
            descent=MixedDescent(mix),
            group_hyperparameters=dict(rho=rho),
            **base_kwargs,
        )
        self.ascent.noise = self.noise_source  # drawn by SavesNoise.__init__
