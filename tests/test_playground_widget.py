"""The laboratory widget (``sampy.widgets.Playground``) driven directly, with no kernel.

ipywidgets fire their ``observe`` callbacks in a plain Python process: each test sets
controls' ``.value`` and looks at ``image.value`` (the PNG), ``status`` and the tabs. Every
kind of control must change the picture; nothing a reader sets or types may raise.
"""

from __future__ import annotations

import base64
import io
import math
import re
import sys
import time
import types

import numpy as np
import pytest
from heavy_settings import heavy_expression
from matplotlib.text import Text
from PIL import Image

import sampy
from sampy.playground import app as app_module
from sampy.playground.choices import LESSON, PALETTES
from sampy.playground.clicks import (
    ClickGrid,
    EventClicks,
    cell_centres,
    data_to_pixel,
    event_pixel,
    pixel_to_data,
)
from sampy.playground.compute import EXPRESSION, LabSettings, VariantSetting, run_lab
from sampy.playground.pictures import SIDES, VIEWS, DrawOptions, LabPicture
from sampy.widgets import Playground, time_playground_update

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_of(lab: Playground) -> bytes:
    data = bytes(lab.image.value)  # ipywidgets hands back a memoryview
    assert data.startswith(PNG_SIGNATURE)
    Image.open(io.BytesIO(data)).load()  # decodes every pixel: a corrupt PNG raises
    return data


@pytest.fixture(scope="module")
def lab() -> Playground:
    """One laboratory for the tests that put it back as they found it."""
    return Playground()


def fresh(**kwargs: object) -> Playground:
    return Playground(**kwargs)


# --------------------------------------------------------------------------- first picture


def test_draws_on_creation_with_sgd_and_sam(lab: Playground) -> None:
    png_of(lab)
    lines = lab.status.value.split("<br>")
    assert lines[0].startswith("SGD:") and "sharp minimum" in lines[0]
    assert lines[1].startswith("SAM:") and "flat minimum" in lines[1]
    assert [slot.method for slot in lab.slots] == ["SGD", "SAM", "(none)", "(none)"]
    assert lab.slots[1].knobs["rho"].value == 0.1  # the lesson's ρ: a visible ball
    assert lab.settings().x0 == (0.8, -0.2)


def test_the_picture_is_no_pyplot_figure() -> None:
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    fresh()
    assert plt.get_fignums() == before


# --------------------------------------------------------------------------- every control


def change(control: object) -> object:
    """A valid value of ``control`` other than its current one."""
    import ipywidgets as widgets

    if isinstance(control, widgets.Checkbox):
        return not control.value
    if isinstance(control, (widgets.Dropdown, widgets.ToggleButtons, widgets.SelectionSlider)):
        values = [o[1] if isinstance(o, tuple) else o for o in control.options]
        return next(v for v in values if v != control.value)
    if isinstance(control, widgets.FloatLogSlider):
        return control.value * 2
    if isinstance(control, widgets.IntSlider):
        return control.value + 5 if control.value + 5 <= control.max else control.value - 5
    middle = (control.min + control.max) / 2
    return middle if abs(middle - control.value) > 1e-9 else control.max


@pytest.mark.parametrize(
    "name",
    ["view_buttons", "scale_buttons", "lr_slider", "steps_slider", "base_menu",
     "noise_slider", "x_slider", "y_slider", "arrows_slider", "balls_box", "side_menu"],
)  # fmt: skip
def test_each_control_redraws(name: str) -> None:
    lab = fresh()
    before = png_of(lab)
    control = getattr(lab, name)
    control.value = change(control)
    assert "color:#b00020" not in lab.status.value, lab.status.value
    assert png_of(lab) != before


def test_function_menu_moves_the_start_into_the_new_domain() -> None:
    lab = fresh()
    before = png_of(lab)
    lab.function_menu.value = "himmelblau"
    assert png_of(lab) != before
    domain = sampy.functions.get("himmelblau").domain
    assert (lab.x_slider.min, lab.x_slider.max) == domain[0]
    assert lab.settings().x0 == (-0.5, 0.0)  # SUGGESTED
    assert lab.expression_text.layout.display == "none"  # only for typed expressions


@pytest.mark.parametrize("name", sampy.widgets.two_d_function_names())
def test_every_function_draws(lab: Playground, name: str) -> None:
    lab.function_menu.value = name
    png_of(lab)
    assert lab.status.value.startswith("SGD:"), lab.status.value  # and no divergence
    lab.function_menu.value = "sharp_flat"


def test_each_kind_of_variant_control_redraws() -> None:
    lab = fresh()
    before = png_of(lab)
    lab.slots[2].menu.value = "LookSAM"  # a dropdown of methods
    assert png_of(lab) != before and "LookSAM:" in lab.status.value
    for slot, name in [(1, "rho"), (1, "adaptive"), (2, "k"), (1, "p")]:  # real, bool, int
        knob = lab.slots[slot].knobs[name]
        before = png_of(lab)
        knob.value = change(knob)
        assert png_of(lab) != before, (slot, name, lab.status.value)
    lab.slots[3].menu.value = "RandomSAM"
    before = png_of(lab)
    lab.slots[3].knobs["kind"].value = change(lab.slots[3].knobs["kind"])  # a choice
    assert png_of(lab) != before
    lab.slots[3].menu.value = "(none)"
    assert "RandomSAM" not in lab.status.value and lab.slots[3].knobs == {}


