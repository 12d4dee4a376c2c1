"""One-op int8 TFLite models written with the ``tflite`` schema and ``flatbuffers`` (no TensorFlow).

:func:`one_op_model` writes a CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED model with int8
input/output (affine), int8 weights (symmetric, per output channel) and int32 bias, the
layout the TFLite int8 spec prescribes; :func:`run_litert` runs it in LiteRT's interpreter
with the reference kernels, whose requantization is gemmlowp fixed point.
"""

from __future__ import annotations

import flatbuffers
import numpy as np
import tflite
from ai_edge_litert.interpreter import Interpreter, OpResolverType

KINDS = ("conv", "depthwise", "fc")
_OPS = {
    "conv": tflite.BuiltinOperator.CONV_2D,
    "depthwise": tflite.BuiltinOperator.DEPTHWISE_CONV_2D,
    "fc": tflite.BuiltinOperator.FULLY_CONNECTED,
}


def _vector(b: flatbuffers.Builder, start, values, prepend) -> int:
    start(b, len(values))
    for v in reversed(list(values)):
        prepend(v)
    return b.EndVector()


def _quant(b: flatbuffers.Builder, scale, zero_point, dim: int = 0) -> int:
    scale, zero_point = np.atleast_1d(scale), np.atleast_1d(zero_point)
    s = _vector(b, tflite.QuantizationParametersStartScaleVector, scale.astype(float), b.PrependFloat32)
    z = _vector(b, tflite.QuantizationParametersStartZeroPointVector, zero_point.astype(int), b.PrependInt64)
    tflite.QuantizationParametersStart(b)
    tflite.QuantizationParametersAddScale(b, s)
    tflite.QuantizationParametersAddZeroPoint(b, z)
    tflite.QuantizationParametersAddQuantizedDimension(b, dim)
    return tflite.QuantizationParametersEnd(b)


def _tensor(b, name: str, shape, ttype: int, buffer: int, quant: int) -> int:
    n = b.CreateString(name)
    sh = _vector(b, tflite.TensorStartShapeVector, shape, b.PrependInt32)
    tflite.TensorStart(b)
    tflite.TensorAddName(b, n)
    tflite.TensorAddShape(b, sh)
    tflite.TensorAddType(b, ttype)
    tflite.TensorAddBuffer(b, buffer)
    tflite.TensorAddQuantization(b, quant)
    return tflite.TensorEnd(b)


def _buffer(b, data: bytes | None) -> int:
    if data is None:
        tflite.BufferStart(b)
        return tflite.BufferEnd(b)
    d = b.CreateByteVector(data)
    tflite.BufferStart(b)
    tflite.BufferAddData(b, d)
    return tflite.BufferEnd(b)


def _options(b, kind: str, stride: int, padding: str, depth_multiplier: int) -> tuple[int, int]:
    pad = tflite.Padding.SAME if padding == "same" else tflite.Padding.VALID
    if kind == "conv":
        tflite.Conv2DOptionsStart(b)
        tflite.Conv2DOptionsAddPadding(b, pad)
        tflite.Conv2DOptionsAddStrideW(b, stride)
        tflite.Conv2DOptionsAddStrideH(b, stride)
        tflite.Conv2DOptionsAddDilationWFactor(b, 1)
        tflite.Conv2DOptionsAddDilationHFactor(b, 1)
        return tflite.BuiltinOptions.Conv2DOptions, tflite.Conv2DOptionsEnd(b)
    if kind == "depthwise":
        tflite.DepthwiseConv2DOptionsStart(b)
        tflite.DepthwiseConv2DOptionsAddPadding(b, pad)
        tflite.DepthwiseConv2DOptionsAddStrideW(b, stride)
        tflite.DepthwiseConv2DOptionsAddStrideH(b, stride)
        tflite.DepthwiseConv2DOptionsAddDepthMultiplier(b, depth_multiplier)
        tflite.DepthwiseConv2DOptionsAddDilationWFactor(b, 1)
        tflite.DepthwiseConv2DOptionsAddDilationHFactor(b, 1)
        return tflite.BuiltinOptions.DepthwiseConv2DOptions, tflite.DepthwiseConv2DOptionsEnd(b)
    tflite.FullyConnectedOptionsStart(b)
    return tflite.BuiltinOptions.FullyConnectedOptions, tflite.FullyConnectedOptionsEnd(b)


