"""Running the student's function: the pass / not-done / fail contract, and a call that cannot be talked round.

Why a checker can be trusted: the reference is computed first, on the checker's own inputs, and the
student's function gets deep copies (so an answer that zeroes its input in place cannot make the
reference agree with it); the student's own exception becomes one short CheckFailed message instead of a
traceback from inside the checker. While the student's function runs, the library functions that ARE the
answer are hidden (``call(..., hide=(rope.apply_rope,))``), and so is every function of the checker modules
(their references): calling one raises, so an answer that only calls someone else's version cannot pass.
The comparisons cannot be talked round either: a name the student's function rebinds in torch, numpy, math,
builtins or lclib (``torch.equal = lambda *a: True``), or a torch mode it leaves open, is put back and the
answer refused; a comparison function or an lclib function replaced before the check refuses the check
(`tampered`). Reading the answer itself is `answers`' job.
"""

from __future__ import annotations

import builtins
import contextlib
import copy
import functools
import math
import operator
import sys
import types
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

from .answers import CheckFailed, describe, kind, name_of

NOT_CHECKED = "could not check your answer"  # the safety net's wording: tests assert no hint falls back to it


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
        replaced = tampered()
        if replaced:
            raise CheckFailed(f"{replaced[0]} is not the one lclib.checks was imported with (it was replaced before "
                              "this check): a check compares with the originals; undo the change or restart the kernel.")
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


# --- hiding the functions that are the answer -------------------------------------------------------

HIDDEN = "lclib-hidden:"  # marks the error a hidden function raises while the student's function runs


@functools.cache
def _raiser(name: str) -> types.CodeType:
    """The code of a function that accepts anything and raises: it names no global (it runs with the globals
    of the function whose code it replaces), only a builtin exception and a constant."""
    namespace: dict = {}
    exec(f"def hidden(*args, **kwargs):\n    raise RuntimeError({HIDDEN + name!r})", {}, namespace)
    return namespace["hidden"].__code__


def _dotted(f: types.FunctionType) -> str:
    """How a hint names a hidden function: "lclib's own rope.apply_rope", "the checker's own
    checks.retrieval._choose_k", "bm25s.BM25.index"."""
    module = f.__module__
    whose = ("the checker's own " if module.startswith("lclib.checks.") else
             "lclib's own " if module.startswith("lclib.") else "")
    return f"{whose}{module.removeprefix('lclib.')}.{f.__qualname__}"


@contextlib.contextmanager
def hidden(*functions: Callable) -> Iterator[None]:
    """Within the block, each of these functions raises when called, wherever it was imported from (the function
    object itself is changed, so `from lclib.rope import apply_rope` is caught too). A function whose code the
    block put back (``f.__code__ = saved_code``) raises at the end: it was reached all the same."""
    saved = []
    try:
        for f in dict.fromkeys(functions):
            if not isinstance(f, types.FunctionType) or f.__code__.co_freevars:
                raise TypeError(f"hide only plain module-level functions, got {f!r}")
            raiser = _raiser(_dotted(f))
            saved.append((f, f.__code__, raiser))
            f.__code__ = raiser
        yield
    finally:
        put_back = [f for f, _, raiser in saved if f.__code__ is not raiser]
        for f, code, _ in saved:
            f.__code__ = code
        if put_back:
            raise RuntimeError(HIDDEN + _dotted(put_back[0]))


def functions_of(*owners: object) -> tuple[types.FunctionType, ...]:
    """The plain functions these modules or classes define (static and class methods unwrapped): what `hidden` can
    swap, to hide a whole library (bm25s) rather than one function of it."""
    found = []
    for owner in owners:
        home = owner.__name__ if isinstance(owner, types.ModuleType) else owner.__module__
        for value in vars(owner).values():
            f = getattr(value, "__func__", value)  # a staticmethod or classmethod holds its function
            if isinstance(f, types.FunctionType) and not f.__code__.co_freevars and f.__module__ == home:
                found.append(f)
    return tuple(found)


def _held(value: object, depth: int = 2) -> Iterator[object]:
    """value and what a table holds: the items of lists, tuples, sets and dict values, depth levels down."""
    yield value
    if depth and isinstance(value, (list, tuple, set, frozenset, dict)):
        for item in (value.values() if isinstance(value, dict) else value):
            yield from _held(item, depth - 1)


@functools.cache
def checker_references() -> tuple[types.FunctionType, ...]:
    """Every function the checker modules define, public or private, and the lambdas of their hint tables (their
    references, case builders and mistakes): an answer that calls one from lclib.checks would pass without the
    idea, so they are hidden like the library's. Classes stay: the checkers hand their objects (QueryLog) out."""
    import importlib
    import pkgutil

    from .. import checks

    found: list[types.FunctionType] = []
    for info in pkgutil.iter_modules(checks.__path__):
        if info.name in ("answers", "runner"):  # the machinery: this module runs the hiding itself
            continue
        module = importlib.import_module(f"{checks.__name__}.{info.name}")
        found += functions_of(module)
        found += [f for value in vars(module).values() for f in _held(value) if isinstance(f, types.FunctionType)
                  and f.__module__ == module.__name__ and not f.__code__.co_freevars]
    return tuple(dict.fromkeys(found))


# --- what the student's function may not change ------------------------------------------------------

_MISSING = object()


