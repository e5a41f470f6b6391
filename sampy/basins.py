"""Basins of attraction: which minimum does an optimizer reach from each start point?

A grid of start points (100 × 100 by default) over a 2-D function's domain moves in one
vectorised ``sampy.run``; each end point is then classified:

- the index of the reference minimum it ended within ``tol`` of (the nearest one);
- ``NONE`` (-1): it ended near none of them (not converged yet, a local minimum that is not
  in the list, a plateau);
- ``DIVERGED`` (-2): the run diverged (a non-finite point, or one past the run's bound).

The reference minima are the function's known minima (``f.minima``), or those passed as
``minima``. For a function without known minima (a typed expression) they are found by
clustering the end points of the runs that did not diverge: take the end point with the
lowest loss, make it a basin's centre and give it every end point within ``tol``; repeat on
what is left, up to ``max_basins`` basins (what remains after that is ``NONE``). Lowest loss
first, so that the deepest points become centres and the points still wandering on a slope,
whose loss is higher, join a basin rather than found one; a group of fewer than
``MIN_BASIN_FRACTION`` (0.5%) of the end points, or a lone point, is a run still on its way,
not a basin, and stays ``NONE``. Simple on purpose: it needs no step-size or gradient scale,
but a slow run that stops within ``tol`` of others far from any minimum can still found a
"basin" of its own.

``tol`` defaults to 5% of the diagonal of the grid's box, the rule the explorer uses to say
"near the minimum".

>>> from sampy.optim import SAM, SGD
>>> sgd, sam = compare_basins(SGD(lr=0.02), SAM(SGD(lr=0.02), rho=0.1), "sharp_flat",
...                           grid=(20, 20), steps=300)
>>> sam.fraction("flat") > sgd.fraction("flat")
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sampy import functions
from sampy._checks import check_int
from sampy.functions import TestFunction
from sampy.optim.base import Optimizer
from sampy.run import run

__all__ = [
    "DIVERGED",
    "NONE",
    "BasinMap",
    "basin_map",
    "classify",
    "cluster_minima",
    "compare_basins",
    "plot_basins",
    "start_grid",
]

NONE = -1
DIVERGED = -2
MAX_BASINS = 10
MIN_BASIN_FRACTION = 0.005

Bounds = tuple[tuple[float, float], tuple[float, float]]


@dataclass(frozen=True, eq=False)
class BasinMap:
    """Where every start point of a grid ended. Plain data; ``plot_basins`` draws it.

    Attributes:
        function: the name of the function.
        optimizer: the name of the optimizer (e.g. ``"SAM"``).
        xs, ys: the grid's coordinates, shapes ``(nx,)`` and ``(ny,)``.
        starts: the start points, shape ``(ny, nx, 2)`` (``starts[j, i] = (xs[i], ys[j])``,
            image layout: row ``j`` is one y).
        final: the end points, shape ``(ny, nx, 2)``; a diverged run's last good point.
        basin: per start point, the index into ``minima`` of the basin it ended in, or
            ``NONE`` (-1) or ``DIVERGED`` (-2); shape ``(ny, nx)``.
        minima: the basins' reference points, shape ``(k, 2)``.
        labels: a name per basin (``"sharp"``, ``"(3, 2)"``), length ``k``.
        clustered: True if ``minima`` were found by clustering end points (no known minima).
        tol: the distance within which an end point counts as at a minimum.
        steps: steps per run.
    """

    function: str
    optimizer: str
    xs: np.ndarray
    ys: np.ndarray
    starts: np.ndarray
    final: np.ndarray
    basin: np.ndarray
    minima: np.ndarray
    labels: tuple[str, ...]
    clustered: bool
    tol: float
    steps: int

    @property
    def class_names(self) -> tuple[str, ...]:
        """The basins' labels, then ``"none"`` and ``"diverged"``: the order of ``counts``."""
        return (*self.labels, "none", "diverged")

    @property
    def counts(self) -> np.ndarray:
        """Start points per class, in the order of ``class_names``."""
        flat = self.basin.reshape(-1)
        k = len(self.labels)
        per_basin = np.bincount(flat[flat >= 0], minlength=k)
        return np.array([*per_basin, np.sum(flat == NONE), np.sum(flat == DIVERGED)])

    @property
    def fractions(self) -> np.ndarray:
        """Fraction of the start points per class, in the order of ``class_names`` (sums to 1)."""
        return self.counts / self.basin.size

    def fraction(self, label: str | int) -> float:
        """The fraction of start points that ended in the basin ``label``: a label of
        ``class_names`` (``"flat"``, ``"none"``, ``"diverged"``) or a basin index."""
        names = self.class_names
        if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
            if not -2 <= label < len(self.labels):
                raise ValueError(f"no basin with index {label}; there are {len(self.labels)}")
            index = int(label) if label >= 0 else len(self.labels) + (-1 - int(label))
        elif label in names:
            index = names.index(label)
        else:
            raise ValueError(f"no basin labelled {label!r}; the classes are {list(names)}")
        return float(self.fractions[index])

    def summary(self) -> str:
        """One line: the fraction per class, e.g. ``SAM: flat 71%, sharp 3%, none 26%``."""
        parts = [
            f"{name} {100 * frac:.1f}%"
            for name, frac in zip(self.class_names, self.fractions, strict=True)
            if frac > 0 or name not in ("none", "diverged")
        ]
        return f"{self.optimizer}: " + ", ".join(parts)


