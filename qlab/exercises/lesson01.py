"""Lesson 01 exercises: rounding ties by hand, reading a Qm.n fixed-point format, and a
prediction about the bias of the two round-to-nearest modes on ties.

Every ``check_*`` takes only the learner's answer (``None`` while the cell is blank) and
grades it against this module's constants; every ``grade_*`` takes all parameters, for tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import permutations
from typing import Any

import torch

from qlab.exercises._grading import (NOT_ANSWERED, Feedback, close, combine, grade, grade_choice, grade_digits,
                                     number_expected, show)
from qlab.fixed_point import fixed_point_format
from qlab.rounding import round_values

TIE_VALUES: tuple[float, ...] = (-2.5, 3.5, 4.5, -0.5)
"""Exercise 1: the ties to round half to even (not the ones section 4's table shows)."""
FIXED_POINT_M, FIXED_POINT_N = 2, 5
"""Exercise 2: the signed format Q2.5 (ARM convention: m excludes the sign bit)."""
BIAS_TIES: tuple[float, ...] = tuple(k + 0.5 for k in range(8))
"""Prediction: the ties k + 0.5, k = 0 ... 7, whose mean rounding error section 3 measures."""
BIAS_OPTIONS: tuple[str, ...] = ("half_even", "half_away", "both", "neither")
"""Prediction: which round-to-nearest mode has mean error 0 on ``BIAS_TIES``."""

_MODE_HINTS = {
    "half_away": "You rounded ties away from zero (std::round, TFLite). torch rounds ties to the EVEN neighbour.",
    "floor": "You rounded down (floor), e.g. int() of a positive number. Round to the NEAREST integer.",
    "ceil": "You rounded every tie up (ceil, or floor(v + 0.5)). torch rounds ties to the EVEN neighbour.",
    "trunc": "You truncated towards zero (a C cast). Round to the NEAREST integer; ties go to the even one.",
}


def _unusable(answer: Any, n: int, what: str) -> Feedback | None:
    """The Feedback for an answer that cannot be graded as ``n`` numbers, else None: "give n values" if
    it is not a sequence of ``n`` items, "not answered yet" if one item is still None, "give a number"
    if one is text."""
    if answer is None:
        return Feedback(False, NOT_ANSWERED)
    if isinstance(answer, (str, bytes)) or getattr(answer, "ndim", 1) != 1 or not hasattr(answer, "__len__") or len(answer) != n:
        return Feedback(False, f"Not quite. Give {what}.")
    if any(v is None for v in answer):
        return Feedback(False, NOT_ANSWERED)
    return number_expected(*answer)


def grade_tie_rounding(answer: Sequence[float] | None, values: Sequence[float]) -> Feedback:
    """Round ``values`` the way torch does: half to even (``qlab.rounding.round_values``)."""
    v = torch.tensor(values)
    if unusable := _unusable(answer, len(v), f"one rounded value for each of {tuple(values)}, as a list"):
        return unusable
    expected = round_values(v, "half_even")
    return grade(
        answer, expected,
        f"Half-to-even sends each tie to the even neighbour: {[int(r) for r in expected]}; "
        "over many ties half go up and half go down, so there is no bias.",
        [(round_values(v, mode), hint) for mode, hint in _MODE_HINTS.items()],
        "Each answer is a whole number next to the value; for a tie, pick the even one.",
    )


def check_tie_rounding(answer: Sequence[float] | None) -> None:
    """Exercise 1: print the feedback on rounding ``TIE_VALUES`` half to even."""
    show(grade_tie_rounding(answer, TIE_VALUES))


def grade_fixed_point_format(answer: Sequence[float] | None, m: int, n: int) -> Feedback:
    """``answer = (resolution, min_value, max_value)`` of signed Qm.n: resolution 2^-n and range
    [-2^m, 2^m - 2^-n] (``qlab.fixed_point``; ARM convention, m excludes the sign bit).

    Each number is graded to ``REL_TOL`` (0.1%: four significant digits always pass); one within 1%
    that is no known slip (0.031 for 2^-5) is told to give more digits (``grade_digits``)."""
    if unusable := _unusable(answer, 3, "three numbers: (resolution, smallest value, largest value)"):
        return unusable
    fmt = fixed_point_format(m, n, signed=True)
    expected = (fmt.resolution, fmt.min_value, fmt.max_value)
    resolution, min_value, max_value = answer
    if not close(answer, expected) and any(close(p, expected) for p in permutations(answer)):
        return Feedback(False, "Not quite. Your three numbers are right but in the wrong order: give (resolution, smallest, largest).")
    res = grade_digits(
        resolution, fmt.resolution, "",
        [(2.0 ** -(n + 1), f"The resolution is one step of the last fraction bit: 2^-{n}, not 2^-{n + 1}."),
         (2.0**n, f"That is 2^{n}; the resolution is its inverse, 2^-{n}.")],
        f"With {n} fraction bits the value is q * 2^-{n}: what is one step of q worth?", f"2**-{n}",
    )
    lo = grade_digits(
        min_value, fmt.min_value, "",
        [(-(2.0**m) + fmt.resolution, "Two's complement has one more negative code: the minimum is -2^m exactly."),
         (-(2.0 ** (m - 1)), "m counts integer bits WITHOUT the sign bit (ARM convention): the minimum is -2^m.")],
        f"The smallest code of the signed {fmt.total_bits}-bit word is {fmt.qmin}; multiply by the resolution.",
        f"{fmt.qmin} * 2**-{n}",
    )
    hi = grade_digits(
        max_value, fmt.max_value, "",
        [(2.0**m, f"2^{m} itself is not representable: the largest value is one step below it, 2^m - 2^-n."),
         (2.0 ** (m - 1) - fmt.resolution, "m counts integer bits WITHOUT the sign bit (ARM convention).")],
        f"The largest code of the signed {fmt.total_bits}-bit word is {fmt.qmax}; multiply by the resolution.",
        f"2**{m} - 2**-{n}",
    )
    return combine(
        [res, lo, hi],
        f"Q{m}.{n} stores q in {fmt.total_bits} bits and means q * 2^-{n}: steps of {fmt.resolution:g} "
        f"from {fmt.min_value:g} to {fmt.max_value:g}.",
    )


def check_fixed_point_format(answer: Sequence[float] | None) -> None:
    """Exercise 2: print the feedback on ``(resolution, min, max)`` of Q``FIXED_POINT_M``.``FIXED_POINT_N``."""
    show(grade_fixed_point_format(answer, FIXED_POINT_M, FIXED_POINT_N))


def unbiased_on_ties(ties: Sequence[float]) -> str:
    """Which round-to-nearest mode has mean error round(v) - v of 0 on ``ties``: one of ``BIAS_OPTIONS``
    (measured with ``qlab.rounding.round_values``, exact in float64 for ties k + 0.5)."""
    v = torch.tensor(ties, dtype=torch.float64)
    zero = [mode for mode in ("half_even", "half_away") if (round_values(v, mode) - v).mean().item() == 0.0]
    return "both" if len(zero) == 2 else zero[0] if zero else "neither"


def grade_tie_bias_prediction(answer: str | None, ties: Sequence[float]) -> Feedback:
    """The prediction "which round-to-nearest mode is unbiased on ``ties``", against the measured answer."""
    expected = unbiased_on_ties(ties)
    return grade_choice(
        answer, expected, BIAS_OPTIONS,
        "On the ties k + 0.5 half_even goes up for odd k and down for even k, so the errors +0.5 and -0.5 "
        "cancel; half_away sends every positive tie up, a mean error of +0.5 step.",
        {"half_away": "Look at the ties column of the table: half_away rounds every positive tie UP (+0.5 each), "
                      "while half_even alternates.",
         "both": "Both are unbiased on continuous data (first column), but on exact ties half_away always rounds "
                 "positive values up: its mean error there is +0.5 step.",
         "neither": "half_even sends 0.5 -> 0 (down) and 1.5 -> 2 (up): over the ties its errors cancel exactly."},
    )


def check_tie_bias_prediction(answer: str | None) -> None:
    """Prediction: print the feedback on which mode is unbiased on ``BIAS_TIES``."""
    show(grade_tie_bias_prediction(answer, BIAS_TIES))