def _owners() -> list[object]:
    """Where the names a check relies on live: torch and its Tensor class, numpy, math, operator, builtins, and every
    lclib module with the classes it defines."""
    found: list[object] = [torch, torch.Tensor, np, math, operator, builtins]
    for name, module in list(sys.modules.items()):
        if name == "lclib" or name.startswith("lclib."):
            found.append(module)
            found += [v for v in vars(module).values() if isinstance(v, type) and v.__module__ == name]
    return found


def _label(owner: object) -> str:
    return owner.__name__ if isinstance(owner, types.ModuleType) else f"{owner.__module__}.{owner.__qualname__}"


def _modes() -> tuple[int, int]:
    """How many torch function modes and dispatch modes are open: one left open decides what torch.equal returns."""
    return torch._C._len_torch_function_stack(), torch._C._len_torch_dispatch_stack()


def _snapshot() -> tuple[list[tuple[object, dict]], tuple[int, int]]:
    return [(owner, dict(vars(owner))) for owner in _owners()], _modes()


def _restore(snapshot: tuple[list[tuple[object, dict]], tuple[int, int]]) -> list[str]:
    """Undo what happened since the snapshot: every name rebound, added or deleted, every torch mode left open;
    return what was changed. A submodule imported, or a dunder name cached (`__warningregistry__`), is no change."""
    spaces, (functions, dispatch) = snapshot
    changed = []
    for owner, before in spaces:
        now = dict(vars(owner))
        for key in before.keys() | now.keys():
            old, new = before.get(key, _MISSING), now.get(key, _MISSING)
            if old is new or (old is _MISSING and (isinstance(new, types.ModuleType)
                                                   or (key.startswith("__") and owner is not torch.Tensor))):
                continue
            changed.append(f"{_label(owner)}.{key}")
            if old is _MISSING:
                delattr(owner, key)
            else:
                setattr(owner, key, old)
    opened = _modes()
    for _ in range(opened[0] - functions):
        torch._C._pop_torch_function_stack()
    for _ in range(opened[1] - dispatch):
        torch._C._pop_torch_dispatch_stack()
    changed += ["the torch function modes"] * (opened[0] != functions)
    changed += ["the torch dispatch modes"] * (opened[1] != dispatch)
    return sorted(changed)


# the functions the checkers compare with: replaced before a check, they would decide it
_COMPARED = {
    torch: ("equal", "allclose", "isclose", "isfinite", "isnan", "as_tensor", "tensor", "stack", "where"),
    torch.Tensor: ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__bool__", "__float__", "__int__",
                   "__sub__", "__abs__", "abs", "all", "any", "item", "tolist", "to", "sum", "max", "bool", "double"),
    np: ("asarray", "allclose", "isclose", "array_equal"),
    math: ("isclose", "isfinite", "isnan"),
    builtins: ("abs", "all", "any", "bool", "float", "int", "isinstance", "len", "max", "min", "round", "sorted", "sum",
               "zip", "list", "tuple", "set", "str", "type"),
}
_SEALED: dict[tuple[object, str], object] = {}


def seal() -> None:
    """Remember the comparison functions and every function, class and method of the lclib modules now imported, as
    they are: `tampered` names those replaced since. lclib.checks calls it once, when it is imported."""
    _SEALED.update({(owner, name): getattr(owner, name) for owner, names in _COMPARED.items() for name in names})
    for name, module in list(sys.modules.items()):
        if name == "lclib" or name.startswith("lclib."):
            _SEALED.update({(module, key): value for key, value in vars(module).items()
                            if callable(value) and not key.startswith("__")})
            for cls in (v for v in vars(module).values() if isinstance(v, type) and v.__module__ == name):
                _SEALED.update({(cls, key): value for key, value in vars(cls).items() if callable(value)})


def tampered() -> list[str]:
    """The sealed names that no longer hold what they held when lclib.checks was imported (`torch.equal = ...`)."""
    return [f"{_label(owner)}.{name}" for (owner, name), value in _SEALED.items()  # torch.Tensor's inherited too
            if (getattr(owner, name, _MISSING) if owner in _COMPARED else vars(owner).get(name, _MISSING)) is not value]


def call(fn: Callable, /, *, hide: Sequence[Callable] = (), **inputs: object) -> object:
    """fn(*inputs.values()) on deep copies of the inputs; its exception becomes a hint that names them.

    Copies keep the checker's own inputs intact whatever fn does to its arguments. The functions in `hide` (those
    that are the exercise's answer), and every function of the checker modules, raise while fn runs. A name fn
    rebinds in torch, numpy, math, builtins or lclib, or a torch mode it leaves open, is put back and refused.
    NotImplementedError passes through: it marks an untouched stub, which the checker reports as not done.
    """
    args = copy.deepcopy(list(inputs.values()))
    before = _snapshot()
    try:
        with hidden(*hide, *checker_references()):
            return fn(*args)
    except NotImplementedError:
        raise
    except Exception as exc:
        if str(exc).startswith(HIDDEN):
            raise CheckFailed(f"{name_of(fn)} calls {str(exc).removeprefix(HIDDEN)}, which computes the answer itself: "
                              "write it yourself (plain Python and torch operations are fine).") from None
        shown = ", ".join(f"{k}={describe(v)}" for k, v in inputs.items())
        lines = str(exc).strip().splitlines()
        said = f": {lines[0][:160]}" if lines else ""
        raise CheckFailed(f"{name_of(fn)} raised {type(exc).__name__}{said} (called with {shown})") from exc
    finally:
        changed = _restore(before)
        if changed:
            names = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
            raise CheckFailed(f"{name_of(fn)} changed {names} while it ran; put back: a check compares with the "
                              "originals, so return your answer and change nothing else.") from None

