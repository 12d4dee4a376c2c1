"""qlab.report: sizes by hand and the text table."""

from __future__ import annotations

import torch
from torch import nn

from qlab.ptq import quantize_model
from qlab.report import FloatParameter, PTQReport, format_report, model_size


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.LayerNorm([2, 4, 4]), nn.Flatten(), nn.Linear(32, 5))


def test_sizes_by_hand_with_float_parameters():
    qmodel = quantize_model(_model(), 4)
    # conv: 18 weights at 4 bits = 9 bytes, 2 biases and 2 scales at 4 bytes; linear: 160 weights
    # = 80 bytes, 5 biases, 5 scales; LayerNorm (kept float): 2 * 32 parameters * 4 bytes
    assert [p.name for p in qmodel.report.float_params] == ["1.weight", "1.bias"]
    float_bytes = 4 * (18 + 2) + 4 * (160 + 5) + 4 * 64
    assert model_size(qmodel.report) == (float_bytes, 9 + 8 + 8 + 80 + 20 + 20 + 256)


def test_static_activation_parameters_count_eight_bytes_per_layer():
    model = _model()
    weights_only = model_size(quantize_model(model, 8).report)[1]
    static = model_size(quantize_model(model, 8, 8, calib_data=torch.randn(4, 1, 6, 6)).report)[1]
    assert static - weights_only == 2 * 8


def test_format_report_lists_float_parameters_and_the_total():
    report = PTQReport([], [FloatParameter("scale", (1,), 4)])
    text = format_report(quantize_model(_model(), 8).report)
    assert "1.weight" in text and "(not quantized)" in text
    assert text.splitlines()[-1].startswith("total: ")
    assert model_size(report) == (4, 4) and len(report) == 0
