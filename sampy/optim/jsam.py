"""logit-SAM and J-SAM: 1-SAM with only the logit scale, or only the Jacobian, perturbed.

C. Baek, Z. Kolter, A. Raghunathan, "Why is SAM Robust to Label Noise?", ICLR 2024,
arXiv:2405.03676, Sections 3-4. For a binary model with the logistic loss the
per-example gradient is a logit scale times the Jacobian, ``∇ℓ_i(w) = r_i(w) ∇f_i(w)`` with
``r_i = −t_i σ(−t_i f_i)`` (``sampy.dln``). 1-SAM (``MSharpnessSAM`` with ``m = 1``) perturbs each
example on its own, ``ε_i = ρ ∇ℓ_i(w)/(‖∇ℓ_i(w)‖ + eps)``, and moves *both* factors to
``w + ε_i``. The two variants here move one factor each; per step, for every example i:

1. ``g_i = ∇ℓ_i(w)``                                          (n evaluations, one per example)
2. ``ε_i = ρ g_i / (‖g_i‖ + eps)``
3. logit-SAM: ``G_i = r_i(w + ε_i) · ∇f_i(w)``     — the logit scale at ``w + ε_i``
   J-SAM:     ``G_i = r_i(w) · ∇f_i(w + ε_i)``     — the Jacobian at ``w + ε_i``
4. ``d = (1/n) Σ_i G_i + λ w``  (the ridge ``(λ/2)‖w‖²`` of a ``LogisticRegression`` does not go
   through the logit: it is taken at ``w``)
5. ``w ← base.update(w, d)`` at ``w``

Cost per step on n examples: J-SAM ``2n`` gradient evaluations (n per-example gradients, then n
vector-Jacobian products, each at its own point ``w + ε_i``); logit-SAM ``n + 1`` (n per-example
gradients, a forward pass at the n points ``w + ε_i``, then **one** backward pass at ``w``:
``Σ_i r_i ∇f_i(w)`` is the gradient of ``Σ_i r_i f_i(w)`` with the ``r_i`` held fixed).

Reduces to: on the linear model ``f = ⟨w, x⟩`` the Jacobian ``x`` does not
depend on ``w``, so J-SAM is SGD (any ``λ``) and logit-SAM is 1-SAM (``λ = 0``); the base
optimizer when ρ = 0. On the 2-layer deep linear network J-SAM's ``G_i`` is the closed form of
Proposition 4.1 (``sampy.dln.jsam_gradients``). Needs a binary logit model
(``sampy.dln.logit_model``: ``LogisticRegression`` or ``DeepLinearNetwork``) and exact gradients
(no ``NoisyGradient``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from sampy.dln import LogitModel, logistic_logit_derivative, logit_model
from sampy.optim.base import BaseOptimizer, Oracle, check_base, per_point
from sampy.optim.hyper import validate
from sampy.optim.perturbation import dual_direction
from sampy.optim.sam import PERTURB_EPS, RHO

__all__ = ["JSAM", "LogitJacobianState", "LogitSAM"]


class LogitJacobianState(NamedTuple):
    """Only the base optimizer keeps state."""

    base: object


def _spend(oracle: Oracle, gradients: int = 0, forwards: int = 0) -> None:
    """Count evaluations made on the problem directly (logits and Jacobians, which the oracle
    does not serve), with the oracle's own rules: one backward pass is one gradient evaluation,
    one forward pass over any examples is one loss call."""
    oracle.calls += gradients
    oracle.loss_calls += forwards


class _LogitJacobianSAM:
    """What logit-SAM and J-SAM share: the per-example perturbation and the base step."""

    needs_examples = True  # runs only on a binary logit model (a sum of examples)
    HYPERPARAMETERS = (RHO, PERTURB_EPS)
    _name = ""

    def __init__(
        self,
        base: BaseOptimizer,
        rho: float | np.ndarray = 0.05,
        perturb_eps: float = 1e-12,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        check_base(base)
        self.base = base
        self.rho = rho
        self.perturb_eps = float(perturb_eps)
        # One radius per start point broadcasts over the example axis too: (..., 1, 1).
        radius = per_point(rho)
        self._radius = radius[..., None] if isinstance(radius, np.ndarray) else radius

    def grad_evals(self, n: int) -> int:
        """Gradient evaluations per step on a problem with ``n`` examples."""
        raise NotImplementedError

    def init(self, x: np.ndarray) -> LogitJacobianState:
        """The base optimizer's state."""
        return LogitJacobianState(base=self.base.init(x))

    def _direction(
        self,
        model: LogitModel,
        at_w: np.ndarray,
        at_adv: np.ndarray,
        examples: np.ndarray,
        oracle: Oracle,
    ) -> np.ndarray:
        """``(1/n) Σ_i G_i`` from the points ``w`` and ``w + ε_i`` (both ``(..., n, d)``)."""
        raise NotImplementedError

    def step(
        self, x: np.ndarray, state: LogitJacobianState, oracle: Oracle
    ) -> tuple[np.ndarray, LogitJacobianState]:
        """One step: per-example perturbations, the variant's ``G_i``, one base update at ``w``."""
        problem = oracle.require_problem(f"{self._name} (per-example logits and Jacobians)")
        if oracle.sigma > 0:
            raise ValueError(
                f"{self._name} splits exact per-example gradients into logit scale and Jacobian; "
                "gradient noise (sampy.problems.NoisyGradient) is not supported"
            )
        model = logit_model(problem)
        examples = np.arange(problem.n)
        g = oracle.per_example_grads(x)  # (..., n, d): n evaluations
        e = dual_direction(g, 2.0, self._radius, self.perturb_eps)
        at_w = np.broadcast_to(x[..., None, :], g.shape)
        d = self._direction(model, at_w, at_w + e, examples, oracle)
        if model.l2:
            d = d + model.l2 * x
        x, base_state = self.base.update(x, d, state.base)
        return x, LogitJacobianState(base=base_state)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.base!r}, rho={self.rho}, perturb_eps={self.perturb_eps})"
        )


