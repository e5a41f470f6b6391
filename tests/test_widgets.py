"""The classic SAM explorer (``Explorer``: one method against its base) without a kernel or a
browser: the pure function, the picture, the widget wiring, the playground notebook and the
kernel-free scrubber. The laboratory (``Playground``) is tested in test_playground_*.py.

ipywidgets build and fire their ``observe`` callbacks in a plain Python process, so the
widget is driven here by setting ``.value`` and looking at ``image.value`` and ``status``.
Speed is not tested here (it is machine-dependent): ``benchmarks/`` times ``time_update``.
"""

from __future__ import annotations

import io
import math
import re
import warnings
from pathlib import Path

import ipywidgets as widgets
import nbformat
import numpy as np
import pytest
from PIL import Image

import sampy
from sampy import plot
from sampy.optim import SAM, SGD
from sampy.optim.hyper import Hyper
from sampy.playground.choices import INFINITE_END
from sampy.widgets import (
    ALIASES,
    MAX_KNOBS,
    Explorer,
    ExplorerResult,
    PathPicture,
    Playground,
    explore,
    knob_range,
    knob_specs,
    make_knob,
    methods,
    render,
    time_update,
    two_d_function_names,
)

REPO = Path(__file__).resolve().parent.parent
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# From here, with lr = 0.01 and 300 steps, SGD settles in the sharp minimum of sharp_flat and
# SAM with rho = 0.05 in the flat one (the explorer's first picture).
PARTING = {"function": "sharp_flat", "lr": 0.01, "steps": 300, "x0": (0.8, -0.2)}


def decode(png: bytes | memoryview) -> Image.Image:
    data = bytes(png)
    assert data.startswith(PNG_SIGNATURE)
    image = Image.open(io.BytesIO(data))
    image.load()  # decodes every pixel: a truncated or corrupt PNG raises here
    return image


# --------------------------------------------------------------------------- explore()


def test_explore_runs_sam_and_its_base_from_the_same_start() -> None:
    result = explore(optimizer="SAM", rho=0.05, **PARTING)
    assert isinstance(result, ExplorerResult)
    assert result.run.xs.shape == result.baseline_run.xs.shape == (301, 2)
    np.testing.assert_array_equal(result.run.xs[0], [0.8, -0.2])
    np.testing.assert_array_equal(result.baseline_run.xs[0], [0.8, -0.2])
    assert result.run.grad_evals == 600  # two gradients per SAM step
    assert result.baseline_run.grad_evals == 300
    assert result.diverged_at is None and result.baseline_diverged_at is None
    sam_line, sgd_line = result.lines
    assert sam_line.startswith("SAM:") and "flat minimum" in sam_line
    assert sgd_line.startswith("SGD (no SAM):") and "sharp minimum" in sgd_line
    assert "600 gradient evaluations" in result.summary


def test_explore_matches_a_direct_run() -> None:
    result = explore(optimizer="SAM p=∞", rho=0.1, **PARTING)
    direct = sampy.run(SAM(SGD(lr=0.01), rho=0.1, p=math.inf), "sharp_flat", [0.8, -0.2], 300)
    np.testing.assert_allclose(result.run.xs, direct.xs)


def test_sam_with_rho_zero_is_its_base() -> None:
    result = explore(optimizer="SAM", rho=0.0, **PARTING)
    np.testing.assert_allclose(result.run.xs, result.baseline_run.xs)


@pytest.mark.parametrize("optimizer", [*methods(), *ALIASES])
def test_every_menu_entry_runs(optimizer: str) -> None:
    result = explore(optimizer=optimizer, rho=0.05, **PARTING)
    assert np.all(np.isfinite(result.run.xs))
    assert result.method == optimizer
    assert len(result.lines) == (1 if optimizer == "SGD" else 2)


def plain_rows() -> list[sampy.Variant]:
    return [row for row in sampy.variants() if not row.needs_examples]


def test_method_menu_is_sgd_and_every_plain_registry_row() -> None:
    # Generated from the registry: a new row that runs on a test function shows up by itself.
    expected = ["SGD", *(row.name for row in plain_rows())]
    assert methods() == expected
    assert list(Explorer().optimizer_menu.options) == expected
    assert "ASAM" in expected and "LookSAM" in expected
    assert not {row.name for row in sampy.variants() if row.needs_examples} & set(expected)


