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
mixed result); :func:`launch` starts P local processes and raises the failure of the rank that
failed first, not its peers' consequent connection errors.
"""

from __future__ import annotations

import math
import os
import pickle
import sys
import tempfile
import time
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


def _check_count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def _check_patterns(segment_lengths: int | Sequence[int], dilation_rates: int | Sequence[int]) -> list[tuple[int, int]]:
    lists = []
    for name, value in (("segment_lengths", segment_lengths), ("dilation_rates", dilation_rates)):
        if isinstance(value, int):
            value = [value]
        elif isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise TypeError(f"{name} must be an int or a sequence of ints, got {value!r}")
        lists.append(list(value))
    ws, rs = lists
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
    _check_count("seq_len", seq_len)
    _check_count("world_size", world_size)
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
                        ("element_size", element_size), ("v_dim", head_dim if v_dim is None else v_dim),
                        ("seq_len", seq_len), ("world_size", world_size)):
        _check_count(name, value)
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
        raise ValueError(f"rank must be an integer in 0..{world_size - 1} (world_size - 1), got {rank!r}")
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
    _check_count("seq_len", seq_len)
    return communication_bytes(seq_len, world_size, seq_len, 1, num_heads, head_dim, v_dim, batch,
                               element_size).received


def shard(x: Tensor, rank: int, world_size: int) -> Tensor:
    """Process ``rank``'s contiguous share of the sequence: (batch, heads, n, dim) -> (batch, heads, n / P, dim)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a tensor (batch, heads, seq_len, dim), got {type(x).__name__}")
    if x.dim() != 4 or x.shape[2] < 1:
        raise ValueError(f"x must be a 4-D tensor (batch, heads, seq_len, dim) with seq_len >= 1, got {tuple(x.shape)}")
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


def _mix(out: Tensor, lse: Tensor, out_i: Tensor, lse_i: Tensor) -> tuple[Tensor, Tensor]:
    """out = sum_i exp(lse_i - lse) O_i, lse = log sum_i exp(lse_i) (LongNet Eq. 10, as lclib.dilated).

    Out of place, so that autograd can differentiate through every pattern's share.
    """
    new = torch.logaddexp(lse, lse_i)
    shift = new.masked_fill(new == -math.inf, 0.0)  # both -inf: keep weights 0, not nan
    return out * torch.exp(lse - shift).unsqueeze(-1) + out_i * torch.exp(lse_i - shift).unsqueeze(-1), new


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


def _check_local(q: Tensor, k: Tensor, v: Tensor, causal: bool) -> None:
    for name, x in (("q", q), ("k", k), ("v", v)):
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a tensor (batch, heads, seq_len / P, head_dim), got {type(x).__name__}")
        if x.dim() != 4 or x.shape[2] < 1:
            raise ValueError(f"{name} must be a 4-D tensor (batch, heads, seq_len / P, head_dim) with "
                             f"seq_len / P >= 1, got {tuple(x.shape)}")
    if k.shape != q.shape or v.shape[:3] != q.shape[:3]:
        raise ValueError(f"k must have the shape of q and v its (batch, heads, seq_len / P), got "
                         f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}")
    if not q.is_floating_point() or k.dtype != q.dtype or v.dtype != q.dtype:
        raise TypeError(f"q, k, v must share one floating-point dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool, got {causal!r}")


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
    patterns, problem = None, None
    try:
        _check_local(q, k, v, causal)
        patterns = _check_patterns(segment_lengths, dilation_rates)
    except (TypeError, ValueError) as e:
        problem = e
    if not dist.is_available() or not dist.is_initialized():
        if problem is not None:
            raise problem
        raise RuntimeError("dilated_attention_distributed needs torch.distributed initialised "
                           "(dist.init_process_group, or launch())")
    _agree(q, k, v, patterns, causal, problem)
    world, rank = dist.get_world_size(), dist.get_rank()
    b, h, local_len, d = q.shape
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
            keys = _GatherRows.apply(kv, group, group_size, rank - span.first) if group_size > 1 else kv
            k_pos = torch.cat([(span.first + j) * local_len + idx for j in range(group_size)], dim=1)  # (H, g m)
            o_blk, l_blk = _attend(take(qa), keys[..., :d], keys[..., d:], rank * local_len + idx, k_pos,
                                   scale, causal)                              # (B, H, m, Dv), (B, H, m)
            out_i = out_i.scatter(2, idx[None, :, :, None].expand_as(o_blk), o_blk)
            lse_i = lse_i.scatter(2, idx[None].expand(b, h, m), l_blk)
            per_pattern.append((group_size - 1) * kv.nelement() * kv.element_size())
            sent += (group_size - 1) * kv.nelement() * kv.element_size()
        out, lse = _mix(out, lse, out_i, lse_i)
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


