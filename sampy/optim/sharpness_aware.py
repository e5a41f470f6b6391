"""The template almost every SAM variant follows: an ascent rule, a descent rule, a base.

One step, for every point of the batch:

1. ``g = ∇L(w)``                               (gradient evaluation 1)
2. ``ε, a = ascent(w, g, a)``                  (where is the second gradient taken?)
3. ``g̃ = ∇L(w + ε)``                           (gradient evaluation 2)
4. ``d, c = descent(g, g̃, c)``                (which direction goes to the base?)
5. ``w, b = base.update(w, d, b)``            (how are parameters moved? at the ORIGINAL w)

A new variant is a new ascent rule, a new descent rule or a new base; ``SAM`` is this class
with the norm-ball ascent and ``d = g̃``. Rules are small objects with ``init(x) -> state``
and a call that returns the result and the new state, so rules with memory (an EMA of
gradients, a stored orthogonal part) stay plain data too.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import numpy as np

from sampy.optim.base import BaseOptimizer, Oracle, check_base


class AscentRule(Protocol):
    """Chooses the perturbation ``ε`` from the point and its clean gradient."""

    def init(self, x: np.ndarray) -> Any:
        """The rule's initial state."""
        ...

    def __call__(self, x: np.ndarray, g: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        """``(ε, new_state)``."""
        ...


class DescentRule(Protocol):
    """Chooses the direction handed to the base optimizer from ``g`` and ``g̃``."""

    def init(self, x: np.ndarray) -> Any:
        """The rule's initial state."""
        ...

    def __call__(self, g: np.ndarray, g_adv: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        """``(d, new_state)``."""
        ...


class PerturbedGradient:
    """SAM's descent rule: hand the gradient at the perturbed point to the base, ``d = g̃``."""

    def init(self, x: np.ndarray) -> None:
        """Stateless."""
        return None

    def __call__(self, g: np.ndarray, g_adv: np.ndarray, state: None) -> tuple[np.ndarray, None]:
        """``d = g̃``."""
        return g_adv, None


class SharpnessAwareState(NamedTuple):
    """States of the ascent rule, the descent rule and the base optimizer."""

    ascent: Any
    descent: Any
    base: Any


class SharpnessAware:
    """Compose an ascent rule, a descent rule and a base optimizer into a two-gradient step."""

    grad_evals_per_step = 2

    def __init__(self, base: BaseOptimizer, ascent: AscentRule, descent: DescentRule) -> None:
        check_base(base)
        self.base = base
        self.ascent = ascent
        self.descent = descent

    def init(self, x: np.ndarray) -> SharpnessAwareState:
        """Initial states of the three parts."""
        return SharpnessAwareState(
            ascent=self.ascent.init(x), descent=self.descent.init(x), base=self.base.init(x)
        )

    def step(
        self, x: np.ndarray, state: SharpnessAwareState, oracle: Oracle
    ) -> tuple[np.ndarray, SharpnessAwareState]:
        """One step: two gradient evaluations, one base update at the unperturbed point."""
        g = oracle.grad(x)
        e, ascent_state = self.ascent(x, g, state.ascent)
        g_adv = oracle.grad(x + e)
        d, descent_state = self.descent(g, g_adv, state.descent)
        x, base_state = self.base.update(x, d, state.base)
        if (
            ascent_state is state.ascent
            and descent_state is state.descent
            and base_state is state.base
        ):
            return x, state  # stateless rules and base (plain SAM): no new tuple per step
        return x, SharpnessAwareState(ascent=ascent_state, descent=descent_state, base=base_state)
