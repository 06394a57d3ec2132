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
returns what it actually passed through its all-gathers; :func:`launch` starts P local processes.
"""

from __future__ import annotations

import math
import os
import tempfile
import traceback
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, NamedTuple

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor


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


def _check_patterns(segment_lengths: int | Sequence[int], dilation_rates: int | Sequence[int]) -> list[tuple[int, int]]:
    ws = [segment_lengths] if isinstance(segment_lengths, int) else list(segment_lengths)
    rs = [dilation_rates] if isinstance(dilation_rates, int) else list(dilation_rates)
    if len(ws) != len(rs) or not ws:
        raise ValueError(f"segment_lengths and dilation_rates must be non-empty and of the same length, "
                         f"got {len(ws)} and {len(rs)}")
    for w, r in zip(ws, rs):
        if isinstance(w, bool) or not isinstance(w, int) or w < 1:
            raise ValueError(f"segment_lengths must be integers >= 1, got {w!r} in {ws}")
        if isinstance(r, bool) or not isinstance(r, int) or not 1 <= r <= w:
            raise ValueError(f"dilation_rates must be integers in 1..segment_len, got {r!r} for w={w}")
    return list(zip(ws, rs))


def _plan(seq_len: int, world_size: int, rank: int, patterns: list[tuple[int, int]]) -> list[_Span]:
    """Local or spanning, per pattern; the alignment LongNet assumes (w | L or L | w, and r | L when spanning)."""
    for name, value in (("seq_len", seq_len), ("world_size", world_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
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
                        dilation_rates: int | Sequence[int], num_heads: int, head_dim: int,
                        v_dim: int | None = None, batch: int = 1, element_size: int = 4,
                        rank: int = 0) -> Traffic:
    """What :func:`dilated_attention_distributed` moves for process ``rank``, counted, not run.

    A spanning pattern (w, r) all-gathers, among the g <= w / L processes of the segment, each one's
    sparsified keys and values (batch, heads, L / r, head_dim + v_dim): a process receives g - 1 of
    them and its own goes to g - 1 peers. Geometric schedule: (w / L - 1) L / r = w0 - L / r rows.
    """
    patterns = _check_patterns(segment_lengths, dilation_rates)
    for name, value in (("num_heads", num_heads), ("head_dim", head_dim), ("batch", batch),
                        ("element_size", element_size), ("v_dim", head_dim if v_dim is None else v_dim)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < max(world_size, 1):
        raise ValueError(f"rank must be an integer in 0..world_size-1, got {rank!r}")
    spans = _plan(seq_len, world_size, rank, patterns)
    row = batch * num_heads * (head_dim + (head_dim if v_dim is None else v_dim)) * element_size
    local_len = seq_len // world_size
    per = tuple(0 if s.local else (s.last - s.first - 1) * local_len // r * row for s, (_, r) in zip(spans, patterns))
    return Traffic(sum(per), sum(per), per)


def dense_communication_bytes(seq_len: int, world_size: int, num_heads: int, head_dim: int,
                              v_dim: int | None = None, batch: int = 1, element_size: int = 4) -> int:
    """Bytes a process receives in dense attention's sequence parallelism: every other process's k and v.

    Equals :func:`communication_bytes` of the single pattern w = n, r = 1 (dense attention is that pattern).
    """
    return communication_bytes(seq_len, world_size, seq_len, 1, num_heads, head_dim, v_dim, batch,
                               element_size).received


def shard(x: Tensor, rank: int, world_size: int) -> Tensor:
    """Process ``rank``'s contiguous share of the sequence: (batch, heads, n, dim) -> (batch, heads, n / P, dim)."""
    if not isinstance(x, Tensor) or x.dim() != 4:
        raise ValueError(f"x must be a 4-D tensor (batch, heads, seq_len, dim), got {getattr(x, 'shape', type(x))}")
    _plan(x.shape[2], world_size, 0, [])
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
        raise ValueError(f"rank must be an integer in 0..{world_size - 1}, got {rank!r}")
    local_len = x.shape[2] // world_size
    return x[:, :, rank * local_len:(rank + 1) * local_len]


