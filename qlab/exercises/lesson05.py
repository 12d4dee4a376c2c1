"""Lesson 05 exercises on the BN-folded DepthwiseNet: per-channel scales, what per channel buys in dB."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch

from qlab.exercises._grading import Feedback, grade, show
from qlab.lesson_tensors import folded_weights
from qlab.metrics import sqnr_db
from qlab.models import load_pretrained
from qlab.ptq import quantize_weight, weighted_layers

MODEL = "depthwise"
LAYER, BITS = "block1_dw_conv", 4
"""Both exercises: the layer of ``MODEL`` and the weight bit width."""


@functools.cache
def _unfolded_weight(layer: str) -> torch.Tensor:
    """The weight of ``layer`` before BN folding (the usual slip)."""
    return dict(weighted_layers(load_pretrained(MODEL)))[layer].weight.detach()


def grade_per_channel_scales(scales: Sequence[float], layer: str, bits: int) -> Feedback:
    """Symmetric per-output-channel scales s_c = max|W'_c| / (2^(b-1) - 1) of a folded layer (``quantize_weight``)."""
    w, unfolded = folded_weights(MODEL)[layer], _unfolded_weight(layer)
    if len(list(torch.as_tensor(scales).flatten())) != w.shape[0]:
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


def check_per_channel_scales(scales: Sequence[float]) -> None:
    """Exercise 1: print the feedback on the per-channel scales of LAYER at BITS bits."""
    show(grade_per_channel_scales(scales, LAYER, BITS))


def _gain(weight: torch.Tensor, bits: int) -> float:
    """SQNR(per-channel) - SQNR(per-tensor) of ``weight`` in dB."""
    return sqnr_db(weight, quantize_weight(weight, bits, "per_channel").weight) - sqnr_db(weight, quantize_weight(weight, bits, "per_tensor").weight)


def grade_sqnr_gain(gain_db: float, layer: str, bits: int) -> Feedback:
    """SQNR(per-channel) - SQNR(per-tensor) in dB for a BN-folded DepthwiseNet layer."""
    w = folded_weights(MODEL)[layer]
    expected = _gain(w, bits)
    other_bits = 8 if bits != 8 else 4
    return grade(
        gain_db, expected,
        f"Per-channel scales gain {expected:.1f} dB on {layer} at {bits} bits (every 6 dB is about one extra bit).",
        [(-expected, "Your sign is flipped: compute SQNR(per-channel) - SQNR(per-tensor)."),
         (_gain(_unfolded_weight(layer), bits), "You used the weights before BN folding; quantize the folded weights (PTQCache.build(model).folded)."),
         (_gain(w, other_bits), f"That is the gain at {other_bits} bits; the exercise asks for {bits} bits.")],
        "Quantize the folded weight both ways with quantize_weight and subtract the two sqnr_db values.",
    )


def check_sqnr_gain(gain_db: float) -> None:
    """Exercise 2: print the feedback on the per-channel SQNR gain of LAYER at BITS bits."""
    show(grade_sqnr_gain(gain_db, LAYER, BITS))
