"""Bit-for-bit parity of qlab's affine core with torch's reference implementations.

References: torch.ao.quantization MinMaxObserver / PerChannelMinMaxObserver (qparams),
torch.fake_quantize_per_tensor_affine / torch.fake_quantize_per_channel_affine (forward and
straight-through gradient). Thousands of generated cases in total.
"""

from __future__ import annotations

import warnings

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings
from strategies import bits_and_sign, float_tensors, pow2_scales, same_bits

import qlab
from qlab import granularity
from qlab.affine import fake_quantize_fast, qparams_from_range

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from torch.ao.quantization import MinMaxObserver, PerChannelMinMaxObserver



def MANY(test):  # noqa: N802 - reads as a decorator constant
    """1000 hypothesis examples per property: seconds each, so marked slow."""
    return pytest.mark.slow(settings(max_examples=1000)(test))


def _observer(bits: int, signed: bool, axis: int | None, symmetric: bool):
    qmin, qmax = qlab.qrange(bits, signed)
    dtype = torch.qint8 if signed else torch.quint8
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if axis is None:
            scheme = torch.per_tensor_symmetric if symmetric else torch.per_tensor_affine
            return MinMaxObserver(dtype=dtype, qscheme=scheme, quant_min=qmin, quant_max=qmax)
        scheme = torch.per_channel_symmetric if symmetric else torch.per_channel_affine
        return PerChannelMinMaxObserver(ch_axis=axis, dtype=dtype, qscheme=scheme, quant_min=qmin, quant_max=qmax)


def _torch_qparams(x, bits, signed, axis, symmetric):
    obs = _observer(bits, signed, axis, symmetric)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obs(x)
        scale, zp = obs.calculate_qparams()
    return scale, zp


def _check_qparams(x, bits, signed, axis, symmetric, convention):
    ref_s, ref_z = _torch_qparams(x, bits, signed, axis, symmetric)
    s, z = qlab.calc_qparams(x, bits, signed, symmetric=symmetric, axis=axis, convention=convention)
    assert same_bits(s.reshape(ref_s.shape), ref_s)
    assert torch.equal(z.reshape(ref_z.shape).long(), ref_z.long())


@MANY
@given(x=float_tensors(), bs=bits_and_sign())
def test_affine_per_tensor_qparams_equal_minmax_observer(x, bs):
    _check_qparams(x, *bs, axis=None, symmetric=False, convention="textbook")


@MANY
@given(x=float_tensors(min_dims=2), bs=bits_and_sign(), data=st.data())
def test_affine_per_channel_qparams_equal_per_channel_observer(x, bs, data):
    axis = data.draw(st.integers(0, x.dim() - 1))
    _check_qparams(x, *bs, axis=axis, symmetric=False, convention="textbook")


@settings(max_examples=400)
@given(x=float_tensors(min_dims=2), bs=bits_and_sign(), data=st.data())
def test_symmetric_torch_convention_equals_observer(x, bs, data):
    axis = data.draw(st.sampled_from([None, *range(x.dim())]))
    _check_qparams(x, *bs, axis=axis, symmetric=True, convention="torch")


def _torch_fake_quant(x, scale, zp, qmin, qmax, axis):
    if axis is None:
        return torch.fake_quantize_per_tensor_affine(x, scale.reshape(()), zp.reshape(()), qmin, qmax)
    return torch.fake_quantize_per_channel_affine(x, scale, zp, axis, qmin, qmax)


def _random_qparams(data, x, axis, bits, signed):
    """Power-of-two scales (exact ties) or min/max scales, random in-range zero-points."""
    qmin, qmax = qlab.qrange(bits, signed)
    n = 1 if axis is None else x.shape[axis]
    if data.draw(st.booleans()):
        scale = torch.tensor([data.draw(pow2_scales()) for _ in range(n)], dtype=torch.float32)
        zp = torch.tensor([data.draw(st.integers(qmin, qmax)) for _ in range(n)], dtype=torch.int32)
    else:
        scale, zp = qlab.calc_qparams(x, bits, signed, axis=axis)
    shape = () if axis is None else (n,)
    return scale.reshape(shape), zp.reshape(shape), qmin, qmax


def _check_fake_quant(x, data, bits, signed, axis):
    scale, zp, qmin, qmax = _random_qparams(data, x, axis, bits, signed)
    x_ref = x.clone().requires_grad_(True)
    x_q = x.clone().requires_grad_(True)
    y_ref = _torch_fake_quant(x_ref, scale, zp, qmin, qmax, axis)
    y = qlab.fake_quantize(x_q, scale, zp, qmin, qmax, axis=axis)
    assert same_bits(y, y_ref)
    with torch.no_grad():  # the mask-free path and the fast path the PTQ models use
        assert same_bits(qlab.fake_quantize(x, scale, zp, qmin, qmax, axis=axis), y_ref)
        s_b, z_b = (granularity.broadcast_param(p, x, axis, None) for p in (scale, zp))
        assert torch.equal(fake_quantize_fast(x, s_b, z_b, qmin, qmax), y_ref)
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    y_ref.backward(g)
    y.backward(g)
    assert same_bits(x_q.grad, x_ref.grad)


@MANY
@given(x=float_tensors(), bs=bits_and_sign(), data=st.data())
def test_fake_quantize_per_tensor_equals_torch_with_gradient(x, bs, data):
    _check_fake_quant(x, data, *bs, axis=None)


@MANY
@given(x=float_tensors(), bs=bits_and_sign(), data=st.data())
def test_fake_quantize_per_channel_equals_torch_with_gradient(x, bs, data):
    _check_fake_quant(x, data, *bs, axis=data.draw(st.integers(0, x.dim() - 1)))


