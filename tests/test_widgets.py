"""The widgets' shared pieces without a kernel or a browser: the method menu and the knob rule
(``sampy.playground.choices``/``controls``), the playground notebook, the kernel-free scrubber of
``sampy.plot`` and the explorer page's numbers. The laboratory (``Playground``) itself is
tested in test_playground_*.py.
"""

from __future__ import annotations

import io
import re
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
from sampy.widgets import (
    Playground,
    knob_range,
    make_knob,
    methods,
    two_d_function_names,
)

REPO = Path(__file__).resolve().parent.parent
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def plain_rows() -> list[sampy.Variant]:
    return [row for row in sampy.variants() if not row.needs_examples]


def decode(png: bytes | memoryview) -> Image.Image:
    data = bytes(png)
    assert data.startswith(PNG_SIGNATURE)
    image = Image.open(io.BytesIO(data))
    image.load()  # decodes every pixel: a truncated or corrupt PNG raises here
    return image


def test_method_menu_is_sgd_and_every_plain_registry_row() -> None:
    # Generated from the registry: a new row that runs on a test function shows up by itself.
    expected = ["SGD", *(row.name for row in plain_rows())]
    assert methods() == expected
    assert "ASAM" in expected and "LookSAM" in expected
    assert not {row.name for row in sampy.variants() if row.needs_examples} & set(expected)


def test_menu_lists_only_2d_functions() -> None:
    names = two_d_function_names()
    assert "sharp_flat" in names
    assert all(sampy.functions.get(name).dim == 2 for name in names)


def image_bytes(widget: Playground) -> bytes:
    return bytes(widget.image.value)  # ipywidgets hands back a memoryview


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


def test_the_playground_opens_on_what_to_try_not_a_wall_of_text() -> None:
    # The review: six paragraphs on the controls came before the picture, and nothing said
    # what to try. The page opens with one short line that says what to move; the controls'
    # description and the things to try are in the laboratory's "how to use" tab.
    from sampy.playground.app import HELP_HTML

    nb = nbformat.read(REPO / "playground" / "explorer.ipynb", as_version=4)
    code_at = next(i for i, cell in enumerate(nb.cells) if cell.cell_type == "code")
    before = " ".join(cell.source for cell in nb.cells[:code_at])
    assert len(before.split()) <= 40, before
    assert "ρ" in before and "click" in before
    lab = Playground()
    assert lab.help_html.value == HELP_HTML and "Things to try" in HELP_HTML
    assert "how to use" in [lab.tabs.get_title(i) for i in range(len(lab.tabs.children))]


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
