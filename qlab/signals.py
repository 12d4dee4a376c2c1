"""Deterministic real-valued demo signals (no randomness, no files).

Lesson 01 quantizes a waveform a learner can picture: an ECG-like trace in millivolts.
Every sample is a closed-form function of time, so the signal is identical on every
machine. :func:`quantize_signal` is the lesson's quantizer (signed, narrow, symmetric,
clipped at +-c).
"""

from __future__ import annotations

import math

import torch

from qlab.quantizer import QuantSpec, Quantized, quantize_on_range

SAMPLE_RATE_HZ = 250.0
STOCHASTIC_SEED = 0

# (centre within the beat in s, width in s, amplitude in mV) of the P, Q, R, S, T waves.
_ECG_WAVES: tuple[tuple[float, float, float], ...] = (
    (0.20, 0.025, 0.15),  # P
    (0.37, 0.010, -0.15),  # Q
    (0.40, 0.012, 1.20),  # R
    (0.43, 0.010, -0.30),  # S
    (0.65, 0.040, 0.35),  # T
)


def time_axis(duration_s: float, sample_rate_hz: float = SAMPLE_RATE_HZ) -> torch.Tensor:
    """Sample times t_k = k / fs for k = 0 .. duration * fs - 1 (float32, seconds)."""
    n = int(round(duration_s * sample_rate_hz))
    return torch.arange(n, dtype=torch.float64).div(sample_rate_hz).to(torch.float32)


def ecg_like(duration_s: float = 4.0, heart_rate_bpm: float = 72.0, sample_rate_hz: float = SAMPLE_RATE_HZ) -> torch.Tensor:
    """Synthetic ECG in mV: a sum of Gaussian bumps per beat plus slow baseline wander.

        x(t) = sum_beats sum_waves a * exp(-((t - t_beat - c) / w)^2 / 2) + 0.05 sin(2 pi 0.3 t)

    with the (c, w, a) of the P, QRS and T waves in ``_ECG_WAVES``. The sharp R peak
    (1.2 mV) next to small P/T waves makes the clipping-versus-resolution trade-off visible.
    """
    t = time_axis(duration_s, sample_rate_hz).to(torch.float64)
    period = 60.0 / heart_rate_bpm
    phase = torch.remainder(t, period)
    x = 0.05 * torch.sin(2 * math.pi * 0.3 * t)
    for centre, width, amp in _ECG_WAVES:
        x = x + amp * torch.exp(-0.5 * ((phase - centre) / width) ** 2)
    return x.to(torch.float32)


def sine_chirp(duration_s: float = 4.0, sample_rate_hz: float = SAMPLE_RATE_HZ) -> torch.Tensor:
    """0.6 sin(2 pi 1 Hz t) + 0.4 sin(2 pi (0.5 t + 1.5 t^2 / duration)) in mV: a tone plus a rising chirp."""
    t = time_axis(duration_s, sample_rate_hz).to(torch.float64)
    chirp = torch.sin(2 * math.pi * (0.5 * t + 1.5 * t**2 / duration_s))
    return (0.6 * torch.sin(2 * math.pi * t) + 0.4 * chirp).to(torch.float32)


SIGNALS = {"ECG-like": ecg_like, "sine + chirp": sine_chirp}


def quantize_signal(x: torch.Tensor, bits: int, clip: float, rounding: str) -> Quantized:
    """Lesson 01's quantizer: signed, narrow-range, symmetric, clipped at +-``clip``:

        scale = c / (2^(b-1) - 1),   q = clamp(round(x / scale), -(2^(b-1) - 1), 2^(b-1) - 1),
        x_hat = q * scale

    (narrow so the grid is exactly symmetric around 0). Stochastic rounding uses a generator
    seeded with ``STOCHASTIC_SEED`` on every call, so the same settings give the same result.
    """
    spec = QuantSpec(bits, signed=True, symmetric=True, narrow=True, rounding=rounding)
    gen = torch.Generator().manual_seed(STOCHASTIC_SEED) if rounding == "stochastic" else None
    return quantize_on_range(x, -clip, clip, spec, generator=gen)


def clipped_count(x: torch.Tensor, clip: float) -> int:
    """Samples the clamp changes in :func:`quantize_signal`: those with |x| > ``clip``.

    The grid's end codes +-(2^(b-1) - 1) sit exactly at +-clip, so a sample rounded onto an end
    code from inside the range is not clipped; count by value, not by code.
    """
    if clip <= 0:
        raise ValueError(f"clip must be positive (the range is [-clip, clip]), got {clip}")
    return int((x.abs() > clip).sum())