def test_hyperparameters_reach_the_registry_row() -> None:
    result = explore(optimizer="LookSAM", hyperparameters={"rho": 0.1, "k": 5}, **PARTING)
    row = sampy.variant("LookSAM")
    direct = sampy.run(row.make(SGD(lr=0.01), rho=0.1, k=5), "sharp_flat", [0.8, -0.2], 300)
    np.testing.assert_array_equal(result.run.xs, direct.xs)
    assert result.settings["hyperparameters"] == {**row.defaults(), "rho": 0.1, "k": 5}


def test_rho_argument_and_hyperparameters_agree() -> None:
    by_name = explore(optimizer="SAM", rho=0.1, **PARTING)
    by_dict = explore(optimizer="SAM", hyperparameters={"rho": 0.1}, **PARTING)
    np.testing.assert_array_equal(by_name.run.xs, by_dict.run.xs)
    # The named argument overrides the dict (Explorer.settings() + {"rho": ...} works).
    both = explore(optimizer="SAM", rho=0.1, hyperparameters={"rho": 0.3}, **PARTING)
    np.testing.assert_array_equal(both.run.xs, by_name.run.xs)
    # An alias's fixed value wins over both.
    alias = explore(optimizer="SAM p=∞", hyperparameters={"p": 2.0}, p=3.0, **PARTING)
    assert alias.settings["hyperparameters"]["p"] == math.inf


def test_builtin_base_takes_the_lr_and_is_compared_with_rho_zero() -> None:
    row = sampy.variant("MSAM")
    assert not row.takes_base
    result = explore(optimizer="MSAM", **{**PARTING, "lr": 0.02})
    start = np.array([0.8, -0.2])
    method = sampy.run(row.make(None, **{**row.defaults(), "lr": 0.02}), "sharp_flat", start, 300)
    baseline = sampy.run(
        row.make(None, **{**row.defaults(), "lr": 0.02, "rho": 0.0}), "sharp_flat", start, 300
    )
    np.testing.assert_array_equal(result.run.xs, method.xs)
    np.testing.assert_array_equal(result.baseline_run.xs, baseline.xs)
    assert result.lines[1].startswith("MSAM ρ=0 (no SAM)")
    # A built-in base without rho is compared with the base optimizer alone.
    assert explore(optimizer="ScheduleFreeAdamW", **PARTING).baseline == "SGD"


def test_sgd_entry_is_one_run() -> None:
    result = explore(optimizer="SGD", **PARTING)
    assert result.same_run and result.run is result.baseline_run


@pytest.mark.parametrize("base", ["SGD", "momentum", "Adam"])
def test_bases(base: str) -> None:
    result = explore(optimizer="SAM", base=base, **PARTING)
    assert np.all(np.isfinite(result.run.xs))
    assert result.lines[1].startswith(result.baseline)


@pytest.mark.parametrize(
    ("function", "lr", "x0"),
    [("quadratic", 0.3, (1.5, 1.5)), ("rosenbrock", 0.05, (-1.5, 2.0))],
)
def test_divergence_is_reported_not_raised(function: str, lr: float, x0: tuple) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # overflow must not even warn
        result = explore(function, "SAM", lr=lr, x0=x0)
    assert result.diverged_at is not None and result.baseline_diverged_at is not None
    assert f"diverged at step {result.diverged_at}" in result.lines[0]
    assert f"diverged at step {result.baseline_diverged_at}" in result.lines[1]
    decode(render(result))  # and it still draws


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"lr": 0.0}, "lr"),
        ({"lr": -1.0}, "lr"),
        ({"rho": -0.1}, "rho"),
        ({"steps": -1}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"x0": (1.0,)}, "x0"),
        ({"x0": (np.nan, 0.0)}, "x0"),
        ({"x0": "far"}, "x0"),
        ({"optimizer": "Nesterov"}, "optimizer"),
        ({"base": "RMSprop"}, "base"),
        ({"function": "no_such_function"}, "no_such_function"),
        ({"function": sampy.functions.get("sphere", dim=3)}, "2-D"),
        ({"optimizer": "SAM", "p": 0.5}, "p"),
        ({"optimizer": "SAM", "hyperparameters": {"k": 3}}, "'k'"),
        ({"optimizer": "LookSAM", "hyperparameters": {"k": 0}}, "k"),
        ({"optimizer": "WSAM", "hyperparameters": {"gamma": 1.0}}, "gamma"),
        ({"optimizer": "MSharpnessSAM"}, "optimizer"),  # needs a sum-of-examples problem
    ],
)
def test_invalid_settings_raise_value_error_naming_them(settings: dict, named: str) -> None:
    with pytest.raises(ValueError, match=re.escape(named)):
        explore(**settings)


