"""Lesson 03 exercises on the folded cnn ``block2_conv`` weights: the 6.02 dB rule, bits for a
target SQNR, and a prediction on the ``fc`` input activations."""

from __future__ import annotations

import functools
import math

import torch

from qlab import sweeps
from qlab.exercises._grading import Feedback, grade, grade_choice, number_expected, show
from qlab.lesson_tensors import bell_weights, tail_activations

PREDICT_FROM_BITS, PREDICT_TO_BITS = 4, 8
"""Exercise 1: predict the SQNR at PREDICT_TO_BITS from the one measured at PREDICT_FROM_BITS."""
RULE_DB_PER_BIT = 6.0
"""The rule of thumb's round figure for 20 log10(2) = 6.0206 dB per bit."""
READING_TOL_DB = 0.05
"""Exercise 1: slack for reading the measured SQNR to one decimal (13.6 for 13.63)."""
TARGET_DB = 50.0
"""Exercise 2: the SQNR the weights must reach; beyond the 8 bits of the lesson's section-2 table, so
that table does not print the answer, and one bit beyond the uniform rule's ceil(50 / 6.02) = 9."""
MAX_BITS = 16
COMPARE_BITS = 8
"""Prediction: the bit width at which the activations' and the weights' SQNR are compared."""
COMPARE_OPTIONS = ("higher", "lower")
"""Prediction: the activations' SQNR is higher or lower than the weights'."""


def prediction_tolerance_db(from_bits: int, to_bits: int) -> float:
    """Exercise 1's tolerance (dB): the rule of thumb's own error over the extra bits plus a reading slack,

        tol = (to_bits - from_bits) * (20 log10 2 - 6) + READING_TOL_DB,

    so that 13.63 + 4 x 6 = 37.63 passes where the exact answer is 13.63 + 4 x 6.02 = 37.71."""
    return (to_bits - from_bits) * (sweeps.DB_PER_BIT - RULE_DB_PER_BIT) + READING_TOL_DB


def grade_sqnr_prediction(answer: float | None, sqnr_db: float, from_bits: int, to_bits: int, measured_db: float) -> Feedback:
    """SQNR at ``to_bits`` predicted from ``sqnr_db`` measured at ``from_bits``: + 20 log10(2) dB per bit.

    Answers within ``prediction_tolerance_db`` of the exact value pass (the 6 dB/bit rule included).
    ``measured_db`` (the SQNR measured at ``to_bits`` on the narrow symmetric grid) is compared with the
    prediction in the feedback: the grid has n = 2^b - 2 steps, not 2^b, so the true gain is
    20 log10(n_to / n_from) (``qlab.sweeps.grid_steps``), a little more than 6.02 dB per bit."""
    if (not_a_number := number_expected(answer)) is not None:
        return not_a_number
    extra = to_bits - from_bits
    expected = sqnr_db + extra * sweeps.DB_PER_BIT
    n_from, n_to = sweeps.grid_steps(from_bits), sweeps.grid_steps(to_bits)
    return grade(
        answer, expected,
        f"Each bit halves the step, so the noise power drops 4x: +{sweeps.DB_PER_BIT:.2f} dB per bit, "
        f"{sqnr_db:.2f} + {extra} x {sweeps.DB_PER_BIT:.2f} = {expected:.1f} dB (the round 6 dB per bit gives "
        f"{sqnr_db + extra * RULE_DB_PER_BIT:.1f} dB, close enough). The table of section 2 measures {measured_db:.2f} dB, "
        f"{measured_db - expected:.1f} dB more: the narrow grid has 2^b - 2 steps, not 2^b, so from {from_bits} to "
        f"{to_bits} bits its step shrinks {n_to}/{n_from} = {n_to / n_from:.1f}x rather than {2**extra}x, a gain of "
        f"{20 * math.log10(n_to / n_from):.2f} dB instead of {extra * sweeps.DB_PER_BIT:.2f} dB.",
        [(sqnr_db + extra * 10 * math.log10(2), "You added 10 log10(2) = 3.01 dB per bit: halving the step halves the noise "
                                                "AMPLITUDE, so the noise POWER drops 4x, i.e. 20 log10(2) dB."),
         (sqnr_db * to_bits / from_bits, "Decibels add, they do not scale: twice the bits is not twice the SQNR in dB. "
                                         "Add 6.02 dB for every extra bit."),
         (sqnr_db + sweeps.DB_PER_BIT, f"That is one extra bit; going from {from_bits} to {to_bits} bits adds {extra}."),
         (extra * sweeps.DB_PER_BIT, "That is only the gain; add it to the SQNR measured at the lower bit width.")],
        "Start from the measured SQNR and add 20 log10(2) dB for each extra bit.",
        rel_tol=prediction_tolerance_db(from_bits, to_bits) / abs(expected),
    )


