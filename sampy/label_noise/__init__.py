"""Why SAM is robust to label noise: the pieces of the book's chapter ``book/label_noise.md``.

C. Baek, Z. Kolter, A. Raghunathan, "Why is SAM Robust to Label Noise?", ICLR 2024,
arXiv:2405.03676; M. Andriushchenko, N. Flammarion, "Towards Understanding Sharpness-Aware
Minimization", ICML 2022, arXiv:2206.06232.

- ``data``: binary Gaussian data with flipped labels; symmetric noise for class labels;
- ``reweighting``: Lemma 3.1 (1-SAM reweights the linear model's examples);
- ``synthetic``: early stopping under label noise on the linear model and the 2-layer deep
  linear network (``sampy.dln``), with the NumPy reference optimizers;
- ``digits`` (needs torch and scikit-learn): the real-data experiment with the torch twins;
- ``hessian`` (needs torch and scipy): the top Hessian eigenvalue of a torch model.

The optimizers are ``sampy.optim.MSharpnessSAM`` (``m = 1``: 1-SAM), ``sampy.optim.jsam``
(``LogitSAM``, ``JSAM``) and their torch twins in ``sampy.torch.jsam``; the closed forms of
Proposition 4.1 live with the network in ``sampy.dln``.
"""

from sampy.label_noise.data import (
    NoisyBinaryData,
    NoisyLogisticRegression,
    make_noisy_binary_data,
    symmetric_label_noise,
)
from sampy.label_noise.reweighting import (
    measured_one_sam_weights,
    one_sam_weights,
    reweighting_factor,
    reweighting_factor_derivative,
)

__all__ = [
    "NoisyBinaryData",
    "NoisyLogisticRegression",
    "make_noisy_binary_data",
    "measured_one_sam_weights",
    "one_sam_weights",
    "reweighting_factor",
    "reweighting_factor_derivative",
    "symmetric_label_noise",
]
