"""Lesson 08 exercises (integer-only inference): the fixed-point multiplier, the int32 bias
code, the largest fan-in an accumulator survives, and a prediction of int8's speed at batch 1.

Expected answers come from :mod:`qlab.requantize` and :mod:`qlab.integer`; each typical
slip, computed the same way with the slip applied, gets its own hint. Answers are integers
and are compared exactly. The exercise parameters below appear nowhere else in the lesson, so
no answer can be copied from a table; ``check_*`` grade against them, ``grade_*`` take them
explicitly (for tests). The prediction's expected option is read from the committed
``int8_speed`` results (``benchmarks/int8_speed.py``), never hard-coded.
"""

from __future__ import annotations

import math

from typing import Any

import torch

from qlab.exercises._grading import Feedback, grade_choice, grade_exact, number_expected, show
from qlab.integer import max_safe_fan_in
from qlab.notebook import load_results
from qlab.requantize import quantize_multiplier

MULTIPLIER = 0.0086
"""Exercise 1: the real multiplier M to write as M0 · 2^(shift - 31)."""
BIAS, S_IN, S_W = 0.37, 0.02, 0.0031
"""Exercise 2: the float bias, the input scale and the weight scale."""
ACC_BITS, ACT_BITS, WEIGHT_BITS = 24, 8, 4
"""Exercise 3: accumulator, (unsigned) activation and (signed) weight bits (a W4A8 layer on a 24-bit DSP)."""
SPEED_MODEL, SPEED_ENGINES = "mlp", ("torch", "onnxruntime")
"""Prediction: the model whose batch-1 latency the student predicts, in both engines (1 thread)."""
SPEED_OPTIONS = ("faster in both", "faster in one only", "slower in both")


def grade_quantized_multiplier(m0: int | None, shift: int | None, multiplier: float) -> Feedback:
    """Exercise: M0 (int32 in [2^30, 2^31)) and shift with M = M0 · 2^(shift - 31).

    frexp(M) = q · 2^shift, q in [0.5, 1); M0 = round(q · 2^31), ties away from zero."""
    if (not_numbers := number_expected(m0, shift)) is not None:
        return not_numbers
    e_m0, e_shift = (int(v) for v in quantize_multiplier(multiplier))
    q30 = round(multiplier * 2.0 ** (30 - e_shift))
    slips = [
        ((e_shift, e_m0), "The two values are swapped: pass M0 first, then the shift."),
        ((e_m0, -e_shift), "Right M0, but the sign of the shift is flipped: M = M0 · 2^(shift - 31), and M < 1 needs shift <= 0."),
        ((round(multiplier * 2**31), 0), "You scaled M by 2^31 without normalising it first: "
         "frexp(M) = q · 2^shift with q in [0.5, 1), then M0 = round(q · 2^31) keeps 31 significant bits."),
        ((q30, e_shift), "M0 must lie in [2^30, 2^31): round(q · 2^31), not q · 2^30."),
        ((int(multiplier * 2.0 ** (31 - e_shift)), e_shift), "Close: round q · 2^31 to the nearest integer instead of truncating it."),
        ((e_m0, e_shift - 31), "Right M0, but give the frexp exponent as the shift: M = M0 · 2^(shift - 31) already holds the -31."),
    ]
    answer = None if m0 is None or shift is None else (m0, shift)
    return grade_exact(answer, (e_m0, e_shift), f"M = {multiplier} = {e_m0} · 2^({e_shift} - 31).", slips,
                  "Use frexp: M = q · 2^shift, q in [0.5, 1); M0 = round(q · 2^31) (ties away from zero).")


def grade_bias_code(code: int | None, bias: float, s_in: float, s_w: float) -> Feedback:
    """Exercise: the int32 code of a float bias at the accumulator's scale: q_b = round(b / (s_in · s_w)), z_b = 0."""
    if (not_numbers := number_expected(code)) is not None:
        return not_numbers
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


