"""Lesson 01's signal helpers: the clipped-sample count the dashboard reports."""

from __future__ import annotations

import pytest
import torch

from qlab.dashboards import SignalQuantizerDashboard
from qlab.signals import clipped_count, ecg_like


def test_clipped_count_is_by_value_not_by_end_code() -> None:
    x = torch.tensor([-1.3, -1.0, 0.0, 0.96, 1.0, 1.2])
    assert clipped_count(x, 1.0) == 2  # -1.3 and 1.2; +-1.0 sit on the grid's ends unclipped
    with pytest.raises(ValueError, match="clip must be positive"):
        clipped_count(x, 0.0)


def test_dashboard_reports_no_clipping_when_clip_exceeds_the_peak() -> None:
    """Regression: at 4 bits and clip 1.25 mV the R peaks (max |x| = 1.229 mV) round onto the end
    code 7 without being clipped; the readout used to count them as 4 clipped samples."""
    dash = SignalQuantizerDashboard()
    dash.bits_slider.value = 4
    dash.clip_slider.value = 1.25
    assert float(dash.signals["ECG-like"].abs().max()) < 1.25
    assert "samples clipped (|x| > clip): 0 (0.0%)" in dash.readout()
    dash.clip_slider.value = 0.6
    n_over = int((ecg_like(2.5).abs() > 0.6).sum())
    assert n_over > 0 and f"samples clipped (|x| > clip): {n_over} (" in dash.readout()
