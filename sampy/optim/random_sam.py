"""Random-perturbation SAM: average-case instead of worst-case sharpness.

In the spirit of T. Li, W. Yan, Z. Lei, Y. Wu, K. Fang, M. Yang, X. Huang, "Efficient
Generalization Improvement Guided by Random Weight Perturbation", arXiv:2211.11489 (RWP), in
a generic form (RWP's filter-wise scaling of σ is left out). Two gradient evaluations per step:

1. ``g = ∇L(w)``
2. ``ε = ρ z``, ``z ~ N(0, I)`` (``kind="gaussian"``) or ``ε = ρ u/‖u‖`` (``kind="sphere"``)
3. ``g̃ = ∇L(w + ε)``;  ``d = λ g + (1 − λ) g̃``;  ``w ← base.update(w, d)``

Reduces to the base optimizer when ρ = 0 or λ = 1. Seeded: the same ``seed`` gives the same
perturbations.
"""

from __future__ import annotations

import numpy as np

from sampy.optim.ascents import RandomAscent
from sampy.optim.base import BaseOptimizer
from sampy.optim.descents import MixedDescent
from sampy.optim.hyper import Hyper, validate
from sampy.optim.sharpness_aware import SharpnessAware


class RandomSAM(SharpnessAware):
    """SAM with a random perturbation. Two gradient evaluations per step."""

    HYPERPARAMETERS = (
        Hyper("rho", 0.05, "scale ρ of the random perturbation", 0.0, None, per_point=True),
        Hyper(
            "kind",
            "gaussian",
            "ε = ρ z with z ~ N(0, I), or a random direction of length ρ",
            kind="choice",
            choices=("gaussian", "sphere"),
        ),
        Hyper("mix", 0.0, "weight λ of the clean gradient in d", 0.0, 1.0),
        Hyper("seed", 0, "seed of the perturbations", 0, None, kind="int"),
    )

    def __init__(
        self,
        base: BaseOptimizer,
        rho: float | np.ndarray = 0.05,
        kind: str = "gaussian",
        mix: float = 0.0,
        seed: int = 0,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        super().__init__(base, RandomAscent(rho, kind, int(seed)), MixedDescent(mix))
