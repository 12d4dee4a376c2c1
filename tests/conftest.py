"""Test configuration: fixed threads and a deterministic hypothesis profile."""

import sys
from pathlib import Path

import torch
from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).parent))

torch.set_num_threads(1)

settings.register_profile(
    "qlab",
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
settings.load_profile("qlab")