@settings(max_examples=300)
@given(x=float_tensors(), bs=bits_and_sign(), data=st.data())
def test_quantize_then_dequantize_is_fake_quantize(x, bs, data):
    axis = data.draw(st.sampled_from([None, *range(x.dim())]))
    scale, zp, qmin, qmax = _random_qparams(data, x, axis, *bs)
    q = qlab.quantize(x, scale, zp, qmin, qmax, axis=axis)
    assert q.dtype == torch.int32 and int(q.min()) >= qmin and int(q.max()) <= qmax
    assert same_bits(qlab.dequantize(q, scale, zp, axis=axis), qlab.fake_quantize(x, scale, zp, qmin, qmax, axis=axis))


def test_ties_round_half_to_even_like_torch():
    x = torch.tensor([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5])
    y = qlab.fake_quantize(x, 1.0, 0, -128, 127)
    assert y.tolist() == [-2.0, -2.0, -0.0, 0.0, 2.0, 2.0]
    assert same_bits(y, torch.fake_quantize_per_tensor_affine(x, 1.0, 0, -128, 127))


def test_infinities_saturate_like_torch_per_tensor():
    x = torch.tensor([-float("inf"), 0.25, float("inf")])
    y = qlab.fake_quantize(x, 0.5, 3, 0, 15)
    assert same_bits(y, torch.fake_quantize_per_tensor_affine(x, 0.5, 3, 0, 15))


@pytest.mark.parametrize("signed", [False, True])
def test_textbook_symmetric_maps_amax_to_qmax(signed):
    x = torch.tensor([-3.0, 0.5, 2.0])
    scale, zp = qlab.calc_qparams(x, bits=8, signed=signed, symmetric=True)
    qmin, qmax = qlab.qrange(8, signed)
    assert float(scale) == pytest.approx(3.0 / 127)
    q = qlab.quantize(x, scale, zp, qmin, qmax)
    assert int(q[0]) - int(zp) == -127
    assert int(zp) == (0 if signed else 128)


def test_torch_symmetric_clips_amax_by_half_a_step():
    x = torch.tensor([-1.0, 1.0])
    scale, zp = qlab.calc_qparams(x, bits=8, signed=True, symmetric=True, convention="torch")
    assert float(scale) == pytest.approx(1.0 / 127.5)
    y = qlab.fake_quantize(x, scale, zp, -128, 127)
    # amax sits at code 127.5: +1.0 is clipped to 127 * scale, half a step short
    assert float(y[1]) == pytest.approx(127 / 127.5) and float(y[1]) < 1.0


@pytest.mark.parametrize(("lo", "hi"), [(-1.0, 3.0), (0.5, 2.0), (-7.25, -0.1), (-1e-3, 1e4)])
@pytest.mark.parametrize(("bits", "signed"), [(8, False), (8, True), (4, False)])
def test_qparams_from_range_matches_observer_on_given_range(lo, hi, bits, signed):
    qmin, qmax = qlab.qrange(bits, signed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obs = MinMaxObserver(dtype=torch.qint8 if signed else torch.quint8, quant_min=qmin, quant_max=qmax)
        obs(torch.tensor([lo, hi]))
        ref_scale, ref_zp = obs.calculate_qparams()
    s, z = qparams_from_range(lo, hi, bits=bits, signed=signed)
    assert torch.equal(s, ref_scale.reshape(())) and torch.equal(z, ref_zp.reshape(()).to(torch.int32))


@pytest.mark.parametrize("bits", range(2, 17))
def test_qrange_table(bits):
    assert qlab.qrange(bits, signed=True) == (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    assert qlab.qrange(bits, signed=True, narrow=True) == (-(2 ** (bits - 1)) + 1, 2 ** (bits - 1) - 1)
    assert qlab.qrange(bits, signed=False) == (0, 2**bits - 1)


def test_int32_range_saturates_instead_of_wrapping():
    # float32 rounds 2**31 - 1 up to 2**31, which wrapped to -2**31 before the float64 clamp
    q = qlab.quantize(torch.tensor([1e10, -1e10, 3.0]), 1.0, 0, -(2**31), 2**31 - 1)
    assert q.tolist() == [2**31 - 1, -(2**31), 3]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_are_quantized_in_float32_like_torch(dtype):
    x = (torch.randn(64, 32, generator=torch.Generator().manual_seed(0)) * 3).to(dtype)
    scale, zp = qlab.calc_qparams(x.float(), 8, signed=True)
    expected = torch.fake_quantize_per_tensor_affine(x.float(), float(scale), int(zp), -128, 127)
    got = qlab.fake_quantize(x, scale, zp, -128, 127)
    assert got.dtype == dtype
    torch.testing.assert_close(got, expected.to(dtype), rtol=0, atol=0)
    codes = qlab.quantize(x, scale, zp, -128, 127)
    assert torch.equal(codes, torch.round(x.float() * torch.reciprocal(scale)).add(zp).clamp(-128, 127).int())


def test_half_input_per_tensor_equals_per_channel():
    # fp16 1.0 with scale 1/3001: 3000 per tensor but 3001 per channel when computed in half
    x = torch.ones(2, 3, dtype=torch.float16)
    s = torch.tensor(1 / 3001, dtype=torch.float32)
    per_tensor = qlab.quantize(x, s, 0, -32768, 32767)
    per_channel = qlab.quantize(x, s.repeat(2), torch.zeros(2, dtype=torch.int32), -32768, 32767, axis=0)
    assert torch.equal(per_tensor, per_channel) and int(per_tensor[0, 0]) == 3001


def test_half_input_codes_stay_in_range():
    # fp16 100.0 / 0.001 was code 32768 > quant_max in half arithmetic
    q = qlab.quantize(torch.tensor([100.0], dtype=torch.float16), 0.001, 0, -(2**31), 2**31 - 1)
    assert int(q) == 100000