def test_four_variants_are_four_paths_from_one_start() -> None:
    lab = fresh(variants=("SGD", "SAM", "ASAM", "MSAM"))
    assert len(lab.runs) == 4
    assert all(np.array_equal(r.xs[0], [0.8, -0.2]) for r in lab.runs)
    assert lab.status.value.count("<br>") == 3
    assert [label for label, _ in lab.anatomy_menu.options] == ["SGD", "SAM", "ASAM", "MSAM"]


def test_only_the_changed_variant_reruns() -> None:
    lab = fresh(variants=("SGD", "SAM"))
    sgd, sam = lab.runs
    rho = lab.slots[1].knobs["rho"].value
    lab.slots[1].knobs["rho"].value = 0.2
    assert lab.runs[0] is sgd and lab.runs[1] is not sam  # SGD came from the cache
    lab.slots[1].knobs["rho"].value = rho
    assert lab.runs[1] is sam  # and back: both from the cache


def test_anatomy_panel() -> None:
    lab = fresh()
    lab.side_menu.value = SIDES[2]
    before = png_of(lab)
    assert lab.anatomy_menu.value == 1  # SAM
    lab.anatomy_menu.value = 0  # SGD takes no ascent: the panel says so
    assert png_of(lab) != before
    assert "color:#b00020" not in lab.status.value


# --------------------------------------------------------------------------- typed functions


def test_a_typed_expression_is_drawn() -> None:
    lab = fresh()
    before = png_of(lab)
    lab.function_menu.value = EXPRESSION
    assert lab.expression_text.layout.display is None
    assert png_of(lab) != before
    assert lab.settings().function == EXPRESSION
    before, start = png_of(lab), lab.settings().x0
    lab.expression_text.value = "x**2 + 10*y**2"
    assert png_of(lab) != before
    assert "no known minimum" in lab.status.value
    assert lab.settings().x0 == start  # a new formula on the same box keeps the start
    before = png_of(lab)
    lab.box_text.value = 2.0
    assert png_of(lab) != before and lab.x_slider.max == 2.0


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("__import__('os').system('touch /tmp/sampy-pwned')", "attribute access"),
        ("__import__('os')", "unknown function"),
        ("lambda: 1", "lambda"),
        ("x +", "syntax"),
        ("x**1000", "exponent"),
        ("", "empty"),
        ("x" * 600, "too long"),
        ("(" * 200 + "x" + ")" * 200, "nest"),
    ],
)
def test_bad_expressions_are_shown_not_raised(text: str, says: str) -> None:
    lab = fresh(function=EXPRESSION)
    before = png_of(lab)
    lab.expression_text.value = text
    assert "Expression" in lab.status.value and says in lab.status.value.lower(), lab.status.value
    assert png_of(lab) == before  # the last good picture stays
    lab.expression_text.value = "x**2 + y**2"  # and a good one draws again
    assert "Expression" not in lab.status.value and png_of(lab) != before


def test_a_pole_leaves_the_app_responsive() -> None:
    lab = fresh(function=EXPRESSION, expression="1/(x - 1)")
    png_of(lab)
    assert "SGD:" in lab.status.value
    lab.expression_text.value = "sqrt(x) + y**2"  # NaN left of 0: the runs walk into it
    lab.pick_start(0.5, 0.3)
    lab.lr_slider.value = 0.05
    assert re.search(r"SGD: .*diverged at step \d+", lab.status.value)
    assert re.search(r"SAM: .*diverged at step \d+", lab.status.value)
    png_of(lab)


# --------------------------------------------------------------------------- extreme settings


def test_extreme_settings_report_divergence_and_raise_nothing() -> None:
    lab = fresh(variants=("SGD", "SAM", "USAM", "LookSAM"))
    lab.lr_slider.value = lab.lr_slider.max  # lr = 1
    for slot in lab.slots[1:]:
        rho = slot.knobs["rho"]
        rho.value = rho.max
    lab.steps_slider.value = 10_000
    png_of(lab)
    assert lab.status.value.count("<br>") == 3
    assert all(r.ok and r.grad_evals >= 10_000 for r in lab.runs)  # bounded wells: no blow-up
    lab.function_menu.value = "quadratic"
    lab.lr_slider.value = 1.0
    for line in lab.status.value.split("<br>"):
        assert "diverged at step" in line, line
    lab.view_buttons.value = VIEWS[1]  # the 3-D view copes with diverged runs too
    png_of(lab)


def test_an_exception_inside_a_variant_is_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    lab = fresh()
    real = app_module.run_variant

    def flaky(f, variant, settings, label=None):
        if variant.method == "SAM":
            raise FloatingPointError("the variant broke")
        return real(f, variant, settings, label)

    monkeypatch.setattr(app_module, "run_variant", flaky)
    lab.lr_slider.value = 0.02  # cache miss: both re-run
    assert "SGD: ends at" in lab.status.value
    assert "SAM: not run (FloatingPointError: the variant broke)" in lab.status.value
    png_of(lab)


