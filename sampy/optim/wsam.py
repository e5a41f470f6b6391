"""WSAM: Weighted SAM, sharpness as a weighted regularisation term.

Y. Yue, J. Jiang, Z. Ye, N. Gao, Y. Liu, K. Zhang, "Sharpness-Aware Minimization Revisited:
Weighted Sharpness as a Regularization Term", KDD 2023, arXiv:2305.15817.

Objective ``L(w) + (γ/(1−γ)) (max_{‖δ‖≤ρ} L(w+δ) − L(w))``; with ``α = γ/(1−γ)`` its gradient is
``g + α(g̃ − g)``. Two gradient evaluations per step (official code:
intelligent-machine-learning/dlrover @ 19e5d790, ``atorch/atorch/optimizers/wsam.py``):

1. ``g = ∇L(w)``;  ``ε = ρ g/(‖g‖ + eps)`` (ASAM form with ``adaptive``)
2. ``g̃ = ∇L(w + ε)``; with ``max_norm``, both g and g̃ are clipped to global norm ``max_norm``
3a. ``decouple=False``: ``w ← base.update(w, α g̃ + (1 − α) g)``
3b. ``decouple=True``:  ``w ← base.update(w, g)``, then ``w ← w − η α (g̃ − g)`` (η = base lr)

The Keras SAM library's documentation (NoteDance/SAM) gives WSAM LookSAM's parameters (``k``,
``alpha``); these are the real ones of the official code
(``rho=0.05, gamma=0.9, decouple=True, max_norm=None``). Reduces to: SAM when γ = 0.5 and
``decouple=False`` (or ``decouple=True`` with plain SGD); the base optimizer on g when γ = 0; the
base optimizer when ρ = 0.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from sampy.optim.base import BaseOptimizer, Oracle, check_base, per_point
from sampy.optim.clipping import clip_by_global_norm
from sampy.optim.hyper import Hyper, validate
from sampy.optim.sam import PERTURB_EPS, RHO, NormBallAscent


class WSAMState(NamedTuple):
    """Only the base optimizer keeps state."""

    base: object


class WSAM:
    """Weighted SAM around a base optimizer. Two gradient evaluations per step.

    Args:
        base: the base optimizer (its ``lr`` scales the decoupled sharpness term).
        rho: radius ρ of the perturbation ball.
        gamma: weight γ ∈ [0, 1) of the sharpness term (α = γ/(1 − γ); 0.5 gives SAM).
        adaptive: ASAM's ball.
        decouple: apply the sharpness term outside the base optimizer (not preconditioned).
        max_norm: clip both gradients to this global norm (None = no clipping). A subnormal
            norm (below ~2.2e-308, such as 1e-320) clips every gradient to zero: the weights
            then never move, which is what that clipping asks for.
        perturb_eps: the guard in ``ρ/(‖g‖ + eps)``.
    """

    grad_evals_per_step = 2
    HYPERPARAMETERS = (
        RHO,
        Hyper("gamma", 0.9, "weight γ of the sharpness term (0.5 = SAM)", 0.0, 1.0, high_open=True),
        Hyper("adaptive", False, "ASAM's ball", kind="bool"),
        Hyper("decouple", True, "apply the sharpness term after the base step", kind="bool"),
        Hyper(
            "max_norm",
            None,
            "clip g and g̃ to this global norm (None = off)",
            0.0,
            None,
            low_open=True,
        ),
        PERTURB_EPS,
    )

    def __init__(
        self,
        base: BaseOptimizer,
        rho: float | np.ndarray = 0.05,
        gamma: float = 0.9,
        adaptive: bool = False,
        decouple: bool = True,
        max_norm: float | None = None,
        perturb_eps: float = 1e-12,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        check_base(base)
        self.base = base
        self.ascent = NormBallAscent(rho=rho, adaptive=adaptive, perturb_eps=perturb_eps)
        self.gamma = gamma
        self.alpha = gamma / (1.0 - gamma)
        self.decouple = decouple
        self.max_norm = max_norm

    def init(self, x: np.ndarray) -> WSAMState:
        """The base optimizer's state."""
        return WSAMState(base=self.base.init(x))

    def step(self, x: np.ndarray, state: WSAMState, oracle: Oracle) -> tuple[np.ndarray, WSAMState]:
        """One WSAM step at the unperturbed ``x``."""
        g = oracle.grad(x)
        e, _ = self.ascent(x, g, None)
        g_adv = oracle.grad(x + e)
        if self.max_norm is not None:
            g = clip_by_global_norm(g, self.max_norm, convention="torch")
            g_adv = clip_by_global_norm(g_adv, self.max_norm, convention="torch")
        if not self.decouple:
            d = self.alpha * g_adv + (1.0 - self.alpha) * g
            x, base_state = self.base.update(x, d, state.base)
            return x, WSAMState(base=base_state)
        x, base_state = self.base.update(x, g, state.base)
        lr = per_point(self.base.lr)
        return x - lr * self.alpha * (g_adv - g), WSAMState(base=base_state)
