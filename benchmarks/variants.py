"""Every registered SAM variant: ``sampy.run`` against the variant's own gradient-count limit.

For each row of ``sampy.variants()``, built as ``v.make(SGD(lr=1e-3), **v.defaults())`` (the
variants with a built-in base, MSAM and the schedule-free ones, use their own defaults), this
times ``sampy.run(opt, f, x0, steps)`` in point-steps per second (start points × steps /
seconds) at N = 1 (``x0`` of shape ``(2,)``) and N = 10,000 start points.

The baseline is that variant's **LIMIT**: what no implementation of it can avoid, written by
hand here and timed in the same interleaved rounds,

    round(v.evals_per_step(defaults) × steps) calls of the analytic gradient on the same batch,
    spread evenly over the steps, + one copy per step into a preallocated trajectory
    ``xs`` of shape (steps + 1, *x0.shape) (what ``run`` returns: the store is unavoidable).

The limit does none of the variant's own arithmetic (norms, perturbation, base update, the
divergence check of ``run``): ratio = LIMIT time / sampy time says how much of a step is the
gradient work the variant must pay for. Goal: ≥ 0.8 for every variant at both N. The
measurement cell also gives the overhead beyond the limit in µs per step.

For context (no goal), the Rastrigin tables also time ``toy.py``'s LIMIT, the hand-written
vectorised SAM loop, against the same 2-gradient limit: how close a loop that does SAM's
arithmetic and nothing else gets, i.e. what the goal asks of the NumPy step itself.

- Plain-function variants run on Rastrigin (2-D), whose gradient ``2x + 20π sin 2πx`` is
  written twice (plain, and with in-place ufuncs); the faster limit loop in the same rounds
  counts, as in ``toy.py``.
- Variants with ``needs_examples`` (per-example or micro-batch gradients) cannot run on a plain
  function. They run on ``sampy.problems.make_logistic_problem()`` (64 examples, 2 features),
  against a separate limit: evals_per_step × the closed-form mean gradient of that problem,
  written here (one matrix product, one tanh, one matrix product). The registry counts one
  evaluation per example or micro-batch (one backward pass), and vectorised over the examples
  those cost far less than a full-batch gradient each, so for MSharpnessSAM, SSAMF and BSAM
  this limit is lenient; for ESAM and ImbSAM it is tight. Their N = 10,000 run is 5 steps (a
  step costs tens of milliseconds there). Both sides run with NumPy's OpenBLAS at one thread:
  at its default thread count the gradient's small ``(N, 64)·(64, 2)`` product waits for a
  second thread, which on a busy machine made the hand-written gradient several times slower
  and the ratios meaningless (a diagnostic row times the gradient both ways).

Run alone: ``python -m benchmarks.variants [--quick]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

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
from benchmarks.toy import limit_sam, limit_sam_inplace
from sampy.optim import SGD

LR = 1e-3
GOAL = 0.8
N = 10_000
STEPS_1 = 300  # at N = 1, where a step costs microseconds
STEPS_N = 100  # at N = 10,000 on Rastrigin
STEPS_N_EXAMPLES = 5  # at N = 10,000 on the logistic problem (tens of ms per step)
X1 = (3.3, -2.1)

TWO_PI = 2.0 * np.pi


# --- the analytic gradients of the limit ---------------------------------------------------------


def rastrigin_grad(x: np.ndarray) -> np.ndarray:
    """∇ of 10 d + Σ (x² − 10 cos 2πx) (sampy's formula), points of shape (..., d)."""
    return 2.0 * x + (10.0 * TWO_PI) * np.sin(TWO_PI * x)


def rastrigin_grad_inplace(x: np.ndarray) -> np.ndarray:
    """``rastrigin_grad`` with in-place ufuncs (fewer temporaries)."""
    g = np.multiply(x, TWO_PI)
    np.sin(g, out=g)
    g *= 10.0 * TWO_PI
    g += 2.0 * x
    return g


def logistic_grad(problem) -> Callable[[np.ndarray], np.ndarray]:
    """The mean gradient of ``problem`` (a ``LogisticRegression``), hand-written.

    ∇L(w) = −(1/n) Σ_i t_i σ(−t_i⟨w, x_i⟩) x_i + λw, with σ(−z) = (1 + tanh(−z/2))/2: one
    matrix product for the margins, one tanh, one matrix product back. No loss value.
    """
    signed = problem.labels[:, None] * problem.features  # rows t_i x_i
    half = (-0.5 * signed).T  # (d, n): x @ half = −margin/2
    back = signed * (-0.5 / problem.n)  # (n, d)
    l2 = problem.l2

    def grad(x: np.ndarray) -> np.ndarray:
        z = x @ half
        np.tanh(z, out=z)
        z += 1.0
        g = z @ back
        if l2:
            g += l2 * x
        return g

    return grad


def limit_loop(grad, x0: np.ndarray, steps: int, calls: int) -> np.ndarray:
    """``calls`` gradient evaluations spread evenly over ``steps`` steps, trajectory stored.

    Step k makes ``⌊k·calls/steps⌋ − ⌊(k−1)·calls/steps⌋`` calls on the batch (1.1 per step
    for LookSAM: ten steps with one call, then one with two), then copies the points into the
    preallocated ``xs``: the work every implementation of the variant must do.
    """
    xs = np.empty((steps + 1, *x0.shape))
    xs[0] = x0
    x = xs[0]
    done = 0
    for k in range(1, steps + 1):
        due = k * calls // steps
        while done < due:
            grad(x)
            done += 1
        xs[k] = x
    return xs


# --- the benchmark ------------------------------------------------------------------------------


def _optimizer(variant):
    return variant.make(SGD(lr=LR), **variant.defaults())


def _evals(variant) -> float:
    return float(variant.evals_per_step(variant.defaults()))


def _evals_text(e: float) -> str:
    return f"{e:g} ∇/step"


def _us(seconds: float) -> str:
    """Seconds per step as ``+12.3 µs/step`` (``+1,230 µs/step`` from 100 µs on)."""
    us = seconds * 1e6
    return f"{us:+,.0f} µs/step" if abs(us) >= 100 else f"{us:+.3g} µs/step"


def bench_case(
    title: str,
    short: str,
    rows: list,
    f,
    grads: dict[str, Callable],
    x0: np.ndarray,
    steps: int,
    rounds: int,
    warmup: int,
    max_seconds: float | None,
    min_rounds: int,
    references: dict[str, tuple[float, dict[str, Callable]]] | None = None,
    notes: tuple[str, ...] = (),
    blas: OpenBLASThreads | None = None,
) -> Table:
    """Every variant of ``rows`` on ``f`` from ``x0``, against its limit, in the same rounds.

    ``references``: context rows without a goal, ``label: (evals per step, {form: loop})``; a
    hand-written loop ``loop(x0, steps)`` timed against the limit of that many evaluations
    (the faster form counts). ``notes`` are printed under the table. With ``blas``, both
    sides run with NumPy's OpenBLAS at one thread (restored afterwards).
    """
    references = references or {}
    n = 1 if x0.ndim == 1 else x0.shape[0]
    table = Table(title, short=short)
    usable = []
    for v in rows:  # a row that cannot run here is reported, not fatal
        try:
            sampy.run(_optimizer(v), f, x0[..., :1, :] if x0.ndim > 1 else x0, 2)
        except Exception as error:
            table.notes.append(f"SKIPPED {v.name}: {type(error).__name__}: {error}")
        else:
            usable.append(v)
    rows = usable
    if not rows:
        table.notes += notes
        table.print()
        return table
    calls = {v.name: round(_evals(v) * steps) for v in rows}
    ref_calls = {label: round(e * steps) for label, (e, _) in references.items()}
    optimizers = {v.name: _optimizer(v) for v in rows}

    last: dict[str, sampy.Trajectory] = {}

    def sampy_call(name: str) -> Callable[[], None]:
        opt = optimizers[name]

        def call() -> None:
            last[name] = sampy.run(opt, f, x0, steps)

        return call

    candidates: dict[str, Callable[[], object]] = {}
    for count in sorted(set(calls.values()) | set(ref_calls.values())):
        for form, grad in grads.items():
            candidates[f"limit {count} {form}"] = lambda grad=grad, count=count: limit_loop(
                grad, x0, steps, count
            )
    for v in rows:
        candidates[v.name] = sampy_call(v.name)
    for label, (_, loops) in references.items():
        for form, loop in loops.items():
            candidates[f"{label} {form}"] = lambda loop=loop: loop(x0, steps)

    threads = blas.get() if blas is not None and blas.available else 0
    if threads > 1:
        blas.set(1)
    try:
        began = time.perf_counter()
        t = interleaved(candidates, rounds, warmup, max_seconds, min_rounds)
        elapsed = time.perf_counter() - began
    finally:
        if threads > 1:
            blas.set(threads)

    def best_limit(count: int) -> tuple[str, list[float]]:
        form = min(grads, key=lambda g: median(t[f"limit {count} {g}"]))
        return form, t[f"limit {count} {form}"]

    busy = False
    mismatched = []
    for v in rows:
        count = calls[v.name]
        best, lim_t = best_limit(count)
        got_t = t[v.name]
        busy = busy or noisy(got_t, lim_t)
        got = n * steps / median(got_t)
        lim = n * steps / median(lim_t)
        overhead = (median(got_t) - median(lim_t)) / steps
        form = f", {best}" if len(grads) > 1 else ""
        table.add(
            v.name,
            cell(rate(got), spread(got_t), f"({_us(overhead)})"),
            cell(rate(lim), spread(lim_t), f"({_evals_text(_evals(v))}{form})"),
            got / lim,
            f">= {GOAL}",
            got / lim >= GOAL,
        )
        traj = last[v.name]
        if traj.diverged.any():
            table.notes.append(f"{v.name}: {traj.report()} (frozen points do less arithmetic)")
        if traj.grad_evals != count:
            mismatched.append(f"{v.name} {traj.grad_evals} (limit {count})")
    for label, (e, loops) in references.items():
        ref = min(loops, key=lambda form: median(t[f"{label} {form}"]))
        got_t = t[f"{label} {ref}"]
        best, lim_t = best_limit(ref_calls[label])
        got = n * steps / median(got_t)
        lim = n * steps / median(lim_t)
        overhead = (median(got_t) - median(lim_t)) / steps
        form = f", {best}" if len(grads) > 1 else ""
        table.add(
            f"({label}, {ref})",
            cell(rate(got), spread(got_t), f"({_us(overhead)})"),
            cell(rate(lim), spread(lim_t), f"({_evals_text(e)}{form})"),
            got / lim,
        )

    table.notes.append(
        f"N={n}, {steps} steps; {len(t[rows[0].name])} interleaved rounds in {elapsed:.0f} s; "
        f"measurement = sampy.run (overhead per step beyond the limit); baseline = LIMIT: "
        f"round(evals_per_step × steps) analytic-gradient calls + one copy per step into xs"
        + (" (plain/in-place: the faster limit loop)" if len(grads) > 1 else "")
    )
    if mismatched:
        table.notes.append(
            "gradient evaluations counted by the oracle differ from evals_per_step × steps: "
            + "; ".join(mismatched)
        )
    else:
        table.notes.append(
            "every run made exactly round(evals_per_step × steps) gradient evaluations "
            "(oracle count)"
        )
    table.notes += notes
    if busy:
        table.notes.append(NOISY)
    table.print()
    return table


def run(quick: bool = False) -> list[Table]:
    """Rastrigin (plain-function variants) and the logistic problem (the others), N = 1, 10,000."""
    plain = [v for v in sampy.variants() if not v.needs_examples]
    examples = [v for v in sampy.variants() if v.needs_examples]
    rng = np.random.default_rng(0)
    x1 = np.array(X1, dtype=float)
    x_rastrigin = rng.uniform(-5.12, 5.12, (N, 2))
    problem = sampy.problems.make_logistic_problem()
    (a, b), (c, d) = problem.domain
    x_logistic = np.stack([rng.uniform(a, b, N), rng.uniform(c, d, N)], axis=-1)

    rastrigin = {"plain": rastrigin_grad, "in-place": rastrigin_grad_inplace}
    hand_sam = {
        "context: toy.py's hand-written SAM": (
            2.0,
            {
                "plain": lambda x0, steps: limit_sam(rastrigin_grad, x0, steps),
                "in-place": lambda x0, steps: limit_sam_inplace(rastrigin_grad_inplace, x0, steps),
            },
        )
    }
    logistic = {"closed form": logistic_grad(problem)}
    check = logistic_grad(problem)(x_logistic[:5])
    if not np.allclose(check, problem.grad(x_logistic[:5]), rtol=1e-10, atol=1e-14):
        raise RuntimeError("the hand-written logistic gradient disagrees with problem.grad")

    blas = OpenBLASThreads()
    threads = blas.get() if blas.available else 0
    blas_note = (
        f"both sides ran with NumPy's OpenBLAS at 1 thread (default {threads}): the gradient's "
        f"(N, 64)·(64, 2) product is too small to share, and waiting for a second thread "
        f"swamps both sides on a busy machine (diagnostic under the N=10,000 table)"
        if threads > 1
        else f"OpenBLAS threads: {threads or 'not found'} (left as they are)"
    )
    lenient = (
        "the registry counts one gradient evaluation per example or micro-batch: MSharpnessSAM "
        "(2 × 8 micro-batches), SSAMF (per-example Fisher every 5 steps) and BSAM (2 × 8 "
        "sub-batches) compute those vectorised, far cheaper than as many full gradients, so "
        "their limit is lenient; ESAM and ImbSAM count full-batch or head/tail gradients: their "
        "limit is tight"
    )
    base = f"SGD(lr={LR:g}) base (or the variant's built-in base), registry defaults"
    tables = [
        bench_case(
            f"Variants on 'rastrigin', N=1, {STEPS_1} steps: sampy.run point-steps/s; "
            f"baseline = the variant's LIMIT (evals_per_step × analytic ∇ + trajectory "
            f"store); {base}",
            "variants rastrigin N=1",
            plain,
            "rastrigin",
            rastrigin,
            x1,
            STEPS_1,
            rounds=5 if quick else 21,
            warmup=1 if quick else 2,
            max_seconds=None if quick else 12,
            min_rounds=5,
            references=hand_sam,
        ),
        bench_case(
            f"Variants on 'rastrigin', N={N:,}, {STEPS_N} steps (same measurement and limit)",
            "variants rastrigin N=10,000",
            plain,
            "rastrigin",
            rastrigin,
            x_rastrigin,
            STEPS_N,
            rounds=2 if quick else 9,
            warmup=0 if quick else 1,
            max_seconds=None if quick else 40,
            min_rounds=5,
            references=hand_sam,
        ),
        bench_case(
            f"Variants that need examples, on make_logistic_problem() (64 examples, 2 "
            f"features), N=1, {STEPS_1} steps; baseline = LIMIT (evals_per_step × the "
            f"closed-form mean ∇ + trajectory store)",
            "variants logistic N=1",
            examples,
            problem,
            logistic,
            x1,
            STEPS_1,
            rounds=3 if quick else 9,
            warmup=1,
            max_seconds=None if quick else 8,
            min_rounds=5,
            notes=(blas_note, lenient),
            blas=blas,
        ),
        bench_case(
            f"Variants that need examples, on make_logistic_problem(), N={N:,}, "
            f"{STEPS_N_EXAMPLES} steps (same measurement and limit)",
            "variants logistic N=10,000",
            examples,
            problem,
            logistic,
            x_logistic,
            STEPS_N_EXAMPLES,
            rounds=1 if quick else 5,
            warmup=0 if quick else 1,
            max_seconds=None if quick else 25,
            min_rounds=5,
            notes=(blas_note, lenient),
            blas=blas,
        ),
    ]
    if threads > 1:
        tables[-1].notes.append(_blas_diagnostic(blas, threads, logistic_grad(problem), x_logistic))
        print(f"  {tables[-1].notes[-1]}", flush=True)
    return tables


def _blas_diagnostic(blas: OpenBLASThreads, threads: int, grad, x: np.ndarray) -> str:
    """The closed-form logistic gradient at N = 10,000 with OpenBLAS at 1 and at ``threads``."""

    def at(n: int) -> Callable[[], None]:
        def call() -> None:
            blas.set(n)
            try:
                for _ in range(3):
                    grad(x)
            finally:
                blas.set(threads)

        return call

    t = interleaved({"1": at(1), "default": at(threads)}, rounds=5, warmup=1)
    one, many = median(t["1"]) / 3, median(t["default"]) / 3
    return (
        f"diagnostic: the closed-form logistic gradient at N={N:,} takes {many * 1e3:.3g} ms "
        f"{spread(t['default'])} with OpenBLAS at {threads} threads and {one * 1e3:.3g} ms "
        f"{spread(t['1'])} at 1 thread ({many / one:.2g}x), interleaved"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (smoke test)")
    run(parser.parse_args().quick)


if __name__ == "__main__":
    main()
