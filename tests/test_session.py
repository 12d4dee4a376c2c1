"""qlab.session: the course's defaults around the pure PTQ transforms."""

from __future__ import annotations

import ast
from pathlib import Path

import torch

import qlab

from qlab.data import load_fashion_mnist
from qlab.evaluation import predict_logits
from qlab.session import PTQSession, accuracy_by_calibrator, build_cache, calibration_data


def _qlab_imports(module: str) -> set[str]:
    tree = ast.parse((Path(qlab.__file__).parent / f"{module}.py").read_text())
    names = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    return {n for n in names if n.startswith("qlab.")}


def test_module_layering_ptq_and_sweeps_import_no_data_models_evaluation_or_session():
    forbidden = {"qlab.data", "qlab.models", "qlab.evaluation", "qlab.session"}
    for module in ("ptq", "report"):
        assert not _qlab_imports(module) & forbidden, module
    assert not _qlab_imports("sweeps") & (forbidden | {"qlab.ptq"})


def test_calibration_data_is_512_training_images():
    x = calibration_data()
    train, _ = load_fashion_mnist("train")
    indices = torch.randperm(60_000, generator=torch.Generator().manual_seed(0))[:512]
    assert torch.equal(x, train[indices])


def test_session_memoizes_runs_and_shares_one_cache():
    session = PTQSession()
    first = session.run("mlp", weight_bits=4)
    assert session.run("mlp", weight_bits=4) is first
    assert session.run("mlp", memoize=False, weight_bits=4) is not first
    assert session.cache("mlp") is session.cache("mlp")
    assert len(session.cache("mlp").layer_inputs["fc1"]) == 512


def test_accuracy_by_calibrator_counts_correct_predictions_by_hand():
    session = PTQSession()
    model, cache = session.model("mlp"), build_cache(session.model("mlp"))
    accuracy = accuracy_by_calibrator(model, cache, [6], ["minmax"])
    # the same layer by hand: fake-quantized inputs on the min/max range, then the fake-quantized weights
    from qlab.ptq import quantize_model  # noqa: PLC0415 (only for the quantized copy's layers)

    qmodel = quantize_model(model, 8, 6, cache=cache)
    images, labels = load_fashion_mnist("test")
    x = images.flatten(1)
    with torch.inference_mode():
        for name in ("fc1", "fc2", "fc3"):
            layer = getattr(qmodel, name)
            lo, hi = torch.aminmax(cache.layer_inputs[name])
            scale = (hi - lo.clamp(max=0)) / 63
            zp = torch.clamp(-torch.round(lo.clamp(max=0) / scale), 0, 63)
            xq = torch.fake_quantize_per_tensor_affine(x, float(scale), int(zp), 0, 63)
            x = torch.nn.functional.linear(xq, layer.layer.weight, layer.layer.bias)
            x = torch.relu(x) if name != "fc3" else x
    by_hand = (x.argmax(1) == labels).float().mean().item()
    assert abs(accuracy[6]["minmax"] - by_hand) <= 2e-4  # float rounding may flip an image or two
    assert torch.equal(predict_logits(qmodel, images[:8]).argmax(1), x[:8].argmax(1))
