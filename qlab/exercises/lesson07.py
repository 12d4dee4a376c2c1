"""Lesson 07 exercises (quantization-aware training): the STE mask, LSQ's step-size gradient
and a prediction of which model gains most from QAT.

Each ``grade_*`` returns a ``Feedback``; its ``check_*`` twin prints the message. Expected
answers come from qlab's own functions (the autograd of ``fake_quantize`` and
``learnable_fake_quantize``) or from the benchmark results file, never from typed numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from qlab.affine import fake_quantize, qrange
from qlab.exercises._grading import NOT_ANSWERED, Feedback, close, grade, grade_choice, number_expected, show
from qlab.qat import learnable_fake_quantize, lsq_grad_factor
from qlab.qat_train import RESULTS_FILE, benchmark_results

MASK_X: tuple[float, ...] = (-2.6, -2.25, -1.9, 0.2, 1.5, 1.8)
MASK_SCALE, MASK_BITS = 0.5, 3
GAIN_SETTING = "W4A4"
LSQ_X: tuple[float, ...] = (0.625, 0.7, 1.2, -1.3)
"""x/s = 2.5 (a tie), 2.8 (inside), 4.8 (above the range), -5.2 (below it) at s = 0.25, 3 bits."""
LSQ_SCALE, LSQ_BITS = 0.25, 3
LSQ_N = 12
"""Number of values sharing the step size: g = 1 / sqrt(N * Qp) = 1 / sqrt(12 * 3) = 1/6."""
LSQ_ABS_TOL = 1e-3
"""Exercise 2 accepts each gradient within 0.001: values rounded to 3 decimals by hand pass (e.g. 0.033
for 1/30), while every hinted slip differs from the answer by more than 0.08."""
LSQ_DIGITS_TOL = 1e-2
"""Within 0.01 of every gradient but not within ``LSQ_ABS_TOL``: the method is right, the rounding too coarse."""


def ste_mask(x: Sequence[float], scale: float, bits: int) -> torch.Tensor:
    """dQ/dx of fake_quantize on the signed ``bits``-bit grid (zero-point 0), by autograd."""
    xs = torch.tensor(x, requires_grad=True)
    fake_quantize(xs, scale, 0, *qrange(bits, signed=True)).sum().backward()
    return xs.grad


def lsq_scale_gradients(x: Sequence[float], scale: float, bits: int, g: float = 1.0) -> torch.Tensor:
    """g * dQ(x_i)/ds for each x_i, by autograd of learnable_fake_quantize (gradient scale ``g``)."""
    xs = torch.tensor(x)
    s = torch.full((len(x),), scale, requires_grad=True)
    learnable_fake_quantize(xs, s, torch.zeros(len(x)), *qrange(bits, signed=True), axis=0, grad_factor=g).sum().backward()
    return s.grad


def grade_ste_mask(answer: Sequence[float] | None, x: Sequence[float], scale: float, bits: int) -> Feedback:
    """Exercise: the STE's dQ/dx (0 or 1) for each x on the signed grid with step ``scale``."""
    if answer is None:
        return Feedback(False, NOT_ANSWERED)
    if (not_numbers := number_expected(answer)) is not None:
        return not_numbers
    if _count(answer) != len(x):
        return Feedback(False, f"Not quite. Give one 0 or 1 for each of the {len(x)} inputs {tuple(x)}.")
    qmin, qmax = qrange(bits, signed=True)
    v = torch.tensor(x) / scale
    unrounded = ((v >= qmin) & (v <= qmax)).float()
    symmetric = ((torch.round(v) >= -qmax) & (torch.round(v) <= qmax)).float()
    expected = ste_mask(x, scale, bits)
    return grade(
        answer, expected,
        f"The mask is 1 where the ROUNDED code round(x/s) lies in [{qmin}, {qmax}]: {expected.int().tolist()}.",
        [(unrounded, "Either you compared x/s before rounding, or you rounded -4.5 away from zero; the kernel checks the "
                     "code rounded half to even: -4.5 rounds to -4, inside."),
         (symmetric, f"A signed {bits}-bit grid has one more negative code: it runs from {qmin} to {qmax}."),
         (1 - expected, "Your mask is inverted: the gradient passes INSIDE the range and is 0 where x is clipped.")],
        "Compute round(x / s) for each x and check whether it lies in [qmin, qmax].",
    )


