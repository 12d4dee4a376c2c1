"""Plotting helpers: pure functions that draw given numbers on a given Axes.

Nothing here computes quantization; the numbers come from qlab's core modules. Each
helper labels its axes (with units), sets a title when asked, and returns the artists it
created so dashboards can update them in place (``set_data``, ``set_segments``...).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.lines import Line2D
from matplotlib.text import Annotation, Text

ArrayLike = np.ndarray | Sequence[float]

ZERO_COLOR = "tab:red"
GRID_COLOR = "tab:blue"


def plot_rounding_modes(ax: Axes, v: ArrayLike, rounded: Mapping[str, ArrayLike], title: str = "Rounding modes") -> list[Line2D]:
    """Staircases round(v) against v, one per mode, plus the identity line y = v."""
    lines = [ax.plot(v, v, color="0.6", ls="--", lw=1.0, label="exact (y = v)")[0]]
    for i, (mode, r) in enumerate(rounded.items()):
        offset = 0.04 * (i - (len(rounded) - 1) / 2)  # separate overlapping steps
        lines += ax.plot(v, np.asarray(r) + offset, lw=1.8, label=mode)
    ax.set(xlabel="value v (in steps)", ylabel="rounded value (in steps)", title=title)
    ax.legend(loc="upper left", ncols=2)
    return lines


def plot_convergence(ax: Axes, n: ArrayLike, error: ArrayLike, reference: ArrayLike, title: str) -> list[Line2D]:
    """Log-log error of an estimate against the number of samples, with a reference curve."""
    lines = ax.loglog(n, error, "o-", label="|mean of N draws - v|")
    lines += ax.loglog(n, reference, "--", color="0.4", label="std of the mean, sqrt(p(1-p)/N)")
    ax.set(xlabel="number of stochastic roundings N", ylabel="error (in steps)", title=title)
    ax.legend(loc="lower left")
    return lines


def plot_signals(
    ax: Axes, t: ArrayLike, signals: Mapping[str, ArrayLike], ylabel: str = "amplitude (mV)", title: str = "", step: bool = False
) -> list[Line2D]:
    """One line per named signal against time t (seconds).

    ``step=True`` draws every signal after the first as held samples (``steps-mid``), the
    way a quantized signal is stored.
    """
    lines = []
    for name, y in signals.items():
        kw = {"drawstyle": "steps-mid"} if step and lines else {}
        lines += ax.plot(t, y, label=name, **kw)
    ax.set(xlabel="time (s)", ylabel=ylabel, title=title)
    ax.legend(loc="upper right")
    return lines


def hlines_at(ax: Axes, levels: ArrayLike, color: str = "0.3", label: str | None = None) -> LineCollection:
    """Dashed horizontal lines across the whole x-range at ``levels`` (e.g. the clipping range)."""
    return ax.hlines(levels, 0, 1, transform=ax.get_yaxis_transform(), colors=color, linestyles="--", lw=1.0, label=label)


def vertical_segments(x: ArrayLike, y0: float, y1: float) -> list[np.ndarray]:
    """Segments [(x, y0), (x, y1)] for ``LineCollection.set_segments`` (one tick per x)."""
    return [np.array([[xi, y0], [xi, y1]]) for xi in np.asarray(x, dtype=float)]


def plot_code_ticks(ax: Axes, values: ArrayLike, height: float = 1.0) -> LineCollection:
    """One vertical tick per representable real value (the integer grid seen on the real line)."""
    lc = LineCollection(vertical_segments(values, 0.0, height), colors=GRID_COLOR, lw=1.2, label="representable values")
    ax.add_collection(lc)
    return lc


def plot_zero_point(ax: Axes, x: float, height: float = 1.0) -> Line2D:
    """Highlight the code that represents real 0 (the zero-point)."""
    return ax.plot([x, x], [0.0, height], color=ZERO_COLOR, lw=3.0, label="zero-point (real 0)")[0]


def step_bracket(ax: Axes, x0: float, x1: float, y: float, text: str) -> tuple[Annotation, Text]:
    """Double-headed arrow from x0 to x1 at height y with a label (e.g. the scale as one step)."""
    arrow = ax.annotate("", xy=(x1, y), xytext=(x0, y), arrowprops={"arrowstyle": "<->", "color": "black", "lw": 1.5})
    label = ax.text((x0 + x1) / 2, y + 0.1, text, ha="center", va="bottom", fontsize=11)
    return arrow, label


def move_bracket(bracket: tuple[Annotation, Text], x0: float, x1: float, y: float, text: str) -> None:
    """Move a :func:`step_bracket` in place."""
    arrow, label = bracket
    arrow.xy = (x1, y)
    arrow.set_position((x0, y))
    label.set_position(((x0 + x1) / 2, y + 0.1))
    label.set_text(text)
