"""Run every sampy benchmark and print one table per measurement, then a summary of goals.

    python benchmarks/run_all.py                 # everything (``make bench``), ~6-9 minutes
    python benchmarks/run_all.py --quick         # fewer repetitions: a smoke test
    python benchmarks/run_all.py --only torch    # one benchmark: toy, torch, playground, variants,
                                                 # torch_variants, basins or lab

Every number except the playground's and the basin map's time budgets is a ratio against a
baseline timed in the same process, interleaved with it, as medians: see
``benchmarks/README.md``.
Exits 0 whether or not the goals are met (``--strict``: exit 1 if one is missed).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from pathlib import Path

BENCHMARKS = {
    "toy": "benchmarks.toy",
    "torch": "benchmarks.torch_step",
    "playground": "benchmarks.playground",
    "variants": "benchmarks.variants",
    "torch_variants": "benchmarks.torch_variants",
    "basins": "benchmarks.basins",
    "lab": "benchmarks.lab_browser",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (smoke test)")
    parser.add_argument(
        "--only",
        action="append",
        choices=list(BENCHMARKS),
        help="run only this benchmark (may be given more than once)",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 if a goal is missed")
    args = parser.parse_args(argv)

    # `python benchmarks/run_all.py` puts benchmarks/ on sys.path, not the repository root.
    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    common = importlib.import_module("benchmarks._common")

    print("sampy benchmarks" + (" (--quick: fewer repetitions, noisier)" if args.quick else ""))
    print(common.machine_info())
    if os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS"):
        print(
            f"environment: OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}, "
            f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}"
        )

    began = time.perf_counter()
    tables = []
    for name in args.only or list(BENCHMARKS):
        module = importlib.import_module(BENCHMARKS[name])
        start = time.perf_counter()
        tables += module.run(quick=args.quick)
        print(f"  [{name}: {time.perf_counter() - start:.0f} s]", flush=True)

    goals = [(table, short, row) for table in tables for short, row in table.goals()]
    missed = [(table, short, row) for table, short, row in goals if not row.met]
    print(f"\nSummary: {len(goals) - len(missed)} of {len(goals)} goals met", end="")
    print(f"; {common.load()}; {time.perf_counter() - began:.0f} s in all")
    for table, short, row in missed:
        name = " ".join(row.name.split())
        busy = "  (machine busy: uncertain)" if table.busy else ""
        print(f"  MISSED  [{short}] {name}: {row.ratio_text()} (goal {row.goal}){busy}")
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
