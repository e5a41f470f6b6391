"""A ρ that follows the learning rate of a torch optimizer, group by group (GSAM's schedule).

J. Zhuang et al., "Surrogate Gap Guided Sharpness-Aware Minimization", ICLR 2022,
arXiv:2203.08065, tie the radius to the learning rate:

    ρ_t = ρ_min + (ρ_max − ρ_min)(lr_t − lr_min)/(lr_max − lr_min)      (ρ_max when lr_max = lr_min)

the formula of ``sampy.optim.gsam.proportional_rho``, which :class:`ProportionalRho` calls. The
NumPy side takes the learning rate as a function of the step; a torch loop has an
``LRScheduler`` instead, so :class:`ProportionalRho` reads each parameter group's *current*
``lr`` after the LR scheduler has moved it and writes that group's ``rho``: whatever moves the
learning rate (OneCycleLR with per-group ``max_lr``, ReduceLROnPlateau, a hand-written rule), ρ
follows. Any twin that reads ``rho`` from its groups works (SAM, ASAM, GSAM without
``rho_schedule``, LookSAM, FriendlySAM, ...).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from sampy.optim.gsam import proportional_rho

__all__ = ["ProportionalRho"]


def _real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"ProportionalRho: {name} must be a finite real number, got {value!r}")
    return float(value)


def _per_group(name: str, value: float | Sequence[float]) -> float | tuple[float, ...]:
    if isinstance(value, Sequence) and not isinstance(value, str):
        return tuple(_real(f"{name}[{i}]", v) for i, v in enumerate(value))
    return _real(name, value)


class ProportionalRho:
    """Set every parameter group's ``rho`` from that group's current ``lr`` (GSAM's schedule).

    Call :meth:`step` right after the LR scheduler's ``step()``; the constructor already sets ρ
    from the learning rates the optimizer has now. pytorch-optimizer's ``ProportionScheduler``
    does the same from the first group's learning rate only.

    Args:
        optimizer: the SAM-type optimizer whose groups carry ``rho`` (its ``lr`` is read from the
            same groups, also when the LR scheduler drives ``optimizer.base_optimizer``).
        lr_max: the learning rate mapped to ``rho_max`` (a number, or one per group, e.g. the
            ``max_lr`` list of ``OneCycleLR``).
        lr_min: the learning rate mapped to ``rho_min`` (a number or one per group).
        rho_max: ρ at ``lr_max`` (≥ 0).
        rho_min: ρ at ``lr_min`` (≥ 0).
        clamp: keep ρ ≥ 0 when a learning rate falls below ``lr_min`` (a warm-up); without it
            such a step raises ``ValueError`` instead of perturbing downhill.

    Example:
        >>> import torch
        >>> import sampy.torch as st
        >>> w = torch.nn.Parameter(torch.ones(3))
        >>> opt = st.GSAM([w], torch.optim.SGD, lr=0.1)
        >>> lr_scheduler = torch.optim.lr_scheduler.LinearLR(opt, 1.0, 0.5, total_iters=2)
        >>> rho_scheduler = st.ProportionalRho(opt, lr_max=0.1, lr_min=0.0, rho_max=0.05,
        ...                                    rho_min=0.01)
        >>> for _ in range(2):
        ...     w.sum().backward()
        ...     opt.first_step(zero_grad=True)
        ...     w.sum().backward()
        ...     opt.second_step(zero_grad=True)
        ...     lr_scheduler.step()
        ...     rho_scheduler.step()
        >>> [round(r, 6) for r in rho_scheduler.get_last_rho()]  # lr 0.05: halfway
        [0.03]
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        lr_max: float | Sequence[float],
        lr_min: float | Sequence[float],
        rho_max: float,
        rho_min: float,
        *,
        clamp: bool = False,
    ) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise ValueError(
                f"ProportionalRho: optimizer must be a torch.optim.Optimizer, got "
                f"{type(optimizer).__name__}"
            )
        missing = [i for i, group in enumerate(optimizer.param_groups) if "rho" not in group]
        if missing:
            raise ValueError(
                f"ProportionalRho: parameter group {missing[0]} of {type(optimizer).__name__} "
                f"has no 'rho'; use it with a SAM-type optimizer whose groups carry rho"
            )
        if getattr(getattr(optimizer, "ascent", None), "rho_schedule", None) is not None:
            raise ValueError(
                f"ProportionalRho: this {type(optimizer).__name__} has a rho_schedule, which "
                f"overrides the groups' rho; build it without rho_schedule"
            )
        if not isinstance(clamp, bool):
            raise ValueError(f"ProportionalRho: clamp must be True or False, got {clamp!r}")
        self.optimizer = optimizer
        self.lr_max = _per_group("lr_max", lr_max)
        self.lr_min = _per_group("lr_min", lr_min)
        self.rho_max = _real("rho_max", rho_max)
        self.rho_min = _real("rho_min", rho_min)
        self.clamp = clamp
        for i in range(len(optimizer.param_groups)):
            low, high = self._bounds(i)
            if high < low:
                raise ValueError(
                    f"ProportionalRho: lr_max must be >= lr_min, got lr_max={high} and "
                    f"lr_min={low} (group {i})"
                )
        proportional_rho(float, 1.0, 0.0, self.rho_max, self.rho_min)  # its check: ρ ≥ 0
        self.last_epoch = 0
        self._last_rho: list[float] = []
        self._apply()

    def _bounds(self, i: int) -> tuple[float, float]:
        n = len(self.optimizer.param_groups)
        bounds = []
        for name, value in (("lr_min", self.lr_min), ("lr_max", self.lr_max)):
            if isinstance(value, tuple):
                if len(value) != n:
                    raise ValueError(
                        f"ProportionalRho: {name} has {len(value)} entries for {n} parameter "
                        f"groups; give one per group or a single number"
                    )
                bounds.append(value[i])
            else:
                bounds.append(value)
        return bounds[0], bounds[1]

    def _apply(self) -> None:
        rhos = []
        for i, group in enumerate(self.optimizer.param_groups):
            lr = float(group["lr"])
            low, high = self._bounds(i)
            # The formula is the NumPy reference's: the "schedule" is this group's current lr.
            formula = proportional_rho(
                lambda t, lr=lr: lr, high, low, self.rho_max, self.rho_min, self.clamp
            )
            rho = formula(self.last_epoch)
            if not rho >= 0.0:
                raise ValueError(
                    f"ProportionalRho: group {i}'s lr={lr} lies below lr_min={low}, which gives "
                    f"rho={rho}; pass clamp=True (a warm-up) or a smaller lr_min"
                )
            group["rho"] = rho
            rhos.append(rho)
        self._last_rho = rhos

    def step(self) -> None:
        """Set every group's ``rho`` from its current ``lr`` (after the LR scheduler's step)."""
        self.last_epoch += 1
        self._apply()

    def get_last_rho(self) -> list[float]:
        """The ρ of every group set by the last ``step()`` (or the constructor)."""
        return list(self._last_rho)

    def state_dict(self) -> dict[str, Any]:
        """The settings, the step count and the last ρ values (not the optimizer)."""
        return {key: value for key, value in vars(self).items() if key != "optimizer"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved (the groups' ``rho`` come with the optimizer)."""
        unknown = set(state_dict) - set(self.state_dict())
        if unknown:
            raise ValueError(
                f"ProportionalRho.load_state_dict: unknown keys {sorted(unknown)}; was it saved "
                f"by ProportionalRho.state_dict()?"
            )
        self.__dict__.update(state_dict)

    def __repr__(self) -> str:
        return (
            f"ProportionalRho(lr_max={self.lr_max}, lr_min={self.lr_min}, "
            f"rho_max={self.rho_max}, rho_min={self.rho_min}, clamp={self.clamp})"
        )
