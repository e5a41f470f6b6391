"""Draw the README's picture of the live laboratory: docs/live_lab.png.

    python scripts/readme_lab_figure.py

Builds the browser laboratory (``lab/build_lab.py``), puts one live figure on a page (the
laboratory's first settings: gradient descent and SAM on the sharp/flat toy, with the loss and
the basin maps), opens it from disk in headless Debian chromium and photographs the figure
once its basin maps are done. Needs ``make vendor`` (esbuild) and ``/usr/bin/chromium``.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "live_lab.png"
PAGE = """<!doctype html><html><head><meta charset="utf-8">
<link rel="stylesheet" href="sampy-lab.css">
<style>body {{ font-family: system-ui, sans-serif; margin: 16px; width: 1000px; }}</style>
</head><body>
<div class="sampy-lab"><script type="application/json">{config}</script></div>
<script src="sampy-lab.js"></script></body></html>"""
CONFIG = {"controls": ["lr", "SAM.rho", "function.sharpness"], "panels": ["loss", "basins"]}


def main() -> None:
    """Build, open, wait for the basin maps, photograph."""
    from playwright.sync_api import sync_playwright

    spec = importlib.util.spec_from_file_location("build_lab", ROOT / "lab" / "build_lab.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    web = build.build() / "web"
    with tempfile.TemporaryDirectory() as folder, sync_playwright() as p:
        for name in ("sampy-lab.js", "sampy-lab.css"):
            shutil.copy(web / name, Path(folder) / name)
        page_path = Path(folder) / "lab.html"
        page_path.write_text(PAGE.format(config=json.dumps(CONFIG)), encoding="utf-8")
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1040, "height": 900}, device_scale_factor=1)
        page.goto(page_path.as_uri())
        page.wait_for_function(
            "() => document.querySelector('.sampy-lab').dataset.basins === 'done'",
            timeout=60_000,
        )
        page.locator(".sampy-lab").screenshot(path=str(OUT))
        browser.close()
    print(OUT)


if __name__ == "__main__":
    main()
