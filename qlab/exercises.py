"""Self-check functions for the lessons' exercises.

Each exercise has a ``grade_*`` function that returns a :class:`Feedback` and a
``check_*`` twin that prints it (use the ``check_*`` in notebooks). The expected answer
always comes from qlab's own functions, never from a hard-coded number, and each known
wrong answer (computed the same way, with the typical slip applied) gets a specific hint.

A notebook exercise cell holds a working reference solution, so nbval checks that it
prints "Correct!"; the learner replaces it with their own code.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from qlab.affine import qparams_from_range
from qlab.fixed_point import fixed_point_format
from qlab.rounding import round_values

TIE_VALUES: tuple[float, ...] = (0.5, 1.5, 2.5, -0.5)
REL_TOL = 1e-3


@dataclass(frozen=True)
class Feedback:
    """Outcome of a self-check: ``correct`` and the message shown to the learner."""

    correct: bool
    message: str


def _close(answer: Any, expected: Any, rel_tol: float = REL_TOL) -> bool:
    """Element-wise ``math.isclose`` of numbers or equal-length sequences (tensors allowed)."""
    a = torch.as_tensor(answer, dtype=torch.float64).flatten().tolist()
    e = torch.as_tensor(expected, dtype=torch.float64).flatten().tolist()
    return len(a) == len(e) and all(math.isclose(x, y, rel_tol=rel_tol, abs_tol=1e-9) for x, y in zip(a, e))


def _grade(answer: Any, expected: Any, explanation: str, slips: Sequence[tuple[Any, str]], fallback: str) -> Feedback:
    """Correct if ``answer`` matches ``expected``; else the hint of the first matching slip."""
    if _close(answer, expected):
        return Feedback(True, f"Correct! {explanation}")
    for wrong, hint in slips:
        if _close(answer, wrong):
            return Feedback(False, f"Not quite. {hint}")
    return Feedback(False, f"Not quite. {fallback}")


def _both(feedbacks: Sequence[Feedback]) -> Feedback:
    """Combine part-answers: correct if all parts are; otherwise the first part's hint."""
    wrong = [f for f in feedbacks if not f.correct]
    return wrong[0] if wrong else feedbacks[0]


def _printing(grade: Callable[..., Feedback]) -> Callable[..., None]:
    """Make a ``check_*`` function that prints the message of ``grade`` (and returns None)."""

    @functools.wraps(grade)
    def check(*args: Any, **kwargs: Any) -> None:
        print(grade(*args, **kwargs).message)

    return check


# Lesson 01 -----------------------------------------------------------------------------
def grade_tie_rounding(answer: Sequence[float]) -> Feedback:
    """Exercise: round ``TIE_VALUES`` = (0.5, 1.5, 2.5, -0.5) the way torch does (half to even)."""
    v = torch.tensor(TIE_VALUES)
    expected = round_values(v, "half_even")
    mode_hints = {
        "half_away": "You rounded ties away from zero (std::round, TFLite). torch rounds ties to the EVEN neighbour.",
        "floor": "You rounded down (floor), e.g. int() of a positive number. Round to the NEAREST integer.",
        "ceil": "You rounded every tie up (ceil, or floor(v + 0.5)). torch rounds ties to the EVEN neighbour.",
        "trunc": "You truncated towards zero (a C cast). Round to the NEAREST integer; ties go to the even one.",
    }
    slips = [(round_values(v, mode), hint) for mode, hint in mode_hints.items()]
    if len(list(answer)) != len(TIE_VALUES):
        return Feedback(False, f"Not quite. Give one rounded value for each of {TIE_VALUES}.")
    return _grade(
        answer, expected,
        f"Half-to-even sends each tie to the even neighbour: {[int(r) for r in expected]}; "
        "over many ties half go up and half go down, so there is no bias.",
        slips, "Each answer is a whole number next to the value; for a tie, pick the even one.",
    )


