"""m-sharpness SAM and multi-step-ascent SAM as ``torch.optim.Optimizer`` s.

The twins of ``sampy.optim.MSharpnessSAM`` and ``sampy.optim.MultiStepSAM``.

m-SAM: M. Andriushchenko, N. Flammarion, "Towards Understanding Sharpness-Aware Minimization", ICML
2022, arXiv:2206.06232 (n-SAM / 1-SAM / m-SAM); the per-device perturbation of P. Foret, A. Kleiner,
H. Mobahi, B. Neyshabur, "Sharpness-Aware Minimization for Efficiently Improving Generalization",
ICLR 2021, arXiv:2010.01412, Section 4.1. The batch of n examples is split into ``M = ⌈n/m⌉``
micro-batches ``B_1..B_M`` of size m (consecutive, or a fresh random partition every step with
``shuffle``; the last one smaller when m does not divide n). For every j, one after the other:

1. ``g_j = ∇L_{B_j}(w)`` (the micro-batch mean)            — backward at w
2. ``ε_j = ρ g_j/(‖g_j‖ + eps)``; ``w ← w + ε_j``          — ``first_step()``
3. ``g̃_j = ∇L_{B_j}(w + ε_j)``                             — backward at w + ε_j
4. ``w ← saved w``; ``d ← d + (|B_j|/n) g̃_j``              — ``accumulate()``

then one base step with ``d`` at ``w`` (``second_step()``). The reference takes all ``g_j``
first, then all ``g̃_j``; each depends only on w and its own micro-batch, so the numbers are
the same, and interleaving keeps one gradient in memory (plus ``d`` and the saved ``w``).
``2⌈n/m⌉`` backward passes per step. Reduces to SAM on the whole batch when m ≥ n and to the
base optimizer when ρ = 0.

Multi-step ascent: optax ``contrib.sam`` with ``sync_period = ascent_steps + 1`` and
``chain(normalize(), sgd(ρ))`` (google-deepmind/optax @ 1cde7043, ``optax/contrib/_sam.py``). With k
= ``ascent_steps``:
1. ``g_0 = ∇L(w)``; ``w_1 = w + ρ g_0/(‖g_0‖ + eps)``               — ``first_step()``
2. for ``j = 1..k−1``: ``g_j = ∇L(w_j)``; ``w_{j+1} = w_j + ρ g_j/(‖g_j‖ + eps)``
                                                                   — ``ascent_step()``
3. ``g_k = ∇L(w_k)``; ``w ← saved w``; base step with ``g_k``       — ``second_step()``

``k + 1`` gradient evaluations per step. Each ascent step has length ρ (the last point may lie
up to kρ from w). Reduces to SAM when k = 1, to the base optimizer when ρ = 0. All norms are
global over all tensors of all groups; ρ may differ per group.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from sampy.optim import msharpness as reference
from sampy.optim.hyper import validate
from sampy.torch.base_optimizer import BaseOptimizer
from sampy.torch.examples import ExampleLosses, example_losses, require_example_closure
from sampy.torch.groups import flat
from sampy.torch.noise import SavesNoise
from sampy.torch.sam import NormBallAscent
from sampy.torch.sharpness_aware import PerturbedGradient, SharpnessAware

ACCUMULATED = "d"  # state key of the accumulated direction d = Σ_j (|B_j|/n) g̃_j


class MSharpnessSAM(SavesNoise, SharpnessAware):
    """m-sharpness SAM: every micro-batch of m examples is perturbed with its own gradient.

    Args:
        params: parameters or parameter groups (a group may set its own ``rho``).
        base_optimizer: the base optimizer (default ``torch.optim.SGD``): a class, a factory or
            an instance.
        rho: radius ρ of each micro-batch's perturbation.
        m: micro-batch size (m ≥ n: SAM on the whole batch; m = 1: 1-SAM).
        shuffle: draw a new random partition every step (``permutation(n)`` of the noise
            source); otherwise the micro-batches are the consecutive examples
            ``[0, m), [m, 2m), …``.
        seed: seed of the shuffling.
        perturb_eps: the guard in ``ρ/(‖g_j‖ + eps)``.
        noise: ``"torch"`` (permutations drawn on the device) or ``"numpy"`` (the reference's
            ``rng.permutation(n)``, copied from the host; for tests against the reference).
        **base_kwargs: passed to ``base_optimizer`` (``lr``, ``momentum``, ...).

    ``step`` takes an **example closure** (``sampy.torch.examples``): ``closure(indices=None)``
    returns the un-reduced losses of the batch's examples ``indices`` (all n, in order, for
    None); it neither zeroes the gradients nor calls ``backward`` — the optimizer does. A step
    calls it twice per micro-batch (at ``w`` and at ``w + ε_j``), each followed by a backward;
    given ``batch_size=n`` that is all, otherwise it first calls ``closure(None)`` once without
    a graph to learn n (one extra forward)::

        opt = MSharpnessSAM(model.parameters(), torch.optim.SGD, rho=0.05, m=32, lr=0.1)

        for x, y in loader:
            def losses(indices=None):
                xb, yb = (x, y) if indices is None else (x[indices], y[indices])
                return torch.nn.functional.cross_entropy(model(xb), yb, reduction="none")

            loss = opt.step(losses, batch_size=len(y))  # 2⌈n/m⌉ passes, one base step

    By hand (no extra forward; every backward is of the micro-batch's *mean* loss)::

        for idx in opt.micro_batches(len(x)):      # draws the partition when shuffling
            loss_fn(model(x[idx]), y[idx]).backward()
            opt.first_step(zero_grad=True)
            loss_fn(model(x[idx]), y[idx]).backward()
            opt.accumulate(len(idx) / len(x), zero_grad=True)
        opt.second_step(zero_grad=True)
    """

    needs_examples = True
    HYPERPARAMETERS = reference.MSharpnessSAM.HYPERPARAMETERS

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        base_optimizer: BaseOptimizer = torch.optim.SGD,
        rho: float = 0.05,
        m: int = 8,
        shuffle: bool = False,
        seed: int = 0,
        perturb_eps: float = 1e-12,
        noise: str = "torch",
        **base_kwargs: Any,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        self.m = int(m)
        self.shuffle = bool(shuffle)
        self.perturb_eps = float(perturb_eps)
        super().__init__(
            params,
            base_optimizer,
            noise=noise,
            seed=seed,
            ascent=NormBallAscent(perturb_eps=perturb_eps),
            descent=PerturbedGradient(),
            group_hyperparameters=dict(rho=rho),
            **base_kwargs,
        )
        self._accumulated: list[Tensor] = []  # the parameters d has a term for, this step

    def grad_evals(self, n: int) -> int:
        """Backward passes per step on a batch of ``n`` examples: ``2⌈n/m⌉``."""
        return 2 * math.ceil(n / min(self.m, n))

    def micro_batches(self, n: int, device: torch.device | str | None = None) -> list[Tensor]:
        """This step's micro-batches of ``0..n-1``: int64 index tensors on ``device``.

        Draws a permutation (one per call) when ``shuffle``; ``device`` defaults to the first
        parameter's.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n (the number of examples) must be an integer >= 1, got {n!r}")
        if device is None:
            device = self.param_groups[0]["params"][0].device
        device = torch.device(device)
        if self.shuffle:
            order = self.noise_source.permutation(n, device)
        else:
            order = torch.arange(n, device=device)
        return list(order.split(min(self.m, n)))

    @torch.no_grad()
    def accumulate(self, weight: float, zero_grad: bool = False) -> None:
        """Return to the saved ``w`` and add ``weight · g̃_j`` (in ``p.grad``) to ``d``."""
        params, _, g_adv = self._restore(need_clean=False, call="accumulate()")
        ps = flat(params)
        seen = {id(p) for p in self._accumulated}
        fresh = [p for p in ps if id(p) not in seen]
        for p in fresh:
            state = self.state[p]
            if ACCUMULATED not in state or state[ACCUMULATED].shape != p.shape:
                state[ACCUMULATED] = torch.empty_like(p)
        if fresh:
            torch._foreach_zero_([self.state[p][ACCUMULATED] for p in fresh])
            self._accumulated.extend(fresh)
        if ps:
            d = [self.state[p][ACCUMULATED] for p in ps]
            torch._foreach_add_(d, flat(g_adv), alpha=weight)
        if zero_grad:
            self._zero_grads(params)

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False) -> None:
        """The base step at ``w`` with ``d`` (parameters without a term in ``d`` are skipped)."""
        if self._perturbed is not None:
            raise RuntimeError("second_step() after first_step() needs accumulate() in between")
        if not self._accumulated:
            raise RuntimeError(
                "second_step() called without first_step()/accumulate(): no direction d"
            )
        accumulated, self._accumulated = self._accumulated, []
        if self._skips([[self.state[p][ACCUMULATED] for p in accumulated]]):
            return  # skip_nonfinite: a non-finite d, and w is where it was
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None
        for p in accumulated:
            p.grad = self.state[p][ACCUMULATED]
        self._base_step()
        if zero_grad:
            self.zero_grad()

    def step(  # type: ignore[override]
        self, closure: ExampleLosses | None = None, batch_size: int | None = None
    ) -> Tensor:
        """One m-SAM step with an example closure; returns the mean loss at ``w`` (detached).

        ``closure(indices)`` runs twice per micro-batch, each followed by ``mean().backward()``;
        the loss returned is ``Σ_j (|B_j|/n) · mean ℓ_{B_j}(w)`` from the passes at ``w``.
        Without ``batch_size`` (the n of the batch) ``closure(None)`` first runs once without
        a graph to count the examples.
        """
        closure = require_example_closure(type(self).__name__, closure)
        if batch_size is None:
            n = example_losses(torch.no_grad()(closure)).numel()
        elif isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        else:
            n = batch_size
        self._discard_entry_grads()
        total = None
        try:
            for idx in self.micro_batches(n):
                at_w = example_losses(closure, idx).mean()
                at_w.backward()
                part = at_w.detach() * (idx.numel() / n)
                total = part if total is None else total + part
                self.first_step(zero_grad=True)
                with self.restore_on_error():
                    example_losses(closure, idx).mean().backward()
                    self.accumulate(idx.numel() / n, zero_grad=True)
            self.second_step()
        except BaseException:
            self._accumulated = []  # the step is abandoned: no partial d for the next one
            raise
        self._drop_grads()
        return total

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load the state (a step in progress is abandoned)."""
        super().load_state_dict(state_dict)
        self._accumulated = []


class MultiStepSAM(SharpnessAware):
    """SAM with k normalised ascent steps (optax ``sync_period = k + 1``; ``rho`` per group).

    Args:
        params: parameters or parameter groups (a group may set its own ``rho``).
        base_optimizer: the base optimizer (default ``torch.optim.SGD``): a class, a factory or
            an instance.
        rho: length ρ of every ascent step.
        ascent_steps: k ≥ 1 (1 = SAM).
        perturb_eps: the guard in ``ρ/(‖g‖ + eps)`` (optax's ``normalize()`` has none: 0).
        **base_kwargs: passed to ``base_optimizer`` (``lr``, ``momentum``, ...).

    ``step(closure)`` calls the usual closure (zero the gradients, loss, ``backward()``)
    ``k + 1`` times. By hand::

        loss_fn(model(x), y).backward()                 # g_0 at w
        opt.first_step(zero_grad=True)                  # w_1
        for _ in range(opt.ascent_steps - 1):
            loss_fn(model(x), y).backward()             # g_j at w_j
            opt.ascent_step(zero_grad=True)             # w_{j+1}
        loss_fn(model(x), y).backward()                 # g_k at w_k
        opt.second_step(zero_grad=True)                 # back to w, base step with g_k
    """

    needs_examples = False
    HYPERPARAMETERS = reference.MultiStepSAM.HYPERPARAMETERS

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        base_optimizer: BaseOptimizer = torch.optim.SGD,
        rho: float = 0.05,
        ascent_steps: int = 1,
        perturb_eps: float = 1e-12,
        **base_kwargs: Any,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        self.ascent_steps = int(ascent_steps)
        self.perturb_eps = float(perturb_eps)
        super().__init__(
            params,
            base_optimizer,
            ascent=NormBallAscent(perturb_eps=perturb_eps),
            descent=PerturbedGradient(),
            group_hyperparameters=dict(rho=rho),
            **base_kwargs,
        )
        self._ascents_done = 0

    @property
    def grad_evals_per_step(self) -> int:  # type: ignore[override]
        """``ascent_steps + 1``."""
        return self.ascent_steps + 1

    @torch.no_grad()
    def first_step(self, zero_grad: bool = False) -> None:
        """Save ``w`` and move to ``w_1 = w + ρ g_0/(‖g_0‖ + eps)``."""
        super().first_step(zero_grad)
        self._ascents_done = 1

    @torch.no_grad()
    def ascent_step(self, zero_grad: bool = False) -> None:
        """With ``g_j = ∇L(w_j)`` in ``p.grad``: move on to ``w_{j+1} = w_j + ρ g_j/(‖g_j‖ + eps)``.

        Only the parameters saved by ``first_step`` move (one that lost its gradient counts
        as a zero gradient).
        """
        if self._perturbed is None:
            raise RuntimeError("ascent_step() must follow first_step()")
        if self._ascents_done >= self.ascent_steps:
            raise RuntimeError(
                f"ascent_step() called after {self._ascents_done} ascent steps; "
                f"ascent_steps={self.ascent_steps}: call second_step()"
            )
        params, flat_params, _ = self._perturbed
        grads = [
            [p.grad if p.grad is not None else torch.zeros_like(p) for p in ps] for ps in params
        ]
        if flat_params:
            e = self._ascent(params, grads, inplace=zero_grad)
            torch._foreach_add_(flat_params, flat(e))
        self._ascents_done += 1
        if zero_grad:
            self._zero_grads(params)

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False) -> None:
        """Return to the saved ``w`` and take the base step with ``g_k`` in ``p.grad``."""
        if self._perturbed is not None and self._ascents_done != self.ascent_steps:
            raise RuntimeError(
                f"second_step() after {self._ascents_done} of ascent_steps={self.ascent_steps} "
                "ascent steps: call ascent_step() after each further backward"
            )
        self._ascents_done = 0
        super().second_step(zero_grad)

    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """One step; the closure runs at w, w_1, …, w_k. Returns the loss at w.

        The convention of ``SharpnessAware.step``: gradients present on entry are ``∇L(w)``
        (then the closure runs ``k`` times and None is returned); every gradient is None after.
        """
        closure = self._require(closure)
        loss = None if self._has_grads() else closure()
        self.first_step(zero_grad=True)
        with self.restore_on_error():
            for _ in range(self.ascent_steps - 1):
                closure()
                self.ascent_step(zero_grad=True)
            closure()
            self.second_step()
        self._drop_grads()
        return loss
