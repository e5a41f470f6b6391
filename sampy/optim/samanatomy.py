"""SAMAnatomy: drop the sign-flipped coordinates from a second ascent.

From the code of the research notes on the anatomy of SAM's gradient (lhchau/sam-hessian @ 0c4c993d,
``sam_hessian/optimizer/samanatomy.py``); no paper. Three gradient evaluations per step:

1. ``g = ∇L(w)``;  ``ε1 = ρ g/(‖g‖ + eps)``
2. ``g1 = ∇L(w + ε1)``;  ``r = g1/(g + eps)``;  ``m = g ⊙ 1[r > 0]``;  ``ε2 = ρ m/(‖m‖ + eps)``
3. ``g2 = ∇L(w + ε2)``;  ``w ← base.update(w, g2)``  (the notes' code: SGD with momentum)

The notes: removing the r < 0 coordinates from the second ascent does not remove them from step 3 —
"even higher". Identities: when no coordinate has r ≤ 0, ``ε2 = ε1`` and the update equals SAM's
(one evaluation wasted); ρ = 0 gives the base optimizer. The notes' code uses eps = 1e-8 in both
places; so does this class by default.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from sampy.optim.base import BaseOptimizer, Oracle, check_base, per_point
from sampy.optim.checkpoints import ratio
from sampy.optim.hyper import Hyper, validate
from sampy.optim.perturbation import dual_direction
from sampy.optim.sam import RHO


class SAMAnatomyState(NamedTuple):
    """Only the base optimizer keeps state."""

    base: object


class SAMAnatomy:
    """SAM with a second, sign-filtered ascent. Three gradient evaluations per step."""

    grad_evals_per_step = 3
    HYPERPARAMETERS = (
        RHO,
        Hyper("perturb_eps", 1e-8, "guard in ρ/(‖g‖ + eps) and in g1/(g + eps)", 0.0, None),
    )

    def __init__(
        self, base: BaseOptimizer, rho: float | np.ndarray = 0.05, perturb_eps: float = 1e-8
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        check_base(base)
        self.base = base
        self.rho = rho
        self._radius = per_point(rho)
        self.perturb_eps = perturb_eps

    def init(self, x: np.ndarray) -> SAMAnatomyState:
        """The base optimizer's state."""
        return SAMAnatomyState(base=self.base.init(x))

    def step(
        self, x: np.ndarray, state: SAMAnatomyState, oracle: Oracle
    ) -> tuple[np.ndarray, SAMAnatomyState]:
        """One step: three gradients, one base update at the unperturbed ``x``."""
        g = oracle.grad(x)
        g1 = oracle.grad(x + dual_direction(g, 2.0, self._radius, self.perturb_eps))
        same_sign = ratio(g, g1, self.perturb_eps, mode="notes_code") > 0
        kept = np.where(same_sign, g, 0.0)
        g2 = oracle.grad(x + dual_direction(kept, 2.0, self._radius, self.perturb_eps))
        x, base_state = self.base.update(x, g2, state.base)
        return x, SAMAnatomyState(base=base_state)