MAX_PROCESSES = 64  # launch starts local processes: more is a typo, not an experiment
GRACE_S = 2.0  # once a rank has failed, how long its peers get to finish or fail before they are stopped


class _RemoteTraceback(Exception):
    """A rank's traceback, chained as the cause of the exception launch raises (as concurrent.futures does)."""

    def __str__(self) -> str:
        return f"\n\n{self.args[0]}"


def _failure(exc: BaseException) -> dict[str, Any]:
    """What the parent needs of a rank's exception; call inside the except block (it reads the traceback)."""
    try:
        pickled = pickle.dumps(exc)
        pickle.loads(pickled)
    except Exception:  # noqa: BLE001 - an exception that does not round-trip goes by type name and message
        pickled = None
    return {"status": "error", "time": time.time(), "type": type(exc).__name__, "message": str(exc),
            "traceback": traceback.format_exc(), "exception": pickled}


def _save(result_dir: str, rank: int, record: dict[str, Any]) -> None:
    path = os.path.join(result_dir, f"{rank}.pt")
    torch.save(record, path + ".tmp")
    os.replace(path + ".tmp", path)  # the parent never reads half a file


def _worker(rank: int, world_size: int, init_file: str, result_dir: str, backend: str, timeout: float,
            fn: Callable[..., Any], args: tuple) -> None:
    torch.set_num_threads(1)
    try:
        dist.init_process_group(backend, init_method=f"file://{init_file}", rank=rank, world_size=world_size,
                                timeout=timedelta(seconds=timeout))
        record = {"status": "ok", "value": fn(*args)}
    except BaseException as e:  # noqa: BLE001 - carried to the parent, stamped with its time
        record = _failure(e)
    try:  # before destroy_process_group: a failure is on disk before its peers see the connections close
        _save(result_dir, rank, record)
    except Exception as e:  # noqa: BLE001
        _save(result_dir, rank, _failure(TypeError(f"fn's result must be picklable to return to launch: {e}")))
    if dist.is_initialized():
        dist.destroy_process_group()


def _check_launch(fn: Any, world_size: Any, backend: Any, timeout: Any, start_method: Any) -> None:
    """Everything launch can check before a process starts."""
    if not callable(fn):
        raise TypeError(f"fn must be a callable (a module-level function), got {type(fn).__name__}")
    if isinstance(world_size, bool) or not isinstance(world_size, int) or not 1 <= world_size <= MAX_PROCESSES:
        raise ValueError(f"world_size must be an integer in 1..{MAX_PROCESSES} (local processes), got {world_size!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds, got {timeout!r}")
    if not 0 < timeout < math.inf:
        raise ValueError(f"timeout must be a finite number of seconds > 0, got {timeout!r}")
    backends = [name for name, ok in (("gloo", dist.is_gloo_available()), ("nccl", dist.is_nccl_available())) if ok]
    if not isinstance(backend, str) or backend not in backends:
        raise ValueError(f"backend must be one of {backends} (those available here), got {backend!r}")
    if not isinstance(start_method, str) or start_method not in mp.get_all_start_methods():
        raise ValueError(f"start_method must be one of {mp.get_all_start_methods()}, got {start_method!r}")
    if start_method != "fork":  # a fresh interpreter imports fn by module and name
        if getattr(fn, "__module__", None) == "__main__" and not hasattr(sys.modules["__main__"], "__file__"):
            raise TypeError(f"fn must be importable by a fresh process ({start_method}), but "
                            f"{getattr(fn, '__qualname__', fn)!r} lives in an interactive session: move it into "
                            f"a module, or pass start_method='fork'")
        try:
            pickle.dumps(fn)
        except Exception as e:  # noqa: BLE001
            raise TypeError(f"fn must be picklable by name for start_method={start_method!r} (a module-level "
                            f"function, not a lambda or a nested one), got {fn!r}: {e}") from None


