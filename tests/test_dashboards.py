"""Dashboards built in plain Python (no kernel): controls drive artists and readouts consistently."""

from __future__ import annotations

import importlib.util
import io
import json
import random
import re
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import matplotlib
import nbformat
import numpy as np
import pytest
import torch
from matplotlib.backends.backend_webagg_core import FigureCanvasWebAggCore
from PIL import Image

from qlab import metrics, signals
from qlab.affine import dequantize, fake_quantize, qparams_from_range, qrange, quantize
from qlab.dashboards import (
    REGISTRY, BitWidthDashboard, Dashboard, RangeChoiceDashboard, ScaleZeroPointDashboard, SignalQuantizerDashboard,
)
from qlab.dashboards import _base, rounding_and_clamping
from qlab.dashboards.integer_inference import FollowOneOutputDashboard, MultiplierPrecisionDashboard
from qlab.dashboards._base import READOUT_FONT_PX, READOUT_LINE_HEIGHT, frame_png, nice_limit, rgba_png, snapshot_png
from qlab.dashboards import per_channel, whole_model_ptq
from qlab.models import MODEL_NAMES, load_pretrained
from qlab.evaluation import evaluate
from qlab.ptq import model_fingerprint, quantize_model, weighted_layers
from qlab.calibration import CALIBRATORS
from qlab.session import (FP32_LABEL, PTQSession, config_label, load_accuracy_table, one_layer_quantized,
                          range_label, ranges_from_json)

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("dashboard_accuracy", ROOT / "benchmarks" / "dashboard_accuracy.py")
dashboard_accuracy = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(dashboard_accuracy)
LATENCY_BROWSER_MARKER = "<!-- browser-side table: benchmarks/dashboard_latency_browser.py -->"
"""Where the browser-side part of benchmarks/results/dashboard_latency.md starts (the kernel-side table comes first)."""


@pytest.fixture(scope="module")
def signal_dash() -> SignalQuantizerDashboard:
    return SignalQuantizerDashboard()


@pytest.fixture(scope="module")
def grid_dash() -> ScaleZeroPointDashboard:
    return ScaleZeroPointDashboard()


@pytest.mark.parametrize("name", list(REGISTRY))
def test_registry_builds_displayable_dashboards(name: str) -> None:
    backend = matplotlib.get_backend()
    dash = REGISTRY[name]()
    assert isinstance(dash, Dashboard)
    assert isinstance(dash.widget, widgets.VBox)
    assert dash.canvas in dash.widget.children and dash.canvas.figure is dash.fig
    assert dash.last_error is None and dash.readout().startswith(dash.title)
    assert matplotlib.get_backend() == backend, "building a dashboard must not switch the global backend"


def test_each_lesson_displays_the_dashboard_registered_under_its_number() -> None:
    """REGISTRY's "NN ..." entries are the classes lesson NN's notebook imports and displays."""
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    shown = {}
    for path in notebooks:
        source = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
        shown[path.name[:2]] = sorted(re.findall(r"^from qlab\.dashboards import (\w+)$", source, re.M))
    registered: dict[str, list[str]] = {}
    for name, cls in REGISTRY.items():
        registered.setdefault(name[:2], []).append(cls.__name__)
    registered = {k: sorted(v) for k, v in registered.items()}
    assert shown == registered


