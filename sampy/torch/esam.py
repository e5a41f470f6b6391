"""ESAM as a ``torch.optim.Optimizer``: the twin of ``sampy.optim.ESAM``.

J. Du, H. Yan, J. Feng, J. T. Zhou, L. Zhen, R. S. M. Goh, V. Y. F. Tan, "Efficient Sharpness-aware
Minimization for Improved Training of Neural Networks", ICLR 2022, arXiv:2110.03141. Official code:
dydjw9/Efficient_SAM @ 1e06840c (``utils/Esam.py``). The same step as the reference, with the
gradients in ``p.grad``:

1. SWP mask ``k ~ Bernoulli(χ)``: per coordinate (``swp_granularity="coordinate"``, one
   ``U[0, 1)`` draw per weight over the flattened parameters in group order) or per tensor
   (``"tensor"``, one draw per parameter tensor)                            — ``begin_step()``
2. ``g = ∇L(w)``                                                  — the first closure call
3. ``ε = (ρ/χ) · k ⊙ T² g / (‖T u‖ + 1e-7)``, ``T = |w|`` (``adaptive``) or 1, ``u = g``
   (``swp_norm="full"``) or ``k ⊙ g`` (``"kept"``); ``w ← w + ε``             — ``first_step()``
4. SDS (only when φ < 0.99): per-example losses at ``w`` (the first forward) and at ``w + ε``
   (a forward pass without gradients); ``S`` = the ``max(1, ⌊φn⌋)`` examples of largest
   ``ℓ_i(w + ε) − ℓ_i(w)`` (stable: ties go to the lower index, exactly k examples)
                                                                              — ``select()``
5. ``g̃ = ∇ mean_{i∈S} ℓ_i(w + ε)``                                — the last closure call
6. ``w ← saved w``; base step with ``g̃``                                    — ``second_step()``

The closure. With SDS on (φ < 0.99, the default φ = 0.5) ``step`` needs the **example
closure** of ``sampy.torch.examples``: ``closure(indices=None)`` returns the un-reduced losses
and the optimizer calls ``backward`` itself. It is called three times per step: at ``w`` (one
forward + backward of the mean; its losses are the ``ℓ_i(w)`` of step 4), at ``w + ε`` under
``torch.no_grad()`` (forward only), and at ``w + ε`` on the selected examples (forward +
backward of their mean): two backward passes and three forward passes, where the reference
counts 2 gradient evaluations and 2 loss evaluations (``ℓ_i(w)`` comes with the first
gradient). With SDS off ``step`` takes either that example closure (called with no argument,
twice) or the usual closure that computes the mean loss and calls ``backward()`` itself.

SWP's saving. With ``swp_granularity="tensor"`` and ``swp_norm="kept"`` (the official code's
setting) the tensors left unperturbed are frozen (``requires_grad=False``) for the first
backward, which therefore skips their weight gradients, as the official code does; they are
re-enabled by ``first_step``. With ``swp_norm="full"`` the norm needs the whole ``g``, so
nothing is frozen (the mask only zeroes ε). Nothing is frozen either when every tensor is
dropped (the closure's ``backward`` would have nothing to differentiate; ε is 0 anyway).
With ``"coordinate"`` granularity there is no saving in torch (the mask is a multiplication).

Draws. ``noise="torch"`` draws the coordinate masks with a seeded ``torch.Generator`` on the
parameters' device; the per-tensor decisions of ``"tensor"`` granularity are needed on the
host (to freeze tensors), so they are drawn on the CPU generator, which reads no device value.
``noise="numpy"`` makes the reference's calls: ``rng.random(d)`` over the flattened parameters
(coordinate) or ``rng.random(number of tensors)`` (tensor) — on a one-tensor model, such as a
flat vector, that is the reference's ``rng.random((1,))``, so the twin tests compare to 1e-10.
No draw is made when χ = 1. The generator state is saved by ``state_dict()``.

Usage::

    opt = ESAM(model.parameters(), torch.optim.SGD, rho=0.05, beta=0.6, gamma=0.5, lr=0.1)

    def losses(indices=None):
        x, y = (inputs, targets) if indices is None else (inputs[indices], targets[indices])
        return loss_fn(model(x), y, reduction="none")

    loss = opt.step(losses)          # the mean loss at w

or, by hand::

    opt.zero_grad()
    opt.begin_step()                 # draw the SWP mask (and freeze dropped tensors)
    before = loss_fn(model(inputs), targets, reduction="none")
    before.mean().backward()
    opt.first_step(zero_grad=True)   # w + ε
    with torch.no_grad():
        after = loss_fn(model(inputs), targets, reduction="none")
    idx = opt.select(after - before.detach())
    loss_fn(model(inputs[idx]), targets[idx]).backward()
    opt.second_step(zero_grad=True)

Reduces to: SAM with ``perturb_eps=1e-7`` when χ = φ = 1; the base optimizer when ρ = 0 and
φ ≥ 0.99.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from sampy.optim import esam as reference
from sampy.optim.hyper import validate
from sampy.torch.base_optimizer import BaseOptimizer
from sampy.torch.closures import Closure, evaluate
from sampy.torch.examples import ExampleLosses, example_losses, require_example_closure
from sampy.torch.groups import flat, global_norm, radii, regroup
from sampy.torch.masks import top_k_indices
from sampy.torch.noise import SavesNoise, TorchNoise
from sampy.torch.perturbation import per_device
from sampy.torch.sharpness_aware import Groups, PerturbedGradient, RuleContext, SharpnessAware


class SWPAscent:
    """ESAM's ascent: ``ε = (ρ/χ) k ⊙ T² g / (‖T u‖ + eps)``, the norm global over all groups.

    ``keep`` maps a parameter to its mask: a tensor of 1.0 (kept) and 0.0 (dropped) in the
    parameter's dtype (coordinates), a Python bool (its whole tensor) or nothing (χ = 1: every
    weight is kept). A float mask, not a boolean one: on the CPU a float tensor times a boolean
    one first copies the booleans into a new float tensor, several times the multiplication.
    """

    # Every ε is a consumed gradient (``inplace``) or a tensor made in the call.
    fresh_perturbation = True

    def __init__(self, beta: float, swp_norm: str, perturb_eps: float) -> None:
        self.beta = beta
        self.swp_norm = swp_norm
        self.perturb_eps = perturb_eps
        self.keep: dict[int, Tensor | bool] = {}

    def __call__(self, ctx: RuleContext, grads: Groups, inplace: bool) -> Groups:
        """``ε`` per group: new tensors, or with ``inplace`` written into ``grads`` (consumed)."""
        gs = flat(grads)
        if not gs:
            return grads
        keeps = [self.keep.get(id(p), True) for p in flat(ctx.params)]
        if any(group.get("adaptive", False) for group in ctx.groups):
            return self._adaptive(ctx, grads, keeps)
        # ε = ((g ⊙ k) · ρ/(‖u‖ + eps)/χ): two passes over g, in the consumed gradients when
        # allowed (the template then writes w + ε into them and points w at them).
        norm = global_norm(gs) if self.swp_norm == "full" else None
        work = list(gs)
        made = [False] * len(gs)
        for kind in (Tensor, bool):
            idx = [i for i, k in enumerate(keeps) if k is not True and isinstance(k, kind)]
            if not idx:
                continue
            src = [gs[i] for i in idx]
            # A dropped tensor is g · 0 (NaN stays NaN), as the reference multiplies by False.
            ks = [keeps[i] for i in idx] if kind is Tensor else 0.0
            if inplace:
                torch._foreach_mul_(src, ks)
                continue
            for i, t in zip(idx, torch._foreach_mul(src, ks), strict=True):
                work[i], made[i] = t, True
        if norm is None:
            norm = global_norm(work)
        out: list[Tensor] = []
        start = 0
        for ts, rho in zip(grads, radii(ctx), strict=True):
            stop = start + len(ts)
            group = work[start:stop]
            coef = rho / (norm + self.perturb_eps) / self.beta
            if group:
                if inplace or all(made[start:stop]):
                    torch._foreach_mul_(group, per_device(coef, group))
                else:
                    group = torch._foreach_mul(group, per_device(coef, group))
            out.extend(group)
            start = stop
        return regroup(out, grads)

    def _adaptive(self, ctx: RuleContext, grads: Groups, keeps: list[Tensor | bool]) -> Groups:
        """ASAM's scaling ``T = |w|``: ``ε = (ρ/χ) k ⊙ T² g / (‖T u‖ + eps)`` (new tensors)."""
        kept, us, squares = [], [], []
        i = 0
        for ps, gs, group in zip(ctx.params, grads, ctx.groups, strict=True):
            adaptive = group.get("adaptive", False)
            for p, g in zip(ps, gs, strict=True):
                k = keeps[i]
                i += 1
                kg = g if k is True else g * k  # a dropped tensor: g · False, as the reference
                scale = p.abs() if adaptive else None
                base = kg if self.swp_norm == "kept" else g
                kept.append(kg)
                us.append(base if scale is None else scale * base)
                squares.append(None if scale is None else scale * scale)
        norm = global_norm(us)
        out: list[Tensor] = []
        for (ks, sqs), rho in zip(
            zip(regroup(kept, grads), regroup(squares, grads), strict=True), radii(ctx), strict=True
        ):
            coef = rho / (norm + self.perturb_eps) / self.beta
            for k, sq in zip(ks, sqs, strict=True):
                c = coef.to(k.device)  # a model split over devices: ρ/‖Tu‖ lives on the first
                out.append(k * c if sq is None else (sq * c) * k)
        return regroup(out, grads)


