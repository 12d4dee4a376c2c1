"""Fixed-point requantization exactly as TFLite and gemmlowp define it.

An integer layer sums int8 x int8 products in an int32 accumulator ``acc`` whose real value
is ``s_in * s_w * acc``. The next layer wants codes at scale ``s_out``, so the accumulator
is multiplied by the real number

    M = s_in * s_w / s_out          (M < 1 in practice)

Integer-only hardware writes M as a Q0.31 fixed-point mantissa and a power of two,

    M = M0 * 2^(shift - 31),        M0 int32 in [2^30, 2^31)

(:func:`quantize_multiplier`; Qm.n numbers are lesson 01's :mod:`qlab.fixed_point`) and
computes ``acc * M`` in two rounding steps (:func:`multiply_by_quantized_multiplier`):

1. :func:`saturating_rounding_doubling_high_mul` (SRDHM): the high 32 bits of 2 * a * b,
   rounded to nearest (nudge 2^30 or 1 - 2^30, then C-style truncating division by 2^31):
   positive ties go up, negative ties toward zero (SRDHM(-3, 2^30) = -1, from -1.5); the
   single overflow case a = b = -2^31 saturates to 2^31 - 1.
2. :func:`rounding_divide_by_pot` (RDBPOT): x / 2^e rounded to nearest, ties away from zero
   (RDBPOT(3, 1) = 2, RDBPOT(-3, 1) = -2).

Both rounding conventions differ from torch's ``round`` (ties to even). TFLite can also be
built to round once (``rounding="single"``: (acc * M0 + 2^(30 - shift)) >> (31 - shift)), and
the double rounding differs from a single float rescale: :func:`requantize_float` is the float path
that torch's FBGEMM kernels and onnxruntime use (``lrintf(acc * M)``, ties to even), and
the two may differ by 1 LSB.

Every function works element-wise on int64 tensors holding int32 values (per-channel M0 and
shift broadcast like any tensor).
"""

from __future__ import annotations

import torch

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
M0_BITS = 32  # M0 is an int32: 31 fraction bits and a sign bit


def _int64(x: torch.Tensor | int, name: str) -> torch.Tensor:
    """``x`` as an int64 tensor; floating-point input raises TypeError, values outside int32 ValueError."""
    t = torch.as_tensor(x)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{name} must hold integers (int32 values in an integer tensor), got {t.dtype}")
    t = t.to(torch.int64)
    if t.numel() and (int(t.min()) < INT32_MIN or int(t.max()) > INT32_MAX):
        raise ValueError(f"{name} must hold int32 values in [{INT32_MIN}, {INT32_MAX}], got [{int(t.min())}, {int(t.max())}]")
    return t


def _round_half_away(x: torch.Tensor) -> torch.Tensor:
    """Round a float64 tensor to the nearest integer, ties away from zero (C's std::round)."""
    return torch.sign(x) * torch.floor(x.abs() + 0.5)


