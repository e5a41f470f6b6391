"""The laboratory's computations: plain functions on plain data, no widgets, no figures.

Everything the ``Playground`` shows is computed here, so that it can be tested (and used in a
script) without a kernel or a browser:

- ``LabSettings`` (what the controls say) → ``make_function`` and, per variant,
  ``run_variant`` → ``VariantRun``: the trajectory from ``sampy.run``, plus the points where
  the variant evaluated its gradient (the ascent points w + ε, see below);
- the work budget: ``update_work`` (steps × the registry's gradient evaluations per step ×
  the cost of one evaluation) and ``check_basin_work``, which refuse with "too much work: …"
  what would keep the kernel busy too long (``sampy.playground.limits``);
- the overlays' data: ``ascent_arrows`` (at the steps ``arrow_steps``: both phases of a
  bounce), ``ball_outline``, ``loss_curve`` and its floor ``loss_floor``; the status line
  ``describe`` (with ``last_moves``: a run still bouncing is "not converged");
- ``anatomy`` (the checkpoints ckpt1…ckpt4 of SAM's gradient along a path), ``sharpness_rows``
  (λmax, trace and the worst case in the ρ-ball at the end points), ``basin_pair`` (two basin maps);
- the exports: ``snippet`` (one line of Python that reproduces the runs with sampy),
  ``trajectories_csv`` and ``trajectories_npz`` (bytes);
- ``landscape_grid``: the landscape on a grid, made safe to colour (poles, NaN, outliers).

How the ascent points are found. ``sampy.run`` records the iterates, not where the gradient
was taken. Rather than re-deriving ε for each of the ~30 variants (ASAM's ellipse, Fisher's
metric, LookSAM's reuse, MultiStepSAM's several ascents, random ε, …), the run is given a
copy of the function whose gradient records every point it is asked about, and an optimizer
wrapper that marks where each step begins. A step's gradient queries that are not at its
iterate w are its ascent points w + ε, exactly as the variant chose them, for every variant.
The trajectory itself is ``sampy.run``'s, untouched (the tests check it against a plain run).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from sampy import functions
from sampy.basins import BasinMap, compare_basins
from sampy.expressions import DEFAULT_DOMAIN, expression_function, parse_expression
from sampy.functions import TestFunction
from sampy.optim.base import Optimizer
from sampy.optim.checkpoints import checkpoint_fractions
from sampy.playground.choices import (
    BASES,
    LESSON,
    as_start,
    make_base,
    method_row,
    resolve_hyperparameters,
)
from sampy.playground.limits import TooMuchWork, UpdateWork, evaluation_cost
from sampy.problems import NoisyGradient
from sampy.run import Trajectory, run
from sampy.sharpness import hessian_trace, top_eigenvalue, worst_case_loss

# The function menu's entry for a typed expression of x and y.
EXPRESSION = "expression of x, y"
MAX_VARIANTS = 4
# A basin map costs grid² × steps point-steps per optimizer, times the two variants' gradient
# evaluations per step (relative to SGD against SAM's 1 + 2) and the cost of one evaluation
# (``limits.evaluation_cost``: more for a long typed expression); beyond this it would keep
# the kernel busy for tens of seconds, so it is refused with a message instead.
MAX_BASIN_WORK = 100 * 100 * 1000
BASIN_REFERENCE_EVALS = 3.0
# ρ used for the worst case in the ball of a variant that has no ρ of its own (SGD).
PROBE_RHO = 0.05
# A run whose last SETTLE_STEPS steps still move by more than SETTLE_TOL of the domain's
# diagonal has not converged: the status says it is bouncing (or still moving) rather than
# "near the … minimum". SAM's own 2-cycle at a small lr (≈ 0.04 % of the diagonal on the
# lesson's sharp_flat) counts as settled; lr = 0.5 (≈ 4 %) does not.
SETTLE_STEPS = 10
SETTLE_TOL = 0.005


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class VariantSetting:
    """One variant of the comparison: a method menu entry and the hyperparameters given.

    Attributes:
        method: an entry of ``sampy.playground.choices.methods()`` ("SGD", "SAM", …) or an
            alias (``ALIASES``).
        hyperparameters: the values set by hand; the rest take the registry's defaults.
    """

    method: str
    hyperparameters: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class LabSettings:
    """Everything one picture of the laboratory depends on (what the controls show).

    Attributes:
        function: a registered 2-D function name, or ``EXPRESSION`` for ``expression``.
        expression: a NumPy-style expression of x and y (``sampy.expressions``).
        box: the expression's domain is ``[-box, box]²``.
        variants: up to ``MAX_VARIANTS`` variants, run from the same start.
        lr: the base optimizer's learning rate (a built-in base's own ``lr``).
        steps: steps per run.
        x0: the common start point.
        base: the base optimizer of every variant, one of ``BASES``.
        noise: σ of the Gaussian noise added to every gradient (0: exact gradients).
        seed: the noise's seed (the same for every variant: each run draws the same stream).
        bound: a run whose ``max|x_i|`` passes ``bound`` stops and is reported as diverged.
    """

    function: str = LESSON["function"]
    expression: str = ""
    box: float = float(DEFAULT_DOMAIN[0][1])
    variants: tuple[VariantSetting, ...] = field(default_factory=lambda: lesson_variants())
    lr: float = LESSON["lr"]
    steps: int = LESSON["steps"]
    x0: tuple[float, float] = tuple(LESSON["x0"])
    base: str = LESSON["base"]
    noise: float = 0.0
    seed: int = 0
    bound: float = 1e6


def lesson_variants() -> tuple[VariantSetting, ...]:
    """The variants of ``LESSON`` (``sampy.playground.choices``), as ``VariantSetting`` s."""
    return tuple(
        VariantSetting(v["method"], dict(v["hyperparameters"])) for v in LESSON["variants"]
    )


def make_function(settings: LabSettings) -> TestFunction:
    """The landscape: the registered function, or the typed expression on ``[-box, box]²``.

    Raises ``ValueError`` (an ``ExpressionError`` for a bad expression) with a message for
    the reader.
    """
    if settings.function == EXPRESSION:
        box = float(settings.box)
        if not (math.isfinite(box) and box > 0):
            raise ValueError(f"the box half-width must be a finite number > 0, got {box!r}")
        return expression_function(settings.expression, domain=((-box, box), (-box, box)))
    f = functions.get(settings.function)
    if f.dim != 2:
        raise ValueError(f"function must be 2-dimensional, got {settings.function!r}")
    return f


def gradient_source(f: TestFunction, noise: float, seed: int) -> TestFunction | NoisyGradient:
    """What the optimizers query: ``f`` itself, or ``f`` with gradient noise σ = ``noise``."""
    if noise < 0 or not math.isfinite(noise):
        raise ValueError(f"the gradient noise σ must be a finite number >= 0, got {noise!r}")
    return NoisyGradient(f, sigma=noise, seed=seed) if noise > 0 else f


def all_minima(f: TestFunction) -> tuple[np.ndarray, tuple[str, ...]]:
    """Every minimum worth naming: ``f.minima``, or all local ones where ``f`` lists only
    the global one (``sharp_flat_wells``: its shallower well is the point of the toy)."""
    if f.name == "sharp_flat_wells":
        from sampy.functions.toys import sharp_flat_wells_minima

        points, labels, _ = sharp_flat_wells_minima(**f.params)
        return np.asarray(points, dtype=float), tuple(labels)
    points = np.asarray(f.minima, dtype=float).reshape(-1, 2)
    labels = tuple(f.minima_labels) if len(f.minima_labels) == len(points) else ()
    return points, labels


def make_optimizer(
    variant: VariantSetting, lr: float, base: str = "SGD"
) -> tuple[Optimizer, dict[str, object]]:
    """The optimizer of ``variant`` and every hyperparameter it runs with (defaults included).

    Raises ``ValueError`` naming the invalid setting (lr ≤ 0, a value out of range, a
    hyperparameter the method does not have, an unknown method or base).
    """
    if base not in BASES:
        raise ValueError(f"base must be one of {list(BASES)}, got {base!r}")
    row, fixed = method_row(variant.method)
    base_opt = make_base(base, lr)  # validates lr
    if row is None:
        return base_opt, {}
    values = resolve_hyperparameters(row, lr, variant.hyperparameters, {}, fixed)
    return row.make(base_opt, **values), values


def variant_labels(variants: Sequence[VariantSetting]) -> list[str]:
    """One label per variant: the method's name, numbered where it appears twice or more."""
    names = [v.method for v in variants]
    labels = []
    for i, name in enumerate(names):
        if names.count(name) > 1:
            labels.append(f"{name} #{names[: i + 1].count(name)}")
        else:
            labels.append(name)
    return labels


