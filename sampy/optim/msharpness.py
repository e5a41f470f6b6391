"""m-sharpness SAM (each micro-batch perturbs with its own gradient) and multi-step ascent.

m-SAM: M. Andriushchenko, N. Flammarion, "Towards Understanding Sharpness-Aware Minimization", ICML
2022, arXiv:2206.06232 (n-SAM / 1-SAM / m-SAM); the per-device perturbation of P. Foret, A. Kleiner,
H. Mobahi, B. Neyshabur, "Sharpness-Aware Minimization for Efficiently Improving Generalization",
ICLR 2021, arXiv:2010.01412, Section 4.1. The batch is the whole problem (n examples), split into
``M = ⌈n/m⌉`` micro-batches ``B_1..B_M`` of size m (the last one smaller when m does not divide n):

1. ``g_j = ∇L_{B_j}(w)``                          for every j   (M evaluations)
2. ``ε_j = ρ g_j / (‖g_j‖ + eps)``
3. ``g̃_j = ∇L_{B_j}(w + ε_j)``                    for every j   (M evaluations)
4. ``d = Σ_j (|B_j|/n) g̃_j``  (= the plain mean when m divides n)
5. ``w ← base.update(w, d)`` at ``w``

``2⌈n/m⌉`` gradient evaluations per step (each over m examples, so about two full passes).
Reduces to: SAM on the full problem when m ≥ n; SAM when all micro-batches hold the same
examples; 1-SAM ``d = (1/n) Σ_i ∇ℓ_i(w + ρ ∇ℓ_i/‖∇ℓ_i‖)`` when m = 1; the base optimizer when
ρ = 0. Needs a ``sampy.problems.SumOfExamples``.

Multi-step ascent: optax ``contrib.sam`` with ``sync_period = ascent_steps + 1`` and the
paper-equivalent adversarial optimizer ``chain(normalize(), sgd(ρ))`` (google-deepmind/optax
@ 1cde7043, ``optax/contrib/_sam.py``):

1. ``w_0 = w``; for ``j = 0..k−1``: ``w_{j+1} = w_j + ρ ∇L(w_j)/(‖∇L(w_j)‖ + eps)``
2. ``w ← base.update(w, ∇L(w_k))`` at the original ``w``

``k + 1`` gradient evaluations per step (k = ``ascent_steps``). Each ascent step has length ρ
(so the last point may lie up to kρ from w), as optax does. Reduces to SAM when k = 1 (optax:
with ``perturb_eps = 0``); the base optimizer when ρ = 0. Works on any function.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from sampy.optim.base import BaseOptimizer, Oracle, check_base, copy_rng, per_point
from sampy.optim.hyper import Hyper, validate
from sampy.optim.perturbation import dual_direction
from sampy.optim.sam import PERTURB_EPS, RHO


def micro_batches(order: np.ndarray, m: int) -> list[np.ndarray]:
    """Consecutive chunks of ``order`` of size ``m`` (the last one may be smaller)."""
    return [order[i : i + m] for i in range(0, order.size, m)]


# The documented maximum of MultiStepSAM's ascent loop: one gradient evaluation per ascent
# step, so a value such as 10**30 would never finish a step.
MAX_ASCENT_STEPS = 100


class MSharpnessState(NamedTuple):
    """The shuffling generator (``None`` without shuffling) and the base optimizer's state."""

    rng: np.random.Generator | None
    base: object


