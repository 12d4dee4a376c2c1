"""Self-checks accept the right answers (computed by qlab) and give the specific hint for each slip."""

from __future__ import annotations

import pytest

from qlab import exercises as ex
from qlab.affine import qparams_from_range
from qlab.fixed_point import fixed_point_format


def test_tie_rounding_correct_and_printed(capsys: pytest.CaptureFixture[str]) -> None:
    answer = [round(v) for v in ex.TIE_VALUES]  # Python's round() is half-to-even too
    assert ex.grade_tie_rounding(answer).correct
    assert ex.check_tie_rounding(answer) is None
    assert capsys.readouterr().out.startswith("Correct!")


@pytest.mark.parametrize(
    ("answer", "hint"),
    [([1, 2, 3, -1], "away from zero"), ([0, 1, 2, -1], "floor"), ([1, 2, 3, 0], "ceil"),
     ([0, 1, 2, 0], "truncated"), ([7, 7, 7, 7], "even one"), ([0, 2], "one rounded value")],
)
def test_tie_rounding_hints(answer: list[int], hint: str) -> None:
    fb = ex.grade_tie_rounding(answer)
    assert not fb.correct and fb.message.startswith("Not quite.") and hint in fb.message


@pytest.mark.parametrize(("m", "n"), [(2, 5), (3, 4), (0, 7)])
def test_fixed_point_correct(m: int, n: int) -> None:
    fmt = fixed_point_format(m, n)
    assert ex.grade_fixed_point_format(fmt.resolution, fmt.min_value, fmt.max_value, m, n).correct


@pytest.mark.parametrize(
    ("resolution", "min_value", "max_value", "hint"),
    [(2**-6, -4, 4 - 2**-5, "not 2^-6"), (32.0, -4, 4 - 2**-5, "inverse"),
     (2**-5, -4 + 2**-5, 4 - 2**-5, "one more negative code"), (2**-5, -4, 4, "one step below"),
     (2**-5, -2, 2 - 2**-5, "WITHOUT the sign bit"), (2**-5, -4, 3.0, "largest code")],
)
def test_fixed_point_hints(resolution: float, min_value: float, max_value: float, hint: str) -> None:
    fb = ex.grade_fixed_point_format(resolution, min_value, max_value, m=2, n=5)
    assert not fb.correct and hint in fb.message


def test_affine_qparams_correct_against_qlab() -> None:
    scale, zp = qparams_from_range(-0.5, 2.0, 8, signed=False)
    fb = ex.grade_affine_qparams(scale.item(), zp.item(), -0.5, 2.0, 8)
    assert fb.correct and f"code {zp.item()}" in fb.message


@pytest.mark.parametrize(
    ("scale", "zero_point", "hint"),
    [(2.5 / 127, 51, "2x too large"), (2.5 / 256, 51, "number of STEPS"), (255 / 2.5, 51, "inverted"),
     (2.5 / 255, -51, "sign of your zero-point"),
     (2.5 / 255, 51.5, "integer code"), (2.5 / 255, 0, "cannot sit at code 0"), (0.5, 51, "scale = (max - min)")],
)
def test_affine_qparams_hints(scale: float, zero_point: float, hint: str) -> None:
    fb = ex.grade_affine_qparams(scale, zero_point, -0.5, 2.0, 8)
    assert not fb.correct and hint in fb.message


def test_affine_qparams_unrounded_zero_point() -> None:
    scale = qparams_from_range(-1.0, 3.0, 8, signed=False)[0].item()
    fb = ex.grade_affine_qparams(scale, 1.0 / scale, -1.0, 3.0, 8)  # 63.75: real 0 off the grid
    assert not fb.correct and "INTEGER" in fb.message


def test_symmetric_scale_correct_against_qlab() -> None:
    scale = qparams_from_range(-2.54, 2.54, 8, signed=True, symmetric=True)[0].item()
    assert ex.grade_symmetric_scale(scale).correct


