"""BatchNorm folding: bit-for-bit equal to torch.nn.utils.fusion, and output-preserving."""

from __future__ import annotations

import pytest
import torch
from strategies import same_bits
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from qlab.folding import bn_factors, fold_batchnorm, fold_bn_weights
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


def test_fold_needs_a_module():
    with pytest.raises(TypeError, match="needs an nn.Module"):
        fold_batchnorm(torch.ones(3))


class _Block(nn.Module):
    """BatchNorm outside a Sequential: its order of use is unknown, so it is not folded."""

    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(4)
        self.conv = nn.Conv2d(4, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.bn(x))


def test_pairs_inside_nested_sequentials_are_folded_and_others_kept():
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(
        nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU()),
        _Block(),
        nn.Sequential(nn.Flatten(2, 3), nn.Conv1d(4, 3, 1), nn.BatchNorm1d(3)),
    ).eval()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            _random_bn(m, g)
    folded = fold_batchnorm(model)
    assert isinstance(folded[0][1], nn.Identity) and isinstance(folded[2][2], nn.Identity)
    assert isinstance(folded[1].bn, nn.BatchNorm2d)
    x = torch.randn(2, 1, 5, 5, generator=g)
    with torch.inference_mode():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("affine", [False, True])
def test_bn_factors_are_gamma_over_sqrt_var_plus_eps(affine):
    bn = nn.BatchNorm2d(6, affine=affine, eps=1e-3)
    _random_bn(bn, torch.Generator().manual_seed(3))
    gamma = bn.weight.detach() if affine else torch.ones(6)
    k = bn_factors(bn)
    torch.testing.assert_close(k, gamma / torch.sqrt(bn.running_var + bn.eps))
    conv = nn.Conv2d(2, 6, 3, bias=False)
    w, _ = fuse_conv_bn_weights(conv.weight, None, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias)
    assert same_bits(conv.weight.detach() * k.reshape(-1, 1, 1, 1), w.detach())


def test_channel_count_mismatch():
    with pytest.raises(ValueError, match="BatchNorm has 3 channels but the conv has 4"):
        fold_bn_weights(torch.ones(4, 1, 1, 1), None, torch.zeros(3), torch.ones(3), 1e-5, None, None)
