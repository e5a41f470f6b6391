"""SSAM: Sparse SAM — perturb only the coordinates a binary mask keeps (SSAM-F and SSAM-D).

P. Mi, L. Shen, T. Ren, Y. Zhou, X. Sun, R. Ji, D. Tao, "Make Sharpness-Aware Minimization Stronger:
A Sparsified Perturbation Approach", NeurIPS 2022, arXiv:2210.05177. Official code:
Mi-Peng/Sparse-Sharpness-Aware-Minimization @ 76974fd0 (``solver/sam.py``, classes ``SSAMF``,
``SSAMD``). Common step, with a mask ``m ∈ {0, 1}^d`` (sparsity s = fraction of zeros), counter
t = 0, 1, …:

1. ``g = ∇L(w)``                                                    (evaluation 1)
2. ``ε = ρ m ⊙ g / (‖g‖ + 1e-7)`` — the FULL ‖g‖, so ``‖ε‖ ≤ ρ``
3. ``g̃ = ∇L(w + ε)``                                                 (evaluation 2)
4. ``w ← base.update(w, g̃)`` at ``w``

Steps play the role of the official code's epochs: its masks are refreshed on the first batch
of every epoch with ``epoch % update_freq == 0``; here on every step with
``t % update_freq == 0`` (and ``T_start``/``T_end`` are step indices).

SSAM-F (Fisher mask): the mask starts at all zeros (the first step is a base step that still
costs 2 evaluations); after the update of a refresh step, at the new ``w``,
``F = Σ_{i∈I} (∇ℓ_i(w))²`` over ``N = min(num_samples, n)`` examples drawn without replacement
by the state's generator (N per-example gradient evaluations), and ``m`` keeps the
``int(d (1 − s))`` largest ``F_i`` (stable: ties go to the lower index). On a plain function
(no examples) ``F = g(w)²`` (one evaluation; our adaptation: the paper's Fisher needs examples).

SSAM-D (dynamic sparse mask): the mask starts as the top ``d − ⌈d s⌉`` of uniform random
scores; on a refresh step, right after step 2 (with the clean ``g`` and the *perturbed*
weights ``w + ε``, as the official code; the new mask takes effect next step)::

    dr = drop_rate · (1 + cos(π (t − T_start)/(T_end − T_start))) / 2
    D_i = (score_drop_i + 1e-7) m_i ;  G_i = (score_grow_i + 1e-7) (1 − m_i)
    keep = top-int((d − d s)(1 − dr)) by D ;  grow = top-int(min((d − d s) dr, d s)) by G
    m ← 1[keep] ∨ 1[grow]

with scores ``|w_i|`` (``"weight"``), ``|g_i|`` (``"gradient"``) or ``U(0, 1)`` (``"random"``).
Integer rounding exactly as the official code, so the live count may drift by one per refresh.

Two gradient evaluations per step (SSAM-F: plus N on refresh steps). Reduces to: SAM (eps
1e-7) when s = 0 — for SSAM-F after its first refresh, for SSAM-D while ``drop_rate = 0``
(as written, a refresh with s = 0 keeps ``int(d(1 − dr))`` entries and grows none); the base
optimizer when s = 1 or ρ = 0.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from sampy.optim.base import BaseOptimizer, Oracle, check_base, copy_rng, per_point
from sampy.optim.hyper import Hyper, validate
from sampy.optim.masks import top_k_mask
from sampy.optim.sam import RHO

SPARSITY = Hyper("sparsity", 0.2, "sparsity s: fraction of coordinates NOT perturbed", 0.0, 1.0)
UPDATE_FREQ = Hyper(
    "update_freq",
    5,
    "refresh the mask every update_freq steps (the code's epochs)",
    1,
    None,
    kind="int",
)
SEED = Hyper("seed", 0, "seed of the mask's random draws", 0, None, kind="int")
SSAM_EPS = Hyper("perturb_eps", 1e-7, "guard in ρ/(‖g‖ + eps)", 0.0, None)
SCORES = ("weight", "gradient", "random")


class SSAMState(NamedTuple):
    """Step counter, the mask (boolean, ``(..., d)``), the generator, the base's state."""

    count: int
    mask: np.ndarray
    rng: np.random.Generator
    base: object