@pytest.mark.parametrize(
    ("scale", "hint"),
    [(2.54 / 127.5, "torch's convention"), (2.54 / 128, "2^(b-1);"), (2.54 / 255, "HALF of the codes"), (1.0, "Symmetric: zero_point = 0")],
)
def test_symmetric_scale_hints(scale: float, hint: str) -> None:
    fb = ex.grade_symmetric_scale(scale)
    assert not fb.correct and hint in fb.message


# Lessons 05-06 -------------------------------------------------------------------------
from qlab.metrics import sqnr_db  # noqa: E402
from qlab.folding import fold_batchnorm  # noqa: E402
from qlab.ptq import quantize_model, quantize_weight, weighted_layers  # noqa: E402
from qlab.report import model_size  # noqa: E402


def _depthwise_weights(layer: str = "block1_dw_conv"):
    from qlab.models import load_pretrained

    model = load_pretrained("depthwise")
    folded = dict(weighted_layers(fold_batchnorm(model)))[layer].weight.detach()
    return dict(weighted_layers(model))[layer].weight.detach(), folded


def test_per_channel_scales_correct_and_hints() -> None:
    unfolded, w = _depthwise_weights()
    amax = w.reshape(w.shape[0], -1).abs().amax(1)
    assert ex.grade_per_channel_scales(amax / 7).message.startswith("Correct!")
    cases = [(quantize_weight(w, 4, "per_tensor").scale.expand(w.shape[0]), "per-TENSOR"),
             (quantize_weight(unfolded, 4, "per_channel").scale, "before BatchNorm folding"),
             (amax / 8, "2^(b-1);"), (amax / 15, "HALF of the codes"),
             (w.reshape(w.shape[0], -1).amax(1) / 7, "max(|w|)"), (amax, "For each output channel"), ([1.0, 2.0], "one scale per output channel")]
    for answer, hint in cases:
        fb = ex.grade_per_channel_scales(answer)
        assert not fb.correct and hint in fb.message, (hint, fb.message)


def test_sqnr_gain_correct_and_hints() -> None:
    unfolded, w = _depthwise_weights()

    def gain(weight, bits):
        return sqnr_db(weight, quantize_weight(weight, bits, "per_channel").weight) - sqnr_db(weight, quantize_weight(weight, bits, "per_tensor").weight)

    assert ex.grade_sqnr_gain(gain(w, 4)).correct
    for answer, hint in [(-gain(w, 4), "sign is flipped"), (gain(unfolded, 4), "before BN folding"), (gain(w, 8), "at 8 bits"), (100.0, "subtract")]:
        fb = ex.grade_sqnr_gain(answer)
        assert not fb.correct and hint in fb.message


