"""Whole-model PTQ: originals untouched, reports consistent, configurations checked."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.ao.quantization.observer import MinMaxObserver, PerChannelMinMaxObserver

from qlab import data
from qlab.calibration import calibrate
from qlab.data import calibration_subset
from qlab.evaluation import evaluate
from qlab.metrics import sqnr_db
from qlab.models import MODEL_NAMES, load_pretrained
from qlab.ptq import (
    ActivationFakeQuant,
    PTQCache,
    QuantizedLayer,
    channel_amax,
    erased_channels,
    quantize_model,
    quantize_weight,
    valid_group_sizes,
    weighted_layers,
)
from qlab.report import format_report, model_size

CALIB = 128


@functools.cache
def _cache(name: str) -> PTQCache:
    return PTQCache.build(load_pretrained(name), calibration_subset(CALIB))


def _images(n: int = 32) -> torch.Tensor:
    return calibration_subset(CALIB + n)[CALIB:]


def _torch_fake_quant(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, bits: int) -> torch.Tensor:
    """Reference: torch.ao's quint8-style observer parameters and torch's fake-quantize kernel."""
    obs = MinMaxObserver(quant_min=0, quant_max=2**bits - 1)
    obs.min_val, obs.max_val = lo, hi
    scale, zp = obs.calculate_qparams()
    return torch.fake_quantize_per_tensor_affine(x, float(scale), int(zp), 0, 2**bits - 1)


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
    qmodel = quantize_model(load_pretrained("cnn"), 8, 8, calibrator="percentile", cache=cache)
    for name, x in cache.layer_inputs.items():
        lo, hi = calibrate(x, "percentile", bits=8)
        act = getattr(qmodel, name).act
        assert torch.equal(act.act_range[0], lo) and torch.equal(act.act_range[1], hi)


@pytest.mark.parametrize("bits", [4, 8])
def test_static_activations_are_quantized_on_the_calibrated_grid(bits):
    """The layer really applies the grid: its input is torch's fake-quant on the min/max range."""
    cache = _cache("cnn")
    qmodel = quantize_model(load_pretrained("cnn"), 8, bits, cache=cache)
    folded = dict(weighted_layers(cache.folded))
    x = _images(8)
    inputs = {}
    hooks = [getattr(qmodel, n).register_forward_pre_hook(lambda m, a, n=n: inputs.setdefault(n, a[0])) for n in folded]
    with torch.inference_mode():
        qmodel(x)
        for name, layer in folded.items():
            lo, hi = torch.aminmax(cache.layer_inputs[name])
            q_in = _torch_fake_quant(inputs[name], lo, hi, bits)
            assert torch.equal(getattr(qmodel, name).act(inputs[name]), q_in)
            assert len(q_in.unique()) <= 2**bits
            w = getattr(qmodel, name).layer.weight
            expected = F.linear(q_in, w, layer.bias) if isinstance(layer, nn.Linear) else F.conv2d(
                q_in, w, layer.bias, layer.stride, layer.padding, layer.dilation, layer.groups)
            torch.testing.assert_close(getattr(qmodel, name)(inputs[name]), expected, rtol=1e-5, atol=1e-5)
    for h in hooks:
        h.remove()


def test_per_channel_weights_match_torch_observer_and_fake_quant():
    w = load_pretrained("cnn").block2_conv.weight.detach()
    obs = PerChannelMinMaxObserver(ch_axis=0, dtype=torch.qint8, qscheme=torch.per_channel_affine)
    obs(w)
    scale, zp = obs.calculate_qparams()
    expected = torch.fake_quantize_per_channel_affine(w, scale, zp.to(torch.int32), 0, -128, 127)
    affine = quantize_weight(w, 8, "per_channel", symmetric=False)
    assert torch.equal(affine.weight, expected)
    symmetric = quantize_weight(w, 8, "per_channel")  # textbook: scale amax / 127 (torch.ao: amax / 127.5)
    assert torch.equal(symmetric.scale, w.abs().amax(dim=(1, 2, 3)) / 127)
    for qw in (affine, symmetric):
        assert torch.equal(qw.codes * qw.scale.reshape(-1, 1, 1, 1), qw.weight)
        assert bool((qw.codes == qw.codes.round()).all())


