"""Clicking on the landscape to set the start point.

``ipywidgets.Image`` sends no mouse events to the kernel. Two ways around it, behind one
adapter (``attach_clicks``), both ending in the same pure mapping from an image pixel to data
coordinates (``pixel_to_data``, tested on its own):

- ``ipyevents`` (when installed): an ``Event`` on the image reports each click's pixel in the
  image's own array coordinates (``arrayX``/``arrayY``), whatever size the browser shows it
  at. Exact to the pixel. Not a dependency of sampy yet: with it installed, it is used.
- ``ClickGrid`` (always available, plain ipywidgets): a grid of transparent buttons laid
  over the landscape axes, in the same CSS grid cell as the image; a click on a cell sets
  the start to that cell's centre. It needs no JavaScript of its own and works in Jupyter
  and Voila; its resolution is the grid's (the start sliders then fine-tune). All buttons
  share one ``Layout`` and one ``ButtonStyle``, so the page holds one model per cell only.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping

import ipywidgets as widgets

Box = tuple[float, float, float, float]  # (left, top, right, bottom) in image pixels
Limits = tuple[tuple[float, float], tuple[float, float]]  # ((x_lo, x_hi), (y_lo, y_hi))


def pixel_to_data(
    px: float, py: float, box: Box, limits: Limits, scale: tuple[float, float] = (1.0, 1.0)
) -> tuple[float, float] | None:
    """Data coordinates of the image pixel ``(px, py)`` (origin top-left, y down), or
    ``None`` outside the axes ``box``.

    ``scale`` converts the pixel as the browser reports it to the PNG's own pixels, when the
    image is shown at another size (``natural width / shown width``, same for the height).
    The axes' y runs up, the image's y runs down: the top edge of ``box`` is ``y_hi``.
    """
    px, py = px * scale[0], py * scale[1]
    left, top, right, bottom = box
    if not (left <= px <= right and top <= py <= bottom) or right <= left or bottom <= top:
        return None
    (x_lo, x_hi), (y_lo, y_hi) = limits
    x = x_lo + (px - left) / (right - left) * (x_hi - x_lo)
    y = y_hi - (py - top) / (bottom - top) * (y_hi - y_lo)
    return float(x), float(y)


def data_to_pixel(x: float, y: float, box: Box, limits: Limits) -> tuple[float, float]:
    """The inverse of ``pixel_to_data`` (for tests and for placing things on the image)."""
    left, top, right, bottom = box
    (x_lo, x_hi), (y_lo, y_hi) = limits
    return (
        left + (x - x_lo) / (x_hi - x_lo) * (right - left),
        top + (y_hi - y) / (y_hi - y_lo) * (bottom - top),
    )


def event_pixel(event: Mapping[str, object], natural: tuple[int, int]) -> tuple[float, float]:
    """The PNG pixel of an ipyevents click on the image.

    ipyevents gives ``arrayX``/``arrayY`` (already in the image's own pixels) for an Image
    source; otherwise ``relativeX``/``relativeY`` in shown pixels, rescaled by the shown size
    ``boundingRectWidth``/``boundingRectHeight``.
    """
    if "arrayX" in event and "arrayY" in event:
        return float(event["arrayX"]), float(event["arrayY"])
    width = float(event.get("boundingRectWidth") or natural[0])
    height = float(event.get("boundingRectHeight") or natural[1])
    return (
        float(event["relativeX"]) * natural[0] / width,
        float(event["relativeY"]) * natural[1] / height,
    )


def cell_centres(nx: int, ny: int, box: Box) -> list[tuple[float, float]]:
    """The image pixel at the centre of each cell of an ``nx × ny`` grid over ``box``, row by
    row from the top-left (the order of ``ClickGrid``'s buttons)."""
    left, top, right, bottom = box
    w, h = (right - left) / nx, (bottom - top) / ny
    return [(left + (i + 0.5) * w, top + (j + 0.5) * h) for j in range(ny) for i in range(nx)]


class ClickGrid(widgets.GridBox):
    """Transparent buttons over the landscape axes: a click picks the cell's centre.

    Place it in the same grid cell as the image (``stack``): it is sized in ``fr`` units
    from the image's own pixel box, so it follows the image when the browser shrinks it.

    Args:
        image_size: ``(width, height)`` of the PNG in pixels.
        box: the landscape axes in image pixels (``LabPicture.pixel_box()``).
        on_pixel: called with the PNG pixel ``(px, py)`` of the clicked cell's centre.
        nx, ny: cells across and down.
    """

    def __init__(
        self,
        image_size: tuple[int, int],
        box: Box,
        on_pixel: Callable[[float, float], None],
        nx: int = 16,
        ny: int = 10,
    ) -> None:
        self.nx, self.ny, self.image_size = nx, ny, image_size
        self._on_pixel = on_pixel
        # One Layout and one ButtonStyle for every cell: a model each, not one per button.
        cell_layout = widgets.Layout(width="auto", height="100%", min_height="0", min_width="0",
                                     margin="0", padding="0", overflow="hidden")  # fmt: skip
        # font size 0: an empty button is then 0 px tall on its own, so the grid takes the
        # image's height instead of pushing the cell taller with its rows of buttons.
        cell_style = widgets.ButtonStyle(button_color="transparent", font_size="0px")
        self.buttons = []
        for k in range(nx * ny):
            button = widgets.Button(
                description="", tooltip="click: start here", layout=cell_layout,
                style=cell_style,
            )  # fmt: skip
            button.on_click(lambda _button, k=k: self.click(k))
            self.buttons.append(button)
        super().__init__(
            self.buttons,
            layout=widgets.Layout(
                grid_area="stack", grid_template_columns=f"repeat({nx}, minmax(0, 1fr))",
                grid_template_rows=f"repeat({ny}, minmax(0, 1fr))", grid_gap="0px",
                width="auto", height="0px", min_height="100%", margin="0",
            ),
        )  # fmt: skip
        self.box: Box = (0.0, 0.0, 0.0, 0.0)
        self.set_box(box)
        self.add_class("sampy-click-grid")

    def set_box(self, box: Box) -> None:
        """Lay the grid over new axes (a landscape of another shape): its cells and padding."""
        if tuple(box) == self.box:
            return
        width, height = self.image_size
        left, top, right, bottom = box
        self.box = tuple(box)
        self.centres = cell_centres(self.nx, self.ny, box)
        # The margins around the axes as padding: CSS resolves a percentage padding against
        # the width, on every side, and the image keeps its aspect ratio when it is shrunk,
        # so these percentages stay on the axes at any size.
        self.layout.padding = " ".join(
            f"{100 * v / width:.3f}%" for v in (top, width - right, height - bottom, left)
        )

    def click(self, k: int) -> None:
        """What a click on cell ``k`` does (the buttons call it; tests may too)."""
        self._on_pixel(*self.centres[k])

    def show(self, visible: bool) -> None:
        """Show or hide the grid (hidden in the 3-D view, where a pixel is no (x, y))."""
        self.layout.display = None if visible else "none"


class EventClicks:
    """Clicks on the image through ``ipyevents`` (exact pixels), when it is installed."""

    def __init__(
        self,
        image: widgets.Image,
        natural: Callable[[], tuple[int, int]],
        on_pixel: Callable[[float, float], None],
    ) -> None:
        from ipyevents import Event  # optional: see the module docstring

        self._natural = natural
        self._on_pixel = on_pixel
        self.visible = True
        self.event = Event(source=image, watched_events=["click"])
        self.event.on_dom_event(self.handle)

    def handle(self, event: Mapping[str, object]) -> None:
        """One DOM event from the browser (tests call it with a dict)."""
        if self.visible and event.get("type", "click") == "click":
            self._on_pixel(*event_pixel(event, self._natural()))

    def show(self, visible: bool) -> None:
        """Listen (``True``) or ignore clicks (the 3-D view)."""
        self.visible = visible


def ipyevents_available() -> bool:
    """True when the optional ``ipyevents`` package is installed."""
    return importlib.util.find_spec("ipyevents") is not None