# --------------------------------------------------------------------------- runs


@dataclass(frozen=True, eq=False)
class VariantRun:
    """One variant's run (or why it could not run).

    Attributes:
        label: its name in legends and exports ("SAM", "SAM #2").
        method: the menu entry.
        hyperparameters: every hyperparameter it ran with (defaults included).
        trajectory: the run (``xs`` of shape ``(steps + 1, 2)``), ``None`` if it could not run.
        query_points: every point the gradient was evaluated at, in order, shape ``(n, 2)``.
        query_steps: the step (1-based) each query belongs to, shape ``(n,)``.
        error: why it could not run (an invalid setting), else ``None``.
    """

    label: str
    method: str
    hyperparameters: dict[str, object]
    trajectory: Trajectory | None
    query_points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    query_steps: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when it ran (diverged or not)."""
        return self.trajectory is not None

    @property
    def xs(self) -> np.ndarray:
        """The iterates, shape ``(steps + 1, 2)`` (empty when it could not run)."""
        return self.trajectory.xs if self.trajectory is not None else np.zeros((0, 2))

    @property
    def diverged_at(self) -> int | None:
        """The step at which it diverged, or ``None``."""
        if self.trajectory is None:
            return None
        k = int(np.asarray(self.trajectory.diverged_at).reshape(-1)[0])
        return k if k >= 0 else None

    @property
    def grad_evals(self) -> int:
        """Gradient evaluations used."""
        return 0 if self.trajectory is None else int(self.trajectory.grad_evals)

    @property
    def evals_per_step(self) -> np.ndarray:
        """Cumulative gradient evaluations after each step, shape ``(steps + 1,)``."""
        steps = len(self.xs) - 1
        counts = np.bincount(self.query_steps, minlength=steps + 1)[: steps + 1]
        return np.cumsum(counts)

    @property
    def is_ascent(self) -> np.ndarray:
        """Per query: True where the gradient was taken away from the step's iterate w."""
        if len(self.query_points) == 0:
            return np.zeros(0, dtype=bool)
        w = self.xs[self.query_steps - 1]
        return np.any(self.query_points != w, axis=-1)


