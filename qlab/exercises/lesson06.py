"""Lesson 06 exercises: the size of a quantized model, the accuracy cost of per-tensor weights, and a
prediction of which calibrator wins on the depthwise network with 4-bit activations."""

from __future__ import annotations

from collections.abc import Mapping

from qlab import metrics
from qlab.calibration import CALIBRATORS
from qlab.exercises._grading import Feedback, grade, grade_choice, grade_exact, show
from qlab.models import load_pretrained
from qlab.ptq import quantize_model, weighted_layers
from qlab.ranking import TEST_IMAGES, leaders, within_noise
from qlab.report import model_size
from qlab.session import shared_session

SIZE_MODEL, SIZE_BITS = "mlp", 4
"""Exercise 1: the model and its per-channel symmetric weight bit width (activations float)."""
DROP_MODEL, DROP_GRANULARITY = "depthwise", "per_tensor"
"""Exercise 2: the model and weight granularity of the W8A8 (min/max static) configuration."""
PREDICTION_MODEL, PREDICTION_WEIGHT_BITS, PREDICTION_ACT_BITS = "depthwise", 8, 4
"""Prediction: the model and bits (per-channel weights, static activations) on which the calibrators compete."""
PREDICTION_OPTIONS = tuple(CALIBRATORS)
"""Prediction: the calibrators (``qlab.calibration.CALIBRATORS``)."""


