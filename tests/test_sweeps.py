"""qlab.sweeps: bit-width and clipping sweeps agree with qlab's quantizers and metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from qlab import metrics, sweeps
from qlab.affine import calc_qparams, fake_quantize, qparams_from_range, qrange
from qlab.calibration import calibrate


@pytest.fixture(scope="module")
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


@pytest.fixture(scope="module")
def bell(gen: torch.Generator) -> torch.Tensor:
    return 0.1 * torch.randn(20_000, generator=gen)


@pytest.fixture(scope="module")
def relu_tail(gen: torch.Generator) -> torch.Tensor:
    return torch.relu(torch.randn(20_000, generator=gen)) ** 2  # one-sided, long tail


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize(("signed", "symmetric"), [(True, True), (True, False), (False, False)])
def test_quantize_minmax_equals_fake_quantize(bell: torch.Tensor, bits: int, signed: bool, symmetric: bool) -> None:
    x = bell if signed else bell.abs()
    narrow = signed and symmetric
    scale, zp = calc_qparams(x, bits, signed, symmetric, narrow=narrow)
    q = sweeps.quantize_minmax(x, bits, signed, symmetric)
    torch.testing.assert_close(q.x_hat, fake_quantize(x, scale, zp, *qrange(bits, signed, narrow)), rtol=0, atol=0)
    assert (q.qmin, q.qmax) == qrange(bits, signed, narrow) and len(q.levels) == q.qmax - q.qmin + 1
    assert q.clip_range == (float(q.levels[0]), float(q.levels[-1]))


def test_sqnr_vs_bits_matches_metrics(bell: torch.Tensor) -> None:
    got = sweeps.sqnr_vs_bits(bell, [3, 6])
    expected = [metrics.sqnr_db(bell, sweeps.quantize_minmax(bell, b).x_hat) for b in (3, 6)]
    assert got == expected and got[1] > got[0]


def test_uniform_data_gains_6_02_db_per_bit(gen: torch.Generator) -> None:
    u = 2 * torch.rand(200_000, generator=gen) - 1
    bits = list(range(6, 13))
    sqnr = sweeps.sqnr_vs_bits(u, bits)
    assert sweeps.db_per_bit(bits, sqnr) == pytest.approx(sweeps.DB_PER_BIT, abs=0.05)
    assert sweeps.predicted_sqnr_db([8], u)[0] == pytest.approx(8 * sweeps.DB_PER_BIT, abs=0.05)
    assert sweeps.DB_PER_BIT == pytest.approx(6.0206, abs=1e-4)


def test_bell_shaped_data_has_lower_offset(bell: torch.Tensor) -> None:
    predicted = sweeps.predicted_sqnr_db([10], bell)[0]
    assert predicted < 10 * sweeps.DB_PER_BIT - 3
    assert sweeps.sqnr_vs_bits(bell, [10])[0] == pytest.approx(predicted, abs=1.0)


def test_db_per_bit_is_least_squares_slope() -> None:
    assert sweeps.db_per_bit([1, 2, 3], [5.0, 7.0, 9.0]) == pytest.approx(2.0)
    assert sweeps.db_per_bit([1, 2, 3, 4], [0, 1, 1, 3]) == pytest.approx(np.polyfit([1, 2, 3, 4], [0, 1, 1, 3], 1)[0])
    for bits, sqnr in (([4], [1.0]), ([4, 4], [1.0, 2.0]), ([4, 5], [1.0])):
        with pytest.raises(ValueError, match="two different bit widths"):
            sweeps.db_per_bit(bits, sqnr)


@pytest.mark.parametrize("threshold", [0.05, 0.2, 0.5])
@pytest.mark.parametrize("bits", [3, 8])
def test_split_parts_sum_to_fake_quant_mse_signed(bell: torch.Tensor, threshold: float, bits: int) -> None:
    split = sweeps.clip_rounding_error(bell, threshold, bits, signed=True)
    scale, zp = qparams_from_range(-threshold, threshold, bits, signed=True, symmetric=True, narrow=True)
    x_hat = fake_quantize(bell, scale, zp, *qrange(bits, signed=True, narrow=True))
    assert split.total == pytest.approx(metrics.mse(bell, x_hat), rel=1e-6)
    beyond = bell.abs() > float(scale) * qrange(bits, True, True)[1]
    assert split.clipped_fraction == int(beyond.sum()) / bell.numel()
    assert split.clipping == pytest.approx(float(((x_hat - bell)[beyond].double() ** 2).sum()) / bell.numel(), rel=1e-6)


@pytest.mark.parametrize("threshold", [0.5, 2.0, 100.0])
def test_split_parts_sum_to_fake_quant_mse_unsigned(relu_tail: torch.Tensor, threshold: float) -> None:
    split = sweeps.clip_rounding_error(relu_tail, threshold, 4, signed=False)
    scale, zp = qparams_from_range(0.0, threshold, 4, signed=False)
    x_hat = fake_quantize(relu_tail, scale, zp, *qrange(4, signed=False))
    assert split.total == pytest.approx(metrics.mse(relu_tail, x_hat), rel=1e-6)
    clipped = relu_tail[relu_tail > threshold]
    assert split.clipping == pytest.approx(float(((clipped - threshold).double() ** 2).sum()) / relu_tail.numel(), rel=1e-4)
    if threshold > float(relu_tail.max()):
        assert split.clipping == 0 and split.clipped_fraction == 0
        assert split.rounding <= (float(scale) / 2) ** 2


def test_split_has_a_sweet_spot(relu_tail: torch.Tensor) -> None:
    amax = float(relu_tail.max())
    thresholds = np.linspace(0.05, 1.0, 40) * amax
    curve = sweeps.clip_rounding_curve(relu_tail, thresholds, 4, signed=False)
    assert np.all(np.diff(curve.clipping) <= 0) and curve.rounding[-1] > curve.rounding[0]
    assert 0 < curve.best < len(thresholds) - 1
    point = sweeps.clip_rounding_error(relu_tail, thresholds[curve.best], 4, signed=False)
    assert curve.total[curve.best] == pytest.approx(point.total, rel=1e-12)
    np.testing.assert_allclose(curve.total, curve.clipping + curve.rounding)


def test_clip_range() -> None:
    assert sweeps.clip_range(2.0, signed=True) == (-2.0, 2.0)
    assert sweeps.clip_range(2.0, signed=False) == (0.0, 2.0)


def test_percentile_of_abs(bell: torch.Tensor) -> None:
    assert sweeps.percentile_of_abs(bell, 100) == float(bell.abs().max())
    assert sweeps.percentile_of_abs(bell, 50) == pytest.approx(float(bell.abs().median()), rel=1e-3)


def test_compare_calibrators_uses_calibrate_and_activation_grid(relu_tail: torch.Tensor) -> None:
    rows = sweeps.compare_calibrators(relu_tail, 4, ["minmax", "percentile"])
    assert [r.method for r in rows] == ["minmax", "percentile"]
    for r in rows:
        lo, hi = calibrate(relu_tail, r.method, bits=4, signed=False)
        assert (r.lo, r.hi) == (float(lo), float(hi))
        scale, zp = qparams_from_range(lo, hi, 4, signed=False)
        x_hat = fake_quantize(relu_tail, scale, zp, *qrange(4, signed=False))
        assert r.mse == pytest.approx(metrics.mse(relu_tail, x_hat)) and r.sqnr_db == pytest.approx(metrics.sqnr_db(relu_tail, x_hat))
    assert rows[1].mse < rows[0].mse, "clipping the long tail beats min/max at 4 bits"
    assert math.isfinite(rows[0].sqnr_db)

