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
mask (for teaching and tests) and :func:`dilated_attention`, which views each pattern's rows as
dense blocks, runs a fused attention kernel on them and merges the outputs in place with the lse
weights, in time O(n * sum_i w_i / r_i^2) and, beyond the output, memory for the lse and one
block; its gradients are exact too (second derivatives through a dense form), so a model can be
trained through it. :func:`edge_counts` counts what that saves,
:func:`reach` what several layers connect, and :func:`make_attention` fixes the patterns to give a
model an attention function ``(q, k, v, causal) -> out``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

LSE_CHUNK = 1 << 18  # scores per chunk of the plain-PyTorch softmax and its backward (1 MB in float32: near cache)
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


def _mix(out: Tensor, lse: Tensor, out_i: Tensor, lse_i: Tensor) -> tuple[Tensor, Tensor]:
    """Merge one pattern into the running mixture with weights exp(lse) (LongNet Eq. 10): (out, lse).

    out (..., D) holds sum_i exp(lse_i - lse) O_i and lse (...) the running log sum_i exp(lse_i);
    a query no pattern has selected yet has out 0 and lse -inf, so exp(-inf) = 0 removes it.
    Out of place, so that autograd can differentiate the reference, twice: no -inf - -inf anywhere.
    """
    old_inf, new_inf = lse == -math.inf, lse_i == -math.inf  # logaddexp's own derivative is NaN at -inf
    both = torch.logaddexp(lse.masked_fill(old_inf, 0.0), lse_i.masked_fill(new_inf, 0.0))
    new = torch.where(old_inf, lse_i, torch.where(new_inf, lse, both))
    shift = new.masked_fill(new == -math.inf, 0.0)  # selected by no pattern yet: weights 0, not NaN
    return out * torch.exp(lse - shift).unsqueeze(-1) + out_i * torch.exp(lse_i - shift).unsqueeze(-1), new


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
        empty = ~mask.any(-1, keepdim=True)                                   # (H, n, 1): rows not selected
        masked = scores.masked_fill(~mask, -math.inf).to(out.dtype).masked_fill(empty, 0.0)  # no all -inf row
        lse_i = torch.logsumexp(masked, dim=-1)                               # (B, H, n)
        probs = torch.exp(masked - lse_i.unsqueeze(-1)).masked_fill(empty, 0.0)  # empty rows: 0
        lse_i = lse_i.masked_fill(empty[..., 0], -math.inf)                   # and weight 0
        out, lse = _mix(out, lse, probs @ v.to(out.dtype), lse_i)
    return out.to(v.dtype)


