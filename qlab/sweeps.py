"""Sweeps behind lessons 03 (bit width) and 04 (range choice): pure compute, no plotting.

Every quantizer here is ``qlab.quantizer.quantize_on_range``, every error qlab's
(``qlab.metrics``), and every calibrated range comes from ``qlab.calibration``; this module
only loops over bit widths, clipping thresholds and calibrators and packages the numbers for
tables and plots.

Two grids are used (:func:`grid_spec`):

- ``signed=True`` (weights): textbook symmetric on the *narrow* range, codes
  [-(2^(b-1) - 1), 2^(b-1) - 1] on [-t, t], scale t / (2^(b-1) - 1). Narrow, so that the grid
  is exactly symmetric and has 2^b - 1 levels, the count lessons 03/04 reason with. (PTQ
  weights, ``qlab.ptq``, use the same scale on the full int8 range; the extra code
  -2^(b-1) lies beyond -t and changes nothing for data inside [-t, t].)
- ``signed=False`` (post-ReLU activations): unsigned affine, codes [0, 2^b - 1] on [0, t],
  scale t / (2^b - 1) -- the grid PTQ uses for activations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from qlab import metrics
from qlab.calibration import CALIBRATORS, calibrate
from qlab.quantizer import QuantSpec, covered_range, minmax_quantized, quantize_on_range

DB_PER_BIT = 20 * math.log10(2)  # one more bit halves the step: noise power / 4 -> 6.02 dB


def grid_spec(bits: int, signed: bool, symmetric: bool | None = None) -> QuantSpec:
    """The sweeps' grid: narrow symmetric for signed data, affine unsigned otherwise (module doc).

    ``symmetric`` overrides that choice (default: ``signed``); the range stays narrow only when both hold."""
    symmetric = signed if symmetric is None else symmetric
    return QuantSpec(bits, signed=signed, symmetric=symmetric, narrow=signed and symmetric)


def grid_steps(bits: int, signed: bool = True, symmetric: bool = True) -> int:
    """Steps between the first and the last level of the :func:`sqnr_vs_bits` grid, qmax - qmin:
    2^b - 2 on the narrow symmetric grid (signed, symmetric), 2^b - 1 otherwise."""
    spec = grid_spec(bits, signed, symmetric)
    return spec.qmax - spec.qmin


def sqnr_vs_bits(x: torch.Tensor, bits_list: Sequence[int], signed: bool = True, symmetric: bool = True) -> list[float]:
    """SQNR (dB) of min/max quantization of ``x`` at each bit width, on the :func:`grid_spec` grid:

        SQNR_b = 10 log10( sum x^2 / sum (x - Q_b(x))^2 ).
    """
    specs = [grid_spec(b, signed, symmetric) for b in bits_list]
    return [metrics.sqnr_db(x, minmax_quantized(x, spec).x_hat) for spec in specs]


def db_per_bit(bits: Sequence[float], sqnr: Sequence[float]) -> float:
    """Least-squares slope of SQNR against bits (dB per bit):

        slope = sum (b_i - mean b)(S_i - mean S) / sum (b_i - mean b)^2.
    """
    b, s = np.asarray(bits, dtype=float), np.asarray(sqnr, dtype=float)
    if b.shape != s.shape or b.size < 2 or np.ptp(b) == 0:
        raise ValueError("need at least two different bit widths, one SQNR per bit width")
    db, ds = b - b.mean(), s - s.mean()
    return float((db * ds).sum() / (db**2).sum())


def sqnr_offset_db(x: torch.Tensor, symmetric: bool = True) -> float:
    """The data's offset in the uniform-noise model, 10 log10(12 E[x^2] / R^2) dB, where R is the span of
    the min/max grid that :func:`sqnr_vs_bits` uses with the same ``symmetric``
