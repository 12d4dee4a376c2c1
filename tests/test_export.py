"""qlab.export: onnxruntime (QDQ) and torch int8 engines within 1 LSB of qlab's integer model."""

from __future__ import annotations

import onnx
import pytest
import torch

from qlab import export, integer
from qlab.data import calibration_subset, load_fashion_mnist
from qlab.evaluation import predict_logits
from qlab.folding import fold_batchnorm
from qlab.models import load_pretrained
from qlab.ptq import quantize_model
from qlab.session import calibration_data


@pytest.fixture(scope="module", params=["mlp", "cnn", "depthwise"])
def model(request):
    return request.param, integer.convert(quantize_model(load_pretrained(request.param), 8, 8, calib_data=calibration_data()))


def _engine_codes(sub: torch.nn.Module, x: torch.Tensor, engine: str, weight_dtype: str = "int8") -> torch.Tensor:
    if engine == "torch":
        return export.to_torch_int8(sub)[:-1](x).int_repr().long()
    session = export.ort_session(export.to_onnx(sub, weight_dtype=weight_dtype, layer_outputs=True))
    return torch.from_numpy(session.run(None, {"images": x.numpy()})[1]).long()


@pytest.mark.parametrize("engine,weight_dtype", [("torch", "int8"), ("onnxruntime", "int8"), ("onnxruntime", "uint8")])
def test_every_layer_within_one_lsb(model, engine, weight_dtype):
    """Each layer alone, fed the same input codes: >= 99.9% of codes within 1 LSB, none beyond 1."""
    _, im = model
    inputs = integer.layer_inputs(im, calibration_subset()[:128])
    for name, layer in integer.integer_layers(im):
        if layer.out_scale is None:
            continue
        sub = integer.single_layer_model(im, name)
        with torch.inference_mode():
            ours = layer(inputs[name]).long()
        theirs = _engine_codes(sub, integer.dequantize_codes(layer, inputs[name]), engine, weight_dtype)
        diff = (theirs - ours).abs()
        assert float((diff <= 1).float().mean()) >= 0.999 and int(diff.max()) <= 1, name
        assert float((diff == 0).float().mean()) >= 0.99, name  # float vs fixed-point rounding: rare ties


def test_accuracy_of_engines_within_a_tenth_of_a_point(model):
    name, im = model
    images, labels = load_fashion_mnist("test")
    ours = predict_logits(im, images).argmax(1)
    calib = predict_logits(im, calibration_subset())
    torch_pred = predict_logits(export.to_torch_int8(im, (float(calib.min()), float(calib.max()))), images).argmax(1)
    session = export.ort_session(export.to_onnx(im))
    ort_pred = torch.cat([torch.from_numpy(session.run(None, {"images": b.numpy()})[0]) for b in images.split(1000)]).argmax(1)
    acc = {k: float((p == labels).float().mean()) for k, p in {"ours": ours, "torch": torch_pred, "ort": ort_pred}.items()}
    assert abs(acc["torch"] - acc["ours"]) <= 0.001 and abs(acc["ort"] - acc["ours"]) <= 0.001, (name, acc)


def test_onnx_file_is_qdq_with_int8_weights(model, tmp_path):
    _, im = model
    path = tmp_path / "model.onnx"
    export.to_onnx(im, path)
    m = onnx.load(str(path))
    ops = {n.op_type for n in m.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    weights = [t for t in m.graph.initializer if t.name.endswith("_weight")]
    assert weights and all(t.data_type == onnx.TensorProto.INT8 for t in weights)
    assert all(t.data_type == onnx.TensorProto.INT32 for t in m.graph.initializer if t.name.endswith("_bias"))


def test_float_onnx_matches_torch(model):
    name, _ = model
    folded = fold_batchnorm(load_pretrained(name))
    x = calibration_subset()[:64]
    out = export.ort_session(export.float_onnx(folded)).run(None, {"images": x.numpy()})[0]
    assert torch.allclose(torch.from_numpy(out), predict_logits(folded, x), atol=1e-4)


def test_bad_arguments(model):
    _, im = model
    with pytest.raises(ValueError, match="weight_dtype"):
        export.to_onnx(im, weight_dtype="int4")
    with pytest.raises(ValueError, match="logits_range"):
        export.to_torch_int8(im)
