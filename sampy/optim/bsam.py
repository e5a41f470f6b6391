"""bSAM: Bayesian SAM, an Adam-like method that learns a Gaussian posterior N(w, 1/(N s)).

T. Möllenhoff, M. E. Khan, "SAM as an Optimal Relaxation of Bayes", ICLR 2023, arXiv:2210.01620.
Official code: team-approx-bayes/bayesian-sam @ 936eec17 (``build_bsam_optimizer`` in ``optim.py``)
— the official algorithm, not pytorch-optimizer's ``BSAM``, which deviates from it. bSAM is its own
base optimizer: Adam's second moment is replaced by the precision ``s`` and the perturbation is
preconditioned by ``1/s`` and not normalised. State: the mean ``w`` (the iterate), ``m = 0``,
``s = s_init``, a generator. One step, with the n examples split into M = ``batchsplit`` sub-batches
``B_b`` (independent noise for each):

1. ``e_b ~ N(0, I)``;  ``θ_b = w + sqrt(1/(N s)) ⊙ e_b``     (a sample of the posterior)
2. ``g_b = ∇L_{B_b}(θ_b)``                                   (M evaluations, "noisy" gradient)
3. ``w̃_b = w + ρ g_b / s``                                   (from the MEAN w; elementwise)
4. ``g̃_b = ∇L_{B_b}(w̃_b)``                                    (M evaluations)
5. ``h_b = sqrt(s ⊙ g_b²)``;  ``h = Σ_b (|B_b|/n) h_b``, ``g̃ = Σ_b (|B_b|/n) g̃_b``
6. ``m ← β1 m + (1 − β1)(g̃ + δ w)``
7. ``w ← w − η m / s``                                      (with the OLD s: code order)
8. ``s ← β2 s + (1 − β2)(h + ζ + δ)``                       (not squared)

``update_order="paper"`` swaps 7 and 8 (the paper's box: w moves with the new s). η = ``lr`` (the
paper's α), δ = ``weight_decay`` (the official code derives it from a prior precision:
δ = priorprec/N), ζ = ``damping`` (the paper's γ), N = ``num_data`` (default: the problem's n;
``inf`` removes the noise). The official learning-rate multiplier ``lrfactor`` (a schedule) is not
modelled; with equal sub-batch sizes the weights of step 5 are the official plain means. ``2M``
gradient evaluations per step. Reduces to: with ρ = 0 and N = ∞ a deterministic Adam-like method, m
an EMA of ``∇L(w) + δ w`` and s an EMA of ``sqrt(s)|∇L(w)| + ζ + δ``. With ``batchsplit=1`` it also
runs on a plain test function (then ``num_data`` is required).
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import numpy as np

from sampy.optim.adam import BETAS
from sampy.optim.base import Oracle, copy_rng, per_point
from sampy.optim.hyper import Hyper, validate
from sampy.optim.sgd import LR, WEIGHT_DECAY


class BSAMState(NamedTuple):
    """Momentum ``m``, precision ``s`` (both ``(..., d)``) and the noise generator."""

    m: np.ndarray
    s: np.ndarray
    rng: np.random.Generator


class BSAM:
    """Bayesian SAM (official algorithm). ``2 · batchsplit`` gradient evaluations per step.

    Args:
        lr: learning rate η.
        betas: (β1, β2), EMA rates of m and s.
        weight_decay: δ (the prior precision divided by N).
        rho: ρ of the unnormalised, 1/s-preconditioned perturbation.
        damping: ζ added to the precision.
        num_data: N in the posterior variance 1/(N s) (None: the problem's n; ``math.inf``:
            no noise).
        s_init: initial precision.
        batchsplit: M sub-batches with independent noise (the official m-sharpness).
        update_order: ``"code"`` (w moves with the old s) or ``"paper"`` (with the new s).
        seed: seed of the noise.
    """

    HYPERPARAMETERS = (
        replace(LR, default=0.5),
        replace(BETAS, meaning="EMA rates (β1, β2) of m and s"),
        replace(WEIGHT_DECAY, default=1e-4, meaning="δ = prior precision / N"),
        Hyper("rho", 0.01, "ρ of the perturbation ρ g/s", 0.0, None, per_point=True),
        Hyper("damping", 0.1, "damping ζ added to the precision s", 0.0, None),
        Hyper(
            "num_data",
            None,
            "N in the variance 1/(N s) (None: the problem's n; inf: no noise)",
            0.0,
            None,
            low_open=True,
            allow_inf=True,
        ),
        Hyper("s_init", 1.0, "initial precision s", 0.0, None, low_open=True),
        Hyper("batchsplit", 8, "M sub-batches with independent noise", 1, None, kind="int"),
        Hyper(
            "update_order",
            "code",
            "w moves with the old s (official code) or the new s (paper)",
            kind="choice",
            choices=("code", "paper"),
        ),
        Hyper("seed", 0, "seed of the noise", 0, None, kind="int"),
    )

    def __init__(
        self,
        lr: float | np.ndarray = 0.5,
        betas: tuple[float, float] = (0.9, 0.999),
        weight_decay: float = 1e-4,
        rho: float | np.ndarray = 0.01,
        damping: float = 0.1,
        num_data: float | None = None,
        s_init: float = 1.0,
        batchsplit: int = 8,
        update_order: str = "code",
        seed: int = 0,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        self.lr = lr
        self.betas = (float(betas[0]), float(betas[1]))
        self.weight_decay = float(weight_decay)
        self.rho = rho
        self.damping = float(damping)
        self.num_data = None if num_data is None else float(num_data)
        self.s_init = float(s_init)
        self.batchsplit = int(batchsplit)
        self.update_order = update_order
        self.seed = int(seed)
        self._lr = per_point(lr)
        self._rho = per_point(rho)

    @property
    def grad_evals_per_step(self) -> int:
        """``2 · batchsplit``."""
        return 2 * self.batchsplit

    @property
    def needs_examples(self) -> bool:
        """Whether it runs only on a ``SumOfExamples`` (sub-batches: ``batchsplit > 1``)."""
        return self.batchsplit > 1

    def init(self, x: np.ndarray) -> BSAMState:
        """``m = 0``, ``s = s_init``, a seeded generator."""
        x = np.asarray(x, dtype=float)
        return BSAMState(
            m=np.zeros_like(x), s=np.full_like(x, self.s_init), rng=np.random.default_rng(self.seed)
        )

    def _setup(self, oracle: Oracle) -> tuple[list[np.ndarray] | None, np.ndarray, float]:
        """Sub-batches (None on a plain function), their weights, and N."""
        if oracle.problem is None:
            if self.batchsplit != 1:
                oracle.require_problem(f"BSAM with batchsplit={self.batchsplit} (sub-batches)")
            if self.num_data is None:
                raise ValueError(
                    "num_data must be given for BSAM on a plain function (N in the posterior "
                    "variance 1/(N s)); a sum-of-examples problem supplies its n"
                )
            return None, np.ones(1), self.num_data
        n = oracle.problem.n
        if self.batchsplit > n:
            raise ValueError(
                f"batchsplit must be <= the number of examples {n}, got {self.batchsplit}"
            )
        batches = np.array_split(np.arange(n), self.batchsplit)
        weights = np.array([b.size for b in batches], dtype=float) / n
        return batches, weights, self.num_data if self.num_data is not None else float(n)

    @staticmethod
    def _grads(oracle: Oracle, points: np.ndarray, batches: list[np.ndarray] | None) -> np.ndarray:
        if batches is None:
            return oracle.grad(points[..., 0, :])[..., None, :]
        return oracle.batch_grads(points, batches)

    def step(self, x: np.ndarray, state: BSAMState, oracle: Oracle) -> tuple[np.ndarray, BSAMState]:
        """One bSAM step (the box's 8 lines)."""
        batches, weights, num_data = self._setup(oracle)
        beta1, beta2 = self.betas
        delta, s, rng = self.weight_decay, state.s, copy_rng(state.rng)
        rho = self._rho[..., None] if isinstance(self._rho, np.ndarray) else self._rho
        w = x[..., None, :]  # a sub-batch axis: (..., 1, d) broadcasts against (..., M, d)
        noise = rng.standard_normal((*x.shape[:-1], weights.size, x.shape[-1]))
        theta = w + np.sqrt(1.0 / (num_data * s))[..., None, :] * noise
        g = self._grads(oracle, theta, batches)
        g_adv = self._grads(oracle, w + rho * g / s[..., None, :], batches)
        h = np.einsum("...bd,b->...d", np.sqrt(s[..., None, :] * g**2.0), weights)
        g_adv = np.einsum("...bd,b->...d", g_adv, weights)
        m = beta1 * state.m + (1.0 - beta1) * (g_adv + delta * x)
        s_new = beta2 * s + (1.0 - beta2) * (h + self.damping + delta)
        x = x - self._lr * m / (s if self.update_order == "code" else s_new)
        return x, BSAMState(m=m, s=s_new, rng=rng)

    def __repr__(self) -> str:
        return (
            f"BSAM(lr={self.lr}, betas={self.betas}, weight_decay={self.weight_decay}, "
            f"rho={self.rho}, damping={self.damping}, num_data={self.num_data}, "
            f"s_init={self.s_init}, batchsplit={self.batchsplit}, "
            f"update_order={self.update_order!r}, seed={self.seed})"
        )
