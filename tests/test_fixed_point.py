"""qlab.fixed_point: Qm.n formats (ARM convention) on top of the affine core."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from qlab import fixed_point as fp
from qlab.affine import quantize


def test_q1_6_format():
    f = fp.fixed_point_format(1, 6)
    assert (f.total_bits, f.qmin, f.qmax) == (8, -128, 127)
    assert f.resolution == 2**-6
    assert f.min_value == -2.0 and f.max_value == 2.0 - 2**-6
    u = fp.fixed_point_format(1, 6, signed=False)
    assert (u.total_bits, u.qmin, u.qmax, u.min_value, u.max_value) == (7, 0, 127, 0.0, 2.0 - 2**-6)
    assert fp.fixed_point_format(0, 15).total_bits == 16  # int16 audio: ARM Q0.15 = TI Q1.15
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.qmax = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    "m,n,signed,exc,match",
    [
        (-1, 4, True, ValueError, "m must be >= 0"),
        (2, -3, True, ValueError, "n must be >= 0"),
        (1.5, 2, True, TypeError, "m must be"),
        (0, 0, True, ValueError, "1-bit word"),
        (1, 0, False, ValueError, "1-bit word"),
        (8, 8, True, ValueError, "17-bit word"),
    ],
)
def test_bad_formats(m, n, signed, exc, match):
    with pytest.raises(exc, match=match):
        fp.fixed_point_format(m, n, signed)


def test_to_fixed_rounds_and_saturates():
    x = torch.tensor([0.0, 2**-7, 3 * 2**-7, -2**-7, 1.0, 5.0, -5.0, float("inf"), -float("inf")])
    q = fp.to_fixed(x, 1, 6)
    assert q.dtype == torch.int32
    assert q.tolist() == [0, 0, 2, 0, 64, 127, -128, 127, -128]  # ties to even, saturation
    assert fp.to_fixed(x[:4], 1, 6, rounding="half_away").tolist() == [0, 1, 2, -1]
    assert fp.to_fixed(torch.tensor([-0.3]), 1, 6, signed=False).tolist() == [0]
    assert torch.equal(fp.from_fixed(q, 1, 6), q.float() / 64)
    with pytest.raises(ValueError, match="NaN"):
        fp.to_fixed(torch.tensor([float("nan")]), 1, 6)


@settings(max_examples=60, deadline=None)
@given(
    m=st.integers(0, 6),
    n=st.integers(0, 9),
    signed=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_round_trip_error_is_half_a_step_inside_range(m, n, signed, seed):
    assume(m + n + signed >= 2)
    f = fp.fixed_point_format(m, n, signed)
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(200, generator=gen) * (f.max_value - f.min_value) + f.min_value
    y = fp.fixed_point_quantize(x, m, n, signed)
    assert (y - x).abs().max() <= f.resolution / 2
    assert torch.equal(fp.to_fixed(y, m, n, signed), fp.to_fixed(x, m, n, signed))  # y is on the grid
    outside = torch.tensor([f.max_value + 3.0, f.min_value - 3.0])
    assert fp.fixed_point_quantize(outside, m, n, signed).tolist() == [f.max_value, f.min_value]


def test_is_affine_quantization_with_power_of_two_scale():
    x = torch.randn(1000, generator=torch.Generator().manual_seed(1)) * 3
    for rounding in ("half_even", "floor", "trunc"):
        ref = quantize(x, 2.0**-5, 0, -(2**9), 2**9 - 1, rounding=rounding)
        assert torch.equal(fp.to_fixed(x, 4, 5, rounding=rounding), ref)


def test_numpy_in_numpy_out():
    x = np.array([0.1, -0.7, 1.99], dtype=np.float32)
    q = fp.to_fixed(x, 1, 6)
    assert isinstance(q, np.ndarray) and q.tolist() == [6, -45, 127]
    y = fp.from_fixed(q, 1, 6)
    assert isinstance(y, np.ndarray) and y.dtype == np.float32
    assert isinstance(fp.fixed_point_quantize(x, 1, 6), np.ndarray)


def test_from_fixed_rejects_out_of_range_codes():
    with pytest.raises(ValueError, match=r"\[-128, 127\]"):
        fp.from_fixed(torch.tensor([200]), 1, 6)
    with pytest.raises(TypeError, match="integer"):
        fp.from_fixed(torch.tensor([1.0]), 1, 6)


def test_signed_flag_must_be_a_boolean():
    # bool("False") is True: the string used to give a signed format silently
    with pytest.raises(TypeError, match="signed must be True or False"):
        fp.fixed_point_format(1, 6, signed="False")
