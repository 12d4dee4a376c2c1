"""Lesson 08 dashboards: integer-only inference of the pretrained ``cnn`` (W8A8, min/max).

:class:`FollowOneOutputDashboard` follows one output of one layer for one image through
every integer step (``qlab.integer`` / ``qlab.requantize``): the input codes of its
receptive field and the weight codes of its channel (left, as images), the four terms of
the zero-point expansion, the int32 bias and accumulator (right, as bars), then M, M0,
shift, the rounding high multiply, the rounding shift, the zero-point, the clamp and the
output code, each next to the real value it stands for (readout). The figure title shows
the exact M0; the readout rounds it to 7 digits, because the scales (calibrated through float
kernels) differ in their last bits between CPUs and the readout must not.

:class:`MultiplierPrecisionDashboard`: bits of M0 -> relative error of every layer's
multipliers and share of output codes that change (accumulators of 64 calibration images,
cached), next to the test accuracy measured by ``benchmarks/integer_accuracy.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import ipywidgets as widgets
import numpy as np
import torch

from qlab import integer, requantize
from qlab.dashboards._base import Dashboard, nice_limit
from qlab.data import calibration_subset
from qlab.metrics import accuracy_stderr
from qlab.models import load_pretrained
from qlab.ptq import quantize_model
from qlab.ranking import TEST_IMAGES
from qlab.session import calibration_data

MODEL = "cnn"
N_IMAGES = 16
N_CODES_IMAGES = 64
RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "integer_accuracy.json"


def integer_cnn(n_images: int = N_IMAGES) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """The W8A8 integer ``cnn`` and the input codes of each layer on the first calibration images."""
    im = integer.convert(quantize_model(load_pretrained(MODEL), 8, 8, calib_data=calibration_data(), act_mode="static"))
    return im, integer.layer_inputs(im, calibration_subset()[:n_images])


@dataclass(frozen=True)
class OutputTrace:
    """Every integer on the way to one output code (and the layer that produced it)."""

    layer: str
    channel: int
    position: int
    patch: torch.Tensor  # input codes of the receptive field (fan_in,)
    w_row: torch.Tensor  # weight codes of the channel (fan_in,)
    terms: dict[str, int]
    bias: int
    acc: int
    multiplier: float
    m0: int
    shift: int
    high_mul: int
    rounded: int
    unclamped: int
    clamp: tuple[int, int]
    code: int | None  # None for the last layer (float logits)
    s_in: float
    s_w: float
    s_out: float | None
    z_in: int
    z_out: int | None


def trace_output(layer_name: str, layer: integer.IntegerLayer, x: torch.Tensor, channel: int, position: int) -> OutputTrace:
    """Follow output ``channel`` at flattened spatial ``position`` of ``layer`` for one image ``x`` (1, ...)."""
    c_per_group = layer.weight.shape[0] // layer.groups
    patch = integer.patches(layer, x)[0, position, channel // c_per_group]
    w_row = layer.weight[channel].reshape(-1).to(torch.int64)
    terms = integer.accumulator_terms(patch, w_row, layer.in_zero_point)
    bias = int(layer.bias[channel])
    acc = terms["total"] + bias
    s_in, s_w = float(layer.in_scale), float(layer.w_scale[channel])
    if layer.out_scale is None:
        return OutputTrace(layer_name, channel, position, patch, w_row, terms, bias, acc, 0.0, 0, 0, 0, 0, 0, (0, 0), None,
                           s_in, s_w, None, layer.in_zero_point, None)
    m0, shift = int(layer.m0[channel]), int(layer.shift[channel])
    high = int(requantize.saturating_rounding_doubling_high_mul(torch.tensor(acc << max(shift, 0)), torch.tensor(m0)))
    rounded = int(requantize.rounding_divide_by_pot(torch.tensor(high), max(-shift, 0)))
    unclamped = layer.out_zero_point + rounded
    code = min(max(unclamped, layer.out_min), layer.out_max)
    return OutputTrace(layer_name, channel, position, patch, w_row, terms, bias, acc, float(layer.multiplier[channel]), m0, shift,
                       high, rounded, unclamped, (layer.out_min, layer.out_max), code, s_in, s_w, float(layer.out_scale),
                       layer.in_zero_point, layer.out_zero_point)


def _grid(v: torch.Tensor) -> np.ndarray:
    """A 1-D code vector as a 2-D image: rows of 9 (a 3x3 kernel per input channel) or of 32."""
    width = 9 if v.numel() % 9 == 0 and v.numel() <= 9 * 64 else 32
    rows = -(-v.numel() // width)
    out = np.full(rows * width, np.nan)
    out[: v.numel()] = v.numpy()
    return out.reshape(rows, width)


class FollowOneOutputDashboard(Dashboard):
    """Layer, output channel, output position and image -> every integer of that output."""

    title = "Follow one output through integer-only inference (cnn, W8A8)"
    figsize = (9.0, 3.4)  # 272 px: its readout has 14 lines

    def __init__(self) -> None:
        self.imodel, self.inputs = integer_cnn()
        self.layers = dict(integer.integer_layers(self.imodel))
        super().__init__()
        # the code images' shapes (so the static layer) change with the layer: render each now
        self.keep_pictures(self.redraw, [trace_output(name, layer, self.inputs[name][:1], 0, 0) for name, layer in self.layers.items()])

    def _positions(self, name: str) -> int:
        layer = self.layers[name]
        return integer.patches(layer, self.inputs[name][:1]).shape[1]

    def build_controls(self) -> list[widgets.ValueWidget]:
        style = {"description_width": "initial"}
        self.layer_dropdown = widgets.Dropdown(options=list(self.layers), value="block2_conv", description="layer", style=style)
        self.channel_slider = widgets.IntSlider(value=0, min=0, max=47, description="output channel", style=style)
        self.position_slider = widgets.IntSlider(value=24, min=0, max=48, description="position", style=style)
        self.image_slider = widgets.IntSlider(value=0, min=0, max=N_IMAGES - 1, description="image", style=style)
        self.layer_dropdown.observe(self._on_layer, names="value")  # before the base's update observer
        return [self.layer_dropdown, self.channel_slider, self.position_slider, self.image_slider]

    def _on_layer(self, change: dict) -> None:
        """Keep the channel and position sliders inside the new layer's output (the layer's own
        update follows: a clamped slider value does not draw a frame of its own)."""
        name = change["new"]
        with self.holding_updates():
            self.channel_slider.max = self.layers[name].weight.shape[0] - 1
            self.position_slider.max = self._positions(name) - 1

    def build_figure(self) -> None:
        self.ax_x, self.ax_w, self.ax_terms = self.fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1, 1.4]})
        self.fig.subplots_adjust(left=0.05, right=0.98, top=0.8, bottom=0.1, wspace=0.42)
        self.im_x = self.ax_x.imshow(np.zeros((2, 9)), cmap="viridis", aspect="auto", vmin=0, vmax=255)
        self.im_w = self.ax_w.imshow(np.zeros((2, 9)), cmap="coolwarm", aspect="auto", vmin=-127, vmax=127)
        # no ticks or colorbars on the code images: tick layout is most of the render time
        self.ax_x.set(title="input codes $q_a$ (0..255)", xlabel="kernel tap", ylabel="input channel", xticks=[], yticks=[])
        self.ax_w.set(title="weight codes $q_w$ (±127)", xlabel="kernel tap", xticks=[], yticks=[])
        labels = ["Σqa·qw", "−za·Σqw", "bias", "acc"]
        self.bars = self.ax_terms.bar(labels, [0, 0, 0, 0], color=["0.5", "tab:orange", "tab:green", "tab:blue"])
        self.ax_terms.axhline(0, color="k", lw=0.8)
        self.ax_terms.set(title="int32 accumulator terms", ylabel="integer value")
        self.suptitle = self.fig.suptitle("")
        self.animate(self.ax_terms.yaxis, self.im_x, self.im_w, self.bars, self.suptitle)  # its y-limit follows the terms

    def compute(self) -> OutputTrace:
        name, channel, position, image = (c.value for c in self.controls)
        x = self.inputs[name][image : image + 1]
        return trace_output(name, self.layers[name], x, channel, min(position, self._positions(name) - 1))

    def redraw(self, t: OutputTrace) -> None:
        for im, v in ((self.im_x, t.patch), (self.im_w, t.w_row)):
            g = _grid(v)
            im.set_data(g)
            im.set_extent((-0.5, g.shape[1] - 0.5, g.shape[0] - 0.5, -0.5))
        values = [t.terms["sum_qa_qw"], -t.terms["za_sum_qw"], t.bias, t.acc]
        for bar, v in zip(self.bars, values):
            bar.set_height(v)
        top = nice_limit(max(1.1 * max(abs(v) for v in values), 1.0))  # symmetric: fewer static layers
        self.ax_terms.set_ylim(-top, top)
        out = "float logit" if t.code is None else f"M0 = {t.m0}, shift = {t.shift}, output code {t.code}"
        self.suptitle.set_text(f"{t.layer}, channel {t.channel}, position {t.position}: {out}")

    def readout_lines(self, t: OutputTrace) -> list[str]:
        s_acc = t.s_in * t.s_w
        lines = [
            f"fan-in n = {t.patch.numel()}, z_in = {t.z_in}, s_in = {t.s_in:.5g}, s_w[c] = {t.s_w:.5g} (weight zero-point 0)",
            f"Σ qa·qw   = {t.terms['sum_qa_qw']:>9d}",
            f"zw·Σ qa   = {t.terms['zw_sum_qa']:>9d}   (zw = 0)",
            f"za·Σ qw   = {t.terms['za_sum_qw']:>9d}",
            f"n·za·zw   = {t.terms['n_za_zw']:>9d}   (zw = 0)",
            f"bias      = {t.bias:>9d}   stands for {t.bias * s_acc:.5g}",
            f"acc       = {t.acc:>9d}   stands for {t.acc * s_acc:.5g} = s_in·s_w·acc",
        ]
        if t.code is None:
            return lines + ["last layer: the logit is dequantized, acc · s_in · s_w (no requantization)"]
        return lines + [
            f"M = s_in·s_w/s_out = {t.multiplier:.6g} = M0·2^(shift−31), M0 = {t.m0 / 1e9:.6f}e9 (exact in the figure), shift = {t.shift}",
            f"SRDHM(acc·2^{max(t.shift, 0)}, M0) = {t.high_mul}   (acc·M0/2^31 rounded to nearest)",
            f"RDBPOT(., {max(-t.shift, 0)})      = {t.rounded}   (exact acc·M = {t.acc * t.multiplier:.3f})",
            f"+ z_out = {t.z_out}           -> {t.unclamped}",
            f"clamp to [{t.clamp[0]}, {t.clamp[1]}] (ReLU fused: lower end = z_out) -> code {t.code}",
            f"code {t.code} stands for {(t.code - t.z_out) * t.s_out:.5g} = s_out·(code − z_out), s_out = {t.s_out:.5g}",
        ]


@dataclass(frozen=True)
class PrecisionState:
    bits: int
    rel_error: dict[str, float]  # largest |M_bits - M| / M over the layer's channels
    changed: dict[str, float]  # share of output codes different from 32-bit M0
    accuracy: dict[int, float]  # test accuracy (%) measured by the benchmark, by bits


def measured_accuracy(model: str = MODEL) -> dict[int, float]:
    """Integer-model test accuracy (%) by multiplier bits, from benchmarks/results/integer_accuracy.json."""
    data = json.loads(RESULTS.read_text())[model]["multiplier_bits"]
    return {int(b): a for b, a in data.items()}


M0_BITS = (2, 32)  # the multiplier bits slider's range


class MultiplierPrecisionDashboard(Dashboard):
    """Bits of M0 (2..32) -> multiplier error and changed output codes per layer, and accuracy."""

    title = "Multiplier precision: how many bits does M0 need? (cnn, W8A8)"
    figsize = (9.0, 3.8)

    def __init__(self) -> None:
        self.imodel, inputs = integer_cnn(N_CODES_IMAGES)
        self.layers = [(n, m) for n, m in integer.integer_layers(self.imodel) if m.out_scale is not None]
        with torch.inference_mode():
            self.accs = {n: m.accumulate(inputs[n]) for n, m in self.layers}
            self.ref = {n: m.requantize(self.accs[n]) for n, m in self.layers}
        self.accuracy = measured_accuracy()
        self.states = {bits: self._precision(bits) for bits in range(M0_BITS[0], M0_BITS[1] + 1)}  # 0.3 s
        super().__init__()
        self.keep_pictures(self._set_error_limit, sorted({self._error_limit(s) for s in self.states.values()}))

    def build_controls(self) -> list[widgets.ValueWidget]:
        return [widgets.IntSlider(value=8, min=M0_BITS[0], max=M0_BITS[1], description="M0 bits", style={"description_width": "initial"})]

    def build_figure(self) -> None:
        self.ax_err, self.ax_acc = self.fig.subplots(1, 2)
        self.fig.subplots_adjust(left=0.09, right=0.98, top=0.86, bottom=0.22, wspace=0.3)
        names = [n for n, _ in self.layers]
        x = np.arange(len(names))
        self.err_bars = self.ax_err.bar(x - 0.2, np.zeros(len(names)), 0.4, color="tab:blue")
        self.chg_bars = self.ax_err.bar(x + 0.2, np.zeros(len(names)), 0.4, color="tab:orange")
        self.ax_err.set_xticks(x, names)
        self.ax_err.set(ylabel="percent", title="blue: max error of M, orange: codes changed")
        bits = sorted(self.accuracy)
        acc = np.array([self.accuracy[b] for b in bits])
        se = np.array([100 * accuracy_stderr(a / 100, TEST_IMAGES) for a in acc])
        self.ax_acc.fill_between(bits, acc - se, acc + se, color="tab:blue", alpha=0.2, lw=0)
        self.ax_acc.plot(bits, acc, "o-")
        self.marker = self.ax_acc.axvline(8, color="tab:red")
        self.ax_acc.set(xlabel="bits of M0 (red: chosen)", ylabel="test accuracy (%)", title="test set (band: ±1 standard error)",
                        xticks=bits, xlim=(0, 34))
        self.animate(self.ax_err.yaxis, self.err_bars, self.chg_bars, self.marker)  # its y-limit follows the bits

    def compute(self) -> PrecisionState:
        return self.states[self.controls[0].value]

    def _precision(self, bits: int) -> PrecisionState:
        err, changed = {}, {}
        for name, m in self.layers:
            m0, shift = requantize.quantize_multiplier(m.multiplier, bits)
            err[name] = 100 * float(((requantize.multiplier_value(m0, shift) - m.multiplier).abs() / m.multiplier).max())
            acc = self.accs[name]
            shape = (1, -1) + (1,) * (acc.dim() - 2)
            q = (m.out_zero_point + requantize.multiply_by_quantized_multiplier(acc, m0.reshape(shape), shift.reshape(shape)))
            q = q.clamp(m.out_min, m.out_max)
            changed[name] = 100 * float((q != self.ref[name].to(torch.int64)).float().mean())
        return PrecisionState(bits, err, changed, self.accuracy)

    def redraw(self, s: PrecisionState) -> None:
        for bar, v in zip(self.err_bars, s.rel_error.values()):
            bar.set_height(v)
        for bar, v in zip(self.chg_bars, s.changed.values()):
            bar.set_height(v)
        self._set_error_limit(self._error_limit(s))
        self.marker.set_xdata([s.bits, s.bits])

    @staticmethod
    def _error_limit(s: PrecisionState) -> float:
        return nice_limit(1.1 * max(list(s.rel_error.values()) + list(s.changed.values()) + [1e-3]))

    def _set_error_limit(self, top: float) -> None:
        self.ax_err.set_ylim(0, top)

    def readout_lines(self, s: PrecisionState) -> list[str]:
        lines = [f"M0 with {s.bits} bits ({s.bits - 1} significant):"]
        lines += [f"  {n:<12} max rel. error of M {s.rel_error[n]:8.3g}%   codes changed {s.changed[n]:6.2f}%" for n in s.rel_error]
        measured = ", ".join(f"{b}: {a:.2f}%" for b, a in sorted(s.accuracy.items()))
        return lines + [f"test accuracy measured at (bits: %) {measured}"]