def grade_fixed_point_format(resolution: float, min_value: float, max_value: float, m: int = 3, n: int = 4) -> Feedback:
    """Exercise: resolution and range of signed Qm.n (ARM convention: m excludes the sign bit)."""
    fmt = fixed_point_format(m, n, signed=True)
    res = _grade(
        resolution, fmt.resolution, "",
        [(2.0 ** -(n + 1), f"The resolution is one step of the last fraction bit: 2^-{n}, not 2^-{n + 1}."),
         (2.0**n, f"That is 2^{n}; the resolution is its inverse, 2^-{n}.")],
        f"With {n} fraction bits the value is q * 2^-{n}: what is one step of q worth?",
    )
    lo = _grade(
        min_value, fmt.min_value, "",
        [(-(2.0**m) + fmt.resolution, "Two's complement has one more negative code: the minimum is -2^m exactly."),
         (-(2.0 ** (m - 1)), "m counts integer bits WITHOUT the sign bit (ARM convention): the minimum is -2^m.")],
        f"The smallest code of a {fmt.total_bits}-bit signed word is {fmt.qmin}; multiply by the resolution.",
    )
    hi = _grade(
        max_value, fmt.max_value, "",
        [(2.0**m, f"2^{m} itself is not representable: the largest value is one step below it, 2^m - 2^-n."),
         (2.0 ** (m - 1) - fmt.resolution, "m counts integer bits WITHOUT the sign bit (ARM convention).")],
        f"The largest code of a {fmt.total_bits}-bit signed word is {fmt.qmax}; multiply by the resolution.",
    )
    explanation = (
        f"Q{m}.{n} stores q in {fmt.total_bits} bits and means q * 2^-{n}: steps of {fmt.resolution:g} "
        f"from {fmt.min_value:g} to {fmt.max_value:g}."
    )
    combined = _both([res, lo, hi])
    return Feedback(True, f"Correct! {explanation}") if combined.correct else combined


# Lesson 02 -----------------------------------------------------------------------------
def grade_affine_qparams(scale: float, zero_point: float, min_val: float = -1.0, max_val: float = 3.0, bits: int = 8) -> Feedback:
    """Exercise: unsigned affine (scale, zero_point) for [min_val, max_val] (qlab.affine.qparams_from_range)."""
    exp_scale, exp_zp = (float(t) for t in qparams_from_range(min_val, max_val, bits, signed=False))
    if not float(zero_point).is_integer() and not _close(zero_point, -min_val / exp_scale):
        return Feedback(False, "Not quite. The zero-point is an integer code: round it (zero_point = qmin - round(min / scale)).")
    s = _grade(
        scale, exp_scale, "",
        [(float(qparams_from_range(min_val, max_val, bits - 1)[0]),
          "Your scale is 2x too large: did you divide by 2^(b-1)-1 instead of 2^b-1?"),
         ((max_val - min_val) / 2**bits, "You divided by 2^b (the number of codes); divide by 2^b - 1 (the number of STEPS between them)."),
         (1 / exp_scale, "Your scale is inverted: it is (max - min) / (2^b - 1), real units per step.")],
        "scale = (max - min) / (qmax - qmin) after widening the range to include 0.",
    )
    z = _grade(
        zero_point, exp_zp, "",
        [(-exp_zp, "The sign of your zero-point is flipped: zero_point = qmin - round(min / scale)."),
         (-min_val / exp_scale, "The zero-point must be an INTEGER code (so real 0 is exactly representable): round it."),
         (0.0, "With an unsigned grid and min < 0, real 0 cannot sit at code 0: zero_point = qmin - round(min / scale).")],
        "zero_point = qmin - round(min / scale): the code that real 0 maps to.",
    )
    combined = _both([s, z])
    if not combined.correct:
        return combined
    return Feedback(True, f"Correct! scale = {exp_scale:.6g} per step and real 0 sits exactly on code {int(exp_zp)}.")


def grade_symmetric_scale(scale: float, amax: float = 2.54, bits: int = 8) -> Feedback:
    """Exercise: the textbook (TFLite) symmetric signed scale for weights in [-amax, amax]."""
    def sym(convention: str, b: int = bits) -> float:
        return float(qparams_from_range(-amax, amax, b, signed=True, symmetric=True, convention=convention)[0])

    expected = sym("textbook")
    qmax = 2 ** (bits - 1) - 1
    return _grade(
        scale, expected,
        f"scale = amax / (2^(b-1) - 1) = {amax:g} / {qmax} = {expected:.6g}, so +-amax land exactly on codes +-{qmax}.",
        [(sym("torch"), "That is torch's convention, amax / ((qmax - qmin) / 2) = amax / 127.5 for int8; "
                        "the textbook divides by 2^(b-1) - 1 so the largest weight is never clipped."),
         (amax / 2 ** (bits - 1), "You divided by 2^(b-1); then +amax would need code 2^(b-1), one past qmax."),
         (amax / (2**bits - 1), "You divided by 2^b - 1: a symmetric grid spreads amax over HALF of the codes."),
         (2 * amax / (2**bits - 1), "Close to torch's amax/127.5, but the textbook divides by 2^(b-1) - 1.")],
        "Symmetric: zero_point = 0 and +amax maps to the largest positive code 2^(b-1) - 1.",
    )


