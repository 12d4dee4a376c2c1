"""The integer model in the engines people deploy on x86: onnxruntime (ONNX QDQ) and torch int8.

Both take a model from :func:`qlab.integer.convert`, so they carry exactly its codes, scales
and zero-points:

- :func:`to_onnx` writes an ONNX graph in QDQ form: QuantizeLinear/DequantizeLinear pairs
  around float Conv/Gemm nodes, int8 weights with per-channel scales, int32 biases at scale
  s_in · s_w. onnxruntime fuses each DQ -> Conv -> Q pattern into an integer QLinearConv/
  QGemm kernel; ``weight_dtype="uint8"`` stores weights as uint8 with zero-point 128 (the same
  real values), which selects onnxruntime's u8u8 kernels instead of u8s8 ones.
- :func:`to_torch_int8` builds torch.ao quantized modules (quint8 activations, qint8
  per-channel weights) for torch's x86/fbgemm engine; the logits get an 8-bit grid of their
  own (torch's quantized layers always requantize their output).

Both engines requantize in float (``lrintf(acc · M)``, ties to even), not with gemmlowp's
fixed point, so codes may differ from qlab's integer model by 1 LSB.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn
from torch.ao.nn import quantized as nnq
from torch.ao.nn.intrinsic import quantized as nniq

from qlab import integer
from qlab.integer import IntegerGlobalAvgPool, IntegerLayer, QuantizeInput

OPSET = 21
WEIGHT_DTYPES = ("int8", "uint8")


class _Graph:
    """Accumulates ONNX nodes and initializers."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.grid: tuple[str, str] | None = None  # (scale, zero-point) names of the last QDQ pair

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def qdq(self, x: str, name: str, scale: float | str, zero_point: int | str) -> tuple[str, str]:
        """Quantize ``x`` to uint8 codes and dequantize again; returns (codes, dequantized).

        ``scale``/``zero_point``: values (new initializers) or names of existing ones; the
        last grid used is kept in ``self.grid``.
        """
        s = scale if isinstance(scale, str) else self.const(f"{name}_scale", np.array(scale, dtype=np.float32))
        z = zero_point if isinstance(zero_point, str) else self.const(f"{name}_zero_point", np.array(zero_point, dtype=np.uint8))
        self.grid = (s, z)
        q = self.node("QuantizeLinear", [x, s, z], f"{name}_codes")
        return q, self.node("DequantizeLinear", [q, s, z], f"{name}_dq")


def _check_8bit(imodel: nn.Module) -> None:
    q = imodel.quantize_input
    if (q.qmin, q.qmax) != (0, 255):
        raise ValueError(f"export needs 8-bit unsigned activations (codes 0..255), got [{q.qmin}, {q.qmax}]")


def _weight(g: _Graph, name: str, layer: IntegerLayer, weight_dtype: str) -> tuple[str, str]:
    """Dequantized weight and bias names (weight per output channel, bias int32 at s_in · s_w)."""
    w = layer.weight.numpy().astype(np.int8)
    zp = np.zeros(w.shape[0], dtype=np.int8)
    if weight_dtype == "uint8":
        w, zp = (w.astype(np.int16) + 128).astype(np.uint8), np.full(w.shape[0], 128, dtype=np.uint8)
    s = layer.w_scale.numpy().astype(np.float32)
    wq = g.const(f"{name}_weight", w)
    wdq = g.node("DequantizeLinear", [wq, g.const(f"{name}_w_scale", s), g.const(f"{name}_w_zp", zp)], f"{name}_weight_dq", axis=0)
    bias_scale = (np.float32(layer.in_scale) * s).astype(np.float32)
    b = g.const(f"{name}_bias", layer.bias.numpy().astype(np.int32))
    bz = g.const(f"{name}_b_zp", np.zeros(len(s), dtype=np.int32))
    bdq = g.node("DequantizeLinear", [b, g.const(f"{name}_b_scale", bias_scale), bz], f"{name}_bias_dq", axis=0)
    return wdq, bdq


def _layer(g: _Graph, name: str, layer: IntegerLayer, x: str, weight_dtype: str) -> str:
    """Conv/Gemm with the fused activation, in float between DQ and Q nodes."""
    wdq, bdq = _weight(g, name, layer, weight_dtype)
    if layer.kind == "linear":
        y = g.node("Gemm", [x, wdq, bdq], f"{name}_out", transB=1)
    else:
        ph, pw = layer.padding
        kernel = list(layer.weight.shape[-2:])
        y = g.node("Conv", [x, wdq, bdq], f"{name}_out", strides=list(layer.stride), pads=[ph, pw, ph, pw],
                   group=layer.groups, kernel_shape=kernel)
    if layer.activation == "relu":
        y = g.node("Relu", [y], f"{name}_relu")
    elif layer.activation == "relu6":
        lo, hi = g.const(f"{name}_lo", np.array(0, np.float32)), g.const(f"{name}_hi", np.array(6, np.float32))
        y = g.node("Clip", [y, lo, hi], f"{name}_relu6")
    return y


