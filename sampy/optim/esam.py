"""ESAM: Efficient SAM — stochastic weight perturbation and sharpness-sensitive data selection.

J. Du, H. Yan, J. Feng, J. T. Zhou, L. Zhen, R. S. M. Goh, V. Y. F. Tan, "Efficient
Sharpness-aware Minimization for Improved Training of Neural Networks", ICLR 2022,
arXiv:2110.03141. Official code: dydjw9/Efficient_SAM @ 1e06840c (``utils/Esam.py``); where the
paper and the code differ, a switch chooses. One step:

1. SWP mask ``k_i ~ Bernoulli(χ)``, drawn from the state's generator — per coordinate
   (``swp_granularity="coordinate"``) or one draw for the whole vector (``"tensor"``: a flat
   vector is one tensor, so it is perturbed with probability χ or not at all)
2. ``g = ∇L(w)``                                                     (evaluation 1)
3. ``ε = (ρ/χ) · k ⊙ T² g / (‖T u‖ + 1e-7)`` with ``T = |w|`` (``adaptive``) or 1, and
   ``u = g`` (``swp_norm="full"``, the paper's form: ``E[ε] = ρ T²g/‖Tg‖``) or
   ``u = k ⊙ g`` (``"kept"``, the official code's: ``‖ε‖ = ρ/χ``)
4. SDS (only when φ < 0.99, as the official code): per-example losses at ``w`` and ``w + ε``,
   instance sharpness ``s_i = ℓ_i(w + ε) − ℓ_i(w)``; ``S`` = the ``k = max(1, ⌊φn⌋)``
   examples of largest ``s_i`` — a stable sort, ties broken by the lower index, so exactly k
   examples (the official strict ``s_i > c`` selects k − 1, or nothing when ρ = 0)
5. ``g̃ = ∇ mean_{i∈S} ℓ_i (w + ε)``                                  (evaluation 2)
6. ``w ← base.update(w, g̃)`` at ``w``

Two gradient evaluations per step, plus two forward passes (``Oracle.loss_calls``) when SDS is
on. In a network SWP saves the backward work of the frozen weights and SDS the backward of
the unselected examples; this flat reference computes them in full but the counts are the
same. The mask is drawn at the start of each step (the official code draws it at the end of
the previous step and leaves the very first step unmasked; the distribution is the same).
χ = ``beta`` and φ = ``gamma`` (Du et al. call them β and γ). Reduces to: SAM with eps 1e-7 when
χ = φ = 1; the base optimizer when ρ = 0 and φ ≥ 0.99. SDS needs a ``sampy.problems.SumOfExamples``;
with φ ≥ 0.99 ESAM runs on any function.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from sampy.optim.base import BaseOptimizer, Oracle, check_base, copy_rng, per_point
from sampy.optim.hyper import Hyper, validate
from sampy.optim.masks import top_k_mask
from sampy.optim.sam import RHO


class ESAMState(NamedTuple):
    """The generator of the SWP masks and the base optimizer's state."""

    rng: np.random.Generator
    base: object


