"""ImbSAM: SAM on the tail classes only, plain descent on the head classes.

Y. Zhou, Y. Qu, X. Xu, H. Shen, "ImbSAM: A Closer Look at Sharpness-Aware Minimization in
Class-Imbalanced Recognition", ICCV 2023, arXiv:2308.07815. Official code:
cool-xuan/Imbalanced_SAM @ c65f41eb (``imbsam.py``, ``utils/trainval.py``). Objective
``min_w L_head(w) + max_{‖ε‖≤ρ} L_tail(w + ε)`` with, over the n examples (the batch) and the
problem's ``groups`` (``"tail"`` marks a tail-class example, anything else is head):

    L_head = (1/n) Σ_{i ∈ head} ℓ_i,      L_tail = (c/n) Σ_{i ∈ tail} ℓ_i,   c = tail_weight

— both divided by the FULL n, and c = 2 as the official training loop hard-codes. One step:

1. ``g_h = ∇L_head(w)``                                   (evaluation 1)
2. ``g_t = ∇L_tail(w)``                                   (evaluation 2; same forward as 1)
3. ``ε = ρ g_t / (‖g_t‖ + 1e-16)``
4. ``g̃_t = ∇L_tail(w + ε)``                               (evaluation 3; tail examples only)
5. ``w ← base.update(w, g̃_t + g_h)`` at ``w``

Three gradient evaluations per step (one fewer when the head or the tail is empty: that
gradient is 0 and is not asked for). Reduces to: the base optimizer on ``∇L_head`` when the
tail is empty; SAM (eps 1e-16) on ``L_tail`` when the head is empty; SAM when every example is
tail and c = 1; the base optimizer on ``∇(L_head + L_tail)`` when ρ = 0. Needs a
``sampy.problems.SumOfExamples`` with ``groups``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from sampy.optim.base import BaseOptimizer, Oracle, check_base, per_point
from sampy.optim.hyper import Hyper, validate
from sampy.optim.perturbation import dual_direction
from sampy.optim.sam import RHO
from sampy.problems import TAIL


class ImbSAMState(NamedTuple):
    """Only the base optimizer keeps state."""

    base: object


class ImbSAM:
    """ImbSAM around a base optimizer. Three gradient evaluations per step.

    Args:
        base: the base optimizer.
        rho: radius ρ of the tail loss's perturbation.
        tail_weight: the factor c of the tail loss (2 as the official code; 1 for the plain
            formulation).
        perturb_eps: the guard in ``ρ/(‖g_t‖ + eps)`` (1e-16 as the official code).
    """

    grad_evals_per_step = 3
    needs_examples = True  # a SumOfExamples with groups
    HYPERPARAMETERS = (
        RHO,
        Hyper(
            "tail_weight", 2.0, "factor c of the tail loss (official training loop: 2)", 0.0, None
        ),
        Hyper("perturb_eps", 1e-16, "guard in ρ/(‖g_t‖ + eps)", 0.0, None),
    )

    def __init__(
        self,
        base: BaseOptimizer,
        rho: float | np.ndarray = 0.05,
        tail_weight: float = 2.0,
        perturb_eps: float = 1e-16,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        check_base(base)
        self.base = base
        self.rho = rho
        self.tail_weight = float(tail_weight)
        self.perturb_eps = float(perturb_eps)
        self._radius = per_point(rho)

    def init(self, x: np.ndarray) -> ImbSAMState:
        """The base optimizer's state."""
        return ImbSAMState(base=self.base.init(x))

    @staticmethod
    def split(oracle: Oracle) -> tuple[np.ndarray, np.ndarray, int]:
        """Head indices, tail indices and n of the oracle's problem."""
        problem = oracle.require_problem("ImbSAM (head and tail examples)")
        if problem.groups is None:
            raise ValueError(
                "ImbSAM needs a problem with groups (one label per example, 'tail' for "
                "tail-class examples), e.g. sampy.problems.make_logistic_problem(imbalance=0.2)"
            )
        is_tail = problem.groups == TAIL
        return np.flatnonzero(~is_tail), np.flatnonzero(is_tail), problem.n

    def step(
        self, x: np.ndarray, state: ImbSAMState, oracle: Oracle
    ) -> tuple[np.ndarray, ImbSAMState]:
        """One ImbSAM step at the unperturbed ``x``."""
        head, tail, n = self.split(oracle)
        # Subset means times |subset|/n turn them into the full-batch-normalised sums.
        d = np.zeros_like(x, dtype=float)
        if head.size:
            d = d + (head.size / n) * oracle.grad(x, head)
        if tail.size:
            c = self.tail_weight * tail.size / n
            g_t = c * oracle.grad(x, tail)
            e = dual_direction(g_t, 2.0, self._radius, self.perturb_eps)
            d = d + c * oracle.grad(x + e, tail)
        x, base_state = self.base.update(x, d, state.base)
        return x, ImbSAMState(base=base_state)

    def __repr__(self) -> str:
        return (
            f"ImbSAM({self.base!r}, rho={self.rho}, tail_weight={self.tail_weight}, "
            f"perturb_eps={self.perturb_eps})"
        )
