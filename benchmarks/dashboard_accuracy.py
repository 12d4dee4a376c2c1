"""Test accuracy of every setting of the whole-model dashboards and lessons (05 and 06), measured once.

Usage (from the repository root)::

    .venv/bin/python benchmarks/dashboard_accuracy.py            # both dashboards
    .venv/bin/python benchmarks/dashboard_accuracy.py --only 05  # DepthwiseNet weight-only settings
    .venv/bin/python benchmarks/dashboard_accuracy.py --only 06 --models mlp
    .venv/bin/python benchmarks/dashboard_accuracy.py --lessons  # the lessons' cells and checks (LESSONS)

A full test-set evaluation takes longer than a whole-model dashboard's latency budget, so
``qlab.session.PTQSession.run`` reads a setting's accuracy from
``benchmarks/results/dashboard_accuracy.json`` (written here) when the model's fingerprint
matches, and evaluates it otherwise; ``PTQSession.sensitivity`` likewise. Every accuracy is
``PTQSession.run(..., memoize=False)`` (or ``PTQSession.sensitivity``) with 2 torch threads,
exactly what the dashboard or lesson would compute live; tests/test_dashboards.py re-evaluates
sample settings and compares them bit for bit. Entries not measured in this run are kept.

For lesson 06's dashboard the table also stores each model's calibrated activation ranges
(``PTQCache.act_ranges``) for every calibrator and activation bit width the dashboard offers,
which ``PTQSession.cache`` preloads (same fingerprint check), so no first visit calibrates.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time

import torch

from qlab.calibration import CALIBRATORS
from qlab.dashboards import per_channel, whole_model_ptq
from qlab.exercises import lesson05, lesson06
from qlab.models import MODEL_NAMES
from qlab.ptq import model_fingerprint
from qlab.session import ACCURACY_TABLE, FP32_LABEL, PTQSession, config_label, range_label, ranges_to_json

DASHBOARDS = {"05": {per_channel.MODEL: per_channel.settings()}, "06": {name: whole_model_ptq.settings() for name in MODEL_NAMES}}

_W8A4 = {"weight_bits": lesson06.PREDICTION_WEIGHT_BITS, "act_bits": lesson06.PREDICTION_ACT_BITS}
LESSONS: dict[str, dict[str, dict[str, list[dict]]]] = {
    "05": {"run": {lesson05.MODEL: [  # section 2's table and the collapse prediction's check
        {"weight_bits": bits, **granularity} for bits in (8, 4, lesson05.PREDICTION_BITS)
        for granularity in ({"granularity": "per_tensor"}, {"granularity": "per_channel"},
                            {"granularity": "per_group", "group_size": 16})
    ]}},
    "06": {
        "run": {
            **{name: [{"weight_bits": 8, "act_bits": 8, "calibrator": "minmax"}] for name in MODEL_NAMES},  # section 1
            lesson06.PREDICTION_MODEL: [
                *({"weight_bits": 4, "act_bits": 8, "granularity": g} for g in ("per_tensor", "per_channel")),  # section 1
                *({**_W8A4, "calibrator": c} for c in CALIBRATORS), {**_W8A4, "act_mode": "dynamic"},  # calibrators
                *({"weight_bits": 8, "act_bits": 8, "granularity": g} for g in ("per_tensor", "per_channel")),  # exercise 2
            ],
            "mlp": [{"weight_bits": 3, "act_bits": None}],  # the dashboard check cell (its defaults: cnn W8A8 above)
        },
        "sensitivity": {lesson06.PREDICTION_MODEL: [{**_W8A4, "calibrator": c} for c in ("minmax", "entropy")]},
    },
}
"""The settings the lessons' cells and exercise checks pass to ``PTQSession.run`` and
``PTQSession.sensitivity``, by lesson, kind and model (defaults of ``quantize_model`` implied)."""


def measure(session: PTQSession, model: str, settings: list[dict], known: dict[str, float]) -> dict[str, float]:
    """Accuracy of each setting (``known`` ones are reused), plus the FP32 accuracy."""
    out = {FP32_LABEL: known.get(FP32_LABEL) or session.fp32_accuracy(model)}
    start = time.perf_counter()
    for i, config in enumerate(settings, 1):
        label = config_label(config)
        out[label] = known[label] if label in known else session.run(model, memoize=False, **config).accuracy
        if i % 20 == 0 or i == len(settings):
            print(f"{model}: {i}/{len(settings)} settings, {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    return out


def measure_act_ranges(session: PTQSession, model: str) -> dict[str, dict[str, list]]:
    """Lesson 06's dashboard's activation ranges of ``model`` by ``range_label``: every
    calibrator at every activation bit width it offers."""
    bits = [b for _, b in whole_model_ptq.ACT_BITS if b != whole_model_ptq.FLOAT]
    cache = session.cache(model)
    return {range_label(c, b): ranges_to_json(cache.act_ranges(c, b)) for c in CALIBRATORS for b in bits}


def measure_sensitivity(session: PTQSession, model: str, settings: list[dict], known: dict[str, dict]) -> dict[str, dict]:
    """``PTQSession.sensitivity`` of each setting by ``config_label`` (``known`` ones are reused)."""
    out = {}
    for config in settings:
        label = config_label(config)
        out[label] = known[label] if label in known else session.sensitivity(model, **config)
        print(f"{model}: sensitivity {label} done", file=sys.stderr, flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=sorted(DASHBOARDS), default=sorted(DASHBOARDS))
    parser.add_argument("--models", nargs="+", choices=list(MODEL_NAMES), default=list(MODEL_NAMES),
                        help="measure only these models (lesson 06 has 308 settings per model)")
    parser.add_argument("--lessons", action="store_true",
                        help="measure the settings of the lessons' cells and checks (LESSONS) instead of the dashboards'")
    args = parser.parse_args()
    torch.set_num_threads(2)  # the whole-model dashboards' threads (their lessons call setup(threads=2))
    session = PTQSession(table=None)  # evaluate everything
    table = json.loads(ACCURACY_TABLE.read_text()) if ACCURACY_TABLE.exists() else {"models": {}}
    for lesson in args.only:
        kinds = LESSONS[lesson] if args.lessons else {"run": DASHBOARDS[lesson]}
        for model in dict.fromkeys(m for settings in kinds.values() for m in settings):
            if model not in args.models:
                continue
            fingerprint = model_fingerprint(session.model(model))
            entry = table["models"].get(model, {})
            if entry.get("fingerprint") != fingerprint:
                entry = {}
            known, known_sensitivity = entry.get("accuracy", {}), entry.get("sensitivity", {})
            new_entry = {"fingerprint": fingerprint,  # keeps the other settings already measured
                         "accuracy": {**known, **measure(session, model, kinds.get("run", {}).get(model, []), known)}}
            sensitivity = {**known_sensitivity, **measure_sensitivity(
                session, model, kinds.get("sensitivity", {}).get(model, []), known_sensitivity)}
            if sensitivity:
                new_entry["sensitivity"] = sensitivity
            act_ranges = measure_act_ranges(session, model) if lesson == "06" and not args.lessons else entry.get("act_ranges")
            if act_ranges:
                new_entry["act_ranges"] = act_ranges
            table["models"][model] = new_entry
            table["generated"] = f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, torch {torch.__version__}"
            ACCURACY_TABLE.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")  # after each model
    return 0

if __name__ == "__main__":
    sys.exit(main())
