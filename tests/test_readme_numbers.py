"""Every table row the README quotes equals the benchmark's results file (no hand-typed numbers)."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = json.loads((ROOT / "benchmarks" / "results" / "ptq_accuracy.json").read_text())
README = (ROOT / "README.md").read_text()


def _rows(first_cell: str) -> list[list[str]]:
    pattern = rf"^\| {re.escape(first_cell)} \|(.*)\|$"
    return [[c.strip() for c in m.group(1).split("|")] for m in re.finditer(pattern, README, re.M)]


def test_w8a8_rows_match_the_results_file():
    for name, r in RESULTS.items():
        (row,) = _rows(name)
        assert row == [f"{r['fp32']:.2f}", f"{r['w8a8']:.2f}", f"{r['fp32'] - r['w8a8']:.2f}"]


def test_collapse_rows_match_the_results_file():
    r = RESULTS["depthwise"]
    for granularity in ("per_tensor", "per_channel"):
        (row,) = _rows(granularity)
        acc = r["weights"][granularity]["4"]
        assert row == [f"{acc:.2f}", f"{r['fp32'] - acc:.2f}"]


def test_results_file_meets_the_course_thresholds():
    for r in RESULTS.values():
        assert r["fp32"] - r["w8a8"] <= 0.5
    d = RESULTS["depthwise"]
    assert d["fp32"] - d["weights"]["per_tensor"]["4"] >= 20
    assert d["fp32"] - d["weights"]["per_channel"]["4"] <= 8


def test_checkpoint_table_matches_checkpoint_metadata():
    from qlab.models import MODEL_NAMES, checkpoint_info

    table = (ROOT / "data" / "checkpoints" / "README.md").read_text()
    for name in MODEL_NAMES:
        assert f"| `{name}` | {100 * checkpoint_info(name)['test_accuracy']:.2f}% |" in table
