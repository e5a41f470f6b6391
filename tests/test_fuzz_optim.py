"""Every registry variant × every test function × hostile hyperparameters and start points.

Each case ends one of two documented ways: a ``ValueError`` that names the hyperparameter (or
run argument) that was bad, or a run whose divergence is recorded (``diverged_at``), with every
recorded point finite, within the bound until it diverged and frozen after. Never another
exception, never a hang (a per-case alarm). Seeded (numpy's generator, one stream per variant)
and bounded (a few steps from a few start points), so it runs in seconds and never flakes: the
reliability review's A5, A6, B1 and B2 found their holes with such cases.
"""

from __future__ import annotations

import math
import re
import signal
from contextlib import contextmanager
from fractions import Fraction

import numpy as np
import pytest

import sampy
from sampy import functions, problems
from sampy.optim import SGD, Adam

ROWS = sampy.variants()
FUNCTIONS = functions.names()
LOGISTIC = problems.make_logistic_problem()
SEED = 15
STEPS = 6
CASE_SECONDS = 10

# Values no real hyperparameter accepts (the range says finite, real, a number, a scalar).
NOT_A_NUMBER = [
    math.nan,
    math.inf,
    -math.inf,
    10**400,
    np.bool_(True),
    True,
    "0.1",
    None,
    1 + 0j,
    np.complex128(1),
    [0.1],
    object(),
    np.array(["a"]),
    np.array([True]),
    np.longdouble("inf"),
]
NOT_A_CHOICE = [np.array(["a", "b"]), None, 1, "no-such-choice", ["x"]]
NOT_A_BOOL = ["yes", None, 1.5, np.array([True, False])]


def _named(name: str) -> re.Pattern:
    return re.compile(rf"(?<![A-Za-z_]){re.escape(name)}(?![A-Za-z_])")


@contextmanager
def _at_most(seconds: int, what: str):
    def hang(*_):
        raise AssertionError(f"{what} took more than {seconds} s (a hang?)")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _is_plus_inf(value: object) -> bool:
    return isinstance(value, float | np.floating) and value == math.inf


def _hostile(spec, rng: np.random.Generator) -> object:
    """A value outside ``spec``'s range or type."""
    if spec.kind == "choice":
        return NOT_A_CHOICE[rng.integers(len(NOT_A_CHOICE))]
    if spec.kind == "bool":
        return NOT_A_BOOL[rng.integers(len(NOT_A_BOOL))]
    if spec.kind in ("tuple", "subset"):
        head = tuple(spec.default[:-1])
        bad = NOT_A_NUMBER[rng.integers(len(NOT_A_NUMBER))]
        return (*head, bad) if rng.random() < 0.7 else np.array(spec.default)
    pool = [v for v in NOT_A_NUMBER if not (spec.allow_inf and _is_plus_inf(v))]
    if spec.low is not None:
        pool.append(spec.low - 1.0 if not spec.low_open else spec.low)
    if spec.high is not None:
        pool.append(spec.high + 1.0 if not spec.high_open else spec.high)
    if spec.kind == "int":
        pool += [1.5, (spec.low or 0) + 0.5]
        if spec.high is not None:
            pool.append(10**30)
    if not spec.per_point:
        pool.append(np.array([spec.default, spec.default]) if spec.default is not None else [1])
    value = pool[rng.integers(len(pool))]
    if value is None and spec.default is None:
        return math.nan  # None switches an optional knob off: a valid value
    return value


