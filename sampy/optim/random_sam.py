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

from typing import Any

import numpy as np

from sampy.optim.base import BaseOptimizer, copy_rng, per_point
from sampy.optim.hyper import Hyper, validate
from sampy.optim.perturbation import unit
from sampy.optim.sharpness_aware import SharpnessAware


class RandomAscent:
    """Random perturbation (average-case sharpness): ``ε ~ N(0, σ²I)`` or ``ε = ρ u/‖u‖``.

    ``kind="gaussian"`` draws ``ε = σ z``; ``kind="sphere"`` draws a uniform direction of
    length ρ. The generator lives in the state, so a run is reproducible from ``seed``.
    """

    def __init__(self, rho: Any, kind: str, seed: int) -> None:
        self.rho = per_point(rho)
        self.kind = kind
        self.seed = seed

    def init(self, x: np.ndarray) -> np.random.Generator:
        """A generator seeded with ``seed``."""
        return np.random.default_rng(self.seed)

    def __call__(
        self, x: np.ndarray, g: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.random.Generator]:
        """``(ε, rng)`` — drawn from a copy, so the given state is never changed."""
        rng = copy_rng(rng)
        z = rng.standard_normal(np.shape(x))
        if self.kind == "gaussian":
            return self.rho * z, rng
        return unit(z, self.rho, 0.0), rng


class MixedDescent:
    """``d = c g + (1 − c) g̃``: a fixed mix of the clean and the perturbed gradient.

    c = 0 is SAM's rule; RandomSAM's ``mix`` is ``c`` (RWP mixes the clean gradient in the same
    way).
    """

    def __init__(self, clean_weight: Any) -> None:
        self.clean_weight = per_point(clean_weight)

    def init(self, x: np.ndarray) -> None:
        """Stateless."""
        return None

    def __call__(self, g: np.ndarray, g_adv: np.ndarray, state: None) -> tuple[np.ndarray, None]:
        """``(d, None)``."""
        return self.clean_weight * g + (1.0 - self.clean_weight) * g_adv, None


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
