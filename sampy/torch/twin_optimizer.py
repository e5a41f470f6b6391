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

from sampy._checks import check_real
from sampy.torch.checkpoint_layout import TWIN_KEY, check_checkpoint, save_in_groups


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
    - ``state_dict()`` names the twin that wrote it (``"twin"`` in the first group), and
      ``load_state_dict`` checks a checkpoint before it loads any of it
      (``checkpoint_layout.check_checkpoint``: the twin, the hyperparameters, the shapes, the
      entries): a bad one raises a ``ValueError`` saying what is wrong and leaves the
      optimizer as it was (a failure while loading puts every attribute back too).
    - Every ``step`` first checks the groups' hyperparameters that changed since the last
      step (a scheduler or a hand edit setting ``rho`` to NaN): a ``ValueError`` naming the
      group and the value, before the weights move.
    """

    # Group entries that are not hyperparameters: the template's counters, the noise state.
    CHECKPOINT_LAYOUT_KEYS: frozenset[str] = frozenset({"shared", "noise"})

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "step" in cls.__dict__:
            cls.step = _initialises_state(cls.step)  # type: ignore[method-assign]
        if "first_step" in cls.__dict__:  # the two-call loop's step starts here
            cls.first_step = _checks_hyperparameters(cls.first_step)  # type: ignore[attr-defined]
        # Wrapped where they resolve, so a mixin's override (the noise state's) runs inside
        # the check and the rollback too; nested super() calls pass straight through.
        if not getattr(cls.state_dict, "names_the_twin", False):
            cls.state_dict = _names_the_twin(cls.state_dict)  # type: ignore[method-assign]
        if not getattr(cls.load_state_dict, "checks_the_checkpoint", False):
            cls.load_state_dict = _checks_before_loading(cls.load_state_dict)  # type: ignore[method-assign]

    def _initialise_state(self) -> None:
        """Create the state torch's checkpoint tools load into (nothing by default)."""

    def state_dict(self) -> dict[str, Any]:
        """torch's ``Optimizer.state_dict()``, naming the twin in its first group."""
        return super().state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """torch's ``Optimizer.load_state_dict``, once the checkpoint has been checked."""
        super().load_state_dict(state_dict)

    def check_hyperparameters(self) -> None:
        """Check the groups' scalar hyperparameters against their ranges (``ValueError``).

        Only values that changed since they were last found valid are checked (a tuple
        comparison per group), so a step pays next to nothing; tensor values (a learning rate
        held as a tensor) are left to torch.
        """
        specs = [s for s in getattr(self, "HYPERPARAMETERS", ()) if s.name != "lr"]
        checked = self.__dict__.setdefault("_checked_hyperparameters", {})
        for index, group in enumerate(self.param_groups):
            values = (*(group.get(spec.name) for spec in specs), group.get("lr"))
            if checked.get(index) == values:
                continue
            for spec, value in zip(specs, values, strict=False):
                if spec.name in group and not isinstance(value, Tensor):
                    _named(spec.check, f"param_groups[{index}]", value)
            lr = values[-1]
            if lr is not None and not isinstance(lr, Tensor):
                # [0, inf), not the constructors' (0, inf): a warm-up scheduler starts at 0.
                _named(
                    lambda v: check_real("lr", v, 0.0, None, array_ok=False),
                    f"param_groups[{index}]",
                    lr,
                )
            checked[index] = values

    def __getstate__(self) -> dict[str, Any]:
        # torch's __setstate__ re-creates the hook dicts empty, as its own __getstate__ implies.
        return {
            key: value
            for key, value in self.__dict__.items()
            if not (key.startswith("_optimizer_") and key.endswith("_hooks"))
        }


def _named(check: Callable[[Any], None], where: str, value: Any) -> None:
    try:
        check(value)
    except ValueError as err:
        raise ValueError(f"{where}: {err} (set before this step; nothing moved)") from None


def _checks_hyperparameters(first_step: Callable[..., Any]) -> Callable[..., Any]:
    """``first_step``, after ``check_hyperparameters`` (the two-call loop's step)."""

    @functools.wraps(first_step)
    def checked_first_step(self: TwinOptimizer, *args: Any, **kwargs: Any) -> Any:
        if not getattr(self, "_in_step", False):  # inside step(), step's own check ran
            self.check_hyperparameters()
        return first_step(self, *args, **kwargs)

    return checked_first_step


def _names_the_twin(state_dict: Callable[..., Any]) -> Callable[..., Any]:
    """``state_dict``, whose outermost call writes the twin's name into the first group."""

    @functools.wraps(state_dict)
    def named(self: TwinOptimizer) -> dict[str, Any]:
        outer = not self.__dict__.get("_saving", False)
        self.__dict__["_saving"] = True
        try:
            saved = state_dict(self)
        finally:
            if outer:
                self.__dict__.pop("_saving", None)
        if outer and saved.get("param_groups"):
            save_in_groups(saved, TWIN_KEY, type(self).__name__)
        return saved

    named.names_the_twin = True  # type: ignore[attr-defined]
    return named


def _checks_before_loading(load_state_dict: Callable[..., Any]) -> Callable[..., Any]:
    """``load_state_dict``, whose outermost call checks the checkpoint first and, should the
    loading itself still fail, puts back every attribute of the twin and its base optimizer."""

    @functools.wraps(load_state_dict)
    def checked(self: TwinOptimizer, state_dict: Any) -> None:
        if self.__dict__.get("_loading", False):
            return load_state_dict(self, state_dict)
        state_dict = check_checkpoint(self, state_dict, self.CHECKPOINT_LAYOUT_KEYS)
        base = getattr(self, "base_optimizer", None)
        kept = dict(self.__dict__)
        kept_base = dict(base.__dict__) if base is not None else None
        self.__dict__["_loading"] = True
        try:
            load_state_dict(self, state_dict)
        except Exception as err:
            self.__dict__.clear()
            self.__dict__.update(kept)
            if base is not None:
                base.__dict__.clear()
                base.__dict__.update(kept_base)
            if isinstance(err, ValueError):
                raise
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: the checkpoint does not fit "
                f"({type(err).__name__}: {err}); nothing was loaded"
            ) from err
        finally:
            self.__dict__.pop("_loading", None)
        self.__dict__.pop("_checked_hyperparameters", None)

    checked.checks_the_checkpoint = True  # type: ignore[attr-defined]
    return checked


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
        self.check_hyperparameters()
        return step(self, *args, **kwargs)

    return checked_step


TwinOptimizer.state_dict = _names_the_twin(TwinOptimizer.state_dict)  # type: ignore[method-assign]
TwinOptimizer.load_state_dict = _checks_before_loading(TwinOptimizer.load_state_dict)  # type: ignore[method-assign]