class _Recorder:
    """Where the gradient was evaluated, and where each step's queries begin."""

    def __init__(self) -> None:
        self.points: list[np.ndarray] = []
        self.starts: list[int] = []  # len(points) when step k began (k = 1, 2, …)

    def function(self, f: TestFunction) -> TestFunction:
        """A copy of ``f`` whose gradient notes every point it is asked about."""
        grad = f.analytic_grad or f.autograd_grad

        def recorded(x: np.ndarray) -> np.ndarray:
            # A copy (an optimizer may reuse its buffer); shaped (n, 2) once, at the end.
            self.points.append(np.array(x, dtype=float, copy=True))
            return grad(x)

        # value_and_grad and the oracle both go through analytic_grad: one hook sees all.
        return dataclasses.replace(f, analytic_grad=recorded)


class _Marked:
    """An optimizer that notes where each step begins, then does exactly what ``inner`` does."""

    def __init__(self, inner: Optimizer, recorder: _Recorder) -> None:
        self.inner = inner
        self.recorder = recorder

    def init(self, x: np.ndarray) -> object:
        return self.inner.init(x)

    def step(self, x: np.ndarray, state: object, oracle: object) -> tuple[np.ndarray, object]:
        self.recorder.starts.append(len(self.recorder.points))
        return self.inner.step(x, state, oracle)


def run_variant(
    f: TestFunction, variant: VariantSetting, settings: LabSettings, label: str | None = None
) -> VariantRun:
    """Run one variant from ``settings.x0`` (with the settings' lr, base, noise and steps).

    Never raises for numerical trouble (a diverging run stops and says at which step), nor
    for an invalid setting (``error`` says which); other exceptions propagate.
    """
    label = label or variant.method
    try:
        optimizer, values = make_optimizer(variant, settings.lr, settings.base)
        x0 = as_start(settings.x0)
        source = gradient_source(f, settings.noise, settings.seed)
    except ValueError as error:
        return VariantRun(label, variant.method, {}, None, error=str(error))
    recorder = _Recorder()
    recorded = recorder.function(f)
    noisy = isinstance(source, NoisyGradient)
    target = NoisyGradient(recorded, sigma=source.sigma, seed=source.seed) if noisy else recorded
    try:
        with np.errstate(all="ignore"):
            trajectory = run(
                _Marked(optimizer, recorder), target, x0, settings.steps, bound=settings.bound
            )
    except ValueError as error:  # e.g. steps < 0
        return VariantRun(label, variant.method, values, None, error=str(error))
    # The trajectory reports the plain function (losses are noise-free, as sampy.run's are).
    trajectory = dataclasses.replace(trajectory, f=f)
    points, steps = _queries(recorder)
    return VariantRun(label, variant.method, values, trajectory, points, steps)


def _queries(recorder: _Recorder) -> tuple[np.ndarray, np.ndarray]:
    if not recorder.points:
        return np.zeros((0, 2)), np.zeros(0, dtype=int)
    shaped = [p.reshape(-1, 2) for p in recorder.points]
    sizes = np.array([len(p) for p in shaped])
    points = np.concatenate(shaped)
    first = np.repeat(np.cumsum(sizes) - sizes, sizes)  # the call each point came from
    # The step of a call: how many steps had begun when it was made.
    steps = np.searchsorted(np.asarray(recorder.starts), first, side="right")
    keep = steps >= 1  # (no query happens before the first step; init asks for nothing)
    return points[keep], steps[keep]


def evals_per_step(variant: VariantSetting, lr: float, base: str = "SGD") -> float:
    """Gradient evaluations per step of ``variant`` (the registry's cost formula at its
    hyperparameters; 1 for SGD), or 0 for a setting that cannot run (it computes nothing:
    its own message says why). A count too large for a float is ``inf``."""
    try:
        _, values = make_optimizer(variant, lr, base)
        row, _ = method_row(variant.method)
    except ValueError:
        return 0.0
    if row is None:
        return 1.0
    try:
        return float(row.evals_per_step(values))
    except OverflowError:
        return math.inf


def expression_nodes(settings: LabSettings) -> int | None:
    """The typed expression's node count (``Expression.nodes``), ``None`` for a registered
    function; raises ``ExpressionError`` for an expression that is not allowed."""
    if settings.function != EXPRESSION:
        return None
    return parse_expression(settings.expression).nodes


def update_work(settings: LabSettings) -> UpdateWork:
    """The work of running every variant of ``settings`` (``limits.UpdateWork``; its
    ``check()`` refuses an update over ``limits.MAX_UPDATE_WORK``)."""
    return UpdateWork(
        steps=int(settings.steps),
        evals_per_step=tuple(
            evals_per_step(v, settings.lr, settings.base) for v in settings.variants
        ),
        nodes=expression_nodes(settings),
    )


