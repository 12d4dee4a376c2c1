"""qlab.packing: exact sub-byte round trips, hand-packed bytes, bits-per-weight accounting."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from qlab import packing
from qlab.models import load_pretrained


@pytest.mark.parametrize("bits", [2, 4])
def test_every_code_round_trips(bits):
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    codes = torch.arange(lo, hi + 1).repeat(3)[:-1]  # odd count: padded last byte
    packed = packing.pack(codes, bits)
    assert packed.numel() == -(-codes.numel() * bits // 8)
    assert torch.equal(packing.unpack(packed, bits, codes.numel()), codes.to(torch.int8))


def test_hand_packed_bytes():
    # int4 (c0, c1) -> (c1 & 0xF) << 4 | (c0 & 0xF): (-8, 7) -> 0x78, (-1, 0) -> 0x0F
    assert packing.pack(torch.tensor([-8, 7, -1, 0]), 4).tolist() == [0x78, 0x0F]
    # int2 (c0..c3) = (1, -2, -1, 0) -> 0b00_11_10_01
    assert packing.pack(torch.tensor([1, -2, -1, 0]), 2).tolist() == [0b00111001]


@given(st.lists(st.integers(-8, 7), min_size=0, max_size=50))
def test_int4_matches_numpy_nibbles(codes):
    c = np.array(codes + [0] * (len(codes) % 2), dtype=np.int64)
    ref = ((c[1::2] & 0xF) << 4) | (c[0::2] & 0xF)
    assert packing.pack(torch.tensor(codes, dtype=torch.int64), 4).numpy().tolist() == ref.tolist()


def test_bits_per_weight():
    assert packing.bits_per_weight(4, group_size=32, scale_bits=16) == 4.5
    assert packing.bits_per_weight(4, group_size=128, scale_bits=16, zero_point_bits=16) == 4.25
    assert packing.bits_per_weight(8, fan_in=256, scale_bits=32) == 8.125


def test_packed_model_bytes_mlp():
    fp, packed = packing.packed_model_bytes(load_pretrained("mlp"), 4, group_size=32)
    weights = 784 * 256 + 256 * 128 + 128 * 10
    biases = 256 + 128 + 10
    assert fp == (weights + biases) * 4
    # fc1: 256 rows * (392 bytes + 25 groups * 2), fc2: 128 * (128 + 8 * 2), fc3: 10 * (64 + 4 * 2)
    assert packed == 256 * (392 + 25 * 2) + 128 * (128 + 16) + 10 * (64 + 8) + biases * 4


@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda: packing.pack(torch.tensor([8]), 4), ValueError, r"\[-8, 7\]"),
        (lambda: packing.pack(torch.tensor([1.0]), 4), TypeError, "integer tensor"),
        (lambda: packing.pack(torch.tensor([1]), 3), ValueError, "bits must be one of"),
        (lambda: packing.unpack(torch.tensor([1]), 4, 2), TypeError, "uint8"),
        (lambda: packing.unpack(torch.tensor([1], dtype=torch.uint8), 4, 3), ValueError, "count must be"),
        (lambda: packing.bits_per_weight(4), ValueError, "group_size"),
    ],
)
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
