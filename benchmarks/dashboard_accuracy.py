"""Test accuracy of every setting of the whole-model dashboards (lessons 05 and 06), measured once.

Usage (from the repository root)::

    .venv/bin/python benchmarks/dashboard_accuracy.py            # both dashboards
    .venv/bin/python benchmarks/dashboard_accuracy.py --only 05  # DepthwiseNet weight-only settings
    .venv/bin/python benchmarks/dashboard_accuracy.py --only 06 --models mlp

A full test-set evaluation takes longer than a whole-model dashboard's latency budget, so
``qlab.session.PTQSession.run`` reads a setting's accuracy from
``benchmarks/results/dashboard_accuracy.json`` (written here) when the model's fingerprint
matches, and evaluates it otherwise. Every accuracy is ``PTQSession.run(..., memoize=False)``
with 2 torch threads, exactly what the dashboard would compute live; tests/test_dashboards.py
re-evaluates sample settings and compares them bit for bit. Entries of models not measured in
this run are kept.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time

import torch

from qlab.dashboards import per_channel, whole_model_ptq
from qlab.models import MODEL_NAMES
from qlab.ptq import model_fingerprint
from qlab.session import ACCURACY_TABLE, FP32_LABEL, PTQSession, config_label

DASHBOARDS = {"05": {per_channel.MODEL: per_channel.settings()}, "06": {name: whole_model_ptq.settings() for name in MODEL_NAMES}}


def measure(session: PTQSession, model: str, settings: list[dict], known: dict[str, float]) -> dict[str, float]:
    """Accuracy of each setting (``known`` ones are reused), plus the FP32 accuracy."""
    out = {FP32_LABEL: known.get(FP32_LABEL) or session.fp32_accuracy(model)}
    start = time.perf_counter()
    for i, config in enumerate(settings, 1):
        label = config_label(dict(PTQSession.result_key(model, config)[1]))
        out[label] = known[label] if label in known else session.run(model, memoize=False, **config).accuracy
        if i % 20 == 0 or i == len(settings):
            print(f"{model}: {i}/{len(settings)} settings, {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=sorted(DASHBOARDS), default=sorted(DASHBOARDS))
    parser.add_argument("--models", nargs="+", choices=list(MODEL_NAMES), default=list(MODEL_NAMES),
                        help="measure only these models (lesson 06 has 308 settings per model)")
    args = parser.parse_args()
    torch.set_num_threads(2)  # the whole-model dashboards' threads (their lessons call setup(threads=2))
    session = PTQSession(table=None)  # evaluate everything
    table = json.loads(ACCURACY_TABLE.read_text()) if ACCURACY_TABLE.exists() else {"models": {}}
    for lesson in args.only:
        for model, settings in DASHBOARDS[lesson].items():
            if model not in args.models:
                continue
            fingerprint = model_fingerprint(session.model(model))
            entry = table["models"].get(model, {})
            known = entry.get("accuracy", {}) if entry.get("fingerprint") == fingerprint else {}
            accuracy = {**known, **measure(session, model, settings, known)}  # keeps the other lesson's settings
            table["models"][model] = {"fingerprint": fingerprint, "accuracy": accuracy}
            table["generated"] = f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, torch {torch.__version__}"
            ACCURACY_TABLE.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")  # after each model
    return 0


if __name__ == "__main__":
    sys.exit(main())
