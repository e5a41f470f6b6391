"""The base class of every torch twin: torch's checkpoint tools, ``deepcopy`` and pickle work.

``torch.distributed.checkpoint`` creates a fresh optimizer's state by a step at learning rate 0
with zero gradients and no closure, which no twin can take as a step of its own; torch's
``Optimizer.__getstate__`` keeps too little for a twin to survive ``deepcopy``. ``TwinOptimizer``
answers both, once, for the template (``SharpnessAware``) and the stand-alone twins.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor


class TwinOptimizer(torch.optim.Optimizer):
    """The base of every torch twin: torch's checkpoint tools, ``deepcopy`` and pickle work.

    - ``step(closure=None)`` on an optimizer with no state, every group's ``lr`` 0 and every
      gradient zero only creates the optimizer's state (``_initialise_state``) and returns
      None (``is_state_initialisation``). It is the call with which
      ``torch.distributed.checkpoint.state_dict``'s ``get_/set_optimizer_state_dict`` create
      the state of an optimizer that has none yet (``_init_optim_state``: zero gradients, every
      ``lr`` set to 0, ``step(closure=None)``). A twin cannot take its step without its closure
      (or its own call shape), and a step at lr 0 should not move the weights nor count as a
      step of the rule (LookSAM's period, GSAM's schedule, an EMA, a generator draw), so this
      call takes none. Any other ``step()`` without its arguments is refused by the twin.
    - ``copy.deepcopy`` and ``pickle`` keep every attribute (torch's ``Optimizer.__getstate__``
      keeps only ``defaults``, ``state`` and ``param_groups``, which loses the base optimizer
      and the rules): the copy steps exactly as the original. Hooks are not copied (as in
      torch).
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "step" in cls.__dict__:
            cls.step = _initialises_state(cls.step)  # type: ignore[method-assign]

    def _initialise_state(self) -> None:
        """Create the state torch's checkpoint tools load into (nothing by default)."""

    def __getstate__(self) -> dict[str, Any]:
        # torch's __setstate__ re-creates the hook dicts empty, as its own __getstate__ implies.
        return {
            key: value
            for key, value in self.__dict__.items()
            if not (key.startswith("_optimizer_") and key.endswith("_hooks"))
        }


def is_state_initialisation(opt: torch.optim.Optimizer, args: tuple, kwargs: dict) -> bool:
    """Whether ``opt.step(*args, **kwargs)`` is torch's checkpoint state initialisation.

    That is ``step()`` or ``step(closure=None)`` on an optimizer with no state yet, while every
    group's ``lr`` is 0 and every gradient is zero (or None). The cheap tests come first: a
    training step of a twin with a state, or with a learning rate that is not 0, reads nothing
    on the device; an ``lr`` tensor off the CPU is never DCP's (it sets ``torch.tensor(0.0)``).
    Only a fresh optimizer at lr 0 reads its gradients, once: a warm-up that starts at lr 0
    with real gradients takes its step.
    """
    if args or set(kwargs) - {"closure"} or kwargs.get("closure") is not None or opt.state:
        return False
    for group in opt.param_groups:
        lr = group.get("lr")
        if isinstance(lr, Tensor):
            if lr.device.type != "cpu" or lr.numel() != 1 or float(lr) != 0.0:
                return False
        elif lr != 0:
            return False
    grads = [p.grad for group in opt.param_groups for p in group["params"] if p.grad is not None]
    return not any(bool(torch.any(g)) for g in grads)


def _initialises_state(step: Callable[..., Any]) -> Callable[..., Any]:
    """``step``, except that the checkpoint state initialisation only creates the state."""

    @functools.wraps(step)
    def checked_step(self: TwinOptimizer, *args: Any, **kwargs: Any) -> Any:
        if is_state_initialisation(self, args, kwargs):
            self._initialise_state()
            return None
        return step(self, *args, **kwargs)

    return checked_step
