"""Bytes each process communicates in LongNet's distributed dilated attention, against dense attention.

Setting (LongNet Sec. 3.2): L tokens per process, n = P L growing with the number of processes P,
and the geometric schedule grown to n: w = w0 2^i, r = 2^i. A pattern with w > L all-gathers the
sparsified keys and values of its segment: (w / L - 1) L / r = w0 - L / r rows per head received,
whatever n. Dense attention's sequence parallelism receives every other process's keys and
values, (P - 1) L rows per head.

Part 1 runs the algorithm on P gloo processes at small n (random q, k, v), checks that the
concatenated output equals single-process lclib.dilated.dilated_attention, and that the bytes the
all-gathers actually moved equal lclib.dilated.distributed.communication_bytes (for dense
attention too, run as the single pattern w = n, r = 1). Part 2 counts with that formula up to
n = w0 L, the longest sequence for which every dilation r <= n / w0 still divides L (with the
defaults, 2^30 tokens on 16384 processes), and prints the ratios.
Usage: python benchmarks/dilated_distributed.py [--local-len 65536] [--w0 16384] [--n-head 16]
       [--head-dim 64] [--element-size 2] [--run-local-len 256] [--run-w0 64] [--run-worlds 2 4 8]
       [--start-method fork]
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import torch
import torch.distributed as dist

from lclib import dilated
from lclib.dilated import distributed as dd
from lclib.dilated.processes import launch


def schedule(n: int, w0: int) -> tuple[list[int], list[int]]:
    """LongNet's geometric schedule up to n: segment lengths w0 * 2^i and dilations 2^i."""
    count = max(1, int(math.log2(max(n // w0, 1))) + 1)
    return [w0 * 2**i for i in range(count)], [2**i for i in range(count)]


def inputs(n: int, n_head: int, head_dim: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(3, 1, n_head, n, head_dim, generator=gen).unbind(0)


def run_rank(n: int, n_head: int, head_dim: int, w0: int) -> tuple:
    """On every process: its share of dilated (geometric, causal) and dense attention, with the traffic."""
    rank, world = dist.get_rank(), dist.get_world_size()
    q, k, v = (dd.shard(x, rank, world) for x in inputs(n, n_head, head_dim))
    start = time.process_time()
    out, traffic = dd.dilated_attention_distributed(q, k, v, *schedule(n, w0), causal=True)
    seconds = time.process_time() - start
    _, dense = dd.dilated_attention_distributed(q, k, v, [n], [1], causal=True)
    return out, traffic, dense, seconds


def measured(args: argparse.Namespace) -> None:
    print(f"Part 1: run on P gloo processes ({args.start_method}), L = {args.run_local_len} tokens per process, "
          f"w0 = {args.run_w0}, {args.n_head} heads, head_dim {args.head_dim}, float32, causal")
    print(f"{'P':>4} {'n':>6} {'max |diff|':>11} {'dilated B/proc':>15} {'= formula':>10} "
          f"{'dense B/proc':>13} {'= formula':>10} {'dense/dilated':>14} {'CPU s/proc':>11}")
    for world in args.run_worlds:
        n = world * args.run_local_len
        ranks = launch(run_rank, world, n, args.n_head, args.head_dim, args.run_w0, start_method=args.start_method)
        q, k, v = inputs(n, args.n_head, args.head_dim)
        want = dilated.dilated_attention(q, k, v, *schedule(n, args.run_w0), causal=True)
        diff = float((torch.cat([r[0] for r in ranks], dim=2) - want).abs().max())
        formula = [dd.communication_bytes(n, world, *schedule(n, args.run_w0), args.n_head, args.head_dim, rank=i)
                   for i in range(world)]
        dense_formula = dd.dense_communication_bytes(n, world, args.n_head, args.head_dim)
        ok = all(r[1] == f for r, f in zip(ranks, formula))
        dense_ok = all(r[2].received == dense_formula for r in ranks)
        got = max(r[1].received for r in ranks)
        dense = max(r[2].received for r in ranks)
        print(f"{world:>4} {n:>6} {diff:>11.1e} {got:>15,} {str(ok):>10} {dense:>13,} {str(dense_ok):>10} "
              f"{dense / got:>14.2f} {max(r[3] for r in ranks):>11.3f}")
        if diff > 1e-5 or not ok or not dense_ok:
            raise SystemExit("distributed output or traffic disagrees with the single-process function / the formula")


def counted(args: argparse.Namespace) -> None:
    local_len, w0 = args.local_len, args.w0
    row = args.n_head * 2 * args.head_dim * args.element_size  # one key + value row, all heads
    print(f"\nPart 2: counted, L = {local_len} tokens per process, w0 = {w0}, {args.n_head} heads, head_dim "
          f"{args.head_dim}, {args.element_size}-byte elements (one key+value row of all heads: {row} B)")
    print(f"{'n':>13} {'P':>6} {'spanning':>8} {'largest all-gather':>19} {'dilated B/proc':>15} "
          f"{'dense B/proc':>16} {'dense/dilated':>14}")
    n, previous = 2 * local_len, None
    while n <= w0 * local_len:
        world = n // local_len
        ws, rs = schedule(n, w0)
        traffic = max((dd.communication_bytes(n, world, ws, rs, args.n_head, args.head_dim,
                                              element_size=args.element_size, rank=rank)
                       for rank in (0, world - 1)), key=lambda t: t.received)
        dense = dd.dense_communication_bytes(n, world, args.n_head, args.head_dim, element_size=args.element_size)
        spanning = sum(w > local_len for w in ws)
        print(f"{n:>13,} {world:>6} {spanning:>8} {max(traffic.per_pattern):>19,} {traffic.received:>15,} "
              f"{dense:>16,} {dense / max(traffic.received, 1):>14.1f}")
        if previous is not None and traffic.per_pattern[: len(previous)] != previous:
            raise SystemExit("a pattern's bytes changed with n")
        previous, n = traffic.per_pattern, n * 2
    print(f"each all-gather receives w0 - L / r <= w0 = {w0} rows per head ({w0 * row:,} B) whatever n; the total "
          f"adds one pattern per doubling of n (log2 P patterns span processes), dense adds L rows per process")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--local-len", type=int, default=65536, help="tokens per process L (counted part)")
    parser.add_argument("--w0", type=int, default=16384, help="first segment length of the schedule (counted)")
    parser.add_argument("--n-head", type=int, default=16)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--element-size", type=int, default=2, help="bytes per element in the counted part (bf16)")
    parser.add_argument("--run-local-len", type=int, default=256, help="tokens per process in the run")
    parser.add_argument("--run-w0", type=int, default=64, help="first segment length in the run")
    parser.add_argument("--run-worlds", type=int, nargs="+", default=[2, 4, 8], help="process counts to run")
    parser.add_argument("--start-method", default="fork" if sys.platform == "linux" else "spawn",
                        help="fork reuses this process's imported torch (fast, CPU only); spawn is portable")
    args = parser.parse_args()
    torch.set_num_threads(1)
    measured(args)
    counted(args)


if __name__ == "__main__":
    main()
