"""Lesson 05 dashboard: per-tensor, per-channel and per-group weight quantization of DepthwiseNet.

Weight-only PTQ (``qlab.ptq.quantize_model`` after BN folding, symmetric min/max scales,
activations in float) of the depthwise network at the chosen bit width and granularity.
The figure shows the weight SQNR of every layer and the per-channel scales
s_c = max|W'_c| / (2^(b-1) - 1) of one chosen layer next to the single per-tensor scale;
the readout gives the test accuracy on the full 10,000-image test set against FP32.
"""

from __future__ import annotations

from dataclasses import dataclass

import ipywidgets as widgets
import torch
from matplotlib.ticker import MaxNLocator

from qlab.dashboards._base import Dashboard, nice_limit
from qlab.ptq import GRANULARITIES, erased_channels, quantize_weight, weighted_layers
from qlab.session import PTQResult, PTQSession
from qlab.viz import bar_slots, set_bar_heights, set_layer_ticks

MODEL = "depthwise"
GROUP_SIZES = (16, 32, 64)  # divide every fan-in of DepthwiseNet larger than them
WEIGHT_BITS = range(2, 9)


def settings() -> list[dict]:
    """Every ``quantize_model`` setting the controls can select (for the accuracy table)."""
    return [
        {"weight_bits": bits, "granularity": g, "group_size": size}
        for bits in WEIGHT_BITS for g in GRANULARITIES
        for size in (GROUP_SIZES if g == "per_group" else (None,))
    ]


@dataclass(frozen=True)
class PerChannelState:
    """What the figure and readout show for one setting of the controls."""

    bits: int
    granularity: str
    group_size: int | None
    result: PTQResult
    fp32_accuracy: float
    layer: str
    channel_scales: torch.Tensor
    tensor_scale: float


