"""The argument checks every module shares: one rule each, one wording each.

A wrong type is a ``TypeError`` and a wrong value a ``ValueError``; every message starts with the name of
the argument at fault and ends with what was given, so a student reads what to change without a
traceback into the library. ``bool`` is refused where an int or a number is expected (``True`` is an int
to Python, never a size to us). Each check returns its value, converted where that helps
(``number`` gives a float), so a caller writes ``n = validate.integer("n", n, low=1)``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

__all__ = ["integer", "number", "one_of", "tensor", "finite_vector", "token_ids", "is_int", "is_number"]


def is_int(value: object) -> bool:
    """True for an int that is not a bool (numpy ints count: they are numbers.Integral)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """True for a real number that is not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _range(low: float | None, high: float | None, low_open: bool = False, high_open: bool = False) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high}")
    return " and ".join(parts)


def integer(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """value as an int: TypeError unless an int (not a bool), ValueError outside [low, high]."""
    if not is_int(value):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be an int {_range(low, high)}, got {value}")
    return int(value)


def number(name: str, value: Any, *, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False, finite: bool = True) -> float:
    """value as a float: TypeError unless a real number (not a bool); ValueError for NaN, for inf where
    finite, and outside the range (low_open / high_open make that end strict)."""
    if not is_number(value):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    bad = math.isnan(value) or (finite and math.isinf(value))
    bad = bad or (low is not None and (value <= low if low_open else value < low))
    bad = bad or (high is not None and (value >= high if high_open else value > high))
    if bad:
        kind = "a finite number" if finite else "a number"
        where = _range(low, high, low_open, high_open)
        raise ValueError(f"{name} must be {kind}{' ' + where if where else ''}, got {value}")
    return value


def one_of(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """value itself, if it is one of choices (compared with ==); else a ValueError listing them."""
    choices = tuple(choices)
    if isinstance(value, bool) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")
    return value


def tensor(name: str, value: Any, *, dim: int | None = None, floating: bool | None = None) -> Tensor:
    """value, if it is a torch.Tensor with dim dimensions and (floating=True) a floating dtype or
    (floating=False) an integer one; TypeError for a non-tensor or a wrong dtype, ValueError for a wrong dim."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if dim is not None and value.dim() != dim:
        raise ValueError(f"{name} must have {dim} dimensions, got shape {tuple(value.shape)}")
    if floating is True and not value.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor, got {value.dtype}")
    if floating is False and (value.is_floating_point() or value.is_complex() or value.dtype == torch.bool):
        raise TypeError(f"{name} must be an integer tensor, got {value.dtype}")
    return value


def finite_vector(name: str, value: Any) -> Tensor:
    """value as a 1-D float64 tensor of finite numbers (a tensor, a list, an array): TypeError if it is not
    numbers, ValueError for another number of dimensions or a NaN or inf. Shapes: (n,) -> (n,)."""
    try:
        value = torch.as_tensor(value, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{name} must be a 1-D tensor or list of numbers, got {type(value).__name__}") from None
    if value.dim() != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(value.shape)}")
    if not bool(torch.isfinite(value).all()):
        raise ValueError(f"{name} must be finite numbers, got {value.tolist()}")
    return value


def token_ids(name: str, value: Any, vocab_size: int) -> Tensor:
    """value, if it is an integer tensor (batch, seq_len) of ids in 0..vocab_size-1 (else an IndexError deep in
    nn.Embedding): ValueError for another shape or an id out of range, TypeError for a non-integer dtype."""
    if not isinstance(value, Tensor) or value.dim() != 2:
        raise ValueError(f"{name} must be a tensor of shape (batch, seq_len), got {getattr(value, 'shape', type(value))}")
    if value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor of token ids, got {value.dtype}")
    if value.numel() and bool(((value < 0) | (value >= vocab_size)).any()):
        raise ValueError(f"{name} must be ids in 0..{vocab_size - 1}, got {int(value.min())}..{int(value.max())}")
    return value
