"""Accuracy rankings name a winner only beyond the noise (hand-computed cases)."""

from __future__ import annotations

import math

import pytest

from qlab.ranking import TEST_IMAGES, leaders, verdict, within_noise

NOISE = math.sqrt(0.9 * 0.1 / TEST_IMAGES)  # 1 s.e. at 90% on 10,000 images: 0.003


def test_noise_of_the_test_set() -> None:
    assert TEST_IMAGES == 10_000 and NOISE == pytest.approx(0.003)


def test_within_noise() -> None:
    assert within_noise(0.9011, 0.9017, NOISE)  # lesson 04's histogram, 90.11 vs 90.17 on two CPUs
    assert not within_noise(0.9108, 0.9040, NOISE)
    assert within_noise(0.5, 0.5, 0.0)


def test_leaders_from_the_extreme_inwards() -> None:
    scores = {"minmax": 0.9108, "moving_average": 0.9113, "percentile": 0.9149, "mse": 0.9040, "entropy": 0.8463}
    assert leaders(scores, NOISE) == ["percentile"]  # 0.41 points ahead of moving_average
    assert leaders(scores, 0.005) == ["percentile", "moving_average", "minmax"]
    assert leaders(scores, NOISE, highest=False) == ["entropy"]


def test_verdict_names_a_winner_only_beyond_the_noise() -> None:
    a6 = {"minmax": 0.9208, "moving_average": 0.9211, "percentile": 0.9204, "mse": 0.9198, "entropy": 0.8480, "histogram": 0.9217}
    assert verdict(a6, NOISE) == (
        "best: histogram, moving_average, minmax, percentile, mse (tied within ±0.30 points); worst: entropy"
    )
    assert verdict({"a": 0.9149, "b": 0.9040}, NOISE) == "best: a; worst: b"
    assert verdict({"a": 0.9011, "b": 0.9017, "c": 0.9000}, NOISE) == "no winner: all within ±0.30 points of the best"


@pytest.mark.parametrize("noise", [-0.1, float("nan"), "0.3", True])
def test_bad_noise(noise: object) -> None:
    with pytest.raises(ValueError, match="noise"):
        within_noise(0.9, 0.9, noise)  # type: ignore[arg-type]


def test_empty_scores() -> None:
    with pytest.raises(ValueError, match="scores"):
        leaders({}, NOISE)
