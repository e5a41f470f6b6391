"""Helpers for the tests of the built book and of the Voila playground.

They build the Jupyter Book, read its HTML without a browser, serve it on 127.0.0.1, and
drive Debian's chromium through Playwright with every request that would leave the machine
aborted and recorded. Plain functions, so that conftest.py stays a list of fixtures.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest
import yaml

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Route

REPO_ROOT = Path(__file__).resolve().parent.parent

# The book under test; tests of this configuration on a throwaway copy point it elsewhere.
BOOK_ROOT = Path(os.environ.get("SAMPY_BOOK_ROOT", REPO_ROOT)).resolve()

# Debian's chromium (apt). `playwright install` would download a browser build from outside
# the package registries, which this project's machines cannot reach.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]

LOCAL_HOSTS = frozenset({"127.0.0.1"})

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Sphinx reports problems as "WARNING: ..." (also "path:line: WARNING: ..."). The kernels'
# "[IPKernelApp] WARNING | Kernel is running over TCP ..." noise has no colon and is no
# Sphinx warning, so it must not count.
_SPHINX_WARNING = re.compile(r"\bWARNING:")


# --------------------------------------------------------------------------- environment


def clean_env(**extra: str) -> dict[str, str]:
    """Return an environment for subprocesses that run notebook kernels.

    MPLBACKEND is removed: the kernels inherit it, and with ``agg`` every ``plt.show()``
    outputs nothing while the build still succeeds. The interpreter's own bin directory goes
    first on PATH so that Jupyter starts this venv's kernel, whoever activated what.
    """
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(extra)
    return env


def require_chromium() -> str:
    """Return the chromium path, or skip the test when it is absent outside CI.

    In CI (``CI`` set) a missing browser is a failure: .ci/run installs it, so its absence
    means the browser tests would silently stop testing anything.
    """
    if Path(CHROMIUM).exists():
        return CHROMIUM
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing in CI; `make chromium` installs it")
    pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium); browser tests skipped")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- the book build


@dataclass(frozen=True)
class BookBuild:
    """What one ``jupyter-book build`` left behind."""

    root: Path
    html: Path
    log: str
    seconds: float

    @property
    def warnings(self) -> list[str]:
        """Sphinx warning lines in the build log."""
        return sphinx_warnings(self.log)


def sphinx_warnings(log: str) -> list[str]:
    """Return the lines of a build log that are Sphinx warnings."""
    return [line for line in log.splitlines() if _SPHINX_WARNING.search(line)]


def build_book(root: Path = BOOK_ROOT) -> BookBuild:
    """Build the book under ``root`` with warnings as errors, or fail the test with the log.

    ``SAMPY_BOOK_REUSE=1`` reuses an existing ``_build/html`` and the log saved by the last
    build instead of building again (handy when iterating on the browser tests).
    """
    html = root / "_build" / "html"
    log_path = root / "_build" / "book-build.log"
    if os.environ.get("SAMPY_BOOK_REUSE") == "1" and (html / "index.html").exists():
        log = log_path.read_text() if log_path.exists() else ""
        return BookBuild(root, html, log, 0.0)

    if not (root / "_vendor" / "mathjax" / "tex-chtml.js").exists():
        pytest.fail(f"{root / '_vendor'} is not filled: run `make vendor` first")
    jupyter_book = shutil.which("jupyter-book", path=str(Path(sys.executable).parent))
    # --all: a fresh Sphinx environment. An incremental build re-reads (and re-executes) only
    # the pages whose source changed, so it would neither show figures from the current
    # sampy nor repeat the warnings of the pages it skipped.
    cmd = [jupyter_book or "jupyter-book", "build", str(root), "-W", "--keep-going", "--all"]
    start = time.perf_counter()
    proc = subprocess.run(
        cmd,
        cwd=root,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - start
    log = _ANSI.sub("", proc.stdout)  # Jupyter Book colours its output even into a pipe
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text(log)
    if proc.returncode != 0:
        pytest.fail(
            f"jupyter-book build exited {proc.returncode} after {seconds:.0f} s "
            f"(full log: {log_path})\n"
            + "".join(f"{w}\n" for w in sphinx_warnings(log))
            + f"--- end of the log ---\n{tail(log)}",
            pytrace=False,
        )
    return BookBuild(root, html, log, seconds)


def tail(text: str, lines: int = 100) -> str:
    """Return the last ``lines`` lines of ``text``, without terminal colour codes."""
    return "\n".join(_ANSI.sub("", text).splitlines()[-lines:])


def toc_docnames(root: Path = BOOK_ROOT) -> list[str]:
    """Return every document named in ``_toc.yml``, root first, in reading order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    names = [toc["root"]]

    def walk(entries: list[dict]) -> None:
        for entry in entries:
            if "file" in entry:
                names.append(entry["file"])
            walk(entry.get("sections", []))
            walk(entry.get("chapters", []))

    walk(toc.get("chapters", []))
    for part in toc.get("parts", []):
        walk(part.get("chapters", []))
    return [re.sub(r"\.(md|ipynb)$", "", name) for name in names]