check_tie_rounding = _printing(grade_tie_rounding)
check_fixed_point_format = _printing(grade_fixed_point_format)
check_affine_qparams = _printing(grade_affine_qparams)
check_symmetric_scale = _printing(grade_symmetric_scale)


# Lessons 05-06 -------------------------------------------------------------------------
from qlab.evaluation import evaluate  # noqa: E402
from qlab.folding import fold_batchnorm  # noqa: E402
from qlab.metrics import sqnr_db  # noqa: E402
from qlab.models import load_pretrained  # noqa: E402
from qlab.ptq import quantize_model, quantize_weight, weighted_layers  # noqa: E402
from qlab.report import model_size  # noqa: E402
from qlab.session import calibration_data  # noqa: E402


@functools.lru_cache(maxsize=None)
def _layer_weights(model: str, layer: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight before BN folding, weight after folding) of one layer of a pretrained model."""
    original = load_pretrained(model)
    folded = dict(weighted_layers(fold_batchnorm(original)))[layer].weight.detach()
    return dict(weighted_layers(original))[layer].weight.detach(), folded


def grade_per_channel_scales(scales: Sequence[float], layer: str = "block1_dw_conv", bits: int = 4) -> Feedback:
    """Exercise: symmetric per-output-channel scales of a BN-folded DepthwiseNet layer (qlab.ptq.quantize_weight)."""
    unfolded, w = _layer_weights("depthwise", layer)
    rows = w.reshape(w.shape[0], -1)
    expected = quantize_weight(w, bits, "per_channel").scale
    if len(list(torch.as_tensor(scales).flatten())) != w.shape[0]:
        return Feedback(False, f"Not quite. Give one scale per output channel: {w.shape[0]} numbers.")
    qmax = 2 ** (bits - 1) - 1
    slips = [
        (quantize_weight(w, bits, "per_tensor").scale.expand(w.shape[0]), "All your scales are equal: that is the per-TENSOR scale. Take max |w| of each output channel (each row) separately."),
        (quantize_weight(unfolded, bits, "per_channel").scale, "You used the weights before BatchNorm folding; the integer kernel sees W' = W * k: fold first."),
        (rows.abs().amax(1) / 2 ** (bits - 1), f"You divided by 2^(b-1); the textbook symmetric grid puts max |w| on code 2^(b-1) - 1 = {qmax}."),
        (rows.abs().amax(1) / (2**bits - 1), "You divided by 2^b - 1: a symmetric grid spreads max |w| over HALF of the codes."),
        (rows.amax(1) / qmax, "You used max(w), not max(|w|): a channel whose largest magnitude is negative gets clipped."),
    ]
    return _grade(
        scales, expected,
        f"s_c = max|W'_c| / {qmax}; the largest is {float(expected.max() / expected.min()):.1f}x the smallest, "
        "so one shared scale would leave the small channels with hardly any codes.",
        slips, "For each output channel c: s_c = max |W'_c| / (2^(b-1) - 1), with W' the BN-folded weight.",
    )


def grade_sqnr_gain(gain_db: float, layer: str = "block1_dw_conv", bits: int = 4) -> Feedback:
    """Exercise: SQNR(per-channel) - SQNR(per-tensor) in dB for a BN-folded DepthwiseNet layer."""
    unfolded, w = _layer_weights("depthwise", layer)

    def gain(weight: torch.Tensor, b: int) -> float:
        return sqnr_db(weight, quantize_weight(weight, b, "per_channel").weight) - sqnr_db(weight, quantize_weight(weight, b, "per_tensor").weight)

    expected = gain(w, bits)
    return _grade(
        gain_db, expected,
        f"Per-channel scales gain {expected:.1f} dB on {layer} at {bits} bits (every 6 dB is about one extra bit).",
        [(-expected, "Your sign is flipped: compute SQNR(per-channel) - SQNR(per-tensor)."),
         (gain(unfolded, bits), "You used the weights before BN folding; quantize the folded weights (qlab.folding.fold_batchnorm(model))."),
         (gain(w, 8), f"That is the gain at 8 bits; the exercise asks for {bits} bits.")],
        "Quantize the folded weight both ways with quantize_weight and subtract the two sqnr_db values.",
    )


def grade_model_size(n_bytes: int, model: str = "mlp", bits: int = 4) -> Feedback:
    """Exercise: bytes of a model with per-channel symmetric ``bits``-bit weights (qlab.ptq.model_size)."""
    layers = [layer for _, layer in weighted_layers(load_pretrained(model))]
    fp32, expected = model_size(quantize_model(load_pretrained(model), bits).report)
    scales = sum(layer.weight.shape[0] * 4 for layer in layers)
    biases = sum(layer.bias.numel() for layer in layers)
    return _grade(
        n_bytes, expected,
        f"{expected} bytes against {fp32} for FP32: {fp32 / expected:.2f}x smaller, less than 32/{bits} = {32 / bits:g}x "
        "because biases stay 32-bit and every channel stores a 32-bit scale.",
        [(expected - scales, "You forgot the scales: one 32-bit scale per output channel is stored with the weights."),
         (expected - biases * 4 + -(-biases * bits // 8), "Biases are not quantized to the weight bits: they stay 32-bit (int32 in integer inference)."),
         (fp32 * bits // 32, f"Dividing the FP32 size by 32/{bits} ignores the 32-bit biases and scales."),
         (8 * expected, "That is the size in bits; give it in bytes.")],
        "Sum over layers: ceil(weights * bits / 8) + 4 bytes per bias + 4 bytes per output-channel scale.",
    )


def grade_accuracy_drop(points: float, model: str = "depthwise", granularity: str = "per_tensor") -> Feedback:
    """Exercise: W8A8 (min/max static) accuracy drop in percentage points against FP32 on the test set."""
    net = load_pretrained(model)
    fp32 = evaluate(net)

    def drop(g: str) -> float:
        return 100 * (fp32 - evaluate(quantize_model(net, 8, 8, g, calib_data=calibration_data())))

    expected = drop(granularity)
    other = "per_channel" if granularity == "per_tensor" else "per_tensor"
    return _grade(
        points, expected,
        f"W8A8 {granularity} loses {expected:.2f} points ({100 * fp32:.2f}% -> {100 * fp32 - expected:.2f}%).",
        [(expected / 100, "That is a fraction; give percentage POINTS (100 x the difference of the accuracies)."),
         (-expected, "Your sign is flipped: the drop is FP32 accuracy minus quantized accuracy."),
         (expected / fp32, "That is a relative change (divided by the FP32 accuracy); give the plain difference in points."),
         (drop(other), f"That is the drop with {other} weights; use granularity={granularity!r}.")],
        "Evaluate the FP32 model and quantize_model(model, 8, 8, granularity, calib_data=calibration_data()) "
        "with qlab.evaluation.evaluate; subtract.",
    )


check_per_channel_scales = _printing(grade_per_channel_scales)
check_sqnr_gain = _printing(grade_sqnr_gain)
check_model_size = _printing(grade_model_size)
check_accuracy_drop = _printing(grade_accuracy_drop)


# Lessons 03 and 04 ---------------------------------------------------------------------
import numpy as np  # noqa: E402

from qlab import sweeps  # noqa: E402

MAX_BITS = 16


def grade_sqnr_prediction(answer: float, sqnr_db: float, from_bits: int = 4, to_bits: int = 8) -> Feedback:
    """Exercise: predict SQNR at ``to_bits`` from the SQNR measured at ``from_bits`` (6.02 dB per bit)."""
    extra = to_bits - from_bits
    expected = sqnr_db + extra * sweeps.DB_PER_BIT
    return _grade(
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


def grade_bits_for_sqnr(bits: int, x: torch.Tensor, target_db: float = 30.0) -> Feedback:
    """Exercise: the fewest bits (symmetric, min/max) for which ``x`` reaches ``target_db`` of SQNR."""
    all_bits = list(range(2, MAX_BITS + 1))
    sqnr = dict(zip(all_bits, sweeps.sqnr_vs_bits(x, all_bits)))
    expected = next(b for b in all_bits if sqnr[b] >= target_db)
    naive = math.ceil(target_db / sweeps.DB_PER_BIT)
    slips = [
        (expected - 1, f"At {expected - 1} bits the SQNR is {sqnr.get(expected - 1, float('nan')):.2f} dB, still below "
                       f"{target_db:g} dB: take the first bit width that REACHES the target."),
        (expected + 1, f"{expected} bits already reach {sqnr[expected]:.2f} dB: one bit fewer is enough."),
    ]
    if naive != expected:
        slips.insert(0, (naive, f"ceil({target_db:g} / 6.02) = {naive} is the rule for full-scale UNIFORM data; bell-shaped "
                                "weights have a high peak-to-RMS ratio, so their SQNR line sits lower. Measure it."))
    return _grade(
        bits, expected,
        f"{expected} bits give {sqnr[expected]:.2f} dB, {expected - 1} bits only {sqnr.get(expected - 1, float('nan')):.2f} dB.",
        slips, "Measure SQNR at each bit width with qlab.sweeps.sqnr_vs_bits and take the smallest that reaches the target.",
    )


def grade_error_split(clipping: float, rounding: float, x: torch.Tensor, threshold: float, bits: int = 4, signed: bool = False) -> Feedback:
    """Exercise: clipping and rounding parts of the fake-quantization MSE (``sweeps.clip_rounding_error``)."""
    split = sweeps.clip_rounding_error(x, threshold, bits, signed)
    n = x.numel()
    n_clipped = round(split.clipped_fraction * n)
    per_subset = "Both parts are divided by N, ALL the values, so that they add up to the total MSE."
    c = _grade(
        clipping, split.clipping, "",
        [(split.clipping * n / max(n_clipped, 1), f"You averaged over the clipped values only. {per_subset}"),
         (split.rounding, "You swapped the parts: clipping error comes from the values BEYOND the threshold."),
         (split.total, "That is the total MSE; keep only the values beyond the threshold.")],
        "Sum (Q(x) - x)^2 over the values beyond the threshold and divide by N.",
    )
    r = _grade(
        rounding, split.rounding, "",
        [(split.rounding * n / max(n - n_clipped, 1), f"You averaged over the values inside the range only. {per_subset}"),
         (split.clipping, "You swapped the parts: rounding error comes from the values INSIDE the range."),
         (split.total, "That is the total MSE; keep only the values inside the range.")],
        "Sum (Q(x) - x)^2 over the values inside [lo, hi] and divide by N.",
    )
    combined = _both([c, r])
    if not combined.correct:
        return combined
    return Feedback(True, f"Correct! {100 * split.clipped_fraction:.3f}% of the values are clipped; clipping "
                          f"{split.clipping:.4g} + rounding {split.rounding:.4g} = total MSE {split.total:.4g}.")


def grade_best_threshold(answer: float, x: torch.Tensor, thresholds: Sequence[float], bits: int = 4, signed: bool = False) -> Feedback:
    """Exercise: the threshold (among ``thresholds``) with the smallest total fake-quantization MSE."""
    curve = sweeps.clip_rounding_curve(x, thresholds, bits, signed)
    t = curve.thresholds
    best = t[curve.best]
    slips = [
        (float(x.abs().max()), "That is max|x|, the min/max range: no clipping at all, so the outliers stretch the step "
                               "and every value pays rounding error."),
        (t[int(np.argmin(curve.rounding))], "You minimised only the rounding error; add the clipping error of the values beyond t."),
        (t[int(np.argmin(curve.clipping))], "You minimised only the clipping error; add the rounding error of the values inside."),
    ]
    return _grade(
        answer, best,
        f"t = {best:.4g} gives total MSE {curve.total[curve.best]:.4g} (clipping {curve.clipping[curve.best]:.3g}, "
        f"rounding {curve.rounding[curve.best]:.3g}).",
        [(v, h) for v, h in slips if not math.isclose(v, best)],
        "Compute the total MSE (clipping + rounding) at every threshold and take the smallest.",
    )


check_sqnr_prediction = _printing(grade_sqnr_prediction)
check_bits_for_sqnr = _printing(grade_bits_for_sqnr)
check_error_split = _printing(grade_error_split)
check_best_threshold = _printing(grade_best_threshold)
