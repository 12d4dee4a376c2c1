"""Error metrics between a reference tensor x and its approximation y (e.g. a quantized copy).

Every function takes torch tensors or numpy arrays and returns a Python float computed in
float64, so the metric itself adds no rounding error worth talking about. Inputs must be
floating point, finite, non-empty and (except for ``kl_divergence``/``histogram_kl``, which
compare distributions) of the same shape.

- ``mse``                mean((x - y)^2)
- ``max_abs_error``      max |x - y|
- ``sqnr_db``            10 log10(sum x^2 / sum (x - y)^2)
- ``cosine_similarity``  <x, y> / (||x|| ||y||)
- ``kl_divergence``      sum p log(p / q) for two histograms (nats, like scipy.stats.entropy)
- ``histogram_kl``       KL between the value histograms of two tensors

One-tensor statistics:

- ``rms``                sqrt(mean(x^2))
- ``peak_to_rms_db``     20 log10(max |x| / rms(x))  (crest factor in dB)
- ``accuracy_stderr``    sqrt(p (1 - p) / n), the standard error of an accuracy p measured on n samples
"""

from __future__ import annotations

import math
from typing import Any

import torch

from qlab._checks import as_float_tensor, check_finite, check_number


def _tensor(x: Any, name: str) -> torch.Tensor:
    """``x`` as a finite, non-empty float64 tensor."""
    return check_finite(as_float_tensor(x, name), name).detach().to(torch.float64)


def _pair(x: Any, y: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Both inputs as float64 tensors of the same shape (ValueError naming both shapes)."""
    xt, yt = _tensor(x, "x"), _tensor(y, "y")
    if xt.shape != yt.shape:
        raise ValueError(
            f"x and y must have the same shape, got x.shape={tuple(xt.shape)} and y.shape={tuple(yt.shape)}"
        )
    return xt, yt


def mse(x: Any, y: Any) -> float:
    """Mean squared error: mean((x - y)^2)."""
    xt, yt = _pair(x, y)
    return float(((xt - yt) ** 2).mean())


def max_abs_error(x: Any, y: Any) -> float:
    """Largest absolute error: max |x - y| (at most scale/2 inside the range for round-to-nearest)."""
    xt, yt = _pair(x, y)
    return float((xt - yt).abs().max())


def sqnr_db(x: Any, y: Any) -> float:
    """Signal-to-quantization-noise ratio in dB: 10 * log10(sum(x^2) / sum((x - y)^2)).

    ``x`` is the reference signal and ``y`` its approximation. Returns ``+inf`` when the
    error is exactly zero (including x == y == 0) and ``-inf`` when x is all zero but y is
    not. Rule of thumb: a uniform b-bit quantizer of a full-scale uniform signal gives about
    6.02 b dB.
    """
    xt, yt = _pair(x, y)
    noise = float(((xt - yt) ** 2).sum())
    if noise == 0.0:
        return math.inf
    signal = float((xt**2).sum())
    return -math.inf if signal == 0.0 else 10.0 * math.log10(signal / noise)


def cosine_similarity(x: Any, y: Any) -> float:
    """Cosine of the angle between the flattened tensors: sum(x y) / (||x|| ||y||).

    Undefined (``ValueError``) when either tensor is all zero.
    """
    xt, yt = _pair(x, y)
    xt, yt = xt.flatten(), yt.flatten()
    nx, ny = float(xt.norm()), float(yt.norm())
    if nx == 0.0 or ny == 0.0:
        raise ValueError("cosine similarity is undefined when x or y is all zero")
    return float(xt @ yt) / (nx * ny)


def _histogram(h: Any, name: str) -> torch.Tensor:
    """A 1-D, non-negative, finite histogram with a positive total, as float64."""
    t = torch.as_tensor(h)
    if t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"{name} must hold real counts, got dtype {t.dtype}")
    if t.dim() != 1 or t.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 1-D histogram, got shape {tuple(t.shape)}")
    t = check_finite(t.detach().to(torch.float64), name)
    if bool((t < 0).any()):
        raise ValueError(f"{name} must be non-negative (counts or probabilities)")
    if float(t.sum()) == 0.0:
        raise ValueError(f"{name} sums to zero; it cannot be normalised to a distribution")
    return t


def kl_divergence(p: Any, q: Any) -> float:
    """Kullback-Leibler divergence KL(P || Q) = sum_i P_i log(P_i / Q_i), in nats.

    ``p`` and ``q`` are histograms (non-negative counts or probabilities, integer or float,
    same length); each is first normalised to sum to 1. Follows ``scipy.stats.entropy(p, q)``:
    bins with P_i = 0 contribute 0, and the result is ``+inf`` if some bin has Q_i = 0 < P_i
    (Q cannot explain data that P has there). KL is not symmetric.
    """
    pt, qt = _histogram(p, "p"), _histogram(q, "q")
    if pt.shape != qt.shape:
        raise ValueError(f"p and q must have the same length, got {pt.numel()} and {qt.numel()}")
    pt, qt = pt / pt.sum(), qt / qt.sum()
    support = pt > 0
    if bool((qt[support] == 0).any()):
        return math.inf
    return float((pt[support] * torch.log(pt[support] / qt[support])).sum())


def histogram_kl(x: Any, y: Any, bins: int = 2048) -> float:
    """KL(hist(x) || hist(y)) of the value histograms over the shared range [min, max] of x and y.

    Both histograms use ``bins`` equal bins from min(x.min(), y.min()) to max(x.max(),
    y.max()) (``torch.histc``); then ``kl_divergence`` applies. x and y may have different
    shapes (only their value distributions are compared). A quantized y puts all its mass on
    a few grid values, so with more bins than grid levels most of its bins are empty and the
    result is ``+inf``; use ``bins`` <= the number of levels to compare such tensors.
    """
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    xt, yt = _tensor(x, "x"), _tensor(y, "y")
    lo = float(torch.minimum(xt.min(), yt.min()))
    hi = float(torch.maximum(xt.max(), yt.max()))
    if lo == hi:
        return 0.0
    hx = torch.histc(xt, bins=bins, min=lo, max=hi)
    hy = torch.histc(yt, bins=bins, min=lo, max=hi)
    return kl_divergence(hx, hy)


def rms(x: Any) -> float:
    """Root mean square: sqrt(mean(x^2))."""
    return math.sqrt(float((_tensor(x, "x") ** 2).mean()))


def peak_to_rms_db(x: Any) -> float:
    """Peak-to-RMS ratio (crest factor) in dB: 20 log10(max |x| / rms(x)).

    0 dB for a square wave, 3.01 dB for a sine, large for spiky data: a high ratio means a
    min/max grid spends most of its levels on rare peaks. Undefined (``ValueError``) for all-zero x.
    """
    xt = _tensor(x, "x")
    r = math.sqrt(float((xt**2).mean()))
    if r == 0.0:
        raise ValueError("peak-to-RMS ratio is undefined when x is all zero")
    return 20.0 * math.log10(float(xt.abs().max()) / r)


def accuracy_stderr(p: float, n: int) -> float:
    """Standard error of an accuracy p (a fraction in [0, 1]) measured on n samples: sqrt(p (1 - p) / n).

    Two accuracies closer than about this much cannot be told apart on that test set
    (e.g. p = 0.9, n = 10000: 0.003, i.e. 0.3 points).
    """
    p = check_number(p, "p")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be an accuracy fraction in [0, 1], got {p}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise TypeError(f"n must be a positive integer (the number of samples), got {n!r}")
    return math.sqrt(p * (1.0 - p) / n)
