"""Basin maps: ``compare_basins(SGD, SAM, "sharp_flat", grid=(100, 100), steps=300)``, in seconds.

The playground's basin-of-attraction view: 10,000 start points, 300 steps, two optimizers
(SGD and SAM, ρ = 0.1, η = 0.008), each end point classified by the minimum it reached.
Goal: at most 2 s for the pair (an absolute budget, like the playground's: a person waits for
it after pressing a button).

In the same rounds, for context, the bare work: the two vectorised ``sampy.run`` calls on the
same 100 × 100 start grid, nothing else. Their ratio is what ``sampy.basins`` adds (the grid,
the classification, the per-basin fractions); it should stay close to 1. A third row times
the same pair on Himmelblau *typed as an expression* (``sampy.expressions``: forward-mode
gradients through a closure tree, basins found by clustering the end points).

Run alone: ``python -m benchmarks.basins [--quick]``.
"""

from __future__ import annotations

import argparse

from benchmarks._common import NOISY, Table, cell, interleaved, median, noisy, spread

GRID = (100, 100)
STEPS = 300
LR = 0.008
RHO = 0.1
GOAL_S = 2.0
HIMMELBLAU = "(x**2 + y - 11)**2 + (x + y**2 - 7)**2"


def _seconds(t: float) -> str:
    return f"{t:.3g} s"


def run(quick: bool = False) -> list[Table]:
    """Times the basin maps; returns one table (or one that says why it was skipped)."""
    title = (
        f"Basin maps: compare_basins(SGD(lr={LR:g}), SAM(SGD(lr={LR:g}), rho={RHO:g}), "
        f"f, grid={GRID[0]}x{GRID[1]}, steps={STEPS}), seconds for the pair"
    )
    table = Table(title, short="basins")
    try:
        import sampy
        from sampy.basins import compare_basins, start_grid
        from sampy.expressions import expression_function
        from sampy.optim import SAM, SGD
    except Exception as error:  # missing, or mid-edit: say why and skip
        table.notes.append(f"SKIPPED: cannot import sampy.basins ({type(error).__name__}: {error})")
        table.print()
        return [table]

    f = sampy.functions.get("sharp_flat")
    typed = expression_function(HIMMELBLAU, domain=((-5.0, 5.0), (-5.0, 5.0)))
    _, _, starts = start_grid(GRID, f.domain)

    def make():
        return SGD(lr=LR), SAM(SGD(lr=LR), rho=RHO)

    def basin_pair():
        return compare_basins(*make(), f, grid=GRID, steps=STEPS)

    def bare_pair():
        for opt in make():
            sampy.run(opt, f, starts, STEPS)

    def typed_pair():
        return compare_basins(*make(), typed, grid=GRID, steps=STEPS)

    t = interleaved(
        {"basins": basin_pair, "bare": bare_pair, "typed": typed_pair},
        rounds=2 if quick else 9,
        warmup=0 if quick else 1,
        max_seconds=None if quick else 40,
        min_rounds=2 if quick else 5,
    )
    pair = median(t["basins"])
    bare = median(t["bare"])
    typed_time = median(t["typed"])
    table.add(
        "sharp_flat: SGD + SAM basin maps",
        cell(_seconds(pair), spread(t["basins"])),
        "",
        None,
        f"<= {GOAL_S:g} s",
        pair <= GOAL_S,
    )
    table.add(
        "  vs the bare vectorised runs",
        _seconds(pair),
        cell("2 x sampy.run", _seconds(bare), spread(t["bare"])),
        pair / bare,
    )
    table.add(
        "Himmelblau typed as an expression (clustered)",
        cell(_seconds(typed_time), spread(t["typed"])),
        f"sharp_flat pair {_seconds(pair)}",
        typed_time / pair,
    )
    sgd, sam = basin_pair()
    table.notes.append(f"fractions: {sgd.summary()}; {sam.summary()}")
    table.notes.append(
        f"{len(t['basins'])} rounds; {GRID[0] * GRID[1]:,} start points x {STEPS} steps per "
        f"optimizer, SAM costs 2 gradients per step"
    )
    if noisy(*t.values()):
        table.notes.append(NOISY)
    table.print()
    return [table]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (smoke test)")
    run(parser.parse_args().quick)


if __name__ == "__main__":
    main()
