"""A moving average of the weights ``w`` for any twin, on ``torch.optim.swa_utils``.

Keras 3 ``Optimizer(use_ema=True, ema_momentum=μ, ema_overwrite_frequency=k)`` (the knobs the
Keras SAM library's documentation lists, ``sampy.optim.ema`` on the NumPy side): after every
step ``avg ← μ avg + (1 − μ) w`` (the first update copies ``w``), and every ``k`` updates
``w ← avg``. That is ``AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(μ))``, which
:class:`WithEMA` builds on.

What it adds is the point it averages. ``SharpnessAware`` twins are back at ``w`` after
``second_step()``, but some twins keep another point in the parameters between steps: MSAM and
AdamW-MSAM keep ``w̃`` (``move_from_ascent()``/``move_to_ascent()``), the schedule-free ones the
training point ``y`` (``eval()``/``train()``, the average ``x`` is what they evaluate).
:func:`unperturbed` moves such a twin to the point to evaluate for the length of a block, and
:meth:`WithEMA.update` averages inside it: the average is always of ``w`` (or ``x``).

BatchNorm (the schedule-free authors' caveat): such a twin runs its training passes at ``w̃`` or
``y``, so the running statistics are gathered there but used at ``w`` or ``x``. Re-estimate them
at the evaluation point before evaluating, with torch's own tool::

    with unperturbed(opt):
        torch.optim.swa_utils.update_bn(loader, model)   # or update_bn(loader, ema.module)
        evaluate(model)

(on the digits CNN of the torch-user review, MSAM with ρ = 3: test accuracy 0.928 with the
statistics from training, 0.939 after ``update_bn`` at ``w``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from sampy.optim.ema import EMA_MOMENTUM, EMA_OVERWRITE_FREQUENCY
from sampy.optim.hyper import validate

__all__ = ["WithEMA", "unperturbed"]


def _is_schedule_free(optimizer: torch.optim.Optimizer) -> bool:
    return all("train_mode" in group for group in optimizer.param_groups) and callable(
        getattr(optimizer, "eval", None)
    )


def _keeps_ascent_point(optimizer: torch.optim.Optimizer) -> bool:
    return all("at_ascent" in group for group in optimizer.param_groups) and callable(
        getattr(optimizer, "move_from_ascent", None)
    )


@contextmanager
def unperturbed(optimizer: torch.optim.Optimizer) -> Iterator[None]:
    """A block in which the parameters hold the point to evaluate, put back as it was on exit.

    Schedule-free twins (groups with ``train_mode``) go to ``x`` with ``eval()`` and back with
    ``train()``; twins that keep an ascent point (groups with ``at_ascent``: MSAM, AdamW-MSAM)
    go to ``w`` with ``move_from_ascent()`` and back with ``move_to_ascent()``; only the groups'
    own mode is restored, so a twin already in eval mode stays there. Every other optimizer is
    at ``w`` between steps and is left alone. Raises ``RuntimeError`` for a ``SharpnessAware``
    twin between ``first_step()`` and ``second_step()`` (the parameters hold ``w + ε``).

    Args:
        optimizer: the optimizer whose parameters to move.

    Example:
        >>> import torch
        >>> import sampy.torch as st
        >>> from sampy.torch.ema import unperturbed
        >>> w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
        >>> opt = st.MSAM([w], lr=0.1, rho=0.5)
        >>> w.square().sum().backward()
        >>> opt.step()
        >>> with unperturbed(opt):
        ...     at_w = w.detach().clone()
        >>> bool((at_w - w.detach()).norm() > 0)  # the parameters hold w̃ = w − ρ u/‖u‖
        True
    """
    if getattr(optimizer, "_perturbed", None) is not None:
        raise RuntimeError(
            f"{type(optimizer).__name__} is between first_step() and second_step(): the "
            f"parameters hold w + ε; average or evaluate after second_step()"
        )
    if _is_schedule_free(optimizer):
        training = any(group["train_mode"] for group in optimizer.param_groups)
        optimizer.eval()  # type: ignore[attr-defined]
        try:
            yield
        finally:
            if training:
                optimizer.train()  # type: ignore[attr-defined]
    elif _keeps_ascent_point(optimizer):
        at_ascent = any(group["at_ascent"] for group in optimizer.param_groups)
        optimizer.move_from_ascent()  # type: ignore[attr-defined]
        try:
            yield
        finally:
            if at_ascent:
                optimizer.move_to_ascent()  # type: ignore[attr-defined]
    else:
        yield


class WithEMA:
    """An exponential moving average of the weights ``w`` of ``model``, trained by ``optimizer``.

    Call :meth:`update` after every optimizer step; evaluate ``ema.module`` (a copy of the
    model that holds the average). Keras' semantics (the first update copies ``w``) are those
    of ``AveragedModel`` with ``get_ema_multi_avg_fn``.

    Args:
        model: the trained model.
        optimizer: its optimizer (any twin): the average is of the point :func:`unperturbed`
            moves it to.
        ema_momentum: μ in ``avg ← μ avg + (1 − μ) w`` (Keras' default 0.99).
        ema_overwrite_frequency: every k updates the weights are replaced by the average (None:
            never); a twin that keeps an ascent point is then moved to the average's ascent
            point. Not for schedule-free twins, whose ``x`` lives in their state, not in the
            parameters (``ValueError``).
        use_buffers: average the buffers too (BatchNorm statistics), as ``AveragedModel`` does;
            False keeps the model's buffers in ``ema.module``.

    Attributes:
        averaged: the ``torch.optim.swa_utils.AveragedModel``.
        updates: the number of ``update()`` calls.

    Example:
        >>> import torch
        >>> import sampy.torch as st
        >>> from sampy.torch.ema import WithEMA
        >>> model = torch.nn.Linear(2, 1)
        >>> opt = st.MSAM(model.parameters(), lr=0.1, rho=0.3)
        >>> ema = WithEMA(model, opt, ema_momentum=0.9)
        >>> for _ in range(3):
        ...     opt.zero_grad()
        ...     model(torch.ones(4, 2)).square().mean().backward()
        ...     opt.step()
        ...     ema.update()  # the average of w, not of w̃
        >>> ema.updates, type(ema.module).__name__
        (3, 'Linear')
    """

    HYPERPARAMETERS = (EMA_MOMENTUM, EMA_OVERWRITE_FREQUENCY)

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: int | None = None,
        *,
        use_buffers: bool = True,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        if not isinstance(model, nn.Module):
            raise ValueError(
                f"WithEMA: model must be a torch.nn.Module, got {type(model).__name__}"
            )
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise ValueError(
                f"WithEMA: optimizer must be a torch.optim.Optimizer, got "
                f"{type(optimizer).__name__}"
            )
        if ema_overwrite_frequency is not None and _is_schedule_free(optimizer):
            raise ValueError(
                f"WithEMA: ema_overwrite_frequency cannot act on {type(optimizer).__name__}: "
                f"its evaluation point x lives in the optimizer's state, not in the parameters; "
                f"evaluate ema.module instead"
            )
        self.model = model
        self.optimizer = optimizer
        self.ema_momentum = float(ema_momentum)
        self.ema_overwrite_frequency = ema_overwrite_frequency
        with unperturbed(optimizer):
            self.averaged = AveragedModel(
                model,
                multi_avg_fn=get_ema_multi_avg_fn(self.ema_momentum),
                use_buffers=use_buffers,
            )
        self.updates = 0

    @property
    def module(self) -> nn.Module:
        """The model holding the average (evaluate this one)."""
        return self.averaged.module

    @torch.no_grad()
    def update(self) -> None:
        """Average the current ``w`` in (after the optimizer's step), and overwrite every k."""
        with unperturbed(self.optimizer):
            self.averaged.update_parameters(self.model)
            self.updates += 1
            k = self.ema_overwrite_frequency
            if k is not None and self.updates % k == 0:
                torch._foreach_copy_(
                    list(self.model.parameters()), list(self.averaged.module.parameters())
                )

    def state_dict(self) -> dict[str, Any]:
        """The average (``AveragedModel``'s state) and the number of updates."""
        return {"averaged": self.averaged.state_dict(), "updates": self.updates}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved."""
        self.averaged.load_state_dict(state_dict["averaged"])
        self.updates = int(state_dict["updates"])

    def __repr__(self) -> str:
        return (
            f"WithEMA({type(self.model).__name__}, {type(self.optimizer).__name__}, "
            f"ema_momentum={self.ema_momentum}, "
            f"ema_overwrite_frequency={self.ema_overwrite_frequency})"
        )