def quantize_multiplier(
    multiplier: torch.Tensor | float, bits: int = M0_BITS
) -> tuple[torch.Tensor, torch.Tensor]:
    """(M0, shift) with M = M0 * 2^(shift - 31) and M0 in [2^30, 2^31), as TFLite's QuantizeMultiplier.

    frexp gives M = q * 2^shift with q in [0.5, 1); M0 = round(q * 2^31) with ties away from
    zero; if the rounding reaches 2^31, M0 is halved and shift incremented. M = 0 gives (0, 0).

    ``bits`` < 32 keeps only ``bits - 1`` significant bits of M0 (rounded the same way,
    then moved back to the int32 position): the precision a narrower multiplier register
    would have. Element-wise over a tensor of positive multipliers; returns int64 tensors.
    """
    if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= M0_BITS:
        raise ValueError(f"bits must be an integer from 2 to {M0_BITS}, got {bits!r}")
    m = torch.as_tensor(multiplier, dtype=torch.float64)
    if not bool(torch.isfinite(m).all()) or bool((m < 0).any()):
        raise ValueError("multiplier must be finite and >= 0 (a ratio of scales)")
    q, shift = torch.frexp(m)
    frac = bits - 1
    m0 = _round_half_away(q * 2.0**frac).to(torch.int64)
    carry = m0 == 2**frac
    m0 = torch.where(carry, m0 // 2, m0) * 2 ** (M0_BITS - bits)
    shift = shift.to(torch.int64) + carry.to(torch.int64)
    zero = m == 0
    return torch.where(zero, 0, m0), torch.where(zero, 0, shift)


def multiplier_value(m0: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """The real multiplier M0 * 2^(shift - 31) (float64) that (M0, shift) stands for."""
    return torch.as_tensor(m0, dtype=torch.float64) * torch.pow(2.0, torch.as_tensor(shift, dtype=torch.float64) - 31)


def saturating_rounding_doubling_high_mul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """gemmlowp's SaturatingRoundingDoublingHighMul: a * b / 2^31 rounded to nearest, ties toward +inf.

    ab = a * b (exact in int64); nudge = 2^30 if ab >= 0 else 1 - 2^30;
    result = (ab + nudge) / 2^31 with C-style division (truncation toward zero), so a
    positive tie rounds up and a negative one toward zero (-1.5 -> -1);
    a = b = -2^31 (the one product that does not fit) saturates to 2^31 - 1.
    """
    a, b = _int64(a, "a"), _int64(b, "b")
    ab = a * b
    nudge = torch.where(ab >= 0, 2**30, 1 - 2**30)
    out = torch.div(ab + nudge, 2**31, rounding_mode="trunc")
    return torch.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, out)


def rounding_divide_by_pot(x: torch.Tensor, exponent: torch.Tensor | int) -> torch.Tensor:
    """gemmlowp's RoundingDivideByPOT: x / 2^exponent rounded to nearest, ties away from zero.

    mask = 2^e - 1; remainder = x & mask; threshold = (mask >> 1) + (x < 0);
    result = (x >> e) + (remainder > threshold)   (>> is an arithmetic shift).
    """
    x, e = _int64(x, "x"), _int64(exponent, "exponent")
    if e.numel() and (int(e.min()) < 0 or int(e.max()) > 31):
        raise ValueError(f"exponent must be in [0, 31], got [{int(e.min())}, {int(e.max())}]")
    mask = (torch.ones_like(e) << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0).to(torch.int64)
    return (x >> e) + (remainder > threshold).to(torch.int64)


ROUNDINGS = ("double", "single")


def multiply_by_quantized_multiplier(acc: torch.Tensor, m0: torch.Tensor, shift: torch.Tensor,
                                     rounding: str = "double") -> torch.Tensor:
    """TFLite's MultiplyByQuantizedMultiplier: acc * M0 * 2^(shift - 31) in integer arithmetic.

    ``rounding="double"`` (gemmlowp, TFLite's default): RDBPOT(SRDHM(acc * 2^max(shift, 0), M0),
    max(-shift, 0)): a left shift first (M >= 1), the rounding high multiply, then the rounding
    right shift (M < 1/2); two roundings (the last one with ties away from zero).
    ``rounding="single"`` (TFLite built with TFLITE_SINGLE_ROUNDING, which LiteRT's reference
    FULLY_CONNECTED kernel follows): (acc * M0 + 2^(30 - shift)) >> (31 - shift), one rounding,
    ties toward +infinity.
    """
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {ROUNDINGS}, got {rounding!r}")
    acc, m0, shift = _int64(acc, "acc"), _int64(m0, "m0"), _int64(shift, "shift")
    if rounding == "single":
        total = 31 - shift
        if total.numel() and (int(total.min()) < 1 or int(total.max()) > 62):
            raise ValueError("single rounding needs shift in [-31, 30]")
        return (acc * m0 + (torch.ones_like(total) << (total - 1))) >> total
    left = shift.clamp(min=0)
    scaled = acc << left
    if scaled.numel() and (int(scaled.min()) < INT32_MIN or int(scaled.max()) > INT32_MAX):
        raise ValueError("acc * 2^shift overflows int32 (multiplier too large for this accumulator)")
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(scaled, m0), (-shift).clamp(min=0))


def requantize_float(acc: torch.Tensor, multiplier: torch.Tensor | float) -> torch.Tensor:
    """The float rescale of FBGEMM and onnxruntime: lrintf(float32(acc) * float32(M)), ties to even.

    Returns int64; compare with :func:`multiply_by_quantized_multiplier` to see the 1-LSB
    differences between the two requantization paths.
    """
    acc = _int64(acc, "acc")
    m = torch.as_tensor(multiplier, dtype=torch.float32)
    return torch.round(acc.to(torch.float32) * m).to(torch.int64)

