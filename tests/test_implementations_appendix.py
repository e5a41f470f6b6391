"""The computed differences of the appendix ``book/contradictions.md`` (VARIANTS.md §21).

Only the claims no other test checks; the page names the tests that cover the rest
(``test_friendly_sam_matches_pytorch_optimizer``, ``test_seed_alias_names_are_the_swapped_classes``,
``test_sds_selects_exactly_k_and_the_official_strict_rule_does_not``, …).
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import sampy
from sampy.optim import (
    GSAM,
    SAM,
    SGD,
    AdamWMSAMScheduleFree,
    LookSAM,
    NotesAdamWMSAMScheduleFree,
)

F = sampy.functions.get("rosenbrock")
X0 = np.array([-1.0, 1.5])
LR = 1e-3


def _ours(opt, steps: int) -> np.ndarray:
    return sampy.run(opt, F, X0, steps).xs[1:]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _defaults(cls) -> dict:
    return {
        k: p.default
        for k, p in inspect.signature(cls.__init__).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def test_keras_port_sam_is_gradient_descent_and_not_sam():
    """VARIANTS.md §20: perturb, restore, then the base step with the same clean gradient."""
    x, xs = X0, []
    for _ in range(100):
        g = F.grad(x)
        eps = 0.05 * g / (np.linalg.norm(g) + 1e-12)
        x = (x + eps) - eps - LR * g
        xs.append(x)
    xs = np.array(xs)
    assert np.abs(xs - _ours(SGD(lr=LR), 100)).max() < 1e-12
    assert np.abs(xs - _ours(SAM(SGD(lr=LR), rho=0.05), 100)).max() > 1e-2


def _total_minus_sam_gradient(rho: float, h: float = 1e-6) -> np.ndarray:
    """∇_w L(w + ε̂(w)) by central differences, minus SAM's ∇L(w + ε̂)."""

    def objective(w):
        return F.fn(w + rho * _unit(F.grad(w)))

    total = np.array([(objective(X0 + h * e) - objective(X0 - h * e)) / (2 * h) for e in np.eye(2)])
    return total - F.grad(X0 + rho * _unit(F.grad(X0)))


def test_seed_002_total_derivative_is_not_sams_gradient():
    """The total derivative keeps the term (dε̂/dw)ᵀ∇L(w + ε̂) that SAM drops.

    dε̂/dw = ρ(I − ĝĝᵀ)H/‖g‖ annihilates g, so what is left is ρ²(I − ĝĝᵀ)H²ĝ/‖g‖ + …:
    halving ρ divides the difference by about 4.
    """
    gap = np.linalg.norm(_total_minus_sam_gradient(0.05))
    assert gap > 1e-2
    ratio = gap / np.linalg.norm(_total_minus_sam_gradient(0.025))
    assert 3.5 < ratio < 5.0


def test_esam_paper_and_code_perturbation_lengths_differ_and_sampy_defaults_to_the_paper():
    rng = np.random.default_rng(0)
    rho, beta, dim = 0.05, 0.5, 10_000
    g = rng.normal(size=dim)
    masks = rng.random((200, dim)) < beta
    paper = np.mean(np.sum((rho / beta * masks * _unit(g)) ** 2, axis=1))
    assert abs(paper / (rho**2 / beta) - 1) < 0.01
    assert abs(np.sum((rho / beta * _unit(g)) ** 2) - (rho / beta) ** 2) < 1e-12
    hyper = sampy.variant("ESAM").defaults()
    assert hyper["swp_granularity"] == "coordinate" and hyper["swp_norm"] == "full"


def _looksam_loop(steps, *, stale, lr, rho=0.05, k=5, alpha=0.7):
    x, xs, saved, gv = X0, [], X0, None
    for t in range(steps):
        g = F.grad(x)
        if t % k == 0:
            saved = x
            gs = F.grad(x + rho * g / (np.linalg.norm(g) + 1e-12))
            gv = gs - (g @ gs) / (g @ g + 1e-12) * g
            d = gs
        else:
            d = g + alpha * np.linalg.norm(g) / (np.linalg.norm(gv) + 1e-8) * gv
        if stale:
            x = saved
        x = x - lr * d
        xs.append(x)
    return np.array(xs)


