"""Argument checks shared by every qlab module.

Each check raises ``ValueError`` or ``TypeError`` with a message that names the argument and
the values it may take, so a learner sees the problem at the call they wrote instead of a
NaN or a crash deep inside torch.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch

MIN_BITS = 2
MAX_BITS = 16

F = TypeVar("F", bound=Callable[..., Any])


def check_bits(bits: int, name: str = "bits") -> int:
    """Return ``bits`` as an int if it is a whole number in [MIN_BITS, MAX_BITS]."""
    if isinstance(bits, (bool, np.bool_)) or not isinstance(bits, (int, np.integer)):
        raise TypeError(f"{name} must be an integer from {MIN_BITS} to {MAX_BITS}, got {bits!r}")
    if not MIN_BITS <= bits <= MAX_BITS:
        raise ValueError(f"{name} must be from {MIN_BITS} to {MAX_BITS}, got {bits}")
    return int(bits)


def check_bool(value: bool, name: str) -> bool:
    """Return ``value`` if it is a real boolean (``True``/``False``, numpy bools included).

    Strings are rejected because ``bool("False")`` is True; numbers because 0/1 flags hide typos.
    """
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")
    return bool(value)


def check_number(value: float, name: str) -> float:
    """Return ``value`` as a float if it is a real number (not a bool, string or None)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    return float(value)


def check_generator(generator: Any) -> torch.Generator | None:
    """Return ``generator`` if it is None or a ``torch.Generator`` (a bare seed is rejected)."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator or None, got {generator!r}; "
            f"pass e.g. generator=torch.Generator().manual_seed({generator!r})"
        )
    return generator


def as_param_tensor(value: Any, name: str) -> torch.Tensor:
    """A scale/zero-point/range argument as a tensor: a number, a sequence of numbers, a numpy
    array or a tensor. Strings, None and booleans raise ``TypeError`` naming ``name``."""
    if isinstance(value, (list, tuple)):
        for v in value:
            check_number(v, name)
        return torch.as_tensor(value)
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if isinstance(value, torch.Tensor):
        if value.dtype == torch.bool or value.is_complex():
            raise TypeError(f"{name} must hold real numbers, got dtype {value.dtype}")
        return value.detach()
    check_number(value, name)
    return torch.as_tensor(value)


def check_qrange(quant_min: int, quant_max: int) -> tuple[int, int]:
    """Check an integer range the way torch does: whole numbers with quant_min < quant_max."""
    for name, value in (("quant_min", quant_min), ("quant_max", quant_max)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an integer, got {value!r}")
    if quant_min >= quant_max:
        raise ValueError(
            f"quant_min must be smaller than quant_max, got quant_min={quant_min}, quant_max={quant_max}"
        )
    if quant_min < -(2**31) or quant_max > 2**31 - 1:
        raise ValueError(f"quant_min and quant_max must fit in int32, got ({quant_min}, {quant_max})")
    return int(quant_min), int(quant_max)


def as_float_tensor(x: Any, name: str = "x", allow_empty: bool = False) -> torch.Tensor:
    """Return ``x`` as a floating-point torch tensor (numpy arrays and lists are converted).

    Integer and boolean inputs raise ``TypeError``: quantizing integers is almost always a
    mistake (the values are probably already codes). Empty inputs raise ``ValueError``.
    """
    if isinstance(x, np.ndarray) or isinstance(x, (list, tuple, float)):
        x = torch.as_tensor(np.asarray(x))
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must have a floating-point dtype (float32, float64, ...), got {x.dtype}; "
            f"convert it first, e.g. {name}.float()"
        )
    if x.numel() == 0 and not allow_empty:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)}); there is nothing to quantize")
    return x


def check_finite(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    """Raise ``ValueError`` if ``x`` holds NaN or +-inf, saying how many and where to look."""
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        n_nan = int(torch.isnan(x).sum())
        n_inf = int(bad.sum()) - n_nan
        raise ValueError(
            f"{name} contains non-finite values ({n_nan} NaN, {n_inf} inf); "
            f"remove or replace them (e.g. torch.nan_to_num) before quantizing"
        )
    return x


def check_no_nan(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    """Raise ``ValueError`` if ``x`` holds NaN (infinities are allowed: they saturate)."""
    if bool(torch.isnan(x).any()):
        raise ValueError(
            f"{name} contains {int(torch.isnan(x).sum())} NaN value(s); NaN has no integer code "
            f"(torch silently maps it to quant_min). Replace it first, e.g. torch.nan_to_num"
        )
    return x


def normalize_axis(axis: int | None, ndim: int, name: str = "axis") -> int | None:
    """Return ``axis`` as a non-negative index into a tensor with ``ndim`` dimensions."""
    if axis is None:
        return None
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{name} must be an integer or None, got {axis!r}")
    if ndim == 0:
        raise ValueError(f"{name}={axis} does not exist: a 0-dimensional tensor has no axes; use {name}=None")
    if not -ndim <= axis < ndim:
        raise ValueError(
            f"{name}={axis} does not exist for a tensor with {ndim} dimension(s); "
            f"allowed values are {-ndim} to {ndim - 1} or None"
        )
    return int(axis) % ndim


def check_group_size(group_size: int, length: int) -> int:
    """Check that ``group_size`` is a positive whole number that divides ``length``."""
    if isinstance(group_size, bool) or not isinstance(group_size, (int, np.integer)):
        raise TypeError(f"group_size must be a positive integer or None, got {group_size!r}")
    if group_size <= 0:
        raise ValueError(f"group_size must be positive, got {group_size}")
    if length % group_size != 0:
        raise ValueError(
            f"group_size={group_size} does not divide the last axis (length {length}); "
            f"choose a divisor of {length}"
        )
    return int(group_size)


def check_choice(value: str, allowed: tuple[str, ...] | Any, name: str) -> str:
    """Raise ``ValueError`` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


def numpy_io(func: F) -> F:
    """Let a torch function accept numpy arrays: numpy in -> numpy out.

    If any argument is a numpy array, every numpy argument is converted with
    ``torch.from_numpy`` and every tensor in the result (a tensor or a tuple of them) is
    converted back with ``.numpy()``. Torch inputs pass through unchanged.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not any(isinstance(a, np.ndarray) for a in (*args, *kwargs.values())):
            return func(*args, **kwargs)
        conv = [torch.from_numpy(a) if isinstance(a, np.ndarray) else a for a in args]
        kconv = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
        result = func(*conv, **kconv)
        if isinstance(result, tuple):
            return tuple(r.detach().numpy() if isinstance(r, torch.Tensor) else r for r in result)
        return result.detach().numpy() if isinstance(result, torch.Tensor) else result

    return wrapper  # type: ignore[return-value]
