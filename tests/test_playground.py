"""The live playground: Voila serves playground/explorer.ipynb, and moving the rho slider in
a real browser makes the kernel redraw the figure.

``SAMPY_PLAYGROUND_NOTEBOOK`` points the test at another notebook (used to test this test).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from book_helpers import (
    REPO_ROOT,
    clean_env,
    free_port,
    local_only_context,
    stop_process,
    tail,
    wait_for_http_ok,
)

pytestmark = pytest.mark.browser

NOTEBOOK = Path(
    os.environ.get("SAMPY_PLAYGROUND_NOTEBOOK", REPO_ROOT / "playground" / "explorer.ipynb")
).resolve()

# Voila's lab template (share/jupyter/voila/templates/lab/index.html.j2) hard-codes these two
# stylesheets; they only bring icons. Aborted like every other outside request, but allowed.
VOILA_FONT_AWESOME = "https://cdn.jsdelivr.net/npm/@fortawesome/fontawesome-free@"

IMAGES_JS = "() => [...document.querySelectorAll('img.widget-image')].map(i => i.src).join(' ')"


@dataclass(frozen=True)
class Voila:
    url: str
    log: Path


@pytest.fixture(scope="module")
def voila(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Voila]:
    """Serve the notebook with Voila on 127.0.0.1 for this module."""
    if not NOTEBOOK.is_file():
        pytest.fail(f"{NOTEBOOK} does not exist")
    port = free_port()
    log_path = tmp_path_factory.mktemp("voila") / "voila.log"
    cmd = [
        sys.executable,
        "-m",
        "voila",
        str(NOTEBOOK),
        "--no-browser",
        f"--port={port}",
        "--Voila.ip=127.0.0.1",
    ]
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            cmd, env=clean_env(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        # A static file answers 200 as soon as the server is up. GET / would not do: each
        # GET / starts a kernel and runs the whole notebook.
        try:
            wait_for_http_ok(f"http://127.0.0.1:{port}/voila/static/voila.js", proc, timeout=60)
        except (RuntimeError, TimeoutError) as exc:
            pytest.fail(f"{exc}\n{tail(log_path.read_text())}")
        yield Voila(f"http://127.0.0.1:{port}/", log_path)
    finally:
        stop_process(proc)


def test_rho_slider_redraws_the_figure(browser, voila: Voila) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    with local_only_context(browser, timeout_ms=90_000) as (context, net):
        page = context.new_page()
        start = time.perf_counter()
        page.goto(voila.url, wait_until="domcontentloaded")
        # Voila renders once the kernel has run the notebook: allow for a cold kernel start.
        slider = page.locator(".widget-slider", has_text="rho").first
        try:
            slider.wait_for(state="visible")
            page.locator("img.widget-image").first.wait_for(state="visible")
        except PlaywrightTimeout:
            pytest.fail(
                "no rho slider and widgets.Image on the Voila page. Page text:\n"
                f"{tail(page.inner_text('body'), 40)}\n--- Voila log ---\n"
                f"{tail(voila.log.read_text(), 40)}"
            )
        ready = time.perf_counter() - start
        before = page.evaluate(IMAGES_JS)

        handle = slider.locator(".noUi-handle")
        at_max = handle.get_attribute("aria-valuenow") == handle.get_attribute("aria-valuemax")
        handle.focus()
        start = time.perf_counter()
        for _ in range(3):
            page.keyboard.press("ArrowLeft" if at_max else "ArrowRight")
        # Each key press goes to the kernel, which renders a PNG and sends it back.
        page.wait_for_function(f"b => ({IMAGES_JS})() !== b", arg=before, timeout=30_000)
        round_trip = time.perf_counter() - start

    unexpected = [u for u in net.blocked if not u.startswith(VOILA_FONT_AWESOME)]
    assert not unexpected, f"requests that left 127.0.0.1: {unexpected}"
    print(f"voila ready in {ready:.2f} s; figure redrawn {round_trip:.2f} s after the keys")
