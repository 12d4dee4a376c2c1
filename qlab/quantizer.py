"""One description of a per-tensor quantizer and one way to apply it on a range.

A :class:`QuantSpec` names everything that defines the integer grid and its rounding:

    bits, signed     -> codes [qmin, qmax] = ``qlab.affine.qrange(bits, signed, narrow)``
    symmetric        -> zero-point 0 (signed) / mid-code (unsigned), scale from max(|lo|, |hi|)
    narrow           -> signed codes [-(2^(b-1) - 1), 2^(b-1) - 1] (no lone -2^(b-1) code)
    convention       -> symmetric scale amax / qmax ("textbook") or amax / ((qmax - qmin) / 2) ("torch")
    rounding         -> a mode of ``qlab.rounding``

:func:`quantize_on_range` quantizes a tensor on the grid that ``qlab.affine.qparams_from_range``
builds for a requested range [lo, hi] and returns a :class:`Quantized` (codes, reconstruction,
scale, zero-point and every representable value). The arithmetic is ``qlab.affine.quantize``
then ``qlab.affine.dequantize``, which equals ``qlab.affine.fake_quantize`` bit for bit.

Full or narrow signed range -- where qlab uses which:

- PTQ weights (``qlab.ptq``) use the full range [-2^(b-1), 2^(b-1) - 1] with the textbook
  scale amax / (2^(b-1) - 1): that is the int8 tensor torch's kernels store, and the extra
  code -2^(b-1) costs nothing (no weight inside [-amax, amax] reaches it).
- The lesson sweeps (``qlab.sweeps``) and the lesson 01 signal use the narrow range, so
  the grid is exactly symmetric and has 2^b - 1 levels, the count the lessons reason with.

Naming: ``Quantized.representable_range`` is the interval [levels[0], levels[-1]] the codes
can express; whether a value counts as *clipped* is decided against the requested range
(:meth:`Quantized.clipped`), because the representable end qmax * scale can land one float32
ulp below the requested hi, which would call the maximum itself clipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from qlab._checks import as_float_tensor, check_bits, check_bool, check_choice, check_finite, check_number
from qlab.affine import CONVENTIONS, Convention, dequantize, qparams_from_range, qrange, quantize
from qlab.rounding import ROUNDING_MODES, RoundingMode

N_TRANSFER_POINTS = 1201


@dataclass(frozen=True)
class QuantSpec:
    """A per-tensor quantizer: bit width, signedness, symmetry, narrow range, convention, rounding.

    Validated on construction (``TypeError``/``ValueError`` naming the field); ``qmin``/``qmax``
    are ``qlab.affine.qrange(bits, signed, narrow)``.
    """

    bits: int
    signed: bool = True
    symmetric: bool = True
    narrow: bool = False
    convention: Convention = "textbook"
    rounding: RoundingMode = "half_even"

    def __post_init__(self) -> None:
        check_bits(self.bits)
        for name in ("signed", "symmetric", "narrow"):
            check_bool(getattr(self, name), name)
        check_choice(self.convention, CONVENTIONS, "convention")
        check_choice(self.rounding, ROUNDING_MODES, "rounding")
        qrange(self.bits, self.signed, self.narrow)  # rejects narrow unsigned ranges

    @property
    def qmin(self) -> int:
        return qrange(self.bits, self.signed, self.narrow)[0]

    @property
    def qmax(self) -> int:
        return qrange(self.bits, self.signed, self.narrow)[1]


@dataclass(frozen=True)
class Quantized:
    """One tensor quantized on one grid: codes, reconstruction and the grid itself.

    ``lo``/``hi`` is the range the grid was built for: the requested [lo, hi] widened the way
    ``qparams_from_range`` widens it (to include 0; symmetric grids to [-amax, amax]).
    """

    codes: torch.Tensor
    x_hat: torch.Tensor
    scale: float
    zero_point: int
    spec: QuantSpec
    lo: float
    hi: float
    levels: torch.Tensor  # real value of every code qmin..qmax

    @property
    def qmin(self) -> int:
        return self.spec.qmin

    @property
    def qmax(self) -> int:
        return self.spec.qmax

    @property
    def representable_range(self) -> tuple[float, float]:
        """Smallest and largest representable value, (qmin - z) * s and (qmax - z) * s."""
        return float(self.levels[0]), float(self.levels[-1])

    def clipped(self, x: torch.Tensor) -> torch.Tensor:
        """Boolean mask of the values of ``x`` outside [lo, hi] (a value equal to an end is kept)."""
        return (x < self.lo) | (x > self.hi)


def covered_range(lo: float, hi: float, symmetric: bool) -> tuple[float, float]:
    """The interval a grid built for [lo, hi] is meant to cover (before float32 rounding):

    affine [min(lo, 0), max(hi, 0)]; symmetric [-amax, amax] with amax = max(|lo|, |hi|).
    """
    if symmetric:
        amax = max(-lo, hi, 0.0)
        return -amax, amax
    return min(lo, 0.0), max(hi, 0.0)


def quantize_on_range(
    x: torch.Tensor, lo: float, hi: float, spec: QuantSpec, generator: torch.Generator | None = None
) -> Quantized:
    """Quantize ``x`` on the ``spec`` grid for the range [lo, hi] (per tensor).

        (scale, z) = qparams_from_range(lo, hi, bits, signed, symmetric, narrow, convention)
        codes = clamp(z + round(x / scale), qmin, qmax),   x_hat = (codes - z) * scale

    ``generator`` seeds ``spec.rounding == "stochastic"``.
    """
    if not isinstance(spec, QuantSpec):
        raise TypeError(f"spec must be a qlab.quantizer.QuantSpec, got {type(spec).__name__}")
    lo, hi = check_number(lo, "lo"), check_number(hi, "hi")
    x = check_finite(as_float_tensor(x))
    scale, zp = qparams_from_range(lo, hi, spec.bits, spec.signed, spec.symmetric, spec.narrow, spec.convention)
    codes = quantize(x, scale, zp, spec.qmin, spec.qmax, rounding=spec.rounding, generator=generator)
    levels = dequantize(torch.arange(spec.qmin, spec.qmax + 1, dtype=torch.int32), scale, zp)
    lo_c, hi_c = covered_range(lo, hi, spec.symmetric)
    return Quantized(codes, dequantize(codes, scale, zp), float(scale), int(zp), spec, lo_c, hi_c, levels)


def minmax_quantized(x: torch.Tensor, spec: QuantSpec) -> Quantized:
    """``quantize_on_range(x, min x, max x, spec)``: the min/max range, nothing clipped."""
    x = check_finite(as_float_tensor(x))
    return quantize_on_range(x, float(x.min()), float(x.max()), spec)


@dataclass(frozen=True)
class GridState:
    """A quantizer's parameters, its grid and its transfer curve (lesson 02's picture)."""

    lo: float
    hi: float
    bits: int
    signed: bool
    symmetric: bool
    convention: str
    qmin: int
    qmax: int
    scale: float
    zero_point: int
    grid: torch.Tensor  # real value of every code qmin..qmax
    x: torch.Tensor  # real inputs of the transfer curve
    q: torch.Tensor  # their codes


def quantizer_grid(lo: float, hi: float, spec: QuantSpec) -> GridState:
    """Parameters, grid r(q) = (q - z) * s for every code and the transfer curve x -> q over
    the span of [lo, hi], 0 and the grid, padded by 25 % on each side."""
    edges = quantize_on_range(torch.tensor([0.0]), lo, hi, spec)
    left, right = min(lo, 0.0, float(edges.levels[0])), max(hi, 0.0, float(edges.levels[-1]))
    pad = 0.25 * (right - left) or 1.0  # an all-zero range still gets a visible x-axis
    x = torch.linspace(left - pad, right + pad, N_TRANSFER_POINTS)
    q = quantize_on_range(x, lo, hi, spec)
    return GridState(
        lo, hi, spec.bits, spec.signed, spec.symmetric, spec.convention,
        spec.qmin, spec.qmax, q.scale, q.zero_point, q.levels, x, q.codes,
    )
