"""Qm.n fixed-point numbers as a special case of affine quantization.

A Qm.n number stores the integer q and means q * 2^-n. This module follows the ARM
convention: m counts the integer bits *not* including the sign bit and n the fraction bits,
so a signed word has m + n + 1 bits and an unsigned one m + n (Q1.6 signed = 8 bits, values
-2 ... 2 - 2^-6 in steps of 2^-6). TI's convention counts the sign bit in m: ARM Q1.6 is TI
Q2.6, and ARM Q0.15 (int16 audio samples) is TI Q1.15.

Qm.n *is* affine quantization with

    scale = 2^-n,   zero_point = 0,   (qmin, qmax) = qrange(m + n + signed, signed)

so ``to_fixed``/``from_fixed``/``fixed_point_quantize`` call ``qlab.affine.quantize`` /
``dequantize`` with those parameters (rounding modes: ``qlab.rounding``). Because the scale
is a power of two, x * 2^n is exact in float32 and the only error is the rounding to an
integer (at most 2^-n / 2 for round-to-nearest) plus saturation outside [min_value, max_value].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from qlab._checks import MAX_BITS, MIN_BITS, check_bool, numpy_io
from qlab.affine import dequantize, qrange, quantize
from qlab.rounding import RoundingMode


@dataclass(frozen=True)
class FixedPointFormat:
    """A Qm.n format (ARM convention): word size, resolution, representable range and codes."""

    m: int
    n: int
    signed: bool
    total_bits: int
    resolution: float
    min_value: float
    max_value: float
    qmin: int
    qmax: int


def _check_mn(m: int, n: int) -> None:
    for name, v in (("m", m), ("n", n)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must be a non-negative integer, got {v!r}")
        if v < 0:
            raise ValueError(f"{name} must be >= 0 (number of {'integer' if name == 'm' else 'fraction'} bits), got {v}")


def fixed_point_format(m: int, n: int, signed: bool = True) -> FixedPointFormat:
    """Describe Qm.n: total_bits = m + n + 1 (signed) or m + n, resolution = 2^-n,
    codes [qmin, qmax] = qrange(total_bits, signed), values [qmin * 2^-n, qmax * 2^-n].

    Word sizes from 2 to 16 bits are supported (the range of ``qlab.affine.qrange``).
    """
    _check_mn(m, n)
    signed = check_bool(signed, "signed")
    total = int(m) + int(n) + int(signed)
    if not MIN_BITS <= total <= MAX_BITS:
        raise ValueError(
            f"Q{m}.{n} ({'signed' if signed else 'unsigned'}) needs a {total}-bit word; "
            f"word sizes from {MIN_BITS} to {MAX_BITS} bits are supported"
        )
    qmin, qmax = qrange(total, signed)
    res = 2.0**-n
    return FixedPointFormat(int(m), int(n), bool(signed), total, res, qmin * res, qmax * res, qmin, qmax)


def _scale_zp(fmt: FixedPointFormat) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor(fmt.resolution, dtype=torch.float32), torch.tensor(0, dtype=torch.int32)


@numpy_io
def to_fixed(
    x: torch.Tensor, m: int, n: int, signed: bool = True, rounding: RoundingMode = "half_even"
) -> torch.Tensor:
    """Integer codes q = clamp(round(x * 2^n), qmin, qmax) (int32), saturating out-of-range values.

    ``rounding`` is any mode of ``qlab.rounding`` ("half_even" like torch, "half_away" like
    most DSP libraries, "floor" = truncating two's-complement shift, ...). NaN raises.
    """
    fmt = fixed_point_format(m, n, signed)
    scale, zp = _scale_zp(fmt)
    return quantize(x, scale, zp, fmt.qmin, fmt.qmax, rounding=rounding)


@numpy_io
def from_fixed(q: torch.Tensor, m: int, n: int, signed: bool = True) -> torch.Tensor:
    """Real values q * 2^-n (float32) of Qm.n codes; codes outside [qmin, qmax] raise ValueError."""
    fmt = fixed_point_format(m, n, signed)
    if isinstance(q, torch.Tensor) and not q.is_floating_point() and q.numel() > 0:
        lo, hi = int(q.min()), int(q.max())
        if lo < fmt.qmin or hi > fmt.qmax:
            raise ValueError(
                f"codes span [{lo}, {hi}] but Q{m}.{n} ({fmt.total_bits}-bit "
                f"{'signed' if signed else 'unsigned'}) holds [{fmt.qmin}, {fmt.qmax}]"
            )
    scale, zp = _scale_zp(fmt)
    return dequantize(q, scale, zp)


@numpy_io
def fixed_point_quantize(
    x: torch.Tensor, m: int, n: int, signed: bool = True, rounding: RoundingMode = "half_even"
) -> torch.Tensor:
    """Round trip x -> Qm.n -> float32: from_fixed(to_fixed(x)), i.e. the value the format stores.

    Inside [min_value, max_value] the error is at most resolution / 2 for round-to-nearest.
    """
    return from_fixed(to_fixed(x, m, n, signed, rounding), m, n, signed)
