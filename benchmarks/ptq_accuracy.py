"""Accuracy of post-training quantization on the shipped models: the table the lessons quote.

Usage (from the repository root)::

    .venv/bin/python benchmarks/ptq_accuracy.py          # or: make benchmarks

Writes ``benchmarks/results/ptq_accuracy.md`` (human-readable) and
``benchmarks/results/ptq_accuracy.json`` (every number, for notebooks and tests), with:

1. W8A8 (per-channel symmetric weights, activations calibrated statically with min/max on
   ``qlab.session.calibration_data()``): FP32 vs quantized test accuracy for every model.
2. The per-tensor collapse: the depthwise net at 4-bit weights, per tensor vs per channel.
3. Weight-only PTQ: accuracy vs weight bits (2..8) x granularity (per tensor, per channel,
   per group with the smallest group size valid for every layer of the model) x model.
4. Activation PTQ: accuracy vs activation bits (4..8) x calibrator (8-bit per-channel
   weights), with the best and worst calibrator per model.

Exits with status 1 if a threshold of the course is missed (W8A8 drop <= 0.5 points for
every model; depthwise 4-bit: per tensor loses >= 20 points, per channel <= 8).
Deterministic: one torch thread, fixed calibration subset, no randomness.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from qlab.calibration import CALIBRATORS
from qlab.evaluation import evaluate
from qlab.models import MODEL_NAMES, load_pretrained
from qlab.metrics import accuracy_stderr
from qlab.ptq import quantize_model, valid_group_sizes
from qlab.ranking import TEST_IMAGES, verdict
from qlab.session import build_cache

RESULTS = Path(__file__).resolve().parent / "results"
WEIGHT_BITS = tuple(range(2, 9))
ACT_BITS = tuple(range(4, 9))
W8A8_MAX_DROP = 0.5
COLLAPSE = {"model": "depthwise", "bits": 4, "per_tensor_min_drop": 20.0, "per_channel_max_drop": 8.0}


def pct(acc: float) -> float:
    """Accuracy in percent, rounded to 2 decimals (one test image = 0.01 points)."""
    return round(100 * acc, 2)


def measure(name: str) -> dict:
    """Every number for one model."""
    model = load_pretrained(name)
    cache = build_cache(model)
    fp32 = pct(evaluate(model))

    def acc(**kw) -> float:
        return pct(evaluate(quantize_model(model, cache=cache, **kw)))

    granularities = (("per_tensor", None), ("per_channel", None), ("per_group", valid_group_sizes(model)[0]))
    weights = {
        g + (f"({gs})" if gs else ""): {b: acc(weight_bits=b, granularity=g, group_size=gs) for b in WEIGHT_BITS}
        for g, gs in granularities
    }
    acts = {c: {b: acc(weight_bits=8, act_bits=b, calibrator=c) for b in ACT_BITS} for c in CALIBRATORS}
    return {"fp32": fp32, "w8a8": acc(weight_bits=8, act_bits=8), "weights": weights, "activations": acts}


def calibrator_verdict(r: dict) -> str:
    """Best and worst calibrator by mean accuracy over the activation bit widths, with ties
    within the test set's noise (1 standard error at the FP32 accuracy) named as ties."""
    mean = {c: sum(v.values()) / len(v) / 100 for c, v in r["activations"].items()}
    return verdict(mean, accuracy_stderr(r["fp32"] / 100, TEST_IMAGES))


def check(results: dict) -> list[str]:
    """The course's thresholds; returns the ones that are missed."""
    missed = []
    for name, r in results.items():
        if r["fp32"] - r["w8a8"] > W8A8_MAX_DROP:
            missed.append(f"{name}: W8A8 drop {r['fp32'] - r['w8a8']:.2f} > {W8A8_MAX_DROP}")
    r = results[COLLAPSE["model"]]
    b = COLLAPSE["bits"]
    if r["fp32"] - r["weights"]["per_tensor"][b] < COLLAPSE["per_tensor_min_drop"]:
        missed.append(f"per-tensor {b}-bit drop below {COLLAPSE['per_tensor_min_drop']}")
    if r["fp32"] - r["weights"]["per_channel"][b] > COLLAPSE["per_channel_max_drop"]:
        missed.append(f"per-channel {b}-bit drop above {COLLAPSE['per_channel_max_drop']}")
    return missed


def sweep_table(results: dict, title: str, label: str, key: str, prefix: str, bits: tuple[int, ...]) -> list[str]:
    """Markdown lines of one sweep: a row per (model, setting), a column per bit width."""
    lines = ["", f"## {title}", "", f"| model | {label} | " + " | ".join(f"{prefix}{b}" for b in bits) + " |",
             "|---|---|" + "---:|" * len(bits)]
    for name, r in results.items():
        for setting, row in r[key].items():
            lines.append(f"| {name} | {setting} | " + " | ".join(f"{row[b]:.2f}" for b in bits) + " |")
    return lines


def markdown(results: dict) -> str:
    lines = ["# Post-training quantization accuracy (Fashion-MNIST test set, 10,000 images)", "",
             "Written by `benchmarks/ptq_accuracy.py`; do not edit by hand. Accuracy in %.", "",
             "## W8A8 (per-channel symmetric weights, min/max-calibrated activations)", "",
             "| model | FP32 | W8A8 | drop (points) |", "|---|---:|---:|---:|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['fp32']:.2f} | {r['w8a8']:.2f} | {r['fp32'] - r['w8a8']:.2f} |")
    r, b = results[COLLAPSE["model"]], COLLAPSE["bits"]
    lines += ["", f"## The per-tensor collapse ({COLLAPSE['model']} net, {b}-bit weights, float activations)", "",
              "| granularity | accuracy | drop (points) |", "|---|---:|---:|"]
    for g in ("per_tensor", "per_channel"):
        lines.append(f"| {g} | {r['weights'][g][b]:.2f} | {r['fp32'] - r['weights'][g][b]:.2f} |")
    lines += sweep_table(results, "Weight-only PTQ: accuracy vs weight bits", "granularity", "weights", "W", WEIGHT_BITS)
    lines += sweep_table(results, "Activation PTQ: accuracy vs activation bits and calibrator (W8 per channel)",
                         "calibrator", "activations", "A", ACT_BITS)
    lines += ["", "Best and worst calibrator (mean accuracy over A4..A8; closer than the test set's noise is a tie):", ""]
    for name, r in results.items():
        lines.append(f"- {name}: {r['calibrator_verdict']}")
    return "\n".join(lines) + "\n"


def main() -> int:
    torch.set_num_threads(1)
    results = {name: measure(name) for name in MODEL_NAMES}
    for r in results.values():
        r["calibrator_verdict"] = calibrator_verdict(r)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ptq_accuracy.json").write_text(json.dumps(results, indent=1) + "\n")
    (RESULTS / "ptq_accuracy.md").write_text(markdown(results))
    print(markdown(results))
    missed = check(results)
    for m in missed:
        print("MISSED:", m, file=sys.stderr)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
