"""Early stopping under label noise on the synthetic problems: SGD against the SAM family.

Every run uses the NumPy reference optimizers of ``sampy.optim`` on one seeded data set
(``make_noisy_binary_data``) and records, at every step, the **clean test accuracy** and how
much of the training set is fit (clean examples fit to their label, flipped examples fit to
their wrong label, i.e. memorised). The "best early-stopping point" of a run is the step with
the highest clean test accuracy — what an oracle that stops training at the right moment gets
(Baek et al. compare methods this way: under label noise the peak comes long before the loss
converges).

The methods (``METHODS``), all full batch on the ``n`` training examples with plain gradient
descent as the base:

- ``SGD``: gradient descent (the paper's SGD; here the batch is the whole training set);
- ``SAM``: SAM with one perturbation for the whole batch (``sampy.optim.SAM``, n-SAM);
- ``1-SAM``: one perturbation per example (``sampy.optim.MSharpnessSAM`` with ``m = 1``);
- ``logit-SAM`` / ``J-SAM``: 1-SAM with only the logit scale / only the Jacobian perturbed
  (``sampy.optim.LogitSAM`` / ``sampy.optim.JSAM``).

Both models start from a seeded random point (``Setting.init_scale``): the DLN must (the origin
is a saddle), and for the linear model a random start is what makes the path to the peak long
enough to be shaped by the reweighting — from ``w = 0`` all margins are 0, so the first 1-SAM
step differs from SGD's only through the norms ``‖x_i‖``, and on this isotropic data that first
direction (the difference of the class means) is already the best the linear model reaches.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

from sampy.dln import DeepLinearNetwork
from sampy.label_noise.data import NoisyBinaryData, make_noisy_binary_data
from sampy.label_noise.reweighting import one_sam_weights
from sampy.optim import SAM, SGD, MSharpnessSAM, Optimizer
from sampy.optim.jsam import JSAM, LogitSAM
from sampy.problems import LogisticRegression
from sampy.run import run

__all__ = [
    "DLN_SETTING",
    "LINEAR_SETTING",
    "METHODS",
    "Curves",
    "Setting",
    "best_accuracies",
    "best_early_stopping",
    "clean_and_noisy_weights",
    "make_optimizer",
    "run_method",
    "start_point",
]

METHODS = ("SGD", "SAM", "1-SAM", "logit-SAM", "J-SAM")


@dataclass(frozen=True)
class Setting:
    """One synthetic experiment: the data, the model, the optimizers' knobs, the run length.

    Attributes:
        model: ``"linear"`` or ``"dln"``.
        n, dim, separation, n_test: the data (``make_noisy_binary_data``).
        hidden: width of the DLN's hidden layer.
        lr: learning rate of every method's gradient-descent base.
        rho: radius of the per-example perturbations (1-SAM, logit-SAM, J-SAM).
        rho_sam: radius of SAM's one perturbation for the whole batch.
        init_scale: the random start's scale (linear: ``w ~ N(0, init_scale²/p)``; DLN: see
            ``DeepLinearNetwork.init``).
        steps: steps per run.
    """

    model: str = "linear"
    n: int = 120
    dim: int = 60
    separation: float = 1.5
    n_test: int = 2000
    hidden: int = 8
    lr: float = 0.1
    rho: float = 0.2
    rho_sam: float = 0.2
    init_scale: float = 1.0
    steps: int = 150

    def __post_init__(self) -> None:
        if self.model not in ("linear", "dln"):
            raise ValueError(f"model must be 'linear' or 'dln', got {self.model!r}")

    def data(self, noise: float, seed: int) -> NoisyBinaryData:
        """The seeded data set of this setting with a fraction ``noise`` of flipped labels."""
        return make_noisy_binary_data(
            n=self.n,
            dim=self.dim,
            noise=noise,
            separation=self.separation,
            n_test=self.n_test,
            seed=seed,
        )

    def problem(self, data: NoisyBinaryData) -> LogisticRegression | DeepLinearNetwork:
        """The training problem of this setting's model on ``data``."""
        return data.linear() if self.model == "linear" else data.dln(self.hidden)

    def as_dict(self) -> dict:
        """The setting as plain data (for reports)."""
        return asdict(self)

    def with_(self, **changes: object) -> Setting:
        """A copy with some fields changed."""
        return replace(self, **changes)


# Chosen once on seeds outside the tests' range (100+), then frozen; see book/label_noise.md.
LINEAR_SETTING = Setting(model="linear", lr=0.1, rho=0.2, rho_sam=0.2, init_scale=1.0, steps=100)
DLN_SETTING = Setting(
    model="dln", hidden=8, lr=0.05, rho=0.05, rho_sam=0.05, init_scale=0.5, steps=100
)


