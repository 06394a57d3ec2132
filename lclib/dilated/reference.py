"""The plain reference of dilated attention: explicit masks, one softmax per pattern, the lse mixture.

For each pattern i, softmax attention among the kept positions of each segment gives an output O_i
and, per query, the log-sum-exp lse_i of its scores (LongNet Eq. 5-7: :func:`masked_softmax`); the
patterns are mixed with weights proportional to their softmax denominators (Eq. 9-10: :func:`mix`):

    O = sum_i alpha_i O_i,    alpha_i = exp(lse_i) / sum_j exp(lse_j)

:func:`dilated_attention_reference` builds the (batch, heads, seq_len, seq_len) scores: O(seq_len^2), for
teaching and tests, which hold the block kernel (``kernel.py``) to it. ``distributed.py`` attends and
mixes with the same two pieces; :func:`check_qkv` is the rule for q, k and v all three follow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from .. import validate
from .patterns import MAX_MASK_ELEMENTS, check_patterns, pattern_mask


def check_qkv(q: Tensor, k: Tensor, v: Tensor, length_name: str = "seq_len") -> None:
    """Refuse q, k, v unless q and k are (batch, heads, seq_len, head_dim) and v (batch, heads, seq_len,
    v_dim), seq_len >= 1, all of one floating dtype; ``length_name`` names dim 2 in the messages."""
    layout = f"(batch, heads, {length_name}, head_dim)"
    for name, x in (("q", q), ("k", k), ("v", v)):
        validate.tensor(name, x)
        if x.dim() != 4:
            raise ValueError(f"{name} must be a 4-D tensor {layout}, got shape {tuple(x.shape)}")
    if k.shape != q.shape:
        raise ValueError(f"k must have the shape of q {tuple(q.shape)} {layout}, got {tuple(k.shape)}")
    if v.shape[:3] != q.shape[:3]:
        raise ValueError(f"v must match q in (batch, heads, {length_name}) {tuple(q.shape[:3])}, got {tuple(v.shape[:3])}")
    if q.shape[2] < 1:
        raise ValueError(f"q must hold at least one position: {length_name} (dim 2 of q) must be >= 1, got {q.shape[2]}")
    if not q.is_floating_point():
        raise TypeError(f"q must have a floating-point dtype, got {q.dtype}")
    for name, x in (("k", k), ("v", v)):
        if x.dtype != q.dtype:
            raise TypeError(f"{name} must have the dtype of q ({q.dtype}), got {x.dtype}")


def masked_softmax(scores: Tensor, keep: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Softmax over the last dimension of scores among the keys ``keep`` allows, and its log-sum-exp: (probs, lse).

    lse = log sum_k exp(scores) over the kept keys, the weight of this softmax in :func:`mix`. A row
    that keeps no key gets probs 0 and lse -inf (weight 0), never NaN, even in a second derivative.
    Shapes: scores (..., queries, keys); keep bool, broadcastable to scores, or None for all;
    probs like scores; lse (..., queries).
    """
    validate.tensor("scores", scores, floating=True)
    if keep is None:
        lse = torch.logsumexp(scores, dim=-1)
        return torch.exp(scores - lse.unsqueeze(-1)), lse
    validate.tensor("keep", keep)
    fits = keep.dim() <= scores.dim() and all(a in (1, b) for a, b in zip(keep.shape[::-1], scores.shape[::-1]))
    if keep.dtype != torch.bool or not fits:
        raise ValueError(f"keep must be a bool tensor broadcastable to scores {tuple(scores.shape)}, "
                         f"got {keep.dtype} {tuple(keep.shape)}")
    empty = ~keep.any(-1, keepdim=True)                                       # (..., queries, 1): rows keeping no key
    masked = scores.masked_fill(~keep, -math.inf).masked_fill(empty, 0.0)     # no all -inf row
    lse = torch.logsumexp(masked, dim=-1)                                     # (..., queries)
    probs = torch.exp(masked - lse.unsqueeze(-1)).masked_fill(empty, 0.0)     # empty rows: 0
    return probs, lse.masked_fill(empty[..., 0], -math.inf)                   # and weight 0


