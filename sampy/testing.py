"""Assertions that test your own optimizer against sampy's references on toy functions.

The pytest plugin (``sampy.pytest_plugin``) re-exports them next to its fixture; they need
no pytest themselves (a plain ``assert``-style ``AssertionError``), so they work under
unittest or in a notebook too.

"The user's optimizer" is either

- a step function ``step(x, grad) -> x_next`` (``x``: points ``(..., d)``, ``grad``: the
  function's gradient, batched the same way; bind hyperparameters with
  ``functools.partial``), or
- an optimizer object with sampy's protocol: ``state = opt.init(x)`` and
  ``x, state = opt.step(x, state, oracle)`` (``oracle.grad(x)`` gives the gradient).

The messages are as specific as the exercise checkers': the step, the start point and the
coordinate where the trajectories first part, the values on both sides and how far apart
they are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from sampy.functions import TestFunction
    from sampy.optim.base import BaseOptimizer
    from sampy.registry import Variant

# sampy's modules are imported where they are used: the pytest plugin imports this module in
# every pytest session of a project that has sampy installed.

UserOptimizer = Any  # a step function step(x, grad), or an object with init and step

__all__ = [
    "assert_follows_reference",
    "assert_reaches_minimum",
    "assert_reduces_to_base_at_rho_zero",
    "start_points",
]


def start_points(function: TestFunction, n: int = 4, seed: int = 0) -> np.ndarray:
    """``n`` start points drawn uniformly from the middle half of ``function``'s domain.

    The middle half keeps the points away from the box's edges, where some functions
    (Rosenbrock, Goldstein-Price) have gradients large enough to throw a step far away.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a whole number >= 1 (the number of points), got {n!r}")
    low, high = np.array(function.domain, dtype=float).T
    centre, half = (low + high) / 2, (high - low) / 4
    rng = np.random.default_rng(seed)
    return centre + half * rng.uniform(-1.0, 1.0, size=(n, function.dim))


def _as_function(function: TestFunction | str) -> TestFunction:
    from sampy import functions
    from sampy.functions import TestFunction

    if isinstance(function, str):
        return functions.get(function)
    if not isinstance(function, TestFunction):
        raise ValueError(
            f"function must be a sampy.functions.TestFunction or its name, got {function!r}"
        )
    return function


def _check_steps(steps: object) -> int:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a whole number >= 1, got {steps!r}")
    return int(steps)


def _is_optimizer(user: UserOptimizer) -> bool:
    return callable(getattr(user, "init", None)) and callable(getattr(user, "step", None))


def _steps_of(user: UserOptimizer, function: TestFunction, x0: np.ndarray) -> Iterator[Any]:
    """The user's iterates after step 1, 2, ... (whatever they return, unchecked)."""
    from sampy.optim.base import Oracle

    if _is_optimizer(user):
        oracle = Oracle(function)
        x, state = x0.copy(), user.init(x0.copy())
        while True:
            x, state = user.step(x, state, oracle)
            yield x
    elif callable(user):
        x = x0.copy()
        while True:
            x = user(x, function.grad)
            yield x
    else:
        raise ValueError(
            "the optimizer under test must be a step function step(x, grad) -> x_next or an "
            f"object with init(x) and step(x, state, oracle), got {user!r}"
        )


def _describe(user: UserOptimizer) -> str:
    name = getattr(user, "__name__", None) or getattr(getattr(user, "func", None), "__name__", "")
    return f"your step {name}" if name else f"your optimizer {type(user).__name__}"


def _as_points(value: Any, expected_shape: tuple[int, ...], k: int, who: str) -> np.ndarray:
    """The user's iterate as a float array of the right shape, or an AssertionError saying
    why not (None returned, a tuple, the wrong shape)."""
    if value is None:
        raise AssertionError(f"step {k}: {who} returned None; return the new points")
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    try:
        points = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise AssertionError(
            f"step {k}: {who} returned {type(value).__name__}, not an array of points"
        ) from None
    if points.shape != expected_shape:
        raise AssertionError(
            f"step {k}: {who} returned shape {points.shape}, expected {expected_shape} (the "
            f"shape of x0)"
        )
    return points


