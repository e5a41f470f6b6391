"""Build the browser laboratory: export sampy's metadata, then bundle the JavaScript twin.

    python lab/build_lab.py

1. ``sampy.lab_metadata`` writes ``lab/build/metadata.json`` (names, hyperparameters, costs
   and papers of every variant; every 2-D function), which the twin imports: nothing of it
   is typed again in JavaScript.
2. esbuild (pinned in package-lock.json, from npm) bundles ``lab/src`` three times, into
   ``lab/dist/web/`` (for the book) and ``lab/dist/node/``:

   - ``sampy-lab.js``: one classic script (an IIFE defining ``window.sampyLab``) for the
     book's pages: the library and the live figures (``src/browser.js``). Chromium refuses
     ES modules and worker files on file:// pages, and the book must work opened from disk,
     so the live figures ship as a classic script;
   - ``sampy-lab.cjs``: the library (``src/index.js``) as a CommonJS module for node;
   - ``sampy-lab-cli.cjs``: the command-line entry (``node lab/dist/sampy-lab-cli.cjs``).

   The stylesheet ``lab/src/ui/lab.css`` is copied beside them.

The Sphinx extension (``lab/sphinx_lab.py``) and the tests call ``build()``; it takes well
under a second, so it always runs rather than guessing whether the sources changed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

LAB = Path(__file__).resolve().parent
ROOT = LAB.parent
SOURCES = LAB / "src"
BUILD = LAB / "build"
DIST = LAB / "dist"
ESBUILD = ROOT / "node_modules" / ".bin" / "esbuild"

WEB = DIST / "web"  # what the book's pages load (Sphinx serves this folder from _static)
NODE = DIST / "node"  # what node runs (the tests, the command line)
BROWSER_BUNDLE = WEB / "sampy-lab.js"
STYLESHEET = WEB / "sampy-lab.css"
NODE_LIBRARY = NODE / "sampy-lab.cjs"
CLI = NODE / "sampy-lab-cli.cjs"


class LabBuildError(RuntimeError):
    """The laboratory could not be built (esbuild missing, or a bundling error)."""


def _esbuild(*args: str) -> None:
    if not ESBUILD.exists():
        raise LabBuildError(
            f"{ESBUILD} is missing: run `make vendor` (npm ci) to install the pinned esbuild"
        )
    proc = subprocess.run(
        [str(ESBUILD), *args, "--log-level=warning"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0 or proc.stderr.strip():
        raise LabBuildError(f"esbuild {' '.join(args)} failed:\n{proc.stderr}")


def build(minify: bool = True) -> Path:
    """Export the metadata and bundle the twin into ``lab/dist``; return that folder."""
    sys.path.insert(0, str(ROOT))
    try:
        from sampy import lab_metadata
    finally:
        sys.path.pop(0)
    lab_metadata.write(BUILD / "metadata.json")
    WEB.mkdir(parents=True, exist_ok=True)
    NODE.mkdir(parents=True, exist_ok=True)
    common = ["--bundle", "--charset=utf8", "--target=es2020"]
    browser = [
        str(SOURCES / "browser.js"),
        *common,
        "--format=iife",
        "--global-name=sampyLab",
        f"--outfile={BROWSER_BUNDLE}",
    ]
    _esbuild(*browser, *(["--minify"] if minify else []))
    node = ["--platform=node", "--format=cjs"]
    _esbuild(str(SOURCES / "index.js"), *common, *node, f"--outfile={NODE_LIBRARY}")
    _esbuild(str(SOURCES / "cli.js"), *common, *node, f"--outfile={CLI}")
    shutil.copyfile(SOURCES / "ui" / "lab.css", STYLESHEET)
    return DIST


def main() -> int:
    """Build, and say where the bundles are."""
    try:
        out = build(minify=os.environ.get("SAMPY_LAB_MINIFY", "1") != "0")
    except LabBuildError as error:
        print(error, file=sys.stderr)
        return 1
    for path in sorted(out.rglob("*.*")):
        print(f"{path.relative_to(ROOT)}  {path.stat().st_size / 1024:.0f} kB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
