"""Dilated attention from Ding et al., "LongNet: Scaling Transformers to 1,000,000,000 Tokens" (2023).

One pattern (w, r) splits the sequence into segments of ``segment_len`` w, keeps every r-th
position inside each segment (``dilation`` r; head j starts at offset j mod r, LongNet Sec. 2.4)
and runs softmax attention among the kept positions of each segment (Eq. 5-7). Several patterns
are mixed per query with weights proportional to their softmax denominators (Eq. 9-10):

    O = sum_i alpha_i O_i,    alpha_i = exp(lse_i) / sum_j exp(lse_j)

where lse_i is the log-sum-exp of pattern i's scores for that query. This mixture equals dense
softmax over all keys with the bias log(multiplicity): a key reached by two patterns counts twice.
It is *not* the softmax over the union of the patterns' masks.

Conventions: the effective segment length is min(w, seq_len); when seq_len is not a multiple of w
the last segment is shorter (never padded, so no zero keys enter a softmax); the offset is counted
from each segment's start; causal keeps key <= query inside a segment; a query that a pattern does
not select gets output 0 and weight 0 from it (a query no pattern selects gets output 0).

Two implementations give one answer: :func:`dilated_attention_reference` on the explicit n x n
mask (for teaching and tests) and :func:`dilated_attention`, which gathers each pattern's rows into
dense blocks, calls ``scaled_dot_product_attention`` and scatters back with the lse weights, in
time and memory O(n * sum_i w_i / r_i^2). :func:`edge_counts` counts what that saves, :func:`reach`
what several layers connect, and :func:`make_attention` fixes the patterns to give a model an
attention function ``(q, k, v, causal) -> out``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

LSE_CHUNK = 1 << 18  # scores per chunk when recomputing the log-sum-exp (1 MB in float32: near cache size)
# Bounds that turn an absurd request into a ValueError instead of an allocation failure or a loop without end:
MAX_MASK_ELEMENTS = 1 << 28  # num_heads * n * n of an explicit mask or score matrix (256 MB of bools)
MAX_COUNT_N = 1 << 24  # edge counting holds a few int64 tensors of n per pattern
MAX_COUNT_HEADS = 1 << 16  # edge_counts loops over heads (distinct_edges does not)
MAX_COUNT_WORK = 1 << 28  # 2^P * n: inclusion-exclusion over P patterns that are not nested


def _patterns(segment_lengths: int | Sequence[int], dilation_rates: int | Sequence[int]) -> list[tuple[int, int]]:
    """Validate the (w, r) lists and return them paired."""
    ws = [segment_lengths] if isinstance(segment_lengths, int) else list(segment_lengths)
    rs = [dilation_rates] if isinstance(dilation_rates, int) else list(dilation_rates)
    if len(ws) != len(rs):
        raise ValueError(f"segment_lengths and dilation_rates must have the same length, got {len(ws)} and {len(rs)}")
    if not ws:
        raise ValueError("segment_lengths must name at least one pattern, got an empty list")
    for w, r in zip(ws, rs):
        if isinstance(w, bool) or not isinstance(w, int) or w < 1:
            raise ValueError(f"segment_lengths must be integers >= 1, got {w!r} in {ws}")
        if isinstance(r, bool) or not isinstance(r, int) or r < 1:
            raise ValueError(f"dilation_rates must be integers >= 1, got {r!r} in {rs}")
        if r > w:
            raise ValueError(f"dilation_rates must not exceed their segment length, got r={r} > w={w}")
    return list(zip(ws, rs))


def _check_n_heads(n: int, num_heads: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    if isinstance(num_heads, bool) or not isinstance(num_heads, int) or num_heads < 1:
        raise ValueError(f"num_heads must be an integer >= 1, got {num_heads!r}")


def _check_mask_size(n: int, num_heads: int) -> None:
    if num_heads * n * n > MAX_MASK_ELEMENTS:
        raise ValueError(f"n={n} with num_heads={num_heads} is too large for an explicit (num_heads, n, n) mask "
                         f"(at most {MAX_MASK_ELEMENTS} entries); count edges with edge_counts instead")


def _nested(patterns: list[tuple[int, int]]) -> bool:
    """w_i | w_j and r_i | r_j along the sorted patterns (LongNet's geometric schedule is nested)."""
    order = sorted(patterns)
    return all(b[0] % a[0] == 0 and b[1] % a[1] == 0 for a, b in zip(order, order[1:]))


def _check_counting(n: int, patterns: list[tuple[int, int]]) -> None:
    if n > MAX_COUNT_N:
        raise ValueError(f"n must be at most {MAX_COUNT_N} for exact edge counting (O(n) memory per pattern), got {n}")
    if not _nested(patterns) and (1 << len(patterns)) * n > MAX_COUNT_WORK:
        raise ValueError(f"segment_lengths: {len(patterns)} patterns that are not nested (w_i | w_j and r_i | r_j) "
                         f"need up to 2^{len(patterns)} passes over n={n} positions to count distinct edges; "
                         f"use fewer patterns or a nested family")


# --- masks and edge counts ----------------------------------------------------------------------

def pattern_mask(n: int, segment_len: int, dilation: int, num_heads: int = 1, causal: bool = False) -> Tensor:
    """Bool (num_heads, n, n): which (query, key) pairs one pattern (w, r) connects, head j at offset j mod r."""
    for name, value in (("segment_len", segment_len), ("dilation", dilation)):
        if not isinstance(value, int):  # lists of patterns are for attention_mask
            raise TypeError(f"{name} must be an int (one pattern; attention_mask takes lists), "
                            f"got {type(value).__name__}")
    (w, r), = _patterns(segment_len, dilation)
    _check_n_heads(n, num_heads)
    _check_mask_size(n, num_heads)
    w = min(w, n)
    pos = torch.arange(n)
    start = pos // w * w                                             # (n,) segment start of each position
    same_segment = start[:, None] == start[None, :]                  # (n, n)
    offsets = torch.arange(num_heads) % r                            # (H,)
    selected = ((pos - start) % r)[None, :] == offsets[:, None]      # (H, n)
    mask = same_segment[None] & selected[:, :, None] & selected[:, None, :]
    if causal:
        mask &= pos[None, :] <= pos[:, None]
    return mask


def attention_mask(n: int, segment_lengths: int | Sequence[int], dilation_rates: int | Sequence[int],
                   num_heads: int = 1, causal: bool = False) -> Tensor:
    """Bool (num_heads, n, n): mask[j, q, k] is True when some pattern connects query q to key k in head j."""
    patterns = _patterns(segment_lengths, dilation_rates)
    _check_n_heads(n, num_heads)
    _check_mask_size(n, num_heads)
    mask = torch.zeros(num_heads, n, n, dtype=torch.bool)
    for w, r in patterns:
        mask |= pattern_mask(n, w, r, num_heads, causal)
    return mask


def multiplicity(n: int, segment_lengths: int | Sequence[int], dilation_rates: int | Sequence[int],
                 num_heads: int = 1, causal: bool = False) -> Tensor:
    """Int64 (num_heads, n, n): how many patterns connect each (query, key) pair in each head."""
    patterns = _patterns(segment_lengths, dilation_rates)
    _check_n_heads(n, num_heads)
    _check_mask_size(n, num_heads)
    return sum(pattern_mask(n, w, r, num_heads, causal).long() for w, r in patterns)


class EdgeCounts(NamedTuple):
    """Edges (query, key pairs) of a dilated configuration; proportional to attention FLOPs."""

    distinct_per_head: Tensor      # (num_heads,) int64: pairs some pattern connects in that head
    pattern_sum_per_head: Tensor   # (num_heads,) int64: sum over patterns of their pairs (the work done)
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


def edge_counts(n: int, segment_lengths: int | Sequence[int], dilation_rates: int | Sequence[int],
                num_heads: int = 1, causal: bool = False) -> EdgeCounts:
    """Count edges without building the mask (closed forms; they equal ``attention_mask(...).sum``).

    The per-pattern count is n * w / r^2 when r divides w and w divides n (LongNet Sec. 2.2), and
    its exact per-segment sum otherwise; distinct edges use inclusion-exclusion over the patterns
    (:func:`_distinct_edges`), once per distinct tuple of head offsets. Dense attention is the
    single pattern w = n, r = 1: n^2 pairs, or n(n+1)/2 causal.
    """
    patterns = _patterns(segment_lengths, dilation_rates)
    _check_n_heads(n, num_heads)
    _check_counting(n, patterns)
    if num_heads > MAX_COUNT_HEADS:
        raise ValueError(f"num_heads must be at most {MAX_COUNT_HEADS} for per-head counts, got {num_heads}; "
                         "distinct_edges counts the union over any number of heads")
    summed, distinct, cache = [], [], {}
    for h in range(num_heads):
        summed.append(sum(_pattern_edges(n, w, r, h % r, causal) for w, r in patterns))
        offsets = tuple(h % r for _, r in patterns)
        if offsets not in cache:  # heads with the same offsets have the same mask
            cache[offsets] = _distinct_edges(n, patterns, [(o, o + 1) for o in offsets], causal)
        distinct.append(cache[offsets])
    union = distinct_edges(n, segment_lengths, dilation_rates, num_heads, causal)
    return EdgeCounts(torch.tensor(distinct, dtype=torch.long), torch.tensor(summed, dtype=torch.long), union)


def distinct_edges(n: int, segment_lengths: int | Sequence[int], dilation_rates: int | Sequence[int],
                   num_heads: int = 1, causal: bool = False) -> int:
    """Pairs connected in at least one of num_heads heads (EdgeCounts.distinct_all_heads), alone.

    One inclusion-exclusion pass whatever num_heads: over all heads, pattern i selects every query
    whose offset mod r_i is one of 0 .. min(r_i, num_heads) - 1. Use it for many heads, where
    :func:`edge_counts` would also count each head's own union.
    """
    patterns = _patterns(segment_lengths, dilation_rates)
    _check_n_heads(n, num_heads)
    _check_counting(n, patterns)
    return _distinct_edges(n, patterns, [(0, min(r, num_heads)) for _, r in patterns], causal)


def reach(mask: Tensor, layers: int) -> Tensor:
    """Bool (n, n): query q is connected to key k through at most ``layers`` stacked attention layers.

    mask (n, n) is one layer's graph (mask[q, k]: q attends to k; take ``.any(0)`` over heads,
    since a layer mixes its heads). Residual connections carry each token's own state to the next
    layer, so self-loops are added: reach = (mask | I)^layers, a breadth-first search by boolean
    matrix products (O(min(layers, n) n^3): for teaching sizes). A path needs at most n - 1 steps, so
    layers beyond that change nothing and are not computed.
    """
    if not isinstance(mask, Tensor):
        raise TypeError(f"mask must be a square bool tensor (n, n), got {type(mask).__name__}")
    if mask.dim() != 2 or mask.shape[0] != mask.shape[1] or mask.dtype != torch.bool:
        raise ValueError(f"mask must be a square bool matrix (n, n), got {tuple(mask.shape)} {mask.dtype}")
    if isinstance(layers, bool) or not isinstance(layers, int) or layers < 1:
        raise ValueError(f"layers must be an integer >= 1, got {layers!r}")
    step = (mask | torch.eye(mask.shape[0], dtype=torch.bool, device=mask.device)).float()
    connected = step.clone()
    for _ in range(min(layers, max(1, mask.shape[0] - 1)) - 1):
        connected = (step @ connected).clamp_(max=1.0)                       # (n, n) 0/1
    return connected > 0


# --- attention ------------------------------------------------------------------------------------

def _check_qkv(q: Tensor, k: Tensor, v: Tensor) -> None:
    for name, x in (("q", q), ("k", k), ("v", v)):
        if not isinstance(x, Tensor) or x.dim() != 4:
            got = getattr(x, "shape", type(x))
            raise ValueError(f"{name} must be a 4-D tensor (batch, heads, seq_len, head_dim), got {got}")
    if k.shape != q.shape:
        raise ValueError(f"k must have the shape of q {tuple(q.shape)} (batch, heads, seq_len, head_dim), "
                         f"got {tuple(k.shape)}")
    if v.shape[:3] != q.shape[:3]:
        raise ValueError(f"v must match q in (batch, heads, seq_len) {tuple(q.shape[:3])}, got {tuple(v.shape[:3])}")
    if q.shape[2] < 1:
        raise ValueError(f"seq_len (dim 2 of q) must be >= 1, got {q.shape[2]}")
    if not q.is_floating_point():
        raise TypeError(f"q must be a floating-point tensor, got {q.dtype}")
    for name, x in (("k", k), ("v", v)):
        if x.dtype != q.dtype:
            raise TypeError(f"{name} must have the dtype of q ({q.dtype}), got {x.dtype}")


def _mix(out: Tensor, lse: Tensor, out_i: Tensor, lse_i: Tensor) -> None:
    """Merge one pattern into the running mixture, in place: weights exp(lse) (LongNet Eq. 10).

    out (..., D) holds sum_i exp(lse_i - lse) O_i and lse (...) the running log sum_i exp(lse_i);
    a query no pattern has selected yet has out 0 and lse -inf, so exp(-inf) = 0 removes it.
    """
    new = torch.logaddexp(lse, lse_i)
    shift = new.masked_fill(new == -math.inf, 0.0)  # both -inf: keep weights 0, not nan
    out.mul_(torch.exp(lse - shift).unsqueeze(-1)).add_(out_i * torch.exp(lse_i - shift).unsqueeze(-1))
    lse.copy_(new)


def dilated_attention_reference(q: Tensor, k: Tensor, v: Tensor, segment_lengths: int | Sequence[int],
                                dilation_rates: int | Sequence[int], causal: bool = False) -> Tensor:
    """Dilated attention on the explicit masks: O(n^2) time and memory, for teaching and tests.

    Per pattern: scores q k^T / sqrt(head_dim) (B, H, n, n), masked by :func:`pattern_mask`,
    softmax rows and their log-sum-exp lse_i (B, H, n); then the lse-weighted mixture. Rows a
    pattern does not select have lse_i = -inf, so they get weight 0 and output 0.
    Shapes: q, k (batch, heads, seq_len, head_dim); v (batch, heads, seq_len, v_dim); out like v.
    """
    _check_qkv(q, k, v)
    patterns = _patterns(segment_lengths, dilation_rates)
    b, h, n, d = q.shape
    if b * h * n * n > MAX_MASK_ELEMENTS:
        raise ValueError(f"seq_len {n} is too long for the reference, which builds (batch, heads, n, n) = "
                         f"{(b, h, n, n)} scores (at most {MAX_MASK_ELEMENTS}); use dilated_attention")
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(d)                         # (B, H, n, n)
    out = torch.zeros(v.shape, dtype=torch.float32 if v.dtype != torch.float64 else v.dtype, device=v.device)
    lse = torch.full((b, h, n), -math.inf, dtype=out.dtype, device=v.device)
    for w, r in patterns:
        mask = pattern_mask(n, w, r, h, causal).to(q.device)                  # (H, n, n)
        masked = scores.masked_fill(~mask, -math.inf).to(out.dtype)
        lse_i = torch.logsumexp(masked, dim=-1)                               # (B, H, n)
        probs = torch.exp(masked - lse_i.unsqueeze(-1)).nan_to_num(0.0)       # empty rows: 0
        _mix(out, lse, probs @ v.to(out.dtype), lse_i)
    return out.to(v.dtype)


def _block_softmax(qb: Tensor, kb: Tensor, vb: Tensor | None, scale: float,
                   causal: bool) -> tuple[Tensor | None, Tensor]:
    """Softmax attention of dense blocks (G, m, D), a chunk of query rows at a time: (out, lse).

    lse (G, m) is log sum_k exp(scale * q . k) per query row; out (G, m, Dv) is the attention output,
    computed only when vb is given (else None). Each chunk holds at most LSE_CHUNK scores, small
    enough to stay in cache, with in-place max-shift, exp and sum; memory stays O(LSE_CHUNK)
    whatever the block size. Causal rows only look at keys up to their own index (the kept
    positions are increasing, so local order is global order), which also halves the work.
    """
    g, m, _ = qb.shape
    dtype = torch.float64 if qb.dtype == torch.float64 else torch.float32
    qs, ks = (qb * scale).to(dtype), kb.to(dtype)
    vs = None if vb is None else vb.to(dtype)
    lse = torch.empty(g, m, dtype=dtype, device=qb.device)
    out = None if vb is None else torch.empty(g, m, vb.shape[-1], dtype=dtype, device=qb.device)
    g_step = max(1, LSE_CHUNK // (m * m))
    row_step = m if g_step > 1 else max(1, LSE_CHUNK // m)
    for g0 in range(0, g, g_step):
        g1 = min(g, g0 + g_step)
        for r0 in range(0, m, row_step):
            r1 = min(m, r0 + row_step)
            keys = slice(0, r1) if causal else slice(0, m)
            s = qs[g0:g1, r0:r1] @ ks[g0:g1, keys].transpose(-1, -2)          # (g, rows, keys)
            if causal:
                above = torch.arange(r1, device=s.device)[None, :] > torch.arange(r0, r1, device=s.device)[:, None]
                s.masked_fill_(above, -math.inf)
            peak = s.amax(dim=-1, keepdim=True)                               # (g, rows, 1)
            total = s.sub_(peak).exp_().sum(dim=-1, keepdim=True)             # s now holds exp(s - peak)
            if out is not None:
                out[g0:g1, r0:r1] = (s @ vs[g0:g1, keys]).div_(total)
            lse[g0:g1, r0:r1] = total.log_().add_(peak).squeeze(-1)
    return out, lse


KERNELS = ("sdpa", "softmax")


def dilated_attention(q: Tensor, k: Tensor, v: Tensor, segment_lengths: int | Sequence[int],
                      dilation_rates: int | Sequence[int], causal: bool = False, *, kernel: str = "sdpa") -> Tensor:
    """LongNet dilated attention (Eq. 5-10), exact, in O(n * sum_i w_i / r_i^2) time and memory.

    For each pattern (w, r) and head offset o (heads o, o + r, ... share it, a strided slice), the
    kept rows of all full segments are gathered by strided views into dense blocks
    (B, H_o * n // w, m, D) with m = ceil((w - o) / r), and the shorter last segment into its own
    block; ``scaled_dot_product_attention`` computes each block's output (fused kernels: flash on
    CUDA and on recent CPUs, is_causal inside a block is exactly "key <= query"), and the outputs
    are scattered back through the same views, merged with weights exp(lse_i) (:func:`_mix`).

    SDPA returns only the output, so each block's log-sum-exp is recomputed by :func:`_block_softmax`
    from the block's scores, in chunks. We chose this over tricks that read the lse off a dummy key
    appended to the block (exact only when the scores sit near 0: the dummy's probability
    underflows for large scores and loses all digits for very negative ones): it is exact at any
    score scale, with bounded memory, and costs one extra q k^T and exp per block (measured: about
    0.8x the SDPA call on the CPU). ``kernel="softmax"`` instead computes output and lse together
    in that same chunked pass (no SDPA: about 1.5x faster on the CPU, where SDPA's fused kernel
    buys little; on CUDA the default keeps SDPA's flash kernels for the output).
    No n x n matrix is ever built. Shapes: q, k (batch, heads, seq_len, head_dim); v (batch, heads,
    seq_len, v_dim); output like v. Scale 1 / sqrt(head_dim).
    """
    _check_qkv(q, k, v)
    patterns = _patterns(segment_lengths, dilation_rates)
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    b, h, n, d = q.shape
    scale = 1.0 / math.sqrt(d)
    acc_dtype = torch.float64 if v.dtype == torch.float64 else torch.float32
    out = torch.zeros(v.shape, dtype=acc_dtype, device=v.device)             # (B, H, n, Dv)
    lse = torch.full((b, h, n), -math.inf, dtype=acc_dtype, device=v.device)  # (B, H, n)
    for w, r in patterns:
        w = min(w, n)
        full = n // w * w
        for o in range(min(r, h)):
            # (start, length, count): the full segments as one (count, w) grid, then the remainder
            for start, length, count in ((0, w, n // w), (full, n - full, 1)):
                if length <= o or count == 0:
                    continue

                def rows(x: Tensor) -> Tensor:  # (B, H_o, count, m, ...) strided view, no copy
                    x = x[:, o::r, start:start + count * length]
                    return x.unflatten(2, (count, length))[:, :, :, o::r]

                qb, kb, vb = (rows(x) for x in (q, k, v))                     # (B, H_o, count, m, D)
                hb, m = qb.shape[1], qb.shape[3]
                qb, kb, vb = (x.reshape(b * hb * count, m, x.shape[-1]) for x in (qb, kb, vb))  # (G, m, D)
                if kernel == "sdpa":
                    out_i = F.scaled_dot_product_attention(qb.unsqueeze(0), kb.unsqueeze(0), vb.unsqueeze(0),
                                                           is_causal=causal, scale=scale)[0]  # (G, m, Dv)
                    lse_i = _block_softmax(qb, kb, None, scale, causal)[1]    # (G, m)
                else:
                    out_i, lse_i = _block_softmax(qb, kb, vb, scale, causal)
                out_view, lse_view = rows(out), rows(lse.unsqueeze(-1))       # write back in place
                o_blk = out_view.reshape(b * hb * count, m, -1)
                l_blk = lse_view.reshape(b * hb * count, m)
                _mix(o_blk, l_blk, out_i.to(acc_dtype), lse_i.to(acc_dtype))
                out_view.copy_(o_blk.view(out_view.shape))
                lse_view.copy_(l_blk.view(lse_view.shape))
    return out.to(v.dtype)


def make_attention(segment_lengths: int | Sequence[int], dilation_rates: int | Sequence[int], *,
                   kernel: str = "sdpa") -> Callable[[Tensor, Tensor, Tensor, bool], Tensor]:
    """An attention function ``(q, k, v, causal) -> out`` with the patterns fixed, for a model to plug in.

    The patterns are validated now; each call runs :func:`dilated_attention` on (batch, heads,
    seq_len, head_dim) tensors. The effective segment length min(w, seq_len) adapts to each call.
    """
    _patterns(segment_lengths, dilation_rates)
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")

    def attention(q: Tensor, k: Tensor, v: Tensor, causal: bool = False) -> Tensor:
        return dilated_attention(q, k, v, segment_lengths, dilation_rates, causal, kernel=kernel)

    attention.__doc__ = f"Dilated attention with w={segment_lengths}, r={dilation_rates} (lclib.dilated)."
    return attention