def test_affine_weights_and_their_parameter_bytes():
    """Linear(4 -> 3), 8 bits: 12 weight bytes + 3 * 4 bias bytes + per channel (scale[, zero-point]) * 4."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[0.1, 0.5, 0.2, 0.3], [-0.4, 0.0, 0.8, 0.1], [0.2, 0.2, 0.2, 0.9]]))
    sym = quantize_model(model, 8, symmetric_weights=True)
    aff = quantize_model(model, 8, symmetric_weights=False)
    assert model_size(sym.report) == (4 * 15, 12 + 12 + 3 * 4)
    assert model_size(aff.report) == (4 * 15, 12 + 12 + 3 * 8)
    # row 0 has only positive weights: affine spends the whole grid on [0, 0.5], symmetric half of it
    obs = PerChannelMinMaxObserver(ch_axis=0, dtype=torch.qint8, qscheme=torch.per_channel_affine)
    obs(model[0].weight.detach())
    scale, zp = obs.calculate_qparams()
    expected = torch.fake_quantize_per_channel_affine(model[0].weight.detach(), scale, zp.to(torch.int32), 0, -128, 127)
    assert torch.equal(aff[0].layer.weight, expected)
    assert aff.report[0].weight_sqnr_db > sym.report[0].weight_sqnr_db


def test_more_bits_and_per_channel_give_higher_weight_sqnr():
    cache = _cache("depthwise")
    model = load_pretrained("depthwise")

    def mean_sqnr(**kw):
        rep = quantize_model(model, cache=cache, **kw).report
        return sum(r.weight_sqnr_db for r in rep) / len(rep)

    assert mean_sqnr(weight_bits=8) > mean_sqnr(weight_bits=4) + 20
    assert mean_sqnr(weight_bits=4, granularity="per_channel") > mean_sqnr(weight_bits=4, granularity="per_tensor")


def test_sixteen_bits_reproduce_the_float_model_through_the_float64_path():
    model = load_pretrained("cnn")
    qmodel = quantize_model(model, 16, 16, cache=_cache("cnn"))
    assert not any(m.exact for m in qmodel.modules() if isinstance(m, QuantizedLayer))
    x = _images()
    with torch.inference_mode():
        torch.testing.assert_close(qmodel(x), model(x), rtol=2e-3, atol=2e-3)


def test_per_group_weights_with_activations_match_the_fake_quant_reference():
    model = load_pretrained("mlp")
    qmodel = quantize_model(model, 4, 8, "per_group", group_size=16, cache=_cache("mlp"))
    layer = qmodel.fc1
    assert not layer.exact
    x = _images(4).flatten(1)
    with torch.inference_mode():
        expected = F.linear(layer.act(x), layer.layer.weight, layer.layer.bias)
        torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-5)


def test_dynamic_per_token_gives_one_range_per_token():
    """(B, T, F) input: B*T ranges, each the torch.ao min/max range of one token."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5)
    x[0, 1] *= 100  # one huge token must not coarsen the others' grids
    act = ActivationFakeQuant(8, "dynamic", act_granularity="per_token")
    y = act(x)
    for b in range(2):
        for t in range(3):
            lo, hi = torch.aminmax(x[b, t])
            assert torch.equal(y[b, t], _torch_fake_quant(x[b, t], lo, hi, 8))
    model = nn.Sequential(nn.Linear(5, 4))
    qmodel = quantize_model(model, 8, 8, act_mode="dynamic", act_granularity="per_token")
    with torch.inference_mode():
        expected = F.linear(y, qmodel[0].layer.weight, model[0].bias)
        torch.testing.assert_close(qmodel(x), expected, rtol=1e-5, atol=1e-5)


def test_per_token_is_rejected_on_convolutions():
    with pytest.raises(ValueError, match="'block1_conv' is Conv2d"):
        quantize_model(load_pretrained("cnn"), 8, 8, act_mode="dynamic", act_granularity="per_token", cache=_cache("cnn"))


