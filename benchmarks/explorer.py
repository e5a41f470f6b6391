"""Explorer and playground: one update, in-process, in milliseconds; a basin map in seconds.

An update is what a reader waits for after moving the ρ slider: ``steps`` = 300 steps of SAM
and of the base optimizer from the same start, then a redraw of the figure into a PNG for
the ``widgets.Image``. Goal: median at most 60 ms (the one budget stated in ms, since it is
a human-perception budget, not a comparison).

The update is timed by ``sampy.widgets.time_update`` (which sets the ρ slider and waits for
the new PNG). In the same rounds, for context, its two halves are timed through the public
API (``explore(...)``, then ``PathPicture.png``), and a full redraw of the same figure into a
PNG (``savefig``), the price of a widget that redraws everything on each change.

A second table times the laboratory (``sampy.widgets.Playground``), through
``sampy.widgets.time_playground_update``: the start-x slider moved with FOUR variants shown
(SGD, SAM, LookSAM, ASAM), so all four re-run (4 × 300 steps) and the figure is redrawn
(goal: median ≤ 60 ms); for context, one variant's ρ moved (only that variant re-runs, the
others come from the cache). The same table times what the "compute basin maps" button does,
``sampy.playground.compute.basin_pair``: 100 × 100 start points × 300 steps for SGD and SAM
on sharp_flat (goal ≤ 2 s), and its picture.

``sampy.widgets`` is imported lazily; without it (or without ``ipywidgets``) the benchmark
says so and is skipped. Run alone: ``python -m benchmarks.explorer``.
"""

from __future__ import annotations

import argparse
import importlib
import io
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


def _rho(i: int) -> float:
    return 0.02 + 0.005 * (i % 40)


def run(quick: bool = False) -> list[Table]:
    """Times the update; returns one table, or a table that says why it was skipped."""
    title = f"Explorer: one update ({STEPS} steps of SAM and of SGD + redraw into PNG), in-process"
    widgets, why = _load_widgets()
    table = Table(title, short="explorer")
    if widgets is None:
        table.notes.append(f"SKIPPED: {why}")
        table.print()
        return [table]

    blocks, per_block = (2, 5) if quick else (6, 8)
    updates: list[float] = []
    how = ""
    parts: dict[str, list[float]] = {"explore": [], "png": [], "full": []}

    has_parts = all(hasattr(widgets, a) for a in ("Explorer", "explore", "PathPicture"))
    if has_parts:
        explorer = widgets.Explorer(steps=STEPS)
        settings = explorer.settings()
        picture = explorer.picture
        picture.png(widgets.explore(**settings))  # draws the background once

    for _ in range(blocks):
        # (a) the update, as the widget does it
        if hasattr(widgets, "time_update"):
            how = "sampy.widgets.time_update (ρ slider set → new PNG in widgets.Image)"
            updates += [float(t) for t in widgets.time_update(n=per_block, steps=STEPS)]
        elif hasattr(widgets, "explore") and hasattr(widgets, "render"):
            how = "sampy.widgets.explore(...) + render(result) (no timing hook found)"
            for i in range(per_block):
                start = time.perf_counter()
                widgets.render(widgets.explore(steps=STEPS, rho=_rho(i)))
                updates.append(time.perf_counter() - start)
        else:
            table.notes.append(
                "SKIPPED: sampy.widgets has neither time_update nor explore + render"
            )
            table.print()
            return [table]
        # (b) its parts and the full-redraw reference, in the same block
        if has_parts:
            for i in range(per_block):
                start = time.perf_counter()
                result = widgets.explore(**{**settings, "rho": _rho(i)})
                mid = time.perf_counter()
                picture.png(result)
                end = time.perf_counter()
                buffer = io.BytesIO()
                picture.figure.savefig(buffer, format="png")
                parts["explore"].append(mid - start)
                parts["png"].append(end - mid)
                parts["full"].append(time.perf_counter() - end)

    update = median(updates)
    table.add(
        "explorer update (median)",
        cell(ms(update), spread(updates)),
        "",
        None,
        f"<= {GOAL_MS:g} ms",
        update * 1e3 <= GOAL_MS,
    )
    if has_parts:
        full = median(parts["full"])
        table.add(
            "  part: explore(...) = SAM + SGD runs",
            cell(ms(median(parts["explore"])), spread(parts["explore"])),
            f"update {ms(update)}",
            median(parts["explore"]) / update,
        )
        table.add(
            "  part: PathPicture.png (blit paths + PNG)",
            cell(ms(median(parts["png"])), spread(parts["png"])),
            f"update {ms(update)}",
            median(parts["png"]) / update,
        )
        table.add(
            "update vs a full redraw of the figure",
            ms(update),
            cell("savefig png", ms(full), spread(parts["full"])),
            update / full,
        )
    table.notes.append(f"update timed by {how}; {len(updates)} updates in {blocks} blocks")
    table.notes.append(
        "parts and the full redraw are timed in the same blocks, between the updates"
    )
    if noisy(updates, *parts.values()):
        table.notes.append(NOISY)
    table.print()
    return [table, _playground(widgets, quick)]


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
