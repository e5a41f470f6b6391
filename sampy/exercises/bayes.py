"""Exercise: the last three lines of a bSAM step by hand (book chapter "SAM as a Bayesian method").

Write ``bsam_update(w, m, s, g, g_adv, lr, betas, damping, weight_decay) -> (w, m, s)``: given
the noisy gradient ``g = ∇L(θ)`` at a posterior sample θ and the gradient ``g_adv = ∇L(w + ρ
g/s)`` at the adversarial point, return the new mean, momentum and precision of the official
bSAM code (T. Möllenhoff, M. E. Khan, "SAM as an Optimal Relaxation of Bayes", ICLR 2023;
``team-approx-bayes/bayesian-sam``, ``build_bsam_optimizer``); η is the learning rate ``lr``,
ζ the damping, δ the prior precision ``weight_decay``::

    m ← β1 m + (1 − β1)(g_adv + δ w)
    w ← w − η m / s                        (the old s: the official code's order)
    s ← β2 s + (1 − β2)(√s |g| + ζ + δ)    (the noisy g, not squared)

The checker recognises the mistakes of pytorch-optimizer's ``BSAM`` and of hurried readers:
the precision term squared, the adversarial gradient in the precision, δ forgotten there, and
the mean moved with the new precision (the paper's box, ``update_order="paper"``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sampy.exercises.feedback import Case, Feedback, Mistake, compare_with_reference
from sampy.optim import BSAM, Oracle
from sampy.optim.bsam import BSAMState

Update = Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]]


def _stack(w: np.ndarray, m: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, ...]:
    return np.asarray(w, float), np.asarray(m, float), np.asarray(s, float)


def _reference_bsam_update(
    w, m, s, g, g_adv, lr, betas, damping, weight_decay
) -> tuple[np.ndarray, ...]:
    """Steps 6–8 of ``sampy.optim.BSAM`` (code order), fed the two given gradients.

    BSAM asks its oracle for the noisy gradient first and the adversarial one second; with
    ``num_data = inf`` the posterior sample is the mean itself, so the step only sees g, g_adv.
    Returns ``(w, m, s)``.
    """
    answers = iter([np.asarray(g, float), np.asarray(g_adv, float)])
    oracle = Oracle.from_gradient(lambda x: next(answers))
    opt = BSAM(
        lr=lr,
        betas=betas,
        weight_decay=weight_decay,
        damping=damping,
        rho=0.05,
        num_data=np.inf,
        batchsplit=1,
    )
    w = np.asarray(w, float)
    state = BSAMState(m=np.asarray(m, float), s=np.asarray(s, float), rng=np.random.default_rng(0))
    w_new, new = opt.step(w, state, oracle)
    return _stack(w_new, new.m, new.s)


def _variant(w, m, s, g, g_adv, lr, betas, damping, weight_decay, *, h, square=False, new_s=False):
    beta1, beta2 = betas
    m_new = beta1 * m + (1 - beta1) * (g_adv + weight_decay * w)
    term = h(np.sqrt(s), np.abs(g), np.abs(g_adv)) + damping + weight_decay
    s_new = beta2 * s + (1 - beta2) * (term**2 if square else term)
    w_new = w - lr * m_new / (s_new if new_s else s)
    return _stack(w_new, m_new, s_new)


def _right(root_s, abs_g, abs_g_adv):
    return root_s * abs_g


MISTAKES = (
    Mistake(
        "the precision term is squared, (√s|g| + ζ + δ)²: bSAM averages √s|g| + ζ + δ itself "
        "(pytorch-optimizer's port squares it)",
        lambda *a: _variant(*a, h=_right, square=True),
    ),
    Mistake(
        "the precision uses the adversarial gradient g̃: it is built from the noisy gradient g "
        "at the posterior sample θ (its size there measures the curvature)",
        lambda *a: _variant(*a, h=lambda r, g, ga: r * ga),
    ),
    Mistake(
        "δ is missing from the precision: s ← β2 s + (1 − β2)(√s|g| + ζ + δ); the prior "
        "precision δ keeps s from falling below ζ + δ",
        lambda w, m, s, g, ga, lr, b, gam, d: _variant(
            w, m, s, g, ga, lr, b, gam, d, h=lambda r, x, y: r * x - d
        ),
    ),
    Mistake(
        "the mean moves with the new precision (the paper's box): the official code divides m "
        "by the precision before its update",
        lambda *a: _variant(*a, h=_right, new_s=True),
    ),
)


CASES = (
    Case(
        "first step",
        (
            np.array([0.5, -1.0, 2.0]),
            np.zeros(3),
            np.ones(3),
            np.array([0.3, -2.0, 1.5]),
            np.array([0.4, -2.5, 1.0]),
            0.1,
            (0.9, 0.99),
            0.1,
            0.05,
        ),
    ),
    Case(
        "later step",
        (
            np.array([1.0, 2.0]),
            np.array([0.2, -0.1]),
            np.array([2.0, 0.5]),
            np.array([-1.0, 3.0]),
            np.array([-0.5, 2.0]),
            0.5,
            (0.8, 0.9),
            0.2,
            0.05,
        ),
    ),
    Case(
        "large precision",
        (
            np.array([-0.3, 0.7]),
            np.array([0.05, 0.4]),
            np.array([30.0, 4.0]),
            np.array([2.0, -0.7]),
            np.array([1.2, -1.1]),
            0.05,
            (0.5, 0.6),
            0.3,
            0.1,
        ),
    ),
)


def check_bsam_precision_update(bsam_update: Update) -> Feedback:
    """Check ``bsam_update(w, m, s, g, g_adv, lr, betas, damping, weight_decay) -> (w, m, s)``
    against ``sampy.optim.BSAM`` (official code order)."""

    return compare_with_reference(
        "bsam_update",
        bsam_update,
        _reference_bsam_update,
        CASES,
        MISTAKES,
        atol=1e-12,
        rtol=1e-9,
        outputs=("w", "m", "s"),
    )
