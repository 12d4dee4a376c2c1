"""Properties every correct affine quantizer has, plus granularity and numpy behaviour."""

from __future__ import annotations

import hypothesis.strategies as st
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from strategies import bits_and_sign, float_tensors, same_bits

import qlab
from qlab import granularity

PROPS = settings(max_examples=300)


def _params(x, bits, signed, axis=None, group_size=None, symmetric=False):
    scale, zp = qlab.calc_qparams(x, bits, signed, symmetric=symmetric, axis=axis, group_size=group_size)
    qmin, qmax = qlab.qrange(bits, signed)
    return scale, zp, qmin, qmax


@PROPS
@given(x=float_tensors(), bs=bits_and_sign(), symmetric=st.booleans())
def test_round_trip_error_is_at_most_half_a_step_inside_the_range(x, bs, symmetric):
    scale, zp, qmin, qmax = _params(x, *bs, symmetric=symmetric)
    err = (qlab.fake_quantize(x, scale, zp, qmin, qmax) - x).abs()
    # min/max parameters put every value inside the range; allow float32 rounding slack
    assert float(err.max()) <= float(scale) / 2 * (1 + 1e-5) + 1e-6 * float(x.abs().max())


@PROPS
@given(x=float_tensors(), bs=bits_and_sign(), data=st.data())
def test_zero_is_exactly_representable_in_affine_mode(x, bs, data):
    axis = data.draw(st.sampled_from([None, *range(x.dim())]))
    scale, zp, qmin, qmax = _params(x, *bs, axis=axis)
    zeros = torch.zeros_like(x)
    assert torch.equal(qlab.fake_quantize(zeros, scale, zp, qmin, qmax, axis=axis), zeros)


@PROPS
@given(x=float_tensors(), bs=bits_and_sign(), symmetric=st.booleans())
def test_fake_quantize_is_idempotent(x, bs, symmetric):
    scale, zp, qmin, qmax = _params(x, *bs, symmetric=symmetric)
    once = qlab.fake_quantize(x, scale, zp, qmin, qmax)
    assert same_bits(qlab.fake_quantize(once, scale, zp, qmin, qmax), once)


@PROPS
@given(x=float_tensors(max_dims=1), bs=bits_and_sign())
def test_quantize_is_monotonic(x, bs):
    xs, _ = torch.sort(x)
    scale, zp, qmin, qmax = _params(xs, *bs)
    q = qlab.quantize(xs, scale, zp, qmin, qmax)
    assert bool((q[1:] >= q[:-1]).all())


@settings(max_examples=100)
@given(x=float_tensors(min_dims=2, kinds=("normal", "outliers", "elements")), data=st.data())
def test_per_group_equals_per_tensor_on_each_group(x, data):
    n = x.shape[-1]
    g = data.draw(st.sampled_from([d for d in range(1, n + 1) if n % d == 0]))
    scale, zp = qlab.calc_qparams(x, 4, True, group_size=g)
    assert scale.shape == (*x.shape[:-1], n // g)
    y = qlab.fake_quantize(x, scale, zp, -8, 7, group_size=g)
    groups = granularity.group_view(x, g).reshape(-1, g)
    y_groups = granularity.group_view(y, g).reshape(-1, g)
    for row, y_row in zip(groups, y_groups, strict=True):
        s, z = qlab.calc_qparams(row, 4, True)
        assert same_bits(y_row, qlab.fake_quantize(row, s, z, -8, 7))


def test_per_channel_works_on_1d_tensors():
    x = torch.tensor([-1.0, 2.0, 0.5])
    scale, zp = qlab.calc_qparams(x, 8, signed=True, symmetric=True, axis=0)
    assert scale.shape == (3,)
    assert torch.allclose(qlab.fake_quantize(x, scale, zp, -128, 127, axis=0), x)


@pytest.mark.parametrize("signed", [False, True])
def test_all_zero_tensor_gets_eps_scale_and_no_nan(signed):
    x = torch.zeros(5)
    scale, zp = qlab.calc_qparams(x, 8, signed)
    qmin, qmax = qlab.qrange(8, signed)
    assert float(scale) == torch.finfo(torch.float32).eps and int(zp) == qmin
    assert torch.equal(qlab.fake_quantize(x, scale, zp, qmin, qmax), x)


@pytest.mark.parametrize("c", [-3.0, 0.25, 7.0])
def test_constant_tensor_is_reproduced_exactly_or_to_half_a_step(c):
    x = torch.full((4, 3), c)
    for symmetric in (False, True):
        scale, zp, qmin, qmax = _params(x, 8, True, symmetric=symmetric)
        y = qlab.fake_quantize(x, scale, zp, qmin, qmax)
        assert torch.isfinite(y).all() and float((y - x).abs().max()) <= float(scale) / 2


def test_all_negative_tensor_puts_zero_point_at_qmax():
    x = -torch.rand(10) - 1
    _, zp = qlab.calc_qparams(x, 8, signed=False)
    assert int(zp) == 255


def test_numpy_in_numpy_out():
    x = np.linspace(-1, 2, 11, dtype=np.float32)
    scale, zp = qlab.calc_qparams(x, bits=4)
    assert isinstance(scale, np.ndarray) and scale.dtype == np.float32 and zp.dtype == np.int32
    q = qlab.quantize(x, scale, zp, 0, 15)
    assert isinstance(q, np.ndarray) and q.dtype == np.int32
    y = qlab.dequantize(q, scale, zp)
    assert isinstance(y, np.ndarray)
    np.testing.assert_array_equal(y, qlab.fake_quantize(x, scale, zp, 0, 15))
    np.testing.assert_array_equal(
        y, qlab.fake_quantize(torch.from_numpy(x), torch.from_numpy(scale), torch.from_numpy(zp), 0, 15).numpy()
    )


def test_tflite_rounding_differs_from_torch_only_on_ties():
    x = torch.tensor([0.5, 1.5, 2.5, -0.5, -2.5, 0.4, 0.6])
    torch_q = qlab.quantize(x, 1.0, 0, -128, 127)
    tflite_q = qlab.quantize(x, 1.0, 0, -128, 127, rounding="half_away")
    assert torch_q.tolist() == [0, 2, 2, 0, -2, 0, 1]
    assert tflite_q.tolist() == [1, 2, 3, -1, -3, 0, 1]
