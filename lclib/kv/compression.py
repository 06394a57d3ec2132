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
  KVQuant's per-token baseline). Memory per value: 1 byte plus the scale's share (the scale is kept
  in the vector's dtype). The bound, for float16, bfloat16, float32 and float64 alike: q * scale is
  within scale / 2 of x, exactly; reading it back in that dtype adds at most half a unit in the last
  place. Inf and NaN have no int8 code and are refused.

Both come in two forms that compute the same thing: a policy a `lclib.kv.KVCache` applies while
decoding, and an attention function (`window_attention`, `int8_attention`) for ``GPT.set_attention``
that applies it to a whole sequence at once, which is how the notebook measures accuracy fast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import validate

INT8_MAX = 127


@dataclass(frozen=True)
class Window:
    """Keep the first `sinks` tokens and the last `recent` ones (a query counts itself among the recent)."""

    recent: int  # w: tokens at the end of the context a query may read, itself included
    sinks: int = 0  # tokens at the very start kept for good (StreamingLLM's attention sinks; 0: sliding window)

    def __post_init__(self) -> None:
        validate.integer("recent", self.recent, low=1)
        validate.integer("sinks", self.sinks, low=0)

    @property
    def budget(self) -> int:
        """Tokens the cache holds at most: sinks + recent."""
        return self.sinks + self.recent

    def visible(self, q_positions: Tensor, k_positions: Tensor) -> Tensor:
        """Which keys each query may read: j <= i and (j < sinks or j > i - recent).

        Shapes: q_positions (T,), k_positions (S,) integer -> (T, S) bool.
        """
        for name, pos in (("q_positions", q_positions), ("k_positions", k_positions)):
            if (not isinstance(pos, Tensor) or pos.dim() != 1 or pos.is_floating_point() or pos.is_complex()
                    or pos.dtype == torch.bool):
                raise TypeError(f"{name} must be a 1-D integer tensor of positions, got "
                                f"{getattr(pos, 'dtype', type(pos).__name__)} {tuple(getattr(pos, 'shape', ()))}")
        i, j = q_positions[:, None], k_positions[None, :]
        return (j <= i) & ((j < self.sinks) | (j > i - self.recent))


def _acc(dtype: torch.dtype) -> torch.dtype:
    """The dtype the scale and the rounding are computed in: float32, or float64 for float64."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _quantize(x: Tensor, name: str) -> tuple[Tensor, Tensor]:
    """quantize_int8, with `name` the argument named when x is refused."""
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got "
                        f"{x.dtype if isinstance(x, Tensor) else type(x).__name__}")
    if x.dim() == 0 or x.shape[-1] == 0:
        raise ValueError(f"{name} must have shape (..., head_dim) with head_dim >= 1, got {tuple(x.shape)}")
    acc = _acc(x.dtype)
    xa = x.to(acc)  # float16's scale, absmax / 127, can be subnormal: compute it in float32
    absmax = xa.abs().amax(-1, keepdim=True)                                 # (..., 1); inf or NaN if any is
    if x.numel() and not bool(torch.isfinite(absmax).all()):
        raise ValueError(f"{name} must be finite: int8 has no code for inf or NaN, got "
                         f"{int((~torch.isfinite(x)).sum())} non-finite values")
    scale = absmax.clamp_min(torch.finfo(x.dtype).tiny) / INT8_MAX            # (..., 1) in acc
    stored = scale.to(x.dtype)
    if x.dtype != acc:  # round the stored scale up, never down, so that |x| / stored <= 127 still holds
        up = torch.nextafter(stored, torch.full_like(stored, torch.inf))
        stored = torch.where(stored.to(acc) < scale, up, stored)
    q = torch.round(xa / stored.to(acc)).clamp(-INT8_MAX, INT8_MAX).to(torch.int8)
    return q, stored


def quantize_int8(x: Tensor) -> tuple[Tensor, Tensor]:
    """Symmetric int8 per vector: x ≈ q * scale with scale = max|x| / 127 over the last dimension.

    Computed in float32 (float64 for float64) and the scale rounded up to x's dtype, so that
    |q * scale - x| <= scale / 2 exactly for finite x of any floating dtype; inf and NaN are refused.
    Shapes: x (..., head_dim) float -> q (..., head_dim) int8, scale (..., 1) in x's dtype.
    """
    return _quantize(x, "x")


def dequantize_int8(q: Tensor, scale: Tensor) -> Tensor:
    """q * scale in scale's dtype (the product taken in float32, then rounded; it never overflows to inf).

    Shapes: q (..., head_dim) int8, scale (..., 1) positive and finite, as quantize_int8 returns them.
    """
    if not isinstance(q, Tensor) or q.dtype != torch.int8:
        raise TypeError(f"q must be an int8 tensor, got {q.dtype if isinstance(q, Tensor) else type(q).__name__}")
    if not isinstance(scale, Tensor) or not scale.is_floating_point():
        raise TypeError(f"scale must be a floating-point tensor, got "
                        f"{scale.dtype if isinstance(scale, Tensor) else type(scale).__name__}")
    if q.dim() == 0 or scale.shape != q.shape[:-1] + (1,):
        raise ValueError(f"scale must have shape (..., 1) for q of shape (..., head_dim), got q {tuple(q.shape)} "
                         f"and scale {tuple(scale.shape)}")
    if scale.numel() and not bool(((scale > 0) & torch.isfinite(scale)).all()):
        raise ValueError("scale must be positive and finite (max|x| / 127 per vector), got "
                         f"{scale[~((scale > 0) & torch.isfinite(scale))].flatten()[:3].tolist()}")
    acc, top = _acc(scale.dtype), torch.finfo(scale.dtype).max
    # 127 * scale can exceed float16's 65504 by rounding; |x| <= 65504, so clamping only brings it closer
    return (q.to(acc) * scale.to(acc)).clamp(-top, top).to(scale.dtype)


def fake_int8(x: Tensor) -> Tensor:
    """x after a round trip through int8 storage: what attention reads back from an 8-bit cache.

    Same dtype as x; |fake_int8(x) - x| <= scale / 2 plus half a unit in the last place of x's dtype.
    """
    return dequantize_int8(*quantize_int8(x))


def _check_qkv(q: Tensor, k: Tensor, v: Tensor, causal: bool) -> None:
    """q (B, nh, T, hs), k (B, nh, S, hs), v (B, nh, S, hs_v) of one floating dtype; causal a bool."""
    for name, x in (("q", q), ("k", k), ("v", v)):
        if not isinstance(x, Tensor) or not x.is_floating_point() or x.dim() != 4:
            raise TypeError(f"{name} must be a 4-D floating-point torch.Tensor (B, nh, T, hs), got "
                            f"{type(x).__name__} {getattr(x, 'dtype', '')} {tuple(getattr(x, 'shape', ()))}")
    if k.dtype != q.dtype or v.dtype != q.dtype:
        raise TypeError(f"k and v must have the dtype of q ({q.dtype}), got {k.dtype} and {v.dtype}")
    if k.shape[:2] != q.shape[:2] or k.shape[-1] != q.shape[-1] or v.shape[:3] != k.shape[:3]:
        raise ValueError(f"q (B, nh, T, hs), k (B, nh, S, hs) and v (B, nh, S, hs_v) disagree: "
                         f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool, got {type(causal).__name__}")


def window_attention(policy: Window) -> Callable[[Tensor, Tensor, Tensor, bool], Tensor]:
    """An attention function (q, k, v, causal) -> out for GPT.set_attention that reads only what `policy` keeps.

    Shapes (B, nh, seq_len, hs), q, k and v of one length. Positions are 0..seq_len-1, the sequence read from its
    start. The window is causal by construction: causal must be True.
    """
    if not isinstance(policy, Window):
        raise TypeError(f"policy must be a Window, got {type(policy).__name__}")

    def attend(q: Tensor, k: Tensor, v: Tensor, causal: bool) -> Tensor:
        _check_qkv(q, k, v, causal)
        if k.shape[-2] != q.shape[-2]:
            raise ValueError(f"k must hold as many positions as q (the sequence read from its start), "
                             f"got {k.shape[-2]} and {q.shape[-2]}")
        if not causal:
            raise ValueError("causal must be True: a Window keeps only past tokens")
        pos = torch.arange(q.shape[-2], device=q.device)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=policy.visible(pos, pos))

    return attend


def int8_attention(q: Tensor, k: Tensor, v: Tensor, causal: bool) -> Tensor:
    """Attention that reads keys and values through int8 storage (for GPT.set_attention).

    Shapes (B, nh, T, hs); causal as in scaled_dot_product_attention. k and v must be finite.
    """
    _check_qkv(q, k, v, causal)
    k8, v8 = (dequantize_int8(*_quantize(x, name)) for x, name in ((k, "k"), (v, "v")))
    return F.scaled_dot_product_attention(q, k8, v8, is_causal=causal)
