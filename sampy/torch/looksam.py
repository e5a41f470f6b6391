"""LookSAM as a ``torch.optim.Optimizer``: the twin of ``sampy.optim.LookSAM``.

Y. Liu, S. Mai, X. Chen, C.-J. Hsieh, Y. You, "Towards Efficient and Scalable Sharpness-Aware
Minimization", CVPR 2022, arXiv:2203.02714 (no official code). Global norms (as in MarlonBecker/MSAM
``optimizer/looksam.py``), with its own step counter t = 0, 1, … (``shared["step"]``, saved by
``state_dict()``):

1. ``g = ∇L(w)``
2. SAM step, ``t mod k = 0`` (2 evaluations): ``ε = ρ g/(‖g‖ + eps)`` (``first_step``);
   ``g_s = ∇L(w + ε)``; restore ``w``; ``g_v = g_s − (⟨g_s, g⟩/‖g‖²) g`` (0 if g = 0), kept
   per parameter in ``state[p]["g_v"]``; ``d = g_s``                       (``second_step``)
3. reuse step (1 evaluation): ``d = g + ψ (‖g‖/(‖g_v‖ + 1e-8)) g_v``      (``second_step``)
4. base step with ``d`` at ``w``; ``t ← t + 1``

Evaluation pattern: ``step(closure)`` calls the closure twice on SAM steps and once on reuse
steps (``1 + 1/k`` on average); after ``loss.backward()`` (davda54's and pytorch-optimizer's
loops) only once on SAM steps and not at all on reuse steps, the same cost. By hand::

    loss_fn(model(x), y).backward()
    if opt.is_sam_step:                      # t mod k == 0
        opt.first_step(zero_grad=True)
        loss_fn(model(x), y).backward()
    opt.second_step(zero_grad=True)

The pytorch-optimizer pattern (``first_step``, backward, ``second_step`` on every step) also
works: on a reuse step ``first_step(zero_grad=True)`` only clears the gradients and the second
backward recomputes g at the unperturbed w (an evaluation spent for nothing). Norms and the
projection are global over all groups (pytorch-optimizer projects per tensor), and ``w`` is
restored only after a SAM step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from sampy.optim import looksam as reference
from sampy.optim.hyper import validate
from sampy.torch.base_optimizer import BaseOptimizer
from sampy.torch.groups import Buffers, Scalar, flat, global_dot, norm_value
from sampy.torch.host_reads import alpha_value
from sampy.torch.perturbation import per_device
from sampy.torch.sam import NormBallAscent
from sampy.torch.sharpness_aware import Groups, RuleContext, SharpnessAware
from sampy.torch.storage import owns_storage


def projection_coefficient(g_s: list[Tensor], g: list[Tensor]) -> Tensor:
    """``⟨g_s, g⟩/‖g‖²``, 0 where g = 0 (no eps: ρ = 0 must give exactly g_v = 0)."""
    gg = global_dot(g, g)
    positive = gg > 0
    return torch.where(positive, global_dot(g_s, g) / torch.where(positive, gg, 1.0), 0.0)


class LookSAMDescent:
    """LookSAM's descent on a SAM step: ``d = g_s``, and ``g_v = g_s − (⟨g_s, g⟩/‖g‖²) g``
    (the part of ``g_s`` orthogonal to ``g``) is kept in ``state[p]["g_v"]`` for the reuse steps.
    """

    needs_clean_grad = True

    def __call__(self, ctx: RuleContext, g: Groups | None, g_adv: Groups) -> Groups:
        """``d = g_s`` (the ``g_adv`` tensors themselves); stores ``g_v``."""
        if g is None:
            raise RuntimeError(f"{type(self).__name__} needs the clean gradient g, got None")
        g_s = flat(g_adv)
        if g_s:
            g_clean = flat(g)
            coef = projection_coefficient(g_s, g_clean)
            value = alpha_value(coef, g_s)
            if value is not None:
                # c read on the host (the CPU): g_s + (−c)·g in one pass into new tensors, the
                # product fused (the stashed g is freed after this step, so peak memory holds)
                g_v = torch._foreach_add(g_s, g_clean, alpha=-value)
            elif all(owns_storage(x) for x in g_clean):
                # g_v is written into the stashed g, which the template hands over (a gradient
                # already cleared, or a copy) and nothing reads after this: no model-sized
                # temporary. g_s + (−c)·g rounds as g_s − c·g (negation is exact).
                torch._foreach_mul_(g_clean, per_device(-coef, g_clean))
                g_v = g_clean
                torch._foreach_add_(g_v, g_s)
            else:  # a view into a reused bucket, a DTensor: new tensors
                g_v = torch._foreach_sub(g_s, torch._foreach_mul(g_clean, per_device(coef, g_s)))
            for p, v in zip(flat(ctx.params), g_v, strict=True):
                ctx.state[p]["g_v"] = v
        return g_adv


class LookSAM(SharpnessAware):
    """LookSAM around a torch optimizer: 2 evaluations every k-th step, 1 otherwise.

    Args:
        params: parameters or parameter groups (a group may set its own ``rho``/``adaptive``).
        base_optimizer: the base optimizer: a class, a factory or an instance.
        rho: radius ρ of the SAM steps' ball.
        k: a SAM step every k steps (k = 1 is SAM).
        alpha: weight ψ of the reused direction.
        adaptive: ASAM's ball on SAM steps.
        perturb_eps: the guard in ``ρ/(‖g‖ + eps)``.
        **base_kwargs: passed to ``base_optimizer``.
    """

    HYPERPARAMETERS = reference.LookSAM.HYPERPARAMETERS

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        base_optimizer: BaseOptimizer = torch.optim.SGD,
        rho: float = 0.1,
        k: int = 10,
        alpha: float = 0.7,
        adaptive: bool = False,
        perturb_eps: float = 1e-12,
        **base_kwargs: Any,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        self.k = int(k)
        self.alpha = alpha
        super().__init__(
            params,
            base_optimizer,
            ascent=NormBallAscent(perturb_eps=perturb_eps),
            descent=LookSAMDescent(),
            group_hyperparameters=dict(rho=rho, adaptive=adaptive),
            **base_kwargs,
        )
        self.shared["step"] = 0

    @property
    def grad_evals_per_step(self) -> float:  # type: ignore[override]
        """Average gradient evaluations per step: ``1 + 1/k``."""
        return 1.0 + 1.0 / self.k

    _g_v_norm: tuple[tuple[int, ...], Scalar] | None = None
    # Between two SAM steps: every parameter with a stored g_v (in group order), their g_v and
    # ‖g_v‖ + 1e-8 over all of them, so a reuse step does no per-parameter lookups.
    _reuse: tuple[list[Tensor], list[Tensor], Scalar] | None = None

    @property
    def _norm_scratch(self) -> Buffers:
        """Where the reuse steps' norms gather small tensors on the CPU (``norm_value``)."""
        return self.__dict__.setdefault("_norm_buffers", Buffers())

    def _reuse_buffers(self) -> tuple[list[Tensor], list[Tensor], Scalar] | None:
        """``(params, g_v, ‖g_v‖ + 1e-8)`` for the parameters that have a ``g_v``; None if none."""
        params = [
            p
            for group in self.param_groups
            for p in group["params"]
            if "g_v" in self.state.get(p, {})
        ]
        if not params:
            return None
        g_v = [self.state[p]["g_v"] for p in params]
        return params, g_v, self._norm_of_g_v(params, g_v) + 1e-8

    def _norm_of_g_v(self, params: list[Tensor], g_v: list[Tensor]) -> Scalar:
        """``‖g_v‖`` over ``params``, computed once per SAM step (``g_v`` changes only there): a
        Python float on the CPU, else a 0-dim tensor (``norm_value``)."""
        key = tuple(id(p) for p in params)
        if self._g_v_norm is None or self._g_v_norm[0] != key:
            self._g_v_norm = (key, norm_value(g_v, self._norm_scratch))
        return self._g_v_norm[1]

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load as the template does; ``‖g_v‖`` is recomputed from the loaded ``g_v``."""
        super().load_state_dict(state_dict)
        self._g_v_norm = None
        self._reuse = None

    @property
    def is_sam_step(self) -> bool:
        """Whether the coming step takes the second gradient (``t mod k = 0``)."""
        return self.shared.get("step", 0) % self.k == 0

    @torch.no_grad()
    def first_step(self, zero_grad: bool = False) -> None:
        """SAM step: keep ``g``, save ``w``, move to ``w + ε``. Reuse step: only ``zero_grad``."""
        if not self.is_sam_step:
            if zero_grad:
                self.zero_grad()
            return
        if not zero_grad or self.skip_nonfinite:
            super().first_step(zero_grad)
            return
        params = self._params_to_perturb()  # raises while perturbed, before anything changes
        self._drop_g_v()
        # ε = c g as a tensor of its own, then w + ε: the floats of pytorch-optimizer's LookSAM
        # (a fused w + c g rounds once less); w + ε is written into ε for the large CPU tensors
        e = self._ascent(params, [[p.grad for p in ps] for ps in params], inplace=False)
        self._stash_clean_grads(params, zero_grad=True)
        self._save_and_perturb(params, e, fresh=True)  # NormBallAscent: a new ε
        self._zero_grads(params)

    def _drop_g_v(self) -> None:
        """Release the ``g_v`` a SAM step is about to replace, before the step allocates ``w + ε``
        (which then takes its memory: no model-sized temporary on top of it). Nothing reads the
        old ``g_v`` again: an abandoned step does not advance the counter, so the next step is a
        SAM step, which writes a new one; a step that ``skip_nonfinite`` drops advances it, so
        then the old ``g_v`` is kept for the reuse steps that follow.
        """
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state.get(p)
                if state:
                    state.pop("g_v", None)
        self._g_v_norm = None
        self._reuse = None

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False) -> None:
        """SAM step: restore ``w``, store ``g_v``, base step with ``g_s``. Reuse step: base step
        with ``g + ψ (‖g‖/(‖g_v‖ + 1e-8)) g_v``, written into ``p.grad`` (which held ``g``)."""
        if self.is_sam_step:
            super().second_step()
            # a new g_v (or none, if the step was skipped): both caches are rebuilt
            self._g_v_norm = None
            self._reuse = None
        else:
            self._reuse_step()
            self._base_step()
        self.shared["step"] = self.shared.get("step", 0) + 1
        if zero_grad:
            self.zero_grad()

    def _reuse_step(self) -> None:
        """``p.grad ← g + ψ (‖g‖/(‖g_v‖ + 1e-8)) g_v`` in place, for the parameters with a
        gradient and a ``g_v`` (a parameter without one is left alone)."""
        if self._reuse is None:
            self._reuse = self._reuse_buffers()
            if self._reuse is None:
                return
        params, g_v, denominator = self._reuse
        grads = [p.grad for p in params]
        if any(x is None for x in grads):  # some parameter got no gradient this step
            kept = [i for i, x in enumerate(grads) if x is not None]
            if not kept:
                return
            params = [params[i] for i in kept]
            g_v = [g_v[i] for i in kept]
            grads = [grads[i] for i in kept]
            denominator = self._norm_of_g_v(params, g_v) + 1e-8
        # (‖g‖/(‖g_v‖ + 1e-8))·ψ rounds as ψ·(…): the product is commutative
        ratio = norm_value(grads, self._norm_scratch) / denominator * self.alpha
        # d = g + ψ (‖g‖/(‖g_v‖ + 1e-8)) g_v, written into p.grad: no model-sized temporary
        if not isinstance(ratio, Tensor):  # read on the host (the CPU): one fused pass
            torch._foreach_add_(grads, g_v, alpha=ratio)
            return
        factor = per_device(ratio, g_v)
        factors = factor if isinstance(factor, list) else [factor] * len(g_v)
        torch._foreach_addcmul_(grads, g_v, factors)

    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """One LookSAM step: ``g`` at ``w``, and on SAM steps the closure at ``w + ε``.

        The convention of ``SharpnessAware.step``: with no gradient on entry the closure runs at
        ``w`` first (twice per SAM step, once per reuse step) and the loss at ``w`` is returned;
        with gradients present (``loss.backward(); opt.step(closure)``) they are ``g``, the
        closure runs only at ``w + ε`` on SAM steps (not at all on reuse steps) and None is
        returned. Every gradient is None after the step.
        """
        closure = self._require(closure)
        loss = None if self._has_grads() else closure()
        if self.is_sam_step:
            self.first_step(zero_grad=True)
            with self.restore_on_error():
                closure()
                self.second_step()
        else:
            self.second_step()
        self._drop_grads()
        return loss