def to_onnx(imodel: nn.Module, path: str | Path | None = None, weight_dtype: str = "int8",
            layer_outputs: bool = False) -> onnx.ModelProto:
    """The QDQ ONNX model of a converted model (saved to ``path`` if given).

    Input ``images`` float (N, C, H, W), or (N, features) if the first layer is a Linear;
    output ``logits`` float (the last layer's dequantized output). ``layer_outputs=True``
    also outputs the uint8 codes after each layer (``<layer>_codes``), for comparisons.
    """
    if weight_dtype not in WEIGHT_DTYPES:
        raise ValueError(f"weight_dtype must be one of {WEIGHT_DTYPES}, got {weight_dtype!r}")
    _check_8bit(imodel)
    g = _Graph()
    x, outputs = "images", []
    children = list(imodel.named_children())
    rank = 2 if isinstance(children[1][1], IntegerLayer) and children[1][1].kind == "linear" else 4
    in_rank = rank
    for name, m in children:
        if isinstance(m, QuantizeInput):
            codes, x = g.qdq(x, name, float(m.scale), m.zero_point)
        elif isinstance(m, IntegerLayer):
            x = _layer(g, name, m, x, weight_dtype)
            if m.out_scale is not None:
                codes, x = g.qdq(x, name, float(m.out_scale), m.out_zero_point)
                outputs.append((codes, 2 if m.kind == "linear" else 4))
        elif isinstance(m, IntegerGlobalAvgPool):  # the mean stays on the grid of the codes it averages
            _, x = g.qdq(g.node("GlobalAveragePool", [x], f"{name}_out"), name, *g.grid)
        elif isinstance(m, nn.Flatten):
            x = g.node("Flatten", [x], f"{name}_out", axis=1)
            rank = 2
    logits = g.node("Identity", [x], "logits")
    graph_outputs = [helper.make_tensor_value_info(logits, TensorProto.FLOAT, ["N"] + [None] * (rank - 1))]
    if layer_outputs:
        graph_outputs += [helper.make_tensor_value_info(o, TensorProto.UINT8, ["N"] + [None] * (r - 1)) for o, r in outputs]
    inputs = [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N"] + [None] * (in_rank - 1))]
    graph = helper.make_graph(g.nodes, "qlab_int8", inputs,
                              graph_outputs, g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="qlab")
    onnx.checker.check_model(model)
    if path is not None:
        onnx.save(model, str(path))
    return model


def float_onnx(model: nn.Module, path: str | Path | None = None) -> onnx.ModelProto:
    """The float32 model as ONNX (Conv/Gemm/Relu/Clip graph) for speed comparisons.

    Built by converting nothing: each Conv2d/Linear with its float weight, BN already folded.
    """
    g = _Graph()
    x = "images"
    for name, m in model.named_children():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            w = g.const(f"{name}_weight", m.weight.detach().numpy())
            b = g.const(f"{name}_bias", (m.bias.detach() if m.bias is not None else torch.zeros(m.weight.shape[0])).numpy())
            if isinstance(m, nn.Linear):
                x = g.node("Gemm", [x, w, b], f"{name}_out", transB=1)
            else:
                ph, pw = m.padding
                x = g.node("Conv", [x, w, b], f"{name}_out", strides=list(m.stride), pads=[ph, pw, ph, pw], group=m.groups)
        elif isinstance(m, nn.ReLU):
            x = g.node("Relu", [x], f"{name}_out")
        elif isinstance(m, nn.ReLU6):
            lo, hi = g.const(f"{name}_lo", np.array(0, np.float32)), g.const(f"{name}_hi", np.array(6, np.float32))
            x = g.node("Clip", [x, lo, hi], f"{name}_out")
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            x = g.node("GlobalAveragePool", [x], f"{name}_out")
        elif isinstance(m, nn.Flatten):
            x = g.node("Flatten", [x], f"{name}_out", axis=1)
        elif not isinstance(m, (nn.Identity, nn.BatchNorm2d)):
            raise ValueError(f"layer {name!r} ({type(m).__name__}) has no ONNX translation here")
    logits = g.node("Identity", [x], "logits")
    graph = helper.make_graph(g.nodes, "qlab_fp32", [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 1, 28, 28])],
                              [helper.make_tensor_value_info(logits, TensorProto.FLOAT, ["N", None])], g.inits)
    out = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="qlab")
    onnx.checker.check_model(out)
    if path is not None:
        onnx.save(out, str(path))
    return out


