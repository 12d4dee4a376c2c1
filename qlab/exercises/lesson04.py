"""Lesson 04 exercises on the cnn ``fc`` input activations: split the error, find the sweet spot,
and a prediction on percentile against min/max at 8 bits."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from qlab import sweeps
from qlab.exercises._grading import Feedback, close, combine, grade, grade_choice, number_expected, show
from qlab.lesson_tensors import tail_activations

BITS = 4
"""Both exercises: the unsigned affine grid on [0, t] has this many bits."""
SPLIT_PERCENTILE = 99.9
"""Exercise 1: t is this percentile of |x| (not the 99.99th, whose split the table of section 2 prints)."""
CANDIDATE_FRACTIONS = np.arange(1, 21) / 20
"""Exercise 2: the candidate thresholds are these fractions of max x."""
PREDICTION_BITS = 8
"""Prediction: the bit width at which percentile and min/max ranges are compared."""
PREDICTION_OPTIONS = ("minmax", "percentile")
"""Prediction: the calibrator whose range gives the fc input the lower MSE."""


SPLIT_REL_TOL = 1e-5
"""Exercise 1's tolerance on the rounding part: few values are clipped (0.1%), so averaging over
the values inside only changes the answer by about 1e-3 and must not pass as correct."""
BEST_REL_TOL = 0.005
"""Exercise 2's tolerance: candidates k/20 * max x are at least 1/20 = 5% of t apart, and 0.5% accepts
the chosen one read to three significant figures (3.57 for 3.574)."""


def grade_error_split(clipping: float | None, rounding: float | None, x: torch.Tensor, threshold: float, bits: int, signed: bool) -> Feedback:
    """Clipping and rounding parts of the fake-quantization MSE (``qlab.sweeps.clip_rounding_error``).

    For unsigned data a rounding part computed on the symmetric grid (``QuantSpec``'s default
    ``symmetric=True``: half the codes spent on negative values, twice the step) gets its own hint."""
    if (not_a_number := number_expected(clipping, rounding)) is not None:
        return not_a_number
    split = sweeps.clip_rounding_error(x, threshold, bits, signed)
    symmetric_slip = [] if signed else [(
        sweeps.clip_rounding_error(x, threshold, bits, signed, symmetric=True).rounding,
        f"Your grid is symmetric around 0 (QuantSpec's default symmetric=True): half of its codes are negative and "
        f"its step is about twice too large. Use QuantSpec({bits}, signed=False, symmetric=False), the unsigned "
        f"affine grid on [0, t] with step t/{2**bits - 1}.")]
    n = x.numel()
    n_clipped = round(split.clipped_fraction * n)
    per_subset = "Both parts are divided by N, ALL the values, so that they add up to the total MSE."
    c = grade(
        clipping, split.clipping, "",
        [(split.clipping * n / max(n_clipped, 1), f"You averaged over the clipped values only. {per_subset}"),
         (split.rounding, "You swapped the parts: clipping error comes from the values BEYOND the threshold."),
         (split.total, "That is the total MSE; keep only the values beyond the threshold.")],
        "Sum (Q(x) - x)^2 over the values beyond the threshold and divide by N.",
    )
    r = grade(
        rounding, split.rounding, "",
        [(split.rounding * n / max(n - n_clipped, 1), f"You averaged over the values inside the range only. {per_subset}"),
         (split.clipping, "You swapped the parts: rounding error comes from the values INSIDE the range."),
         (split.total, "That is the total MSE; keep only the values inside the range.")] + symmetric_slip,
        "Sum (Q(x) - x)^2 over the values inside [lo, hi] and divide by N.",
        rel_tol=SPLIT_REL_TOL,
    )
    return combine([c, r], f"{100 * split.clipped_fraction:.3f}% of the values are clipped; clipping "
                           f"{split.clipping:.4g} + rounding {split.rounding:.4g} = total MSE {split.total:.4g}.")


def check_error_split(clipping: float | None, rounding: float | None) -> None:
    """Exercise 1: print the feedback on the split at t = the SPLIT_PERCENTILE-th percentile of |x|."""
    x = tail_activations()
    show(grade_error_split(clipping, rounding, x, sweeps.percentile_of_abs(x, SPLIT_PERCENTILE), BITS, signed=False))


def grade_best_threshold(answer: float | None, x: torch.Tensor, thresholds: Sequence[float], bits: int, signed: bool) -> Feedback:
    """The threshold (among ``thresholds``) with the smallest total fake-quantization MSE, within ``BEST_REL_TOL``.

    Slips with their own hint: max|x|, the minimum of one part only, the candidate's number k
    (thresholds[k - 1]) or its fraction of max|x| instead of t, and a t that is not a candidate at all
    (the sweet spot of a finer sweep, such as the one of section 2)."""
    if (not_a_number := number_expected(answer)) is not None:
        return not_a_number
    curve = sweeps.clip_rounding_curve(x, thresholds, bits, signed)
    t = curve.thresholds
    best = t[curve.best]
    amax = float(x.abs().max())
    slips = [
        (amax, "That is max|x|, the min/max range: no clipping at all, so the outliers stretch the step "
               "and every value pays rounding error."),
        (t[int(np.argmin(curve.rounding))], "You minimised only the rounding error; add the clipping error of the values beyond t."),
        (t[int(np.argmin(curve.clipping))], "You minimised only the clipping error; add the rounding error of the values inside."),
        (curve.best + 1, f"That is k, the number of the best candidate; answer the threshold t itself "
                         f"(candidates[{curve.best}]), a value of x."),
        (best / amax, f"That is t / max|x|, the fraction of the best candidate; answer the threshold t itself "
                      f"(the fraction times max|x| = {amax:.4g})."),
    ]
    is_candidate = answer is None or any(close(answer, c, BEST_REL_TOL) for c in t)
    fallback = ("Compute the total MSE (clipping + rounding) at every threshold and take the smallest." if is_candidate
                else "That t is not one of the candidates: answer one of the values in `candidates` (the sweet spot "
                     "of section 2 was found on a finer grid of thresholds, so it is not among them).")
    return grade(
        answer, best,
        f"t = {best:.4g} gives total MSE {curve.total[curve.best]:.4g} (clipping {curve.clipping[curve.best]:.3g}, "
        f"rounding {curve.rounding[curve.best]:.3g}).",
        [(v, h) for v, h in slips if not math.isclose(v, best, rel_tol=BEST_REL_TOL)],
        fallback, rel_tol=BEST_REL_TOL,
    )


def check_best_threshold(answer: float | None) -> None:
    """Exercise 2: print the feedback on the best of the thresholds CANDIDATE_FRACTIONS * max x."""
    x = tail_activations()
    show(grade_best_threshold(answer, x, CANDIDATE_FRACTIONS * float(x.max()), BITS, signed=False))


def grade_calibrator_prediction(answer: str | None, mse: dict[str, float], bits: int) -> Feedback:
    """Prediction: which of PREDICTION_OPTIONS gives the lower MSE (``mse`` by calibrator) at ``bits``."""
    expected = min(PREDICTION_OPTIONS, key=mse.__getitem__)
    other = next(o for o in PREDICTION_OPTIONS if o != expected)
    numbers = f"at {bits} bits, {expected} has MSE {mse[expected]:.3g} against {mse[other]:.3g} for {other}"
    if expected == "minmax":
        explanation = (f"{numbers[0].upper()}{numbers[1:]}. The percentile threshold does not depend on the bit width, "
                       "but the sweet spot does: with a finer step rounding is cheap, the sweet spot moves out "
                       "towards the maximum, and a fixed clip costs more than it saves.")
        hint = (f"At 4 bits clipping at the percentile wins, but {numbers}. Each extra bit divides the rounding "
                "error by 4 while the clipping error of a fixed threshold stays: look where the 8-bit sweet spot sat "
                "in the table of section 2.")
    else:
        explanation = f"{numbers[0].upper()}{numbers[1:]}: even with a finer step the outliers cost more than clipping them."
        hint = f"{numbers[0].upper()}{numbers[1:]}: clipping the few outliers still pays at this bit width."
    return grade_choice(answer, expected, PREDICTION_OPTIONS, explanation, {other: hint})


def check_calibrator_prediction(answer: str | None) -> None:
    """Prediction: print the feedback on the calibrator with the lower MSE on the fc input at PREDICTION_BITS."""
    rows = sweeps.compare_calibrators(tail_activations(), PREDICTION_BITS, PREDICTION_OPTIONS)
    show(grade_calibrator_prediction(answer, {r.calibrator: r.mse for r in rows}, PREDICTION_BITS))