def grade_max_fan_in(n: int | None, acc_bits: int, act_bits: int, weight_bits: int) -> Feedback:
    """Exercise: the largest n with n · (2^act_bits - 1) · 2^(weight_bits - 1) <= 2^(acc_bits - 1) - 1
    (unsigned activations, signed weights at their worst code -2^(weight_bits - 1))."""
    if (not_numbers := number_expected(n)) is not None:
        return not_numbers
    expected = max_safe_fan_in(acc_bits, act_bits, weight_bits)
    power_of_two = 2 ** (acc_bits - act_bits - weight_bits)
    full_code = (f"is safe but not the largest: the largest activation code is 2^{act_bits} - 1 = {2**act_bits - 1}, "
                 f"slightly less than 2^{act_bits}.")
    slips = [
        ((power_of_two,), f"2^{acc_bits - 1} / (2^{act_bits} · 2^{weight_bits - 1}) = {power_of_two} {full_code}"),
        (((2 ** (acc_bits - 1) - 1) // (2**act_bits * 2 ** (weight_bits - 1)),),
         f"(2^{acc_bits - 1} - 1) // (2^{act_bits} · 2^{weight_bits - 1}) = "
         f"{(2 ** (acc_bits - 1) - 1) // (2**act_bits * 2 ** (weight_bits - 1))} {full_code}"),
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


def speed_up(speed: dict[str, Any], model: str, engine: str) -> float:
    """Batch-1 speed-up of int8 over FP32 in ``speed`` (int8_speed results): FP32 p50 ms / int8 p50 ms, one thread."""
    runs = speed["results"][model]["runs"]
    return runs[f"{engine} fp32|1"]["p50_ms"] / runs[f"{engine} int8|1"]["p50_ms"]


def grade_speed_prediction(answer: str | None, speedups: dict[str, float]) -> Feedback:
    """Prediction: is int8 faster than FP32 at batch 1 (speed-up above 1) in every engine of ``speedups``?"""
    faster = sum(v > 1.0 for v in speedups.values())
    expected = SPEED_OPTIONS[0 if faster == len(speedups) else 2 if faster == 0 else 1]
    measured = ", ".join(f"{engine} {v:.2f}x" for engine, v in speedups.items())
    why = {
        SPEED_OPTIONS[0]: "Here the arithmetic int8 saves outweighs the work it adds.",
        SPEED_OPTIONS[1]: "The same int8 model, two engines, opposite outcomes: per-layer overheads differ between engines.",
        SPEED_OPTIONS[2]: "One image through a network this small is overhead-bound: the int8 graph adds work FP32 does not "
                          "have (quantize the input, requantize every layer, dequantize the logits) and saves little arithmetic.",
    }[expected]
    explanation = (f"Batch-1 speed-ups of int8 (FP32 ms / int8 ms; below 1.00x int8 is slower): {measured}. {why} "
                   "int8 is not automatically faster: measure.")
    return grade_choice(answer, expected, SPEED_OPTIONS, explanation, {})


def check_speed_prediction(answer: str | None) -> None:
    """Print the feedback for the batch-1 speed prediction on ``SPEED_MODEL`` (committed ``int8_speed`` results)."""
    speed = load_results("int8_speed")
    show(grade_speed_prediction(answer, {e: speed_up(speed, SPEED_MODEL, e) for e in SPEED_ENGINES}))


def check_quantized_multiplier(m0: int | None, shift: int | None) -> None:
    """Print the feedback for M0 and shift of ``MULTIPLIER``."""
    show(grade_quantized_multiplier(m0, shift, MULTIPLIER))


def check_bias_code(code: int | None) -> None:
    """Print the feedback for the int32 code of ``BIAS`` at scale ``S_IN · S_W``."""
    show(grade_bias_code(code, BIAS, S_IN, S_W))


def check_max_fan_in(n: int | None) -> None:
    """Print the feedback for the largest safe fan-in at ``ACC_BITS``, ``ACT_BITS``, ``WEIGHT_BITS``."""
    show(grade_max_fan_in(n, ACC_BITS, ACT_BITS, WEIGHT_BITS))