@pytest.mark.parametrize("name", list(REGISTRY))
def test_threads_and_budget_agree_with_notebook_and_latency_results(name: str) -> None:
    """A dashboard runs with the torch threads its lesson's setup() sets, and the latency table
    (benchmarks/results/dashboard_latency.md) measured it with those threads and its budget."""
    cls = REGISTRY[name]
    (notebook,) = (ROOT / "notebooks").glob(f"{name[:2]}_*.ipynb")
    first = next(c.source for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "code")
    threads = re.search(r"^setup\((?:threads=(\d))?\)$", first, re.M)
    assert threads is not None and int(threads.group(1) or 1) == cls.threads
    kernel_side = (ROOT / "benchmarks" / "results" / "dashboard_latency.md").read_text().split(LATENCY_BROWSER_MARKER)[0]
    (row,) = [line for line in kernel_side.splitlines() if line.startswith(f"| {name} |")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert int(cells[1]) == cls.threads and float(cells[2]) == cls.budget_ms


@pytest.mark.parametrize("bits", [2, 5, 12])
@pytest.mark.parametrize("clip", [0.1, 0.8, 2.0])
def test_signal_plot_equals_fake_quantize(signal_dash: SignalQuantizerDashboard, bits: int, clip: float) -> None:
    signal_dash.rounding_dropdown.value = "half_even"
    signal_dash.bits_slider.value = bits
    signal_dash.clip_slider.value = clip
    x = signal_dash.signals[signal_dash.signal_dropdown.value]
    scale, zp = qparams_from_range(-clip, clip, bits, signed=True, symmetric=True, narrow=True)
    expected = fake_quantize(x, scale, zp, *qrange(bits, signed=True, narrow=True))
    np.testing.assert_array_equal(signal_dash.line_q.get_ydata(), expected.numpy())
    np.testing.assert_array_equal(signal_dash.line_err.get_ydata(), (expected - x).numpy())
    readout = signal_dash.readout()
    assert f"bits = {bits}, clip = ±{clip:.2f} mV" in readout
    assert f"SQNR = {metrics.sqnr_db(x, expected):.2f} dB" in readout
    assert f"MSE = {metrics.mse(x, expected):.4g} mV^2" in readout


@pytest.mark.parametrize("mode", ["floor", "half_away", "stochastic"])
def test_signal_rounding_modes_use_qlab_rounding(signal_dash: SignalQuantizerDashboard, mode: str) -> None:
    signal_dash.bits_slider.value = 3
    signal_dash.clip_slider.value = 1.0
    signal_dash.rounding_dropdown.value = mode
    x = signal_dash.signals[signal_dash.signal_dropdown.value]
    scale, zp = qparams_from_range(-1.0, 1.0, 3, signed=True, symmetric=True, narrow=True)
    gen = torch.Generator().manual_seed(signals.STOCHASTIC_SEED) if mode == "stochastic" else None
    codes = quantize(x, scale, zp, -3, 3, rounding=mode, generator=gen)
    np.testing.assert_array_equal(signal_dash.line_q.get_ydata(), dequantize(codes, scale, zp).numpy())
    first = signal_dash.readout()
    signal_dash.update()  # same settings -> same (seeded) picture
    assert signal_dash.readout() == first
    signal_dash.rounding_dropdown.value = "half_even"


def test_signal_slider_values_beyond_range_are_clamped(signal_dash: SignalQuantizerDashboard) -> None:
    signal_dash.bits_slider.value = 99
    assert signal_dash.bits_slider.value == signal_dash.bits_slider.max
    assert f"bits = {signal_dash.bits_slider.max}" in signal_dash.readout()
    signal_dash.signal_dropdown.value = "sine + chirp"
    assert "signal: sine + chirp" in signal_dash.readout()
    signal_dash.signal_dropdown.value = "ECG-like"


@pytest.mark.parametrize(
    ("value_range", "bits", "symmetric", "signed", "convention"),
    [((-1.0, 3.0), 3, False, False, "textbook"), ((0.5, 6.0), 8, False, True, "textbook"),
     ((-10.0, 10.0), 2, True, True, "torch"), ((-0.5, 2.0), 4, True, False, "textbook"), ((0.0, 0.0), 2, False, False, "textbook")],
)
def test_grid_matches_qparams(grid_dash: ScaleZeroPointDashboard, value_range, bits, symmetric, signed, convention) -> None:
    grid_dash.range_slider.value = value_range
    grid_dash.bits_slider.value = bits
    grid_dash.symmetric_toggle.value = symmetric
    grid_dash.signed_toggle.value = signed
    grid_dash.convention_dropdown.value = convention
    assert grid_dash.last_error is None
    scale, zp = qparams_from_range(*value_range, bits, signed, symmetric, convention=convention)
    qmin, qmax = qrange(bits, signed)
    grid = dequantize(torch.arange(qmin, qmax + 1, dtype=torch.int32), scale, zp).numpy()
    ticks = np.array([seg[0, 0] for seg in grid_dash.ticks.get_segments()])
    np.testing.assert_allclose(ticks, grid, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(grid_dash.zero_tick.get_xdata(), [0.0, 0.0])
    assert grid[int(zp) - qmin] == 0.0  # the highlighted zero-point tick is real 0, exactly
    x, q = grid_dash.transfer.get_data()
    np.testing.assert_array_equal(q, quantize(torch.as_tensor(x), scale, zp, qmin, qmax).numpy())
    readout = grid_dash.readout()
    assert f"codes [qmin, qmax] = [{qmin}, {qmax}]" in readout
    assert f"scale = {scale.item():.6g}" in readout and f"zero_point = {zp.item()} " in readout


def test_exception_in_update_is_shown_not_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    dash = SignalQuantizerDashboard()
    before = dash.line_q.get_ydata().copy()

    def broken(*args, **kwargs):
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(rounding_and_clamping, "quantize_signal", broken)
    dash.bits_slider.value = 6  # the observer must not raise ...
    assert dash.last_error == "RuntimeError: simulated failure"
    assert "simulated failure" in dash.error_box.value  # ... it is shown to the learner
    assert dash.readout().endswith("ERROR: RuntimeError: simulated failure")
    np.testing.assert_array_equal(dash.line_q.get_ydata(), before)  # last good picture kept
    monkeypatch.undo()
    dash.bits_slider.value = 7
    assert dash.last_error is None and dash.error_box.value == ""


# layered drawing, limits and layout (issue 8) ---------------------------------------------
MY_DASHBOARDS = [name for name in REGISTRY if REGISTRY[name].__module__.rsplit(".", 1)[-1] not in ("qat_gradients", "qat_finetune")]


@pytest.fixture(scope="module")
def built() -> dict[str, Dashboard]:
    return {}


def _dashboard(built: dict[str, Dashboard], name: str) -> Dashboard:
    if name not in built:
        built[name] = REGISTRY[name]()
    return built[name]


def _pixels(dash: Dashboard) -> np.ndarray:
    dash.canvas.draw()
    return np.asarray(dash.canvas.get_renderer().buffer_rgba()).copy()


@pytest.mark.parametrize(("value", "expected"), [(0.7, 0.75), (1.0, 1.0), (1.01, 1.5), (3.2e-5, 5e-5), (760.0, 1000.0), (7.5, 7.5)])
def test_nice_limit_is_the_next_ladder_step(value: float, expected: float) -> None:
    assert nice_limit(value) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_nice_limit_rejects_non_positive_values(bad: float) -> None:
    with pytest.raises(ValueError, match="value must be positive"):
        nice_limit(bad)


@pytest.mark.parametrize("name", list(REGISTRY))
def test_cached_static_layer_draws_the_same_pixels_as_a_fresh_one(built, name: str) -> None:
    """A control change redraws animated artists over the cached static layer; the result equals
    a render from scratch, and the same figure and artists are reused (no re-creation)."""
    dash = _dashboard(built, name)
    assert dash.dynamic and all(a.get_animated() for a in dash.dynamic)
    fig, artists = dash.fig, list(dash.dynamic)
    before = _pixels(dash)
    control = next(c for c in dash.controls if isinstance(c, (widgets.IntSlider, widgets.FloatSlider)))
    control.value = control.value + control.step if control.value + control.step <= control.max else control.min
    cached = _pixels(dash)
    dash.forget_layers()
    fresh = _pixels(dash)
    assert dash.fig is fig and dash.dynamic == artists and dash.canvas.figure is fig
    assert not np.array_equal(before, cached)  # the step shows
    np.testing.assert_array_equal(cached, fresh)


@pytest.mark.parametrize("name", MY_DASHBOARDS)
def test_legends_stay_off_the_data(built, name: str) -> None:
    dash = _dashboard(built, name)
    renderer = dash.canvas.get_renderer()
    dash.canvas.draw()
    legends = list(dash.fig.legends) + [ax.get_legend() for ax in dash.fig.axes if ax.get_legend() is not None]
    for legend in legends:
        box = legend.get_window_extent(renderer)
        for ax in dash.fig.axes:
            assert not box.overlaps(ax.bbox), f"a legend covers the axes {ax.get_title() or ax.get_ylabel()!r}"


@pytest.mark.parametrize("name", MY_DASHBOARDS)
def test_figure_leaves_room_for_controls_and_readout_on_a_laptop(built, name: str) -> None:
    """About 600 px of notebook area on a 1366x768 screen: figure <= 384 px, the rest for
    two rows of controls and the readout."""
    dash = _dashboard(built, name)
    _, height = dash.canvas.get_width_height()
    readout_px = READOUT_LINE_HEIGHT * READOUT_FONT_PX * len(dash.readout().splitlines())
    assert height <= 384 and height + readout_px + 2 * 36 <= 600


def test_range_slider_track_is_long_enough_for_its_steps(grid_dash: ScaleZeroPointDashboard) -> None:
    slider = grid_dash.range_slider
    steps = round((slider.max - slider.min) / slider.step)
    assert int(slider.layout.width.removesuffix("px")) >= 2.5 * steps  # >= 2.5 px per step, handles apart


def test_range_choice_mse_axis_starts_near_the_data(built) -> None:
    """Regression: the log MSE axis went down to 1e-18 (a clipping error far below any total)."""
    dash = _dashboard(built, "04 range choice")
    for name in dash.tensor_dropdown.options:
        for bits in dash.bits_toggle.options:
            dash.tensor_dropdown.value, dash.bits_toggle.value = name, bits
            curve = dash.tensors[name].curves[bits]
            low, high = dash.ax_e.get_ylim()
            assert low == pytest.approx(0.1 * curve.total.min()) and high >= curve.total.max()


def test_per_channel_scale_axis_ticks_whole_channels(built) -> None:
    dash = _dashboard(built, "05 per-channel weights")
    dash.canvas.draw()
    lo, hi = dash.ax_scales.get_xlim()
    ticks = [t for t in dash.ax_scales.get_xticks() if lo <= t <= hi]
    assert ticks and all(float(t).is_integer() for t in ticks)


def test_whole_model_accuracy_axis_shows_the_change_and_the_noise(built) -> None:
    dash = _dashboard(built, "06 whole-model PTQ")
    dash.model_dropdown.value = "mlp"
    dash.weight_bits_slider.value = 4
    s = dash.state
    change = 100 * (s.result.accuracy - s.fp32_accuracy)
    assert dash.acc_bar.get_height() == pytest.approx(change)
    noise = 100 * metrics.accuracy_stderr(s.fp32_accuracy, 10_000)
    assert dash.noise_band.get_y() == pytest.approx(-noise) and dash.noise_band.get_height() == pytest.approx(2 * noise)
    low, high = dash.ax_acc.get_ylim()
    assert low <= min(change, -noise) and high >= max(change, noise) and high - low < 100  # not a 0-100 % axis


def test_whole_model_inert_controls_are_disabled_and_not_reevaluated(built) -> None:
    dash = _dashboard(built, "06 whole-model PTQ")
    dash.model_dropdown.value = "mlp"
    dash.act_mode_dropdown.value = "static"
    dash.act_bits_dropdown.value = 8
    assert not dash.calibrator_dropdown.disabled and not dash.act_mode_dropdown.disabled
    dash.act_mode_dropdown.value = "dynamic"
    assert dash.calibrator_dropdown.disabled and not dash.act_mode_dropdown.disabled
    dash.act_bits_dropdown.value = 0  # float
    assert dash.calibrator_dropdown.disabled and dash.act_mode_dropdown.disabled
    result = dash.state.result
    dash.calibrator_dropdown.value = "mse"  # ignored by quantize_model for float activations
    assert dash.state.result is result  # same memo entry: no new evaluation
    dash.act_mode_dropdown.value = "static"
    dash.act_bits_dropdown.value = 8


def test_session_key_drops_only_ignored_settings() -> None:
    key = PTQSession.result_key
    static = {"weight_bits": 8, "act_bits": 8, "act_mode": "static", "calibrator": "mse"}
    assert key("cnn", static) != key("cnn", {**static, "calibrator": "minmax"})
    dynamic = {**static, "act_mode": "dynamic"}
    assert key("cnn", dynamic) == key("cnn", {**dynamic, "calibrator": "minmax"}) != key("cnn", static)
    floating = {**static, "act_bits": None}
    assert key("cnn", floating) == key("cnn", {**floating, "calibrator": "minmax", "act_mode": "dynamic"})


def test_session_key_is_the_same_for_a_default_left_implicit_or_spelled_out() -> None:
    key = PTQSession.result_key
    assert key("cnn", {"weight_bits": 4}) == key("cnn", {"weight_bits": 4, "granularity": "per_channel", "group_size": None,
                                                        "symmetric_weights": True, "act_bits": None})
    static = {"weight_bits": 8, "act_bits": 4}
    assert key("cnn", static) == key("cnn", {**static, "act_mode": "static", "calibrator": "minmax", "act_granularity": "per_batch"})
    assert key("cnn", {**static, "act_mode": "dynamic"}) != key("cnn", {**static, "act_mode": "dynamic", "act_granularity": "per_batch"})
    assert config_label({"weight_bits": 4}) == config_label({"granularity": "per_channel", "weight_bits": 4, "act_bits": None})


# measured accuracy table of the whole-model dashboards ------------------------------------
def _labels(model: str, settings: list[dict]) -> set[str]:
    return {config_label(dict(PTQSession.result_key(model, c)[1])) for c in settings}


def test_accuracy_table_covers_every_setting_of_both_whole_model_dashboards() -> None:
    table = load_accuracy_table()
    entry = table[per_channel.MODEL]
    assert entry["fingerprint"] == model_fingerprint(load_pretrained(per_channel.MODEL))
    assert _labels(per_channel.MODEL, per_channel.settings()) | {FP32_LABEL} <= set(entry["accuracy"])
    for model in MODEL_NAMES:
        assert table[model]["fingerprint"] == model_fingerprint(load_pretrained(model))
        assert _labels(model, whole_model_ptq.settings()) | {FP32_LABEL} <= set(table[model]["accuracy"])


@pytest.mark.parametrize("config", [
    {"weight_bits": 4, "granularity": "per_tensor", "group_size": None},
    {"weight_bits": 3, "granularity": "per_group", "group_size": 32},
])
def test_stored_accuracy_equals_a_live_evaluation(config: dict) -> None:
    torch.set_num_threads(2)
    try:
        live = PTQSession(table=None).run(per_channel.MODEL, memoize=False, **config).accuracy
    finally:
        torch.set_num_threads(1)
    assert PTQSession().stored_accuracies(per_channel.MODEL)[config_label(config)] == live


def _with_threads(function, *args, **kwargs):
    """``function(*args, **kwargs)`` with the 2 torch threads the table was measured with."""
    torch.set_num_threads(2)
    try:
        return function(*args, **kwargs)
    finally:
        torch.set_num_threads(1)


def test_accuracy_table_covers_every_setting_the_lessons_ask_for() -> None:
    table = load_accuracy_table()
    for lesson, kinds in dashboard_accuracy.LESSONS.items():
        for model, settings in kinds["run"].items():
            entry = table[model]
            assert entry["fingerprint"] == model_fingerprint(load_pretrained(model)), model
            missing = ({config_label(c) for c in settings} | {FP32_LABEL}) - set(entry["accuracy"])
            assert not missing, f"lesson {lesson}, {model}: {missing}"
        for model, settings in kinds.get("sensitivity", {}).items():
            layers = [name for name, _ in weighted_layers(load_pretrained(model))]
            for config in settings:
                assert sorted(table[model]["sensitivity"][config_label(config)]) == sorted(layers), (lesson, model, config)


@pytest.mark.parametrize(("model", "config"), [
    ("cnn", {"weight_bits": 8, "act_bits": 8, "calibrator": "minmax"}),
    ("depthwise", {"weight_bits": 8, "act_bits": 4, "calibrator": "entropy"}),
    ("depthwise", {"weight_bits": 8, "act_bits": 4, "act_mode": "dynamic"}),
])
def test_stored_lesson_accuracy_equals_a_live_evaluation(model: str, config: dict) -> None:
    assert config in dashboard_accuracy.LESSONS["06"]["run"][model]
    live = _with_threads(PTQSession(table=None).run, model, memoize=False, **config).accuracy
    assert PTQSession().run(model, **config).accuracy == PTQSession().stored_accuracies(model)[config_label(config)] == live


def test_stored_fp32_accuracy_equals_a_live_evaluation() -> None:
    live = _with_threads(evaluate, load_pretrained("cnn"))
    assert PTQSession().stored_accuracies("cnn")[FP32_LABEL] == live


@pytest.mark.parametrize("layer", ["stem_conv", "block2_pw_conv"])
def test_stored_sensitivity_equals_a_live_evaluation(layer: str) -> None:
    config = {"weight_bits": 8, "act_bits": 4, "calibrator": "minmax"}
    assert config in dashboard_accuracy.LESSONS["06"]["sensitivity"]["depthwise"]
    session = PTQSession(table=None)
    folded = session.cache("depthwise").folded
    qmodel = quantize_model(session.model("depthwise"), cache=session.cache("depthwise"), **config)
    live = _with_threads(evaluate, one_layer_quantized(folded, qmodel, layer))
    stored = PTQSession().sensitivity("depthwise", **config)
    assert list(stored) == [name for name, _ in weighted_layers(folded)], "in the model's layer order"
    assert stored[layer] == live


def _dashboard_act_bits() -> list[int]:
    return [b for _, b in whole_model_ptq.ACT_BITS if b != whole_model_ptq.FLOAT]


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_stored_act_ranges_equal_a_live_calibration(model: str) -> None:
    """Every calibrator at every activation bit width of lesson 06's dashboard, bit for bit."""
    session = PTQSession()
    labels = {range_label(c, b) for c in CALIBRATORS for b in _dashboard_act_bits()}
    assert set(session.stored_act_ranges(model)) == labels
    live_cache = PTQSession(table=None).cache(model)
    for calibrator in CALIBRATORS:
        for bits in _dashboard_act_bits():
            live = _with_threads(live_cache.act_ranges, calibrator, bits)
            kept = session.cache(model).act_ranges(calibrator, bits)
            assert list(kept) == list(live), (calibrator, bits)
            for layer, (lo, hi) in live.items():
                assert torch.equal(kept[layer][0], lo) and torch.equal(kept[layer][1], hi), (calibrator, bits, layer)


def test_first_visit_to_a_static_setting_calibrates_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The session's cache starts with the table's ranges: no calibrator runs on a first visit."""
    def no_calibration(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("calibrated although the table holds the ranges")

    session = PTQSession()
    session.cache("depthwise")
    monkeypatch.setattr("qlab.ptq.calibrate", no_calibration)
    for calibrator in CALIBRATORS:
        for bits in _dashboard_act_bits():
            session.run("depthwise", weight_bits=8, act_bits=bits, calibrator=calibrator)


def test_act_ranges_are_used_only_for_the_model_they_were_measured_on(tmp_path: Path) -> None:
    live = PTQSession(table=None).cache("mlp").act_ranges("mse", 8)
    fake = {layer: [-1.0, 2.0] for layer in live}
    table = {"models": {"mlp": {"fingerprint": model_fingerprint(load_pretrained("mlp")), "accuracy": {},
                                "act_ranges": {range_label("mse", 8): fake}}}}
    path = tmp_path / "table.json"
    path.write_text(json.dumps(table))
    assert PTQSession(table=path).cache("mlp").act_ranges("mse", 8) == ranges_from_json(fake)
    table["models"]["mlp"]["fingerprint"] = "0" * 64  # other weights: calibrate instead
    path.write_text(json.dumps(table))
    recalibrated = PTQSession(table=path).cache("mlp").act_ranges("mse", 8)
    assert all(torch.equal(recalibrated[k][i], live[k][i]) for k in live for i in (0, 1))


def test_sensitivity_table_is_used_only_for_the_model_it_was_measured_on(tmp_path: Path) -> None:
    config = {"weight_bits": 2}
    live = PTQSession(table=None).sensitivity("mlp", **config)
    fake = {"fc3": 0.3, "fc1": 0.1, "fc2": 0.2}  # sorted keys, as the table is written
    table = {"models": {"mlp": {"fingerprint": model_fingerprint(load_pretrained("mlp")), "accuracy": {},
                                "sensitivity": {config_label(config): fake}}}}
    path = tmp_path / "table.json"
    path.write_text(json.dumps(table))
    assert list(PTQSession(table=path).sensitivity("mlp", **config).items()) == [("fc1", 0.1), ("fc2", 0.2), ("fc3", 0.3)]
    table["models"]["mlp"]["fingerprint"] = "0" * 64  # other weights: evaluate instead
    path.write_text(json.dumps(table))
    assert PTQSession(table=path).sensitivity("mlp", **config) == live != fake


def test_table_is_used_only_for_the_model_it_was_measured_on(tmp_path: Path) -> None:
    config = {"weight_bits": 6, "granularity": "per_channel", "act_bits": None}
    live = PTQSession(table=None).run("mlp", **config).accuracy
    table = {"models": {"mlp": {"fingerprint": model_fingerprint(load_pretrained("mlp")),
                                "accuracy": {config_label(config): 0.125, FP32_LABEL: 0.5}}}}
    path = tmp_path / "table.json"
    path.write_text(json.dumps(table))
    assert PTQSession(table=path).run("mlp", **config).accuracy == 0.125
    assert PTQSession(table=path).fp32_accuracy("mlp") == 0.5
    table["models"]["mlp"]["fingerprint"] = "0" * 64  # other weights: evaluate instead
    path.write_text(json.dumps(table))
    assert PTQSession(table=path).run("mlp", **config).accuracy == live != 0.125


def test_per_channel_group_size_is_enabled_only_for_per_group() -> None:
    dash = per_channel.PerChannelDashboard()
    assert dash.granularity_dropdown.value != "per_group" and dash.group_dropdown.disabled
    dash.granularity_dropdown.value = "per_group"
    assert not dash.group_dropdown.disabled and f"per_group (size {dash.group_dropdown.value})" in dash.readout()
    dash.granularity_dropdown.value = "per_channel"
    assert dash.group_dropdown.disabled


def test_snapshot_shows_the_animated_artists(grid_dash: ScaleZeroPointDashboard) -> None:
    """Saved figures skip figure-level animated artists (the title here): the stored snapshot is
    taken with every artist static, and the layered drawing resumes afterwards."""
    from qlab.dashboards._base import snapshot_png

    with grid_dash.drawn_in_full():
        full = snapshot_png(grid_dash.fig)
        assert not any(a.get_animated() for a in grid_dash.dynamic)
    assert all(a.get_animated() for a in grid_dash.dynamic)
    title = grid_dash.title_text.get_text()
    grid_dash.title_text.set_text("")
    with grid_dash.drawn_in_full():
        untitled = snapshot_png(grid_dash.fig)
    grid_dash.title_text.set_text(title)
    assert title and full != untitled


# frames sent to the browser (issue 8) -------------------------------------------------------
def _record_messages(dash: Dashboard, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[bytes]]]:
    """Every message the dashboard's canvas sends to the browser, as (type, buffers)."""
    sent: list[tuple[str, list[bytes]]] = []
    send = dash.canvas.send

    def recording_send(content: dict, buffers: list | None = None) -> None:
        sent.append((json.loads(content["data"])["type"], [bytes(b) for b in buffers or []]))
        send(content, buffers)

    monkeypatch.setattr(dash.canvas, "send", recording_send)
    return sent


def _connect_browser(dash: Dashboard) -> None:
    """What ipympl's browser view sends once it is shown."""
    dash.canvas._handle_message(dash.canvas, {"type": "initialized"}, [])


def _png_pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))