class ESAM:
    """Efficient SAM around a base optimizer. Two gradient evaluations per step.

    Args:
        base: the base optimizer.
        rho: radius ρ (the expected perturbation has length ρ).
        beta: SWP keep probability χ ∈ (0, 1] (1 = no SWP).
        gamma: SDS fraction φ ∈ (0, 1] of examples in the second gradient (≥ 0.99 = all).
        adaptive: ASAM's scaling ``T = |w|`` (official ``adaptive``).
        swp_granularity: ``"coordinate"`` (paper) or ``"tensor"`` (official code).
        swp_norm: normalise by ``‖g‖`` (``"full"``, paper) or by the kept part (``"kept"``,
            official code).
        seed: seed of the SWP masks.
        perturb_eps: the guard in ``ρ/(‖g‖ + eps)`` (1e-7 as the official code).
    """

    grad_evals_per_step = 2
    HYPERPARAMETERS = (
        RHO,
        Hyper(
            "beta", 0.6, "SWP: probability χ that a weight is perturbed", 0.0, 1.0, low_open=True
        ),
        Hyper("gamma", 0.5, "SDS: fraction φ of examples kept for g̃", 0.0, 1.0, low_open=True),
        Hyper("adaptive", False, "ASAM's scaling T = |w|", kind="bool"),
        Hyper(
            "swp_granularity",
            "coordinate",
            "SWP draws per coordinate (paper) or once for the whole vector (official code)",
            kind="choice",
            choices=("coordinate", "tensor"),
        ),
        Hyper(
            "swp_norm",
            "full",
            "normalise by ‖g‖ (paper) or by the norm of the kept part (official code)",
            kind="choice",
            choices=("full", "kept"),
        ),
        Hyper("seed", 0, "seed of the SWP masks", 0, None, kind="int"),
        Hyper("perturb_eps", 1e-7, "guard in ρ/(‖g‖ + eps)", 0.0, None),
    )

    def __init__(
        self,
        base: BaseOptimizer,
        rho: float | np.ndarray = 0.05,
        beta: float = 0.6,
        gamma: float = 0.5,
        adaptive: bool = False,
        swp_granularity: str = "coordinate",
        swp_norm: str = "full",
        seed: int = 0,
        perturb_eps: float = 1e-7,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        check_base(base)
        self.base = base
        self.rho = rho
        self.beta = float(beta)
        self.gamma = float(gamma)
        self.adaptive = bool(adaptive)
        self.swp_granularity = swp_granularity
        self.swp_norm = swp_norm
        self.seed = int(seed)
        self.perturb_eps = float(perturb_eps)
        self._radius = per_point(rho)

    @property
    def selects_data(self) -> bool:
        """Whether SDS is on (φ < 0.99, the official threshold)."""
        return self.gamma < 0.99

    @property
    def needs_examples(self) -> bool:
        """Whether it runs only on a ``SumOfExamples`` (with SDS on)."""
        return self.selects_data

    def init(self, x: np.ndarray) -> ESAMState:
        """A seeded generator and the base optimizer's state."""
        return ESAMState(rng=np.random.default_rng(self.seed), base=self.base.init(x))

    def swp_mask(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
        """The keep mask ``k`` (None when χ = 1: every weight is perturbed)."""
        if self.beta >= 1.0:
            return None
        shape = x.shape if self.swp_granularity == "coordinate" else (*x.shape[:-1], 1)
        return rng.random(shape) < self.beta

    def swp_perturbation(self, x: np.ndarray, g: np.ndarray, keep: np.ndarray | None) -> np.ndarray:
        """``ε = (ρ/χ) k ⊙ T² g / (‖T u‖ + eps)``, step 3 of the box."""
        kept = g if keep is None else g * keep
        scale = np.abs(x) if self.adaptive else 1.0
        u = scale * (kept if self.swp_norm == "kept" else g)
        norm = np.sqrt(np.einsum("...i,...i->...", u, u))[..., None]
        return (self._radius / (norm + self.perturb_eps) / self.beta) * (scale * scale) * kept

    def select(self, sharpness: np.ndarray) -> np.ndarray:
        """SDS: the ``max(1, ⌊φn⌋)`` examples of largest sharpness, per point, ``(..., n)``."""
        n = sharpness.shape[-1]
        return top_k_mask(sharpness, max(1, int(n * self.gamma)))

    def step(self, x: np.ndarray, state: ESAMState, oracle: Oracle) -> tuple[np.ndarray, ESAMState]:
        """One ESAM step at the unperturbed ``x``."""
        rng = copy_rng(state.rng)
        keep = self.swp_mask(x, rng)
        if self.selects_data:
            oracle.require_problem("ESAM's data selection (gamma < 0.99)")
            before = oracle.per_example_losses(x)
        g = oracle.grad(x)
        e = self.swp_perturbation(x, g, keep)
        if self.selects_data:
            chosen = self.select(oracle.per_example_losses(x + e) - before)
            g_adv = oracle.grad(x + e, examples=chosen)
        else:
            g_adv = oracle.grad(x + e)
        x, base_state = self.base.update(x, g_adv, state.base)
        return x, ESAMState(rng=rng, base=base_state)

    def __repr__(self) -> str:
        return (
            f"ESAM({self.base!r}, rho={self.rho}, beta={self.beta}, gamma={self.gamma}, "
            f"adaptive={self.adaptive}, swp_granularity={self.swp_granularity!r}, "
            f"swp_norm={self.swp_norm!r}, seed={self.seed}, perturb_eps={self.perturb_eps})"
        )
