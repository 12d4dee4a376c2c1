"""Ranking test accuracies without reading the test set's noise as a difference.

An accuracy p measured on n test images has a standard error of sqrt(p (1 - p) / n)
(``qlab.metrics.accuracy_stderr``): about 0.3 points for p = 0.9 on the 10,000
Fashion-MNIST test images. Two configurations whose accuracies differ by no more than
that ``noise`` are a tie: neither is "better". These helpers name a best or worst only
when it stands out from the others by more than ``noise``, and list the ties otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping

TEST_IMAGES = 10_000
"""Images in the Fashion-MNIST test split, on which every lesson's accuracy is measured."""


def _check_noise(noise: float) -> float:
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not noise >= 0:
        raise ValueError(f"noise must be a non-negative number (an accuracy difference), got {noise!r}")
    return float(noise)


def within_noise(a: float, b: float, noise: float) -> bool:
    """True when |a - b| <= ``noise``: the two accuracies cannot be told apart."""
    return abs(a - b) <= _check_noise(noise)


def leaders(scores: Mapping[str, float], noise: float, highest: bool = True) -> list[str]:
    """Names whose score is within ``noise`` of the highest (or, ``highest=False``, the lowest) one,
    from the extreme inwards (ties in score keep the order of ``scores``)."""
    if not scores:
        raise ValueError("scores must hold at least one (name, accuracy) pair")
    sign = 1.0 if highest else -1.0
    ranked = sorted(scores, key=lambda name: -sign * scores[name])
    return [name for name in ranked if within_noise(scores[name], scores[ranked[0]], noise)]


def verdict(scores: Mapping[str, float], noise: float) -> str:
    """One line naming the best and the worst of ``scores``, or the ties when the gap is noise.

    e.g. ``"best: percentile; worst: entropy"``, ``"best: mse, minmax (tied within ±0.30 points); worst: entropy"``
    or ``"no winner: all within ±0.30 points of the best"``.
    """
    top, bottom = leaders(scores, noise), leaders(scores, noise, highest=False)
    band = f"±{100 * noise:.2f} points"
    if len(top) == len(scores):
        return f"no winner: all within {band} of the best"

    def names(group: list[str]) -> str:
        return group[0] if len(group) == 1 else f"{', '.join(group)} (tied within {band})"

    return f"best: {names(top)}; worst: {names(bottom)}"
