"""The README's QAT excerpt quotes benchmarks/results/qat_accuracy.json exactly."""

from __future__ import annotations

import re
from pathlib import Path

from qlab.qat_train import benchmark_results

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
EXCERPT = {"cnn": ("W4A4", "W2A2"), "depthwise": ("W4A4", "W2A2", "W4 per-tensor"), "mlp": ("W4A4", "W2A2")}


def _pct(r: dict | None) -> str:
    return "—" if r is None else f"{100 * r['accuracy']:.2f}"


def test_readme_qat_rows_match_the_results_file():
    r = benchmark_results()
    for name, settings in EXCERPT.items():
        for setting in settings:
            (row,) = re.findall(rf"^\| {re.escape(name)} {re.escape(setting)} \|(.*)\|$", README, re.M)
            cells = [c.strip() for c in row.split("|")]
            expected = [f"{100 * r['fp32'][name]:.2f}", _pct(r["ptq"][f"{name}/{setting}"]),
                        f"{100 * r['start'][f'{name}/{setting}']:.2f}"]
            expected += [_pct(r["qat"].get(f"{name}/{setting}/{m}")) for m in ("ste", "lsq", "penalty")]
            assert cells == expected, (name, setting)


def test_readme_depthwise_w4a4_gap_matches_the_results_file():
    r = benchmark_results()
    best = max(r["qat"][f"depthwise/W4A4/{m}"]["accuracy"] for m in ("ste", "lsq", "penalty"))
    assert f"ends {100 * (r['fp32']['depthwise'] - best):.2f} points below FP32 (floor 2.0)" in " ".join(README.split())
