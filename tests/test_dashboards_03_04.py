"""Lesson 03/04 dashboards built in plain Python: sliders drive artists and readouts that agree with qlab."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qlab import metrics
from qlab.affine import calc_qparams, fake_quantize, qrange
from qlab.dashboards import BitWidthDashboard, RangeChoiceDashboard
from qlab.dashboards import range_choice
from qlab.sweeps import clip_rounding_error


@pytest.fixture(scope="module")
def bit_dash() -> BitWidthDashboard:
    return BitWidthDashboard()


@pytest.fixture(scope="module")
def range_dash() -> RangeChoiceDashboard:
    return RangeChoiceDashboard()


@pytest.mark.parametrize("bits", [2, 5, 8])
@pytest.mark.parametrize("symmetric", [True, False])
def test_bit_width_matches_fake_quantize(bit_dash: BitWidthDashboard, bits: int, symmetric: bool) -> None:
    bit_dash.layer_dropdown.value = "block2_conv"
    bit_dash.bits_slider.value = bits
    bit_dash.symmetric_toggle.value = symmetric
    w = bit_dash.weights["block2_conv"]
    narrow = symmetric
    scale, zp = calc_qparams(w, bits, signed=True, symmetric=symmetric, narrow=narrow)
    qmin, qmax = qrange(bits, signed=True, narrow=narrow)
    w_hat = fake_quantize(w, scale, zp, qmin, qmax)
    readout = bit_dash.readout()
    assert bit_dash.last_error is None
    assert f"codes [{qmin}, {qmax}], scale = {scale.item():.4g}, zero-point = {zp.item()}" in readout
    assert f"MSE = {metrics.mse(w, w_hat):.4g}, max |error| = {metrics.max_abs_error(w, w_hat):.4g}" in readout
    assert f"SQNR = {metrics.sqnr_db(w, w_hat):.2f} dB" in readout
    used = torch.unique(w_hat)
    assert f"levels used: {used.numel()} of {qmax - qmin + 1}" in readout
    # bars: one per level, heights = how many weights landed there
    segs = bit_dash.q_bars.get_segments()
    levels = np.array([s[0, 0] for s in segs])
    heights = np.array([s[1, 1] for s in segs])
    assert len(segs) == qmax - qmin + 1 and heights.sum() == w.numel()
    for value in used.tolist():
        i = int(np.argmin(np.abs(levels - value)))
        assert np.isclose(levels[i], value) and heights[i] == int((w_hat == value).sum())
    grid = bit_dash.grid_lines.get_segments()
    assert len(grid) == (qmax - qmin + 1 if qmax - qmin + 1 <= 64 else 0)
    clip = [s[0, 0] for s in bit_dash.clip_lines.get_segments()]
    assert np.allclose(clip, [(qmin - zp.item()) * scale.item(), (qmax - zp.item()) * scale.item()])


def test_bit_width_other_layer(bit_dash: BitWidthDashboard) -> None:
    bit_dash.layer_dropdown.value = "fc"
    bit_dash.bits_slider.value = 3
    assert bit_dash.last_error is None and "cnn fc (BN folded), 15360 weights" in bit_dash.readout()
    assert bit_dash.hist.get_data().values.sum() == bit_dash.weights["fc"].numel()


def test_bit_width_slider_clamped(bit_dash: BitWidthDashboard) -> None:
    bit_dash.bits_slider.value = 99
    assert bit_dash.bits_slider.value == 8 and "8 bits" in bit_dash.readout()


@pytest.mark.parametrize("tensor_index", [0, 1])
@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("fraction", [0.04, 0.3, 1.0])
def test_range_choice_matches_clip_rounding_error(range_dash: RangeChoiceDashboard, tensor_index: int, bits: int, fraction: float) -> None:
    range_dash.tensor_dropdown.value = range_dash.tensor_dropdown.options[tensor_index]
    range_dash.bits_toggle.value = bits
    range_dash.threshold_slider.value = fraction
    tensor = range_dash.tensors[range_dash.tensor_dropdown.value]
    t = fraction * tensor.amax
    split = clip_rounding_error(tensor.x, t, bits, tensor.signed)
    readout = range_dash.readout()
    assert range_dash.last_error is None
    assert f"t = {fraction:.2f} x max|x| = {t:.4g}" in readout
    assert f"MSE: clipping = {split.clipping:.4g}, rounding = {split.rounding:.4g}, total = {split.total:.4g}" in readout
    assert f"values clipped: {100 * split.clipped_fraction:.3f}%" in readout
    mx, my = range_dash.marker.get_data()
    assert mx[0] == pytest.approx(t) and my[0] == pytest.approx(split.total, rel=1e-9)
    assert range_dash.t_line.get_xdata()[0] == pytest.approx(t)
    np.testing.assert_allclose(range_dash.total_curve.get_ydata(), tensor.curves[bits].total)


def test_range_choice_sweet_spot_and_percentile(range_dash: RangeChoiceDashboard) -> None:
    range_dash.tensor_dropdown.value = range_dash.tensor_dropdown.options[1]
    range_dash.bits_toggle.value = 4
    tensor = range_dash.tensors[range_dash.tensor_dropdown.value]
    assert not tensor.signed and tensor.amax == float(tensor.x.max())
    reference = torch.quantile(tensor.x.abs().double(), 0.9999).item()  # linear interpolation, in float64
    assert tensor.percentile == pytest.approx(reference, rel=1e-6) and tensor.percentile < tensor.amax
    curve = tensor.curves[4]
    best = curve.best
    assert all(clip_rounding_error(tensor.x, curve.thresholds[i], 4, False).total >= curve.total[best] for i in (best - 1, best + 1))
    range_dash.threshold_slider.value = range_choice.FRACTIONS[best]
    assert range_dash.marker.get_data()[1][0] == curve.total.min()
    assert range_dash.best_line.get_xdata()[0] == pytest.approx(curve.thresholds[best])
    assert f"(max is {tensor.amax / tensor.percentile:.2f}x larger)" in range_dash.readout()


def test_range_choice_slider_extremes(range_dash: RangeChoiceDashboard) -> None:
    range_dash.threshold_slider.value = -5
    assert range_dash.threshold_slider.value == pytest.approx(range_choice.FRACTIONS[0])
    range_dash.threshold_slider.value = 7
    assert range_dash.threshold_slider.value == 1.0 and "values clipped: 0.000%" in range_dash.readout()
