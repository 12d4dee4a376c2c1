"""Lesson 06 dashboard: post-training quantization of a whole model, every knob at once.

Model, weight bits, activation bits (or float), weight granularity, calibrator and
static/dynamic activations go to ``qlab.ptq.quantize_model``; the quantized copy is
evaluated on the full 10,000-image test set. The figure shows weight and activation SQNR
per layer, the accuracy change against FP32 in points (with the test set's noise band,
one standard error, ``qlab.metrics.accuracy_stderr``) and model size against FP32 (weights, biases, scales and
zero-points, see ``qlab.ptq.model_size``). A :class:`qlab.ptq.PTQSession` keeps everything a
control change does not alter (models, PTQ caches, calibrated ranges, FP32 accuracies).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

import ipywidgets as widgets
from matplotlib.ticker import MaxNLocator

from qlab.calibration import CALIBRATORS
from qlab.dashboards._base import Dashboard, nice_limit
from qlab.ranking import TEST_IMAGES
from qlab.metrics import accuracy_stderr
from qlab.models import MODEL_NAMES
from qlab.ptq import ACT_MODES, weighted_layers
from qlab.report import model_size
from qlab.session import PTQResult, PTQSession
from qlab.viz import bar_slots, set_bar_heights, set_layer_ticks

FLOAT = 0  # the "float" activation choice (a Dropdown value of None would show as no selection)
ACT_BITS: tuple[tuple[str, int], ...] = (("float", FLOAT), ("8", 8), ("6", 6), ("4", 4))
WEIGHT_GRANULARITIES = ("per_channel", "per_tensor")
WEIGHT_BITS = range(2, 9)


def settings() -> list[dict]:
    """Every distinct ``quantize_model`` setting the controls can select, per model (for the
    accuracy table): the calibrator only for static activations, no mode for float ones."""
    acts = [{"act_bits": None}]
    acts += [{"act_bits": b, "act_mode": "static", "calibrator": c} for _, b in ACT_BITS if b != FLOAT for c in CALIBRATORS]
    acts += [{"act_bits": b, "act_mode": "dynamic"} for _, b in ACT_BITS if b != FLOAT]
    return [{"weight_bits": bits, "granularity": g, **a} for bits in WEIGHT_BITS for g in WEIGHT_GRANULARITIES for a in acts]


@dataclass(frozen=True)
class WholeModelState:
    """One configuration and its result."""

    model: str
    config: dict
    result: PTQResult
    fp32_accuracy: float
    float_bytes: int
    quant_bytes: int


def describe(config: dict) -> str:
    """One-line description of a quantize_model configuration, e.g. 'W8 per_channel, A8 static (minmax)'."""
    weights = f"W{config['weight_bits']} {config['granularity']}"
    if config["act_bits"] is None:
        return f"{weights}, activations float"
    how = f"static ({config['calibrator']})" if config["act_mode"] == "static" else "dynamic"
    return f"{weights}, A{config['act_bits']} {how}"


class WholeModelPTQDashboard(Dashboard):
    """Every PTQ knob -> test accuracy, size and per-layer weight/activation SQNR."""

    title = "Whole-model post-training quantization"
    budget_ms = 300.0
    threads = 2
    figsize = (10.5, 4.6)

    def __init__(self, session: PTQSession | None = None) -> None:
        self.session = session or PTQSession()
        self.layers = {name: [n for n, _ in weighted_layers(self.session.cache(name).folded)] for name in MODEL_NAMES}
        super().__init__()

    def build_controls(self) -> list[widgets.ValueWidget]:
        style = {"description_width": "initial"}
        self.model_dropdown = widgets.Dropdown(options=list(MODEL_NAMES), value="cnn", description="model", style=style)
        self.weight_bits_slider = widgets.IntSlider(value=8, min=WEIGHT_BITS[0], max=WEIGHT_BITS[-1], description="weight bits", style=style)
        self.act_bits_dropdown = widgets.Dropdown(options=list(ACT_BITS), value=8, description="activation bits", style=style)
        self.granularity_dropdown = widgets.Dropdown(options=list(WEIGHT_GRANULARITIES), value="per_channel", description="weights", style=style)
        self.calibrator_dropdown = widgets.Dropdown(options=list(CALIBRATORS), value="minmax", description="calibrator", style=style)
        self.act_mode_dropdown = widgets.Dropdown(options=list(ACT_MODES), value="static", description="activations", style=style)
        for control in (self.act_bits_dropdown, self.act_mode_dropdown):
            control.observe(self._enable_activation_controls, names="value")
        self._enable_activation_controls()
        return [self.model_dropdown, self.weight_bits_slider, self.act_bits_dropdown,
                self.granularity_dropdown, self.calibrator_dropdown, self.act_mode_dropdown]

    def _enable_activation_controls(self, change: dict | None = None) -> None:
        """Disable the controls that do nothing: both while activations are float, the calibrator
        also for dynamic activations (their ranges come from each batch)."""
        float_acts = self.act_bits_dropdown.value == FLOAT
        self.act_mode_dropdown.disabled = float_acts
        self.calibrator_dropdown.disabled = float_acts or self.act_mode_dropdown.value != "static"

    def build_figure(self) -> None:
        grid = self.fig.add_gridspec(1, 3, width_ratios=[3.2, 1, 1])
        self.ax_sqnr = self.fig.add_subplot(grid[0])
        self.ax_acc = self.fig.add_subplot(grid[1])
        self.ax_size = self.fig.add_subplot(grid[2])
        self.fig.subplots_adjust(left=0.06, right=0.98, top=0.84, bottom=0.26, wspace=0.45)
        slots = max(len(names) for names in self.layers.values())
        self.w_bars = bar_slots(self.ax_sqnr, slots, offset=-0.2, width=0.4, color="tab:blue", label="weights")
        self.a_bars = bar_slots(self.ax_sqnr, slots, offset=0.2, width=0.4, color="tab:orange", label="activations (layer input)")
        self.ax_sqnr.set(ylabel="SQNR (dB)")
        self.ax_sqnr.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=2, fontsize=9, frameon=False)  # outside the data
        self.ax_sqnr.set_title("per-layer SQNR", loc="right")
        self.noise_band = self.ax_acc.axhspan(-1.0, 1.0, color="0.85", label="test-set noise (±1 s.e.)")
        self.ax_acc.axhline(0.0, color="0.3", lw=0.8)
        (self.acc_bar,) = self.ax_acc.bar(["quant."], [0.0], color="tab:purple", width=0.5)
        self.ax_acc.set(ylabel="accuracy − FP32 (points)", title="accuracy\n(grey: test noise)", xlim=(-0.6, 0.6))
        self.size_bars = self.ax_size.bar(["FP32", "quant."], [0.0, 0.0], color=["0.6", "tab:purple"])
        self.ax_size.set(ylabel="weights + params (KiB)", title="size")
        for ax, ticks in ((self.ax_sqnr, 5), (self.ax_acc, 3), (self.ax_size, 3)):  # fewer labels, faster draw
            ax.yaxis.set_major_locator(MaxNLocator(ticks))
        self.suptitle = self.fig.text(0.5, 0.94, "", ha="center", fontsize=13)
        self.animate(self.w_bars, self.a_bars, self.acc_bar, self.size_bars, self.suptitle)

    def background_key(self) -> Hashable:
        """Limits, the model's layer names on the SQNR axis and its FP32 noise band."""
        return super().background_key(), self.model_dropdown.value

    def config(self) -> dict:
        """The quantize_model keyword arguments selected by the controls."""
        return {
            "weight_bits": self.weight_bits_slider.value,
            "act_bits": self.act_bits_dropdown.value or None,
            "granularity": self.granularity_dropdown.value,
            "calibrator": self.calibrator_dropdown.value,
            "act_mode": self.act_mode_dropdown.value,
        }

    def compute(self) -> WholeModelState:
        model, config = self.model_dropdown.value, self.config()
        result = self.session.run(model, memoize=self.memoize, **config)
        return WholeModelState(model, config, result, self.session.fp32_accuracy(model), *model_size(result.report))

    def redraw(self, s: WholeModelState) -> None:
        w = [r.weight_sqnr_db for r in s.result.report]
        a = [r.act_sqnr_db for r in s.result.report]
        set_bar_heights(self.w_bars, w)
        set_bar_heights(self.a_bars, a)
        if self.state is None or self.state.model != s.model:  # tick labels are slow to rebuild
            set_layer_ticks(self.ax_sqnr, self.layers[s.model])
        shown = w + [x for x in a if x is not None]
        self.ax_sqnr.set_ylim(-nice_limit(2.0 - min(0.0, *shown)), nice_limit(max(shown) + 2.0))
        change = 100 * (s.result.accuracy - s.fp32_accuracy)
        noise = 100 * accuracy_stderr(s.fp32_accuracy, TEST_IMAGES)
        self.acc_bar.set_height(change)
        self.noise_band.set_y(-noise)
        self.noise_band.set_height(2 * noise)
        self.ax_acc.set_ylim(-nice_limit(max(-1.1 * change, 2 * noise)), nice_limit(max(1.1 * change, 2 * noise)))
        set_bar_heights(self.size_bars, [s.float_bytes / 1024, s.quant_bytes / 1024])
        self.ax_size.set_ylim(0, nice_limit(1.05 * s.float_bytes / 1024))
        self.suptitle.set_text(
            f"{s.model}, {describe(s.config)}: {100 * s.result.accuracy:.2f}% "
            f"(FP32 {100 * s.fp32_accuracy:.2f}%), {s.float_bytes / s.quant_bytes:.2f}x smaller"
        )

    def readout_lines(self, s: WholeModelState) -> list[str]:
        w = [r.weight_sqnr_db for r in s.result.report]
        a = [r.act_sqnr_db for r in s.result.report if r.act_sqnr_db is not None]
        act = f", activations min {min(a):.1f} dB" if a else ""
        return [
            f"model {s.model}: {describe(s.config)}",
            f"test accuracy (10,000 images): {100 * s.result.accuracy:.2f}% (FP32 {100 * s.fp32_accuracy:.2f}%, "
            f"drop {100 * (s.fp32_accuracy - s.result.accuracy):.2f} points)",
            f"size: {s.quant_bytes} bytes vs {s.float_bytes} bytes FP32 ({s.float_bytes / s.quant_bytes:.2f}x smaller)",
            f"SQNR: weights min {min(w):.1f} dB{act}",
        ]

    def warm_up(self) -> dict[str, float]:
        """Build every model's cache and calibrate every calibrator at every activation bit width."""
        bits = [b for _, b in ACT_BITS if b != FLOAT]
        costs: dict[str, float] = {}
        for name in MODEL_NAMES:
            costs.update(self.session.warm_up(name, list(CALIBRATORS), bits))
        return costs
