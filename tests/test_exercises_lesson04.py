"""Lesson 04 self-checks against errors computed with torch's own fake quantization."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qlab import sweeps
from qlab.calibration import calibrate
from qlab.exercises import lesson04 as ex
from qlab.lesson_tensors import tail_activations


def reference_error(x: torch.Tensor, t: float, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(squared error, clipped mask) of the unsigned affine grid on [0, t]: scale t / (2^b - 1), z = 0."""
    qmax = 2**bits - 1
    x_hat = torch.fake_quantize_per_tensor_affine(x, t / qmax, 0, 0, qmax)
    return (x_hat - x).double() ** 2, x > t


@pytest.fixture(scope="module")
def tail() -> torch.Tensor:
    return torch.relu(torch.randn(20_000, generator=torch.Generator().manual_seed(1))) ** 2


def test_error_split_correct_and_hints(tail: torch.Tensor) -> None:
    t = 2.0
    err2, clipped = reference_error(tail, t, 4)
    n = tail.numel()
    my_clip, my_round = float(err2[clipped].sum()) / n, float(err2[~clipped].sum()) / n
    fb = ex.grade_error_split(my_clip, my_round, tail, t, 4, signed=False)
    assert fb.correct and f"{100 * float(clipped.double().mean()):.3f}% of the values are clipped" in fb.message
    cases = [
        (float(err2[clipped].mean()), my_round, "clipped values only"),
        (my_clip, float(err2[~clipped].mean()), "inside the range only"),
        (my_round, my_clip, "swapped the parts"),
        (my_clip + my_round, my_round, "That is the total MSE"),
        (my_clip, 1.0, "values inside [lo, hi]"),
    ]
    for c, r, hint in cases:
        fb = ex.grade_error_split(c, r, tail, t, 4, signed=False)
        assert not fb.correct and hint in fb.message, (hint, fb.message)


def test_error_split_check_uses_the_lesson_tensor(capsys: pytest.CaptureFixture[str]) -> None:
    x = tail_activations()
    t = torch.quantile(x.abs().double(), ex.SPLIT_PERCENTILE / 100).item()
    err2, clipped = reference_error(x, t, ex.BITS)
    ex.check_error_split(float(err2[clipped].sum()) / x.numel(), float(err2[~clipped].sum()) / x.numel())
    assert capsys.readouterr().out.startswith("Correct!")


def test_best_threshold_correct_and_hints(tail: torch.Tensor) -> None:
    amax = float(tail.max())
    thresholds = np.linspace(0.02, 1.0, 50) * amax
    totals = [float(reference_error(tail, t, 4)[0].mean()) for t in thresholds]
    best = int(np.argmin(totals))
    assert 0 < best < len(thresholds) - 4
    assert ex.grade_best_threshold(thresholds[best], tail, thresholds, 4, signed=False).correct
    cases = [(amax, "min/max range"), (thresholds[0], "only the rounding"), (thresholds[best + 3], "smallest")]
    for value, hint in cases:
        fb = ex.grade_best_threshold(value, tail, thresholds, 4, signed=False)
        assert not fb.correct and hint in fb.message


def test_best_threshold_check_uses_the_lesson_candidates(capsys: pytest.CaptureFixture[str]) -> None:
    x = tail_activations()
    candidates = np.arange(1, 21) / 20 * float(x.max())
    np.testing.assert_array_equal(ex.CANDIDATE_FRACTIONS * float(x.max()), candidates)
    totals = [float(reference_error(x, t, ex.BITS)[0].mean()) for t in candidates]
    ex.check_best_threshold(candidates[int(np.argmin(totals))])
    assert capsys.readouterr().out.startswith("Correct!")


def test_error_split_inside_only_average_is_caught_on_the_lesson_tensor() -> None:
    """On the lesson's tensor only ~0.1% of the values are clipped: averaging the rounding part
    over the inside values changes it by ~1e-3 relative, which must not pass as correct."""
    x = tail_activations()
    t = sweeps.percentile_of_abs(x, ex.SPLIT_PERCENTILE)
    err2, clipped = reference_error(x, t, ex.BITS)
    n = x.numel()
    my_clip, my_round = float(err2[clipped].sum()) / n, float(err2[~clipped].sum()) / n
    assert ex.grade_error_split(my_clip, my_round, x, t, ex.BITS, signed=False).correct
    fb = ex.grade_error_split(my_clip, float(err2[~clipped].mean()), x, t, ex.BITS, signed=False)
    assert not fb.correct and "inside the range only" in fb.message


def test_error_split_check_catches_swapped_parts(capsys: pytest.CaptureFixture[str]) -> None:
    x = tail_activations()
    split = sweeps.clip_rounding_error(x, sweeps.percentile_of_abs(x, ex.SPLIT_PERCENTILE), ex.BITS, signed=False)
    ex.check_error_split(split.rounding, split.clipping)
    assert "swapped the parts" in capsys.readouterr().out


def test_checks_take_only_the_answers() -> None:
    """The exercise's parameters (bits, percentile, candidates) are the module's, never the caller's."""
    with pytest.raises(TypeError):
        ex.check_best_threshold(3.5, 8)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        ex.check_error_split(1e-4, 2e-3, 4.545)  # type: ignore[call-arg]


@pytest.mark.parametrize("call", [lambda: ex.check_error_split(None, None), lambda: ex.check_best_threshold(None),
                                  lambda: ex.check_calibrator_prediction(None)])
