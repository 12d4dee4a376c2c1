"""qlab.calibration against torch.ao observers, ports of NVIDIA's calibrators and known answers."""

from __future__ import annotations

import warnings
from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.ao.quantization import (
    HistogramObserver,
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    MovingAveragePerChannelMinMaxObserver,
    PerChannelMinMaxObserver,
)

from qlab import calibration as cal
from qlab.affine import qparams_from_range


def _observe(observer_cls, batches, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obs = observer_cls(**kwargs)
        for b in batches:
            obs(b)
    return obs.min_val, obs.max_val


def _same(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.dtype == b.dtype == torch.float32
    assert a.shape == b.shape
    assert torch.equal(a, b)


@st.composite
def tensors(draw, max_dims=4, min_dims=1):
    shape = draw(st.lists(st.integers(1, 5), min_size=min_dims, max_size=max_dims))
    kind = draw(st.sampled_from(["normal", "constant", "negative", "zero", "outlier"]))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    x = torch.randn(shape, generator=gen) * draw(st.sampled_from([1e-3, 1.0, 50.0]))
    if kind == "constant":
        x = torch.full(shape, draw(st.floats(-10, 10, width=32)))
    elif kind == "negative":
        x = -x.abs() - 0.5
    elif kind == "zero":
        x = torch.zeros(shape)
    elif kind == "outlier":
        x.view(-1)[0] = 1e4
    return x


# ------------------------------------------------------------------ torch.ao observers, bit for bit
@settings(max_examples=60, deadline=None)
@given(x=tensors(min_dims=2), data=st.data())
def test_minmax_equals_torch_observers(x, data):
    # (torch's per-channel observers reject 1-D input; qlab treats each element as a channel)
    _same_pair(cal.minmax_range(x), _observe(MinMaxObserver, [x]))
    axis = data.draw(st.integers(-x.dim(), x.dim() - 1))
    _same_pair(cal.minmax_range(x, axis=axis), _observe(PerChannelMinMaxObserver, [x], ch_axis=axis))


def _same_pair(ours, ref):
    _same(ours[0], ref[0])
    _same(ours[1], ref[1])


@settings(max_examples=40, deadline=None)
@given(
    first=tensors(max_dims=3, min_dims=2),
    n=st.integers(1, 5),
    c=st.sampled_from([0.01, 0.1, 0.5, 1.0]),
    seed=st.integers(0, 1000),
    data=st.data(),
)
def test_moving_average_equals_torch_observers(first, n, c, seed, data):
    gen = torch.Generator().manual_seed(seed)
    batches = [first] + [torch.randn(first.shape, generator=gen) * (k + 1) for k in range(n - 1)]
    _same_pair(
        cal.moving_average_range(batches, c),
        _observe(MovingAverageMinMaxObserver, batches, averaging_constant=c),
    )
    axis = data.draw(st.integers(0, first.dim() - 1))
    _same_pair(
        cal.moving_average_range(iter(batches), c, axis=axis),
        _observe(MovingAveragePerChannelMinMaxObserver, batches, averaging_constant=c, ch_axis=axis),
    )


def test_minmax_1d_per_channel_is_elementwise():
    x = torch.tensor([3.0, -1.0, 0.5])
    _same_pair(cal.minmax_range(x, axis=0), (x, x))


def test_moving_average_float64_and_numpy_batches_match_observer():
    batches = [np.random.default_rng(k).normal(size=(3, 7)) for k in range(4)]
    ref = _observe(MovingAverageMinMaxObserver, [torch.from_numpy(b) for b in batches])
    _same_pair(cal.moving_average_range(batches), ref)


def test_moving_average_single_tensor_is_minmax_and_channel_mismatch_raises():
    x = torch.randn(4, 5)
    _same_pair(cal.moving_average_range(x), cal.minmax_range(x))
    with pytest.raises(ValueError, match="channel"):
        cal.moving_average_range([torch.randn(4, 5), torch.randn(3, 5)], axis=0)
    with pytest.raises(ValueError, match="empty"):
        cal.moving_average_range([])
    with pytest.raises(ValueError, match="averaging_constant"):
        cal.moving_average_range(x, averaging_constant=0.0)


@pytest.mark.parametrize("bits,signed", [(8, False), (8, True)])
@pytest.mark.parametrize("seed", range(4))
def test_histogram_range_equals_histogram_observer(bits, signed, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2000, generator=gen) * (seed + 1)
    x[:3] *= 20  # outliers for the search to trim
    qmin, qmax = (-128, 127) if signed else (0, 255)
    dtype = torch.qint8 if signed else torch.quint8
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obs = HistogramObserver(dtype=dtype, quant_min=qmin, quant_max=qmax)
        obs(x)
        ref_min, ref_max = obs._non_linear_param_search()
        ref_qparams = obs.calculate_qparams()
    lo, hi = cal.histogram_range(x, bits=bits, signed=signed)
    _same_pair((lo, hi), (ref_min, ref_max))
    assert hi < x.max()  # the outliers were trimmed
    scale, zp = qparams_from_range(lo, hi, bits=bits, signed=signed)
    assert torch.equal(scale, ref_qparams[0].reshape(())) and torch.equal(zp, ref_qparams[1].reshape(()).int())


def test_histogram_range_per_channel_is_one_observer_per_channel():
    x = torch.randn(3, 400) * torch.tensor([[0.1], [1.0], [10.0]])
    lo, hi = cal.histogram_range(x, axis=0)
    assert lo.shape == hi.shape == (3,)
    for c in range(3):
        _same_pair((lo[c], hi[c]), cal.histogram_range(x[c]))
    assert hi[0] < hi[1] < hi[2]


def test_histogram_range_constant_and_zero():
    _same_pair(cal.histogram_range(torch.full((10,), 3.0)), (torch.tensor(3.0), torch.tensor(3.0)))
    _same_pair(cal.histogram_range(torch.zeros(10)), (torch.tensor(0.0), torch.tensor(0.0)))


# ------------------------------------------------------------------ literal ports of NVIDIA's code
def _nvidia_hist(x: torch.Tensor, num_bins: int):
    a = x.abs().float()
    hist = torch.histc(a, bins=num_bins, min=0, max=a.max())
    return hist.int().numpy(), torch.linspace(0, a.max(), num_bins + 1).numpy()


def _scipy_entropy(pk, qk):
    pk, qk = pk / pk.sum(), qk / qk.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(pk > 0, np.where(qk > 0, pk * np.log(pk / qk), np.inf), 0.0)
    return terms.sum()


def _nvidia_entropy(hist, edges, bits, unsigned, start_bin):
    """Loop-for-loop port of pytorch_quantization.calib.histogram._compute_amax_entropy."""
    bins = hist.copy()
    bins[0] = bins[1]
    nbins = 1 << (bits - 1 + int(unsigned))
    divergences = []
    for i in range(start_bin, len(bins) + 1):
        counts = np.zeros(nbins)
        digitized = np.digitize(range(i), np.linspace(0, i, num=nbins + 1)) - 1
        digitized[bins[:i] == 0] = -1
        for idx, d in enumerate(digitized):
            if d != -1:
                counts[d] += bins[idx]
        for key, val in Counter(digitized).items():
            if key != -1:
                counts[key] /= val
        new_density = np.array([counts[d] if d != -1 else 0.0 for d in digitized])
        reference = np.array(bins[:i], dtype=np.float64)
        reference[-1] += np.sum(bins[i:])
        divergences.append(_scipy_entropy(reference, new_density))
    divergences = np.array(divergences)
    last_argmin = len(divergences) - 1 - np.argmin(divergences[::-1])
    return edges[last_argmin + start_bin]


def _nvidia_mse(hist, edges, bits, unsigned, start_bin):
    """Port of _compute_amax_mse with fake_tensor_quant (round(x * qmax / amax) / (qmax / amax))."""
    counts = torch.from_numpy(hist).float()
    e = torch.from_numpy(edges).float()
    centers = (e[1:] + e[:-1]) / 2
    max_bound = 2.0 ** (bits - 1 + int(unsigned)) - 1
    mses = []
    for i in range(start_bin, len(centers)):
        scale = max_bound / centers[i]
        q = torch.clamp(torch.round(centers * scale), 0 if unsigned else -max_bound - 1, max_bound) / scale
        mses.append(((q - centers) ** 2 * counts).mean())
    return centers[start_bin + int(np.argmin(mses))].item()


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("bits,dist", [(4, "laplace"), (5, "gauss_relu"), (3, "uniform")])
def test_entropy_equals_nvidia_port(seed, bits, dist):
    rng = np.random.default_rng(seed)
    x = {
        "laplace": rng.laplace(size=3000),
        "gauss_relu": np.maximum(rng.normal(size=3000), 0),
        "uniform": rng.uniform(-1, 1, size=3000),
    }[dist].astype(np.float32)
    t = torch.from_numpy(x)
    unsigned = bool(x.min() >= 0)
    hist, edges = _nvidia_hist(t, 256)
    lo, hi = cal.entropy_range(t, bits=bits, num_bins=256, start_bin=16)
    assert hi.item() == pytest.approx(_nvidia_entropy(hist, edges, bits, unsigned, 16), rel=1e-6)
    assert lo.item() == max(-hi.item(), float(x.min()))


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("bits,signed", [(8, False), (4, False), (4, True)])
def test_mse_equals_nvidia_port(seed, bits, signed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(5000, generator=gen)
    if seed == 1:
        x = x.relu()
    unsigned = not signed and bool(x.min() >= 0)
    hist, edges = _nvidia_hist(x, 512)
    _, hi = cal.mse_range(x, bits=bits, signed=signed, num_bins=512, start_bin=32)
    assert hi.item() == pytest.approx(_nvidia_mse(hist, edges, bits, unsigned, 32), rel=1e-6)


@settings(max_examples=30, deadline=None)
@given(x=tensors(max_dims=2), p=st.sampled_from([0.0, 50.0, 90.0, 99.0, 99.99, 100.0]))
def test_percentile_is_the_exact_order_statistic(x, p):
    # numpy's inverted_cdf: the smallest |x| with at least p % of the values at or below it
    amax = float(np.percentile(x.abs().double().numpy(), p, method="inverted_cdf"))
    lo, hi = cal.percentile_range(x, percentile=p)
    assert hi.item() == float(np.clip(x.max().item(), -amax, amax))
    assert lo.item() == float(np.clip(x.min().item(), -amax, amax))


# ------------------------------------------------------------------ known answers
def _uniform_with_outliers(far: float = 5.0) -> torch.Tensor:
    x = torch.rand(100000, generator=torch.Generator().manual_seed(0)) * 2 - 1
    x[:4] = torch.tensor([far, -far, 0.9 * far, -0.8 * far])  # 0.004 % of the values
    return x


@pytest.mark.parametrize("calibrator,options", [("percentile", {}), ("mse", {"bits": 4}), ("entropy", {})])
def test_outliers_are_clipped_but_minmax_keeps_them(calibrator, options):
    x = _uniform_with_outliers()
    lo, hi = cal.calibrate(x, calibrator, **options)
    assert cal.minmax_range(x)[1] == 5.0 and cal.minmax_range(x)[0] == -5.0
    assert 0.9 < hi.item() < 1.1, hi
    assert lo.item() == -hi.item()


def test_mse_keeps_outliers_when_rounding_noise_dominates():
    # at 8 bits the rounding error of 100k values outweighs clipping 4 values: mse keeps them
    assert cal.mse_range(_uniform_with_outliers())[1].item() > 4.0


def test_entropy_keeps_an_isolated_far_outlier():
    # NVIDIA's KL has no smoothing: clipping inside the empty gap puts P's folded tail in a bin
    # where Q is 0, so KL = inf there and the search has to keep the outlier
    x = _uniform_with_outliers(far=100.0)
    assert cal.entropy_range(x)[1].item() == 100.0
    assert cal.percentile_range(x)[1].item() < 1.0


def test_percentile_of_known_values():
    # 100 values: |x| = 0.5 (x90), 9.5 (x9), 100 (x1)
    x = torch.tensor([0.5] * 90 + [9.5] * 9 + [100.0])
    hi = lambda p: cal.percentile_range(x, percentile=p)[1].item()  # noqa: E731
    assert [hi(90.0), hi(90.5), hi(99.0), hi(99.5), hi(100.0)] == [0.5, 9.5, 9.5, 100.0, 100.0]
    assert cal.percentile_range(x, percentile=95.0)[0].item() == 0.5  # min x: the range stays on the data


def test_mse_finds_true_range_of_uniform_data():
    x = torch.rand(50000, generator=torch.Generator().manual_seed(1)) * 6 - 3
    lo, hi = cal.mse_range(x)
    assert hi.item() == pytest.approx(3.0, rel=0.02) and lo.item() == -hi.item()


@pytest.mark.parametrize("sampler", [np.random.default_rng(0).laplace, np.random.default_rng(0).normal])
def test_entropy_clips_inside_heavy_tails(sampler):
    x = torch.from_numpy(sampler(size=20000).astype(np.float32))
    lo, hi = cal.entropy_range(x)
    assert 0 < hi.item() < x.abs().max().item()
    assert lo.item() == -hi.item()


@pytest.mark.parametrize("calibrator", list(cal.CALIBRATORS))
def test_ranges_stay_on_the_data_and_symmetric_data_is_symmetric(calibrator):
    x = torch.rand(5000, generator=torch.Generator().manual_seed(3)) + 0.25
    lo, hi = cal.calibrate(x, calibrator)
    assert 0.25 <= lo.item() < hi.item() <= 1.25
    if calibrator in ("percentile", "mse", "entropy"):
        lo_s, hi_s = cal.calibrate(torch.cat([x, -x]), calibrator)
        assert lo_s.item() == -hi_s.item() > -1.25


@pytest.mark.parametrize("calibrator", list(cal.CALIBRATORS))
def test_per_channel_equals_per_tensor_on_each_channel(calibrator):
    gen = torch.Generator().manual_seed(5)
    scales = torch.tensor([0.01, 1.0, 30.0])
    x = torch.randn(2, 3, 300, generator=gen) * scales[:, None]  # channels on axis 1
    lo, hi = cal.calibrate(x, calibrator, axis=1)
    assert lo.shape == hi.shape == (3,)
    for c in range(3):
        lo_c, hi_c = cal.calibrate(x[:, c], calibrator)
        assert lo[c] == lo_c and hi[c] == hi_c
    assert hi[0] < hi[1] < hi[2]


@pytest.mark.parametrize("calibrator", list(cal.CALIBRATORS))
@pytest.mark.parametrize("value", [0.0, 2.5, -1.5])
def test_constant_and_all_zero_inputs(calibrator, value):
    lo, hi = cal.calibrate(torch.full((4, 6), value), calibrator)
    assert torch.isfinite(lo) and torch.isfinite(hi) and lo <= hi
    assert abs(value) * 0.99 <= max(abs(lo.item()), abs(hi.item())) <= abs(value)
    scale, _ = qparams_from_range(lo, hi)
    assert torch.isfinite(scale) and scale > 0


# ------------------------------------------------------------------ calibrate() dispatch and bad inputs
def test_calibrate_dispatch_and_batches():
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randn(4, 8, generator=gen) for _ in range(3)]
    _same_pair(cal.calibrate(batches, "minmax"), cal.minmax_range(torch.cat(batches)))
    _same_pair(cal.calibrate(tuple(batches), "percentile", percentile=99.0), cal.percentile_range(torch.cat(batches), 99.0))
    _same_pair(
        cal.calibrate(batches, "moving_average", averaging_constant=0.5),
        cal.moving_average_range(batches, averaging_constant=0.5),
    )
    _same_pair(cal.calibrate(batches, "mse", bits=4, axis=1), cal.mse_range(torch.cat(batches), bits=4, axis=1))
    assert set(cal.CALIBRATORS) == {"minmax", "moving_average", "percentile", "mse", "entropy", "histogram"}


def test_calibrate_unknown_calibrator_and_option():
    with pytest.raises(ValueError, match="minmax.*histogram"):
        cal.calibrate(torch.randn(5), "kl")
    with pytest.raises(TypeError, match="'percentil'"):
        cal.calibrate(torch.randn(5), "percentile", percentil=99.0)
    with pytest.raises(TypeError, match="'num_bins'"):
        cal.calibrate(torch.randn(5), "minmax", num_bins=10)


@pytest.mark.parametrize("calibrator", list(cal.CALIBRATORS))
def test_bad_inputs(calibrator):
    with pytest.raises(ValueError, match="non-finite"):
        cal.calibrate(torch.tensor([1.0, float("nan")]), calibrator)
    with pytest.raises(ValueError, match="non-finite"):
        cal.calibrate(np.array([1.0, np.inf]), calibrator)
    with pytest.raises(ValueError, match="empty"):
        cal.calibrate(torch.empty(0, 3), calibrator)
    with pytest.raises(TypeError, match="floating-point"):
        cal.calibrate(torch.arange(5), calibrator)
    with pytest.raises(ValueError, match="axis=2 does not exist"):
        cal.calibrate(torch.randn(3, 4), calibrator, axis=2)
    with pytest.raises(ValueError, match="empty"):
        cal.calibrate([], calibrator)


def test_bad_histogram_options():
    x = torch.randn(100)
    with pytest.raises(ValueError, match="percentile"):
        cal.percentile_range(x, percentile=101)
    with pytest.raises(TypeError, match="percentile must be a number"):
        cal.percentile_range(x, percentile="99")
    with pytest.raises(TypeError, match="signed must be True or False"):
        cal.calibrate(x, "mse", signed="False")
    with pytest.raises(ValueError, match="start_bin"):
        cal.mse_range(x, num_bins=64, start_bin=64)
    with pytest.raises(ValueError, match="num_bins"):
        cal.entropy_range(x, num_bins=1)
    with pytest.raises(ValueError, match="bits"):
        cal.entropy_range(x, bits=1)


def test_numpy_input_gives_float32_tensors():
    lo, hi = cal.minmax_range(np.array([[-1.0, 2.0], [3.0, -4.0]]), axis=0)
    assert lo.dtype == torch.float32 and lo.tolist() == [-1.0, -4.0] and hi.tolist() == [2.0, 3.0]


def test_depends_on_bits_names_the_grid_aware_calibrators():
    assert [c for c in cal.CALIBRATORS if cal.depends_on_bits(c)] == ["mse", "entropy", "histogram"]
    with pytest.raises(ValueError, match="calibrator must be one of"):
        cal.depends_on_bits("magic")


# ------------------------------------------------------------------ regressions: degenerate and unstable picks
def test_percentile_with_one_far_outlier_is_usable():
    # NVIDIA's histogram edge gave (-0, 0): all but the outlier sit in the first of 2048 bins
    x = torch.randn(100_000, generator=torch.Generator().manual_seed(0))
    x[0] = 1e4
    lo, hi = cal.percentile_range(x, percentile=99.99)
    expected = float(np.percentile(x.abs().double().numpy(), 99.99, method="inverted_cdf"))
    assert hi.item() == pytest.approx(expected) and lo.item() == -hi.item() and 3.0 < expected < 5.0


def test_entropy_does_not_clip_data_far_from_zero():
    # uniform on [0.5, 1.5]: the KL of a range keeping one bin is 0, and 99.8 % used to be clipped
    x = torch.rand(100_000, generator=torch.Generator().manual_seed(0)) + 0.5
    lo, hi = cal.entropy_range(x)
    assert float((x > hi).float().mean()) < 0.01 and lo.item() == x.min().item()


def test_histogram_range_is_scale_invariant_at_1e15():
    # torch's float32 L2 errors overflow near 1e15 and returned an empty range (-3.2e15, -3.2e15)
    x = torch.randn(5000, generator=torch.Generator().manual_seed(0))
    x[:3] *= 20
    lo, hi = cal.histogram_range(x * 1e15)
    lo1, hi1 = cal.histogram_range(x)
    assert lo.item() == pytest.approx(lo1.item() * 1e15, rel=1e-6) and hi.item() == pytest.approx(hi1.item() * 1e15, rel=1e-6)
    assert lo < 0 < hi


@pytest.mark.parametrize("calibrator", ["percentile", "mse", "entropy"])
def test_magnitude_calibrators_stay_within_min_and_max(calibrator):
    # mostly positive data with a small negative tail: (-amax, amax) would waste half an affine grid
    gen = torch.Generator().manual_seed(0)
    x = torch.cat([torch.rand(20_000, generator=gen) * 4, -0.1 * torch.rand(200, generator=gen)])
    lo, hi = cal.calibrate(x, calibrator, bits=8)
    assert lo.item() == x.min().item() and 3.0 < hi.item() <= 4.0


@pytest.mark.parametrize("bits", [4, 6])
@pytest.mark.parametrize("seed", range(3))
def test_histogram_range_at_other_bit_widths_equals_observer_with_that_grid(bits, seed):
    # independent reference: torch's own search with its destination grid set to 2^bits bins
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(4000, generator=gen)
    x[:5] *= 15
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obs = HistogramObserver(dtype=torch.quint8, quant_min=0, quant_max=2**bits - 1)
        obs.dst_nbins = 2**bits
        obs(x)
        ref = obs._non_linear_param_search()
    _same_pair(cal.histogram_range(x, bits=bits), ref)
    assert cal.histogram_range(x, bits=bits)[1] <= cal.histogram_range(x, bits=8)[1]  # a coarser grid never keeps more


def test_percentile_moves_by_an_ulp_when_the_data_do():
    # the 9985th of 10000 values sits one ulp below a bin edge of the 2048-bin histogram on [0, 8];
    # scaling it by (1 + 2^-23) moved NVIDIA's pick by a whole bin (0.99609 -> 1.0)
    x = torch.cat([torch.linspace(0, 0.9, 9984), torch.tensor([0.99999994]), torch.full((15,), 8.0)])
    y = x.clone()
    y[9984] *= 1 + 2**-23
    assert cal.percentile_range(x, 99.845)[1].item() == np.float32(0.99999994)
    assert cal.percentile_range(y, 99.845)[1].item() == 1.0


@pytest.mark.parametrize("calibrator", ["percentile", "mse", "entropy", "histogram"])
def test_picks_ignore_one_ulp_changes_that_cross_no_decision(calibrator):
    # post-ReLU-like data; the values that cross a histogram bin edge when scaled by (1 + 2^-23)
    gen = torch.Generator().manual_seed(0)
    x = torch.relu(torch.randn(20_000, generator=gen)) * torch.rand(20_000, generator=gen) * 3
    y = x * (1 + 2**-23)
    top = x.max().double()
    cross = (torch.floor(x.double() * 2048 / top) != torch.floor(y.double() * 2048 / top)) & (x < x.max())
    assert cross.any()
    z = torch.where(cross, y, x)
    _same_pair(cal.calibrate(z, calibrator, bits=4), cal.calibrate(x, calibrator, bits=4))


def test_histogram_pick_survives_a_one_ulp_change_of_the_maximum():
    # torch's float32 search floors (j - start) * bin_width / dst_bin_width, which sits exactly on
    # an integer for many bins; which side float32 rounds to follows the last bits of max - min.
    # Here scaling the maximum by (1 + 2^-23) moved torch.ao's HistogramObserver (4-bit grid) from
    # end bin 1281 to 1282; the search in exact bin units keeps its pick.
    gen = torch.Generator().manual_seed(0)
    x = torch.relu(torch.randn(5000, generator=gen)) * torch.rand(5000, generator=gen) * 3
    y = x.clone()
    y[x.argmax()] *= 1 + 2**-23

    def end_bin(data):
        lo, hi = cal.histogram_range(data, bits=4)
        return round(float((hi - lo) / ((data.max() - data.min()) / 2048)))

    assert end_bin(x) == end_bin(y) == 1281