def run_lab(settings: LabSettings) -> tuple[TestFunction, list[VariantRun]]:
    """The function and every variant's run (no caching: ``Playground`` caches per variant).

    Raises ``limits.TooMuchWork`` (a ``ValueError`` whose message starts "too much work:"
    and says what to reduce) before running anything when the runs together would exceed
    ``limits.MAX_UPDATE_WORK``, and ``ValueError`` for a function that cannot be built.
    """
    f = make_function(settings)
    update_work(settings).check()
    labels = variant_labels(settings.variants)
    return f, [
        run_variant(f, v, settings, label)
        for v, label in zip(settings.variants, labels, strict=True)
    ]


# --------------------------------------------------------------------------- overlays' data


def arrow_steps(every: int, steps: int) -> np.ndarray:
    """The steps whose ascent is drawn: both steps of each pair k, k + 1 for k = 1, 1 + every,
    1 + 2·every, … (every step when ``every`` ≤ 2; none when ``every`` ≤ 0).

    Pairs, not single steps: SAM bounces across a valley with period 2, so ε at step k + 1
    points the other way than at step k. One step in ``every`` (an even ``every``) would
    sample a single phase of the bounce, and every arrow would point the same way.
    """
    if every <= 0 or steps <= 0:
        return np.zeros(0, dtype=int)
    k = np.arange(1, steps + 1)
    return k[(k - 1) % every <= 1] if every > 2 else k


def ascent_arrows(vrun: VariantRun, every: int) -> tuple[np.ndarray, np.ndarray]:
    """``(tails, heads)``, each ``(m, 2)``: w → w + ε at the steps ``arrow_steps(every, …)``
    (1, 2, 1 + every, 2 + every, …), one arrow per ascent point (MultiStepSAM has several per
    step). ``every`` ≤ 0: none."""
    if every <= 0 or not vrun.ok or len(vrun.query_points) == 0:
        return np.zeros((0, 2)), np.zeros((0, 2))
    drawn = np.zeros(len(vrun.xs) + 1, dtype=bool)
    drawn[arrow_steps(every, len(vrun.xs) - 1)] = True
    chosen = vrun.is_ascent & drawn[vrun.query_steps]
    steps = vrun.query_steps[chosen]
    return vrun.xs[steps - 1], vrun.query_points[chosen]


def ball_shape(vrun: VariantRun) -> tuple[float, float, bool, float] | None:
    """``(rho, p, adaptive, eta)`` of the variant's ball, or ``None`` without a ρ.

    A variant without ``p`` or ``adaptive`` hyperparameters (USAM, FisherSAM, …) is drawn
    with the Euclidean ball of radius ρ, the one its ρ is the radius of in SAM's terms.
    """
    values = vrun.hyperparameters
    if "rho" not in values:
        return None
    try:
        row = method_row(vrun.method)[0]
    except ValueError:
        row = None
    merged = {**(row.preset if row is not None else {}), **values}
    return (
        float(merged["rho"]),
        float(merged.get("p", 2.0)),
        bool(merged.get("adaptive", False)),
        float(merged.get("eta", 0.0)),
    )


def ball_outline(
    centre: Sequence[float],
    rho: float,
    p: float = 2.0,
    adaptive: bool = False,
    eta: float = 0.0,
    n: int = 121,
) -> np.ndarray:
    """The boundary of ``{centre + ε : ‖ε‖_p ≤ ρ}`` (ASAM: ``‖ε / (|w| + η)‖_p ≤ ρ``), as a
    closed polygon of ``n`` points, shape ``(n, 2)``."""
    t = np.linspace(0.0, 2 * np.pi, n)
    u = np.stack([np.cos(t), np.sin(t)], axis=-1)
    if math.isinf(p):
        norm = np.max(np.abs(u), axis=-1, keepdims=True)
    else:
        norm = np.sum(np.abs(u) ** p, axis=-1, keepdims=True) ** (1.0 / p)
    e = rho * u / norm
    centre = np.asarray(centre, dtype=float)
    if adaptive:
        e = e * (np.abs(centre) + eta)
    return centre + e


def loss_curve(vrun: VariantRun) -> np.ndarray:
    """The (noise-free) loss at every iterate, shape ``(steps + 1,)``; non-finite → NaN."""
    if not vrun.ok:
        return np.zeros(0)
    losses = np.asarray(vrun.trajectory.losses, dtype=float).reshape(-1)
    return np.where(np.isfinite(losses), losses, np.nan)


def describe(f: TestFunction, vrun: VariantRun) -> str:
    """One line: where the run ended, its loss and cost, and whether it diverged."""
    if not vrun.ok:
        return f"{vrun.label}: not run ({vrun.error})"
    end = vrun.xs[-1]
    with np.errstate(all="ignore"):
        loss = float(np.asarray(f(end)))
    line = (
        f"{vrun.label}: ends at ({end[0]:.3f}, {end[1]:.3f}), loss {loss:.4g}, "
        f"{vrun.grad_evals} gradient evaluations"
    )
    if vrun.diverged_at is not None:
        return f"{line}; diverged at step {vrun.diverged_at}"
    where = nearest_minimum(f, end)
    moving = last_moves(f, vrun.xs)
    if moving is None:
        return f"{line}; {where}"
    size, bouncing = moving
    how = f"the last {SETTLE_STEPS} steps move by up to {size:.2g}"
    if bouncing:
        if where.startswith("near the "):
            where = "bouncing around the " + where.removeprefix("near the ")
        else:
            where = f"bouncing, {where}"
        return f"{line}; {where}, not converged ({how})"
    return f"{line}; still moving, not converged ({how}); so far {where}"


