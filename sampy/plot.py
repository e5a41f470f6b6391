"""Matplotlib drawings of landscapes and trajectories, shared by the book and the playground.

Every function draws into an ``Axes`` it is given (or a new one) and returns the artists it
made, so a widget can update those artists instead of rebuilding the figure.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

try:
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation
    from matplotlib.axes import Axes
    from matplotlib.colors import LogNorm, Normalize
    from matplotlib.figure import Figure
except ImportError as error:  # `pip install sampy` is the optimizers only
    raise ImportError(
        "sampy.plot draws with matplotlib, which the optimizer-only install leaves out: "
        "install the book's packages with pip install 'sampy[book]'"
    ) from error

from sampy.functions import TestFunction
from sampy.run import Trajectory


def grid(f: TestFunction, resolution: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(X, Y, Z)`` of a 2-D function on its plotting domain, one vectorised evaluation."""
    if f.dim != 2:
        raise ValueError(f"f must be 2-dimensional to draw its landscape, got dim={f.dim}")
    (x0, x1), (y0, y1) = f.domain
    X, Y = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
    Z = np.asarray(f(np.stack([X, Y], axis=-1)), dtype=float)
    return X, Y, Z


def landscape(
    f: TestFunction,
    ax: Axes | None = None,
    *,
    resolution: int = 200,
    levels: int = 30,
    log: bool = False,
    cmap: str = "viridis",
    mark_minima: bool = True,
    colorbar: bool = False,
):
    """Filled contours of ``f`` over its domain, with its known minima marked.

    ``log=True`` colours by ``log(f − fmin + δ)``, which separates the levels near a minimum
    (valleys such as Rosenbrock's are otherwise one colour).
    """
    ax = ax if ax is not None else plt.subplots(figsize=(5, 4))[1]
    X, Y, Z = grid(f, resolution)
    if log:
        floor = np.nanmin(Z) if not np.isfinite(f.fmin) else f.fmin
        # δ = 1e-6 of the range keeps log finite at the minimum and still resolves the valley.
        shifted = Z - floor + 1e-6 * max(1.0, float(np.nanmax(Z) - floor))
        norm = LogNorm(vmin=float(np.nanmin(shifted)), vmax=float(np.nanmax(shifted)))
        contours = ax.contourf(
            X, Y, shifted, levels=np.geomspace(norm.vmin, norm.vmax, levels), norm=norm, cmap=cmap
        )
    else:
        norm = Normalize(vmin=float(np.nanmin(Z)), vmax=float(np.nanmax(Z)))
        contours = ax.contourf(X, Y, Z, levels=levels, norm=norm, cmap=cmap)
    if mark_minima and len(f.minima):
        ax.plot(f.minima[:, 0], f.minima[:, 1], "w*", markersize=11, markeredgecolor="k")
        for label, point in zip(f.minima_labels, f.minima, strict=False):
            ax.annotate(label, point, textcoords="offset points", xytext=(6, 6), color="w")
    if colorbar:
        ax.figure.colorbar(contours, ax=ax)
    ax.set_xlim(*f.domain[0])
    ax.set_ylim(*f.domain[1])
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    return contours


def trajectories(
    traj: Trajectory | np.ndarray,
    ax: Axes,
    *,
    color: str | None = None,
    label: str | None = None,
    max_paths: int = 50,
    linewidth: float = 1.5,
) -> list:
    """Draw the paths of a run (at most ``max_paths`` start points) with start and end marks.

    Returns the artists: one line per path plus one scatter of end points, so callers can
    ``set_data`` them later. The label goes on the first path only.
    """
    xs = traj.xs if isinstance(traj, Trajectory) else np.asarray(traj)
    paths = xs.reshape(xs.shape[0], -1, xs.shape[-1])[:, :max_paths]
    artists = []
    for i in range(paths.shape[1]):
        (line,) = ax.plot(
            paths[:, i, 0],
            paths[:, i, 1],
            "-",
            color=color,
            linewidth=linewidth,
            label=label if i == 0 else None,
        )
        color = line.get_color()
        artists.append(line)
    artists.append(ax.scatter(paths[0, :, 0], paths[0, :, 1], s=18, color=color, marker="o"))
    artists.append(
        ax.scatter(paths[-1, :, 0], paths[-1, :, 1], s=50, color=color, marker="X", edgecolor="k")
    )
    return artists


_FONT_AWESOME_LINK = re.compile(r"<link[^>]*font-awesome[^>]*>\s*", re.IGNORECASE)


def animation_html(anim, default_mode: str = "once") -> str:
    """A kernel-free player (matplotlib's ``to_jshtml``) with no request leaving the page.

    matplotlib's player links Font Awesome from a CDN for its button icons; the book's theme
    already ships Font Awesome, so the link is dropped to keep the page fully offline.
    """
    return _FONT_AWESOME_LINK.sub("", anim.to_jshtml(default_mode=default_mode))


def path_animation(
    f: TestFunction,
    paths: np.ndarray,
    *,
    fixed: np.ndarray | None = None,
    titles: Sequence[str] | None = None,
    labels: tuple[str, str] = ("fixed", "moving"),
    figsize: tuple[float, float] = (5.6, 3.0),
    dpi: int = 75,
    interval: int = 700,
    levels: int = 15,
    log: bool = False,
) -> FuncAnimation:
    """A ``FuncAnimation`` whose frame ``i`` draws the path ``paths[:, i]`` over ``f``.

    Made for sweeps: run one vectorised ``sampy.run`` with one setting per start point (for
    example ``rho`` as an array) and animate over the settings; ``fixed`` (a path of shape
    ``(steps + 1, 2)``, e.g. plain gradient descent) is drawn in every frame for comparison.
    Pass the result to ``animation_html`` for a player that works without a kernel.

    The figure is a bare ``matplotlib.figure.Figure``, not a pyplot one, so a notebook does
    not also show the last frame as a stray static image. Its PNG frames are inlined in the
    page: keep ``figsize``, ``dpi`` and the number of frames small.
    """
    paths = np.asarray(paths, dtype=float)
    if paths.ndim != 3 or paths.shape[-1] != 2:
        raise ValueError(f"paths must have shape (steps + 1, frames, 2), got {paths.shape}")
    frames = paths.shape[1]
    if titles is not None and len(titles) != frames:
        raise ValueError(f"titles must have one entry per frame ({frames}), got {len(titles)}")

    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    ax = fig.add_subplot()
    # Few contour levels: large flat colour areas compress well, and every frame is inlined.
    landscape(f, ax, resolution=150, levels=levels, log=log)
    if fixed is not None:
        fixed = np.asarray(fixed, dtype=float)
        ax.plot(fixed[:, 0], fixed[:, 1], "--", color="white", linewidth=1.5, label=labels[0])
        ax.plot(*fixed[-1], "X", color="white", markeredgecolor="k", markersize=8)
    (line,) = ax.plot([], [], "-", color="tab:orange", linewidth=2, label=labels[1])
    (end,) = ax.plot([], [], "X", color="tab:orange", markeredgecolor="k", markersize=9)
    ax.plot(*paths[0, 0], "o", color="white", markeredgecolor="k", markersize=6)
    ax.legend(loc="upper right", fontsize=8, facecolor="0.6")
    title = ax.set_title("", fontsize=10)

    def draw(i: int) -> list:
        line.set_data(paths[:, i, 0], paths[:, i, 1])
        end.set_data(paths[-1:, i, 0], paths[-1:, i, 1])
        title.set_text(titles[i] if titles is not None else f"frame {i}")
        return [line, end, title]

    return FuncAnimation(fig, draw, frames=frames, interval=interval, blit=False)
