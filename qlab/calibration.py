"""Calibration (range setting): choose the clipping range [min_val, max_val] to quantize.

Every calibrator returns ``(min_val, max_val)`` as float32 tensors -- 0-dim per tensor, shape
(C,) per channel along ``axis`` -- ready for ``qlab.affine.qparams_from_range``. Inputs are
converted to float32 first (as the torch.ao observers do); NaN/inf, empty and integer inputs
raise. Which reference each calibrator follows:

======================  ==========================================================  =========
calibrator (key)        rule                                                        reference
======================  ==========================================================  =========
minmax_range            [min x, max x]                                              torch.ao MinMaxObserver / PerChannelMinMaxObserver
(``"minmax"``)
moving_average_range    m <- m + c (batch_min - m), same for max                    torch.ao MovingAverage(PerChannel)MinMaxObserver
(``"moving_average"``)
percentile_range        the p-th percentile of |x| (an exact order statistic)       NVIDIA pytorch-quantization (percentile calibrator)
(``"percentile"``)
mse_range               amax minimising the count-weighted fake-quant error         NVIDIA (``_compute_amax_mse``)
(``"mse"``)
entropy_range           amax minimising KL(P || Q), TensorRT's INT8 calibration     NVIDIA (``_compute_amax_entropy``)
(``"entropy"``)
histogram_range         greedy L2 search over a 2048-bin histogram                   torch.ao HistogramObserver
(``"histogram"``)
======================  ==========================================================  =========

Stable picks. The searches (mse, entropy, histogram) pick one candidate among many, so a
pick can jump when the data move by one float32 ulp. qlab therefore computes histograms and
scores in float64 (|x| and bin positions exactly, no float32 rounding of bin edges or error
sums), expresses the histogram search in units of one bin (so no error term overflows, at any
data scale), and breaks ties deterministically (mse: first minimum; entropy: last minimum;
histogram: torch's strict ``norm > norm_min`` stop). The percentile is an exact order statistic
of |x|, not a histogram edge, so it moves by at most what the data move.

The |x|-based calibrators (percentile, mse, entropy) find a magnitude amax and return
(-amax, amax) intersected with [min x, max x]:

    (clamp(min x, -amax, amax), clamp(max x, -amax, amax))

so one-sided data (post-ReLU activations: (min x, amax) with min x >= 0) keep the whole
unsigned/affine grid, and mostly one-sided signed data do not waste half of an affine grid on
negatives that never occur. The grid used to *score* amax is NVIDIA's: unsigned
(2^bits - 1 steps) for data without negatives unless ``signed=True``, signed otherwise.

Degenerate picks are excluded: entropy never clips more than half of the values (on data
far from zero, e.g. uniform on [0.5, 1.5], TensorRT's KL is 0 for a range that keeps one
bin and clips everything else), and all-zero rows give (0, 0).
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch

from qlab import granularity
from qlab._checks import as_float_tensor, check_bits, check_bool, check_choice, check_finite, check_number, normalize_axis
from qlab.affine import fake_quantize, qrange

CalibrationRange = tuple[torch.Tensor, torch.Tensor]
AmaxFn = Callable[[np.ndarray, bool], float]


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
    """Apply a per-row magnitude rule ``amax_fn(|row| as float64, unsigned_grid)`` and return
    (-amax, amax) intersected with [min row, max row], per tensor or per channel: the ends
    clamp(min, -amax, amax) and clamp(max, -amax, amax), which is (amax, amax) for positive
    data whose minimum already exceeds amax.

    The rule scores amax on the signed grid if the row has negatives or ``signed``, else on
    the unsigned grid. All-zero rows give (0, 0).
    """
    signed = check_bool(signed, "signed")
    rows, ax = _rows(_prepare(x), axis)
    mins, maxs = torch.aminmax(rows, dim=1)
    amax = torch.tensor(
        [
            amax_fn(row.double().abs().numpy(), not (signed or bool(mn < 0))) if float(row.abs().max()) > 0 else 0.0
            for row, mn in zip(rows, mins)
        ],
        dtype=torch.float32,
    )
    lo, hi = torch.clamp(mins, -amax, amax), torch.clamp(maxs, -amax, amax)  # [min, max] onto [-amax, amax]
    return _shaped(lo, ax), _shaped(hi, ax)


def _abs_histogram(a: np.ndarray, num_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Histogram of |x| values ``a`` (float64) with ``num_bins`` equal bins on [0, max a], and
    its float64 edges: bin of a_i = min(floor(a_i * num_bins / max a), num_bins - 1), exact up
    to float64 rounding (NVIDIA's ``torch.histc`` does this in float32)."""
    amax = float(a.max())
    idx = np.minimum(np.floor(a * (num_bins / amax)).astype(np.int64), num_bins - 1)
    return np.bincount(idx, minlength=num_bins), np.linspace(0.0, amax, num_bins + 1)


