"""bSAM (Bayesian SAM) as a ``torch.optim.Optimizer``: the twin of ``sampy.optim.BSAM``.

T. Möllenhoff, M. E. Khan, "SAM as an Optimal Relaxation of Bayes", ICLR 2023, arXiv:2210.01620.
Official code: team-approx-bayes/bayesian-sam @ 936eec17 (``build_bsam_optimizer`` in ``optim.py``)
— the official algorithm, not pytorch-optimizer's ``BSAM``, which deviates from it. bSAM is its own
base optimizer (there is no ``base_optimizer`` argument): an Adam-like method that learns a Gaussian
posterior ``N(w, 1/(N s))``, with the precision ``s`` in place of Adam's second moment and a
perturbation preconditioned by ``1/s``, not normalised.

State per tensor: ``m = 0`` and ``s = s_init`` (the parameters hold the mean ``w``); one noise
generator. One step, the n examples of the batch split into M = ``batchsplit`` sub-batches
``B_b`` (as ``numpy.array_split``: the first ``n mod M`` get one more), each with its own noise:

1. ``e_b ~ N(0, I)``;  ``θ_b = w + sqrt(1/(N s)) ⊙ e_b``       (a sample of the posterior)
2. ``g_b = ∇L_{B_b}(θ_b)``                                     (forward + backward at θ_b)
3. ``w̃_b = w + ρ g_b / s``                                     (from the MEAN w; elementwise)
4. ``g̃_b = ∇L_{B_b}(w̃_b)``                                      (forward + backward at w̃_b)
5. ``h = Σ_b (|B_b|/n) sqrt(s ⊙ g_b²)``;  ``g̃ = Σ_b (|B_b|/n) g̃_b``;  parameters ← w (exact)
6. ``m ← β1 m + (1 − β1)(g̃ + δ w)``
7. ``w ← w − η m / s``                                        (with the OLD s: code order)
8. ``s ← β2 s + (1 − β2)(h + ζ + δ)``                         (not squared)

``update_order="paper"`` swaps 7 and 8. η = ``lr`` (the paper's α), δ = ``weight_decay``,
ζ = ``damping`` (the paper's γ), N = ``num_data`` (``math.inf`` removes the noise). ``2M``
forward/backward passes per step; the two of a sub-batch run one after the other, so only one
``g_b`` is alive at a time (the reference takes all M noisy gradients first: the same numbers). With
ρ = 0 and N = ∞ it is a deterministic Adam-like method: m an EMA of ``∇L(w) + δ w``, s an EMA of
``sqrt(s)|∇L(w)| + ζ + δ``. After a step every ``p.grad`` is None (a gradient found on entry
is discarded, with a warning the first time).

**Closures.** ``step(closure, batch_size=n)`` takes an **example closure**
(``sampy.torch.examples``): ``closure(indices=None)`` returns the un-reduced losses of those
examples and calls no ``backward()``. The optimizer calls it with each sub-batch's indices (a
1-D int64 tensor on the parameters' device; None, i.e. the whole batch, when ``batchsplit=1``)
and differentiates each sub-batch's mean loss. With ``batchsplit=1`` and no ``batch_size``,
``step(closure)`` also takes an ordinary closure (zero the gradients, compute the loss, call
``backward()``, return the loss): it calls ``closure()`` and reads what comes back (a 0-dim
loss: the closure did the backward; a 1-D tensor: per-example losses, whose mean the optimizer
differentiates).

**N.** ``num_data`` is the training-set size N (the official code multiplies it by a data
augmentation factor). ``None`` takes ``batch_size`` — the reference's convention, where the
batch *is* the data set; in mini-batch training pass the training-set size. Without
``batch_size`` there is nothing to count, so ``num_data`` is required.

Usage::

    opt = BSAM(model.parameters(), lr=0.5, rho=0.01, num_data=len(train_set), batchsplit=8)
    for inputs, targets in loader:
        def losses(indices=None):
            x, y = (inputs, targets) if indices is None else (inputs[indices], targets[indices])
            return loss_fn(model(x), y, reduction="none")

        opt.step(losses, batch_size=len(targets))    # 16 forward/backward passes

Twin choices: ``noise="torch"`` (default) draws on the parameters' device, so a step never
waits for the host; ``noise="numpy"`` draws with ``numpy.random.default_rng(seed)`` the very
numbers the reference draws (its ``(M, d)`` draw is M draws of d numbers in C order, d running
over the parameters that require a gradient, in group order). The generator state is saved by
``state_dict()``. ``lr``, ``betas``, ``weight_decay``, ``rho``, ``damping`` and ``s_init`` are
per-group settings; ``num_data``, ``batchsplit``, ``update_order``, ``seed`` and ``noise``
belong to the optimizer. A parameter that gets no gradient in any of the 2M passes is skipped
(not moved, m and s kept; missing gradients of the others count as 0); parameters with
``requires_grad=False`` are neither sampled nor moved. The official lr multiplier
``lrfactor`` is a learning-rate scheduler here. No host synchronisation in a step with
``noise="torch"``.
"""