def test_an_exception_anywhere_is_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    lab = fresh()
    before = png_of(lab)

    def broken(*args, **kwargs):
        raise RuntimeError("no figure today")

    monkeypatch.setattr(lab.pictures[VIEWS[0]], "png", broken)
    lab.lr_slider.value = 0.02
    assert "Could not draw" in lab.status.value and "no figure today" in lab.status.value
    assert png_of(lab) == before


def test_no_variant_at_all_is_a_message() -> None:
    lab = fresh(variants=("SGD",))
    lab.slots[0].menu.value = "(none)"
    assert "Nothing to run" in lab.status.value


def test_invalid_knob_value_is_a_message_for_that_variant() -> None:
    lab = fresh(variants=("SGD", "LookSAM"))
    lab.slots[1]._fixed["k"] = 0  # no slider allows it; the settings' check still must
    lab.slots[1].knobs.pop("k").close()
    lab.lr_slider.value = 0.02
    assert re.search(r"LookSAM: not run \(.*k", lab.status.value)
    assert "SGD: ends at" in lab.status.value


# --------------------------------------------------------------------------- clicks


def test_pixel_to_data_maps_the_axes_box() -> None:
    box, limits = (50.0, 30.0, 450.0, 270.0), ((-1.0, 3.0), (-1.0, 1.0))
    assert pixel_to_data(50, 30, box, limits) == (-1.0, 1.0)  # top-left = (x_lo, y_hi)
    assert pixel_to_data(450, 270, box, limits) == (3.0, -1.0)
    assert pixel_to_data(250, 150, box, limits) == (1.0, 0.0)
    assert pixel_to_data(49, 150, box, limits) is None  # left of the axes
    assert pixel_to_data(250, 271, box, limits) is None
    assert pixel_to_data(125, 75, box, limits, scale=(2.0, 2.0)) == (1.0, 0.0)  # shown at ½
    for x, y in [(0.3, -0.7), (2.9, 0.99)]:
        px, py = data_to_pixel(x, y, box, limits)
        np.testing.assert_allclose(pixel_to_data(px, py, box, limits), (x, y))


def test_the_pixel_box_is_where_matplotlib_draws_the_axes() -> None:
    f, runs = run_lab(LabSettings(steps=10))
    picture = LabPicture()
    picture.png(f, runs, DrawOptions())
    _, height = picture.image_size()
    left, top, right, bottom = picture.pixel_box()
    # matplotlib's display coordinates have y up from the bottom; the PNG's y runs down.
    (x_lo, x_hi), (y_lo, y_hi) = f.domain
    corners = picture.ax.transData.transform([(x_lo, y_lo), (x_hi, y_hi)])
    np.testing.assert_allclose(corners[0], (left, height - bottom), atol=0.5)
    np.testing.assert_allclose(corners[1], (right, height - top), atol=0.5)


def test_event_pixel_reads_ipyevents_coordinates() -> None:
    assert event_pixel({"arrayX": 10, "arrayY": 20, "relativeX": 5}, (800, 400)) == (10.0, 20.0)
    shown_half = {"relativeX": 100, "relativeY": 50, "boundingRectWidth": 400,
                  "boundingRectHeight": 200}  # fmt: skip
    assert event_pixel(shown_half, (800, 400)) == (200.0, 100.0)


def test_a_click_on_a_grid_cell_sets_the_start() -> None:
    lab = fresh()
    assert isinstance(lab.clicks, ClickGrid)  # ipyevents is not installed here
    grid = lab.clicks
    assert len(grid.buttons) == grid.nx * grid.ny
    assert len({id(b.layout) for b in grid.buttons}) == 1  # one shared Layout model
    before = png_of(lab)
    k = 3 * grid.nx + 2  # row 3, column 2
    grid.buttons[k].click()
    px, py = cell_centres(grid.nx, grid.ny, lab.picture.pixel_box())[k]
    expected = pixel_to_data(px, py, lab.picture.pixel_box(), lab.function.domain)
    assert lab.settings().x0 == pytest.approx(expected, abs=lab.x_slider.step)
    assert png_of(lab) != before
    # The top-left cell is near (x_lo, y_hi), the bottom-right near (x_hi, y_lo).
    grid.click(0)
    (x_lo, x_hi), (y_lo, y_hi) = lab.function.domain
    x, y = lab.settings().x0
    assert x_lo < x < x_lo + (x_hi - x_lo) / grid.nx and y_hi - (y_hi - y_lo) / grid.ny < y
    # In the 3-D view a pixel is no point of the plane: clicks are ignored, the grid hidden.
    lab.view_buttons.value = VIEWS[1]
    assert grid.layout.display == "none"
    lab.pick_pixel(*data_to_pixel(1.0, 0.5, lab._picture(VIEWS[0]).pixel_box(),
                                  lab.function.domain))  # fmt: skip
    assert lab.settings().x0 == (x, y)


def test_a_click_outside_the_axes_does_nothing() -> None:
    lab = fresh()
    start = lab.settings().x0
    lab.pick_pixel(2.0, 2.0)  # the figure's corner
    assert lab.settings().x0 == start