def test_dynamic_per_sample_ranges_make_accuracy_independent_of_the_batch_size():
    qmodel = quantize_model(load_pretrained("depthwise"), 8, 4, act_mode="dynamic", cache=_cache("depthwise"))
    assert evaluate(qmodel, batch_size=32) == evaluate(qmodel, batch_size=256)
    x = _images(4)
    with torch.inference_mode():
        assert torch.equal(qmodel(x)[1:2], qmodel(x[1:2]))
    whole = quantize_model(load_pretrained("depthwise"), 8, 4, act_mode="dynamic", act_granularity="per_batch",
                           cache=_cache("depthwise"))
    assert evaluate(whole, batch_size=32) != evaluate(whole, batch_size=256)  # quantize_dynamic's batch dependence


def test_per_group_uses_channel_for_small_fan_in():
    w = torch.randn(8, 1, 3, 3)
    assert quantize_weight(w, 4, "per_group", group_size=16).granularity == "per_channel"
    assert quantize_weight(torch.randn(8, 32), 4, "per_group", group_size=16).granularity == "per_group(16)"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"calibrator": "magic"}, ValueError, "calibrator must be one of 'minmax'"),
        ({"weight_bits": 1}, ValueError, "weight_bits must be from 2 to 16"),
        ({"act_bits": 20}, ValueError, "act_bits must be from 2 to 16"),
        ({"weight_bits": 8.0}, TypeError, "weight_bits must be an integer"),
        ({"granularity": "per_row"}, ValueError, "granularity must be one of 'per_tensor'"),
        ({"granularity": "per_group"}, ValueError, "group_size is needed"),
        ({"granularity": "per_group", "group_size": 48}, ValueError, "group_size=48 does not divide the fan-in"),
        ({"granularity": "per_group", "group_size": 0}, ValueError, "group_size must be a positive integer"),
        ({"act_mode": "lazy", "act_bits": 8}, ValueError, "act_mode must be one of 'static', 'dynamic'"),
        ({"act_granularity": "per_channel", "act_mode": "dynamic"}, ValueError, "act_granularity must be one of"),
        ({"act_granularity": "per_sample"}, ValueError, "applies to act_mode=\"dynamic\" only"),
        ({"calib_data": _images(4)}, ValueError, "pass calib_data or cache, not both"),
        ({"fold_bn": False}, ValueError, "fold_bn=False but the cache was built with fold_bn=True"),
        ({"symmetric_weights": "False"}, TypeError, "symmetric_weights must be True or False"),
    ],
)
def test_bad_configurations_are_rejected(kwargs, error, message):
    with pytest.raises(error, match=message):
        quantize_model(load_pretrained("mlp"), cache=_cache("mlp"), **kwargs)


def test_a_cache_built_for_another_model_is_rejected():
    with pytest.raises(ValueError, match="cache was built for a different model"):
        quantize_model(load_pretrained("cnn"), 8, 8, cache=_cache("mlp"))
    model = load_pretrained("mlp")
    cache = PTQCache.build(model)
    with torch.no_grad():
        model.fc1.weight[0, 0] += 1.0
    with pytest.raises(ValueError, match="different model"):
        quantize_model(model, 8, cache=cache)


def test_model_without_weighted_layers_is_rejected():
    with pytest.raises(ValueError, match="no Conv1d/Conv2d/Linear"):
        quantize_model(nn.Sequential(nn.ReLU()))


