"""Integer-only inference on the shipped models: accuracy, agreement with real engines, overflow, size.

Usage (from the repository root)::

    .venv/bin/python benchmarks/integer_accuracy.py

Writes ``benchmarks/results/integer_accuracy.md`` and ``integer_accuracy.json`` with, per model
(W8A8: per-channel symmetric weights, min/max-calibrated uint8 activations):

1. test accuracy (10,000 images) of FP32, qlab's fake-quant model, qlab's integer model
   (``qlab.integer.convert``), torch int8 (x86 engine) and onnxruntime (QDQ export);
2. per layer, output codes on the 512 calibration images: integer vs fake-quant (exact share,
   largest difference in LSB) and, each layer fed the same input codes, integer vs torch and
   onnxruntime (share within 1 LSB);
3. accuracy of the integer model when the multiplier M0 keeps fewer bits;
4. int16 accumulator overflows per layer (16 calibration images): full sums and x86's
   saturating pair sums, with 8-bit and 7-bit (reduce_range) activations;
5. weight file sizes: float32, int8, int4 per group of 32 with float16 scales.

Exits with status 1 if the integer model is more than 0.1 point from the fake-quant model or
from either engine, or if an engine's per-layer agreement is below 99.9% within 1 LSB.
Deterministic: one torch thread, one onnxruntime thread.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from qlab import export, integer, packing
from qlab.data import calibration_subset, load_fashion_mnist
from qlab.evaluation import evaluate, predict_logits
from qlab.models import MODEL_NAMES, load_pretrained
from qlab.ptq import quantize_model
from qlab.session import calibration_data

RESULTS = Path(__file__).resolve().parent / "results"
MULTIPLIER_BITS = (4, 6, 8, 12, 16, 32)
OVERFLOW_IMAGES = 16
MAX_GAP = 0.1  # points


def pct(acc: float) -> float:
    """Accuracy in percent, rounded to 2 decimals (one test image = 0.01 points)."""
    return round(100 * acc, 2)


def ort_accuracy(im: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    session = export.ort_session(export.to_onnx(im))
    logits = torch.cat([torch.from_numpy(session.run(None, {"images": b.numpy()})[0]) for b in images.split(1000)])
    return float((logits.argmax(1) == labels).float().mean())


def overflow_rows(im: torch.nn.Module, calib: torch.Tensor) -> list[dict]:
    inputs = integer.layer_inputs(im, calib[:OVERFLOW_IMAGES])
    rows = []
    for name, layer in integer.integer_layers(im):
        row = {"layer": name, "fan_in": layer.weight[0].numel()}
        for act_bits in (8, 7):
            for terms, label in ((None, "sum"), (2, "pair")):
                bad, total = integer.count_overflows(layer, inputs[name], 16, act_bits, terms)
                row[f"{label}_a{act_bits}"] = round(100 * bad / total, 3)
        rows.append(row)
    return rows


def measure(name: str) -> dict:
    model = load_pretrained(name)
    images, labels = load_fashion_mnist("test")
    calib = calibration_subset()
    q = quantize_model(model, 8, 8, calib_data=calibration_data(), act_mode="static")
    im = integer.convert(q)
    calib_logits = predict_logits(im, calib)
    tm = export.to_torch_int8(im, (float(calib_logits.min()), float(calib_logits.max())))
    fp, packed4 = packing.packed_model_bytes(model, 4, group_size=32)
    _, packed8 = packing.packed_model_bytes(model, 8, scale_bits=32)
    return {
        "accuracy": {
            "fp32": pct(evaluate(model)),
            "fake_quant": pct(evaluate(q)),
            "integer": pct(evaluate(im)),
            "torch_int8": pct(evaluate(tm)),
            "onnxruntime_int8": pct(ort_accuracy(im, images, labels)),
        },
        "fake_quant_agreement": [
            {"layer": r.name, "exact": round(r.exact_share, 6), "max_lsb": r.max_lsb} for r in integer.layer_agreement(q, im, calib)
        ],
        "engine_agreement": export.engine_agreement(im, calib),
        "multiplier_bits": {b: pct(evaluate(integer.convert(q, multiplier_bits=b))) for b in MULTIPLIER_BITS},
        "overflow_int16": overflow_rows(im, calib),
        "bytes": {"float32": fp, "int8_per_channel": packed8, "int4_g32_fp16": packed4},
    }


def failures(results: dict) -> list[str]:
    out = []
    for name, r in results.items():
        a = r["accuracy"]
        for k in ("fake_quant", "torch_int8", "onnxruntime_int8"):
            if abs(a[k] - a["integer"]) > MAX_GAP + 1e-9:
                out.append(f"{name}: {k} {a[k]} vs integer {a['integer']}")
        for row in r["engine_agreement"]:
            for k in ("torch int8", "onnxruntime"):
                if row[f"{k} within 1"] < 0.999:
                    out.append(f"{name}/{row['layer']}: {k} within 1 LSB {row[f'{k} within 1']}")
    return out


def markdown(results: dict) -> str:
    lines = [
        "# Integer-only inference (Fashion-MNIST test set, 10,000 images)",
        "",
        "Written by `benchmarks/integer_accuracy.py`; do not edit by hand. W8A8: per-channel symmetric int8 weights,",
        "min/max-calibrated uint8 activations, int32 bias and accumulators, fixed-point requantization.",
        "",
        "## Accuracy (%)",
        "",
        "| model | FP32 | fake-quant | qlab integer | torch int8 | onnxruntime int8 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        a = r["accuracy"]
        lines.append(f"| {name} | {a['fp32']:.2f} | {a['fake_quant']:.2f} | {a['integer']:.2f} | {a['torch_int8']:.2f} | {a['onnxruntime_int8']:.2f} |")
    lines += ["", "## Output codes per layer (512 calibration images)", "",
              "Fake-quant: the float layer on the same input codes, rescaled in float. Engines: each layer alone, fed the same input codes.", "",
              "| model | layer | = fake-quant | max LSB | torch = | torch ±1 | onnxruntime = | onnxruntime ±1 |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        for fq, e in zip(r["fake_quant_agreement"], r["engine_agreement"]):
            lines.append(f"| {name} | {fq['layer']} | {100 * fq['exact']:.2f}% | {fq['max_lsb']} | {100 * e['torch int8 exact']:.2f}% | "
                         f"{100 * e['torch int8 within 1']:.2f}% | {100 * e['onnxruntime exact']:.2f}% | {100 * e['onnxruntime within 1']:.2f}% |")
    bits = list(next(iter(results.values()))["multiplier_bits"])
    lines += ["", "## Accuracy (%) vs bits of the multiplier M0", "", "| model | " + " | ".join(f"{b} bits" for b in bits) + " |",
              "|---|" + "---:|" * len(bits)]
    for name, r in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{r['multiplier_bits'][b]:.2f}" for b in bits) + " |")
    lines += ["", f"## int16 accumulator overflows (% of sums, {OVERFLOW_IMAGES} calibration images)", "",
              "sum: the full dot product (a wrapping accumulator); pair: each sum of two products (x86 vpmaddubsw saturates these to int16). a8/a7: 8-bit or 7-bit activations.", "",
              "| model | layer | fan-in | sum a8 | sum a7 | pair a8 | pair a7 |", "|---|---|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        for o in r["overflow_int16"]:
            lines.append(f"| {name} | {o['layer']} | {o['fan_in']} | {o['sum_a8']:.3f} | {o['sum_a7']:.3f} | {o['pair_a8']:.3f} | {o['pair_a7']:.3f} |")
    lines += ["", "## Weight bytes (Conv2d/Linear weights and 32-bit biases)", "",
              "| model | float32 | int8 + fp32 scale per channel | int4 + fp16 scale per 32 |", "|---|---:|---:|---:|"]
    for name, r in results.items():
        b = r["bytes"]
        lines.append(f"| {name} | {b['float32']} | {b['int8_per_channel']} | {b['int4_g32_fp16']} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    torch.set_num_threads(1)
    results = {name: measure(name) for name in MODEL_NAMES}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "integer_accuracy.json").write_text(json.dumps(results, indent=1) + "\n")
    (RESULTS / "integer_accuracy.md").write_text(markdown(results))
    bad = failures(results)
    for line in bad:
        print("FAIL", line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
