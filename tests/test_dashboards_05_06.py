"""Lesson 05/06 dashboards in plain Python: readouts and bars equal quantize_model + evaluate."""

from __future__ import annotations

import numpy as np
import pytest

from qlab.dashboards import PerChannelDashboard, WholeModelPTQDashboard
from qlab.dashboards.whole_model_ptq import FLOAT
from qlab.evaluation import evaluate
from qlab.models import load_pretrained
from qlab.ptq import quantize_model, quantize_weight, weighted_layers
from qlab.report import model_size
from qlab.session import PTQSession, calibration_data


@pytest.fixture(scope="module")
def session() -> PTQSession:
    return PTQSession()


@pytest.fixture(scope="module")
def per_channel(session: PTQSession) -> PerChannelDashboard:
    return PerChannelDashboard(session)


@pytest.fixture(scope="module")
def whole(session: PTQSession) -> WholeModelPTQDashboard:
    return WholeModelPTQDashboard(session)


def visible_heights(bars) -> list[float]:
    return [b.get_height() for b in bars if b.get_visible()]


def expected_accuracy(name: str, **config) -> tuple[float, list]:
    """Accuracy and report straight from quantize_model (no cache, no memo)."""
    qmodel = quantize_model(load_pretrained(name), calib_data=calibration_data(), **config)
    return evaluate(qmodel), qmodel.report


@pytest.mark.parametrize(
    ("bits", "granularity", "group"),
    [(2, "per_tensor", 16), (4, "per_tensor", 16), (4, "per_channel", 16), (8, "per_group", 64), (3, "per_group", 32)],
)
def test_per_channel_matches_quantize_model(per_channel: PerChannelDashboard, bits: int, granularity: str, group: int) -> None:
    per_channel.bits_slider.value = bits
    per_channel.granularity_dropdown.value = granularity
    per_channel.group_dropdown.value = group
    group_size = group if granularity == "per_group" else None
    accuracy, report = expected_accuracy("depthwise", weight_bits=bits, granularity=granularity, group_size=group_size)
    assert per_channel.last_error is None
    assert f"test accuracy (10,000 images): {100 * accuracy:.2f}%" in per_channel.readout()
    assert per_channel.state.result.accuracy == accuracy
    np.testing.assert_allclose(visible_heights(per_channel.sqnr_bars), [r.weight_sqnr_db for r in report], rtol=1e-6)


@pytest.mark.parametrize("layer", ["stem_conv", "block1_dw_conv", "block4_pw_conv", "fc"])
def test_per_channel_scales_of_chosen_layer(per_channel: PerChannelDashboard, session: PTQSession, layer: str) -> None:
    per_channel.bits_slider.value = 99  # clamped to the slider's max
    assert per_channel.bits_slider.value == per_channel.bits_slider.max
    per_channel.layer_dropdown.value = layer
    w = dict(weighted_layers(session.cache("depthwise").folded))[layer].weight
    scales = quantize_weight(w, per_channel.bits_slider.max, "per_channel").scale
    assert visible_heights(per_channel.scale_bars) == pytest.approx(scales.tolist())
    tensor_scale = float(quantize_weight(w, per_channel.bits_slider.max, "per_tensor").scale)
    assert per_channel.tensor_line.get_ydata()[0] == pytest.approx(tensor_scale)
    assert f"{layer}: per-channel scales" in per_channel.readout()


def test_per_tensor_collapse_is_visible(per_channel: PerChannelDashboard) -> None:
    per_channel.bits_slider.value = 4
    per_channel.granularity_dropdown.value = "per_tensor"
    collapsed = per_channel.state.result.accuracy
    per_channel.granularity_dropdown.value = "per_channel"
    assert per_channel.state.result.accuracy > collapsed + 0.3


@pytest.mark.parametrize(
    ("model", "wbits", "abits", "granularity", "calibrator", "mode"),
    [("cnn", 8, 8, "per_channel", "minmax", "static"),
     ("depthwise", 4, None, "per_tensor", "minmax", "static"),
     ("mlp", 2, 4, "per_tensor", "entropy", "static"),
     ("cnn", 6, 6, "per_channel", "percentile", "dynamic"),
     ("depthwise", 8, 4, "per_channel", "histogram", "static")],
)
def test_whole_model_matches_quantize_model(
    whole: WholeModelPTQDashboard, model: str, wbits: int, abits: int | None, granularity: str, calibrator: str, mode: str
) -> None:
    whole.model_dropdown.value = model
    whole.weight_bits_slider.value = wbits
    whole.act_bits_dropdown.value = FLOAT if abits is None else abits
    assert whole.act_bits_dropdown.label == ("float" if abits is None else str(abits))
    whole.granularity_dropdown.value = granularity
    whole.calibrator_dropdown.value = calibrator
    whole.act_mode_dropdown.value = mode
    config = dict(weight_bits=wbits, act_bits=abits, granularity=granularity, calibrator=calibrator, act_mode=mode)
    accuracy, report = expected_accuracy(model, **config)
    assert whole.last_error is None and whole.state.result.accuracy == accuracy
    fp, q = model_size(report)
    readout = whole.readout()
    assert f"test accuracy (10,000 images): {100 * accuracy:.2f}%" in readout
    assert f"size: {q} bytes vs {fp} bytes FP32" in readout
    np.testing.assert_allclose(visible_heights(whole.w_bars), [r.weight_sqnr_db for r in report], rtol=1e-6)
    act = [r.act_sqnr_db for r in report if r.act_sqnr_db is not None]
    np.testing.assert_allclose(visible_heights(whole.a_bars), act, rtol=1e-6)
    assert len(act) == (0 if abits is None else len(report))
    assert visible_heights(whole.size_bars) == pytest.approx([fp / 1024, q / 1024])


def test_whole_model_memo_returns_visited_result(whole: WholeModelPTQDashboard) -> None:
    whole.model_dropdown.value = "mlp"
    whole.weight_bits_slider.value = 5
    first = whole.state.result
    whole.weight_bits_slider.value = 6
    whole.weight_bits_slider.value = 5
    assert whole.state.result is first  # memoised: not recomputed
    whole.memoize = False
    whole.update()
    assert whole.state.result is not first and whole.state.result.accuracy == first.accuracy
    whole.memoize = True


def test_warm_up_reports_first_time_costs(session: PTQSession) -> None:
    costs = session.warm_up("mlp", ["minmax", "entropy"], [8])
    assert set(costs) == {"mlp: PTQ cache + FP32 accuracy", "mlp: minmax calibration (8 bits)", "mlp: entropy calibration (8 bits)"}
    warmed = session.cache("mlp").act_ranges("entropy", 8)
    assert session.cache("mlp").act_ranges("entropy", 8) is warmed, "warm_up must leave the ranges cached"
