"""Lesson 07 live fine-tune: a button that runs a short QAT fine-tune with a live loss plot.

Not a slider dashboard (one click trains for seconds), so it is not in the latency registry.
The run is ``qlab.qat_train.finetune(name, bits, bits, method, max_steps=steps)`` (1 thread,
seeded); every ``PLOT_EVERY`` steps the loss and batch-accuracy curves are updated in place,
and the integer codes of one layer's weights are recorded to count oscillating weights
(:func:`qlab.qat.oscillations`). The readout gives three test-set accuracies: PTQ (min/max), the
QAT model before its first step (its quantizers start from ``QAT_INIT``, the MSE calibrator, so at
2 bits this start alone is far above min/max) and after the last step.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import ipywidgets as widgets
import torch
from matplotlib.figure import Figure

from qlab.dashboards._base import dashboard_box, display_with_snapshot, make_canvas, show_now
from qlab.evaluation import evaluate
from qlab.models import MODEL_NAMES, load_pretrained
from qlab.ptq import quantize_model
from qlab.session import calibration_data
from qlab.qat import convert, oscillations, weight_codes
from qlab.qat_train import finetune

PLOT_EVERY = 10
TRACKED_LAYER = {"cnn": "block2_conv", "depthwise": "block3_pw_conv", "mlp": "fc2"}


@dataclass(frozen=True)
class FineTuneResult:
    """Accuracies (test set, in [0, 1]) and the oscillation count of one live run."""

    model: str
    bits: int
    steps: int
    ptq_accuracy: float
    start_accuracy: float
    qat_accuracy: float
    oscillating: int
    tracked_weights: int


class LiveFineTune:
    """Model, bits, method and steps controls, a Train button, a progress bar and a live plot."""

    def __init__(self, model: str = "mlp", bits: int = 2, steps: int = 300) -> None:
        style = {"description_width": "initial"}
        self.model_dropdown = widgets.Dropdown(options=list(MODEL_NAMES), value=model, description="model", style=style)
        self.bits_dropdown = widgets.Dropdown(options=[2, 3, 4], value=bits, description="W/A bits", style=style)
        self.method_dropdown = widgets.Dropdown(options=["lsq", "ste", "penalty"], value="lsq", description="method", style=style)
        self.steps_slider = widgets.IntSlider(value=steps, min=50, max=600, step=50, description="steps", style=style)
        self.button = widgets.Button(description="Train", button_style="primary")
        self.button.on_click(lambda _b: self.run())
        self.progress = widgets.IntProgress(value=0, min=0, max=steps, description="steps")
        self.readout_box = widgets.HTML()
        self.fig = Figure(figsize=(9.0, 3.2), dpi=80.0)
        self.ax = self.fig.subplots()
        self.fig.subplots_adjust(left=0.08, right=0.92, top=0.88, bottom=0.18)
        self.ax_acc = self.ax.twinx()
        (self.loss_line,) = self.ax.plot([], [], color="tab:red", label="training loss")
        (self.acc_line,) = self.ax_acc.plot([], [], color="tab:blue", label="batch accuracy (%)")
        (self.test_marks,) = self.ax_acc.plot([], [], "o", color="k", ms=7, zorder=5, clip_on=False,
                                              label="test accuracy (%): start, end")
        self.ptq_line = self.ax_acc.axhline(float("nan"), color="0.5", ls="--", label="test accuracy (%), PTQ min/max")
        self.ax.set(xlabel="step", ylabel="training loss", ylim=(0, 2.5))
        self.ax_acc.set(ylabel="accuracy (%)", ylim=(0, 100))
        self.ax_acc.legend(handles=[self.loss_line, self.acc_line, self.test_marks, self.ptq_line], loc="center right",
                           framealpha=0.8, fontsize="small")
        self.canvas = make_canvas(self.fig)
        controls = widgets.HBox([self.model_dropdown, self.bits_dropdown, self.method_dropdown, self.steps_slider, self.button],
                                layout=widgets.Layout(flex_flow="row wrap"))
        self.widget = dashboard_box([controls, self.progress, self.canvas, self.readout_box])
        self.result: FineTuneResult | None = None

    def run(self) -> FineTuneResult:
        """Fine-tune with the current settings, updating the plot in place; return the result."""
        name, bits, method, steps = (c.value for c in (self.model_dropdown, self.bits_dropdown, self.method_dropdown, self.steps_slider))
        layer = TRACKED_LAYER[name]
        history: dict[str, list] = {"step": [], "loss": [], "acc": [], "codes": []}
        self.ax.set_xlim(0, steps)
        self.ax.set_title(f"{name}, W{bits}A{bits}, {method}, {steps} steps")
        model_ref: list = []
        start: list[float] = []

        def callback(step: int, loss: float, acc: float) -> None:
            history["step"].append(step)
            history["loss"].append(loss)
            history["acc"].append(100 * acc)
            if model_ref:
                history["codes"].append(weight_codes(getattr(model_ref[0], layer)))
            if step % PLOT_EVERY == 0:
                self.progress.value = step
                self.loss_line.set_data(history["step"], history["loss"])
                self.acc_line.set_data(history["step"], history["acc"])
                show_now(self.canvas)

        def prepared(model: torch.nn.Module) -> None:  # before the first step: what the calibrated start gives
            model_ref.append(model)
            start.append(evaluate(convert(model)))
            self.test_marks.set_data([0], [100 * start[0]])
            self.canvas.draw_idle()

        ptq = evaluate(quantize_model(load_pretrained(name), bits, bits, calib_data=calibration_data()))
        self.ptq_line.set_ydata([100 * ptq, 100 * ptq])
        self.test_marks.set_data([], [])
        self.progress.max, self.progress.value = steps, 0
        model, _ = finetune(name, bits, bits, method, max_steps=steps, callback=callback,
                            progress=False, on_prepared=prepared)
        self.progress.value = steps
        codes = torch.stack(history["codes"]) if history["codes"] else torch.zeros(1, 1)
        self.result = FineTuneResult(name, bits, steps, ptq, start[0], evaluate(convert(model)),
                                     int(oscillations(codes).sum()), codes[0].numel())
        self.test_marks.set_data([0, steps], [100 * self.result.start_accuracy, 100 * self.result.qat_accuracy])
        self.canvas.draw_idle()
        self.model = model
        self.readout_box.value = f'<pre style="font-size:15px">{html.escape(self.readout())}</pre>'
        return self.result

    def _ipython_display_(self) -> None:
        display_with_snapshot(self.widget, self.fig, "QAT fine-tuning", self.readout())

    def readout(self) -> str:
        """Plain-text summary of the last run."""
        r = self.result
        if r is None:
            return "press Train"
        return (f"{r.model} W{r.bits}A{r.bits}, test accuracy: PTQ (min/max) {100 * r.ptq_accuracy:.2f}% -> QAT start "
                f"(calibrated, 0 steps) {100 * r.start_accuracy:.2f}% -> after {r.steps} steps "
                f"{100 * r.qat_accuracy:.2f}%\n{r.oscillating} of {r.tracked_weights} weights of "
                f"{TRACKED_LAYER[r.model]} oscillated between two neighbouring codes")
