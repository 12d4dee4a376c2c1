"""Calibration (range setting): choose the clipping range [min_val, max_val] to quantize.

Every calibrator returns ``(min_val, max_val)`` as float32 tensors -- 0-dim per tensor, shape
(C,) per channel along ``axis`` -- ready for ``qlab.affine.qparams_from_range``. Inputs are
converted to float32 first (as the torch.ao observers do); NaN/inf, empty and integer inputs
raise. Which reference each method follows:

==================  ============================================================  =========
method              rule                                                          reference
==================  ============================================================  =========
minmax              [min x, max x]                                                torch.ao MinMaxObserver / PerChannelMinMaxObserver
moving_average      m <- m + c (batch_min - m), same for max                       torch.ao MovingAverage(PerChannel)MinMaxObserver
percentile          |x| histogram edge where the CDF reaches p %                  NVIDIA pytorch-quantization HistogramCalibrator
mse                 amax minimising the count-weighted fake-quant error           NVIDIA (``_compute_amax_mse``)
entropy             amax minimising KL(P || Q), TensorRT's INT8 calibration        NVIDIA (``_compute_amax_entropy``)
histogram           torch's greedy L2 search over a 2048-bin histogram             torch.ao HistogramObserver
==================  ============================================================  =========

The |x|-based calibrators (percentile, mse, entropy) find a magnitude amax and return
(-amax, amax) if the data has negative values, else (0, amax): one-sided data (post-ReLU
activations) then keeps the full unsigned grid instead of wasting half of it on negatives.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from torch.ao.quantization import HistogramObserver

from qlab import granularity
from qlab._checks import as_float_tensor, check_bits, check_finite, check_choice, normalize_axis
from qlab.affine import fake_quantize, qrange

CalibrationRange = tuple[torch.Tensor, torch.Tensor]
AmaxFn = Callable[[torch.Tensor, bool], float]


# ----------------------------------------------------------------------------- helpers
def _prepare(x: Any, name: str = "x") -> torch.Tensor:
    """A finite, non-empty float tensor, detached and converted to float32."""
    return check_finite(as_float_tensor(x, name), name).detach().to(torch.float32)


def _rows(x: torch.Tensor, axis: int | None) -> tuple[torch.Tensor, int | None]:
    """View ``x`` as rows: one row (per tensor) or one row per index along ``axis``."""
    ax = normalize_axis(axis, x.dim())
    return (x.reshape(1, -1), None) if ax is None else (granularity.channel_rows(x, ax), ax)


def _shaped(v: torch.Tensor, ax: int | None) -> torch.Tensor:
    """0-dim result per tensor, (C,) per channel."""
    return v.reshape(()) if ax is None else v


def _check_int(value: int, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be from {lo} to {hi}, got {value}")
    return int(value)


def _check_bins(num_bins: int, start_bin: int | None = None) -> None:
    _check_int(num_bins, "num_bins", 2, 2**16)
    if start_bin is not None:
        _check_int(start_bin, "start_bin", 1, num_bins - 1)


def _symmetric_range(x: Any, axis: int | None, signed: bool, amax_fn: AmaxFn) -> CalibrationRange:
    """Apply a per-row magnitude rule ``amax_fn(|row|, unsigned_grid)`` per tensor or per channel.

    A row with negative values gets (-amax, amax) and the signed grid; a non-negative row
    gets (0, amax) and, unless ``signed``, the unsigned grid. All-zero rows give (0, 0).
    """
    rows, ax = _rows(_prepare(x), axis)
    negative = (rows < 0).any(dim=1)
    amax = torch.tensor(
        [
            amax_fn(row.abs(), not (signed or neg)) if float(row.abs().max()) > 0 else 0.0
            for row, neg in zip(rows, negative.tolist())
        ],
        dtype=torch.float32,
    )
    lo = torch.where(negative, -amax, torch.zeros_like(amax))
    return _shaped(lo, ax), _shaped(amax, ax)


def _abs_histogram(a: torch.Tensor, num_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """NVIDIA ``HistogramCalibrator.collect`` (torch_hist=True) for one batch of |x| values:
    ``num_bins`` equal bins from 0 to max|x| (``torch.histc``) and their float32 edges."""
    amax = float(a.max())
    hist = torch.histc(a, bins=num_bins, min=0.0, max=amax)
    edges = torch.linspace(0.0, amax, num_bins + 1)
    return hist.to(torch.int64).numpy(), edges.numpy()


# ----------------------------------------------------------------------------- min/max
def _minmax_rows(x: Any, axis: int | None, name: str) -> CalibrationRange:
    return granularity.minmax(_prepare(x, name), axis)


def minmax(x: Any, axis: int | None = None) -> CalibrationRange:
    """Range (min x, max x), per tensor or per channel along ``axis``.

    Equals torch.ao ``MinMaxObserver`` (``axis=None``) / ``PerChannelMinMaxObserver(ch_axis=axis)``
    ``min_val``/``max_val`` bit for bit. Every value is kept, outliers included.
    """
    return _minmax_rows(x, axis, "x")


def moving_average_minmax(
    batches: Iterable[Any] | torch.Tensor | np.ndarray, averaging_constant: float = 0.01, axis: int | None = None
) -> CalibrationRange:
    """Exponential moving average of per-batch min/max (QAT-style activation range tracking).

    The first batch sets (m_min, m_max); each later batch updates, in float32,
        m <- m + c * (batch_value - m),      c = ``averaging_constant``.
    Equals torch.ao ``MovingAverageMinMaxObserver`` / ``MovingAveragePerChannelMinMaxObserver``
    bit for bit. A single tensor counts as one batch (the result is then ``minmax``).
    """
    if isinstance(averaging_constant, bool) or not isinstance(averaging_constant, (int, float)):
        raise TypeError(f"averaging_constant must be a number in (0, 1], got {averaging_constant!r}")
    if not 0 < averaging_constant <= 1:
        raise ValueError(f"averaging_constant must be in (0, 1], got {averaging_constant}")
    if isinstance(batches, (torch.Tensor, np.ndarray)):
        batches = [batches]
    state: CalibrationRange | None = None
    for i, batch in enumerate(batches):
        cur = _minmax_rows(batch, axis, f"batches[{i}]")
        if state is not None and cur[0].shape != state[0].shape:
            raise ValueError(
                f"batches[{i}] has {cur[0].numel()} channel(s) along axis {axis}, earlier batches "
                f"{state[0].numel()}; every batch needs the same number of channels"
            )
        state = cur if state is None else tuple(m + averaging_constant * (c - m) for m, c in zip(state, cur))
    if state is None:
        raise ValueError("batches is empty; pass at least one tensor")
    return state


# ----------------------------------------------------------------------------- NVIDIA histogram methods
def _percentile_amax(a: torch.Tensor, unsigned: bool, percentile: float, num_bins: int) -> float:
    """``_compute_amax_percentile``: edges[i] for the first bin i whose CDF >= p / 100.

    (edges[i] is that bin's *lower* edge, exactly as NVIDIA returns it.)"""
    hist, edges = _abs_histogram(a, num_bins)
    cdf = np.cumsum(hist / hist.sum())
    return float(edges[np.searchsorted(cdf, percentile / 100)])


def percentile(x: Any, percentile: float = 99.99, axis: int | None = None, num_bins: int = 2048) -> CalibrationRange:
    """Clip the top (100 - p) % of magnitudes (NVIDIA pytorch-quantization HistogramCalibrator).

    Histogram of |x| with ``num_bins`` equal bins on [0, max|x|]; amax = edges[i] for the
    first bin i where the cumulative fraction of values reaches percentile / 100 (NVIDIA
    returns that bin's lower edge). Range (-amax, amax) if x has negatives, else (0, amax).
    """
    if isinstance(percentile, bool) or not isinstance(percentile, (int, float)) or not 0 <= percentile <= 100:
        raise ValueError(f"percentile must be a number from 0 to 100, got {percentile!r}")
    _check_bins(num_bins)
    rule = functools.partial(_percentile_amax, percentile=float(percentile), num_bins=num_bins)
    return _symmetric_range(x, axis, False, rule)


def _grid_qrange(bits: int, unsigned: bool) -> tuple[int, int]:
    """NVIDIA's grid: amax maps to 2^(bits-1) - 1 (signed) or 2^bits - 1 (unsigned)."""
    return qrange(bits, signed=not unsigned)


def _mse_amax(a: torch.Tensor, unsigned: bool, bits: int, num_bins: int, start_bin: int) -> float:
    """``_compute_amax_mse``: first argmin over amax = centres[start_bin:] of
    mean_i(count_i * (fake_quant(centre_i; amax) - centre_i)^2)."""
    hist, edges_np = _abs_histogram(a, num_bins)
    edges = torch.from_numpy(edges_np)
    centres = (edges[1:] + edges[:-1]) / 2
    candidates = centres[start_bin:]
    qmin, qmax = _grid_qrange(bits, unsigned)
    scale = candidates / qmax
    zero = torch.zeros(candidates.shape, dtype=torch.int32)
    grid = centres.expand(len(candidates), -1)
    err = (fake_quantize(grid, scale, zero, qmin, qmax, axis=0).double() - centres.double()) ** 2
    mses = (err * torch.from_numpy(hist).double()).mean(dim=1)
    return float(candidates[int(torch.argmin(mses))])


def mse(
    x: Any, bits: int = 8, signed: bool = False, axis: int | None = None, num_bins: int = 2048, start_bin: int = 128
) -> CalibrationRange:
    """amax minimising the quantization MSE of the |x| histogram (NVIDIA pytorch-quantization).

    For each candidate amax = bin centre c_k, k = start_bin .. num_bins - 1, fake-quantize all
    bin centres with scale = amax / qmax, zero-point 0 (``qlab.affine.fake_quantize``) and
    score  mean_i(count_i * (fq(c_i) - c_i)^2); amax = first argmin.

    Grid (NVIDIA's ``unsigned`` flag): qmax = 2^bits - 1 (unsigned) for data without negative
    values unless ``signed=True``; otherwise qmax = 2^(bits-1) - 1 (int8: 127). Two-sided data
    always uses the signed grid, which is also the resolution of any b-bit affine grid over
    (-amax, amax). Range (-amax, amax) if x has negatives, else (0, amax).

    Differences from NVIDIA, all at rounding level: fq uses the reciprocal of amax / qmax
    (NVIDIA multiplies by qmax / amax) and the weighted mean is taken in float64.
    """
    bits = check_bits(bits)
    _check_bins(num_bins, start_bin)
    rule = functools.partial(_mse_amax, bits=bits, num_bins=num_bins, start_bin=start_bin)
    return _symmetric_range(x, axis, signed, rule)


def _kl_by_length(hist: np.ndarray, levels: int, lengths: np.ndarray) -> np.ndarray:
    """KL(P_i || Q_i) for every kept length i in ``lengths`` (vectorised TensorRT merge).

    P_i = hist[:i] with sum(hist[i:]) added to its last bin. Bin j < i belongs to level
    floor(j * levels / i) (what NVIDIA's np.digitize over linspace(0, i, levels + 1) gives);
    Q_i spreads each level's count evenly over the level's non-empty bins (empty bins get 0).
    Levels are contiguous runs of bins, so their sums come from cumulative sums.
    """
    n = len(hist)
    i = lengths[:, None]
    j = np.arange(n)[None, :]
    inside = j < i
    jj = np.where(inside, j, 0)
    level = jj * levels // i
    start = -(-level * i // levels)
    stop = np.minimum(-(-(level + 1) * i // levels), i)
    csum = np.concatenate([[0.0], np.cumsum(hist)])
    cnz = np.concatenate([[0], np.cumsum(hist > 0)])
    nonempty = inside & (hist[None, :] > 0)
    q = np.where(nonempty, (csum[stop] - csum[start]) / np.maximum(cnz[stop] - cnz[start], 1), 0.0)
    p = np.where(inside, hist[None, :], 0.0)
    p[np.arange(len(lengths)), lengths - 1] += csum[n] - csum[lengths]
    p /= csum[n]
    q_total = q.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = q / q_total
        terms = np.where(p > 0, p * np.log(p / q), 0.0)
    kl = terms.sum(axis=1)
    kl[(q_total[:, 0] == 0) | ((p > 0) & (q == 0)).any(axis=1)] = np.inf
    return kl


def _entropy_amax(a: torch.Tensor, unsigned: bool, bits: int, num_bins: int, start_bin: int) -> float:
    """``_compute_amax_entropy``: edges[i] for the *last* i in start_bin..num_bins with minimal KL."""
    hist, edges = _abs_histogram(a, num_bins)
    hist = hist.astype(np.float64)
    hist[0] = hist[1]  # NVIDIA's quirk: the bin holding exact zeros takes its neighbour's count
    levels = 1 << (bits - 1 + int(unsigned))
    lengths = np.arange(start_bin, num_bins + 1)
    kl = np.concatenate([_kl_by_length(hist, levels, chunk) for chunk in np.array_split(lengths, 8)])
    last_argmin = len(kl) - 1 - int(np.argmin(kl[::-1]))
    return float(edges[lengths[last_argmin]])


def entropy(
    x: Any, bits: int = 8, signed: bool = False, axis: int | None = None, num_bins: int = 2048, start_bin: int = 128
) -> CalibrationRange:
    """TensorRT's KL-divergence (entropy) calibration as NVIDIA pytorch-quantization computes it.

    With the |x| histogram h (``num_bins`` bins on [0, max|x|]; NVIDIA sets h[0] = h[1]),
    for every i = start_bin .. num_bins:
        P = h[:i] with the clipped tail sum(h[i:]) added to P[i-1]
        Q = h[:i] merged into L levels and expanded back, each level's count spread evenly
            over its non-empty bins (empty bins stay 0)
    and amax = edges[i] for the last i minimising KL(P || Q) (``qlab.metrics.kl_divergence``).
    L = 2^(bits-1) (int8: 128) or, for data without negatives and ``signed=False``,
    2^bits (NVIDIA's ``unsigned``) -- the same grid rule as ``mse``.
    Range (-amax, amax) if x has negatives, else (0, amax).

    KL has no smoothing here (as in NVIDIA's code): an isolated outlier beyond empty bins is
    kept, because clipping inside the gap folds the tail into a bin where Q is 0 (KL = inf).

    One deviation: where Q is all zero NVIDIA's scipy call yields NaN (which np.argmin then
    picks); here that KL is +inf.
    """
    bits = check_bits(bits)
    _check_bins(num_bins, start_bin)
    rule = functools.partial(_entropy_amax, bits=bits, num_bins=num_bins, start_bin=start_bin)
    return _symmetric_range(x, axis, signed, rule)


# ----------------------------------------------------------------------------- torch HistogramObserver
def _histogram_observer_range(row: torch.Tensor, bits: int, signed: bool) -> tuple[float, float]:
    qmin, qmax = qrange(bits, signed)
    small = bits <= 8
    dtype = (torch.qint8 if small else torch.int16) if signed else (torch.quint8 if small else torch.uint16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization is deprecated; it is the reference
        observer = HistogramObserver(dtype=dtype, quant_min=qmin, quant_max=qmax)
        observer.dst_nbins = qmax - qmin + 1
        observer(row)
        new_min, new_max = observer._non_linear_param_search()
    return float(new_min), float(new_max)


def histogram_l2(x: Any, bits: int = 8, axis: int | None = None, signed: bool = False) -> CalibrationRange:
    """torch.ao ``HistogramObserver``'s range: 2048-bin ``histc`` + greedy L2 search.

    Runs the observer itself (quant range ``qrange(bits, signed)``) and returns the
    (new_min, new_max) that ``calculate_qparams`` passes to ``_calculate_qparams``: the
    search trims the histogram bin by bin from whichever side holds less mass while the
    estimated L2 quantization error keeps falling. Per channel = one observer per channel.
    torch sizes the search grid from the dtype (256 levels for any (q)int8 range); qlab sets
    it to 2^bits so it matches the grid actually used -- identical to torch for bits = 8 or 16.
    """
    bits = check_bits(bits)
    rows, ax = _rows(_prepare(x), axis)
    lo, hi = zip(*(_histogram_observer_range(row, bits, signed) for row in rows))
    return _shaped(torch.tensor(lo), ax), _shaped(torch.tensor(hi), ax)


# ----------------------------------------------------------------------------- dispatch
CALIBRATORS: dict[str, Callable[..., CalibrationRange]] = {
    "minmax": minmax,
    "moving_average": moving_average_minmax,
    "percentile": percentile,
    "mse": mse,
    "entropy": entropy,
    "histogram": histogram_l2,
}


def _concat(x_or_batches: Any) -> Any:
    """A list/tuple of batches concatenated along dim 0; anything else unchanged."""
    if not isinstance(x_or_batches, (list, tuple)):
        return x_or_batches
    if not x_or_batches:
        raise ValueError("the list of batches is empty; pass at least one tensor")
    parts = [as_float_tensor(b, f"batches[{i}]") for i, b in enumerate(x_or_batches)]
    try:
        return torch.cat(parts, dim=0)
    except RuntimeError as err:
        shapes = [tuple(p.shape) for p in parts]
        raise ValueError(f"batches cannot be concatenated along dim 0 (shapes {shapes}): {err}") from None


def depends_on_bits(method: str) -> bool:
    """True if calibrator ``method``'s range depends on the target bit width (mse, entropy, histogram)."""
    check_choice(method, tuple(CALIBRATORS), "method")
    return "bits" in inspect.signature(CALIBRATORS[method]).parameters


def calibrate(
    x_or_batches: Any,
    method: str = "minmax",
    bits: int = 8,
    signed: bool = False,
    axis: int | None = None,
    **options: Any,
) -> CalibrationRange:
    """Range (min_val, max_val) of ``x_or_batches`` by ``method`` (a key of ``CALIBRATORS``).

    A list/tuple of batches is concatenated along dim 0, except for "moving_average", which
    consumes it batch by batch. ``bits``/``signed`` describe the target integer grid and go to
    the methods that use it (mse, entropy, histogram); ``options`` are the method's own
    keyword arguments (e.g. ``percentile=99.9``, ``num_bins=1024``, ``averaging_constant=0.1``).
    Unknown method -> ValueError; unknown option -> TypeError.
    """
    check_choice(method, tuple(CALIBRATORS), "method")
    check_bits(bits)
    func = CALIBRATORS[method]
    params = list(inspect.signature(func).parameters)[1:]
    own = [p for p in params if p not in ("axis", "bits", "signed")]
    for name in options:
        if name not in own:
            raise TypeError(f"calibrate(method={method!r}) got unknown option {name!r}; its options are {own}")
    target = {k: v for k, v in (("bits", bits), ("signed", signed)) if k in params}
    data = x_or_batches if method == "moving_average" else _concat(x_or_batches)
    return func(data, axis=axis, **target, **options)
