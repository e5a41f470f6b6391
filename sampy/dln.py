"""Binary logit models: the linear model and the 2-layer deep linear network (DLN).

C. Baek, Z. Kolter, A. Raghunathan, "Why is SAM Robust to Label Noise?", ICLR 2024,
arXiv:2405.03676, Sections 3-4. Labels ``t ∈ {−1, +1}``, logistic loss
``ℓ(w, x, t) = −log σ(t f(w, x))``, and its per-example gradient splits into a **logit scale**
times the model's **Jacobian**::

    ∇_w ℓ = r · ∇_w f(w, x),      r = ∂ℓ/∂f = −t σ(−t f(w, x))            (1)

Two models:

- the linear model ``f(w, x) = ⟨w, x⟩`` (``sampy.problems.LogisticRegression``): ``∇f = x``;
- the DLN ``f(v, W, x) = ⟨v, W x⟩`` with ``v ∈ R^h``, ``W ∈ R^{h×p}`` and no bias
  (``DeepLinearNetwork``): with the hidden activation ``z = W x``,
  ``∇_v f = z``, ``∇_W f = v xᵀ`` and ``J = ‖∇f‖ = sqrt(‖z‖² + ‖x‖²‖v‖²)``.

The DLN's parameters are one flat vector ``w = (v, vec W)`` (``W`` row by row), so the DLN is a
``sampy.problems.SumOfExamples`` and every optimizer of ``sampy.optim`` runs on it.

Proposition 4.1 of Baek et al. in closed form (``jsam_gradients``), with the 1-SAM and logit-SAM
gradients of the same network (``one_sam_gradients``, ``logit_sam_gradients``; our derivation,
checked against automatic differentiation by the tests). Per example, with ``ε = −t ρ ∇f/J`` (the
1-SAM perturbation: the positive logit scale cancels in ``ρ∇ℓ/‖∇ℓ‖``)::

    ∇_v f(w + ε) = z − t ρ ‖x‖² v / J,    ∇_W f(w + ε) = (v − t ρ z / J) xᵀ               (2)
    f(w + ε, x)  = f (1 + ρ²‖x‖²/J²) − t ρ J                                          (3)
    J-SAM:  G_W = ∇_W ℓ(w) + (ρ σ(−t f)/J) z xᵀ,   G_v = ∇_v ℓ(w) + (ρ σ(−t f)‖x‖²/J) v   (4)

(4) reads: SGD plus an activation-norm penalty on the first layer (``z xᵀ = ∇_W ½‖W x‖²``) and a
weight-norm penalty on the last layer (``v = ∇_v ½‖v‖²``), with data-dependent coefficients.
``J = 0`` (``x = 0``, or ``v = 0`` and ``z = 0``) makes ε undefined; the closed forms take an
``eps`` added to ``J`` exactly where the optimizers add their ``perturb_eps``.

``logit_model(problem)`` gives the optimizers that split (1) — ``sampy.optim.LogitSAM`` and
``sampy.optim.JSAM`` — the logits, the Jacobians and the labels of either model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, runtime_checkable

import autograd.numpy as anp
import numpy as np

from sampy._checks import check_binary_data, check_int
from sampy.problems import LogisticRegression, SumOfExamples

__all__ = [
    "DLNGradients",
    "DeepLinearNetwork",
    "LogitModel",
    "dln_perturbation",
    "jacobian_norm",
    "jsam_gradients",
    "logistic_logit_derivative",
    "logit_model",
    "logit_sam_gradients",
    "one_sam_gradients",
    "pack",
    "perturbed_logit",
    "unpack",
]


def sigmoid(u: np.ndarray) -> np.ndarray:
    """``σ(u) = 1/(1 + e^{−u})`` in the tanh form: exact to rounding, never overflows."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(u, dtype=float)))


