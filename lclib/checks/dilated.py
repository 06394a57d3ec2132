"""Checkers for notebook 03, LongNet dilated attention: edge counts, reach by depth, one pattern's attention."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from .. import dilated
from .common import CheckFailed, as_int, as_tensor, call, checker, close


@checker
def check_pattern_edges(fn: Callable[[int, int, int], int]) -> str:
    """fn(n, segment_len, dilation) must count the (query, key) pairs of one pattern, one head, when r | w | n."""
    for n, w, r in [(4096, 512, 4), (1024, 1024, 1), (2048, 256, 8), (64, 16, 2), (96, 32, 32)]:
        want = int(dilated.edge_counts(n, w, r).pattern_sum_per_head[0])
        where = f"n={n}, w={w}, r={r}"
        got = as_int(call(fn, n=n, segment_len=w, dilation=r), where, "a count of pairs (an int)")
        if got == want:
            continue
        if got == n * w // r:
            raise CheckFailed(f"{where}: {got} counts kept positions times w; each of the n/w "
                              "segments keeps w/r positions and every kept query sees every kept key: (w/r)^2 pairs.")
        if got == n * w:
            raise CheckFailed(f"{where}: {got} ignores the dilation; only every r-th position of a segment is kept.")
        if got == n // r:
            raise CheckFailed(f"{where}: {got} counts kept positions, not (query, key) pairs.")
        raise CheckFailed(f"{where}: expected {want} pairs, got {got}. Segments: n/w; kept per segment: w/r.")
    return "one pattern has (n/w) * (w/r)^2 = n*w/r^2 pairs: linear in n for fixed (w, r)."


def _layers_for_full_reach(n: int, segment_lengths: Sequence[int], dilation_rates: Sequence[int], num_heads: int,
                           limit: int = 16) -> int | None:
    """The reference: fewest layers (up to limit) after which every token reaches every other, else None."""
    mask = dilated.attention_mask(n, segment_lengths, dilation_rates, num_heads).any(0)
    for layers in range(1, limit + 1):
        if bool(dilated.reach(mask, layers).all()):
            return layers
    return None


@checker
def check_layers_for_full_reach(fn: Callable[..., int | None]) -> str:
    """fn(n, segment_lengths, dilation_rates, num_heads) -> the fewest layers that connect every pair, or None."""
    cases = [(64, [64], [1], 1), (64, [16, 64], [1, 4], 4), (48, [8, 48], [1, 8], 1), (64, [16, 32], [1, 2], 2),
             (64, [8, 16, 32, 64], [1, 2, 4, 8], 8), (40, [8, 40], [1, 5], 1)]
    for n, ws, rs, heads in cases:
        want = _layers_for_full_reach(n, ws, rs, heads)
        where = f"n={n}, w={ws}, r={rs}, heads={heads}"
        got = call(fn, n=n, segment_lengths=ws, dilation_rates=rs, num_heads=heads)
        if got is not None:
            got = as_int(got, where, "a number of layers (an int), or None")
        if got == want:
            continue
        if want is None:
            raise CheckFailed(f"{where}: no depth connects every pair (the largest segment {max(ws)} < n keeps the "
                              f"mask block diagonal), return None; got {got}.")
        if got is None:
            raise CheckFailed(f"{where}: every pair is connected after {want} layers, but you returned None: "
                              "did you add the residual self-loops (mask | I)?")
        raise CheckFailed(f"{where}: expected {want} layers, got {got}. Take the union over heads, add self-loops, "
                          "and multiply boolean reach matrices one layer at a time.")
    return "you found the depth at which every token can influence every other (or that none does)."


@checker
def check_one_pattern_attention(fn: Callable[..., torch.Tensor]) -> str:
    """fn(q, k, v, segment_len, dilation) on (seq_len, head_dim) tensors: one pattern, offset 0, seq_len a multiple of w.

    Shapes: q, k, v (seq_len, 8) float64; the answer like v, rows a pattern does not keep 0.
    """
    gen = torch.Generator().manual_seed(3)
    for n, w, r in [(32, 8, 2), (48, 16, 4), (24, 24, 1), (36, 12, 3)]:
        q, k, v = torch.randn(3, n, 8, generator=gen, dtype=torch.float64).unbind(0)
        want = dilated.dilated_attention(q[None, None], k[None, None], v[None, None], [w], [r])[0, 0]
        where = f"seq_len={n}, w={w}, r={r}"
        got = as_tensor(call(fn, q=q, k=k, v=v, segment_len=w, dilation=r), want.shape, where, like="v")
        if close(got, want):
            continue
        kept = torch.zeros(n, dtype=torch.bool)
        kept[::r] = True
        if (got[~kept].abs() > 1e-9).any():
            raise CheckFailed(f"{where}: rows a pattern does not keep (position not 0 mod r) must be 0.")
        unscaled = dilated.dilated_attention(q[None, None] * math.sqrt(8), k[None, None], v[None, None], [w], [r])[0, 0]
        if close(got, unscaled):
            raise CheckFailed("scale the scores by 1/sqrt(head_dim) before the softmax.")
        raise CheckFailed(f"{where}: kept rows differ. Gather x.view(n // w, w, d)[:, ::r], run softmax attention "
                          "inside each segment's block, and scatter the rows back to positions s*w + j*r.")
    return "your gather / attend / scatter matches lclib.dilated for one pattern."
