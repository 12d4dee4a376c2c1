"""Lesson 01 dashboard: quantize a real-valued signal with bits, clipping range and rounding mode.

The signal x (mV) goes through a signed, narrow-range, symmetric quantizer clipped at +-c:

    scale = c / (2^(b-1) - 1),   q = clamp(round(x / scale), -(2^(b-1) - 1), 2^(b-1) - 1),
    x_hat = q * scale

(``qlab.signals.quantize_signal``; rounding from ``qlab.rounding``). The figure shows x and x_hat over time with the clipping range, and
the error x_hat - x with the +-scale/2 band that bounds round-to-nearest error inside the
range; the readout gives the step, the levels used, saturation, MSE and SQNR
(``qlab.metrics``).
"""

from __future__ import annotations

from dataclasses import dataclass

import ipywidgets as widgets
import torch
from matplotlib.ticker import MaxNLocator

from qlab import metrics
from qlab.dashboards._base import Dashboard, nice_limit, nice_limits
from qlab.rounding import ROUNDING_MODES
from qlab.signals import SAMPLE_RATE_HZ, SIGNALS, clipped_count, quantize_signal, time_axis
from qlab.viz import hlines_at, plot_signals

@dataclass(frozen=True)
class SignalState:
    """Everything the figure and readout show for one setting of the controls."""

    signal_name: str
    bits: int
    clip: float
    rounding: str
    qmin: int
    qmax: int
    scale: float
    x: torch.Tensor
    codes: torch.Tensor
    x_hat: torch.Tensor
    mse: float
    max_abs_error: float
    sqnr_db: float


