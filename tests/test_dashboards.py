"""Dashboards built in plain Python (no kernel): controls drive artists and readouts consistently."""

from __future__ import annotations

import re
from pathlib import Path

import ipywidgets as widgets
import matplotlib
import nbformat
import numpy as np
import pytest
import torch

from qlab import metrics, signals
from qlab.affine import dequantize, fake_quantize, qparams_from_range, qrange, quantize
from qlab.dashboards import REGISTRY, Dashboard, ScaleZeroPointDashboard, SignalQuantizerDashboard
from qlab.dashboards import rounding_and_clamping

ROOT = Path(__file__).resolve().parents[1]


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
    (row,) = [line for line in (ROOT / "benchmarks" / "results" / "dashboard_latency.md").read_text().splitlines()
              if line.startswith(f"| {name} |")]
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