def _attend(q: Tensor, k: Tensor, v: Tensor, q_pos: Tensor, k_pos: Tensor, scale: float,
            causal: bool) -> tuple[Tensor, Tensor]:
    """Softmax attention of dense blocks and its log-sum-exp: q (..., m, D), k (..., m_k, D) -> (..., m, Dv), (..., m).

    Causal compares global positions (q_pos (..., m), k_pos (..., m_k)): key <= query.
    """
    s = (q @ k.transpose(-1, -2)) * scale                                      # (..., m, m_k)
    if causal:
        s = s.masked_fill(k_pos.unsqueeze(-2) > q_pos.unsqueeze(-1), -math.inf)
    lse = torch.logsumexp(s, dim=-1)                                           # (..., m)
    out = torch.exp(s - lse.unsqueeze(-1)).nan_to_num(0.0) @ v                 # (..., m, Dv)
    return out, lse


def _mix(out: Tensor, lse: Tensor, out_i: Tensor, lse_i: Tensor) -> None:
    """In place: out = sum_i exp(lse_i - lse) O_i, lse = log sum_i exp(lse_i) (LongNet Eq. 10, as lclib.dilated)."""
    new = torch.logaddexp(lse, lse_i)
    shift = new.masked_fill(new == -math.inf, 0.0)  # both -inf: keep weights 0, not nan
    out.mul_(torch.exp(lse - shift).unsqueeze(-1)).add_(out_i * torch.exp(lse_i - shift).unsqueeze(-1))
    lse.copy_(new)


def _check_local(q: Tensor, k: Tensor, v: Tensor) -> None:
    for name, x in (("q", q), ("k", k), ("v", v)):
        if not isinstance(x, Tensor) or x.dim() != 4:
            raise ValueError(f"{name} must be a 4-D tensor (batch, heads, seq_len / P, head_dim), "
                             f"got {getattr(x, 'shape', type(x))}")
    if k.shape != q.shape or v.shape[:3] != q.shape[:3] or q.shape[2] < 1:
        raise ValueError(f"k must have the shape of q and v its (batch, heads, seq_len / P), got "
                         f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}")
    if not q.is_floating_point() or k.dtype != q.dtype or v.dtype != q.dtype:
        raise TypeError(f"q, k, v must share one floating-point dtype, got {q.dtype}, {k.dtype}, {v.dtype}")