def _block_softmax(qb: Tensor, kb: Tensor, vb: Tensor | None, scale: float,
                   causal: bool) -> tuple[Tensor | None, Tensor]:
    """Softmax attention of dense blocks, queries qb (G, m, D) and keys kb (G, keys, D), a chunk of
    query rows at a time: (out, lse). Causal blocks are square (keys = m).

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
    for g0, g1, r0, r1, keys, above in _chunks(g, m, kb.shape[1], causal, qb.device):
        s = qs[g0:g1, r0:r1] @ ks[g0:g1, keys].transpose(-1, -2)              # (g, rows, keys)
        if above is not None:
            s.masked_fill_(above, -math.inf)
        peak = s.amax(dim=-1, keepdim=True)                                   # (g, rows, 1)
        total = s.sub_(peak).exp_().sum(dim=-1, keepdim=True)                 # s now holds exp(s - peak)
        if out is not None:
            out[g0:g1, r0:r1] = (s @ vs[g0:g1, keys]).div_(total)
        lse[g0:g1, r0:r1] = total.log_().add_(peak).squeeze(-1)
    return out, lse


def _chunks(g: int, m: int, keys: int, causal: bool,
            device: torch.device) -> Iterator[tuple[int, int, int, int, slice, Tensor | None]]:
    """(g0, g1, r0, r1, keys, above): pieces of a (g, m, keys) score block of at most LSE_CHUNK scores.

    Causal blocks are square; their pieces keep keys 0 .. r1 - 1 only, with ``above`` (rows, keys)
    marking key > query.
    """
    g_step = max(1, LSE_CHUNK // (m * keys))
    row_step = m if g_step > 1 else max(1, LSE_CHUNK // keys)
    for g0 in range(0, g, g_step):
        for r0 in range(0, m, row_step):
            r1 = min(m, r0 + row_step)
            above = None
            if causal:
                above = torch.arange(r1, device=device)[None, :] > torch.arange(r0, r1, device=device)[:, None]
            yield g0, min(g, g0 + g_step), r0, r1, slice(0, r1) if causal else slice(0, keys), above


def _block_backward(qb: Tensor, kb: Tensor, vb: Tensor, ob: Tensor, lb: Tensor, dob: Tensor, scale: float,
                    causal: bool) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients (dq, dk, dv) of one pattern's blocks, queries (G, m, D) and keys (G, keys, D),
    given the mixture's out and lse.

    The lse mixture (Eq. 10) is one softmax over every (pattern, key) pair a query reaches, with
    probabilities P = exp(s - L), L the query's mixed lse (B, H, n) gathered to lb (G, m). So each
    pattern's share of the gradient is the usual softmax backward with that global L and the
    mixture's output ob (G, m, Dv) (FlashAttention-2, Alg. 2): dS = P * (dO V^T - rowsum(dO * O)).
    """
    qs = qb * scale
    delta = (dob * ob).sum(-1)                                                # (G, m)
    dq, dk, dv = torch.zeros_like(qb), torch.zeros_like(kb), torch.zeros_like(vb)
    for g0, g1, r0, r1, keys, above in _chunks(qb.shape[0], qb.shape[1], kb.shape[1], causal, qb.device):
        rows, grads = slice(r0, r1), dob[g0:g1, r0:r1]                        # (g, rows, Dv)
        s = qs[g0:g1, rows] @ kb[g0:g1, keys].transpose(-1, -2)               # (g, rows, keys)
        if above is not None:
            s.masked_fill_(above, -math.inf)
        p = s.sub_(lb[g0:g1, rows].unsqueeze(-1)).exp_()                      # P = exp(s - L) <= 1
        dv[g0:g1, keys] += p.transpose(-1, -2) @ grads
        ds = (grads @ vb[g0:g1, keys].transpose(-1, -2)).sub_(delta[g0:g1, rows].unsqueeze(-1)).mul_(p)
        dq[g0:g1, rows] += ds @ kb[g0:g1, keys] * scale
        dk[g0:g1, keys] += ds.transpose(-1, -2) @ qs[g0:g1, rows]
    return dq, dk, dv


KERNELS = ("sdpa", "softmax")
BLOCK_ROWS = 1 << 10  # query rows per kernel call: bounds the copies and temporaries (256 KB per tensor at D = 64)
CAUSAL_TILE = 256  # causal blocks longer than this are cut into diagonal tiles and the rectangles below them


