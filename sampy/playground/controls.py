"""Controls generated from the registry: one widget per hyperparameter (``make_knob``), the
line that says which hyperparameters have none (``knob_note``), and a "variant slot"
(``VariantSlot``: a method menu with its knobs) of which the laboratory shows up to four.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence

import ipywidgets as widgets

from sampy import registry
from sampy.optim.hyper import Hyper
from sampy.playground.choices import (
    INFINITE_END,
    knob_range,
    knob_specs,
    knob_stops,
    method_row,
    methods,
)
from sampy.playground.compute import VariantSetting
from sampy.playground.limits import Limit


def make_knob(spec: Hyper, value: object = None, width: str = "110px") -> widgets.Widget:
    """The control of one hyperparameter, labelled with its name, at ``value`` (or default).

    real → ``FloatSlider`` (``FloatLogSlider`` when ``spec.log``: from default/100 to
    default·100, within the spec's bounds; a ``SelectionSlider`` whose last stop is "∞"
    when the knob has an ∞ end, ``INFINITE_END``: SAM's p), int → ``IntSlider``, bool →
    ``Checkbox``, choice → ``Dropdown``. The tooltip gives the meaning and the valid range.
    """
    value = spec.default if value is None else value
    common = {
        "description": spec.name,
        "tooltip": f"{spec.name}: {spec.meaning}; valid {spec.range_text()}",
        "style": {"description_width": width},
        "layout": widgets.Layout(width="340px"),
    }
    if spec.kind == "bool":
        return widgets.Checkbox(value=bool(value), **common)
    if spec.kind == "choice":
        return widgets.Dropdown(options=list(spec.choices), value=value, **common)
    if spec.kind == "int":
        lo, hi, _ = knob_range(spec, value)
        return widgets.IntSlider(value=int(value), min=int(lo), max=int(hi), step=1, **common)
    if spec.kind == "real" and spec.name in INFINITE_END:
        stops = knob_stops(spec, value)
        return widgets.SelectionSlider(
            options=[(_stop_label(v), v) for v in stops], value=float(value), **common
        )
    if spec.log and float(spec.default) > 0:
        lo, hi = _log_range(spec, value)
        return widgets.FloatLogSlider(
            value=value, base=10, min=lo, max=hi, step=(hi - lo) / 200, readout_format=".3g",
            **common,
        )  # fmt: skip
    lo, hi, step = knob_range(spec, value)
    decimals = max(0, -math.floor(math.log10(step)))
    return widgets.FloatSlider(
        value=value, min=lo, max=hi, step=step, readout_format=f".{decimals}f", **common
    )


def _log_range(spec: Hyper, value: object) -> tuple[float, float]:
    """The exponents (base 10) at the ends of a log knob's slider: default/100 to
    default·100, within the spec's bounds, widened to include ``value``."""
    centre = math.log10(float(spec.default))
    lo = centre - 2 if not spec.low else max(centre - 2, math.log10(spec.low))
    hi = centre + 2 if spec.high is None else min(centre + 2, math.log10(spec.high))
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        lo, hi = min(lo, math.log10(value)), max(hi, math.log10(value))
    return lo, hi


def knob_limit(spec: Hyper, value: object = None) -> Limit | None:
    """The range of the slider ``make_knob(spec, value)`` builds, as a ``Limit`` the kernel
    clamps the browser's value into; ``None`` for a control whose values are a fixed list
    (a checkbox, a menu, an ∞-ended ``SelectionSlider``: traitlets refuses anything else)."""
    value = spec.default if value is None else value
    if spec.kind in ("bool", "choice") or spec.name in INFINITE_END:
        return None
    if spec.kind == "int":
        lo, hi, _ = knob_range(spec, value)
        return Limit(spec.name, int(lo), int(hi), integer=True)
    if spec.log and float(spec.default) > 0:
        lo, hi = _log_range(spec, value)
        return Limit(spec.name, 10.0**lo, 10.0**hi)
    lo, hi, _ = knob_range(spec, value)
    return Limit(spec.name, lo, hi)


def _stop_label(value: float) -> str:
    """The readout of one stop of an ∞-ended slider: "∞", or the number as short as it goes."""
    return "∞" if math.isinf(value) else f"{value:g}"


def _held_knob(spec: Hyper) -> str:
    """A knob the slot does not show, as HTML: ``name = default``, its meaning on hover."""
    hint = html.escape(f"{spec.meaning}; valid {spec.range_text()}", quote=True)
    text = html.escape(f"{spec.name} = {spec.default!r}")
    return f'<span title="{hint}" style="border-bottom:1px dotted">{text}</span>'


def knob_note(row: registry.Variant | None, specs: Sequence[Hyper]) -> str:
    """One small line under the knobs: what is not shown, and what the lr slider means."""
    if row is None:
        return "<small>the base optimizer alone: no ascent step, nothing to set</small>"
    parts = []
    if not row.takes_base:
        parts.append(f"lr (η) is {html.escape(row.name)}'s own learning rate")
    shown = {spec.name for spec in specs}
    rest = [spec.name for spec in row.hyperparameters if spec.name not in shown]
    rest = [name for name in rest if not (name == "lr" and not row.takes_base)]
    if rest:
        # A bare name such as "perturb_eps" is jargon to a student: each says its value, and
        # its meaning in the registry's words on hover; a lone one (SAM's guard) says it in
        # the line too, where many would not fit the column.
        spec_of = {spec.name: spec for spec in row.hyperparameters}
        names = [_held_knob(spec_of[name]) for name in rest]
        if len(rest) == 1:
            names[0] += f" ({html.escape(spec_of[rest[0]].meaning)})"
        parts.append("kept at their defaults: " + ", ".join(names))
    return f"<small>{'; '.join(parts)}</small>" if parts else ""


# The variant menu's entry for an empty slot.
NO_VARIANT = "(none)"


class VariantSlot(widgets.VBox):
    """One variant of the laboratory: a method menu and the method's knobs, built from the
    registry's specs when the method is chosen (``knob_specs``, ``make_knob``).

    ``on_change()`` is called after any change (a new method, a knob moved); ``setting()``
    is the slot as a ``VariantSetting`` (``None`` when the slot is empty).

    Args:
        index: the slot's number (0-based), shown in its label.
        method: the first method (an entry of ``methods()``) or ``NO_VARIANT``.
        colour: the colour of the slot's path, shown as a swatch by the menu.
        on_change: called with no argument after every change.
        values: the first method's hyperparameters (the rest take the registry defaults).
        width: the slot's width in pixels (its knobs take all of it but the border).
    """

    def __init__(
        self,
        index: int,
        method: str,
        colour: str,
        on_change: Callable[[], None],
        values: Mapping[str, object] | None = None,
        width: int = 245,
    ) -> None:
        options = [NO_VARIANT, *methods()]
        if method not in options:
            raise ValueError(f"method must be one of {options}, got {method!r}")
        self.index = index
        self.width = width
        self._on_change = on_change
        self.knobs: dict[str, widgets.Widget] = {}
        self.limits: dict[str, Limit] = {}  # the kernel's ranges of the knobs
        self._fixed: dict[str, object] = {}
        swatch = "━━" if index else "╍╍"  # the first slot's path is dashed
        self.swatch = widgets.HTML(
            f'<span style="color:{_css(colour)};font-size:18px;'
            f'text-shadow:0 0 2px #555">{swatch}</span>',
            layout=widgets.Layout(width="28px"),
        )
        self.menu = widgets.Dropdown(
            options=options, value=method, description=f"variant {index + 1}",
            style={"description_width": "62px"}, layout=widgets.Layout(width="205px"),
        )  # fmt: skip
        self.knob_box = widgets.VBox()
        self.note = widgets.HTML(layout=widgets.Layout(width=f"{width - 10}px"))
        self._build(method, values or {})
        self.menu.observe(self._on_method, names="value")
        super().__init__(
            [widgets.HBox([self.swatch, self.menu]), self.knob_box],
            layout=widgets.Layout(width=f"{width}px", border="1px solid #ddd", padding="2px"),
        )

    @property
    def method(self) -> str:
        """The chosen menu entry (``NO_VARIANT`` when empty)."""
        return self.menu.value

    def setting(self, notes: list[str] | None = None) -> VariantSetting | None:
        """The slot's variant and hyperparameters, or ``None`` for an empty slot.

        Each knob's value is clamped into the range the kernel gave its slider
        (``knob_limit``), whatever range the browser's copy of the slider claims; a line per
        clamped value is added to ``notes``. Raises ``ValueError`` naming the knob for a
        value that is no number (NaN).
        """
        if self.menu.value == NO_VARIANT:
            return None
        shown = {}
        for name, knob in self.knobs.items():
            value = knob.value
            limit = self.limits.get(name)
            if limit is not None:
                value, note = limit.clamp(value)
                if note is not None and notes is not None:
                    notes.append(f"variant {self.index + 1}: {note}")
            shown[name] = clean_number(value)
        return VariantSetting(self.menu.value, {**self._fixed, **shown})

    def _build(self, method: str, values: Mapping[str, object]) -> None:
        for knob in self.knobs.values():
            knob.close()  # and its comm: a browser page must not collect dead controls
        self.knobs = {}
        self.limits = {}
        self._fixed = {}
        if method == NO_VARIANT:
            self.note.value = "<small>empty: choose a method to compare</small>"
            self.knob_box.children = (self.note,)
            return
        row, _ = method_row(method)
        specs = knob_specs(method)
        names = [spec.name for spec in row.hyperparameters] if row is not None else []
        unknown = [name for name in values if name not in names]
        if unknown:
            raise ValueError(
                f"{method} has no hyperparameter {', '.join(map(repr, unknown))}; "
                f"its hyperparameters are {names}"
            )
        self.knobs = {
            spec.name: make_knob(spec, values.get(spec.name), width="80px") for spec in specs
        }
        self.limits = {
            spec.name: limit
            for spec in specs
            if (limit := knob_limit(spec, values.get(spec.name))) is not None
        }
        for knob in self.knobs.values():
            knob.layout.width = f"{self.width - 10}px"
            knob.observe(self._on_knob, names="value")
        self._fixed = {name: value for name, value in values.items() if name not in self.knobs}
        self.note.value = knob_note(row, specs)
        self.knob_box.children = (*self.knobs.values(), self.note)

    def choose(self, method: str, values: Mapping[str, object]) -> None:
        """Set the slot to ``method`` with the knob ``values`` (the rest at their defaults),
        as one change: the menu's own callback would first rebuild the knobs at defaults."""
        self.menu.unobserve(self._on_method, names="value")
        try:
            self.menu.value = method
            self._build(method, values)
        finally:
            self.menu.observe(self._on_method, names="value")
        self._on_change()

    def _on_method(self, change: dict) -> None:
        try:
            self._build(change["new"], {})
        except Exception as error:  # never raise from a callback: say it in the slot
            self.note.value = f"<small>cannot build the knobs: {html.escape(str(error))}</small>"
            self.knob_box.children = (self.note,)
        self._on_change()

    def _on_knob(self, change: dict) -> None:
        self._on_change()


def clean_number(value: object) -> object:
    """A float from a browser's slider without its binary noise: ``-0.19999999999999996``
    (``-1 + 160·0.005``) is ``-0.2``, the number the reader sees and means. Twelve significant
    digits are kept, far finer than any slider's step; anything else is returned as it is."""
    if isinstance(value, float) and math.isfinite(value):
        return float(f"{value:.12g}")
    return value


def _css(colour: str) -> str:
    """A matplotlib colour name as CSS (``tab:orange`` is not CSS)."""
    from matplotlib.colors import to_hex

    return to_hex(colour)
