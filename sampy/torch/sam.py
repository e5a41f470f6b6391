"""SAM, ASAM and p-norm SAM as a ``torch.optim.Optimizer``: the twin of ``sampy.optim.SAM``.

P. Foret, A. Kleiner, H. Mobahi, B. Neyshabur, "Sharpness-Aware Minimization for Efficiently
Improving Generalization", ICLR 2021, arXiv:2010.01412; ASAM: J. Kwon, J. Kim, H. Park,
I. K. Choi, ICML 2021, arXiv:2102.11600.

The same step as the reference, with the gradients in ``p.grad``:

1. ``g = ∇L(w)``                         — ``closure()`` (or your own ``loss.backward()``)
2. ``ε = T · dual(T g)``, ``w ← w + ε``  — ``first_step()``  (global norm over all tensors)
3. ``g̃ = ∇L(w + ε)``                     — ``closure()`` again
4. ``w ← saved w``; base step with ``g̃`` — ``second_step()``

Usage::

    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.05, lr=0.1, momentum=0.9)

    def closure():
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        return loss

    loss = opt.step(closure)          # two forward/backward passes, one base step

or, by hand: ``loss.backward(); opt.first_step(zero_grad=True); loss_fn(model(x), y).backward();
opt.second_step(zero_grad=True)``. ``param_groups`` are shared with the base optimizer, so
learning-rate schedulers can drive either object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from sampy.optim.hyper import validate
from sampy.optim.sam import NORM_BALL
from sampy.torch.perturbation import norm_ball_perturbation


class SAM(torch.optim.Optimizer):
    """Sharpness-Aware Minimization (ASAM with ``adaptive=True``) around a torch optimizer.

    Args:
        params: parameters or parameter groups (a group may set its own ``rho``/``adaptive``/
            ``eta``; the perturbation's norm is shared by all groups).
        base_optimizer: the class of the base optimizer (default ``torch.optim.SGD``).
        rho: radius ρ ≥ 0 of the perturbation ball.
        p: the ball's norm, p ≥ 1 or ``math.inf`` (default 2).
        adaptive: ASAM's ball ``‖T⁻¹ε‖_p ≤ ρ`` with ``T = |w| + η``.
        eta: η ≥ 0 of ASAM's ``T``.
        perturb_eps: the guard in ``ρ / (‖g‖ + perturb_eps)``.
        **base_kwargs: passed to ``base_optimizer`` (``lr``, ``momentum``, ...).
    """

    HYPERPARAMETERS = NORM_BALL

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        base_optimizer: type[torch.optim.Optimizer] = torch.optim.SGD,
        rho: float = 0.05,
        p: float = 2.0,
        adaptive: bool = False,
        eta: float = 0.0,
        perturb_eps: float = 1e-12,
        **base_kwargs: Any,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        if not (
            isinstance(base_optimizer, type) and issubclass(base_optimizer, torch.optim.Optimizer)
        ):
            raise ValueError(
                f"base_optimizer must be a torch.optim.Optimizer class, got {base_optimizer!r}"
            )
        self.p = float(p)
        self.perturb_eps = float(perturb_eps)
        defaults = dict(rho=rho, adaptive=adaptive, eta=eta, **base_kwargs)
        super().__init__(params, defaults)
        for group in self.param_groups:
            validate(self.HYPERPARAMETERS, {k: group[k] for k in ("rho", "adaptive", "eta")})
        self.base_optimizer = base_optimizer(self.param_groups, **base_kwargs)
        # One list of groups for both: schedulers and add_param_group act on both at once.
        self.param_groups = self.base_optimizer.param_groups
        self.defaults.update(self.base_optimizer.defaults)
        self._perturbed: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None
        self._saved_cache: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None

    def _params_with_grad(self) -> list[list[torch.Tensor]]:
        return [[p for p in group["params"] if p.grad is not None] for group in self.param_groups]

    @torch.no_grad()
    def first_step(self, zero_grad: bool = False) -> None:
        """Save ``w`` and move to ``w + ε`` (needs the clean gradient in ``p.grad``).

        With ``zero_grad=True`` the clean gradients are not needed afterwards, so ε is computed
        in their storage instead of in new tensors.
        """
        params = self._params_with_grad()
        grads = [[p.grad for p in ps] for ps in params]
        e = norm_ball_perturbation(
            params,
            grads,
            [group["rho"] for group in self.param_groups],
            self.p,
            [group["adaptive"] for group in self.param_groups],
            [group["eta"] for group in self.param_groups],
            self.perturb_eps,
            inplace=zero_grad,
        )
        flat = [p for ps in params for p in ps]
        saved = self._saved_copies(flat)
        torch._foreach_copy_(saved, flat)
        torch._foreach_add_(flat, [x for es in e for x in es])
        self._perturbed = (flat, saved)
        if zero_grad:
            # What zero_grad() does for these tensors, without its profiler and group loops.
            for p in flat:
                p.grad = None

    def _saved_copies(self, flat: list[torch.Tensor]) -> list[torch.Tensor]:
        """The ``old_p`` buffers of ``flat``: allocated once, reused while ``flat`` is unchanged."""
        cached = self._saved_cache
        if cached is not None and len(cached[0]) == len(flat):
            if all(a is b for a, b in zip(cached[0], flat, strict=True)):
                return cached[1]
        saved = []
        for p in flat:
            state = self.state[p]
            if "old_p" not in state or state["old_p"].shape != p.shape:
                state["old_p"] = torch.empty_like(p)
            saved.append(state["old_p"])
        self._saved_cache = (flat, saved)
        return saved

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False) -> None:
        """Return to the saved ``w`` exactly and take the base step with ``g̃`` in ``p.grad``."""
        if self._perturbed is None:
            raise RuntimeError("second_step() called without first_step(): nothing to restore")
        flat, saved = self._perturbed
        torch._foreach_copy_(flat, saved)
        self._perturbed = None
        self.base_optimizer.step()
        if zero_grad:
            self.zero_grad()

    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor:
        """A whole SAM step: ``closure()`` at ``w``, ``first_step``, ``closure()`` at ``w + ε``,
        ``second_step``. Returns the loss at ``w``.

        The closure must compute the loss and call ``backward()`` (it may zero the gradients
        first); it runs twice.
        """
        if closure is None:
            raise ValueError(
                "closure is required: SAM needs two gradients per step; pass a closure that "
                "computes the loss and calls backward(), or call first_step()/second_step()"
            )
        closure = torch.enable_grad()(closure)
        loss = closure()
        self.first_step(zero_grad=True)
        closure()
        self.second_step()
        return loss

    def state_dict(self) -> dict[str, Any]:
        """SAM's state and the base optimizer's (momentum buffers, Adam moments, ...)."""
        state = super().state_dict()
        state["base_optimizer"] = self.base_optimizer.state_dict()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load both states and re-bind the shared ``param_groups`` (davda54/sam PR #39)."""
        state_dict = dict(state_dict)
        base = state_dict.pop("base_optimizer", None)
        if base is None:
            raise ValueError("state_dict has no 'base_optimizer' entry; was it saved by sampy SAM?")
        super().load_state_dict(state_dict)
        self._saved_cache = None  # the state's old_p tensors were replaced
        self.base_optimizer.load_state_dict(base)
        self.base_optimizer.param_groups = self.param_groups
