"""Plotting helpers: pure functions that draw given numbers on a given Axes.

Nothing here computes quantization; the numbers come from qlab's core modules. Each
helper labels its axes (with units), sets a title when asked, and returns the artists it
created so dashboards can update them in place (``set_data``, ``set_segments``...).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.container import BarContainer
from matplotlib.lines import Line2D
from matplotlib.text import Annotation, Text
from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

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


def plot_convergence(
    ax: Axes, n: ArrayLike, error: ArrayLike, reference: ArrayLike, title: str, label: str = "|mean of N draws - v|"
) -> list[Line2D]:
    """Log-log error of an estimate (legend ``label``) against the number of samples, with a reference curve."""
    lines = ax.loglog(n, error, "o-", label=label)
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


# Lessons 05-06: per-layer and per-channel bars, updated in place by the dashboards -----


def bar_slots(ax: Axes, n: int, offset: float = 0.0, width: float = 0.8, **kwargs) -> BarContainer:
    """``n`` bars of height 0 at x = 0..n-1 (+ ``offset``): fill them with :func:`set_bar_heights`.

    Creating the largest number of bars once and hiding the unused ones lets a dashboard
    switch between models with different layer counts without creating artists.
    """
    return ax.bar(np.arange(n) + offset, np.zeros(n), width=width, **kwargs)


def set_bar_heights(bars: BarContainer, heights: Sequence[float | None]) -> None:
    """Set the first ``len(heights)`` bars' heights; hide the others and the ``None`` ones."""
    for i, bar in enumerate(bars):
        h = heights[i] if i < len(heights) else None
        bar.set_visible(h is not None)
        bar.set_height(0.0 if h is None else h)


def set_layer_ticks(ax: Axes, names: Sequence[str], rotation: float = 35.0) -> None:
    """Label x = 0..len(names)-1 with layer names and fit the x-range to them."""
    ax.set_xticks(np.arange(len(names)), names, rotation=rotation, ha="right", fontsize=9)
    ax.set_xlim(-0.6, len(names) - 0.4)


def plot_channel_ranges(ax: Axes, lo: ArrayLike, hi: ArrayLike, offset: float = 0.0, label: str | None = None, color: str | None = None) -> LineCollection:
    """One vertical segment [lo_c, hi_c] per output channel c (a weight range per channel)."""
    x = np.arange(len(lo)) + offset
    return ax.vlines(x, lo, hi, colors=color, lw=3.0, label=label)


# Lessons 03 and 04 ----------------------------------------------------------------------
CLIP_COLOR = "tab:red"


def plot_levels(ax: Axes, levels: ArrayLike) -> tuple[LineCollection, LineCollection]:
    """Full-height lines at the quantization levels (thin) and at the clipping range (dashed).

    The lines span the axes' height whatever its y-limits (x in data, y in axes coordinates);
    update them with :func:`set_levels`.
    """
    transform = ax.get_xaxis_transform()
    grid = LineCollection(vertical_segments(levels, 0.0, 1.0), colors=GRID_COLOR, lw=0.8, alpha=0.7,
                          transform=transform, label="quantization levels")
    clip = LineCollection([], colors=CLIP_COLOR, lw=2.0, linestyles="--", transform=transform, label="clipping range")
    ax.add_collection(grid, autolim=False)
    ax.add_collection(clip, autolim=False)
    return grid, clip


def set_levels(grid: LineCollection, clip: LineCollection, levels: ArrayLike, clip_range: tuple[float, float]) -> None:
    """Move :func:`plot_levels` lines in place (``levels`` may be empty to hide the grid)."""
    grid.set_segments(vertical_segments(levels, 0.0, 1.0))
    clip.set_segments(vertical_segments(clip_range, 0.0, 1.0))


def plot_level_counts(ax: Axes, color: str = "tab:orange") -> LineCollection:
    """Empty bar chart of counts per quantization level (one thick vertical bar per level)."""
    bars = LineCollection([], colors=color, lw=3.0, label="quantized values")
    ax.add_collection(bars, autolim=False)
    return bars


def set_level_counts(bars: LineCollection, levels: ArrayLike, counts: ArrayLike) -> None:
    """Bars of height ``counts`` at ``levels`` (in place)."""
    lv, ct = np.asarray(levels, dtype=float), np.asarray(counts, dtype=float)
    bars.set_segments([np.array([[x, 0.0], [x, c]]) for x, c in zip(lv, ct)])


