"""Problems that give SAM variants what a plain gradient oracle cannot: examples and noise.

A test function (``sampy.functions``) answers one question: the loss and gradient at a point.
Several SAM variants need more:

- m-sharpness, 1-SAM, ESAM's data selection, SSAM-F's Fisher mask and ImbSAM need the loss
  to be a **sum of examples** ``L(w) = (1/n) Σ_i ℓ_i(w)`` and ask for per-example losses,
  per-example gradients, or the gradient over a subset of examples;
- ImbSAM also needs a label per example saying whether it belongs to a head or a tail class;
- the stochastic setting SAM was made for needs a **noisy** gradient.

``SumOfExamples`` is the first (abstract: a subclass writes the per-example losses, and may
write their gradients by hand), ``LogisticRegression`` a concrete one with closed-form
per-example gradients, ``make_logistic_problem`` a seeded 2-D data set for the playground, and
``NoisyGradient`` wraps any function so that ``sampy.optim.Oracle`` adds ``N(0, σ²)`` noise to
every gradient it returns (the generator lives in the oracle, so optimizers stay pure).

Every problem can stand where a test function stands: it is callable (``problem(x)`` is the mean
loss at every point of ``x``, shape ``(..., d) -> (...)``) and carries ``name``, ``dim``,
``domain``, ``minima`` (possibly empty) and ``fmin`` (NaN when unknown), so ``sampy.run`` and
the plots take it as they are.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import autograd
import autograd.numpy as anp
import numpy as np

from sampy._checks import check_binary_data, check_int, check_real
from sampy.functions import autograd_value_and_grad

HEAD = "head"
TAIL = "tail"
DEFAULT_N = 64  # examples in make_logistic_problem() (the registry's cost formulas use it)

Examples = None | Sequence[int] | np.ndarray


class SumOfExamples:
    """``L(w) = (1/n) Σ_i ℓ_i(w)``: a loss that is a mean over ``n`` examples.

    A subclass implements ``losses_at(points, examples)`` — the loss of example
    ``examples[j]`` at the point ``points[..., j, :]`` — with ``autograd.numpy``; gradients
    then come from autograd, or from a hand-written ``grads_at``. Everything else is derived:

    - ``per_example_losses(x, examples)``: ``(..., d) -> (..., k)``;
    - ``per_example_grads(x, examples)``: ``(..., d) -> (..., k, d)``;
    - ``loss(x, examples)`` / ``grad(x, examples)``: the mean over a subset of examples;
    - ``batch_grads(points, batches)``: micro-batch ``j``'s mean gradient at its own point.

    ``examples`` selects a subset: ``None`` (all), a 1-D array of example indices (shared by
    every point), or a boolean array of shape ``(..., n)`` (one subset per point, as ESAM's
    data selection makes). ``groups``, when given, labels every example (e.g. ``"head"`` /
    ``"tail"`` for ImbSAM).
    """

    minima_labels: tuple[str, ...] = ()

    def __init__(
        self,
        n: int,
        dim: int,
        *,
        name: str = "sum-of-examples",
        domain: tuple[tuple[float, float], ...] | None = None,
        minima: np.ndarray | None = None,
        fmin: float = math.nan,
        groups: Sequence[Any] | np.ndarray | None = None,
        description: str = "",
        params: dict | None = None,
    ) -> None:
        for label, value in (("n", n), ("dim", dim)):
            check_int(label, value, 1)
        self.n = int(n)
        self.dim = int(dim)
        self.name = name
        self.domain = tuple(domain) if domain is not None else ((-4.0, 4.0),) * self.dim
        self.minima = (
            np.zeros((0, self.dim)) if minima is None else np.atleast_2d(np.asarray(minima, float))
        )
        self.fmin = float(fmin)
        self.description = description
        self.params = dict(params or {})
        if groups is not None:
            groups = np.asarray(groups)
            if groups.shape != (self.n,):
                raise ValueError(
                    f"groups must have one label per example ({self.n}), got shape {groups.shape}"
                )
        self.groups = groups

    # -- what a subclass provides ----------------------------------------------------------

    def losses_at(self, points: np.ndarray, examples: np.ndarray) -> np.ndarray:
        """Loss of example ``examples[j]`` at ``points[..., j, :]``, shape ``(..., k)``."""
        raise NotImplementedError

    def grads_at(self, points: np.ndarray, examples: np.ndarray) -> np.ndarray:
        """Gradient of example ``examples[j]`` at ``points[..., j, :]``, shape ``(..., k, d)``.

        By autograd: every ``(point, example)`` pair is independent, so the gradient of the
        sum of all the losses is the per-pair gradient.
        """
        return autograd_value_and_grad(lambda p: self.losses_at(p, examples), points)[1]

    # -- derived ---------------------------------------------------------------------------

    def _indices(self, examples: Examples) -> np.ndarray:
        if examples is None:
            return np.arange(self.n)
        idx = np.asarray(examples)
        if idx.dtype == bool:
            raise ValueError("a boolean examples mask is accepted by loss/grad only")
        if idx.ndim != 1 or idx.size == 0 or idx.dtype.kind not in "iu":
            raise ValueError(f"examples must be a non-empty 1-D array of indices, got {examples!r}")
        if idx.min() < 0 or idx.max() >= self.n:
            raise ValueError(f"examples must lie in [0, {self.n}), got {examples!r}")
        return idx

    def _spread(self, x: np.ndarray, k: int) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        return np.broadcast_to(x[..., None, :], (*x.shape[:-1], k, x.shape[-1]))

    def per_example_losses(self, x: np.ndarray, examples: Examples = None) -> np.ndarray:
        """``ℓ_i(x)`` for the selected examples at every point: ``(..., d) -> (..., k)``."""
        idx = self._indices(examples)
        return np.asarray(self.losses_at(self._spread(x, idx.size), idx))

    def per_example_grads(self, x: np.ndarray, examples: Examples = None) -> np.ndarray:
        """``∇ℓ_i(x)`` for the selected examples at every point: ``(..., d) -> (..., k, d)``."""
        idx = self._indices(examples)
        return np.asarray(self.grads_at(self._spread(x, idx.size), idx))

    def _weights(self, x: np.ndarray, examples: Examples) -> np.ndarray | None:
        """Per-point weights ``(..., n)`` summing to 1 for a boolean mask, else None."""
        if examples is None or np.asarray(examples).dtype != bool:
            return None
        mask = np.broadcast_to(np.asarray(examples), (*np.shape(x)[:-1], self.n))
        count = mask.sum(axis=-1, keepdims=True)
        if np.any(count == 0):
            raise ValueError("examples: every point must select at least one example")
        return mask / count

    def value_and_grad(
        self, x: np.ndarray, examples: Examples = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Mean loss and mean gradient over the selected examples: ``(...)``, ``(..., d)``."""
        x = np.asarray(x, dtype=float)
        weights = self._weights(x, examples)
        if weights is None:
            idx = self._indices(examples)
            losses = self.per_example_losses(x, idx)
            grads = self.per_example_grads(x, idx)
            return losses.mean(axis=-1), grads.mean(axis=-2)
        losses = self.per_example_losses(x)
        grads = self.per_example_grads(x)
        return np.sum(weights * losses, -1), np.einsum("...n,...nd->...d", weights, grads)

    def loss(self, x: np.ndarray, examples: Examples = None) -> np.ndarray:
        """Mean loss over the selected examples at every point, shape ``(...)``."""
        weights = self._weights(x, examples)
        if weights is None:
            return self.per_example_losses(x, examples).mean(axis=-1)
        return np.sum(weights * self.per_example_losses(x), axis=-1)

    def grad(self, x: np.ndarray, examples: Examples = None) -> np.ndarray:
        """Mean gradient over the selected examples at every point, shape ``(..., d)``."""
        return self.value_and_grad(x, examples)[1]

    def batch_grads(self, points: np.ndarray, batches: Sequence[Sequence[int]]) -> np.ndarray:
        """Mean gradient of micro-batch ``j`` at ``points[..., j, :]``: ``(..., M, d)``.

        The micro-batches may have different sizes (none empty); m-SAM and bSAM perturb each
        micro-batch with its own gradient, so each needs its own point.
        """
        sizes = np.array([len(b) for b in batches])
        points = np.asarray(points, dtype=float)
        if sizes.size == 0 or np.any(sizes == 0) or points.shape[-2] != sizes.size:
            raise ValueError(
                f"batches must be {points.shape[-2]} non-empty index arrays (one per point), "
                f"got sizes {sizes.tolist()}"
            )
        idx = self._indices(np.concatenate([np.asarray(b) for b in batches]))
        owner = np.repeat(np.arange(sizes.size), sizes)
        grads = np.asarray(self.grads_at(points[..., owner, :], idx))
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        return np.add.reduceat(grads, starts, axis=-2) / sizes[:, None]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The mean loss at every point of ``x`` (what ``sampy.run`` records)."""
        return self.loss(x)

    @property
    def fn(self) -> Callable[[np.ndarray], np.ndarray]:
        """The mean loss as a function (the ``TestFunction`` attribute of the same name)."""
        return self.loss

    def hessian(self, x: np.ndarray) -> np.ndarray:
        """Hessian of the mean loss by autograd, at one point ``(d,)`` or at ``(..., d)``."""

        def mean_loss(w: np.ndarray) -> np.ndarray:
            idx = np.arange(self.n)
            points = anp.ones((self.n, 1)) * w[None, :]
            return anp.mean(self.losses_at(points, idx))

        x = np.asarray(x, dtype=float)
        single = autograd.hessian(mean_loss)
        flat = x.reshape(-1, self.dim)
        out = np.stack([np.asarray(single(p)) for p in flat])
        return out.reshape(*x.shape, self.dim)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, n={self.n}, dim={self.dim})"


def _sigmoid(z: np.ndarray) -> np.ndarray:
    # The tanh form is exact to rounding and never overflows (1/(1+e^{-z}) does for z ≪ 0).
    return 0.5 * (1.0 + np.tanh(0.5 * z))


class LogisticRegression(SumOfExamples):
    """Linear logistic regression: ``ℓ_i(w) = −log σ(t_i ⟨w, x_i⟩) + (λ/2)‖w‖²``.

    Labels ``t_i ∈ {−1, +1}``, no bias term (append a constant feature for one), so ``w`` has
    one coordinate per feature and a 2-feature problem can be drawn as a landscape. The
    per-example gradient is closed form (as in Baek, Kolter, Raghunathan, ICLR 2024):
    ``∇ℓ_i(w) = −t_i σ(−t_i ⟨w, x_i⟩) x_i + λ w``. The L2 term is inside every ℓ_i, so every
    subset mean includes it.

    When the problem has a finite minimiser (the classes overlap, or λ > 0) Newton's method
    finds it at construction and it becomes ``minima`` / ``fmin``; otherwise they stay empty /
    NaN.
    """

    def __init__(
        self,
        features: np.ndarray,
        labels: np.ndarray,
        l2: float = 0.0,
        *,
        groups: Sequence[Any] | np.ndarray | None = None,
        name: str = "logistic",
        description: str = "",
        domain: tuple[tuple[float, float], ...] | None = None,
        params: dict | None = None,
    ) -> None:
        features, labels = check_binary_data(features, labels)
        check_real("l2", l2, 0.0, None)
        self.features = features
        self.labels = labels
        self.l2 = float(l2)
        n, dim = features.shape
        minimum = self._newton_minimum(features, labels, self.l2)
        if domain is None:
            half = 4.0 if minimum is None else max(4.0, math.ceil(1.5 * np.abs(minimum).max()))
            domain = ((-half, half),) * dim
        super().__init__(
            n,
            dim,
            name=name,
            domain=domain,
            minima=None if minimum is None else minimum[None, :],
            groups=groups,
            description=description or f"logistic regression, {n} examples, {dim} features",
            params=params,
        )
        if minimum is not None:
            self.fmin = float(self.loss(minimum))

    def losses_at(self, points: np.ndarray, examples: np.ndarray) -> np.ndarray:
        """``log(1 + exp(−t⟨w, x⟩)) + (λ/2)‖w‖²`` per (point, example) pair."""
        margin = self.labels[examples] * anp.sum(points * self.features[examples], axis=-1)
        return anp.logaddexp(0.0, -margin) + 0.5 * self.l2 * anp.sum(points * points, axis=-1)

    def grads_at(self, points: np.ndarray, examples: np.ndarray) -> np.ndarray:
        """Closed form ``−t σ(−t⟨w, x⟩) x + λ w`` per (point, example) pair."""
        feats, t = self.features[examples], self.labels[examples]
        margin = t * np.einsum("...kd,kd->...k", points, feats)
        coef = -t * _sigmoid(-margin)
        return coef[..., None] * feats + self.l2 * points

    def _margins(self, x: np.ndarray, examples: Examples):
        """Weights, features, labels and margins ``t⟨w, x⟩`` of the selected examples."""
        x = np.asarray(x, dtype=float)
        weights = self._weights(x, examples)
        idx = np.arange(self.n) if weights is not None else self._indices(examples)
        feats, t = self.features[idx], self.labels[idx]
        margin = t * (x @ feats.T)
        if weights is None:
            weights = np.full(margin.shape[-1], 1.0 / idx.size)
        return x, weights, feats, t, margin

    def _mean_loss(self, x, weights, margin) -> np.ndarray:
        ridge = 0.5 * self.l2 * np.einsum("...i,...i->...", x, x)
        return np.sum(weights * np.logaddexp(0.0, -margin), axis=-1) + ridge

    def _mean_grad(self, x, weights, feats, t, margin) -> np.ndarray:
        return (-t * _sigmoid(-margin) * weights) @ feats + self.l2 * x

    def value_and_grad(
        self, x: np.ndarray, examples: Examples = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Mean loss and gradient by two matrix products (no ``(..., n, d)`` tensor)."""
        x, weights, feats, t, margin = self._margins(x, examples)
        return self._mean_loss(x, weights, margin), self._mean_grad(x, weights, feats, t, margin)

    def grad(self, x: np.ndarray, examples: Examples = None) -> np.ndarray:
        """Mean gradient over the selected examples, shape ``(..., d)`` (no loss computed)."""
        return self._mean_grad(*self._margins(x, examples))

    def loss(self, x: np.ndarray, examples: Examples = None) -> np.ndarray:
        """Mean loss over the selected examples, shape ``(...)`` (no gradient computed)."""
        x, weights, _, _, margin = self._margins(x, examples)
        return self._mean_loss(x, weights, margin)

    @staticmethod
    def _newton_minimum(features: np.ndarray, labels: np.ndarray, l2: float) -> np.ndarray | None:
        """The minimiser by damped Newton, or None when there is none (separable, λ = 0)."""
        n, dim = features.shape
        w = np.zeros(dim)

        def value(v: np.ndarray) -> float:
            return float(np.mean(np.logaddexp(0.0, -labels * (features @ v))) + 0.5 * l2 * v @ v)

        for _ in range(200):
            margin = labels * (features @ w)
            p = _sigmoid(-margin)
            g = features.T @ (-labels * p) / n + l2 * w
            h = (features.T * (p * (1.0 - p))) @ features / n + l2 * np.eye(dim)
            if np.linalg.norm(g) < 1e-12:
                # On separable data the gradient also vanishes far out, where the loss is
                # flat along the escape direction: a true minimum has positive curvature.
                return w if np.linalg.eigvalsh(h)[0] > 1e-9 else None
            h = h + 1e-12 * np.eye(dim)
            step = np.linalg.solve(h, g)
            t, f0 = 1.0, value(w)
            while value(w - t * step) > f0 - 1e-4 * t * (g @ step) and t > 1e-12:
                t *= 0.5
            w = w - t * step
            if np.abs(w).max() > 1e4:  # running off to infinity: the classes are separable
                return None
        return None


