"""Descent rules that change only which direction goes to the base optimizer."""

from __future__ import annotations

from typing import Any

import numpy as np

from sampy.optim.base import per_point


class MixedDescent:
    """``d = c g + (1 − c) g̃``: a fixed mix of the clean and the perturbed gradient.

    c = 0 is SAM's rule; WSAM (coupled) uses ``c = 1 − α``; random-perturbation SAM mixes with
    the clean gradient as RWP does.
    """

    def __init__(self, clean_weight: Any) -> None:
        self.clean_weight = per_point(clean_weight)

    def init(self, x: np.ndarray) -> None:
        """Stateless."""
        return None

    def __call__(self, g: np.ndarray, g_adv: np.ndarray, state: None) -> tuple[np.ndarray, None]:
        """``(d, None)``."""
        return self.clean_weight * g + (1.0 - self.clean_weight) * g_adv, None
