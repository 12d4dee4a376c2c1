"""The real tensors the lessons study, computed once per process and shared.

Lessons 03 and 04, their dashboards and their exercises all look at the same tensors of
the pretrained models: the BatchNorm-folded weight of every Conv2d/Linear (what a
deployed model stores) and the input of every weighted layer on the 512 calibration
images. Import them from here, never from another dashboard, so that every consumer sees
the same numbers and each is computed once.

The returned tensors are shared between callers: treat them as read-only.
"""

from __future__ import annotations

import functools

import torch

from qlab.models import load_pretrained
from qlab.ptq import PTQCache, weighted_layers
from qlab.session import build_cache

BIT_WIDTH_MODEL = "cnn"
"""The model whose folded weights lesson 03 quantizes."""
BIT_WIDTH_LAYER = "block2_conv"
"""The layer lessons 03 and 04 quantize (a bell-shaped weight tensor)."""
TAIL_LAYER = "fc"
"""The layer whose input (post-ReLU, long-tailed) lesson 04 clips."""


@functools.cache
def ptq_cache(model: str) -> PTQCache:
    """The :class:`qlab.ptq.PTQCache` of a pretrained model: its BN-folded copy and the inputs
    of its weighted layers on the course's calibration images (``qlab.session.build_cache``)."""
    return build_cache(load_pretrained(model))


def folded_weights(model: str = BIT_WIDTH_MODEL) -> dict[str, torch.Tensor]:
    """Weight W' of every Conv2d/Linear of the pretrained ``model`` after BN folding, by layer name.

    Shapes are the layers' own (out_channels, ...); flatten for per-tensor statistics.
    """
    return {name: layer.weight.detach() for name, layer in weighted_layers(ptq_cache(model).folded)}


def layer_inputs(model: str = BIT_WIDTH_MODEL) -> dict[str, torch.Tensor]:
    """Input of every weighted layer of ``model`` on the calibration images, by layer name."""
    return dict(ptq_cache(model).layer_inputs)


def bell_weights() -> torch.Tensor:
    """Lesson 03/04's weight tensor: cnn ``block2_conv`` after BN folding, flattened."""
    return folded_weights(BIT_WIDTH_MODEL)[BIT_WIDTH_LAYER].flatten()


def tail_activations() -> torch.Tensor:
    """Lesson 03/04's activation tensor: the input of cnn ``fc`` on the calibration images, flattened."""
    return layer_inputs(BIT_WIDTH_MODEL)[TAIL_LAYER].flatten()
