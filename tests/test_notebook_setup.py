"""qlab.notebook.setup: the thread count a lesson runs with, and its portability override."""

from __future__ import annotations

import pytest
import torch

from qlab.notebook import OTHER_THREADS_ENV, lesson_threads, setup


@pytest.mark.parametrize(("asked", "other"), [(1, 2), (2, 1)])
def test_other_threads_swaps_one_and_two(monkeypatch: pytest.MonkeyPatch, asked: int, other: int) -> None:
    monkeypatch.delenv(OTHER_THREADS_ENV, raising=False)
    assert lesson_threads(asked) == asked
    monkeypatch.setenv(OTHER_THREADS_ENV, "1")
    assert lesson_threads(asked) == other


def test_setup_applies_the_override(monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    monkeypatch.setenv(OTHER_THREADS_ENV, "1")
    try:
        setup(threads=1)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("threads", [0, 3, 1.5])
def test_thread_counts_other_than_one_or_two_are_rejected(threads: object) -> None:
    with pytest.raises(ValueError, match="threads must be 1 or 2"):
        lesson_threads(threads)  # type: ignore[arg-type]