def _wait(procs: list[Any], result_dir: str, timeout: float) -> tuple[dict[int, dict[str, Any]], dict[int, int]]:
    """Poll until every rank is done, GRACE_S after the first failure, or the timeout.

    Returns the records read and the exit codes of ranks that ended without one (crashed).
    """
    deadline, failed_at, records = time.monotonic() + timeout, None, {}
    while True:
        running = [rank for rank, p in enumerate(procs) if p.is_alive()]  # before the files: no race
        for rank in range(len(procs)):
            path = os.path.join(result_dir, f"{rank}.pt")
            if rank not in records and os.path.exists(path):
                records[rank] = torch.load(path, weights_only=False)
        crashed = {rank: procs[rank].exitcode for rank in range(len(procs))
                   if rank not in running and rank not in records}
        now = time.monotonic()
        if failed_at is None and (crashed or any(r["status"] == "error" for r in records.values())):
            failed_at = now
        if not running or now >= deadline or (failed_at is not None and now - failed_at >= GRACE_S):
            return records, crashed
        time.sleep(0.01)


def _first_failure(records: dict[int, dict[str, Any]], crashed: dict[int, int],
                   world_size: int) -> BaseException | None:
    """The root cause: a rank that died without a word, else the earliest exception (its peers' errors,
    such as a closed connection, come after it). Its own type and message, prefixed with its rank."""
    if crashed:
        rank = min(crashed)
        return RuntimeError(f"rank {rank} of {world_size} failed first: it exited with code {crashed[rank]} "
                            f"without a result (killed, out of memory, or fn could not be imported there)")
    errors = sorted((r["time"], rank) for rank, r in records.items() if r["status"] == "error")
    if not errors:
        return None
    rank = errors[0][1]
    record, head = records[rank], f"rank {rank} of {world_size} failed first"
    exc = None
    if record["exception"] is not None:
        try:
            exc = pickle.loads(record["exception"])
        except Exception:  # noqa: BLE001
            exc = None
    if isinstance(exc, Exception) and len(exc.args) == 1 and isinstance(exc.args[0], str):
        exc.args = (f"{head}: {exc.args[0]}",)
        if head not in str(exc):
            exc = None
    else:
        exc = None
    exc = exc or RuntimeError(f"{head} with {record['type']}: {record['message']}")
    exc.__cause__ = _RemoteTraceback(record["traceback"])
    return exc


def launch(fn: Callable[..., Any], world_size: int, *args: Any, backend: str = "gloo", timeout: float = 300.0,
           start_method: str = "spawn") -> list:
    """Run fn(*args) on ``world_size`` fresh processes joined in one process group; return each rank's result.

    fn must be importable by name (a module-level function) and its result picklable; inside it,
    ``torch.distributed.get_rank()`` says which process it is. One thread per process; at most
    MAX_PROCESSES processes, for at most ``timeout`` seconds (then TimeoutError). Arguments are
    checked before any process starts. When ranks fail, the one that failed first is raised here
    with its own exception type and message, prefixed "rank r of P failed first", and its traceback
    as the cause: not the peers' consequent errors (a closed connection). The others are stopped
    GRACE_S seconds after the first failure.
    """
    _check_launch(fn, world_size, backend, timeout, start_method)
    with tempfile.TemporaryDirectory() as tmp:
        ctx, procs = mp.get_context(start_method), []
        try:
            for rank in range(world_size):
                procs.append(ctx.Process(target=_worker, args=(rank, world_size, os.path.join(tmp, "init"), tmp,
                                                               backend, timeout, fn, args)))
                try:
                    procs[-1].start()  # spawn and forkserver pickle fn and args here
                except (pickle.PicklingError, AttributeError, TypeError) as e:
                    procs.pop()
                    raise TypeError(f"args must be picklable for start_method={start_method!r}: {e}") from None
            records, crashed = _wait(procs, tmp, timeout)
        finally:
            for p in procs:
                if p.is_alive():
                    p.terminate()
            for p in procs:
                p.join()
    failure = _first_failure(records, crashed, world_size)
    if failure is not None:
        raise failure
    if len(records) < world_size:
        late = [rank for rank in range(world_size) if rank not in records]
        raise TimeoutError(f"launch: ranks {late} of {world_size} were still running after timeout={timeout} s "
                           f"and were stopped")
    return [records[rank]["value"] for rank in range(world_size)]
