"""Toy playground: ``sampy.run(SAM(SGD(lr=1e-3), rho=0.05), f, x0, 500)`` on 2-D test functions.

Measured in point-steps per second (start points × steps / seconds) against the LIMIT: the
same SAM written here by hand as a tight vectorised NumPy loop with the analytic gradient,
which also records the whole trajectory into a preallocated array (what ``run`` returns).
The loop is written twice, plainly and with in-place ufuncs (fewer temporaries: faster for
many points, slower for one); the LIMIT is the faster of the two in the same rounds.
Goal: sampy reaches at least 0.8 of the limit, for one start point and for 10,000.

A diagnostic row at N = 10,000 times sampy again with NumPy's OpenBLAS limited to one thread
(see the note it prints): it separates the cost of BLAS threading from sampy's own.

For reference, the loop a student would write first (a Python loop over start points,
``autograd.grad`` of a scalar function per point) is timed too; its cost is linear in
points × steps, so its rate is measured on a shortened run and reported as a rate.

Run alone: ``python -m benchmarks.toy [--quick]``.
"""

from __future__ import annotations

import argparse

import autograd
import autograd.numpy as anp
import numpy as np

import sampy
from benchmarks._common import (
    NOISY,
    OpenBLASThreads,
    Table,
    cell,
    interleaved,
    median,
    noisy,
    rate,
    spread,
)
from sampy.optim import SAM, SGD

LR = 1e-3
RHO = 0.05
EPS = 1e-12  # the guard in rho / (‖g‖ + eps), as davda54/sam and sampy
STEPS = 500
GOAL = 0.8

TWO_PI = 2.0 * np.pi


# --- the limit: hand-written analytic gradients and a vectorised SAM loop ---------------------


def rastrigin_grad(x: np.ndarray) -> np.ndarray:
    """∇ of 10 d + Σ (x² − 10 cos 2πx), for points of shape (..., d)."""
    return 2.0 * x + (10.0 * TWO_PI) * np.sin(TWO_PI * x)


def rosenbrock_grad(x: np.ndarray) -> np.ndarray:
    """∇ of (1 − u)² + 100 (v − u²)² for points of shape (..., 2)."""
    u = x[..., 0]
    valley = x[..., 1] - u * u
    g = np.empty_like(x)
    g[..., 0] = -400.0 * u * valley - 2.0 * (1.0 - u)
    g[..., 1] = 200.0 * valley
    return g


def rastrigin_grad_inplace(x: np.ndarray) -> np.ndarray:
    """``rastrigin_grad`` with in-place ufuncs; the same floating-point operations."""
    g = np.multiply(x, TWO_PI)
    np.sin(g, out=g)
    g *= 10.0 * TWO_PI
    g += 2.0 * x
    return g


def rosenbrock_grad_inplace(x: np.ndarray) -> np.ndarray:
    """``rosenbrock_grad`` with in-place ufuncs; the same floating-point operations."""
    u = x[..., 0]
    valley = x[..., 1] - u * u
    g = np.empty_like(x)
    g0 = g[..., 0]
    np.multiply(u, -400.0, out=g0)
    g0 *= valley
    t = 1.0 - u
    t *= 2.0
    g0 -= t
    np.multiply(valley, 200.0, out=g[..., 1])
    return g


def limit_sam(grad, x0: np.ndarray, steps: int) -> np.ndarray:
    """SAM with SGD, every start point at once, trajectory recorded: ``xs`` (steps+1, *x0.shape).

    w_adv = w + ρ g / (‖g‖ + eps) per point (einsum for the per-point norm); w ← w − lr ∇L(w_adv).
    """
    xs = np.empty((steps + 1, *x0.shape))
    xs[0] = x0
    x = xs[0]
    for k in range(1, steps + 1):
        g = grad(x)
        norm = np.sqrt(np.einsum("...i,...i->...", g, g))[..., None]
        g_adv = grad(x + g * (RHO / (norm + EPS)))
        x = np.subtract(x, LR * g_adv, out=xs[k])
    return xs