def grade_model_size(n_bytes: int | None, model: str, bits: int) -> Feedback:
    """Bytes of ``model`` with per-channel symmetric ``bits``-bit weights (``qlab.report.model_size``)."""
    layers = [layer for _, layer in weighted_layers(load_pretrained(model))]
    fp32, expected = model_size(quantize_model(load_pretrained(model), bits).report)
    channels = sum(layer.weight.shape[0] for layer in layers)
    biases = sum(layer.bias.numel() for layer in layers)
    return grade_exact(
        n_bytes, (expected,),
        f"{expected} bytes against {fp32} for FP32: {fp32 / expected:.2f}x smaller, less than 32/{bits} = {32 / bits:g}x "
        "because biases stay 32-bit and every channel stores a 32-bit scale.",
        # one bias and one scale per output channel: leaving out either gives the same number
        [((expected - 4 * channels,), f"You left out the 32-bit biases or the 32-bit per-channel scales ({channels} of each here)."),
         ((expected - biases * 4 + -(-biases * bits // 8),), "Biases are not quantized to the weight bits: they stay 32-bit (int32 in integer inference)."),
         ((fp32 * bits // 32,), f"Dividing the FP32 size by 32/{bits} ignores the 32-bit biases and scales."),
         ((8 * expected,), "That is the size in bits; give it in bytes."),
         ((expected + 8 * len(layers),), "The activations stay float here: no activation scale or zero-point is stored.")],
        "Sum over layers: ceil(weights * bits / 8) + 4 bytes per bias + 4 bytes per output-channel scale.",
    )


def check_model_size(n_bytes: int | None) -> None:
    """Exercise 1: print the feedback on the size of SIZE_MODEL with SIZE_BITS-bit weights."""
    show(grade_model_size(n_bytes, SIZE_MODEL, SIZE_BITS))


def _w8a8_accuracy(model: str, granularity: str) -> float:
    """Test accuracy of ``model`` at W8A8, min/max static activations (memoized by the shared session)."""
    return shared_session().run(model, weight_bits=8, act_bits=8, granularity=granularity, calibrator="minmax").accuracy


def drop_verdict(points: float, noise: float) -> str:
    """What an accuracy drop of ``points`` means next to the test set's ``noise`` (one standard error,
    in points), by the rule lesson 06 states: within one standard error a tie, up to two measurable
    but only just, beyond that clear."""
    ratio = f"{points / noise:.1f} standard errors (±{noise:.2f} points)"
    if within_noise(points, 0.0, noise):
        return f"within the test set's noise (±{noise:.2f} points): a tie with FP32 by this course's rule."
    if abs(points) <= 2 * noise:
        return (f"{ratio}: on the edge of this course's rule (a tie is within one standard error), so measurable "
                "but only just, and tiny next to the collapse at 4 bits.")
    return f"{ratio}: clearly more than the test set's noise."


def grade_accuracy_drop(points: float | None, model: str, granularity: str) -> Feedback:
    """W8A8 (min/max static) accuracy drop in percentage points against FP32 on the test set, and
    whether it stands out from the test set's noise (one standard error, ``qlab.metrics.accuracy_stderr``)."""
    fp32 = shared_session().fp32_accuracy(model)

    def drop(g: str) -> float:
        return 100 * (fp32 - _w8a8_accuracy(model, g))

    expected = drop(granularity)
    verdict = drop_verdict(expected, 100 * metrics.accuracy_stderr(fp32, TEST_IMAGES))
    other = "per_channel" if granularity == "per_tensor" else "per_tensor"
    return grade(
        points, expected,
        f"W8A8 {granularity} loses {expected:.2f} points ({100 * fp32:.2f}% -> {100 * fp32 - expected:.2f}%), {verdict}",
        [(expected / 100, "That is a fraction; give percentage POINTS (100 x the difference of the accuracies)."),
         (-expected, "Your sign is flipped: the drop is FP32 accuracy minus quantized accuracy."),
         (expected / fp32, "That is a relative change (divided by the FP32 accuracy); give the plain difference in points."),
         (drop(other), f"That is the drop with {other} weights; use granularity={granularity!r}.")],
        "Evaluate the FP32 model and quantize_model(model, 8, 8, granularity) with qlab.evaluation.evaluate; subtract.",
    )


def check_accuracy_drop(points: float | None) -> None:
    """Exercise 2: print the feedback on the W8A8 DROP_GRANULARITY accuracy drop of DROP_MODEL."""
    show(grade_accuracy_drop(points, DROP_MODEL, DROP_GRANULARITY))


def grade_calibrator_prediction(prediction: str | None, accuracy: Mapping[str, float]) -> Feedback:
    """Prediction: the calibrator with the highest test accuracy in ``accuracy`` (fractions, by calibrator).

    The winner must stand out from the others by more than the test set's noise (one standard
    error at its accuracy); ValueError otherwise, since a tie has no single right answer."""
    best = max(accuracy, key=accuracy.__getitem__)
    noise = metrics.accuracy_stderr(accuracy[best], TEST_IMAGES)
    if len(leaders(accuracy, noise)) > 1:
        raise ValueError(f"no single winner within the noise (±{100 * noise:.2f} points): {leaders(accuracy, noise)}")
    table = ", ".join(f"{c} {100 * a:.2f}%" for c, a in accuracy.items())
    why = {
        "minmax": "min/max spends the few codes of a low bit width on the rarest, largest values (lesson 04).",
        "moving_average": "moving_average averages per-batch extremes: nearly the min/max range.",
        "percentile": "percentile clips at the 99.99th percentile of |x| whatever the bit width (lesson 04).",
        "entropy": "entropy clips the input image (lesson 04); section 3 measures what that costs here.",
        "mse": "mse picks, for every layer, the range with the least squared error at the given bit width.",
        "histogram": "histogram trims the range greedily, bin by bin from the lighter tail of a histogram, while an "
                     "estimate of the squared error keeps falling; mse measures the error of each candidate range.",
    }
    return grade_choice(
        prediction, best, PREDICTION_OPTIONS,
        f"{best} wins clearly: {table}. {why.get(best, '')}".strip(),
        {c: f"{c} reaches {100 * accuracy[c]:.2f}%, {best} {100 * accuracy[best]:.2f}%. {why.get(c, '')}".strip() for c in accuracy},
    )


def check_calibrator_prediction(prediction: str | None) -> None:
    """Prediction: print the feedback on the best calibrator for PREDICTION_MODEL at W{PREDICTION_WEIGHT_BITS}A{PREDICTION_ACT_BITS}."""
    session = shared_session()
    accuracy = {c: session.run(PREDICTION_MODEL, weight_bits=PREDICTION_WEIGHT_BITS, act_bits=PREDICTION_ACT_BITS,
                               calibrator=c).accuracy for c in PREDICTION_OPTIONS}
    show(grade_calibrator_prediction(prediction, accuracy))