def grade_lsq_scale_gradient(answer: Sequence[float] | None, x: Sequence[float], scale: float, bits: int,
                             n: int) -> Feedback:
    """Exercise: LSQ's scaled step-size gradient g * dQ/ds for each x, on the signed grid with step
    ``scale``, with g = 1 / sqrt(n * Qp) (``n`` values share the step, Qp = qmax).

    Hints, in this order: signs all flipped; the sign inside the range only (x/s - round(x/s));
    Qp = |qmin| in g; the sign of the clipped branch (-qmax above / -qmin below); g forgotten; round half up instead of half to even at the tie; the STE's zero;
    round(x/s) alone. Each slip's answer is computed from the same formula with that one change.
    Tolerance: ``LSQ_ABS_TOL`` per value (3 decimals by hand pass); an answer within
    ``LSQ_DIGITS_TOL`` that matches no slip is told to keep more decimals, not that its method is wrong.
    """
    if answer is None:
        return Feedback(False, NOT_ANSWERED)
    if (not_numbers := number_expected(answer)) is not None:
        return not_numbers
    if _count(answer) != len(x):
        return Feedback(False, f"Not quite. Give one gradient for each of the inputs {tuple(x)}.")
    qmin, qmax = qrange(bits, signed=True)
    g = lsq_grad_factor(n, qmax)
    expected = lsq_scale_gradients(x, scale, bits, g)
    v = torch.tensor(x, dtype=torch.float64) / scale
    clipped = (torch.round(v) < qmin) | (torch.round(v) > qmax)
    half_up = torch.floor(v + 0.5)
    half_up_grads = torch.where(clipped, expected.double() / g, half_up - v) * g
    fallback = ("Q(x) = s * clamp(round(x/s), qmin, qmax): differentiate in s, treating round() as the identity "
                "inside, then multiply by g.")
    feedback = grade(
        answer, expected,
        f"g = 1/sqrt({n} * {qmax}) = {g:.4f}; inside the range dQ/ds = round(x/s) - x/s (the sawtooth, round half to "
        f"even: 2.5 -> 2), above it qmax = {qmax}, below it qmin = {qmin}; times g: {[round(float(e), 4) for e in expected]}.",
        [(-expected, "Your signs are flipped: inside it is round(x/s) - x/s, +qmax above the range and qmin (negative) below."),
         (torch.where(clipped, expected, -expected), "Check the sign inside the range: Q = s * round(x/s) there, so "
                                                      "dQ/ds = round(x/s) - x/s, not x/s - round(x/s)."),
         (expected * lsq_grad_factor(n, -qmin) / g, f"Q_p in g = 1/sqrt(N * Q_p) is the positive end qmax = {qmax}, "
                                                    f"not |qmin| = {-qmin}."),
         (torch.where(clipped, -expected, expected), f"Check the clipped values: above the range Q = s * qmax, so dQ/ds = "
                                                      f"+qmax = {qmax}; below it dQ/ds = qmin = {qmin}."),
         (expected / g, f"You left out LSQ's gradient scale g = 1/sqrt(N * Qp) = 1/sqrt({n} * {qmax}): multiply every "
                        "gradient by it."),
         (half_up_grads, "At the tie x/s = 2.5 the quantizer rounds half to EVEN (2.5 -> 2, like torch and Python's "
                         "round()), not half up."),
         (half_up_grads / g, "Two slips: multiply by g = 1/sqrt(N * Qp), and round the tie 2.5 half to even (-> 2)."),
         (torch.zeros(len(x)), "That is the STE's view (no gradient for s); LSQ differentiates Q = s * round(x/s) in s."),
         (torch.round(v) * g, "You gave round(x/s) alone; the product rule also brings -x/s (d round / ds = 0 under the STE).")],
        fallback, abs_tol=LSQ_ABS_TOL,
    )
    if feedback.message == f"Not quite. {fallback}" and close(answer, expected, 0.0, LSQ_DIGITS_TOL):
        return Feedback(False, f"Not quite, but every value is within {LSQ_DIGITS_TOL}: the method is right, the rounding "
                               "too coarse. Keep at least three decimals (or let Python compute the values).")
    return feedback


def _count(answer: Any) -> int:
    """How many numbers ``answer`` holds (a number, a sequence, an array or a tensor)."""
    return torch.as_tensor(answer, dtype=torch.float64).numel()


def qat_gains(results: Path = RESULTS_FILE, setting: str = "W4A4") -> dict[str, float]:
    """Points LSQ gains over the best PTQ per model at ``setting``, from the benchmark results."""
    r = benchmark_results(results)
    return {name: 100 * (r["qat"][f"{name}/{setting}/lsq"]["accuracy"] - r["ptq"][f"{name}/{setting}"]["accuracy"])
            for name in r["fp32"] if f"{name}/{setting}/lsq" in r["qat"]}


def grade_biggest_gain_prediction(answer: str | None, setting: str, results: Path) -> Feedback:
    """Prediction: which model gains the most points from LSQ over the best PTQ at ``setting``?

    The expected model is read from the benchmark results (``qat_gains``), never typed in."""
    gains = qat_gains(results, setting)
    best = max(gains, key=gains.get)
    table = ", ".join(f"{k} {v:+.2f}" for k, v in gains.items())
    hint = (f"Gains in points at {setting}: {table}. QAT can only win back what PTQ lost: look at how far each "
            "model's best PTQ falls below FP32.")
    return grade_choice(answer, best, sorted(gains), f"Gains in points at {setting}: {table}: the model PTQ hurt most "
                        "has the most to win back.", {m: hint for m in gains if m != best})


def check_ste_mask(answer: Sequence[float]) -> None:
    """Print the feedback for the STE mask of ``MASK_X`` (step ``MASK_SCALE``, ``MASK_BITS`` bits)."""
    show(grade_ste_mask(answer, MASK_X, MASK_SCALE, MASK_BITS))


def check_lsq_scale_gradient(answer: Sequence[float]) -> None:
    """Print the feedback for LSQ's g * dQ/ds at ``LSQ_X`` (step ``LSQ_SCALE``, ``LSQ_BITS`` bits, ``LSQ_N`` values)."""
    show(grade_lsq_scale_gradient(answer, LSQ_X, LSQ_SCALE, LSQ_BITS, LSQ_N))


def check_biggest_gain_prediction(answer: str | None) -> None:
    """Print the feedback for the predicted model LSQ helps most at ``GAIN_SETTING`` (shipped results file)."""
    show(grade_biggest_gain_prediction(answer, GAIN_SETTING, RESULTS_FILE))
