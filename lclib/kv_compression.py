"""Shrinking the key-value cache: which cached tokens a query may still read, and 8-bit keys and values.

Two ways to spend less memory per token of context:

- **Eviction by position** (`Window`): keep the first ``sinks`` tokens and the last ``recent`` ones.
  ``Window(recent=w)`` is a sliding window (Mistral 7B, Jiang et al. 2023: each query reads the
  previous w tokens); ``Window(sinks=4, recent=w - 4)`` is StreamingLLM (Xiao et al. 2024): the first
  tokens soak up attention that has nowhere else to go ("attention sinks"), so keeping them keeps the
  model stable when the middle is dropped. Either way the cache never holds more than sinks + recent
  tokens, and a needle that left it is gone for every later query.
- **Quantisation** (`quantize_int8`): each cached key and value vector (one token, one head) stored as
  int8 with one scale, absmax / 127 (symmetric, per token and head, as in KIVI's value path and
  KVQuant's per-token baseline). Memory per value: 1 byte plus the scale's share.

Both come in two forms that compute the same thing: a policy a `lclib.kv_cache.KVCache` applies while
decoding, and an attention function (`window_attention`, `int8_attention`) for ``GPT.set_attention``
that applies it to a whole sequence at once, which is how the notebook measures accuracy fast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

INT8_MAX = 127


@dataclass(frozen=True)
class Window:
    """Keep the first `sinks` tokens and the last `recent` ones (a query counts itself among the recent)."""

    recent: int  # w: tokens at the end of the context a query may read, itself included
    sinks: int = 0  # tokens at the very start kept for good (StreamingLLM's attention sinks; 0: sliding window)

    def __post_init__(self) -> None:
        for name, low in (("recent", 1), ("sinks", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")

    @property
    def budget(self) -> int:
        """Tokens the cache holds at most: sinks + recent."""
        return self.sinks + self.recent

    def visible(self, q_positions: Tensor, k_positions: Tensor) -> Tensor:
        """Which keys each query may read: j <= i and (j < sinks or j > i - recent).

        Shapes: q_positions (T,), k_positions (S,) long -> (T, S) bool.
        """
        i, j = q_positions[:, None], k_positions[None, :]
        return (j <= i) & ((j < self.sinks) | (j > i - self.recent))


def quantize_int8(x: Tensor) -> tuple[Tensor, Tensor]:
    """Symmetric int8 per vector: x ≈ q * scale with scale = max|x| / 127 over the last dimension.

    Shapes: x (..., head_dim) float -> q (..., head_dim) int8, scale (..., 1) in x's dtype.
    """
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {x.dtype}")
    scale = x.abs().amax(-1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny) / INT8_MAX  # (..., 1)
    q = torch.round(x / scale).clamp(-INT8_MAX, INT8_MAX).to(torch.int8)
    return q, scale


def dequantize_int8(q: Tensor, scale: Tensor) -> Tensor:
    """q * scale in scale's dtype. Shapes: q (..., head_dim) int8, scale (..., 1)."""
    return q.to(scale.dtype) * scale


def fake_int8(x: Tensor) -> Tensor:
    """x after a round trip through int8 storage: what attention reads back from an 8-bit cache."""
    return dequantize_int8(*quantize_int8(x))


def window_attention(policy: Window) -> Callable[[Tensor, Tensor, Tensor, bool], Tensor]:
    """An attention function (q, k, v, causal) -> out for GPT.set_attention that reads only what `policy` keeps.

    Shapes (B, nh, T, hs). Positions are 0..T-1, the sequence read from its start.
    """
    if not isinstance(policy, Window):
        raise TypeError(f"policy must be a Window, got {type(policy).__name__}")

    def attend(q: Tensor, k: Tensor, v: Tensor, causal: bool) -> Tensor:
        pos = torch.arange(q.shape[-2], device=q.device)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=policy.visible(pos, pos))

    return attend


def int8_attention(q: Tensor, k: Tensor, v: Tensor, causal: bool) -> Tensor:
    """Causal attention that reads keys and values through int8 storage (for GPT.set_attention). Shapes (B, nh, T, hs)."""
    return F.scaled_dot_product_attention(q, fake_int8(k), fake_int8(v), is_causal=causal)
