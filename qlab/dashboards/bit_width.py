"""Lesson 03 dashboard: how many bits does a real weight tensor need?

The folded weights W of one layer of the pretrained ``cnn`` are quantized with min/max
parameters (``qlab.grid_stats.grid_stats``) on a b-bit signed grid, either symmetric
(z = 0, s = max|W| / (2^(b-1) - 1), narrow codes) or affine (s = (max W - min W) / (2^b - 1)).

Top: the histogram of W with one line per quantization level (when there are at most
``GRID_LINES_UP_TO`` levels) and the clipping range [r(q_min), r(q_max)]. Bottom: the
histogram of the quantized weights, a bar at each level. Readout: scale, zero-point, levels
available and used, MSE, max |error| and SQNR = 10 log10(sum W^2 / sum (W - Q(W))^2).
"""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np
import torch

from qlab.dashboards._base import Dashboard, nice_limit
from qlab.grid_stats import GridStats, grid_stats
from qlab.lesson_tensors import BIT_WIDTH_LAYER, BIT_WIDTH_MODEL, folded_weights
from qlab.viz import plot_level_counts, plot_levels, set_level_counts, set_levels

HIST_BINS = 120
GRID_LINES_UP_TO = 64  # draw one line per level up to 6 bits
BITS = (2, 8)  # the bits slider's range


def weight_limit(w: torch.Tensor, symmetric: bool) -> float:
    """Half-width of the weight axis for the tensor ``w`` under one scheme, the same for every bit width.

    It holds the float histogram and the widest grid of that scheme over :data:`BITS` (a min/max
    grid depends on min w and max w only, so each grid is that of [min w, max w]), plus 2%, from
    the :func:`nice_limit` ladder. The limits then change only with the layer and the scheme, and
    the static layer of the figure is drawn once per (layer, scheme), at build time.
    """
    ends = torch.stack([w.min(), w.max()])
    reach = max(
        max(-lo, hi)
        for bits in range(BITS[0], BITS[1] + 1)
        for lo, hi in [grid_stats(ends, bits, symmetric).q.representable_range]
    )
    return nice_limit(1.02 * reach)