def logistic_logit_derivative(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``r = ∂ℓ/∂f = −t σ(−t f)``: the logit scale of the logistic loss, per example."""
    return -labels * sigmoid(-labels * logits)


# ---------------------------------------------------------------------------------------------
# The flat parameter vector of the DLN


def unpack(w: np.ndarray, hidden: int, features: int) -> tuple[np.ndarray, np.ndarray]:
    """``w = (v, vec W)`` → ``v`` of shape ``(..., h)`` and ``W`` of shape ``(..., h, p)``."""
    w = np.asarray(w)
    if w.shape[-1] != hidden * (1 + features):
        raise ValueError(
            f"w must have last dimension h(1 + p) = {hidden * (1 + features)}, got {w.shape}"
        )
    v = w[..., :hidden]
    big_w = w[..., hidden:].reshape(*w.shape[:-1], hidden, features)
    return v, big_w


def pack(v: np.ndarray, big_w: np.ndarray) -> np.ndarray:
    """The inverse of ``unpack``: ``(v, W)`` → ``w = (v, vec W)``, shape ``(..., h(1 + p))``."""
    v = np.asarray(v, dtype=float)
    big_w = np.asarray(big_w, dtype=float)
    if big_w.ndim < 2 or big_w.shape[-2] != v.shape[-1]:
        raise ValueError(f"W must have h = {v.shape[-1]} rows, got shape {big_w.shape}")
    flat = big_w.reshape(*big_w.shape[:-2], -1)
    batch = np.broadcast_shapes(v.shape[:-1], flat.shape[:-1])
    v = np.broadcast_to(v, (*batch, v.shape[-1]))
    flat = np.broadcast_to(flat, (*batch, flat.shape[-1]))
    return np.concatenate([v, flat], axis=-1)


class DeepLinearNetwork(SumOfExamples):
    """A 2-layer deep linear network ``f(v, W, x) = ⟨v, W x⟩`` with the logistic loss.

    ``ℓ_i(w) = log(1 + exp(−t_i ⟨v, W x_i⟩))`` over the flat parameter vector ``w = (v, vec W)``
    of dimension ``h(1 + p)``. Losses are written with ``autograd.numpy`` (so the Hessian comes
    from autograd); the per-example gradients ``r_i ∇f`` and the Jacobians ``∇f`` are closed
    form (module docstring, (1)).

    Args:
        features: inputs ``x_i``, shape ``(n, p)``.
        labels: ``t_i ∈ {−1, +1}``, shape ``(n,)``.
        hidden: the width ``h ≥ 1`` of the hidden (linear) layer.
        name: a name for plots and reports.
        groups: an optional label per example (as in ``SumOfExamples``).
    """

    l2 = 0.0  # no regulariser: every example's loss goes through the logit

    def __init__(
        self,
        features: np.ndarray,
        labels: np.ndarray,
        hidden: int,
        *,
        name: str = "dln",
        groups: Sequence[Any] | np.ndarray | None = None,
        params: dict | None = None,
    ) -> None:
        features, labels = check_binary_data(features, labels, columns="p")
        check_int("hidden", hidden, 1)
        n, p = features.shape
        self.features = features
        self.labels = labels
        self.hidden = int(hidden)
        self.n_features = p
        super().__init__(
            n,
            self.hidden * (1 + p),
            name=name,
            groups=groups,
            description=f"2-layer deep linear network, width {hidden}, {n} examples, {p} features",
            params={"hidden": self.hidden, **(params or {})},
        )

    # -- the model ------------------------------------------------------------------------

    def split(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(v, W)`` of the flat parameters ``w`` (shapes ``(..., h)``, ``(..., h, p)``)."""
        return unpack(w, self.hidden, self.n_features)

    def join(self, v: np.ndarray, big_w: np.ndarray) -> np.ndarray:
        """The flat parameters of ``(v, W)``."""
        return pack(v, big_w)

    def predict(self, w: np.ndarray, inputs: np.ndarray) -> np.ndarray:
        """Logits ``⟨v, W x⟩`` of any inputs ``(m, p)`` at every point: ``(..., m)``."""
        v, big_w = self.split(np.asarray(w, dtype=float))
        end_to_end = (v[..., None, :] @ big_w)[..., 0, :]  # Wᵀv: ⟨v, W x⟩ = ⟨Wᵀv, x⟩
        return end_to_end @ np.asarray(inputs, dtype=float).T

    def _layers(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(v, W)`` of points that autograd may be tracing (no ``np.asarray``)."""
        h, p = self.hidden, self.n_features
        big_w = anp.reshape(points[..., h:], (*points.shape[:-1], h, p))
        return points[..., :h], big_w

    def activations_at(self, points: np.ndarray, examples: np.ndarray) -> np.ndarray:
        """The hidden activation ``z = W x`` of example ``examples[j]`` at ``points[..., j, :]``."""
        big_w = self._layers(points)[1]
        return anp.einsum("...khp,kp->...kh", big_w, self.features[examples])

    def logits_at(self, points: np.ndarray, examples: np.ndarray) -> np.ndarray:
        """``f = ⟨v, W x⟩`` of example ``examples[j]`` at ``points[..., j, :]``: ``(..., k)``."""
        v = self._layers(points)[0]
        return anp.sum(v * self.activations_at(points, examples), axis=-1)

    def logit_grads_at(self, points: np.ndarray, examples: np.ndarray) -> np.ndarray:
        """The Jacobian ``∇f = (z, vec(v xᵀ))`` per (point, example) pair: ``(..., k, d)``."""
        return self._jacobian(np.asarray(points, dtype=float), examples)[0]

    def _jacobian(
        self, points: np.ndarray, examples: np.ndarray, scale: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(scale · ∇f, f)``: the Jacobians (times ``scale`` per pair, if given) written
        straight into one ``(..., k, d)`` array, and the logits."""
        h, p = self.hidden, self.n_features
        v, big_w = self.split(points)
        feats = self.features[examples]
        z = (big_w @ feats[:, :, None])[..., 0]  # (..., k, h)
        logits = np.sum(v * z, axis=-1)
        out = np.empty(points.shape)
        if scale is None:
            out[..., :h] = z
            outer_v = v
        else:
            np.multiply(z, scale[..., None], out=out[..., :h])
            outer_v = v * scale[..., None]
        outer = out[..., h:].reshape(*points.shape[:-1], h, p)
        np.multiply(outer_v[..., :, None], feats[:, None, :], out=outer)
        return out, logits

    # -- SumOfExamples -----------------------------------------------------------------------

    def losses_at(self, points: np.ndarray, examples: np.ndarray) -> np.ndarray:
        """``log(1 + exp(−t ⟨v, W x⟩))`` per (point, example) pair (autograd-differentiable)."""
        margin = self.labels[examples] * self.logits_at(points, examples)
        return anp.logaddexp(0.0, -margin)

    def grads_at(self, points: np.ndarray, examples: np.ndarray) -> np.ndarray:
        """Closed form ``r ∇f`` with ``r = −t σ(−t f)`` per (point, example) pair."""
        points = np.asarray(points, dtype=float)
        r = logistic_logit_derivative(self.logits_at(points, examples), self.labels[examples])
        return self._jacobian(points, examples, scale=r)[0]

    def value_and_grad(
        self, x: np.ndarray, examples: object = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Mean loss and gradient by matrix products (no ``(..., n, d)`` tensor):
        ``G_v = mean_i r_i z_i``, ``G_W = v (mean_i r_i x_i)ᵀ``."""
        x = np.asarray(x, dtype=float)
        weights = self._weights(x, examples)
        idx = np.arange(self.n) if weights is not None else self._indices(examples)
        if weights is None:
            weights = 1.0 / idx.size
        feats, t = self.features[idx], self.labels[idx]
        v, big_w = self.split(x)
        z = feats @ np.swapaxes(big_w, -1, -2)  # (..., k, h)
        margin = t * (z @ v[..., None])[..., 0]
        loss = np.sum(weights * np.logaddexp(0.0, -margin), axis=-1)
        c = weights * (-t * sigmoid(-margin))  # (..., k): weight times the logit scale r
        g_v = (c[..., None, :] @ z)[..., 0, :]
        g_w = v[..., :, None] * (c @ feats)[..., None, :]
        return loss, self.join(g_v, g_w)

    def grad(self, x: np.ndarray, examples: object = None) -> np.ndarray:
        """Mean gradient over the selected examples, shape ``(..., d)``."""
        return self.value_and_grad(x, examples)[1]

    def init(self, scale: float = 0.5, batch: tuple[int, ...] = (), seed: int = 0) -> np.ndarray:
        """Seeded random start points: ``v ~ N(0, scale²)``, ``W ~ N(0, scale²/p)``.

        The origin is a saddle point of every DLN loss (both layers' gradients vanish there),
        so a DLN must start away from it; ``W``'s scale keeps ``‖W x‖`` of order ``scale``.
        """
        rng = np.random.default_rng(seed)
        v = scale * rng.standard_normal((*batch, self.hidden))
        big_w = (
            scale
            / np.sqrt(self.n_features)
            * rng.standard_normal((*batch, self.hidden, self.n_features))
        )
        return self.join(v, big_w)


# ---------------------------------------------------------------------------------------------
# What LogitSAM and JSAM need: logits, Jacobians, labels


@runtime_checkable
class LogitModel(Protocol):
    """A binary model with the logistic loss, split as ``∇ℓ = r ∇f`` (module docstring (1)).

    ``labels`` are ``±1``; ``l2`` is a ridge ``(λ/2)‖w‖²`` inside every example's loss (it does
    not go through the logit).
    """

    labels: np.ndarray
    l2: float

    def logits_at(self, points: np.ndarray, examples: np.ndarray) -> np.ndarray:
        """``f(w_j, x_{examples[j]})`` for ``points[..., j, :] = w_j``: ``(..., k)``."""
        ...

    def logit_grads_at(self, points: np.ndarray, examples: np.ndarray) -> np.ndarray:
        """``∇_w f(w_j, x_{examples[j]})``: ``(..., k, d)``."""
        ...


@dataclass(frozen=True)
class _LinearLogits:
    """The linear model of a ``LogisticRegression``: ``f = ⟨w, x⟩``, ``∇f = x``."""

    problem: LogisticRegression

    @property
    def labels(self) -> np.ndarray:
        return self.problem.labels

    @property
    def l2(self) -> float:
        return self.problem.l2

    def logits_at(self, points: np.ndarray, examples: np.ndarray) -> np.ndarray:
        return np.einsum("...kd,kd->...k", points, self.problem.features[examples])

    def logit_grads_at(self, points: np.ndarray, examples: np.ndarray) -> np.ndarray:
        feats = self.problem.features[examples]
        return np.broadcast_to(feats, (*np.shape(points)[:-2], *feats.shape))


def logit_model(problem: object) -> LogitModel:
    """The logits and Jacobians of ``problem``: a ``LogisticRegression`` (the linear model) or
    any problem with ``logits_at``/``logit_grads_at``/``labels`` (``DeepLinearNetwork``).

    Raises ``ValueError`` for anything else (a plain test function has no examples, and a
    sum-of-examples problem without logits cannot be split into a logit scale and a Jacobian).
    """
    if isinstance(problem, LogisticRegression):
        return _LinearLogits(problem)
    if isinstance(problem, SumOfExamples) and isinstance(problem, LogitModel):
        return problem
    name = getattr(problem, "name", type(problem).__name__)
    raise ValueError(
        "logit-SAM and J-SAM need a binary logit model (sampy.problems.LogisticRegression or "
        f"sampy.dln.DeepLinearNetwork: logits, Jacobians and ±1 labels), got {name!r}"
    )


# ---------------------------------------------------------------------------------------------
# Proposition 4.1 and its companions, in closed form (one example, one point)


class DLNGradients(NamedTuple):
    """A per-example gradient (or perturbation) of the DLN, split by layer."""

    v: np.ndarray
    """The last layer's part, shape ``(h,)``."""
    W: np.ndarray
    """The first layer's part, shape ``(h, p)``."""

    def flat(self) -> np.ndarray:
        """``(G_v, vec G_W)``: the layout of ``DeepLinearNetwork``'s flat parameters."""
        return pack(self.v, self.W)


def _example(v, big_w, x, t):
    v = np.asarray(v, dtype=float)
    big_w = np.asarray(big_w, dtype=float)
    x = np.asarray(x, dtype=float)
    if v.ndim != 1 or big_w.shape != (v.size, x.size) or x.ndim != 1:
        raise ValueError(
            f"expected v (h,), W (h, p), x (p,); got {v.shape}, {big_w.shape}, {x.shape}"
        )
    if t not in (-1, 1):
        raise ValueError(f"t must be -1 or +1, got {t!r}")
    return v, big_w, x, float(t)


def jacobian_norm(v: np.ndarray, big_w: np.ndarray, x: np.ndarray) -> float:
    """``J = ‖∇f‖ = sqrt(‖W x‖² + ‖x‖²‖v‖²)`` of the DLN at one example."""
    v, big_w, x, _ = _example(v, big_w, x, 1)
    z = big_w @ x
    return float(np.sqrt(z @ z + (x @ x) * (v @ v)))


def dln_perturbation(
    v: np.ndarray, big_w: np.ndarray, x: np.ndarray, t: int, rho: float, eps: float = 0.0
) -> DLNGradients:
    """1-SAM's per-example perturbation ``ε = −t ρ ∇f/(J + eps)``: ``ε_v = −tρz/J``,
    ``ε_W = −tρ v xᵀ/J``."""
    v, big_w, x, t = _example(v, big_w, x, t)
    scale = -t * rho / (jacobian_norm(v, big_w, x) + eps)
    return DLNGradients(scale * (big_w @ x), scale * np.outer(v, x))


def perturbed_logit(
    v: np.ndarray, big_w: np.ndarray, x: np.ndarray, t: int, rho: float, eps: float = 0.0
) -> float:
    """``f(w + ε, x) = f (1 + ρ²‖x‖²/J²) − t ρ J`` (module docstring (3); with ``eps``,
    ``ρ/J`` becomes ``ρ/(J + eps)``)."""
    v, big_w, x, t = _example(v, big_w, x, t)
    j = jacobian_norm(v, big_w, x)
    f = float(v @ big_w @ x)
    s = rho / (j + eps)
    return f * (1.0 + s * s * (x @ x)) - t * s * j * j


def _perturbed_jacobian(v, big_w, x, t, rho, eps):
    """(2): ``∇_v f(w + ε) = z − tρ‖x‖²v/J``, ``∇_W f(w + ε) = (v − tρz/J) xᵀ``."""
    z = big_w @ x
    s = rho / (jacobian_norm(v, big_w, x) + eps)
    return z - t * s * (x @ x) * v, np.outer(v - t * s * z, x)


def jsam_gradients(
    v: np.ndarray, big_w: np.ndarray, x: np.ndarray, t: int, rho: float, eps: float = 0.0
) -> DLNGradients:
    """Proposition 4.1: J-SAM's per-example gradient ``−t σ(−t f(w)) ∇f(w + ε)`` in closed form,

    ``G_v = −t σ z + (ρ σ ‖x‖²/J) v`` and ``G_W = −t σ v xᵀ + (ρ σ/J) z xᵀ`` with
    ``σ = σ(−t f(w, x))``: the SGD gradient plus a weight-norm penalty on ``v`` and an
    activation-norm penalty on ``W``.
    """
    v, big_w, x, t = _example(v, big_w, x, t)
    z = big_w @ x
    f = float(v @ z)
    s = float(sigmoid(-t * f))
    c = s * rho / (jacobian_norm(v, big_w, x) + eps)
    return DLNGradients(-t * s * z + c * (x @ x) * v, -t * s * np.outer(v, x) + c * np.outer(z, x))


def one_sam_gradients(
    v: np.ndarray, big_w: np.ndarray, x: np.ndarray, t: int, rho: float, eps: float = 0.0
) -> DLNGradients:
    """1-SAM's per-example gradient ``∇ℓ(w + ε)``: ``−t σ(−t f_ε) ∇f(w + ε)`` with (2), (3)."""
    v, big_w, x, t = _example(v, big_w, x, t)
    r = -t * float(sigmoid(-t * perturbed_logit(v, big_w, x, t, rho, eps)))
    jv, jw = _perturbed_jacobian(v, big_w, x, t, rho, eps)
    return DLNGradients(r * jv, r * jw)


def logit_sam_gradients(
    v: np.ndarray, big_w: np.ndarray, x: np.ndarray, t: int, rho: float, eps: float = 0.0
) -> DLNGradients:
    """logit-SAM's per-example gradient ``−t σ(−t f_ε) ∇f(w)``: only the logit scale moves."""
    v, big_w, x, t = _example(v, big_w, x, t)
    r = -t * float(sigmoid(-t * perturbed_logit(v, big_w, x, t, rho, eps)))
    return DLNGradients(r * (big_w @ x), r * np.outer(v, x))
