"""qlab.sweeps: bit-width and clipping sweeps agree with qlab's quantizers and metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from qlab import metrics, sweeps
from torch.ao.quantization import MinMaxObserver

from qlab.affine import fake_quantize, qparams_from_range, qrange
from qlab.calibration import calibrate
from qlab.quantizer import QuantSpec, minmax_quantized


@pytest.fixture(scope="module")
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


@pytest.fixture(scope="module")
def bell(gen: torch.Generator) -> torch.Tensor:
    return 0.1 * torch.randn(20_000, generator=gen)


@pytest.fixture(scope="module")
def relu_tail(gen: torch.Generator) -> torch.Tensor:
    return torch.relu(torch.randn(20_000, generator=gen)) ** 2  # one-sided, long tail


def _torch_fake_quant(x: torch.Tensor, bits: int, signed: bool, symmetric: bool) -> torch.Tensor:
    """Independent min/max fake-quant: torch.ao's observer (affine) or the hand textbook scale
    amax / (2^(b-1) - 1) on the narrow range (symmetric), then torch.fake_quantize_per_tensor_affine."""
    if symmetric:
        qmax = 2 ** (bits - 1) - 1
        scale = float(x.abs().max() / qmax)
        return torch.fake_quantize_per_tensor_affine(x, scale, 0, -qmax, qmax)
    qmin, qmax = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    obs = MinMaxObserver(dtype=torch.qint8 if signed else torch.quint8, quant_min=qmin, quant_max=qmax)
    obs(x)
    scale, zp = obs.calculate_qparams()
    return torch.fake_quantize_per_tensor_affine(x, float(scale), int(zp), qmin, qmax)


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize(("signed", "symmetric"), [(True, True), (True, False), (False, False)])
def test_minmax_quantized_equals_torch(bell: torch.Tensor, bits: int, signed: bool, symmetric: bool) -> None:
    x = bell if signed else bell.abs()
    q = minmax_quantized(x, QuantSpec(bits, signed, symmetric, narrow=signed and symmetric))
    torch.testing.assert_close(q.x_hat, _torch_fake_quant(x, bits, signed, symmetric), rtol=0, atol=0)
    assert len(q.levels) == q.qmax - q.qmin + 1 and q.representable_range == (float(q.levels[0]), float(q.levels[-1]))


def test_sqnr_vs_bits_matches_hand_formula(bell: torch.Tensor) -> None:
    x = bell.double().numpy()
    expected = []
    for b in (3, 6):
        e = _torch_fake_quant(bell, b, True, True).double().numpy() - x
        expected.append(10 * np.log10((x**2).sum() / (e**2).sum()))
    np.testing.assert_allclose(sweeps.sqnr_vs_bits(bell, [3, 6]), expected, rtol=1e-12)


def test_uniform_data_gains_6_02_db_per_bit(gen: torch.Generator) -> None:
    u = 2 * torch.rand(200_000, generator=gen) - 1
    bits = list(range(6, 13))
    sqnr = sweeps.sqnr_vs_bits(u, bits)
    assert sweeps.db_per_bit(bits, sqnr) == pytest.approx(sweeps.DB_PER_BIT, abs=0.05)
    assert sweeps.predicted_sqnr_db([8], u)[0] == pytest.approx(20 * math.log10(254), abs=0.05)  # offset ~0 dB
    assert sweeps.DB_PER_BIT == pytest.approx(6.0206, abs=1e-4)


def test_bell_shaped_data_has_lower_offset(bell: torch.Tensor) -> None:
    predicted = sweeps.predicted_sqnr_db([10], bell)[0]
    assert predicted < 10 * sweeps.DB_PER_BIT - 3
    assert sweeps.sqnr_vs_bits(bell, [10])[0] == pytest.approx(predicted, abs=1.0)


def test_model_uses_the_span_and_the_steps_of_the_grid_used() -> None:
    """Regression: R was max x - min x even for the symmetric grid, whose span is 2 max|x|, and the step
    R / 2^b, where the narrow grid has 2^b - 2 steps. The model must be E[x^2] / (s^2 / 12) with the grid's own s."""
    x = torch.tensor([-0.5, -0.1, 0.0, 0.2, 0.3])  # min/max span 0.8, symmetric span 1.0
    power = float((x.double() ** 2).mean())
    for bits, signed, symmetric, span, steps in ((4, True, True, 1.0, 14), (4, True, False, 0.8, 15), (8, True, True, 1.0, 254)):
        s = span / steps
        model = sweeps.predicted_sqnr_db([bits], x, signed=signed, symmetric=symmetric)[0]
        assert model == pytest.approx(10 * math.log10(power / (s**2 / 12)), rel=1e-6)
        assert sweeps.grid_steps(bits, signed, symmetric) == steps
    assert sweeps.sqnr_offset_db(x) == pytest.approx(10 * math.log10(12 * power / 1.0**2), rel=1e-6)
    assert sweeps.sqnr_offset_db(torch.relu(x), symmetric=False) == pytest.approx(
        10 * math.log10(12 * float((torch.relu(x).double() ** 2).mean()) / 0.3**2), rel=1e-6)


