"""What every checker shares: the pass / not-done / fail contract, a safe call of the student's
function, and turning what it returned into a comparable value, or into a hint.

Why a checker can be trusted: the reference is computed first, on the checker's own inputs, and the
student's function gets deep copies (so an answer that zeroes its input in place cannot make the
reference agree with it); NaN and inf are rejected before any comparison (``abs(nan - b) > tol`` is
False, so a NaN would otherwise pass); a numpy array or a plain number is accepted wherever it holds
the right values; and None, a wrong type, a wrong shape or the student's own exception become one
short CheckFailed message instead of a traceback from inside the checker. While the student's function
runs, the library functions that ARE the answer are hidden (``call(..., hide=(rope.apply_rope,))``):
calling one raises, so an answer that only calls the library's own version cannot pass.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import types
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

NOT_CHECKED = "could not check your answer"  # the safety net's wording: tests assert no hint falls back to it


class CheckFailed(AssertionError):
    """An exercise answer that does not match the reference; the message is the hint."""


def checker(body: Callable[..., str]) -> Callable[..., bool]:
    """Wrap a check whose body raises CheckFailed or returns the sentence printed on success.

    The wrapped checker prints "Correct: ..." and returns True on a right answer, raises CheckFailed
    on a wrong one, and prints "Not done yet" and returns False on a stub (NotImplementedError).
    """

    @functools.wraps(body)
    def run(fn: Callable, *args, **kwargs) -> bool:
        if not callable(fn):
            raise CheckFailed(f"pass your function itself, {body.__name__}(my_function), not its result; "
                              f"got {kind(fn)}.")
        try:
            message = body(fn, *args, **kwargs)
        except NotImplementedError:
            print(f"Not done yet: {name_of(fn)} still raises NotImplementedError. Write it, then run this cell again.")
            return False
        except CheckFailed:
            raise
        except Exception as exc:  # an answer no hint anticipated: still one line, never the checker's traceback
            raise CheckFailed(f"{NOT_CHECKED} ({type(exc).__name__}: {exc}); "
                              "compare what your function returns with the exercise's docstring.") from None
        print(f"Correct: {message}")
        return True

    return run


# --- calling the student's function ---------------------------------------------------------------

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


HIDDEN = "lclib-hidden:"  # marks the error a hidden library function raises while the student's function runs


def _raiser(name: str) -> types.CodeType:
    """The code of a function that accepts anything and raises: it names no global (it runs with the globals
    of the function whose code it replaces), only a builtin exception and a constant."""
    namespace: dict = {}
    exec(f"def hidden(*args, **kwargs):\n    raise RuntimeError({HIDDEN + name!r})", {}, namespace)
    return namespace["hidden"].__code__


@contextlib.contextmanager
def hidden(*functions: Callable) -> Iterator[None]:
    """Within the block, each of these library functions raises when called, wherever it was imported from
    (the function object itself is changed, so `from lclib.rope import apply_rope` is caught too)."""
    saved = []
    try:
        for f in functions:
            if not isinstance(f, types.FunctionType) or f.__code__.co_freevars:
                raise TypeError(f"hide only plain module-level functions, got {f!r}")
            saved.append((f, f.__code__))
            f.__code__ = _raiser(f"{f.__module__.removeprefix('lclib.')}.{f.__qualname__}")
        yield
    finally:
        for f, code in saved:
            f.__code__ = code


@functools.cache
def checker_references() -> tuple[Callable, ...]:
    """Every private module-level function of the checker modules (their references, variants and hints): an
    answer that imports one from lclib.checks would pass without the idea, so they are hidden like the library's."""
    import importlib
    import pkgutil

    from .. import checks

    found = []
    for info in pkgutil.iter_modules(checks.__path__):
        if info.name == "common":  # this module's own helpers run the hiding itself
            continue
        module = importlib.import_module(f"{checks.__name__}.{info.name}")
        found += [obj for name, obj in vars(module).items() if name.startswith("_") and isinstance(obj, types.FunctionType)
                  and obj.__module__ == module.__name__ and not obj.__code__.co_freevars]
    return tuple(found)


def call(fn: Callable, /, *, hide: Sequence[Callable] = (), **inputs: object) -> object:
    """fn(*inputs.values()) on deep copies of the inputs; its exception becomes a hint that names them.

    Copies keep the checker's own inputs intact whatever fn does to its arguments. The library functions in
    `hide` (those that are the exercise's answer), and the checker modules' own private references, raise while
    fn runs. NotImplementedError passes through: it marks an untouched stub, which the checker reports as not done.
    """
    args = copy.deepcopy(list(inputs.values()))
    try:
        with hidden(*dict.fromkeys([*hide, *checker_references()])):
            return fn(*args)
    except NotImplementedError:
        raise
    except Exception as exc:
        if str(exc).startswith(HIDDEN):
            used = str(exc).removeprefix(HIDDEN)
            raise CheckFailed(f"{name_of(fn)} calls lclib's own {used}, which is the answer itself: write it "
                              "yourself (plain torch operations are fine).") from None
        shown = ", ".join(f"{k}={describe(v)}" for k, v in inputs.items())
        lines = str(exc).strip().splitlines()
        said = f": {lines[0][:160]}" if lines else ""
        raise CheckFailed(f"{name_of(fn)} raised {type(exc).__name__}{said} (called with {shown})") from exc


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
        t = got.detach().cpu()
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
            t = got.detach().cpu() if isinstance(got, Tensor) else torch.as_tensor(got)
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
    return list(got)


def close(got: Tensor, want: Tensor, atol: float = 1e-5) -> bool:
    """got (already read by as_tensor) equals want within atol, in float64."""
    return got.shape == want.shape and torch.allclose(got, want.to(torch.float64), atol=atol)
