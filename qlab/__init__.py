"""qlab: a hands-on kit for learning neural-network quantization.

The core formulas are re-exported here; each lives in the module its name suggests:
``qlab.rounding`` (rounding modes, clamping), ``qlab.affine`` (ranges, scale/zero-point,
quantize/dequantize/fake_quantize), ``qlab.granularity`` (per tensor/channel/group),
``qlab.calibration`` (range setting), ``qlab.metrics`` (error metrics) and
``qlab.fixed_point`` (Qm.n numbers). Whole models: ``qlab.models`` (pretrained
networks), ``qlab.folding`` (BatchNorm folding), ``qlab.ptq`` (post-training
quantization) and ``qlab.evaluation`` (test accuracy).
"""

from qlab.affine import (
    calc_qparams,
    dequantize,
    fake_quantize,
    qparams_from_range,
    qrange,
    quantize,
)
from qlab.calibration import CALIBRATORS, calibrate
from qlab.evaluation import evaluate
from qlab.rounding import ROUNDING_MODES, clamp, round_values

__all__ = [
    "CALIBRATORS",
    "ROUNDING_MODES",
    "calc_qparams",
    "calibrate",
    "clamp",
    "dequantize",
    "evaluate",
    "fake_quantize",
    "qparams_from_range",
    "qrange",
    "quantize",
    "round_values",
]