@functools.cache
def _lesson_sqnr(bits: int) -> float:
    """SQNR (dB) of the lesson's weights at ``bits`` (symmetric, min/max)."""
    return sweeps.sqnr_vs_bits(bell_weights(), [bits])[0]


def check_sqnr_prediction(answer: float | None) -> None:
    """Exercise 1: print the feedback on the SQNR predicted for PREDICT_TO_BITS."""
    show(grade_sqnr_prediction(answer, _lesson_sqnr(PREDICT_FROM_BITS), PREDICT_FROM_BITS, PREDICT_TO_BITS,
                               _lesson_sqnr(PREDICT_TO_BITS)))


def grade_bits_for_sqnr(bits: int | None, x: torch.Tensor, target_db: float) -> Feedback:
    """The fewest bits (symmetric, min/max) for which ``x`` reaches ``target_db`` of SQNR."""
    if (not_a_number := number_expected(bits)) is not None:
        return not_a_number
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


def check_bits_for_sqnr(bits: int | None) -> None:
    """Exercise 2: print the feedback on the fewest bits for which the weights reach TARGET_DB."""
    show(grade_bits_for_sqnr(bits, bell_weights(), TARGET_DB))


def grade_activations_prediction(answer: str | None, acts_db: float, weights_db: float, model_db: float) -> Feedback:
    """Prediction: is the activations' measured SQNR (``acts_db``) "higher" or "lower" than the weights'
    (``weights_db``)? ``model_db`` is the uniform-noise model's prediction for the activations
    (``qlab.sweeps.predicted_sqnr_db``, ~ 6.02 b + 10 log10(12 E[x^2] / R^2)), which sees only their power
    and range, not their exact zeros."""
    expected = "higher" if acts_db > weights_db else "lower"
    numbers = (f"the activations measure {acts_db:.2f} dB against the weights' {weights_db:.2f} dB; the uniform-noise "
               f"model, which sees only their power and range, predicts {model_db:.2f} dB for them")
    if expected == "higher":
        explanation = (f"{numbers[0].upper()}{numbers[1:]}. Most activations are exact zeros (ReLU) and 0 is a level "
                       "of the grid: they add no error at all, which lifts the SQNR above the model.")
        hint = (f"The peak-to-RMS ratio alone does point to 'lower', but {numbers}. Look at the 'exact zeros' "
                "column: a value that sits exactly on a level adds no error.")
    else:
        explanation = f"{numbers[0].upper()}{numbers[1:]}: the long tail stretches the grid more than the zeros help."
        hint = f"Exact zeros add no error, but {numbers}: the long tail stretches the grid more than the zeros help."
    return grade_choice(answer, expected, COMPARE_OPTIONS, explanation, {o: hint for o in COMPARE_OPTIONS if o != expected})


@functools.cache
def _activations_sqnr() -> tuple[float, float]:
    """(measured, offset-model) SQNR in dB of the lesson's activations at COMPARE_BITS (unsigned affine, min/max)."""
    x = tail_activations()
    measured = sweeps.sqnr_vs_bits(x, [COMPARE_BITS], signed=False, symmetric=False)[0]
    return measured, sweeps.predicted_sqnr_db([COMPARE_BITS], x, signed=False, symmetric=False)[0]


def check_activations_prediction(answer: str | None) -> None:
    """Prediction: print the feedback on "higher"/"lower" for the fc input activations against the weights."""
    acts_db, model_db = _activations_sqnr()
    show(grade_activations_prediction(answer, acts_db, _lesson_sqnr(COMPARE_BITS), model_db))
