"""Lesson 06 exercises: the size of a quantized model, the accuracy cost of per-tensor weights."""

from __future__ import annotations

import functools

from qlab.evaluation import evaluate
from qlab.exercises._grading import Feedback, grade, grade_exact, show
from qlab.models import load_pretrained
from qlab.ptq import quantize_model, weighted_layers
from qlab.report import model_size
from qlab.session import calibration_data

SIZE_MODEL, SIZE_BITS = "mlp", 4
"""Exercise 1: the model and its per-channel symmetric weight bit width (activations float)."""
DROP_MODEL, DROP_GRANULARITY = "depthwise", "per_tensor"
"""Exercise 2: the model and weight granularity of the W8A8 (min/max static) configuration."""


def grade_model_size(n_bytes: int, model: str, bits: int) -> Feedback:
    """Bytes of ``model`` with per-channel symmetric ``bits``-bit weights (``qlab.report.model_size``)."""
    layers = [layer for _, layer in weighted_layers(load_pretrained(model))]
    fp32, expected = model_size(quantize_model(load_pretrained(model), bits).report)
    scales = sum(layer.weight.shape[0] * 4 for layer in layers)
    biases = sum(layer.bias.numel() for layer in layers)
    return grade_exact(
        n_bytes, (expected,),
        f"{expected} bytes against {fp32} for FP32: {fp32 / expected:.2f}x smaller, less than 32/{bits} = {32 / bits:g}x "
        "because biases stay 32-bit and every channel stores a 32-bit scale.",
        [((expected - scales,), "You forgot the scales: one 32-bit scale per output channel is stored with the weights."),
         ((expected - biases * 4 + -(-biases * bits // 8),), "Biases are not quantized to the weight bits: they stay 32-bit (int32 in integer inference)."),
         ((fp32 * bits // 32,), f"Dividing the FP32 size by 32/{bits} ignores the 32-bit biases and scales."),
         ((8 * expected,), "That is the size in bits; give it in bytes."),
         ((expected + 8 * len(layers),), "The activations stay float here: no activation scale or zero-point is stored.")],
        "Sum over layers: ceil(weights * bits / 8) + 4 bytes per bias + 4 bytes per output-channel scale.",
    )


def check_model_size(n_bytes: int) -> None:
    """Exercise 1: print the feedback on the size of SIZE_MODEL with SIZE_BITS-bit weights."""
    show(grade_model_size(n_bytes, SIZE_MODEL, SIZE_BITS))


@functools.cache
def _fp32_accuracy(model: str) -> float:
    """Test accuracy of the pretrained ``model`` (evaluated once per process)."""
    return evaluate(load_pretrained(model))


@functools.cache
def _w8a8_accuracy(model: str, granularity: str) -> float:
    """Test accuracy of ``model`` at W8A8, min/max static activations (evaluated once per process)."""
    return evaluate(quantize_model(load_pretrained(model), 8, 8, granularity, calib_data=calibration_data()))


def grade_accuracy_drop(points: float, model: str, granularity: str) -> Feedback:
    """W8A8 (min/max static) accuracy drop in percentage points against FP32 on the test set."""
    fp32 = _fp32_accuracy(model)

    def drop(g: str) -> float:
        return 100 * (fp32 - _w8a8_accuracy(model, g))

    expected = drop(granularity)
    other = "per_channel" if granularity == "per_tensor" else "per_tensor"
    return grade(
        points, expected,
        f"W8A8 {granularity} loses {expected:.2f} points ({100 * fp32:.2f}% -> {100 * fp32 - expected:.2f}%).",
        [(expected / 100, "That is a fraction; give percentage POINTS (100 x the difference of the accuracies)."),
         (-expected, "Your sign is flipped: the drop is FP32 accuracy minus quantized accuracy."),
         (expected / fp32, "That is a relative change (divided by the FP32 accuracy); give the plain difference in points."),
         (drop(other), f"That is the drop with {other} weights; use granularity={granularity!r}.")],
        "Evaluate the FP32 model and quantize_model(model, 8, 8, granularity) with qlab.evaluation.evaluate; subtract.",
    )


def check_accuracy_drop(points: float) -> None:
    """Exercise 2: print the feedback on the W8A8 DROP_GRANULARITY accuracy drop of DROP_MODEL."""
    show(grade_accuracy_drop(points, DROP_MODEL, DROP_GRANULARITY))
