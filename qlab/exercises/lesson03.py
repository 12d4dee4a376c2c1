"""Lesson 03 exercises on the folded cnn ``block2_conv`` weights: the 6.02 dB rule, bits for a target SQNR."""

from __future__ import annotations

import functools
import math

import torch

from qlab import sweeps
from qlab.exercises._grading import Feedback, grade, show
from qlab.lesson_tensors import bell_weights

PREDICT_FROM_BITS, PREDICT_TO_BITS = 4, 8
"""Exercise 1: predict the SQNR at PREDICT_TO_BITS from the one measured at PREDICT_FROM_BITS."""
TARGET_DB = 30.0
"""Exercise 2: the SQNR the weights must reach."""
MAX_BITS = 16


def grade_sqnr_prediction(answer: float, sqnr_db: float, from_bits: int, to_bits: int) -> Feedback:
    """SQNR at ``to_bits`` predicted from ``sqnr_db`` measured at ``from_bits``: + 20 log10(2) dB per bit."""
    extra = to_bits - from_bits
    expected = sqnr_db + extra * sweeps.DB_PER_BIT
    return grade(
        answer, expected,
        f"Each bit halves the step, so the noise power drops 4x: +{sweeps.DB_PER_BIT:.2f} dB per bit, "
        f"{sqnr_db:.2f} + {extra} x {sweeps.DB_PER_BIT:.2f} = {expected:.2f} dB.",
        [(sqnr_db + extra * 10 * math.log10(2), "You added 10 log10(2) = 3.01 dB per bit: halving the step halves the noise "
                                                "AMPLITUDE, so the noise POWER drops 4x, i.e. 20 log10(2) dB."),
         (sqnr_db * to_bits / from_bits, "Decibels add, they do not scale: twice the bits is not twice the SQNR in dB. "
                                         "Add 6.02 dB for every extra bit."),
         (sqnr_db + sweeps.DB_PER_BIT, f"That is one extra bit; going from {from_bits} to {to_bits} bits adds {extra}."),
         (extra * sweeps.DB_PER_BIT, "That is only the gain; add it to the SQNR measured at the lower bit width.")],
        "Start from the measured SQNR and add 20 log10(2) dB for each extra bit.",
    )


@functools.cache
def _lesson_sqnr(bits: int) -> float:
    """SQNR (dB) of the lesson's weights at ``bits`` (symmetric, min/max)."""
    return sweeps.sqnr_vs_bits(bell_weights(), [bits])[0]


def check_sqnr_prediction(answer: float) -> None:
    """Exercise 1: print the feedback on the SQNR predicted for PREDICT_TO_BITS."""
    show(grade_sqnr_prediction(answer, _lesson_sqnr(PREDICT_FROM_BITS), PREDICT_FROM_BITS, PREDICT_TO_BITS))


def grade_bits_for_sqnr(bits: int, x: torch.Tensor, target_db: float) -> Feedback:
    """The fewest bits (symmetric, min/max) for which ``x`` reaches ``target_db`` of SQNR."""
    all_bits = list(range(2, MAX_BITS + 1))
    sqnr = dict(zip(all_bits, sweeps.sqnr_vs_bits(x, all_bits)))
    reached = [b for b in all_bits if sqnr[b] >= target_db]
    if not reached:
        raise ValueError(f"target_db={target_db} is not reached by {MAX_BITS} bits (max {max(sqnr.values()):.1f} dB)")
    expected = reached[0]
    below = f"{sqnr[expected - 1]:.2f} dB" if expected > all_bits[0] else "less"
    naive = math.ceil(target_db / sweeps.DB_PER_BIT)
    slips = [
        (expected - 1, f"At {expected - 1} bits the SQNR is {below}, still below "
                       f"{target_db:g} dB: take the first bit width that REACHES the target."),
        (expected + 1, f"{expected} bits already reach {sqnr[expected]:.2f} dB: one bit fewer is enough."),
    ]
    if naive != expected:
        slips.insert(0, (naive, f"ceil({target_db:g} / 6.02) = {naive} is the rule for full-scale UNIFORM data; bell-shaped "
                                "weights have a high peak-to-RMS ratio, so their SQNR line sits lower. Measure it."))
    return grade(
        bits, expected,
        f"{expected} bits give {sqnr[expected]:.2f} dB, {expected - 1} bits only {below}.",
        slips, "Measure SQNR at each bit width with qlab.sweeps.sqnr_vs_bits and take the smallest that reaches the target.",
    )


def check_bits_for_sqnr(bits: int) -> None:
    """Exercise 2: print the feedback on the fewest bits for which the weights reach TARGET_DB."""
    show(grade_bits_for_sqnr(bits, bell_weights(), TARGET_DB))
