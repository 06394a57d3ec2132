"""Checkers for notebook 01, RoPE from scratch: the interleaved layout, the relative score, RoFormer's
score bound (and the first slow pair, kept for the browser-test fixture)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .. import rope, spectrum
from .answers import CheckFailed, as_int, as_tensor, close
from .runner import call, checker


HIDE_ROPE = (rope.apply_rope, rope.apply_rope_cached, rope.apply_rope_complex)  # each is the answer


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
    got = as_tensor(call(fn, x=x, positions=positions, inv_freq=freqs, hide=HIDE_ROPE), x.shape, like="x")
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
        got = as_int(call(fn, head_dim=head_dim, base=base, context_len=context,
                          hide=(spectrum.critical_dimension, spectrum.pair_table)),  # half the critical dimension is the answer
                     where, "a pair index (an int)")
        if got != want:
            hint = " (off by one: the wavelength is 2*pi / theta_i with theta_i = base^(-2i/d))" if abs(got - want) == 1 else ""
            raise CheckFailed(f"{where}: expected pair {want}, got {got}{hint}.")
    return "you found the first pair that never completes a turn inside the context."


def _pairs_as_complex(x: torch.Tensor, layout: str = "interleaved") -> torch.Tensor:
    """Pair i of x as one complex number: (x_2i, x_2i+1) interleaved, (x_i, x_i+d/2) half-split. (d/2,)"""
    half = x.shape[-1] // 2
    real, imag = (x[0::2], x[1::2]) if layout == "interleaved" else (x[:half], x[half:])
    return torch.complex(real, imag)


def _score_bound(q: torch.Tensor, k: torch.Tensor, distances: torch.Tensor, freqs: torch.Tensor,
                 layout: str = "interleaved", conjugate: bool = True, last_term: bool = True,
                 inclusive: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """RoFormer's bound (section 3.4.3) and its distance factor sum_j |S_j|; the flags build the usual slips.

    h_i = q_[2i:2i+2] conj(k_[2i:2i+2]), h_{d/2} = 0, S_j = sum_{l<j} e^{j (m-n) theta_l}:
    |score| <= max_i |h_{i+1} - h_i| * sum_{j=1}^{d/2} |S_j|. Shapes: q, k (d,); distances (n,); returns (n,), (n,).
    """
    kz = _pairs_as_complex(k, layout)
    h = _pairs_as_complex(q, layout) * (kz.conj() if conjugate else kz)  # (d/2,)
    steps = torch.cat([h[1:], h.new_zeros(1)]) - h  # h_{i+1} - h_i, i = 0 .. d/2 - 1
    if not last_term:
        steps = steps[:-1]
    angles = distances.to(torch.float64)[:, None] * freqs[None, :]  # (n, d/2)
    partial = torch.polar(torch.ones_like(angles), angles).cumsum(dim=-1)  # S_1 .. S_{d/2}
    if not inclusive:
        partial = torch.cat([torch.zeros_like(partial[:, :1]), partial[:, :-1]], dim=-1)  # S_0 .. S_{d/2-1}
    factor = partial.abs().sum(dim=-1)  # (n,)
    return steps.abs().max() * factor, factor


@checker
def check_score_bound(fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> str:
    """fn(q, k, distances, inv_freq) must return RoFormer's upper bound on |score| at each distance m - n.

    The bound of section 3.4.3 for this q and k (interleaved layout, as in the paper):
    max_i |h_{i+1} - h_i| * sum_{j=1}^{d/2} |S_j|, with h_i = q_[2i:2i+2] conj(k_[2i:2i+2]), h_{d/2} = 0
    and S_j = sum_{l<j} e^{j (m-n) theta_l}. No lclib function computes it (rope.decay_bound is the
    distance factor divided by d/2, for a base rather than given frequencies).
    Shapes: q, k (head_dim,) float64; distances (n,) int64; inv_freq (head_dim // 2,); the answer (n,).
    """
    gen = torch.Generator().manual_seed(5)
    # (head_dim, base, distances, loud): loud > 0 sets h_{d/2-1} = loud * h_{d/2-2}, so that the last step,
    # |h_{d/2} - h_{d/2-1}| = |h_{d/2-1}| with h_{d/2} = 0, is the largest and leaving it out shows
    cases = [(16, 10000.0, torch.tensor([0, 1, 2, 7, 40, 300, 4000]), 0.0), (8, 100.0, torch.tensor([0, 3, 25, 1000]), 10.0)]
    for head_dim, base, distances, loud in cases:
        q = torch.randn(head_dim, generator=gen, dtype=torch.float64)
        k = torch.randn(head_dim, generator=gen, dtype=torch.float64)
        if loud:
            q[-2:], k[-2:] = loud * q[-4:-2], k[-4:-2]
        freqs = rope.inv_freq(head_dim, base)
        want, factor = _score_bound(q, k, distances, freqs)
        # the true |score| of q at position m = distance and k at n = 0: what any bound must stay above
        scores = (rope.apply_rope(q.expand(len(distances), head_dim), distances, freqs, layout="interleaved") @ k).abs()
        where = f"head_dim={head_dim}, base={base:g}"
        # nothing to hide: no lclib function computes this bound (decay_bound is only its distance factor)
        got = as_tensor(call(fn, q=q, k=k, distances=distances, inv_freq=freqs), distances.shape, where,
                        like="distances", sequences=True)
        if torch.allclose(got, want, rtol=1e-5, atol=1e-8):
            continue
        slips = [
            (factor, "this is the distance factor sum_j |S_j| alone: multiply it by max_i |h_{i+1} - h_i|."),
            (factor / (head_dim // 2), "this is the relative bound (1/(d/2)) sum_j |S_j| that the plot shows: "
                                       "the bound for q and k multiplies sum_j |S_j| by max_i |h_{i+1} - h_i|."),
            (want / (head_dim // 2), "you average |S_j| over j where the bound sums it."),
            (_score_bound(q, k, distances, freqs, last_term=False)[0],
             "include the last difference: with h_{d/2} = 0 it is |h_{d/2-1}|, which can be the largest."),
            (_score_bound(q, k, distances, freqs, inclusive=False)[0],
             "your partial sums are shifted by one: S_1 = e^{j(m-n)theta_0} (pair 0 alone) and S_{d/2} sums all pairs."),
            (_score_bound(q, k, distances, freqs, conjugate=False)[0],
             "h_i is q's pair times the complex conjugate of k's pair: conjugate k."),
            (_score_bound(q, k, distances, freqs, layout="half")[0],
             "you paired (i, i + d/2): the paper's pairs are (2i, 2i+1), the interleaved layout."),
        ]
        for value, hint in slips:
            if torch.allclose(got, value, rtol=1e-5, atol=1e-8):
                raise CheckFailed(f"{where}: {hint}")
        below = torch.nonzero(got < scores - 1e-9).flatten()
        if len(below):
            i = int(below[0])
            raise CheckFailed(f"{where}: not an upper bound: at distance {int(distances[i])} the true |score| is "
                              f"{scores[i].item():.4f} and your bound {got[i].item():.4f}.")
        i = int((got - want).abs().argmax())
        raise CheckFailed(f"{where}: at distance {int(distances[i])} expected {want[i].item():.4f}, got {got[i].item():.4f}.")
    return "your bound matches RoFormer's (section 3.4.3) and stays above every true score."