(``qlab.quantizer.covered_range``): 2 max|x| for a symmetric grid, max x - min x (0 included) for an affine one.

    A full-scale uniform signal on [-A, A] has E[x^2] = A^2 / 3 = R^2 / 12, so its offset is 0 dB;
    a bell-shaped tensor has E[x^2] << R^2 / 12 (a high peak-to-RMS ratio), hence a negative offset.
    """
    lo, hi = covered_range(float(x.min()), float(x.max()), symmetric)
    power = float((x.double() ** 2).mean())
    return 10 * math.log10(12 * power / (hi - lo) ** 2)


def predicted_sqnr_db(bits: Sequence[int], x: torch.Tensor, signed: bool = True, symmetric: bool = True) -> list[float]:
    """The uniform-noise model of the min/max quantization of :func:`sqnr_vs_bits` (same grids):
    rounding noise of power s^2 / 12 with s = R / n the grid's own step, R its span and
    n = qmax - qmin its number of steps (2^b - 2 on the narrow symmetric grid, 2^b - 1 on the affine one):

        SQNR = 10 log10( E[x^2] / (s^2 / 12) ) = 20 log10(n) + 10 log10(12 E[x^2] / R^2)
             ~ 6.02 b + :func:`sqnr_offset_db`   (n ~ 2^b).

    The exact step count matters at low bit widths: 2^b - 2 steps shrink by more than 2x per bit, so
    between 4 and 8 bits the narrow grid gains 20 log10(254 / 14) = 25.17 dB, not 4 x 6.02 = 24.08 dB.
    """
    offset = sqnr_offset_db(x, symmetric)
    return [20 * math.log10(grid_steps(b, signed, symmetric)) + offset for b in bits]


def threshold_range(threshold: float, signed: bool) -> tuple[float, float]:
    """[-t, t] for signed data (weights), [0, t] for unsigned (post-ReLU activations)."""
    return (-threshold if signed else 0.0, threshold)


@dataclass(frozen=True)
class ErrorSplit:
    """Fake-quantization MSE split into the values beyond the clipping range and those inside."""

    clipping: float
    rounding: float
    clipped_fraction: float

    @property
    def total(self) -> float:
        return self.clipping + self.rounding


def clip_rounding_error(x: torch.Tensor, threshold: float, bits: int, signed: bool = True,
                        symmetric: bool | None = None) -> ErrorSplit:
    """Split MSE(x, Q(x)) for the :func:`grid_spec` grid (``symmetric`` as there) on :func:`threshold_range`.

    With e_i = Q(x_i) - x_i, N values and C the set of values outside [lo, hi] (the requested
    range itself: a value equal to t is inside even when the top level (qmax - z) * s is
    rounded one float32 ulp below t):

        MSE = (1/N) sum_{i in C} e_i^2  +  (1/N) sum_{i not in C} e_i^2  =  clipping + rounding.

    A clipped value lands on the range's edge, so clipping ~ (1/N) sum_C (|x_i| - t)^2, which
    grows as t shrinks; inside, |e_i| <= s/2 and rounding ~ :func:`rounding_mse_estimate`, which
    grows as t^2 (s is proportional to t). Their sum has a sweet spot in between.
    """
    lo, hi = threshold_range(threshold, signed)
    q = quantize_on_range(x, lo, hi, grid_spec(bits, signed, symmetric))
    sq = (q.x_hat - x) ** 2
    clipped = q.clipped(x)
    n, total = x.numel(), float(sq.sum(dtype=torch.float64))
    clipping = float(torch.where(clipped, sq, 0.0).sum(dtype=torch.float64))
    return ErrorSplit(clipping / n, (total - clipping) / n, float(clipped.sum()) / n)


def rounding_mse_estimate(x: torch.Tensor, threshold: float, bits: int, signed: bool = True) -> float:
    """Uniform-noise estimate of the rounding part of :func:`clip_rounding_error`:

        rounding ~ (|I| / N) * s^2 / 12,   s = the grid's step on :func:`threshold_range`,

    where I is the set of values inside the range that are NOT exact zeros: an exact zero sits on
    a level of both grids and adds no error (most post-ReLU values are zeros), while any other
    value inside has an error close to uniform on [-s/2, s/2] when the step is small.
    """
    lo, hi = threshold_range(threshold, signed)
    q = quantize_on_range(x, lo, hi, grid_spec(bits, signed))
    inside_nonzero = (~q.clipped(x) & (x != 0)).sum().item()
    return inside_nonzero / x.numel() * q.scale**2 / 12


@dataclass(frozen=True)
class SplitCurve:
    """:func:`clip_rounding_error` at every threshold of a sweep (arrays, same length)."""

    thresholds: np.ndarray
    clipping: np.ndarray
    rounding: np.ndarray
    clipped_fraction: np.ndarray

    @property
    def total(self) -> np.ndarray:
        return self.clipping + self.rounding

    @property
    def best(self) -> int:
        """Index of the threshold with the smallest total MSE (the sweet spot)."""
        return int(np.argmin(self.total))


def clip_rounding_curve(x: torch.Tensor, thresholds: Sequence[float], bits: int, signed: bool = True) -> SplitCurve:
    """:func:`clip_rounding_error` for each threshold."""
    splits = [clip_rounding_error(x, t, bits, signed) for t in thresholds]
    return SplitCurve(
        np.asarray(thresholds, dtype=float),
        np.array([s.clipping for s in splits]),
        np.array([s.rounding for s in splits]),
        np.array([s.clipped_fraction for s in splits]),
    )


def percentile_of_abs(x: torch.Tensor, p: float) -> float:
    """The p-th percentile of |x| (exact order statistic, linear interpolation; numpy)."""
    return float(np.percentile(x.detach().abs().flatten().numpy(), p))


@dataclass(frozen=True)
class CalibratorRow:
    """A calibrator's range for one tensor and the error of quantizing the tensor with it."""

    calibrator: str
    lo: float
    hi: float
    mse: float
    sqnr_db: float


def compare_calibrators(
    x: torch.Tensor, bits: int, calibrators: Sequence[str] = tuple(CALIBRATORS)
) -> list[CalibratorRow]:
    """Calibrate ``x`` with each calibrator and quantize it on that range.

    The grid is the one PTQ uses for activations (unsigned affine over the calibrated
    range, ``qlab.ptq.ActivationFakeQuant``), so these errors are what a quantized layer sees.
    """
    spec = grid_spec(bits, signed=False)
    rows = []
    for name in calibrators:
        lo, hi = (float(v) for v in calibrate(x, name, bits=bits, signed=False))
        x_hat = quantize_on_range(x, lo, hi, spec).x_hat
        rows.append(CalibratorRow(name, lo, hi, metrics.mse(x, x_hat), metrics.sqnr_db(x, x_hat)))
    return rows

