"""What the lesson 03-04 dashboards show about one tensor on one grid, computed without widgets.

- :func:`grid_stats` (lesson 03): min/max quantization of a weight tensor and its error:
  levels used, MSE, max |error| and SQNR = 10 log10(sum w^2 / sum (w - Q(w))^2).
- :func:`range_sweep` (lesson 04): the clipping/rounding split of the fake-quantization MSE
  at thresholds t = f * max|x| for every bit width, with the histogram of |x| and a percentile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from qlab import metrics
from qlab.quantizer import QuantSpec, Quantized, minmax_quantized
from qlab.sweeps import SplitCurve, clip_rounding_curve, percentile_of_abs


@dataclass(frozen=True)
class GridStats:
    """A weight tensor quantized at one bit width and scheme, and its error."""

    bits: int
    symmetric: bool
    w: torch.Tensor
    q: Quantized
    counts: np.ndarray  # how many weights landed on each level, codes qmin..qmax
    mse: float
    max_abs_error: float
    sqnr_db: float


def grid_stats(w: torch.Tensor, bits: int, symmetric: bool) -> GridStats:
    """Quantize ``w`` on the signed ``bits``-bit min/max grid and measure the error.

    symmetric: z = 0, s = max|w| / (2^(b-1) - 1), narrow codes; affine:
    s = (max w - min w) / (2^b - 1), integer zero-point (``qlab.quantizer.minmax_quantized``).
    """
    q = minmax_quantized(w, QuantSpec(bits, signed=True, symmetric=symmetric, narrow=symmetric))
    counts = torch.bincount((q.codes - q.qmin).long().flatten(), minlength=q.qmax - q.qmin + 1).numpy()
    return GridStats(
        bits, symmetric, w, q, counts,
        metrics.mse(w, q.x_hat), metrics.max_abs_error(w, q.x_hat), metrics.sqnr_db(w, q.x_hat),
    )


@dataclass(frozen=True)
class RangeSweep:
    """A tensor's clipping/rounding split at thresholds ``fractions * amax``, per bit width."""

    name: str
    x: torch.Tensor
    signed: bool
    amax: float
    percentile: float  # the ``percentile_p``-th percentile of |x|
    percentile_p: float
    hist: tuple[np.ndarray, np.ndarray]  # counts, edges of |x| on [0, amax]
    curves: dict[int, SplitCurve]  # one per bit width


def range_sweep(
    name: str, x: torch.Tensor, signed: bool, fractions: Sequence[float], bits: Sequence[int],
    percentile_p: float = 99.99, hist_bins: int = 100,
) -> RangeSweep:
    """Split curves of ``x`` at t = f * max|x| for each f in ``fractions`` and each bit width.

    signed: symmetric grid on [-t, t]; unsigned: affine grid on [0, t]
    (``qlab.sweeps.clip_rounding_curve``).
    """
    if len(fractions) == 0 or len(bits) == 0:
        raise ValueError("fractions and bits must each hold at least one value")
    amax = float(x.abs().max())
    thresholds = np.asarray(fractions, dtype=np.float64) * amax
    curves = {b: clip_rounding_curve(x, thresholds, b, signed) for b in bits}
    counts, edges = np.histogram(x.abs().numpy(), bins=hist_bins, range=(0.0, amax))
    return RangeSweep(name, x, signed, amax, percentile_of_abs(x, percentile_p), percentile_p, (counts, edges), curves)