@pytest.mark.parametrize(("signed", "symmetric"), [(True, True), (True, False), (False, False)])
def test_model_matches_the_measured_sqnr_and_slope(bell: torch.Tensor, signed: bool, symmetric: bool) -> None:
    """Bell-shaped data without exact zeros: the model tracks the measurement at every bit width from 4 on
    (within 0.1 dB), and so does its slope, which exceeds 20 log10 2 on the narrow grid (2^b - 2 steps)."""
    x = bell if signed else bell.abs()
    bits = list(range(4, 13))
    measured = sweeps.sqnr_vs_bits(x, bits, signed, symmetric)
    model = sweeps.predicted_sqnr_db(bits, x, signed, symmetric)
    np.testing.assert_allclose(model, measured, atol=0.1)
    assert sweeps.db_per_bit(bits, model) == pytest.approx(sweeps.db_per_bit(bits, measured), abs=0.02)
    if signed and symmetric:
        assert sweeps.db_per_bit(bits, model) > sweeps.DB_PER_BIT + 0.1


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
    beyond = bell.abs() > threshold  # the requested range decides, not the top level (qmax * scale)
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


@pytest.mark.parametrize(("threshold", "signed"), [(2.0, True), (2.0, False)])
def test_threshold_range_decides_what_is_clipped(threshold: float, signed: bool) -> None:
    x = torch.tensor([-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 2.5])
    split = sweeps.clip_rounding_error(x, threshold, 8, signed=signed)
    # signed [-2, 2]: -3 and 2.5 beyond; unsigned [0, 2]: the three negatives and 2.5 beyond
    assert sweeps.threshold_range(threshold, signed) == ((-2.0, 2.0) if signed else (0.0, 2.0))
    assert split.clipped_fraction == (2 / 7 if signed else 4 / 7)


@pytest.mark.parametrize(("hi", "bits", "signed"), [(7.997678279876709, 8, False), (7.6854658126831055, 4, True)])
def test_the_range_end_itself_is_never_clipped(hi: float, bits: int, signed: bool) -> None:
    # (qmax - z) * scale lands one float32 ulp below hi for these hi: the maximum used to count as clipped
    x = torch.tensor([0.0, hi / 3, hi])
    qmax = 2 ** (bits - 1) - 1 if signed else 2**bits - 1
    assert float(torch.tensor(hi) / qmax * qmax) < hi  # the float32 fact behind the old bug
    split = sweeps.clip_rounding_error(x, hi, bits, signed=signed)
    assert split.clipped_fraction == 0.0 and split.clipping == 0.0


def test_percentile_of_abs(bell: torch.Tensor) -> None:
    assert sweeps.percentile_of_abs(bell, 100) == float(bell.abs().max())
    assert sweeps.percentile_of_abs(bell, 50) == pytest.approx(float(bell.abs().median()), rel=1e-3)


def test_compare_calibrators_uses_calibrate_and_activation_grid(relu_tail: torch.Tensor) -> None:
    rows = sweeps.compare_calibrators(relu_tail, 4, calibrators=["minmax", "percentile"])
    assert [r.calibrator for r in rows] == ["minmax", "percentile"]
    for r in rows:
        lo, hi = calibrate(relu_tail, r.calibrator, bits=4, signed=False)
        assert (r.lo, r.hi) == (float(lo), float(hi))
        scale, zp = qparams_from_range(lo, hi, 4, signed=False)
        x_hat = fake_quantize(relu_tail, scale, zp, *qrange(4, signed=False))
        assert r.mse == pytest.approx(metrics.mse(relu_tail, x_hat)) and r.sqnr_db == pytest.approx(metrics.sqnr_db(relu_tail, x_hat))
    assert rows[1].mse < rows[0].mse, "clipping the long tail beats min/max at 4 bits"
    assert math.isfinite(rows[0].sqnr_db)



@pytest.mark.parametrize(("signed", "bits"), [(False, 4), (False, 6), (True, 5)])
def test_rounding_estimate_counts_only_nonzero_values_inside(gen: torch.Generator, signed: bool, bits: int) -> None:
    """Exact zeros sit on a level: the s^2/12 estimate counts only the non-zero values inside the
    range. On post-ReLU data (half zeros) it matches the measured rounding part within a few
    percent, where counting every inside value, (1 - |C|/N) s^2/12, overestimates it about twice."""
    relu_tail = torch.relu(torch.randn(50_000, generator=gen))
    t = 0.6 * float(relu_tail.max())
    measured = sweeps.clip_rounding_error(relu_tail, t, bits, signed).rounding
    estimate = sweeps.rounding_mse_estimate(relu_tail, t, bits, signed)
    assert estimate == pytest.approx(measured, rel=0.05)
    qmax = 2 ** (bits - 1) - 1 if signed else 2**bits - 1
    every_inside = float((relu_tail <= t).double().mean()) * (t / qmax) ** 2 / 12
    assert every_inside > 1.5 * measured
