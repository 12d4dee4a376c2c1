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


def bn_factors(bn: nn.modules.batchnorm._BatchNorm) -> torch.Tensor:
    """Per-channel factor k = gamma / sqrt(var + eps) of an eval-mode BatchNorm (gamma = 1 if not affine).

    Computed as in :func:`fold_bn_weights` (``gamma * rsqrt(var + eps)``), so ``W' = W * k[c]``
    bit for bit.
    """
    if bn.running_var is None:
        raise ValueError("BatchNorm without running statistics has no fixed per-channel factor")
    gamma = torch.ones_like(bn.running_var) if bn.weight is None else bn.weight.detach()
    return gamma * torch.rsqrt(bn.running_var + bn.eps)


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
    rsqrt = torch.rsqrt(bn_var + bn_eps)  # bn_factors() = bn_gamma * rsqrt
    shape = [-1] + [1] * (conv_w.dim() - 1)
    return conv_w * (bn_gamma * rsqrt).reshape(shape), (conv_b - bn_mean) * rsqrt * bn_gamma + bn_beta


FOLDABLE = ((nn.Conv1d, nn.BatchNorm1d), (nn.Conv2d, nn.BatchNorm2d))


def fold_conv_bn(conv: nn.Conv1d | nn.Conv2d, bn: nn.BatchNorm1d | nn.BatchNorm2d) -> nn.Module:
    """A new conv (with bias) equal to ``bn(conv(x))`` in eval mode."""
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


def _foldable(conv: nn.Module, bn: nn.Module) -> bool:
    return any(type(conv) is c and type(bn) is b for c, b in FOLDABLE)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every conv -> BatchNorm pair folded into one conv.

    Pairs are adjacent children of an ``nn.Sequential`` (at any depth), where registration
    order is data flow: Conv1d -> BatchNorm1d or Conv2d -> BatchNorm2d. The BatchNorm is
    replaced by ``nn.Identity`` so layer names and positions stay the same. BatchNorms
    elsewhere are left as they are (their order of use is unknown). The original model is
    left untouched; the copy is in eval mode.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"fold_batchnorm needs an nn.Module, got {type(model).__name__}")
    folded = copy.deepcopy(model).eval()
    for seq in [m for m in folded.modules() if isinstance(m, nn.Sequential)]:
        names = [name for name, _ in seq.named_children()]
        for name, nxt in zip(names, names[1:]):
            conv, bn = getattr(seq, name), getattr(seq, nxt)
            if _foldable(conv, bn):
                setattr(seq, name, fold_conv_bn(conv, bn))
                setattr(seq, nxt, nn.Identity())
    return folded