class Nested(nn.Module):
    """A user's model: nested containers, Conv1d, and layers quantize_model cannot quantize."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.body = nn.Sequential(nn.Sequential(nn.Conv1d(4, 6, 3, padding=1), nn.BatchNorm1d(6), nn.ReLU()))
        self.up = nn.ConvTranspose1d(6, 6, 1)
        self.heads = nn.ModuleDict({"out": nn.Linear(6, 3)})
        self.temperature = nn.Parameter(torch.tensor(2.0))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.up(self.body(self.embed(tokens).transpose(1, 2)))
        return self.heads["out"](h.mean(dim=2)) / self.temperature


def test_any_module_is_quantized_recursively_and_float_parameters_are_reported(monkeypatch):
    monkeypatch.setattr(data, "load_fashion_mnist", lambda *a, **k: pytest.fail("touched Fashion-MNIST"))
    torch.manual_seed(0)
    model = Nested().eval()
    with pytest.warns(UserWarning, match=r"<model> \(Nested: temperature\); embed \(Embedding: weight\); "
                                         r"up \(ConvTranspose1d: weight, bias\)"):
        qmodel = quantize_model(model, 8)
    assert isinstance(qmodel.body[0][0], QuantizedLayer) and isinstance(qmodel.heads["out"], QuantizedLayer)
    assert isinstance(qmodel.body[0][1], nn.Identity)  # BatchNorm1d folded into the Conv1d
    floats = {p.name: p.nbytes for p in qmodel.report.float_params}
    assert floats == {"temperature": 4, "embed.weight": 160, "up.weight": 144, "up.bias": 24}
    fp, q = model_size(qmodel.report)
    assert fp == 4 * sum(p.numel() for p in Nested().parameters()) - 4 * 2 * 6  # BN's gamma/beta folded away
    assert q == 72 + 6 * 4 + 6 * 4 + 18 + 3 * 4 + 3 * 4 + sum(floats.values())
    assert "up.weight" in format_report(qmodel.report)
    tokens = torch.randint(0, 10, (5, 7))
    with torch.inference_mode():
        torch.testing.assert_close(qmodel(tokens), model(tokens), rtol=0.05, atol=0.05)
    with pytest.warns(UserWarning), torch.inference_mode():
        static = quantize_model(model, 8, 8, calib_data=torch.randint(0, 10, (16, 7)))
    assert static.report[0].act_range is not None
    with torch.inference_mode():
        torch.testing.assert_close(static(tokens), model(tokens), rtol=0.05, atol=0.05)


def test_static_activations_without_calibration_data_are_an_error(monkeypatch):
    monkeypatch.setattr(data, "load_fashion_mnist", lambda *a, **k: pytest.fail("touched Fashion-MNIST"))
    with pytest.raises(ValueError, match="static activation quantization needs calibration data"):
        quantize_model(nn.Sequential(nn.Linear(3, 2)), 8, 8)
    dynamic = quantize_model(nn.Sequential(nn.Linear(3, 2)), 8, 8, act_mode="dynamic")
    assert dynamic.report[0].act_sqnr_db is None


def test_float64_models_nan_weights_and_unused_layers_are_rejected_by_name():
    with pytest.raises(ValueError, match=r"model must be float32, but '0.weight' is torch.float64"):
        quantize_model(nn.Sequential(nn.Linear(3, 2)).double())
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad():
        model[2].weight[1, 1] = float("nan")
    with pytest.raises(ValueError, match=r"layer '2': '2.weight' holds NaN"):
        quantize_model(model)

    class Unused(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used, self.spare = nn.Linear(3, 2), nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.used(x)

    with pytest.raises(ValueError, match="'spare' are never called"):
        quantize_model(Unused(), 8, 8, calib_data=torch.randn(4, 3))
    with pytest.raises(TypeError, match="calib_data must be float32"):
        quantize_model(Unused(), 8, 8, calib_data=torch.randn(4, 3).double())


@pytest.mark.parametrize("batch_size", [2.5, True, "256"])
def test_evaluation_batch_size_must_be_an_integer(batch_size):
    with pytest.raises(TypeError, match="batch_size must be a positive integer"):
        evaluate(load_pretrained("mlp"), batch_size=batch_size)


def test_calibration_inputs_are_the_float64_forward_rounded_to_float32():
    model = load_pretrained("mlp")
    x = _images(16)
    cache = PTQCache.build(model, x)
    with torch.inference_mode():
        h = F.relu(F.linear(x.double().flatten(1), model.fc1.weight.double(), model.fc1.bias.double()))
    assert torch.equal(cache.layer_inputs["fc2"], h.float())


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


def test_channel_amax_and_erased_channels_by_hand():
    w = torch.tensor([[[0.5, -2.0]], [[0.01, 0.002]]])
    assert channel_amax(w).tolist() == pytest.approx([2.0, 0.01])
    # 8 bits, per-tensor scale 2/127: half a step is 0.00787; a channel whose max|w| (0.01 or
    # 0.005 here) is below that rounds entirely to 0
    assert erased_channels(torch.tensor([2.0, 0.01]) / 127, 2.0 / 127, 8) == 0
    assert erased_channels(torch.tensor([2.0, 0.005]) / 127, 2.0 / 127, 8) == 1