def _extreme(spec, rng: np.random.Generator) -> object:
    """A valid value at the edge of ``spec``'s range: tiny, huge, an end, a fraction."""
    if spec.kind == "choice":
        return spec.choices[rng.integers(len(spec.choices))]
    if spec.kind == "bool":
        return bool(rng.integers(2))
    if spec.kind in ("tuple", "subset"):
        return spec.default
    if spec.kind == "int":
        low = int(spec.low or 0) + int(spec.low_open)
        high = int(spec.high) if spec.high is not None else low + 12
        return int(rng.choice([low, high, (low + high) // 2]))
    low = 0.0 if spec.low is None else spec.low
    candidates = []
    if not spec.low_open:
        candidates.append(float(low))
    candidates.append(float(np.nextafter(low, math.inf)) if spec.low_open else low + 1e-320)
    if spec.high is None:
        candidates += [1e308, 1e154, 10.0 ** rng.uniform(-8, 300)]
        if spec.allow_inf:
            candidates.append(math.inf)
    else:
        candidates.append(float(spec.high) if not spec.high_open else float(spec.high) * 0.999)
        candidates.append(Fraction(1, 3) * (low + spec.high))
    return candidates[rng.integers(len(candidates))]


def _starts(f, rng: np.random.Generator) -> np.ndarray:
    """Four start points: a minimum (zero gradient), a far one, a tiny one, a random one."""
    dim = f.dim
    minima = np.asarray(getattr(f, "minima", np.zeros((0, dim))))
    at_min = minima[0][:dim] if len(minima) else np.zeros(dim)
    scale = 10.0 ** rng.uniform(-3, 2)
    far = rng.choice([1e150, 1e300, 1e6])
    return np.stack(
        [
            at_min,
            np.full(dim, far) * rng.choice([-1, 1], dim),
            np.full(dim, 1e-300),
            rng.standard_normal(dim) * scale,
        ]
    )


def _check_trajectory(traj, bound: float, label: str) -> None:
    xs, diverged_at = traj.xs, traj.diverged_at
    assert np.all(np.isfinite(xs)), f"{label}: a recorded point is not finite"
    for i, k in enumerate(diverged_at.reshape(-1)):
        path = xs.reshape(xs.shape[0], -1, xs.shape[-1])[:, i]
        if k < 0:  # the start is not judged: divergence is of the iterates
            assert np.abs(path[1:]).max(initial=0) <= bound, f"{label}: beyond the bound"
        else:
            assert np.all(path[k:] == path[k - 1]), f"{label}: point {i} not frozen"


def _build(row, hyper: dict, base_lr: float):
    if row.takes_base:
        return row.make(SGD(lr=base_lr, momentum=0.9) if base_lr < 1 else Adam(lr=base_lr), **hyper)
    return row.make(None, **hyper)


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_every_variant_on_every_function_refuses_by_name_or_records_divergence(row):
    rng = np.random.default_rng([SEED, ROWS.index(row)])
    specs = [spec for spec in row.hyperparameters if spec.name not in row.preset]
    outcomes = {"refused": 0, "ran": 0}
    for fname in FUNCTIONS:
        f = LOGISTIC if row.needs_examples else functions.get(fname)
        spec = specs[rng.integers(len(specs))]
        hostile = rng.random() < 0.5
        value = _hostile(spec, rng) if hostile else _extreme(spec, rng)
        bound = float(rng.choice([1e6, 10.0, 1e200, math.inf]))
        base_lr = float(10.0 ** rng.uniform(-6, 3))
        label = f"{row.name}({spec.name}={value!r}) on {fname}, bound={bound}"
        with _at_most(CASE_SECONDS, label):
            try:
                opt = _build(row, {spec.name: value}, base_lr)
                traj = sampy.run(opt, f, _starts(f, rng), STEPS, bound=bound)
            except ValueError as err:
                assert _named(spec.name).search(str(err)), f"{label}: unnamed error {err}"
                outcomes["refused"] += 1
                continue
        assert not hostile, f"{label}: a hostile value was accepted"
        _check_trajectory(traj, bound, label)
        outcomes["ran"] += 1
    assert outcomes["refused"] > 0 and outcomes["ran"] > 0, outcomes


RUN_ARGUMENTS = [
    ("x0", {"x0": [1 + 1j, 0.0]}),
    ("x0", {"x0": [object(), 1.0]}),
    ("x0", {"x0": [10**400, 0.0]}),
    ("x0", {"x0": [[1.0, 2.0], [3.0]]}),
    ("x0", {"x0": ["0.1", "0.2"]}),
    ("steps", {"steps": 10**20}),
    ("steps", {"steps": np.bool_(True)}),
    ("steps", {"steps": 10**400}),
    ("bound", {"bound": "1"}),
    ("bound", {"bound": None}),
    ("bound", {"bound": 1j}),
    ("bound", {"bound": np.array([1.0, 2.0])}),
    ("bound", {"bound": math.nan}),
    ("bound", {"bound": 0.0}),
    ("optimizer", {"optimizer": None}),
    ("optimizer", {"optimizer": SGD}),
]


@pytest.mark.parametrize(("name", "change"), RUN_ARGUMENTS, ids=[str(c) for _, c in RUN_ARGUMENTS])
def test_run_refuses_its_own_bad_arguments_by_name(name, change):
    args = {"optimizer": SGD(lr=0.1), "f": "sphere", "x0": [1.0, 1.0], "steps": 3, **change}
    bound = args.pop("bound", 1e6)
    with pytest.raises(ValueError, match=_named(name)):
        sampy.run(args["optimizer"], args["f"], args["x0"], args["steps"], bound=bound)


@pytest.mark.parametrize(("bound", "first"), [(1e200, 1), (math.inf, 2)])
def test_huge_and_infinite_bounds_work_and_still_mark_non_finite_points(bound, first):
    """The review's A6: bound=1e200 overflowed bound**2; bound=inf let ±inf points through.
    Step 1 gives -2e300 (finite, beyond 1e200), step 2 -inf."""
    traj = sampy.run(SGD(lr=1e300), "sphere", [[1.0, 1.0], [0.0, 0.0]], 4, bound=bound)
    assert traj.diverged_at.tolist() == [first, -1]
    assert np.all(np.isfinite(traj.xs))


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: functions.get("rosenbrock", foo=1), "foo"),
        (lambda: functions.get(["rosenbrock"]), "name"),
        (lambda: functions.get(None), "name"),
    ],
)
def test_functions_get_names_a_bad_name_or_parameter(call, name):
    with pytest.raises(ValueError, match=name):
        call()