def _fused_cpu(q: Tensor, v: Tensor) -> bool:
    """Whether PyTorch's CPU flash-attention kernel, which also returns the lse, can run on q, v
    (on the CPU, with values as wide as queries and keys: the kernel needs one head size)."""
    return (q.device.type == "cpu" and q.shape[-1] == v.shape[-1]
            and hasattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu"))


class _Block(NamedTuple):
    """Batches [b0, b1), heads [h0, h1) of those at offset o = ``offset`` (heads o, o + r, ...) and
    segments [c0, c1) of ``length`` from position ``start``; kept positions o, o + r, ... of each."""

    offset: int
    dilation: int
    start: int
    length: int
    b0: int
    b1: int
    h0: int
    h1: int
    c0: int
    c1: int

    def rows(self, x: Tensor) -> Tensor:
        """The block's rows of x (B, H, n, ...) as a strided view (b, h, c, m, ...), no copy."""
        o, r = self.offset, self.dilation
        x = x[self.b0:self.b1, o::r][:, self.h0:self.h1, self.start + self.c0 * self.length:
                                     self.start + self.c1 * self.length]
        return x.unflatten(2, (self.c1 - self.c0, self.length))[:, :, :, o::r]


def _blocks(patterns: list[tuple[int, int]], b: int, h: int, n: int) -> Iterator[_Block]:
    """Every pattern's kept rows, cut into blocks of about BLOCK_ROWS rows (one segment at least).

    Head j keeps offset j mod r; the full segments form a (n // w, w) grid, the shorter last
    segment (n mod w positions) is a block of its own when it holds the offset. Short segments
    are grouped across segments, then heads, then batches, so that each kernel call has work.
    """
    def split(size: int, unit: int) -> Iterator[tuple[int, int]]:  # runs [lo, hi) of about BLOCK_ROWS rows
        step = max(1, BLOCK_ROWS // unit)
        return ((lo, min(size, lo + step)) for lo in range(0, size, step))

    for w, r in patterns:
        w = min(w, n)
        for o in range(min(r, h)):
            heads = len(range(o, h, r))
            for start, length, count in ((0, w, n // w), (n - n % w, n % w, 1)):
                if length <= o or count == 0:
                    continue
                m = (length - o + r - 1) // r
                if heads * count * m <= BLOCK_ROWS:  # whole batches per block
                    for b0, b1 in split(b, heads * count * m):
                        yield _Block(o, r, start, length, b0, b1, 0, heads, 0, count)
                elif count * m <= BLOCK_ROWS:  # whole heads of one batch per block
                    for bi in range(b):
                        for h0, h1 in split(heads, count * m):
                            yield _Block(o, r, start, length, bi, bi + 1, h0, h1, 0, count)
                else:  # runs of segments of one head
                    for bi in range(b):
                        for hi in range(heads):
                            for c0, c1 in split(count, m):
                                yield _Block(o, r, start, length, bi, bi + 1, hi, hi + 1, c0, c1)


def _pieces(m: int, causal: bool) -> list[tuple[int, int, int, int, int, bool]]:
    """(q0, q1, k0, k1, tile, causal): the (query, key) ranges of an (m, m) block, one kernel call each.

    A causal block longer than CAUSAL_TILE is cut into causal tiles on the diagonal (tile > 0: rows
    [q0, q1) as a batch of square tiles of that size) and the full rectangles below them, keys
    [0, q0) of each row tile, so that the fused kernel spends little work above the diagonal
    (measured on the CPU: a causal 1024-block cost it 0.9x a full one, these pieces 0.7x). The
    pieces partition the block's pairs, so their lse mixture is the block's softmax.
    """
    if not causal or m <= CAUSAL_TILE:
        return [(0, m, 0, m, 0, causal)]
    t = CAUSAL_TILE
    whole = m // t * t
    pieces = [(0, whole, 0, whole, t, True)]
    if whole < m:
        pieces.append((whole, m, whole, m, 0, True))
    pieces += [(q0, min(m, q0 + t), 0, q0, 0, False) for q0 in range(t, m, t)]
    return pieces


def _forward(q: Tensor, k: Tensor, v: Tensor, patterns: list[tuple[int, int]], causal: bool,
             kernel: str) -> tuple[Tensor, Tensor]:
    """The mixture's output (B, H, n, Dv) and lse (B, H, n), in float32 (float64 for float64 input)."""
    b, h, n, d = q.shape
    scale = 1.0 / math.sqrt(d)
    acc = torch.float64 if v.dtype == torch.float64 else torch.float32
    out = torch.zeros(v.shape, dtype=acc, device=v.device)                    # (B, H, n, Dv)
    lse = torch.full((b, h, n), -math.inf, dtype=acc, device=v.device)       # (B, H, n)
    lse4 = lse.unsqueeze(-1)
    fused = kernel == "sdpa" and _fused_cpu(q, v)
    for block in _blocks(patterns, b, h, n):
        views = [block.rows(x) for x in (q, k, v)]                              # (b, h, c, m, D) strided
        o_view, l_view = block.rows(out), block.rows(lse4)[..., 0]            # the same rows of out, lse
        shape, m = views[0].shape[:3], views[0].shape[3]
        qb, kb, vb = (x.reshape(-1, m, x.shape[-1]).to(acc) for x in views)   # (G, m, D), G = b * h * c
        for q0, q1, k0, k1, tile, piece_causal in _pieces(m, causal):
            qp, kp, vp = qb[:, q0:q1], kb[:, k0:k1], vb[:, k0:k1]             # (G, rows, D), (G, keys, D)
            if tile:
                qp, kp, vp = (x.reshape(-1, tile, x.shape[-1]) for x in (qp, kp, vp))
            if fused:  # one pass gives output and lse
                out_i, lse_i = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
                    qp.unsqueeze(0), kp.unsqueeze(0), vp.unsqueeze(0), 0.0, piece_causal, scale=scale)
                out_i, lse_i = out_i[0], lse_i[0]
            elif kernel == "sdpa":
                out_i = F.scaled_dot_product_attention(qp.unsqueeze(0), kp.unsqueeze(0), vp.unsqueeze(0),
                                                       is_causal=piece_causal, scale=scale)[0]
                lse_i = _block_softmax(qp, kp, None, scale, piece_causal)[1]
            else:
                out_i, lse_i = _block_softmax(qp, kp, vp, scale, piece_causal)
            out_i = out_i.reshape(*shape, q1 - q0, -1)                        # (b, h, c, rows, Dv)
            lse_i = lse_i.reshape(*shape, q1 - q0)                            # (b, h, c, rows)
            o_rows, l_rows = o_view[:, :, :, q0:q1], l_view[..., q0:q1]
            new = torch.logaddexp(l_rows, lse_i)  # finite: every kept row sees at least its own key
            o_rows.mul_(torch.exp(l_rows - new).unsqueeze(-1)).add_(out_i.mul_(torch.exp(lse_i - new).unsqueeze(-1)))
            l_rows.copy_(new)
    return out, lse


def _backward(dout: Tensor, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor,
              patterns: list[tuple[int, int]], causal: bool, kernel: str) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of the mixture for q, k, v, block by block (see :func:`_block_backward`)."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    acc = out.dtype
    dout = dout.to(acc)
    dq, dk, dv = (torch.zeros(x.shape, dtype=acc, device=x.device) for x in (q, k, v))
    lse4 = lse.unsqueeze(-1)
    fused = kernel == "sdpa" and _fused_cpu(q, v) and hasattr(
        torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu_backward")
    for block in _blocks(patterns, *q.shape[:3]):
        views = [block.rows(x) for x in (q, k, v, out, dout)]                   # (b, h, c, m, D) strided
        shape, m = views[0].shape[:3], views[0].shape[3]
        qb, kb, vb, ob, gb = (x.reshape(-1, m, x.shape[-1]).to(acc) for x in views)  # (G, m, D)
        lb = block.rows(lse4).reshape(-1, m, 1)                               # (G, m, 1)
        totals = [block.rows(x) for x in (dq, dk, dv)]                        # (b, h, c, m, D) views
        for q0, q1, k0, k1, tile, piece_causal in _pieces(m, causal):
            rows, keys = slice(q0, q1), slice(k0, k1)
            pieces = [x[:, rows] for x in (gb, qb)] + [x[:, keys] for x in (kb, vb)] + [x[:, rows] for x in (ob, lb)]
            if tile:
                pieces = [x.reshape(-1, tile, x.shape[-1]) for x in pieces]
            gp, qp, kp, vp, op, lp = pieces
            if fused:  # the flash backward with the mixture's out and lse is exactly _block_backward
                grads = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward(
                    *(x.unsqueeze(0).contiguous() for x in (gp, qp, kp, vp, op, lp[..., 0])), 0.0, piece_causal,
                    scale=scale)
                grads = [x[0] for x in grads]
            else:
                grads = _block_backward(qp, kp, vp, op, lp[..., 0], gp, scale, piece_causal)
            for total, part, span in zip(totals, grads, (rows, keys, keys)):
                total[:, :, :, span].add_(part.reshape(*shape, span.stop - span.start, -1))
    return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype)


class _DilatedFunction(torch.autograd.Function):
    """Autograd for :func:`dilated_attention`: saves q, k, v and the mixture's out and lse, nothing per pattern."""

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, patterns: list[tuple[int, int]], causal: bool,
                kernel: str) -> Tensor:
        out, lse = _forward(q, k, v, patterns, causal, kernel)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.config = (patterns, causal, kernel)
        return out.to(v.dtype)

    @staticmethod
    def backward(ctx, dout: Tensor):
        q, k, v, out, lse = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: these gradients will be differentiated again
            return (*_differentiable_grads(dout, q, k, v, *ctx.config[:2]), None, None, None)
        return (*_backward(dout, q, k, v, out, lse, *ctx.config), None, None, None)


def _differentiable_grads(dout: Tensor, q: Tensor, k: Tensor, v: Tensor, patterns: list[tuple[int, int]],
                          causal: bool) -> tuple[Tensor | None, ...]:
    """The gradients for q, k, v as a graph autograd can differentiate again (a gradient penalty, a Hessian).

    The fused backward (:func:`_backward`) gives numbers, not a graph: differentiating it again would
    silently drop every second-order term. Here autograd runs through the dense form of the same
    attention, softmax(q k^T / sqrt(d) + log multiplicity) v (module docstring), with rows no pattern
    selects set to 0: O(n^2) memory, refused beyond MAX_MASK_ELEMENTS scores.
    """
    b, h, n, d = q.shape
    if b * h * n * n > MAX_MASK_ELEMENTS:
        raise ValueError(f"q: a second derivative of dilated_attention (create_graph=True) builds the dense "
                         f"(batch, heads, n, n) = {(b, h, n, n)} scores, at most {MAX_MASK_ELEMENTS}; "
                         "use shorter sequences or first-order gradients")
    acc = torch.float64 if v.dtype == torch.float64 else torch.float32
    count = multiplicity(n, [w for w, _ in patterns], [r for _, r in patterns], h, causal).to(q.device)  # (H, n, n)
    empty = (count == 0).all(-1, keepdim=True)                                 # (H, n, 1): selected by no pattern
    scores = q.to(acc) @ k.to(acc).transpose(-1, -2) / math.sqrt(d) + count.to(acc).log()  # (B, H, n, n)
    probs = scores.masked_fill(empty, 0.0).softmax(-1).masked_fill(empty, 0.0)  # no -inf row: no NaN, even twice
    out = probs @ v.to(acc)                                                    # (B, H, n, Dv)
    wanted = [x for x in (q, k, v) if x.requires_grad]
    grads = iter(torch.autograd.grad(out, wanted, dout.to(acc), create_graph=True))
    return tuple(next(grads) if x.requires_grad else None for x in (q, k, v))


def dilated_attention(q: Tensor, k: Tensor, v: Tensor, segment_lengths: int | Sequence[int],
                      dilation_rates: int | Sequence[int], causal: bool = False, *, kernel: str = "sdpa") -> Tensor:
    """LongNet dilated attention (Eq. 5-10), exact, in O(n * sum_i w_i / r_i^2) time, differentiable.

    For each pattern (w, r) and head offset o (heads o, o + r, ... share it), the kept rows of a run
    of segments are a strided view, a dense block (c, m, D) with m = ceil((w - o) / r) and at most
    BLOCK_ROWS rows (the shorter last segment is a block of its own); each block's output and
    log-sum-exp lse_i are merged in place into the running mixture with weights exp(lse_i) (LongNet
    Eq. 10). Extra memory: the output and lse, and one block's copies. Causal: the kept positions
    of a segment are increasing, so "key <= query" inside a block is the global causal mask.

    ``kernel="sdpa"`` (default) runs PyTorch's fused flash-attention kernel, which on the CPU also
    returns the lse: one pass per block, about as fast per (query, key) pair as dense SDPA. Where
    PyTorch exposes no lse (CUDA) it calls ``scaled_dot_product_attention`` and recomputes the lse in
    chunks by :func:`_block_softmax`. ``kernel="softmax"`` computes output and lse in that chunked
    pass, plain PyTorch everywhere (1.4-1.7x slower per pair on the CPU in our runs). Both are exact
    at any score scale (max-shifted); their gradients are the softmax backward with the mixture's
    lse (:func:`_block_backward`), and no n x n matrix is ever built. Second derivatives (a backward
    with create_graph=True, then another backward) are exact too, through a dense O(n^2) form.
    Shapes: q, k (batch, heads, seq_len, head_dim); v (batch, heads, seq_len, v_dim); output like v.
    Scale 1 / sqrt(head_dim).
    """
    _check_qkv(q, k, v)
    patterns = _patterns(segment_lengths, dilation_rates)
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    if torch.is_grad_enabled() and any(x.requires_grad for x in (q, k, v)):
        return _DilatedFunction.apply(q, k, v, patterns, causal, kernel)
    return _forward(q, k, v, patterns, causal, kernel)[0].to(v.dtype)


def _spec(form: str, segment_lengths: int | Sequence[int], dilation_rates: int | Sequence[int], **extra: str) -> dict:
    """The attention a make_* function returns, as JSON data: lclib.train.save stores it, load rebuilds it."""
    patterns = _patterns(segment_lengths, dilation_rates)
    return {"kind": "dilated", "form": form, "segment_lengths": [w for w, _ in patterns],
            "dilation_rates": [r for _, r in patterns], **extra}


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
    attention.spec = _spec("gather", segment_lengths, dilation_rates, kernel=kernel)  # as data, for train.save
    return attention


def make_bias_attention(segment_lengths: int | Sequence[int], dilation_rates: int | Sequence[int]
                        ) -> Callable[[Tensor, Tensor, Tensor, bool], Tensor]:
    """The same attention as :func:`make_attention`, as one dense SDPA call with the bias log(multiplicity).

    The lse-weighted mixture of the patterns equals dense softmax in which a key reached by c patterns
    counts c times (-inf where none reaches it; module docstring), so this gives dilated_attention's
    output and gradients up to rounding. It builds an (heads, n, n) bias, cached per (n, heads, causal):
    cheaper than many small blocks at a few hundred tokens, hopeless at long ones.
    """
    _patterns(segment_lengths, dilation_rates)
    cache: dict[tuple[int, int, bool], Tensor] = {}

    def attention(q: Tensor, k: Tensor, v: Tensor, causal: bool = False) -> Tensor:
        _, h, n, _ = q.shape  # (B, nh, T, hs)
        if (n, h, causal) not in cache:
            count = multiplicity(n, segment_lengths, dilation_rates, h, causal)  # (nh, T, T)
            cache[(n, h, causal)] = count.double().log()  # log 0 = -inf: no pattern links the pair
        return F.scaled_dot_product_attention(q, k, v, attn_mask=cache[(n, h, causal)].to(q.device, q.dtype))

    attention.__doc__ = f"Dilated attention as a biased dense call, w={segment_lengths}, r={dilation_rates} (lclib.dilated)."
    attention.spec = _spec("bias", segment_lengths, dilation_rates)  # as data, for train.save
    return attention
