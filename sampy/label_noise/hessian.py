"""The sharpness of a torch model: the top Hessian eigenvalue from Hessian-vector products.

The Hessian of a network's training loss is never formed: ``v ↦ H v`` is one double backward
pass (Pearlmutter's trick, as PyHessian does: Z. Yao, A. Gholami, K. Keutzer, M. W. Mahoney,
"PyHessian: Neural Networks Through the Lens of the Hessian", IEEE BigData 2020,
arXiv:1912.07145), and ARPACK's Lanczos solver (``scipy.sparse.linalg.eigsh`` on a
``LinearOperator``) finds the largest eigenvalue from those products alone. The computation
runs in float64 on a copy of the parameters, so the model is not changed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, LinearOperator, eigsh
from torch import Tensor
from torch.func import functional_call

__all__ = ["hessian_vector_product", "top_hessian_eigenvalue"]


def hessian_vector_product(
    loss: Callable[[Sequence[Tensor]], Tensor], params: Sequence[Tensor]
) -> Callable[[np.ndarray], np.ndarray]:
    """``v ↦ ∇²L(params) v`` for flat NumPy vectors ``v``, by double backward.

    ``loss(ps)`` must compute the scalar loss from the tensors ``ps`` (shaped like ``params``).
    """
    ps = [p.detach().clone().requires_grad_(True) for p in params]
    value = loss(ps)
    grads = torch.autograd.grad(value, ps, create_graph=True)
    shapes = [p.shape for p in ps]
    sizes = [p.numel() for p in ps]
    dtype, device = ps[0].dtype, ps[0].device

    def matvec(v: np.ndarray) -> np.ndarray:
        flat = torch.as_tensor(np.asarray(v, dtype=float).reshape(-1), dtype=dtype, device=device)
        pieces = [c.reshape(s) for c, s in zip(flat.split(sizes), shapes, strict=True)]
        hv = torch.autograd.grad(grads, ps, grad_outputs=pieces, retain_graph=True)
        return torch.cat([h.reshape(-1) for h in hv]).detach().cpu().numpy().astype(float)

    return matvec


def top_hessian_eigenvalue(
    model: torch.nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    inputs: Tensor,
    targets: Tensor,
    *,
    tol: float = 1e-6,
    maxiter: int = 2000,
    seed: int = 0,
) -> float:
    """The largest eigenvalue of the Hessian of ``loss_fn(model(inputs), targets)``.

    All the model's parameters count; the loss is evaluated in float64 on copies of them.
    Returns NaN (and never raises) when the loss is not finite or ARPACK fails (no convergence,
    a Hessian-vector product of zero at the start): numerical trouble is reported, not thrown.

    Args:
        model: the network (its parameters are read, not changed).
        loss_fn: ``loss_fn(logits, targets)`` → mean loss (e.g. ``F.cross_entropy``).
        inputs, targets: the data the loss is taken over (e.g. the whole training set).
        tol: ARPACK's relative tolerance.
        maxiter: ARPACK's iteration limit.
        seed: seed of ARPACK's start vector.
    """
    names = [name for name, _ in model.named_parameters()]
    params = [p.detach().to(torch.float64) for _, p in model.named_parameters()]
    buffers = {name: b.to(torch.float64) for name, b in model.named_buffers()}
    x64 = inputs.to(torch.float64)

    def loss(ps: Sequence[Tensor]) -> Tensor:
        state = {**buffers, **dict(zip(names, ps, strict=True))}
        return loss_fn(functional_call(model, state, (x64,)), targets)

    with torch.no_grad():
        if not torch.isfinite(loss(params)):
            return float("nan")
    matvec = hessian_vector_product(loss, params)
    dim = sum(p.numel() for p in params)
    op = LinearOperator((dim, dim), matvec=matvec, dtype=float)
    v0 = np.random.default_rng(seed).standard_normal(dim)
    try:
        values = eigsh(
            op, k=1, which="LA", tol=tol, maxiter=maxiter, v0=v0, return_eigenvectors=False
        )
    except (ArpackError, ArpackNoConvergence):
        return float("nan")
    value = float(values[0])
    return value if np.isfinite(value) else float("nan")
