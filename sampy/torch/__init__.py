"""Torch twins of the ``sampy.optim`` reference optimizers (needs PyTorch)."""

from sampy.torch.batchnorm import disable_running_stats, enable_running_stats
from sampy.torch.functional import as_torch_loss
from sampy.torch.sam import SAM

__all__ = ["SAM", "as_torch_loss", "disable_running_stats", "enable_running_stats"]