def limit_sam_inplace(grad, x0: np.ndarray, steps: int) -> np.ndarray:
    """``limit_sam`` with in-place updates (no temporaries beyond the gradients)."""
    xs = np.empty((steps + 1, *x0.shape))
    xs[0] = x0
    x = xs[0]
    for k in range(1, steps + 1):
        g = grad(x)
        scale = np.sqrt(np.einsum("...i,...i->...", g, g))[..., None]
        scale += EPS
        np.divide(RHO, scale, out=scale)
        g *= scale
        g += x  # g is now the ascent point w + ε
        g_adv = grad(g)
        g_adv *= LR
        x = np.subtract(x, g_adv, out=xs[k])
    return xs


# --- what a student writes first: one start point at a time, autograd per point -------------


def student_rastrigin(x):
    return 20.0 + anp.sum(x**2 - 10.0 * anp.cos(TWO_PI * x))


def student_rosenbrock(x):
    return (1.0 - x[0]) ** 2 + 100.0 * (x[1] - x[0] ** 2) ** 2


def student_sam(f, x0s: np.ndarray, steps: int) -> np.ndarray:
    """A Python loop over start points; two ``autograd.grad`` calls per point and step."""
    grad = autograd.grad(f)
    paths = []
    for x in np.atleast_2d(x0s):
        path = [x]
        for _ in range(steps):
            g = grad(x)
            e = RHO * g / (np.linalg.norm(g) + EPS)
            x = x - LR * grad(x + e)
            path.append(x)
        paths.append(path)
    return np.array(paths)


# --- the benchmark -----------------------------------------------------------------------------

CASES = {
    # name: (plain and in-place gradients, student function, one start point, box for 10,000)
    # The boxes keep every start point from diverging at lr = 1e-3 (checked below), so sampy
    # and the limit do exactly the same arithmetic.
    "rastrigin": (
        (rastrigin_grad, rastrigin_grad_inplace),
        student_rastrigin,
        (3.3, -2.1),
        ((-5.12, 5.12), (-5.12, 5.12)),
    ),
    "rosenbrock": (
        (rosenbrock_grad, rosenbrock_grad_inplace),
        student_rosenbrock,
        (-1.5, 2.0),
        ((-1.5, 1.5), (-0.5, 2.0)),
    ),
}


def sampy_sam(name: str, x0: np.ndarray, steps: int) -> sampy.Trajectory:
    """The call being measured, exactly as a user (or the playground) writes it."""
    return sampy.run(SAM(SGD(lr=LR), rho=RHO), name, x0, steps)


