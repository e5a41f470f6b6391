"""sampy: Sharpness-Aware Minimization, derived, implemented twice and explored.

- ``sampy.functions``: batched test functions with known minima;
- ``sampy.optim``: the NumPy reference optimizers (SGD, Adam, AdamW and the SAM family);
- ``sampy.variants()``: the table of SAM variants (paper, rules, cost, hyperparameters);
- ``sampy.run``: trajectories from many start points at once;
- ``sampy.torch``: the torch twins (``import sampy.torch``; needs PyTorch).
"""

from sampy import functions, optim, problems
from sampy.registry import Variant, hyperparameters_html, table_html, variant, variants
from sampy.run import Trajectory, run

__version__ = "0.1.0"

__all__ = [
    "Trajectory",
    "Variant",
    "__version__",
    "functions",
    "hyperparameters_html",
    "optim",
    "problems",
    "run",
    "table_html",
    "variant",
    "variants",
]