from __future__ import annotations

import inspect
import numbers
from typing import Any

import torch
from torch import Tensor

from sampy.optim import bsam as reference
from sampy.optim.hyper import validate
from sampy.torch.checked_optimizer import CheckedOptimizer
from sampy.torch.closures import (
    Closure,
    Params,
    discard_gradients_on_entry,
    restored_on_error,
)
from sampy.torch.examples import ExampleLosses, example_losses
from sampy.torch.noise import SavesNoise

Active = list[tuple[dict[str, Any], list[Tensor]]]  # (group, its parameters that require grad)


def _describe(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return repr(value)


def _accumulate(
    acc: dict[Tensor, Tensor], params: list[Tensor], values: list[Tensor], w: float
) -> None:
    """``acc[p] += w · value``; where ``p`` has no entry yet, ``value`` is scaled in place and
    becomes the entry (the values are the optimizer's own tensors: a fresh ``p.grad``, ``h_b``).
    """
    old = [(p, v) for p, v in zip(params, values, strict=True) if p in acc]
    new = [(p, v) for p, v in zip(params, values, strict=True) if p not in acc]
    if old:
        torch._foreach_add_([acc[p] for p, _ in old], [v for _, v in old], alpha=w)
    if new:
        values = [v for _, v in new]
        torch._foreach_mul_(values, w)  # the caller's tensors, no longer needed
        for (p, _), x in zip(new, values, strict=True):
            acc[p] = x


class BSAM(SavesNoise, CheckedOptimizer):
    """Bayesian SAM (official algorithm), its own base optimizer. ``2 · batchsplit`` passes.

    Args:
        params: parameters or parameter groups.
        lr: learning rate η.
        betas: (β1, β2), EMA rates of m and s.
        weight_decay: δ (the prior precision divided by N).
        rho: ρ of the unnormalised, 1/s-preconditioned perturbation.
        damping: ζ added to the precision.
        num_data: N in the posterior variance 1/(N s) (None: ``batch_size``, the reference's
            convention; ``math.inf``: no noise).
        s_init: initial precision.
        batchsplit: M sub-batches with independent noise (the official m-sharpness).
        update_order: ``"code"`` (w moves with the old s) or ``"paper"`` (with the new s).
        seed: seed of the noise.
        noise: ``"torch"`` (draws on the device) or ``"numpy"`` (the reference's draws).

    State per tensor: ``m`` and ``s``; ``state_dict()`` also holds the noise generator.
    """

    HYPERPARAMETERS = reference.BSAM.HYPERPARAMETERS

    def __init__(
        self,
        params: Params,
        lr: float = 0.5,
        betas: tuple[float, float] = (0.9, 0.999),
        weight_decay: float = 1e-4,
        rho: float = 0.01,
        damping: float = 0.1,
        num_data: float | None = None,
        s_init: float = 1.0,
        batchsplit: int = 8,
        update_order: str = "code",
        seed: int = 0,
        noise: str = "torch",
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        self.num_data = None if num_data is None else float(num_data)
        self.batchsplit = int(batchsplit)
        self.update_order = update_order
        defaults = dict(
            lr=lr,
            betas=(float(betas[0]), float(betas[1])),
            weight_decay=weight_decay,
            rho=rho,
            damping=damping,
            s_init=s_init,
        )
        super().__init__(params, defaults, noise=noise, seed=seed)
        self._batches: dict[tuple[int, str], tuple[Tensor, ...]] = {}

    @property
    def grad_evals_per_step(self) -> int:
        """``2 · batchsplit``."""
        return 2 * self.batchsplit

    # -- helpers -----------------------------------------------------------------------------

    def _active(self) -> Active:
        """Per group with any, the parameters that are sampled and may move (requires_grad)."""
        out = []
        for group in self.param_groups:
            params = [p for p in group["params"] if p.requires_grad]
            if params:
                out.append((group, params))
        return out

    def _state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        state = self.state[p]
        if not state:  # m = 0, s = s_init, as the reference's init
            state["m"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["s"] = torch.full_like(p, group["s_init"], memory_format=torch.preserve_format)
        return state

    def _plan(
        self, closure: Closure | ExampleLosses | None, batch_size: int | None, device: torch.device
    ) -> tuple[list[Tensor | None], list[float], float]:
        """Sub-batch indices (None: the whole batch), their weights ``|B_b|/n``, and N."""
        if closure is None:
            raise ValueError(
                "closure is required: BSAM needs 2·batchsplit gradients per step; pass an "
                "example closure closure(indices=None) returning the un-reduced losses with "
                "batch_size=n (see sampy.torch.examples), or, with batchsplit=1, a closure "
                "that calls backward()"
            )
        if batch_size is None:
            if self.batchsplit != 1:
                raise ValueError(
                    f"batch_size is required with batchsplit={self.batchsplit}: the number n "
                    "of examples of the batch, which the sub-batches split (and an example "
                    "closure closure(indices=None), see sampy.torch.examples)"
                )
            if self.num_data is None:
                raise ValueError(
                    "num_data must be given for BSAM without batch_size (N in the posterior "
                    "variance 1/(N s)); with an example closure and batch_size=n, None means n"
                )
            return [None], [1.0], self.num_data
        if (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, numbers.Integral)
            or batch_size < 1
        ):
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        n = int(batch_size)
        if self.batchsplit > n:
            raise ValueError(
                f"batchsplit must be <= the number of examples {n}, got {self.batchsplit}"
            )
        try:
            inspect.signature(closure).bind(None)
        except TypeError as error:
            raise ValueError(
                "with batch_size the closure must be an example closure closure(indices=None) "
                "returning the un-reduced per-example losses (see sampy.torch.examples)"
            ) from error
        except ValueError:  # no signature to read (a builtin): let the call decide
            pass
        num_data = self.num_data if self.num_data is not None else float(n)
        if self.batchsplit == 1:
            return [None], [1.0], num_data
        key = (n, str(device))
        if key not in self._batches:  # numpy.array_split(arange(n), M), once per n and device
            self._batches[key] = torch.tensor_split(torch.arange(n, device=device), self.batchsplit)
        batches = self._batches[key]
        return list(batches), [b.numel() / n for b in batches], num_data

    @staticmethod
    def _gradient(
        closure: Closure | ExampleLosses, indices: Tensor | None, batch_size: int | None
    ) -> Tensor:
        """One forward and backward of a sub-batch's mean loss; returns that loss (detached)."""
        if batch_size is not None:
            losses = example_losses(closure, indices)
            if indices is None and losses.numel() != batch_size:
                raise ValueError(
                    f"the example closure returned {losses.numel()} losses for batch_size "
                    f"{batch_size}"
                )
        else:
            with torch.enable_grad():
                losses = closure()
            if isinstance(losses, Tensor) and losses.dim() == 0:
                return losses.detach()  # an ordinary closure: it called backward() itself
            if not isinstance(losses, Tensor) or losses.dim() != 1 or losses.numel() == 0:
                raise ValueError(
                    "the closure must return its loss after calling backward() (a 0-dim "
                    "tensor) or the un-reduced per-example losses (a non-empty 1-D tensor), "
                    f"got {_describe(losses)}"
                )
        with torch.enable_grad():
            loss = losses.mean()
            loss.backward()
        return loss.detach()

    @staticmethod
    def _std(s: list[Tensor], num_data: float) -> list[Tensor]:
        """``sqrt(1/(N s))`` per tensor (0 for N = ∞)."""
        out = torch._foreach_mul(s, num_data)
        torch._foreach_reciprocal_(out)
        torch._foreach_sqrt_(out)
        return out

    @staticmethod
    def _clear(params: list[Tensor]) -> None:
        for p in params:
            p.grad = None

    # -- the step ------------------------------------------------------------------------------

    @torch.no_grad()
    def step(  # type: ignore[override]
        self, closure: ExampleLosses | Closure | None = None, batch_size: int | None = None
    ) -> Tensor:
        """One bSAM step (the box's 8 lines): ``2 · batchsplit`` forward/backward passes.

        ``closure``: an example closure (``closure(indices=None)`` → un-reduced losses) with
        ``batch_size=n``, or, with ``batchsplit=1`` and no ``batch_size``, an ordinary closure
        that calls ``backward()``. Returns the loss at the posterior samples ``θ_b`` (the
        sub-batch means weighted by ``|B_b|/n``), a 0-dim tensor.
        """
        active = self._active()
        flat = [p for _, ps in active for p in ps]
        device = flat[0].device if flat else torch.device("cpu")
        batches, weights, num_data = self._plan(closure, batch_size, device)
        assert closure is not None
        if not flat:
            return torch.zeros(())
        discard_gradients_on_entry(self, flat)
        states = {p: self._state(p, group) for group, ps in active for p in ps}
        s_flat = [states[p]["s"] for p in flat]
        saved = [p.detach().clone() for p in flat]
        sizes = [p.numel() for p in flat]
        std = self._std(s_flat, num_data)
        h: dict[Tensor, Tensor] = {}
        g_adv: dict[Tensor, Tensor] = {}
        total: Tensor | None = None
        with restored_on_error(flat, saved):
            for indices, weight in zip(batches, weights, strict=True):
                # 1. θ_b = w + sqrt(1/(N s)) ⊙ e_b
                draw = self.noise_source.normal(sum(sizes), flat[0])
                e = [x.view_as(p) for x, p in zip(torch.split(draw, sizes), flat, strict=True)]
                torch._foreach_copy_(flat, saved)
                torch._foreach_add_(flat, torch._foreach_mul(std, e))
                # 2. g_b = ∇L_{B_b}(θ_b)
                self._clear(flat)
                loss = self._gradient(closure, indices, batch_size) * weight
                total = loss if total is None else total + loss
                torch._foreach_copy_(flat, saved)
                for group, ps in active:
                    params = [p for p in ps if p.grad is not None]
                    if not params:
                        continue
                    g = [p.grad for p in params]
                    s = [states[p]["s"] for p in params]
                    # 5a. h += (|B_b|/n) sqrt(s ⊙ g_b²)
                    sq = torch._foreach_mul(g, g)
                    torch._foreach_mul_(sq, s)
                    torch._foreach_sqrt_(sq)
                    _accumulate(h, params, sq, weight)
                    # 3. w̃_b = w + ρ g_b / s (in g_b's storage: it is not needed any more)
                    torch._foreach_mul_(g, group["rho"])
                    torch._foreach_div_(g, s)
                    torch._foreach_add_(params, g)
                # 4. g̃_b = ∇L_{B_b}(w̃_b)
                self._clear(flat)
                self._gradient(closure, indices, batch_size)
                params = [p for p in flat if p.grad is not None]
                _accumulate(g_adv, params, [p.grad for p in params], weight)
        # 5b. parameters ← w, exactly
        torch._foreach_copy_(flat, saved)
        self._clear(flat)
        for group, ps in active:
            self._update(group, [p for p in ps if p in h or p in g_adv], states, h, g_adv)
        assert total is not None
        return total

    def _update(
        self,
        group: dict[str, Any],
        params: list[Tensor],
        states: dict[Tensor, dict[str, Any]],
        h: dict[Tensor, Tensor],
        g_adv: dict[Tensor, Tensor],
    ) -> None:
        """Lines 6–8 for the parameters of ``group`` that got a gradient (``p.grad`` stays None:
        the next step starts clean)."""
        if not params:
            return
        beta1, beta2 = group["betas"]
        delta = group["weight_decay"]
        gt = [g_adv[p] if p in g_adv else torch.zeros_like(p) for p in params]
        target = [h[p] if p in h else torch.zeros_like(p) for p in params]
        m = [states[p]["m"] for p in params]
        s = [states[p]["s"] for p in params]
        # 6. m ← β1 m + (1 − β1)(g̃ + δ w)
        d = torch._foreach_add(gt, params, alpha=delta)
        torch._foreach_mul_(m, beta1)
        torch._foreach_add_(m, d, alpha=1.0 - beta1)
        # the target of 8: h + ζ + δ
        torch._foreach_add_(target, group["damping"])
        torch._foreach_add_(target, delta)
        if self.update_order == "paper":
            self._ema(s, target, beta2)
        # 7. w ← w − η m / s
        move = torch._foreach_mul(m, group["lr"])
        torch._foreach_div_(move, s)
        torch._foreach_sub_(params, move)
        if self.update_order == "code":
            self._ema(s, target, beta2)

    @staticmethod
    def _ema(s: list[Tensor], target: list[Tensor], beta2: float) -> None:
        """``s ← β2 s + (1 − β2) target``."""
        torch._foreach_mul_(s, beta2)
        torch._foreach_add_(s, target, alpha=1.0 - beta2)
