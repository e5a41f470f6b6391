"""Data with flipped labels: a seeded binary Gaussian mixture, and symmetric noise for classes.

The binary problem is our own construction (not taken from a paper): two Gaussian classes
``x ~ N(t · s · u, I_p)`` with ``u = (1, …, 1)/√p`` and ``t ∈ {−1, +1}`` equally likely, ``n``
training and ``n_test`` test examples. Exactly ``round(noise · n)`` training labels, chosen at
random, are flipped; the test labels stay clean, so test accuracy measures how well the clean
rule was learned. With ``p`` of the order of ``n`` the noisy training set is (nearly) linearly
separable: a long enough run memorises every flipped label, and only early stopping helps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sampy._checks import check_int, check_real
from sampy.dln import DeepLinearNetwork
from sampy.problems import LogisticRegression

__all__ = [
    "NoisyBinaryData",
    "NoisyLogisticRegression",
    "make_noisy_binary_data",
    "symmetric_label_noise",
]


def _check_int(name: str, value: object, low: int) -> None:
    check_int(name, value, low)


class NoisyLogisticRegression(LogisticRegression):
    """A ``LogisticRegression`` that does not search for a minimiser at construction.

    On label-noise problems the training set is usually separable (no minimiser exists) and
    only trajectories matter, so the Newton search of the parent class would be wasted time:
    ``minima`` is empty and ``fmin`` NaN.
    """

    @staticmethod
    def _newton_minimum(features: np.ndarray, labels: np.ndarray, l2: float) -> None:
        return None


@dataclass(frozen=True)
class NoisyBinaryData:
    """A training set with flipped labels and a clean test set.

    Attributes:
        features: training inputs, shape ``(n, p)``.
        labels: the observed (possibly flipped) training labels ``±1``.
        clean_labels: the true training labels.
        test_features: test inputs, shape ``(n_test, p)``.
        test_labels: their true labels.
        params: the arguments that made the data.
    """

    features: np.ndarray
    labels: np.ndarray
    clean_labels: np.ndarray
    test_features: np.ndarray
    test_labels: np.ndarray
    params: dict = field(default_factory=dict)

    @property
    def flipped(self) -> np.ndarray:
        """Boolean per training example: is its observed label wrong?"""
        return self.labels != self.clean_labels

    @property
    def n(self) -> int:
        """Number of training examples."""
        return self.features.shape[0]

    @property
    def dim(self) -> int:
        """Number of features ``p``."""
        return self.features.shape[1]

    def linear(self, l2: float = 0.0) -> NoisyLogisticRegression:
        """The linear model ``f = ⟨w, x⟩`` on the observed labels (a ``LogisticRegression``)."""
        return NoisyLogisticRegression(
            self.features,
            self.labels,
            l2,
            name="noisy-linear",
            description=f"linear logistic regression, {self.n} examples, {self.dim} features, "
            f"{self.flipped.mean():.0%} flipped labels",
            params=dict(self.params),
        )

    def dln(self, hidden: int) -> DeepLinearNetwork:
        """The 2-layer deep linear network of width ``hidden`` on the observed labels."""
        return DeepLinearNetwork(
            self.features, self.labels, hidden, name="noisy-dln", params=dict(self.params)
        )


def make_noisy_binary_data(
    n: int = 120,
    dim: int = 60,
    noise: float = 0.3,
    separation: float = 1.5,
    n_test: int = 2000,
    seed: int = 0,
) -> NoisyBinaryData:
    """The seeded binary Gaussian mixture of the module docstring.

    Args:
        n: training examples (≥ 2).
        dim: features ``p`` (≥ 1).
        noise: fraction of flipped training labels, in [0, 0.5].
        separation: distance ``s`` of each class mean from the origin.
        n_test: clean test examples (≥ 1).
        seed: the generator's seed (the same seed gives the same data).
    """
    _check_int("n", n, 2)
    _check_int("dim", dim, 1)
    _check_int("n_test", n_test, 1)
    _check_int("seed", seed, 0)
    check_real("noise", noise, 0.0, 0.5)
    check_real("separation", separation, 0.0, None)
    rng = np.random.default_rng(seed)
    centre = separation * np.ones(dim) / math.sqrt(dim)

    def draw(m: int) -> tuple[np.ndarray, np.ndarray]:
        t = rng.choice([-1.0, 1.0], size=m)
        return t[:, None] * centre + rng.standard_normal((m, dim)), t

    features, clean = draw(n)
    test_features, test_labels = draw(n_test)
    labels = clean.copy()
    labels[rng.choice(n, size=round(noise * n), replace=False)] *= -1.0
    params = dict(n=n, dim=dim, noise=noise, separation=separation, n_test=n_test, seed=seed)
    return NoisyBinaryData(features, labels, clean, test_features, test_labels, params)


def symmetric_label_noise(
    labels: np.ndarray, num_classes: int, fraction: float, rng: np.random.Generator
) -> np.ndarray:
    """Symmetric label noise: exactly ``round(fraction · n)`` labels, chosen at random, are
    replaced by a *different* class drawn uniformly from the other ``num_classes − 1``.

    Returns a new array; ``labels`` (integers in ``[0, num_classes)``) is not changed.
    """
    labels = np.asarray(labels)
    _check_int("num_classes", num_classes, 2)
    check_real("fraction", fraction, 0.0, 1.0)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ValueError("labels must be a 1-D integer array")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes})")
    noisy = labels.copy()
    chosen = rng.choice(labels.size, size=round(fraction * labels.size), replace=False)
    # A shift by 1..C-1 (mod C) is a uniformly random *other* class.
    shift = rng.integers(1, num_classes, size=chosen.size)
    noisy[chosen] = (labels[chosen] + shift) % num_classes
    return noisy
