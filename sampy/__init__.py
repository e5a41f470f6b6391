"""sampy: Sharpness-Aware Minimization, derived, implemented twice and explored.

- ``sampy.functions``: batched test functions with known minima;
- ``sampy.optim``: the NumPy reference optimizers (SGD, Adam, AdamW, SAM/ASAM/p-norm SAM);
- ``sampy.run``: trajectories from many start points at once;
- ``sampy.torch``: the torch twins (``import sampy.torch``; needs PyTorch).
"""

from sampy import functions, optim
from sampy.run import Trajectory, run

__version__ = "0.1.0"

__all__ = ["Trajectory", "__version__", "functions", "optim", "run"]
