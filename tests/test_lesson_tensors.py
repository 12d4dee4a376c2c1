"""The shared lesson tensors are the BN-folded weights and layer inputs, computed once."""

from __future__ import annotations

import torch
from torch.nn.utils.fusion import fuse_conv_bn_weights

from qlab import lesson_tensors
from qlab.data import calibration_subset
from qlab.models import load_pretrained


def test_folded_weights_match_torch_fusion() -> None:
    model = load_pretrained("cnn")
    conv, bn = model.block2_conv, model.block2_bn
    expected, _ = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias)
    torch.testing.assert_close(lesson_tensors.folded_weights("cnn")["block2_conv"], expected.detach(), rtol=1e-6, atol=1e-7)
    assert torch.equal(lesson_tensors.bell_weights(), lesson_tensors.folded_weights("cnn")["block2_conv"].flatten())
    assert list(lesson_tensors.folded_weights("cnn")) == ["block1_conv", "block2_conv", "block3_conv", "fc"]


def test_tail_activations_are_the_fc_input_on_the_calibration_images() -> None:
    model = load_pretrained("cnn").eval()
    with torch.inference_mode():
        features = torch.nn.Sequential(*list(model.children())[:-1])(calibration_subset())  # everything before fc
    x = lesson_tensors.tail_activations()
    assert x.shape == (features.numel(),) and bool((x >= 0).all())
    torch.testing.assert_close(x, features.flatten(), rtol=1e-4, atol=1e-4)  # BN folded vs not: last-bit differences


def test_computed_once() -> None:
    assert lesson_tensors.ptq_cache("cnn") is lesson_tensors.ptq_cache("cnn")
    assert lesson_tensors.layer_inputs("cnn")["fc"] is lesson_tensors.layer_inputs("cnn")["fc"]
