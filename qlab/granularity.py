"""Granularity: which elements share one (scale, zero_point) pair.

- per tensor  (``axis=None, group_size=None``): one pair for the whole tensor.
- per channel (``axis=c``): one pair per index along axis ``c`` (torch's ``ch_axis``),
  e.g. per output channel of a conv weight ``(C_out, C_in, kH, kW)`` with ``axis=0``.
- per group   (``group_size=g``): the last axis is cut into consecutive groups of ``g``
  elements and each group gets its own pair (LLM weight quantization, e.g. g=32 or 128).
  Parameters then have shape ``x.shape[:-1] + (x.shape[-1] // g,)``.

This module only reshapes; the formulas live in :mod:`qlab.affine`.
"""

from __future__ import annotations

import torch

from qlab._checks import check_group_size, normalize_axis


def check_granularity(x: torch.Tensor, axis: int | None, group_size: int | None) -> int | None:
    """Validate ``axis``/``group_size`` for ``x``; return the axis as a non-negative index."""
    if axis is not None and group_size is not None:
        raise ValueError(
            "pass either axis (per-channel) or group_size (per-group along the last axis), not both"
        )
    if group_size is not None:
        if x.dim() == 0:
            raise ValueError("group_size needs a tensor with at least one dimension")
        check_group_size(group_size, x.shape[-1])
    return normalize_axis(axis, x.dim())


def channel_rows(x: torch.Tensor, axis: int) -> torch.Tensor:
    """Move ``axis`` to the front and flatten the rest: one row per channel (as torch.ao does).

    Unlike torch.ao's observers this also works for 1-D tensors (one element per channel).
    """
    return x.movedim(axis, 0).reshape(x.shape[axis], -1)


def group_view(x: torch.Tensor, group_size: int) -> torch.Tensor:
    """View the last axis as ``(n_groups, group_size)``: shape ``(*lead, G, g)``."""
    return x.reshape(*x.shape[:-1], x.shape[-1] // group_size, group_size)


def param_shape(x: torch.Tensor, axis: int | None, group_size: int | None) -> tuple[int, ...]:
    """Shape of the scale/zero-point tensors for ``x`` at this granularity."""
    if group_size is not None:
        return (*x.shape[:-1], x.shape[-1] // group_size)
    if axis is not None:
        return (x.shape[axis],)
    return ()


def minmax(
    x: torch.Tensor, axis: int | None = None, group_size: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Float32 min and max of ``x`` per tensor, per channel or per group.

    Per tensor and per channel this is exactly what torch.ao's ``MinMaxObserver`` and
    ``PerChannelMinMaxObserver(ch_axis=axis)`` record (``torch.aminmax`` on float32 data).
    """
    axis = check_granularity(x, axis, group_size)
    x = x.detach().to(torch.float32)
    if group_size is not None:
        return torch.aminmax(group_view(x, group_size), dim=-1)
    if axis is not None:
        return torch.aminmax(channel_rows(x, axis), dim=1)
    return torch.aminmax(x)


def broadcast_param(p: torch.Tensor, x: torch.Tensor, axis: int | None, group_size: int | None) -> torch.Tensor:
    """Reshape a parameter so it broadcasts against ``x`` (or against ``group_view(x)``)."""
    if group_size is not None:
        return p.unsqueeze(-1)
    if axis is not None:
        shape = [1] * x.dim()
        shape[axis] = -1
        return p.reshape(shape)
    return p.reshape(())