def make_optimizer(name: str, setting: Setting) -> Optimizer:
    """The reference optimizer called ``name`` (one of ``METHODS``) with the setting's knobs."""
    base = SGD(lr=setting.lr)
    makers = {
        "SGD": lambda: base,
        "SAM": lambda: SAM(base, rho=setting.rho_sam),
        "1-SAM": lambda: MSharpnessSAM(base, rho=setting.rho, m=1),
        "logit-SAM": lambda: LogitSAM(base, rho=setting.rho),
        "J-SAM": lambda: JSAM(base, rho=setting.rho),
    }
    if name not in makers:
        raise ValueError(f"unknown method {name!r}; choose one of {list(makers)}")
    return makers[name]()


def start_point(setting: Setting, problem, seed: int) -> np.ndarray:
    """The seeded random start of a run (the same for every method of one seed)."""
    if isinstance(problem, DeepLinearNetwork):
        return problem.init(scale=setting.init_scale, seed=10_000 + seed)
    rng = np.random.default_rng(10_000 + seed)
    return setting.init_scale / np.sqrt(problem.dim) * rng.standard_normal(problem.dim)


def _predict(problem, xs: np.ndarray, inputs: np.ndarray) -> np.ndarray:
    if isinstance(problem, DeepLinearNetwork):
        return problem.predict(xs, inputs)
    return xs @ inputs.T


@dataclass(frozen=True)
class Curves:
    """What one run did, step by step (arrays of shape ``(steps + 1,)``).

    Attributes:
        method: the method's name.
        xs: the trajectory, shape ``(steps + 1, d)``.
        test_accuracy: clean test accuracy.
        clean_fit: fraction of the clean training examples whose label the model predicts.
        noisy_fit: fraction of the flipped training examples whose *wrong* label the model
            predicts (memorised).
        diverged: did the run leave the bounded region (``sampy.run``)?
    """

    method: str
    xs: np.ndarray
    test_accuracy: np.ndarray
    clean_fit: np.ndarray
    noisy_fit: np.ndarray
    diverged: bool


def run_method(
    name: str, setting: Setting, noise: float, seed: int, data: NoisyBinaryData | None = None
) -> Curves:
    """Run method ``name`` on the setting's data for ``setting.steps`` steps."""
    data = setting.data(noise, seed) if data is None else data
    problem = setting.problem(data)
    x0 = start_point(setting, problem, seed)
    traj = run(make_optimizer(name, setting), problem, x0, setting.steps)
    with np.errstate(all="ignore"):
        test = np.sign(_predict(problem, traj.xs, data.test_features)) == data.test_labels
        fit = np.sign(_predict(problem, traj.xs, data.features)) == data.labels
    flipped = data.flipped
    noisy_fit = fit[:, flipped].mean(axis=1) if flipped.any() else np.zeros(len(fit))
    return Curves(
        method=name,
        xs=traj.xs,
        test_accuracy=test.mean(axis=1),
        clean_fit=fit[:, ~flipped].mean(axis=1),
        noisy_fit=noisy_fit,
        diverged=bool(traj.diverged),
    )


def best_early_stopping(curves: Curves) -> tuple[float, int]:
    """``(accuracy, step)`` of the run's best clean test accuracy (the first such step)."""
    step = int(np.argmax(curves.test_accuracy))
    return float(curves.test_accuracy[step]), step


def best_accuracies(
    setting: Setting, noise: float, seeds: Iterable[int], methods: Sequence[str] = METHODS
) -> dict[str, np.ndarray]:
    """The best early-stopping clean test accuracy of every method on every seed:
    ``{method: array of shape (len(seeds),)}`` (all methods of one seed share data and start)."""
    out: dict[str, list[float]] = {m: [] for m in methods}
    for seed in seeds:
        data = setting.data(noise, seed)
        for m in methods:
            out[m].append(best_early_stopping(run_method(m, setting, noise, seed, data))[0])
    return {m: np.asarray(v) for m, v in out.items()}


def clean_and_noisy_weights(
    data: NoisyBinaryData, xs: np.ndarray, rho: float
) -> tuple[np.ndarray, np.ndarray]:
    """Mean Lemma 3.1 weight of the clean and of the flipped examples at every point of a
    linear-model trajectory ``xs`` (``(steps + 1, d)``): two arrays of shape ``(steps + 1,)``."""
    weights = one_sam_weights(data.linear(), xs, rho)
    flipped = data.flipped
    return weights[:, ~flipped].mean(axis=1), weights[:, flipped].mean(axis=1)