def ort_session(model: onnx.ModelProto, threads: int = 1):
    """An onnxruntime CPU session of ``model`` with all graph optimizations (QDQ fusion) and ``threads`` threads."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _torch_layer(layer: IntegerLayer, out: tuple[float, int]) -> nn.Module:
    """The torch.ao quantized module of one IntegerLayer, requantizing to ``out`` = (scale, zero_point)."""
    relu = layer.activation == "relu"
    w = torch._make_per_channel_quantized_tensor(
        layer.weight.to(torch.int8), layer.w_scale.double(), torch.zeros(layer.w_scale.numel(), dtype=torch.int64), 0
    )
    bias = layer.bias.double() * layer.in_scale.double() * layer.w_scale.double()
    if layer.kind == "linear":
        mod = (nniq.LinearReLU if relu else nnq.Linear)(w.shape[1], w.shape[0])
    else:
        cls = nniq.ConvReLU2d if relu else nnq.Conv2d
        mod = cls(w.shape[1] * layer.groups, w.shape[0], tuple(w.shape[-2:]), stride=layer.stride, padding=layer.padding, groups=layer.groups)
    mod.set_weight_bias(w, bias.float())
    mod.scale, mod.zero_point = float(out[0]), int(out[1])
    return nn.Sequential(mod, nnq.ReLU6()) if layer.activation == "relu6" else mod


def to_torch_int8(imodel: nn.Module, logits_range: tuple[float, float] | None = None) -> nn.Sequential:
    """torch.ao quantized modules with the integer model's codes (run with the x86/fbgemm engine).

    The logits are requantized on the uint8 affine grid of ``logits_range`` (e.g. the integer
    model's logit min/max on calibration images; needed only if the last layer returns
    logits) and dequantized at the end.
    """
    _check_8bit(imodel)
    logits_q = None
    if logits_range is not None:
        lo, hi = min(logits_range[0], 0.0), max(logits_range[1], 0.0)
        logits_q = ((hi - lo) / 255, int(round(-lo / ((hi - lo) / 255))))
    mods: list[tuple[str, nn.Module]] = []
    for name, m in imodel.named_children():
        if isinstance(m, QuantizeInput):
            mods.append((name, nnq.Quantize(float(m.scale), m.zero_point, torch.quint8)))
        elif isinstance(m, IntegerLayer):
            if m.out_scale is None and logits_q is None:
                raise ValueError(f"layer {name!r} returns logits: pass logits_range=(min, max) for their uint8 grid")
            out = logits_q if m.out_scale is None else (float(m.out_scale), m.out_zero_point)
            mods.append((name, _torch_layer(m, out)))
        elif isinstance(m, IntegerGlobalAvgPool):
            mods.append((name, nn.AdaptiveAvgPool2d(1)))
        else:
            mods.append((name, m))
    mods.append(("dequantize", nnq.DeQuantize()))
    return nn.Sequential(OrderedDict(mods)).eval()


def engine_codes(imodel: nn.Module, name: str, codes: torch.Tensor) -> dict[str, torch.Tensor]:
    """Output codes (int64) of layer ``name`` alone, fed input ``codes``: qlab, torch int8 and onnxruntime."""
    layer = getattr(imodel, name)
    sub = integer.single_layer_model(imodel, name)
    x = integer.dequantize_codes(layer, codes)
    with torch.inference_mode():
        out = {"qlab": layer(codes).long(), "torch int8": to_torch_int8(sub)[:-1](x).int_repr().long()}
    session = ort_session(to_onnx(sub, layer_outputs=True))
    out["onnxruntime"] = torch.from_numpy(session.run(None, {"images": x.numpy()})[1]).long()
    return out


def engine_agreement(imodel: nn.Module, images: torch.Tensor) -> list[dict]:
    """Per requantizing layer, each engine fed the integer model's input codes on ``images``:
    share of output codes equal to qlab's and within 1 LSB of them (keys ``<engine> exact``,
    ``<engine> within 1``)."""
    inputs = integer.layer_inputs(imodel, images)
    rows = []
    for name, layer in integer.integer_layers(imodel):
        if layer.out_scale is None:
            continue
        codes = engine_codes(imodel, name, inputs[name])
        row = {"layer": name}
        for engine in ("torch int8", "onnxruntime"):
            d = (codes[engine] - codes["qlab"]).abs()
            row[f"{engine} exact"] = round(float((d == 0).float().mean()), 6)
            row[f"{engine} within 1"] = round(float((d <= 1).float().mean()), 6)
        rows.append(row)
    return rows
