"""Use a ``sampy.functions`` test function as a torch loss (for the twins and for teaching).

The forward pass and the gradient are the NumPy ones (``f`` and ``f.grad``), so a torch
optimizer on ``loss(x)`` sees exactly the numbers the NumPy reference sees: the twin tests
compare optimizers, not two implementations of Rosenbrock.
"""

from __future__ import annotations

import numpy as np
import torch

from sampy.functions import TestFunction


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
