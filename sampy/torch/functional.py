"""Use a ``sampy.functions`` test function or a ``sampy.problems.SumOfExamples`` as a torch loss.

The forward pass and the gradient are the NumPy ones (``f`` and ``f.grad``), so a torch
optimizer on ``loss(x)`` sees exactly the numbers the NumPy reference sees: the twin tests
compare optimizers, not two implementations of Rosenbrock.
"""

from __future__ import annotations

import numpy as np
import torch

from sampy.functions import TestFunction
from sampy.problems import SumOfExamples


class _NumpyLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, f: TestFunction) -> torch.Tensor:
        point = x.detach().cpu().numpy()
        ctx.save_for_backward(torch.as_tensor(f.grad(point), dtype=x.dtype, device=x.device))
        return torch.as_tensor(np.asarray(f(point)), dtype=x.dtype, device=x.device)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (grad,) = ctx.saved_tensors
        return grad_output.unsqueeze(-1) * grad, None


def as_torch_loss(f: TestFunction):
    """``loss(x)`` for a tensor ``x`` of shape ``(..., d)``, differentiable through ``f.grad``."""

    def loss(x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != f.dim:
            raise ValueError(f"x must have last dimension {f.dim}, got shape {tuple(x.shape)}")
        return _NumpyLoss.apply(x, f)

    return loss


class _NumpyExampleLosses(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, problem: SumOfExamples, idx: np.ndarray) -> torch.Tensor:
        point = x.detach().cpu().numpy()
        grads = problem.per_example_grads(point, idx)
        ctx.save_for_backward(torch.as_tensor(grads, dtype=x.dtype, device=x.device))
        losses = problem.per_example_losses(point, idx)
        return torch.as_tensor(losses, dtype=x.dtype, device=x.device)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (grads,) = ctx.saved_tensors
        return grad_output @ grads, None, None


def as_torch_example_losses(problem: SumOfExamples):
    """``losses(x, indices=None)``: the per-example losses of a ``SumOfExamples`` at ``x``.

    ``x`` has shape ``(d,)``; ``indices`` is a 1-D integer tensor (None: all ``n`` examples,
    in order). Differentiable through the problem's own per-example gradients, so an example
    closure built on it (``sampy.torch.examples``) sees exactly the reference's numbers.
    """

    def losses(x: torch.Tensor, indices: torch.Tensor | None = None) -> torch.Tensor:
        if x.shape != (problem.dim,):
            raise ValueError(f"x must have shape ({problem.dim},), got {tuple(x.shape)}")
        idx = np.arange(problem.n) if indices is None else indices.detach().cpu().numpy()
        return _NumpyExampleLosses.apply(x, problem, idx)

    return losses
