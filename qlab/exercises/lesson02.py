"""Lesson 02 exercises: affine scale and zero-point by hand, the textbook symmetric scale, and a
prediction of what an exact zero becomes on a grid anchored at the minimum.

Every ``check_*`` takes only the learner's answer (``None`` while the cell is blank) and
grades it against this module's constants; every ``grade_*`` takes all parameters, for tests.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from qlab import mistakes
from qlab.affine import qparams_from_range
from qlab.exercises._grading import (NOT_ANSWERED, Feedback, close, combine, grade, grade_choice, grade_digits,
                                     number_expected, show)

AFFINE_RANGE, AFFINE_BITS = (-0.6, 2.0), 8
"""Exercise 1: the range [min, max] and bit width of the unsigned affine grid (-min / scale = 58.85 is
not a whole number, so a zero-point left unrounded is caught)."""
SYMMETRIC_AMAX, SYMMETRIC_BITS = 2.54, 4
"""Exercise 2: weights in [-amax, amax] on a signed symmetric grid of this many bits."""
ZERO_RANGE, ZERO_BITS = (-1.0, 3.0), 8
"""Prediction (section 3): the range and bit width of the grid anchored at its minimum."""
ZERO_OPTIONS: tuple[str, ...] = ("exactly 0", "a small positive number", "a small negative number")
"""Prediction: what an exact 0 comes back as on that grid."""


def _is_sequence(answer: Any, n: int) -> bool:
    """True if ``answer`` is a list, tuple or 1-d tensor of ``n`` items."""
    return not isinstance(answer, (str, bytes)) and getattr(answer, "ndim", 1) == 1 and hasattr(answer, "__len__") and len(answer) == n


def grade_affine_qparams(answer: Sequence[float] | None, min_val: float, max_val: float, bits: int) -> Feedback:
    """``answer = (scale, zero_point)``, unsigned affine for [min_val, max_val]:
    scale = (max - min) / (2^b - 1), zero_point = -round(min / scale) (``qlab.affine.qparams_from_range``).

    The scale is graded to ``REL_TOL`` (0.1%): four significant digits always pass; a scale within 1%
    that is no known slip is told to give more digits (``grade_digits``)."""
    if answer is None:
        return Feedback(False, NOT_ANSWERED)
    if not _is_sequence(answer, 2) or any(v is None for v in answer):
        return Feedback(False, "Not quite. Give two numbers: (scale, zero_point).")
    if (not_a_number := number_expected(*answer)) is not None:
        return not_a_number
    scale, zero_point = answer
    exp_scale, exp_zp = (float(t) for t in qparams_from_range(min_val, max_val, bits, signed=False))
    if close((zero_point, scale), (exp_scale, exp_zp)):
        return Feedback(False, "Not quite. Your two numbers are right but swapped: give (scale, zero_point).")
    if not float(zero_point).is_integer() and not close(zero_point, -min_val / exp_scale):
        return Feedback(False, "Not quite. The zero-point is an integer code: round it (zero_point = qmin - round(min / scale)).")
    s = grade_digits(
        scale, exp_scale, "",
        [(float(qparams_from_range(min_val, max_val, bits - 1)[0]),
          "Your scale is 2x too large: did you divide by 2^(b-1)-1 instead of 2^b-1?"),
         ((max_val - min_val) / 2**bits, "You divided by 2^b (the number of codes); divide by 2^b - 1 (the number of STEPS between them)."),
         (1 / exp_scale, "Your scale is inverted: it is (max - min) / (2^b - 1), real units per step.")],
        "scale = (max - min) / (qmax - qmin) after widening the range to include 0.",
        "(x_max - x_min) / (2**b - 1)",
    )
    z = grade(
        zero_point, exp_zp, "",
        [(-exp_zp, "The sign of your zero-point is flipped: zero_point = qmin - round(min / scale)."),
         (-min_val / exp_scale, "The zero-point must be an INTEGER code (so real 0 is exactly representable): round it."),
         (math.floor(-min_val / exp_scale), "Round -min / scale to the NEAREST integer; you rounded it down."),
         (0.0, "With an unsigned grid and min < 0, real 0 cannot sit at code 0: zero_point = qmin - round(min / scale).")],
        "zero_point = qmin - round(min / scale): the code that real 0 maps to.",
    )
    return combine([s, z], f"scale = {exp_scale:.6g} per step and real 0 sits exactly on code {int(exp_zp)}.")


def check_affine_qparams(answer: Sequence[float] | None) -> None:
    """Exercise 1: print the feedback on ``(scale, zero_point)``, the uint8 affine parameters of ``AFFINE_RANGE``."""
    show(grade_affine_qparams(answer, *AFFINE_RANGE, AFFINE_BITS))


def grade_symmetric_scale(scale: float | None, amax: float, bits: int) -> Feedback:
    """The textbook (TFLite) symmetric signed scale amax / (2^(b-1) - 1) for weights in [-amax, amax].

    Graded to ``REL_TOL`` (0.1%): tight enough to tell torch's amax / ((qmax - qmin) / 2) apart (0.4%
    smaller at 8 bits, 6.7% at 4); a scale within 1% that is no known slip is told to give more digits."""
    def sym(convention: str) -> float:
        return float(qparams_from_range(-amax, amax, bits, signed=True, symmetric=True, convention=convention)[0])

    expected = sym("textbook")
    qmax = 2 ** (bits - 1) - 1
    return grade_digits(
        scale, expected,
        f"scale = amax / (2^(b-1) - 1) = {amax:g} / {qmax} = {expected:.6g}, so +-amax land exactly on codes +-{qmax}.",
        [(sym("torch"), f"That is torch's convention, amax / ((qmax - qmin) / 2) = amax / {qmax + 0.5:g} here; "
                        "the textbook divides by 2^(b-1) - 1 so the largest weight is never clipped."),
         (amax / 2 ** (bits - 1), "You divided by 2^(b-1); then +amax would need code 2^(b-1), one past qmax."),
         (amax / (2**bits - 1), "You divided by 2^b - 1: a symmetric grid spreads amax over HALF of the codes.")],
        "Symmetric: zero_point = 0 and +amax maps to the largest positive code 2^(b-1) - 1.",
        "amax / (2**(b - 1) - 1)",
    )


def check_symmetric_scale(scale: float | None) -> None:
    """Exercise 2: print the feedback on the textbook symmetric scale for ``SYMMETRIC_AMAX``."""
    show(grade_symmetric_scale(scale, SYMMETRIC_AMAX, SYMMETRIC_BITS))


def zero_on_anchored_grid(lo: float, hi: float, bits: int) -> float:
    """What an exact 0 comes back as on the grid lo + k * scale (``qlab.mistakes.grid_from_min``)."""
    return float(mistakes.grid_from_min(torch.zeros(1), lo, hi, bits))


def grade_zero_prediction(answer: str | None, lo: float, hi: float, bits: int) -> Feedback:
    """The prediction "what does 0 come back as on the grid anchored at ``lo``" (one of ``ZERO_OPTIONS``),
    against the measured value."""
    back = zero_on_anchored_grid(lo, hi, bits)
    expected = ZERO_OPTIONS[0] if back == 0.0 else ZERO_OPTIONS[1] if back > 0 else ZERO_OPTIONS[2]
    scale = float(qparams_from_range(lo, hi, bits, signed=False)[0])
    where = f"the points are min + k * scale and -min / scale = {-lo / scale:.2f}"
    look = f"Here {where}: which grid point is nearest to 0, and on which side of 0 is it?"
    return grade_choice(
        answer, expected, ZERO_OPTIONS,
        f"On this grid {where}, so 0 comes back as the nearest grid point, {back:+.6f}.",
        {"exactly 0": f"Only a whole-number -min / scale puts 0 on the grid; here {where}.",
         ZERO_OPTIONS[1]: look, ZERO_OPTIONS[2]: look},
    )


def check_zero_prediction(answer: str | None) -> None:
    """Prediction: print the feedback on what 0 becomes on the grid anchored at ``ZERO_RANGE[0]``."""
    show(grade_zero_prediction(answer, *ZERO_RANGE, ZERO_BITS))