class _SparseSAM:
    """The common step; subclasses choose the initial mask and how it is refreshed."""

    grad_evals_per_step: float = 2
    needs_examples = False  # SSAM-F uses per-example gradients when the problem has them

    def __init__(
        self,
        base: BaseOptimizer,
        rho: float | np.ndarray,
        sparsity: float,
        update_freq: int,
        seed: int,
        perturb_eps: float,
    ) -> None:
        check_base(base)
        self.base = base
        self.rho = rho
        self.sparsity = float(sparsity)
        self.update_freq = int(update_freq)
        self.seed = int(seed)
        self.perturb_eps = float(perturb_eps)
        self._radius = per_point(rho)

    def masked_perturbation(self, g: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """``ε = ρ m ⊙ g / (‖g‖ + eps)`` (normalised by the unmasked norm)."""
        norm = np.sqrt(np.einsum("...i,...i->...", g, g))[..., None]
        return (self._radius / (norm + self.perturb_eps)) * (g * mask)

    def refreshes(self, count: int) -> bool:
        """Whether step ``count`` (0-based) refreshes the mask."""
        return count % self.update_freq == 0


class SSAMF(_SparseSAM):
    """Sparse SAM with a Fisher-information mask.

    Args:
        base: the base optimizer.
        rho: radius ρ.
        sparsity: fraction s of coordinates that are not perturbed.
        num_samples: examples N_s in the Fisher estimate (at most n are used).
        update_freq: refresh the mask every ``update_freq`` steps.
        seed: seed of the example draws.
        perturb_eps: the guard in ``ρ/(‖g‖ + eps)``.
    """

    HYPERPARAMETERS = (
        RHO,
        SPARSITY,
        Hyper(
            "num_samples",
            1024,
            "examples N_s in the Fisher estimate (≤ n used)",
            1,
            None,
            kind="int",
        ),
        UPDATE_FREQ,
        SEED,
        SSAM_EPS,
    )

    def __init__(
        self,
        base: BaseOptimizer,
        rho: float | np.ndarray = 0.05,
        sparsity: float = 0.2,
        num_samples: int = 1024,
        update_freq: int = 5,
        seed: int = 0,
        perturb_eps: float = 1e-7,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        super().__init__(base, rho, sparsity, update_freq, seed, perturb_eps)
        self.num_samples = int(num_samples)

    @property
    def grad_evals_per_step(self) -> float:
        """Long-run average on a problem with n ≥ N_s: ``2 + N_s/update_freq``."""
        return 2.0 + self.num_samples / self.update_freq

    def grad_evals(self, steps: int, n: int | None = None) -> int:
        """Exact evaluations of ``steps`` steps (``n`` examples, None for a plain function)."""
        per_refresh = 1 if n is None else min(self.num_samples, n)
        return 2 * steps + math.ceil(steps / self.update_freq) * per_refresh

    def init(self, x: np.ndarray) -> SSAMState:
        """All-zero mask (as the official code: no perturbation before the first refresh)."""
        x = np.asarray(x)
        return SSAMState(
            count=0,
            mask=np.zeros(x.shape, dtype=bool),
            rng=np.random.default_rng(self.seed),
            base=self.base.init(x),
        )

    def fisher(self, x: np.ndarray, oracle: Oracle, rng: np.random.Generator) -> np.ndarray:
        """``Σ_i (∇ℓ_i(x))²`` over N examples drawn without replacement (plain: ``g²``)."""
        if oracle.problem is None:
            return oracle.grad(x) ** 2
        n = oracle.problem.n
        chosen = rng.permutation(n)[: min(self.num_samples, n)]
        return np.sum(oracle.per_example_grads(x, chosen) ** 2, axis=-2)

    def fisher_mask(self, fisher: np.ndarray) -> np.ndarray:
        """Keep the ``int(d (1 − s))`` largest Fisher values (the official count)."""
        d = fisher.shape[-1]
        return top_k_mask(fisher, int(d * (1 - self.sparsity)))

    def step(self, x: np.ndarray, state: SSAMState, oracle: Oracle) -> tuple[np.ndarray, SSAMState]:
        """The common step; on refresh steps a new Fisher mask at the updated point."""
        g = oracle.grad(x)
        g_adv = oracle.grad(x + self.masked_perturbation(g, state.mask))
        x, base_state = self.base.update(x, g_adv, state.base)
        mask, rng = state.mask, state.rng
        if self.refreshes(state.count):
            rng = copy_rng(rng)
            mask = self.fisher_mask(self.fisher(x, oracle, rng))
        return x, SSAMState(count=state.count + 1, mask=mask, rng=rng, base=base_state)

    def __repr__(self) -> str:
        return (
            f"SSAMF({self.base!r}, rho={self.rho}, sparsity={self.sparsity}, "
            f"num_samples={self.num_samples}, update_freq={self.update_freq}, seed={self.seed})"
        )


class SSAMD(_SparseSAM):
    """Sparse SAM with a dynamic (drop-and-grow) mask.

    Args:
        base: the base optimizer.
        rho: radius ρ.
        sparsity: fraction s of coordinates that are not perturbed.
        drop_rate: the largest fraction of live entries dropped at a refresh.
        drop_strategy: which live entries survive: largest ``"weight"`` |w|, ``"gradient"``
            |g| or ``"random"``.
        growth_strategy: which dead entries come back (same choices).
        update_freq: refresh the mask every ``update_freq`` steps.
        T_start: step where the cosine decay of the drop rate starts.
        T_end: step where it reaches 0 (the official code passes the number of epochs).
        seed: seed of the random initial mask and random scores.
        perturb_eps: the guard in ``ρ/(‖g‖ + eps)``.
    """

    HYPERPARAMETERS = (
        RHO,
        SPARSITY,
        Hyper("drop_rate", 0.5, "largest fraction of live entries dropped per refresh", 0.0, 1.0),
        Hyper(
            "drop_strategy",
            "gradient",
            "score of the live entries that survive",
            kind="choice",
            choices=SCORES,
        ),
        Hyper(
            "growth_strategy",
            "random",
            "score of the dead entries that come back",
            kind="choice",
            choices=SCORES,
        ),
        UPDATE_FREQ,
        Hyper("T_start", 0, "step where the drop rate's cosine decay starts", 0, None, kind="int"),
        Hyper(
            "T_end",
            100,
            "step where the drop rate reaches 0 (> T_start)",
            0,
            None,
            low_open=True,
            kind="int",
        ),
        SEED,
        SSAM_EPS,
    )

    def __init__(
        self,
        base: BaseOptimizer,
        rho: float | np.ndarray = 0.05,
        sparsity: float = 0.2,
        drop_rate: float = 0.5,
        drop_strategy: str = "gradient",
        growth_strategy: str = "random",
        update_freq: int = 5,
        T_start: int = 0,  # the official code's name
        T_end: int = 100,
        seed: int = 0,
        perturb_eps: float = 1e-7,
    ) -> None:
        validate(self.HYPERPARAMETERS, locals())
        if T_end <= T_start:
            raise ValueError(f"T_end must be > T_start = {T_start}, got {T_end!r}")
        super().__init__(base, rho, sparsity, update_freq, seed, perturb_eps)
        self.drop_rate = float(drop_rate)
        self.drop_strategy = drop_strategy
        self.growth_strategy = growth_strategy
        self.T_start = int(T_start)
        self.T_end = int(T_end)

    def grad_evals(self, steps: int, n: int | None = None) -> int:
        """Exact evaluations of ``steps`` steps: 2 each."""
        return 2 * steps

    def init(self, x: np.ndarray) -> SSAMState:
        """A random mask with ``d − ⌈d s⌉`` live entries (top of uniform random scores)."""
        x = np.asarray(x)
        rng = np.random.default_rng(self.seed)
        d = x.shape[-1]
        mask = top_k_mask(rng.random(x.shape), d - math.ceil(d * self.sparsity))
        return SSAMState(count=0, mask=mask, rng=rng, base=self.base.init(x))

    def drop_rate_at(self, t: int) -> float:
        """``drop_rate · (1 + cos(π (t − T_start)/(T_end − T_start)))/2`` (not clamped)."""
        phase = (t - self.T_start) / (self.T_end - self.T_start)
        return self.drop_rate * (1.0 + math.cos(math.pi * phase)) / 2.0

    def _score(
        self, kind: str, w: np.ndarray, g: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        if kind == "weight":
            return np.abs(w)
        if kind == "gradient":
            return np.abs(g)
        return rng.random(w.shape)

    def refresh(
        self, mask: np.ndarray, w: np.ndarray, g: np.ndarray, t: int, rng: np.random.Generator
    ) -> np.ndarray:
        """Drop-and-grow at step ``t`` with weights ``w`` (perturbed) and clean gradient ``g``."""
        d = w.shape[-1]
        live = d - d * self.sparsity  # a float, as the official code computes it
        dr = self.drop_rate_at(t)
        death = (self._score(self.drop_strategy, w, g, rng) + 1e-7) * mask
        growth = (self._score(self.growth_strategy, w, g, rng) + 1e-7) * ~mask
        keep = top_k_mask(death, int(live * (1.0 - dr)))
        grow = top_k_mask(growth, int(min(live * dr, d * self.sparsity)))
        return keep | grow

    def step(self, x: np.ndarray, state: SSAMState, oracle: Oracle) -> tuple[np.ndarray, SSAMState]:
        """The common step; on refresh steps the mask for the next step is drawn after ε."""
        g = oracle.grad(x)
        e = self.masked_perturbation(g, state.mask)
        mask, rng = state.mask, state.rng
        if self.refreshes(state.count):
            rng = copy_rng(rng)
            mask = self.refresh(state.mask, x + e, g, state.count, rng)
        g_adv = oracle.grad(x + e)
        x, base_state = self.base.update(x, g_adv, state.base)
        return x, SSAMState(count=state.count + 1, mask=mask, rng=rng, base=base_state)

    def __repr__(self) -> str:
        return (
            f"SSAMD({self.base!r}, rho={self.rho}, sparsity={self.sparsity}, "
            f"drop_rate={self.drop_rate}, drop_strategy={self.drop_strategy!r}, "
            f"growth_strategy={self.growth_strategy!r}, update_freq={self.update_freq}, "
            f"T_start={self.T_start}, T_end={self.T_end}, seed={self.seed})"
        )
