"""Dilated attention speed and memory: lclib.dilated.dilated_attention against dense SDPA as n grows.

Prints, from one run, for each n: the best-of-repeats time and peak extra memory of the fast dilated
attention (and the time of its kernel="softmax" variant) and of dense
``scaled_dot_product_attention``, the measured speed-up (dense / dilated), and the ideal one from
edge counts (dense pairs / pairs the patterns compute, per head). The
configuration is LongNet's geometric schedule grown to n: w = w0 * 2^i, r = 2^i, i = 0 .. log2(n/w0).
Targets (issue 4): dilated time grows with log-log slope <= 1.15 from 8k to 64k, and at 32k the
measured speed-up reaches at least half of the ideal one.

Each point is timed after a warm-up call on a short input, best of a few calls; on the CPU the
clock is the process's CPU time (with one thread, the wall time of an idle machine; a busy machine
does not inflate it), and the best wall times are printed too. Each (implementation, n) runs in a fresh subprocess so that peak memory is measurable on
the CPU: peak RSS during the calls minus RSS before them (on CUDA: torch.cuda.max_memory_allocated).
Usage: python benchmarks/dilated.py [--sizes 4096 8192 16384 32768 65536] [--small | --large]
       [--heads 2] [--head-dim 64] [--w0 1024] [--causal] [--repeats 3] [--budget 15]
       [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from lclib import dilated

SIZES = {"default": [4096, 8192, 16384, 32768, 65536], "small": [1024, 2048, 4096, 8192],
         "large": [8192, 16384, 32768, 65536, 131072, 262144]}


def schedule(n: int, w0: int) -> tuple[list[int], list[int]]:
    """LongNet's geometric schedule up to n: segment lengths w0 * 2^i and dilations 2^i."""
    count = max(1, int(math.log2(max(n // w0, 1))) + 1)
    return [w0 * 2**i for i in range(count)], [2**i for i in range(count)]


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def run_one(impl: str, n: int, args: argparse.Namespace) -> dict:
    """Time and peak memory of one implementation at one n, in this (fresh) process."""
    torch.set_num_threads(args.threads)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    gen = torch.Generator(device=dev).manual_seed(0)
    q, k, v = torch.randn(3, 1, args.heads, n, args.head_dim, generator=gen, device=dev).unbind(0)
    ws, rs = schedule(n, args.w0)
    if impl == "dense":
        fn = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=args.causal)  # noqa: E731
    else:
        fn = lambda: dilated.dilated_attention(q, k, v, ws, rs, causal=args.causal, kernel=impl)  # noqa: E731
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    small = [x[..., : 2 * args.w0, :].contiguous() for x in (q, k, v)]  # warm-up: kernels, thread pool
    if impl == "dense":
        F.scaled_dot_product_attention(*small, is_causal=args.causal)
    else:
        dilated.dilated_attention(*small, *schedule(2 * args.w0, args.w0), causal=args.causal, kernel=impl)
    sync()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _rss_bytes()
    # On the CPU the clock is this process's CPU time: with one thread it equals the wall time of an
    # idle machine, and other jobs on a shared machine do not inflate it. On CUDA: wall time.
    clock = time.perf_counter if dev.type == "cuda" else time.process_time
    times, walls = [], []
    for _ in range(args.repeats):  # best of repeats, stopping once the point has used its budget
        start, wall = clock(), time.perf_counter()
        fn()
        sync()
        times.append(clock() - start)
        walls.append(time.perf_counter() - wall)
        if sum(walls) > args.budget:
            break
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    return {"time": min(times), "wall": min(walls), "peak": max(peak, 0), "device": str(dev)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+")
    parser.add_argument("--small", action="store_true", help=f"n in {SIZES['small']} (a quick look)")
    parser.add_argument("--large", action="store_true", help=f"n in {SIZES['large']} (a GPU)")
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--w0", type=int, default=1024, help="first segment length of the schedule")
    parser.add_argument("--causal", action="store_true")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per point (best is kept)")
    parser.add_argument("--budget", type=float, default=15.0, help="seconds per point after which repeats stop")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (1: steadier on a shared machine)")
    parser.add_argument("--one", nargs=2, metavar=("IMPL", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one[0], int(args.one[1]), args)))
        return
    sizes = args.sizes or SIZES["small" if args.small else "large" if args.large else "default"]
    passthrough = ["--heads", str(args.heads), "--head-dim", str(args.head_dim), "--w0", str(args.w0),
                   "--repeats", str(args.repeats), "--budget", str(args.budget), "--threads", str(args.threads)] + (["--causal"] if args.causal else [])
    print(f"batch 1, heads {args.heads}, head_dim {args.head_dim}, float32, causal {args.causal}, "
          f"schedule w = {args.w0} * 2^i, r = 2^i up to n, best of {args.repeats} (fewer past {args.budget:.0f} s), "
          f"{args.threads} threads")
    print("dilated = lclib.dilated.dilated_attention (SDPA per block + recomputed lse); softmax = same with "
          "kernel='softmax' (one chunked pass, no SDPA); dense = SDPA on the whole sequence; MB = peak extra memory")
    header = (f"{'n':>7} {'dilated s':>10} {'softmax s':>10} {'dense s':>9} {'dil MB':>8} {'dense MB':>9} "
              f"{'speed-up':>9} {'(softmax)':>9} {'ideal':>7} {'meas/ideal':>10}")
    print(header)
    rows, walls = [], {}
    for n in sizes:
        point = {}
        for impl in ("sdpa", "softmax", "dense"):
            done = subprocess.run([sys.executable, __file__, "--one", impl, str(n), *passthrough],
                                  capture_output=True, text=True, check=True)
            point[impl] = json.loads(done.stdout.strip().splitlines()[-1])
        ws, rs = schedule(n, args.w0)
        dense_edges = dilated.edge_counts(n, n, 1, causal=args.causal).pattern_sum_per_head.double().mean()
        ours_edges = dilated.edge_counts(n, ws, rs, num_heads=args.heads, causal=args.causal).pattern_sum_per_head.double().mean()
        ideal = float(dense_edges / ours_edges)
        walls[n] = (point["sdpa"]["wall"], point["dense"]["wall"])
        speedup = point["dense"]["time"] / point["sdpa"]["time"]
        speedup_softmax = point["dense"]["time"] / point["softmax"]["time"]
        rows.append((n, point["sdpa"]["time"], speedup, ideal))
        print(f"{n:>7} {point['sdpa']['time']:>10.3f} {point['softmax']['time']:>10.3f} {point['dense']['time']:>9.3f} "
              f"{point['sdpa']['peak'] / 2**20:>8.1f} {point['dense']['peak'] / 2**20:>9.1f} "
              f"{speedup:>9.2f} {speedup_softmax:>9.2f} {ideal:>7.2f} {speedup / ideal:>10.2f}", flush=True)
    print(f"device {point['dense']['device']}; times are " + ("wall seconds" if point["dense"]["device"].startswith("cuda")
          else f"CPU seconds of the process ({args.threads} thread(s)); best wall seconds dilated / dense: "
          + ", ".join(f"{n}: {w[0]:.2f} / {w[1]:.2f}" for n, w in walls.items())))
    fit = [(math.log(n), math.log(t)) for n, t, _, _ in rows if 8192 <= n <= 65536]
    if len(fit) >= 2:
        mx = sum(x for x, _ in fit) / len(fit)
        my = sum(y for _, y in fit) / len(fit)
        slope = sum((x - mx) * (y - my) for x, y in fit) / sum((x - mx) ** 2 for x, _ in fit)
        print(f"log-log slope of dilated time, n in 8k..64k: {slope:.2f} (target <= 1.15)")
    at32 = [(s, i) for n, _, s, i in rows if n == 32768]
    if at32:
        s, i = at32[0]
        print(f"at n = 32768: speed-up {s:.2f} = {s / i:.2f} of the ideal {i:.2f} (target >= 0.50)")


if __name__ == "__main__":
    main()