def test_looksam_stale_restore_differs_and_the_correct_loop_is_sampy():
    """VARIANTS.md §9.2: restoring the saved weights on reuse steps discards their progress."""
    lr = LR / 2
    ref = _ours(LookSAM(SGD(lr=lr), rho=0.05, k=5, alpha=0.7), 300)
    assert np.abs(_looksam_loop(300, stale=False, lr=lr) - ref).max() < 1e-9
    assert np.abs(_looksam_loop(300, stale=True, lr=lr) - ref).max() > 1e-2


def test_seed_004_formula_and_schedule_free_msam_are_different_algorithms():
    seed = _ours(NotesAdamWMSAMScheduleFree(lr=1e-2, weight_decay=0.0), 300)
    consistent = _ours(AdamWMSAMScheduleFree(lr=1e-2), 300)
    assert np.abs(seed - consistent).max() > 1e-2
    assert sampy.variant("AdamWMSAMScheduleFree").grad_evals == "1"


def test_gsam_step_is_the_decomposition_with_pytorch_optimizers_alpha():
    g = F.grad(X0)
    g_sam = F.grad(X0 + 0.05 * _unit(g))
    g_perp = g - (g @ g_sam) / (g_sam @ g_sam) * g_sam
    step = _ours(GSAM(SGD(lr=LR), rho=0.05, alpha=0.4), 1)[0]
    np.testing.assert_allclose(step, X0 - LR * (g_sam - 0.4 * g_perp), rtol=0, atol=1e-12)
    po = pytest.importorskip("pytorch_optimizer")
    assert sampy.variant("GSAM").defaults()["alpha"] == _defaults(po.GSAM)["alpha"] == 0.4


def test_seed_000_wsam_parameters_are_pytorch_optimizers_looksam_defaults():
    po = pytest.importorskip("pytorch_optimizer")
    seed000_wsam = {"rho": 0.1, "k": 10, "alpha": 0.7, "use_gc": False}
    look, wsam = _defaults(po.LookSAM), _defaults(po.WSAM)
    assert all(look[k] == v for k, v in seed000_wsam.items())
    assert not {"k", "alpha", "use_gc"} & set(wsam)


def test_seed_003_clamp_with_a_lower_bound_sets_every_coordinate_to_the_bound():
    torch = pytest.importorskip("torch")
    eps = 0.05 * _unit(F.grad(X0))
    assert np.all(torch.clamp(torch.tensor(eps), min=1.0).numpy() == 1.0)
    assert np.all(np.abs(eps) < 1.0)


def test_pytorch_optimizer_sam_as_shipped_differs_by_its_float32_norm(monkeypatch):
    """VARIANTS.md §25: about 1e-8 as shipped, rounding with the norm taken in float64."""
    torch = pytest.importorskip("torch")
    po = pytest.importorskip("pytorch_optimizer")
    import pytorch_optimizer.optimizer.sam as po_sam

    import sampy.torch as st

    loss = st.as_torch_loss(F)

    def run(steps):
        x = torch.nn.Parameter(torch.tensor(X0, dtype=torch.float64))
        opt = po.SAM([x], torch.optim.SGD, rho=0.05, lr=LR, momentum=0.5)

        def closure():
            opt.zero_grad()
            value = loss(x)
            value.backward()
            return value

        xs = []
        for _ in range(steps):
            closure()
            opt.step(closure)
            xs.append(x.detach().numpy().copy())
        return np.array(xs)

    def float64_norm(param_groups, device=None, *, weight_adaptive=False):
        grads = [p.grad for group in param_groups for p in group["params"] if p.grad is not None]
        return torch.stack([g.norm() for g in grads]).square().sum().reshape(1)

    ours = _ours(SAM(SGD(lr=LR, momentum=0.5), rho=0.05), 100)
    shipped = run(100)
    monkeypatch.setattr(po_sam, "get_global_gradient_norm", float64_norm)
    patched = run(100)
    assert 1e-10 < np.abs(shipped - ours).max() < 1e-6
    assert np.abs(patched - ours).max() < 1e-13
