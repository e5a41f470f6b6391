"""The interactive explorers of SAM and its variants (ipywidgets): the public entry point.

One widget, drawn into one reusable matplotlib figure and shown as a ``widgets.Image``:

- ``Playground``: the laboratory. Up to four variants side by side on the same landscape from the
  same start (a registered function or a typed expression of x and y), ascent arrows, ρ-balls, loss
  curves, the anatomy of SAM's gradient (checkpoints), the sharpness at the end points,
  basin-of-attraction maps and exports (PNG, CSV, NPZ, a snippet that reproduces the run).
  ``make playground`` serves it with Voila on 127.0.0.1.

The code lives in ``sampy.playground`` (one module per concern: ``choices`` and
``compute`` are plain functions on plain data, ``pictures`` draws, ``controls`` and ``app``
are the widgets); this module re-exports what notebooks, the book and the tests import::

    from sampy.widgets import Playground

    Playground()  # the laboratory, as the last expression of a cell
"""

from __future__ import annotations

from sampy.playground.app import Playground, time_playground_update
from sampy.playground.choices import (
    ALIASES,
    BASES,
    HIDDEN_KNOBS,
    KNOB_KINDS,
    LOG_COLOURS,
    MAX_KNOBS,
    SGD_METHOD,
    SUGGESTED,
    knob_range,
    knob_specs,
    methods,
    plain_variants,
    suggested_start,
    two_d_function_names,
)
from sampy.playground.controls import make_knob

__all__ = [
    "ALIASES",
    "BASES",
    "HIDDEN_KNOBS",
    "KNOB_KINDS",
    "LOG_COLOURS",
    "MAX_KNOBS",
    "SGD_METHOD",
    "SUGGESTED",
    "Playground",
    "knob_range",
    "knob_specs",
    "make_knob",
    "methods",
    "plain_variants",
    "suggested_start",
    "time_playground_update",
    "two_d_function_names",
]
