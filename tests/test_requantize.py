"""qlab.requantize against a plain-Python port of gemmlowp/TFLite (Python ints, C semantics)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from qlab import requantize as rq

INT32 = st.integers(-(2**31), 2**31 - 1)


# --- gemmlowp / TFLite reference, transcribed from fixedpoint.h and quantization_util.cc ---
def _c_div(a: int, b: int) -> int:
    """C integer division (truncation toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def ref_srdhm(a: int, b: int) -> int:
    if a == b == -(2**31):
        return 2**31 - 1
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else (1 - (1 << 30))
    return _c_div(ab + nudge, 1 << 31)


def ref_rdbpot(x: int, e: int) -> int:
    mask = (1 << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if remainder > threshold else 0)


def ref_quantize_multiplier(m: float) -> tuple[int, int]:
    if m == 0:
        return 0, 0
    q, shift = math.frexp(m)
    q_fixed = int(math.copysign(math.floor(abs(q) * 2**31 + 0.5), q))  # std::round
    if q_fixed == 2**31:
        q_fixed //= 2
        shift += 1
    return q_fixed, shift


def ref_mbqm(x: int, m0: int, shift: int) -> int:
    left, right = max(shift, 0), max(-shift, 0)
    return ref_rdbpot(ref_srdhm(x * (1 << left), m0), right)


def ref_mbqm_single(x: int, m0: int, shift: int) -> int:
    total = 31 - shift
    return (x * m0 + (1 << (total - 1))) >> total


@given(st.lists(st.integers(-(2**24), 2**24), min_size=1, max_size=30), st.floats(1e-6, 0.999))
def test_single_rounding_matches_reference(accs, m):
    m0, shift = ref_quantize_multiplier(m)
    out = rq.multiply_by_quantized_multiplier(torch.tensor(accs), torch.tensor(m0), torch.tensor(shift), rounding="single")
    assert out.tolist() == [ref_mbqm_single(a, m0, shift) for a in accs]


def test_single_and_double_rounding_differ_on_a_tie():
    # M = 0.25 (M0 = 2^30, shift -1): acc = -6 -> SRDHM gives -3 exactly, RDBPOT(-3, 1) = -2
    # (ties away from zero); single rounding: (-6 * 2^30 + 2^31) >> 32 = -1 (ties toward +inf)
    m0, shift = rq.quantize_multiplier(0.25)
    assert rq.multiply_by_quantized_multiplier(torch.tensor([-6, 6]), m0, shift).tolist() == [-2, 2]
    assert rq.multiply_by_quantized_multiplier(torch.tensor([-6, 6]), m0, shift, rounding="single").tolist() == [-1, 2]


def test_srdhm_rounds_negative_ties_toward_zero():
    # -3 * 2^30 / 2^31 = -1.5: the nudge 1 - 2^30 is one short of a half, so -1.5 -> -1
    assert ref_srdhm(-3, 2**30) == -1 and ref_srdhm(3, 2**30) == 2
    assert rq.saturating_rounding_doubling_high_mul(torch.tensor([-3, 3]), torch.tensor(2**30)).tolist() == [-1, 2]


def test_hand_values():
    assert ref_rdbpot(3, 1) == 2 and ref_rdbpot(-3, 1) == -2  # ties away from zero
    assert rq.rounding_divide_by_pot(torch.tensor([3, -3, 5, -5, 4, -4, 0]), 1).tolist() == [2, -2, 3, -3, 2, -2, 0]
    assert rq.saturating_rounding_doubling_high_mul(torch.tensor(-(2**31)), torch.tensor(-(2**31))).item() == 2**31 - 1
    m0, shift = rq.quantize_multiplier(0.5)
    assert (m0.item(), shift.item()) == (2**30, 0)
    m0, shift = rq.quantize_multiplier(0.3)
    assert (m0.item(), shift.item()) == (1288490189, -1)  # round(0.6 * 2^31), 0.3 = 0.6 * 2^-1
    assert rq.multiply_by_quantized_multiplier(torch.tensor([1000, -1000, 5]), m0, shift).tolist() == [300, -300, 2]


def test_multiplier_that_rounds_up_to_two_to_the_31():
    m = 1 - 2**-40  # q * 2^31 rounds to 2^31: halve M0, shift + 1
    m0, shift = rq.quantize_multiplier(m)
    assert (m0.item(), shift.item()) == ref_quantize_multiplier(m) == (2**30, 1)


@given(st.lists(st.floats(1e-9, 4.0), min_size=1, max_size=20))
def test_quantize_multiplier_matches_reference(ms):
    m0, shift = rq.quantize_multiplier(torch.tensor(ms, dtype=torch.float64))
    assert list(zip(m0.tolist(), shift.tolist())) == [ref_quantize_multiplier(m) for m in ms]
    assert bool(((m0 >= 2**30) & (m0 < 2**31)).all())


@given(st.lists(st.tuples(INT32, INT32), min_size=1, max_size=30))
def test_srdhm_matches_reference(pairs):
    a, b = (torch.tensor(v) for v in zip(*pairs))
    assert rq.saturating_rounding_doubling_high_mul(a, b).tolist() == [ref_srdhm(x, y) for x, y in pairs]


@given(st.lists(st.tuples(INT32, st.integers(0, 31)), min_size=1, max_size=30))
def test_rdbpot_matches_reference(pairs):
    x, e = (torch.tensor(v) for v in zip(*pairs))
    assert rq.rounding_divide_by_pot(x, e).tolist() == [ref_rdbpot(a, b) for a, b in pairs]


@given(st.lists(st.integers(-(2**24), 2**24), min_size=1, max_size=30), st.floats(1e-6, 0.999))
def test_multiply_by_quantized_multiplier_matches_reference(accs, m):
    m0, shift = ref_quantize_multiplier(m)
    out = rq.multiply_by_quantized_multiplier(torch.tensor(accs), torch.tensor(m0), torch.tensor(shift))
    assert out.tolist() == [ref_mbqm(a, m0, shift) for a in accs]


def test_fixed_point_and_float_rescale_differ_by_at_most_one():
    acc = torch.arange(-100_000, 100_000, 7)
    m = 0.0123456
    m0, shift = rq.quantize_multiplier(m)
    fixed = rq.multiply_by_quantized_multiplier(acc, m0, shift)
    exact = torch.from_numpy(np.round(acc.numpy() * m)).to(torch.int64)  # numpy float64, ties to even
    assert int((fixed - rq.requantize_float(acc, m)).abs().max()) <= 1
    assert int((fixed - exact).abs().max()) <= 1


def test_fewer_multiplier_bits_keep_the_fixed_point_layout():
    m0, shift = rq.quantize_multiplier(0.3, bits=8)
    assert m0.item() % 2**24 == 0 and 2**30 <= m0.item() < 2**31
    assert abs(rq.multiplier_value(m0, shift).item() - 0.3) <= 0.3 * 2**-7


@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda: rq.quantize_multiplier(-0.5), ValueError, "multiplier must be finite and >= 0"),
        (lambda: rq.multiply_by_quantized_multiplier(torch.tensor([1]), torch.tensor([2**30]), torch.tensor([0]), "half"), ValueError, "rounding must be"),
        (lambda: rq.quantize_multiplier(0.5, bits=1), ValueError, "bits must be"),
        (lambda: rq.rounding_divide_by_pot(torch.tensor([1.5]), 1), TypeError, "x must hold integers"),
        (lambda: rq.rounding_divide_by_pot(torch.tensor([1]), 40), ValueError, "exponent must be in"),
        (lambda: rq.saturating_rounding_doubling_high_mul(torch.tensor([2**40]), torch.tensor([1])), ValueError, "a must hold int32"),
        (lambda: rq.multiply_by_quantized_multiplier(torch.tensor([2**30]), torch.tensor([2**30]), torch.tensor([3])), ValueError, "overflows int32"),
    ],
)
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
