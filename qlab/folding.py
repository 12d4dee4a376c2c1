"""BatchNorm folding: merge an inference-mode BatchNorm into the convolution before it.

In eval mode BatchNorm is a per-channel affine map, y = gamma * (z - mean) / sqrt(var + eps) + beta,
and z = W * x + b is linear, so the two collapse into one convolution:

    k  = gamma / sqrt(var + eps)                    (one factor per output channel)
    W' = W * k[out_channel]
    b' = (b - mean) * k + beta                      (b = 0 when the conv has no bias)

Quantization tools fold BN before quantizing weights, because the integer kernel only sees
W'. The factors k differ wildly between channels (depthwise layers above all), which is
what makes one scale per tensor fail and one scale per channel work (lesson 05).

The arithmetic (operation order included) is that of ``torch.nn.utils.fusion.fuse_conv_bn_weights``,
so results match it bit for bit.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def fold_bn_weights(
    conv_w: torch.Tensor,
    conv_b: torch.Tensor | None,
    bn_mean: torch.Tensor,
    bn_var: torch.Tensor,
    bn_eps: float,
    bn_gamma: torch.Tensor | None,
    bn_beta: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Folded (W', b') for a conv weight of shape (C_out, ...) and a BatchNorm over C_out."""
    if bn_mean.shape != (conv_w.shape[0],):
        raise ValueError(
            f"BatchNorm has {bn_mean.numel()} channels but the conv has {conv_w.shape[0]} output channels"
        )
    conv_b = torch.zeros_like(bn_mean) if conv_b is None else conv_b
    bn_gamma = torch.ones_like(bn_mean) if bn_gamma is None else bn_gamma
    bn_beta = torch.zeros_like(bn_mean) if bn_beta is None else bn_beta
    rsqrt = torch.rsqrt(bn_var + bn_eps)
    shape = [-1] + [1] * (conv_w.dim() - 1)
    return conv_w * (bn_gamma * rsqrt).reshape(shape), (conv_b - bn_mean) * rsqrt * bn_gamma + bn_beta


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new Conv2d (with bias) equal to ``bn(conv(x))`` in eval mode."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("BatchNorm without running statistics cannot be folded")
    folded = copy.deepcopy(conv)
    w, b = fold_bn_weights(
        conv.weight.detach(), None if conv.bias is None else conv.bias.detach(),
        bn.running_mean, bn.running_var, bn.eps,
        None if bn.weight is None else bn.weight.detach(), None if bn.bias is None else bn.bias.detach(),
    )
    folded.weight = nn.Parameter(w)
    folded.bias = nn.Parameter(b)
    return folded


def fold_batchnorm(model: nn.Sequential) -> nn.Sequential:
    """A copy of a Sequential model with every Conv2d -> BatchNorm2d pair folded into one Conv2d.

    The BatchNorm is replaced by ``nn.Identity`` so layer names and positions stay the same.
    The original model is left untouched. The copy is in eval mode.
    """
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"fold_batchnorm needs an nn.Sequential model, got {type(model).__name__}")
    folded = copy.deepcopy(model).eval()
    names = [name for name, _ in folded.named_children()]
    for name, nxt in zip(names, names[1:]):
        conv, bn = getattr(folded, name), getattr(folded, nxt)
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            setattr(folded, name, fold_conv_bn(conv, bn))
            setattr(folded, nxt, nn.Identity())
    return folded
