"""Lesson 04 dashboard: where to clip? Clipping error against rounding error on real tensors.

Two real tensors of the pretrained ``cnn``: the folded weights of ``block2_conv`` (signed,
symmetric grid on [-t, t]) and the input activations of the classifier ``fc`` on the
calibration images (post-ReLU, long-tailed; unsigned affine grid on [0, t]). The threshold
is t = f * max|x| for the slider's fraction f.

``qlab.sweeps.clip_rounding_error`` splits the fake-quantization MSE into

    clipping = (1/N) sum_{x_i beyond t} (Q(x_i) - x_i)^2,   rounding = (1/N) sum_{x_i inside} (Q(x_i) - x_i)^2.

The split curve is computed once per tensor and bit width, at every slider position, in
``__init__``; moving the slider only moves markers. Top: the |x| histogram (log counts)
with t, the 99.99th percentile of |x| and the sweet spot. Bottom: the three MSE curves
against t with the current point, on a log axis floored a decade below the sweep's smallest
total MSE (a clipping error below that floor is negligible next to the rounding error).

Everything but the threshold line and the marker depends only on (tensor, bits), so it is
part of the cached static layer (:meth:`RangeChoiceDashboard.background_key`). The four static
layers are rendered at build time, so no control move redraws one (a tensor or bits change that
drew its layer in full took about twice as long as the other moves).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

import ipywidgets as widgets
import numpy as np

from qlab.dashboards._base import Dashboard
from qlab.grid_stats import RangeSweep, range_sweep
from qlab.lesson_tensors import BIT_WIDTH_LAYER, BIT_WIDTH_MODEL, TAIL_LAYER, bell_weights, tail_activations
from qlab.sweeps import SplitCurve, threshold_range
from qlab.viz import CLIP_COLOR, plain_log_axis, plot_error_split, vertical_segments

FRACTIONS = np.arange(2, 51) / 50  # slider positions: t = f * max|x|, f = 0.04, 0.06, ... 1.00
BITS_OPTIONS = (4, 8)
PERCENTILE = 99.99
HIST_BINS = 100


@dataclass(frozen=True)
class RangeState:
    """One point of a precomputed split curve."""

    tensor: RangeSweep
    bits: int
    index: int

    @property
    def curve(self) -> SplitCurve:
        return self.tensor.curves[self.bits]

    @property
    def threshold(self) -> float:
        return float(self.curve.thresholds[self.index])


class RangeChoiceDashboard(Dashboard):
    """Tensor dropdown, bits toggle and a clipping-threshold slider (fraction of max|x|)."""

    title = "Range choice: clipping error against rounding error"
    figsize = (9.0, 4.4)

    def __init__(self) -> None:
        tensors = {
            f"weights of {BIT_WIDTH_MODEL} {BIT_WIDTH_LAYER}": (bell_weights(), True),
            f"input activations of {BIT_WIDTH_MODEL} {TAIL_LAYER}": (tail_activations(), False),
        }
        self.tensors = {
            name: range_sweep(name, x, signed, FRACTIONS, BITS_OPTIONS, PERCENTILE, HIST_BINS)
            for name, (x, signed) in tensors.items()
        }
        super().__init__()
        self._keep_every_static_layer()

    def build_controls(self) -> list[widgets.ValueWidget]:
        style = {"description_width": "initial"}
        self.tensor_dropdown = widgets.Dropdown(options=list(self.tensors), description="tensor", style=style)
        self.bits_toggle = widgets.ToggleButtons(options=list(BITS_OPTIONS), value=BITS_OPTIONS[0], description="bits", style=style)
        self.threshold_slider = widgets.FloatSlider(
            value=1.0, min=FRACTIONS[0], max=FRACTIONS[-1], step=0.02, description="clip at t = f x max|x|, f",
            style=style, readout_format=".2f", layout=widgets.Layout(width="480px"),
        )
        return [self.tensor_dropdown, self.bits_toggle, self.threshold_slider]

    def build_figure(self) -> None:
        self.ax_h, self.ax_e = self.fig.subplots(2, 1, sharex=True)
        self.fig.subplots_adjust(left=0.09, right=0.78, top=0.92, bottom=0.11, hspace=0.12)
        first = next(iter(self.tensors.values()))
        counts, edges = first.hist
        self.hist = self.ax_h.stairs(counts, edges, fill=True, color="0.7", label="|x|")
        self.ax_h.set(ylabel="count per bin")
        plain_log_axis(self.ax_h)
        transform = self.ax_h.get_xaxis_transform()
        (self.t_line,) = self.ax_h.plot([], [], color=CLIP_COLOR, lw=2.2, transform=transform, label="threshold t")
        (self.p_line,) = self.ax_h.plot([], [], color="tab:green", ls=":", lw=2, transform=transform, label=f"p{PERCENTILE} of |x|")
        (self.best_line,) = self.ax_h.plot([], [], color="black", ls="--", lw=1.2, transform=transform, label="sweet spot")
        self.ax_h.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)  # outside the data
        curve = first.curves[BITS_OPTIONS[0]]
        (self.clip_curve, self.round_curve, self.total_curve), self.marker = plot_error_split(
            self.ax_e, curve.thresholds, curve.clipping, curve.rounding
        )
        self.ax_e.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
        self.title_text = self.ax_h.set_title("", fontsize=12)
        self.sweep_shown: tuple[str, int] | None = None
        self.animate(self.t_line, self.marker)

    def background_key(self) -> Hashable:
        """The static layer shows one (tensor, bits) sweep: histogram, curves, percentile, sweet spot."""
        return self.sweep_shown

    def _show_sweep(self, tensor: RangeSweep, bits: int) -> None:
        """Set the static artists and limits to the sweep of ``tensor`` at ``bits``."""
        curve = tensor.curves[bits]
        counts, edges = tensor.hist
        self.hist.set_data(counts, edges)
        self.ax_h.set_ylim(0.5, 2 * counts.max())
        self.ax_e.set_xlim(0.0, 1.02 * tensor.amax)
        for line, x in ((self.p_line, tensor.percentile), (self.best_line, curve.thresholds[curve.best])):
            line.set_data(*vertical_segments([x], 0.0, 1.0)[0].T)
        self.clip_curve.set_data(curve.thresholds, curve.clipping)
        self.round_curve.set_data(curve.thresholds, curve.rounding)
        self.total_curve.set_data(curve.thresholds, curve.total)
        self.ax_e.set_ylim(0.1 * curve.total.min(), 2 * curve.total.max())
        self.title_text.set_text(f"{tensor.name}, {bits} bits")
        self.sweep_shown = (tensor.name, bits)

    def _keep_every_static_layer(self) -> None:
        """Render the static layer of every (tensor, bits) now, at build time, so that no control
        move redraws it later (4 layers, within ``BACKGROUNDS_KEPT``); sends nothing."""
        self.keep_pictures(lambda setting: self._show_sweep(*setting),
                           [(tensor, bits) for tensor in self.tensors.values() for bits in BITS_OPTIONS])

    def compute(self) -> RangeState:
        name, bits, fraction = (c.value for c in self.controls)
        index = int(np.argmin(np.abs(FRACTIONS - fraction)))
        return RangeState(self.tensors[name], bits, index)

    def redraw(self, s: RangeState) -> None:
        if self.sweep_shown != (s.tensor.name, s.bits):
            self._show_sweep(s.tensor, s.bits)
        self.t_line.set_data(*vertical_segments([s.threshold], 0.0, 1.0)[0].T)
        self.marker.set_data([s.threshold], [s.curve.total[s.index]])

    def readout_lines(self, s: RangeState) -> list[str]:
        tensor, curve, i = s.tensor, s.curve, s.index
        lo, hi = threshold_range(s.threshold, tensor.signed)
        grid = "signed symmetric" if tensor.signed else "unsigned affine"
        best = curve.best
        return [
            f"tensor: {tensor.name}, {tensor.x.numel()} values",
            f"max |x| = {tensor.amax:.4g}, {PERCENTILE}th percentile of |x| = {tensor.percentile:.4g} "
            f"(max is {tensor.amax / tensor.percentile:.2f}x larger)",
            f"{s.bits}-bit {grid} grid on [{lo:.4g}, {hi:.4g}]: t = {FRACTIONS[i]:.2f} x max|x| = {s.threshold:.4g}",
            f"values clipped: {100 * curve.clipped_fraction[i]:.3f}%",
            f"MSE: clipping = {curve.clipping[i]:.4g}, rounding = {curve.rounding[i]:.4g}, total = {curve.total[i]:.4g}",
            f"sweet spot: t = {FRACTIONS[best]:.2f} x max|x| = {curve.thresholds[best]:.4g}, total MSE = {curve.total[best]:.4g}",
        ]