class ESAM(SavesNoise, SharpnessAware):
    """Efficient SAM (stochastic weight perturbation, sharpness-sensitive data selection).

    Args:
        params: parameters or parameter groups (a group may set its own ``rho``/``adaptive``;
            the norm is shared by all groups).
        base_optimizer: the base optimizer (default ``torch.optim.SGD``): a class, a factory or
            an instance.
        rho: radius ρ (the expected perturbation has length ρ).
        beta: SWP keep probability χ ∈ (0, 1] (1 = no SWP).
        gamma: SDS fraction φ ∈ (0, 1] of examples in the second gradient (≥ 0.99 = all).
        adaptive: ASAM's scaling ``T = |w|``.
        swp_granularity: ``"coordinate"`` (paper) or ``"tensor"`` (official code).
        swp_norm: normalise by ``‖g‖`` (``"full"``, paper) or the kept part (``"kept"``).
        seed: seed of the SWP masks.
        perturb_eps: the guard in ``ρ/(‖g‖ + eps)`` (1e-7 as the official code).
        noise: ``"torch"`` (draws on the device) or ``"numpy"`` (the reference's draws).
        **base_kwargs: passed to ``base_optimizer`` (``lr``, ``momentum``, ...).
    """

    HYPERPARAMETERS = reference.ESAM.HYPERPARAMETERS
    grad_evals_per_step = 2

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        base_optimizer: BaseOptimizer = torch.optim.SGD,
        rho: float = 0.05,
        beta: float = 0.6,
        gamma: float = 0.5,
        adaptive: bool = False,
        swp_granularity: str = "coordinate",
        swp_norm: str = "full",
        seed: int = 0,
        perturb_eps: float = 1e-7,
        noise: str = "torch",
        **base_kwargs: Any,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        self.beta = float(beta)
        self.gamma = float(gamma)
        self.swp_granularity = swp_granularity
        self.swp_norm = swp_norm
        self.perturb_eps = float(perturb_eps)
        super().__init__(
            params,
            base_optimizer,
            noise=noise,
            seed=seed,
            ascent=SWPAscent(self.beta, swp_norm, self.perturb_eps),
            descent=PerturbedGradient(),
            group_hyperparameters=dict(rho=rho, adaptive=adaptive),
            **base_kwargs,
        )
        self._drawn = False  # this step's SWP mask is drawn (begin_step, or first_step)
        self._frozen: list[Tensor] = []

    @property
    def selects_data(self) -> bool:
        """Whether SDS is on (φ < 0.99, the official threshold): the closure must give examples."""
        return self.gamma < 0.99

    def _all_params(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    # -- SWP ---------------------------------------------------------------------------------

    def _draw(self, freeze: bool) -> None:
        """Draw this step's keep mask into the ascent rule (none when χ = 1)."""
        self.ascent.keep = {}
        self._drawn = True
        if self.beta >= 1.0:
            return
        params = self._all_params()
        if self.swp_granularity == "tensor":
            # Host decisions (they choose what to freeze): the CPU generator, no device read.
            cpu = torch.empty(0, dtype=torch.float64)
            keeps = (self.noise_source.uniform(len(params), like=cpu) < self.beta).tolist()
            self.ascent.keep = {id(p): bool(k) for p, k in zip(params, keeps, strict=True)}
            dropped = [p for p, k in zip(params, keeps, strict=True) if not k and p.requires_grad]
            kept = [p for p, k in zip(params, keeps, strict=True) if k and p.requires_grad]
            if freeze and self.swp_norm == "kept" and kept:
                for p in dropped:
                    p.requires_grad_(False)
                self._frozen = dropped
            return
        # 1.0 where kept, 0.0 where dropped, written over the draws (see SWPAscent.keep).
        self.ascent.keep = self._masks(params, self._uniforms(params).lt_(self.beta))

    def _uniforms(self, params: list[Tensor]) -> Tensor:
        """The ``d`` draws ``U[0, 1)`` of the coordinate masks, flat.

        On the CPU with the torch generator they are drawn into one buffer reused from step to
        step (the same draws as ``torch.rand``): a fresh megabyte costs more in page faults than
        the comparison that follows.
        """
        first = params[0]
        if self._numpy_noise:
            like = torch.empty(0, dtype=torch.float64, device=first.device)
            return self.noise_source.uniform(sum(p.numel() for p in params), like=like)
        if first.device.type != "cpu" or not isinstance(self.noise_source, TorchNoise):
            return self.noise_source.uniform(sum(p.numel() for p in params), like=first.detach())
        found = self._swp_cache
        if found is None or len(found[0]) != len(params) or found[1].dtype != first.dtype:
            found = None
        elif not all(a is b for a, b in zip(found[0], params, strict=True)):
            found = None
        if found is None:
            draws = torch.empty(sum(p.numel() for p in params), dtype=first.dtype)
            same = all(p.device == first.device and p.dtype == first.dtype for p in params)
            found = self._swp_cache = (
                list(params),
                draws,
                self._views(params, draws) if same else None,
            )
        return self.noise_source.uniform_into(found[1])

    @staticmethod
    def _views(params: list[Tensor], flat_mask: Tensor) -> dict[int, Tensor]:
        """Each parameter's piece of the flat mask, in its shape, dtype and device."""
        chunks = torch.split(flat_mask, [p.numel() for p in params])
        return {
            id(p): c.view(p.shape).to(device=p.device, dtype=p.dtype)
            for p, c in zip(params, chunks, strict=True)
        }

    def _masks(self, params: list[Tensor], flat_mask: Tensor) -> dict[int, Tensor]:
        found = self._swp_cache
        if found is not None and found[1] is flat_mask and found[2] is not None:
            return found[2]  # views of the reused buffer, made once
        return self._views(params, flat_mask)

    _swp_cache: tuple[list[Tensor], Tensor, dict[int, Tensor] | None] | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_swp_cache", None)  # scratch: a copy or pickle draws into its own buffer
        return state

    def _unfreeze(self) -> None:
        for p in self._frozen:
            p.requires_grad_(True)
        self._frozen = []

    def begin_step(self) -> None:
        """Draw this step's SWP mask before the first backward.

        With ``swp_granularity="tensor"`` and ``swp_norm="kept"`` the dropped tensors are frozen
        (``requires_grad=False``) until ``first_step``, so the first backward skips them. Optional:
        ``first_step`` draws the mask itself when this was not called (same draws, no saving).
        """
        self._unfreeze()
        self._draw(freeze=True)

    @torch.no_grad()
    def first_step(self, zero_grad: bool = False) -> None:
        """Re-enable frozen tensors, save ``w`` and move to ``w + ε`` (``g`` in ``p.grad``)."""
        self._unfreeze()
        if self._perturbed is None and not self._drawn:
            self._draw(freeze=False)
        params = self._params_to_perturb()
        grads = [[p.grad for p in ps] for ps in params]
        # Unless the descent rule reads g, ε is made in the gradients that zero_grad drops.
        inplace = zero_grad and not self.descent.needs_clean_grad
        e = self._ascent(params, grads, inplace=inplace)
        self.ascent.keep = {}
        self._drawn = False
        self._save_and_perturb(params, e, consumed=inplace, fresh=self.ascent.fresh_perturbation)
        if zero_grad:
            self._zero_grads(params)

    # -- SDS ---------------------------------------------------------------------------------

    @torch.no_grad()
    def select(self, sharpness: Tensor) -> Tensor:
        """SDS: the indices (ascending, int64, on the device) of the ``max(1, ⌊φn⌋)`` examples of
        largest ``sharpness = ℓ(w + ε) − ℓ(w)``; ties go to the lower index. All of them when
        SDS is off (φ ≥ 0.99)."""
        if sharpness.dim() != 1 or sharpness.numel() == 0:
            raise ValueError(
                "sharpness must be a non-empty 1-D tensor (one value per example), got shape "
                f"{tuple(sharpness.shape)}"
            )
        n = sharpness.numel()
        if not self.selects_data:
            return torch.arange(n, device=sharpness.device)
        return top_k_indices(sharpness, max(1, int(n * self.gamma)))

    # -- the step ----------------------------------------------------------------------------

    def step(self, closure: Closure | ExampleLosses | None = None) -> Tensor:  # type: ignore[override]
        """One ESAM step; returns the mean loss at ``w``.

        With SDS on, ``closure`` is an example closure (``sampy.torch.examples``), called at
        ``w``, at ``w + ε`` without gradients and at ``w + ε`` on the selected examples. With SDS
        off it may also be a plain closure (mean loss, ``backward()`` inside); it runs twice.
        """
        if self.selects_data:
            closure = require_example_closure("ESAM's data selection (gamma < 0.99)", closure)
        else:
            closure = self._require(closure)
        self._discard_entry_grads()
        self.begin_step()
        try:
            if self.selects_data:
                losses = example_losses(closure)
                before = losses.detach()
                mean = losses.mean()
                if mean.requires_grad:
                    mean.backward()
                loss = mean.detach()
            else:
                loss, _ = evaluate(closure)
        finally:
            self._unfreeze()
        self.first_step(zero_grad=True)
        with self.restore_on_error():
            if self.selects_data:
                after = example_losses(_no_grad(closure))
                if after.numel() != before.numel():
                    raise ValueError(
                        f"the example closure returned {before.numel()} losses at w and "
                        f"{after.numel()} at w + ε: it must evaluate the same batch"
                    )
                chosen = self.select(after - before)
                mean = example_losses(closure, chosen).mean()
                if mean.requires_grad:
                    mean.backward()
            else:
                evaluate(closure)
            self.second_step()
        self._drop_grads()
        return loss


def _no_grad(closure: ExampleLosses) -> ExampleLosses:
    def forward_only(indices: Tensor | None = None) -> Tensor:
        with torch.no_grad():
            return closure(indices)

    return forward_only
