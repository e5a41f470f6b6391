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

The loops of davda54/sam (``loss.backward(); opt.step(closure); opt.zero_grad()``, a closure
without ``zero_grad``) and of pytorch-optimizer (``closure(); opt.step(closure)``) run unchanged
at the same cost: gradients already in ``p.grad`` when ``step`` is entered are taken as
``∇L(w)`` and the closure runs once, at ``w + ε`` (``step`` then returns None). ``step`` leaves
every gradient None. By hand: ``loss.backward(); opt.first_step(zero_grad=True);
loss_fn(model(x), y).backward(); opt.second_step(zero_grad=True)``. ``param_groups`` are shared
with the base optimizer, so learning-rate schedulers can drive either object.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from sampy.optim.hyper import validate
from sampy.optim.sam import NORM_BALL
from sampy.torch.base_optimizer import BaseOptimizer
from sampy.torch.groups import Buffers, flat, radii
from sampy.torch.perturbation import dual_factors, norm_ball_factors, norm_ball_perturbation
from sampy.torch.sharpness_aware import Groups, PerturbedGradient, RuleContext, SharpnessAware


class NormBallAscent(Buffers):
    """SAM/ASAM/p-norm ascent: the first-order worst case in the (adaptive) p-norm ball.

    On the CPU its global norm is read on the host (``sampy.torch.host_norms``), with the
    small tensors gathered into a scratch buffer of this rule's (``Buffers``).
    """

    # ε is the gradients (written in place only with inplace=True) or new tensors: the
    # template may write w + ε into the new ones (SharpnessAware._save_and_perturb).
    fresh_perturbation = True

    def __init__(self, p: float = 2.0, perturb_eps: float = 1e-12) -> None:
        self.p = float(p)
        self.perturb_eps = float(perturb_eps)

    def rhos(self, ctx: RuleContext) -> list[float]:
        """The radius of every group (a schedule overrides it in the subclass)."""
        return radii(ctx)

    def factors(
        self, ctx: RuleContext, grads: Groups, consumed: bool
    ) -> list[Tensor] | list[float] | None:
        """The p = 2 ball's ``ε = c_i u`` in group ``i``: the factors ``c_i``, with ``u`` the
        gradients (``g``; where ``adaptive``, ``T² g`` written into them, so only when they
        are ``consumed``).

        The template then writes ``w + c_i u`` in one pass over each tensor instead of
        forming ``ε`` first (``SharpnessAware.first_step``). None for p ≠ 2, whose ``ε`` is no
        multiple of a tensor at hand, and for ASAM's ball on gradients the descent keeps: the
        template then calls the rule itself.
        """
        if self.p != 2:
            return None
        groups = ctx.groups
        adaptive = any(group.get("adaptive", False) for group in groups)
        if adaptive and not consumed:
            return None
        rhos = self.rhos(ctx)  # after the checks: a schedule counts once per step
        if not adaptive:
            return dual_factors(flat(grads), rhos, self.perturb_eps, self.scratch_store())
        return norm_ball_factors(
            ctx.params,
            grads,
            rhos,
            [group.get("adaptive", False) for group in groups],
            [group.get("eta", 0.0) for group in groups],
            self.perturb_eps,
            self.scratch_store(),
        )

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


class SAM(SharpnessAware):
    """Sharpness-Aware Minimization (ASAM with ``adaptive=True``) around a torch optimizer.

    Args:
        params: parameters or parameter groups (a group may set its own ``rho``/``adaptive``/
            ``eta``; the perturbation's norm is shared by all groups).
        base_optimizer: the base optimizer (default ``torch.optim.SGD``): a class, a factory or
            an instance.
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
        base_optimizer: BaseOptimizer = torch.optim.SGD,
        rho: float = 0.05,
        p: float = 2.0,
        adaptive: bool = False,
        eta: float = 0.0,
        perturb_eps: float = 1e-12,
        **base_kwargs: Any,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        self.p = float(p)
        self.perturb_eps = float(perturb_eps)
        super().__init__(
            params,
            base_optimizer,
            ascent=NormBallAscent(p=p, perturb_eps=perturb_eps),
            descent=PerturbedGradient(),
            group_hyperparameters=dict(rho=rho, adaptive=adaptive, eta=eta),
            **base_kwargs,
        )
