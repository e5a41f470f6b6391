"""Shared fixtures: the book built once per session, and headless chromium via Playwright."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from book_helpers import (
    BOOK_ROOT,
    BookBuild,
    build_book,
    launch_chromium,
    require_chromium,
    serve_directory,
)


@pytest.fixture(scope="session")
def book() -> BookBuild:
    """The book, built once per test session with ``jupyter-book build -W --keep-going``."""
    return build_book(BOOK_ROOT)


@pytest.fixture(scope="session")
def book_url(book: BookBuild) -> Iterator[str]:
    """Base URL of the built HTML, served on 127.0.0.1."""
    with serve_directory(book.html) as url:
        yield url


# Module scope on purpose: Playwright's sync API keeps an event loop alive in this thread
# for as long as it runs, which would break asyncio-based tests (nbclient, jupyter_client)
# collected after the browser tests. Launching chromium twice costs about a second.
@pytest.fixture(scope="module")
def browser():
    """A headless Debian chromium, skipped (outside CI) when it is not installed."""
    require_chromium()  # skip before starting Playwright's driver for nothing
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread for a module of tiny-tensor tests.

    On tensors of a few hundred numbers two threads spin against each other (measured 20-30×
    slower on the 2-core machine); the previous count is restored afterwards.
    """
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