class PerChannelDashboard(Dashboard):
    """Weight bits, granularity and group size -> accuracy, per-layer SQNR, one layer's scales."""

    title = "Per-tensor vs per-channel vs per-group weights: DepthwiseNet, weight-only PTQ"
    budget_ms = 300.0
    threads = 2
    figsize = (10.0, 4.6)

    def __init__(self, session: PTQSession | None = None) -> None:
        self.session = session or PTQSession()
        self.folded = dict(weighted_layers(self.session.cache(MODEL).folded))
        super().__init__()

    def build_controls(self) -> list[widgets.ValueWidget]:
        style = {"description_width": "initial"}
        self.bits_slider = widgets.IntSlider(value=4, min=WEIGHT_BITS[0], max=WEIGHT_BITS[-1], description="weight bits", style=style)
        self.granularity_dropdown = widgets.Dropdown(options=list(GRANULARITIES), value="per_tensor", description="granularity", style=style)
        self.group_dropdown = widgets.Dropdown(options=list(GROUP_SIZES), value=GROUP_SIZES[0], description="group size (per_group)", style=style)
        self.layer_dropdown = widgets.Dropdown(options=list(self.folded), value="block1_dw_conv", description="scales of layer", style=style)
        self.granularity_dropdown.observe(self._enable_group_size, names="value")
        self._enable_group_size()
        return [self.bits_slider, self.granularity_dropdown, self.group_dropdown, self.layer_dropdown]

    def _enable_group_size(self, change: dict | None = None) -> None:
        """The group size does nothing unless the granularity is per_group."""
        self.group_dropdown.disabled = self.granularity_dropdown.value != "per_group"

    def build_figure(self) -> None:
        self.ax_sqnr, self.ax_scales = self.fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.2, 1]})
        self.fig.subplots_adjust(left=0.07, right=0.98, top=0.86, bottom=0.26, wspace=0.25)
        self.sqnr_bars = bar_slots(self.ax_sqnr, len(self.folded), color="tab:blue")
        set_layer_ticks(self.ax_sqnr, list(self.folded))
        self.ax_sqnr.set(ylabel="weight SQNR (dB)", title="SQNR of every layer's weights")
        widest = max(layer.weight.shape[0] for layer in self.folded.values())
        self.scale_bars = bar_slots(self.ax_scales, widest, width=1.0, color="tab:green", label="per-channel scale")
        self.tensor_line = self.ax_scales.axhline(0.0, color="tab:red", ls="--", label="per-tensor scale")
        self.ax_scales.set(xlabel="output channel", ylabel="scale (weight units per step)")
        self.ax_scales.xaxis.set_major_locator(MaxNLocator(6, integer=True))  # channels are whole numbers
        self.ax_scales.legend(loc="upper center", bbox_to_anchor=(0.5, -0.17), ncols=2, fontsize=9, frameon=False)  # below the data
        self.suptitle = self.fig.text(0.5, 0.93, "", ha="center", fontsize=13)
        self.animate(self.sqnr_bars, self.scale_bars, self.tensor_line, self.suptitle, self.ax_scales.title)

    def compute(self) -> PerChannelState:
        bits, granularity, group, layer = (c.value for c in self.controls)
        group_size = group if granularity == "per_group" else None
        result = self.session.run(MODEL, memoize=self.memoize, weight_bits=bits, granularity=granularity, group_size=group_size)
        w = self.folded[layer].weight
        return PerChannelState(
            bits, granularity, group_size, result, self.session.fp32_accuracy(MODEL), layer,
            quantize_weight(w, bits, "per_channel").scale, float(quantize_weight(w, bits, "per_tensor").scale),
        )

    def redraw(self, s: PerChannelState) -> None:
        sqnr = [r.weight_sqnr_db for r in s.result.report]
        set_bar_heights(self.sqnr_bars, sqnr)
        self.ax_sqnr.set_ylim(-nice_limit(2.0 - min(0.0, *sqnr)), nice_limit(max(sqnr) + 5.0))
        scales = s.channel_scales.tolist()
        set_bar_heights(self.scale_bars, scales)
        self.tensor_line.set_ydata([s.tensor_scale, s.tensor_scale])
        self.ax_scales.set_xlim(-0.5, len(scales) - 0.5)
        self.ax_scales.set_ylim(0.0, nice_limit(1.05 * max(s.tensor_scale, *scales)))
        self.ax_scales.set_title(f"{s.layer}: {len(scales)} channels at {s.bits} bits", fontsize=12)
        self.suptitle.set_text(
            f"{s.bits}-bit weights, {self._label(s)}: test accuracy {100 * s.result.accuracy:.2f}% "
            f"(FP32 {100 * s.fp32_accuracy:.2f}%)"
        )

    @staticmethod
    def _label(s: PerChannelState) -> str:
        return s.granularity if s.group_size is None else f"per_group (size {s.group_size})"

    def readout_lines(self, s: PerChannelState) -> list[str]:
        sqnr = [r.weight_sqnr_db for r in s.result.report]
        worst = min(s.result.report, key=lambda r: r.weight_sqnr_db)
        erased = erased_channels(s.channel_scales, s.tensor_scale, s.bits)
        return [
            f"weights: {s.bits} bits, {self._label(s)}, symmetric; activations float",
            f"test accuracy (10,000 images): {100 * s.result.accuracy:.2f}% (FP32 {100 * s.fp32_accuracy:.2f}%, "
            f"drop {100 * (s.fp32_accuracy - s.result.accuracy):.2f} points)",
            f"weight SQNR over layers: min {min(sqnr):.1f} dB ({worst.name}), mean {sum(sqnr) / len(sqnr):.1f} dB",
            f"{s.layer}: per-channel scales {float(s.channel_scales.min()):.3g} .. {float(s.channel_scales.max()):.3g}, "
            f"per-tensor scale {s.tensor_scale:.3g}; channels rounded entirely to 0 per tensor: {erased}",
        ]
