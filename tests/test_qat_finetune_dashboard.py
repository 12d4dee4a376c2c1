"""Lesson 07 live fine-tune: the readout separates what the calibrated start gives from what training adds."""

from __future__ import annotations

import math

from qlab.dashboards.qat_finetune import LiveFineTune
from qlab.evaluation import evaluate
from qlab.models import load_pretrained
from qlab.qat import convert, prepare_qat
from qlab.qat_train import QAT_INIT


def test_live_run_reports_the_accuracy_before_the_first_step() -> None:
    """Regression: the readout went from PTQ min/max straight to "QAT after N steps", crediting the
    training with what the MSE-calibrated start (QAT_INIT) already gives at 2 bits."""
    live = LiveFineTune(model="mlp", bits=2, steps=50)
    r = live.run()
    start = evaluate(convert(prepare_qat(load_pretrained("mlp"), 2, 2, "lsq", **QAT_INIT)))
    assert math.isclose(r.start_accuracy, start, abs_tol=1e-4)
    assert r.start_accuracy > r.ptq_accuracy + 0.4, "at W2A2 the calibrated start is far above min/max PTQ"
    assert f"QAT start (calibrated, 0 steps) {100 * r.start_accuracy:.2f}%" in live.readout()
    assert list(live.test_marks.get_xdata()) == [0, 50]
    assert list(live.test_marks.get_ydata()) == [100 * r.start_accuracy, 100 * r.qat_accuracy]
    assert max(live.acc_line.get_ydata()) > 1, "batch accuracy is plotted in % on the accuracy axis"