def make_logistic_problem(
    n: int = DEFAULT_N,
    dim: int = 2,
    noise: float = 0.0,
    imbalance: float = 1.0,
    l2: float = 0.0,
    separation: float = 1.0,
    seed: int = 0,
) -> LogisticRegression:
    """A seeded synthetic logistic-regression problem (two Gaussian classes).

    Class ``+1`` is the rare ("tail") class: it has ``round(n · imbalance / (1 + imbalance))``
    examples (at least 1), class ``−1`` the rest, so ``imbalance`` is the ratio of the class
    sizes (1 = balanced, 0.01 = CIFAR-LT's imbalance factor 100). Features of class ``t`` are
    ``N(t · separation · u, I)`` with ``u = (1, …, 1)/√dim``. Then a fraction ``noise`` of the
    labels (exactly ``round(noise · n)`` examples, chosen at random) is flipped. ``groups``
    labels every example by its *observed* label: ``"tail"`` for ``+1``, ``"head"`` for ``−1``
    (what ImbSAM sees in practice).

    Args:
        n: number of examples (≥ 2).
        dim: number of features = of coordinates of ``w`` (2 draws as a landscape).
        noise: fraction of flipped labels, in [0, 0.5].
        imbalance: size ratio rare/common class, in (0, 1].
        l2: ridge λ inside every example's loss.
        separation: distance of each class mean from the origin (overlap keeps the
            minimiser finite).
        seed: the generator's seed (the same seed gives the same data).
    """
    for label, value, low in (("n", n, 2), ("dim", dim, 1), ("seed", seed, 0)):
        check_int(label, value, low)
    check_real("noise", noise, 0.0, 0.5)
    check_real("imbalance", imbalance, 0.0, 1.0, low_open=True)
    check_real("separation", separation, 0.0, None)
    rng = np.random.default_rng(seed)
    n_tail = int(min(n - 1, max(1, round(n * imbalance / (1.0 + imbalance)))))
    true = np.concatenate([-np.ones(n - n_tail), np.ones(n_tail)])
    centre = separation * np.ones(dim) / math.sqrt(dim)
    features = true[:, None] * centre + rng.standard_normal((n, dim))
    labels = true.copy()
    flipped = rng.choice(n, size=round(noise * n), replace=False)
    labels[flipped] *= -1.0
    groups = np.where(labels > 0, TAIL, HEAD)
    return LogisticRegression(
        features,
        labels,
        l2,
        groups=groups,
        name="logistic",
        description=(
            f"logistic regression: {n} examples, {dim} features, {n_tail} in the rare class, "
            f"{noise:.0%} flipped labels"
        ),
        params={
            "n": n,
            "dim": dim,
            "noise": noise,
            "imbalance": imbalance,
            "l2": l2,
            "separation": separation,
            "seed": seed,
        },
    )