def last_moves(f: TestFunction, xs: np.ndarray) -> tuple[float, bool] | None:
    """``(largest move, bouncing)`` over the last ``SETTLE_STEPS`` steps of a path, or ``None``
    when they all move by less than ``SETTLE_TOL`` of the domain's diagonal (settled).

    ``bouncing``: the steps mostly turn back (consecutive moves at more than 90°), as at a
    learning rate above 2/λ: the run jumps across a valley instead of settling in it.
    """
    if len(xs) < 3:
        return None
    moves = np.diff(xs[-(SETTLE_STEPS + 1) :], axis=0)
    size = float(np.max(np.linalg.norm(moves, axis=-1)))
    diagonal = float(np.linalg.norm([hi - lo for lo, hi in f.domain]))
    if not size > SETTLE_TOL * diagonal:  # NaN-safe: a NaN path is reported as diverged
        return None
    turns = np.sum(moves[1:] * moves[:-1], axis=-1)
    return size, bool(np.mean(turns < 0) > 0.5)


def nearest_minimum(f: TestFunction, end: np.ndarray) -> str:
    """Which named minimum ``end`` is near (within 5% of the domain's diagonal), if any."""
    points, labels = all_minima(f)
    if len(points) == 0:
        return "no known minimum to compare with"
    distances = np.linalg.norm(points - end, axis=-1)
    i = int(np.argmin(distances))
    diagonal = float(np.linalg.norm([hi - lo for lo, hi in f.domain]))
    if not distances[i] <= 0.05 * diagonal:
        return "not near a known minimum"
    if i < len(labels):
        return f"near the {labels[i]} minimum"
    return "near the minimum (" + ", ".join(f"{c:.3g}" for c in points[i]) + ")"


def loss_floor(f: TestFunction, runs: Sequence[VariantRun], grid_floor: float) -> float:
    """The "min" of the side panel's "loss − min": ``f.fmin`` where it is known; else (a
    typed expression) the lowest value of a local minimization (L-BFGS-B in the domain)
    from the grid's lowest point's value ``grid_floor`` and from each run's lowest point.

    Not the grid's minimum alone: a run that goes below it would drop off the log axis at an
    arbitrary step, which looks like sudden convergence.
    """
    if math.isfinite(f.fmin):
        return float(f.fmin)
    floor = float(grid_floor)
    starts = []
    for vrun in runs:
        losses = loss_curve(vrun)
        if vrun.ok and np.isfinite(losses).any():
            starts.append(vrun.xs[int(np.nanargmin(losses))])
    for start in starts:
        floor = min(floor, _local_minimum(f, start))
    return floor


