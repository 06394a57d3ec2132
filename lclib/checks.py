"""Checkers for the notebooks' exercises: run the student's function, compare with lclib, and hint.

Each checker returns True and prints one line when the answer is right, raises CheckFailed (an
AssertionError) with a specific hint when it is wrong, and, on an untouched stub (it raises
NotImplementedError), prints that the exercise is not done yet and returns False: the committed
notebooks then show no error output, yet a stub never passes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

from . import rope


class CheckFailed(AssertionError):
    """An exercise answer that does not match the reference; the message is the hint."""


def checker(body: Callable[..., str]) -> Callable[..., bool]:
    """Wrap a check whose body raises CheckFailed or returns the sentence printed on success."""

    @functools.wraps(body)
    def run(fn: Callable, *args, **kwargs) -> bool:
        if not callable(fn):
            raise TypeError(f"pass your function itself (not its result) to {body.__name__}, got {type(fn).__name__}")
        try:
            message = body(fn, *args, **kwargs)
        except NotImplementedError:
            print(f"Not done yet: {fn.__name__} still raises NotImplementedError. Write it, then run this cell again.")
            return False
        print(f"Correct: {message}")
        return True

    return run


def _close(a: object, b: torch.Tensor, atol: float = 1e-5) -> bool:
    return isinstance(a, torch.Tensor) and a.shape == b.shape and torch.allclose(a.double(), b.double(), atol=atol)


# --- notebook 01: RoPE from scratch -------------------------------------------------------------

@checker
def check_rope_interleaved(fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> str:
    """fn(x, positions, inv_freq) must rotate pairs (2i, 2i+1), as in the RoFormer paper."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 7, 8, generator=gen, dtype=torch.float64)
    positions = torch.arange(7)
    freqs = rope.inv_freq(8)
    got = fn(x, positions, freqs)
    if not isinstance(got, torch.Tensor) or got.shape != x.shape:
        raise CheckFailed(f"return a tensor shaped like x {tuple(x.shape)}, got {getattr(got, 'shape', type(got))}")
    want = rope.apply_rope(x, positions, freqs, layout="interleaved")
    if _close(got, want):
        return "interleaved RoPE matches lclib.rope.apply_rope(..., layout='interleaved')."
    if _close(got, rope.apply_rope(x, positions, freqs, layout="half")):
        raise CheckFailed("this is the half-split layout: pair feature 2i with 2i+1, not i with i + d/2.")
    if _close(got, rope.apply_rope(x, -positions, freqs, layout="interleaved")):
        raise CheckFailed("you rotate by -angle: the first output of a pair is x0*cos - x1*sin, the second x0*sin + x1*cos.")
    if not torch.allclose(got[..., 0, :].double(), x[..., 0, :]):
        raise CheckFailed("position 0 must leave x unchanged (angle 0): check how you index positions.")
    raise CheckFailed("values differ from the reference: angle for pair i at position t is t * inv_freq[i].")


@checker
def check_relative_score(fn: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]) -> str:
    """fn(q, k, offset) must return q . R_offset k, the RoPE score of q at t and k at t - offset, for any t."""
    gen = torch.Generator().manual_seed(2)
    q = torch.randn(16, generator=gen, dtype=torch.float64)
    k = torch.randn(16, generator=gen, dtype=torch.float64)
    freqs = rope.inv_freq(16)
    for offset in (0, 1, 5, -3, 40):
        t = 50
        positions = torch.tensor([t, t - offset])
        rotated = rope.apply_rope(torch.stack([q, k]), positions, freqs)  # (2, 16)
        want = rotated[0] @ rotated[1]
        got = fn(q, k, offset)
        got = torch.as_tensor(got, dtype=torch.float64)
        if got.numel() != 1:
            raise CheckFailed(f"return one score (a scalar), got shape {tuple(got.shape)}")
        if not torch.allclose(got.reshape(()), want, atol=1e-8):
            if offset and torch.allclose(got.reshape(()), rotated[0] @ rope.apply_rope(
                    torch.stack([q, k]), torch.tensor([t, t + offset]), freqs)[1], atol=1e-8):
                raise CheckFailed("the sign of the offset is flipped: k sits at t - offset, so rotate k by -offset relative to q.")
            raise CheckFailed(f"at offset {offset} expected {want.item():.6f}, got {got.item():.6f}; "
                              "rotate only k, by angle -offset * theta_i (half-split layout), then take the dot product with q.")
    return "the score depends on the offset alone, and yours matches apply_rope at every t."


