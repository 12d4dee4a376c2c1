"""Rounding modes and clamping: the two non-linear steps of every quantizer.

A quantizer maps a real value v (already divided by the scale) to an integer code:

    q = clamp(round(v), qmin, qmax)

``round`` is where the *rounding error* comes from (at most half a step for the
round-to-nearest modes), ``clamp`` is where the *clipping error* comes from.

Modes (``ROUNDING_MODES``):

=============  ==============================================  =========================
mode           rule                                            used by
=============  ==============================================  =========================
half_even      nearest, ties to the even integer (rint)        torch, numpy, IEEE default
half_away      nearest, ties away from zero (std::round)       TFLite Quantize, gemmlowp
floor          towards -inf                                    bit shifts of signed ints
ceil           towards +inf
trunc          towards zero (truncation, C casts)              naive fixed-point code
stochastic     floor(v) + Bernoulli(v - floor(v))              low-precision training
=============  ==============================================  =========================

Stochastic rounding is unbiased: E[round(v)] = v.  It needs a seeded
``torch.Generator`` so results are reproducible.

float16/bfloat16 values are rounded in float32 and returned in their own dtype (every
integer a half-precision value can be rounded to is representable in it): a bfloat16
uniform draw has only 8 bits, which would bias stochastic rounding of small fractions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

from qlab._checks import check_choice, check_generator, check_qrange

RoundingMode = Literal["half_even", "half_away", "floor", "ceil", "trunc", "stochastic"]
ROUNDING_MODES: tuple[str, ...] = ("half_even", "half_away", "floor", "ceil", "trunc", "stochastic")


def _half_away(v: torch.Tensor) -> torch.Tensor:
    """Round half away from zero: trunc(v) + sign(v) * [|v - trunc(v)| >= 1/2].

    ``v - trunc(v)`` is exact in floating point, so this never suffers the classic
    ``floor(v + 0.5)`` bug (0.49999997 + 0.5 rounds to 1.0 in float32).
    """
    t = torch.trunc(v)
    return t + torch.sign(v) * ((v - t).abs() >= 0.5).to(v.dtype)


def _stochastic(v: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """floor(v) + 1 with probability frac(v) = v - floor(v) (exact), else floor(v)."""
    if generator is None:
        raise ValueError(
            "rounding='stochastic' needs a seeded generator, e.g. generator=torch.Generator().manual_seed(0)"
        )
    f = torch.floor(v)
    u = torch.rand(v.shape, generator=generator, dtype=v.dtype, device=v.device)
    return f + (u < (v - f)).to(v.dtype)


def round_values(
    v: torch.Tensor, mode: RoundingMode = "half_even", generator: torch.Generator | None = None
) -> torch.Tensor:
    """Round every element of a floating-point tensor to an integer value (same dtype).

    Args:
        v: values to round (already divided by the scale).
        mode: one of ``ROUNDING_MODES`` (see the module docstring for each rule).
        generator: seeded ``torch.Generator``; required for ``"stochastic"`` only.
    """
    check_choice(mode, ROUNDING_MODES, "rounding")
    check_generator(generator)
    if not isinstance(v, torch.Tensor) or not v.is_floating_point():
        raise TypeError(
            f"v must be a floating-point tensor to round, got {getattr(v, 'dtype', type(v).__name__)}; "
            "integer values are already rounded"
        )
    if v.dtype in (torch.float16, torch.bfloat16):
        return round_values(v.float(), mode, generator).to(v.dtype)
    if mode == "half_even":
        return torch.round(v)
    if mode == "half_away":
        return _half_away(v)
    if mode == "floor":
        return torch.floor(v)
    if mode == "ceil":
        return torch.ceil(v)
    if mode == "trunc":
        return torch.trunc(v)
    return _stochastic(v, generator)


def clamp(q: torch.Tensor, quant_min: int, quant_max: int) -> torch.Tensor:
    """Saturate codes to the integer range: min(max(q, quant_min), quant_max).

    Values beyond the range stick to the nearest end (saturation) instead of wrapping
    around as unchecked integer overflow would.
    """
    check_qrange(quant_min, quant_max)
    return torch.clamp(q, quant_min, quant_max)


def stochastic_mean_rms_error(v: float, ns: Sequence[int], repeats: int, seed: int = 0) -> list[float]:
    """RMS error of the mean of N stochastic roundings of ``v``, over ``repeats`` independent runs:

        e(N) = sqrt( (1/R) * sum_r (mean_{i=1..N} round_stoch(v)_{r,i} - v)^2 )   for each N in ``ns``,

    an estimate of the standard error sqrt(p (1 - p) / N), p = v - floor(v), that a single
    run only scatters around. All draws come from one generator seeded with ``seed``.
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
    if not ns or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in ns):
        raise ValueError(f"ns must be a non-empty sequence of positive integers (draws per mean), got {ns!r}")
    gen = torch.Generator().manual_seed(seed)
    errors = []
    for n in ns:
        means = round_values(torch.full((repeats, n), float(v), dtype=torch.float64), "stochastic", gen).mean(dim=1)
        errors.append(float(((means - v) ** 2).mean().sqrt()))
    return errors
