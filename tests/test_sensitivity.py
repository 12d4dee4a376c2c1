"""PTQSession.sensitivity: one layer quantized at a time, the rest float, built independently here."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from qlab.evaluation import evaluate
from qlab.ptq import quantize_model, quantize_weight
from qlab.session import PTQSession, one_layer_quantized, shared_session


class InputFakeQuant(nn.Module):
    """A Linear whose input is fake-quantized on the unsigned affine grid of a fixed range, by hand."""

    def __init__(self, layer: nn.Linear, lo: float, hi: float, bits: int) -> None:
        super().__init__()
        self.layer, self.bits = layer, bits
        self.scale = (hi - lo) / (2**bits - 1)
        self.zero_point = round(-lo / self.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = torch.clamp(torch.round(x / self.scale) + self.zero_point, 0, 2**self.bits - 1)
        return self.layer((q - self.zero_point) * self.scale)


def test_weight_only_sensitivity_matches_a_hand_built_model_per_layer() -> None:
    session = PTQSession()
    accuracy = session.sensitivity("mlp", weight_bits=2)
    folded = session.cache("mlp").folded
    assert list(accuracy) == ["fc1", "fc2", "fc3"]
    for name in accuracy:
        by_hand = copy.deepcopy(folded)
        layer = getattr(by_hand, name)
        layer.weight.data = quantize_weight(layer.weight.detach(), 2, "per_channel").weight
        assert accuracy[name] == pytest.approx(evaluate(by_hand), abs=1e-4), name
    assert session.sensitivity("mlp", weight_bits=2) is accuracy, "memoized per (model, config)"


def test_activation_sensitivity_uses_the_calibrated_range_of_that_layer_only() -> None:
    session = PTQSession()
    accuracy = session.sensitivity("mlp", weight_bits=8, act_bits=3, calibrator="minmax")
    folded = session.cache("mlp").folded
    lo, hi = (float(v) for v in torch.aminmax(session.cache("mlp").layer_inputs["fc2"]))
    by_hand = copy.deepcopy(folded)
    fc2 = copy.deepcopy(folded.fc2)
    fc2.weight.data = quantize_weight(fc2.weight.detach(), 8, "per_channel").weight
    by_hand.fc2 = InputFakeQuant(fc2, lo, hi, 3)
    assert accuracy["fc2"] == pytest.approx(evaluate(by_hand), abs=3e-4)  # 3 images: float vs integer-code sums
    assert min(accuracy.values()) < session.fp32_accuracy("mlp") - 0.003, "3-bit inputs cost some layer accuracy"


def test_one_layer_quantized_leaves_the_other_layers_float() -> None:
    session = PTQSession()
    folded = session.cache("mlp").folded
    qmodel = quantize_model(session.model("mlp"), 4, 4, cache=session.cache("mlp"))
    single = one_layer_quantized(folded, qmodel, "fc2")
    assert single.fc2 is qmodel.fc2
    for name in ("fc1", "fc3"):
        assert torch.equal(getattr(single, name).weight, getattr(folded, name).weight)
    assert isinstance(folded.fc2, nn.Linear), "the float model is not modified"
    with pytest.raises(ValueError, match="layer must be one of"):
        one_layer_quantized(folded, qmodel, "fc4")


def test_shared_session_is_one_per_process() -> None:
    assert shared_session() is shared_session()
