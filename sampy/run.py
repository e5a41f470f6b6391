"""Run an optimizer from many start points at once and record what happened."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from sampy import functions
from sampy._checks import check_int, check_real, shown
from sampy.functions import TestFunction
from sampy.optim.base import Optimizer, Oracle


@dataclass(frozen=True, eq=False)
class Trajectory:
    """What a run did, for every start point.

    Attributes:
        xs: points, shape ``(steps + 1, *batch, d)``; a diverged point stays frozen at its last
            good position from the step it diverged on.
        f: the function that was minimised (``losses`` evaluates it, once, on demand).
        grad_evals: gradient evaluations the optimizer asked the oracle for (whole batch).
        diverged_at: per start point, the first step whose iterate was non-finite or beyond
            ``bound`` (-1 if it never diverged), shape ``batch``.
        bound: the divergence bound on ``max_i |x_i|``.
    """

    xs: np.ndarray
    f: Callable[[np.ndarray], np.ndarray]
    grad_evals: int
    diverged_at: np.ndarray
    bound: float

    @cached_property
    def losses(self) -> np.ndarray:
        """Loss at every point of ``xs``, shape ``(steps + 1, *batch)``.

        Computed on first use in one vectorised call: a run that only needs the points (the
        playground, the benchmarks) does not pay for the losses.
        """
        with np.errstate(all="ignore"):
            return np.asarray(self.f(self.xs), dtype=float)

    @property
    def steps(self) -> int:
        """Number of steps taken."""
        return self.xs.shape[0] - 1

    @property
    def diverged(self) -> np.ndarray:
        """Boolean per start point: did it diverge?"""
        return self.diverged_at >= 0

    @property
    def final(self) -> np.ndarray:
        """The last points, shape ``(*batch, d)``."""
        return self.xs[-1]

    @property
    def final_loss(self) -> np.ndarray:
        """The loss at the last points, shape ``batch``."""
        return self.losses[-1]

    def report(self) -> str:
        """One line on divergence, for widgets and logs."""
        n = self.diverged_at.size
        k = int(np.count_nonzero(self.diverged))
        if k == 0:
            return f"{n} start point(s), none diverged"
        first = int(self.diverged_at[self.diverged].min())
        return f"{k} of {n} start point(s) diverged (first at step {first})"


def _squared_norm_of(x0: np.ndarray) -> Callable[[np.ndarray], float]:
    """``x -> Σ x²`` over the whole batch, the cheapest way for arrays the size of ``x0``.

    ``np.vdot`` is the fastest call for a few points, but above ~8k elements OpenBLAS splits it
    over threads, and on a busy 2-core machine every step then waits for a second core;
    einsum stays on one thread.
    """
    if x0.size <= 8192:
        return lambda x: np.vdot(x, x)
    return lambda x: np.einsum("i,i->", x.reshape(-1), x.reshape(-1))


# The documented maxima of one run: its step count, and the size of the record it allocates
# (``xs`` holds ``(steps + 1) * x0.size`` floats; 2**30 of them take 8 GiB).
MAX_STEPS = 10_000_000
MAX_RECORDED = 2**30


def _check_optimizer(optimizer: object) -> None:
    """``ValueError`` unless ``optimizer`` is an optimizer instance (``init`` and ``step``)."""
    if isinstance(optimizer, type) or not (
        callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "step", None))
    ):
        raise ValueError(
            "optimizer must be a sampy.optim optimizer instance (with init and step), got "
            f"{shown(optimizer)}; build one first, e.g. sampy.optim.SAM(sampy.optim.SGD(lr=0.01))"
        )


def _start_points(x0: object) -> np.ndarray:
    """``x0`` as a float array; ``ValueError`` naming it unless it holds real numbers only."""
    try:
        raw = np.asarray(x0)
    except (ValueError, TypeError) as err:  # ragged nesting
        raise ValueError(
            f"x0 must be an array of real numbers of shape (d,) or (*batch, d), got "
            f"{shown(x0)} ({err}); pass equal-length rows"
        ) from None
    if raw.dtype.kind not in "iufO":
        raise ValueError(
            f"x0 must be real numbers, got {shown(x0)} (dtype {raw.dtype}); pass floats"
        )
    try:
        with np.errstate(over="ignore"):
            return np.array(raw, dtype=float)
    except (OverflowError, TypeError, ValueError):
        raise ValueError(
            f"x0 must be real numbers that fit a float, got {shown(x0)}; pass floats"
        ) from None


def _as_function(f: TestFunction | Callable | str) -> TestFunction | Callable:
    if isinstance(f, str):
        return functions.get(f)
    if not callable(f):
        raise ValueError(f"f must be a test function, a function name or a callable, got {f!r}")
    return f


def run(
    optimizer: Optimizer,
    f: TestFunction | Callable | str,
    x0: np.ndarray,
    steps: int,
    *,
    bound: float = 1e6,
) -> Trajectory:
    """Run ``optimizer`` on ``f`` from every start point in ``x0`` for ``steps`` steps.

    Args:
        optimizer: any ``sampy.optim`` optimizer (``init``/``step``).
        f: a ``TestFunction``, a registered name (``"rosenbrock"``), a batched
            ``autograd.numpy`` callable (gradient by autograd), or a problem from
            ``sampy.problems`` (a ``SumOfExamples`` for the variants that need examples, a
            ``NoisyGradient`` for stochastic gradients); ``losses`` are then the mean (and
            noise-free) loss.
        x0: start points, shape ``(d,)`` or ``(*batch, d)``.
        steps: number of steps, ``0 <= steps <= MAX_STEPS`` (ten million), and the record
            ``(steps + 1) * x0.size`` at most ``MAX_RECORDED`` (2**30 floats, 8 GiB).
        bound: a point with a non-finite coordinate or ``max|x_i| > bound`` is marked diverged
            and frozen; nothing raises. A positive number; ``math.inf`` means no bound (only
            non-finite points diverge).

    Bad input (an optimizer class instead of an instance, complex or too-large start points,
    a bound that is not a positive number, too many steps) raises a ``ValueError`` naming it.
    """
    _check_optimizer(optimizer)
    f = _as_function(f)
    x0 = _start_points(x0)
    if x0.ndim == 0:
        raise ValueError("x0 must have shape (d,) or (*batch, d), got a scalar")
    dim = getattr(f, "dim", None)
    if dim is not None and x0.shape[-1] != dim:
        raise ValueError(
            f"x0 must have last dimension {dim} (the dimension of {f.name!r}), got shape {x0.shape}"
        )
    check_int("steps", steps, 0, MAX_STEPS)
    check_real(
        "bound",
        bound,
        0.0,
        None,
        low_open=True,
        allow_inf=True,
        array_ok=False,
        hint="pass a positive number (math.inf for no bound)",
    )
    bound = float(bound)
    if not np.all(np.isfinite(x0)):
        raise ValueError("x0 must be finite")
    if (steps + 1) * x0.size > MAX_RECORDED:
        raise ValueError(
            f"steps={steps} from {x0.size // max(x0.shape[-1], 1)} point(s) would record "
            f"{(steps + 1) * x0.size:.3g} floats, above MAX_RECORDED = 2**30 (8 GiB); "
            "take fewer steps or fewer start points"
        )

    oracle = Oracle(f)
    batch = x0.shape[:-1]
    xs = np.empty((steps + 1, *x0.shape))
    xs[0] = x0
    diverged_at = np.full(batch, -1, dtype=int)
    active = np.ones(batch, dtype=bool)
    # A bound above ~1.3e154 has no finite square: the cheap test then compares with the
    # largest float, which an infinite or overflowing norm still exceeds.
    bound_sq = min(bound, 1e154) ** 2
    squared_norm = _squared_norm_of(x0)
    frozen = False
    x, state = x0, optimizer.init(x0)
    with np.errstate(all="ignore"):
        for k in range(1, steps + 1):
            x_new, state = optimizer.step(x, state, oracle)
            # Cheap whole-batch test first: every |x_i| <= ‖x‖ <= bound if Σx² <= bound²
            # (finite), and NaN/inf make it fail. Only then the exact per-point check, which
            # also runs on every step once a point has diverged, to keep it frozen; it tests
            # finiteness on its own, since max|x| <= inf holds for an infinite x.
            if frozen or not squared_norm(x_new) <= bound_sq:
                bad = ~(np.isfinite(x_new).all(axis=-1) & (np.abs(x_new).max(axis=-1) <= bound))
                newly = bad & active
                diverged_at[newly] = k
                active = active & ~bad
                x_new = np.where(active[..., None], x_new, x)
                frozen = not active.all()
                if not active.any():
                    xs[k:] = x_new
                    break
            xs[k] = x_new
            x = x_new
    return Trajectory(xs=xs, f=f, grad_evals=oracle.calls, diverged_at=diverged_at, bound=bound)