# --------------------------------------------------------------------------- reading HTML

# Attributes through which a browser fetches something when it loads the page (an <a href>
# is only followed on a click, so it is not in this list).
_FETCHING_ATTRS = {
    "script": ("src",),
    "link": ("href",),
    "img": ("src", "srcset"),
    "iframe": ("src",),
    "source": ("src", "srcset"),
    "video": ("src", "poster"),
    "audio": ("src",),
    "embed": ("src",),
    "object": ("data",),
}
_REMOTE = re.compile(r"^\s*(https?:)?//", re.IGNORECASE)


@dataclass
class Page:
    """The parts of one built HTML page that the tests look at."""

    path: Path
    tags: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def find(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        """Return the attributes of each ``tag`` whose attributes include ``attrs``."""
        return [
            a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in attrs.items())
        ]

    def figures(self) -> list[str]:
        """Return the ``src`` of each figure: an image from ``_images/`` or an inline PNG."""
        srcs = [a.get("src", "") for a in self.find("img")]
        return [s for s in srcs if "_images/" in s or s.startswith("data:image/png")]

    def remote_fetches(self) -> list[str]:
        """Return ``tag attr=url`` for every fetch this page would make off the machine."""
        found = []
        for tag, attrs in self.tags:
            for attr in _FETCHING_ATTRS.get(tag, ()):
                value = attrs.get(attr) or ""
                if _REMOTE.match(value):
                    found.append(f"<{tag} {attr}={value}>")
        return found

    def has_math(self) -> bool:
        """Whether Sphinx emitted any math for MathJax to typeset on this page."""
        return any("math" in a.get("class", "").split() for _, a in self.tags)


class _TagCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))


@functools.cache
def read_page(path: Path) -> Page:
    """Parse a built HTML page (cached: the pages do not change during a test session)."""
    parser = _TagCollector()
    parser.feed(path.read_text(encoding="utf-8"))
    return Page(path, parser.tags)


# --------------------------------------------------------------------------- serving


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Keep the per-request access log out of the test output."""


@contextlib.contextmanager
def serve_directory(directory: Path) -> Iterator[str]:
    """Serve ``directory`` over HTTP on 127.0.0.1 from a background thread; yield its URL.

    Over file:// chromium refuses the AMD module loads of the widget manager, so the book is
    looked at the way a reader would get it: from a web server.
    """
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def wait_for_http_ok(url: str, proc: subprocess.Popen, timeout: float) -> None:
    """Poll ``url`` until it answers 200; fail early if ``proc`` dies in the meantime."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        time.sleep(0.25)
    raise TimeoutError(f"{url} did not answer 200 within {timeout:.0f} s")