def test_the_ipyevents_adapter(monkeypatch: pytest.MonkeyPatch) -> None:
    # ipyevents is not a dependency yet: a stand-in Event checks the adapter's wiring.
    class FakeEvent:
        def __init__(self, source, watched_events):
            self.source, self.watched_events, self.handlers = source, watched_events, []

        def on_dom_event(self, handler):
            self.handlers.append(handler)

    monkeypatch.setitem(sys.modules, "ipyevents", types.SimpleNamespace(Event=FakeEvent))
    monkeypatch.setattr(app_module, "ipyevents_available", lambda: True)
    lab = fresh()
    assert isinstance(lab.clicks, EventClicks)
    assert lab.clicks.event.source is lab.image and lab.clicks.event.watched_events == ["click"]
    px, py = data_to_pixel(2.0, 0.5, lab.picture.pixel_box(), lab.function.domain)
    lab.clicks.event.handlers[0]({"type": "click", "arrayX": px, "arrayY": py})
    assert lab.settings().x0 == pytest.approx((2.0, 0.5), abs=2 * lab.x_slider.step)
    assert lab.stack.children == (lab.image,)  # no button grid


# --------------------------------------------------------------------------- the tabs


def test_basin_map_tab() -> None:
    lab = fresh()
    lab.basin_grid.value, lab.basin_steps.value = 20, 200
    assert lab.basin_image.layout.display == "none"  # nothing computed yet
    blank = bytes(lab.basin_image.value)
    assert Image.open(io.BytesIO(blank)).size == (1, 1)  # a valid PNG: no broken image
    lab.basin_button.click()
    data = bytes(lab.basin_image.value)
    assert data.startswith(PNG_SIGNATURE) and data != blank
    assert lab.basin_image.layout.display is None
    assert "SGD: sharp" in lab.basin_status.value and "SAM: sharp" in lab.basin_status.value
    assert "20×20 start points" in lab.basin_status.value
    sgd, sam = lab.basin_maps
    assert sgd.basin.shape == (20, 20) and sam.steps == 200


def test_basin_map_refuses_too_much_work() -> None:
    lab = fresh()
    lab.basin_grid.value, lab.basin_steps.value = 150, 2000
    lab.compute_basins()
    assert "too much" in lab.basin_status.value and lab.basin_image.layout.display == "none"


def test_sharpness_tab_fills_when_opened_and_follows_the_runs() -> None:
    lab = fresh()
    assert lab.sharpness_html.value == ""  # not computed until asked
    lab.tabs.selected_index = 1
    table = lab.sharpness_html.value
    assert "<table" in table and "SGD" in table and "SAM" in table
    lab.slots[1].knobs["rho"].value = 0.2
    assert lab.sharpness_html.value != table  # recomputed for the new end point


def test_export_snippet_reproduces_the_runs() -> None:
    lab = fresh(variants=("SGD", "SAM", "LookSAM"))
    lab.noise_slider.value = 0.1
    namespace: dict = {}
    exec(lab.snippet_text.value, namespace)  # our generated code
    for vrun in lab.runs:
        np.testing.assert_array_equal(namespace["runs"][vrun.label].xs, vrun.xs)


def test_downloads_are_data_links_of_the_exports() -> None:
    lab = fresh()
    lab.export_button.click()
    links = dict(re.findall(r'download="([^"]+)" href="data:[^;]+;base64,([^"]+)"',
                            lab.downloads.value))  # fmt: skip
    assert set(links) == {"sampy-playground.png", "sampy-trajectories.csv",
                          "sampy-trajectories.npz"}  # fmt: skip
    assert base64.b64decode(links["sampy-playground.png"]) == png_of(lab)
    assert base64.b64decode(links["sampy-trajectories.csv"]).startswith(b"variant,step,x,y")
    with np.load(io.BytesIO(base64.b64decode(links["sampy-trajectories.npz"]))) as data:
        np.testing.assert_array_equal(data["xs"][1], lab.runs[1].xs)
    lab.lr_slider.value = 0.02  # a new picture: the old links go
    assert "base64" not in lab.downloads.value


# --------------------------------------------------------------------------- the picture


def test_a_reused_picture_draws_exactly_like_a_fresh_one() -> None:
    first = LabSettings(variants=(VariantSetting("SGD"), VariantSetting("SAM")), steps=100)
    other = LabSettings(function="himmelblau", x0=(-0.5, 0.0), steps=100,
                        variants=(VariantSetting("ASAM"),) * 3)  # fmt: skip
    f, runs = run_lab(first)
    g, other_runs = run_lab(other)
    picture = LabPicture()
    png = picture.png(f, runs)
    picture.png(g, other_runs, DrawOptions(side=SIDES[1], log=True))
    picture.png(f, runs, DrawOptions(view=VIEWS[1]))
    assert picture.png(f, runs) == png == LabPicture().png(f, runs)


def test_time_playground_update_returns_one_time_per_update() -> None:
    for control in ("start", "knob"):
        times = time_playground_update(n=3, steps=20, variants=("SGD", "SAM"), control=control)
        assert times.shape == (3,) and np.all(times > 0)
    with pytest.raises(ValueError, match="control"):
        time_playground_update(n=1, control="nope")


