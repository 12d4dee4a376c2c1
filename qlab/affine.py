"""Affine (uniform) quantization: integer ranges, scale and zero-point, quantize/dequantize.

A real value r is represented by an integer code q through

    r ~= scale * (q - zero_point),      q in [qmin, qmax]

- ``quantize``:    q = clamp(zero_point + round(r * (1 / scale)), qmin, qmax)
- ``dequantize``:  r_hat = (q - zero_point) * scale
- ``fake_quantize`` = dequantize(quantize(r)) with a straight-through gradient.

Arithmetic follows torch exactly (float32 products, multiply by the float32 reciprocal
of the scale, add the zero-point *after* rounding, round half to even), so
``fake_quantize`` equals ``torch.fake_quantize_per_tensor_affine`` /
``torch.fake_quantize_per_channel_affine`` bit for bit, and ``calc_qparams`` in affine mode
equals torch.ao's ``MinMaxObserver`` / ``PerChannelMinMaxObserver``.

float16/bfloat16 inputs are converted to float32 before the product x * (1 / scale), as
torch's kernels do, so per-tensor and per-channel codes agree and no code overflows the half
type. The zero-point is added and the codes are clamped in float64, so int32 ranges saturate
exactly (float32 cannot hold 2^31 - 1).

Two fake-quant arithmetic paths exist: :func:`fake_quantize` (checked, differentiable, any
rounding mode) and :func:`fake_quantize_fast` (unchecked inference hot loop, half to even).

Every function accepts torch tensors, and numpy arrays in -> numpy arrays out.
"""

from __future__ import annotations

from typing import Literal

import torch

from qlab import granularity
from qlab._checks import (
    as_float_tensor,
    as_param_tensor,
    check_bits,
    check_bool,
    check_choice,
    check_finite,
    check_generator,
    check_no_nan,
    check_qrange,
    numpy_io,
)
from qlab.rounding import RoundingMode, clamp, round_values

Convention = Literal["textbook", "torch"]
CONVENTIONS = ("textbook", "torch")
EPS = torch.finfo(torch.float32).eps  # 2**-23: torch.ao's smallest scale
MIN_SCALE = torch.finfo(torch.float32).tiny  # smallest normal float32; 1 / scale stays finite
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
HALF_DTYPES = (torch.float16, torch.bfloat16)

ParamLike = torch.Tensor | float | int


def qrange(bits: int, signed: bool = True, narrow: bool = False) -> tuple[int, int]:
    """Integer range (qmin, qmax) of a ``bits``-bit integer.

    - signed:            [-2^(b-1), 2^(b-1) - 1]       e.g. int8 [-128, 127]
    - signed, narrow:    [-(2^(b-1) - 1), 2^(b-1) - 1]  e.g. TFLite int8 weights [-127, 127]
    - unsigned:          [0, 2^b - 1]                    e.g. uint8 [0, 255]

    The narrow range makes the grid symmetric around zero; it is defined for signed
    integers only (an unsigned narrow range would exclude zero, which torch rejects).
    """
    bits = check_bits(bits)
    signed, narrow = check_bool(signed, "signed"), check_bool(narrow, "narrow")
    if not signed:
        if narrow:
            raise ValueError(
                "narrow=True is defined for signed ranges only (e.g. int8 weights [-127, 127]); "
                "use signed=True or narrow=False"
            )
        return 0, 2**bits - 1
    qmax = 2 ** (bits - 1) - 1
    return (-qmax if narrow else -qmax - 1), qmax


def _as_range_tensor(v: ParamLike, name: str) -> torch.Tensor:
    t = as_param_tensor(v, name).to(torch.float32)
    return check_finite(t, name)


def _check_span(span: torch.Tensor) -> None:
    if not bool(torch.isfinite(span).all()):
        raise ValueError("max_val - min_val overflows float32; the range is too wide to quantize")