class MSharpnessSAM:
    """m-sharpness SAM: every micro-batch of m examples is perturbed with its own gradient.

    Args:
        base: the base optimizer, e.g. ``SGD(lr=0.1)``.
        rho: radius ρ of each micro-batch's perturbation.
        m: micro-batch size (m ≥ n: SAM on the whole problem; m = 1: 1-SAM).
        shuffle: draw a new random partition every step (as a shuffling data loader would);
            otherwise the micro-batches are the consecutive examples ``[0, m), [m, 2m), …``.
        seed: seed of the shuffling generator.
        perturb_eps: the guard in ``ρ/(‖g_j‖ + eps)``.
    """

    needs_examples = True  # runs only on a sampy.problems.SumOfExamples
    HYPERPARAMETERS = (
        RHO,
        Hyper("m", 8, "micro-batch size (m ≥ n: SAM; m = 1: 1-SAM)", 1, None, kind="int"),
        Hyper(
            "shuffle", False, "a new random partition into micro-batches every step", kind="bool"
        ),
        Hyper("seed", 0, "seed of the shuffling", 0, None, kind="int"),
        PERTURB_EPS,
    )

    def __init__(
        self,
        base: BaseOptimizer,
        rho: float | np.ndarray = 0.05,
        m: int = 8,
        shuffle: bool = False,
        seed: int = 0,
        perturb_eps: float = 1e-12,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        check_base(base)
        self.base = base
        self.rho = rho
        self.m = int(m)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.perturb_eps = float(perturb_eps)
        # One radius per start point broadcasts over the micro-batch axis too: (..., 1, 1).
        radius = per_point(rho)
        self._radius = radius[..., None] if isinstance(radius, np.ndarray) else radius

    def grad_evals(self, n: int) -> int:
        """Gradient evaluations per step on a problem with ``n`` examples: ``2⌈n/m⌉``."""
        return 2 * math.ceil(n / min(self.m, n))

    def init(self, x: np.ndarray) -> MSharpnessState:
        """A seeded generator when shuffling, and the base optimizer's state."""
        rng = np.random.default_rng(self.seed) if self.shuffle else None
        return MSharpnessState(rng=rng, base=self.base.init(x))

    def step(
        self, x: np.ndarray, state: MSharpnessState, oracle: Oracle
    ) -> tuple[np.ndarray, MSharpnessState]:
        """One m-SAM step: 2 evaluations per micro-batch, one base update at ``w``."""
        problem = oracle.require_problem("MSharpnessSAM (micro-batches of examples)")
        rng = state.rng
        if rng is not None:
            rng = copy_rng(rng)
            order = rng.permutation(problem.n)
        else:
            order = np.arange(problem.n)
        batches = micro_batches(order, min(self.m, problem.n))
        sizes = np.array([b.size for b in batches], dtype=float)
        at_w = np.broadcast_to(x[..., None, :], (*x.shape[:-1], len(batches), x.shape[-1]))
        g = oracle.batch_grads(at_w, batches)
        e = dual_direction(g, 2.0, self._radius, self.perturb_eps)
        g_adv = oracle.batch_grads(at_w + e, batches)
        d = np.einsum("...md,m->...d", g_adv, sizes / problem.n)
        x, base_state = self.base.update(x, d, state.base)
        return x, MSharpnessState(rng=rng, base=base_state)

    def __repr__(self) -> str:
        return (
            f"MSharpnessSAM({self.base!r}, rho={self.rho}, m={self.m}, shuffle={self.shuffle}, "
            f"seed={self.seed}, perturb_eps={self.perturb_eps})"
        )


class MultiStepState(NamedTuple):
    """Only the base optimizer keeps state."""

    base: object


class MultiStepSAM:
    """SAM with k normalised ascent steps (optax ``sync_period = k + 1``).

    Args:
        base: the base optimizer.
        rho: length ρ of every ascent step.
        ascent_steps: k ≥ 1 (1 = SAM).
        perturb_eps: the guard in ``ρ/(‖g‖ + eps)`` (optax's ``normalize()`` has none: 0).
    """

    needs_examples = False
    HYPERPARAMETERS = (
        RHO,
        Hyper(
            "ascent_steps",
            1,
            "normalised ascent steps of length ρ (optax sync_period − 1; 1 = SAM; at most 100, "
            "one gradient evaluation each)",
            1,
            MAX_ASCENT_STEPS,
            kind="int",
        ),
        PERTURB_EPS,
    )

    def __init__(
        self,
        base: BaseOptimizer,
        rho: float | np.ndarray = 0.05,
        ascent_steps: int = 1,
        perturb_eps: float = 1e-12,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        check_base(base)
        self.base = base
        self.rho = rho
        self.ascent_steps = int(ascent_steps)
        self.perturb_eps = float(perturb_eps)
        self._radius = per_point(rho)

    @property
    def grad_evals_per_step(self) -> int:
        """``ascent_steps + 1``."""
        return self.ascent_steps + 1

    def init(self, x: np.ndarray) -> MultiStepState:
        """The base optimizer's state."""
        return MultiStepState(base=self.base.init(x))

    def step(
        self, x: np.ndarray, state: MultiStepState, oracle: Oracle
    ) -> tuple[np.ndarray, MultiStepState]:
        """k ascent steps from ``w``, then the base step at ``w`` with the last gradient."""
        w_adv = x
        g = oracle.grad(x)
        for _ in range(self.ascent_steps):
            w_adv = w_adv + dual_direction(g, 2.0, self._radius, self.perturb_eps)
            g = oracle.grad(w_adv)
        x, base_state = self.base.update(x, g, state.base)
        return x, MultiStepState(base=base_state)

    def __repr__(self) -> str:
        return (
            f"MultiStepSAM({self.base!r}, rho={self.rho}, ascent_steps={self.ascent_steps}, "
            f"perturb_eps={self.perturb_eps})"
        )
