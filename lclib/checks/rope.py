"""Checkers for notebook 01, RoPE from scratch: the interleaved layout, the relative score, wavelengths."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .. import rope
from .common import CheckFailed, as_int, as_tensor, call, checker, close


@checker
def check_rope_interleaved(fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> str:
    """fn(x, positions, inv_freq) must rotate pairs (2i, 2i+1), as in the RoFormer paper.

    Shapes: x (2, 7, 8) float64; positions (7,); inv_freq (4,); the answer like x.
    """
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 7, 8, generator=gen, dtype=torch.float64)
    positions = torch.arange(7)
    freqs = rope.inv_freq(8)
    want = rope.apply_rope(x, positions, freqs, layout="interleaved")
    got = as_tensor(call(fn, x=x, positions=positions, inv_freq=freqs), x.shape, like="x")
    if close(got, want):
        return "interleaved RoPE matches lclib.rope.apply_rope(..., layout='interleaved')."
    if close(got, rope.apply_rope(x, positions, freqs, layout="half")):
        raise CheckFailed("this is the half-split layout: pair feature 2i with 2i+1, not i with i + d/2.")
    if close(got, rope.apply_rope(x, -positions, freqs, layout="interleaved")):
        raise CheckFailed("you rotate by -angle: the first output of a pair is x0*cos - x1*sin, the second x0*sin + x1*cos.")
    if not torch.allclose(got[..., 0, :], x[..., 0, :]):
        raise CheckFailed("position 0 must leave x unchanged (angle 0): check how you index positions.")
    raise CheckFailed("values differ from the reference: angle for pair i at position t is t * inv_freq[i].")


@checker
def check_relative_score(fn: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]) -> str:
    """fn(q, k, offset) must return q . R_offset k, the RoPE score of q at t and k at t - offset, for any t.

    Shapes: q, k (16,) float64; the answer one number (a 0-d tensor, a float or a one-element array).
    """
    gen = torch.Generator().manual_seed(2)
    q = torch.randn(16, generator=gen, dtype=torch.float64)
    k = torch.randn(16, generator=gen, dtype=torch.float64)
    freqs = rope.inv_freq(16)
    t = 50
    for offset in (0, 1, 5, -3, 40):
        rotated = rope.apply_rope(torch.stack([q, k]), torch.tensor([t, t - offset]), freqs)  # (2, 16)
        want = rotated[0] @ rotated[1]
        got = as_tensor(call(fn, q=q, k=k, offset=offset), (), where=f"offset {offset}")
        if torch.allclose(got, want, atol=1e-8):
            continue
        flipped = rotated[0] @ rope.apply_rope(torch.stack([q, k]), torch.tensor([t, t + offset]), freqs)[1]
        if offset and torch.allclose(got, flipped, atol=1e-8):
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
        where = f"head_dim={head_dim}, base={base}, context_len={context}"
        got = as_int(call(fn, head_dim=head_dim, base=base, context_len=context), where, "a pair index (an int)")
        if got != want:
            hint = " (off by one: the wavelength is 2*pi / theta_i with theta_i = base^(-2i/d))" if abs(got - want) == 1 else ""
            raise CheckFailed(f"{where}: expected pair {want}, got {got}{hint}.")
    return "you found the first pair that never completes a turn inside the context."
