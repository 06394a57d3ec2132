"""LongNet's distributed dilated attention (Ding et al. 2023, Sec. 3.1-3.2, Fig. 4, Eq. 11-13).

The sequence of length n is split evenly over the P processes of the default ``torch.distributed``
group: process p holds the L = n / P tokens [p L, (p + 1) L) of q, k and v. For each pattern (w, r)
with effective segment length min(w, n):

* w <= L (w divides L): every segment lies inside one process, which computes it alone.
* w > L (L divides w, r divides L): a segment spans w / L processes. Each sparsifies its local keys
  and values by the dilation and the head offset (L / r rows per head, Eq. 11), all-gathers them
  within the segment's processes (Eq. 12), and attends with its local sparsified queries to the
  gathered ones (Eq. 13).

Any other alignment is a ValueError. The patterns are then mixed by their softmax denominators as
:func:`lclib.dilated.dilated_attention` does, so the outputs of all processes, concatenated, equal
it on the whole sequence. A segment's all-gather holds w / r rows per head, so a process receives
w / r - L / r of them: with LongNet's geometric schedule (w = w0 2^i, r = 2^i) fewer than w0,
whatever n, against the (P - 1) L rows of dense attention's sequence parallelism. The schedule
grown to n adds one spanning pattern per doubling of n, so the total grows as w0 log2 P; it
reaches n = w0 L, where the largest r = n / w0 equals L (beyond, a process would hold under one
row per head and equal-sized all-gathers could not keep the cost constant).
:func:`communication_bytes` counts this without running anything; :func:`dilated_attention_distributed`
returns what it actually passed through its all-gathers, after checking that every process
agrees on its arguments (a disagreement is a ValueError on all of them, not a hang or a silently
mixed result). It checks, attends and mixes with the single-process pieces (``patterns.check_patterns``,
``reference.check_qkv``, ``reference.masked_softmax``, ``reference.mix``); :func:`lclib.dilated.processes.launch`
starts P local processes to run it.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.distributed as dist
from torch import Tensor

from .. import validate
from .patterns import check_patterns
from .reference import check_qkv, masked_softmax, mix


class Traffic(NamedTuple):
    """Bytes one process moves through the all-gathers of one call (the tensors' own sizes)."""

    sent: int                     # its sparsified rows times the number of peers that receive them
    received: int                 # the other processes' sparsified rows it receives
    per_pattern: tuple[int, ...]  # received bytes per pattern, in the given order (0: local)


class _Span(NamedTuple):
    """Where process ``rank`` stands for one pattern: alone, or in a segment of ranks [first, last)."""

    local: bool
    first: int
    last: int


def _plan(seq_len: int, world_size: int, rank: int, patterns: list[tuple[int, int]]) -> list[_Span]:
    """Local or spanning, per pattern; the alignment LongNet assumes (w | L or L | w, and r | L when spanning)."""
    validate.integer("seq_len", seq_len, low=1)
    validate.integer("world_size", world_size, low=1)
    if seq_len % world_size:
        raise ValueError(f"seq_len must be divisible by the number of processes, got seq_len={seq_len} "
                         f"and world_size={world_size}")
    local_len = seq_len // world_size
    spans = []
    for w, r in patterns:
        w = min(w, seq_len)
        if local_len % w == 0:
            spans.append(_Span(True, rank, rank + 1))
        elif w % local_len == 0:
            if local_len % r:
                raise ValueError(f"dilation_rates: r={r} must divide the {local_len} tokens per process when "
                                 f"its segment (w={w}) spans processes, so that each sends L / r rows per head")
            per_segment = w // local_len
            first = rank // per_segment * per_segment
            spans.append(_Span(False, first, min(first + per_segment, world_size)))
        else:
            raise ValueError(f"segment_lengths: w={w} must divide or be a multiple of the {local_len} tokens "
                             f"per process (seq_len={seq_len}, world_size={world_size})")
    return spans


def communication_bytes(seq_len: int, world_size: int, segment_lengths: int | Sequence[int],
                        dilation_rates: int | Sequence[int], n_head: int, head_dim: int,
                        v_dim: int | None = None, batch: int = 1, element_size: int = 4,
                        rank: int = 0) -> Traffic:
    """What :func:`dilated_attention_distributed` moves for process ``rank``, counted, not run.

    A spanning pattern (w, r) all-gathers, among the g <= w / L processes of the segment, each one's
    sparsified keys and values (batch, n_head, L / r, head_dim + v_dim): a process receives g - 1 of
    them and its own goes to g - 1 peers. Geometric schedule: (w / L - 1) L / r = w0 - L / r rows.
    """
    patterns = check_patterns(segment_lengths, dilation_rates)
    v_dim = head_dim if v_dim is None else v_dim
    for name, value in (("n_head", n_head), ("head_dim", head_dim), ("batch", batch),
                        ("element_size", element_size), ("v_dim", v_dim)):
        validate.integer(name, value, low=1)
    validate.integer("world_size", world_size, low=1)
    validate.integer("rank", rank, low=0, high=world_size - 1)
    spans = _plan(seq_len, world_size, rank, patterns)
    row = batch * n_head * (head_dim + v_dim) * element_size
    local_len = seq_len // world_size
    per = tuple(0 if s.local else (s.last - s.first - 1) * local_len // r * row for s, (_, r) in zip(spans, patterns))
    return Traffic(sum(per), sum(per), per)


def dense_communication_bytes(seq_len: int, world_size: int, n_head: int, head_dim: int,
                              v_dim: int | None = None, batch: int = 1, element_size: int = 4) -> int:
    """Bytes a process receives in dense attention's sequence parallelism: every other process's k and v.

    Equals :func:`communication_bytes` of the single pattern w = n, r = 1 (dense attention is that pattern).
    """
    validate.integer("seq_len", seq_len, low=1)
    return communication_bytes(seq_len, world_size, seq_len, 1, n_head, head_dim, v_dim, batch,
                               element_size).received


def shard(x: Tensor, rank: int, world_size: int) -> Tensor:
    """Process ``rank``'s contiguous share of the sequence: (batch, heads, n, dim) -> (batch, heads, n / P, dim)."""
    validate.tensor("x", x)
    if x.dim() != 4 or x.shape[2] < 1:
        raise ValueError(f"x must be a 4-D tensor (batch, heads, seq_len, dim) with seq_len >= 1, got {tuple(x.shape)}")
    _plan(x.shape[2], world_size, 0, [])
    validate.integer("rank", rank, low=0, high=world_size - 1)
    local_len = x.shape[2] // world_size
    return x[:, :, rank * local_len:(rank + 1) * local_len]


def _attend(q: Tensor, k: Tensor, v: Tensor, q_pos: Tensor, k_pos: Tensor, scale: float,
            causal: bool) -> tuple[Tensor, Tensor]:
    """Softmax attention of dense blocks and its log-sum-exp: q (..., m, D), k (..., m_k, D) -> (..., m, Dv), (..., m).

    Causal compares global positions (q_pos (..., m), k_pos (..., m_k)): key <= query.
    """
    keep = k_pos.unsqueeze(-2) <= q_pos.unsqueeze(-1) if causal else None      # (..., m, m_k)
    probs, lse = masked_softmax((q @ k.transpose(-1, -2)) * scale, keep)      # (..., m, m_k), (..., m)
    return probs @ v, lse


class _GatherRows(torch.autograd.Function):
    """All-gather along the rows (dim 2) within a group; backward sums every peer's gradient of this
    process's rows (its keys and values are attended to by the peers' queries too)."""

    @staticmethod
    def forward(ctx: Any, kv: Tensor, group: Any, size: int, index: int) -> Tensor:
        ctx.group, ctx.index, ctx.rows = group, index, kv.shape[2]
        parts = [torch.empty_like(kv) for _ in range(size)]
        dist.all_gather(parts, kv, group=group)
        parts[index] = kv
        return torch.cat(parts, dim=2)                                          # (B, H, g m, D + Dv)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None, None]:
        grad = grad.contiguous()
        dist.all_reduce(grad, group=ctx.group)  # the sum over the group's processes of d loss_p / d keys
        return grad[:, :, ctx.index * ctx.rows:(ctx.index + 1) * ctx.rows], None, None, None


def _checked(q: Tensor, k: Tensor, v: Tensor, segment_lengths: int | Sequence[int],
             dilation_rates: int | Sequence[int], causal: bool) -> list[tuple[int, int]]:
    """The patterns, once this process's input is valid and every process agrees (else an error on every one)."""
    patterns, problem = None, None
    try:
        check_qkv(q, k, v, length_name="seq_len / P")
        if not isinstance(causal, bool):
            raise TypeError(f"causal must be a bool, got {causal!r}")
        patterns = check_patterns(segment_lengths, dilation_rates)
    except (TypeError, ValueError) as e:
        problem = e
    if not dist.is_available() or not dist.is_initialized():
        if problem is not None:
            raise problem
        raise RuntimeError("dilated_attention_distributed needs torch.distributed initialised "
                           "(dist.init_process_group, or lclib.dilated.processes.launch())")
    _agree(q, k, v, patterns, causal, problem)
    return patterns


def _agree(q: Tensor, k: Tensor, v: Tensor, patterns: list[tuple[int, int]] | None, causal: object,
           problem: Exception | None) -> None:
    """Refuse, on every process at once, unless all hold valid input and agree on every argument that
    must match: a process that went on alone would wait in a collective or mix other patterns."""
    mine: dict[str, Any] = {"local input": f"{type(problem).__name__}: {problem}" if problem else "valid"}
    if problem is None:
        mine.update({"q.shape (batch, heads, seq_len / P, head_dim)": tuple(q.shape), "v_dim": v.shape[-1],
                     "dtype": str(q.dtype), "causal": causal, "segment_lengths, dilation_rates": patterns,
                     "requires_grad (the backward pass runs collectives)":
                         torch.is_grad_enabled() and any(x.requires_grad for x in (q, k, v))})
    every: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(every, mine)
    if problem is not None:
        raise problem
    for rank, theirs in enumerate(every):
        if theirs["local input"] != "valid":
            raise ValueError(f"rank {rank} of {len(every)} refused its input, so every process stops: "
                             f"{theirs['local input']}")
    for name, value in mine.items():
        values = [theirs[name] for theirs in every]
        if any(x != value for x in values):
            ranks = ", ".join(f"rank {r}: {x}" for r, x in enumerate(values))
            raise ValueError(f"{name} must be the same on every process, got {ranks}")


def _local_pattern(q: Tensor, k: Tensor, v: Tensor, w: int, r: int, scale: float,
                   causal: bool) -> tuple[Tensor, Tensor]:
    """One pattern whose segments of length w lie inside this process: (out_i, lse_i), heads grouped by offset o.

    Shapes: q, k (B, H, L, D); v (B, H, L, Dv) -> out_i (B, H, L, Dv), lse_i (B, H, L) (-inf: not selected).
    """
    b, h, local_len, _ = q.shape
    out_i = torch.zeros(v.shape, dtype=v.dtype, device=v.device)                    # (B, H, L, Dv)
    lse_i = torch.full((b, h, local_len), -math.inf, dtype=v.dtype, device=v.device)  # (B, H, L)
    for o in range(min(r, h)):
        def rows(x: Tensor) -> Tensor:  # (B, H_o, L / w, m, ...) strided view, no copy
            return x[:, o::r].unflatten(2, (local_len // w, w))[:, :, :, o::r]

        pos = torch.arange(o, w, r, device=q.device)                          # (m,) position in segment
        o_blk, l_blk = _attend(rows(q), rows(k), rows(v), pos, pos, scale, causal)
        rows(out_i).copy_(o_blk)
        rows(lse_i.unsqueeze(-1)).copy_(l_blk.unsqueeze(-1))
    return out_i, lse_i


def _spanning_pattern(q: Tensor, k: Tensor, v: Tensor, w: int, r: int, span: _Span, scale: float,
                      causal: bool) -> tuple[Tensor, Tensor, int]:
    """One pattern whose segments span processes (Eq. 11-13): sparsify, all-gather within the segment's
    processes, attend. (out_i, lse_i, bytes received), shaped as in :func:`_local_pattern`."""
    world, rank = dist.get_world_size(), dist.get_rank()
    b, h, local_len, d = q.shape
    m = local_len // r
    idx = (torch.arange(h, device=q.device) % r)[:, None] + r * torch.arange(m, device=q.device)  # (H, m)
    take = lambda x: x.gather(2, idx[None, :, :, None].expand(b, h, m, x.shape[-1]))  # noqa: E731
    kv = torch.cat([take(k), take(v)], dim=-1).contiguous()                    # (B, H, m, D + Dv)
    group_size = span.last - span.first
    group = _group(min(w, local_len * world) // local_len, rank, world)       # on every rank: collective
    keys = _GatherRows.apply(kv, group, group_size, rank - span.first) if group_size > 1 else kv
    k_pos = torch.cat([(span.first + j) * local_len + idx for j in range(group_size)], dim=1)  # (H, g m)
    o_blk, l_blk = _attend(take(q), keys[..., :d], keys[..., d:], rank * local_len + idx, k_pos,
                           scale, causal)                                      # (B, H, m, Dv), (B, H, m)
    out_i = torch.zeros(v.shape, dtype=v.dtype, device=v.device)
    lse_i = torch.full((b, h, local_len), -math.inf, dtype=v.dtype, device=v.device)
    out_i = out_i.scatter(2, idx[None, :, :, None].expand_as(o_blk), o_blk)
    lse_i = lse_i.scatter(2, idx[None].expand(b, h, m), l_blk)
    return out_i, lse_i, (group_size - 1) * kv.nelement() * kv.element_size()


def dilated_attention_distributed(q: Tensor, k: Tensor, v: Tensor, segment_lengths: int | Sequence[int],
                                  dilation_rates: int | Sequence[int], causal: bool = False) -> tuple[Tensor, Traffic]:
    """This process's share of LongNet dilated attention over the sequence split across the default group.

    Call it on every process with its L = n / P tokens (see :func:`shard`). Returns the output for
    those tokens, equal to the matching rows of ``lclib.dilated.dilated_attention`` on the whole
    sequence, and the :class:`Traffic` of the all-gathers (one per spanning pattern, of keys and
    values concatenated). A first all-gather (not counted) compares the processes' arguments:
    shapes, dtype, causal, the patterns, whether gradients are needed. A process with bad input or a
    disagreement makes every process raise a ValueError naming the argument and each rank's value,
    instead of a hang or a silently mixed result. Differentiable: the backward of each all-gather
    sums the peers' gradients of this process's keys and values (call backward on every process).
    For causal attention the processes after this one in a segment send rows it masks out: the
    all-gather is LongNet's, and keeps every process's part the same size.
    Shapes: q, k (batch, heads, L, head_dim); v (batch, heads, L, v_dim); output like v.
    """
    patterns = _checked(q, k, v, segment_lengths, dilation_rates, causal)
    world, rank = dist.get_world_size(), dist.get_rank()
    b, h, local_len, d = q.shape
    spans = _plan(local_len * world, world, rank, patterns)
    scale = 1.0 / math.sqrt(d)
    acc = torch.float64 if q.dtype == torch.float64 else torch.float32
    qa, ka, va = (x.to(acc) for x in (q, k, v))
    out = torch.zeros(b, h, local_len, v.shape[-1], dtype=acc, device=q.device)   # (B, H, L, Dv)
    lse = torch.full((b, h, local_len), -math.inf, dtype=acc, device=q.device)    # (B, H, L)
    per_pattern = []
    for (w, r), span in zip(patterns, spans):
        if span.local:
            out_i, lse_i = _local_pattern(qa, ka, va, min(w, local_len * world), r, scale, causal)
            received = 0
        else:
            out_i, lse_i, received = _spanning_pattern(qa, ka, va, w, r, span, scale, causal)
        per_pattern.append(received)
        out, lse = mix(out, lse, out_i, lse_i)
    return out.to(v.dtype), Traffic(sum(per_pattern), sum(per_pattern), tuple(per_pattern))


_GROUPS: dict[tuple[Any, int], list[Any]] = {}


def _group(per_segment: int, rank: int, world: int) -> Any:
    """The process group of ``rank``'s segment when segments span ``per_segment`` ranks.

    new_group is collective over all ranks, so every rank calls this for every spanning pattern and
    creates the whole partition [0, s), [s, 2s), ... once (cached per default group and s).
    """
    if per_segment >= world:
        return None  # one segment holds every rank: the default group
    key = (dist.group.WORLD, per_segment)
    for stale in [k for k in _GROUPS if k[0] is not dist.group.WORLD]:  # from a destroyed default group
        del _GROUPS[stale]
    if key not in _GROUPS:
        _GROUPS[key] = [dist.new_group(list(range(start, min(start + per_segment, world))))
                        for start in range(0, world, per_segment)]
    return _GROUPS[key][rank // per_segment]