class SignalQuantizerDashboard(Dashboard):
    """Sliders for bits and clipping range, dropdowns for rounding mode and signal."""

    title = "Quantizing a signal: bits, clipping range, rounding"
    figsize = (9.0, 4.8)

    def __init__(self, duration_s: float = 2.5) -> None:
        self.t = time_axis(duration_s).numpy()
        self.signals = {name: make(duration_s) for name, make in SIGNALS.items()}
        super().__init__()
        self._keep_error_axis_pictures()

    def build_controls(self) -> list[widgets.ValueWidget]:
        style = {"description_width": "initial"}
        self.signal_dropdown = widgets.Dropdown(options=list(self.signals), value="ECG-like", description="signal", style=style)
        self.bits_slider = widgets.IntSlider(value=4, min=2, max=12, description="bits", style=style)
        self.clip_slider = widgets.FloatSlider(
            value=1.0, min=0.1, max=2.0, step=0.05, description="clip ± (mV)", style=style, readout_format=".2f"
        )
        self.rounding_dropdown = widgets.Dropdown(options=list(ROUNDING_MODES), value="half_even", description="rounding", style=style)
        return [self.signal_dropdown, self.bits_slider, self.clip_slider, self.rounding_dropdown]

    def build_figure(self) -> None:
        self.ax_sig, self.ax_err = self.fig.subplots(2, 1, sharex=True)
        self.fig.subplots_adjust(left=0.1, right=0.98, top=0.84, bottom=0.1, hspace=0.3)
        x = self.signals[self.signal_dropdown.value].numpy()
        self.line_x, self.line_q = plot_signals(self.ax_sig, self.t, {"original x": x, "quantized x̂": x}, step=True)
        self.line_x.set(color="0.55", lw=2.5)
        self.line_q.set(color="tab:orange", lw=1.5)
        self.clip_lines = hlines_at(self.ax_sig, [-1.0, 1.0], label="clipping range ±c")
        self.ax_sig.set_xlabel("")
        (self.line_err,) = plot_signals(self.ax_err, self.t, {"error x̂ - x": x * 0}, ylabel="error (mV)")
        self.line_err.set_color("tab:purple")
        self.band_lines = hlines_at(self.ax_err, [-0.5, 0.5], color="tab:green", label="± scale / 2")
        for ax in (self.ax_sig, self.ax_err):
            ax.get_legend().remove()
            ax.yaxis.set_major_locator(MaxNLocator(5))
        self.ax_err.set_xlim(self.t[0], self.t[-1])
        self.fig.legend(loc="upper center", ncols=5, bbox_to_anchor=(0.55, 1.0), frameon=False)
        self.suptitle = self.fig.text(0.55, 0.89, "", ha="center", fontsize=13)
        top = 1.15 * max(self.clip_slider.max, *(float(x.abs().max()) for x in self.signals.values()))
        self.ax_sig.set_ylim(-top, top)  # fixed: holds every signal and clipping range
        # the error axis follows the step (every bits move): only its ticks are redrawn, not the static layer
        self.animate(self.ax_err.yaxis, self.line_x, self.line_q, self.line_err, self.clip_lines, self.band_lines, self.suptitle)

    def compute(self) -> SignalState:
        return self._state(*(c.value for c in self.controls))

    def _state(self, name: str, bits: int, clip: float, mode: str) -> SignalState:
        x = self.signals[name]
        q = quantize_signal(x, bits, clip, mode)
        return SignalState(
            name, bits, clip, mode, q.qmin, q.qmax, q.scale, x, q.codes, q.x_hat,
            metrics.mse(x, q.x_hat), metrics.max_abs_error(x, q.x_hat), metrics.sqnr_db(x, q.x_hat),
        )

    def redraw(self, s: SignalState) -> None:
        x, x_hat = s.x.numpy(), s.x_hat.numpy()
        self.line_x.set_ydata(x)
        self.line_q.set_ydata(x_hat)
        self.line_err.set_ydata(x_hat - x)
        self.clip_lines.set_segments([[(0, -s.clip), (1, -s.clip)], [(0, s.clip), (1, s.clip)]])
        self.band_lines.set_segments([[(0, -s.scale / 2), (1, -s.scale / 2)], [(0, s.scale / 2), (1, s.scale / 2)]])
        self._set_error_limit(self._error_limit(s))
        self.suptitle.set_text(f"{s.bits} bits, {s.rounding} rounding, clip ±{s.clip:.2f} mV: SQNR {s.sqnr_db:.1f} dB")

    @staticmethod
    def _error_limit(s: SignalState) -> float:
        return nice_limit(1.1 * max(s.max_abs_error, s.scale / 2))

    def _set_error_limit(self, top: float) -> None:
        self.ax_err.set_ylim(-top, top)

    def _keep_error_axis_pictures(self) -> None:
        """Render the error axis of every limit a setting can reach now, at build time. The limits
        run from the finest step (most bits, narrowest clip) to the largest error, which the
        corners of the bits x clip square reach (clipping error at the narrowest clip, rounding
        error at the coarsest step)."""
        corners = [self._state(name, bits, clip, mode) for name in self.signals for mode in ROUNDING_MODES
                   for bits in (self.bits_slider.min, self.bits_slider.max) for clip in (self.clip_slider.min, self.clip_slider.max)]
        low = min(1.1 * s.scale / 2 for s in corners)
        self.keep_pictures(self._set_error_limit, nice_limits(low, max(self._error_limit(s) for s in corners)))

    def readout_lines(self, s: SignalState) -> list[str]:
        clipped = clipped_count(s.x, s.clip)
        used = int(torch.unique(s.codes).numel())
        n = s.x.numel()
        return [
            f"signal: {s.signal_name}, {n} samples at {SAMPLE_RATE_HZ:.0f} Hz, "
            f"range [{float(s.x.min()):.3f}, {float(s.x.max()):.3f}] mV",
            f"bits = {s.bits}, clip = ±{s.clip:.2f} mV, rounding = {s.rounding}",
            f"codes [{s.qmin}, {s.qmax}] ({s.qmax - s.qmin + 1} levels, {used} used), scale = {s.scale:.4g} mV per step",
            f"samples clipped (|x| > clip): {clipped} ({100 * clipped / n:.1f}%)",
            f"MSE = {s.mse:.4g} mV^2, max |error| = {s.max_abs_error:.4g} mV, SQNR = {s.sqnr_db:.2f} dB",
        ]
