"""Lesson 08 self-checks: right answers (hand-computed) pass, typical slips get their hint."""

from __future__ import annotations

import pytest

from qlab import exercises_lesson08 as ex


def test_quantized_multiplier():
    # 0.0072 = 0.9216 * 2^-7; 0.9216 * 2147483648 = 1979120929.997 -> 1979120930
    assert ex.grade_quantized_multiplier(1979120930, -7).correct
    assert "sign of the shift" in ex.grade_quantized_multiplier(1979120930, 7).message
    assert "normalising" in ex.grade_quantized_multiplier(round(0.0072 * 2**31), 0).message
    assert "[2^30, 2^31)" in ex.grade_quantized_multiplier(round(0.9216 * 2**30), -7).message
    assert not ex.grade_quantized_multiplier(1, 2).correct


def test_bias_code():
    assert ex.grade_bias_code(5968).correct  # 0.37 / (0.02 * 0.0031) = 5967.74
    assert "weight grid" in ex.grade_bias_code(round(0.37 / 0.0031)).message
    assert "input grid" in ex.grade_bias_code(round(0.37 / 0.02)).message
    assert "truncating" in ex.grade_bias_code(5967).message


def test_max_fan_in():
    # 24-bit accumulator: (2^23 - 1) // (255 * 128) = 8388607 // 32640 = 257
    assert ex.grade_max_fan_in(257).correct
    assert ex.grade_max_fan_in(1, acc_bits=16).correct  # int16: 32767 // 32640 = 1
    assert "unsigned" in ex.grade_max_fan_in(8388607 // (128 * 128)).message  # 511
    assert "code -128" in ex.grade_max_fan_in(8388607 // (255 * 127)).message  # 259
    assert "not 2^24" in ex.grade_max_fan_in(2**24 // 32640).message  # 514
    assert not ex.grade_max_fan_in(256).correct


@pytest.mark.parametrize("check", [ex.check_quantized_multiplier, ex.check_bias_code, ex.check_max_fan_in])
def test_check_prints(check, capsys):
    args = {ex.check_quantized_multiplier: (1979120930, -7), ex.check_bias_code: (5968,), ex.check_max_fan_in: (257,)}[check]
    check(*args)
    assert capsys.readouterr().out.startswith("Correct!")
