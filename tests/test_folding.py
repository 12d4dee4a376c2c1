"""BatchNorm folding: bit-for-bit equal to torch.nn.utils.fusion, and output-preserving."""

from __future__ import annotations

import pytest
import torch
from strategies import same_bits
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from qlab.folding import fold_batchnorm, fold_bn_weights
from qlab.models import build_model


def _random_bn(bn: nn.BatchNorm2d, g: torch.Generator) -> None:
    c = bn.num_features
    bn.running_mean.copy_(torch.randn(c, generator=g))
    bn.running_var.copy_(torch.rand(c, generator=g) * 3 + 0.01)
    if bn.affine:
        bn.weight.data.copy_(torch.randn(c, generator=g))
        bn.bias.data.copy_(torch.randn(c, generator=g))


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("conv_bias", [False, True])
@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("groups", [1, 4])
def test_fold_bn_weights_equals_torch_fusion(seed, conv_bias, affine, groups):
    g = torch.Generator().manual_seed(seed)
    conv = nn.Conv2d(4, 8, 3, groups=groups, bias=conv_bias)
    bn = nn.BatchNorm2d(8, affine=affine, eps=1e-3)
    _random_bn(bn, g)
    ref_w, ref_b = fuse_conv_bn_weights(
        conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias
    )
    w, b = fold_bn_weights(
        conv.weight.detach(), None if conv.bias is None else conv.bias.detach(),
        bn.running_mean, bn.running_var, bn.eps,
        None if bn.weight is None else bn.weight.detach(), None if bn.bias is None else bn.bias.detach(),
    )
    assert same_bits(w, ref_w) and same_bits(b, ref_b)


@pytest.mark.parametrize("name", ["cnn", "depthwise"])
def test_folded_model_computes_the_same_function(name):
    torch.manual_seed(0)
    model = build_model(name).eval()
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            _random_bn(m, g)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded = fold_batchnorm(model)
    x = torch.randn(8, 1, 28, 28, generator=g)
    with torch.inference_mode():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-4)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "original changed"
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_fold_needs_a_sequential():
    with pytest.raises(TypeError, match="needs an nn.Sequential"):
        fold_batchnorm(nn.Conv2d(1, 1, 1))


def test_channel_count_mismatch():
    with pytest.raises(ValueError, match="BatchNorm has 3 channels but the conv has 4"):
        fold_bn_weights(torch.ones(4, 1, 1, 1), None, torch.zeros(3), torch.ones(3), 1e-5, None, None)
