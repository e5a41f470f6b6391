"""The laboratory: up to four SAM variants side by side on a 2-D landscape (ipywidgets).

``Playground()`` shows, on the left, the picture (landscape with its colour bar, side panel,
legend) with a status line per variant under it (where it ended, loss, gradient evaluations,
"diverged at step k", "bouncing … not converged") and the overlays' controls (ascent arrows
w → w + ε at the steps k and k + 1 of every k-th k, ρ-balls at the end points, the side
panel: loss against steps or against gradient evaluations, or the anatomy of SAM's gradient); on the
right, beside it, the controls that change the runs:

- the landscape: a registered function or a typed expression of x and y (checked by
  ``sampy.expressions``: a mistake is shown beside the text box, never raised), its box, the
  2-D/3-D view and the linear/log colour scale;
- the run: learning rate, steps (up to 10,000), base optimizer, gradient noise σ and the
  common start point (sliders, or a click on the landscape);
- four variant slots, each a method menu with the knobs the registry gives it.

Below both: tabs with a basin-of-attraction map of two of the variants, the sharpness at the
end points (λmax, trace, worst case in the ρ-ball), and the exports (PNG, CSV, NPZ, and a line
of Python that reproduces the runs). A projector's 1366 × 768 shows the picture and the
controls together. The first settings are ``LESSON`` (``sampy.playground.choices``).

Every callback ends in ``refresh``, which never raises: an invalid setting, a bad expression,
a NaN or an exception inside a variant is reported in the status line and the last good
picture stays. The kernel trusts no widget's range: every value is read through its
documented limit (``sampy.playground.limits``: a value a client pushed outside is clamped and
the status line says so), and an update whose runs would take more than
``limits.MAX_UPDATE_WORK`` is refused with "too much work: …" before it runs. Runs are
cached per variant, so moving one variant's knob re-runs that variant only. The computations
are in ``sampy.playground.compute`` (plain functions), the drawing in
``sampy.playground.pictures``.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import math
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import ipywidgets as widgets
import numpy as np

from sampy.expressions import check_expression
from sampy.functions import TestFunction
from sampy.playground.choices import BASES, LESSON, suggested_start, two_d_function_names
from sampy.playground.clicks import ClickGrid, EventClicks, ipyevents_available, pixel_to_data
from sampy.playground.compute import (
    EXPRESSION,
    MAX_VARIANTS,
    LabSettings,
    VariantRun,
    VariantSetting,
    anatomy,
    basin_pair,
    describe,
    make_function,
    run_variant,
    sharpness_rows,
    snippet,
    trajectories_csv,
    trajectories_npz,
    update_work,
    variant_labels,
)
from sampy.playground.controls import NO_VARIANT, VariantSlot, clean_number
from sampy.playground.limits import (
    ARROWS_EVERY,
    BASIN_GRID,
    BASIN_STEPS,
    BOX,
    LR,
    NOISE,
    STEPS,
    Limit,
    TooMuchWork,
)
from sampy.playground.pictures import (
    SIDES,
    SLOT_COLOURS,
    VIEWS,
    BasinPicture,
    DrawOptions,
    LabPicture,
    basin_summary,
    landscape_key,
)

SCALES = ("linear", "log")
# A 1×1 white PNG: the placeholder of an Image that has nothing to show yet.
_BLANK_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4//8/AAX+Av4N70a4AAAAAElFTkSuQmCC"
)
# What the four slots hold at first: the lesson's comparison, and empty slots.
DEFAULT_VARIANTS = tuple(
    [v["method"] for v in LESSON["variants"]] + [NO_VARIANT] * (4 - len(LESSON["variants"]))
)
# The right-hand column of controls, in pixels (the picture takes the rest of the width).
CONTROLS_WIDTH = 420
# The "how to use" tab: every control in a few lines (the page itself opens on the picture).
HELP_HTML = """
<div style="max-width:900px;line-height:1.45">
<p>Up to four variants of Sharpness-Aware Minimization (SAM) side by side, from the same start,
on the same 2-D landscape. Things to try: set ρ = 0 (SAM <i>is</i> SGD), raise ρ until SAM
leaves the sharp basin, compare the costs in the legend, open the basin map.</p>
<ul>
<li><b>function</b>: any registered 2-D test function, or <i>expression of x, y</i>: type a
NumPy-style formula of <code>x</code> and <code>y</code> (e.g. <code>x**2 + 10*y**2</code>,
<code>sin(3*x)*cos(y) + 0.1*(x**2 + y**2)</code>) and press Enter; a mistake is shown under the
text box, never run. <b>box ±</b> sets its domain. <b>2-D contour / 3-D surface</b> and
<b>linear / log</b> colours (the colour bar says which).</li>
<li><b>lr (η)</b> (type a value in its readout to get exactly that), <b>steps</b> (up to
10,000), <b>base</b> optimizer, <b>noise σ</b> (Gaussian noise on every gradient), <b>start x /
start y</b>, or <b>click on the landscape</b> to start there.</li>
<li><b>variant 1–4</b>: plain SGD or any SAM variant of the registry that runs on a 2-D
function, each with its own knobs (ρ first; hover for the meaning and valid range; SAM's
<b>p</b> ends at ∞, the square ball).</li>
<li><b>arrows every k</b>: the ascent step w → w+ε (where each variant took its second
gradient) at the steps k and k+1 of every k-th k, so that both phases of SAM's bounce across a
valley show; <b>ρ-ball</b> around each end point; <b>side panel</b>: loss against steps, loss
against gradient evaluations (the cost), or the <i>anatomy</i> of SAM's gradient (fractions of
coordinates in ckpt0–ckpt4); <b>reset to the lesson</b> puts every control back to the first
picture.</li>
<li>Tabs: a <b>basin map</b> (every start of a grid, coloured by the minimum it reaches,
for two variants side by side), the <b>sharpness</b> at the end points (top Hessian
eigenvalue, trace, worst-case loss in the ρ-ball) and the <b>export</b> (PNG, CSV, NPZ, and
one line of Python that reproduces the runs).</li>
</ul>
<p>A run that blows up says "diverged at step k", one that still jumps about at the end says
"bouncing … not converged"; nothing you type or set can break the app. The book chapter
<i>Explore SAM</i> explains what to look for.</p>
</div>
"""
RUN_CACHE = 64  # runs kept (a run of 10,000 steps is ~0.5 MB with its gradient queries)


def _wrapped(markup: str) -> str:
    """HTML that wraps at its box's width (an HTML widget's line does not, by default)."""
    return f'<div style="white-space:normal;line-height:1.3">{markup}</div>'


def _error_html(title: str, error: BaseException | str) -> str:
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return f'<span style="color:#b00020"><b>{html.escape(title)}</b>: {html.escape(text)}</span>'


class Playground(widgets.VBox):
    """The laboratory widget; display it as the last expression of a cell: ``Playground()``.

    Its parts are attributes, so a script or a test can drive it by setting ``.value``:
    ``function_menu``, ``expression_text``, ``box_text``, ``view_buttons``,
    ``scale_buttons``, ``lr_slider``, ``steps_slider``, ``base_menu``, ``noise_slider``,
    ``x_slider``, ``y_slider``, ``arrows_slider``, ``balls_box``, ``side_menu``,
    ``anatomy_menu``, ``slots`` (four ``VariantSlot``: ``.menu`` and ``.knobs``), ``image``
    (the picture, ``widgets.Image``), ``status``, ``clicks`` (the click adapter),
    ``basin_button``/``basin_image``/``basin_status``, ``sharpness_html`` and the export
    parts ``snippet_text``, ``export_button`` and ``downloads``.

    Args:
        function: the first function (``two_d_function_names()``, or ``EXPRESSION``).
        variants: the methods of the slots (at most four; ``NO_VARIANT`` for an empty one).
        hyperparameters: per slot, the first hyperparameters (the rest: registry defaults);
            by default, a slot that holds the lesson's method there has the lesson's values
            (``LESSON``: SAM with ρ = 0.1).
        lr, steps, x0: the first learning rate, steps and start (default: the function's
            suggestion, ``SUGGESTED``; the lesson's for sharp_flat).
        expression: the first typed expression (used when ``function == EXPRESSION``).
        base: the first base optimizer (``BASES``).
        click_grid: cells across and down of the click grid (when ipyevents is missing).
    """

    def __init__(
        self,
        function: str = LESSON["function"],
        variants: Sequence[str] = DEFAULT_VARIANTS,
        hyperparameters: Sequence[dict] | None = None,
        lr: float | None = None,
        steps: int = LESSON["steps"],
        x0: Sequence[float] | None = None,
        expression: str = "(x**2 + y - 11)**2 + (x + y**2 - 7)**2",
        base: str = LESSON["base"],
        click_grid: tuple[int, int] = (16, 10),
    ) -> None:
        variants = list(variants)
        if not 1 <= len(variants) <= MAX_VARIANTS:
            raise ValueError(f"variants must hold 1 to {MAX_VARIANTS} methods, got {variants}")
        variants += [NO_VARIANT] * (MAX_VARIANTS - len(variants))
        if hyperparameters is None:
            lesson = LESSON["variants"]
            hyperparameters = [
                dict(lesson[i]["hyperparameters"])
                if i < len(lesson) and variants[i] == lesson[i]["method"]
                else {}
                for i in range(MAX_VARIANTS)
            ]
        given = list(hyperparameters) + [{}] * MAX_VARIANTS
        self._quiet = 0  # > 0 while several controls change together: redraw once after
        self._runs: OrderedDict[tuple, VariantRun] = OrderedDict()
        self._functions: dict[tuple, TestFunction] = {}
        self.pictures: dict[str, LabPicture] = {}
        self.basin_picture = BasinPicture()
        self.function: TestFunction | None = None
        self.runs: list[VariantRun] = []
        self.last_png = b""

        self._build_landscape_controls(function, expression)
        self._build_run_controls(base, steps)
        self._build_overlay_controls()
        self.slots = [
            VariantSlot(
                i, method, SLOT_COLOURS[i], self._on_change, given[i], width=CONTROLS_WIDTH - 10
            )
            for i, method in enumerate(variants)
        ]
        self._build_picture(click_grid)
        self._build_tabs()

        self._show_expression()
        # The first function's suggested start and learning rate (choices.suggested_start).
        with self._hold():
            self._fit_to_function(self._current_function_or_none(), x0, lr)

        for control in (self.function_menu, self.box_text):
            control.observe(self._on_function, names="value")
        self.expression_text.observe(self._on_function, names="value")
        for control in (
            self.view_buttons, self.scale_buttons, self.lr_slider, self.steps_slider,
            self.base_menu, self.noise_slider, self.x_slider, self.y_slider,
            self.arrows_slider, self.balls_box, self.side_menu, self.anatomy_menu,
        ):  # fmt: skip
            control.observe(self._on_control, names="value")
        self.tabs.observe(self._on_tab, names="selected_index")

        # The picture on the left, the controls that change the runs beside it on the right
        # (a projector's 1366 × 768 shows both at once; a narrower window wraps the controls
        # under the picture); the overlays' controls under the picture, the tabs under both.
        self.expression_box = widgets.VBox(
            [self.expression_text, self.expression_error, self.box_text]
        )
        width = self.picture.image_size()[0]
        overlays = widgets.HBox(
            [
                self.arrows_slider,
                self.balls_box,
                self.side_menu,
                self.anatomy_menu,
                self.reset_button,
            ],
            layout=widgets.Layout(flex_flow="row wrap", width="100%"),
        )
        self.picture_column = widgets.VBox(
            [self.stack, self.status, overlays],
            layout=widgets.Layout(width=f"{width}px", max_width="100%", margin="0 8px 0 0"),
        )
        self.controls_column = widgets.VBox(
            [self.function_menu, self.expression_box,
             widgets.HBox([self.view_buttons, self.scale_buttons],
                          layout=widgets.Layout(flex_flow="row wrap")),
             self.lr_slider, self.steps_slider, self.base_menu, self.noise_slider,
             self.x_slider, self.y_slider, *self.slots],
            layout=widgets.Layout(width=f"{CONTROLS_WIDTH}px", flex="0 0 auto"),
        )  # fmt: skip
        self.controls_column.add_class("sampy-controls")
        main = widgets.HBox(
            [self.picture_column, self.controls_column],
            layout=widgets.Layout(flex_flow="row wrap", align_items="flex-start"),
        )
        super().__init__([main, self.tabs])
        self.add_class("sampy-playground")
        self.refresh()

    # ----------------------------------------------------------------- building

    def _build_landscape_controls(self, function: str, expression: str) -> None:
        names = [*two_d_function_names(), EXPRESSION]
        if function not in names:
            raise ValueError(f"function must be one of {names}, got {function!r}")
        self.function_menu = widgets.Dropdown(
            options=names, value=function, description="function",
            style={"description_width": "70px"},
            layout=widgets.Layout(width=f"{CONTROLS_WIDTH - 20}px"),
        )  # fmt: skip
        # Not continuous: the expression is read when Enter is pressed or the box is left,
        # not at every key (half-typed text is rarely valid).
        self.expression_text = widgets.Text(
            value=expression, description="f(x, y) =", continuous_update=False,
            placeholder="e.g. x**2 + 10*y**2, sin(x)*cos(y), 1/(x - 1)",
            style={"description_width": "70px"},
            layout=widgets.Layout(width=f"{CONTROLS_WIDTH - 20}px"),
        )  # fmt: skip
        # What is wrong with the typed expression, right under the text box (and in the
        # status line); empty while it is fine.
        self.expression_error = widgets.HTML(
            layout=widgets.Layout(width=f"{CONTROLS_WIDTH - 96}px", margin="0 0 4px 76px")
        )
        self.expression_error.add_class("sampy-expression-error")
        self.box_text = widgets.BoundedFloatText(
            value=4.0, min=BOX.low, max=BOX.high, step=0.5, description="box ±",
            tooltip="the expression's domain is [-box, box]²",
            style={"description_width": "40px"}, layout=widgets.Layout(width="120px"),
        )  # fmt: skip
        self.view_buttons = widgets.ToggleButtons(
            options=list(VIEWS), value=VIEWS[0], style={"button_width": "95px"}
        )
        self.scale_buttons = widgets.ToggleButtons(
            options=list(SCALES), value=SCALES[0], style={"button_width": "58px"},
            tooltips=["colour by f", "colour by log(f − min)"],
        )  # fmt: skip

    def _build_run_controls(self, base: str, steps: int) -> None:
        wide = {"description_width": "70px"}
        column = widgets.Layout(width=f"{CONTROLS_WIDTH - 20}px")
        # A log slider: useful learning rates span four orders of magnitude. Not continuous:
        # a continuous log slider snaps a typed value to its grid of exponents and sends that
        # back (0.5 became 10^-0.30 = 0.5012); this one keeps what is typed, and a drag or an
        # arrow key still lands on the grid.
        self.lr_slider = widgets.FloatLogSlider(
            value=LESSON["lr"], base=10, min=math.log10(LR.low), max=math.log10(LR.high),
            step=0.05, readout_format=".4",
            description="lr (η)", style=wide, layout=column, continuous_update=False,
        )  # fmt: skip
        # Not continuous: thousands of steps take a moment, so redraw when the handle drops.
        self.steps_slider = widgets.IntSlider(
            value=steps, min=STEPS.low, max=STEPS.high, step=50, continuous_update=False,
            description="steps", style=wide, layout=column,
        )  # fmt: skip
        if base not in BASES:
            raise ValueError(f"base must be one of {list(BASES)}, got {base!r}")
        self.base_menu = widgets.Dropdown(
            options=list(BASES), value=base, description="base", style=wide,
            layout=widgets.Layout(width="220px"),
        )  # fmt: skip
        self.noise_slider = widgets.FloatSlider(
            value=0.0, min=NOISE.low, max=NOISE.high, step=0.01, description="noise σ", style=wide,
            layout=column, tooltip="σ of Gaussian noise on every gradient (seeded generator)",
        )  # fmt: skip
        self.x_slider = widgets.FloatSlider(description="start x", style=wide, layout=column)
        self.y_slider = widgets.FloatSlider(description="start y", style=wide, layout=column)
        # The start sliders' range is the function's domain, set here on the kernel's side
        # (``_fit_to_function``); the browser's copy of min and max is not trusted.
        self._start_limits = (
            Limit("start x", self.x_slider.min, self.x_slider.max),
            Limit("start y", self.y_slider.min, self.y_slider.max),
        )

    def _build_overlay_controls(self) -> None:
        wide = {"description_width": "90px"}
        self.arrows_slider = widgets.IntSlider(
            value=LESSON["arrows_every"], min=ARROWS_EVERY.low, max=ARROWS_EVERY.high,
            description="arrows every",
            style=wide, layout=widgets.Layout(width="300px"),
            tooltip="draw the ascent w → w+ε at the steps k and k+1 of every k-th k (0: none)",
        )  # fmt: skip
        self.balls_box = widgets.Checkbox(
            value=LESSON["balls"], description="ρ-ball at the end points", indent=False,
            layout=widgets.Layout(width="220px", margin="2px 8px"),
        )  # fmt: skip
        self.side_menu = widgets.Dropdown(
            options=list(SIDES), value=SIDES[0], description="side panel", style=wide,
            layout=widgets.Layout(width="300px"),
        )  # fmt: skip
        self.anatomy_menu = widgets.Dropdown(
            options=[("variant 2", 1)], value=1, description="anatomy of", style=wide,
            layout=widgets.Layout(width="300px"),
        )  # fmt: skip
        self.reset_button = widgets.Button(
            description="reset to the lesson", layout=widgets.Layout(width="170px"),
            tooltip="every control back to the first picture: SGD against SAM on sharp_flat",
        )  # fmt: skip
        self.reset_button.on_click(lambda _button: self.reset())

    def _build_picture(self, click_grid: tuple[int, int]) -> None:
        picture = self._picture(VIEWS[0])
        width, height = picture.image_size()
        self.image = widgets.Image(
            format="png", layout=widgets.Layout(width="100%", grid_area="stack", margin="0")
        )
        if ipyevents_available():
            self.clicks: ClickGrid | EventClicks = EventClicks(
                self.image, picture.image_size, self.pick_pixel
            )
            layers = [self.image]
        else:
            self.clicks = ClickGrid(
                (width, height), picture.pixel_box(), self.pick_pixel, *click_grid
            )
            layers = [self.image, self.clicks]
        # The image and the click grid share one CSS grid cell, so the grid lies on top.
        self.stack = widgets.GridBox(
            layers,
            layout=widgets.Layout(
                grid_template_areas='"stack"', width=f"{width}px", max_width="100%"
            ),
        )
        self.image.add_class("sampy-picture")  # for the browser tests and for CSS
        self.status = widgets.HTML()
        self.status.add_class("sampy-status")

    def _build_tabs(self) -> None:
        # Basin map
        self.basin_a = widgets.Dropdown(description="left", layout=widgets.Layout(width="220px"))
        self.basin_b = widgets.Dropdown(description="right", layout=widgets.Layout(width="220px"))
        basins = LESSON["basins"]
        self.basin_grid = widgets.IntSlider(
            value=basins["grid"], min=BASIN_GRID.low, max=BASIN_GRID.high, step=10,
            description="grid",
            continuous_update=False,
        )  # fmt: skip
        self.basin_steps = widgets.IntSlider(
            value=basins["steps"], min=BASIN_STEPS.low, max=BASIN_STEPS.high, step=10,
            description="steps",
            continuous_update=False,
        )  # fmt: skip
        self.basin_button = widgets.Button(
            description="compute basin maps", button_style="primary",
            layout=widgets.Layout(width="200px"),
        )  # fmt: skip
        self.basin_button.on_click(lambda _button: self.compute_basins())
        self.basin_status = widgets.HTML(
            "<small>Every start point of a grid over the domain, run with the same settings "
            "(no noise), coloured by the minimum it reached.</small>"
        )
        # Hidden until computed; a 1-pixel PNG until then, since a browser counts an Image
        # with no bytes as a broken image.
        self.basin_image = widgets.Image(
            value=_BLANK_PNG, format="png", layout=widgets.Layout(max_width="100%", display="none")
        )
        self.basin_image.add_class("sampy-basins")
        basin_tab = widgets.VBox(
            [widgets.HBox([self.basin_a, self.basin_b, self.basin_button]),
             widgets.HBox([self.basin_grid, self.basin_steps]), self.basin_status,
             self.basin_image],
        )  # fmt: skip
        # Sharpness
        self.sharpness_html = widgets.HTML()
        # Export
        self.snippet_text = widgets.Textarea(
            description="Python", layout=widgets.Layout(width="95%", height="90px"),
            style={"description_width": "50px"},
        )  # fmt: skip
        self.export_button = widgets.Button(
            description="prepare downloads", layout=widgets.Layout(width="200px")
        )
        self.export_button.on_click(lambda _button: self.prepare_downloads())
        self.downloads = widgets.HTML(
            "<small>PNG of the picture, the trajectories as CSV and NPZ.</small>"
        )
        export_tab = widgets.VBox(
            [widgets.HTML("<small>One line that reproduces the runs with sampy "
                          "(it leaves <code>runs</code>: label → Trajectory):</small>"),
             self.snippet_text, widgets.HBox([self.export_button, self.downloads])],
        )  # fmt: skip
        self.help_html = widgets.HTML(HELP_HTML)
        self.tabs = widgets.Tab(
            [basin_tab, self.sharpness_html, export_tab, self.help_html],
            titles=("basin map", "sharpness", "export", "how to use"),
            # The basin tab first: it computes nothing until its button is pressed, whereas
            # an open sharpness tab is recomputed on every update.
            selected_index=0,
        )

    def _picture(self, view: str) -> LabPicture:
        if view not in self.pictures:
            self.pictures[view] = LabPicture()
        return self.pictures[view]

    # ----------------------------------------------------------------- state

    def settings(self) -> LabSettings:
        """The settings the controls show, each inside its documented limit
        (``sampy.playground.limits``: a value a client pushed outside is clamped).

        Raises ``ValueError`` naming the control for a value that is no number (NaN).
        """
        return self._read_settings([])

    def _read_settings(self, notes: list[str]) -> LabSettings:
        """``settings()``, adding to ``notes`` a line per value that had to be clamped."""

        def bounded(limit: Limit, value: object) -> float:
            number, note = limit.clamp(value)
            if note is not None:
                notes.append(note)
            return number

        variants = tuple(s for s in (slot.setting(notes) for slot in self.slots) if s is not None)
        # clean_number: a browser's slider sends -1 + 160·0.005 = -0.19999999999999996 for
        # -0.2; the runs (and the exported snippet) use the number the reader sees.
        start_x, start_y = self._start_limits
        return LabSettings(
            function=self.function_menu.value,
            expression=self.expression_text.value,
            box=bounded(BOX, self.box_text.value),
            variants=variants,
            lr=clean_number(bounded(LR, self.lr_slider.value)),
            steps=bounded(STEPS, self.steps_slider.value),
            x0=(clean_number(bounded(start_x, self.x_slider.value)),
                clean_number(bounded(start_y, self.y_slider.value))),
            base=self.base_menu.value,
            noise=clean_number(bounded(NOISE, self.noise_slider.value)),
        )  # fmt: skip

    def options(self) -> DrawOptions:
        """How the controls say to draw ("arrows every" inside its limit)."""
        return self._read_options([])

    def _read_options(self, notes: list[str]) -> DrawOptions:
        every, note = ARROWS_EVERY.clamp(self.arrows_slider.value)
        if note is not None:
            notes.append(note)
        return DrawOptions(
            view=self.view_buttons.value,
            log=self.scale_buttons.value == "log",
            arrows_every=int(every),
            balls=bool(self.balls_box.value),
            side=self.side_menu.value,
            anatomy_of=int(self.anatomy_menu.value or 0),
        )

    def _restore_ranges(self) -> None:
        """Put the sliders' ranges back where the kernel set them, should a client have
        moved them (the value follows: ipywidgets clamps it into the range)."""
        start_x, start_y = self._start_limits
        sliders = (
            (self.steps_slider, STEPS.low, STEPS.high),
            (self.lr_slider, math.log10(LR.low), math.log10(LR.high)),
            (self.noise_slider, NOISE.low, NOISE.high),
            (self.box_text, BOX.low, BOX.high),
            (self.arrows_slider, ARROWS_EVERY.low, ARROWS_EVERY.high),
            (self.basin_grid, BASIN_GRID.low, BASIN_GRID.high),
            (self.basin_steps, BASIN_STEPS.low, BASIN_STEPS.high),
            (self.x_slider, start_x.low, start_x.high),
            (self.y_slider, start_y.low, start_y.high),
        )
        with self._hold():
            for slider, low, high in sliders:
                if (slider.min, slider.max) != (low, high):
                    with slider.hold_sync():  # widen, then narrow: min ≤ max throughout
                        slider.min, slider.max = min(slider.min, low), max(slider.max, high)
                        slider.min, slider.max = low, high

    @property
    def picture(self) -> LabPicture:
        """The figure of the current view."""
        return self._picture(self.view_buttons.value)

    @contextmanager
    def _hold(self) -> Iterator[None]:
        """Change several controls, redraw once (by the caller) afterwards."""
        self._quiet += 1
        try:
            yield
        finally:
            self._quiet -= 1

    # ----------------------------------------------------------------- computing

    def _function(self, settings: LabSettings) -> TestFunction:
        key = (settings.function, settings.expression.strip(), settings.box)
        if key not in self._functions:
            if len(self._functions) > 32:
                self._functions.clear()
            self._functions[key] = make_function(settings)
        return self._functions[key]

    def _current_function_or_none(self) -> TestFunction | None:
        try:
            return self._function(self.settings())
        except Exception:  # a bad expression: the start sliders keep their range
            return None

    def _run(self, f: TestFunction, variant: VariantSetting, settings: LabSettings, label: str):
        key = (
            landscape_key(f), variant.method, repr(sorted(variant.hyperparameters.items())),
            settings.lr, settings.steps, settings.x0, settings.base, settings.noise,
            settings.seed, settings.bound, label,
        )  # fmt: skip
        if key in self._runs:
            self._runs.move_to_end(key)
            return self._runs[key]
        vrun = run_variant(f, variant, settings, label)
        self._runs[key] = vrun
        while len(self._runs) > RUN_CACHE:
            self._runs.popitem(last=False)
        return vrun

    def refresh(self) -> list[VariantRun] | None:
        """Re-run what changed and redraw; report every problem in ``status``, never raise.

        Returns the runs, or ``None`` when there was nothing new to draw (the last good
        picture stays, and the status says why).
        """
        try:
            return self._refresh()
        except Exception as error:  # anything unforeseen: report it rather than lose it
            self.status.value = _error_html("Could not draw this setting", error)
            return None

    def _refresh(self) -> list[VariantRun] | None:
        notes: list[str] = []
        try:
            settings = self._read_settings(notes)
            options = self._read_options(notes)
        except ValueError as error:
            self.status.value = _error_html("Invalid setting", str(error))
            return None
        finally:
            self._restore_ranges()
        self.expression_error.value = ""
        if settings.function == EXPRESSION:
            message = check_expression(settings.expression)
            if message is not None:
                self.status.value = _error_html("Expression", message)
                self.expression_error.value = _wrapped(self.status.value)
                return None
        try:
            f = self._function(settings)
        except ValueError as error:
            self.status.value = _error_html("Invalid function", str(error))
            if settings.function == EXPRESSION:
                self.expression_error.value = _wrapped(self.status.value)
            return None
        if not settings.variants:
            self.status.value = _error_html("Nothing to run", "choose a method in a slot")
            return None
        try:
            update_work(settings).check()
        except TooMuchWork as error:  # refused before it keeps the kernel busy
            self.status.value = _error_html("Not run", str(error))
            return None
        labels = variant_labels(settings.variants)
        runs = []
        for variant, label in zip(settings.variants, labels, strict=True):
            try:
                runs.append(self._run(f, variant, settings, label))
            except Exception as error:  # a variant that fails must not take the others down
                message = f"{type(error).__name__}: {error}"
                runs.append(VariantRun(label, variant.method, {}, None, error=message))
        self._sync_variant_menus(labels)  # may move the anatomy menu onto a shown variant
        options = dataclasses.replace(options, anatomy_of=int(self.anatomy_menu.value or 0))
        dissected = None
        if options.side == SIDES[2] and 0 <= options.anatomy_of < len(runs):
            dissected = anatomy(f, runs[options.anatomy_of])
        png = self.picture.png(f, runs, options, dissected)
        if options.view == VIEWS[0] and isinstance(self.clicks, ClickGrid):
            self.clicks.set_box(self.picture.pixel_box())  # a new domain has a new box
        self.function, self.runs, self.last_png = f, runs, png
        self.image.value = png
        lines = [self._status_line(f, vrun) for vrun in runs]
        lines += [f"<small>{html.escape(note)}</small>" for note in notes]
        self.status.value = "<br>".join(lines)
        self._after_runs(settings)
        return runs

    def _status_line(self, f: TestFunction, vrun: VariantRun) -> str:
        line = html.escape(describe(f, vrun))
        if not vrun.ok:
            return f'<span style="color:#b00020">{line}</span>'
        if vrun.diverged_at is not None:
            return f'<span style="color:#b00020">{line}</span>'
        return line

    def _sync_variant_menus(self, labels: Sequence[str]) -> None:
        """Keep the anatomy and basin menus on the variants that are shown."""
        options = [(label, i) for i, label in enumerate(labels)]
        with self._hold():
            basins = LESSON["basins"]
            for menu, default in (
                (self.anatomy_menu, min(1, len(labels) - 1)),
                (self.basin_a, min(basins["left"], len(labels) - 1)),
                (self.basin_b, min(basins["right"], len(labels) - 1)),
            ):
                if list(menu.options) != options:
                    keep = (
                        menu.value
                        if menu.value is not None and menu.value < len(labels)
                        else default
                    )
                    with menu.hold_sync():
                        menu.options = options
                        menu.value = keep

    def _after_runs(self, settings: LabSettings) -> None:
        try:
            self.snippet_text.value = snippet(settings)
        except ValueError as error:
            self.snippet_text.value = f"# cannot write a snippet: {error}"
        self.downloads.value = "<small>PNG of the picture, the trajectories as CSV and NPZ.</small>"
        if self.tabs.selected_index == 1:
            self.update_sharpness()

    # ----------------------------------------------------------------- callbacks

    def _on_change(self) -> None:
        if not self._quiet:
            self.refresh()

    def _on_control(self, change: dict) -> None:
        if change["owner"] is self.view_buttons:
            self.clicks.show(change["new"] == VIEWS[0])
        self._on_change()

    def _on_function(self, change: dict) -> None:
        # A new function has a new domain: move the start sliders into it and pick the start
        # and learning rate that suit it; a new box or expression keeps the start and the
        # learning rate (clamped into the box). Then redraw once.
        try:
            self._show_expression()
            owner = change["owner"]
            if owner is self.function_menu or self.function_menu.value == EXPRESSION:
                f = self._current_function_or_none()
                if f is not None:
                    with self._hold():
                        if owner is self.function_menu:
                            self._fit_to_function(f, None, None)
                        else:
                            start = (self.x_slider.value, self.y_slider.value)
                            self._fit_to_function(f, start, self.lr_slider.value)
        except Exception as error:  # never raise from a callback: say it
            self.status.value = _error_html("Could not change the function", error)
            return
        self._on_change()  # once, after the start and the learning rate (or by ``reset``)

    def _show_expression(self) -> None:
        """The expression's text and box are shown only while the expression is chosen."""
        shown = None if self.function_menu.value == EXPRESSION else "none"
        self.expression_text.layout.display = shown
        self.expression_error.layout.display = shown
        self.box_text.layout.display = shown

    def _on_tab(self, change: dict) -> None:
        if change["new"] == 1:
            self.update_sharpness()

    def _fit_to_function(
        self, f: TestFunction | None, x0: Sequence[float] | None, lr: float | None
    ) -> None:
        if f is None:
            return
        start, suggested_lr = suggested_start(f)
        start = tuple(x0) if x0 is not None else start
        self.lr_slider.value = lr if lr is not None else suggested_lr
        for slider, (lo, hi), value in zip(
            (self.x_slider, self.y_slider), f.domain, start, strict=True
        ):
            # hold_sync: the new range and value reach the browser in ONE message (sent one
            # by one, the browser would clamp the old value to the new range and send it
            # back, undoing the new start). Widen, set, narrow: ipywidgets refuses min > max
            # and clamps a value outside [min, max], so the order matters.
            with slider.hold_sync():
                slider.min, slider.max = min(slider.min, lo), max(slider.max, hi)
                slider.value = float(np.clip(value, lo, hi))
                slider.min, slider.max = lo, hi
                slider.step = (hi - lo) / 400
                slider.readout_format = ".2f"
        (x_lo, x_hi), (y_lo, y_hi) = f.domain
        self._start_limits = (Limit("start x", x_lo, x_hi), Limit("start y", y_lo, y_hi))

    def reset(self) -> None:
        """Every control back to the lesson (``LESSON``: the first picture), redrawn once."""
        try:
            with self._hold():
                self.function_menu.value = LESSON["function"]
                f = self._current_function_or_none()
                self._fit_to_function(f, LESSON["x0"], LESSON["lr"])
                self.steps_slider.value = LESSON["steps"]
                self.base_menu.value = LESSON["base"]
                self.noise_slider.value = 0.0
                self.view_buttons.value, self.scale_buttons.value = VIEWS[0], SCALES[0]
                self.arrows_slider.value = LESSON["arrows_every"]
                self.balls_box.value = LESSON["balls"]
                self.side_menu.value = SIDES[0]
                lesson = LESSON["variants"]
                for i, slot in enumerate(self.slots):
                    if i < len(lesson):
                        slot.choose(lesson[i]["method"], lesson[i]["hyperparameters"])
                    else:
                        slot.choose(NO_VARIANT, {})
        except Exception as error:  # never raise from a button: say it
            self.status.value = _error_html("Could not reset", error)
            return
        self.refresh()

    def pick_pixel(self, px: float, py: float) -> None:
        """A click on the picture at PNG pixel ``(px, py)``: start there (2-D view only)."""
        try:
            if self.view_buttons.value != VIEWS[0] or self.function is None:
                return
            picture = self._picture(VIEWS[0])
            point = pixel_to_data(px, py, picture.pixel_box(), self.function.domain)
            if point is not None:
                self.pick_start(*point)
        except Exception as error:
            self.status.value = _error_html("Could not use the click", error)

    def pick_start(self, x: float, y: float) -> None:
        """Start every run at ``(x, y)`` (clamped to the sliders' range) and redraw once."""
        with self._hold():
            self.x_slider.value = float(np.clip(x, self.x_slider.min, self.x_slider.max))
            self.y_slider.value = float(np.clip(y, self.y_slider.min, self.y_slider.max))
        self.refresh()

    # ----------------------------------------------------------------- the tabs

    def compute_basins(self) -> None:
        """Compute and show the basin maps of the two chosen variants (never raises)."""
        try:
            settings = self.settings()
            # Refused, not clamped: a map of another size than the sliders say would be
            # a map of something else (compute.basin_pair then budgets the work).
            grid, steps = self.basin_grid.value, self.basin_steps.value
            for limit, value in ((BASIN_GRID, grid), (BASIN_STEPS, steps)):
                _, note = limit.clamp(value)
                if note is not None:
                    raise ValueError(note.split(";")[0])
            grid, steps = int(grid), int(steps)
            a, b = self.basin_a.value, self.basin_b.value
            if a is None or b is None:
                raise ValueError("choose two variants")
            self.basin_status.value = "<i>computing…</i>"
            began = time.perf_counter()
            maps = basin_pair(settings, a, b, grid=grid, steps=steps)
            seconds = time.perf_counter() - began
            self.basin_image.value = self.basin_picture.png(maps)
            self.basin_image.layout.display = None
            self.basin_maps = maps
            lines = [html.escape(basin_summary(m)) for m in maps]
            self.basin_status.value = (
                "<br>".join(lines) + f"<br><small>{grid}×{grid} start points, {steps} steps, "
                f"computed in {seconds:.2f} s (no gradient noise)</small>"
            )
        except Exception as error:
            self.basin_status.value = _error_html("Basin map", error)

    def update_sharpness(self) -> None:
        """Fill the sharpness tab for the current end points (never raises)."""
        try:
            if self.function is None:
                return
            rows = sharpness_rows(self.function, self.runs)
            self.sharpness_html.value = _sharpness_table(rows)
        except Exception as error:
            self.sharpness_html.value = _error_html("Sharpness", error)

    def export_png(self) -> bytes:
        """The current picture as PNG bytes."""
        return bytes(self.last_png)

    def export_csv(self) -> bytes:
        """The current trajectories as CSV bytes (``compute.trajectories_csv``)."""
        return trajectories_csv(self.runs)

    def export_npz(self) -> bytes:
        """The current trajectories as ``.npz`` bytes (``compute.trajectories_npz``)."""
        return trajectories_npz(self.runs, self.settings())

    def prepare_downloads(self) -> None:
        """Put download links (data URLs: no server, no kernel needed to click them)."""
        try:
            links = [
                ("sampy-playground.png", "image/png", self.export_png()),
                ("sampy-trajectories.csv", "text/csv", self.export_csv()),
                ("sampy-trajectories.npz", "application/octet-stream", self.export_npz()),
            ]
            self.downloads.value = " · ".join(
                f'<a download="{name}" href="data:{mime};base64,'
                f'{base64.b64encode(data).decode("ascii")}">{name}</a> '
                f"<small>({len(data) / 1024:.0f} kB)</small>"
                for name, mime, data in links
            )
        except Exception as error:
            self.downloads.value = _error_html("Export", error)


def _number(value: object) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return "—"
    return f"{value:.4g}" if isinstance(value, float) else html.escape(str(value))


def _sharpness_table(rows: Sequence[dict]) -> str:
    """The sharpness rows as an HTML table."""
    if not rows:
        return "<i>no run to measure</i>"
    head = ("variant", "end point", "loss", "λmax(∇²f)", "tr ∇²f", "ρ (p)", "worst loss in ball",
            "ρ-sharpness")  # fmt: skip
    body = []
    for row in rows:
        cells = (
            html.escape(str(row["label"])),
            f"({row['x']:.3f}, {row['y']:.3f})",
            _number(row["loss"]),
            _number(row["lambda_max"]),
            _number(row["trace"]),
            f"{row['rho']:.3g} ({row['p']:g})",
            _number(row["worst"]),
            _number(row["sharpness"]),
        )
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    header = "<tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"
    return (
        '<table style="border-collapse:collapse" cellpadding="4">'
        f"{header}{''.join(body)}</table><small>At each end point: the Hessian's largest "
        "eigenvalue and trace (exact, autograd), and the largest loss within the variant's "
        f"ρ-ball (projected ascent from several starts; a variant without ρ: ρ = "
        "0.05).</small>"
    )


def time_playground_update(
    n: int = 30,
    steps: int = 300,
    variants: Sequence[str] = ("SGD", "SAM", "LookSAM", "ASAM"),
    control: str = "start",
) -> np.ndarray:
    """Seconds taken by ``n`` updates of a ``Playground`` (for the benchmarks; take the median).

    ``control="start"`` moves the start x slider: every variant re-runs (the worst case, all
    ``len(variants)`` runs of ``steps`` steps and a redraw); ``control="knob"`` moves the
    second slot's ρ: only that variant re-runs. Each update is timed from the assignment
    until ``image.value`` holds the new picture.
    """
    lab = Playground(variants=variants, steps=steps)
    if control == "start":
        slider = lab.x_slider
        lo, hi = slider.min, slider.max
        values = [lo + (0.3 + 0.3 * (i % 20) / 20) * (hi - lo) for i in range(n)]
    elif control == "knob":
        slider = lab.slots[1].knobs["rho"]
        values = [0.02 + 0.005 * (i % 40) for i in range(n)]
    else:
        raise ValueError(f"control must be 'start' or 'knob', got {control!r}")
    slider.value = values[-1] + 1e-3 * (slider.max - slider.min)  # one warm-up update
    times = np.empty(n)
    for i in range(n):
        start = time.perf_counter()
        slider.value = values[i]
        times[i] = time.perf_counter() - start
    return times
