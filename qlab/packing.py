"""Sub-byte weights: signed int4 codes two per byte, int2 codes four per byte, and what a
weight really costs once its scales and zero-points are counted.

Packing (little end first): code i of a byte sits in bits [i·b, (i+1)·b) as its b-bit two's
complement, so int4 codes (c0, c1) become the byte (c1 & 0xF) << 4 | (c0 & 0xF); unpacking
sign-extends each field ((v ^ 2^(b-1)) - 2^(b-1)). Every code in [-2^(b-1), 2^(b-1) - 1]
survives the round trip, -8 and 7 included.

Bits per weight: b + (scale bits + zero-point bits) / group size, e.g. 4-bit weights in
groups of 32 with one float16 scale each cost 4 + 16 / 32 = 4.5 bits.
"""

from __future__ import annotations

import torch
from torch import nn

PACK_BITS = (2, 4)
FLOAT_BITS = 32


def _check_pack_bits(bits: int) -> int:
    if bits not in PACK_BITS:
        raise ValueError(f"bits must be one of {PACK_BITS} (codes per byte: 4 or 2), got {bits!r}")
    return bits


def pack(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Signed ``bits``-bit codes (any integer dtype, flattened) -> uint8 bytes, 8 // bits codes each.

    The last byte is padded with zero codes; :func:`unpack` needs the code count back.
    """
    bits = _check_pack_bits(bits)
    if codes.is_floating_point() or codes.dtype == torch.bool:
        raise TypeError(f"codes must be an integer tensor, got {codes.dtype}")
    c = codes.reshape(-1).to(torch.int64)
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    if c.numel() and (int(c.min()) < lo or int(c.max()) > hi):
        raise ValueError(f"codes must lie in [{lo}, {hi}] for {bits}-bit packing, got [{int(c.min())}, {int(c.max())}]")
    per_byte = 8 // bits
    c = torch.cat([c, c.new_zeros((-c.numel()) % per_byte)]).reshape(-1, per_byte) & (2**bits - 1)
    shifts = torch.arange(per_byte) * bits
    return (c << shifts).sum(dim=1).to(torch.uint8)


def unpack(packed: torch.Tensor, bits: int, count: int) -> torch.Tensor:
    """uint8 bytes from :func:`pack` -> the first ``count`` signed codes (int8)."""
    bits = _check_pack_bits(bits)
    if packed.dtype != torch.uint8:
        raise TypeError(f"packed must be a uint8 tensor, got {packed.dtype}")
    per_byte = 8 // bits
    if not 0 <= count <= packed.numel() * per_byte:
        raise ValueError(f"count must be in [0, {packed.numel() * per_byte}], got {count}")
    shifts = torch.arange(per_byte) * bits
    v = (packed.to(torch.int64).unsqueeze(1) >> shifts) & (2**bits - 1)
    sign = 2 ** (bits - 1)
    return ((v ^ sign) - sign).reshape(-1)[:count].to(torch.int8)


def bits_per_weight(bits: int, group_size: int | None = None, scale_bits: int = 16, zero_point_bits: int = 0,
                    fan_in: int | None = None) -> float:
    """b + (scale_bits + zero_point_bits) / n, with n = ``group_size`` weights per scale, or
    ``fan_in`` for one scale per output channel (``group_size`` None)."""
    n = group_size if group_size is not None else fan_in
    if n is None or n < 1:
        raise ValueError("give group_size (per group) or fan_in (per channel), a positive integer")
    return bits + (scale_bits + zero_point_bits) / n


def packed_model_bytes(model: nn.Module, bits: int, group_size: int | None = None, scale_bits: int = 16) -> tuple[int, int]:
    """(float32 bytes, packed bytes) of a model's Conv2d/Linear weights and biases.

    Packed: each weight row (one output channel, fan-in weights) packed to ``bits`` bits,
    padded to whole bytes per row; one ``scale_bits`` scale per group of ``group_size``
    (per row if None, or if the fan-in is not larger); biases stay 32-bit.
    """
    float_bytes = packed = 0
    for m in model.modules():
        if not isinstance(m, (nn.Conv2d, nn.Linear)):
            continue
        c_out, fan_in = m.weight.shape[0], m.weight[0].numel()
        n_bias = 0 if m.bias is None else m.bias.numel()
        groups = 1 if group_size is None or fan_in <= group_size else -(-fan_in // group_size)
        float_bytes += (m.weight.numel() + n_bias) * FLOAT_BITS // 8
        packed += c_out * (-(-fan_in * bits // 8) + groups * scale_bits // 8) + n_bias * FLOAT_BITS // 8
    return float_bytes, packed