def _tolerances(sample: Any, rtol: float | None, atol: float | None) -> tuple[float, float]:
    # Like the checkers: a float32 answer is compared at float32 precision.
    dtype = getattr(sample, "dtype", None)
    single = str(dtype) in ("float32", "torch.float32", "float16", "torch.float16", "bfloat16")
    default_rtol, default_atol = (1e-4, 1e-6) if single else (1e-7, 1e-10)
    return (default_rtol if rtol is None else rtol), (default_atol if atol is None else atol)


def _first_difference(
    got: np.ndarray, expected: np.ndarray, rtol: float, atol: float
) -> tuple[tuple[int, ...], int] | None:
    bad = ~np.isclose(got, expected, rtol=rtol, atol=atol)
    if not bad.any():
        return None
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    return index[:-1], index[-1]


def _point_text(point: tuple[int, ...]) -> str:
    return f"start point {point[0] if len(point) == 1 else point}, " if point else ""


def _compare_trajectories(
    user: UserOptimizer,
    reference: UserOptimizer,
    function: TestFunction,
    x0: np.ndarray,
    steps: int,
    rtol: float | None,
    atol: float | None,
    what: str,
) -> None:
    who = _describe(user)
    ours, theirs = _steps_of(reference, function, x0), _steps_of(user, function, x0)
    previous = x0
    for k in range(1, steps + 1):
        # Overflow and 0/0 are reported below as a non-finite point, with their step.
        with np.errstate(all="ignore"):
            expected = np.asarray(next(ours), dtype=float)
            raw = next(theirs)
        if not np.all(np.isfinite(expected)):
            # Comparing two blow-ups says nothing about the user's optimizer.
            raise ValueError(
                f"{what} itself diverges at step {k} on {function.name} from x0 (a non-finite "
                f"point): choose a smaller learning rate, fewer steps or other start points"
            )
        got = _as_points(raw, x0.shape, k, who)
        r, a = _tolerances(raw, rtol, atol)
        if not np.all(np.isfinite(got)):
            raise AssertionError(
                f"step {k}: {who} gave a non-finite point ({got.tolist()}) where {what} is at "
                f"{expected.tolist()}; a division by a zero norm?"
            )
        difference = _first_difference(got, expected, r, a)
        if difference is not None:
            point, i = difference
            at = (*point, i)
            raise AssertionError(
                f"step {k}, {_point_text(point)}coordinate {i}: {who} gives {float(got[at])!r} "
                f"where {what} gives {float(expected[at])!r} (difference "
                f"{abs(got[at] - expected[at]):.3g}, "
                f"rtol={r:g}, atol={a:g}); the point before this step was "
                f"{np.asarray(previous)[point].tolist()}"
                + ("" if k > 1 else "; the very first step differs")
            )
        previous = expected


def assert_follows_reference(
    step_or_optimizer: UserOptimizer,
    variant_name: str | Variant,
    function: TestFunction | str,
    x0: Sequence[float] | np.ndarray,
    steps: int = 20,
    *,
    base: BaseOptimizer | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    **hyper: Any,
) -> None:
    """Assert that the user's optimizer follows a registry variant's reference trajectory.

    Args:
        step_or_optimizer: a step function ``step(x, grad)`` or an optimizer object with
            sampy's ``init``/``step`` protocol (see the module's docstring).
        variant_name: a row of ``sampy.variants()`` (``"SAM"``, ``"GSAM"``, ``"LookSAM"``...).
        function: a ``TestFunction`` or its name.
        x0: start points ``(d,)`` or ``(n, d)``.
        steps: how many steps to compare (>= 1).
        base: the reference's base optimizer (default ``SGD(lr=0.01)``; ignored by the
            variants with a built-in base, which take ``lr`` among ``hyper``).
        rtol, atol: tolerances per coordinate; by default 1e-7 and 1e-10, or 1e-4 and 1e-6
            when the user's points are float32.
        **hyper: the variant's hyperparameters (``rho=0.05``, ``alpha=0.4``...).

    Raises:
        AssertionError: naming the first step, start point and coordinate that differ.
    """
    from sampy.optim import SGD
    from sampy.registry import Variant, variant

    row = variant_name if isinstance(variant_name, Variant) else variant(variant_name)
    function = _as_function(function)
    steps = _check_steps(steps)
    x0 = np.array(x0, dtype=float)
    reference = row.make(base if base is not None else SGD(lr=0.01), **hyper)
    settings = ", ".join(f"{k}={v!r}" for k, v in hyper.items())
    what = f"sampy's {row.name}({settings})"
    _compare_trajectories(step_or_optimizer, reference, function, x0, steps, rtol, atol, what)


