"""KV cache: decode time per token with and without the cache, and cache bytes against the formula.

Prints, from one run, for the lab model's shapes (2 layers, d_model 64, 4 heads; random weights, batch 1)
at n = 1K, 4K, 16K tokens of context (CPU; add larger ones on a GPU with --lengths): the time of one
decode step with the cache (median of --steps steps), the time of the step generate(use_cache=False)
takes (one forward over n + 1 tokens, best of --repeats), the speed-up, and the cache's measured bytes
against 2 x layers x KV heads x head_dim x bytes x tokens. Targets (issue 13): speed-up >= 10x at 4K on
the CPU; measured bytes within 2% of the formula.
Usage: python benchmarks/kv_cache.py [--lengths 1024 4096 16384] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from lclib import kv, repro
from lclib.kv import KVCache
from lclib.model import GPT, GPTConfig


def timed(fn) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096, 16384])
    parser.add_argument("--steps", type=int, default=21, help="decode steps timed with the cache (median)")
    parser.add_argument("--repeats", type=int, default=2, help="uncached steps timed (best)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (0: leave as is)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = repro.device()
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=84)).to(dev).eval()
    c = model.config
    print(f"lab model shapes, random weights, batch 1, {dev.type}, {torch.get_num_threads()} thread(s)")
    print(f"{'n':>6s} {'with cache':>12s} {'without':>12s} {'speed-up':>9s} {'cache bytes':>12s} {'formula':>12s} {'off':>6s}")
    with torch.no_grad():
        for n in args.lengths:
            context = torch.randint(0, c.vocab_size, (1, n + 1), device=dev)
            model(context[:, :64])  # warm-up
            without = min(timed(lambda: model(context)) for _ in range(args.repeats))
            cache = KVCache(c.n_layer)
            model(context[:, :n], cache=cache)
            step = context[:, n:]
            with_cache = statistics.median(timed(lambda: model(step, cache=cache)) for _ in range(args.steps))
            measured = cache.nbytes()
            formula = kv.cache_bytes(c.n_layer, model.n_kv_head, c.head_dim, len(cache),
                                     bytes_per_value=context.new_empty(0, dtype=torch.float32).element_size())
            print(f"{n:6d} {with_cache * 1e3:9.2f} ms {without * 1e3:9.1f} ms {without / with_cache:8.1f}x "
                  f"{measured:12,d} {formula:12,d} {abs(measured - formula) / formula:6.1%}", flush=True)


if __name__ == "__main__":
    main()