# --------------------------------------------------------------------------------------------
# Argument checks


def _as_function(f: TestFunction | str) -> TestFunction:
    if isinstance(f, str):
        f = functions.get(f)
    if not isinstance(f, TestFunction):
        raise ValueError(
            f"f must be a TestFunction or a registered name (for a typed expression use "
            f"sampy.expressions.expression_function), got {f!r}"
        )
    if f.dim != 2:
        raise ValueError(f"f must be 2-dimensional for a basin map, got dim={f.dim}")
    return f


def _check_grid(grid: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(grid, (int, np.integer)):
        sizes = (grid, grid)
    else:
        try:
            sizes = tuple(grid)
        except TypeError:
            sizes = ()
    if len(sizes) != 2 or not all(
        isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 2 for n in sizes
    ):
        raise ValueError(f"grid must be an integer >= 2 or a pair (nx, ny) of them, got {grid!r}")
    return int(sizes[0]), int(sizes[1])


def _check_steps(steps: object) -> int:
    return check_int("steps", steps, 1)


def _check_bounds(bounds: object, f: TestFunction) -> Bounds:
    if bounds is None:
        bounds = f.domain
    try:
        (x_lo, x_hi), (y_lo, y_hi) = ((float(lo), float(hi)) for lo, hi in bounds)
    except (TypeError, ValueError):
        raise ValueError(
            f"bounds must be ((x_low, x_high), (y_low, y_high)), got {bounds!r}"
        ) from None
    values = np.array([x_lo, x_hi, y_lo, y_hi])
    if not (np.all(np.isfinite(values)) and x_lo < x_hi and y_lo < y_hi):
        raise ValueError(f"bounds must be finite with low < high on each axis, got {bounds!r}")
    return (x_lo, x_hi), (y_lo, y_hi)


def _check_tol(tol: object, bounds: Bounds) -> float:
    if tol is None:
        (x_lo, x_hi), (y_lo, y_hi) = bounds
        return 0.05 * float(np.hypot(x_hi - x_lo, y_hi - y_lo))
    if isinstance(tol, bool) or not isinstance(tol, (int, float, np.floating, np.integer)):
        raise ValueError(f"tol must be a number > 0, got {tol!r}")
    if not (np.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be a finite number > 0, got {tol!r}")
    return float(tol)


def _check_max_basins(max_basins: object) -> int:
    if (
        isinstance(max_basins, bool)
        or not isinstance(max_basins, (int, np.integer))
        or max_basins < 1
    ):
        raise ValueError(f"max_basins must be an integer >= 1, got {max_basins!r}")
    return int(max_basins)


def _optimizer_name(optimizer: Optimizer, name: str | None) -> str:
    if name is not None:
        return str(name)
    return type(optimizer).__name__


# --------------------------------------------------------------------------------------------
# The pieces


def start_grid(grid: tuple[int, int], bounds: Bounds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(xs, ys, starts)``: ``nx × ny`` evenly spaced points, the box's edges included;
    ``starts`` has the image layout ``(ny, nx, 2)``."""
    (x_lo, x_hi), (y_lo, y_hi) = bounds
    xs = np.linspace(x_lo, x_hi, grid[0])
    ys = np.linspace(y_lo, y_hi, grid[1])
    starts = np.stack(np.meshgrid(xs, ys), axis=-1)
    return xs, ys, starts


def _label(point: np.ndarray, tol: float | None = None) -> str:
    """``"(3, 2)"``; for a clustered centre, rounded to about a tenth of ``tol`` (its
    precision), so that ``-1.8e-30`` reads ``0``."""
    if tol is not None:
        decimals = max(0, 1 - int(np.floor(np.log10(tol))))
        point = np.round(point, decimals) + 0.0  # + 0.0 turns -0.0 into 0.0
    return "(" + ", ".join(f"{c:.3g}" for c in point) + ")"


def classify(final: np.ndarray, diverged: np.ndarray, minima: np.ndarray, tol: float) -> np.ndarray:
    """The basin index of every end point: the nearest of ``minima`` if within ``tol``, else
    ``NONE``; ``DIVERGED`` where ``diverged`` (or the end point is not finite).

    ``final`` has shape ``(..., 2)``, ``diverged`` shape ``(...)``, ``minima`` ``(k, 2)``.
    """
    final = np.asarray(final, dtype=float)
    bad = np.asarray(diverged, dtype=bool) | ~np.all(np.isfinite(final), axis=-1)
    basin = np.full(final.shape[:-1], NONE, dtype=int)
    if len(minima):
        # (..., k) distances: k is small (a handful of minima), so this is cheap.
        distance = np.linalg.norm(final[..., None, :] - minima, axis=-1)
        nearest = np.argmin(distance, axis=-1)
        close = np.take_along_axis(distance, nearest[..., None], axis=-1)[..., 0] <= tol
        basin = np.where(close, nearest, NONE)
    basin[bad] = DIVERGED
    return basin


def cluster_minima(
    f: TestFunction, finals: Sequence[np.ndarray], tol: float, max_basins: int = MAX_BASINS
) -> np.ndarray:
    """Basin centres found from end points (for a function without known minima).

    Leader clustering, lowest loss first: the lowest end point not yet taken becomes a
    centre and takes every end point within ``tol``; repeated until ``max_basins`` basins
    are found or no end point is left. A group smaller than ``MIN_BASIN_FRACTION`` of the end
    points (at least 2) is no basin: its points are left unassigned.
    ``finals`` are arrays of end points ``(..., 2)`` (several runs are clustered together,
    so that two optimizers' maps share their basins); non-finite ones are ignored.
    Returns the centres, shape ``(k, 2)``, ``k <= max_basins``.
    """
    points = np.concatenate([np.asarray(p, dtype=float).reshape(-1, 2) for p in finals])
    points = points[np.all(np.isfinite(points), axis=-1)]
    with np.errstate(all="ignore"):
        loss = np.asarray(f(points), dtype=float)
    keep = np.isfinite(loss)
    points, loss = points[keep], loss[keep]
    order = np.argsort(loss, kind="stable")
    points = points[order]
    free = np.ones(len(points), dtype=bool)
    smallest = max(2, int(np.ceil(MIN_BASIN_FRACTION * len(points))))
    centres = []
    while len(centres) < max_basins:
        left = np.flatnonzero(free)
        if left.size == 0:
            break
        centre = points[left[0]]
        near = np.linalg.norm(points[left] - centre, axis=-1) <= tol
        free[left[near]] = False
        # A lone end point is most likely a run still on its way, not a basin: it stays
        # unassigned (NONE) and does not use up one of the max_basins.
        if np.count_nonzero(near) >= smallest:
            centres.append(centre)
    return np.array(centres).reshape(-1, 2)


def _reference(f: TestFunction, minima: object) -> tuple[np.ndarray | None, tuple[str, ...]]:
    """The given or known minima and their labels; ``(None, ())`` if they must be clustered."""
    if isinstance(minima, str):
        if minima != "cluster":
            raise ValueError(f"minima must be points (k, 2), None or 'cluster', got {minima!r}")
        return None, ()
    if minima is None:
        points = np.asarray(f.minima, dtype=float).reshape(-1, 2)
        if len(points) == 0:
            return None, ()
        labels = tuple(f.minima_labels) if len(f.minima_labels) == len(points) else ()
    else:
        points = np.asarray(minima, dtype=float)
        if points.ndim != 2 or points.shape[1] != 2 or not np.all(np.isfinite(points)):
            raise ValueError(f"minima must be finite points of shape (k, 2), got {minima!r}")
        if len(points) == 0:
            return None, ()
        labels = ()
    return points, labels or tuple(_label(p) for p in points)


@dataclass(frozen=True)
class _Runs:
    xs: np.ndarray
    ys: np.ndarray
    starts: np.ndarray
    finals: list[np.ndarray]
    diverged: list[np.ndarray]


def _run_all(
    optimizers: Sequence[Optimizer], f: TestFunction, grid: tuple[int, int], steps: int, bounds
) -> _Runs:
    xs, ys, starts = start_grid(grid, bounds)
    finals, diverged = [], []
    for optimizer in optimizers:
        # One run over all nx·ny start points at once: sampy.run is batched over them.
        traj = run(optimizer, f, starts, steps)
        finals.append(traj.final.copy())  # a copy: do not keep the whole trajectory alive
        diverged.append(traj.diverged.copy())
    return _Runs(xs, ys, starts, finals, diverged)


def _maps(
    optimizers: Sequence[Optimizer],
    names: Sequence[str | None],
    f: TestFunction | str,
    grid: int | Sequence[int],
    steps: int,
    bounds: object,
    tol: float | None,
    minima: object,
    max_basins: int,
) -> list[BasinMap]:
    f = _as_function(f)
    sizes = _check_grid(grid)
    steps = _check_steps(steps)
    box = _check_bounds(bounds, f)
    tol = _check_tol(tol, box)
    max_basins = _check_max_basins(max_basins)
    points, labels = _reference(f, minima)
    runs = _run_all(optimizers, f, sizes, steps, box)
    clustered = points is None
    if clustered:
        # Cluster all runs together, so that a basin has one index (one colour) in every map.
        live = [fin[~div] for fin, div in zip(runs.finals, runs.diverged, strict=True)]
        points = cluster_minima(f, live, tol, max_basins)
        labels = tuple(f"≈{_label(p, tol)}" for p in points)
    return [
        BasinMap(
            function=f.name,
            optimizer=_optimizer_name(optimizer, name),
            xs=runs.xs,
            ys=runs.ys,
            starts=runs.starts,
            final=final,
            basin=classify(final, div, points, tol),
            minima=points,
            labels=labels,
            clustered=clustered,
            tol=tol,
            steps=steps,
        )
        for optimizer, name, final, div in zip(
            optimizers, names, runs.finals, runs.diverged, strict=True
        )
    ]


# --------------------------------------------------------------------------------------------
# The public functions


def basin_map(
    optimizer: Optimizer,
    f: TestFunction | str,
    grid: int | Sequence[int] = (100, 100),
    steps: int = 300,
    bounds: Bounds | None = None,
    *,
    tol: float | None = None,
    minima: np.ndarray | str | None = None,
    max_basins: int = MAX_BASINS,
    name: str | None = None,
) -> BasinMap:
    """Run ``optimizer`` from every point of a grid over ``bounds`` and classify the ends.

    Args:
        optimizer: any ``sampy.optim`` optimizer.
        f: a 2-D ``TestFunction`` or a registered name; for a typed expression pass
            ``sampy.expressions.expression_function(text)``.
        grid: ``(nx, ny)`` start points per axis (or one number for both), each >= 2.
        steps: steps per run (>= 1).
        bounds: ``((x_low, x_high), (y_low, y_high))``; default ``f.domain``.
        tol: how close to a minimum an end point must be; default 5% of the box's diagonal.
        minima: reference points ``(k, 2)`` in place of ``f.minima`` (e.g. every local
            minimum, where ``f.minima`` lists the global ones only), or ``"cluster"`` to find
            the basins by clustering the end points (module docstring), which is also what
            happens when ``f`` has no known minima.
        max_basins: at most this many clustered basins.
        name: the optimizer's name in summaries and plots (default: its class name).

    Diverging runs land in the ``DIVERGED`` class; nothing raises for them.
    """
    return _maps([optimizer], [name], f, grid, steps, bounds, tol, minima, max_basins)[0]


def compare_basins(
    optimizer_a: Optimizer,
    optimizer_b: Optimizer,
    f: TestFunction | str,
    grid: int | Sequence[int] = (100, 100),
    steps: int = 300,
    bounds: Bounds | None = None,
    *,
    tol: float | None = None,
    minima: np.ndarray | str | None = None,
    max_basins: int = MAX_BASINS,
    names: tuple[str | None, str | None] = (None, None),
) -> tuple[BasinMap, BasinMap]:
    """``basin_map`` for two optimizers on the same grid, with the same basins (so that a
    basin has the same index, and colour, in both maps; clustered basins are found from
    both optimizers' end points together)."""
    if len(names) != 2:
        raise ValueError(f"names must be a pair, got {names!r}")
    a, b = _maps(
        [optimizer_a, optimizer_b], list(names), f, grid, steps, bounds, tol, minima, max_basins
    )
    return a, b


# --------------------------------------------------------------------------------------------
# Drawing

NONE_COLOUR = "#d9d9d9"
DIVERGED_COLOUR = "#222222"


def basin_colours(k: int) -> list[str]:
    """A colour per basin (tab10, then tab20 beyond ten), then "none" and "diverged"."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    palette = colormaps["tab10" if k <= 10 else "tab20"]
    return [to_hex(palette(i % palette.N)) for i in range(k)] + [NONE_COLOUR, DIVERGED_COLOUR]


def plot_basins(maps: BasinMap | Sequence[BasinMap], *, axes=None, titles=None):
    """Draw basin maps side by side, one panel each: every start point coloured by the
    basin it ended in (the same colour in every panel), the minima marked, and a legend
    with the fraction of start points per basin. Returns the matplotlib ``Figure``.

    ``axes``: one ``Axes`` per map to draw into (default: a new figure); ``titles``: one per
    map (default: the optimizer's name).
    """
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    maps = [maps] if isinstance(maps, BasinMap) else list(maps)
    if not maps:
        raise ValueError("maps must hold at least one BasinMap")
    k = len(maps[0].labels)
    if any(m.labels != maps[0].labels for m in maps):
        raise ValueError("the maps must share their basins (use compare_basins)")
    if axes is None:
        figure = Figure(figsize=(4.6 * len(maps), 4.6 + 0.18 * (k + 2) / 2), layout="constrained")
        axes = figure.subplots(1, len(maps), squeeze=False)[0]
    else:
        axes = list(np.atleast_1d(axes))
        if len(axes) != len(maps):
            raise ValueError(f"axes must hold one Axes per map ({len(maps)}), got {len(axes)}")
        figure = axes[0].figure
    titles = [m.optimizer for m in maps] if titles is None else list(titles)

    colours = basin_colours(k)
    # Image values: basin i → i, NONE → k, DIVERGED → k + 1; one colour bin each.
    cmap = ListedColormap(colours)
    norm = BoundaryNorm(np.arange(k + 3) - 0.5, cmap.N)
    for ax, m, title in zip(axes, maps, titles, strict=True):
        image = np.where(m.basin >= 0, m.basin, np.where(m.basin == NONE, k, k + 1))
        dx = (m.xs[-1] - m.xs[0]) / (len(m.xs) - 1) / 2
        dy = (m.ys[-1] - m.ys[0]) / (len(m.ys) - 1) / 2
        extent = (m.xs[0] - dx, m.xs[-1] + dx, m.ys[0] - dy, m.ys[-1] + dy)
        ax.imshow(
            image, origin="lower", extent=extent, cmap=cmap, norm=norm, interpolation="nearest",
            aspect="auto",
        )  # fmt: skip
        if len(m.minima):
            # White stars with a dark rim: visible on every basin colour, their own included.
            ax.scatter(
                *m.minima.T, marker="*", s=120, c="white", edgecolors="black", linewidths=0.8,
                zorder=3,
            )  # fmt: skip
        ax.set_title(title)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        handles = [
            Patch(facecolor=colour, edgecolor="0.5", label=f"{name}: {100 * frac:.1f}%")
            for colour, name, frac in zip(colours, m.class_names, m.fractions, strict=True)
            if frac > 0 or name not in ("none", "diverged")
        ]
        # Below the panel, so that it hides no basin however many there are.
        ax.legend(
            handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.13), fontsize="small",
            ncols=2 if len(handles) > 3 else len(handles), frameon=False,
        )  # fmt: skip
    return figure
