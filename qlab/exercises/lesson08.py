"""Lesson 08 exercises (integer-only inference): the fixed-point multiplier, the int32 bias
code and the largest fan-in an accumulator survives.

Expected answers come from :mod:`qlab.requantize` and :mod:`qlab.integer`; each typical
slip, computed the same way with the slip applied, gets its own hint. Answers are integers
and are compared exactly.
"""

from __future__ import annotations

import math

import torch

from qlab.exercises._grading import Feedback, grade_exact, show
from qlab.integer import max_safe_fan_in
from qlab.requantize import quantize_multiplier

MULTIPLIER = 0.0072
"""Exercise 1: the real multiplier M to write as M0 · 2^(shift - 31)."""
BIAS, S_IN, S_W = 0.37, 0.02, 0.0031
"""Exercise 2: the float bias, the input scale and the weight scale."""
ACC_BITS, ACT_BITS, WEIGHT_BITS = 24, 8, 8
"""Exercise 3: accumulator, (unsigned) activation and (signed) weight bits."""


def grade_quantized_multiplier(m0: int, shift: int, multiplier: float) -> Feedback:
    """Exercise: M0 (int32 in [2^30, 2^31)) and shift with M = M0 · 2^(shift - 31)."""
    e_m0, e_shift = (int(v) for v in quantize_multiplier(multiplier))
    q30 = round(multiplier * 2.0 ** (30 - e_shift))
    slips = [
        ((e_m0, -e_shift), "Right M0, but the sign of the shift is flipped: M = M0 · 2^(shift - 31), and M < 1 needs shift <= 0."),
        ((round(multiplier * 2**31), 0), "You scaled M by 2^31 without normalising it first: "
         "frexp(M) = q · 2^shift with q in [0.5, 1), then M0 = round(q · 2^31) keeps 31 significant bits."),
        ((q30, e_shift), "M0 must lie in [2^30, 2^31): round(q · 2^31), not q · 2^30."),
        ((int(multiplier * 2.0 ** (31 - e_shift)), e_shift), "Close: round q · 2^31 to the nearest integer instead of truncating it."),
        ((e_m0, e_shift - 31), "Right M0, but give the frexp exponent as the shift: M = M0 · 2^(shift - 31) already holds the -31."),
    ]
    return grade_exact((m0, shift), (e_m0, e_shift), f"M = {multiplier} = {e_m0} · 2^({e_shift} - 31).", slips,
                  "Use frexp: M = q · 2^shift, q in [0.5, 1); M0 = round(q · 2^31) (ties away from zero).")


def grade_bias_code(code: int, bias: float, s_in: float, s_w: float) -> Feedback:
    """Exercise: the int32 code of a float bias at the accumulator's scale s_in · s_w."""
    scale = torch.tensor(s_in, dtype=torch.float64) * s_w
    expected = int(torch.round(bias / scale))
    slips = [
        ((round(bias / s_w),), "That is the bias on the weight grid. The accumulator holds Σ qa·qw, whose scale is s_in · s_w."),
        *(((code,), "That is the bias on the input grid. The accumulator's scale is s_in · s_w.")
          for code in sorted({math.floor(bias / s_in), math.ceil(bias / s_in)})),
        ((int(bias / float(scale)),), "Close: round to the nearest integer instead of truncating."),
    ]
    return grade_exact(code, (expected,), f"round({bias} / ({s_in} · {s_w})) = {expected}, zero-point 0.", slips,
                  "Divide the bias by s_in · s_w and round: that is the scale of the int32 accumulator.")


def grade_max_fan_in(n: int, acc_bits: int, act_bits: int, weight_bits: int) -> Feedback:
    """Exercise: the largest fan-in whose worst-case sum of uint8 · int8 products fits the accumulator."""
    expected = max_safe_fan_in(acc_bits, act_bits, weight_bits)
    slips = [
        ((max_safe_fan_in(acc_bits, act_bits, weight_bits, signed_act=True),),
         f"The activations are unsigned: their largest code is 2^{act_bits} - 1, not 2^{act_bits - 1}."),
        (((2 ** (acc_bits - 1) - 1) // ((2**act_bits - 1) * (2 ** (weight_bits - 1) - 1)),),
         f"The largest weight magnitude is 2^{weight_bits - 1} = {2 ** (weight_bits - 1)} (code -{2 ** (weight_bits - 1)})."),
        ((2**acc_bits // ((2**act_bits - 1) * 2 ** (weight_bits - 1)),),
         f"A signed {acc_bits}-bit accumulator holds up to 2^{acc_bits - 1} - 1, not 2^{acc_bits}."),
    ]
    return grade_exact(n, (expected,), f"n · {2**act_bits - 1} · {2 ** (weight_bits - 1)} <= 2^{acc_bits - 1} - 1 gives n = {expected}.",
                  slips, "Worst case: every product is (largest activation) · (largest weight magnitude); "
                  "n of them must stay <= 2^(acc_bits-1) - 1.")


def check_quantized_multiplier(m0: int, shift: int) -> None:
    """Print the feedback for M0 and shift of ``MULTIPLIER``."""
    show(grade_quantized_multiplier(m0, shift, MULTIPLIER))


def check_bias_code(code: int) -> None:
    """Print the feedback for the int32 code of ``BIAS`` at scale ``S_IN · S_W``."""
    show(grade_bias_code(code, BIAS, S_IN, S_W))


def check_max_fan_in(n: int) -> None:
    """Print the feedback for the largest safe fan-in at ``ACC_BITS``, ``ACT_BITS``, ``WEIGHT_BITS``."""
    show(grade_max_fan_in(n, ACC_BITS, ACT_BITS, WEIGHT_BITS))
