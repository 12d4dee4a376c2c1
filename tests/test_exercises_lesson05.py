"""Lesson 05 self-checks against torch's BN folding and torch's own fake quantization."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
from torch.nn.utils.fusion import fuse_conv_bn_weights

from qlab.exercises import lesson05 as ex
from qlab.models import load_pretrained


def torch_folded(layer: str = "block1_dw_conv") -> tuple[torch.Tensor, torch.Tensor]:
    """(weight before folding, weight folded by torch.nn.utils.fusion.fuse_conv_bn_weights)."""
    model = load_pretrained("depthwise")
    conv, bn = getattr(model, layer), getattr(model, layer.replace("_conv", "_bn"))
    w, _ = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias)
    return conv.weight.detach(), w.detach()


def sqnr(w: torch.Tensor, w_hat: torch.Tensor) -> float:
    return 10 * math.log10(float((w.double() ** 2).sum() / ((w - w_hat).double() ** 2).sum()))


def torch_gain(w: torch.Tensor, bits: int) -> float:
    """SQNR(per channel) - SQNR(per tensor), symmetric scales max|w| / (2^(b-1) - 1), via torch."""
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    amax = w.reshape(w.shape[0], -1).abs().amax(1)
    per_channel = torch.fake_quantize_per_channel_affine(w, amax / qmax, torch.zeros(w.shape[0], dtype=torch.int32), 0, qmin, qmax)
    per_tensor = torch.fake_quantize_per_tensor_affine(w, float(amax.max()) / qmax, 0, qmin, qmax)
    return sqnr(w, per_channel) - sqnr(w, per_tensor)


def test_per_channel_scales_correct_and_hints(capsys: pytest.CaptureFixture[str]) -> None:
    assert (ex.LAYER, ex.BITS) == ("block1_dw_conv", 4)
    unfolded, w = torch_folded()
    rows = w.reshape(w.shape[0], -1)
    amax = rows.abs().amax(1)
    assert ex.grade_per_channel_scales(amax / 7, "block1_dw_conv", 4).message.startswith("Correct!")
    ex.check_per_channel_scales(amax / 7)
    assert capsys.readouterr().out.startswith("Correct!")
    cases = [(torch.full((w.shape[0],), float(amax.max()) / 7), "per-TENSOR"),
             (unfolded.reshape(w.shape[0], -1).abs().amax(1) / 7, "before BatchNorm folding"),
             (amax / 8, "2^(b-1);"), (amax / 15, "HALF of the codes"),
             (rows.amax(1) / 7, "max(|w|)"), (amax, "For each output channel"), ([1.0, 2.0], "one scale per output channel")]
    for answer, hint in cases:
        fb = ex.grade_per_channel_scales(answer, "block1_dw_conv", 4)
        assert not fb.correct and hint in fb.message, (hint, fb.message)


def test_sqnr_gain_correct_and_hints(capsys: pytest.CaptureFixture[str]) -> None:
    assert (ex.LAYER, ex.GAIN_BITS) == ("block1_dw_conv", 3)
    unfolded, w = torch_folded()
    gain = torch_gain(w, 3)
    assert gain > 6, "per channel buys at least a bit on the first depthwise layer"
    assert ex.grade_sqnr_gain(gain, "block1_dw_conv", 3).correct
    for answer in (gain, round(gain, 1), round(gain, 2), torch.tensor(gain)):  # rounded to 0.1 dB passes too
        ex.check_sqnr_gain(answer)
        assert capsys.readouterr().out.startswith("Correct!"), answer
    cases = [(-gain, "sign is flipped"), (torch_gain(unfolded, 3), "before BN folding"), (torch_gain(w, 4), "at 4 bits"),
             (round(torch_gain(w, 4), 1), "at 4 bits"), (torch_gain(w, 8), "at 8 bits"), (gain + 0.2, "subtract"), (100.0, "subtract")]
    for answer, hint in cases:
        fb = ex.grade_sqnr_gain(answer, "block1_dw_conv", 3)
        assert not fb.correct and hint in fb.message, (hint, fb.message)


def test_sqnr_gain_tolerance_is_the_printed_precision() -> None:
    _, w = torch_folded()
    gain = torch_gain(w, 3)
    assert ex.GAIN_TOL_DB == 0.05
    assert ex.grade_sqnr_gain(gain + 0.049, "block1_dw_conv", 3).correct
    assert not ex.grade_sqnr_gain(gain + 0.06, "block1_dw_conv", 3).correct


def test_sqnr_gain_answer_is_not_printed_before_the_exercise() -> None:
    """Section 2 prints the 4-bit gains with one decimal; the exercise's gain must not appear above it."""
    _, w = torch_folded()
    gain = torch_gain(w, ex.GAIN_BITS)
    cells = json.loads((Path(__file__).parents[1] / "notebooks" / "05_per_channel.ipynb").read_text())["cells"]
    exercise = next(i for i, c in enumerate(cells) if "check_sqnr_gain(my_gain)" in "".join(c["source"]))
    shown = " ".join("".join(c["source"]) + json.dumps(c.get("outputs", [])) for c in cells[:exercise])
    assert "block1_dw_conv 10.4" in shown, "section 2 prints the 4-bit gain of the layer"
    for text in {f"{gain:.1f}", f"{gain:.2f}"}:
        assert not re.search(rf"(?<![\d.]){re.escape(text)}(?!\d)", shown), text


