"""Grading helpers shared by the lesson modules (private to ``qlab.exercises``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

REL_TOL = 1e-3

NOT_ANSWERED = "Not answered yet: replace the None in your answer cell with your answer, run that cell, then this check again."

NOT_A_NUMBER = "Give a number, not text: write your answer without quotes (a number, a list of numbers or a tensor)."


@dataclass(frozen=True)
class Feedback:
    """Outcome of a self-check: ``correct`` and the message shown to the learner."""

    correct: bool
    message: str


def number_expected(*answers: Any) -> Feedback | None:
    """A "give a number" Feedback if one of ``answers`` is text or not numeric, else None (numbers,
    sequences of numbers, tensors and ``None`` are left to :func:`grade`/:func:`grade_exact`).

    A value typed into ``input()`` or written in quotes ("37.7") must get this message, not a TypeError."""
    for answer in answers:
        if answer is None:
            continue
        if isinstance(answer, (str, bytes)):
            return Feedback(False, f"Give a number, not the text {answer!r}: remove the quotes "
                                   "(a value read with input() needs float(...)).")
        if isinstance(answer, (list, tuple)) and any(isinstance(a, (str, bytes)) for a in answer):
            return Feedback(False, f"Give a number for each value, not text: remove the quotes around the values in your "
                                   f"{type(answer).__name__}.")
        try:
            torch.as_tensor(answer, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            return Feedback(False, f"Give a number, not a {type(answer).__name__}.")
    return None


def unusable(answer: Any) -> Feedback | None:
    """The feedback for an answer that cannot be graded as numbers, else None: ``None`` (the blank
    student cell) is "not answered yet", text (e.g. ``"10.4"``) is "give a number", never an error."""
    if answer is None:
        return Feedback(False, NOT_ANSWERED)
    if number_expected(answer) is not None:
        return Feedback(False, NOT_A_NUMBER)
    return None


def close(answer: Any, expected: Any, rel_tol: float = REL_TOL, abs_tol: float = 1e-9) -> bool:
    """Element-wise ``math.isclose`` of numbers or equal-length sequences (tensors allowed)."""
    a = torch.as_tensor(answer, dtype=torch.float64).flatten().tolist()
    e = torch.as_tensor(expected, dtype=torch.float64).flatten().tolist()
    return len(a) == len(e) and all(math.isclose(x, y, rel_tol=rel_tol, abs_tol=abs_tol) for x, y in zip(a, e))


def grade(answer: Any, expected: Any, explanation: str, slips: Sequence[tuple[Any, str]], fallback: str,
          rel_tol: float = REL_TOL, abs_tol: float = 1e-9) -> Feedback:
    """Correct if ``answer`` matches ``expected`` within ``rel_tol`` or ``abs_tol``; else the hint of
    the first matching slip (same tolerances).

    ``None`` and text answers get their message from ``unusable``, never an error: a student copy
    runs from top to bottom before any exercise is solved."""
    if (blank := unusable(answer)) is not None:
        return blank
    if close(answer, expected, rel_tol, abs_tol):
        return Feedback(True, f"Correct! {explanation}")
    for wrong, hint in slips:
        if close(answer, wrong, rel_tol, abs_tol):
            return Feedback(False, f"Not quite. {hint}")
    return Feedback(False, f"Not quite. {fallback}")


def _as_ints(answer: Any) -> tuple[int, ...] | None:
    """The answer as a tuple of Python ints, or None if it holds a non-whole number."""
    values = torch.as_tensor(answer, dtype=torch.float64).flatten().tolist()
    return tuple(int(v) for v in values) if all(float(v).is_integer() for v in values) else None


def grade_exact(answer: Any, expected: Sequence[int], explanation: str, slips: Sequence[tuple[Sequence[int], str]], fallback: str) -> Feedback:
    """Integer answers compared exactly: correct, or the hint of the first slip the answer equals
    (``None`` and text: ``unusable``)."""
    if (blank := unusable(answer)) is not None:
        return blank
    got = _as_ints(answer)
    if got == tuple(expected):
        return Feedback(True, f"Correct! {explanation}")
    for wrong, hint in slips:
        if got == tuple(wrong):
            return Feedback(False, f"Not quite. {hint}")
    return Feedback(False, f"Not quite. {fallback}")


def grade_choice(answer: Any, expected: str, options: Sequence[str], explanation: str, hints: dict[str, str]) -> Feedback:
    """A prediction or multiple-choice answer: one of ``options`` (compared case-insensitively).

    ``hints`` maps a wrong option to what the student should look at; an answer that is not one of
    the options is told the options; ``None`` is "not answered yet"."""
    if answer is None:
        return Feedback(False, NOT_ANSWERED)
    chosen = str(answer).strip().lower()
    by_name = {o.lower(): o for o in options}
    if chosen not in by_name:
        return Feedback(False, f"Not one of the options: answer with one of {', '.join(map(repr, options))}.")
    if by_name[chosen] == expected:
        return Feedback(True, f"Correct! {explanation}")
    return Feedback(False, f"Not quite. {hints.get(by_name[chosen], explanation)}")


def combine(parts: Sequence[Feedback], explanation: str) -> Feedback:
    """Several part-answers: "Correct!" with ``explanation`` if all are; else the first wrong part's hint."""
    wrong = [f for f in parts if not f.correct]
    return wrong[0] if wrong else Feedback(True, f"Correct! {explanation}")


def show(feedback: Feedback) -> None:
    """Print the learner's message (what every ``check_*`` does)."""
    print(feedback.message)


NEAR_TOL = 1e-2


def grade_digits(answer: Any, expected: float, explanation: str, slips: Sequence[tuple[Any, str]], fallback: str,
                 exact: str) -> Feedback:
    """:func:`grade`, plus a "right idea, give more digits" hint for an answer within ``NEAR_TOL`` (1%)
    of ``expected`` that matches none of ``slips``: a value rounded to two or three significant digits
    (0.031 for 2^-5 = 0.03125) is not told that its idea is wrong. ``exact`` names an exact expression
    the learner could write instead (e.g. "2**-5")."""
    if (not_a_number := number_expected(answer)) is not None:
        return not_a_number
    feedback = grade(answer, expected, explanation, slips, fallback)
    if (feedback.correct or answer is None or any(close(answer, wrong) for wrong, _ in slips)
            or not close(answer, expected, NEAR_TOL)):
        return feedback
    return Feedback(False, f"Not quite, but within {NEAR_TOL:.0%}: the idea is right, the digits too few. Give at "
                           f"least four significant digits, or let Python compute it exactly (e.g. {exact}).")