@pytest.mark.parametrize("name", ["01 signal quantizer", "07 QAT gradients"])
def test_update_sends_the_new_frame_without_waiting_for_a_browser_request(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a browser connected, one control change sends exactly one frame, showing the new
    state, and no "draw" event (which would cost a kernel-browser round trip before the draw)."""
    dash = REGISTRY[name]()
    _connect_browser(dash)
    sent = _record_messages(dash, monkeypatch)
    slider = next(c for c in dash.controls if isinstance(c, widgets.IntSlider))
    for value in (slider.min, slider.min + 1):
        sent.clear()
        slider.value = value
        assert [kind for kind, _ in sent] == ["binary"]
    frame = _png_pixels(sent[0][1][0])
    shown = np.asarray(dash.canvas.get_renderer().buffer_rgba())
    changed = frame[..., 3] != 0  # a "diff" frame: unchanged pixels are transparent
    assert dash.canvas._current_image_mode == "diff" and changed.any()
    np.testing.assert_array_equal(frame[changed], shown[changed])


def test_update_without_a_browser_leaves_the_draw_to_the_display(monkeypatch: pytest.MonkeyPatch) -> None:
    """In plain Python (tests, nbconvert) an update renders nothing: it only flags the figure
    for a draw, and the readout and the saved figure still follow the controls."""
    dash = SignalQuantizerDashboard()
    sent = _record_messages(dash, monkeypatch)
    drawn = []
    monkeypatch.setattr(dash.canvas, "draw", lambda: drawn.append(True))
    dash.bits_slider.value = 5
    assert drawn == [] and [kind for kind, _ in sent] == ["draw"]
    assert "bits = 5," in dash.readout()
    with dash.drawn_in_full():
        assert _png_pixels(snapshot_png(dash.fig)).shape[:2] == dash.canvas.get_width_height()[::-1]


def test_frames_equal_matplotlibs_and_use_the_fast_zlib_level(signal_dash: SignalQuantizerDashboard,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """frame_png sends the pixels matplotlib's own get_diff_image would (a full frame, then the
    changed pixels), encoded at zlib level 1 (the zlib header's level bits are 0)."""
    canvas = signal_dash.canvas
    monkeypatch.setattr(canvas.manager, "refresh_all", lambda: None)  # render only; frames taken below
    for value, mode in ((3, "full"), (4, "diff")):
        signal_dash.bits_slider.value = value
        canvas.draw()
        canvas._force_full = mode == "full"
        last = canvas._last_buff.copy()
        ours = frame_png(canvas)
        assert canvas._current_image_mode == mode
        canvas._last_buff, canvas._force_full, canvas._png_is_old = last, mode == "full", True
        theirs = FigureCanvasWebAggCore.get_diff_image(canvas)
        assert canvas._current_image_mode == mode
        np.testing.assert_array_equal(_png_pixels(ours), _png_pixels(theirs))
        idat = ours.index(b"IDAT") + 4
        assert ours[idat] == 0x78 and ours[idat + 1] >> 6 == 0  # zlib: deflate, FLEVEL 0 = fastest
    assert frame_png(canvas) is None  # nothing new drawn since


LAYERED_TENSOR_DASHBOARDS = [SignalQuantizerDashboard, ScaleZeroPointDashboard, BitWidthDashboard, RangeChoiceDashboard,
                             MultiplierPrecisionDashboard]
ANIMATED_AXIS_DASHBOARDS = [SignalQuantizerDashboard, ScaleZeroPointDashboard, BitWidthDashboard, MultiplierPrecisionDashboard,
                            FollowOneOutputDashboard]
MAX_BACKGROUND_MISS_FRACTION = 0.05  # p95 <= 2 x p50 needs fewer than 1 move in 20 to redraw the static layer


def _step_move(control: widgets.ValueWidget) -> Any:
    """The value one key press away: next slider step (wrapping to the start), next option,
    toggled checkbox; a range slider's upper handle steps up."""
    if isinstance(control, widgets.Checkbox):
        return not control.value
    if isinstance(control, (widgets.Dropdown, widgets.ToggleButtons)):
        values = [o[1] if isinstance(o, tuple) else o for o in control.options]
        return values[(values.index(control.value) + 1) % len(values)]
    if isinstance(control, widgets.FloatRangeSlider):
        lo, hi = control.value
        return (lo, round(hi + control.step, 6)) if hi + control.step <= control.max else (control.min, hi)
    return control.value + control.step if control.value + control.step <= control.max else control.min


def _random_move(control: widgets.ValueWidget, rng: random.Random) -> Any:
    """A seeded jump to any legal value (a learner dragging a slider across its track)."""
    if isinstance(control, widgets.FloatRangeSlider):
        steps = round((control.max - control.min) / control.step)
        return tuple(sorted(round(control.min + rng.randint(0, steps) * control.step, 6) for _ in range(2)))
    if isinstance(control, (widgets.IntSlider, widgets.FloatSlider)):
        steps = round((control.max - control.min) / control.step)
        return type(control.min)(round(control.min + rng.randint(0, steps) * control.step, 6))
    return _step_move(control)


@pytest.mark.parametrize("dashboard_class", LAYERED_TENSOR_DASHBOARDS)
@pytest.mark.parametrize("moves", ["step", "random"])
def test_control_moves_rarely_redraw_the_static_layer(dashboard_class: type[Dashboard], moves: str) -> None:
    """Over 60 moves (round-robin over the controls) almost every render reuses a cached static
    layer: an axis limit that follows a control is either animated or taken from a short set
    rendered at build time."""
    dash = dashboard_class()
    dash.canvas.draw()
    rng = random.Random(0)
    misses_before, n_moves = dash.background_misses, 60
    for i in range(n_moves):
        control = dash.controls[i % len(dash.controls)]
        control.value = _step_move(control) if moves == "step" else _random_move(control, rng)
        dash.canvas.draw()
        assert dash.last_error is None
    misses = dash.background_misses - misses_before
    assert misses / n_moves <= MAX_BACKGROUND_MISS_FRACTION, f"{misses} of {n_moves} moves redrew the static layer"


@pytest.mark.parametrize("dashboard_class", LAYERED_TENSOR_DASHBOARDS)
def test_build_sends_no_frame_before_a_browser_connects(dashboard_class: type[Dashboard]) -> None:
    """Static layers cached at build time are rendered without sending frames: the first frame a
    browser receives must still be a full one, or its canvas never shows the later updates."""
    canvas = dashboard_class().canvas
    assert canvas._force_full and canvas._data_url is None


@pytest.mark.parametrize("dashboard_class", [BitWidthDashboard, RangeChoiceDashboard])
def test_static_layers_rendered_at_build_match_a_fresh_render(dashboard_class: type[Dashboard]) -> None:
    """Every option of the dropdowns and toggles shows its static layer from the build-time cache,
    pixel for pixel as drawn from scratch, without redrawing it."""
    dash = dashboard_class()
    dash.canvas.draw()
    misses_before = dash.background_misses
    for control in dash.controls:
        if not isinstance(control, (widgets.Dropdown, widgets.ToggleButtons)):
            continue
        for _ in control.options:
            control.value = _step_move(control)
            cached = _pixels(dash)
            assert dash.background_misses == misses_before, f"{control.description}={control.value!r} redrew the static layer"
            backgrounds = dict(dash._backgrounds)
            dash._backgrounds.clear()
            np.testing.assert_array_equal(cached, _pixels(dash))
            dash._backgrounds = backgrounds
            misses_before = dash.background_misses


@pytest.mark.parametrize("dashboard_class", ANIMATED_AXIS_DASHBOARDS)
def test_kept_axis_pictures_draw_the_same_pixels_as_fresh_axes(dashboard_class: type[Dashboard]) -> None:
    """Over 30 seeded moves (steps and jumps, so limits recur), every frame drawn from kept static
    layers and axis pictures equals the frame drawn from scratch, and the kept pictures are used."""
    dash = dashboard_class()
    assert any(isinstance(a, matplotlib.axis.Axis) for a in dash.dynamic)
    rng, copied = random.Random(1), 0
    for i in range(30):
        control = dash.controls[i % len(dash.controls)]
        control.value = _step_move(control) if i % 3 else _random_move(control, rng)
        misses = dash.axis_misses
        kept = _pixels(dash)
        copied += dash.axis_misses == misses
        cached = dict(dash._backgrounds), dict(dash._axis_pictures)
        dash.forget_layers()
        np.testing.assert_array_equal(kept, _pixels(dash), err_msg=f"move {i}: {control.description}={control.value!r}")
        dash._backgrounds, dash._axis_pictures = cached
    assert copied >= 5, f"only {copied} of 30 frames reused an axis picture"


def test_update_sends_the_frame_before_the_readout(monkeypatch: pytest.MonkeyPatch) -> None:
    """The figure is what the learner watches: its frame leaves the kernel before the readout's
    message, whose layout work in the browser would otherwise run while the kernel draws."""
    dash = SignalQuantizerDashboard()
    _connect_browser(dash)
    order: list[str] = []
    send = dash.canvas.send
    monkeypatch.setattr(dash.canvas, "send", lambda content, buffers=None: (order.append("frame"), send(content, buffers)))
    dash.readout_box.observe(lambda change: order.append("readout"), names="value")
    dash.bits_slider.value = 5
    assert order == ["frame", "readout"]


@pytest.mark.parametrize("shape", [(1, 1), (7, 5), (384, 720)])
def test_frame_png_encoder_round_trips_rgba_pixels(shape: tuple[int, int]) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (*shape, 4), dtype=np.uint8)
    pixels[: shape[0] // 2] = 0  # transparent rows, as in a "diff" frame
    png = rgba_png(pixels, 1)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png))), pixels)