def assert_reduces_to_base_at_rho_zero(
    make: Callable[[float], UserOptimizer],
    base: UserOptimizer,
    function: TestFunction | str,
    x0: Sequence[float] | np.ndarray,
    steps: int = 20,
    *,
    rho: float = 0.05,
    rtol: float | None = None,
    atol: float | None = None,
) -> None:
    """Assert that the user's sharpness-aware optimizer is its base at ρ = 0, and is not at ρ.

    Every SAM variant reduces to its base optimizer when the perturbation radius is 0
    (Foret, Kleiner, Mobahi, Neyshabur, "Sharpness-Aware Minimization for Efficiently
    Improving Generalization", ICLR 2021). The second half catches a test that would pass
    for the wrong reason: an optimizer that ignores ρ altogether.

    Args:
        make: ``make(rho)`` builds the user's optimizer (a step function or an optimizer
            object) for a radius ``rho``.
        base: the base it should reduce to: ``sampy.optim.SGD(lr=...)``, another sampy base,
            or the user's own base step.
        function, x0, steps, rtol, atol: as for ``assert_follows_reference``.
        rho: a radius > 0 at which the trajectories must part within ``steps`` steps.
    """
    function = _as_function(function)
    steps = _check_steps(steps)
    if not rho > 0:
        raise ValueError(f"rho must be > 0 (the radius the optimizer must react to), got {rho!r}")
    x0 = np.array(x0, dtype=float)
    what = "the base optimizer"
    _compare_trajectories(make(0.0), base, function, x0, steps, rtol, atol, f"{what} (at ρ = 0)")
    try:
        _compare_trajectories(make(rho), base, function, x0, steps, rtol, atol, what)
    except AssertionError:
        return
    raise AssertionError(
        f"at rho={rho!r} {_describe(make(rho))} still follows the base optimizer for all "
        f"{steps} steps: does rho reach the ascent step?"
    )


def assert_reaches_minimum(
    step_or_optimizer: UserOptimizer,
    function: TestFunction | str,
    x0: Sequence[float] | np.ndarray,
    steps: int = 1000,
    *,
    tol: float = 1e-3,
    minimum: Sequence[float] | np.ndarray | None = None,
) -> None:
    """Assert that the user's optimizer ends within ``tol`` of a known minimiser.

    Args:
        step_or_optimizer: a step function or an optimizer object (module docstring).
        function: a ``TestFunction`` or its name; its ``minima`` are the targets.
        x0: start points ``(d,)`` or ``(n, d)``: every one must arrive.
        steps: how many steps it may take.
        tol: the largest Euclidean distance to the minimiser that counts as arrived.
        minimum: one minimiser every point must reach (default: any of ``function.minima``).
    """
    function = _as_function(function)
    steps = _check_steps(steps)
    if not tol > 0:
        raise ValueError(f"tol must be > 0 (a distance), got {tol!r}")
    targets = np.atleast_2d(np.asarray(function.minima if minimum is None else minimum, float))
    if targets.size == 0:
        raise ValueError(f"{function.name} has no known minimiser: pass minimum=")
    x0 = np.array(x0, dtype=float)
    who = _describe(step_or_optimizer)
    iterates = _steps_of(step_or_optimizer, function, x0)
    x = x0
    for k in range(1, steps + 1):
        with np.errstate(all="ignore"):
            x = _as_points(next(iterates), x0.shape, k, who)
        if not np.all(np.isfinite(x)):
            raise AssertionError(
                f"step {k}: {who} diverged on {function.name} (a non-finite point, "
                f"{x.tolist()}); a smaller learning rate?"
            )
    points = x.reshape(-1, function.dim)
    distances = np.linalg.norm(points[:, None, :] - targets[None, :, :], axis=-1)
    nearest = distances.argmin(axis=1)
    gaps = distances[np.arange(len(points)), nearest]
    worst = int(gaps.argmax())
    if gaps[worst] > tol:
        start = x0.reshape(-1, function.dim)[worst]
        raise AssertionError(
            f"after {steps} steps on {function.name}, {who} is at {points[worst].tolist()} "
            f"(from {start.tolist()}), {gaps[worst]:.3g} from the nearest known minimiser "
            f"{targets[nearest[worst]].tolist()} (tol {tol:g}); the loss there is "
            f"{float(function(points[worst])):.6g}, the minimum {function.fmin:.6g}"
        )