def test_blank_answers_are_not_answered_yet(call, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    call()
    assert capsys.readouterr().out.startswith("Not answered yet")


def test_error_split_half_answered_is_not_correct(capsys: pytest.CaptureFixture[str]) -> None:
    x = tail_activations()
    split = sweeps.clip_rounding_error(x, sweeps.percentile_of_abs(x, ex.SPLIT_PERCENTILE), ex.BITS, signed=False)
    ex.check_error_split(split.clipping, None)
    assert capsys.readouterr().out.startswith("Not answered yet")


def test_calibrator_prediction_follows_the_errors() -> None:
    minmax_wins = {"minmax": 2.6e-5, "percentile": 1.6e-4}
    assert ex.grade_calibrator_prediction("minmax", minmax_wins, 8).correct
    wrong = ex.grade_calibrator_prediction("percentile", minmax_wins, 8)
    assert not wrong.correct and "sweet spot" in wrong.message
    percentile_wins = {"minmax": 7.5e-3, "percentile": 2.6e-3}
    assert ex.grade_calibrator_prediction(" Percentile", percentile_wins, 4).correct
    assert not ex.grade_calibrator_prediction("minmax", percentile_wins, 4).correct
    assert "Not one of the options" in ex.grade_calibrator_prediction("mse", minmax_wins, 8).message


def test_calibrator_prediction_check_measures_the_lesson_tensor(capsys: pytest.CaptureFixture[str]) -> None:
    """Expected answer from torch's fake quantization on the two ranges (unsigned affine on [0, t])."""
    x = tail_activations()
    t_percentile = float(calibrate(x, "percentile", bits=ex.PREDICTION_BITS, signed=False)[1])
    mse = {name: float(reference_error(x, t, ex.PREDICTION_BITS)[0].mean())
           for name, t in (("minmax", float(x.max())), ("percentile", t_percentile))}
    ex.check_calibrator_prediction(min(mse, key=mse.__getitem__))
    assert capsys.readouterr().out.startswith("Correct!")


def test_error_split_symmetric_grid_slip(tail: torch.Tensor) -> None:
    """QuantSpec(bits, signed=False) is symmetric by default: codes 0..15 with zero-point 8 and step t/7.
    Its rounding part gets its own hint, not the generic "sum over the values inside" one."""
    t = 2.0
    err2, clipped = reference_error(tail, t, 4)
    x_hat = torch.fake_quantize_per_tensor_affine(tail, t / 7, 8, 0, 15)
    sym2 = (x_hat - tail).double() ** 2
    n = tail.numel()
    fb = ex.grade_error_split(float(err2[clipped].sum()) / n, float(sym2[~clipped].sum()) / n, tail, t, 4, signed=False)
    assert not fb.correct and "symmetric=False" in fb.message and "step t/15" in fb.message


def test_error_split_answer_is_not_printed_earlier() -> None:
    """Section 2 of the lesson prints the split at the 99.99th percentile; copying it must not pass."""
    x = tail_activations()
    assert ex.SPLIT_PERCENTILE != 99.99
    printed = sweeps.clip_rounding_error(x, sweeps.percentile_of_abs(x, 99.99), ex.BITS, signed=False)
    t = sweeps.percentile_of_abs(x, ex.SPLIT_PERCENTILE)
    assert not ex.grade_error_split(printed.clipping, printed.rounding, x, t, ex.BITS, signed=False).correct


@pytest.mark.parametrize(("answers", "text"), [(("1e-3", 2e-3), "'1e-3'"), ((1e-3, "2e-3"), "'2e-3'"), ((1e-3, {}), "dict")])
def test_error_split_text_answers_ask_for_a_number(tail: torch.Tensor, answers: tuple[object, object], text: str) -> None:
    fb = ex.grade_error_split(*answers, tail, 2.0, 4, signed=False)  # type: ignore[arg-type]
    assert not fb.correct and fb.message.startswith("Give a number") and text in fb.message


def test_best_threshold_slips_of_the_lesson_setup() -> None:
    """Candidates k/20 * max x: k itself, the fraction k/20, a t off the candidates (section 2's finer
    sweet spot) and text each get their hint; the chosen t read to three significant figures passes."""
    x = tail_activations()
    amax = float(x.max())
    candidates = ex.CANDIDATE_FRACTIONS * amax
    totals = [float(reference_error(x, t, ex.BITS)[0].mean()) for t in candidates]
    k = int(np.argmin(totals)) + 1
    best = candidates[k - 1]
    grade = lambda answer: ex.grade_best_threshold(answer, x, candidates, ex.BITS, signed=False)  # noqa: E731
    assert grade(best).correct and grade(float(f"{best:.3g}")).correct
    finer = np.arange(2, 51) / 50 * amax  # the sweep of section 2
    fine_best = finer[int(np.argmin([float(reference_error(x, t, ex.BITS)[0].mean()) for t in finer]))]
    assert not any(np.isclose(fine_best, candidates, rtol=ex.BEST_REL_TOL))
    cases = [(k, "That is k"), (k / 20, "t / max|x|"), (fine_best, "not one of the candidates"),
             (candidates[k + 2], "smallest"), (str(best), "Give a number")]
    for value, hint in cases:
        fb = grade(value)
        assert not fb.correct and hint in fb.message, (value, fb.message)


def test_best_threshold_tolerance_separates_neighbours() -> None:
    """0.5% is well below the 5% gap between neighbouring candidates, even at the largest k."""
    assert ex.BEST_REL_TOL < (ex.CANDIDATE_FRACTIONS[-1] - ex.CANDIDATE_FRACTIONS[-2]) / ex.CANDIDATE_FRACTIONS[-1] / 5
