"""SSAM-F and SSAM-D as ``torch.optim`` optimizers: the twins of ``sampy.optim.ssam``.

P. Mi, L. Shen, T. Ren, Y. Zhou, X. Sun, R. Ji, D. Tao, "Make Sharpness-Aware Minimization Stronger:
A Sparsified Perturbation Approach", NeurIPS 2022, arXiv:2210.05177. Official code:
Mi-Peng/Sparse-Sharpness-Aware-Minimization @ 76974fd0 (``solver/sam.py``, classes ``SSAMF``,
``SSAMD``). A binary mask ``m`` over **all** the parameters (one global mask: the flattened
parameters of every group, in group order, as the reference's flat vector), kept per parameter as a
boolean tensor in ``state[p]["mask"]``; a step counter t = 0, 1, … in ``shared["step"]``:

1. ``g = ∇L(w)``                                                 — the first closure call
2. ``ε = ρ m ⊙ g / (‖g‖ + 1e-7)`` — the FULL ‖g‖; ``w ← w + ε``          — ``first_step()``
3. ``g̃ = ∇L(w + ε)``                                             — the second closure call
4. ``w ← saved w``; base step with ``g̃``; ``t ← t + 1``                  — ``second_step()``

Steps play the role of the official code's epochs: the mask is refreshed on steps with
``t % update_freq == 0``. Top-k choices are global over all tensors and stable (ties go to the
lower flat index), computed on the device with a top-k threshold; every count k depends only on
sizes and hyperparameters, so it is a Python int and no step reads a device value.

**SSAMF** (Fisher mask): all zeros at first (the first step is a base step costing 2
evaluations). After the update of a refresh step (``second_step`` sets ``refresh_due``;
``update_mask`` does it), at the new ``w``: ``F = Σ_{i∈I} (∇ℓ_i(w))²`` over
``N = min(num_samples, n)`` of the closure's ``n`` examples drawn without replacement
(``noise.permutation(n)[:N]``), one forward + backward per example (N closure calls, through
``torch.autograd.grad``: ``p.grad`` is left alone), and ``m`` keeps the ``int(d (1 − s))``
largest ``F_i``. With a plain closure ``F = g(w)²`` (one more closure call, the reference's
plain-function rule). The per-example passes cost N small backward passes per refresh, as the
official code's batch-size-1 Fisher loader; keep ``num_samples`` small or refresh rarely.

**SSAMD** (drop-and-grow): the mask starts as the top ``d − ⌈d s⌉`` of ``d`` uniform draws
(made at the first step). On a refresh step, inside ``first_step`` right after ε (with the
clean ``g`` and the *perturbed* weights ``w + ε``; the new mask takes effect next step)::

    dr = drop_rate · (1 + cos(π (t − T_start)/(T_end − T_start))) / 2
    D = (score_drop + 1e-7) m ;  G = (score_grow + 1e-7)(1 − m)
    m ← top-int((d − d s)(1 − dr)) of D  ∨  top-int(min((d − d s) dr, d s)) of G

with scores ``|w|``, ``|g|`` (0 for a parameter without gradient) or ``U[0, 1)`` draws.

The closure: the usual one (zero the gradients, compute the mean loss, ``backward()``) or the
example closure of ``sampy.torch.examples`` (``closure(indices=None)`` → un-reduced losses,
the optimizer calls ``backward`` on their mean); only SSAMF's Fisher uses the examples.
Draws: ``noise="torch"`` (a seeded ``torch.Generator`` on the device) or ``"numpy"`` (the
reference's calls: ``rng.random(d)``, ``rng.permutation(n)``). The generator state, the masks
and the counter are saved by ``state_dict()``.

Usage::

    opt = SSAMF(model.parameters(), torch.optim.SGD, rho=0.05, sparsity=0.5, num_samples=16,
                update_freq=100, lr=0.1, momentum=0.9)

    def losses(indices=None):
        x, y = (inputs, targets) if indices is None else (inputs[indices], targets[indices])
        return loss_fn(model(x), y, reduction="none")

    loss = opt.step(losses)     # 2 passes; + 16 one-example passes on refresh steps

By hand (SSAMD needs only the first four lines)::

    loss_fn(model(x), y).backward()
    opt.first_step(zero_grad=True)
    loss_fn(model(x), y).backward()
    opt.second_step(zero_grad=True)
    if opt.refresh_due:                          # SSAMF only
        opt.update_mask(losses, num_examples=len(y))

Reduces to SAM (``perturb_eps=1e-7``) when s = 0 (SSAMF after its first refresh, SSAMD while
``drop_rate = 0``); to the base optimizer when s = 1 or ρ = 0. Parameters added with
``add_param_group`` after the first step start with an all-zero mask.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from sampy.optim import ssam as reference
from sampy.optim.hyper import validate
from sampy.torch.base_optimizer import BaseOptimizer
from sampy.torch.closures import Closure, evaluate
from sampy.torch.examples import ExampleLosses, example_losses
from sampy.torch.groups import flat, global_norm, radii, regroup
from sampy.torch.masks import top_k_mask
from sampy.torch.noise import SavesNoise
from sampy.torch.perturbation import per_device
from sampy.torch.sharpness_aware import Groups, PerturbedGradient, RuleContext, SharpnessAware

MASK = "mask"  # state key of a parameter's boolean mask


class MaskedAscent:
    """SSAM's ascent: ``ε = ρ m ⊙ g / (‖g‖ + eps)``, the norm of the unmasked ``g``.

    The masks live in the state as booleans (the checkpoint layout); on the CPU ``g`` is
    multiplied by a float copy of them (0.0 and 1.0, the same products), made when a mask
    changes: a float tensor times a boolean one first copies the booleans into a new float
    tensor, several times the multiplication, and the masks change once per refresh.
    """

    # Every ε is a consumed gradient (``inplace``) or a tensor made in the call.
    fresh_perturbation = True

    def __init__(self, perturb_eps: float) -> None:
        self.perturb_eps = perturb_eps
        self._floats: tuple[list[Tensor], list[int], list[Tensor]] | None = None

    def masks(self, state: Any, params: list[Tensor]) -> list[Tensor]:
        """The masks of ``params``: float copies on the CPU (kept while the masks are the same
        tensors, unmodified), the boolean masks themselves elsewhere."""
        bools = [state[p][MASK] for p in params]
        found = self._floats
        if (
            found is not None
            and len(found[0]) == len(bools)
            and all(
                a is b and a._version == v
                for a, b, v in zip(bools, found[0], found[1], strict=True)
            )
        ):
            return found[2]
        if any(type(m) is not Tensor or m.device.type != "cpu" for m in bools):
            return bools
        floats = [m.to(p.dtype) for m, p in zip(bools, params, strict=True)]
        self._floats = (bools, [m._version for m in bools], floats)
        return floats

    def remember(self, state: Any, params: list[Tensor], flat_floats: Tensor) -> None:
        """Take the float masks of ``params`` from ``flat_floats`` (the masks just set, as
        0.0/1.0, flattened in order), saving their conversion at the next step."""
        bools = [state[p][MASK] for p in params]
        if any(type(m) is not Tensor or m.device.type != "cpu" for m in bools):
            return
        chunks = torch.split(flat_floats, [p.numel() for p in params])
        floats = [c.view(p.shape).to(p.dtype) for c, p in zip(chunks, params, strict=True)]
        self._floats = (bools, [m._version for m in bools], floats)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_floats": None}  # scratch: a copy makes its own

    def __call__(self, ctx: RuleContext, grads: Groups, inplace: bool) -> Groups:
        """``ε`` per group: new tensors, or with ``inplace`` written into ``grads`` (consumed)."""
        gs = flat(grads)
        if not gs:
            return grads
        norm = global_norm(gs)
        masks = self.masks(ctx.state, flat(ctx.params))
        if inplace:
            torch._foreach_mul_(gs, masks)
            masked = gs
        else:
            masked = torch._foreach_mul(gs, masks)
        out = regroup(masked, grads)
        for es, rho in zip(out, radii(ctx), strict=True):
            if es:
                torch._foreach_mul_(es, per_device(rho / (norm + self.perturb_eps), es))
        return out


class _SparseSAM(SavesNoise, SharpnessAware):
    """The common step; subclasses choose the initial mask and how it is refreshed."""

    grad_evals_per_step: float = 2

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        base_optimizer: BaseOptimizer,
        *,
        rho: float,
        sparsity: float,
        update_freq: int,
        seed: int,
        perturb_eps: float,
        noise: str,
        **base_kwargs: Any,
    ) -> None:
        self.sparsity = float(sparsity)
        self.update_freq = int(update_freq)
        self.perturb_eps = float(perturb_eps)
        super().__init__(
            params,
            base_optimizer,
            noise=noise,
            seed=seed,
            ascent=MaskedAscent(self.perturb_eps),
            descent=PerturbedGradient(),
            group_hyperparameters=dict(rho=rho),
            **base_kwargs,
        )
        self.shared["step"] = 0

    # -- the mask ----------------------------------------------------------------------------

    def _all_params(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def _like(self, params: list[Tensor]) -> Tensor:
        """Dtype and device of the draws: the parameters', float64 for the NumPy draws."""
        if self._numpy_noise:
            return torch.empty(0, dtype=torch.float64, device=params[0].device)
        return params[0].detach()

    def _initial_mask(self, params: list[Tensor]) -> Tensor:
        raise NotImplementedError

    def _set_masks(self, params: list[Tensor], mask: Tensor) -> None:
        chunks = torch.split(mask, [p.numel() for p in params])
        for p, chunk in zip(params, chunks, strict=True):
            self.state[p][MASK] = chunk.view(p.shape).to(p.device)

    def _ensure_masks(self) -> list[Tensor]:
        """Every parameter has a mask (the initial one at the first step); all parameters."""
        params = self._all_params()
        missing = [p for p in params if MASK not in self.state[p]]
        if len(missing) == len(params) and params:
            self._set_masks(params, self._initial_mask(params))
        else:
            for p in missing:
                self.state[p][MASK] = torch.zeros(p.shape, dtype=torch.bool, device=p.device)
        return params

    def flat_mask(self) -> Tensor:
        """The global mask as one boolean vector (the parameters flattened in group order)."""
        params = self._ensure_masks()
        return torch.cat([self.state[p][MASK].reshape(-1) for p in params])

    def refreshes(self, count: int) -> bool:
        """Whether step ``count`` (0-based) refreshes the mask."""
        return count % self.update_freq == 0

    # -- the step ----------------------------------------------------------------------------

    @torch.no_grad()
    def first_step(self, zero_grad: bool = False) -> None:
        """Save ``w`` and move to ``w + ρ m ⊙ g/(‖g‖ + eps)`` (``g`` in ``p.grad``)."""
        self._ensure_masks()
        params = self._params_to_perturb()
        grads = [[p.grad for p in ps] for ps in params]
        # ε in the gradients that zero_grad drops, unless the descent rule or the refresh
        # after the perturbation reads them.
        inplace = zero_grad and not (self.descent.needs_clean_grad or self._reads_clean_grads())
        e = self._ascent(params, grads, inplace=inplace)
        self._save_and_perturb(params, e, consumed=inplace, fresh=self.ascent.fresh_perturbation)
        self._after_perturb(params, grads)
        if zero_grad:
            self._zero_grads(params)

    def _after_perturb(self, params: Groups, grads: Groups) -> None:
        """A hook at ``w + ε`` with the clean gradients (SSAMD refreshes its mask here)."""

    def _reads_clean_grads(self) -> bool:
        """Whether this step's ``_after_perturb`` reads the clean gradients."""
        return False

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False) -> None:
        """Restore ``w``, take the base step with ``g̃``, advance the counter."""
        super().second_step(zero_grad)
        self.shared["step"] = self.shared.get("step", 0) + 1


