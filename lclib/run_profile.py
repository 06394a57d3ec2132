"""The one switch between the full profile and the reduced (FAST) one.

``LCLIB_FAST=1`` (or any ``CI`` variable, as CI sets) selects the reduced profile: smaller sizes
and fewer iterations, never a different method. Read once, at import. (Retraining a shipped model to check
that it reproduces is not part of any notebook: ``make reproduce`` does it.)
"""

from __future__ import annotations

import os
from typing import TypeVar

T = TypeVar("T")


def _on(value: str) -> bool:
    return value.strip().lower() not in ("", "0", "false", "no")


def _read_flag() -> bool:
    value = os.environ.get("LCLIB_FAST")
    if value is not None:
        return _on(value)
    return bool(os.environ.get("CI"))


FAST: bool = _read_flag()
NAME: str = "reduced (FAST)" if FAST else "full"


def pick(full: T, fast: T) -> T:
    """The full-profile value, or the reduced one when FAST is on: ``steps = run_profile.pick(3000, 200)``."""
    return fast if FAST else full


def tag(title: str) -> str:
    """A plot title, marked "(FAST)" in the reduced profile so that no one mistakes it for the real figure."""
    if not isinstance(title, str):
        raise TypeError(f"title must be a str, got {type(title).__name__}")
    return f"{title} (FAST)" if FAST else title