def start_points(box, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    (a, b), (c, d) = box
    return np.stack([rng.uniform(a, b, n), rng.uniform(c, d, n)], axis=-1)


def bench_function(name: str, quick: bool, blas: OpenBLASThreads) -> Table:
    (grad, grad_inplace), student_f, one, box = CASES[name]
    x1 = np.array(one, dtype=float)
    x100 = start_points(box, 100)
    x10k = start_points(box, 10_000)
    student_steps = 10 if quick else 50
    limits = {
        "plain": lambda x0: limit_sam(grad, x0, STEPS),
        "in-place": lambda x0: limit_sam_inplace(grad_inplace, x0, STEPS),
    }

    table = Table(
        f"Toy playground: sampy.run(SAM(SGD(lr={LR:g}), rho={RHO:g}), {name!r}, x0, {STEPS}), "
        f"point-steps/s; baseline = LIMIT (hand-written vectorised NumPy SAM, analytic gradient, "
        f"trajectory recorded)",
        short=f"toy {name}",
    )

    # Same work on every side: the same trajectory, and nobody diverges.
    for x0 in (x1, x10k):
        traj = sampy_sam(name, x0, STEPS)
        if traj.diverged.any():
            raise RuntimeError(f"{name}: {traj.report()}; choose other start points")
        diff = max(float(np.max(np.abs(traj.xs - f(x0)))) for f in limits.values())
        table.notes.append(
            f"N={x0.size // 2}: sampy and both limit loops give the same trajectory "
            f"(max |Δx| = {diff:.1e}); no start point diverges"
        )

    def compare(x0, rounds, warmup, max_seconds=None, extra=None):
        """sampy and both limit loops, interleaved; returns the times and the faster limit."""
        candidates = {k: (lambda f=f: f(x0)) for k, f in limits.items()}
        candidates["sampy"] = lambda: sampy_sam(name, x0, STEPS)
        candidates.update(extra or {})
        min_rounds = 1 if quick else 3
        t = interleaved(candidates, rounds, warmup, max_seconds, min_rounds)
        best = min(limits, key=lambda k: median(t[k]))
        return t, best

    busy = False

    def add(label, n, t, key, best, goal=True):
        nonlocal busy
        busy = busy or noisy(t[key], t[best])
        got = n * STEPS / median(t[key])
        lim = n * STEPS / median(t[best])
        table.add(
            label,
            cell(rate(got), spread(t[key])),
            cell(rate(lim), spread(t[best]), f"({best})"),
            got / lim,
            f">= {GOAL}" if goal else "",
            got / lim >= GOAL if goal else None,
        )

    # N = 1
    t, best1 = compare(x1, rounds=5 if quick else 41, warmup=2)
    add("N=1       sampy.run", 1, t, "sampy", best1)

    # The student's loop at N = 1 (500 steps), against the limit timed in the same rounds.
    t = interleaved(
        {"limit": lambda: limits[best1](x1), "student": lambda: student_sam(student_f, x1, STEPS)},
        rounds=1 if quick else 5,
        warmup=0 if quick else 1,
    )
    got, lim = STEPS / median(t["student"]), STEPS / median(t["limit"])
    table.add(
        "N=1       student loop (autograd per point)",
        cell(rate(got), spread(t["student"])),
        f"{rate(lim)} ({best1})",
        got / lim,
    )

    # N = 100: sampy and the limit; then the student's loop, shortened (each of its
    # point-steps costs two autograd calls, whatever the number of points or steps).
    t, best100 = compare(x100, rounds=5 if quick else 21, warmup=2)
    add("N=100     sampy.run", 100, t, "sampy", best100, goal=False)
    sampy_100 = 100 * STEPS / median(t["sampy"])
    t = interleaved(
        {
            "limit": lambda: limits[best100](x100),
            "student": lambda: student_sam(student_f, x100, student_steps),
        },
        rounds=1 if quick else 3,
        warmup=0,
    )
    got = 100 * student_steps / median(t["student"])
    lim = 100 * STEPS / median(t["limit"])
    table.add(
        f"N=100     student loop ({student_steps} steps, as a rate)",
        rate(got),
        f"{rate(lim)} ({best100})",
        got / lim,
    )
    table.notes.append(
        f"N=100: sampy.run is {sampy_100 / got:.0f}x the student's per-point autograd loop"
    )

    # N = 10,000, with the BLAS diagnostic in the same rounds.
    extra = {}
    threads = blas.get() if blas.available else 0
    if threads > 1:

        def sampy_one_blas_thread():
            blas.set(1)
            try:
                sampy_sam(name, x10k, STEPS)
            finally:
                blas.set(threads)

        extra["sampy_blas1"] = sampy_one_blas_thread
    t, best = compare(
        x10k,
        rounds=1 if quick else 7,
        warmup=0 if quick else 1,
        max_seconds=None if quick else 25,
        extra=extra,
    )
    add("N=10,000  sampy.run", 10_000, t, "sampy", best)
    if extra:
        add("N=10,000  diagnostic: OpenBLAS at 1 thread", 10_000, t, "sampy_blas1", best, False)
        table.notes.append(
            f"diagnostic: the same sampy.run with NumPy's OpenBLAS at 1 thread instead of "
            f"{threads} (the limit uses no BLAS call); a large gap means BLAS threading, e.g. "
            f"np.vdot over all points, costs sampy.run time on this machine"
        )
    table.notes.append(
        f"{len(t['sampy'])} rounds at N=10,000; ±x% = half the interquartile range of the "
        f"rounds, relative to the median; (plain)/(in-place) = the faster limit loop"
    )
    if busy:
        table.notes.append(NOISY)
    return table


def run(quick: bool = False) -> list[Table]:
    """Both test functions; returns the printed tables."""
    tables = []
    blas = OpenBLASThreads()
    for name in CASES:
        table = bench_function(name, quick, blas)
        table.print()
        tables.append(table)
    return tables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (smoke test)")
    run(parser.parse_args().quick)


if __name__ == "__main__":
    main()
