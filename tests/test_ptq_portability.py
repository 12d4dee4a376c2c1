"""Quantized logits are bit-identical across torch's CPU kernels and thread counts (issue §1).

Each configuration runs in a fresh interpreter, because ``ATEN_CPU_CAPABILITY`` and
``ONEDNN_MAX_CPU_ISA`` are read once when torch loads.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRIPT = """
import hashlib, sys, torch
torch.set_num_threads(int(sys.argv[1]))
from qlab.data import load_fashion_mnist
from qlab.evaluation import predict_logits
from qlab.models import load_pretrained
from qlab.ptq import quantize_model
from qlab.session import build_cache
model = load_pretrained("depthwise")
cache = build_cache(model)
images, _ = load_fashion_mnist("test")
configs = ({"act_bits": 4}, {"act_bits": 4, "act_mode": "dynamic"}, {"act_bits": 8, "weight_bits": 4},
           {"act_bits": 8, "weight_bits": 4, "granularity": "per_tensor"})
for config in configs:
    logits = predict_logits(quantize_model(model, cache=cache, **config), images)
    print(hashlib.sha256(logits.numpy().tobytes()).hexdigest())
print(hashlib.sha256(b"".join(x.numpy().tobytes() for x in cache.layer_inputs.values())).hexdigest())
"""
GENERIC = {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41"}


def _hashes(threads: int, generic: bool) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k not in GENERIC}
    env.update(GENERIC if generic else {})
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(threads)], env=env, capture_output=True, text=True,
                         check=True)
    return out.stdout.split()


@pytest.mark.slow
def test_depthwise_logits_are_identical_on_generic_kernels_and_any_thread_count():
    """W8A4 static and dynamic, W4A8 per channel and per tensor; the calibration inputs too.

    Before computing on integer codes, W4A8's logits differed between the default and the
    generic kernels at 2 threads (and one test image flipped in lesson 06)."""
    reference = _hashes(1, generic=False)
    assert len(reference) == 5
    for threads, generic in ((2, False), (1, True), (2, True)):
        assert _hashes(threads, generic) == reference, (threads, generic)
