"""Self-checks for lesson 08 (integer-only inference).

Each exercise has a ``grade_*`` function returning a :class:`Feedback` and a ``check_*`` twin
that prints it. Expected answers come from qlab's functions (:mod:`qlab.requantize`,
:mod:`qlab.integer`); each typical slip, computed the same way with the slip applied, gets
its own hint. Self-contained: it only needs torch and those two modules.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from qlab.integer import max_safe_fan_in
from qlab.requantize import quantize_multiplier


@dataclass(frozen=True)
class Feedback:
    """Outcome of a self-check: ``correct`` and the message shown to the learner."""

    correct: bool
    message: str


def _as_ints(answer: Any) -> tuple[int, ...] | None:
    """The answer as a tuple of Python ints, or None if it holds a non-whole number."""
    values = torch.as_tensor(answer, dtype=torch.float64).flatten().tolist()
    return tuple(int(v) for v in values) if all(float(v).is_integer() for v in values) else None


def _grade(answer: Any, expected: Sequence[int], explanation: str, slips: Sequence[tuple[Sequence[int], str]], fallback: str) -> Feedback:
    """Exact integer comparison: correct, or the hint of the first slip the answer equals."""
    got = _as_ints(answer)
    if got == tuple(expected):
        return Feedback(True, f"Correct! {explanation}")
    for wrong, hint in slips:
        if got == tuple(wrong):
            return Feedback(False, f"Not quite. {hint}")
    return Feedback(False, f"Not quite. {fallback}")


def _printing(grade: Callable[..., Feedback]) -> Callable[..., None]:
    """A ``check_*`` function printing the message of ``grade`` (returns None)."""

    @functools.wraps(grade)
    def check(*args: Any, **kwargs: Any) -> None:
        print(grade(*args, **kwargs).message)

    return check


def grade_quantized_multiplier(m0: int, shift: int, multiplier: float = 0.0072) -> Feedback:
    """Exercise: M0 (int32 in [2^30, 2^31)) and shift with M = M0 · 2^(shift - 31)."""
    e_m0, e_shift = (int(v) for v in quantize_multiplier(multiplier))
    q30 = round(multiplier * 2.0 ** (30 - e_shift))
    slips = [
        ((e_m0, -e_shift), "Right M0, but the sign of the shift is flipped: M = M0 · 2^(shift - 31), and M < 1 needs shift <= 0."),
        ((round(multiplier * 2**31), 0), "You scaled M by 2^31 without normalising it first: "
         "frexp(M) = q · 2^shift with q in [0.5, 1), then M0 = round(q · 2^31) keeps 31 significant bits."),
        ((q30, e_shift), "M0 must lie in [2^30, 2^31): round(q · 2^31), not q · 2^30."),
    ]
    return _grade((m0, shift), (e_m0, e_shift), f"M = {multiplier} = {e_m0} · 2^({e_shift} - 31).", slips,
                  "Use frexp: M = q · 2^shift, q in [0.5, 1); M0 = round(q · 2^31) (ties away from zero).")


def grade_bias_code(code: int, bias: float = 0.37, s_in: float = 0.02, s_w: float = 0.0031) -> Feedback:
    """Exercise: the int32 code of a float bias at the accumulator's scale s_in · s_w."""
    scale = torch.tensor(s_in, dtype=torch.float64) * s_w
    expected = int(torch.round(bias / scale))
    slips = [
        ((round(bias / s_w),), "That is the bias on the weight grid. The accumulator holds Σ qa·qw, whose scale is s_in · s_w."),
        ((round(bias / s_in),), "That is the bias on the input grid. The accumulator's scale is s_in · s_w."),
        ((int(bias / float(scale)),), "Close: round to the nearest integer instead of truncating."),
    ]
    return _grade(code, (expected,), f"round({bias} / ({s_in} · {s_w})) = {expected}, zero-point 0.", slips,
                  "Divide the bias by s_in · s_w and round: that is the scale of the int32 accumulator.")


def grade_max_fan_in(n: int, acc_bits: int = 24, act_bits: int = 8, weight_bits: int = 8) -> Feedback:
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
    return _grade(n, (expected,), f"n · {2**act_bits - 1} · {2 ** (weight_bits - 1)} <= 2^{acc_bits - 1} - 1 gives n = {expected}.",
                  slips, "Worst case: every product is (largest activation) · (largest weight magnitude); "
                  "n of them must stay <= 2^(acc_bits-1) - 1.")


check_quantized_multiplier = _printing(grade_quantized_multiplier)
check_bias_code = _printing(grade_bias_code)
check_max_fan_in = _printing(grade_max_fan_in)