def test_menu_lists_only_2d_functions() -> None:
    names = two_d_function_names()
    assert "sharp_flat" in names
    assert all(sampy.functions.get(name).dim == 2 for name in names)


# --------------------------------------------------------------------------- the picture


def test_png_is_valid_and_changes_with_rho() -> None:
    small = render(explore(optimizer="SAM", rho=0.05, **PARTING))
    large = render(explore(optimizer="SAM", rho=0.15, **PARTING))
    width, height = decode(small).size
    assert 300 <= width <= 900 and 200 <= height <= 600  # a modest picture
    assert small != large


def test_a_reused_picture_draws_exactly_like_a_fresh_one() -> None:
    # The background is cached and the paths are blitted on top: nothing of an earlier
    # picture (another rho, another function) may remain in a later one.
    a = explore(optimizer="SAM", rho=0.05, **PARTING)
    b = explore(optimizer="ASAM", rho=0.3, **PARTING)
    c = explore("himmelblau", "SAM", x0=(-0.5, 0.0))
    picture = PathPicture()
    first = picture.png(a)
    picture.png(b)
    picture.png(c)
    assert picture.png(a) == first == render(a)


def test_picture_is_no_pyplot_figure() -> None:
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    render(explore(**PARTING))
    Explorer()
    assert plt.get_fignums() == before  # nothing for a notebook to show by accident


# --------------------------------------------------------------------------- the widget


def image_bytes(explorer: Explorer) -> bytes:
    return bytes(explorer.image.value)  # ipywidgets hands back a memoryview


def test_explorer_draws_on_creation() -> None:
    explorer = Explorer()
    decode(image_bytes(explorer))
    assert "flat minimum" in explorer.status.value  # the default start parts SAM from SGD
    assert "sharp minimum" in explorer.status.value
    assert "rho" in explorer.rho_slider.description


def test_rho_slider_redraws() -> None:
    explorer = Explorer()
    before = image_bytes(explorer)
    explorer.rho_slider.value = 0.2
    after = image_bytes(explorer)
    assert after != before
    decode(after)
    explorer.rho_slider.value = 0.05  # back: the same picture as before
    assert image_bytes(explorer) == before


@pytest.mark.parametrize("name", ["lr_slider", "steps_slider", "x_slider", "y_slider"])
def test_other_sliders_redraw(name: str) -> None:
    explorer = Explorer()
    before = image_bytes(explorer)
    slider = getattr(explorer, name)
    slider.value = slider.value * 0.5 if name != "steps_slider" else 1000
    assert image_bytes(explorer) != before


def test_switching_function_changes_picture_and_start_range() -> None:
    explorer = Explorer()
    before = image_bytes(explorer)
    explorer.function_menu.value = "himmelblau"
    assert image_bytes(explorer) != before
    decode(image_bytes(explorer))
    domain = sampy.functions.get("himmelblau").domain
    assert (explorer.x_slider.min, explorer.x_slider.max) == domain[0]
    assert (explorer.y_slider.min, explorer.y_slider.max) == domain[1]
    assert "himmelblau" in explorer.settings()["function"]
    for name in two_d_function_names():  # every menu entry draws
        explorer.function_menu.value = name
        assert explorer.status.value.startswith("SAM:"), (name, explorer.status.value)