class LogitSAM(_LogitJacobianSAM):
    """logit-SAM: ``G_i = r_i(w + ε_i) ∇f_i(w)`` — each example's logit scale is read at its own
    1-SAM point, the Jacobian stays at ``w``.

    Args:
        base: the base optimizer, e.g. ``SGD(lr=0.1)``.
        rho: radius ρ of every example's perturbation.
        perturb_eps: the guard in ``ρ/(‖∇ℓ_i‖ + eps)``.
    """

    _name = "LogitSAM"

    def grad_evals(self, n: int) -> int:
        """``n + 1``: n per-example gradients, then one backward pass at ``w``."""
        return n + 1

    def _direction(
        self,
        model: LogitModel,
        at_w: np.ndarray,
        at_adv: np.ndarray,
        examples: np.ndarray,
        oracle: Oracle,
    ) -> np.ndarray:
        n = examples.size
        r_adv = logistic_logit_derivative(model.logits_at(at_adv, examples), model.labels)
        jac = model.logit_grads_at(at_w, examples)
        _spend(oracle, gradients=1, forwards=1)
        return np.einsum("...n,...nd->...d", r_adv, jac) / n


class JSAM(_LogitJacobianSAM):
    """J-SAM: ``G_i = r_i(w) ∇f_i(w + ε_i)`` — each example's Jacobian is read at its own 1-SAM
    point, the logit scale stays at ``w``. On the 2-layer deep linear network this is SGD plus
    an activation-norm penalty on the first layer and a weight-norm penalty on the last
    (Proposition 4.1 of Baek et al.; ``sampy.dln.jsam_gradients``).

    Args:
        base: the base optimizer, e.g. ``SGD(lr=0.1)``.
        rho: radius ρ of every example's perturbation.
        perturb_eps: the guard in ``ρ/(‖∇ℓ_i‖ + eps)``.
    """

    _name = "JSAM"

    def grad_evals(self, n: int) -> int:
        """``2n``: n per-example gradients, then n vector-Jacobian products at ``w + ε_i``."""
        return 2 * n

    def _direction(
        self,
        model: LogitModel,
        at_w: np.ndarray,
        at_adv: np.ndarray,
        examples: np.ndarray,
        oracle: Oracle,
    ) -> np.ndarray:
        n = examples.size
        # The logits at w come with the clean pass (step 1), no extra evaluation.
        r = logistic_logit_derivative(model.logits_at(at_w, examples), model.labels)
        jac_adv = model.logit_grads_at(at_adv, examples)
        _spend(oracle, gradients=n)
        return np.einsum("...n,...nd->...d", r, jac_adv) / n