def test_other_layer() -> None:
    _, w = torch_folded("block2_dw_conv")
    assert ex.grade_per_channel_scales(w.reshape(w.shape[0], -1).abs().amax(1) / 3, "block2_dw_conv", 3).correct
    assert ex.grade_sqnr_gain(torch_gain(w, 3), "block2_dw_conv", 3).correct


def test_blank_answers_are_not_answered_yet(capsys: pytest.CaptureFixture[str]) -> None:
    for check in (ex.check_per_channel_scales, ex.check_sqnr_gain, ex.check_collapse_prediction):
        check(None)
        assert capsys.readouterr().out.startswith("Not answered yet"), check.__name__


def test_text_answers_ask_for_a_number(capsys: pytest.CaptureFixture[str]) -> None:
    for check, answer in [(ex.check_per_channel_scales, "0.1"), (ex.check_per_channel_scales, ["0.1"] * 16), (ex.check_sqnr_gain, "9.64")]:
        check(answer)
        assert capsys.readouterr().out.startswith("Give a number, not text"), (check.__name__, answer)


def test_swapped_sqnr_arguments_get_their_hint() -> None:
    _, w = torch_folded()
    qmin, qmax = -8, 7
    amax = w.reshape(w.shape[0], -1).abs().amax(1)
    per_channel = torch.fake_quantize_per_channel_affine(w, amax / qmax, torch.zeros(w.shape[0], dtype=torch.int32), 0, qmin, qmax)
    per_tensor = torch.fake_quantize_per_tensor_affine(w, float(amax.max()) / qmax, 0, qmin, qmax)
    swapped = sqnr(per_channel, w) - sqnr(per_tensor, w)
    fb = ex.grade_sqnr_gain(swapped, "block1_dw_conv", 4)
    assert not fb.correct and "swapped sqnr_db's arguments" in fb.message


def test_swapped_exercise_parameters_raise_naming_them() -> None:
    _, w = torch_folded()
    with pytest.raises(ValueError, match="layer must be one of"):
        ex.grade_per_channel_scales(w.reshape(16, -1).abs().amax(1) / 7, 4, "block1_dw_conv")
    with pytest.raises(ValueError, match="layer must be one of"):
        ex.grade_sqnr_gain(10.0, 4, "block1_dw_conv")
    with pytest.raises(TypeError, match="bits"):
        ex.grade_sqnr_gain(10.0, "block1_dw_conv", "4")


def test_collapse_prediction_options_follow_the_measured_drop() -> None:
    assert ex.collapse_option(0.4) == "under 1 point"
    assert ex.collapse_option(3.1) == "1 to 10 points"
    assert ex.collapse_option(59.9) == "more than 10 points"
    assert ex.grade_collapse_prediction("More than 10 points ", 90.2, 30.35).correct
    wrong = ex.grade_collapse_prediction("under 1 point", 90.2, 30.35)
    assert not wrong.correct and "drop of 59.85 points" in wrong.message and "one code or none" in wrong.message
    assert ex.grade_collapse_prediction("1 to 10 points", 90.2, 87.14).correct
    assert "Not one of the options" in ex.grade_collapse_prediction("a lot", 90.2, 30.35).message


def test_collapse_prediction_measures_the_per_tensor_network(capsys: pytest.CaptureFixture[str]) -> None:
    from qlab.evaluation import evaluate  # noqa: PLC0415
    from qlab.ptq import quantize_model  # noqa: PLC0415

    net = load_pretrained("depthwise")
    drop = 100 * (evaluate(net) - evaluate(quantize_model(net, 4, granularity="per_tensor")))
    ex.check_collapse_prediction(ex.collapse_option(drop))
    assert capsys.readouterr().out.startswith("Correct!")
