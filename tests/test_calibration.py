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
    _same_pair(cal.minmax(x), _observe(MinMaxObserver, [x]))
    axis = data.draw(st.integers(-x.dim(), x.dim() - 1))
    _same_pair(cal.minmax(x, axis=axis), _observe(PerChannelMinMaxObserver, [x], ch_axis=axis))


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
        cal.moving_average_minmax(batches, c),
        _observe(MovingAverageMinMaxObserver, batches, averaging_constant=c),
    )
    axis = data.draw(st.integers(0, first.dim() - 1))
    _same_pair(
        cal.moving_average_minmax(iter(batches), c, axis=axis),
        _observe(MovingAveragePerChannelMinMaxObserver, batches, averaging_constant=c, ch_axis=axis),
    )


def test_minmax_1d_per_channel_is_elementwise():
    x = torch.tensor([3.0, -1.0, 0.5])
    _same_pair(cal.minmax(x, axis=0), (x, x))


def test_moving_average_float64_and_numpy_batches_match_observer():
    batches = [np.random.default_rng(k).normal(size=(3, 7)) for k in range(4)]
    ref = _observe(MovingAverageMinMaxObserver, [torch.from_numpy(b) for b in batches])
    _same_pair(cal.moving_average_minmax(batches), ref)


def test_moving_average_single_tensor_is_minmax_and_channel_mismatch_raises():
    x = torch.randn(4, 5)
    _same_pair(cal.moving_average_minmax(x), cal.minmax(x))
    with pytest.raises(ValueError, match="channel"):
        cal.moving_average_minmax([torch.randn(4, 5), torch.randn(3, 5)], axis=0)
    with pytest.raises(ValueError, match="empty"):
        cal.moving_average_minmax([])
    with pytest.raises(ValueError, match="averaging_constant"):
        cal.moving_average_minmax(x, averaging_constant=0.0)


@pytest.mark.parametrize("bits,signed", [(8, False), (8, True)])
@pytest.mark.parametrize("seed", range(4))
def test_histogram_l2_equals_histogram_observer(bits, signed, seed):
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
    lo, hi = cal.histogram_l2(x, bits=bits, signed=signed)
    _same_pair((lo, hi), (ref_min, ref_max))
    assert hi < x.max()  # the outliers were trimmed
    scale, zp = qparams_from_range(lo, hi, bits=bits, signed=signed)
    assert torch.equal(scale, ref_qparams[0].reshape(())) and torch.equal(zp, ref_qparams[1].reshape(()).int())


def test_histogram_l2_per_channel_is_one_observer_per_channel():
    x = torch.randn(3, 400) * torch.tensor([[0.1], [1.0], [10.0]])
    lo, hi = cal.histogram_l2(x, axis=0)
    assert lo.shape == hi.shape == (3,)
    for c in range(3):
        _same_pair((lo[c], hi[c]), cal.histogram_l2(x[c]))
    assert hi[0] < hi[1] < hi[2]


def test_histogram_l2_constant_and_zero():
    _same_pair(cal.histogram_l2(torch.full((10,), 3.0)), (torch.tensor(3.0), torch.tensor(3.0)))
    _same_pair(cal.histogram_l2(torch.zeros(10)), (torch.tensor(0.0), torch.tensor(0.0)))


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


