"""Checkers for notebook 06, long context at inference: cache size, the decode bandwidth limit, a window mask."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from .. import kv
from ..kv import Window
from .answers import CheckFailed, as_number, as_tensor, describe
from .runner import call, checker

CONFIGS = [(32, 8, 128, 131072, 2.0), (80, 8, 128, 4096, 2.0), (32, 32, 128, 1000, 2.0), (2, 1, 16, 77, 4.0),
           (61, 1, 576, 32768, 1.0)]


@checker
def check_cache_bytes(fn: Callable[[int, int, int, int, float], float]) -> str:
    """fn(n_layer, n_kv_head, head_dim, tokens, bytes_per_value) must return the KV cache's bytes."""
    for layers, kv_heads, head_dim, tokens, size in CONFIGS:
        want = kv.cache_bytes(layers, kv_heads, head_dim, tokens, size)
        where = f"n_layer={layers}, n_kv_head={kv_heads}, head_dim={head_dim}, tokens={tokens}, bytes_per_value={size}"
        got = as_number(call(fn, n_layer=layers, n_kv_head=kv_heads, head_dim=head_dim, tokens=tokens,
                             bytes_per_value=size, hide=(kv.cache_bytes, kv.published_cache_bytes)),
                        where, "a number of bytes")
        if abs(got - want) <= 1e-9 * max(1.0, abs(want)):  # bytes are whole: only rounding may differ
            continue
        if abs(2 * got - want) <= 1:
            raise CheckFailed(f"{where}: you give half the bytes. The cache holds a key AND a value per token, layer "
                              "and KV head: the factor 2.")
        shown = f"{got:,.0f}" if got.is_integer() else f"{got:,.2f}"
        raise CheckFailed(f"{where}: expected {want:,} bytes, got {shown}; "
                          "bytes = 2 x n_layer x n_kv_head x head_dim x bytes_per_value x tokens.")
    return "your formula matches lclib.kv.cache_bytes, from a 2-layer lab model to Llama-3.1-70B."


@checker
def check_decode_bound(fn: Callable[[float, float, int, float], float]) -> str:
    """fn(weight_bytes, cache_bytes_per_token, context, bandwidth) must return the decode limit in tokens per second."""
    cases = [(16.06e9, 131072.0, 131072, 3.35e12), (16.06e9, 131072.0, 0, 3.35e12), (141e9, 327680.0, 4096, 2.0e12),
             (4e5, 512.0, 77, 2e10)]
    for weights, per_token, context, bandwidth in cases:
        want = kv.decode_tokens_per_s_bound(weights, per_token, context, bandwidth)
        where = (f"weight_bytes={weights:.3g}, cache_bytes_per_token={per_token:g}, context={context}, "
                 f"bandwidth={bandwidth:.3g}")
        got = as_number(call(fn, weight_bytes=weights, cache_bytes_per_token=per_token, context=context,
                             bandwidth=bandwidth, hide=(kv.decode_tokens_per_s_bound,)), where, "tokens per second")
        if abs(got - want) <= 1e-6 * want:
            continue
        if context and abs(got - bandwidth / weights) <= 1e-6 * want:
            raise CheckFailed(f"{where}: you count the weights only; each step also reads the whole cache, "
                              "cache_bytes_per_token x context bytes.")
        if abs(got - bandwidth / (per_token * context or 1)) <= 1e-6 * want:
            raise CheckFailed(f"{where}: you count the cache only; each step also reads every weight once.")
        raise CheckFailed(f"{where}: expected {want:.4g} tokens/s, got {got:.4g}; "
                          "tokens/s <= bandwidth / (weight_bytes + cache_bytes_per_token x context).")
    return "your limit matches lclib.kv.decode_tokens_per_s_bound: at 128K tokens the cache, not the weights, sets it."


@checker
def check_window_mask(fn: Callable[[int, int, int], torch.Tensor]) -> str:
    """fn(seq_len, recent, sinks) must return the (seq_len, seq_len) bool mask of what each query may read: a tensor,
    a numpy array or a list of rows, of bools or of 0/1."""
    for seq_len, recent, sinks in [(8, 3, 0), (8, 3, 2), (12, 1, 1), (6, 10, 0), (10, 4, 4)]:
        pos = torch.arange(seq_len)
        want = Window(recent=recent, sinks=sinks).visible(pos, pos)  # (seq_len, seq_len)
        where = f"seq_len={seq_len}, recent={recent}, sinks={sinks}"
        raw = call(fn, seq_len=seq_len, recent=recent, sinks=sinks, hide=(Window.visible,))
        if isinstance(raw, Tensor) and raw.is_floating_point() and bool((raw == -math.inf).any()):
            raise CheckFailed(f"{where}: that is an additive mask (0 and -inf); return the bool mask, True where query "
                              "i may read key j.")
        got = as_tensor(raw, (seq_len, seq_len), where, sequences=True)  # a tensor, an array, or a list of rows
        if not bool(((got == 0) | (got == 1)).all()):
            raise CheckFailed(f"{where}: expected True/False (or 1/0) for each query and key, got {describe(got)}.")
        got = got.bool()
        if torch.equal(got, want):
            continue
        if bool(got.triu(1).any()):
            raise CheckFailed(f"{where}: a query reads a later key; the mask must be causal (j <= i).")
        wider = Window(recent=recent + 1, sinks=sinks).visible(pos, pos)
        if torch.equal(got, wider):
            raise CheckFailed(f"{where}: one key too many per query: `recent` counts the query's own token, "
                              "so the oldest recent key is i - recent + 1.")
        if sinks and torch.equal(got, Window(recent=recent).visible(pos, pos)):
            raise CheckFailed(f"{where}: the sinks are missing: keys j < sinks stay visible to every later query.")
        bad = (got != want).nonzero()[0].tolist()
        raise CheckFailed(f"{where}: wrong at query {bad[0]}, key {bad[1]} (expected {bool(want[bad[0], bad[1]])}); "
                          "visible when j <= i and (j < sinks or j > i - recent).")
    return "your mask matches lclib.kv.Window.visible: sliding windows and StreamingLLM's sinks."