def test_model_size_correct_and_hints() -> None:
    from qlab.models import load_pretrained

    layers = [layer for _, layer in weighted_layers(load_pretrained("mlp"))]
    weights = sum(-(-layer.weight.numel() * 4 // 8) for layer in layers)
    biases = sum(layer.bias.numel() for layer in layers)
    scales = sum(layer.weight.shape[0] for layer in layers)
    answer = weights + 4 * biases + 4 * scales
    fp32, q = model_size(quantize_model(load_pretrained("mlp"), 4).report)
    assert answer == q and ex.grade_model_size(answer).correct
    cases = [(answer - 4 * scales, "forgot the scales"), (weights + biases // 2 + 4 * scales, "stay 32-bit"),
             (fp32 // 8, "ignores the 32-bit"), (8 * answer, "in bytes"), (1, "Sum over layers")]
    for value, hint in cases:
        fb = ex.grade_model_size(value)
        assert not fb.correct and hint in fb.message, (hint, fb.message)


def test_accuracy_drop_correct_and_hints() -> None:
    from qlab.evaluation import evaluate
    from qlab.models import load_pretrained

    net = load_pretrained("depthwise")
    fp32 = evaluate(net)
    from qlab.session import calibration_data

    drop = 100 * (fp32 - evaluate(quantize_model(net, 8, 8, "per_tensor", calib_data=calibration_data())))
    other = 100 * (fp32 - evaluate(quantize_model(net, 8, 8, "per_channel", calib_data=calibration_data())))
    assert ex.grade_accuracy_drop(drop).correct
    for value, hint in [(drop / 100, "POINTS"), (-drop, "sign is flipped"), (drop / fp32, "relative"), (other, "per_channel"), (50.0, "subtract")]:
        fb = ex.grade_accuracy_drop(value)
        assert not fb.correct and hint in fb.message, (hint, fb.message)


# Lessons 03 and 04 ---------------------------------------------------------------------
import math  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from qlab import sweeps  # noqa: E402


@pytest.fixture(scope="module")
def bell_weights() -> torch.Tensor:
    return 0.1 * torch.randn(20_000, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def tail_acts() -> torch.Tensor:
    return torch.relu(torch.randn(20_000, generator=torch.Generator().manual_seed(1))) ** 2


def test_sqnr_prediction_correct_and_hints() -> None:
    s4 = 13.6
    assert ex.grade_sqnr_prediction(s4 + 4 * 20 * math.log10(2), s4).correct
    cases = [(s4 + 4 * 3.0103, "AMPLITUDE"), (2 * s4, "Decibels add"), (s4 + 6.0206, "one extra bit"),
             (4 * 6.0206, "only the gain"), (0.0, "20 log10(2) dB for each")]
    for value, hint in cases:
        fb = ex.grade_sqnr_prediction(value, s4)
        assert not fb.correct and hint in fb.message, (hint, fb.message)


def test_bits_for_sqnr_correct_and_hints(bell_weights: torch.Tensor) -> None:
    sqnr = dict(zip(range(2, 17), sweeps.sqnr_vs_bits(bell_weights, list(range(2, 17)))))
    expected = next(b for b, s in sqnr.items() if s >= 30.0)
    assert sqnr[expected - 1] < 30.0 <= sqnr[expected]
    assert ex.grade_bits_for_sqnr(expected, bell_weights).correct
    naive = math.ceil(30 / sweeps.DB_PER_BIT)
    assert naive < expected - 1, "bell-shaped data need more bits than the uniform rule says"
    cases = [(naive, "UNIFORM"), (expected - 1, "still below"), (expected + 1, "one bit fewer"), (16, "smallest that reaches")]
    for value, hint in cases:
        fb = ex.grade_bits_for_sqnr(value, bell_weights)
        assert not fb.correct and hint in fb.message, (hint, fb.message)


def test_error_split_correct_and_hints(tail_acts: torch.Tensor) -> None:
    t = 2.0
    split = sweeps.clip_rounding_error(tail_acts, t, 4, signed=False)
    inside = tail_acts <= t
    err2 = (sweeps.quantize_in_range(tail_acts, 0.0, t, 4, False, False).x_hat - tail_acts).double() ** 2
    n = tail_acts.numel()
    my_clip, my_round = float(err2[~inside].sum()) / n, float(err2[inside].sum()) / n
    assert ex.grade_error_split(my_clip, my_round, tail_acts, t).message.startswith("Correct!")
    assert math.isclose(my_clip + my_round, split.total, rel_tol=1e-6)
    cases = [
        (float(err2[~inside].mean()), my_round, "clipped values only"),
        (my_clip, float(err2[inside].mean()), "inside the range only"),
        (my_round, my_clip, "swapped the parts"),
        (split.total, my_round, "That is the total MSE"),
        (my_clip, 1.0, "values inside [lo, hi]"),
    ]
    for c, r, hint in cases:
        fb = ex.grade_error_split(c, r, tail_acts, t)
        assert not fb.correct and hint in fb.message, (hint, fb.message)


def test_best_threshold_correct_and_hints(tail_acts: torch.Tensor) -> None:
    amax = float(tail_acts.max())
    thresholds = np.linspace(0.02, 1.0, 50) * amax
    curve = sweeps.clip_rounding_curve(tail_acts, thresholds, 4, signed=False)
    assert ex.grade_best_threshold(thresholds[curve.best], tail_acts, thresholds).correct
    cases = [(amax, "min/max range"), (thresholds[0], "only the rounding"), (thresholds[curve.best + 3], "smallest")]
    for value, hint in cases:
        fb = ex.grade_best_threshold(value, tail_acts, thresholds)
        assert not fb.correct and hint in fb.message, (hint, fb.message)
