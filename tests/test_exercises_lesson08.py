"""Lesson 08 self-checks: right answers (hand-computed) pass, typical slips get their hint."""

from __future__ import annotations

import pytest

from qlab.exercises import lesson08 as ex


def gm(m0, shift):
    return ex.grade_quantized_multiplier(m0, shift, 0.0072)


def gb(code):
    return ex.grade_bias_code(code, 0.37, 0.02, 0.0031)


def gf(n):
    return ex.grade_max_fan_in(n, 24, 8, 8)


def test_quantized_multiplier():
    # 0.0072 = 0.9216 * 2^-7; 0.9216 * 2147483648 = 1979120929.997 -> 1979120930
    assert gm(1979120930, -7).correct
    assert "sign of the shift" in gm(1979120930, 7).message
    assert "normalising" in gm(round(0.0072 * 2**31), 0).message
    assert "[2^30, 2^31)" in gm(round(0.9216 * 2**30), -7).message
    assert not gm(1, 2).correct


def test_bias_code():
    assert gb(5968).correct  # 0.37 / (0.02 * 0.0031) = 5967.74
    assert "weight grid" in gb(round(0.37 / 0.0031)).message
    assert "input grid" in gb(round(0.37 / 0.02)).message
    assert "truncating" in gb(5967).message


def test_max_fan_in():
    # 24-bit accumulator: (2^23 - 1) // (255 * 128) = 8388607 // 32640 = 257
    assert gf(257).correct
    assert ex.grade_max_fan_in(1, 16, 8, 8).correct  # int16: 32767 // 32640 = 1
    assert "unsigned" in gf(8388607 // (128 * 128)).message  # 511
    assert "code -128" in gf(8388607 // (255 * 127)).message  # 259
    assert "not 2^24" in gf(2**24 // 32640).message  # 514
    assert not gf(256).correct


@pytest.mark.parametrize("check", [ex.check_quantized_multiplier, ex.check_bias_code, ex.check_max_fan_in])
def test_check_prints(check, capsys):
    args = {ex.check_quantized_multiplier: (1979120930, -7), ex.check_bias_code: (5968,), ex.check_max_fan_in: (257,)}[check]
    check(*args)
    assert capsys.readouterr().out.startswith("Correct!")


def test_truncation_exponent_and_tie_slips_get_their_hints():
    assert "truncating" in gm(1979120929, -7).message  # 0.9216 * 2^31 = 1979120929.997, truncated
    assert "frexp exponent" in gm(1979120930, -38).message  # the -31 counted twice
    for code in (18, 19):  # 0.37 / 0.02 = 18.5: either way of breaking the tie
        assert "input grid" in gb(code).message
