"""Lesson 01 exercises: rounding ties by hand, reading a Qm.n fixed-point format."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from qlab.exercises._grading import Feedback, combine, grade, show
from qlab.fixed_point import fixed_point_format
from qlab.rounding import round_values

TIE_VALUES: tuple[float, ...] = (0.5, 1.5, 2.5, -0.5)
"""Exercise 1: the ties to round half to even."""
FIXED_POINT_M, FIXED_POINT_N = 2, 5
"""Exercise 2: the signed format Q2.5 (ARM convention: m excludes the sign bit)."""

_MODE_HINTS = {
    "half_away": "You rounded ties away from zero (std::round, TFLite). torch rounds ties to the EVEN neighbour.",
    "floor": "You rounded down (floor), e.g. int() of a positive number. Round to the NEAREST integer.",
    "ceil": "You rounded every tie up (ceil, or floor(v + 0.5)). torch rounds ties to the EVEN neighbour.",
    "trunc": "You truncated towards zero (a C cast). Round to the NEAREST integer; ties go to the even one.",
}


def grade_tie_rounding(answer: Sequence[float], values: Sequence[float]) -> Feedback:
    """Round ``values`` the way torch does: half to even (``qlab.rounding.round_values``)."""
    v = torch.tensor(values)
    if len(list(answer)) != len(v):
        return Feedback(False, f"Not quite. Give one rounded value for each of {tuple(values)}.")
    expected = round_values(v, "half_even")
    return grade(
        answer, expected,
        f"Half-to-even sends each tie to the even neighbour: {[int(r) for r in expected]}; "
        "over many ties half go up and half go down, so there is no bias.",
        [(round_values(v, mode), hint) for mode, hint in _MODE_HINTS.items()],
        "Each answer is a whole number next to the value; for a tie, pick the even one.",
    )


def check_tie_rounding(answer: Sequence[float]) -> None:
    """Exercise 1: print the feedback on rounding ``TIE_VALUES`` half to even."""
    show(grade_tie_rounding(answer, TIE_VALUES))


def grade_fixed_point_format(resolution: float, min_value: float, max_value: float, m: int, n: int) -> Feedback:
    """Resolution 2^-n and range [-2^m, 2^m - 2^-n] of signed Qm.n (``qlab.fixed_point``)."""
    fmt = fixed_point_format(m, n, signed=True)
    res = grade(
        resolution, fmt.resolution, "",
        [(2.0 ** -(n + 1), f"The resolution is one step of the last fraction bit: 2^-{n}, not 2^-{n + 1}."),
         (2.0**n, f"That is 2^{n}; the resolution is its inverse, 2^-{n}.")],
        f"With {n} fraction bits the value is q * 2^-{n}: what is one step of q worth?",
    )
    lo = grade(
        min_value, fmt.min_value, "",
        [(-(2.0**m) + fmt.resolution, "Two's complement has one more negative code: the minimum is -2^m exactly."),
         (-(2.0 ** (m - 1)), "m counts integer bits WITHOUT the sign bit (ARM convention): the minimum is -2^m.")],
        f"The smallest code of a {fmt.total_bits}-bit signed word is {fmt.qmin}; multiply by the resolution.",
    )
    hi = grade(
        max_value, fmt.max_value, "",
        [(2.0**m, f"2^{m} itself is not representable: the largest value is one step below it, 2^m - 2^-n."),
         (2.0 ** (m - 1) - fmt.resolution, "m counts integer bits WITHOUT the sign bit (ARM convention).")],
        f"The largest code of a {fmt.total_bits}-bit signed word is {fmt.qmax}; multiply by the resolution.",
    )
    return combine(
        [res, lo, hi],
        f"Q{m}.{n} stores q in {fmt.total_bits} bits and means q * 2^-{n}: steps of {fmt.resolution:g} "
        f"from {fmt.min_value:g} to {fmt.max_value:g}.",
    )


def check_fixed_point_format(resolution: float, min_value: float, max_value: float) -> None:
    """Exercise 2: print the feedback on the resolution and range of Q``FIXED_POINT_M``.``FIXED_POINT_N``."""
    show(grade_fixed_point_format(resolution, min_value, max_value, FIXED_POINT_M, FIXED_POINT_N))
