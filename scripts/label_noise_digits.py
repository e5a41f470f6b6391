"""Label noise on scikit-learn's digits: SGD and the SAM family, clean test accuracy, sharpness.

Usage::

    .venv/bin/python scripts/label_noise_digits.py           # the book's run (a few minutes)
    .venv/bin/python scripts/label_noise_digits.py --full    # 5 seeds, 100 epochs (longer)

Writes ``book/_data/label_noise_digits.json`` (``--full``: ``..._full.json``), which the chapter
``book/label_noise.md`` reads instead of training again. What is run is documented in
``sampy.label_noise.digits``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sampy.label_noise import digits

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "book" / "_data" / "label_noise_digits.json"
FULL_OUT = ROOT / "book" / "_data" / "label_noise_digits_full.json"


def main(argv: list[str] | None = None) -> int:
    """Run the experiment, save the JSON, print the summary table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="5 seeds, 100 epochs")
    parser.add_argument("--out", type=Path, default=None, help="where to write the JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    config = digits.FULL if args.full else digits.DEFAULT
    out = args.out or (FULL_OUT if args.full else DEFAULT_OUT)
    results = digits.run_experiment(config, progress=not args.quiet)
    digits.save_results(results, out)
    header = ["method", "noise", "best test acc.", "final test acc.", "memorised", "λmax"]
    rows = digits.table_rows(results["summary"])
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    print(f"{len(results['runs'])} runs in {results['seconds']:.0f} s -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
