"""Checkers for notebook 03, LongNet dilated attention: the union softmax from blockwise parts, reach by
depth, one pattern's attention."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .. import dilated
from .answers import CheckFailed, as_int, as_tensor, close
from .runner import call, checker

# (seq_len, pattern A, pattern B, causal, score scale): nested, not nested, causal, rows no pattern selects,
# and scores large enough that exp(lse) overflows float64 (lse > 709)
UNION_CASES = [(32, (8, 1), (16, 2), False, 1.0), (36, (12, 3), (18, 2), False, 1.0), (32, (8, 1), (32, 4), True, 1.0),
               (32, (8, 2), (16, 4), False, 1.0), (48, (16, 1), (48, 4), False, 300.0)]


def _part(scores: Tensor, mask: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    """Softmax output (seq_len, d) and log-sum-exp (seq_len,) of scores (seq_len, seq_len) over the keys of mask;
    0 and -inf on empty rows."""
    masked = scores.masked_fill(~mask, -math.inf)
    return torch.softmax(masked, dim=-1).nan_to_num(0.0) @ v, torch.logsumexp(masked, dim=-1)


def _combine(parts: Sequence[tuple[Tensor, Tensor]], signs: Sequence[float]) -> Tensor:
    """sum_i sign_i Z_i O_i / sum_i sign_i Z_i with Z_i = exp(lse_i), in float64 (for the hints)."""
    top = torch.stack([lse for _, lse in parts]).amax(0)
    top = top.masked_fill(top == -math.inf, 0.0)
    z = [s * torch.exp(lse - top)[:, None] for (_, lse), s in zip(parts, signs)]
    den = sum(z)
    return sum(zi * out for zi, (out, _) in zip(z, parts)) / torch.where(den != 0, den, torch.ones_like(den))


def _bad_rows(got: object, shape: tuple[int, ...]) -> tuple[Tensor, str] | None:
    """(rows holding NaN or inf, "NaN" or "inf") when got is a tensor or array of the expected shape; else None."""
    try:
        t = torch.as_tensor(got.detach().cpu() if isinstance(got, Tensor) else got)
    except (TypeError, ValueError, RuntimeError):
        return None
    if tuple(t.shape) != shape or t.is_complex() or not t.is_floating_point():
        return None
    bad = ~torch.isfinite(t)
    return (bad.any(-1), "NaN" if bool(torch.isnan(t).any()) else "inf") if bool(bad.any()) else None


@checker
def check_union_attention(fn: Callable[..., Tensor]) -> str:
    """fn(out_a, lse_a, out_b, lse_b, out_ab, lse_ab) -> softmax attention over the keys pattern A or B reaches.

    Each part (A, B, and the overlap A and B) comes as its softmax output (seq_len, 8) and log-sum-exp
    (seq_len,), float64, one head at offset 0; a part that reaches no key of a query has output 0 and lse
    -inf there. The reference is the softmax over the union of `dilated.pattern_mask`, built from q, k, v.
    """
    gen = torch.Generator().manual_seed(3)
    for seq_len, (wa, ra), (wb, rb), causal, scale in UNION_CASES:
        q, k, v = torch.randn(3, seq_len, 8, generator=gen, dtype=torch.float64).unbind(0)
        scores = scale * q @ k.T / math.sqrt(8)                                        # (seq_len, seq_len)
        mask_a, mask_b = (dilated.pattern_mask(seq_len, w, r, causal=causal)[0] for w, r in ((wa, ra), (wb, rb)))
        want, _ = _part(scores, mask_a | mask_b, v)
        a, b, ab = _part(scores, mask_a, v), _part(scores, mask_b, v), _part(scores, mask_a & mask_b, v)
        where = f"seq_len={seq_len}, A=(w={wa}, r={ra}), B=(w={wb}, r={rb})" + (", causal" if causal else "")
        raw = call(fn, out_a=a[0], lse_a=a[1], out_b=b[0], lse_b=b[1], out_ab=ab[0], lse_ab=ab[1])
        empty = ~(mask_a | mask_b).any(-1)                                             # (seq_len,) rows no pattern selects
        try:
            got = as_tensor(raw, want.shape, where, like="out_a")
        except CheckFailed:
            found = _bad_rows(raw, tuple(want.shape))
            if found is not None and scale > 1:
                raise CheckFailed(f"{where}, scores up to {scores.abs().max():.0f}: your answer has {found[1]}. "
                                  "exp(lse) overflows float64 above lse = 709: factor out the largest lse of each "
                                  "row before exponentiating.") from None
            if found is not None and bool(empty.any()) and not bool((found[0] & ~empty).any()):
                raise CheckFailed(f"{where}: your answer has {found[1]} on the rows no pattern selects (every lse "
                                  "is -inf there: 0/0 and -inf - (-inf) are NaN); their output must be 0.") from None
            raise
        if close(got, want):
            continue
        if (got[empty].abs() > 1e-9).any():
            raise CheckFailed(f"{where}: rows no pattern selects (every lse -inf) must be 0.")
        if close(got, _combine([a, b], [1, 1])):
            raise CheckFailed(f"{where}: that is LongNet's mixture, which counts a key both patterns reach twice; "
                              "the union counts it once: take the overlap's share out.")
        if close(got, _combine([a, b, ab], [1, 1, 1])):
            raise CheckFailed(f"{where}: the overlap's keys are already in A and in B: subtract its share, do not add it.")
        if close(got, a[0] + b[0] - ab[0]):
            raise CheckFailed(f"{where}: the outputs are normalised by different denominators; weight each part "
                              "by its own exp(lse) and divide by the union's.")
        raise CheckFailed(f"{where}: expected the softmax over the union of A's and B's keys; it differs. From "
                          "each part's (out, lse), write its softmax numerator and denominator; a key both reach "
                          "belongs to A, to B and to the overlap.")
    return "inclusion-exclusion on numerators and denominators turns blockwise parts into the union softmax."


def _layers_for_full_reach(seq_len: int, segment_lengths: Sequence[int], dilation_rates: Sequence[int], n_head: int,
                           limit: int = 16) -> int | None:
    """The reference: fewest layers (up to limit) after which every token reaches every other, else None."""
    mask = dilated.attention_mask(seq_len, segment_lengths, dilation_rates, n_head).any(0)
    for layers in range(1, limit + 1):
        if bool(dilated.reach(mask, layers).all()):
            return layers
    return None


@checker
def check_layers_for_full_reach(fn: Callable[..., int | None]) -> str:
    """fn(seq_len, segment_lengths, dilation_rates, n_head) -> the fewest layers that connect every pair, or None."""
    cases = [(64, [64], [1], 1), (64, [16, 64], [1, 4], 4), (48, [8, 48], [1, 8], 1), (64, [16, 32], [1, 2], 2),
             (64, [8, 16, 32, 64], [1, 2, 4, 8], 8), (40, [8, 40], [1, 5], 1)]
    for seq_len, ws, rs, n_head in cases:
        want = _layers_for_full_reach(seq_len, ws, rs, n_head)
        where = f"seq_len={seq_len}, w={ws}, r={rs}, n_head={n_head}"
        got = call(fn, seq_len=seq_len, segment_lengths=ws, dilation_rates=rs, n_head=n_head, hide=(dilated.reach,))
        if got is not None:
            got = as_int(got, where, "a number of layers (an int), or None")
        if got == want:
            continue
        if want is None:
            raise CheckFailed(f"{where}: no depth connects every pair (the largest segment {max(ws)} < seq_len keeps the "
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
        got = as_tensor(call(fn, q=q, k=k, v=v, segment_len=w, dilation=r,
                             hide=(dilated.dilated_attention, dilated.dilated_attention_reference)),
                        want.shape, where, like="v")
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
    # A gather reads only the positions the pattern keeps. Poison the others with NaN: a dense attention under a
    # mask (every pair computed, most thrown away) multiplies their values by weight 0, and 0 * NaN is NaN.
    n, w, r = 32, 8, 2
    q, k, v = torch.randn(3, n, 8, generator=gen, dtype=torch.float64).unbind(0)
    want = dilated.dilated_attention(q[None, None], k[None, None], v[None, None], [w], [r])[0, 0]
    dropped = torch.ones(n, dtype=torch.bool)
    dropped[::r] = False
    q, k, v = (t.masked_fill(dropped[:, None], float("nan")) for t in (q, k, v))
    raw = call(fn, q=q, k=k, v=v, segment_len=w, dilation=r, hide=(dilated.dilated_attention, dilated.dilated_attention_reference))
    if isinstance(raw, torch.Tensor) and raw.shape == want.shape and bool(raw.detach()[~dropped].isnan().any()):
        raise CheckFailed("your function reads positions the pattern does not keep: with NaN there, the kept rows come "
                          "out NaN. A dense attention under a mask computes every pair and throws most away; gather "
                          "the kept positions first, x.view(n // w, w, d)[:, ::r], as the exercise asks.")
    got = as_tensor(raw, want.shape, f"seq_len={n}, w={w}, r={r}, with NaN at the positions not kept", like="v")
    if not close(got, want):
        raise CheckFailed("with NaN at the positions the pattern does not keep, your answer changed: read only the "
                          "kept positions, and write 0 in the rows not kept.")
    return "your gather / attend / scatter matches lclib.dilated for one pattern, and reads nothing else."
