"""The shared grading rules: blank answers, predictions (multiple choice)."""

from __future__ import annotations

from qlab.exercises._grading import NOT_ANSWERED, grade, grade_choice, grade_exact


def test_blank_answer_is_not_answered_yet_not_an_error() -> None:
    assert grade(None, 1.0, "x", [], "y").message == NOT_ANSWERED
    assert grade_exact(None, (1, 2), "x", [], "y").message == NOT_ANSWERED
    assert grade_choice(None, "a", ["a", "b"], "x", {}).message == NOT_ANSWERED


def test_choice_right_wrong_and_unknown() -> None:
    options = ["minmax", "entropy"]
    hints = {"minmax": "look at the 4-bit activations"}
    right = grade_choice(" Entropy", "entropy", options, "because", hints)
    assert right.correct and right.message == "Correct! because"
    wrong = grade_choice("minmax", "entropy", options, "because", hints)
    assert not wrong.correct and wrong.message == "Not quite. look at the 4-bit activations"
    unknown = grade_choice("mse", "entropy", options, "because", hints)
    assert not unknown.correct and "'minmax', 'entropy'" in unknown.message