def _without_glyph_cache(dash: Dashboard) -> np.ndarray:
    """The dashboard's current frame drawn by matplotlib's own text code (fresh layers too)."""
    renderer = dash.canvas.get_renderer()
    saved = {name: vars(renderer).pop(name) for name in ("draw_text", "_draw_text_glyphs_and_boxes", "_qlab_glyph_cache")}
    cached = dict(dash._backgrounds), dict(dash._axis_pictures)
    dash.forget_layers()
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(_base, "use_glyph_cache", lambda renderer, cache: None)
            dash.render_layers()
        return np.asarray(renderer.buffer_rgba()).copy()
    finally:
        vars(renderer).update(saved)
        dash._backgrounds, dash._axis_pictures = cached


@pytest.mark.parametrize("dashboard_class", [SignalQuantizerDashboard, ScaleZeroPointDashboard, FollowOneOutputDashboard])
def test_kept_glyphs_draw_the_same_pixels_as_matplotlib(dashboard_class: type[Dashboard]) -> None:
    """Titles, tick labels (rotated axis labels included) and code labels drawn from the kept glyph
    layouts and bitmaps equal matplotlib's own rendering, move after move."""
    dash = dashboard_class()
    rng = random.Random(2)
    for i in range(12):
        control = dash.controls[i % len(dash.controls)]
        control.value = _random_move(control, rng)
        kept = _pixels(dash)
        assert dash._glyphs
        np.testing.assert_array_equal(kept, _without_glyph_cache(dash), err_msg=f"move {i}: {control.description}={control.value!r}")


