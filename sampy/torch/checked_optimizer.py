"""The base of the stand-alone torch twins (no base optimizer): checked parameter groups."""

from __future__ import annotations

from typing import Any

from sampy.optim.hyper import Hyper, validate
from sampy.torch.twin_optimizer import TwinOptimizer


class CheckedOptimizer(TwinOptimizer):
    """A ``torch.optim.Optimizer`` whose every group is checked against ``HYPERPARAMETERS``."""

    HYPERPARAMETERS: tuple[Hyper, ...]

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group, checking its hyperparameters (before it is added) as the constructor."""
        validate(self.HYPERPARAMETERS, {**self.defaults, **param_group})
        super().add_param_group(param_group)