def one_op_model(
    kind: str,
    w_codes: np.ndarray,
    w_scale: np.ndarray,
    bias_codes: np.ndarray,
    in_shape: tuple[int, ...],
    in_qparams: tuple[float, int],
    out_shape: tuple[int, ...],
    out_qparams: tuple[float, int],
    stride: int = 1,
    padding: str = "valid",
) -> bytes:
    """The flatbuffer of a one-op int8 model.

    ``w_codes`` in TFLite layout: conv [O, kH, kW, I], depthwise [1, kH, kW, O], fc [O, I];
    ``in_shape``/``out_shape`` NHWC (conv) or (N, features) (fc).
    """
    b = flatbuffers.Builder(1024)
    w_codes = np.ascontiguousarray(w_codes, dtype=np.int8)
    bias_codes = np.ascontiguousarray(bias_codes, dtype=np.int32)
    wdim = 3 if kind == "depthwise" else 0
    buffers = [_buffer(b, None), _buffer(b, None), _buffer(b, w_codes.tobytes()), _buffer(b, bias_codes.tobytes()), _buffer(b, None)]
    bias_scale = np.float32(in_qparams[0]) * np.asarray(w_scale, dtype=np.float32)
    tensors = [
        _tensor(b, "input", in_shape, tflite.TensorType.INT8, 1, _quant(b, *in_qparams)),
        _tensor(b, "weight", w_codes.shape, tflite.TensorType.INT8, 2, _quant(b, w_scale, np.zeros(len(w_scale)), wdim)),
        _tensor(b, "bias", bias_codes.shape, tflite.TensorType.INT32, 3, _quant(b, bias_scale, np.zeros(len(w_scale)))),
        _tensor(b, "output", out_shape, tflite.TensorType.INT8, 4, _quant(b, *out_qparams)),
    ]
    mult = out_shape[-1] // in_shape[-1] if kind == "depthwise" else 1
    opt_type, opts = _options(b, kind, stride, padding, mult)
    ins = _vector(b, tflite.OperatorStartInputsVector, [0, 1, 2], b.PrependInt32)
    outs = _vector(b, tflite.OperatorStartOutputsVector, [3], b.PrependInt32)
    tflite.OperatorStart(b)
    tflite.OperatorAddOpcodeIndex(b, 0)
    tflite.OperatorAddInputs(b, ins)
    tflite.OperatorAddOutputs(b, outs)
    tflite.OperatorAddBuiltinOptionsType(b, opt_type)
    tflite.OperatorAddBuiltinOptions(b, opts)
    op = tflite.OperatorEnd(b)
    t_vec = _vector(b, tflite.SubGraphStartTensorsVector, tensors, b.PrependUOffsetTRelative)
    sg_in = _vector(b, tflite.SubGraphStartInputsVector, [0], b.PrependInt32)
    sg_out = _vector(b, tflite.SubGraphStartOutputsVector, [3], b.PrependInt32)
    op_vec = _vector(b, tflite.SubGraphStartOperatorsVector, [op], b.PrependUOffsetTRelative)
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, t_vec)
    tflite.SubGraphAddInputs(b, sg_in)
    tflite.SubGraphAddOutputs(b, sg_out)
    tflite.SubGraphAddOperators(b, op_vec)
    subgraph = tflite.SubGraphEnd(b)
    tflite.OperatorCodeStart(b)
    tflite.OperatorCodeAddDeprecatedBuiltinCode(b, _OPS[kind])
    tflite.OperatorCodeAddBuiltinCode(b, _OPS[kind])
    tflite.OperatorCodeAddVersion(b, 3)
    code = tflite.OperatorCodeEnd(b)
    codes = _vector(b, tflite.ModelStartOperatorCodesVector, [code], b.PrependUOffsetTRelative)
    sgs = _vector(b, tflite.ModelStartSubgraphsVector, [subgraph], b.PrependUOffsetTRelative)
    bufs = _vector(b, tflite.ModelStartBuffersVector, buffers, b.PrependUOffsetTRelative)
    desc = b.CreateString("qlab one-op int8 model")
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddOperatorCodes(b, codes)
    tflite.ModelAddSubgraphs(b, sgs)
    tflite.ModelAddBuffers(b, bufs)
    tflite.ModelAddDescription(b, desc)
    b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def run_litert(model: bytes, x_codes: np.ndarray) -> np.ndarray:
    """Run a one-op model on int8 input codes with LiteRT's reference kernels; int8 output codes."""
    interp = Interpreter(model_content=model, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], np.ascontiguousarray(x_codes, dtype=np.int8))
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"]).copy()
