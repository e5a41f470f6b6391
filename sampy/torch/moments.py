"""Adam's moment estimates over lists of tensors, in place (the official order of operations).

Shared by the twins with a built-in Adam-type base (``AdamWMSAM``, ``ScheduleFreeAdamW``, the
Momentum-SAM schedule-free pair), whose float64 trajectories must match their references bit
for bit: each helper is the exact sequence of ``torch._foreach_*`` calls they used.
"""

from __future__ import annotations

import torch
from torch import Tensor


def ema_of_squares_(vs: list[Tensor], grads: list[Tensor], beta2: float) -> None:
    """``v ← β₂ v + (1 − β₂) g²`` (Adam's second moment)."""
    torch._foreach_mul_(vs, beta2)
    torch._foreach_addcmul_(vs, grads, grads, value=1.0 - beta2)
