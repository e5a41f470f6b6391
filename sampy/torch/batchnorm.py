"""Keep BatchNorm running statistics out of SAM's second forward pass.

A SAM step runs the model twice, at ``w`` and at ``w + ε``. The running mean/variance should see
only the first (clean) batch — the official JAX code keeps the first pass's BatchNorm state
(google-research/sam @ dae9904c, ``sam_jax/training_utils/flax_training.py``). Setting
``momentum = 0`` freezes the running statistics while the layer still normalises with batch
statistics (do not switch to eval mode). Unlike the davda54 helper, the batch counter
``num_batches_tracked`` is restored as well, so a layer built with ``momentum=None`` (cumulative
average) also counts one batch per SAM step.
"""

from __future__ import annotations

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

_BACKUP = "_sampy_bn_backup"


def disable_running_stats(model: nn.Module) -> None:
    """Freeze the running statistics of every BatchNorm layer (call before the second pass)."""
    for module in model.modules():
        if isinstance(module, _BatchNorm) and not hasattr(module, _BACKUP):
            tracked = module.num_batches_tracked
            setattr(
                module, _BACKUP, (module.momentum, None if tracked is None else tracked.clone())
            )
            module.momentum = 0.0


def enable_running_stats(model: nn.Module) -> None:
    """Undo ``disable_running_stats`` (call after the second pass)."""
    for module in model.modules():
        if isinstance(module, _BatchNorm) and hasattr(module, _BACKUP):
            momentum, tracked = getattr(module, _BACKUP)
            module.momentum = momentum
            if tracked is not None:
                module.num_batches_tracked.copy_(tracked)
            delattr(module, _BACKUP)