def test_constructor_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="variants"):
        Playground(variants=())
    with pytest.raises(ValueError, match="function"):
        Playground(function="no_such_function")
    with pytest.raises(ValueError, match="method"):
        Playground(variants=("Nesterov",))
    with pytest.raises(ValueError, match="base"):
        Playground(base="RMSprop")


def test_settings_are_the_controls() -> None:
    lab = fresh(variants=("SGD", "SAM"), hyperparameters=[{}, {"rho": 0.1, "p": 3.0}])
    assert lab.settings().variants == (
        VariantSetting("SGD", {}),
        VariantSetting("SAM", {"rho": 0.1, "p": 3.0, "adaptive": False, "eta": 0.0}),
    )
    assert lab.settings().variants[1].hyperparameters["rho"] == 0.1
    assert "rho=0.1, p=3.0" in lab.snippet_text.value


# --------------------------------------------------------------------------- book scrubber


def test_basin_scrubber_is_offline_with_one_frame_per_map() -> None:
    from sampy import plot
    from sampy.basins import basin_map
    from sampy.optim import SAM, SGD
    from sampy.playground.pictures import basin_animation

    maps = [basin_map(SAM(SGD(lr=0.02), rho=rho), "sharp_flat", grid=(12, 12), steps=50)
            for rho in (0.0, 0.1, 0.2)]  # fmt: skip
    html = plot.animation_html(basin_animation(maps, ["a", "b", "c"]))
    assert "http" not in html  # the Font Awesome CDN link is stripped
    assert len(re.findall(r'frames\[\d+\] = "data:image/png;base64', html)) == 3
    with pytest.raises(ValueError, match="titles"):
        basin_animation(maps, ["a"])
    with pytest.raises(ValueError, match="share"):
        basin_animation([maps[0], basin_map(SGD(lr=0.02), "sharp_flat", grid=(10, 10))])


def test_make_playground_serves_on_loopback_only() -> None:
    # Voila's default is every interface; the Makefile's target must pin it to 127.0.0.1
    # (tests/test_playground.py serves the notebook the same way).
    from pathlib import Path

    makefile = (Path(__file__).resolve().parent.parent / "Makefile").read_text()
    target = makefile.split("\nplayground:", 1)[1].split("\n\n", 1)[0]
    assert "voila" in target and "--Voila.ip=127.0.0.1" in target
    assert "0.0.0.0" not in target


# --------------------------------------------------------------------------- the classroom review


def test_the_lab_starts_from_the_lesson() -> None:
    lab = fresh()
    shown, lesson = lab.settings(), LabSettings()  # LabSettings' defaults are the lesson's
    for name in ("function", "lr", "steps", "x0", "base", "noise"):
        assert getattr(shown, name) == getattr(lesson, name), name
    assert [v.method for v in shown.variants] == [v.method for v in lesson.variants]
    for mine, theirs in zip(shown.variants, lesson.variants, strict=True):
        assert theirs.hyperparameters.items() <= mine.hyperparameters.items()  # + defaults
    assert lab.slots[1].knobs["rho"].value == LESSON["variants"][1]["hyperparameters"]["rho"]
    basins = LESSON["basins"]
    assert (lab.basin_grid.value, lab.basin_steps.value) == (basins["grid"], basins["steps"])
    assert (lab.basin_a.value, lab.basin_b.value) == (basins["left"], basins["right"])
    assert lab.arrows_slider.value == LESSON["arrows_every"]


def test_the_picture_has_equal_scales_a_colour_bar_and_a_readable_legend() -> None:
    from matplotlib.colors import to_hex

    from sampy.playground.pictures import DPI

    for function, ratio in [("sharp_flat", 2.0), ("himmelblau", 1.0)]:
        lab = fresh(function=function)
        picture = lab.picture
        left, top, right, bottom = picture.pixel_box()
        assert (right - left) / (bottom - top) == pytest.approx(ratio, rel=0.01)
        assert picture.ax.get_aspect() == 1.0
        # The SAM ρ-ball (Euclidean) is drawn round: as wide as tall in pixels.
        ball = picture.ax.transData.transform(picture.balls[1].get_xydata())
        width, height = np.ptp(ball, axis=0)
        assert width == pytest.approx(height, rel=0.02) and width > 8
        # A colour bar, labelled.
        bars = [ax for ax in picture.figure.axes if ax.get_ylabel() == "f(x, y)"]
        assert len(bars) == 1
        # Every text at least 11 px; the legend dark on white, beside the picture.
        texts = [t for t in picture.figure.findobj(Text) if t.get_text() and t.get_visible()]
        assert min(t.get_fontsize() * DPI / 72 for t in texts) >= 11
        (legend,) = picture.figure.legends
        assert {to_hex(t.get_color()) for t in legend.get_texts()} == {"#000000"}
        assert to_hex(legend.get_frame().get_facecolor()) == "#ffffff"
        assert "SGD · 300 gradient evals" in [t.get_text() for t in legend.get_texts()]


def test_the_side_panel_has_no_text_for_the_curves_to_cross() -> None:
    lab = fresh(variants=("SGD", "SAM", "GSAM", "LookSAM"))
    lab.steps_slider.value = 2000
    side = lab.picture.side
    assert list(side.texts) == []  # the cost is in the legend
    labels = [t.get_text() for t in lab.picture.figure.legends[0].get_texts()]
    assert "LookSAM · 2,200 gradient evals" in labels


