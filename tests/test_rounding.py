"""Rounding modes against numpy references, and stochastic rounding's statistics."""

from __future__ import annotations

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
import torch
from hypothesis import given, settings

import qlab
from qlab.rounding import ROUNDING_MODES, clamp, round_values


def _half_away_reference(v: np.ndarray) -> np.ndarray:
    """std::round in float64, exact for float32 inputs of this magnitude."""
    v64 = v.astype(np.float64)
    return np.copysign(np.floor(np.abs(v64) + 0.5), v64)


REFERENCES = {
    "half_even": np.rint,
    "half_away": _half_away_reference,
    "floor": np.floor,
    "ceil": np.ceil,
    "trunc": np.trunc,
}

values = hnp.arrays(
    np.float32,
    hnp.array_shapes(max_dims=2, max_side=50),
    elements=st.one_of(
        st.floats(-1e6, 1e6, width=32),
        st.integers(-1000, 1000).map(lambda k: k + 0.5),  # exact ties
        st.sampled_from([0.49999997, -0.49999997, 0.5, -0.5, 2.5, -2.5]),
    ),
)


@pytest.mark.slow
@settings(max_examples=300)
@given(v=values, mode=st.sampled_from(sorted(REFERENCES)))
def test_deterministic_modes_match_numpy(v, mode):
    got = round_values(torch.from_numpy(v), mode).numpy()
    np.testing.assert_array_equal(got, REFERENCES[mode](v).astype(np.float32))


def test_ties_table():
    v = torch.tensor([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5])
    assert round_values(v, "half_even").tolist() == [-2, -2, -0, 0, 2, 2]
    assert round_values(v, "half_away").tolist() == [-3, -2, -1, 1, 2, 3]
    assert round_values(v, "trunc").tolist() == [-2, -1, -0, 0, 1, 2]


def test_stochastic_rounding_is_reproducible_and_unbiased():
    v = torch.full((200_000,), 0.3)
    a = round_values(v, "stochastic", torch.Generator().manual_seed(0))
    b = round_values(v, "stochastic", torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    assert set(a.unique().tolist()) == {0.0, 1.0}
    # mean of Bernoulli(0.3): standard error sqrt(0.21 / 2e5) ~ 0.001
    assert abs(float(a.mean()) - 0.3) < 0.005


def test_stochastic_rounding_keeps_integers_fixed():
    v = torch.arange(-5.0, 6.0)
    assert torch.equal(round_values(v, "stochastic", torch.Generator().manual_seed(1)), v)


def test_truncation_is_biased_and_half_even_is_not():
    v = torch.rand(100_000, generator=torch.Generator().manual_seed(0)) * 100
    assert float((round_values(v, "floor") - v).mean()) == pytest.approx(-0.5, abs=0.01)
    assert abs(float((round_values(v, "half_even") - v).mean())) < 0.01


def test_clamp_saturates():
    q = torch.tensor([-300.0, -5.0, 0.0, 200.0])
    assert clamp(q, -128, 127).tolist() == [-128, -5, 0, 127]


@pytest.mark.parametrize("mode", [m for m in ROUNDING_MODES if m != "stochastic"])
def test_every_listed_mode_quantizes_like_its_reference(mode):
    v = np.array([-300.5, -2.5, -1.5, -0.7, -0.5, 0.5, 0.49999997, 1.5, 2.5, 3.2, 200.5], dtype=np.float32)
    expected = np.clip(REFERENCES[mode](v), -128, 127).astype(np.int32)
    np.testing.assert_array_equal(qlab.quantize(torch.from_numpy(v), 1.0, 0, -128, 127, rounding=mode).numpy(), expected)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_stochastic_rounding_of_half_inputs_is_unbiased(dtype):
    # before: bf16 1e-5 rounded to a mean of 0.00197 (an 8-bit uniform draw)
    v = torch.full((2_000_000,), 1e-5, dtype=dtype)
    r = round_values(v, "stochastic", torch.Generator().manual_seed(0))
    assert r.dtype == dtype
    mean, exact = float(r.double().mean()), float(v[0].double())
    assert abs(mean - exact) < 4 * (exact / v.numel()) ** 0.5


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_quantize_stochastic_half_input_is_unbiased(dtype):
    x = torch.full((1_000_000,), 0.3, dtype=dtype)
    q = qlab.quantize(x, 1.0, 0, -128, 127, rounding="stochastic", generator=torch.Generator().manual_seed(1))
    assert float(q.double().mean()) == pytest.approx(float(x[0].double()), abs=2e-3)


def test_stochastic_mean_rms_error_follows_the_standard_error() -> None:
    from qlab.metrics import accuracy_stderr
    from qlab.rounding import stochastic_mean_rms_error

    ns = [10, 100, 1000]
    errors = stochastic_mean_rms_error(2.3, ns, repeats=400, seed=0)
    for n, e in zip(ns, errors):
        assert e == pytest.approx(accuracy_stderr(0.3, n), rel=0.15)  # RMS of 400 repeats: ~4% noise
    assert stochastic_mean_rms_error(2.0, [5], repeats=3) == [0.0]  # an integer never rounds away
    with pytest.raises(ValueError, match="repeats"):
        stochastic_mean_rms_error(2.3, ns, repeats=0)
    with pytest.raises(ValueError, match="ns must be"):
        stochastic_mean_rms_error(2.3, [0], repeats=3)