def _local_minimum(f: TestFunction, start: np.ndarray) -> float:
    """The value of f at a local minimum near ``start`` (``inf`` when it cannot be found)."""
    from scipy.optimize import minimize

    def value_and_grad(x: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = f.value_and_grad(x)
        return float(value), np.asarray(grad, dtype=float)

    try:
        with np.errstate(all="ignore"):
            result = minimize(value_and_grad, np.asarray(start, dtype=float), jac=True,
                              method="L-BFGS-B", bounds=f.domain,
                              options={"maxiter": 200})  # fmt: skip
    except (ValueError, ArithmeticError, np.linalg.LinAlgError):
        return math.inf
    value = float(result.fun)
    return value if math.isfinite(value) else math.inf


# --------------------------------------------------------------------------- the panels


@dataclass(frozen=True)
class Anatomy:
    """The checkpoints of SAM's gradient along one run: per step with an ascent, the fraction of the
    coordinates whose ratio ``r = g̃/g`` falls in ckpt0…ckpt4.

    Attributes:
        label: the variant.
        steps: the steps that took an ascent, shape ``(m,)``.
        fractions: shape ``(m, 5)``: columns ckpt0 (undefined, r = 0 or ±1), ckpt1 (r > 1),
            ckpt2 (0 < r < 1), ckpt3 (r < −1), ckpt4 (−1 < r < 0).
        note: how g and g̃ were obtained.
    """

    label: str
    steps: np.ndarray
    fractions: np.ndarray
    note: str = ""

    def smoothed(self, window: int) -> np.ndarray:
        """The fractions averaged over ``window`` consecutive ascent steps (same shape)."""
        if window <= 1 or len(self.steps) == 0:
            return self.fractions
        kernel = np.ones(window) / window
        padded = np.pad(self.fractions, ((window // 2, window - 1 - window // 2), (0, 0)), "edge")
        return np.stack(
            [np.convolve(padded[:, j], kernel, mode="valid") for j in range(5)], axis=-1
        )


def anatomy(f: TestFunction, vrun: VariantRun) -> Anatomy | None:
    """The checkpoint fractions of ``vrun`` at every step that took an ascent, or ``None``
    when it took none (SGD, the schedule-free methods without ρ).

    ``g = ∇f(w)`` and ``g̃ = ∇f(w + ε)`` are evaluated anew on the recorded points in one
    vectorised call each, without noise: the anatomy is of the landscape along the path,
    even when the run itself saw noisy gradients. ``w + ε`` is the step's first ascent point.
    """
    if not vrun.ok or len(vrun.query_points) == 0:
        return None
    ascent = vrun.is_ascent
    if not ascent.any():
        return None
    steps = vrun.query_steps[ascent]
    points = vrun.query_points[ascent]
    first = np.concatenate([[True], steps[1:] != steps[:-1]])  # the first ascent of a step
    steps, points = steps[first], points[first]
    w = vrun.xs[steps - 1]
    with np.errstate(all="ignore"):
        g = np.asarray(f.grad(w), dtype=float)
        g_adv = np.asarray(f.grad(points), dtype=float)
    fractions = checkpoint_fractions(g, g_adv)
    return Anatomy(vrun.label, steps, fractions, "g = ∇f(w), g̃ = ∇f(w + ε) at the recorded points")


def sharpness_rows(f: TestFunction, runs: Sequence[VariantRun]) -> list[dict[str, object]]:
    """Per variant that ran: at its end point, the loss, ``λmax`` and trace of the Hessian
    and the worst-case loss in its ρ-ball (``sampy.sharpness``), as one dict each.

    A variant without a ρ (SGD) is measured in a ball of ``PROBE_RHO``. Non-finite numbers
    (a pole, a diverged run) come back as NaN, never as an exception.
    """
    rows = []
    for vrun in runs:
        if not vrun.ok:
            continue
        end = vrun.xs[-1]
        shape = ball_shape(vrun)
        rho, p = (shape[0], shape[1]) if shape is not None else (PROBE_RHO, 2.0)
        row: dict[str, object] = {"label": vrun.label, "x": float(end[0]), "y": float(end[1])}
        row["rho"], row["p"] = rho, p
        with np.errstate(all="ignore"):
            row["loss"] = _finite(f, end)
            row["lambda_max"] = _finite(top_eigenvalue, f, end)
            row["trace"] = _finite(hessian_trace, f, end)
            # Fewer ascent steps and starts than the defaults: a panel that answers at once;
            # the tests compare it with the default settings.
            row["worst"] = _finite(worst_case_loss, f, end, rho, p, steps=40, random_starts=8)
        row["sharpness"] = row["worst"] - row["loss"]
        rows.append(row)
    return rows


def _finite(compute, *args: object, **kwargs: object) -> float:
    """``float(compute(*args, **kwargs))``, or NaN for a non-finite value or a failure."""
    try:
        value = float(np.asarray(compute(*args, **kwargs), dtype=float).reshape(-1)[0])
    except (ValueError, ArithmeticError, np.linalg.LinAlgError):
        return math.nan
    return value if math.isfinite(value) else math.nan


def check_basin_work(settings: LabSettings, a: int, b: int, grid: int, steps: int) -> None:
    """Raise ``limits.TooMuchWork`` (a ``ValueError``) when the basin maps of variants ``a``
    and ``b`` on a ``grid × grid`` start grid over ``steps`` steps exceed ``MAX_BASIN_WORK``:
    grid² × steps × (their evaluations per step / ``BASIN_REFERENCE_EVALS``) × the cost of
    one evaluation (``limits.evaluation_cost``)."""
    evals = sum(evals_per_step(settings.variants[i], settings.lr, settings.base) for i in (a, b))
    factor = max(evals / BASIN_REFERENCE_EVALS, 1.0) * evaluation_cost(expression_nodes(settings))
    work = grid * grid * steps * factor
    if work > MAX_BASIN_WORK:
        fits = int(MAX_BASIN_WORK // (grid * grid * factor))
        raise TooMuchWork(
            f"too much work: a {grid}×{grid} basin map of {steps:,} steps is too big to "
            f"compute at once (grid² × steps × {factor:.3g} for these variants and this "
            f"function ≤ {MAX_BASIN_WORK:,}); use fewer steps (at most {fits:,} on this grid) "
            f"or a smaller grid"
        )


def basin_pair(
    settings: LabSettings, a: int, b: int, grid: int = 100, steps: int | None = None
) -> tuple[BasinMap, BasinMap]:
    """Basin maps of variants ``a`` and ``b`` of ``settings`` on a ``grid × grid`` start grid.

    Noise-free (a basin map of noisy runs would be a map of one noise draw). The reference
    minima are ``all_minima(f)``; a typed expression's basins are found by clustering.
    Raises ``ValueError`` for an invalid setting or a map too big to compute at once.
    """
    f = make_function(settings)
    steps = settings.steps if steps is None else steps
    n = len(settings.variants)
    if not (0 <= a < n and 0 <= b < n):
        raise ValueError(f"choose two of the {n} variants, got {a} and {b}")
    check_basin_work(settings, a, b, grid, steps)
    labels = variant_labels(settings.variants)
    opt_a, _ = make_optimizer(settings.variants[a], settings.lr, settings.base)
    opt_b, _ = make_optimizer(settings.variants[b], settings.lr, settings.base)
    points, names = all_minima(f)
    with np.errstate(all="ignore"):
        maps = compare_basins(
            opt_a, opt_b, f, grid=(grid, grid), steps=steps,
            minima=points if len(points) else None, names=(labels[a], labels[b]),
        )  # fmt: skip
    if len(names) == len(points) and len(points) and not maps[0].clustered:
        # compare_basins names given minima by their coordinates; keep "sharp" and "flat".
        maps = tuple(dataclasses.replace(m, labels=names) for m in maps)
    return maps[0], maps[1]


# --------------------------------------------------------------------------- the landscape


@dataclass(frozen=True, eq=False)
class LandscapeGrid:
    """The landscape on a grid, ready to colour.

    Attributes:
        X, Y: the grid, shape ``(n, n)``.
        Z: the values, non-finite ones as NaN.
        C: what is coloured: ``Z`` (linear) or ``log10(Z − floor + δ)`` (log), NaN where
            ``Z`` is; ``vmin``/``vmax``: its colour range (outliers beyond it, e.g. near a
            pole, take the end colours).
        floor: the lowest value (``f.fmin`` where known), the zero of the log scale.
        log: the scale.
    """

    X: np.ndarray
    Y: np.ndarray
    Z: np.ndarray
    C: np.ndarray
    vmin: float
    vmax: float
    floor: float
    log: bool

    def colour_value(self, z: np.ndarray) -> np.ndarray:
        """The coloured quantity of loss values ``z`` (the 3-D view's height)."""
        z = np.asarray(z, dtype=float)
        with np.errstate(all="ignore"):
            c = np.log10(np.maximum(z - self.floor, 0) + self._delta) if self.log else z
        return np.clip(np.where(np.isfinite(c), c, self.vmax), self.vmin, self.vmax)

    @property
    def _delta(self) -> float:
        finite = self.Z[np.isfinite(self.Z)]
        top = float(finite.max()) if finite.size else 1.0
        return 1e-6 * max(1.0, top - self.floor)


def landscape_grid(f: TestFunction, resolution: int = 120, log: bool = False) -> LandscapeGrid:
    """``f`` on a ``resolution²`` grid over its domain, safe to colour.

    Non-finite values (a pole of a typed expression) become NaN; when a few values dwarf
    the rest, the colour range stops at the 99th percentile, so a pole does not paint the
    whole picture one colour. The log scale colours ``log10(f − floor + δ)`` with ``δ`` a
    millionth of the range, as ``sampy.plot.landscape`` does, and its colours stop where the
    grid samples the shallowest of the known minima (``_coarsest_minimum``), so that a narrow
    well is as dark as a wide one of the same depth.
    """
    (x0, x1), (y0, y1) = f.domain
    X, Y = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
    with np.errstate(all="ignore"):
        Z = np.asarray(f(np.stack([X, Y], axis=-1)), dtype=float)
    Z = np.where(np.isfinite(Z), Z, np.nan)
    finite = Z[np.isfinite(Z)]
    if finite.size == 0:
        raise ValueError("the function has no finite value on its domain")
    floor = float(f.fmin) if math.isfinite(f.fmin) else float(finite.min())
    floor = min(floor, float(finite.min()))
    delta = 1e-6 * max(1.0, float(finite.max()) - floor)
    with np.errstate(all="ignore"):
        C = np.log10(Z - floor + delta) if log else Z
    values = C[np.isfinite(C)]
    lo, hi = float(values.min()), float(values.max())
    p_lo, p_hi = (float(v) for v in np.percentile(values, [1, 99]))
    spread = max(p_hi - p_lo, 1e-12)
    # Outliers: a tail ten times longer than the bulk's spread is cut at the percentile.
    if hi - p_hi > 10 * spread:
        hi = p_hi
    if p_lo - lo > 10 * spread:
        lo = p_lo
    if log:
        lo = max(lo, _coarsest_minimum(f, X, Y, C))
    if not hi > lo:
        hi = lo + 1.0
    return LandscapeGrid(X, Y, Z, C, lo, hi, floor, log)


def _coarsest_minimum(f: TestFunction, X: np.ndarray, Y: np.ndarray, C: np.ndarray) -> float:
    """The highest of the known minima's colour values as the grid samples them, or −inf.

    The grid samples a narrow well's bottom far above the minimum (sharp_flat's slit, 0.01
    wide, at 10^-2.3 on a 140-point grid, where the flat well reaches 10^-3.7): on a log scale
    the sharp well would look shallower than the flat one, though both are equally deep. The
    colours stop at this value, so every minimum is drawn in the darkest colour.
    """
    xs, ys = X[0], Y[:, 0]
    highest = -math.inf
    for x, y in np.asarray(f.minima, dtype=float).reshape(-1, 2):
        if not (xs[0] <= x <= xs[-1] and ys[0] <= y <= ys[-1]):
            continue
        i = int(np.clip(np.searchsorted(ys, y), 1, len(ys) - 1))
        j = int(np.clip(np.searchsorted(xs, x), 1, len(xs) - 1))
        cell = C[i - 1 : i + 1, j - 1 : j + 1]  # the grid cell around the minimum
        if np.isfinite(cell).any():
            highest = max(highest, float(np.nanmin(cell)))
    return highest


# --------------------------------------------------------------------------- exports


def _literal(value: object) -> str:
    """Python source for a hyperparameter value (floats round-trip exactly through repr)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return repr(value)
    if isinstance(value, (int, np.integer)):
        return repr(int(value))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isnan(value):
            return "float('nan')"
        if math.isinf(value):
            return "float('inf')" if value > 0 else "-float('inf')"
        return repr(value)
    if isinstance(value, (tuple, list)):
        inner = ", ".join(_literal(v) for v in value)
        return (
            f"({inner},)"
            if isinstance(value, tuple) and len(value) == 1
            else (f"({inner})" if isinstance(value, tuple) else f"[{inner}]")
        )
    raise ValueError(f"cannot write {value!r} as a Python literal")


def _base_source(base: str, lr: float) -> str:
    lr_text = _literal(float(lr))
    if base == "SGD":
        return f"SGD(lr={lr_text})"
    if base == "momentum":
        return f"SGD(lr={lr_text}, momentum=0.9)"
    if base == "Adam":
        return f"Adam(lr={lr_text})"
    raise ValueError(f"base must be one of {list(BASES)}, got {base!r}")


def snippet(settings: LabSettings) -> str:
    """One line of Python that reproduces the runs with sampy: it leaves ``runs``, a dict
    from each variant's label to its ``sampy.Trajectory`` (the same iterates, bit for bit).

    Raises ``ValueError`` for settings that cannot run (the widget shows the message).
    """
    if settings.function == EXPRESSION:
        box = _literal(float(settings.box))
        f_src = (
            f"f = sampy.expressions.expression_function({settings.expression.strip()!r}, "
            f"domain=((-{box}, {box}), (-{box}, {box})))"
        )
        imports = "import sampy, sampy.expressions"
    else:
        f_src = f"f = sampy.functions.get({settings.function!r})"
        imports = "import sampy"
    if settings.noise > 0:
        f_src += (
            f"; f = sampy.problems.NoisyGradient(f, sigma={_literal(float(settings.noise))}, "
            f"seed={int(settings.seed)})"
        )
    x0 = as_start(settings.x0)
    start = f"[{_literal(float(x0[0]))}, {_literal(float(x0[1]))}]"
    bound = "" if settings.bound == 1e6 else f", bound={_literal(float(settings.bound))}"
    base = _base_source(settings.base, settings.lr)
    entries = []
    for variant, label in zip(settings.variants, variant_labels(settings.variants), strict=True):
        _, values = make_optimizer(variant, settings.lr, settings.base)  # validates
        row, _ = method_row(variant.method)
        if row is None:
            opt = base
        else:
            args = ", ".join(f"{k}={_literal(v)}" for k, v in values.items())
            base_arg = base if row.takes_base else "None"
            opt = f"sampy.variant({row.name!r}).make({base_arg}, {args})"
        entries.append(f"{label!r}: sampy.run({opt}, f, {start}, {int(settings.steps)}{bound})")
    optim_names = "SGD, Adam" if settings.base == "Adam" else "SGD"
    return (
        f"{imports}; from sampy.optim import {optim_names}; {f_src}; "
        f"runs = {{{', '.join(entries)}}}"
    )


def _settings_json(settings: LabSettings) -> str:
    data = dataclasses.asdict(settings)
    return json.dumps(data, default=lambda v: repr(v), ensure_ascii=False)


def trajectories_csv(runs: Sequence[VariantRun]) -> bytes:
    """The trajectories as CSV (UTF-8): ``variant, step, x, y, loss, grad_evals, diverged``,
    one row per variant and iterate (``grad_evals``: used up to that step)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["variant", "step", "x", "y", "loss", "grad_evals", "diverged"])
    for vrun in runs:
        if not vrun.ok:
            continue
        losses = loss_curve(vrun)
        evals = vrun.evals_per_step
        k = vrun.diverged_at
        for step, ((x, y), loss, used) in enumerate(zip(vrun.xs, losses, evals, strict=True)):
            diverged = int(k is not None and step >= k)
            writer.writerow([vrun.label, step, repr(float(x)), repr(float(y)), repr(float(loss)),
                             int(used), diverged])  # fmt: skip
    return out.getvalue().encode("utf-8")


def trajectories_npz(runs: Sequence[VariantRun], settings: LabSettings | None = None) -> bytes:
    """The trajectories as a NumPy ``.npz`` archive (bytes), for ``np.load(io.BytesIO(b))``.

    Arrays: ``labels`` (strings), ``xs`` ``(n, steps + 1, 2)``, ``losses`` ``(n, steps + 1)``,
    ``grad_evals`` ``(n,)``, ``diverged_at`` ``(n,)`` (-1: never), and, with ``settings``,
    ``settings`` (JSON) and ``snippet`` (the line that reproduces the runs).
    """
    ran = [vrun for vrun in runs if vrun.ok]
    arrays: dict[str, np.ndarray] = {
        "labels": np.array([vrun.label for vrun in ran], dtype=str),
        "xs": np.stack([vrun.xs for vrun in ran]) if ran else np.zeros((0, 0, 2)),
        "losses": np.stack([loss_curve(vrun) for vrun in ran]) if ran else np.zeros((0, 0)),
        "grad_evals": np.array([vrun.grad_evals for vrun in ran], dtype=int),
        "diverged_at": np.array(
            [-1 if vrun.diverged_at is None else vrun.diverged_at for vrun in ran], dtype=int
        ),
    }
    if settings is not None:
        arrays["settings"] = np.array(_settings_json(settings))
        try:
            arrays["snippet"] = np.array(snippet(settings))
        except ValueError:
            pass
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()