def test_the_anatomy_legend_names_ckpt0() -> None:
    lab = fresh()
    lab.side_menu.value = SIDES[2]
    labels = [t.get_text() for t in lab.picture.figure.legends[0].get_texts()]
    assert sum(label.startswith("ckpt0") for label in labels) == 1
    assert sum(label.startswith("ckpt") for label in labels) == 5
    # ckpt0 is drawn in its own colour (on the valley floor g_y = 0: half the coordinates),
    # not left as the panel's dark background.
    x0, y0, x1, y1 = lab.picture.side.get_window_extent().extents
    pixels = np.asarray(Image.open(io.BytesIO(png_of(lab))).convert("RGB"))
    height = pixels.shape[0]
    panel = pixels[int(height - y1) + 2 : int(height - y0) - 2, int(x0) + 2 : int(x1) - 2]
    grey = np.all(panel == [0x7F, 0x7F, 0x7F], axis=-1).mean()
    assert grey > 0.2, grey


def test_the_anatomy_axis_says_a_step_is_0_a_half_or_1_of_two_coordinates() -> None:
    # The review: with 2 coordinates one step's fraction is 0, ½ or 1, so the curves move in
    # blocks; the axis says so (ticks at the only values one step can take).
    lab = fresh()
    lab.side_menu.value = SIDES[2]
    side = lab.picture.side
    assert "2 coordinates" in side.get_ylabel()
    np.testing.assert_allclose(side.get_yticks(), [0, 0.5, 1])
    assert [t.get_text() for t in side.get_yticklabels()] == ["0", "½", "1"]
    # The loss panels keep their own axis.
    lab.side_menu.value = SIDES[0]
    assert lab.picture.side.get_ylabel() == "loss − min"


def test_a_knob_the_slot_hides_says_its_value_and_meaning() -> None:
    # The review: "at their defaults: perturb_eps" is jargon. The note gives each hidden
    # knob's value and, on hover, the registry's meaning and range; a lone one inline too.
    import html

    from sampy.playground.controls import knob_note, knob_specs

    lab = fresh()
    guard = next(s for s in sampy.variant("SAM").hyperparameters if s.name == "perturb_eps")
    note = lab.slots[1].note.value
    assert "perturb_eps = 1e-12" in note
    assert f"({html.escape(guard.meaning)})" in note
    assert f'title="{html.escape(guard.meaning)}; valid [0, inf)"' in note
    for method in ("SAM", "GSAM", "AdamWMSAMScheduleFree"):
        row = sampy.variant(method)
        shown = {spec.name for spec in knob_specs(method)}
        note = knob_note(row, knob_specs(method))
        for spec in row.hyperparameters:
            if spec.name not in shown and spec.name != "lr":
                assert f"{spec.name} = {html.escape(repr(spec.default))}" in note, spec.name
                assert f'title="{html.escape(spec.meaning, quote=True)}; valid' in note


def test_the_3d_view_has_the_domains_proportions_and_few_ticks() -> None:
    # The review: a small cube of a surface, x labels run together ("−1.0−0.5 0.0").
    lab = fresh()
    lab.view_buttons.value = VIEWS[1]
    ax = lab.picture.ax
    (x_lo, x_hi), (y_lo, y_hi) = lab.function.domain
    width, depth, _ = ax.get_box_aspect()
    assert width / depth == pytest.approx((x_hi - x_lo) / (y_hi - y_lo))
    for ticks, (lo, hi) in [(ax.get_xticks(), (x_lo, x_hi)), (ax.get_yticks(), (y_lo, y_hi))]:
        inside = ticks[(ticks >= lo - 1e-9) & (ticks <= hi + 1e-9)]
        assert 2 <= len(inside) <= 5, inside