def test_a_layer_change_that_clamps_the_sliders_draws_one_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lesson 08: switching to a layer with fewer output channels and positions clamps both
    sliders; the learner's one move sends one frame, showing the new layer at the clamped output."""
    dash = FollowOneOutputDashboard()
    dash.layer_dropdown.value = "block2_conv"
    dash.position_slider.value = dash.position_slider.max
    dash.channel_slider.value = dash.channel_slider.max
    _connect_browser(dash)
    sent = _record_messages(dash, monkeypatch)
    dash.layer_dropdown.value = "block3_conv"
    assert [kind for kind, _ in sent] == ["binary"]
    assert (dash.state.layer, dash.state.channel, dash.state.position) == ("block3_conv", 47, 15)
    assert (dash.channel_slider.value, dash.position_slider.value) == (47, 15)


class _CrowdedAxesDashboard(Dashboard):
    """Two stacked plots, a small gap between them. The lower plot's y-limit follows the slider;
    from 1e5 on, its offset text ("1e5") grows its axis picture up into the upper plot's."""

    title = "crowded axes (test)"

    def build_controls(self) -> list[widgets.ValueWidget]:
        return [widgets.IntSlider(value=1, min=1, max=7)]

    def build_figure(self) -> None:
        self.top, self.bottom = self.fig.subplots(2, 1, sharex=True, gridspec_kw={"hspace": 0.13})
        (self.line,) = self.bottom.plot([0, 1], [0, 1])
        self.top.set_ylim(0, 1)
        self.animate(self.bottom.yaxis, self.top.yaxis, self.line)  # the growing picture first

    def compute(self) -> int:
        return self.controls[0].value

    def redraw(self, k: int) -> None:
        self.bottom.set_ylim(0, 3.0 * 10.0**k)
        self.line.set_ydata([0, 2.0 * 10.0**k])

    def readout_lines(self, k: int) -> list[str]:
        return [str(k)]


