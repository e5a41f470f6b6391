"""The book's live figures in a real browser (Debian chromium through Playwright).

Every page with a ``{lab}`` directive is opened from disk (file://, as a reader who opens
``_build/html/index.html`` gets it) and from a server on 127.0.0.1; every live figure must
draw, with no error on the console and no request leaving the page's origin. Then, on the
pages themselves: a slider and a click change the drawn paths, every slider answers the
keyboard, the explorer's basin maps complete, a bad typed landscape shows a message next to
its box, and the figures work on a 375 px phone screen and in the dark theme.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from book_helpers import BOOK_ROOT, BookBuild, local_only_context, read_page, toc_docnames

pytestmark = [pytest.mark.book, pytest.mark.browser]

LIVE_DIRECTIVE = re.compile(r"^(`{3,}|:{3,})\{lab\}", re.M)
DOCNAMES = toc_docnames(BOOK_ROOT)


def live_figures_in_source(docname: str) -> int:
    """How many ``{lab}`` directives the page's source has."""
    source = BOOK_ROOT / f"{docname}.md"
    return (
        len(LIVE_DIRECTIVE.findall(source.read_text(encoding="utf-8"))) if source.is_file() else 0
    )


LIVE_PAGES = [d for d in DOCNAMES if live_figures_in_source(d)]
EXPLORER = "book/explorer"
# The page whose first figure the interaction tests drive: SAM on the sharp/flat toy.
TOYS = "book/sam_toys"

# Noise of the book's theme, not of the figures: sphinx-thebe writes its config script twice
# (the second throws), and pydata-sphinx-theme warns when it finds no stored theme mode.
KNOWN_ERRORS = (
    "Identifier 'THEBE_JS_URL' has already been declared",
    "Got invalid theme mode",
)

READY_JS = """() => [...document.querySelectorAll('.sampy-lab')].every(
    e => e.dataset.ready === 'true' || e.dataset.error === 'true')"""


# What a control can make a figure do: rerun its paths, or recompute its basin maps.
REACTIONS_JS = """() => [...document.querySelectorAll('.sampy-lab')].map(
    e => [e.dataset.draws, e.dataset.basinRequests])"""


def page_path(book: BookBuild, docname: str) -> Path:
    return book.html / f"{docname}.html"


