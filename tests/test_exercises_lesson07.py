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


RIGHT_LSQ = [-0.5 / 6, 0.2 / 6, 3 / 6, -4 / 6]


def test_lsq_gradient_by_hand(capsys: pytest.CaptureFixture[str]) -> None:
    # s = 0.25, codes [-4, 3], g = 1/sqrt(12 * 3) = 1/6. x/s = 2.5 -> 2 (half to even): 2 - 2.5 = -0.5;
    # 2.8 -> 3: 0.2; 4.8 -> above: qmax = 3; -5.2 -> below: qmin = -4
    assert ex.grade_lsq_scale_gradient(RIGHT_LSQ, ex.LSQ_X, ex.LSQ_SCALE, ex.LSQ_BITS, ex.LSQ_N).correct
    ex.check_lsq_scale_gradient(RIGHT_LSQ)
    assert capsys.readouterr().out.startswith("Correct!")


@pytest.mark.parametrize(
    ("answer", "hint"),
    [([0.5 / 6, -0.2 / 6, -3 / 6, 4 / 6], "signs are flipped"),
     ([-0.5 / 6, 0.2 / 6, -3 / 6, 4 / 6], "Check the clipped values"),
     ([-0.5, 0.2, 3.0, -4.0], "left out LSQ's gradient scale g"),
     ([0.5 / 6, -0.2 / 6, 3 / 6, -4 / 6], "sign inside the range"),
     ([0.0833, -0.0333, 0.5, -0.6667], "sign inside the range"),  # x/s - round(x/s), 4 decimals
     ([-0.5 / 48 ** 0.5, 0.2 / 48 ** 0.5, 3 / 48 ** 0.5, -4 / 48 ** 0.5], "not |qmin| = 4"),
     ([0.5 / 6, 0.2 / 6, 3 / 6, -4 / 6], "half to EVEN"),
     ([0.5, 0.2, 3.0, -4.0], "Two slips"),
     ([0.0, 0.0, 0.0, 0.0], "STE's view"),
     ([2 / 6, 3 / 6, 5 / 6, -5 / 6], "round(x/s) alone"),
     ([0.2], "one gradient"),
     ([1.0, 1.0, 1.0, 1.0], "differentiate in s")],
)
def test_lsq_gradient_hints(answer: list[float], hint: str) -> None:
    fb = ex.grade_lsq_scale_gradient(answer, ex.LSQ_X, ex.LSQ_SCALE, ex.LSQ_BITS, ex.LSQ_N)
    assert not fb.correct and hint in fb.message


def test_blank_answers_are_not_answered_yet(capsys: pytest.CaptureFixture[str]) -> None:
    for check in (ex.check_ste_mask, ex.check_lsq_scale_gradient, ex.check_biggest_gain_prediction):
        check(None)
        assert capsys.readouterr().out.startswith("Not answered yet")


def test_biggest_gain_prediction_reads_the_results_table(tmp_path) -> None:
    results = {
        "fp32": {"cnn": 0.92, "depthwise": 0.90, "mlp": 0.89},
        "ptq": {"cnn/W4A4": {"accuracy": 0.89}, "depthwise/W4A4": {"accuracy": 0.47}, "mlp/W4A4": {"accuracy": 0.88}},
        "qat": {"cnn/W4A4/lsq": {"accuracy": 0.91}, "depthwise/W4A4/lsq": {"accuracy": 0.88}, "mlp/W4A4/lsq": {"accuracy": 0.885}},
    }
    path = tmp_path / "r.json"
    path.write_text(json.dumps(results))
    assert ex.grade_biggest_gain_prediction("depthwise", "W4A4", path).correct
    assert ex.grade_biggest_gain_prediction(" Depthwise", "W4A4", path).correct
    wrong = ex.grade_biggest_gain_prediction("cnn", "W4A4", path)
    assert not wrong.correct and "depthwise +41.00" in wrong.message and "PTQ lost" in wrong.message
    assert "one of" in ex.grade_biggest_gain_prediction("resnet", "W4A4", path).message
    assert ex.grade_biggest_gain_prediction(None, "W4A4", path).message.startswith("Not answered yet")


@pytest.mark.parametrize("answer", [[-0.0833, 0.0333, 0.5, -0.6667],  # the 4 decimals the success message prints
                                    [-0.083, 0.033, 0.5, -0.667],  # 3 decimals by hand
                                    (-1 / 12, 1 / 30, 0.5, -2 / 3)])
def test_lsq_gradient_rounded_by_hand_passes(answer: list[float]) -> None:
    """Regression: the answer printed by the check (4 decimals) used to fail with the generic hint."""
    assert ex.grade_lsq_scale_gradient(answer, ex.LSQ_X, ex.LSQ_SCALE, ex.LSQ_BITS, ex.LSQ_N).correct


def test_lsq_gradient_too_coarse_is_told_to_keep_decimals() -> None:
    fb = ex.grade_lsq_scale_gradient([-0.08, 0.03, 0.5, -0.67], ex.LSQ_X, ex.LSQ_SCALE, ex.LSQ_BITS, ex.LSQ_N)
    assert not fb.correct and "method is right" in fb.message and "three decimals" in fb.message
    far = ex.grade_lsq_scale_gradient([-0.1, 0.03, 0.5, -0.67], ex.LSQ_X, ex.LSQ_SCALE, ex.LSQ_BITS, ex.LSQ_N)
    assert "differentiate in s" in far.message, "0.017 off is not a rounding of the right value"


@pytest.mark.parametrize(("check", "answer"), [(ex.check_ste_mask, "011110"),
                                               (ex.check_lsq_scale_gradient, "-0.0833, 0.0333, 0.5, -0.6667")])
def test_text_answers_are_told_to_give_numbers(check, answer, capsys: pytest.CaptureFixture[str]) -> None:
    """Regression: a string answer used to raise TypeError inside torch.as_tensor."""
    check(answer)
    assert capsys.readouterr().out.startswith("Give a number")


def test_a_single_number_is_told_the_expected_length() -> None:
    assert "one 0 or 1 for each" in ex.grade_ste_mask(1, ex.MASK_X, ex.MASK_SCALE, ex.MASK_BITS).message
    assert "one gradient for each" in ex.grade_lsq_scale_gradient(0.5, ex.LSQ_X, ex.LSQ_SCALE, ex.LSQ_BITS, ex.LSQ_N).message


@pytest.mark.parametrize(("check", "answer"), [(ex.check_ste_mask, ["0", "1", "1", "1", "1", "0"]),
                                               (ex.check_lsq_scale_gradient, ("-0.0833", "0.0333", "0.5", "-0.6667"))])
def test_a_list_of_text_is_told_to_give_numbers_not_text(check, answer, capsys: pytest.CaptureFixture[str]) -> None:
    """Regression: a list of quoted numbers was told "Give a number, not a list" (it is a list, of text)."""
    check(answer)
    out = capsys.readouterr().out
    assert out.startswith("Give a number for each value, not text") and "quotes" in out
