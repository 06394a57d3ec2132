"""Faster kernels, measured: RoPE fused by a compiler, and the memory attention needs.

- ``rope_fused``: RoPE written as one expression a compiler can fuse into a single pass over x
  (read x once, write the output once). ``lclib.rope.apply_rope_cached`` stays the readable
  reference it is tested against.
- ``compiled_rope``: that expression compiled by ``torch.compile`` (inductor writes a C++ kernel on the
  CPU, a Triton kernel on a GPU). How it is written matters to the compiler: measured on this lab's
  CPU, ``cat([x1*c - x2*s, x2*c + x1*s])`` compiles to about one copy's time, while
  ``x*cos + rotate_half(x)*sin`` compiled stays about twice as slow (benchmarks/rope.py).
- ``attention_materialised``: attention as the textbook writes it, an (n, n) score matrix per head;
  against ``scaled_dot_product_attention``, whose CPU and GPU kernels work block by block.
- ``peak_memory``: the most bytes a call held at once beyond what existed before it (the profiler's
  allocation records on the CPU, CUDA's allocator statistics on a GPU).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence

import torch
from torch import Tensor

from . import validate
from .rope import LAYOUTS

RopeFn = Callable[[Tensor, Tensor, Tensor, str], Tensor]


def _check_rope(x: Tensor, cos: Tensor, sin: Tensor, layout: str) -> None:
    for name, value in (("x", x), ("cos", cos), ("sin", sin)):
        if not isinstance(value, Tensor) or not value.is_floating_point():
            raise TypeError(f"{name} must be a floating-point torch.Tensor, got "
                            f"{value.dtype if isinstance(value, Tensor) else type(value).__name__}")
    validate.one_of("layout", layout, LAYOUTS)
    if x.dim() < 2 or x.shape[-1] % 2 or x.shape[-1] == 0 or cos.shape != (x.shape[-2], x.shape[-1] // 2) \
            or sin.shape != cos.shape:
        raise ValueError(f"cos and sin must have shape (T, head_dim // 2) for x of shape (..., T, head_dim) "
                         f"with an even head_dim; got x {tuple(x.shape)}, cos {tuple(cos.shape)}, sin {tuple(sin.shape)}")


def _rope(x: Tensor, cos: Tensor, sin: Tensor, layout: str) -> Tensor:
    """The expression alone, no checks: what torch.compile fuses."""
    half = x.shape[-1] // 2
    if layout == "half":
        x1, x2 = x[..., :half], x[..., half:]  # pair i is (i, i + d/2)
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)
    x1, x2 = x[..., 0::2], x[..., 1::2]  # pair i is (2i, 2i + 1)
    return torch.stack([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).flatten(-2)


def rope_fused(x: Tensor, cos: Tensor, sin: Tensor, layout: str = "half") -> Tensor:
    """RoPE as one fusable expression (differentiable; no out= writes), after checking its inputs.

    Shapes: x (..., T, hs); cos, sin (T, hs/2); returns like x. Same result as
    lclib.rope.apply_rope_cached(x, cos, sin, layout).
    """
    _check_rope(x, cos, sin, layout)
    return _rope(x, cos, sin, layout)


@functools.cache
def _compiled() -> RopeFn:
    return torch.compile(_rope)


def compiled_rope(x: Tensor, cos: Tensor, sin: Tensor, layout: str = "half") -> Tensor:
    """rope_fused compiled by torch.compile (compiled on first use per shape family: seconds on a CPU).

    Checks its inputs eagerly, then runs the compiled kernel. Shapes as in rope_fused.
    """
    _check_rope(x, cos, sin, layout)
    return _compiled()(x, cos, sin, layout)


def check_compiler() -> None:
    """Compile and run a tiny RoPE now, so that a missing compiler fails here with a clear message."""
    x, c = torch.zeros(1, 2, 4), torch.ones(2, 2)
    try:
        compiled_rope(x, c, c)
    except Exception as err:  # inductor raises its own types; say what failed and how to go on
        raise RuntimeError("torch.compile could not build the fused RoPE kernel on this machine (it needs a C++ "
                           f"compiler on the CPU, Triton on a GPU); use the eager path instead. Cause: {err}") from err


MAX_SCORES = 1 << 29  # B * nh * T * S of attention_materialised: 2 GiB of float32 scores (notebook 06 uses 2^28)


def attention_materialised(q: Tensor, k: Tensor, v: Tensor, causal: bool = True) -> Tensor:
    """softmax(q k^T / sqrt(hs) + mask) v with the whole (T, S) score matrix built: the memory reference.

    Shapes: q (B, nh, T, hs); k, v (B, nh, S, hs); returns (B, nh, T, hs). With causal, the T queries
    are the last T of the S positions (decoding with a cache; FlashAttention 2's bottom-right
    alignment): query t sees keys up to S - T + t. With T == S that is
    ``scaled_dot_product_attention(is_causal=True)`` (which aligns top-left, so differs for T < S);
    T > S is refused, since the first T - S queries would see no key (a NaN row). At most MAX_SCORES scores.
    """
    for name, value in (("q", q), ("k", k), ("v", v)):
        if not isinstance(value, Tensor) or not value.is_floating_point() or value.dim() != 4:
            raise TypeError(f"{name} must be a 4-D floating-point torch.Tensor (B, nh, T, hs), got "
                            f"{type(value).__name__}{tuple(value.shape) if isinstance(value, Tensor) else ''}"
                            f"{' ' + str(value.dtype) if isinstance(value, Tensor) else ''}")
    if k.shape != v.shape or q.shape[:2] != k.shape[:2] or q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q (B, nh, T, hs) and k, v (B, nh, S, hs) disagree: {tuple(q.shape)}, {tuple(k.shape)}, "
                         f"{tuple(v.shape)}")
    if k.dtype != q.dtype or v.dtype != q.dtype:
        raise TypeError(f"k and v must have the dtype of q ({q.dtype}), got {k.dtype} and {v.dtype}")
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool, got {type(causal).__name__}")
    B, nh, T, hs = q.shape
    S = k.shape[-2]
    if S == 0 or hs == 0:
        raise ValueError(f"k must hold at least one key of head_dim >= 1, got k {tuple(k.shape)}")
    if causal and T > S:
        raise ValueError(f"q has more queries ({T}) than k has keys ({S}): with causal, queries are the last T of "
                         f"the S positions, so the first {T - S} would see no key; pass causal=False or more keys")
    if B * nh * T * S > MAX_SCORES:
        raise ValueError(f"q and k would need B * nh * T * S = {B * nh * T * S} scores, more than MAX_SCORES = "
                         f"{MAX_SCORES}; use scaled_dot_product_attention, which never builds them")
    scores = q @ k.transpose(-1, -2) / math.sqrt(hs)  # (B, nh, T, S): the n x n matrix
    if causal:
        seen = torch.ones(T, S, dtype=torch.bool, device=q.device).tril(S - T)  # (T, S)
        scores = scores.masked_fill(~seen, float("-inf"))
    return scores.softmax(dim=-1) @ v  # (B, nh, T, hs)


@contextlib.contextmanager
def _quiet_fd2() -> Iterator[None]:
    """Silence file descriptor 2 for a while: the profiler's C++ side logs its start and stop there
    unconditionally, which a notebook would show as output. Python exceptions are not affected."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_memory(fn: Callable[..., object], *args: object) -> int:
    """Peak bytes allocated while fn(*args) runs, beyond what was allocated before (its output included).

    On a GPU (any argument on CUDA): torch.cuda's peak statistics. On the CPU: the running sum of the
    allocation and free records of torch.profiler (profile_memory=True), which sees every tensor the
    allocator hands out, including a kernel's temporary buffers.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    tensors = [a for a in args if isinstance(a, Tensor)]
    if any(t.is_cuda for t in tensors):
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn(*args)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    with _quiet_fd2(), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                              profile_memory=True) as prof:
        fn(*args)
    try:
        records = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
        records.sort(key=lambda e: e.start_ns())
        held = peak = 0
        for record in records:  # + bytes at an allocation, - bytes at a free
            held += record.nbytes()
            peak = max(peak, held)
    except AttributeError as err:  # the profiler's result objects changed in another torch version
        raise RuntimeError(f"this torch ({torch.__version__}) does not expose the profiler's memory records "
                           f"as expected: {err}") from err
    return peak


def crossover_length(lengths: Sequence[int], baseline_s: Sequence[float], candidate_s: Sequence[float]) -> int | None:
    """The shortest measured length from which the candidate is strictly faster than the baseline at that length
    and at every longer one (a single faster point that noise flips back does not count); None if there is none.

    lengths ascending; baseline_s and candidate_s the times measured at each length (e.g. dense and dilated
    attention, notebook 03b).
    """
    for name, seq in (("lengths", lengths), ("baseline_s", baseline_s), ("candidate_s", candidate_s)):
        if isinstance(seq, (str, bytes)) or not isinstance(seq, Iterable):
            raise TypeError(f"{name} must be a sequence of numbers, got {type(seq).__name__}")
    lengths, baseline_s, candidate_s = list(lengths), list(baseline_s), list(candidate_s)
    if not lengths or any(not validate.is_int(n) or n < 1 for n in lengths):
        raise ValueError(f"lengths must be a non-empty list of positive ints, got {lengths!r}")
    if any(b <= a for a, b in zip(lengths, lengths[1:])):
        raise ValueError(f"lengths must be strictly ascending, got {lengths}")
    for name, times in (("baseline_s", baseline_s), ("candidate_s", candidate_s)):
        if len(times) != len(lengths):
            raise ValueError(f"{name} must hold one time per length ({len(lengths)}), got {len(times)}")
        if any(not validate.is_number(t) or not 0 <= t < math.inf for t in times):
            raise ValueError(f"{name} must be finite non-negative numbers (seconds), got {times!r}")
    faster = [c < b for b, c in zip(baseline_s, candidate_s)]
    return next((n for i, n in enumerate(lengths) if all(faster[i:])), None)
