"""Shared helpers: interleaved timing, medians, result tables and the machine header.

Every speed claim is a ratio against a baseline timed in the same process, in the same
rounds: in each round every implementation runs once (in a rotating order), and the medians
over the rounds are compared. On a shared, noisy machine absolute times drift by tens of
percent from one minute to the next; such interleaved ratios drift by a few percent.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field


def interleaved(
    candidates: dict[str, Callable[[], object]],
    rounds: int,
    warmup: int = 1,
    max_seconds: float | None = None,
    min_rounds: int = 5,
) -> dict[str, list[float]]:
    """Seconds per call of every candidate, ``rounds`` times each, interleaved.

    Round ``r`` calls every candidate once, starting at a different one each round, so slow
    phases of a noisy machine hit all of them alike. ``warmup`` untimed rounds go first.
    With ``max_seconds``, stop early once that much time has passed and ``min_rounds`` are
    done (a busy machine then gets fewer rounds rather than an endless benchmark).
    """
    names = list(candidates)
    for _ in range(warmup):
        for name in names:
            candidates[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    clock = time.perf_counter
    began = clock()
    for r in range(rounds):
        if max_seconds is not None and r >= min_rounds and clock() - began > max_seconds:
            break
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            fn = candidates[name]
            start = clock()
            fn()
            times[name].append(clock() - start)
    return times


def median(values: list[float]) -> float:
    """The median (robust against the slow outliers a shared machine produces)."""
    return statistics.median(values)


def spread(values: list[float]) -> str:
    """Interquartile range relative to the median, e.g. ``"±4%"``: how noisy a number was."""
    if len(values) < 4:
        return ""
    q1, _, q3 = statistics.quantiles(values, n=4)
    return f"±{50 * (q3 - q1) / statistics.median(values):.0f}%"


def noisy(*samples: list[float], threshold: float = 0.15) -> bool:
    """True if any sample's ``±x%`` (half its interquartile range) exceeds ``threshold``."""
    for values in samples:
        if len(values) >= 4:
            q1, _, q3 = statistics.quantiles(values, n=4)
            if (q3 - q1) / 2 > threshold * statistics.median(values):
                return True
    return False


NOISY = (
    "WARNING: the machine was busy during these rounds (a ±x% above 15%); the ratios are "
    "uncertain, rerun when it is idle"
)


def rate(value: float) -> str:
    """A rate in point-steps per second, with a unit prefix."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}/s"
    return f"{value:.3g} /s"


def ms(seconds: float) -> str:
    """Seconds as milliseconds, 3 significant digits."""
    return f"{seconds * 1e3:.3g} ms"


def _ratio(value: float) -> str:
    """Three decimals, or three significant digits for small ratios (0.000487)."""
    return f"{value:.3f}" if value >= 0.1 else f"{value:.3g}"


def cell(*parts: str) -> str:
    """Non-empty parts joined by one space."""
    return " ".join(p for p in parts if p)


@dataclass
class Row:
    """One line of a result table; ``met`` is None where the row states no goal."""

    name: str
    measurement: str
    baseline: str
    ratio: float | None
    goal: str = ""
    met: bool | None = None

    def ratio_text(self) -> str:
        """The ratio as printed, or the measurement where the row has no ratio."""
        return self.measurement if self.ratio is None else _ratio(self.ratio)


@dataclass
class Table:
    """A titled table of rows, with free-text notes printed under it."""

    title: str
    short: str = ""  # a few words naming the table in the summary
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *args, **kwargs) -> Row:
        row = Row(*args, **kwargs)
        self.rows.append(row)
        return row

    def render(self) -> str:
        header = ("name", "measurement", "baseline", "ratio", "goal", "met?")
        cells = [header]
        for r in self.rows:
            met = "" if r.met is None else ("yes" if r.met else "NO")
            ratio = "" if r.ratio is None else _ratio(r.ratio)
            cells.append((r.name, r.measurement, r.baseline, ratio, r.goal, met))
        widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
        right = {3}

        def line(row: tuple[str, ...]) -> str:
            parts = [
                c.rjust(w) if i in right else c.ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            ]
            return "  ".join(parts).rstrip()

        rule = "-" * len(line(header))
        out = [f"\n{self.title}", rule, line(header), rule]
        out += [line(row) for row in cells[1:]]
        out.append(rule)
        out += [f"  {note}" for note in self.notes]
        return "\n".join(out)

    def print(self) -> None:
        print(self.render(), flush=True)

    def goals(self) -> list[tuple[str, Row]]:
        """The rows that state a goal, with the table's short name."""
        return [(self.short or self.title, r) for r in self.rows if r.met is not None]

    @property
    def busy(self) -> bool:
        """Whether the table carries the busy-machine warning."""
        return NOISY in self.notes


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load() -> str:
    """The 1/5/15-minute load averages (other work on the machine makes numbers noisier)."""
    try:
        return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "load average unknown"


def machine_info() -> str:
    """Cores, threads and versions, printed at the top of every run."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    lines = [
        f"machine: {_cpu_model()}; {os.cpu_count()} logical cores, {usable} usable by this "
        f"process; {load()}",
        f"python {platform.python_version()} ({platform.system()} {platform.machine()}); "
        + ", ".join(
            f"{d} {_version(d)}"
            for d in ("sampy", "numpy", "autograd", "torch", "pytorch-optimizer", "matplotlib")
        ),
    ]
    try:
        import torch

        lines.append(
            f"torch: {torch.get_num_threads()} intra-op threads by default, "
            f"{torch.get_num_interop_threads()} inter-op; CUDA available: "
            f"{torch.cuda.is_available()}"
        )
    except ImportError:
        lines.append("torch: not installed")
    return "\n".join(lines)


def usable_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class OpenBLASThreads:
    """Set NumPy's OpenBLAS thread count in-process (for diagnostics), if it can be found.

    NumPy's wheels bundle OpenBLAS (``scipy_openblas``) with its own thread pool; a BLAS call
    on a long vector (``np.vdot`` above 10,000 elements) is split over threads. This finds the
    loaded library in ``/proc/self/maps`` and calls its ``*_set_num_threads*`` function.
    ``available`` is False where that is not possible (no OpenBLAS, another OS).
    """

    _SETTERS = (
        "scipy_openblas_set_num_threads64_",
        "openblas_set_num_threads64_",
        "openblas_set_num_threads",
    )
    _GETTERS = (
        "scipy_openblas_get_num_threads64_",
        "openblas_get_num_threads64_",
        "openblas_get_num_threads",
    )

    def __init__(self) -> None:
        import ctypes

        import numpy  # noqa: F401  (loads the library)

        self._set = self._get = None
        try:
            with open("/proc/self/maps") as fh:
                paths = {line.split()[-1] for line in fh if "openblas" in line.lower()}
        except OSError:
            paths = set()
        for path in sorted(paths):
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            setter = next((getattr(lib, n) for n in self._SETTERS if hasattr(lib, n)), None)
            getter = next((getattr(lib, n) for n in self._GETTERS if hasattr(lib, n)), None)
            if setter is not None and getter is not None:
                setter.argtypes = [ctypes.c_int]
                self._set, self._get = setter, getter
                break

    @property
    def available(self) -> bool:
        return self._set is not None

    def get(self) -> int:
        return int(self._get()) if self._get is not None else 0

    def set(self, n: int) -> None:
        if self._set is not None:
            self._set(n)