def plot_sqnr_vs_bits(ax: Axes, bits: ArrayLike, curves: Mapping[str, ArrayLike], db_per_bit: float) -> list[Line2D]:
    """Measured SQNR (dB) against bit width, one line per tensor, and the 6.02 dB/bit reference."""
    b = np.asarray(bits, dtype=float)
    lines = [ax.plot(b, v, "o-", label=name)[0] for name, v in curves.items()]
    lines += ax.plot(b, db_per_bit * b, "--", color="0.4", label=f"{db_per_bit:.2f} dB x bits")
    ax.set(xlabel="bit width b (bits)", ylabel="SQNR (dB)", title="SQNR against bit width")
    ax.legend(loc="upper left")
    return lines


def plot_error_split(ax: Axes, thresholds: ArrayLike, clipping: ArrayLike, rounding: ArrayLike) -> tuple[list[Line2D], Line2D]:
    """Clipping, rounding and total MSE against the clipping threshold (log y), plus a marker.

    Returns the three lines and the marker (move it with ``marker.set_data([t], [mse])``).
    """
    t, c, r = (np.asarray(v, dtype=float) for v in (thresholds, clipping, rounding))
    lines = [
        ax.plot(t, c, color=CLIP_COLOR, label="clipping")[0],
        ax.plot(t, r, color=GRID_COLOR, label="rounding")[0],
        ax.plot(t, c + r, color="black", lw=2.2, label="total")[0],
    ]
    (marker,) = ax.plot([], [], "o", color="black", ms=9, label="at t")
    ax.set(xlabel="clipping threshold t (units of x)", ylabel="MSE (units of x)²")
    plain_log_axis(ax)
    ax.legend(loc="upper right", fontsize=9)
    return lines, marker


def plain_log_axis(ax: Axes) -> None:
    """Log y-axis with plain-text decade labels and no minor ticks (fast enough for live redraws)."""
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(numticks=5))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:.0e}"))


def plot_grouped_bars(ax: Axes, names: Sequence[str], series: Mapping[str, ArrayLike], ylabel: str, title: str = "") -> list[BarContainer]:
    """One group of bars per name (e.g. per layer), one bar per series (e.g. per granularity).

    The legend sits in one row in a band of headroom above the tallest bar, so it covers no bar.
    """
    width = 0.8 / len(series)
    bars = [
        ax.bar(np.arange(len(names)) + (i - (len(series) - 1) / 2) * width, values, width=width, label=label)
        for i, (label, values) in enumerate(series.items())
    ]
    set_layer_ticks(ax, names)
    ax.set(ylabel=ylabel, title=title)
    top = max(float(np.max(values)) for values in series.values())
    if top > 0:
        ax.set_ylim(top=1.2 * top)
    ax.legend(loc="upper center", ncols=len(series), fontsize=9)
    return bars


def plot_weights_on_grid(ax: Axes, before: torch.Tensor, after: torch.Tensor, quant_min: int, quant_max: int, title: str) -> None:
    """Histograms of weights in units of the step (w / s) before and after QAT, with the code grid.

    Integer positions are the codes (solid grey), half-integers the rounding decision
    boundaries (dotted); values beyond [quant_min, quant_max] are clipped by the quantizer.
    """
    lo, hi = quant_min - 1.5, quant_max + 1.5
    bins = torch.linspace(lo, hi, 12 * int(hi - lo) + 1).numpy()
    ax.hist(before.flatten().clamp(lo, hi).numpy(), bins=bins, color="0.6", alpha=0.7, label="FP32 (folded)")
    ax.hist(after.flatten().clamp(lo, hi).numpy(), bins=bins, color="tab:orange", alpha=0.6, label="after QAT")
    for code in range(quant_min, quant_max + 1):
        ax.axvline(code, color="0.3", lw=0.8)
        ax.axvline(code + 0.5, color="0.5", lw=0.6, ls=":")
    ax.axvline(quant_min - 0.5, color="0.5", lw=0.6, ls=":")
    ax.set_xlabel("w / s (code units; solid = codes, dotted = rounding boundaries)")
    ax.set_ylabel("number of weights")
    ax.set_title(title)
    ax.legend(frameon=False)
