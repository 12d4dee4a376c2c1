"""The shared grading rules: blank answers, predictions (multiple choice)."""

from __future__ import annotations

from qlab.exercises._grading import NOT_A_NUMBER, NOT_ANSWERED, grade, grade_choice, grade_exact, unusable


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


def test_text_answer_asks_for_a_number_not_an_error() -> None:
    for answer in ("10.4", ["0.1", "0.2"], "abc"):
        assert grade(answer, 10.4, "x", [], "y").message == NOT_A_NUMBER, answer
        assert unusable(answer) == grade(answer, 10.4, "x", [], "y")
    assert grade_exact("120528", (120528,), "x", [], "y").message == NOT_A_NUMBER
    assert unusable(10.4) is None and unusable([1, 2]) is None


def test_absolute_tolerance_accepts_a_rounded_answer_and_grades_slips_alike() -> None:
    assert not grade(9.6, 9.642, "x", [], "y").correct, "the default tolerance is relative, 1e-3"
    assert grade(9.6, 9.642, "x", [], "y", abs_tol=0.05).correct
    assert not grade(9.5, 9.642, "x", [], "y", abs_tol=0.05).correct
    assert grade(10.4, 9.642, "x", [(10.372, "slip")], "y", abs_tol=0.05).message == "Not quite. slip"
