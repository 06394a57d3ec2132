"""Reading what the student's function returned: a comparable value, or a CheckFailed whose message is the hint.

NaN and inf are rejected before any comparison (``abs(nan - b) > tol`` is False, so a NaN would otherwise
pass); a numpy array or a plain number is accepted wherever it holds the right values; None, a wrong type
or a wrong shape becomes one short hint. An answer is copied into a plain tensor, float or str before any
comparison, so a subclass that overrides ``__torch_function__`` or ``__eq__`` decides nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor


class CheckFailed(AssertionError):
    """An exercise answer that does not match the reference; the message is the hint."""


# --- naming what was called and given -----------------------------------------------------------

def name_of(fn: Callable) -> str:
    """The student's function as a hint names it: its own name, or "your function" for a lambda."""
    name = getattr(fn, "__name__", "")
    return name if name and name != "<lambda>" else "your function"


def describe(value: object) -> str:
    """A short, readable form of an input for a hint: small tensors by value, large ones by shape."""
    if isinstance(value, Tensor):
        if value.numel() <= 8:
            return f"tensor({[round(v, 4) if isinstance(v, float) else v for v in value.reshape(-1).tolist()]})"
        return f"tensor of shape {tuple(value.shape)}, {str(value.dtype).removeprefix('torch.')}"
    if isinstance(value, str) and len(value) > 60:
        return f"{value[:40]!r}... ({len(value)} characters)"
    text = repr(value)
    return text if len(text) <= 80 else text[:76] + " ..."


# --- reading what it returned ---------------------------------------------------------------------