class SSAMF(_SparseSAM):
    """Sparse SAM with a Fisher-information mask, around a torch optimizer.

    Args:
        params: parameters or parameter groups (a group may set its own ``rho``).
        base_optimizer: the base optimizer (default ``torch.optim.SGD``): a class, a factory or
            an instance.
        rho: radius ρ.
        sparsity: fraction s of coordinates that are not perturbed.
        num_samples: examples N_s in the Fisher estimate (at most the closure's n are used).
        update_freq: refresh the mask every ``update_freq`` steps.
        seed: seed of the example draws.
        perturb_eps: the guard in ``ρ/(‖g‖ + eps)``.
        noise: ``"torch"`` (draws on the device) or ``"numpy"`` (the reference's draws).
        **base_kwargs: passed to ``base_optimizer`` (``lr``, ``momentum``, ...).
    """

    HYPERPARAMETERS = reference.SSAMF.HYPERPARAMETERS

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        base_optimizer: BaseOptimizer = torch.optim.SGD,
        rho: float = 0.05,
        sparsity: float = 0.2,
        num_samples: int = 1024,
        update_freq: int = 5,
        seed: int = 0,
        perturb_eps: float = 1e-7,
        noise: str = "torch",
        **base_kwargs: Any,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        self.num_samples = int(num_samples)
        super().__init__(
            params,
            base_optimizer,
            rho=rho,
            sparsity=sparsity,
            update_freq=update_freq,
            seed=seed,
            perturb_eps=perturb_eps,
            noise=noise,
            **base_kwargs,
        )
        self.shared["refresh_due"] = False

    @property
    def grad_evals_per_step(self) -> float:  # type: ignore[override]
        """Long-run average with an example closure of n ≥ N_s: ``2 + N_s/update_freq``."""
        return 2.0 + self.num_samples / self.update_freq

    @property
    def refresh_due(self) -> bool:
        """Whether the step just taken was a refresh step whose ``update_mask`` is pending."""
        return bool(self.shared.get("refresh_due", False))

    def _initial_mask(self, params: list[Tensor]) -> Tensor:
        d = sum(p.numel() for p in params)
        return torch.zeros(d, dtype=torch.bool, device=params[0].device)

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False) -> None:
        """Restore ``w``, base step with ``g̃``; on a refresh step set ``refresh_due``."""
        t = self.shared.get("step", 0)
        super().second_step(zero_grad)
        self.shared["refresh_due"] = self.refreshes(t)

    def fisher(
        self, closure: ExampleLosses | None = None, num_examples: int | None = None
    ) -> list[Tensor]:
        """``Σ_{i∈I} (∇ℓ_i(w))²`` per parameter (all parameters, group order).

        With an example closure: over ``N = min(num_samples, num_examples)`` examples drawn
        without replacement from ``0..num_examples-1``, one forward + backward each. Without:
        ``g²`` from the gradients in ``p.grad`` (0 where a parameter has none).
        """
        params = self._all_params()
        if closure is None:
            with torch.no_grad():
                return [torch.zeros_like(p) if p.grad is None else p.grad * p.grad for p in params]
        if num_examples is None or isinstance(num_examples, bool) or num_examples < 1:
            raise ValueError(
                "num_examples must be the number of examples the closure holds (an int >= 1), "
                f"got {num_examples!r}"
            )
        num_examples = int(num_examples)
        count = min(self.num_samples, num_examples)
        chosen = self.noise_source.permutation(num_examples, params[0].device)[:count]
        total = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in params]
        live = [i for i, p in enumerate(params) if p.requires_grad]
        for i in range(count):
            loss = example_losses(closure, chosen[i : i + 1]).sum()
            if not loss.requires_grad:
                continue
            grads = torch.autograd.grad(loss, [params[j] for j in live], allow_unused=True)
            with torch.no_grad():
                pairs = [(total[j], g) for j, g in zip(live, grads, strict=True) if g is not None]
                if pairs:
                    acc = [a for a, _ in pairs]
                    gs = [g for _, g in pairs]
                    torch._foreach_add_(acc, torch._foreach_mul(gs, gs))
        return total

    @torch.no_grad()
    def mask_from_fisher(self, fisher: list[Tensor]) -> Tensor:
        """Keep the ``int(d (1 − s))`` largest Fisher values (global, stable), as one vector."""
        scores = torch.cat([f.reshape(-1) for f in fisher])
        return top_k_mask(scores, int(scores.numel() * (1 - self.sparsity)))

    def update_mask(
        self, closure: ExampleLosses | None = None, num_examples: int | None = None
    ) -> None:
        """The Fisher refresh at the current ``w`` (after a refresh step's ``second_step``).

        ``closure``: an example closure holding ``num_examples`` examples (per-example Fisher);
        None: ``F = g²`` from the gradients in ``p.grad`` (backward at the current ``w`` first).
        """
        params = self._ensure_masks()
        self._set_masks(params, self.mask_from_fisher(self.fisher(closure, num_examples)))
        self.shared["refresh_due"] = False

    def step(self, closure: Closure | ExampleLosses | None = None) -> Tensor:  # type: ignore[override]
        """One SSAM-F step; returns the mean loss at ``w``.

        The closure (plain or example) runs twice, plus on refresh steps N times with one
        example each (an example closure) or once more at the updated ``w`` (a plain one).
        """
        closure = self._require(closure)
        self._discard_entry_grads()
        loss, n = evaluate(closure)
        self.first_step(zero_grad=True)
        with self.restore_on_error():
            evaluate(closure)
            self.second_step()
        if self.refresh_due:
            if n is None:
                self.zero_grad()
                evaluate(closure)
                self.update_mask()
            else:
                self.update_mask(closure, num_examples=n)
        self._drop_grads()
        return loss