def test_switching_method() -> None:
    explorer = Explorer()
    before = image_bytes(explorer)
    explorer.optimizer_menu.value = "ASAM"
    assert image_bytes(explorer) != before
    assert explorer.status.value.startswith("ASAM:")
    explorer.optimizer_menu.value = "SGD"
    assert explorer.rho_slider is None and explorer.knobs == {}  # no ascent step, no knobs
    assert "no SAM" not in explorer.status.value  # one run, one line


def check_knob(spec: Hyper, knob: object) -> None:
    """The control matches its spec: kind, label, default, a range inside the valid one."""
    if spec.name in INFINITE_END:  # SAM's p: the slider's stops, then ∞
        assert type(knob) is widgets.SelectionSlider, (spec.name, type(knob))
        lo, hi, _ = knob_range(spec)
        values = [value for _, value in knob.options]
        assert values[0] == lo and values[-2] == hi and values[-1] == math.inf
        assert knob.options[-1][0] == "∞" and knob.value == spec.default
        for value in values:
            spec.check(value)  # every stop is valid, ∞ included
        return
    widget_type = {
        "bool": widgets.Checkbox,
        "choice": widgets.Dropdown,
        "int": widgets.IntSlider,
        "real": widgets.FloatLogSlider if spec.log else widgets.FloatSlider,
    }[spec.kind]
    assert type(knob) is widget_type, (spec.name, type(knob))
    assert spec.name in knob.description
    assert spec.meaning in knob.tooltip
    assert knob.value == spec.default
    if spec.kind == "choice":
        assert tuple(knob.options) == spec.choices
    if spec.kind in ("real", "int") and not spec.log:
        lo, hi, _ = knob_range(spec)
        assert (knob.min, knob.max) == (lo, hi)
        assert knob.min <= spec.default <= knob.max
        spec.check(knob.min)  # both ends are valid values
        spec.check(knob.max)
        if spec.high is None and spec.kind == "real":
            assert knob.max == max(1.0, 4 * spec.default)  # the documented rule
        if spec.high is None and spec.kind == "int":
            assert knob.max == max(knob.min + 10, 4 * spec.default)


@pytest.mark.parametrize("method", methods())
def test_switching_to_each_method_builds_its_knobs_from_its_specs(method: str) -> None:
    explorer = Explorer(optimizer="SGD" if method != "SGD" else "SAM")
    before = image_bytes(explorer)
    explorer.optimizer_menu.value = method
    specs = knob_specs(method)
    row = None if method == "SGD" else sampy.variant(method)
    # Which specs get a knob: rho first, then spec order; small kinds only; at most 5.
    assert len(specs) <= MAX_KNOBS
    if row is not None:
        names = [spec.name for spec in row.hyperparameters]
        assert [spec.name for spec in specs[1:]] == sorted(
            (spec.name for spec in specs[1:]), key=names.index
        )
        if "rho" in names:
            assert specs[0].name == "rho"
        assert all(spec in row.hyperparameters for spec in specs)
        assert "lr" not in [spec.name for spec in specs]  # the lr slider sets it
    assert list(explorer.knobs) == [spec.name for spec in specs]
    assert list(explorer.knob_box.children[:-1]) == list(explorer.knobs.values())
    for spec in specs:
        assert spec.kind in ("real", "int", "bool", "choice")
        assert spec.name not in ("seed", "eps") and not spec.name.endswith("_eps")
        check_knob(spec, explorer.knobs[spec.name])
    # It drew a new picture, and said something sensible.
    after = image_bytes(explorer)
    assert after != before
    decode(after)
    assert explorer.status.value.startswith(f"{method}:"), explorer.status.value
    if row is not None and not row.takes_base:
        assert "own learning rate" in explorer.knob_note.value


def a_new_value(knob: object) -> object:
    """A value of the control other than its current one."""
    if isinstance(knob, widgets.Checkbox):
        return not knob.value
    if isinstance(knob, widgets.Dropdown):
        return next(option for option in knob.options if option != knob.value)
    if isinstance(knob, widgets.SelectionSlider):  # an ∞-ended knob: its ∞
        return knob.options[-1][1]
    middle = (knob.min + knob.max) / 2
    if isinstance(knob, widgets.IntSlider):
        middle = round(middle)
    return middle if middle != knob.value else knob.max