class BitWidthDashboard(Dashboard):
    """Layer dropdown, bits slider (2..8) and a symmetric/affine toggle."""

    title = "Bit width: the quantization grid on a real weight histogram"
    figsize = (9.0, 4.8)

    def __init__(self) -> None:
        self.weights = {name: w.flatten() for name, w in folded_weights(BIT_WIDTH_MODEL).items()}
        self.histograms = {name: np.histogram(w.numpy(), bins=HIST_BINS) for name, w in self.weights.items()}
        self.weight_limits = {(name, sym): weight_limit(w, sym) for name, w in self.weights.items() for sym in (True, False)}
        super().__init__()
        self._keep_pictures()

    def build_controls(self) -> list[widgets.ValueWidget]:
        style = {"description_width": "initial"}
        self.layer_dropdown = widgets.Dropdown(
            options=list(self.weights), value=BIT_WIDTH_LAYER, description=f"{BIT_WIDTH_MODEL} layer", style=style
        )
        self.bits_slider = widgets.IntSlider(value=4, min=BITS[0], max=BITS[1], description="bits", style=style)
        self.symmetric_toggle = widgets.ToggleButtons(
            options=[("symmetric", True), ("affine", False)], value=True, description="scheme", style=style
        )
        return [self.layer_dropdown, self.bits_slider, self.symmetric_toggle]

    def build_figure(self) -> None:
        self.ax_w, self.ax_q = self.fig.subplots(2, 1, sharex=True)
        self.fig.subplots_adjust(left=0.1, right=0.98, top=0.84, bottom=0.11, hspace=0.3)
        counts, edges = self.histograms[BIT_WIDTH_LAYER]
        self.hist = self.ax_w.stairs(counts, edges, fill=True, color="0.7", label="float weights")
        self.grid_lines, self.clip_lines = plot_levels(self.ax_w, [])
        self.ax_w.set(ylabel="weights per bin", title="")
        self.q_bars = plot_level_counts(self.ax_q)
        self.ax_q.set(xlabel="weight value (dimensionless)", ylabel="weights per level")
        self.fig.legend(loc="upper center", ncols=4, bbox_to_anchor=(0.54, 1.0), frameon=False, fontsize=9)  # outside the data
        self.title_text = self.fig.text(0.54, 0.88, "", ha="center", fontsize=12)
        # the count axis of the levels follows the bits (about 2x per bit): only its ticks are redrawn
        self.animate(self.ax_q.yaxis, self.hist, self.grid_lines, self.clip_lines, self.q_bars, self.title_text)

    def _set_static_limits(self, layer: str, symmetric: bool) -> None:
        """The axis limits that do not depend on the bits (the levels' count axis is animated)."""
        limit = self.weight_limits[layer, symmetric]
        self.ax_w.set_xlim(-limit, limit)
        self.ax_w.set_ylim(0, nice_limit(1.05 * self.histograms[layer][0].max()))

    def _keep_pictures(self) -> None:
        """Render the static layer of every (layer, scheme) now, at build time, and the level-count
        axis of every (scheme, bit width) of the layer shown first (0.1 s; all layers' would add
        0.4 s to the build), so that the first moves draw neither."""
        for layer in self.weights:
            for symmetric in (True, False):
                self._set_static_limits(layer, symmetric)
                self.render_static_layer()
        layer = self.layer_dropdown.value
        self.keep_pictures(self._set_limits, [(layer, symmetric, self._count_limit(grid_stats(self.weights[layer], bits, symmetric)))
                                              for symmetric in (True, False) for bits in range(BITS[0], BITS[1] + 1)])

    def _set_limits(self, setting: tuple[str, bool, float]) -> None:
        """Axis limits of (layer, scheme, level-count limit)."""
        layer, symmetric, count_limit = setting
        self._set_static_limits(layer, symmetric)
        self.ax_q.set_ylim(0, count_limit)

    @staticmethod
    def _count_limit(s: GridStats) -> float:
        return nice_limit(1.05 * s.counts.max())

    def compute(self) -> tuple[str, GridStats]:
        layer, bits, symmetric = (c.value for c in self.controls)
        return layer, grid_stats(self.weights[layer], bits, symmetric)

    def redraw(self, state: tuple[str, GridStats]) -> None:
        layer, s = state
        counts, edges = self.histograms[layer]
        self.hist.set_data(counts, edges)
        levels = s.q.levels.numpy()
        set_levels(self.grid_lines, self.clip_lines, levels if len(levels) <= GRID_LINES_UP_TO else [], s.q.representable_range)
        set_level_counts(self.q_bars, levels, s.counts)
        self._set_limits((layer, s.symmetric, self._count_limit(s)))
        self.title_text.set_text(f"{layer}: {s.bits}-bit {'symmetric' if s.symmetric else 'affine'}, SQNR {s.sqnr_db:.1f} dB")

    def readout_lines(self, state: tuple[str, GridStats]) -> list[str]:
        layer, s = state
        available = s.q.qmax - s.q.qmin + 1
        lo, hi = s.q.representable_range
        return [
            f"layer: {BIT_WIDTH_MODEL} {layer} (BN folded), {s.w.numel()} weights in [{float(s.w.min()):.4f}, {float(s.w.max()):.4f}]",
            f"{s.bits} bits, {'symmetric' if s.symmetric else 'affine'}: codes [{s.q.qmin}, {s.q.qmax}], "
            f"scale = {s.q.scale:.4g}, zero-point = {s.q.zero_point}, grid [{lo:.4f}, {hi:.4f}]",
            f"levels used: {int((s.counts > 0).sum())} of {available}",
            f"MSE = {s.mse:.4g}, max |error| = {s.max_abs_error:.4g}, SQNR = {s.sqnr_db:.2f} dB",
        ]
