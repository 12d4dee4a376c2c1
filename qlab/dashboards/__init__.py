"""Live slider dashboards, one module per lesson.

``REGISTRY`` maps a name to a builder for every dashboard; the latency benchmark
(benchmarks/dashboard_latency.py) and tests iterate over it, so a new lesson adds its
dashboard with one line here.
"""

from __future__ import annotations

from collections.abc import Callable

from qlab.dashboards._base import Dashboard, make_canvas
from qlab.dashboards.rounding_and_clamping import SignalQuantizerDashboard
from qlab.dashboards.scale_and_zero_point import ScaleZeroPointDashboard
from qlab.dashboards.bit_width import BitWidthDashboard
from qlab.dashboards.range_choice import RangeChoiceDashboard
from qlab.dashboards.per_channel import PerChannelDashboard
from qlab.dashboards.whole_model_ptq import WholeModelPTQDashboard
from qlab.dashboards.integer_inference import FollowOneOutputDashboard, MultiplierPrecisionDashboard
from qlab.dashboards.qat_gradients import QATGradientDashboard

REGISTRY: dict[str, Callable[[], Dashboard]] = {
    "01 signal quantizer": SignalQuantizerDashboard,
    "02 scale and zero-point grid": ScaleZeroPointDashboard,
    "03 bit width": BitWidthDashboard,
    "04 range choice": RangeChoiceDashboard,
    "05 per-channel weights": PerChannelDashboard,
    "06 whole-model PTQ": WholeModelPTQDashboard,
    "07 QAT gradients": QATGradientDashboard,
    "08 follow one output": FollowOneOutputDashboard,
    "08 multiplier precision": MultiplierPrecisionDashboard,
}

__all__ = ["REGISTRY", "BitWidthDashboard", "QATGradientDashboard", "RangeChoiceDashboard", "Dashboard", "PerChannelDashboard", "WholeModelPTQDashboard", "FollowOneOutputDashboard", "MultiplierPrecisionDashboard", "ScaleZeroPointDashboard", "SignalQuantizerDashboard", "make_canvas"]
