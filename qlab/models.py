"""The three reference networks and their shipped, checksummed checkpoints.

Every model takes ``(N, 1, 28, 28)`` normalised Fashion-MNIST images (see
:mod:`qlab.data`) and returns ``(N, 10)`` logits. Each is a plain :class:`torch.nn.Sequential`
of named children built only from ``Conv2d``, ``BatchNorm2d``, ``Linear``, ``ReLU``/``ReLU6``,
``MaxPool2d``/``AdaptiveAvgPool2d`` and ``Flatten``, so quantization code can walk the
layers in order (``for name, layer in model.named_children()``) and find every
conv-BN pair by position.

Pretrained weights live in ``data/checkpoints/<name>.pt`` as
``{"state_dict": ..., "meta": {...}}`` and are produced by ``python -m qlab.train``.
Each load checks the file's SHA-256 against ``SHA256SUMS`` next to it and, for the shipped
checkpoints, against the hashes kept in code (:data:`CHECKPOINT_SHA256`), so a damaged
``SHA256SUMS`` cannot make a damaged checkpoint look valid.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from qlab.data import DataIntegrityError, verify_sha256

__all__ = [
    "CHECKPOINT_DIR",
    "MODEL_NAMES",
    "DepthwiseNet",
    "MLP",
    "SmallCNN",
    "build_model",
    "checkpoint_info",
    "load_pretrained",
]

CHECKPOINT_DIR: Path = Path(__file__).resolve().parent.parent / "data" / "checkpoints"
"""Default location of the shipped checkpoints and their ``SHA256SUMS``."""

MODEL_NAMES: tuple[str, ...] = ("cnn", "depthwise", "mlp")
"""Names accepted by :func:`build_model`, :func:`load_pretrained` and :func:`checkpoint_info`."""

CHECKPOINT_SHA256: dict[str, str] = {
    "cnn.pt": "5e7771588e550fb420777c1adad2bf24d81bfab5c5521c3906afbfc34a29c4d5",
    "depthwise.pt": "d0eaacf96ad253790c5b200c6c044b48af18016c7c069d4b05984ac2dea35436",
    "mlp.pt": "6bbfd714d2f958c977e158f96854bf41ada8dc9d64b636e3aaab5b345ac66102",
}
"""SHA-256 of the shipped checkpoints (same values as ``data/checkpoints/SHA256SUMS``).
A retrained checkpoint in :data:`CHECKPOINT_DIR` must have its hash updated here."""


def _conv_bn(
    in_ch: int, out_ch: int, kernel: int, stride: int, groups: int, act: type[nn.Module]
) -> list[tuple[str, nn.Module]]:
    """Return ``conv`` (no bias, 'same' padding), ``bn`` and activation as named layers."""
    conv = nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False)
    return [
        ("conv", conv),
        ("bn", nn.BatchNorm2d(out_ch)),
        ("act", act()),
    ]


def _prefixed(prefix: str, layers: list[tuple[str, nn.Module]]) -> list[tuple[str, nn.Module]]:
    """Prefix layer names, e.g. ``conv`` -> ``block1_conv``."""
    return [(f"{prefix}_{name}", layer) for name, layer in layers]


class SmallCNN(nn.Sequential):
    """Three conv-BN-ReLU blocks with stride 2 (24, 48, 96 channels) and a linear head.

    Spatial size goes 28 -> 14 -> 7 -> 4, so the head sees ``96 * 4 * 4 = 1536`` features.
    Strided convolutions instead of max-pooling keep every activation small, so the whole
    test set runs through the (quantized) model fast enough for a live slider.
    Layer names: ``block{1,2,3}_{conv,bn,act}``, ``flatten``, ``fc``.
    """

    def __init__(self, num_classes: int = 10, channels: tuple[int, int, int] = (24, 48, 96)) -> None:
        layers: list[tuple[str, nn.Module]] = []
        in_ch = 1
        for i, out_ch in enumerate(channels, start=1):
            layers += _prefixed(f"block{i}", _conv_bn(in_ch, out_ch, 3, 2, 1, nn.ReLU))
            in_ch = out_ch
        layers += [("flatten", nn.Flatten()), ("fc", nn.Linear(in_ch * 4 * 4, num_classes))]
        super().__init__(OrderedDict(layers))


class DepthwiseNet(nn.Sequential):
    """A MobileNet-v1-style network of depthwise-separable blocks.

    A stride-2 3x3 stem conv-BN-ReLU6 (28 -> 14) is followed by blocks of depthwise 3x3 conv
    (``groups=channels``) + BN + ReLU6 and pointwise 1x1 conv + BN + ReLU6, then global
    average pooling and a linear head. Folding BN into the depthwise convs gives every
    output channel its own weight range, which is what breaks per-tensor quantization.
    Layer names: ``stem_*``, ``block{i}_dw_*``, ``block{i}_pw_*``, ``pool``, ``flatten``, ``fc``.
    """

    #: ``(out_channels, stride)`` of each depthwise-separable block.
    BLOCKS: tuple[tuple[int, int], ...] = ((32, 1), (64, 2), (64, 1), (128, 2))

    def __init__(self, num_classes: int = 10, stem_channels: int = 16) -> None:
        layers = _prefixed("stem", _conv_bn(1, stem_channels, 3, 2, 1, nn.ReLU6))
        in_ch = stem_channels
        for i, (out_ch, stride) in enumerate(self.BLOCKS, start=1):
            layers += _prefixed(f"block{i}_dw", _conv_bn(in_ch, in_ch, 3, stride, in_ch, nn.ReLU6))
            layers += _prefixed(f"block{i}_pw", _conv_bn(in_ch, out_ch, 1, 1, 1, nn.ReLU6))
            in_ch = out_ch
        layers += [
            ("pool", nn.AdaptiveAvgPool2d(1)),
            ("flatten", nn.Flatten()),
            ("fc", nn.Linear(in_ch, num_classes)),
        ]
        super().__init__(OrderedDict(layers))


class MLP(nn.Sequential):
    """Flatten followed by Linear-ReLU layers: 784 -> 256 -> 128 -> 10.

    Layer names: ``flatten``, ``fc1``, ``act1``, ``fc2``, ``act2``, ``fc3``.
    """

    def __init__(self, num_classes: int = 10, hidden: tuple[int, ...] = (256, 128)) -> None:
        layers: list[tuple[str, nn.Module]] = [("flatten", nn.Flatten())]
        in_features = 28 * 28
        for i, width in enumerate(hidden, start=1):
            layers += [(f"fc{i}", nn.Linear(in_features, width)), (f"act{i}", nn.ReLU())]
            in_features = width
        layers.append((f"fc{len(hidden) + 1}", nn.Linear(in_features, num_classes)))
        super().__init__(OrderedDict(layers))


_BUILDERS: dict[str, type[nn.Sequential]] = {"cnn": SmallCNN, "depthwise": DepthwiseNet, "mlp": MLP}


def _check_name(name: str) -> None:
    """Raise ValueError unless ``name`` is one of :data:`MODEL_NAMES`."""
    if name not in MODEL_NAMES:
        raise ValueError(f"Unknown model {name!r}; expected one of {MODEL_NAMES}")


def build_model(name: str) -> nn.Module:
    """Return a freshly initialised model (train mode) for ``name`` in :data:`MODEL_NAMES`."""
    _check_name(name)
    return _BUILDERS[name]()


def _expected_sha256(sums_path: Path, filename: str, restore_hint: str) -> str:
    """Look up ``filename`` in a ``sha256sum``-format file."""
    if not sums_path.is_file():
        raise FileNotFoundError(f"Missing checksum file {sums_path}. {restore_hint}")
    for line in sums_path.read_text().splitlines():
        digest, _, listed = line.partition(" ")
        if listed.lstrip(" *") == filename:
            return digest
    raise DataIntegrityError(f"{sums_path} has no entry for {filename}. {restore_hint}")


def _load_checkpoint(name: str, root: Path | None) -> dict[str, Any]:
    """Verify ``<root>/<name>.pt`` against ``<root>/SHA256SUMS`` (and, in the default
    directory, :data:`CHECKPOINT_SHA256`) and load it (weights only)."""
    _check_name(name)
    root = CHECKPOINT_DIR if root is None else Path(root)
    path = root / f"{name}.pt"
    hint = (
        "Restore it with `git checkout -- data/checkpoints` or retrain with "
        f"`python -m qlab.train {name}`."
    )
    expected = _expected_sha256(root / "SHA256SUMS", path.name, hint)
    if root.resolve() == CHECKPOINT_DIR.resolve() and expected != CHECKPOINT_SHA256[path.name]:
        raise DataIntegrityError(
            f"{root / 'SHA256SUMS'} lists {expected} for {path.name} but qlab.models.CHECKPOINT_SHA256 "
            f"expects {CHECKPOINT_SHA256[path.name]}. {hint} After retraining, update CHECKPOINT_SHA256."
        )
    verify_sha256(path, expected, hint)
    return torch.load(path, map_location="cpu", weights_only=True)


def load_pretrained(name: str, *, root: Path | None = None) -> nn.Module:
    """Return the shipped model ``name`` with its trained weights, in eval mode.

    Args:
        name: one of :data:`MODEL_NAMES`.
        root: checkpoint directory; defaults to :data:`CHECKPOINT_DIR`.

    Raises:
        ValueError: unknown ``name``.
        FileNotFoundError: the checkpoint or ``SHA256SUMS`` is missing.
        DataIntegrityError: the checkpoint's SHA-256 does not match ``SHA256SUMS``.
    """
    model = build_model(name)
    model.load_state_dict(_load_checkpoint(name, root)["state_dict"])
    return model.eval()


def checkpoint_info(name: str, *, root: Path | None = None) -> dict[str, Any]:
    """Return the metadata recorded when checkpoint ``name`` was trained.

    Keys include ``test_accuracy``, ``epochs``, ``seed``, ``torch_version``,
    ``num_threads``, ``num_parameters`` and ``config`` (the training hyper-parameters).
    Same arguments and errors as :func:`load_pretrained`.
    """
    return dict(_load_checkpoint(name, root)["meta"])
