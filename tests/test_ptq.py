"""Whole-model PTQ: originals untouched, reports consistent, configurations checked."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from qlab.calibration import calibrate
from qlab.data import calibration_subset
from qlab.metrics import sqnr_db
from qlab.models import MODEL_NAMES, load_pretrained
from qlab.ptq import (
    PTQCache,
    QuantizedLayer,
    format_report,
    model_size,
    quantize_model,
    quantize_weight,
    valid_group_sizes,
    weighted_layers,
)

CALIB = 128


@functools.cache
def _cache(name: str) -> PTQCache:
    return PTQCache.build(load_pretrained(name), calibration_subset(CALIB))


def _images(n: int = 32) -> torch.Tensor:
    return calibration_subset(CALIB + n)[CALIB:]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_quantize_model_leaves_the_original_untouched(name):
    model = load_pretrained(name)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    qmodel = quantize_model(model, weight_bits=4, act_bits=8, calib_data=calibration_subset(CALIB))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(isinstance(m, QuantizedLayer) for m in model.modules())
    assert sum(isinstance(m, QuantizedLayer) for m in qmodel.modules()) == len(weighted_layers(model))
    assert not qmodel.training


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_report_is_consistent_with_the_quantized_layers(name):
    cache = _cache(name)
    qmodel = quantize_model(load_pretrained(name), 6, 8, "per_channel", cache=cache)
    folded = dict(weighted_layers(cache.folded))
    assert [r.name for r in qmodel.report] == list(folded)
    for r in qmodel.report:
        layer = getattr(qmodel, r.name)
        assert r.weight_sqnr_db == pytest.approx(sqnr_db(folded[r.name].weight, layer.layer.weight))
        assert r.weight_shape == tuple(folded[r.name].weight.shape)
        assert r.act_range == pytest.approx(tuple(float(v) for v in layer.act.act_range))
        # 6-bit codes: every output channel holds at most 2^6 distinct weight values
        rows = layer.layer.weight.reshape(r.weight_shape[0], -1)
        assert max(len(row.unique()) for row in rows) <= 64
    fp, q = model_size(qmodel.report)
    assert fp == sum(4 * (l.weight.numel() + l.bias.numel()) for l in folded.values())
    assert q < fp / 3
    assert format_report(qmodel.report).splitlines()[-1].startswith(f"total: {q} bytes")


def test_static_activation_ranges_come_from_the_calibrator():
    cache = _cache("cnn")
    qmodel = quantize_model(load_pretrained("cnn"), 8, 8, calibration="percentile", cache=cache)
    for name, x in cache.layer_inputs.items():
        lo, hi = calibrate(x, "percentile", bits=8)
        act = getattr(qmodel, name).act
        assert torch.equal(act.act_range[0], lo) and torch.equal(act.act_range[1], hi)


def test_more_bits_and_per_channel_give_higher_weight_sqnr():
    cache = _cache("depthwise")
    model = load_pretrained("depthwise")

    def mean_sqnr(**kw):
        rep = quantize_model(model, cache=cache, **kw).report
        return sum(r.weight_sqnr_db for r in rep) / len(rep)

    assert mean_sqnr(weight_bits=8) > mean_sqnr(weight_bits=4) + 20
    assert mean_sqnr(weight_bits=4, granularity="per_channel") > mean_sqnr(weight_bits=4, granularity="per_tensor")


def test_sixteen_bits_reproduce_the_float_model():
    model = load_pretrained("cnn")
    qmodel = quantize_model(model, 16, 16, cache=_cache("cnn"))
    x = _images()
    with torch.inference_mode():
        torch.testing.assert_close(qmodel(x), model(x), rtol=2e-3, atol=2e-3)


def test_dynamic_per_token_quantizes_each_sample_with_its_own_range():
    qmodel = quantize_model(load_pretrained("mlp"), 8, 4, act_mode="dynamic", act_granularity="per_token",
                            cache=_cache("mlp"))
    act = qmodel.fc1.act
    x = _images(4).flatten(1)
    x[0] *= 100  # a huge sample must not coarsen the others' grids
    with torch.inference_mode():
        y = act(x)
        for i in range(4):
            assert torch.equal(y[i:i + 1], act(x[i:i + 1]))


def test_per_group_uses_channel_for_small_fan_in():
    w = torch.randn(8, 1, 3, 3)
    assert quantize_weight(w, 4, "per_group", group_size=16).granularity == "per_channel"
    assert quantize_weight(torch.randn(8, 32), 4, "per_group", group_size=16).granularity == "per_group(16)"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"calibration": "magic"}, ValueError, "calibration must be one of 'minmax'"),
        ({"weight_bits": 1}, ValueError, "weight_bits must be from 2 to 16"),
        ({"act_bits": 20}, ValueError, "act_bits must be from 2 to 16"),
        ({"weight_bits": 8.0}, TypeError, "weight_bits must be an integer"),
        ({"granularity": "per_row"}, ValueError, "granularity must be one of 'per_tensor'"),
        ({"granularity": "per_group"}, ValueError, "group_size is needed"),
        ({"granularity": "per_group", "group_size": 48}, ValueError, "group_size=48 does not divide the fan-in"),
        ({"granularity": "per_group", "group_size": 0}, ValueError, "group_size must be a positive integer"),
        ({"act_mode": "lazy", "act_bits": 8}, ValueError, "act_mode must be one of 'static', 'dynamic'"),
        ({"act_granularity": "per_channel"}, ValueError, "act_granularity must be one of"),
    ],
)
def test_bad_configurations_are_rejected(kwargs, error, message):
    with pytest.raises(error, match=message):
        quantize_model(load_pretrained("mlp"), cache=_cache("mlp"), **kwargs)


def test_model_without_weighted_layers_is_rejected():
    with pytest.raises(ValueError, match="no Conv2d/Linear"):
        quantize_model(nn.Sequential(nn.ReLU()))


def test_valid_group_sizes_divide_every_fan_in_or_fall_back_to_per_channel():
    for name in MODEL_NAMES:
        model = load_pretrained(name)
        sizes = valid_group_sizes(model)
        assert sizes, name
        for g in sizes:
            quantize_model(model, 4, granularity="per_group", group_size=g, cache=_cache(name))
    assert valid_group_sizes(load_pretrained("cnn"), (16,)) == []


def test_bit_independent_ranges_are_calibrated_once():
    cache = PTQCache.build(load_pretrained("mlp"), calibration_subset(64))
    assert cache.act_ranges("percentile", 4) is cache.act_ranges("percentile", 8)
    assert cache.act_ranges("mse", 4) is not cache.act_ranges("mse", 8)
