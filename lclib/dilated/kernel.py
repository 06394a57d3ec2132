"""The block kernel of dilated attention and its autograd: exact, O(n * sum_i w_i / r_i^2), differentiable.

Each pattern's kept rows of a run of segments are a strided view of q, k, v, a dense block; a fused
attention kernel runs on it and its output is merged in place into the running mixture with its
log-sum-exp weight (LongNet Eq. 10, as :func:`lclib.dilated.reference.mix` does out of place). The
backward is the softmax backward with the mixture's lse, block by block (FlashAttention-2, Alg. 2); a
second derivative goes through the dense form softmax(q k^T / sqrt(d) + log multiplicity) v.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import validate
from .patterns import MAX_MASK_ELEMENTS, check_patterns, multiplicity
from .reference import check_qkv

KERNELS = ("sdpa", "softmax")
BLOCK_ROWS = 1 << 10  # query rows per kernel call: bounds the copies and temporaries (256 KB per tensor at D = 64)
CAUSAL_TILE = 256  # causal blocks longer than this are cut into diagonal tiles and the rectangles below them
LSE_CHUNK = 1 << 18  # scores per chunk of the plain-PyTorch softmax and its backward (1 MB in float32: near cache)


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
    attention, softmax(q k^T / sqrt(d) + log multiplicity) v (lclib.dilated's docstring), with rows no pattern
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
    check_qkv(q, k, v)
    patterns = check_patterns(segment_lengths, dilation_rates)
    validate.one_of("kernel", kernel, KERNELS)
    if torch.is_grad_enabled() and any(x.requires_grad for x in (q, k, v)):
        return _DilatedFunction.apply(q, k, v, patterns, causal, kernel)
    return _forward(q, k, v, patterns, causal, kernel)[0].to(v.dtype)

