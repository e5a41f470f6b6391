"""The SAM explorer without a kernel or a browser: the pure function, the picture, the widget
wiring, the playground notebook and the kernel-free scrubber.

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

import nbformat
import numpy as np
import pytest
from PIL import Image

import sampy
from sampy import plot
from sampy.optim import SAM, SGD
from sampy.widgets import (
    OPTIMIZERS,
    Explorer,
    ExplorerResult,
    PathPicture,
    explore,
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


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_every_menu_entry_runs(optimizer: str) -> None:
    result = explore(optimizer=optimizer, rho=0.05, **PARTING)
    assert np.all(np.isfinite(result.run.xs))
    assert result.method == optimizer
    assert len(result.lines) == (1 if optimizer == "SGD" else 2)


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
    assert explorer.rho_slider.disabled  # SGD takes no ascent step
    assert "no SAM" not in explorer.status.value  # one run, one line


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


def test_time_update_returns_one_time_per_update() -> None:
    times = time_update(n=3, steps=20)
    assert times.shape == (3,) and np.all(times > 0)


# --------------------------------------------------------------------------- notebook, page


def test_playground_notebook_displays_the_explorer() -> None:
    path = REPO / "playground" / "explorer.ipynb"
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.nbformat == 4 and nb.metadata.kernelspec.name == "python3"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    # Run the code cells as a kernel would, and check that the last value is an Explorer.
    namespace: dict = {}
    code = [cell.source for cell in nb.cells if cell.cell_type == "code"]
    *body, last = "\n".join(code).strip().splitlines()
    exec("\n".join(body), namespace)
    shown = eval(last, namespace)
    assert isinstance(shown, Explorer)
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
    # book/explorer.md says: from (-0.4, -0.4) with lr = 0.008 (< 2/λmax ≈ 0.010) and 8000
    # steps, rho <= 0.06 ends in the sharp minimum and rho >= 0.08 in the flat one.
    f = sampy.functions.get("sharp_flat")
    rhos = np.linspace(0.0, 0.2, 11)
    traj = sampy.run(SAM(SGD(lr=0.008), rho=rhos), f, np.tile([-0.4, -0.4], (11, 1)), 8000)
    flat = traj.final[:, 0] > 1.0
    np.testing.assert_array_equal(flat, rhos > 0.07)
    page = (REPO / "book" / "explorer.md").read_text()
    assert "lr, steps = 0.008, 8000" in page