class NoisyGradient:
    """A function whose gradient oracle adds Gaussian noise: ``g + σ z``, ``z ~ N(0, I)``.

    The value is unchanged (``NoisyGradient(f)(x) == f(x)``); only the gradients a
    ``sampy.optim.Oracle`` hands out are noisy. The oracle owns the generator (seeded with
    ``seed``), so a run is reproducible and the optimizers stay pure functions of their state.
    Every gradient is perturbed independently: one draw per point and per call for a mean
    gradient, one per row for per-example and micro-batch gradients.

    Args:
        f: a test function, a registered name (``"rosenbrock"``), a ``SumOfExamples`` or a
            batched ``autograd.numpy`` callable.
        sigma: the noise's standard deviation σ ≥ 0 per coordinate.
        seed: seed of the oracle's generator.
    """

    def __init__(self, f: Any, sigma: float = 0.1, seed: int = 0) -> None:
        if isinstance(f, str):
            from sampy import functions  # deferred: sampy.functions imports nothing from here

            f = functions.get(f)
        if not callable(f) or isinstance(f, NoisyGradient):
            raise ValueError(
                f"f must be a test function, a problem or a callable (not already noisy), got {f!r}"
            )
        check_real("sigma", sigma, 0.0, None)
        check_int("seed", seed, 0)
        self.f = f
        self.sigma = float(sigma)
        self.seed = int(seed)
        self.name = f"{getattr(f, 'name', 'custom')}+noise"
        self.dim = getattr(f, "dim", None)
        self.domain = getattr(f, "domain", None)
        self.minima = getattr(f, "minima", np.zeros((0, self.dim or 0)))
        self.minima_labels = getattr(f, "minima_labels", ())
        self.fmin = float(getattr(f, "fmin", math.nan))
        self.params = {**getattr(f, "params", {}), "sigma": self.sigma, "seed": self.seed}
        self.description = f"{getattr(f, 'description', '')} (gradient noise σ = {self.sigma:g})"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The value of the wrapped function (noise-free)."""
        return self.f(x)

    @property
    def fn(self) -> Callable[[np.ndarray], np.ndarray]:
        """The (noise-free) loss."""
        return self.f

    def hessian(self, x: np.ndarray) -> np.ndarray:
        """The wrapped function's Hessian (noise-free)."""
        return self.f.hessian(x)

    def __repr__(self) -> str:
        return f"NoisyGradient({self.f!r}, sigma={self.sigma}, seed={self.seed})"


__all__ = [
    "DEFAULT_N",
    "HEAD",
    "TAIL",
    "LogisticRegression",
    "NoisyGradient",
    "SumOfExamples",
    "make_logistic_problem",
]
