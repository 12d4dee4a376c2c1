"""Lesson 02 dashboard: the integer grid of a quantizer laid onto the real line.

For a clipping range [min, max], bit width b, symmetric/affine and signed/unsigned,
``qlab.affine.qparams_from_range`` gives (scale, zero_point) and every code q in
[qmin, qmax] represents the real value

    r(q) = (q - zero_point) * scale          (``qlab.affine.dequantize``)

Top: the quantizer's transfer function x -> q (``qlab.affine.quantize``) with the
zero-point as a horizontal line. Bottom: one tick per representable real value, the
zero-point's tick (always at real 0) highlighted, one step labelled "scale", and the
requested range shaded.
"""

from __future__ import annotations

import ipywidgets as widgets
from matplotlib.ticker import MaxNLocator

from qlab.affine import CONVENTIONS
from qlab.dashboards._base import Dashboard, nice_limit
from qlab.quantizer import GridState, QuantSpec, quantizer_grid
from qlab.viz import ZERO_COLOR, move_bracket, plot_code_ticks, plot_zero_point, step_bracket, vertical_segments

BRACKET_Y = 1.2
LABEL_CODES_UP_TO_BITS = 4  # bottom axis names every code when there are at most 16


class ScaleZeroPointDashboard(Dashboard):
    """Range, bits, symmetric/signed toggles and the symmetric convention."""

    title = "Scale and zero-point: the integer grid on the real line"
    figsize = (9.0, 4.4)

    def __init__(self) -> None:
        super().__init__()
        self._keep_axis_pictures()

    def build_controls(self) -> list[widgets.ValueWidget]:
        style = {"description_width": "initial"}
        self.range_slider = widgets.FloatRangeSlider(
            value=(-1.0, 3.0), min=-10.0, max=10.0, step=0.1, description="range [min, max]", style=style, readout_format=".1f",
            layout=widgets.Layout(width="560px"),  # 200 steps: a short track collapses the two handles
        )
        self.bits_slider = widgets.IntSlider(value=3, min=2, max=8, description="bits", style=style)
        self.symmetric_toggle = widgets.Checkbox(value=False, description="symmetric", indent=False)
        self.signed_toggle = widgets.Checkbox(value=False, description="signed", indent=False)
        self.convention_dropdown = widgets.Dropdown(
            options=list(CONVENTIONS), value="textbook", description="symmetric convention", style=style
        )
        return [self.range_slider, self.bits_slider, self.symmetric_toggle, self.signed_toggle, self.convention_dropdown]

    def build_figure(self) -> None:
        self.ax_q, self.ax_r = self.fig.subplots(2, 1, sharex=True, height_ratios=(2.2, 1))
        self.fig.subplots_adjust(left=0.1, right=0.98, top=0.84, bottom=0.12, hspace=0.15)
        (self.transfer,) = self.ax_q.plot([], [], color="tab:blue", lw=2, label="code q = quantize(x)")
        self.zp_hline = self.ax_q.axhline(0, color=ZERO_COLOR, ls="--", lw=1.2, label="zero-point")
        self.range_span_q = self.ax_q.axvspan(0, 1, color="0.85", label="requested [min, max]")
        self.ax_q.set(ylabel="integer code q")
        self.ax_q.yaxis.set_major_locator(MaxNLocator(8, integer=True))
        self.fig.legend(loc="upper center", ncols=3, bbox_to_anchor=(0.54, 1.0), frameon=False)  # outside the data
        self.ticks = plot_code_ticks(self.ax_r, [])
        self.zero_tick = plot_zero_point(self.ax_r, 0.0)
        self.range_span_r = self.ax_r.axvspan(0, 1, color="0.85")
        self.bracket = step_bracket(self.ax_r, 0.0, 1.0, BRACKET_Y, "scale")
        self.code_labels = [self.ax_r.text(0, -0.35, "", ha="center", va="top", fontsize=10) for _ in range(2 ** LABEL_CODES_UP_TO_BITS)]
        self.ax_r.set(ylim=(-0.9, 1.9), yticks=[], xlabel="real value x (same units as the data)")
        self.ax_r.grid(False)
        self.title_text = self.fig.text(0.54, 0.87, "", ha="center", fontsize=12)
        # the real axis follows the range and the code axis bits and signedness: only their ticks
        # are redrawn on each update, over a static layer that never changes
        self.animate(self.ax_q.xaxis, self.ax_r.xaxis, self.ax_q.yaxis, self.transfer, self.zp_hline, self.range_span_q, self.range_span_r, self.ticks, self.zero_tick,
                     *self.bracket, *self.code_labels, self.title_text)

    def compute(self) -> GridState:
        (lo, hi), bits, symmetric, signed, convention = (c.value for c in self.controls)
        return quantizer_grid(lo, hi, QuantSpec(bits, signed, symmetric, convention=convention))

    def redraw(self, s: GridState) -> None:
        self.transfer.set_data(s.x.numpy(), s.q.numpy())
        self.zp_hline.set_ydata([s.zero_point, s.zero_point])
        for span in (self.range_span_q, self.range_span_r):
            span.set_x(s.lo)
            span.set_width(s.hi - s.lo)
        self.ticks.set_segments(vertical_segments(s.grid.numpy(), 0.0, 1.0))
        step_from = s.zero_point if s.zero_point < s.qmax else s.zero_point - 1
        x0 = float(s.grid[step_from - s.qmin])
        move_bracket(self.bracket, x0, x0 + s.scale, BRACKET_Y, f"scale = {s.scale:.3g}")
        self._label_codes(s)
        self._set_limits(self._limits(s))
        kind = "symmetric" if s.symmetric else "affine"
        self.title_text.set_text(
            f"{s.bits}-bit {'signed' if s.signed else 'unsigned'} {kind}: scale {s.scale:.4g}, zero-point {s.zero_point}"
        )

    @staticmethod
    def _limits(s: GridState) -> tuple[tuple[float, float], tuple[float, float]]:
        """(real axis, code axis) limits; x[0] < 0 < x[-1]."""
        return (-nice_limit(-float(s.x[0])), nice_limit(float(s.x[-1]))), (s.qmin - 0.5, s.qmax + 0.5)

    def _set_limits(self, limits: tuple[tuple[float, float], tuple[float, float]]) -> None:
        self.ax_q.set_xlim(*limits[0])
        self.ax_q.set_ylim(*limits[1])

    def _keep_axis_pictures(self) -> None:
        """Render the axes of every bits x scheme x sign x convention setting at the initial range
        now, at build time, so that those moves copy them (a range move that reaches a new axis
        limit still lays that axis out)."""
        lo, hi = self.range_slider.value
        specs = [QuantSpec(bits, signed, symmetric, convention=convention)
                 for bits in range(self.bits_slider.min, self.bits_slider.max + 1)
                 for symmetric in (False, True) for signed in (False, True) for convention in CONVENTIONS]
        self.keep_pictures(self._set_limits, sorted({self._limits(quantizer_grid(lo, hi, spec)) for spec in specs}))

    def _label_codes(self, s: GridState) -> None:
        """Name every code when there are few; otherwise only qmin, the zero-point and qmax."""
        codes = list(range(s.qmin, s.qmax + 1))
        if len(codes) > len(self.code_labels):
            codes = sorted({s.qmin, s.zero_point, s.qmax})
        for i, label in enumerate(self.code_labels):
            if i < len(codes):
                label.set_position((float(s.grid[codes[i] - s.qmin]), -0.15))
                label.set_text(str(codes[i]))
                label.set_color(ZERO_COLOR if codes[i] == s.zero_point else "black")
            else:
                label.set_text("")

    def readout_lines(self, s: GridState) -> list[str]:
        kind = f"symmetric ({s.convention} convention)" if s.symmetric else "affine (asymmetric)"
        return [
            f"range [min, max] = [{s.lo:.2f}, {s.hi:.2f}], widened to include 0: "
            f"[{min(s.lo, 0.0):.2f}, {max(s.hi, 0.0):.2f}]",
            f"{s.bits} bits, {'signed' if s.signed else 'unsigned'}, {kind}",
            f"codes [qmin, qmax] = [{s.qmin}, {s.qmax}] ({s.qmax - s.qmin + 1} codes)",
            f"scale = {s.scale:.6g} (one step, in real units)",
            f"zero_point = {s.zero_point} (real 0 -> code {s.zero_point} exactly)",
            f"representable reals: [{float(s.grid[0]):.4g}, {float(s.grid[-1]):.4g}]",
        ]