def mix(out: Tensor, lse: Tensor, out_i: Tensor, lse_i: Tensor) -> tuple[Tensor, Tensor]:
    """Merge one pattern into the running mixture with weights exp(lse) (LongNet Eq. 10): (out, lse).

    out (..., D) holds sum_i exp(lse_i - lse) O_i and lse (...) the running log sum_i exp(lse_i);
    a query no pattern has selected yet has out 0 and lse -inf, so exp(-inf) = 0 removes it.
    Out of place, so that autograd can differentiate the mixture, twice: no -inf - -inf anywhere.
    Shapes: out, out_i (..., D); lse, lse_i (...).
    """
    for name, x in (("out", out), ("lse", lse), ("out_i", out_i), ("lse_i", lse_i)):
        validate.tensor(name, x, floating=True)
    if out.shape[:-1] != lse.shape or out_i.shape != out.shape or lse_i.shape != lse.shape:
        raise ValueError(f"out, out_i must be (..., D) and lse, lse_i (...) alike, got out {tuple(out.shape)}, "
                         f"lse {tuple(lse.shape)}, out_i {tuple(out_i.shape)}, lse_i {tuple(lse_i.shape)}")
    old_inf, new_inf = lse == -math.inf, lse_i == -math.inf  # logaddexp's own derivative is NaN at -inf
    both = torch.logaddexp(lse.masked_fill(old_inf, 0.0), lse_i.masked_fill(new_inf, 0.0))
    new = torch.where(old_inf, lse_i, torch.where(new_inf, lse, both))
    shift = new.masked_fill(new == -math.inf, 0.0)  # selected by no pattern yet: weights 0, not NaN
    return out * torch.exp(lse - shift).unsqueeze(-1) + out_i * torch.exp(lse_i - shift).unsqueeze(-1), new


def dilated_attention_reference(q: Tensor, k: Tensor, v: Tensor, segment_lengths: int | Sequence[int],
                                dilation_rates: int | Sequence[int], causal: bool = False) -> Tensor:
    """Dilated attention on the explicit masks: O(n^2) time and memory (n = seq_len), for teaching and tests.

    Per pattern: scores q k^T / sqrt(head_dim) (B, H, n, n), masked by :func:`pattern_mask`,
    softmax rows and their log-sum-exp lse_i (B, H, n); then the lse-weighted mixture. Rows a
    pattern does not select have lse_i = -inf, so they get weight 0 and output 0.
    Shapes: q, k (batch, heads, seq_len, head_dim); v (batch, heads, seq_len, v_dim); out like v.
    """
    check_qkv(q, k, v)
    patterns = check_patterns(segment_lengths, dilation_rates)
    b, h, n, d = q.shape
    if b * h * n * n > MAX_MASK_ELEMENTS:
        raise ValueError(f"seq_len {n} is too long for the reference, which builds (batch, heads, n, n) = "
                         f"{(b, h, n, n)} scores (at most {MAX_MASK_ELEMENTS}); use dilated_attention")
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(d)                         # (B, H, n, n)
    out = torch.zeros(v.shape, dtype=torch.float32 if v.dtype != torch.float64 else v.dtype, device=v.device)
    lse = torch.full((b, h, n), -math.inf, dtype=out.dtype, device=v.device)
    for w, r in patterns:
        mask = pattern_mask(n, w, r, h, causal).to(q.device)                  # (H, n, n)
        probs, lse_i = masked_softmax(scores.to(out.dtype), mask)             # (B, H, n, n), (B, H, n)
        out, lse = mix(out, lse, probs @ v.to(out.dtype), lse_i)
    return out.to(v.dtype)
