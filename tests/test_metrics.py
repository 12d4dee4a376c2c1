"""qlab.metrics: hand-computed values, edge cases and input validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from qlab import metrics


def test_hand_computed_values():
    x = torch.tensor([1.0, -2.0, 3.0, 0.0])
    y = torch.tensor([1.5, -2.0, 2.0, 0.0])
    assert metrics.mse(x, y) == pytest.approx((0.25 + 1.0) / 4)
    assert metrics.max_abs_error(x, y) == 1.0
    assert metrics.sqnr_db(x, y) == pytest.approx(10 * math.log10(14 / 1.25))
    assert metrics.cosine_similarity(x, y) == pytest.approx(11.5 / math.sqrt(14 * 10.25))


def test_sqnr_of_known_noise_power():
    # signal power 4 (x = +-2), noise power 0.01 (+-0.1): 10 log10(400) = 26.02 dB
    x = torch.tensor([2.0, -2.0] * 500, dtype=torch.float64)
    noise = torch.tensor([0.1, 0.1, -0.1, -0.1] * 250, dtype=torch.float64)
    assert metrics.sqnr_db(x, x + noise) == pytest.approx(10 * math.log10(400.0), abs=1e-9)


def test_sqnr_of_uniform_quantizer_is_about_6_db_per_bit():
    x = torch.rand(200000, generator=torch.Generator().manual_seed(0)) * 2 - 1
    for bits in (4, 8):
        step = 2 / 2**bits
        y = (torch.floor(x / step) + 0.5) * step
        assert metrics.sqnr_db(x, y) == pytest.approx(6.02 * bits, abs=0.1)


def test_zero_error_and_zero_signal():
    x = torch.randn(10)
    assert metrics.sqnr_db(x, x.clone()) == math.inf
    assert metrics.sqnr_db(torch.zeros(3), torch.zeros(3)) == math.inf
    assert metrics.sqnr_db(torch.zeros(3), torch.ones(3)) == -math.inf
    assert metrics.mse(x, x) == 0.0 and metrics.max_abs_error(x, x) == 0.0
    assert metrics.cosine_similarity(x, 3 * x) == pytest.approx(1.0)
    assert metrics.cosine_similarity(x, -x) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="all zero"):
        metrics.cosine_similarity(torch.zeros(3), torch.ones(3))


@settings(max_examples=50, deadline=None)
@given(
    x=arrays(np.float32, st.integers(1, 30), elements=st.floats(-1e3, 1e3, width=32)),
    seed=st.integers(0, 2**31 - 1),
)
def test_metrics_match_numpy_float64(x, seed):
    y = x + np.random.default_rng(seed).normal(size=x.shape).astype(np.float32)
    xd, yd = x.astype(np.float64), y.astype(np.float64)
    assert metrics.mse(x, y) == pytest.approx(np.mean((xd - yd) ** 2), rel=1e-12)
    assert metrics.max_abs_error(x, torch.from_numpy(y)) == np.max(np.abs(xd - yd))
    err = np.sum((xd - yd) ** 2)
    if err > 0 and np.sum(xd**2) > 0:
        assert metrics.sqnr_db(x, y) == pytest.approx(10 * np.log10(np.sum(xd**2) / err), rel=1e-9, abs=1e-9)


def test_kl_divergence_values():
    assert metrics.kl_divergence([1, 2, 3], [2, 4, 6]) == 0.0  # same distribution after normalising
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert metrics.kl_divergence(torch.tensor([1.0, 1.0]), np.array([1, 3])) == pytest.approx(expected)
    assert metrics.kl_divergence([1, 1], [1, 0]) == math.inf  # q = 0 < p
    assert metrics.kl_divergence([1, 0], [1, 1]) == pytest.approx(math.log(2))  # p = 0 terms vanish


@pytest.mark.parametrize(
    "p,q,exc,match",
    [
        ([1, 2], [1, 2, 3], ValueError, "same length"),
        ([1, -1], [1, 1], ValueError, "non-negative"),
        ([0, 0], [1, 1], ValueError, "sums to zero"),
        ([1, float("nan")], [1, 1], ValueError, "non-finite"),
        ([[1, 2]], [[1, 2]], ValueError, "1-D"),
    ],
)
def test_kl_divergence_rejects_bad_histograms(p, q, exc, match):
    with pytest.raises(exc, match=match):
        metrics.kl_divergence(p, q)


def test_histogram_kl():
    x = torch.randn(5000, generator=torch.Generator().manual_seed(0))
    assert metrics.histogram_kl(x, x.clone()) == 0.0
    assert metrics.histogram_kl(x, x.flip(0)) == 0.0  # same values, different order
    assert 0 < metrics.histogram_kl(x, x * 1.5, bins=64) < math.inf
    assert metrics.histogram_kl(x, torch.round(x), bins=2048) == math.inf  # empty bins in q
    assert metrics.histogram_kl(torch.ones(3), torch.ones(5)) == 0.0
    with pytest.raises(ValueError, match="bins"):
        metrics.histogram_kl(x, x, bins=0)


@pytest.mark.parametrize("fn", [metrics.mse, metrics.max_abs_error, metrics.sqnr_db, metrics.cosine_similarity])
def test_validation(fn):
    with pytest.raises(ValueError, match=r"x.shape=\(2, 3\) and y.shape=\(3, 2\)"):
        fn(torch.zeros(2, 3), torch.zeros(3, 2))
    with pytest.raises(TypeError, match="floating-point"):
        fn(torch.arange(3), torch.zeros(3))
    with pytest.raises(ValueError, match="non-finite"):
        fn(torch.zeros(3), torch.tensor([0.0, float("inf"), 0.0]))
    with pytest.raises(ValueError, match="empty"):
        fn(torch.zeros(0), torch.zeros(0))


def test_rms_and_peak_to_rms_hand_values():
    assert metrics.rms(torch.tensor([3.0, -4.0])) == pytest.approx(math.sqrt(12.5))
    assert metrics.peak_to_rms_db(torch.tensor([1.0, -1.0, 1.0, -1.0])) == pytest.approx(0.0)  # square wave
    sine = torch.sin(torch.arange(1000, dtype=torch.float64) * 2 * math.pi / 100)
    assert metrics.peak_to_rms_db(sine) == pytest.approx(10 * math.log10(2), abs=1e-9)  # 3.01 dB
    assert metrics.peak_to_rms_db(torch.tensor([10.0, 0.0, 0.0, 0.0])) == pytest.approx(20 * math.log10(10 / 5))
    with pytest.raises(ValueError, match="all zero"):
        metrics.peak_to_rms_db(torch.zeros(3))


def test_accuracy_stderr_hand_values():
    assert metrics.accuracy_stderr(0.9, 10_000) == pytest.approx(0.003)
    assert metrics.accuracy_stderr(0.5, 100) == pytest.approx(0.05)
    assert metrics.accuracy_stderr(1.0, 10) == 0.0
    with pytest.raises(ValueError, match="p must be"):
        metrics.accuracy_stderr(90.0, 100)
    with pytest.raises(TypeError, match="n must be"):
        metrics.accuracy_stderr(0.9, 2.5)