@pytest.mark.parametrize("method", methods()[1:])
def test_changing_a_generated_knob_redraws(method: str) -> None:
    explorer = Explorer(optimizer=method)
    first = next(iter(explorer.knobs.values()))  # rho, where the method has one
    before = image_bytes(explorer)
    first.value = a_new_value(first)
    assert "Invalid" not in explorer.status.value
    assert image_bytes(explorer) != before
    assert explorer.settings()["hyperparameters"][first.description] == first.value


@pytest.mark.parametrize(
    ("method", "name"),
    [("LookSAM", "k"), ("SAM", "adaptive"), ("RandomSAM", "kind"), ("SAM", "p")],
)
def test_every_kind_of_knob_redraws(method: str, name: str) -> None:
    explorer = Explorer(optimizer=method)
    before = image_bytes(explorer)
    knob = explorer.knobs[name]
    knob.value = a_new_value(knob)
    assert image_bytes(explorer) != before, explorer.status.value


def test_knob_ranges_follow_the_rule() -> None:
    def real(default: float, **bounds: object) -> Hyper:
        return Hyper("x", default, "", **bounds)

    assert knob_range(real(0.05, low=0.0)) == (0.0, 1.0, 0.005)  # [0, max(1, 4 default)]
    assert knob_range(real(2.0, low=1.0)) == (1.0, 8.0, 0.05)
    assert knob_range(real(0.9, low=0.0, high=1.0, high_open=True)) == (0.0, 0.995, 0.005)
    assert knob_range(real(0.5, low=0.0, low_open=True, high=1.0))[0] == 0.005
    assert knob_range(real(0.0)) == (-1.0, 1.0, 0.01)  # unbounded both ways
    assert knob_range(real(0.05, low=0.0), value=3.0)[1] == 3.0  # widened to the value
    assert knob_range(Hyper("k", 10, "", low=1, kind="int")) == (1.0, 40.0, 1.0)
    assert knob_range(Hyper("n", 100, "", low=0, low_open=True, kind="int"))[:2] == (1.0, 400.0)
    assert knob_range(Hyper("c", 1, "", low=1, high=4, kind="int"))[:2] == (1.0, 4.0)
    # A log spec (a built-in base's lr) gets a log slider around its default.
    lr = next(spec for spec in sampy.variant("MSAM").hyperparameters if spec.name == "lr")
    knob = make_knob(lr)
    assert isinstance(knob, widgets.FloatLogSlider)
    assert (knob.min, knob.max, knob.value) == pytest.approx((-3.0, 1.0, 0.1))


def test_explorer_takes_hyperparameters_even_without_a_knob() -> None:
    explorer = Explorer(optimizer="RandomSAM", rho=0.2, hyperparameters={"seed": 3, "mix": 0.5})
    assert "seed" not in explorer.knobs  # no knob for a seed, but the value is used
    hyperparameters = {"seed": 3, "rho": 0.2, "kind": "gaussian", "mix": 0.5}
    assert explorer.settings()["hyperparameters"] == hyperparameters
    assert explorer.refresh().settings["hyperparameters"]["seed"] == 3
    explorer.optimizer_menu.value = "SAM"  # a new method starts from its defaults
    knobs = {spec.name: spec.default for spec in knob_specs("SAM")}
    assert explorer.settings()["hyperparameters"] == knobs
    with pytest.raises(ValueError, match="'nope'"):
        Explorer(hyperparameters={"nope": 1})
    with pytest.raises(ValueError, match="optimizer"):
        Explorer(optimizer="SAM p=∞")  # an alias of explore(), no menu entry


def test_a_diverging_knob_reports_in_status() -> None:
    # USAM's ascent is rho * g, not normalised: on quadratic (curvature 10, lr 0.05) its step
    # multiplies by 1 - lr (10 + rho 100), which leaves [-1, 1] once rho > 0.2.
    explorer = Explorer(function="quadratic", optimizer="USAM")
    assert "diverged" not in explorer.status.value
    explorer.rho_slider.value = 1.0
    assert re.search(r"USAM: .*diverged at step \d+", explorer.status.value)
    assert "SGD (no SAM)" in explorer.status.value and explorer.status.value.count("diverged") == 1
    decode(image_bytes(explorer))


