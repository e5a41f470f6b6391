"""Exercise: the ImbSAM descent direction (book chapter "ImbSAM on an imbalanced problem").

Write ``imbsam_direction(grad, w, head, tail, rho, tail_weight=2.0) -> d`` where
``grad(w, idx)`` is the mean gradient of the examples ``idx`` at ``w`` and ``head``/``tail``
are index arrays that together hold all n examples. With the official loop's normalisation
(Y. Zhou, Y. Qu, X. Xu, H. Shen, "ImbSAM: A Closer Look at Sharpness-Aware Minimization in
Class-Imbalanced Recognition", ICCV 2023):

    L_head = (1/n) Σ_head ℓ_i,   L_tail = (c/n) Σ_tail ℓ_i          (n = all examples)
    g_h = ∇L_head(w),   g_t = ∇L_tail(w),   ε = ρ g_t/‖g_t‖,   g̃_t = ∇L_tail(w + ε)
    d = g_h + g̃_t

The reference is ``sampy.optim.ImbSAM`` (its base's update with SGD(lr = 1) is ``w − d``). The
checker recognises the perturbation taken along the full gradient, the head gradient left
out, and the tail loss normalised by the tail count instead of n.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sampy.exercises.feedback import Case, Feedback, Mistake, compare_with_reference
from sampy.optim import SGD, ImbSAM, Oracle
from sampy.problems import make_logistic_problem

Grad = Callable[[np.ndarray, np.ndarray], np.ndarray]


class _Split:
    """A tiny SumOfExamples stand-in: the mean gradient of any index set, and groups."""

    def __init__(self, grad: Grad, head: np.ndarray, tail: np.ndarray) -> None:
        self.n = len(head) + len(tail)
        self.groups = np.array(["head"] * self.n, dtype=object)
        self.groups[np.asarray(tail, dtype=int)] = "tail"
        self._grad = grad

    def grad(self, x: np.ndarray, examples: np.ndarray | None = None) -> np.ndarray:
        return self._grad(x, np.arange(self.n) if examples is None else np.asarray(examples))


def _reference_imbsam_direction(
    grad: Grad, w: np.ndarray, head: np.ndarray, tail: np.ndarray, rho: float, tail_weight=2.0
) -> np.ndarray:
    """ImbSAM's descent direction ``d``, read off one ``sampy.optim.ImbSAM`` step."""
    w = np.asarray(w, dtype=float)
    opt = ImbSAM(SGD(lr=1.0), rho=rho, tail_weight=tail_weight)
    oracle = Oracle.from_gradient(lambda x: grad(x, np.arange(len(head) + len(tail))))
    oracle.problem = _Split(grad, np.asarray(head), np.asarray(tail))  # type: ignore[assignment]
    return w - opt.step(w, opt.init(w), oracle)[0]


def _direction(
    grad, w, head, tail, rho, tail_weight, *, perturb="tail", with_head=True, tail_n=None
):
    n = len(head) + len(tail)
    c = tail_weight * len(tail) / (n if tail_n is None else tail_n)
    g_h = len(head) / n * grad(w, head)
    g_t = c * grad(w, tail)
    up = g_t if perturb == "tail" else g_h + g_t
    e = rho * up / (np.linalg.norm(up) + 1e-16)
    return (g_h if with_head else 0.0) + c * grad(w + e, tail)


MISTAKES = (
    Mistake(
        "ε follows the full gradient g_h + g_t: ImbSAM perturbs along the tail gradient only, "
        "ε = ρ g_t/‖g_t‖ — the head loss is not made sharpness-aware",
        lambda grad, w, head, tail, rho, tail_weight=2.0: _direction(
            grad, w, head, tail, rho, tail_weight, perturb="full"
        ),
    ),
    Mistake(
        "the head gradient is missing: d = g_h + g̃_t, the head examples are still minimised "
        "(by plain descent, at w)",
        lambda grad, w, head, tail, rho, tail_weight=2.0: _direction(
            grad, w, head, tail, rho, tail_weight, with_head=False
        ),
    ),
    Mistake(
        "the tail loss is divided by the number of tail examples: the official loop divides "
        "both losses by the full batch size n, L_tail = (c/n) Σ_tail ℓ_i",
        lambda grad, w, head, tail, rho, tail_weight=2.0: _direction(
            grad, w, head, tail, rho, tail_weight, tail_n=len(tail)
        ),
    ),
)


def _problem_grad(seed: int, imbalance: float) -> tuple[Grad, np.ndarray, np.ndarray, int]:
    p = make_logistic_problem(n=24, dim=5, imbalance=imbalance, separation=1.5, seed=seed)
    tail = np.flatnonzero(p.groups == "tail")
    head = np.flatnonzero(p.groups != "tail")
    return (lambda w, idx: p.grad(w, idx)), head, tail, p.dim


def _cases() -> tuple[Case, ...]:
    rng = np.random.default_rng(7)
    cases = []
    for name, seed, imb, rho, c in (
        ("logistic, 1 tail in 5", 0, 0.25, 0.3, 2.0),
        ("logistic, tail weight 1", 1, 0.2, 0.5, 1.0),
        ("logistic, balanced", 2, 1.0, 0.2, 2.0),
    ):
        grad, head, tail, dim = _problem_grad(seed, imb)
        cases.append(Case(name, (grad, rng.standard_normal(dim), head, tail, rho, c)))
    return tuple(cases)


CASES = _cases()


def check_imbsam_direction(imbsam_direction: Callable[..., np.ndarray]) -> Feedback:
    """Check ``imbsam_direction(grad, w, head, tail, rho, tail_weight)`` against ImbSAM."""
    return compare_with_reference(
        "imbsam_direction", imbsam_direction, _reference_imbsam_direction, CASES, MISTAKES
    )
