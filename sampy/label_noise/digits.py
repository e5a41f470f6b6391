"""Label noise on real data: scikit-learn's handwritten digits, a small MLP, the torch twins.

The 1,797 8×8 digit images that ship with scikit-learn (``sklearn.datasets.load_digits``; no
download) are split once (a NumPy generator seeded with 0) into 70 % training and 30 % test
images. A fraction of the training labels is replaced by a different class drawn uniformly
(symmetric noise, ``symmetric_label_noise``); the test labels stay clean. A 64-``hidden``-10
ReLU MLP is trained from a seeded initialisation with mini-batches, and each method is one of
the torch twins:

- ``SGD``: ``torch.optim.SGD`` (momentum);
- ``SAM``, ``ASAM``: ``sampy.torch.SAM`` (``adaptive=True`` for ASAM);
- ``GSAM``: ``sampy.torch.GSAM``;
- ``1-SAM``, ``logit-SAM``, ``J-SAM``: ``sampy.torch.jsam.PerExampleSAM`` with
  ``mode="1-sam"``, ``LogitSAM``, ``JSAM`` (one perturbation per example of the mini-batch;
  cross-entropy, our multi-class reading of Baek et al.'s logit/Jacobian split).

Every method has the same base (SGD with momentum, the same learning rate and batches). After
every epoch the clean test accuracy is recorded; at the end, the fraction of noisy training
labels the network reproduces (memorised) and the sharpness of the final solution: the top
eigenvalue of the Hessian of the training loss (on the noisy labels the network was trained
on), from Hessian-vector products and ARPACK (``sampy.label_noise.hessian``).

``run_experiment`` returns plain data (JSON): the configuration, every run, and the summary
table. ``scripts/label_noise_digits.py`` is the command line; the book reads its cached JSON.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from sampy.label_noise.data import symmetric_label_noise
from sampy.label_noise.hessian import top_hessian_eigenvalue

__all__ = [
    "DEFAULT",
    "FULL",
    "DigitsConfig",
    "DigitsData",
    "Progress",
    "load_digits_data",
    "load_or_run",
    "load_results",
    "make_mlp",
    "make_optimizer",
    "run_experiment",
    "save_results",
    "summarize",
    "table_rows",
    "train_one",
]

METHODS = ("SGD", "SAM", "ASAM", "GSAM", "1-SAM", "logit-SAM", "J-SAM")
PER_EXAMPLE = {"1-SAM": "1-sam", "logit-SAM": "logit", "J-SAM": "jacobian"}


@dataclass(frozen=True)
class DigitsConfig:
    """Everything one digits experiment depends on (saved with its results).

    Attributes:
        noise_levels: fractions of training labels replaced by another class.
        seeds: one run per seed (label-noise draw, initialisation and batch order).
        methods: names from ``METHODS``.
        hidden: width of the MLP's hidden layer.
        epochs: passes over the training set.
        batch_size: mini-batch size.
        lr, momentum: the SGD base shared by every method.
        rho: radius per method (SAM-type methods only).
        gsam_alpha: GSAM's α.
        test_fraction: share of the 1,797 images held out as the clean test set.
        threads: torch threads during the experiment (the machine's default is restored).
    """

    noise_levels: tuple[float, ...] = (0.0, 0.2, 0.4)
    seeds: tuple[int, ...] = (0, 1, 2)
    methods: tuple[str, ...] = METHODS
    hidden: int = 64
    epochs: int = 40
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    rho: dict[str, float] = field(
        default_factory=lambda: {
            "SAM": 0.05,
            "ASAM": 0.5,
            "GSAM": 0.05,
            "1-SAM": 0.05,
            "logit-SAM": 0.05,
            "J-SAM": 0.05,
        }
    )
    gsam_alpha: float = 0.1
    test_fraction: float = 0.3
    threads: int = 1

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"methods must be among {list(METHODS)}, got {unknown}")
        for level in self.noise_levels:
            if not 0.0 <= level <= 0.9:
                raise ValueError(f"noise_levels must lie in [0, 0.9], got {level!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.hidden < 1 or self.threads < 1:
            raise ValueError("epochs, batch_size, hidden and threads must be >= 1")

    def as_dict(self) -> dict[str, Any]:
        """Plain data (tuples become lists in JSON)."""
        return asdict(self)


DEFAULT = DigitsConfig()
FULL = DigitsConfig(seeds=(0, 1, 2, 3, 4), epochs=100)


@dataclass(frozen=True)
class DigitsData:
    """The fixed train/test split of the digits, as float32 tensors and int64 labels."""

    train_inputs: Tensor
    train_labels: Tensor
    test_inputs: Tensor
    test_labels: Tensor


def load_digits_data(test_fraction: float = 0.3, split_seed: int = 0) -> DigitsData:
    """scikit-learn's bundled digits, pixels scaled to [0, 1], split once (seeded)."""
    from sklearn.datasets import load_digits  # deferred: only this experiment needs it

    digits = load_digits()
    inputs = digits.data.astype(np.float32) / 16.0
    labels = digits.target.astype(np.int64)
    order = np.random.default_rng(split_seed).permutation(labels.size)
    n_test = round(test_fraction * labels.size)
    test, train = order[:n_test], order[n_test:]
    return DigitsData(
        torch.from_numpy(inputs[train]),
        torch.from_numpy(labels[train]),
        torch.from_numpy(inputs[test]),
        torch.from_numpy(labels[test]),
    )


def make_mlp(hidden: int, seed: int, inputs: int = 64, classes: int = 10) -> torch.nn.Module:
    """A seeded ``inputs``-``hidden``-``classes`` ReLU MLP (PyTorch's default initialisation)."""
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        return torch.nn.Sequential(
            torch.nn.Linear(inputs, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, classes)
        )
    finally:
        torch.random.set_rng_state(gen_state)


def make_optimizer(
    name: str, model: torch.nn.Module, config: DigitsConfig
) -> torch.optim.Optimizer:
    """The torch optimizer called ``name`` for ``model``, with the configuration's knobs."""
    from sampy.torch import GSAM, SAM
    from sampy.torch.jsam import PerExampleSAM

    base = dict(lr=config.lr, momentum=config.momentum)
    params = model.parameters()
    if name == "SGD":
        return torch.optim.SGD(params, **base)
    rho = config.rho[name]
    if name in ("SAM", "ASAM"):
        return SAM(params, torch.optim.SGD, rho=rho, adaptive=name == "ASAM", **base)
    if name == "GSAM":
        return GSAM(params, torch.optim.SGD, rho=rho, alpha=config.gsam_alpha, **base)
    if name in PER_EXAMPLE:
        return PerExampleSAM(params, torch.optim.SGD, rho=rho, mode=PER_EXAMPLE[name], **base)
    raise ValueError(f"unknown method {name!r}; choose one of {list(METHODS)}")


def _accuracy(model: torch.nn.Module, inputs: Tensor, labels: Tensor) -> float:
    with torch.no_grad():
        return float((model(inputs).argmax(dim=1) == labels).float().mean())


def train_one(
    method: str, noise: float, seed: int, config: DigitsConfig, data: DigitsData
) -> dict[str, Any]:
    """Train one network; returns its record (plain data).

    Keys: ``method``, ``noise``, ``seed``, ``test_accuracy`` (per epoch, clean labels, epoch 0 =
    the initialisation), ``best_accuracy``/``best_epoch`` (the best early-stopping point),
    ``final_accuracy``, ``memorised`` (share of the noisy training labels the final network
    reproduces; NaN without noise), ``clean_fit``, ``sharpness`` (top Hessian eigenvalue of
    the final training loss; NaN if ARPACK fails), ``diverged`` (a non-finite loss stopped the
    run), ``seconds``.
    """
    from sampy.torch.jsam import functional_forward

    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    clean = data.train_labels.numpy()
    noisy = torch.from_numpy(symmetric_label_noise(clean, 10, noise, rng))
    wrong = noisy.numpy() != clean
    model = make_mlp(config.hidden, seed)
    opt = make_optimizer(method, model, config)
    forward = functional_forward(model) if method in PER_EXAMPLE else None
    gen = torch.Generator().manual_seed(seed)
    n = noisy.numel()
    curve = [_accuracy(model, data.test_inputs, data.test_labels)]
    diverged = False
    for _ in range(config.epochs):
        for idx in torch.randperm(n, generator=gen).split(config.batch_size):
            x, y = data.train_inputs[idx], noisy[idx]
            if forward is not None:
                loss = opt.step(forward, x, y)
            elif method == "SGD":
                opt.zero_grad()
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                opt.step()
            else:

                def closure(x=x, y=y) -> Tensor:
                    opt.zero_grad()
                    value = F.cross_entropy(model(x), y)
                    value.backward()
                    return value

                loss = opt.step(closure)
            if not torch.isfinite(loss):
                diverged = True
                break
        curve.append(_accuracy(model, data.test_inputs, data.test_labels))
        if diverged:
            break
    with torch.no_grad():
        predicted = model(data.train_inputs).argmax(dim=1).numpy()
    best = int(np.argmax(curve))
    sharpness = (
        float("nan")
        if diverged
        else top_hessian_eigenvalue(model, F.cross_entropy, data.train_inputs, noisy)
    )
    curve = [round(a, 6) for a in curve]  # fractions of 539 test images: 6 digits are exact
    memorised = (
        float((predicted[wrong] == noisy.numpy()[wrong]).mean()) if wrong.any() else math.nan
    )
    return {
        "method": method,
        "noise": noise,
        "seed": seed,
        "test_accuracy": curve,
        "best_accuracy": curve[best],
        "best_epoch": best,
        "final_accuracy": curve[-1],
        "memorised": round(memorised, 6),
        "clean_fit": round(float((predicted[~wrong] == clean[~wrong]).mean()), 6),
        "sharpness": float(f"{sharpness:.6g}"),
        "diverged": diverged,
        "seconds": round(time.perf_counter() - start, 2),
    }


class Progress:
    """A one-line progress bar on ``stream`` (stderr): done/total, elapsed, estimated rest."""

    def __init__(self, total: int, stream: TextIO | None = None, width: int = 30) -> None:
        self.total = max(int(total), 1)
        self.stream = sys.stderr if stream is None else stream
        self.width = width
        self.done = 0
        self.start = time.perf_counter()

    def update(self, label: str = "") -> None:
        """One more item finished; redraw the line."""
        self.done += 1
        elapsed = time.perf_counter() - self.start
        rest = elapsed / self.done * (self.total - self.done)
        filled = round(self.width * self.done / self.total)
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(
            f"\r[{bar}] {self.done}/{self.total} {elapsed:5.0f}s elapsed, ~{rest:4.0f}s left "
            f"{label:<28}"
        )
        if self.done == self.total:
            self.stream.write("\n")
        self.stream.flush()


def _runs(config: DigitsConfig) -> Iterator[tuple[float, int, str]]:
    for noise in config.noise_levels:
        for seed in config.seeds:
            for method in config.methods:
                yield noise, seed, method


def run_experiment(
    config: DigitsConfig = DEFAULT,
    *,
    progress: bool = True,
    stream: TextIO | None = None,
    data: DigitsData | None = None,
) -> dict[str, Any]:
    """Every (noise level, seed, method) run of ``config``; returns JSON-able results."""
    data = load_digits_data(config.test_fraction) if data is None else data
    jobs = list(_runs(config))
    bar = Progress(len(jobs), stream) if progress else None
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    start = time.perf_counter()
    try:
        runs = []
        for noise, seed, method in jobs:
            runs.append(train_one(method, noise, seed, config, data))
            if bar is not None:
                bar.update(f"{method}, {noise:.0%} noise, seed {seed}")
    finally:
        torch.set_num_threads(threads)
    return {
        "config": config.as_dict(),
        "data": {
            "train": int(data.train_labels.numel()),
            "test": int(data.test_labels.numel()),
        },
        "torch": torch.__version__,
        "seconds": time.perf_counter() - start,
        "runs": runs,
        "summary": summarize(runs),
    }


def _mean_std(values: Iterable[float]) -> tuple[float, float]:
    arr = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    if arr.size == 0:
        return float("nan"), float("nan")
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


def summarize(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (noise, method): mean and standard deviation over the seeds of the best
    (early-stopped) and final clean test accuracy, memorisation and sharpness."""
    rows = []
    keys = sorted({(r["noise"], r["method"]) for r in runs}, key=lambda k: k[0])
    order = {m: i for i, m in enumerate(METHODS)}
    keys.sort(key=lambda k: (k[0], order.get(k[1], len(order))))
    for noise, method in keys:
        group = [r for r in runs if r["noise"] == noise and r["method"] == method]
        row: dict[str, Any] = {"noise": noise, "method": method, "seeds": len(group)}
        for key in ("best_accuracy", "final_accuracy", "memorised", "sharpness"):
            row[key], row[f"{key}_std"] = _mean_std(r[key] for r in group)
        row["diverged"] = sum(bool(r["diverged"]) for r in group)
        rows.append(row)
    return rows


def table_rows(
    summary: Sequence[dict[str, Any]], fmt: Callable[[float, float], str] | None = None
) -> list[list[str]]:
    """The summary as text cells: method, noise, best, final, memorised, sharpness."""
    fmt = fmt or (lambda m, s: f"{m:.3f} ± {s:.3f}")
    out = []
    for row in summary:
        memorised = row["memorised"]
        out.append(
            [
                row["method"],
                f"{row['noise']:.0%}",
                fmt(row["best_accuracy"], row["best_accuracy_std"]),
                fmt(row["final_accuracy"], row["final_accuracy_std"]),
                "—" if math.isnan(memorised) else fmt(memorised, row["memorised_std"]),
                f"{row['sharpness']:.1f} ± {row['sharpness_std']:.1f}",
            ]
        )
    return out


def _plain(value: Any) -> Any:
    """JSON-safe: NaN and infinities become None, tuples lists, NumPy scalars numbers."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _unplain(value: Any) -> Any:
    """Back from JSON: None inside numeric records becomes NaN."""
    if isinstance(value, dict):
        return {k: (math.nan if v is None else _unplain(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [math.nan if v is None else _unplain(v) for v in value]
    return value


def save_results(results: dict[str, Any], path: str | Path) -> Path:
    """Write ``results`` as JSON (strict: NaN is written as null)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    plain = _plain(results)
    # One line per top-level key and per run or summary row: small, and diffs stay readable.
    lines = []
    for key, value in plain.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            rows = ",\n  ".join(json.dumps(row, allow_nan=False) for row in value)
            lines.append(f"{json.dumps(key)}: [\n  {rows}\n ]")
        else:
            lines.append(f"{json.dumps(key)}: {json.dumps(value, allow_nan=False)}")
    path.write_text("{\n " + ",\n ".join(lines) + "\n}\n")
    return path


def load_results(path: str | Path) -> dict[str, Any]:
    """Read results written by ``save_results`` (null back to NaN)."""
    return _unplain(json.loads(Path(path).read_text()))


def load_or_run(
    path: str | Path, config: DigitsConfig = DEFAULT, *, progress: bool = True
) -> dict[str, Any]:
    """The cached results at ``path`` if they were made with ``config``; otherwise run the
    experiment and cache it there."""
    path = Path(path)
    if path.is_file():
        cached = load_results(path)
        if cached.get("config") == _unplain(_plain(config.as_dict())):
            return cached
    results = run_experiment(config, progress=progress)
    save_results(results, path)
    return load_results(path)