@checker
def check_first_pair_beyond(fn: Callable[[int, float, int], int]) -> str:
    """fn(head_dim, base, context_len) must return the first pair index whose wavelength exceeds context_len."""
    cases = [(128, 10000.0, 4096), (128, 10000.0, 2048), (64, 10000.0, 512), (128, 500000.0, 8192), (8, 100.0, 50)]
    for head_dim, base, context in cases:
        lengths = rope.wavelengths(rope.inv_freq(head_dim, base))
        beyond = torch.nonzero(lengths > context).flatten()
        want = int(beyond[0]) if len(beyond) else head_dim // 2
        got = fn(head_dim, base, context)
        if got != want:
            hint = " (off by one: the wavelength is 2*pi / theta_i with theta_i = base^(-2i/d))" if isinstance(got, int) and abs(got - want) == 1 else ""
            raise CheckFailed(f"head_dim={head_dim}, base={base}, context_len={context}: expected pair {want}, got {got}{hint}.")
    return "you found the first pair that never completes a turn inside the context."


# --- notebook 04: lost in the middle ------------------------------------------------------------

@checker
def check_bayes_curve(fn: Callable[[torch.Tensor, int], torch.Tensor]) -> str:
    """fn(p, key_symbols) must return the best possible exact match per position (lclib.tasks.bayes_accuracy)."""
    from . import tasks

    cases = [(tasks.demand("uniform", 6), 4), (torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64), 2),
             (tasks.demand("smooth", 24), 32), (tasks.demand("recency", 10, tau=2.0), 8),
             (tasks.demand("ends", 12, ends=2), 16)]
    for p, k in cases:
        want = tasks.bayes_accuracy(p, k)
        got = fn(p.clone(), k)
        got = torch.as_tensor(got, dtype=torch.float64)
        if got.shape != want.shape:
            raise CheckFailed(f"return one accuracy per position, shape {tuple(want.shape)}, got {tuple(got.shape)}")
        if torch.allclose(got, want, atol=1e-6):
            continue
        q = 1.0 / k
        ranks = torch.tensor([float((p > p[i]).sum()) for i in range(len(p))], dtype=torch.float64)
        if torch.allclose(got, (1 - q) ** ranks, atol=1e-6):
            raise CheckFailed("close: you ignore ties. Positions with the same demand as i split the win: "
                              "with c equal-demand matches, i wins with probability 1/(1+c).")
        if torch.allclose(got, torch.full_like(want, 1.0), atol=1e-6):
            raise CheckFailed("every position at 1.0: the queried key also sits at other positions with probability 1/K each.")
        raise CheckFailed(f"for p = {[round(float(x), 3) for x in p[:6]]}..., K = {k}: expected "
                          f"{[round(float(x), 3) for x in want[:6]]}..., got {[round(float(x), 3) for x in got[:6]]}...; "
                          "position i wins when no higher-demand position holds the same key: (1 - 1/K)^(number higher).")
    return "your optimal curve matches lclib.tasks.bayes_accuracy for uniform, U-shaped, step and one-sided demands."


@checker
def check_wilson(fn: Callable[[int, int], tuple[float, float]]) -> str:
    """fn(successes, trials) must return the 95% Wilson score interval (lo, hi) of a proportion."""
    from . import probes

    for hits, n in [(50, 100), (0, 256), (256, 256), (200, 256), (3, 10)]:
        lo_w, hi_w = (float(x) for x in probes.wilson_interval(torch.tensor(hits), n))
        got = fn(hits, n)
        try:
            lo, hi = (float(x) for x in got)
        except (TypeError, ValueError):
            raise CheckFailed(f"return a pair (lo, hi), got {got!r}") from None
        if abs(lo - lo_w) < 1e-4 and abs(hi - hi_w) < 1e-4:
            continue
        p = hits / n
        se = (p * (1 - p) / n) ** 0.5
        if abs(lo - (p - 1.96 * se)) < 1e-3 and abs(hi - (p + 1.96 * se)) < 1e-3:
            raise CheckFailed(f"that is the normal (Wald) interval: at {hits}/{n} it gives [{lo:.3f}, {hi:.3f}], "
                              "which collapses at 0% and 100%. Use Wilson: centre (p + z^2/2n) / (1 + z^2/n).")
        raise CheckFailed(f"at {hits}/{n} expected [{lo_w:.4f}, {hi_w:.4f}], got [{lo:.4f}, {hi:.4f}]; "
                          "half-width z sqrt(p(1-p)/n + z^2/4n^2) / (1 + z^2/n), z = 1.96.")
    return "your Wilson interval matches lclib.probes.wilson_interval, including at 0% and 100%."
