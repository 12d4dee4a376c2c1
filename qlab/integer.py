"""Integer-only inference: what a deployed int8 model computes, bit for bit.

:func:`convert` turns a static W8A8 model from :func:`qlab.ptq.quantize_model` into a module
in which only integers flow between the input quantization and the output dequantization:

- activations: unsigned affine codes q = round(x / s) + z (qlab's and torch's quint8 grid);
- weights: signed symmetric codes per output channel (zero-point 0);
- bias: int32 codes round(b / (s_in * s_w[c])) at the accumulator's scale;
- accumulator: int32, Σ (qa - za)(qw - zw) = Σ qa·qw - zw·Σ qa - za·Σ qw + n·za·zw
  (zw = 0 here, so the last two cross terms vanish and za·Σ qw is a per-channel constant);
- requantization: q_out = clamp(z_out + acc · M, lo, hi) with M = s_in · s_w[c] / s_out
  applied in fixed point (:mod:`qlab.requantize`); ReLU is the clamp lo = z_out and ReLU6
  adds hi = z_out + round(6 / s_out);
- global average pooling: the integer mean of codes, rounded half away from zero;
- the last layer's accumulator is dequantized to float logits: acc · s_in · s_w[c].

torch has no integer convolution on the CPU, so Σ qa·qw is evaluated by float64 conv/linear
on the integer codes: every product and partial sum is an integer below 2^53, hence exact
(tests compare with an int64 reference). Everything outside that one call is integer.

The only code that reads qlab.ptq's modules is :func:`read_quantized_layers`.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from qlab.affine import quantize
from qlab.ptq import QuantizedLayer
from qlab.requantize import INT32_MAX, INT32_MIN, multiply_by_quantized_multiplier, quantize_multiplier

ACTIVATIONS = {nn.ReLU: "relu", nn.ReLU6: "relu6"}


@dataclass(frozen=True)
class LayerParams:
    """What integer inference needs from one quantized Conv2d/Linear (read by :func:`read_quantized_layers`)."""

    name: str
    layer: nn.Module  # float Conv2d/Linear (geometry and float bias)
    w_codes: torch.Tensor  # int64, layer.weight's shape
    w_scale: torch.Tensor  # float32 (C_out,)
    in_scale: torch.Tensor  # float32 scalar
    in_zero_point: int
    in_qrange: tuple[int, int]


def read_quantized_layers(qmodel: nn.Module) -> dict[str, LayerParams]:
    """Scales, zero-points and codes of every QuantizedLayer of a qlab.ptq model, by name.

    Weight codes are recovered as round(W_fq / s_w) from the fake-quantized weight (exact:
    W_fq = code * s_w). Requires static per-tensor activations and symmetric per-channel
    (or per-tensor) weights: the integer kernels have no per-group or dynamic path.
    """
    params = {}
    for name, m in qmodel.named_children():
        if not isinstance(m, QuantizedLayer):
            continue
        qw, act = m.qweight, m.act
        if act is None or act.mode != "static":
            raise ValueError(f"layer {name!r}: convert needs static activation quantization (act_bits and act_mode='static')")
        if qw.granularity not in ("per_channel", "per_tensor") or bool((qw.zero_point != 0).any()):
            raise ValueError(f"layer {name!r}: convert needs symmetric per-channel or per-tensor weights, got {qw.granularity}")
        c_out = m.layer.weight.shape[0]
        w_scale = qw.scale.reshape(-1).expand(c_out).to(torch.float32)
        shape = (-1,) + (1,) * (m.layer.weight.dim() - 1)
        w_codes = torch.round(m.layer.weight.detach() / w_scale.reshape(shape)).to(torch.int64)
        params[name] = LayerParams(
            name, m.layer, w_codes, w_scale, act.scale.to(torch.float32), int(act.zero_point), (act.quant_min, act.quant_max)
        )
    return params


def code_dtype(qmin: int, qmax: int) -> torch.dtype:
    """The narrowest torch integer dtype holding [qmin, qmax] (uint8, int8, int16 or int32)."""
    for dtype in (torch.uint8, torch.int8, torch.int16):
        info = torch.iinfo(dtype)
        if info.min <= qmin and qmax <= info.max:
            return dtype
    return torch.int32


class QuantizeInput(nn.Module):
    """Float input -> activation codes, q = clamp(round(x / s) + z, qmin, qmax) (ties to even, as torch)."""

    def __init__(self, scale: torch.Tensor, zero_point: int, qmin: int, qmax: int) -> None:
        super().__init__()
        self.register_buffer("scale", scale.clone())
        self.zero_point, self.qmin, self.qmax = zero_point, qmin, qmax

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = quantize(x, self.scale, torch.tensor(self.zero_point, dtype=torch.int32), self.qmin, self.qmax)
        return q.to(code_dtype(self.qmin, self.qmax))


class IntegerLayer(nn.Module):
    """An integer Conv2d/Linear: codes in, int32 accumulator, fixed-point requantization, codes out.

    acc[c] = Σ qa·qw[c] - za·Σ qw[c] + bias[c]            (int32, zw = 0)
    out[c] = clamp(z_out + MultiplyByQuantizedMultiplier(acc[c], M0[c], shift[c]), lo, hi)
    or, for the model's last layer (``out_scale`` None), float logits acc[c] · s_in · s_w[c].
    ``rounding``: "double" (gemmlowp) or "single", see :func:`qlab.requantize.multiply_by_quantized_multiplier`.
    """

    def __init__(self, p: LayerParams, out: tuple[torch.Tensor, int, int, int] | None, activation: str | None,
                 multiplier_bits: int = 32, rounding: str = "double") -> None:
        super().__init__()
        layer = p.layer
        self.kind = "linear" if isinstance(layer, nn.Linear) else "conv"
        self.stride, self.padding, self.groups = (1, 0, 1) if self.kind == "linear" else (layer.stride, layer.padding, layer.groups)
        self.in_zero_point, self.in_qrange, self.activation, self.rounding = p.in_zero_point, p.in_qrange, activation, rounding
        self.register_buffer("in_scale", p.in_scale.clone())
        self.register_buffer("w_scale", p.w_scale.clone())
        self.register_buffer("weight", p.w_codes.to(torch.int8) if p.w_codes.abs().max() <= 127 else p.w_codes.clone())
        self.register_buffer("bias", bias_codes(layer.bias, p.in_scale, p.w_scale))
        self.register_buffer("w_sum", p.w_codes.reshape(p.w_codes.shape[0], -1).sum(dim=1))
        self.out_scale = None
        if out is not None:
            self.out_scale, self.out_zero_point, qmin, qmax = out
            self.register_buffer("multiplier", (p.in_scale.double() * p.w_scale.double() / out[0].double()))
            m0, shift = quantize_multiplier(self.multiplier, multiplier_bits)
            self.register_buffer("m0", m0)
            self.register_buffer("shift", shift)
            self.out_min, self.out_max = activation_clamp(activation, self.out_scale, self.out_zero_point, qmin, qmax)

    def _channel(self, t: torch.Tensor, ndim: int) -> torch.Tensor:
        """Per-channel tensor shaped to broadcast over an output of ``ndim`` dimensions."""
        return t.reshape((1, -1) + (1,) * (ndim - 2))

    def dot(self, x: torch.Tensor) -> torch.Tensor:
        """Σ qa·qw (int64) with padding by the input zero-point (real 0), exact via float64."""
        xd, wd = x.to(torch.float64), self.weight.to(torch.float64)
        if self.kind == "linear":
            out = F.linear(xd, wd)
        else:
            pad = (self.padding[1], self.padding[1], self.padding[0], self.padding[0])
            xd = F.pad(xd, pad, value=float(self.in_zero_point))
            out = F.conv2d(xd, wd, stride=self.stride, groups=self.groups)
        return out.to(torch.int64)

    def accumulate(self, x: torch.Tensor) -> torch.Tensor:
        """The int32 accumulator Σ qa·qw - za·Σ qw + bias, checked to fit int32."""
        dot = self.dot(x)
        acc = dot - self._channel(self.in_zero_point * self.w_sum - self.bias, dot.dim())
        if acc.numel() and (int(acc.min()) < INT32_MIN or int(acc.max()) > INT32_MAX):
            raise OverflowError("int32 accumulator overflow")
        return acc

    def requantize(self, acc: torch.Tensor) -> torch.Tensor:
        """Output codes clamp(z_out + acc · M (fixed point), lo, hi)."""
        m0, shift = self._channel(self.m0, acc.dim()), self._channel(self.shift, acc.dim())
        q = self.out_zero_point + multiply_by_quantized_multiplier(acc, m0, shift, self.rounding)
        return q.clamp(self.out_min, self.out_max).to(code_dtype(self.out_min, self.out_max))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        acc = self.accumulate(x)
        if self.out_scale is None:
            return acc.to(torch.float32) * self._channel(self.in_scale * self.w_scale, acc.dim())
        return self.requantize(acc)

    def extra_repr(self) -> str:
        out = "float logits" if self.out_scale is None else f"codes [{self.out_min}, {self.out_max}]"
        return f"{self.kind}, weight {tuple(self.weight.shape)}, activation={self.activation}, out={out}"


class IntegerGlobalAvgPool(nn.Module):
    """Global average pooling of unsigned codes: (Σ q + n // 2) // n, the mean rounded half up.

    The mean of affine codes is the code of the mean (zero-points cancel), so no rescale is needed.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[-1] * x.shape[-2]
        total = x.to(torch.int64).sum(dim=(-2, -1), keepdim=True)
        return ((total + n // 2) // n).to(x.dtype)


def bias_codes(bias: torch.Tensor | None, in_scale: torch.Tensor, w_scale: torch.Tensor) -> torch.Tensor:
    """int32 bias codes round(b / (s_in · s_w[c])) (ties to even; zero-point 0), as int64; zeros if no bias."""
    if bias is None:
        return torch.zeros(w_scale.shape[0], dtype=torch.int64)
    codes = torch.round(bias.detach().double() / (in_scale.double() * w_scale.double()))
    return codes.clamp(INT32_MIN, INT32_MAX).to(torch.int64)


def activation_clamp(activation: str | None, scale: torch.Tensor, zero_point: int, qmin: int, qmax: int) -> tuple[int, int]:
    """(lo, hi) output clamp with the activation fused: ReLU -> lo = z; ReLU6 -> hi = z + round(6 / s)."""
    if activation is None:
        return qmin, qmax
    lo = max(qmin, zero_point)
    if activation == "relu":
        return lo, qmax
    return lo, min(qmax, zero_point + round(6.0 / float(scale)))


def _activation_after(children: list[tuple[str, nn.Module]], i: int) -> str | None:
    """The ReLU/ReLU6 that follows layer ``i`` (skipping Identity left by BN folding), if any."""
    for _, m in children[i + 1:]:
        if isinstance(m, nn.Identity):
            continue
        return ACTIVATIONS.get(type(m))
    return None


def convert(qmodel: nn.Module, multiplier_bits: int = 32) -> nn.Sequential:
    """An integer-only copy of a static PTQ/QAT model from :func:`qlab.ptq.quantize_model`.

    Layout: ``quantize_input``, then the model's children with each QuantizedLayer replaced
    by an :class:`IntegerLayer` (ReLU/ReLU6 fused into its clamp and dropped),
    AdaptiveAvgPool2d(1) by :class:`IntegerGlobalAvgPool`, Flatten kept, Identity dropped.
    Each layer requantizes to the next layer's input grid; the last returns float logits.
    ``multiplier_bits`` < 32 rounds every M0 to fewer bits (lesson 08's precision dashboard).
    """
    params = read_quantized_layers(qmodel)
    if not params:
        raise ValueError("qmodel has no QuantizedLayer children; quantize it with qlab.ptq.quantize_model first")
    names = list(params)
    first = params[names[0]]
    modules: list[tuple[str, nn.Module]] = [("quantize_input", QuantizeInput(first.in_scale, first.in_zero_point, *first.in_qrange))]
    children = list(qmodel.named_children())
    for i, (name, m) in enumerate(children):
        if name in params:
            k = names.index(name)
            nxt = params[names[k + 1]] if k + 1 < len(names) else None
            out = None if nxt is None else (nxt.in_scale, nxt.in_zero_point, *nxt.in_qrange)
            act = _activation_after(children, i)
            if nxt is None and act is not None:
                raise ValueError(f"an activation after the last layer {name!r} is not supported")
            modules.append((name, IntegerLayer(params[name], out, act, multiplier_bits)))
        elif isinstance(m, nn.AdaptiveAvgPool2d) and m.output_size in (1, (1, 1)):
            modules.append((name, IntegerGlobalAvgPool()))
        elif isinstance(m, nn.Flatten):
            modules.append((name, m))
        elif not isinstance(m, (nn.Identity, *ACTIVATIONS)):
            raise ValueError(f"layer {name!r} ({type(m).__name__}) has no integer version")
    return nn.Sequential(OrderedDict(modules)).eval()


def integer_layers(imodel: nn.Module) -> list[tuple[str, IntegerLayer]]:
    """(name, layer) of every IntegerLayer of a converted model, in order."""
    return [(n, m) for n, m in imodel.named_children() if isinstance(m, IntegerLayer)]


def single_layer_model(imodel: nn.Module, name: str) -> nn.Sequential:
    """``quantize_input`` on layer ``name``'s input grid followed by that layer alone: feed it
    dequantized input codes to compare one layer across engines without earlier differences."""
    layer = getattr(imodel, name)
    qin = QuantizeInput(layer.in_scale, layer.in_zero_point, *layer.in_qrange)
    return nn.Sequential(OrderedDict([("quantize_input", qin), (name, layer)])).eval()


def dequantize_codes(layer: IntegerLayer, codes: torch.Tensor) -> torch.Tensor:
    """Real values (q - z_in) · s_in of a layer's input codes (float32)."""
    return (codes.to(torch.float32) - layer.in_zero_point) * layer.in_scale


def layer_inputs(imodel: nn.Module, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """The input codes of every IntegerLayer of ``imodel`` on ``images``."""
    seen: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_pre_hook(lambda _m, a, n=n: seen.__setitem__(n, a[0])) for n, m in integer_layers(imodel)]
    try:
        with torch.inference_mode():
            imodel(images)
    finally:
        for h in hooks:
            h.remove()
    return seen


@dataclass(frozen=True)
class LayerAgreement:
    """One layer's output codes, integer model vs a float rescale of the same input codes."""

    name: str
    n_codes: int
    exact_share: float
    max_lsb: int


def fake_quant_codes(qmodel: nn.Module, ilayer: IntegerLayer, name: str, x_codes: torch.Tensor) -> torch.Tensor:
    """Layer ``name`` of the fake-quant model on the dequantized codes, quantized on the integer
    layer's output grid: clamp(round(y / s_out) + z_out, lo, hi) with y = float conv + float bias."""
    x = dequantize_codes(ilayer, x_codes)
    with torch.inference_mode():
        y = getattr(qmodel, name).layer(x)
    q = torch.round(y / ilayer.out_scale) + ilayer.out_zero_point
    return q.clamp(ilayer.out_min, ilayer.out_max).to(torch.int64)


def layer_agreement(qmodel: nn.Module, imodel: nn.Module, images: torch.Tensor) -> list[LayerAgreement]:
    """Per layer (last excluded): share of output codes equal to the fake-quant model's and
    the largest difference in LSB, both layers fed the integer model's input codes."""
    inputs = layer_inputs(imodel, images)
    rows = []
    for name, layer in integer_layers(imodel):
        if layer.out_scale is None:
            continue
        with torch.inference_mode():
            q_int = layer(inputs[name]).to(torch.int64)
        diff = (q_int - fake_quant_codes(qmodel, layer, name, inputs[name])).abs()
        rows.append(LayerAgreement(name, diff.numel(), float((diff == 0).float().mean()), int(diff.max())))
    return rows


def accumulator_terms(x_patch: torch.Tensor, w_row: torch.Tensor, za: int, zw: int = 0) -> dict[str, int]:
    """The four integer terms of Σ (qa - za)(qw - zw) for one output, and their sum.

    {"sum_qa_qw": Σ qa·qw, "zw_sum_qa": zw·Σ qa, "za_sum_qw": za·Σ qw, "n_za_zw": n·za·zw,
     "total": Σ qa·qw - zw·Σ qa - za·Σ qw + n·za·zw}
    """
    qa, qw = x_patch.reshape(-1).to(torch.int64), w_row.reshape(-1).to(torch.int64)
    if qa.shape != qw.shape:
        raise ValueError(f"x_patch and w_row need the same number of elements, got {qa.numel()} and {qw.numel()}")
    terms = {
        "sum_qa_qw": int((qa * qw).sum()),
        "zw_sum_qa": zw * int(qa.sum()),
        "za_sum_qw": za * int(qw.sum()),
        "n_za_zw": qa.numel() * za * zw,
    }
    terms["total"] = terms["sum_qa_qw"] - terms["zw_sum_qa"] - terms["za_sum_qw"] + terms["n_za_zw"]
    return terms


def patches(layer: IntegerLayer, x: torch.Tensor) -> torch.Tensor:
    """Input codes seen by each output: (N, positions, groups, fan_in) int64 (padding = za)."""
    x = x.to(torch.int64)
    if layer.kind == "linear":
        return x.reshape(x.shape[0], 1, 1, -1)
    ph, pw = layer.padding
    x = F.pad(x, (pw, pw, ph, ph), value=layer.in_zero_point)
    kh, kw = layer.weight.shape[-2:]
    u = x.unfold(2, kh, layer.stride[0]).unfold(3, kw, layer.stride[1])  # N, C, Ho, Wo, kh, kw
    n, c, ho, wo = u.shape[:4]
    u = u.permute(0, 2, 3, 1, 4, 5).reshape(n, ho * wo, layer.groups, (c // layer.groups) * kh * kw)
    return u


def count_overflows(layer: IntegerLayer, x: torch.Tensor, acc_bits: int, act_bits: int = 8,
                    terms: int | None = None) -> tuple[int, int]:
    """(overflowing sums, sums) of u·w products of a layer in a ``acc_bits``-bit accumulator.

    The unsigned input codes are first rescaled to ``act_bits`` (round(q · (2^a - 1) / qmax),
    what a ``reduce_range`` 7-bit activation grid gives) and multiplied by the signed weight
    codes, as u8·s8 hardware does. ``terms`` = None checks every full dot product (a wrapping
    accumulator fails only if the final sum is out of range); ``terms`` = 2 checks each sum of
    2 consecutive products (x86's vpmaddubsw adds pairs into int16 with saturation).
    """
    if not 2 <= acc_bits <= 64 or not 2 <= act_bits <= 16:
        raise ValueError(f"acc_bits must be in [2, 64] and act_bits in [2, 16], got {acc_bits}, {act_bits}")
    qmax = layer.in_qrange[1]
    u = torch.round(patches(layer, x).double() * ((2**act_bits - 1) / qmax)).to(torch.int64)
    w = layer.weight.to(torch.int64).reshape(layer.groups, -1, u.shape[-1])  # G, C_out/G, fan_in
    prod = u.unsqueeze(-2) * w  # N, P, G, C_out/G, fan_in
    if terms is None:
        sums = prod.sum(dim=-1)
    else:
        pad = (-prod.shape[-1]) % terms
        sums = F.pad(prod, (0, pad)).reshape(*prod.shape[:-1], -1, terms).sum(dim=-1)
    lo, hi = -(2 ** (acc_bits - 1)), 2 ** (acc_bits - 1) - 1
    return int(((sums < lo) | (sums > hi)).sum()), sums.numel()


def max_safe_fan_in(acc_bits: int, act_bits: int, weight_bits: int, signed_act: bool = False) -> int:
    """The largest n with n · max|qa| · max|qw| <= 2^(acc_bits-1) - 1: the worst-case fan-in a
    signed accumulator survives (unsigned activations 2^a - 1, signed weights 2^(w-1))."""
    a = 2 ** (act_bits - 1) if signed_act else 2**act_bits - 1
    return (2 ** (acc_bits - 1) - 1) // (a * 2 ** (weight_bits - 1))