def qparams_from_range(
    min_val: ParamLike,
    max_val: ParamLike,
    bits: int = 8,
    signed: bool = False,
    symmetric: bool = False,
    narrow: bool = False,
    convention: Convention = "textbook",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale (float32) and zero-point (int32) that map [min_val, max_val] onto the grid.

    The range is first widened to include zero, mn = min(min_val, 0), mx = max(max_val, 0),
    so that real 0 (padding, ReLU outputs) is represented exactly. With (qmin, qmax) =
    ``qrange(bits, signed, narrow)`` and eps = 2^-23:

    Affine (asymmetric) -- identical to torch.ao ``_calculate_qparams``:
        scale = max((mx - mn) / (qmax - qmin), eps)
        zero_point = clamp(qmin - round(mn / scale), qmin, qmax)

    Symmetric, amax = max(-mn, mx), ``convention="textbook"`` (TFLite, Jacob et al. 2018):
        signed:   zero_point = 0,        scale = amax / qmax           (int8: amax / 127)
        unsigned: zero_point = 2^(b-1),  scale = amax / (qmax - 2^(b-1))
    so +-amax land exactly on codes +-qmax (the lone code -2^(b-1) stays unused unless
    ``narrow=True``).

    Symmetric, ``convention="torch"`` (torch.ao observers with qscheme per_*_symmetric):
        scale = amax / ((qmax - qmin) / 2)                              (int8: amax / 127.5)
        zero_point = 0 (signed) or (qmin + qmax) // 2 (unsigned, explicit quant range)
    torch spreads amax over half of the full 256-code range, so +amax rounds to code 127.5
    and is clipped by half a step; the textbook formula never clips the largest weight.
    (A torch quint8 observer created *without* an explicit quant range uses zero_point 128.)

    Args:
        min_val, max_val: the clipping range; scalars (per tensor) or 1-D tensors (per
            channel/group). Must be finite with min_val <= max_val.
    """
    check_choice(convention, CONVENTIONS, "convention")
    symmetric = check_bool(symmetric, "symmetric")
    qmin, qmax = qrange(bits, signed, narrow)
    min_val, max_val = _as_range_tensor(min_val, "min_val"), _as_range_tensor(max_val, "max_val")
    if min_val.shape != max_val.shape:
        raise ValueError(f"min_val and max_val shapes differ: {tuple(min_val.shape)} vs {tuple(max_val.shape)}")
    if bool((min_val > max_val).any()):
        raise ValueError("min_val must be <= max_val for every channel")
    mn = torch.minimum(min_val, torch.zeros_like(min_val))
    mx = torch.maximum(max_val, torch.zeros_like(max_val))
    eps = torch.tensor(EPS, dtype=torch.float32)
    _check_span(mx - mn)
    if not symmetric:
        scale = torch.maximum((mx - mn) / float(qmax - qmin), eps)
        zero_point = torch.clamp(qmin - torch.round(mn / scale).to(torch.int32), qmin, qmax)
        return scale, zero_point.to(torch.int32)
    amax = torch.maximum(-mn, mx)
    if convention == "torch":
        zp = 0 if signed else (qmin + qmax) // 2
        scale = amax / (float(qmax - qmin) / 2)
    else:
        zp = 0 if signed else (qmin + qmax + 1) // 2
        scale = amax / float(qmax - zp)
    return torch.maximum(scale, eps), torch.full(amax.shape, zp, dtype=torch.int32)


@numpy_io
def calc_qparams(
    x: torch.Tensor,
    bits: int = 8,
    signed: bool = False,
    symmetric: bool = False,
    axis: int | None = None,
    group_size: int | None = None,
    narrow: bool = False,
    convention: Convention = "textbook",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Min/max quantization parameters of ``x``: ``qparams_from_range(min(x), max(x), ...)``.

    Granularity (see :mod:`qlab.granularity`): per tensor (default; 0-dim results), per
    channel along ``axis`` (shape ``(x.shape[axis],)``), or per group of ``group_size``
    along the last axis (shape ``x.shape[:-1] + (n_groups,)``).

    Affine results equal torch.ao ``MinMaxObserver`` / ``PerChannelMinMaxObserver(ch_axis=axis)``
    built with ``quant_min, quant_max = qrange(bits, signed)``, bit for bit. Symmetric
    results follow ``convention`` (see :func:`qparams_from_range`).

    Raises:
        TypeError: ``x`` is not floating point.
        ValueError: ``x`` is empty or holds NaN/inf; bad ``bits``, ``axis`` or ``group_size``.
    """
    x = check_finite(as_float_tensor(x))
    min_val, max_val = granularity.minmax(x, axis, group_size)
    return qparams_from_range(min_val, max_val, bits, signed, symmetric, narrow, convention)


def _check_params(
    scale: ParamLike,
    zero_point: ParamLike,
    x: torch.Tensor,
    axis: int | None,
    group_size: int | None,
    qrange_: tuple[int, int] | None,
) -> tuple[torch.Tensor, torch.Tensor, int | None]:
    """Validate scale/zero_point for ``x``; return them as float32/int32 plus the axis."""
    axis = granularity.check_granularity(x, axis, group_size)
    expected = granularity.param_shape(x, axis, group_size)
    scale_t = as_param_tensor(scale, "scale").to(torch.float32)
    zp_t = as_param_tensor(zero_point, "zero_point")
    for name, t in (("scale", scale_t), ("zero_point", zp_t)):
        if tuple(t.shape) != expected and not (expected == () and t.numel() == 1):
            raise ValueError(
                f"{name} has shape {tuple(t.shape)} but this granularity needs {expected} "
                f"(axis={axis}, group_size={group_size}, x.shape={tuple(x.shape)})"
            )
    if not bool((torch.isfinite(scale_t) & (scale_t > 0)).all()):
        raise ValueError("scale must be finite and > 0 everywhere")
    if bool((scale_t < MIN_SCALE).any()):
        raise ValueError(
            f"scale must be >= {MIN_SCALE:.4g} (the smallest normal float32), got {float(scale_t.min()):.4g}; "
            "1 / scale would overflow to inf"
        )
    if zp_t.is_floating_point() and not bool((zp_t == torch.round(zp_t)).all()):
        raise ValueError("zero_point must hold whole numbers")
    if bool(((zp_t < INT32_MIN) | (zp_t > INT32_MAX)).any()):
        raise ValueError(f"zero_point must fit in int32 [{INT32_MIN}, {INT32_MAX}], got {zp_t.max().item()!r}")
    zp_t = zp_t.to(torch.int32)
    if qrange_ is not None and not bool(((zp_t >= qrange_[0]) & (zp_t <= qrange_[1])).all()):
        raise ValueError(f"zero_point must lie within [quant_min, quant_max] = [{qrange_[0]}, {qrange_[1]}]")
    scale_b = granularity.broadcast_param(scale_t.reshape(expected), x, axis, group_size)
    zp_b = granularity.broadcast_param(zp_t.reshape(expected), x, axis, group_size)
    return scale_b, zp_b, axis


def _grouped(x: torch.Tensor, group_size: int | None) -> torch.Tensor:
    return x if group_size is None else granularity.group_view(x, group_size)


def _working(x: torch.Tensor) -> torch.Tensor:
    """float16/bfloat16 as float32 (torch's kernels compute half inputs in float32); others unchanged."""
    return x.to(torch.float32) if x.dtype in HALF_DTYPES else x


def _codes(
    x: torch.Tensor,
    scale: torch.Tensor,
    zero_point: torch.Tensor,
    rounding: RoundingMode = "half_even",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Unclamped codes zero_point + round(x * (1 / scale)) in float64 (torch's order of operations).

    The product and the rounding happen in x's working precision (float32 for float32 and half
    inputs); the zero-point is added in float64, where every int32 code is exact.
    """
    r = round_values(_working(x) * torch.reciprocal(scale), rounding, generator)
    return r.to(torch.float64) + zero_point


def _to_real(q: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor) -> torch.Tensor:
    """(q - zero_point) * scale: the difference exact in float64, the product in float32."""
    return (q.to(torch.float64) - zero_point).to(torch.float32) * scale


@numpy_io
def quantize(
    x: torch.Tensor,
    scale: ParamLike,
    zero_point: ParamLike,
    quant_min: int,
    quant_max: int,
    axis: int | None = None,
    rounding: RoundingMode = "half_even",
    group_size: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Integer codes q = clamp(zero_point + round(x * (1 / scale)), quant_min, quant_max), int32.

    Multiplying by the float32 reciprocal (not dividing) and adding the zero-point after
    rounding is what torch's fake-quantize kernels do; with ``rounding="half_even"`` the
    codes therefore match torch bit for bit. ``rounding="half_away"`` gives TFLite's
    Quantize rounding (std::round); see :mod:`qlab.rounding` for all modes.
    The clamp happens in float64, so +-inf and values beyond an int32 range saturate to
    quant_max/quant_min; NaN raises ``ValueError`` (torch would silently return quant_min).
    """
    x = check_no_nan(as_float_tensor(x))
    qr = check_qrange(quant_min, quant_max)
    check_generator(generator)
    s, z, _ = _check_params(scale, zero_point, x, axis, group_size, qr)
    q = clamp(_codes(_grouped(x.detach(), group_size), s, z, rounding, generator), *qr)
    return q.reshape(x.shape).to(torch.int32)


@numpy_io
def dequantize(
    q: torch.Tensor,
    scale: ParamLike,
    zero_point: ParamLike,
    axis: int | None = None,
    group_size: int | None = None,
) -> torch.Tensor:
    """Real values r_hat = (q - zero_point) * scale (float32) from integer codes ``q``."""
    if not isinstance(q, torch.Tensor) or q.is_floating_point() or q.dtype == torch.bool:
        raise TypeError(f"q must be an integer tensor of codes, got {getattr(q, 'dtype', type(q).__name__)}")
    s, z, _ = _check_params(scale, zero_point, q, axis, group_size, None)
    return _to_real(_grouped(q, group_size), s, z).reshape(q.shape)


class _FakeQuantizeSTE(torch.autograd.Function):
    """Forward: dequantize(clamp(codes)). Backward: straight-through inside the range.

    grad_x = grad_y * [quant_min <= zero_point + round(x / scale) <= quant_max]
    (the clip mask of ``torch.fake_quantize_per_tensor_affine``); no gradient flows to
    scale or zero_point (they are fixed parameters here).
    """

    @staticmethod
    def forward(ctx, x, scale, zero_point, quant_min, quant_max, rounding, generator):  # type: ignore[override]
        qf = _codes(x, scale, zero_point, rounding, generator)
        ctx.save_for_backward((qf >= quant_min) & (qf <= quant_max))
        return _to_real(torch.clamp(qf, quant_min, quant_max), scale, zero_point)

    @staticmethod
    def backward(ctx, grad_y):  # type: ignore[override]
        (mask,) = ctx.saved_tensors
        return grad_y * mask, None, None, None, None, None, None


@numpy_io
def fake_quantize(
    x: torch.Tensor,
    scale: ParamLike,
    zero_point: ParamLike,
    quant_min: int,
    quant_max: int,
    axis: int | None = None,
    group_size: int | None = None,
    rounding: RoundingMode = "half_even",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Quantize then dequantize in float32: (clamp(zp + round(x / s), qmin, qmax) - zp) * s.

    With ``rounding="half_even"`` this equals ``torch.fake_quantize_per_tensor_affine``
    (``axis=None``) and ``torch.fake_quantize_per_channel_affine`` (``axis=c``) bit for bit,
    forward and backward (straight-through estimator with its clip mask). ``rounding`` and
    ``generator`` work as in :func:`quantize`; ``group_size`` applies the same formula per
    group along the last axis. float16/bfloat16 inputs are computed in float32 and returned
    in their own dtype. NaN raises ``ValueError``.
    """
    x = check_no_nan(as_float_tensor(x))
    qr = check_qrange(quant_min, quant_max)
    check_generator(generator)
    s, z, _ = _check_params(scale, zero_point, x, axis, group_size, qr)
    xg = _grouped(_working(x), group_size)
    if torch.is_grad_enabled() and x.requires_grad:
        y = _FakeQuantizeSTE.apply(xg, s, z, *qr, rounding, generator)
    else:  # same arithmetic, without building the gradient mask
        y = _to_real(torch.clamp(_codes(xg, s, z, rounding, generator), *qr), s, z)
    y = y.reshape(x.shape)
    return y.to(x.dtype) if x.dtype in HALF_DTYPES else y


def fake_quantize_fast(
    x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, quant_min: int, quant_max: int
) -> torch.Tensor:
    """:func:`fake_quantize`'s arithmetic for inference hot loops (whole-model evaluation).

    For integer codes, clamp(zp + r, qmin, qmax) - zp = clamp(r, qmin - zp, qmax - zp), so

        y = clamp(round(x * (1 / scale)), qmin - zp, qmax - zp) * scale

    gives the same values as :func:`fake_quantize` in three passes over memory instead of
    six (a code of exactly 0 may come out as -0.0 instead of +0.0; IEEE-equal). No argument
    checks and no gradient: callers pass float32 ``x`` and parameters that already broadcast
    against it (see :func:`qlab.granularity.broadcast_param`).
    """
    r = torch.round(x * torch.reciprocal(scale))
    if zero_point.dim() == 0:
        zp = int(zero_point)
        return r.clamp_(quant_min - zp, quant_max - zp).mul_(scale)
    return r.clamp_(quant_min - zero_point, quant_max - zero_point).mul_(scale)