def dilated_attention_distributed(q: Tensor, k: Tensor, v: Tensor, segment_lengths: int | Sequence[int],
                                  dilation_rates: int | Sequence[int], causal: bool = False) -> tuple[Tensor, Traffic]:
    """This process's share of LongNet dilated attention over the sequence split across the default group.

    Call it on every process with its L = n / P tokens (see :func:`shard`). Returns the output for
    those tokens, equal to the matching rows of ``lclib.dilated.dilated_attention`` on the whole
    sequence, and the :class:`Traffic` of the all-gathers (one per spanning pattern, of keys and
    values concatenated). A first all-gather of the five local sizes checks that every process
    holds the same shapes (a mismatch is a ValueError on all of them, not a hang); it is not counted.
    For causal attention the processes after this one in a segment send rows it masks out: the
    all-gather is LongNet's, and keeps every process's part the same size.
    Shapes: q, k (batch, heads, L, head_dim); v (batch, heads, L, v_dim); output like v.
    """
    _check_local(q, k, v)
    patterns = _check_patterns(segment_lengths, dilation_rates)
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError("dilated_attention_distributed needs torch.distributed initialised "
                           "(dist.init_process_group, or launch())")
    world, rank = dist.get_world_size(), dist.get_rank()
    b, h, local_len, d = q.shape
    shapes = [torch.zeros(5, dtype=torch.long) for _ in range(world)]
    dist.all_gather(shapes, torch.tensor([b, h, local_len, d, v.shape[-1]]).to(q.device))
    if any(not torch.equal(s.cpu(), shapes[0].cpu()) for s in shapes):
        raise ValueError(f"every process must hold q, k, v of the same shape (batch, heads, n / P, dims), "
                         f"got {[tuple(s.tolist()) for s in shapes]}")
    spans = _plan(local_len * world, world, rank, patterns)
    scale = 1.0 / math.sqrt(d)
    acc = torch.float64 if q.dtype == torch.float64 else torch.float32
    qa, ka, va = (x.to(acc) for x in (q, k, v))
    out = torch.zeros(b, h, local_len, v.shape[-1], dtype=acc, device=q.device)   # (B, H, L, Dv)
    lse = torch.full((b, h, local_len), -math.inf, dtype=acc, device=q.device)    # (B, H, L)
    per_pattern, sent = [], 0
    for (w, r), span in zip(patterns, spans):
        out_i, lse_i = torch.zeros_like(out), torch.full_like(lse, -math.inf)
        if span.local:  # segments of length w inside this process, heads grouped by offset o
            w = min(w, local_len * world)
            for o in range(min(r, h)):
                def rows(x: Tensor) -> Tensor:  # (B, H_o, L / w, m, ...) strided view, no copy
                    return x[:, o::r].unflatten(2, (local_len // w, w))[:, :, :, o::r]

                pos = torch.arange(o, w, r, device=q.device)                  # (m,) position in segment
                o_blk, l_blk = _attend(rows(qa), rows(ka), rows(va), pos, pos, scale, causal)
                rows(out_i).copy_(o_blk)
                rows(lse_i.unsqueeze(-1)).copy_(l_blk.unsqueeze(-1))
            per_pattern.append(0)
        else:  # Eq. 11-13: sparsify, all-gather within the segment's processes, attend
            m = local_len // r
            idx = (torch.arange(h, device=q.device) % r)[:, None] + r * torch.arange(m, device=q.device)  # (H, m)
            take = lambda x: x.gather(2, idx[None, :, :, None].expand(b, h, m, x.shape[-1]))  # noqa: E731
            kv = torch.cat([take(ka), take(va)], dim=-1).contiguous()          # (B, H, m, D + Dv)
            group_size = span.last - span.first
            group = _group(min(w, local_len * world) // local_len, rank, world)  # on every rank: collective
            if group_size > 1:
                parts = [torch.empty_like(kv) for _ in range(group_size)]
                dist.all_gather(parts, kv, group=group)
                parts[rank - span.first] = kv
            else:
                parts = [kv]
            keys = torch.cat(parts, dim=2)                                     # (B, H, g m, D + Dv)
            k_pos = torch.cat([(span.first + j) * local_len + idx for j in range(group_size)], dim=1)  # (H, g m)
            o_blk, l_blk = _attend(take(qa), keys[..., :d], keys[..., d:], rank * local_len + idx, k_pos,
                                   scale, causal)                              # (B, H, m, Dv), (B, H, m)
            out_i.scatter_(2, idx[None, :, :, None].expand_as(o_blk), o_blk)
            lse_i.scatter_(2, idx[None].expand(b, h, m), l_blk)
            per_pattern.append((group_size - 1) * kv.nelement() * kv.element_size())
            sent += (group_size - 1) * kv.nelement() * kv.element_size()
        _mix(out, lse, out_i, lse_i)
    return out.to(v.dtype), Traffic(sent, sum(per_pattern), tuple(per_pattern))


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


def _worker(rank: int, world_size: int, init_file: str, result_dir: str, backend: str,
            fn: Callable[..., Any], args: tuple) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(backend, init_method=f"file://{init_file}", rank=rank, world_size=world_size,
                            timeout=timedelta(seconds=120))
    try:
        result = ("ok", fn(*args))
    except Exception:  # noqa: BLE001 - carried to the parent, which raises it
        result = ("error", traceback.format_exc())
    dist.destroy_process_group()
    torch.save(result, os.path.join(result_dir, f"{rank}.pt"))


def launch(fn: Callable[..., Any], world_size: int, *args: Any, backend: str = "gloo", timeout: float = 300.0,
           start_method: str = "spawn") -> list:
    """Run fn(*args) on ``world_size`` fresh processes joined in one process group; return each rank's result.

    fn must be importable by name (a module-level function) and its result picklable; inside it,
    ``torch.distributed.get_rank()`` says which process it is. A failure on any rank is raised here
    as a RuntimeError with that rank's traceback. One thread per process.
    """
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"world_size must be an integer >= 1, got {world_size!r}")
    with tempfile.TemporaryDirectory() as tmp:
        init_file = os.path.join(tmp, "init")
        ctx = mp.get_context(start_method)
        procs = [ctx.Process(target=_worker, args=(rank, world_size, init_file, tmp, backend, fn, args))
                 for rank in range(world_size)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout)
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join()
        results = []
        for rank, p in enumerate(procs):
            path = os.path.join(tmp, f"{rank}.pt")
            if not os.path.exists(path):
                raise RuntimeError(f"rank {rank} of {world_size} ended without a result (exit code {p.exitcode})")
            status, value = torch.load(path, weights_only=False)
            if status == "error":
                raise RuntimeError(f"rank {rank} of {world_size} failed:\n{value}")
            results.append(value)
    return results