# ----------------------------------------------------------------------------- min/max
def _minmax_rows(x: Any, axis: int | None, name: str) -> CalibrationRange:
    return granularity.minmax(_prepare(x, name), axis)


def minmax_range(x: Any, axis: int | None = None) -> CalibrationRange:
    """Range (min x, max x), per tensor or per channel along ``axis``.

    Equals torch.ao ``MinMaxObserver`` (``axis=None``) / ``PerChannelMinMaxObserver(ch_axis=axis)``
    ``min_val``/``max_val`` bit for bit. Every value is kept, outliers included.
    """
    return _minmax_rows(x, axis, "x")


def moving_average_range(
    batches: Iterable[Any] | torch.Tensor | np.ndarray, averaging_constant: float = 0.01, axis: int | None = None
) -> CalibrationRange:
    """Exponential moving average of per-batch min/max (QAT-style activation range tracking).

    The first batch sets (m_min, m_max); each later batch updates, in float32,
        m <- m + c * (batch_value - m),      c = ``averaging_constant``.
    Equals torch.ao ``MovingAverageMinMaxObserver`` / ``MovingAveragePerChannelMinMaxObserver``
    bit for bit. A single tensor counts as one batch (the result is then ``minmax_range``).
    """
    averaging_constant = check_number(averaging_constant, "averaging_constant")
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


# ----------------------------------------------------------------------------- |x|-based calibrators
def _percentile_amax(a: np.ndarray, unsigned: bool, percentile: float) -> float:
    """The k-th smallest |x| with k = max(ceil(p / 100 * N), 1): the smallest value with at
    least p % of the values at or below it. p / 100 * N is rounded to 9 decimals before the
    ceiling, so a decimal p such as 99.9 on N = 10000 gives k = 9990, not 9991."""
    k = max(math.ceil(round(percentile / 100 * a.size, 9)), 1)
    return float(np.partition(a, k - 1)[k - 1])


def percentile_range(x: Any, percentile: float = 99.99, axis: int | None = None) -> CalibrationRange:
    """Clip the top (100 - p) % of magnitudes.

    amax = the k-th smallest |x_i|, k = max(ceil(p / 100 * N), 1) (an exact order statistic,
    in float64); range (-amax, amax) intersected with [min x, max x]. NVIDIA's
    HistogramCalibrator returns the *lower edge* of the 2048-bin |x| histogram bin where the
    CDF reaches p instead, which is 0 whenever one outlier puts p % of the data in the first
    bin (N(0,1) data plus one 1e4 gave the range (-0, 0)); the exact statistic is also stable
    under last-bit changes of the data.
    """
    percentile = check_number(percentile, "percentile")
    if not 0 <= percentile <= 100:
        raise ValueError(f"percentile must be a number from 0 to 100, got {percentile!r}")
    return _symmetric_range(x, axis, False, functools.partial(_percentile_amax, percentile=percentile))


def _grid_qrange(bits: int, unsigned: bool) -> tuple[int, int]:
    """NVIDIA's grid: amax maps to 2^(bits-1) - 1 (signed) or 2^bits - 1 (unsigned)."""
    return qrange(bits, signed=not unsigned)