def open_page(context, url: str, width: int = 1280):
    """A page at ``url`` whose live figures have started; returns (page, errors)."""
    page = context.new_page()
    page.set_viewport_size({"width": width, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url, wait_until="load")
    page.wait_for_function(READY_JS, timeout=30_000)
    return page, errors


def unexpected(errors: list[str]) -> list[str]:
    return [e for e in errors if not any(known in e for known in KNOWN_ERRORS)]


def figure_state(page, index: int = 0) -> dict:
    """What figure ``index`` of the page drew last: its starts and every run's end points."""
    return page.evaluate(
        """(i) => {
            const f = sampyLab.figures[i];
            return {starts: f.settings.starts, draws: f.draws, paints: f.paints,
                    ends: f.runs.map(r => r.traj === null ? null : Array.from(r.traj.final))};
        }""",
        index,
    )


# --------------------------------------------------------------------------- the built HTML


def test_the_book_has_live_figures() -> None:
    assert EXPLORER in LIVE_PAGES and TOYS in LIVE_PAGES, LIVE_PAGES
    assert len(LIVE_PAGES) >= 7, f"live figures on only {LIVE_PAGES}"


@pytest.mark.parametrize("docname", DOCNAMES)
def test_live_figures_and_their_script_are_where_the_sources_put_them(
    book: BookBuild, docname: str
) -> None:
    page = read_page(page_path(book, docname))
    figures = [a for a in page.find("div") if "sampy-lab" in a.get("class", "").split()]
    scripts = [a["src"] for a in page.find("script") if "sampy-lab.js" in a.get("src", "")]
    sheets = [a["href"] for a in page.find("link") if "sampy-lab.css" in a.get("href", "")]
    expected = live_figures_in_source(docname)
    assert len(figures) == expected, f"{docname}: {len(figures)} live figures, source {expected}"
    assert len(scripts) == (1 if expected else 0), f"{docname} loads {scripts}"
    assert len(sheets) == (1 if expected else 0), f"{docname} links {sheets}"


def test_no_page_embeds_a_frozen_widget_snapshot(book: BookBuild) -> None:
    """The live figures replaced the ipywidgets snapshots, which cannot move without a kernel."""
    frozen = [
        d
        for d in DOCNAMES
        if read_page(page_path(book, d)).find(
            "script", type="application/vnd.jupyter.widget-state+json"
        )
    ]
    assert not frozen, f"pages with a frozen widget snapshot: {frozen}"


# --------------------------------------------------------------------------- in a browser


@pytest.mark.parametrize("origin", ["file", "http"])
@pytest.mark.parametrize("docname", LIVE_PAGES)
def test_every_live_figure_draws(browser, book: BookBuild, book_url: str, docname, origin):
    path = page_path(book, docname)
    url = path.as_uri() if origin == "file" else f"{book_url}/{docname}.html"
    requests: list[str] = []
    with local_only_context(browser) as (context, net):
        context.on("request", lambda r: requests.append(r.url))
        page, errors = open_page(context, url)
        states = page.evaluate(
            """() => [...document.querySelectorAll('.sampy-lab')].map(e => ({
                ready: e.dataset.ready, error: e.dataset.error, draws: Number(e.dataset.draws),
                text: e.innerText.slice(0, 200),
                pixels: (() => {
                    const c = e.querySelector('canvas.sl-canvas');
                    if (!c) return 0;
                    const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                    const seen = new Set();
                    for (let i = 0; i < data.length; i += 4 * 97) {
                        seen.add(data[i] * 65536 + data[i + 1] * 256 + data[i + 2]);
                    }
                    return seen.size;
                })(),
            }))"""
        )
    assert len(states) == live_figures_in_source(docname)
    for k, state in enumerate(states):
        assert state["ready"] == "true", f"{docname} figure {k} did not start: {state['text']}"
        assert state["draws"] >= 1, f"{docname} figure {k} never drew"
        assert state["pixels"] > 20, f"{docname} figure {k} is blank ({state['pixels']} colours)"
    assert not unexpected(errors), f"{docname} ({origin}): console errors {unexpected(errors)}"
    assert not net.blocked, f"{docname} tried to leave 127.0.0.1: {net.blocked}"
    here = "file:" if origin == "file" else book_url
    other = [u for u in requests if not u.startswith(here)]
    assert not other, f"{docname} ({origin}) asked another origin: {other}"


def test_a_slider_and_a_click_change_the_paths(browser, book: BookBuild) -> None:
    with local_only_context(browser) as (context, _):
        page, errors = open_page(context, page_path(book, TOYS).as_uri())
        figure = page.locator(".sampy-lab").first
        before = figure_state(page)
        rho = figure.get_by_role("slider", name="SAM rho")
        rho.focus()
        page.keyboard.press("ArrowRight")
        after_slider = figure_state(page)
        assert after_slider["draws"] > before["draws"]
        assert after_slider["ends"][1] != before["ends"][1], "SAM's path did not change"
        assert after_slider["ends"][0] == before["ends"][0], "gradient descent has no ρ"

        canvas = figure.locator("canvas.sl-canvas")
        box = canvas.bounding_box()
        page.mouse.click(box["x"] + 0.8 * box["width"], box["y"] + 0.3 * box["height"])
        after_click = figure_state(page)
        assert after_click["starts"] != after_slider["starts"]
        x, y = after_click["starts"][0]
        assert 1.8 < x < 2.4 and 0.3 < y < 0.5, f"the click went to ({x}, {y})"
        assert after_click["ends"][0] != after_slider["ends"][0], "the paths did not move"

        canvas.focus()
        page.keyboard.press("ArrowLeft")
        moved = figure_state(page)
        assert moved["starts"][0][0] < x, "the arrow keys do not move the start"
    assert not unexpected(errors), unexpected(errors)


@pytest.mark.parametrize("docname", LIVE_PAGES)
def test_every_slider_answers_the_keyboard(browser, book: BookBuild, docname: str) -> None:
    with local_only_context(browser) as (context, _):
        page, errors = open_page(context, page_path(book, docname).as_uri())
        sliders = page.locator(".sampy-lab input[type=range]")
        assert sliders.count() > 0, f"{docname} has no slider"
        for k in range(sliders.count()):
            slider = sliders.nth(k)
            name = slider.get_attribute("aria-label")
            value = slider.input_value()
            at_end = value == slider.get_attribute("max")
            draws = page.evaluate(REACTIONS_JS)
            slider.focus()
            page.keyboard.press("ArrowLeft" if at_end else "ArrowRight")
            assert slider.input_value() != value, f"{docname}: {name} ignores the arrow key"
            now = page.evaluate(REACTIONS_JS)
            assert now != draws, f"{docname}: moving {name} redrew nothing"
    assert not unexpected(errors), f"{docname}: {unexpected(errors)}"


def test_the_explorer_computes_its_basin_maps(browser, book: BookBuild) -> None:
    with local_only_context(browser) as (context, _):
        page, errors = open_page(context, page_path(book, EXPLORER).as_uri())
        lab = page.locator(".sampy-lab.sl-full")
        page.wait_for_function(
            "() => document.querySelector('.sampy-lab.sl-full').dataset.basins === 'done'",
            timeout=60_000,
        )
        legends = lab.locator(".sl-basin-legend").all_inner_texts()
        shares = [float(m) for text in legends for m in re.findall(r"sharp: ([\d.]+)%", text)]
    assert len(shares) == 2, legends
    assert shares[0] > 5 * shares[1], f"SGD and SAM end in the sharp basin as often: {shares}"
    assert not unexpected(errors), unexpected(errors)


def test_a_bad_expression_is_explained_next_to_its_box(browser, book: BookBuild) -> None:
    with local_only_context(browser) as (context, _):
        page, errors = open_page(context, page_path(book, EXPLORER).as_uri())
        lab = page.locator(".sampy-lab.sl-full")
        lab.get_by_label("landscape", exact=True).select_option("expression of x, y")
        box = lab.locator("input.sl-expression")
        box.fill("x^2 + y**2")
        box.press("Enter")
        message = lab.locator(".sl-knob-expression .sl-expression-error")
        assert "'^' is not allowed" in message.inner_text()
        assert "use ** for powers" in message.inner_text()
        draws = figure_state(page)["draws"]
        box.fill("x**2 + 3*y**2")
        box.press("Enter")
        assert message.inner_text() == ""
        assert figure_state(page)["draws"] > draws
    assert not unexpected(errors), unexpected(errors)


@pytest.mark.parametrize("docname", [EXPLORER, TOYS])
def test_the_figures_fit_a_phone_screen(browser, book: BookBuild, docname: str) -> None:
    with local_only_context(browser) as (context, _):
        page, errors = open_page(context, page_path(book, docname).as_uri(), width=375)
        overflow = page.evaluate(
            """() => [...document.querySelectorAll('.sampy-lab')].map(e => {
                const r = e.getBoundingClientRect();
                const c = e.querySelector('canvas.sl-canvas').getBoundingClientRect();
                return {right: r.right, canvas: c.right, width: window.innerWidth,
                        ready: e.dataset.ready};
            })"""
        )
    for k, box in enumerate(overflow):
        assert box["ready"] == "true"
        assert box["right"] <= box["width"] + 1, f"{docname} figure {k} overflows: {box}"
        assert box["canvas"] <= box["width"] + 1, f"{docname} picture {k} overflows: {box}"
    assert not unexpected(errors), unexpected(errors)


def test_the_figures_follow_the_dark_theme(browser, book: BookBuild) -> None:
    with local_only_context(browser) as (context, _):
        page, errors = open_page(context, page_path(book, TOYS).as_uri())
        ink = "() => getComputedStyle(document.querySelector('.sampy-lab')).color"
        light = page.evaluate(ink)
        paints = figure_state(page)["paints"]
        page.evaluate("() => { document.documentElement.dataset.theme = 'dark'; }")
        page.wait_for_function("(p) => sampyLab.figures[0].paints > p", arg=paints, timeout=10_000)
        dark = page.evaluate(ink)
    assert light != dark, "the figure's text keeps the light theme's colour"
    assert not unexpected(errors), unexpected(errors)


def test_the_laboratory_adds_a_variant_and_copies_the_python(browser, book: BookBuild) -> None:
    with local_only_context(browser) as (context, _):
        page, errors = open_page(context, page_path(book, EXPLORER).as_uri())
        lab = page.locator(".sampy-lab.sl-full")
        lab.get_by_label("variant 3", exact=True).select_option("LookSAM")
        state = figure_state(page)
        assert len(state["ends"]) == 3, "the third slot did not run"
        assert "LookSAM:" in lab.locator(".sl-status").inner_text()
        assert lab.get_by_role("slider", name="k").count() == 1, "LookSAM's knobs are missing"
        lab.get_by_role("button", name="Copy as Python").click()
        snippet = lab.locator("pre.sl-snippet").inner_text()
        assert 'sampy.variant("LookSAM").make(SGD(' in snippet
        assert snippet.count("sampy.run(") == 3
        assert lab.locator(".sl-copied").inner_text() in ("copied", "selected: press Ctrl+C")
    assert not unexpected(errors), unexpected(errors)