def _nvidia_percentile(hist, edges, p):
    cdf = np.cumsum(hist / hist.sum())
    return edges[np.searchsorted(cdf, p / 100)]


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
    lo, hi = cal.entropy(t, bits=bits, num_bins=256, start_bin=16)
    assert hi.item() == _nvidia_entropy(hist, edges, bits, unsigned, 16)
    assert lo.item() == (0.0 if unsigned else -hi.item())


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("bits,signed", [(8, False), (4, False), (4, True)])
def test_mse_equals_nvidia_port(seed, bits, signed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(5000, generator=gen)
    if seed == 1:
        x = x.relu()
    unsigned = not signed and bool(x.min() >= 0)
    hist, edges = _nvidia_hist(x, 512)
    _, hi = cal.mse(x, bits=bits, signed=signed, num_bins=512, start_bin=32)
    assert hi.item() == pytest.approx(_nvidia_mse(hist, edges, bits, unsigned, 32), rel=0, abs=0)


@settings(max_examples=30, deadline=None)
@given(x=tensors(max_dims=2), p=st.sampled_from([0.0, 50.0, 90.0, 99.0, 99.99, 100.0]))
def test_percentile_equals_nvidia_port(x, p):
    lo, hi = cal.percentile(x, percentile=p, num_bins=64)
    expected = 0.0 if x.abs().max() == 0 else _nvidia_percentile(*_nvidia_hist(x, 64), p)
    assert hi.item() == expected
    assert lo.item() == (-hi.item() if (x < 0).any() else 0.0)


# ------------------------------------------------------------------ known answers
def _uniform_with_outliers(far: float = 5.0) -> torch.Tensor:
    x = torch.rand(100000, generator=torch.Generator().manual_seed(0)) * 2 - 1
    x[:4] = torch.tensor([far, -far, 0.9 * far, -0.8 * far])  # 0.004 % of the values
    return x


@pytest.mark.parametrize("method,options", [("percentile", {}), ("mse", {"bits": 4}), ("entropy", {})])
def test_outliers_are_clipped_but_minmax_keeps_them(method, options):
    x = _uniform_with_outliers()
    lo, hi = cal.calibrate(x, method, **options)
    assert cal.minmax(x)[1] == 5.0 and cal.minmax(x)[0] == -5.0
    assert 0.9 < hi.item() < 1.1, hi
    assert lo.item() == -hi.item()


def test_mse_keeps_outliers_when_rounding_noise_dominates():
    # at 8 bits the rounding error of 100k values outweighs clipping 4 values: mse keeps them
    assert cal.mse(_uniform_with_outliers())[1].item() > 4.0


def test_entropy_keeps_an_isolated_far_outlier():
    # NVIDIA's KL has no smoothing: clipping inside the empty gap puts P's folded tail in a bin
    # where Q is 0, so KL = inf there and the search has to keep the outlier
    x = _uniform_with_outliers(far=100.0)
    assert cal.entropy(x)[1].item() == 100.0
    assert cal.percentile(x)[1].item() < 1.0


def test_percentile_of_known_histogram():
    # 100 values: |x| = 0.5 (x90), 9.5 (x9), 100 (x1): 64 bins of width 100/64 on [0, 100]
    x = torch.tensor([0.5] * 90 + [9.5] * 9 + [100.0])
    hi = lambda p: cal.percentile(x, percentile=p, num_bins=64)[1].item()  # noqa: E731
    assert hi(90.0) == 0.0  # bin 0 already holds 90 %: its lower edge
    assert hi(95.0) == pytest.approx(6 * 100 / 64)  # 9.5 lies in bin 6
    assert hi(99.5) == pytest.approx(63 * 100 / 64)  # only the last bin completes the CDF
    assert hi(100.0) == pytest.approx(63 * 100 / 64)


def test_mse_finds_true_range_of_uniform_data():
    x = torch.rand(50000, generator=torch.Generator().manual_seed(1)) * 6 - 3
    lo, hi = cal.mse(x)
    assert hi.item() == pytest.approx(3.0, rel=0.02) and lo.item() == -hi.item()


@pytest.mark.parametrize("sampler", [np.random.default_rng(0).laplace, np.random.default_rng(0).normal])
def test_entropy_clips_inside_heavy_tails(sampler):
    x = torch.from_numpy(sampler(size=20000).astype(np.float32))
    lo, hi = cal.entropy(x)
    assert 0 < hi.item() < x.abs().max().item()
    assert lo.item() == -hi.item()


@pytest.mark.parametrize("method", list(cal.CALIBRATORS))
def test_non_negative_data_starts_at_zero_and_symmetric_data_is_symmetric(method):
    x = torch.rand(5000, generator=torch.Generator().manual_seed(3)) + 0.25
    lo, hi = cal.calibrate(x, method)
    if method in ("percentile", "mse", "entropy"):
        assert lo.item() == 0.0 and hi.item() > 0.25
        lo_s, hi_s = cal.calibrate(torch.cat([x, -x]), method)
        assert lo_s.item() == -hi_s.item() > -1.25
    else:
        assert 0.25 <= lo.item() < hi.item() <= 1.25


@pytest.mark.parametrize("method", list(cal.CALIBRATORS))
def test_per_channel_equals_per_tensor_on_each_channel(method):
    gen = torch.Generator().manual_seed(5)
    scales = torch.tensor([0.01, 1.0, 30.0])
    x = torch.randn(2, 3, 300, generator=gen) * scales[:, None]  # channels on axis 1
    lo, hi = cal.calibrate(x, method, axis=1)
    assert lo.shape == hi.shape == (3,)
    for c in range(3):
        lo_c, hi_c = cal.calibrate(x[:, c], method)
        assert lo[c] == lo_c and hi[c] == hi_c
    assert hi[0] < hi[1] < hi[2]


@pytest.mark.parametrize("method", list(cal.CALIBRATORS))
@pytest.mark.parametrize("value", [0.0, 2.5, -1.5])
def test_constant_and_all_zero_inputs(method, value):
    lo, hi = cal.calibrate(torch.full((4, 6), value), method)
    assert torch.isfinite(lo) and torch.isfinite(hi) and lo <= hi
    assert abs(value) * 0.99 <= max(abs(lo.item()), abs(hi.item())) <= abs(value)
    scale, _ = qparams_from_range(lo, hi)
    assert torch.isfinite(scale) and scale > 0


# ------------------------------------------------------------------ calibrate() dispatch and bad inputs
def test_calibrate_dispatch_and_batches():
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randn(4, 8, generator=gen) for _ in range(3)]
    _same_pair(cal.calibrate(batches, "minmax"), cal.minmax(torch.cat(batches)))
    _same_pair(cal.calibrate(tuple(batches), "percentile", percentile=99.0), cal.percentile(torch.cat(batches), 99.0))
    _same_pair(
        cal.calibrate(batches, "moving_average", averaging_constant=0.5),
        cal.moving_average_minmax(batches, averaging_constant=0.5),
    )
    _same_pair(cal.calibrate(batches, "mse", bits=4, axis=1), cal.mse(torch.cat(batches), bits=4, axis=1))
    assert set(cal.CALIBRATORS) == {"minmax", "moving_average", "percentile", "mse", "entropy", "histogram"}


