"""Counting what dilated attention connects, without building its mask, and what stacked layers reach.

:func:`edge_counts` and :func:`distinct_edges` give the (query, key) pairs of a configuration in closed form
(LongNet Sec. 2.2: n w / r^2 per pattern when r | w | n), equal to the sums of
:func:`~lclib.dilated.patterns.attention_mask` and :func:`~lclib.dilated.patterns.multiplicity` but in
O(seq_len) memory; :func:`reach` follows a layer's graph through several layers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from .. import validate
from .patterns import check_patterns

# Bounds that turn an absurd request into a ValueError instead of an allocation failure or a loop without end:
MAX_COUNT_N = 1 << 24  # edge counting holds a few int64 tensors of seq_len per pattern
MAX_COUNT_HEADS = 1 << 16  # edge_counts loops over heads (distinct_edges does not)
MAX_COUNT_WORK = 1 << 28  # 2^P * seq_len: inclusion-exclusion over P patterns that are not nested


def _nested(patterns: list[tuple[int, int]]) -> bool:
    """w_i | w_j and r_i | r_j along the sorted patterns (LongNet's geometric schedule is nested)."""
    order = sorted(patterns)
    return all(b[0] % a[0] == 0 and b[1] % a[1] == 0 for a, b in zip(order, order[1:]))


def _check_counting(seq_len: int, segment_lengths: int | Sequence[int], dilation_rates: int | Sequence[int],
                    n_head: int) -> list[tuple[int, int]]:
    """The patterns, once seq_len, n_head and they are checked and the count is known to be affordable."""
    patterns = check_patterns(segment_lengths, dilation_rates)
    n = validate.integer("seq_len", seq_len, low=1)
    validate.integer("n_head", n_head, low=1)
    if n > MAX_COUNT_N:
        raise ValueError(f"seq_len must be at most {MAX_COUNT_N} for exact edge counting (O(seq_len) memory per "
                         f"pattern), got {n}")
    if not _nested(patterns) and (1 << len(patterns)) * n > MAX_COUNT_WORK:
        raise ValueError(f"segment_lengths: {len(patterns)} patterns that are not nested (w_i | w_j and r_i | r_j) "
                         f"need up to 2^{len(patterns)} passes over seq_len={n} positions to count distinct edges; "
                         f"use fewer patterns or a nested family")
    return patterns


class EdgeCounts(NamedTuple):
    """Edges (query, key pairs) of a dilated configuration; proportional to attention FLOPs."""

    distinct_per_head: Tensor      # (n_head,) int64: pairs some pattern connects in that head
    pattern_sum_per_head: Tensor   # (n_head,) int64: sum over patterns of their pairs (the work done)
    distinct_all_heads: int        # pairs connected in at least one head


def _pattern_edges(n: int, w: int, r: int, offset: int, causal: bool) -> int:
    """Closed form: sum over segments of m^2 (or m(m+1)/2 causal), m the kept positions; = n*w/r^2 when r | w | n."""
    w = min(w, n)

    def kept(length: int) -> int:  # positions offset, offset + r, ... below length
        return (length - offset + r - 1) // r if length > offset else 0

    def pairs(m: int) -> int:
        return m * (m + 1) // 2 if causal else m * m

    return (n // w) * pairs(kept(w)) + pairs(kept(n % w))


def _distinct_edges(n: int, patterns: list[tuple[int, int]], residues: list[tuple[int, int]], causal: bool) -> int:
    """Pairs in the union of the patterns, where pattern i selects the queries whose offset in their
    segment, taken mod r_i, lies in residues[i] = [lo, hi).

    For a selected query q, pattern i reaches the keys k = q (mod r_i) in q's segment [s_i, e_i): an
    arithmetic progression through q. The union over patterns is counted by inclusion-exclusion:
    the intersection of progressions through q is the progression of step lcm(r_i) on the
    intersected interval [a, b), which holds floor((b-1-q)/L) + floor((q-a)/L) + 1 keys. Cost: up to
    2^P vector operations over the n queries (subsets that select no query are pruned), or P for a
    nested family, where the sum telescopes.
    """
    q = torch.arange(n)
    starts, ends, selected = [], [], []
    for (w, r), (lo, hi) in zip(patterns, residues):
        w = min(w, n)
        s = q // w * w
        e = torch.clamp(s + w, max=n)
        starts.append(s)
        ends.append(torch.minimum(e, q + 1) if causal else e)
        selected.append(((q - s) % r >= lo) & ((q - s) % r < hi))
    def keys(a: Tensor, b: Tensor, step: int) -> Tensor:  # k = q (mod step) in [a, b), a <= q < b
        return (b - 1 - q).div(step, rounding_mode="floor") + (q - a).div(step, rounding_mode="floor") + 1

    order = sorted(range(len(patterns)), key=lambda i: patterns[i])
    if _nested(patterns):
        # Nested family (w_i | w_j and r_i | r_j, as LongNet's geometric schedule): an intersection
        # of progressions is that of its first and last pattern, and inclusion-exclusion telescopes
        # to sum_i N_i minus the overlap of each selected pattern with the previous selected one.
        total, has_prev = torch.zeros((), dtype=torch.long), torch.zeros(n, dtype=torch.bool)
        a_prev, b_prev = q.clone(), q + 1
        for j in order:
            step, sel = patterns[j][1], selected[j]
            total += (keys(starts[j], ends[j], step) * sel).sum()
            total -= (keys(a_prev, b_prev, step) * (sel & has_prev)).sum()
            a_prev, b_prev = torch.where(sel, starts[j], a_prev), torch.where(sel, ends[j], b_prev)
            has_prev |= sel
        return int(total)
    total = 0

    def visit(first: int, a: Tensor, b: Tensor, step: int, sel: Tensor, sign: int) -> None:
        nonlocal total
        for j in range(first, len(patterns)):
            sel_j = sel & selected[j]
            if not bool(sel_j.any()):
                continue
            a_j, b_j = torch.maximum(a, starts[j]), torch.minimum(b, ends[j])
            step_j = math.lcm(step, patterns[j][1])
            total += sign * int((keys(a_j, b_j, step_j) * sel_j).sum())
            visit(j + 1, a_j, b_j, step_j, sel_j, -sign)

    visit(0, torch.zeros(n, dtype=torch.long), torch.full((n,), n, dtype=torch.long), 1,
          torch.ones(n, dtype=torch.bool), 1)
    return total


def edge_counts(seq_len: int, segment_lengths: int | Sequence[int], dilation_rates: int | Sequence[int],
                n_head: int = 1, causal: bool = False) -> EdgeCounts:
    """Count edges without building the mask (closed forms; they equal ``attention_mask(...).sum``).

    The per-pattern count is n * w / r^2 (n = seq_len) when r divides w and w divides n (LongNet
    Sec. 2.2), and its exact per-segment sum otherwise; distinct edges use inclusion-exclusion over
    the patterns (:func:`_distinct_edges`), once per distinct tuple of head offsets. Dense attention
    is the single pattern w = n, r = 1: n^2 pairs, or n(n+1)/2 causal.
    """
    patterns = _check_counting(seq_len, segment_lengths, dilation_rates, n_head)
    if n_head > MAX_COUNT_HEADS:
        raise ValueError(f"n_head must be at most {MAX_COUNT_HEADS} for per-head counts, got {n_head}; "
                         "distinct_edges counts the union over any number of heads")
    n, summed, distinct, cache = seq_len, [], [], {}
    for h in range(n_head):
        summed.append(sum(_pattern_edges(n, w, r, h % r, causal) for w, r in patterns))
        offsets = tuple(h % r for _, r in patterns)
        if offsets not in cache:  # heads with the same offsets have the same mask
            cache[offsets] = _distinct_edges(n, patterns, [(o, o + 1) for o in offsets], causal)
        distinct.append(cache[offsets])
    union = distinct_edges(n, segment_lengths, dilation_rates, n_head, causal)
    return EdgeCounts(torch.tensor(distinct, dtype=torch.long), torch.tensor(summed, dtype=torch.long), union)


def distinct_edges(seq_len: int, segment_lengths: int | Sequence[int], dilation_rates: int | Sequence[int],
                   n_head: int = 1, causal: bool = False) -> int:
    """Pairs connected in at least one of n_head heads (EdgeCounts.distinct_all_heads), alone.

    One inclusion-exclusion pass whatever n_head: over all heads, pattern i selects every query
    whose offset mod r_i is one of 0 .. min(r_i, n_head) - 1. Use it for many heads, where
    :func:`edge_counts` would also count each head's own union.
    """
    patterns = _check_counting(seq_len, segment_lengths, dilation_rates, n_head)
    return _distinct_edges(seq_len, patterns, [(0, min(r, n_head)) for _, r in patterns], causal)


def reach(mask: Tensor, layers: int) -> Tensor:
    """Bool (n, n), n = seq_len: query q is connected to key k through at most ``layers`` stacked attention layers.

    mask (n, n) is one layer's graph (mask[q, k]: q attends to k; take ``.any(0)`` over heads,
    since a layer mixes its heads). Residual connections carry each token's own state to the next
    layer, so self-loops are added: reach = (mask | I)^layers, a breadth-first search by boolean
    matrix products (O(min(layers, n) n^3): for teaching sizes). A path needs at most n - 1 steps, so
    layers beyond that change nothing and are not computed.
    """
    validate.tensor("mask", mask)
    if mask.dim() != 2 or mask.shape[0] != mask.shape[1] or mask.dtype != torch.bool:
        raise ValueError(f"mask must be a square bool matrix (n, n), got {tuple(mask.shape)} {mask.dtype}")
    validate.integer("layers", layers, low=1)
    step = (mask | torch.eye(mask.shape[0], dtype=torch.bool, device=mask.device)).float()
    connected = step.clone()
    for _ in range(min(layers, max(1, mask.shape[0] - 1)) - 1):
        connected = (step @ connected).clamp_(max=1.0)                       # (n, n) 0/1
    return connected > 0

