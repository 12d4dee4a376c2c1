"""The README quotes benchmarks/results/ptq_accuracy.md verbatim, and that file agrees with the
JSON the same benchmark run wrote (no hand-typed numbers, no file checked against itself)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
README = (ROOT / "README.md").read_text()
MARKDOWN = (RESULTS / "ptq_accuracy.md").read_text()
JSON = json.loads((RESULTS / "ptq_accuracy.json").read_text())


def tables(text: str) -> list[list[list[str]]]:
    """Every Markdown table of ``text``: its rows (header first, the |---| line dropped) as cell lists."""
    found, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|") and line.endswith("|"):
            cells = [c.strip() for c in line[1:-1].split("|")]
            if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                current.append(cells)
        elif current:
            found.append(current)
            current = []
    return found


def table_with_header(text: str, header: list[str]) -> list[list[str]]:
    (table,) = [t for t in tables(text) if t[0] == header]
    return table[1:]


def results_tables() -> dict[str, list[list[str]]]:
    return {
        "w8a8": table_with_header(MARKDOWN, ["model", "FP32", "W8A8", "drop (points)"]),
        "collapse": table_with_header(MARKDOWN, ["granularity", "accuracy", "drop (points)"]),
        "weights": table_with_header(MARKDOWN, ["model", "granularity", *(f"W{b}" for b in range(2, 9))]),
        "activations": table_with_header(MARKDOWN, ["model", "calibrator", *(f"A{b}" for b in range(4, 9))]),
    }


@pytest.mark.parametrize("header", [["model", "FP32", "W8A8", "drop (points)"], ["granularity", "accuracy", "drop (points)"]])
def test_readme_quotes_the_results_file(header: list[str]) -> None:
    quoted = table_with_header(README, header)
    assert quoted and quoted == table_with_header(MARKDOWN, header)


def test_results_markdown_matches_the_json() -> None:
    md = results_tables()
    assert md["w8a8"] == [[name, f"{r['fp32']:.2f}", f"{r['w8a8']:.2f}", f"{r['fp32'] - r['w8a8']:.2f}"] for name, r in JSON.items()]
    d = JSON["depthwise"]
    assert md["collapse"] == [[g, f"{d['weights'][g]['4']:.2f}", f"{d['fp32'] - d['weights'][g]['4']:.2f}"] for g in ("per_tensor", "per_channel")]
    for key, column in (("weights", range(2, 9)), ("activations", range(4, 9))):
        expected = [[name, config, *(f"{acc[str(b)]:.2f}" for b in column)] for name, r in JSON.items() for config, acc in r[key].items()]
        assert md[key] == expected, key


def test_results_meet_the_course_thresholds() -> None:
    """The claims the lessons make, read from the Markdown the README links to."""
    for model, fp32, w8a8, drop in results_tables()["w8a8"]:
        assert float(drop) <= 0.5, model
    per_tensor, per_channel = results_tables()["collapse"]
    assert float(per_tensor[2]) >= 20 and float(per_channel[2]) <= 8


def test_checkpoint_table_matches_checkpoint_metadata() -> None:
    from qlab.models import MODEL_NAMES, checkpoint_info

    table = (ROOT / "data" / "checkpoints" / "README.md").read_text()
    for name in MODEL_NAMES:
        assert f"| `{name}` | {100 * checkpoint_info(name)['test_accuracy']:.2f}% |" in table
