"""Hypothesis strategies shared by the parity and property tests."""

from __future__ import annotations

import math

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import torch

KINDS = ("normal", "outliers", "constant", "negative", "zero", "ties", "elements")


@st.composite
def float_tensors(draw: st.DrawFn, min_dims: int = 1, max_dims: int = 4, kinds: tuple[str, ...] = KINDS) -> torch.Tensor:
    """Float32 tensors of random shape: Gaussian, with outliers, constant, all-negative,
    all-zero, exact .5 multiples of powers of two (ties), or arbitrary float32 elements."""
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=1, max_side=6))
    kind = draw(st.sampled_from(kinds))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    if kind == "normal":
        return torch.randn(shape, generator=g) * draw(st.sampled_from([1e-3, 1.0, 100.0]))
    if kind == "outliers":
        x = torch.randn(shape, generator=g)
        x.view(-1)[0] = draw(st.sampled_from([-1.0, 1.0])) * draw(st.floats(20, 1000))
        return x
    if kind == "constant":
        return torch.full(shape, draw(st.floats(-100, 100, width=32)))
    if kind == "negative":
        return -torch.rand(shape, generator=g) * 10 - 0.1
    if kind == "zero":
        return torch.zeros(shape)
    if kind == "ties":
        k = torch.randint(-40, 40, shape, generator=g).float()
        return (k + 0.5) * 2.0 ** draw(st.integers(-6, 2))
    arr = draw(hnp.arrays(np.float32, shape, elements=st.floats(-1e4, 1e4, width=32)))
    return torch.from_numpy(arr)


def pow2_scales() -> st.SearchStrategy[float]:
    """Powers of two, so that x * (1/scale) is exact and .5 ties really are ties."""
    return st.integers(-6, 3).map(lambda e: math.ldexp(1.0, e))


def bits_and_sign() -> st.SearchStrategy[tuple[int, bool]]:
    return st.tuples(st.integers(2, 8), st.booleans())


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """True if two float32 tensors are identical bit for bit (so 0.0 != -0.0 and NaN == NaN)."""
    a32 = a.detach().to(torch.float32).contiguous()
    b32 = b.detach().to(torch.float32).contiguous()
    return a32.shape == b32.shape and torch.equal(a32.view(torch.int32), b32.view(torch.int32))