def test_overlapping_axis_pictures_are_merged_and_every_frame_stays_right() -> None:
    dash = _CrowdedAxesDashboard()
    for value in [2, 3, 2, 6, 1, 7, 3, 6]:
        dash.controls[0].value = value
        kept = _pixels(dash)
        cached = dict(dash._backgrounds), dict(dash._axis_pictures)
        dash.forget_layers()
        np.testing.assert_array_equal(kept, _pixels(dash), err_msg=f"value {value}")
        dash._backgrounds, dash._axis_pictures = cached
    assert len(dash._axis_groups) == 1 and len(dash._axis_groups[0]) == 2


@pytest.mark.parametrize("dashboard_class", [SignalQuantizerDashboard, ScaleZeroPointDashboard, MultiplierPrecisionDashboard])
def test_pictures_rendered_at_build_fill_the_glyph_cache(dashboard_class: type[Dashboard]) -> None:
    """The axis pictures rendered at build go through the glyph cache too (faster builds, and the
    first moves find the tick labels' glyphs)."""
    dash = dashboard_class()
    assert dash._glyphs and dash.canvas.get_renderer()._qlab_glyph_cache is dash._glyphs


def test_holding_updates_nests() -> None:
    dash = SignalQuantizerDashboard()
    with dash.holding_updates():
        with dash.holding_updates():
            pass
        dash.bits_slider.value = 7
    assert dash.state.bits != 7
    dash.bits_slider.value = 6
    assert dash.state.bits == 6


@pytest.mark.parametrize(("calibrator", "bits"), [("mse", 8), ("entropy", 4), ("minmax", 8), ("moving_average", 6)])
def test_range_label_round_trips(calibrator: str, bits: int) -> None:
    from qlab.calibration import depends_on_bits
    from qlab.session import parse_range_label, range_label

    assert parse_range_label(range_label(calibrator, bits)) == (calibrator, bits if depends_on_bits(calibrator) else None)