class SSAMD(_SparseSAM):
    """Sparse SAM with a dynamic (drop-and-grow) mask, around a torch optimizer.

    Args:
        params: parameters or parameter groups (a group may set its own ``rho``).
        base_optimizer: the base optimizer (default ``torch.optim.SGD``): a class, a factory or
            an instance.
        rho: radius ρ.
        sparsity: fraction s of coordinates that are not perturbed.
        drop_rate: the largest fraction of live entries dropped at a refresh.
        drop_strategy: which live entries survive: ``"weight"``, ``"gradient"`` or ``"random"``.
        growth_strategy: which dead entries come back (same choices).
        update_freq: refresh the mask every ``update_freq`` steps.
        T_start: step where the cosine decay of the drop rate starts.
        T_end: step where it reaches 0.
        seed: seed of the random initial mask and random scores.
        perturb_eps: the guard in ``ρ/(‖g‖ + eps)``.
        noise: ``"torch"`` (draws on the device) or ``"numpy"`` (the reference's draws).
        **base_kwargs: passed to ``base_optimizer`` (``lr``, ``momentum``, ...).
    """

    HYPERPARAMETERS = reference.SSAMD.HYPERPARAMETERS

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        base_optimizer: BaseOptimizer = torch.optim.SGD,
        rho: float = 0.05,
        sparsity: float = 0.2,
        drop_rate: float = 0.5,
        drop_strategy: str = "gradient",
        growth_strategy: str = "random",
        update_freq: int = 5,
        T_start: int = 0,  # the official code's name
        T_end: int = 100,
        seed: int = 0,
        perturb_eps: float = 1e-7,
        noise: str = "torch",
        **base_kwargs: Any,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        if T_end <= T_start:
            raise ValueError(f"T_end must be > T_start = {T_start}, got {T_end!r}")
        self.drop_rate = float(drop_rate)
        self.drop_strategy = drop_strategy
        self.growth_strategy = growth_strategy
        self.T_start = int(T_start)
        self.T_end = int(T_end)
        super().__init__(
            params,
            base_optimizer,
            rho=rho,
            sparsity=sparsity,
            update_freq=update_freq,
            seed=seed,
            perturb_eps=perturb_eps,
            noise=noise,
            **base_kwargs,
        )

    def _initial_mask(self, params: list[Tensor]) -> Tensor:
        d = sum(p.numel() for p in params)
        scores = self.noise_source.uniform(d, like=self._like(params))
        return top_k_mask(scores, d - math.ceil(d * self.sparsity))

    def drop_rate_at(self, t: int) -> float:
        """``drop_rate · (1 + cos(π (t − T_start)/(T_end − T_start)))/2`` (not clamped)."""
        phase = (t - self.T_start) / (self.T_end - self.T_start)
        return self.drop_rate * (1.0 + math.cos(math.pi * phase)) / 2.0

    def _score(self, kind: str, params: list[Tensor], grads: dict[int, Tensor]) -> Tensor:
        """A new flat tensor of scores (its caller writes into it)."""
        if kind == "weight":
            return torch.cat([p.detach().reshape(-1) for p in params]).abs_()
        if kind == "gradient":
            return torch.cat(
                [
                    grads[id(p)].reshape(-1)
                    if id(p) in grads
                    else torch.zeros(p.numel(), dtype=p.dtype, device=p.device)
                    for p in params
                ]
            ).abs_()
        return self.noise_source.uniform(sum(p.numel() for p in params), like=self._like(params))

    def _reads_clean_grads(self) -> bool:
        """A refresh step that scores by the gradient reads the clean ``g`` at ``w + ε``."""
        return self.refreshes(self.shared.get("step", 0)) and "gradient" in (
            self.drop_strategy,
            self.growth_strategy,
        )

    def _after_perturb(self, params: Groups, grads: Groups) -> None:
        """On a refresh step: drop-and-grow with ``w + ε`` and the clean ``g`` (next step's m)."""
        t = self.shared.get("step", 0)
        if not self.refreshes(t):
            return
        everything = self._all_params()
        by_param = {id(p): g for p, g in zip(flat(params), flat(grads), strict=True)}
        self._ensure_masks()
        # D = (score + 1e-7) m and G = (score + 1e-7)(1 − m), in the fresh score tensors; on
        # the CPU with the float masks, whose products are the boolean ones'.
        masks = self.ascent.masks(self.state, everything)
        mask = torch.cat([m.reshape(-1) for m in masks])
        d = mask.numel()
        live = d - d * self.sparsity  # a float, as the official code computes it
        dr = self.drop_rate_at(t)
        dead = ~mask if mask.dtype == torch.bool else torch.sub(1.0, mask)
        death = self._score(self.drop_strategy, everything, by_param).add_(1e-7).mul_(mask)
        growth = self._score(self.growth_strategy, everything, by_param).add_(1e-7).mul_(dead)
        if mask.dtype == torch.bool:
            keep = top_k_mask(death, int(live * (1.0 - dr)))
            grow = top_k_mask(growth, int(min(live * dr, d * self.sparsity)))
            self._set_masks(everything, keep | grow)
            return
        keep = top_k_mask(death, int(live * (1.0 - dr)), dtype=mask.dtype)
        grow = top_k_mask(growth, int(min(live * dr, d * self.sparsity)), dtype=mask.dtype)
        new = torch.maximum(keep, grow)  # keep ∨ grow
        self._set_masks(everything, new.bool())
        self.ascent.remember(self.state, everything, new)

    def step(self, closure: Closure | ExampleLosses | None = None) -> Tensor:  # type: ignore[override]
        """One SSAM-D step (the closure, plain or example, runs twice); the loss at ``w``."""
        closure = self._require(closure)
        self._discard_entry_grads()
        loss, _ = evaluate(closure)
        self.first_step(zero_grad=True)
        with self.restore_on_error():
            evaluate(closure)
            self.second_step()
        self._drop_grads()
        return loss