def stop_process(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """Terminate ``proc`` (SIGTERM, then SIGKILL after ``grace`` seconds)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=grace)


# --------------------------------------------------------------------------- the browser


@dataclass
class NetworkLog:
    """Requests seen by one browser context."""

    blocked: list[str] = field(default_factory=list)  # left 127.0.0.1; aborted
    local_errors: list[str] = field(default_factory=list)  # local answers with status >= 400


def launch_chromium(playwright) -> Browser:
    """Launch Debian's headless chromium through Playwright."""
    return playwright.chromium.launch(
        executable_path=require_chromium(), args=CHROMIUM_ARGS, headless=True
    )


@contextlib.contextmanager
def local_only_context(browser: Browser, timeout_ms: int = 60_000) -> Iterator[tuple]:
    """Yield ``(context, network_log)`` for a context that can reach only 127.0.0.1.

    Every request to another host is aborted (so a test never waits on a network that is not
    there, and never depends on one that is) and recorded, so that tests can assert on it.
    """
    context: BrowserContext = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(timeout_ms)
    log = NetworkLog()

    def route(route: Route) -> None:
        url = route.request.url
        parts = urlsplit(url)
        if parts.scheme in ("http", "https", "ws", "wss") and parts.hostname not in LOCAL_HOSTS:
            log.blocked.append(url)
            route.abort()
        else:
            route.continue_()

    def response(resp) -> None:
        if resp.status >= 400:
            log.local_errors.append(f"{resp.status} {resp.url}")

    context.route("**/*", route)
    context.on("response", response)
    try:
        yield context, log
    finally:
        context.close()


# --------------------------------------------------------------------------- links and sources

_NOT_A_FILE_LINK = re.compile(r"^\s*([a-z][a-z0-9+.-]*:|//)", re.IGNORECASE)  # http:, mailto:, //


def element_ids(page: Page) -> set[str]:
    """Every ``id`` (and old-style ``<a name>``) on ``page``: what a ``#fragment`` can reach."""
    ids = {a["id"] for _, a in page.tags if a.get("id")}
    ids |= {a["name"] for t, a in page.tags if t == "a" and a.get("name")}
    return ids


def broken_internal_links(html_root: Path, path: Path) -> list[str]:
    """Return ``href (why)`` for each ``<a href>`` of ``path`` that points inside the book and
    leads nowhere: to no file under ``html_root``, or to a ``#fragment`` with no such id.

    Links with a scheme (``http:``, ``mailto:``, ``javascript:``) or protocol-relative ones
    leave the book and are not followed here; an empty fragment (``href="#"``) is the top of
    the page and always resolves.
    """
    from urllib.parse import unquote

    root = html_root.resolve()
    broken = []
    for attrs in read_page(path).find("a"):
        href = attrs.get("href")
        if href is None or not href.strip() or _NOT_A_FILE_LINK.match(href):
            continue
        parts = urlsplit(href.strip())
        target_path = unquote(parts.path)
        if not target_path:
            target = path.resolve()
        else:
            target = (path.parent / target_path).resolve()
            if target_path.endswith("/") or target.is_dir():
                target = target / "index.html"
        if not target.is_relative_to(root):
            broken.append(f"{href} (outside the built book)")
            continue
        if not target.is_file():
            broken.append(f"{href} (no file {target.relative_to(root)})")
            continue
        fragment = unquote(parts.fragment)
        if fragment and target.suffix == ".html" and fragment not in element_ids(read_page(target)):
            broken.append(f"{href} (no id {fragment!r} in {target.relative_to(root)})")
    return broken


# A code cell of a MyST notebook: its fence (3+ backticks or colons), its options (":key: value"
# lines or a "---" YAML block), its source.
_CODE_CELL = re.compile(
    r"^(?P<fence>`{3,}|:{3,})\{code-cell\}[^\n]*\n(?P<body>.*?)^(?P=fence)[ \t]*$", re.M | re.S
)


@dataclass(frozen=True)
class CodeCell:
    """One ``{code-cell}`` of a MyST notebook source."""

    tags: tuple[str, ...]
    source: str


def code_cells(markdown: str) -> list[CodeCell]:
    """Return the code cells of a MyST notebook source, with their tags, in order."""
    cells = []
    for match in _CODE_CELL.finditer(markdown):
        body = match["body"]
        options: dict = {}
        if body.startswith("---\n"):
            header, _, body = body[4:].partition("\n---\n")
            options = yaml.safe_load(header) or {}
        else:
            lines = body.splitlines(keepends=True)
            while lines and lines[0].startswith(":"):
                key, _, value = lines.pop(0)[1:].partition(":")
                options[key.strip()] = yaml.safe_load(value) if value.strip() else None
            body = "".join(lines)
        tags = options.get("tags") or []
        cells.append(CodeCell(tuple(str(t) for t in tags), body))
    return cells


_SHOW_CALL = re.compile(r"\b(plt|fig)\.show\(\)")


def cells_showing_a_figure(markdown: str) -> list[CodeCell]:
    """The code cells whose output must hold a figure: each calls ``plt.show()`` or
    ``fig.show()`` outside a comment and outside a ``def``, and no tag removes its output.

    A conservative count (a cell that shows three figures counts once) meant as a lower bound
    on the ``<img>`` figures of the built page.
    """
    found = []
    for cell in code_cells(markdown):
        if {"remove-output", "remove-cell"} & set(cell.tags):
            continue
        top_level = []  # lines outside function bodies, comments removed
        in_def = None
        for line in cell.source.splitlines():
            code = line.split("#", 1)[0].rstrip()
            if not code.strip():
                continue
            indent = len(code) - len(code.lstrip())
            if in_def is not None and indent > in_def:
                continue
            in_def = indent if re.match(r"\s*(async\s+)?def\s", code) else None
            top_level.append(code)
        if _SHOW_CALL.search("\n".join(top_level)):
            found.append(cell)
    return found


def prose(markdown: str) -> str:
    """A MyST source without its front matter, code cells, fenced code and inline code."""
    text = re.sub(r"\A---\n.*?\n---\n", "", markdown, flags=re.S)
    text = _CODE_CELL.sub("", text)
    text = re.sub(r"^(`{3,})[^\n]*\n.*?^\1[ \t]*$", _keep_directive_body, text, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "", text)


def _keep_directive_body(match: re.Match) -> str:
    """Keep the content of MyST directives (math lives in exercises, proofs...), drop code."""
    opening = match.group(0).split("\n", 1)[0]
    if re.match(r"`{3,}\{(?!code|code-block|sourcecode)[\w:-]+\}", opening):
        return match.group(0).split("\n", 1)[1].rsplit("\n", 1)[0]
    return ""


_DOLLAR_MATH = re.compile(r"\$\$.+?\$\$|(?<![\\$])\$(?=\S)[^$\n]+?(?<=\S)\$(?!\d)", re.S)


def has_source_math(markdown: str) -> bool:
    """Whether the prose of a MyST source has ``$...$``/``$$...$$`` math or a math directive."""
    text = prose(markdown)
    return bool(_DOLLAR_MATH.search(text) or re.search(r"\{math\}|\\begin\{", text))