def test_the_reset_button_brings_back_the_lesson_in_one_redraw(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The review: "No reset button." After a student has changed everything, one click
    # gives the first picture back, drawn once.
    first = fresh()
    lab = fresh()
    lab.function_menu.value = "himmelblau"
    lab.steps_slider.value = 900
    lab.noise_slider.value = 0.2
    lab.arrows_slider.value = 3
    lab.view_buttons.value = VIEWS[1]
    lab.side_menu.value = SIDES[2]
    lab.slots[1].menu.value = "GSAM"
    lab.slots[2].menu.value = "LookSAM"
    assert lab.settings() != first.settings()
    redraws = []
    refresh = lab.refresh
    monkeypatch.setattr(lab, "refresh", lambda: redraws.append(1) or refresh())
    assert lab.reset_button in lab.picture_column.children[-1].children
    lab.reset_button.click()
    assert len(redraws) == 1
    assert lab.settings() == first.settings()
    assert lab.options() == first.options()
    assert lab.slots[1].knobs["rho"].value == first.slots[1].knobs["rho"].value
    assert png_of(lab) == png_of(first)


def test_the_expression_error_is_shown_beside_the_text_box() -> None:
    lab = fresh(function=EXPRESSION)
    assert lab.expression_error.value == ""
    assert lab.expression_box.children[:2] == (lab.expression_text, lab.expression_error)
    assert lab.expression_box in lab.controls_column.children
    lab.expression_text.value = "x**2 + 3*y**"
    assert "syntax" in lab.expression_error.value and "Expression" in lab.status.value
    assert lab.expression_error.layout.display is None
    lab.expression_text.value = "x**2 + 3*y**2"
    assert lab.expression_error.value == ""
    lab.function_menu.value = "sharp_flat"
    assert lab.expression_error.layout.display == "none"


def test_a_browsers_slider_noise_is_not_exported() -> None:
    lab = fresh()
    lab.y_slider.value = -1 + 160 * 0.005  # what a browser's slider sends for -0.2
    lab.slots[1].knobs["rho"].value = 0.1 + 0.2  # 0.30000000000000004
    assert lab.y_slider.value != -0.2 and lab.settings().x0 == (0.8, -0.2)
    code = lab.snippet_text.value
    assert "[0.8, -0.2]" in code and "rho=0.3," in code and "0000000" not in code
    namespace: dict = {}
    exec(code, namespace)  # our generated code: it still reproduces the runs bit for bit
    for vrun in lab.runs:
        np.testing.assert_array_equal(namespace["runs"][vrun.label].xs, vrun.xs)


def test_the_p_knob_reaches_infinity() -> None:
    import ipywidgets as widgets

    lab = fresh()
    knob = lab.slots[1].knobs["p"]
    assert isinstance(knob, widgets.SelectionSlider) and knob.options[-1] == ("∞", math.inf)
    knob.value = math.inf
    sam = lab.runs[1]
    assert sam.hyperparameters["p"] == math.inf and "p=float('inf')" in lab.snippet_text.value
    # The ∞-ball is a square: its outline is as far out along a diagonal as along an axis.
    corner = np.abs(lab.picture.balls[1].get_xydata() - sam.xs[-1]).max(axis=-1)
    np.testing.assert_allclose(corner, sam.hyperparameters["rho"], rtol=1e-9)
    namespace: dict = {}
    exec(lab.snippet_text.value, namespace)
    np.testing.assert_array_equal(namespace["runs"]["SAM"].xs, sam.xs)


def test_the_basin_map_has_its_own_colours_and_says_what_none_means() -> None:
    from matplotlib.colors import to_hex

    lab = fresh()
    lab.basin_grid.value = 30
    lab.compute_basins()
    assert "not near a minimum after 1,000 steps" in lab.basin_status.value
    pixels = np.asarray(Image.open(io.BytesIO(bytes(lab.basin_image.value))).convert("RGB"))
    colours = {to_hex(tuple(p / 255)) for p in pixels.reshape(-1, 3)}
    basins = PALETTES["basins"]
    assert basins[0] in colours and basins[1] in colours  # sharp and flat
    assert not colours & set(PALETTES["variants"][1:])  # no SAM orange, no pink, no cyan


def test_the_click_grid_follows_the_landscape_shape() -> None:
    lab = fresh()
    wide = lab.clicks.box
    lab.function_menu.value = "himmelblau"
    square = lab.clicks.box
    assert square == lab.picture.pixel_box() and square != wide
    k = 5 * lab.clicks.nx + 3
    lab.clicks.click(k)
    expected = pixel_to_data(*lab.clicks.centres[k], square, lab.function.domain)
    assert lab.settings().x0 == pytest.approx(expected, abs=lab.x_slider.step)


def test_the_lr_slider_sends_typed_values_unchanged() -> None:
    # A continuous log slider snaps a typed 0.5 to its exponent grid (10^-0.30 = 0.5012) and
    # sends that back; this one sends values only on release (the browser test types 0.5).
    lab = fresh()
    assert lab.lr_slider.continuous_update is False
    lab.lr_slider.value = 0.5
    assert lab.settings().lr == 0.5 and "SGD(lr=0.5)" in lab.snippet_text.value


# --------------------------------------------------------------------------- a hostile client
# A comm ``update`` from the browser is ``widget.set_state(...)`` in the kernel: it can move a
# slider's min and max as well as its value, and JSON's NaN passes every range test. The
# kernel must compute with its own limits (``sampy.playground.limits``), say what it clamped,
# and put the sliders' ranges back (the reliability review's A7).


def test_steps_past_the_documented_limit_are_clamped_and_said() -> None:
    lab = fresh()
    lab.steps_slider.set_state({"max": 40_000, "value": 40_000})
    assert [len(vrun.xs) for vrun in lab.runs] == [10_001, 10_001]  # not 40,001
    assert "steps = 40,000 is outside [0, 10,000]; using 10,000" in lab.status.value
    assert (lab.steps_slider.max, lab.steps_slider.value) == (10_000, 10_000)
    assert lab.settings().steps == 10_000 and ", 10000)" in lab.snippet_text.value


def test_a_huge_arrow_stride_is_clamped_and_the_picture_is_drawn() -> None:
    lab = fresh()
    before = png_of(lab)
    lab.arrows_slider.set_state({"max": 1e20, "value": 1e20})
    assert "Could not draw" not in lab.status.value
    assert "arrows every = 100,000,000,000,000,000,000 is outside [0, 100]" in lab.status.value
    assert lab.options().arrows_every == 100 and lab.arrows_slider.max == 100
    assert png_of(lab) != before  # redrawn, with the arrows of steps 1, 2, 101, 102, ...


@pytest.mark.parametrize(
    ("method", "knob", "sent", "used"),
    [("SAM", "rho", 50.0, 1.0), ("MultiStepSAM", "ascent_steps", 10**9, 100),
     ("LookSAM", "k", -5, 1)],
)  # fmt: skip
def test_a_knob_past_its_slider_is_clamped_to_the_slider(method, knob, sent, used) -> None:
    lab = fresh(variants=("SGD", method))
    slider = lab.slots[1].knobs[knob]
    assert used in (slider.min, slider.max)  # the nearest end of the slider the kernel built
    slider.set_state({"min": min(sent, slider.min), "max": max(sent, slider.max), "value": sent})
    assert lab.runs[1].hyperparameters[knob] == used
    assert f"variant 2: {knob} = " in lab.status.value and f"using {used:g}" in lab.status.value


def test_the_learning_rate_noise_box_and_start_are_clamped() -> None:
    lab = fresh(function=EXPRESSION, expression="x**2 + y**2")
    lab.lr_slider.set_state({"max": 10.0, "value": 1e10})
    assert lab.settings().lr == 1.0
    lab.noise_slider.set_state({"max": 1e300, "value": 1e300})
    assert lab.settings().noise == 2.0
    lab.box_text.set_state({"max": 1e300, "value": 1e300})
    assert lab.settings().box == 100.0
    lab.x_slider.set_state({"max": 1e300, "value": 1e300})
    x0 = lab.settings().x0
    assert x0[0] == lab.function.domain[0][1] == 100.0
    assert all(r.ok and len(r.xs) == 301 for r in lab.runs)


def test_a_nan_from_the_client_is_refused_with_a_message() -> None:
    lab = fresh()
    before, runs = png_of(lab), lab.runs
    lab.noise_slider.set_state({"value": math.nan})
    assert "Invalid setting" in lab.status.value and "noise σ must be a number" in lab.status.value
    assert "Traceback" not in lab.status.value
    assert png_of(lab) == before and lab.runs is runs  # the last good picture stays
    lab.noise_slider.value = 0.1  # and the next good value draws again
    assert lab.runs is not runs and "Invalid" not in lab.status.value


def test_a_basin_map_past_the_sliders_is_refused() -> None:
    lab = fresh()
    lab.basin_grid.set_state({"max": 10**6, "value": 10**6})
    lab.compute_basins()
    assert "basin grid = 1,000,000 is outside [10, 150]" in lab.basin_status.value
    assert lab.basin_image.layout.display == "none"
    lab.basin_grid.set_state({"min": 1, "max": 150, "value": 1})  # 1 × 1 start, 10⁷ steps
    lab.compute_basins()
    assert "basin grid = 1 is outside [10, 150]" in lab.basin_status.value
    lab.basin_grid.value = 20
    lab.basin_steps.set_state({"max": 10**7, "value": 10**7})
    lab.compute_basins()
    assert "basin steps = 10,000,000 is outside [10, 2,000]" in lab.basin_status.value


def test_the_heavy_setting_is_refused_at_once_with_what_to_reduce() -> None:
    """The review's 62-second update (a 489-character expression, 4 × MultiStepSAM with
    ascent_steps = 11, 10,000 steps) answers "too much work" instead of blocking the kernel."""
    expression = heavy_expression()
    assert len(expression) > 450
    lab = fresh(function=EXPRESSION, expression=expression, variants=("MultiStepSAM",) * 4,
                hyperparameters=[{"ascent_steps": 11}] * 4)  # fmt: skip
    began = time.perf_counter()
    lab.steps_slider.value = 10_000
    assert time.perf_counter() - began < 5.0
    status = lab.status.value
    assert "<b>Not run</b>: too much work: 10,000 steps × 48 gradient evaluations" in status
    assert "fewer steps (at most" in status and "a shorter expression" in status
    assert all(len(vrun.xs) == 301 for vrun in lab.runs)  # the last good runs stay


def test_the_kernels_knob_limits_are_the_sliders_ranges() -> None:
    """``knob_limit`` (what the kernel clamps to) and ``make_knob`` (what the slider shows)
    agree for every knob of every method: the clamp never moves a value the slider allows."""
    import ipywidgets as widgets

    from sampy.playground.choices import knob_specs, methods
    from sampy.playground.controls import knob_limit, make_knob

    checked = 0
    for method in methods():
        for spec in knob_specs(method):
            knob, limit = make_knob(spec), knob_limit(spec)
            if isinstance(knob, widgets.FloatLogSlider):
                ends = (knob.base**knob.min, knob.base**knob.max)
                assert ends == pytest.approx((limit.low, limit.high), rel=1e-12), spec.name
            elif isinstance(knob, (widgets.IntSlider, widgets.FloatSlider)):
                assert (knob.min, knob.max) == (limit.low, limit.high), (method, spec.name)
                assert limit.integer == isinstance(knob, widgets.IntSlider)
            else:  # a fixed list of values, which traitlets enforces
                assert limit is None, (method, spec.name)
                continue
            assert limit.clamp(knob.value) == (knob.value, None)
            checked += 1
    assert checked > 30
