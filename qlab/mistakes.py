"""Deliberately WRONG quantization formulas, kept here so lesson 02 can run them.

Each function reproduces a bug that appears in popular tutorials and blog posts. They
exist only to be compared against the correct :func:`qlab.affine.fake_quantize`; never use
them for anything else. Every docstring states the buggy formula, the correct one and
what goes wrong.

All functions take a float tensor ``w`` and return the *reconstructed real values*
(what the network would compute with), so they can be compared to ``w`` directly.
"""

from __future__ import annotations

import torch

from qlab._checks import as_float_tensor, check_bits, check_finite


def _range(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return w.min(), w.max()


def multiply_by_scale(w: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """Mistake (a): multiplying by the scale instead of dividing by it.

    Buggy:   scale = (max - min) / (2^b - 1);   q = round(w * scale);   w_hat = q * scale
    Correct: q = round(w / scale) + zero_point  (scale is a *step size* in real units)

    The scale is small (a step of the grid), so ``w * scale`` is tiny and rounds to 0 for
    every |w| < 0.5 / scale: with [-10, 10] and 8 bits, scale = 20/255 and a weight of 5.5
    gives round(0.43) = 0. Typical weights (|w| << 1/scale) all collapse to zero.
    """
    w = check_finite(as_float_tensor(w))
    mn, mx = _range(w)
    scale = (mx - mn) / (2 ** check_bits(bits) - 1)
    return torch.round(w * scale) * scale


def bits_as_step(w: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """Mistake (b): using the bit width itself as the step size.

    Buggy:   w_q = round(w / 2^b) * 2^b
    Correct: w_q = round(w / scale) * scale with scale = range / (2^b - 1)

    2^b is the *number of levels*, not the distance between them. With b = 8 the grid
    step is 256, so every weight with |w| < 128 (i.e. every real weight) becomes 0, and
    *more* bits make it worse (a coarser grid), the opposite of what bits should do.
    """
    w = check_finite(as_float_tensor(w))
    step = float(2 ** check_bits(bits))
    return torch.round(w / step) * step


def round_before_rescale(w: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """Mistake (c): normalising to [0, 1] and rounding *before* stretching to 2^b - 1 codes.

    Buggy:   u = (w - min) / (max - min);   q = round(u) * (2^b - 1)
             w_hat = q / (2^b - 1) * (max - min) + min
    Correct: q = round(u * (2^b - 1))       (scale up first, then round)

    round(u) of a value in [0, 1] is 0 or 1, so only the two levels ``min`` and ``max``
    survive, whatever the bit width: the bits are spent after the information is gone.
    """
    w = check_finite(as_float_tensor(w))
    mn, mx = _range(w)
    n_steps = 2 ** check_bits(bits) - 1
    q = torch.round((w - mn) / (mx - mn)) * n_steps
    return q / n_steps * (mx - mn) + mn


def grid_from_min(w: torch.Tensor, min_val: float, max_val: float, bits: int = 8) -> torch.Tensor:
    """Mistake (zero not on the grid): anchoring the grid at ``min`` with no integer zero-point.

    Buggy:   scale = (max - min) / (2^b - 1);   w_hat = min + round((w - min) / scale) * scale
    Correct: zero_point = round(-min / scale) is an *integer*, so real 0 is a grid point.

    The grid points are min + k * scale; 0 is one of them only if -min / scale happens to
    be a whole number. Otherwise every exact zero (zero padding, ReLU outputs, pruned
    weights) comes back as a small non-zero value, a bias that adds up over a layer.
    """
    w = check_finite(as_float_tensor(w))
    scale = (max_val - min_val) / (2 ** check_bits(bits) - 1)
    return min_val + torch.round((w - min_val) / scale) * scale
