"""RoPE speed: the models' cached path against a plain copy and the common rotate_half formulation.

Prints, from one run, the median time of each on an (8, 32, 4096, 128) float32 tensor and the
ratios. Targets (issue 2): cached path <= 2x the copy, and no slower than rotate_half.
Usage: python benchmarks/rope.py [--shape 8 32 4096 128] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from lclib import rope


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up (allocator, caches)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=4, default=[8, 32, 4096, 128], metavar=("B", "H", "T", "D"))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    batch, heads, seq_len, head_dim = args.shape
    x = torch.randn(batch, heads, seq_len, head_dim, device=dev)
    cos, sin = rope.rope_cos_sin(torch.arange(seq_len, device=dev), rope.inv_freq(head_dim))  # cached per length
    cos, sin = cos.to(dev), sin.to(dev)
    cos_full, sin_full = torch.cat((cos, cos), -1), torch.cat((sin, sin), -1)  # rotate_half needs full width
    out = torch.empty_like(x)
    torch.testing.assert_close(rope.apply_rope_cached(x, cos, sin), x * cos_full + rotate_half(x) * sin_full)

    results = {
        "copy into preallocated (bandwidth limit)": median_time(lambda: out.copy_(x), args.repeats),
        "clone (copy with allocation)": median_time(lambda: x.clone(), args.repeats),
        "rotate_half formulation": median_time(lambda: x * cos_full + rotate_half(x) * sin_full, args.repeats),
        "lclib cached path (half)": median_time(lambda: rope.apply_rope_cached(x, cos, sin, "half"), args.repeats),
        "lclib cached path (half), preallocated out": median_time(lambda: rope.apply_rope_cached(x, cos, sin, "half", out=out), args.repeats),
        "lclib cached path (interleaved)": median_time(lambda: rope.apply_rope_cached(x, cos, sin, "interleaved"), args.repeats),
    }
    gb = x.numel() * x.element_size() / 1e9
    print(f"device {dev}, threads {torch.get_num_threads()}, tensor {tuple(x.shape)} float32 = {gb:.2f} GB")
    for name, t in results.items():
        print(f"{name:<42} {t * 1e3:8.1f} ms")
    copy, clone = results["copy into preallocated (bandwidth limit)"], results["clone (copy with allocation)"]
    ours, ref = results["lclib cached path (half)"], results["rotate_half formulation"]
    ours_pre = results["lclib cached path (half), preallocated out"]
    print(f"ratio cached/copy   {ours_pre / copy:5.2f}  (target <= 2.00; both write into a preallocated tensor)")
    print(f"ratio cached/clone  {ours / clone:5.2f}  (target <= 2.00; both allocate their output)")
    print(f"ratio cached/rotate_half {ours / ref:5.2f}  (target <= 1.00)")


if __name__ == "__main__":
    main()
