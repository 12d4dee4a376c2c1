"""The deliberately wrong formulas of qlab.mistakes reproduce the failures lesson 02 describes."""

from __future__ import annotations

import pytest
import torch

from qlab import metrics, mistakes

W_DEMO = torch.tensor([-10.0, 5.5, 10.0])


def weights() -> torch.Tensor:
    return 0.05 * torch.randn(128, 128, generator=torch.Generator().manual_seed(0))


def correct(w: torch.Tensor, bits: int) -> torch.Tensor:
    """The right unsigned affine quantizer, via torch: s = (max - min) / (2^b - 1) over the range
    widened to include 0, z = round(-min / s)."""
    lo, hi = min(float(w.min()), 0.0), max(float(w.max()), 0.0)
    scale = (hi - lo) / (2**bits - 1)
    return torch.fake_quantize_per_tensor_affine(w, scale, round(-lo / scale), 0, 2**bits - 1)


def test_multiply_by_scale_sends_5_5_to_zero() -> None:
    assert mistakes.multiply_by_scale(W_DEMO, 8)[1].item() == 0.0
    assert correct(W_DEMO, 8)[1].item() == pytest.approx(5.5, abs=20 / 255 / 2)


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_multiply_by_scale_collapses_realistic_weights(bits: int) -> None:
    assert torch.count_nonzero(mistakes.multiply_by_scale(weights(), bits)) == 0


@pytest.mark.parametrize("bits", [2, 8, 12])
def test_bits_as_step_zeroes_every_weight_below_half_the_step(bits: int) -> None:
    w = weights()
    assert torch.count_nonzero(mistakes.bits_as_step(w, bits)) == 0
    assert torch.count_nonzero(mistakes.bits_as_step(W_DEMO, 8)) == 0
    assert mistakes.bits_as_step(torch.tensor([2.0**bits]), bits).item() == 2.0**bits


@pytest.mark.parametrize("bits", range(2, 9))
def test_round_before_rescale_keeps_two_levels(bits: int) -> None:
    w = weights()
    w_hat = mistakes.round_before_rescale(w, bits)
    levels = torch.unique(w_hat)
    assert levels.numel() == 2
    torch.testing.assert_close(levels, torch.stack([w.min(), w.max()]))
    assert torch.unique(correct(w, bits)).numel() > 2
    assert metrics.mse(w, w_hat) > 10 * metrics.mse(w, correct(w, bits))


def test_grid_from_min_misses_zero_unless_min_is_on_the_grid() -> None:
    zeros = torch.zeros(4)
    assert mistakes.grid_from_min(zeros, -1.0, 3.0, 8).abs().min().item() > 0.003
    assert torch.equal(correct(torch.tensor([-1.0, 0.0, 3.0]), 8)[1:2], torch.zeros(1))
    assert torch.equal(mistakes.grid_from_min(zeros, 0.0, 3.0, 8), zeros)  # min = 0 is a grid point


@pytest.mark.parametrize("func", [mistakes.multiply_by_scale, mistakes.bits_as_step, mistakes.round_before_rescale])
def test_mistakes_validate_inputs(func) -> None:
    with pytest.raises(ValueError, match="bits"):
        func(W_DEMO, 1)
    with pytest.raises(ValueError, match="non-finite"):
        func(torch.tensor([1.0, float("nan")]), 8)