def test_calibrate_unknown_method_and_option():
    with pytest.raises(ValueError, match="minmax.*histogram"):
        cal.calibrate(torch.randn(5), "kl")
    with pytest.raises(TypeError, match="'percentil'"):
        cal.calibrate(torch.randn(5), "percentile", percentil=99.0)
    with pytest.raises(TypeError, match="'num_bins'"):
        cal.calibrate(torch.randn(5), "minmax", num_bins=10)


@pytest.mark.parametrize("method", list(cal.CALIBRATORS))
def test_bad_inputs(method):
    with pytest.raises(ValueError, match="non-finite"):
        cal.calibrate(torch.tensor([1.0, float("nan")]), method)
    with pytest.raises(ValueError, match="non-finite"):
        cal.calibrate(np.array([1.0, np.inf]), method)
    with pytest.raises(ValueError, match="empty"):
        cal.calibrate(torch.empty(0, 3), method)
    with pytest.raises(TypeError, match="floating-point"):
        cal.calibrate(torch.arange(5), method)
    with pytest.raises(ValueError, match="axis=2 does not exist"):
        cal.calibrate(torch.randn(3, 4), method, axis=2)
    with pytest.raises(ValueError, match="empty"):
        cal.calibrate([], method)


def test_bad_histogram_options():
    x = torch.randn(100)
    with pytest.raises(ValueError, match="percentile"):
        cal.percentile(x, percentile=101)
    with pytest.raises(ValueError, match="start_bin"):
        cal.mse(x, num_bins=64, start_bin=64)
    with pytest.raises(ValueError, match="num_bins"):
        cal.entropy(x, num_bins=1)
    with pytest.raises(ValueError, match="bits"):
        cal.entropy(x, bits=1)


def test_numpy_input_gives_float32_tensors():
    lo, hi = cal.minmax(np.array([[-1.0, 2.0], [3.0, -4.0]]), axis=0)
    assert lo.dtype == torch.float32 and lo.tolist() == [-1.0, -4.0] and hi.tolist() == [2.0, 3.0]


def test_depends_on_bits_names_the_grid_aware_calibrators():
    assert [m for m in cal.CALIBRATORS if cal.depends_on_bits(m)] == ["mse", "entropy", "histogram"]
    with pytest.raises(ValueError, match="method must be one of"):
        cal.depends_on_bits("magic")
