"""RoPE speed: the models' eager path and the compiled kernel against a plain copy, and in the model.

Prints, from one run, on an (8, 32, 4096, 128) float32 tensor: the median time of a copy into a
preallocated tensor, a clone (a copy that allocates its output), the rotate_half formulation (eager
and compiled), lclib's eager path and lclib.kernels' compiled path; then each path's ratio to a clone,
measured in pairs (clone, path, clone, path, ...: the median of the per-pair ratios, so that a busy
machine slows both sides of each ratio alike). Then the lab model's prefill of --model-len tokens with
the eager and the compiled RoPE (GPT.set_rope_kernel).
Targets (issue 13): compiled path <= 1.1x a clone on the CPU, <= 1.3x a copy on a GPU; the eager
cached path <= 2x a clone (issue 2).
Usage: python benchmarks/rope.py [--shape 8 32 4096 128] [--repeats 9] [--model-len 4096]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable

import torch

from lclib import kernels, rope
from lclib.model import GPT, GPTConfig


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def rotate_half_rope(x: torch.Tensor, cos_full: torch.Tensor, sin_full: torch.Tensor) -> torch.Tensor:
    return x * cos_full + rotate_half(x) * sin_full


def timed(fn: Callable[[], object]) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def paired(fn: Callable[[], object], ref: Callable[[], object], repeats: int) -> tuple[float, float, float]:
    """(median time of fn, median time of ref, median of the ratios fn/ref measured back to back)."""
    fn(), ref()  # warm-up (allocator, caches, compilation)
    pairs = [(timed(fn), timed(ref)) for _ in range(repeats)]
    return (statistics.median(a for a, _ in pairs), statistics.median(b for _, b in pairs),
            statistics.median(a / b for a, b in pairs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=4, default=[8, 32, 4096, 128], metavar=("B", "H", "T", "D"))
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--model-len", type=int, default=4096, help="tokens of the model prefill timed at the end")
    args = parser.parse_args()
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    batch, heads, seq_len, head_dim = args.shape
    x = torch.randn(batch, heads, seq_len, head_dim, device=dev)
    cos, sin = rope.rope_cos_sin(torch.arange(seq_len, device=dev), rope.inv_freq(head_dim))  # cached per length
    cos, sin = cos.to(dev), sin.to(dev)
    cos_full, sin_full = torch.cat((cos, cos), -1), torch.cat((sin, sin), -1)  # rotate_half needs full width
    out = torch.empty_like(x)
    compiled_rotate_half = torch.compile(rotate_half_rope)
    reference = rope.apply_rope_cached(x, cos, sin)
    torch.testing.assert_close(rotate_half_rope(x, cos_full, sin_full), reference)
    start = time.perf_counter()
    torch.testing.assert_close(kernels.compiled_rope(x, cos, sin), reference)
    compile_s = time.perf_counter() - start
    torch.testing.assert_close(compiled_rotate_half(x, cos_full, sin_full), reference)
    del reference

    def clone() -> object:
        return x.clone()

    def copy_into() -> object:
        return out.copy_(x)

    paths = {
        "rotate_half formulation, eager": lambda: rotate_half_rope(x, cos_full, sin_full),
        "rotate_half formulation, compiled": lambda: compiled_rotate_half(x, cos_full, sin_full),
        "lclib eager path (half)": lambda: rope.apply_rope_cached(x, cos, sin, "half"),
        "lclib eager path (interleaved)": lambda: rope.apply_rope_cached(x, cos, sin, "interleaved"),
        "lclib compiled path (half)": lambda: kernels.compiled_rope(x, cos, sin, "half"),
        "lclib compiled path (interleaved)": lambda: kernels.compiled_rope(x, cos, sin, "interleaved"),
    }
    gb = x.numel() * x.element_size() / 1e9
    print(f"device {dev}, threads {torch.get_num_threads()}, tensor {tuple(x.shape)} float32 = {gb:.2f} GB; "
          f"first compiled call (compilation included) {compile_s:.1f} s")
    t_copy, t_clone, copy_per_clone = paired(copy_into, clone, args.repeats)
    print(f"{'copy into preallocated (bandwidth limit)':<40} {t_copy * 1e3:8.1f} ms   {copy_per_clone:5.2f}x a clone")
    print(f"{'clone (copy with allocation)':<40} {t_clone * 1e3:8.1f} ms")
    ratios = {}
    for name, fn in paths.items():
        t, _, ratio = paired(fn, clone, args.repeats)
        ratios[name] = ratio
        print(f"{name:<40} {t * 1e3:8.1f} ms   {ratio:5.2f}x a clone   {ratio / copy_per_clone:5.2f}x a copy")
    fused = ratios["lclib compiled path (half)"]
    if dev.type == "cpu":
        print(f"ratio compiled/clone {fused:5.2f}  (target <= 1.10 on the CPU; both allocate their output)")
    else:
        print(f"ratio compiled/copy  {fused / copy_per_clone:5.2f}  (target <= 1.30 on a GPU)")
    print(f"ratio eager/clone    {ratios['lclib eager path (half)']:5.2f}  (target <= 2.00)")

    # the same kernels inside the lab model's prefill (2 layers, d_model 64, 4 heads; random weights)
    torch.manual_seed(0)
    eager_model = GPT(GPTConfig(vocab_size=512, d_model=64, n_layer=2, n_head=4)).to(dev).eval()
    compiled_model = copy.deepcopy(eager_model).set_rope_kernel("compiled")
    idx = torch.randint(0, 512, (1, args.model_len), device=dev)
    with torch.no_grad():
        torch.testing.assert_close(compiled_model(idx), eager_model(idx), atol=1e-4, rtol=1e-4)
        t_compiled, t_eager, ratio = paired(lambda: compiled_model(idx), lambda: eager_model(idx), args.repeats)
    print(f"model prefill of {args.model_len} tokens: eager RoPE {t_eager * 1e3:.1f} ms, compiled RoPE "
          f"{t_compiled * 1e3:.1f} ms, ratio compiled/eager {ratio:.2f}")


if __name__ == "__main__":
    main()
