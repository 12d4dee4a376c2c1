"""qlab.integer: bit-exact against LiteRT's reference kernels, exact accumulators, integer-only flow,
and agreement with qlab's fake-quant models."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from qlab import integer
from qlab.dashboards.integer_inference import FollowOneOutputDashboard, MultiplierPrecisionDashboard
from qlab.data import calibration_subset
from qlab.evaluation import evaluate
from qlab.models import load_pretrained
from qlab.ptq import quantize_model
from qlab.session import calibration_data
from tflite_one_op import one_op_model, run_litert

INT8 = (-128, 127)


def _generated_layer(kind: str, seed: int, c_in: int = 6, c_out: int = 8, stride: int = 1, rounding: str = "double"):
    """A random layer with int8 per-channel weights [-127, 127], int32 bias, int8 in/out qparams."""
    g = torch.Generator().manual_seed(seed)
    if kind == "fc":
        layer = nn.Linear(c_in * 9, c_out)
    elif kind == "depthwise":
        layer = nn.Conv2d(c_in, c_in, 3, stride=stride, groups=c_in)
    else:
        layer = nn.Conv2d(c_in, c_out, 3, stride=stride)
    w_codes = torch.randint(-127, 128, layer.weight.shape, generator=g)
    w_scale = torch.rand(layer.weight.shape[0], generator=g) * 0.02 + 0.001
    in_scale, in_zp = torch.tensor(0.05), int(torch.randint(-20, 20, (), generator=g))
    layer.bias.data = torch.randn(layer.weight.shape[0], generator=g) * 0.5
    params = integer.LayerParams("layer", layer, w_codes, w_scale, in_scale, in_zp, INT8)
    out = (torch.tensor(0.15 + 0.1 * seed), int(torch.randint(-10, 10, (), generator=g)), *INT8)
    return integer.IntegerLayer(params, out, None, rounding=rounding), g


def _litert(kind: str, il: integer.IntegerLayer, x: torch.Tensor, y_shape) -> np.ndarray:
    w = il.weight.numpy()
    if kind == "conv":
        w, x_in, out_shape = w.transpose(0, 2, 3, 1), x.permute(0, 2, 3, 1), (y_shape[0], *y_shape[2:], y_shape[1])
    elif kind == "depthwise":
        w, x_in, out_shape = w.transpose(1, 2, 3, 0), x.permute(0, 2, 3, 1), (y_shape[0], *y_shape[2:], y_shape[1])
    else:
        x_in, out_shape = x, tuple(y_shape)
    model = one_op_model(
        kind, w, il.w_scale.numpy(), il.bias.numpy(), tuple(x_in.shape), (float(il.in_scale), il.in_zero_point),
        out_shape, (float(il.out_scale), il.out_zero_point), stride=il.stride[0] if kind != "fc" else 1,
    )
    out = run_litert(model, x_in.numpy())
    return out.transpose(0, 3, 1, 2) if kind != "fc" else out


# LiteRT's reference CONV_2D and DEPTHWISE_CONV_2D round twice (gemmlowp); its reference
# FULLY_CONNECTED rounds once. Enough outputs that the rounding conventions differ somewhere.
LITERT_ROUNDING = {"conv": "double", "depthwise": "double", "fc": "single"}


@pytest.mark.parametrize("kind", ["conv", "depthwise", "fc"])
@pytest.mark.parametrize("seed,stride", [(0, 1), (1, 2)])
def test_integer_layer_matches_litert_bit_for_bit(kind, seed, stride):
    il, g = _generated_layer(kind, seed, c_in=16, c_out=64, stride=stride, rounding=LITERT_ROUNDING[kind])
    shape = (512, 16 * 9) if kind == "fc" else (16, 16, 13, 13)
    x = torch.randint(-128, 128, shape, generator=g).to(torch.int8)
    y = il(x)
    assert y.dtype == torch.int8
    ref = _litert(kind, il, x, y.shape)
    assert np.array_equal(y.numpy(), ref), f"{int((y.numpy() != ref).sum())} codes differ"
    il.rounding = "single" if il.rounding == "double" else "double"
    assert not np.array_equal(il(x).numpy(), ref), "the data does not tell the two roundings apart"


def test_accumulator_is_exact_at_the_int32_extremes():
    """Σ qa·qw via float64 equals an int64 reference even for the largest codes and fan-in."""
    il, g = _generated_layer("conv", 3, c_in=64)
    il.weight = torch.randint(-127, 128, il.weight.shape, generator=g).to(torch.int8)
    x = torch.randint(-128, 128, (2, 64, 5, 5), generator=g).to(torch.int8)
    ref = torch.einsum("nchw,ochw->no", x.long()[:, :, :3, :3], il.weight.long())
    assert torch.equal(il.dot(x)[:, :, 0, 0], ref)
    p = integer.patches(il, x)[:, 0, 0]  # first output position
    assert torch.equal(p @ il.weight.long().reshape(il.weight.shape[0], -1).T, ref)


def test_accumulator_terms_expand_the_zero_point_product():
    qa, qw = torch.tensor([3, 250, 7, 0]), torch.tensor([-5, 9, 127, -128])
    t = integer.accumulator_terms(qa, qw, za=10, zw=-3)
    assert t["total"] == int(((qa - 10) * (qw + 3)).sum())
    assert (t["sum_qa_qw"], t["zw_sum_qa"], t["za_sum_qw"], t["n_za_zw"]) == (-15 + 2250 + 889, -3 * 260, 10 * 3, 4 * 10 * -3)


@pytest.fixture(scope="module")
def cnn_models():
    q = quantize_model(load_pretrained("cnn"), 8, 8, calib_data=calibration_data(), act_mode="static")
    return q, integer.convert(q)


def test_no_float_tensor_between_input_quantization_and_logits(cnn_models):
    _, im = cnn_models
    seen = []
    hooks = [m.register_forward_hook(lambda m, a, o, n=n: seen.append((n, a[0].dtype, o.dtype))) for n, m in im.named_children()]
    im(calibration_subset()[:8])
    for h in hooks:
        h.remove()
    assert seen[0][1] == torch.float32 and seen[-1][2] == torch.float32  # float image in, float logits out
    dtypes = [seen[0][2]] + [d for _, i, o in seen[1:-1] for d in (i, o)] + [seen[-1][1]]
    assert all(not d.is_floating_point for d in dtypes), seen


def test_bias_and_multiplier_codes(cnn_models):
    q, im = cnn_models
    layer = im.block2_conv
    m = layer.in_scale.double() * layer.w_scale.double() / layer.out_scale.double()
    assert torch.allclose(layer.multiplier, m) and bool((m < 1).all())
    assert bool(((layer.m0 >= 2**30) & (layer.m0 < 2**31)).all())
    b = q.block2_conv.layer.bias.double() / (layer.in_scale.double() * layer.w_scale.double())
    assert int((layer.bias - b).abs().max().ceil()) <= 1 and layer.activation == "relu"
    assert layer.out_min == layer.out_zero_point  # ReLU fused as a clamp at the zero-point


@pytest.mark.parametrize("name", ["mlp", "cnn", "depthwise"])
def test_layer_codes_agree_with_fake_quant(name):
    q = quantize_model(load_pretrained(name), 8, 8, calib_data=calibration_data(), act_mode="static")
    rows = integer.layer_agreement(q, integer.convert(q), calibration_subset()[:128])
    assert all(r.max_lsb <= 1 for r in rows), rows
    assert all(r.exact_share >= 0.97 for r in rows), rows


@pytest.mark.parametrize("name", ["mlp", "cnn", "depthwise"])
def test_integer_accuracy_within_a_tenth_of_a_point(name):
    q = quantize_model(load_pretrained(name), 8, 8, calib_data=calibration_data(), act_mode="static")
    assert abs(evaluate(integer.convert(q)) - evaluate(q)) <= 0.001


def test_count_overflows_by_hand():
    layer = nn.Linear(4, 1, bias=False)
    params = integer.LayerParams("fc", layer, torch.tensor([[127, 127, -127, 127]]), torch.ones(1), torch.tensor(1.0), 0, (0, 255))
    il = integer.IntegerLayer(params, (torch.tensor(1.0), 0, 0, 255), None)
    x = torch.tensor([[255, 255, 255, 0]], dtype=torch.uint8)
    # full sum 255*127 = 32385 fits int16; the first pair 2*255*127 = 64770 does not
    assert integer.count_overflows(il, x, acc_bits=16) == (0, 1)
    assert integer.count_overflows(il, x, acc_bits=16, terms=2) == (1, 2)
    # 7-bit activations (reduce_range): 127 * 127 * 2 = 32258 fits
    assert integer.count_overflows(il, x, acc_bits=16, act_bits=7, terms=2) == (0, 2)


def test_max_safe_fan_in():
    assert integer.max_safe_fan_in(16, 8, 8) == 32767 // (255 * 128) == 1
    assert integer.max_safe_fan_in(32, 8, 8) == (2**31 - 1) // (255 * 128)
    assert integer.max_safe_fan_in(16, 7, 8) == 2


def test_convert_rejects_unsupported_models():
    with pytest.raises(ValueError, match="static activation"):
        integer.convert(quantize_model(load_pretrained("mlp"), 8, None))
    with pytest.raises(ValueError, match="symmetric per-channel"):
        integer.convert(quantize_model(load_pretrained("mlp"), 8, 8, calib_data=calibration_data(), granularity="per_group", group_size=16))


def test_follow_one_output_trace_matches_the_layer():
    """The dashboard's step-by-step trace (patches, scalar SRDHM/RDBPOT) gives the layer's own code."""
    dash = FollowOneOutputDashboard()
    for layer, channel, position, image in [("block1_conv", 5, 100, 2), ("block2_conv", 47, 48, 0), ("block3_conv", 0, 7, 15)]:
        dash.layer_dropdown.value = layer
        dash.channel_slider.value, dash.position_slider.value, dash.image_slider.value = channel, position, image
        assert dash.last_error is None
        out = dash.layers[layer](dash.inputs[layer][image : image + 1])
        assert dash.state.code == int(out.reshape(out.shape[1], -1)[channel, position])
        assert f"code {dash.state.code}" in dash.readout()


def test_multiplier_precision_dashboard():
    dash = MultiplierPrecisionDashboard()
    dash.controls[0].value = 32
    assert all(v == 0 for v in dash.state.changed.values())
    dash.controls[0].value = 4
    assert all(v > 0 for v in dash.state.changed.values()) and all(e <= 100 / 2**3 for e in dash.state.rel_error.values())
    lo, hi = dash.ax_acc.get_ylim()  # regression: a 0.09-point axis made noise look like a steep climb
    assert hi - lo > 2 * 0.27 and "±1 standard error" in dash.ax_acc.get_title()


def test_readme_integer_rows_match_the_results_file():
    root = Path(__file__).resolve().parents[1]
    results = json.loads((root / "benchmarks" / "results" / "integer_accuracy.json").read_text())
    readme = (root / "README.md").read_text()
    for name, r in results.items():
        (row,) = re.findall(rf"^\| `{name}` \|(.*)\|$", readme, re.M)
        a = r["accuracy"]
        assert [c.strip() for c in row.split("|")] == [f"{a[k]:.2f}" for k in ("fake_quant", "integer", "torch_int8", "onnxruntime_int8")]


def test_a_qat_model_converts_to_integers_like_a_ptq_model() -> None:
    """qlab.qat.convert gives the quantized form PTQ produces, so integer.convert takes it too."""
    from qlab.qat import convert as qat_convert
    from qlab.qat import prepare_qat

    calib = calibration_data()
    qmodel = qat_convert(prepare_qat(load_pretrained("mlp"), 8, 8, "lsq", calib_data=calib).eval(), calib_data=calib)
    imodel = integer.convert(qmodel)
    assert abs(evaluate(imodel) - evaluate(qmodel)) <= 0.001
