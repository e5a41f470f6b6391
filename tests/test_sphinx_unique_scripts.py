"""Two console errors every book page logged, checked on a one-page Sphinx project.

- sphinx-thebe's inline ``const THEBE_JS_URL = ...`` script was written twice (the second
  throws "Identifier 'THEBE_JS_URL' has already been declared"): lab/sphinx_unique_scripts.py
  keeps one.
- pydata-sphinx-theme logged "Got invalid theme mode" when ``default_mode`` was unset:
  _config.yml sets it through ``html_context``.

A full book build checks the same in tests/test_book.py's browser tests (pageerrors only); this
one takes a few seconds and needs no browser.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml
from book_helpers import REPO_ROOT

VALID_THEME_MODES = {"auto", "light", "dark"}


def build_one_page(tmp_path: Path) -> str:
    """Build index.rst with the book's theme, sphinx-thebe, this extension and the book's
    html_context; return the page's HTML."""
    config = yaml.safe_load((REPO_ROOT / "_config.yml").read_text())
    html_context = config["sphinx"]["config"].get("html_context", {})
    (tmp_path / "index.rst").write_text("Page\n====\n\nText.\n")
    (tmp_path / "conf.py").write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(REPO_ROOT / 'lab')!r})\n"
        "extensions = ['sphinx_thebe', 'sphinx_unique_scripts']\n"
        "html_theme = 'sphinx_book_theme'\n"
        f"html_context = {html_context!r}\n"
    )
    out = tmp_path / "_build"
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-q", "-E", "-b", "html", str(tmp_path), str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return (out / "index.html").read_text(encoding="utf-8")


def test_each_page_declares_thebe_once_and_has_a_theme_mode(tmp_path: Path) -> None:
    html = build_one_page(tmp_path)
    assert html.count("const THEBE_JS_URL") == 1
    mode = re.search(r'data-default-mode="([^"]*)"', html)
    assert mode and mode.group(1) in VALID_THEME_MODES, mode
