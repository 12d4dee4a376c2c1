"""Lesson 07 self-checks: right answers (hand-computed here) pass, each known slip gets its hint."""

from __future__ import annotations

import json

import pytest

from qlab.exercises import lesson07 as ex


def test_ste_mask_by_hand(capsys: pytest.CaptureFixture[str]) -> None:
    # s = 0.5, 3-bit signed codes [-4, 3]: x/s = -5.2, -4.5 (-> -4), -3.8, 0.4, 3, 3.6 (-> 4)
    assert ex.grade_ste_mask([0, 1, 1, 1, 1, 0], ex.MASK_X, ex.MASK_SCALE, ex.MASK_BITS).correct
    ex.check_ste_mask([0, 1, 1, 1, 1, 0])
    assert capsys.readouterr().out.startswith("Correct!")


@pytest.mark.parametrize(
    ("answer", "hint"),
    [([0, 0, 1, 1, 1, 0], "before rounding"), ([0, 0, 0, 1, 1, 0], "one more negative code"),
     ([1, 0, 0, 0, 0, 1], "inverted"), ([1, 1], "one 0 or 1"), ([1, 1, 1, 1, 1, 1], "round(x / s)")],
)
def test_ste_mask_hints(answer: list[int], hint: str) -> None:
    fb = ex.grade_ste_mask(answer, ex.MASK_X, ex.MASK_SCALE, ex.MASK_BITS)
    assert not fb.correct and fb.message.startswith("Not quite.") and hint in fb.message


def test_lsq_gradient_by_hand() -> None:
    # s = 0.25: 0.7/s = 2.8 -> round 3 inside [-4, 3]: 3 - 2.8 = 0.2; 1.2/s = 4.8 -> above: qmax = 3
    assert ex.grade_lsq_scale_gradient([0.2, 3.0], ex.LSQ_X, ex.LSQ_SCALE, ex.LSQ_BITS).correct


@pytest.mark.parametrize(
    ("answer", "hint"),
    [([-0.2, -3.0], "signs are flipped"), ([0.0, 0.0], "STE's view"), ([3.0, 5.0], "round(x/s) alone"), ([0.2], "one gradient")],
)
def test_lsq_gradient_hints(answer: list[float], hint: str) -> None:
    fb = ex.grade_lsq_scale_gradient(answer, ex.LSQ_X, ex.LSQ_SCALE, ex.LSQ_BITS)
    assert not fb.correct and hint in fb.message


def test_biggest_gain_reads_the_results_table(tmp_path) -> None:
    results = {
        "fp32": {"cnn": 0.92, "depthwise": 0.90, "mlp": 0.89},
        "ptq": {"cnn/W4A4": {"accuracy": 0.89}, "depthwise/W4A4": {"accuracy": 0.47}, "mlp/W4A4": {"accuracy": 0.88}},
        "qat": {"cnn/W4A4/lsq": {"accuracy": 0.91}, "depthwise/W4A4/lsq": {"accuracy": 0.88}, "mlp/W4A4/lsq": {"accuracy": 0.885}},
    }
    path = tmp_path / "r.json"
    path.write_text(json.dumps(results))
    assert ex.grade_biggest_gain("depthwise", "W4A4", path).correct
    assert not ex.grade_biggest_gain("cnn", "W4A4", path).correct
    assert "one of" in ex.grade_biggest_gain("resnet", "W4A4", path).message
