"""Lesson 05 exercises on the BN-folded DepthwiseNet: per-channel scales, what per channel buys in dB,
and a prediction of what one scale per tensor costs in accuracy."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch

from qlab._checks import check_bits
from qlab.exercises._grading import Feedback, grade, grade_choice, show, unusable
from qlab.lesson_tensors import folded_weights
from qlab.metrics import sqnr_db
from qlab.models import load_pretrained
from qlab.ptq import quantize_weight, weighted_layers
from qlab.session import shared_session

MODEL = "depthwise"
LAYER, BITS = "block1_dw_conv", 4
"""Exercises 1 and 2: the layer of ``MODEL``; Exercise 1: the weight bit width (section 2's chart uses 4 too)."""
GAIN_BITS = 3
"""Exercise 2: the weight bit width, one below the chart's, so the lesson prints no gain at it."""
GAIN_TOL_DB = 0.05
"""Exercise 2: absolute tolerance in dB: an answer rounded to one decimal, as the lesson prints gains, passes."""
LESSON_BITS = (4, 8)
"""Exercise 2: bit widths the lesson uses elsewhere (section 2's chart: 4; the W8 rows: 8); the gain at one is a slip."""
PREDICTION_BITS = 4
"""Prediction: weight-only PTQ of ``MODEL`` at this many bits, one scale per tensor."""
PREDICTION_OPTIONS = ("under 1 point", "1 to 10 points", "more than 10 points")
"""Prediction: how many points of test accuracy one scale per tensor loses against FP32."""


def _check_layer(layer: str, bits: int) -> None:
    """``layer`` must name a weighted layer of MODEL and ``bits`` be a bit width (arguments in order)."""
    names = list(folded_weights(MODEL))
    if layer not in names:
        raise ValueError(f"layer must be one of {names}, got {layer!r} (arguments: answer, layer, bits)")
    check_bits(bits, "bits")


@functools.cache
def _unfolded_weight(layer: str) -> torch.Tensor:
    """The weight of ``layer`` before BN folding (the usual slip)."""
    return dict(weighted_layers(load_pretrained(MODEL)))[layer].weight.detach()


def grade_per_channel_scales(scales: Sequence[float] | None, layer: str, bits: int) -> Feedback:
    """Symmetric per-output-channel scales s_c = max|W'_c| / (2^(b-1) - 1) of a folded layer (``quantize_weight``)."""
    _check_layer(layer, bits)
    if (blank := unusable(scales)) is not None:
        return blank
    w, unfolded = folded_weights(MODEL)[layer], _unfolded_weight(layer)
    if torch.as_tensor(scales).numel() != w.shape[0]:
        return Feedback(False, f"Not quite. Give one scale per output channel: {w.shape[0]} numbers.")
    expected = quantize_weight(w, bits, "per_channel").scale
    rows = w.reshape(w.shape[0], -1)
    qmax = 2 ** (bits - 1) - 1
    slips = [
        (quantize_weight(w, bits, "per_tensor").scale.expand(w.shape[0]), "All your scales are equal: that is the per-TENSOR scale. Take max |w| of each output channel (each row) separately."),
        (quantize_weight(unfolded, bits, "per_channel").scale, "You used the weights before BatchNorm folding; the integer kernel sees W' = W * k: fold first."),
        (rows.abs().amax(1) / 2 ** (bits - 1), f"You divided by 2^(b-1); the textbook symmetric grid puts max |w| on code 2^(b-1) - 1 = {qmax}."),
        (rows.abs().amax(1) / (2**bits - 1), "You divided by 2^b - 1: a symmetric grid spreads max |w| over HALF of the codes."),
        (rows.amax(1) / qmax, "You used max(w), not max(|w|): a channel whose largest magnitude is negative gets clipped."),
    ]
    return grade(
        scales, expected,
        f"s_c = max|W'_c| / {qmax}; the largest is {float(expected.max() / expected.min()):.1f}x the smallest, "
        "so one shared scale would leave the small channels with hardly any codes.",
        slips, "For each output channel c: s_c = max |W'_c| / (2^(b-1) - 1), with W' the BN-folded weight.",
    )


def check_per_channel_scales(scales: Sequence[float] | None) -> None:
    """Exercise 1: print the feedback on the per-channel scales of LAYER at BITS bits."""
    show(grade_per_channel_scales(scales, LAYER, BITS))


def _gain(weight: torch.Tensor, bits: int, swapped: bool = False) -> float:
    """SQNR(per-channel) - SQNR(per-tensor) of ``weight`` in dB (``swapped``: sqnr_db's arguments the wrong way round)."""
    def sqnr(granularity: str) -> float:
        w_hat = quantize_weight(weight, bits, granularity).weight
        return sqnr_db(w_hat, weight) if swapped else sqnr_db(weight, w_hat)

    return sqnr("per_channel") - sqnr("per_tensor")


def grade_sqnr_gain(gain_db: float | None, layer: str, bits: int) -> Feedback:
    """SQNR(per-channel) - SQNR(per-tensor) in dB for a BN-folded DepthwiseNet layer, within
    GAIN_TOL_DB (so a value rounded to 0.1 dB passes; the slips checked are further apart)."""
    _check_layer(layer, bits)
    w = folded_weights(MODEL)[layer]
    expected = _gain(w, bits)
    return grade(
        gain_db, expected,
        f"Per-channel scales gain {expected:.2f} dB on {layer} at {bits} bits (every 6 dB is about one extra bit).",
        [(-expected, "Your sign is flipped: compute SQNR(per-channel) - SQNR(per-tensor)."),
         (_gain(w, bits, swapped=True), "You swapped sqnr_db's arguments: it is sqnr_db(reference, approximation), the float weight first."),
         (_gain(_unfolded_weight(layer), bits), "You used the weights before BN folding; quantize the folded weight (w_folded from section 1)."),
         *[(_gain(w, b), f"That is the gain at {b} bits; the exercise asks for {bits} bits.") for b in LESSON_BITS if b != bits]],
        "Quantize the folded weight both ways with quantize_weight and subtract the two sqnr_db values.",
        abs_tol=GAIN_TOL_DB,
    )


def check_sqnr_gain(gain_db: float | None) -> None:
    """Exercise 2: print the feedback on the per-channel SQNR gain of LAYER at GAIN_BITS bits."""
    show(grade_sqnr_gain(gain_db, LAYER, GAIN_BITS))


def collapse_option(drop_points: float) -> str:
    """The PREDICTION_OPTIONS entry a measured accuracy drop (in points) falls into."""
    return PREDICTION_OPTIONS[0] if drop_points < 1 else PREDICTION_OPTIONS[1] if drop_points <= 10 else PREDICTION_OPTIONS[2]


def grade_collapse_prediction(prediction: str | None, fp32: float, per_tensor: float) -> Feedback:
    """Prediction: the drop in points from ``fp32`` to ``per_tensor`` (test accuracies in %), as one of PREDICTION_OPTIONS."""
    drop = fp32 - per_tensor
    measured = f"one scale per tensor keeps {per_tensor:.2f}% of FP32's {fp32:.2f}%: a drop of {drop:.2f} points."
    return grade_choice(
        prediction, collapse_option(drop), PREDICTION_OPTIONS,
        f"{measured[0].upper()}{measured[1:]} The SQNR chart lost only a few dB per layer, but one shared scale "
        "leaves the small channels with one or two codes (or none), and every later layer depends on them.",
        {o: f"Measured: {measured} Average SQNR hides the channels left with one code or none." for o in PREDICTION_OPTIONS},
    )


def check_collapse_prediction(prediction: str | None) -> None:
    """Prediction: print the feedback on the accuracy drop of MODEL with PREDICTION_BITS-bit per-tensor weights."""
    session = shared_session()
    fp32 = session.fp32_accuracy(MODEL)
    per_tensor = session.run(MODEL, weight_bits=PREDICTION_BITS, granularity="per_tensor").accuracy
    show(grade_collapse_prediction(prediction, 100 * fp32, 100 * per_tensor))