def kind(value: object) -> str:
    """'a list', 'a numpy array of shape (2, 3)', 'None': what a hint says the student returned."""
    if value is None:
        return "None"
    if isinstance(value, np.ndarray):
        return f"a numpy array of shape {value.shape}"
    if isinstance(value, Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    name = type(value).__name__
    return f"an {name}" if name[:1] in "aeiou" else f"a {name}"


def _prefix(where: str) -> str:
    return f"{where}: " if where else ""


def _none(where: str, expected: str) -> CheckFailed:
    return CheckFailed(f"{_prefix(where)}your function returned None (a missing `return`?); expected {expected}.")


def _plain(t: Tensor) -> Tensor:
    """t detached on the CPU as a plain torch.Tensor: a subclass's __torch_function__ (which could answer
    torch.allclose itself) plays no part in the comparisons; as_subclass does not dispatch to it."""
    return Tensor.as_subclass(t, Tensor).detach().cpu()


def finite(t: Tensor, where: str = "") -> Tensor:
    """t itself if every value is finite; else a hint naming the first NaN or inf and where it sits."""
    bad = ~torch.isfinite(t)
    if bool(bad.any()):
        index = tuple(int(i) for i in bad.nonzero()[0])
        what = "NaN" if bool(torch.isnan(t[index])) else "inf"
        at = f" at index {index}" if t.dim() else ""
        raise CheckFailed(f"{_prefix(where)}your answer has {what}{at} ({int(bad.sum())} of {t.numel()} values); "
                          "every value must be finite.")
    return t


def as_tensor(got: object, shape: Sequence[int], where: str = "", like: str = "",
              sequences: bool = False) -> Tensor:
    """got as a finite float64 CPU tensor of the given shape, or a hint.

    A torch tensor or a numpy array is accepted (any device, any real dtype); with shape () any single
    number is; with sequences=True a list or tuple of numbers is. `like` names the input whose shape
    the answer shares ("x"), for the hint.
    """
    shape = tuple(shape)
    expected = (f"a tensor of shape {shape}" + (f", like {like}" if like else "")) if shape else "a single number"
    if got is None:
        raise _none(where, expected)
    if isinstance(got, Tensor):
        t = _plain(got)
    elif (isinstance(got, (np.ndarray, np.number)) or (not shape and isinstance(got, (int, float)))
          or (sequences and isinstance(got, (list, tuple)))) and not isinstance(got, bool):
        try:
            t = torch.as_tensor(np.asarray(got))
        except (TypeError, ValueError, RuntimeError):
            raise CheckFailed(f"{_prefix(where)}expected {expected} of numbers, got {kind(got)} that is not "
                              "all numbers.") from None
    else:
        raise CheckFailed(f"{_prefix(where)}expected {expected}, got {kind(got)}.")
    if t.is_complex():
        raise CheckFailed(f"{_prefix(where)}expected real values, got a complex {t.dtype}.")
    if not shape:
        if t.numel() != 1:
            raise CheckFailed(f"{_prefix(where)}expected a single number (a scalar), got shape {tuple(t.shape)}.")
        t = t.reshape(())
    elif tuple(t.shape) != shape:
        raise CheckFailed(f"{_prefix(where)}expected {expected}, got shape {tuple(t.shape)}.")
    return finite(t.to(torch.float64), where)


def as_number(got: object, where: str = "", expected: str = "a number") -> float:
    """got as a finite float: a Python or numpy number, or a one-element tensor or array; else a hint."""
    if got is None:
        raise _none(where, expected)
    if isinstance(got, (bool, np.bool_)):
        raise CheckFailed(f"{_prefix(where)}expected {expected}, got the boolean {got!r}.")
    if isinstance(got, (int, float, np.integer, np.floating)):
        x = float(got)
    elif isinstance(got, (Tensor, np.ndarray)) and math.prod(got.shape) == 1:
        try:
            t = _plain(got) if isinstance(got, Tensor) else torch.as_tensor(got)
        except (TypeError, ValueError, RuntimeError):
            raise CheckFailed(f"{_prefix(where)}expected {expected}, got {kind(got)} that is not a number.") from None
        if t.is_complex() or t.dtype == torch.bool:
            raise CheckFailed(f"{_prefix(where)}expected {expected}, got a {t.dtype} value.")
        x = float(t.reshape(-1)[0])
    else:
        raise CheckFailed(f"{_prefix(where)}expected {expected}, got {kind(got)}.")
    if not math.isfinite(x):
        raise CheckFailed(f"{_prefix(where)}your function returned {'NaN' if math.isnan(x) else x}, not a finite "
                          f"number; expected {expected}.")
    return x


def as_int(got: object, where: str = "", expected: str = "a whole number") -> int:
    """got as an int: any number with a whole value (46, 46.0, tensor(46)); else a hint."""
    x = as_number(got, where, expected)
    if not x.is_integer():
        raise CheckFailed(f"{_prefix(where)}expected {expected}, got {x}, which is not whole.")
    return int(x)


def as_pair(got: object, where: str = "", expected: str = "a pair (lo, hi)") -> tuple[float, float]:
    """got as two finite floats: a tuple or list of two numbers, or a two-element tensor or array."""
    if got is None:
        raise _none(where, expected)
    if isinstance(got, (Tensor, np.ndarray)):
        items = list(got.reshape(-1))
    elif isinstance(got, (tuple, list)):
        items = list(got)
    else:
        raise CheckFailed(f"{_prefix(where)}expected {expected}, got {kind(got)}: {describe(got)}.")
    if len(items) != 2:
        raise CheckFailed(f"{_prefix(where)}expected {expected}, got {len(items)} values.")
    lo, hi = (as_number(x, where, f"{expected} of numbers") for x in items)
    return lo, hi


def as_strings(got: object, where: str = "", expected: str = "a list of str") -> list[str]:
    """got as a list of str: a list, tuple or set whose items are all strings; else a hint."""
    if got is None:
        raise _none(where, expected)
    if isinstance(got, str):
        raise CheckFailed(f"{_prefix(where)}expected {expected}, got one string {describe(got)}: split it into names.")
    if not isinstance(got, (list, tuple, set, frozenset)):
        raise CheckFailed(f"{_prefix(where)}expected {expected}, got {kind(got)}.")
    wrong = [x for x in got if not isinstance(x, str)]
    if wrong:
        raise CheckFailed(f"{_prefix(where)}expected {expected}, but it holds {kind(wrong[0])}: {describe(wrong[0])}.")
    return [str.__str__(x) for x in got]  # plain str: a subclass's __eq__ decides no comparison


def close(got: Tensor, want: Tensor, atol: float = 1e-5) -> bool:
    """got (already read by as_tensor) equals want within atol, in float64."""
    return got.shape == want.shape and torch.allclose(got, want.to(torch.float64), atol=atol)
