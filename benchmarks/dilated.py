"""Dilated attention speed and memory: lclib.dilated.dilated_attention against dense SDPA as n grows.

Prints, from one run, for each n: the best-of-repeats time and peak extra memory of dilated
attention (default kernel, and the time of kernel="softmax") and of dense
``scaled_dot_product_attention``, the measured speed-up (dense / dilated), and the ideal one from
edge counts (dense pairs / pairs the patterns compute, per head). The configuration is LongNet's
geometric schedule grown to n: w = w0 * 2^i, r = 2^i, i = 0 .. log2(n/w0).
Targets (issue 15), printed with whether this run met them: dilated time grows with log-log slope
<= 1.15 from 8k to 64k; at 32k and 64k the measured speed-up reaches 0.6 of the ideal one and the
peak extra memory is at most 1.5x dense SDPA's.

--train-step times a training step instead: forward and backward (gradients of q, k, v) of the
default kernel against dense SDPA, and prints the shortest n from which dilated is the cheaper one
in this run, beside the edge-count ratio there.

Each point is timed after a warm-up call on a short input, best of a few calls; on the CPU the
clock is the process's CPU time (with one thread, the wall time of an idle machine; a busy machine
does not inflate it), and the best wall times are printed too. Each (implementation, n) runs in a
fresh subprocess so that peak memory is measurable on the CPU: peak RSS during the calls minus RSS
before them (on CUDA: torch.cuda.max_memory_allocated).
Usage: python benchmarks/dilated.py [--sizes 4096 8192 16384 32768 65536] [--small | --large]
       [--train-step] [--n-head 2] [--head-dim 64] [--w0 1024] [--causal] [--repeats 3] [--budget 15]
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
         "large": [8192, 16384, 32768, 65536, 131072, 262144],
         "train": [512, 1024, 2048, 4096, 8192, 16384]}
SLOPE_MAX, IDEAL_FRACTION_MIN, MEMORY_RATIO_MAX = 1.15, 0.6, 1.5  # issue 15's targets
TARGET_SIZES = (32768, 65536)


def schedule(n: int, w0: int) -> tuple[list[int], list[int]]:
    """LongNet's geometric schedule up to n: segment lengths w0 * 2^i and dilations 2^i."""
    count = max(1, int(math.log2(max(n // w0, 1))) + 1)
    return [w0 * 2**i for i in range(count)], [2**i for i in range(count)]


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _step(impl: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool, w0: int,
          grad: torch.Tensor | None) -> None:
    """One forward call, or forward and backward when grad (the output's gradient) is given."""
    if impl == "dense":
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    else:
        out = dilated.dilated_attention(q, k, v, *schedule(q.shape[2], w0), causal=causal, kernel=impl)
    if grad is not None:
        torch.autograd.grad(out, (q, k, v), grad)


def run_one(impl: str, n: int, args: argparse.Namespace) -> dict:
    """Time and peak memory of one implementation at one n, in this (fresh) process."""
    torch.set_num_threads(args.threads)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    gen = torch.Generator(device=dev).manual_seed(0)
    q, k, v, grad = torch.randn(4, 1, args.n_head, n, args.head_dim, generator=gen, device=dev).unbind(0)
    if not args.train_step:
        grad = None
    small = [x[..., : 2 * args.w0, :].contiguous() for x in (q, k, v)]  # warm-up: kernels, thread pool
    q, k, v, *small = (x.requires_grad_(args.train_step) for x in (q, k, v, *small))
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    _step(impl, *small, args.causal, args.w0, None if grad is None else grad[..., : 2 * args.w0, :])
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
        _step(impl, q, k, v, args.causal, args.w0, grad)
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


def ideal_speedup(n: int, args: argparse.Namespace) -> float:
    """Dense pairs / pairs the schedule's patterns compute, per head (the edge-count ratio)."""
    dense = dilated.edge_counts(n, n, 1, causal=args.causal).pattern_sum_per_head.double().mean()
    ours = dilated.edge_counts(n, *schedule(n, args.w0), n_head=args.n_head,
                               causal=args.causal).pattern_sum_per_head.double().mean()
    return float(dense / ours)


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+")
    parser.add_argument("--small", action="store_true", help=f"n in {SIZES['small']} (a quick look)")
    parser.add_argument("--large", action="store_true", help=f"n in {SIZES['large']} (a GPU)")
    parser.add_argument("--train-step", action="store_true",
                        help=f"time forward + backward against dense SDPA (n in {SIZES['train']} unless --sizes)")
    parser.add_argument("--n-head", type=int, default=2)
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
    default = "train" if args.train_step else "small" if args.small else "large" if args.large else "default"
    sizes = args.sizes or SIZES[default]
    passthrough = ["--n-head", str(args.n_head), "--head-dim", str(args.head_dim), "--w0", str(args.w0),
                   "--repeats", str(args.repeats), "--budget", str(args.budget), "--threads", str(args.threads)]
    passthrough += (["--causal"] if args.causal else []) + (["--train-step"] if args.train_step else [])
    impls = ("sdpa", "dense") if args.train_step else ("sdpa", "softmax", "dense")
    print(f"batch 1, heads {args.n_head}, head_dim {args.head_dim}, float32, causal {args.causal}, "
          f"schedule w = {args.w0} * 2^i, r = 2^i up to n, best of {args.repeats} (fewer past {args.budget:.0f} s), "
          f"{args.threads} threads" + (", TRAINING STEP: forward + backward of q, k, v" if args.train_step else ""))
    print("dilated = lclib.dilated.dilated_attention, default kernel 'sdpa' (fused flash kernel per block, with "
          "its lse on the CPU); "
          + ("" if args.train_step else "softmax = kernel='softmax' (chunked softmax in plain PyTorch); ")
          + "dense = SDPA on the whole sequence; MB = peak extra memory; ideal = edge-count ratio dense / dilated")
    print(f"{'n':>7} {'dilated s':>10}" + ("" if args.train_step else f" {'softmax s':>10}")
          + f" {'dense s':>9} {'dil MB':>8} {'dense MB':>9} {'speed-up':>9} {'ideal':>7} {'meas/ideal':>10}")
    rows, walls = {}, {}
    for n in sizes:
        point = {}
        for impl in impls:
            done = subprocess.run([sys.executable, __file__, "--one", impl, str(n), *passthrough],
                                  capture_output=True, text=True, check=True)
            point[impl] = json.loads(done.stdout.strip().splitlines()[-1])
        ideal = ideal_speedup(n, args)
        walls[n] = (point["sdpa"]["wall"], point["dense"]["wall"])
        speedup = point["dense"]["time"] / point["sdpa"]["time"]
        rows[n] = (point["sdpa"]["time"], speedup, ideal, point["sdpa"]["peak"], point["dense"]["peak"])
        print(f"{n:>7} {point['sdpa']['time']:>10.3f}"
              + ("" if args.train_step else f" {point['softmax']['time']:>10.3f}")
              + f" {point['dense']['time']:>9.3f} {point['sdpa']['peak'] / 2**20:>8.1f}"
              f" {point['dense']['peak'] / 2**20:>9.1f} {speedup:>9.2f} {ideal:>7.2f} {speedup / ideal:>10.2f}",
              flush=True)
    device = point["dense"]["device"]
    print(f"device {device}; times are " + ("wall seconds" if device.startswith("cuda")
          else f"CPU seconds of the process ({args.threads} thread(s)); best wall seconds dilated / dense: "
          + ", ".join(f"{n}: {w[0]:.2f} / {w[1]:.2f}" for n, w in walls.items())))
    if args.train_step:
        # n <= w0 is one dense pattern (edge-count ratio 1): any difference there is overhead, not sparsity
        sparse = [n for n in sizes if rows[n][2] > 1]
        cheaper = [n for n in sparse if all(rows[m][1] > 1 for m in sparse if m >= n)]
        if cheaper:
            n = cheaper[0]
            print(f"training step: dilated is cheaper than dense from n = {n} on (speed-up {rows[n][1]:.2f}, "
                  f"edge-count ratio {rows[n][2]:.2f}) in this run; sizes with ratio 1 (n <= w0) left out")
        else:
            print(f"training step: dilated is not cheaper than dense for all n from some size to {sizes[-1]} "
                  "in this run")
        return
    fit = [(math.log(n), math.log(t)) for n, (t, *_) in rows.items() if 8192 <= n <= 65536]
    if len(fit) >= 2:
        mx = sum(x for x, _ in fit) / len(fit)
        my = sum(y for _, y in fit) / len(fit)
        slope = sum((x - mx) * (y - my) for x, y in fit) / sum((x - mx) ** 2 for x, _ in fit)
        print(f"log-log slope of dilated time, n in 8k..64k: {slope:.2f} (target <= {SLOPE_MAX}: "
              f"{verdict(slope <= SLOPE_MAX)})")
    for n in TARGET_SIZES:
        if n in rows:
            _, s, i, mem, mem_dense = rows[n]
            print(f"at n = {n}: speed-up {s:.2f} = {s / i:.2f} of the ideal {i:.2f} (target >= {IDEAL_FRACTION_MIN}: "
                  f"{verdict(s / i >= IDEAL_FRACTION_MIN)}); peak extra memory {mem / 2**20:.1f} MB = "
                  f"{mem / max(mem_dense, 1):.2f}x dense's {mem_dense / 2**20:.1f} MB "
                  f"(target <= {MEMORY_RATIO_MAX}x: {verdict(mem <= MEMORY_RATIO_MAX * mem_dense)})")


if __name__ == "__main__":
    main()
