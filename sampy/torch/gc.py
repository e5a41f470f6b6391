"""Gradient centralization (GC) for the torch twins, and where it enters a SAM step.

H. Yong, J. Huang, X. Hua, L. Zhang, "Gradient Centralization: A New Optimization Technique
for Deep Neural Networks", ECCV 2020, arXiv:2004.01461. For a gradient tensor ``G`` with
``ndim ≥ 2`` (axis 0 = output row or filter)

    GC(G) = G − mean(G over all axes but 0)

and tensors with ``ndim ≤ 1`` (biases, norms) are left alone: the twin of
``sampy.optim.gc.centralize``. Three places, as in the Keras SAM library's documentation's
``use_gc`` and the NumPy knobs (``gc_ascent``, ``gc_descent``):

- the ascent (``centralized_ascent(rule, gc_ascent)``, a rule for ``SharpnessAware``):
  ``"kozistr"`` ε = ρ GC(g)/‖g‖ (pytorch-optimizer's ``use_gc``), ``"gcsam"`` ε = ρ
  GC(g)/‖GC(g)‖ (M. Hassan, A. Vakanski, B. Zhang, M. Xian, "GCSAM: Gradient Centralized
  Sharpness Aware Minimization", arXiv:2501.11584, IEEE Access 2025);
- the direction handed to the base optimizer (``centralize_direction(optimizer)``: a step
  pre-hook on the base optimizer, GCSAM's ``GC(g̃)`` for SAM);
- a gradient in ``p.grad`` where your loop has it (``centralize_`` after a ``backward()``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.hooks import RemovableHandle

from sampy.torch.clipping import stepping_optimizer
from sampy.torch.sharpness_aware import AscentRule, Groups, RuleContext

GC_ASCENT = ("off", "kozistr", "gcsam")

__all__ = [
    "GC_ASCENT",
    "centralize",
    "centralize_",
    "centralize_direction",
    "centralized_ascent",
]


def _centralized(g: Tensor) -> Tensor:
    return g - g.mean(dim=tuple(range(1, g.ndim)), keepdim=True)


def centralize(tensors: Sequence[Tensor]) -> list[Tensor]:
    """``GC`` of every tensor with ``ndim ≥ 2`` (new tensors); the others are returned as they are.

    Example:
        >>> import torch
        >>> from sampy.torch.gc import centralize
        >>> weight, bias = centralize([torch.tensor([[1.0, 3.0], [0.0, 4.0]]), torch.ones(2)])
        >>> weight, bias  # every row has mean 0; the bias is untouched
        (tensor([[-1.,  1.],
                [-2.,  2.]]), tensor([1., 1.]))
    """
    return [_centralized(g) if g.ndim >= 2 else g for g in tensors]


@torch.no_grad()
def centralize_(tensors: Iterable[Tensor | None]) -> None:
    """``GC`` in place on every tensor with ``ndim ≥ 2`` (``None`` entries are skipped).

    Meant for gradients where a loop holds them: ``centralize_(p.grad for p in params)``.

    Example:
        >>> import torch
        >>> from sampy.torch.gc import centralize_
        >>> layer = torch.nn.Linear(3, 2)
        >>> layer(torch.randn(4, 3)).sum().backward()
        >>> centralize_([layer.weight.grad, layer.bias.grad])
        >>> bool(layer.weight.grad.mean(dim=1).abs().max() < 1e-6)
        True
    """
    for g in tensors:
        if g is not None and g.ndim >= 2:
            g.sub_(g.mean(dim=tuple(range(1, g.ndim)), keepdim=True))


def centralize_direction(optimizer: torch.optim.Optimizer) -> RemovableHandle:
    """Centralize the direction ``d`` each base step moves along (the NumPy ``gc_descent``).

    Registers a step pre-hook on ``optimizer.base_optimizer`` (on ``optimizer`` itself when it
    has no base, e.g. MSAM or schedule-free AdamW, whose one gradient is their direction): at
    that moment ``p.grad`` holds ``d``, in every call shape. Returns the hook's handle
    (``handle.remove()`` undoes it).

    Example:
        >>> import torch
        >>> import sampy.torch as st
        >>> from sampy.torch.gc import centralize_direction
        >>> layer = torch.nn.Linear(3, 2)
        >>> opt = st.SAM(layer.parameters(), torch.optim.SGD, rho=0.05, lr=0.1)
        >>> handle = centralize_direction(opt)
        >>> before = layer.weight.detach().clone()
        >>> x = torch.randn(4, 3)
        >>> layer(x).square().sum().backward()
        >>> opt.first_step(zero_grad=True)
        >>> layer(x).square().sum().backward()
        >>> opt.second_step(zero_grad=True)
        >>> bool((layer.weight - before).sum(dim=1).abs().max() < 1e-6)  # rows moved by mean 0
        True
    """
    target = stepping_optimizer(optimizer)

    def hook(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        centralize_(p.grad for group in opt.param_groups for p in group["params"])

    return target.register_step_pre_hook(hook)


class _CentralizedAscent:
    """An ascent rule with GC on its input (``"gcsam"``) or on its output (``"kozistr"``)."""

    def __init__(self, rule: AscentRule, on: str) -> None:
        self.rule = rule
        self.on = on

    def __call__(self, ctx: RuleContext, grads: Groups, inplace: bool) -> Groups:
        if self.on == "gcsam":
            return self.rule(ctx, [centralize(gs) for gs in grads], inplace)
        return [centralize(es) for es in self.rule(ctx, grads, inplace)]

    def __getattr__(self, name: str) -> Any:
        # The template and the variants read attributes of their rule (a schedule, eps).
        if name == "rule":
            raise AttributeError(name)
        return getattr(self.rule, name)

    def __repr__(self) -> str:
        return f"centralized_ascent({self.rule!r}, {self.on!r})"


def centralized_ascent(rule: AscentRule, gc_ascent: str) -> AscentRule:
    """``rule`` with GC placed as ``gc_ascent`` says (``"off"``: ``rule`` itself).

    ``"kozistr"``: ``ε = GC(rule(g))`` (for the p = 2 ball, ``ρ GC(g)/‖g‖``);
    ``"gcsam"``: ``ε = rule(GC(g))`` (``ρ GC(g)/‖GC(g)‖``). Compose it with a descent rule and a
    base optimizer in ``sampy.torch.SharpnessAware``.

    Example:
        >>> import torch
        >>> from sampy.torch import SharpnessAware
        >>> from sampy.torch.gc import centralize, centralized_ascent
        >>> from sampy.torch.sam import NormBallAscent
        >>> from sampy.torch.sharpness_aware import PerturbedGradient
        >>> w0 = torch.tensor([[1.0, 2.0], [3.0, 5.0]])
        >>> w = torch.nn.Parameter(w0.clone())
        >>> opt = SharpnessAware([w], torch.optim.SGD, lr=0.1,
        ...     ascent=centralized_ascent(NormBallAscent(), "gcsam"),
        ...     descent=PerturbedGradient(), group_hyperparameters=dict(rho=0.5))
        >>> w.square().sum().backward()  # g = 2 w
        >>> opt.first_step(zero_grad=True)
        >>> gc = centralize([2 * w0])[0]
        >>> torch.allclose(w.detach() - w0, 0.5 * gc / gc.norm())  # ε = ρ GC(g)/‖GC(g)‖
        True
    """
    if gc_ascent not in GC_ASCENT:
        raise ValueError(f"gc_ascent must be one of {list(GC_ASCENT)}, got {gc_ascent!r}")
    if gc_ascent == "off":
        return rule
    return _CentralizedAscent(rule, gc_ascent)
