"""The per-layer report of a quantized model: SQNR, ranges, bits and sizes.

Sizes count what integer inference stores: each quantized weight at ``weight_bits``
(ceil(numel * bits / 8) bytes), biases at 32 bits (they become int32 with scale
s_in * s_w), every stored scale at 32 bits plus a 32-bit zero-point when the weights are
affine (symmetric zero-points are 0 and not stored), a static activation range's scale and
zero-point (8 bytes), and every parameter left in float at its own size.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn

from qlab.metrics import sqnr_db

if TYPE_CHECKING:
    from qlab.ptq import ActivationFakeQuant, QuantizedWeight

FLOAT_BITS = 32
REPORT_SAMPLES = 64  # calibration samples on which the report measures activation SQNR


@dataclass(frozen=True)
class LayerReport:
    """One row of the per-layer report (sizes in bytes, SQNR in dB)."""

    name: str
    kind: str
    weight_shape: tuple[int, ...]
    weight_bits: int
    granularity: str
    weight_range: tuple[float, float]
    weight_sqnr_db: float
    act_bits: int | None
    act_mode: str | None
    act_range: tuple[float, float] | None
    act_sqnr_db: float | None
    float_bytes: int
    quant_bytes: int


@dataclass(frozen=True)
class FloatParameter:
    """A parameter left in float by quantize_model (counted at its own size in both totals)."""

    name: str
    shape: tuple[int, ...]
    nbytes: int


@dataclass(frozen=True)
class PTQReport:
    """The quantized layers' rows plus every parameter left in float.

    Iterating, ``len`` and indexing go over the quantized layers' :class:`LayerReport` rows.
    """

    layers: list[LayerReport]
    float_params: list[FloatParameter] = field(default_factory=list)

    def __iter__(self) -> Iterator[LayerReport]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> LayerReport:
        return self.layers[i]


def _act_stats(act: ActivationFakeQuant, x: torch.Tensor | None) -> tuple[tuple[float, float] | None, float | None]:
    """(static range, SQNR on the first REPORT_SAMPLES calibration inputs; None without inputs)."""
    act_range = (float(act.act_range[0]), float(act.act_range[1])) if act.mode == "static" else None
    if x is None:
        return act_range, None
    x = x[:REPORT_SAMPLES]
    with torch.inference_mode():
        return act_range, sqnr_db(x, act(x))


def layer_report(name: str, layer: nn.Module, qw: QuantizedWeight, bits: int, symmetric: bool,
                 act: ActivationFakeQuant | None, x: torch.Tensor | None) -> LayerReport:
    """The report row of one quantized layer (``x``: its calibration inputs, or None)."""
    w = layer.weight.detach()
    n_bias = 0 if layer.bias is None else layer.bias.numel()
    param_bytes = qw.stored_params * (4 if symmetric else 8)
    act_bytes = 8 if act is not None and act.mode == "static" else 0
    act_range, act_sqnr = _act_stats(act, x) if act is not None else (None, None)
    return LayerReport(
        name=name,
        kind=type(layer).__name__,
        weight_shape=tuple(w.shape),
        weight_bits=bits,
        granularity=qw.granularity,
        weight_range=(float(w.min()), float(w.max())),
        weight_sqnr_db=sqnr_db(w, qw.weight),
        act_bits=None if act is None else act.bits,
        act_mode=None if act is None else act.mode,
        act_range=act_range,
        act_sqnr_db=act_sqnr,
        float_bytes=(w.numel() + n_bias) * FLOAT_BITS // 8,
        quant_bytes=-(-w.numel() * bits // 8) + n_bias * FLOAT_BITS // 8 + param_bytes + act_bytes,
    )


def model_size(report: PTQReport) -> tuple[int, int]:
    """(float32 bytes, quantized bytes) of the whole model: quantized layers with their scales
    and zero-points, plus every parameter left in float (same size in both)."""
    floats = sum(p.nbytes for p in report.float_params)
    return sum(r.float_bytes for r in report) + floats, sum(r.quant_bytes for r in report) + floats


def format_report(report: PTQReport) -> str:
    """The per-layer report as a fixed-width text table (deterministic, for notebooks)."""
    head = f"{'layer':<16}{'kind':<8}{'W bits':>7}  {'granularity':<16}{'W SQNR':>8}{'A bits':>7}{'A SQNR':>8}{'bytes':>9}"
    lines = [head, "-" * len(head)]
    for r in report:
        a_bits = "-" if r.act_bits is None else str(r.act_bits)
        a_sqnr = "-" if r.act_sqnr_db is None else f"{r.act_sqnr_db:.1f}"
        lines.append(
            f"{r.name:<16}{r.kind:<8}{r.weight_bits:>7}  {r.granularity:<16}{r.weight_sqnr_db:>8.1f}"
            f"{a_bits:>7}{a_sqnr:>8}{r.quant_bytes:>9}"
        )
    for p in report.float_params:
        lines.append(f"{p.name:<16}{'float':<8}{FLOAT_BITS:>7}  {'(not quantized)':<16}{'-':>8}{'-':>7}{'-':>8}{p.nbytes:>9}")
    fp, q = model_size(report)
    lines.append(f"total: {q} bytes quantized vs {fp} bytes float32 ({fp / q:.2f}x smaller)")
    return "\n".join(lines)
