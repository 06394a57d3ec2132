"""Dilated patterns (w, r) and the masks they draw (LongNet, Sec. 2.2 and 2.4).

A pattern splits the sequence into segments of ``segment_len`` w (effectively min(w, seq_len); the last
segment is shorter when w does not divide seq_len) and keeps every r-th position of each (``dilation``
r), counted from the segment's start; head j keeps offset j mod r. :func:`check_patterns` is the one rule
for the (w, r) lists every function of ``lclib.dilated`` takes; the masks are explicit
(n_head, seq_len, seq_len) tensors, for teaching, tests and the dense bias form of the attention.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from .. import validate

MAX_MASK_ELEMENTS = 1 << 28  # n_head * seq_len^2 of an explicit mask or score matrix (256 MB of bools)


def check_patterns(segment_lengths: int | Sequence[int], dilation_rates: int | Sequence[int]) -> list[tuple[int, int]]:
    """The patterns as (w, r) pairs, after checking them: an int or a sequence of ints each, as many of
    both, at least one, w >= 1 and 1 <= r <= w."""
    lists = []
    for name, value in (("segment_lengths", segment_lengths), ("dilation_rates", dilation_rates)):
        if validate.is_int(value):
            value = [value]
        elif isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise TypeError(f"{name} must be an int or a sequence of ints, got {type(value).__name__} {value!r}")
        lists.append(list(value))
    ws, rs = lists
    if len(ws) != len(rs):
        raise ValueError(f"segment_lengths and dilation_rates must have the same length, got {len(ws)} and {len(rs)}")
    if not ws:
        raise ValueError("segment_lengths must name at least one pattern, got an empty list")
    return [_check_pattern(w, r, f"segment_lengths[{i}]", f"dilation_rates[{i}]") for i, (w, r) in enumerate(zip(ws, rs))]


def _check_pattern(w: int, r: int, w_name: str, r_name: str) -> tuple[int, int]:
    w, r = validate.integer(w_name, w, low=1), validate.integer(r_name, r, low=1)
    if r > w:
        raise ValueError(f"{r_name} must not exceed its segment length {w_name}, got r={r} > w={w}")
    return w, r


def _check_mask(seq_len: int, n_head: int) -> None:
    validate.integer("seq_len", seq_len, low=1)
    validate.integer("n_head", n_head, low=1)
    if n_head * seq_len * seq_len > MAX_MASK_ELEMENTS:
        raise ValueError(f"seq_len={seq_len} with n_head={n_head} is too large for an explicit (n_head, seq_len, "
                         f"seq_len) mask (at most {MAX_MASK_ELEMENTS} entries); count edges with edge_counts instead")


def _pattern_mask(seq_len: int, w: int, r: int, n_head: int, causal: bool) -> Tensor:
    w = min(w, seq_len)
    pos = torch.arange(seq_len)
    start = pos // w * w                                             # (n,) segment start of each position
    same_segment = start[:, None] == start[None, :]                  # (n, n)
    offsets = torch.arange(n_head) % r                               # (H,)
    selected = ((pos - start) % r)[None, :] == offsets[:, None]      # (H, n)
    mask = same_segment[None] & selected[:, :, None] & selected[:, None, :]
    if causal:
        mask &= pos[None, :] <= pos[:, None]
    return mask


def pattern_mask(seq_len: int, segment_len: int, dilation: int, n_head: int = 1, causal: bool = False) -> Tensor:
    """Bool (n_head, seq_len, seq_len): which (query, key) pairs one pattern (w, r) connects, head j at offset j mod r.

    One pattern, two ints; :func:`attention_mask` takes lists of them.
    """
    w, r = _check_pattern(segment_len, dilation, "segment_len", "dilation")
    _check_mask(seq_len, n_head)
    return _pattern_mask(seq_len, w, r, n_head, causal)


def _pattern_masks(seq_len: int, segment_lengths: int | Sequence[int], dilation_rates: int | Sequence[int],
                   n_head: int, causal: bool) -> Iterator[Tensor]:
    """Each pattern's mask (n_head, seq_len, seq_len), once every argument is checked."""
    patterns = check_patterns(segment_lengths, dilation_rates)
    _check_mask(seq_len, n_head)
    return (_pattern_mask(seq_len, w, r, n_head, causal) for w, r in patterns)


def attention_mask(seq_len: int, segment_lengths: int | Sequence[int], dilation_rates: int | Sequence[int],
                   n_head: int = 1, causal: bool = False) -> Tensor:
    """Bool (n_head, seq_len, seq_len): mask[j, q, k] is True when some pattern connects query q to key k in head j."""
    masks = _pattern_masks(seq_len, segment_lengths, dilation_rates, n_head, causal)
    mask = torch.zeros(n_head, seq_len, seq_len, dtype=torch.bool)
    for each in masks:
        mask |= each
    return mask


def multiplicity(seq_len: int, segment_lengths: int | Sequence[int], dilation_rates: int | Sequence[int],
                 n_head: int = 1, causal: bool = False) -> Tensor:
    """Int64 (n_head, seq_len, seq_len): how many patterns connect each (query, key) pair in each head."""
    return sum(mask.long() for mask in _pattern_masks(seq_len, segment_lengths, dilation_rates, n_head, causal))
