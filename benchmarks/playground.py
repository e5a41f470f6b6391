"""Playground: one update, in-process, in milliseconds; a basin map in seconds.

An update is what a reader waits for after moving a control of the laboratory
(``sampy.widgets.Playground``): timed by ``sampy.widgets.time_playground_update``, the start-x
slider moved with FOUR variants shown (SGD, SAM, LookSAM, ASAM), so all four re-run (4 × 300
steps) and the figure is redrawn into the PNG of the ``widgets.Image`` (goal: median ≤ 60 ms,
the one budget stated in ms, since it is a human-perception budget, not a comparison); for
context, one variant's ρ moved (only that variant re-runs, the others come from the cache).
The same table times what the "compute basin maps" button does,
``sampy.playground.compute.basin_pair``: 100 × 100 start points × 300 steps for SGD and SAM
on sharp_flat (goal ≤ 2 s), and its picture.

``sampy.widgets`` is imported lazily; without it (or without ``ipywidgets``) the benchmark
says so and is skipped. Run alone: ``python -m benchmarks.playground``.
"""

from __future__ import annotations

import argparse
import importlib
import time

from benchmarks._common import NOISY, Table, cell, median, ms, noisy, spread

STEPS = 300
GOAL_MS = 60.0
LAB_VARIANTS = ("SGD", "SAM", "LookSAM", "ASAM")
BASIN_GRID = 100
BASIN_GOAL_S = 2.0


def _load_widgets():
    try:
        return importlib.import_module("sampy.widgets"), None
    except Exception as error:  # missing, or mid-edit: say why and skip
        return None, f"cannot import sampy.widgets ({type(error).__name__}: {error})"


def run(quick: bool = False) -> list[Table]:
    """Times the laboratory's update and basin maps; one table, or one that says why not."""
    widgets, why = _load_widgets()
    if widgets is None:
        table = Table("Playground: one update", short="playground")
        table.notes.append(f"SKIPPED: {why}")
        table.print()
        return [table]
    return [_playground(widgets, quick)]


def _playground(widgets, quick: bool) -> Table:
    """The laboratory: a 4-variant update, a 1-variant update, and a basin map."""
    title = (
        f"Playground: one update with {len(LAB_VARIANTS)} variants x {STEPS} steps + redraw; "
        f"a {BASIN_GRID}x{BASIN_GRID} basin map pair"
    )
    table = Table(title, short="playground")
    if not hasattr(widgets, "time_playground_update"):
        table.notes.append("SKIPPED: sampy.widgets has no time_playground_update")
        table.print()
        return table
    from sampy.playground.compute import LabSettings, VariantSetting, basin_pair
    from sampy.playground.pictures import BasinPicture

    blocks, per_block = (2, 5) if quick else (5, 8)
    every: list[float] = []
    one: list[float] = []
    for _ in range(blocks):  # interleaved blocks: a slow phase hits both alike
        every += [float(t) for t in widgets.time_playground_update(
            n=per_block, steps=STEPS, variants=LAB_VARIANTS, control="start")]  # fmt: skip
        one += [float(t) for t in widgets.time_playground_update(
            n=per_block, steps=STEPS, variants=LAB_VARIANTS, control="knob")]  # fmt: skip
    update = median(every)
    table.add(
        f"update, all {len(LAB_VARIANTS)} variants re-run (median)",
        cell(ms(update), spread(every)),
        "",
        None,
        f"<= {GOAL_MS:g} ms",
        update * 1e3 <= GOAL_MS,
    )
    table.add(
        "  update, one variant's rho moved (others cached)",
        cell(ms(median(one)), spread(one)),
        f"all re-run {ms(update)}",
        median(one) / update,
    )

    pair = LabSettings(
        function="sharp_flat", lr=0.008, steps=STEPS,
        variants=(VariantSetting("SGD"), VariantSetting("SAM", {"rho": 0.1})),
    )  # fmt: skip
    picture = BasinPicture()
    maps_times: list[float] = []
    draw_times: list[float] = []
    for _ in range(2 if quick else 4):
        start = time.perf_counter()
        maps = basin_pair(pair, 0, 1, grid=BASIN_GRID, steps=STEPS)
        mid = time.perf_counter()
        picture.png(maps)
        maps_times.append(mid - start)
        draw_times.append(time.perf_counter() - mid)
    seconds = median(maps_times)
    table.add(
        f"basin maps SGD + SAM ({BASIN_GRID}x{BASIN_GRID} x {STEPS} steps)",
        cell(f"{seconds:.3g} s", spread(maps_times)),
        "",
        None,
        f"<= {BASIN_GOAL_S:g} s",
        seconds <= BASIN_GOAL_S,
    )
    table.add(
        "  + drawing the two maps (PNG)",
        cell(ms(median(draw_times)), spread(draw_times)),
        f"maps {seconds:.3g} s",
        median(draw_times) / seconds,
    )
    table.notes.append(
        f"variants {', '.join(LAB_VARIANTS)}; timed by sampy.widgets.time_playground_update "
        f"(slider set -> new PNG in widgets.Image), {len(every)} updates each"
    )
    table.notes.append(f"fractions: {maps[0].summary()}; {maps[1].summary()}")
    if noisy(every, one, maps_times):
        table.notes.append(NOISY)
    table.print()
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (smoke test)")
    run(parser.parse_args().quick)


if __name__ == "__main__":
    main()