def test_an_invalid_combination_is_shown_not_raised() -> None:
    explorer = Explorer(optimizer="LookSAM")
    before = image_bytes(explorer)
    assert explorer.refresh(hyperparameters={"k": 0}) is None
    assert "Invalid setting" in explorer.status.value and "k" in explorer.status.value
    assert image_bytes(explorer) == before


def test_diverging_setting_reports_in_status() -> None:
    explorer = Explorer(function="quadratic")
    explorer.lr_slider.value = 0.5  # above 2 / (largest curvature 10)
    assert "diverged at step" in explorer.status.value
    decode(image_bytes(explorer))


def test_invalid_values_show_a_message() -> None:
    explorer = Explorer()
    before = image_bytes(explorer)
    assert explorer.refresh(lr=0.0) is None
    assert "Invalid setting" in explorer.status.value and "lr" in explorer.status.value
    assert image_bytes(explorer) == before  # the last good picture stays
    # The lr readout in the browser clamps a typed 0 to the slider's minimum; so does Python.
    explorer.lr_slider.value = 0.0
    assert explorer.lr_slider.value == pytest.approx(1e-4)
    assert "Invalid" not in explorer.status.value
    decode(image_bytes(explorer))


@pytest.mark.parametrize("optimizer", ["SAM", "LookSAM", "SGD"])
def test_time_update_returns_one_time_per_update(optimizer: str) -> None:
    times = time_update(n=3, steps=20, optimizer=optimizer)  # SGD has no rho: lr is moved
    assert times.shape == (3,) and np.all(times > 0)


# --------------------------------------------------------------------------- notebook, page


def test_playground_notebook_displays_the_laboratory() -> None:
    path = REPO / "playground" / "explorer.ipynb"
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.nbformat == 4 and nb.metadata.kernelspec.name == "python3"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    # Run the code cells as a kernel would, and check that the last value is the laboratory.
    namespace: dict = {}
    code = [cell.source for cell in nb.cells if cell.cell_type == "code"]
    *body, last = "\n".join(code).strip().splitlines()
    exec("\n".join(body), namespace)
    shown = eval(last, namespace)
    assert isinstance(shown, Playground)
    decode(image_bytes(shown))


def test_scrubber_html_is_offline_with_one_frame_per_rho() -> None:
    f = sampy.functions.get("sharp_flat")
    rhos = np.linspace(0.0, 0.2, 11)
    x0 = np.tile([-0.4, -0.4], (rhos.size, 1))
    traj = sampy.run(SAM(SGD(lr=0.008), rho=rhos), f, x0, 200)
    anim = plot.path_animation(f, traj.xs, fixed=traj.xs[:, 0], titles=[f"{r}" for r in rhos])
    html = plot.animation_html(anim)
    assert "http" not in html  # the Font Awesome CDN link is stripped
    frames = re.findall(r'frames\[\d+\] = "data:image/png;base64', html)
    assert len(frames) == rhos.size
    assert 'id="_anim_img' in html and 'id="_anim_slider' in html


def test_path_animation_checks_shapes() -> None:
    f = sampy.functions.get("sharp_flat")
    with pytest.raises(ValueError, match="paths"):
        plot.path_animation(f, np.zeros((5, 2)))
    with pytest.raises(ValueError, match="titles"):
        plot.path_animation(f, np.zeros((5, 3, 2)), titles=["a"])


def test_book_page_claims_match_the_numbers() -> None:
    # book/explorer.md runs: from (-0.4, -0.4) with lr = 0.008 (< 2/λmax ≈ 0.010) and 8000
    # steps, rho <= 0.06 ends in the sharp minimum and rho >= 0.08 in the flat one (its text
    # glues the switch).
    f = sampy.functions.get("sharp_flat")
    rhos = np.linspace(0.0, 0.2, 11)
    traj = sampy.run(SAM(SGD(lr=0.008), rho=rhos), f, np.tile([-0.4, -0.4], (11, 1)), 8000)
    flat = traj.final[:, 0] > 1.0
    np.testing.assert_array_equal(flat, rhos > 0.07)
    page = (REPO / "book" / "explorer.md").read_text()
    assert "SAM(SGD(lr=0.008), rho=rhos), f, x0, 8000)" in page
