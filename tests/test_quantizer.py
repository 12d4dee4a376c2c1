"""qlab.quantizer: QuantSpec validation and quantize_on_range against torch and hand values."""

from __future__ import annotations

import pytest
import torch

from qlab.quantizer import QuantSpec, quantize_on_range, quantizer_grid
from qlab.signals import quantize_signal


def test_spec_ranges() -> None:
    assert (QuantSpec(8).qmin, QuantSpec(8).qmax) == (-128, 127)
    assert (QuantSpec(8, narrow=True).qmin, QuantSpec(8, narrow=True).qmax) == (-127, 127)
    assert (QuantSpec(4, signed=False, symmetric=False).qmin, QuantSpec(4, signed=False, symmetric=False).qmax) == (0, 15)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(bits=True), TypeError, "bits"),
        (dict(bits=8, signed="False"), TypeError, "signed must be True or False"),
        (dict(bits=8, symmetric=1), TypeError, "symmetric must be True or False"),
        (dict(bits=8, signed=False, narrow=True), ValueError, "narrow=True is defined for signed"),
        (dict(bits=8, convention="tflite"), ValueError, "convention"),
        (dict(bits=8, rounding="nearest"), ValueError, "rounding"),
    ],
)
def test_spec_is_validated(kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        QuantSpec(**kwargs)


def test_affine_on_range_equals_torch_fake_quantize() -> None:
    x = torch.linspace(-1.5, 3.5, 101)
    q = quantize_on_range(x, -1.0, 3.0, QuantSpec(8, signed=False, symmetric=False))
    assert q.scale == pytest.approx(4 / 255) and q.zero_point == 64  # hand: 0 - round(-1 / (4/255)) = 64
    expected = torch.fake_quantize_per_tensor_affine(x, q.scale, 64, 0, 255)
    torch.testing.assert_close(q.x_hat, expected, rtol=0, atol=0)
    assert (q.lo, q.hi) == (-1.0, 3.0)
    assert q.clipped(x).tolist() == ((x < -1.0) | (x > 3.0)).tolist()


def test_symmetric_on_range_widens_to_amax() -> None:
    q = quantize_on_range(torch.tensor([-2.0, 0.5]), -1.0, 2.0, QuantSpec(3, narrow=True))
    assert q.scale == pytest.approx(2 / 3) and (q.lo, q.hi) == (-2.0, 2.0)
    assert q.codes.tolist() == [-3, 1] and not q.clipped(torch.tensor([-2.0])).any()


def test_stochastic_rounding_needs_its_generator() -> None:
    spec = QuantSpec(8, rounding="stochastic")
    with pytest.raises(ValueError, match="seeded generator"):
        quantize_on_range(torch.tensor([0.3]), -1.0, 1.0, spec)


def test_quantizer_grid_hand_values() -> None:
    s = quantizer_grid(-1.0, 3.0, QuantSpec(2, signed=False, symmetric=False))
    # scale 4/3, zero-point round(0.75) = 1: levels -4/3, 0, 4/3, 8/3
    assert s.zero_point == 1 and s.scale == pytest.approx(4 / 3)
    torch.testing.assert_close(s.grid, torch.tensor([-4 / 3, 0.0, 4 / 3, 8 / 3]))
    assert float(s.x[0]) < -4 / 3 and float(s.x[-1]) > 3.0 and int(s.q[0]) == 0 and int(s.q[-1]) == 3


def test_quantize_signal_is_narrow_symmetric() -> None:
    x = torch.tensor([-2.0, -0.26, 0.24, 1.0])
    q = quantize_signal(x, 3, 1.0, "half_even")  # scale 1/3, codes [-3, 3]
    assert (q.qmin, q.qmax) == (-3, 3) and q.codes.tolist() == [-3, -1, 1, 3]
