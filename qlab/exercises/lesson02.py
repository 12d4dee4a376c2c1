"""Lesson 02 exercises: affine scale and zero-point by hand, the textbook symmetric scale."""

from __future__ import annotations

from qlab.affine import qparams_from_range
from qlab.exercises._grading import Feedback, close, combine, grade, show

AFFINE_RANGE, AFFINE_BITS = (-0.5, 2.0), 8
"""Exercise 1: the range [min, max] and bit width of the unsigned affine grid."""
SYMMETRIC_AMAX, SYMMETRIC_BITS = 2.54, 8
"""Exercise 2: weights in [-amax, amax] on a signed symmetric grid of this many bits."""


def grade_affine_qparams(scale: float, zero_point: float, min_val: float, max_val: float, bits: int) -> Feedback:
    """Unsigned affine (scale, zero_point) for [min_val, max_val] (``qlab.affine.qparams_from_range``)."""
    exp_scale, exp_zp = (float(t) for t in qparams_from_range(min_val, max_val, bits, signed=False))
    if not float(zero_point).is_integer() and not close(zero_point, -min_val / exp_scale):
        return Feedback(False, "Not quite. The zero-point is an integer code: round it (zero_point = qmin - round(min / scale)).")
    s = grade(
        scale, exp_scale, "",
        [(float(qparams_from_range(min_val, max_val, bits - 1)[0]),
          "Your scale is 2x too large: did you divide by 2^(b-1)-1 instead of 2^b-1?"),
         ((max_val - min_val) / 2**bits, "You divided by 2^b (the number of codes); divide by 2^b - 1 (the number of STEPS between them)."),
         (1 / exp_scale, "Your scale is inverted: it is (max - min) / (2^b - 1), real units per step.")],
        "scale = (max - min) / (qmax - qmin) after widening the range to include 0.",
    )
    z = grade(
        zero_point, exp_zp, "",
        [(-exp_zp, "The sign of your zero-point is flipped: zero_point = qmin - round(min / scale)."),
         (-min_val / exp_scale, "The zero-point must be an INTEGER code (so real 0 is exactly representable): round it."),
         (0.0, "With an unsigned grid and min < 0, real 0 cannot sit at code 0: zero_point = qmin - round(min / scale).")],
        "zero_point = qmin - round(min / scale): the code that real 0 maps to.",
    )
    return combine([s, z], f"scale = {exp_scale:.6g} per step and real 0 sits exactly on code {int(exp_zp)}.")


def check_affine_qparams(scale: float, zero_point: float) -> None:
    """Exercise 1: print the feedback on the uint8 affine parameters of ``AFFINE_RANGE``."""
    show(grade_affine_qparams(scale, zero_point, *AFFINE_RANGE, AFFINE_BITS))


def grade_symmetric_scale(scale: float, amax: float, bits: int) -> Feedback:
    """The textbook (TFLite) symmetric signed scale amax / (2^(b-1) - 1) for weights in [-amax, amax]."""
    def sym(convention: str) -> float:
        return float(qparams_from_range(-amax, amax, bits, signed=True, symmetric=True, convention=convention)[0])

    expected = sym("textbook")
    qmax = 2 ** (bits - 1) - 1
    return grade(
        scale, expected,
        f"scale = amax / (2^(b-1) - 1) = {amax:g} / {qmax} = {expected:.6g}, so +-amax land exactly on codes +-{qmax}.",
        [(sym("torch"), "That is torch's convention, amax / ((qmax - qmin) / 2) = amax / 127.5 for int8; "
                        "the textbook divides by 2^(b-1) - 1 so the largest weight is never clipped."),
         (amax / 2 ** (bits - 1), "You divided by 2^(b-1); then +amax would need code 2^(b-1), one past qmax."),
         (amax / (2**bits - 1), "You divided by 2^b - 1: a symmetric grid spreads amax over HALF of the codes."),
         (2 * amax / (2**bits - 1), "Close to torch's amax/127.5, but the textbook divides by 2^(b-1) - 1.")],
        "Symmetric: zero_point = 0 and +amax maps to the largest positive code 2^(b-1) - 1.",
    )


def check_symmetric_scale(scale: float) -> None:
    """Exercise 2: print the feedback on the textbook symmetric scale for ``SYMMETRIC_AMAX``."""
    show(grade_symmetric_scale(scale, SYMMETRIC_AMAX, SYMMETRIC_BITS))
