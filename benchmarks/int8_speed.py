"""What int8 buys on this CPU: FP32 vs int8 in torch and onnxruntime, measured, not assumed.

Usage (from the repository root, with nothing else heavy running)::

    .venv/bin/python benchmarks/int8_speed.py

For each shipped model and engine -- torch FP32 (BN folded), torch int8 (torch.ao quantized
modules, x86 engine), onnxruntime FP32 and onnxruntime int8 (QDQ graph, fused to QLinearConv)
-- and for 1 and 2 threads: p50 latency of one image (after warm-up) and throughput at batch
256, plus the size of each model file. Writes ``benchmarks/results/int8_speed.md`` and
``int8_speed.json`` with the machine's CPU, its flags that matter for int8 (AVX2, AVX-512,
VNNI) and the load average before the run (the machine may be shared).
"""

from __future__ import annotations

import io
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import onnxruntime
import torch

from qlab import export, integer
from qlab.data import calibration_subset, load_fashion_mnist
from qlab.evaluation import predict_logits
from qlab.folding import fold_batchnorm
from qlab.models import MODEL_NAMES, load_pretrained
from qlab.ptq import quantize_model
from qlab.session import calibration_data

RESULTS = Path(__file__).resolve().parent / "results"
LATENCY_RUNS, LATENCY_WARMUP = 200, 20
BATCH, BATCH_RUNS, BATCH_WARMUP = 256, 20, 3
THREADS = (1, 2)
ENGINES = ("torch fp32", "torch int8", "onnxruntime fp32", "onnxruntime int8")


def cpu_info() -> dict:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    name = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), platform.processor())
    flags = set(next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), []))
    wanted = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni")
    return {"cpu": name, "cores": os.cpu_count(), "int8_flags": [f for f in wanted if f in flags],
            "torch": torch.__version__, "quantized_engine": torch.backends.quantized.engine}


def timed(fn, runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def runners(name: str) -> tuple[dict, dict]:
    """engine -> (threads -> callable(batch)), and engine -> model file bytes."""
    model = load_pretrained(name)
    folded = fold_batchnorm(model)
    im = integer.convert(quantize_model(model, 8, 8, calib_data=calibration_data()))
    logits = predict_logits(im, calibration_subset())
    tm = export.to_torch_int8(im, (float(logits.min()), float(logits.max())))
    onnx_fp32, onnx_int8 = export.float_onnx(folded), export.to_onnx(im)

    def torch_run(m):
        def run(x):
            with torch.inference_mode():
                m(x)
        return run

    def ort_run(proto, threads):
        session = export.ort_session(proto, threads)
        return lambda x: session.run(None, {"images": x.numpy()})

    def size_torch(m) -> int:
        buf = io.BytesIO()
        torch.save(m.state_dict(), buf)
        return buf.getbuffer().nbytes

    run = {
        "torch fp32": {t: torch_run(folded) for t in THREADS},
        "torch int8": {t: torch_run(tm) for t in THREADS},
        "onnxruntime fp32": {t: ort_run(onnx_fp32, t) for t in THREADS},
        "onnxruntime int8": {t: ort_run(onnx_int8, t) for t in THREADS},
    }
    sizes = {"torch fp32": size_torch(folded), "torch int8": size_torch(tm),
             "onnxruntime fp32": len(onnx_fp32.SerializeToString()), "onnxruntime int8": len(onnx_int8.SerializeToString())}
    return run, sizes


def measure(name: str, images: torch.Tensor) -> dict:
    run, sizes = runners(name)
    one, batch = images[:1], images[:BATCH]
    rows = {}
    for engine in ENGINES:
        for t in THREADS:
            torch.set_num_threads(t)
            fn = run[engine][t]
            lat = timed(lambda: fn(one), LATENCY_RUNS, LATENCY_WARMUP)
            thr = timed(lambda: fn(batch), BATCH_RUNS, BATCH_WARMUP)
            rows[f"{engine}|{t}"] = {"p50_ms": round(1000 * statistics.median(lat), 3),
                                     "images_per_s": round(BATCH / statistics.median(thr))}
    return {"runs": rows, "bytes": sizes}


def markdown(info: dict, results: dict) -> str:
    lines = [
        "# int8 vs FP32 speed on this machine",
        "",
        "Written by `benchmarks/int8_speed.py`; do not edit by hand. p50 of "
        f"{LATENCY_RUNS} single-image runs after {LATENCY_WARMUP} warm-up ones; throughput: median of {BATCH_RUNS} "
        f"batches of {BATCH} after {BATCH_WARMUP} warm-up ones.",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores, int8-relevant flags: {', '.join(info['int8_flags']) or 'none'}; "
        f"torch {info['torch']} ({info['quantized_engine']} engine), onnxruntime {info['onnxruntime']}.",
        f"Load average (1, 5, 15 min) before the run: {info['load_before']}, after: {info['load_after']}. "
        "A load above the 2 cores means the machine was shared with other work while measuring: "
        "absolute numbers are noisy and 2-thread runs suffer most (their threads wait for each other).",
        "",
        "| model | engine | threads | p50 batch 1 (ms) | batch 256 (images/s) | file (bytes) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        for key, v in r["runs"].items():
            engine, t = key.split("|")
            lines.append(f"| {name} | {engine} | {t} | {v['p50_ms']:.3f} | {v['images_per_s']} | {r['bytes'][engine]} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    info = cpu_info() | {"onnxruntime": onnxruntime.__version__, "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg())}
    images, _ = load_fashion_mnist("test")
    results = {name: measure(name, images) for name in MODEL_NAMES}
    info["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "int8_speed.json").write_text(json.dumps({"machine": info, "results": results}, indent=1) + "\n")
    (RESULTS / "int8_speed.md").write_text(markdown(info, results))
    print(markdown(info, results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