def _mse_amax(a: np.ndarray, unsigned: bool, bits: int, num_bins: int, start_bin: int) -> float:
    """``_compute_amax_mse``: first argmin over amax = centres[start_bin:] of
    mean_i(count_i * (fake_quant(centre_i; amax) - centre_i)^2), all in float64."""
    hist, edges_np = _abs_histogram(a, num_bins)
    edges = torch.from_numpy(edges_np)
    centres = (edges[1:] + edges[:-1]) / 2
    candidates = centres[start_bin:]
    qmin, qmax = _grid_qrange(bits, unsigned)
    scale = (candidates / qmax).to(torch.float32)
    zero = torch.zeros(candidates.shape, dtype=torch.int32)
    grid = centres.expand(len(candidates), -1)
    err = (fake_quantize(grid, scale, zero, qmin, qmax, axis=0).double() - centres) ** 2
    mses = (err * torch.from_numpy(hist).double()).mean(dim=1)
    return float(candidates[int(torch.argmin(mses))])


def mse_range(
    x: Any, bits: int = 8, signed: bool = False, axis: int | None = None, num_bins: int = 2048, start_bin: int = 128
) -> CalibrationRange:
    """amax minimising the quantization MSE of the |x| histogram (NVIDIA pytorch-quantization).

    For each candidate amax = bin centre c_k, k = start_bin .. num_bins - 1, fake-quantize all
    bin centres with scale = amax / qmax, zero-point 0 (``qlab.affine.fake_quantize``) and
    score  mean_i(count_i * (fq(c_i) - c_i)^2); amax = first argmin. Range (-amax, amax)
    intersected with [min x, max x].

    Grid (NVIDIA's ``unsigned`` flag): qmax = 2^bits - 1 (unsigned) for data without negative
    values unless ``signed=True``; otherwise qmax = 2^(bits-1) - 1 (int8: 127).

    Differences from NVIDIA, all at rounding level: the histogram, the bin centres and the
    weighted mean are float64, and fq multiplies by the float32 reciprocal of amax / qmax
    (NVIDIA multiplies by qmax / amax in float32).
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


def _entropy_amax(a: np.ndarray, unsigned: bool, bits: int, num_bins: int, start_bin: int) -> float:
    """``_compute_amax_entropy``: edges[i] for the *last* i with minimal KL, among the i from
    start_bin to num_bins that keep at least half of the values (sum(h[:i]) >= N / 2)."""
    hist, edges = _abs_histogram(a, num_bins)
    keeps_half = np.cumsum(hist) * 2 >= hist.sum()
    hist = hist.astype(np.float64)
    hist[0] = hist[1]  # NVIDIA's quirk: the bin holding exact zeros takes its neighbour's count
    levels = 1 << (bits - 1 + int(unsigned))
    lengths = np.arange(start_bin, num_bins + 1)
    lengths = lengths[keeps_half[lengths - 1]]
    kl = np.concatenate([_kl_by_length(hist, levels, chunk) for chunk in np.array_split(lengths, 8) if chunk.size])
    last_argmin = len(kl) - 1 - int(np.argmin(kl[::-1]))
    return float(edges[lengths[last_argmin]])


def entropy_range(
    x: Any, bits: int = 8, signed: bool = False, axis: int | None = None, num_bins: int = 2048, start_bin: int = 128
) -> CalibrationRange:
    """TensorRT's KL-divergence (entropy) calibration as NVIDIA pytorch-quantization computes it.

    With the |x| histogram h (``num_bins`` bins on [0, max|x|]; NVIDIA sets h[0] = h[1]),
    for every i = start_bin .. num_bins:
        P = h[:i] with the clipped tail sum(h[i:]) added to P[i-1]
        Q = h[:i] merged into L levels and expanded back, each level's count spread evenly
            over its non-empty bins (empty bins stay 0)
    and amax = edges[i] for the last i minimising KL(P || Q) = sum P log(P / Q) (computed here
    in float64, vectorised over i). L = 2^(bits-1) (int8: 128) or, for data without negatives
    and ``signed=False``, 2^bits (NVIDIA's ``unsigned``) -- the same grid rule as ``mse_range``.
    Range (-amax, amax) intersected with [min x, max x].

    Two deviations from NVIDIA: candidates that clip more than half of the values are skipped
    (on data far from zero, e.g. uniform on [0.5, 1.5], the KL of a range keeping a single bin
    is 0 and NVIDIA clips 99.8 % of the data), and where Q is all zero NVIDIA's scipy call
    yields NaN (which np.argmin then picks); here that KL is +inf.

    KL has no smoothing here (as in NVIDIA's code): an isolated outlier beyond empty bins is
    kept, because clipping inside the gap folds the tail into a bin where Q is 0 (KL = inf).
    """
    bits = check_bits(bits)
    _check_bins(num_bins, start_bin)
    rule = functools.partial(_entropy_amax, bits=bits, num_bins=num_bins, start_bin=start_bin)
    return _symmetric_range(x, axis, signed, rule)


# ----------------------------------------------------------------------------- torch HistogramObserver
HISTOGRAM_BINS = 2048
_HISTOGRAM_STEP = 1e-5  # torch's quantile step of the greedy search


def _l2_error_in_bins(hist: np.ndarray, start: int, end: int, dst_nbins: int) -> float:
    """torch's ``_compute_quantization_error(start, end)`` in units of one source bin (float64).

    Source bin j covers [j - start, j - start + 1) relative to the kept range's start; the kept
    range [start, end + 1) is cut into ``dst_nbins`` equal destination bins of width w, and each
    source bin's count is spread uniformly over its width (density = count). The L2 error of
    rounding every value to its destination bin's centre is the sum of density * integral of
    d^2 over the pieces, with  integral_{b}^{e} d^2 = (e^3 - b^3) / 3.
    (torch works in data units, bin_width^2 times this; the factor does not change any
    comparison, and bin units cannot overflow at any data scale.)
    """
    w = (end - start + 1) / dst_nbins
    begin = np.arange(hist.size, dtype=np.float64) - start
    stop = begin + 1
    first = np.clip(np.floor(begin / w), 0, dst_nbins - 1)
    last = np.clip(np.floor(stop / w), 0, dst_nbins - 1)
    half = w / 2

    def cube_integral(b: np.ndarray | float, e: np.ndarray | float) -> np.ndarray:
        return (np.asarray(e) ** 3 - np.asarray(b) ** 3) / 3

    norm = cube_integral(begin - (first + 0.5) * w, half)
    norm = norm + (last - first - 1) * cube_integral(-half, half)
    norm = norm + cube_integral(-half, stop - (last * w + half))
    return float((hist * norm).sum())


def _greedy_l2_bins(hist: np.ndarray, dst_nbins: int) -> tuple[int, int]:
    """torch ``HistogramObserver._non_linear_param_search`` on bin indices: (start_bin, end_bin).

    Starting from all bins, repeatedly move whichever end lies further inside the next
    1e-5 quantile step (alpha from below, beta from above) and stop as soon as the L2 error
    of the new range exceeds the best so far (ties continue, as in torch).
    """
    csum = np.cumsum(hist)
    total = float(csum[-1])
    alpha, beta = 0.0, 1.0
    start, end = 0, hist.size - 1
    norm_min = math.inf
    while alpha < beta:
        next_alpha, next_beta = alpha + _HISTOGRAM_STEP, beta - _HISTOGRAM_STEP
        # first l >= start with csum[l] >= next_alpha * total (at most end); last r <= end with
        # csum[r] <= next_beta * total (at least start): torch's two while loops
        l = min(max(int(np.searchsorted(csum, next_alpha * total, side="left")), start), end)
        r = max(min(int(np.searchsorted(csum, next_beta * total, side="right")) - 1, end), start)
        new_start, new_end = start, end
        if l - start > end - r:
            new_start, alpha = l, next_alpha
        else:
            new_end, beta = r, next_beta
        if (new_start, new_end) == (start, end):
            continue
        norm = _l2_error_in_bins(hist, new_start, new_end, dst_nbins)
        if norm > norm_min:
            break
        norm_min, start, end = norm, new_start, new_end
    return start, end


def _histogram_row_range(row: torch.Tensor, bits: int) -> tuple[float, float]:
    """One row's (new_min, new_max): float64 histogram on [min, max], greedy search, and the
    range ends min + bin_width * start, min + bin_width * (end + 1) in float32 as torch."""
    mn, mx = torch.aminmax(row)
    if mn == mx:
        return float(mn), float(mx)
    x = row.double().numpy()
    lo, hi = float(mn), float(mx)
    idx = np.minimum(np.floor((x - lo) * (HISTOGRAM_BINS / (hi - lo))).astype(np.int64), HISTOGRAM_BINS - 1)
    hist = np.bincount(idx, minlength=HISTOGRAM_BINS).astype(np.float64)
    start, end = _greedy_l2_bins(hist, 2**bits)
    bin_width = (mx - mn) / HISTOGRAM_BINS
    return float(mn + bin_width * start), float(mn + bin_width * (end + 1))


def histogram_range(x: Any, bits: int = 8, axis: int | None = None, signed: bool = False) -> CalibrationRange:
    """torch.ao ``HistogramObserver``'s range: 2048-bin histogram + greedy L2 search.

    The search trims the histogram on [min x, max x] bin by bin from whichever side holds
    less mass while the estimated L2 quantization error onto 2^bits destination bins keeps
    falling (see :func:`_greedy_l2_bins`). Per channel = one search per channel. qlab
    reimplements the observer so the pick is stable: histogram and errors in float64, positions
    in units of one source bin, where destination-bin boundaries that fall exactly on a source
    bin boundary are found exactly. torch does this in float32 data units, so its floors at those
    boundaries follow the last bits of max - min (a one-ulp change of the maximum can move its
    pick by a bin), its error sums follow the CPU's summation order, and its errors overflow for
    data near 1e15 (it returned the empty range (-3.2e15, -3.2e15)). Where float32 rounding
    decides nothing the result equals torch's bit for bit (every tested 8-bit case); at 4 bits
    about a third of random tensors end one to a few bins apart.
    torch sizes the destination grid from the dtype (256 levels for any (q)int8 range); qlab
    uses 2^bits, the grid actually used -- identical to torch for bits = 8 or 16.
    ``signed`` does not change the search (it only names the target grid, like torch's dtype).
    """
    bits = check_bits(bits)
    check_bool(signed, "signed")
    rows, ax = _rows(_prepare(x), axis)
    lo, hi = zip(*(_histogram_row_range(row, bits) for row in rows))
    return _shaped(torch.tensor(lo), ax), _shaped(torch.tensor(hi), ax)


# ----------------------------------------------------------------------------- dispatch
CALIBRATORS: dict[str, Callable[..., CalibrationRange]] = {
    "minmax": minmax_range,
    "moving_average": moving_average_range,
    "percentile": percentile_range,
    "mse": mse_range,
    "entropy": entropy_range,
    "histogram": histogram_range,
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


def depends_on_bits(calibrator: str) -> bool:
    """True if ``calibrator``'s range depends on the target bit width (mse, entropy, histogram)."""
    check_choice(calibrator, tuple(CALIBRATORS), "calibrator")
    return "bits" in inspect.signature(CALIBRATORS[calibrator]).parameters


def calibrate(
    x_or_batches: Any,
    calibrator: str = "minmax",
    bits: int = 8,
    signed: bool = False,
    axis: int | None = None,
    **options: Any,
) -> CalibrationRange:
    """Range (min_val, max_val) of ``x_or_batches`` by ``calibrator`` (a key of ``CALIBRATORS``).

    A list/tuple of batches is concatenated along dim 0, except for "moving_average", which
    consumes it batch by batch. ``bits``/``signed`` describe the target integer grid and go to
    the calibrators that use it (mse, entropy, histogram); ``options`` are the calibrator's own
    keyword arguments (e.g. ``percentile=99.9``, ``num_bins=1024``, ``averaging_constant=0.1``).
    Unknown calibrator -> ValueError; unknown option -> TypeError.
    """
    check_choice(calibrator, tuple(CALIBRATORS), "calibrator")
    check_bits(bits)
    check_bool(signed, "signed")
    func = CALIBRATORS[calibrator]
    params = list(inspect.signature(func).parameters)[1:]
    own = [p for p in params if p not in ("axis", "bits", "signed")]
    for name in options:
        if name not in own:
            raise TypeError(f"calibrate(calibrator={calibrator!r}) got unknown option {name!r}; its options are {own}")
    target = {k: v for k, v in (("bits", bits), ("signed", signed)) if k in params}
    data = x_or_batches if calibrator == "moving_average" else _concat(x_or_batches)
    return func(data, axis=axis, **target, **options)
