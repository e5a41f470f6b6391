"""The book's live figures in headless Chromium, next to the Voila playground's round trip.

A page opened from disk (file://) holds the whole laboratory (``{lab}`` with ``:full:``) with
four variants: SGD alone, SAM, GSAM and LookSAM, 300 steps each. Measured in the browser:

- **slider → redrawn figure**: the lr slider's ``input`` event to the end of the rerun and
  redraw (all four variants re-run), median over many changes; goal ≤ 16 ms, one frame;
- **a basin-map pair**: two 100 × 100 maps × 300 steps (SGD and SAM), from the request to
  the pictures; goal ≤ 1 s; and the **longest task** meanwhile (the browser's long-task
  timing), which is how long input would wait at worst; goal ≤ 50 ms;
- **page load to the first live picture**: from navigation to the figure's first drawing,
  median over reloads; goal ≤ 1 s.

In the same run, the Voila playground (``make playground``) on 127.0.0.1: a key on its ρ
slider until the new picture arrives, the same interaction through a kernel. It is the
baseline of the slider row.

Needs Debian's chromium, node's esbuild (``make vendor``) and Playwright; says why and skips
otherwise. Run alone: ``python -m benchmarks.lab_browser``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._common import NOISY, Table, cell, median, ms, noisy, spread

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
FRAME_MS = 16.0
BASIN_GOAL_S = 1.0
LONG_TASK_MS = 50.0
LOAD_GOAL_MS = 1000.0
VARIANTS = [
    {"name": "base"},
    {"name": "SAM", "hyperparameters": {"rho": 0.1}},
    {"name": "GSAM", "hyperparameters": {"rho": 0.1}},
    {"name": "LookSAM", "hyperparameters": {"rho": 0.1}},
]
PAGE = """<!doctype html><html><head><meta charset="utf-8">
<link rel="stylesheet" href="sampy-lab.css"></head><body style="max-width:1100px;margin:auto">
<div class="sampy-lab"><script type="application/json">{config}</script></div>
<script src="sampy-lab.js"></script></body></html>"""


def _build() -> Path:
    spec = importlib.util.spec_from_file_location("build_lab", ROOT / "lab" / "build_lab.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build() / "web"


def _page(folder: Path, web: Path) -> Path:
    for name in ("sampy-lab.js", "sampy-lab.css"):
        shutil.copy(web / name, folder / name)
    config = {"full": True, "panels": ["loss", "basins"], "variants": VARIANTS, "steps": 300}
    # The basin maps start themselves after a change; the benchmark starts them itself.
    config["basin"] = {"steps": 300, "grid": 100}
    path = folder / "lab.html"
    path.write_text(PAGE.format(config=json.dumps(config)), encoding="utf-8")
    return path


SLIDER_JS = """([n, label]) => {
    const lab = sampyLab.figures[0];
    const slider = lab.root.querySelector(`input[type=range][aria-label="${label}"]`);
    const out = [];
    for (let i = 0; i < n; i++) {
        slider.value = String(Number(slider.min) + (i % 2 ? 80 : 60));
        const t0 = performance.now();
        slider.dispatchEvent(new Event('input'));
        out.push(performance.now() - t0);
    }
    return {times: out, runs: lab.runs.length, steps: lab.settings.steps};
}"""

BASINS_JS = """async () => {
    const lab = sampyLab.figures[0];
    const longest = [];
    const observer = new PerformanceObserver((list) => {
        for (const e of list.getEntries()) longest.push(e.duration);
    });
    observer.observe({type: 'longtask', buffered: false});
    // Let the basin job the page started after the last change finish first.
    await new Promise((r) => setTimeout(r, 300));
    while (lab.root.dataset.basins !== 'done') await new Promise((r) => setTimeout(r, 20));
    clearTimeout(lab.basinTimer);
    const t0 = performance.now();
    await lab.computeBasins();
    const seconds = (performance.now() - t0) / 1000;
    await new Promise((r) => setTimeout(r, 50));
    observer.disconnect();
    return {seconds, longest: longest.length ? Math.max(...longest) : 0,
            cells: lab.basins[0].basin.length, steps: lab.basins[0].steps};
}"""


def _browser_rows(table: Table, quick: bool) -> dict:
    from playwright.sync_api import sync_playwright

    web = _build()
    with tempfile.TemporaryDirectory() as folder, sync_playwright() as p:
        page_path = _page(Path(folder), web)
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        loads = []
        for _ in range(3 if quick else 8):
            page.goto(page_path.as_uri())
            page.wait_for_function("() => document.querySelector('.sampy-lab').dataset.ready")
            loads.append(float(page.evaluate(
                "() => document.querySelector('.sampy-lab').dataset.readyAt")))  # fmt: skip
        page.evaluate(SLIDER_JS, [10, "lr η"])  # warm-up: the JIT compiles the hot loops
        slider = page.evaluate(SLIDER_JS, [40 if quick else 120, "lr η"])
        landscape = page.evaluate(SLIDER_JS, [10 if quick else 30, "sharpness"])
        basins = [page.evaluate(BASINS_JS) for _ in range(1 if quick else 3)]
        browser.close()
    redraw = median(slider["times"])
    table.add(
        f"slider -> redrawn figure, {slider['runs']} variants x {slider['steps']} steps (median)",
        cell(f"{redraw:.2f} ms", spread(slider["times"])),
        "",
        None,
        f"<= {FRAME_MS:g} ms",
        redraw <= FRAME_MS,
    )
    table.add(
        "  a landscape parameter moved (new contours + the same reruns)",
        cell(f"{median(landscape['times']):.2f} ms", spread(landscape["times"])),
        cell("lr", f"{redraw:.2f} ms"),
        median(landscape["times"]) / redraw,
    )
    seconds = median([b["seconds"] for b in basins])
    longest = max(b["longest"] for b in basins)
    table.add(
        f"basin-map pair SGD + SAM ({basins[0]['cells']} starts x {basins[0]['steps']} steps)",
        f"{seconds:.3g} s",
        "",
        None,
        f"<= {BASIN_GOAL_S:g} s",
        seconds <= BASIN_GOAL_S,
    )
    table.add(
        "  longest task while the basin maps run",
        f"{longest:.0f} ms" if longest else "no task over 50 ms",
        "",
        None,
        f"<= {LONG_TASK_MS:g} ms",
        longest <= LONG_TASK_MS,
    )
    load = median(loads)
    table.add(
        "page load (file://) to the first live picture (median)",
        cell(f"{load:.0f} ms", spread(loads)),
        "",
        None,
        f"<= {LOAD_GOAL_MS:g} ms",
        load <= LOAD_GOAL_MS,
    )
    if noisy(slider["times"], loads):
        table.notes.append(NOISY)
    return {"redraw_ms": redraw}


def _voila_round_trip(quick: bool) -> list[float] | str:
    """Seconds from a key on the Voila playground's ρ slider to its new picture."""
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        from book_helpers import clean_env, free_port, stop_process, wait_for_http_ok
    finally:
        sys.path.pop(0)
    from playwright.sync_api import sync_playwright

    port = free_port()
    notebook = ROOT / "playground" / "explorer.ipynb"
    cmd = [sys.executable, "-m", "voila", str(notebook), "--no-browser", f"--port={port}",
           "--Voila.ip=127.0.0.1"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, env=clean_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_http_ok(f"http://127.0.0.1:{port}/voila/static/voila.js", proc, timeout=90)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded")
            picture = "() => document.querySelector('img.sampy-picture')?.src ?? ''"
            page.wait_for_function(f"() => ({picture})().length > 0", timeout=120_000)
            handle = page.locator(".widget-slider", has_text="rho").first.locator(".noUi-handle")
            times = []
            for i in range(5 if quick else 15):
                before = page.evaluate(picture)
                handle.focus()
                start = time.perf_counter()
                page.keyboard.press("ArrowRight" if i % 2 == 0 else "ArrowLeft")
                page.wait_for_function(f"b => ({picture})() !== b", arg=before, timeout=30_000)
                times.append(time.perf_counter() - start)
            browser.close()
        return times
    except Exception as error:  # a benchmark reports, it does not fail the run
        return f"{type(error).__name__}: {error}"
    finally:
        stop_process(proc)


def run(quick: bool = False) -> list[Table]:
    """The browser laboratory's budgets, and the Voila round trip as the baseline."""
    table = Table(
        "Live figures in the static book (headless Chromium, file://), and Voila's round trip",
        short="live figures",
    )
    if not Path(CHROMIUM).exists():
        table.notes.append(f"SKIPPED: {CHROMIUM} is not installed (make chromium)")
        table.print()
        return [table]
    try:
        measured = _browser_rows(table, quick)
    except Exception as error:  # esbuild missing, Playwright missing: say why
        table.notes.append(f"SKIPPED: {type(error).__name__}: {error}")
        table.print()
        return [table]
    voila = _voila_round_trip(quick)
    if isinstance(voila, str):
        table.notes.append(f"Voila round trip not measured: {voila}")
    else:
        round_trip = median(voila)
        table.add(
            "Voila playground: rho key -> new picture (median)",
            cell(ms(round_trip), spread(voila)),
            "",
            None,
        )
        table.add(
            "live figure redraw vs the Voila round trip",
            f"{measured['redraw_ms']:.2f} ms",
            cell("voila", ms(round_trip)),
            measured["redraw_ms"] / 1e3 / round_trip,
        )
        if statistics.pstdev(voila) > 0.5 * round_trip:
            table.notes.append("the Voila round trips varied widely (a busy kernel)")
    table.notes.append(
        "browser times are taken in the page (performance.now); the Voila round trip from the "
        "key press to the new image, in the test process"
    )
    table.print()
    return [table]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    run(quick=parser.parse_args().quick)


if __name__ == "__main__":
    main()
