"""Bad input gets a clear ValueError/TypeError naming the argument, never NaN or a torch crash."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import qlab
from qlab.affine import qparams_from_range

X = torch.randn(4, 6)


@pytest.mark.parametrize("bits", [0, 1, 17, 32, -8])
def test_bits_out_of_range(bits):
    with pytest.raises(ValueError, match="bits must be from 2 to 16"):
        qlab.qrange(bits)
    with pytest.raises(ValueError, match="bits"):
        qlab.calc_qparams(X, bits=bits)


@pytest.mark.parametrize("bits", [2.5, "8", True, None])
def test_bits_wrong_type(bits):
    with pytest.raises(TypeError, match="bits must be an integer"):
        qlab.qrange(bits)


def test_narrow_unsigned_is_rejected():
    with pytest.raises(ValueError, match="narrow=True is defined for signed"):
        qlab.qrange(8, signed=False, narrow=True)


def test_quant_min_above_quant_max():
    with pytest.raises(ValueError, match="quant_min must be smaller than quant_max"):
        qlab.fake_quantize(X, 0.1, 0, 10, -10)
    with pytest.raises(ValueError, match="quant_min must be smaller"):
        qlab.quantize(X, 0.1, 0, 5, 5)


@pytest.mark.parametrize("axis", [2, -3, 10])
def test_axis_that_does_not_exist(axis):
    with pytest.raises(ValueError, match=rf"axis={axis} does not exist .* allowed values are -2 to 1"):
        qlab.calc_qparams(X, axis=axis)
    with pytest.raises(ValueError, match="does not exist"):
        qlab.fake_quantize(X, torch.ones(4), torch.zeros(4, dtype=torch.int32), 0, 255, axis=axis)


def test_axis_of_a_zero_dimensional_tensor():
    with pytest.raises(ValueError, match="0-dimensional tensor has no axes; use axis=None"):
        qlab.calc_qparams(torch.tensor(1.5), axis=0)


def test_axis_wrong_type():
    with pytest.raises(TypeError, match="axis must be an integer or None"):
        qlab.calc_qparams(X, axis=0.5)


@pytest.mark.parametrize("group_size", [4, 5, 7])
def test_group_size_that_does_not_divide(group_size):
    with pytest.raises(ValueError, match=rf"group_size={group_size} does not divide the last axis \(length 6\)"):
        qlab.calc_qparams(X, group_size=group_size)


@pytest.mark.parametrize("group_size", [0, -2])
def test_group_size_not_positive(group_size):
    with pytest.raises(ValueError, match="group_size must be positive"):
        qlab.calc_qparams(X, group_size=group_size)


def test_axis_and_group_size_together():
    with pytest.raises(ValueError, match="either axis .* or group_size"):
        qlab.calc_qparams(X, axis=0, group_size=2)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_calibration_data(bad):
    x = X.clone()
    x[1, 2] = bad
    with pytest.raises(ValueError, match="x contains non-finite values"):
        qlab.calc_qparams(x)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_range(bad):
    with pytest.raises(ValueError, match="max_val contains non-finite"):
        qparams_from_range(-1.0, bad)


def test_inverted_range():
    with pytest.raises(ValueError, match="min_val must be <= max_val"):
        qparams_from_range(1.0, -1.0)


def test_range_too_wide_for_float32():
    with pytest.raises(ValueError, match="overflows float32"):
        qparams_from_range(-3e38, 3e38)


def test_nan_cannot_be_quantized():
    x = torch.tensor([0.0, float("nan")])
    with pytest.raises(ValueError, match="NaN"):
        qlab.quantize(x, 0.1, 0, -128, 127)
    with pytest.raises(ValueError, match="NaN"):
        qlab.fake_quantize(x, 0.1, 0, -128, 127)


@pytest.mark.parametrize("x", [torch.empty(0), torch.empty(3, 0), np.zeros((0,), np.float32)])
def test_empty_tensors(x):
    with pytest.raises(ValueError, match="x is empty"):
        qlab.calc_qparams(x)
    with pytest.raises(ValueError, match="x is empty"):
        qlab.quantize(x, 0.1, 0, -128, 127)


@pytest.mark.parametrize("x", [torch.arange(5), torch.ones(3, dtype=torch.bool), np.arange(4)])
def test_integer_dtypes_where_floats_are_needed(x):
    with pytest.raises(TypeError, match="floating-point dtype"):
        qlab.calc_qparams(x)
    with pytest.raises(TypeError, match="floating-point dtype"):
        qlab.fake_quantize(x, 0.1, 0, -128, 127)


def test_dequantize_needs_integer_codes():
    with pytest.raises(TypeError, match="q must be an integer tensor"):
        qlab.dequantize(torch.ones(3), 0.1, 0)


@pytest.mark.parametrize("scale", [0.0, -0.1, float("nan"), float("inf")])
def test_bad_scale(scale):
    with pytest.raises(ValueError, match="scale must be finite and > 0"):
        qlab.fake_quantize(X, scale, 0, -128, 127)


def test_zero_point_outside_range():
    with pytest.raises(ValueError, match=r"zero_point must lie within \[quant_min, quant_max\] = \[0, 255\]"):
        qlab.quantize(X, 0.1, 300, 0, 255)


def test_fractional_zero_point():
    with pytest.raises(ValueError, match="zero_point must hold whole numbers"):
        qlab.quantize(X, 0.1, 1.5, 0, 255)


def test_param_shape_mismatch():
    with pytest.raises(ValueError, match=r"scale has shape \(3,\) but this granularity needs \(4,\)"):
        qlab.fake_quantize(X, torch.ones(3), torch.zeros(3, dtype=torch.int32), 0, 255, axis=0)
    with pytest.raises(ValueError, match=r"needs \(\)"):
        qlab.fake_quantize(X, torch.ones(4), torch.zeros(4, dtype=torch.int32), 0, 255)


def test_unknown_rounding_mode():
    with pytest.raises(ValueError, match="rounding must be one of 'half_even', 'half_away'"):
        qlab.quantize(X, 0.1, 0, -128, 127, rounding="nearest")


def test_stochastic_rounding_needs_a_generator():
    with pytest.raises(ValueError, match="needs a seeded generator"):
        qlab.quantize(X, 0.1, 0, -128, 127, rounding="stochastic")


def test_unknown_convention():
    with pytest.raises(ValueError, match="convention must be one of 'textbook', 'torch'"):
        qlab.calc_qparams(X, symmetric=True, convention="tflite")


def test_non_tensor_input():
    with pytest.raises(TypeError, match="x must be a torch.Tensor or numpy array"):
        qlab.calc_qparams("weights")


@pytest.mark.parametrize("name", ["scale", "zero_point"])
@pytest.mark.parametrize("bad", ["0.1", None, True])
def test_scale_and_zero_point_must_be_numbers(name, bad):
    args = {"scale": 0.1, "zero_point": 0, name: bad}
    with pytest.raises(TypeError, match=name):
        qlab.quantize(X, args["scale"], args["zero_point"], -128, 127)
    with pytest.raises(TypeError, match=name):
        qlab.fake_quantize(X, args["scale"], args["zero_point"], -128, 127)


@pytest.mark.parametrize("bad", ["1.0", None])
def test_range_ends_must_be_numbers(bad):
    with pytest.raises(TypeError, match="max_val"):
        qparams_from_range(0.0, bad)


def test_generator_must_be_a_generator():
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        qlab.quantize(X, 0.1, 0, -128, 127, rounding="stochastic", generator=0)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        qlab.round_values(X, "stochastic", generator=0)


def test_stochastic_rounding_of_integer_tensors():
    with pytest.raises(TypeError, match="floating-point"):
        qlab.round_values(torch.arange(5), "stochastic", generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("flag", ["signed", "narrow"])
@pytest.mark.parametrize("bad", ["False", 0, 1, None])
def test_flags_must_be_booleans(flag, bad):
    with pytest.raises(TypeError, match=f"{flag} must be True or False"):
        qlab.qrange(8, **{flag: bad})


def test_symmetric_must_be_a_boolean():
    with pytest.raises(TypeError, match="symmetric must be True or False"):
        qlab.calc_qparams(X, symmetric="yes")


@pytest.mark.parametrize("bits", [True, np.True_])
def test_booleans_are_not_bit_widths(bits):
    with pytest.raises(TypeError, match="bits must be an integer"):
        qlab.qrange(bits)
    with pytest.raises(TypeError, match="quant_max must be an integer"):
        qlab.quantize(X, 0.1, 0, 0, bits)


@pytest.mark.parametrize("zp", [2**31, 2**32 + 5, -(2**31) - 1])
def test_zero_point_beyond_int32_is_rejected(zp):
    # before: 2**32 + 5 was silently taken as 5
    with pytest.raises(ValueError, match="zero_point must fit in int32"):
        qlab.quantize(X, 0.1, zp, -(2**31), 2**31 - 1)


@pytest.mark.parametrize("scale", [1e-40, 1e-45, 1e-39])
def test_subnormal_scale_is_rejected(scale):
    # before: 1 / scale overflowed to inf and the codes came out NaN
    with pytest.raises(ValueError, match="smallest normal float32"):
        qlab.quantize(torch.tensor([0.0, 1e-38]), scale, 0, -128, 127)


def test_float16_input_with_a_16_bit_unsigned_range():
    # before: torch crashed converting 65535 to float16; codes are computed in float32 now
    x = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float16)
    assert qlab.quantize(x, 2 / 65535, 0, 0, 65535).tolist() == [0, 32768, 65535]
