"""Checkers for the notebooks' exercises: run the student's function, compare with lclib, and hint.

Each checker returns True and prints one line when the answer is right, raises CheckFailed (an
AssertionError) with a specific hint when it is wrong, and, on an untouched stub (it raises
NotImplementedError), prints that the exercise is not done yet and returns False: the committed
notebooks then show no error output, yet a stub never passes.
"""

from __future__ import annotations

import functools
import math
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


# --- notebook 02: RoPE scaling --------------------------------------------------------------------

from . import scaling  # noqa: E402  (kept with its section so the sections merge independently)


@checker
def check_ntk_exponent(fn: Callable[[int], float]) -> str:
    """fn(head_dim) must return the exponent e of base' = base * s^e that divides the last pair by exactly s."""
    for head_dim in (4, 8, 64, 128):
        got = fn(head_dim)
        if not isinstance(got, (int, float)) or isinstance(got, bool):
            raise CheckFailed(f"return a number (the exponent), got {type(got).__name__}")
        want = head_dim / (head_dim - 2)
        if abs(got - want) > 1e-9:
            last = (head_dim - 2) / head_dim  # theta_last = base^(-(d-2)/d)
            if abs(got - 1) < 1e-9:
                raise CheckFailed("with exponent 1 the last pair is divided by s^((d-2)/d), not s: "
                                  "solve (s^e)^((d-2)/d) = s for e.")
            raise CheckFailed(f"head_dim={head_dim}: the last pair is theta = base^(-{last:.4g}); with base' = base * s^e "
                              f"it is divided by s^(e * {last:.4g}). Choose e so that this is s^1.")
    return "e = d/(d-2): theta_last = (base s^e)^(-(d-2)/d) = theta_last / s, while pair 0 (exponent 0) is unchanged."


@checker
def check_yarn_untouched_pairs(fn: Callable[..., int]) -> str:
    """fn(head_dim, base, original_max_len, beta_fast) must count the pairs whose theta YaRN leaves unchanged."""
    cases = [(128, 10000.0, 4096, 32.0), (128, 10000.0, 2048, 32.0), (64, 10000.0, 512, 32.0),
             (128, 500000.0, 8192, 32.0), (64, 10000.0, 4096, 16.0), (16, 10000.0, 64, 32.0)]
    for head_dim, base, length, beta_fast in cases:
        plain = rope.inv_freq(head_dim, base)
        want = int((scaling.yarn(head_dim, base, 4.0, length, beta_fast)[0] == plain).sum())
        got = fn(head_dim, base, length, beta_fast)
        if got != want:
            by_wavelength = int((rope.wavelengths(plain) < length / beta_fast).sum())
            hint = ""
            if got == by_wavelength:
                hint = (" Counting wavelengths below L/beta_fast is the paper's rule; transformers rounds the ramp start "
                        "down and clips it at 0, so pair 0 is always kept: use floor and max(., 0).")
            elif isinstance(got, int) and abs(got - want) == 1:
                hint = " Off by one: pairs 0..low are kept, that is low + 1 pairs."
            raise CheckFailed(f"head_dim={head_dim}, base={base}, L={length}, beta_fast={beta_fast}: expected {want}, "
                              f"got {got}.{hint}")
    return "pairs 0 .. floor(i(beta_fast)) keep their frequency, with i(beta) = d ln(L / (2 pi beta)) / (2 ln base)."


@checker
def check_dynamic_ntk(fn: Callable[..., torch.Tensor]) -> str:
    """fn(head_dim, base, scale, original_max_len, seq_len) must return dynamic NTK's inv_freq (head_dim // 2,)."""
    head_dim, base, scale, length = 16, 10000.0, 4.0, 64
    for seq_len in (1, 32, 64, 65, 128, 256, 1000):
        want = scaling.dynamic_ntk(head_dim, base, scale, length, seq_len)[0]
        got = fn(head_dim, base, scale, length, seq_len)
        if not isinstance(got, torch.Tensor) or got.shape != want.shape:
            raise CheckFailed(f"return inv_freq as a tensor of shape {tuple(want.shape)}, got {getattr(got, 'shape', type(got))}")
        if _close(got, want, atol=1e-10):
            continue
        if seq_len > length and _close(got, scaling.dynamic_ntk(head_dim, base, scale, length, seq_len - 1)[0], atol=1e-10):
            raise CheckFailed("off by one: seq_len is the number of positions (last index + 1); use it as given.")
        if seq_len < length:
            raise CheckFailed(f"at seq_len={seq_len} < L the result must be plain RoPE: use max(seq_len, L) in alpha.")
        alpha = scale * seq_len / length - (scale - 1)
        if _close(got, rope.inv_freq(head_dim, base * alpha), atol=1e-10):
            raise CheckFailed("the base must grow by alpha^(d/(d-2)), not alpha, so that the last pair is divided by alpha.")
        raise CheckFailed(f"at seq_len={seq_len} expected alpha = s * seq_len / L - (s - 1) = {alpha:g} and "
                          "base' = base * alpha^(d/(d-2)).")
    return "plain RoPE up to L, then the base grows with the length: alpha = s^2 - s + 1 at s*L."


# --- notebook 03: LongNet dilated attention -------------------------------------------------------

@checker
def check_pattern_edges(fn: Callable[[int, int, int], int]) -> str:
    """fn(n, segment_len, dilation) must count the (query, key) pairs of one pattern, one head, when r | w | n."""
    from . import dilated

    for n, w, r in [(4096, 512, 4), (1024, 1024, 1), (2048, 256, 8), (64, 16, 2), (96, 32, 32)]:
        want = int(dilated.edge_counts(n, w, r).pattern_sum_per_head[0])
        got = fn(n, w, r)
        if got == want:
            continue
        if got == n * w // r:
            raise CheckFailed(f"n={n}, w={w}, r={r}: {got} counts kept positions times w; each of the n/w "
                              "segments keeps w/r positions and every kept query sees every kept key: (w/r)^2 pairs.")
        if got == n * w:
            raise CheckFailed(f"n={n}, w={w}, r={r}: {got} ignores the dilation; only every r-th position of a segment is kept.")
        if got == n // r:
            raise CheckFailed(f"n={n}, w={w}, r={r}: {got} counts kept positions, not (query, key) pairs.")
        raise CheckFailed(f"n={n}, w={w}, r={r}: expected {want} pairs, got {got}. Segments: n/w; kept per segment: w/r.")
    return "one pattern has (n/w) * (w/r)^2 = n*w/r^2 pairs: linear in n for fixed (w, r)."


def _layers_for_full_reach(n: int, segment_lengths, dilation_rates, num_heads: int, limit: int = 16) -> int | None:
    from . import dilated

    mask = dilated.attention_mask(n, segment_lengths, dilation_rates, num_heads).any(0)
    for layers in range(1, limit + 1):
        if bool(dilated.reach(mask, layers).all()):
            return layers
    return None


@checker
def check_layers_for_full_reach(fn: Callable[..., int | None]) -> str:
    """fn(n, segment_lengths, dilation_rates, num_heads) -> the fewest layers that connect every pair, or None."""
    cases = [(64, [64], [1], 1), (64, [16, 64], [1, 4], 4), (48, [8, 48], [1, 8], 1), (64, [16, 32], [1, 2], 2),
             (64, [8, 16, 32, 64], [1, 2, 4, 8], 8), (40, [8, 40], [1, 5], 1)]
    for n, ws, rs, heads in cases:
        want = _layers_for_full_reach(n, ws, rs, heads)
        got = fn(n, ws, rs, heads)
        if got == want:
            continue
        if want is None:
            raise CheckFailed(f"n={n}, w={ws}, r={rs}, heads={heads}: no depth connects every pair (the largest "
                              f"segment {max(ws)} < n keeps the mask block diagonal), return None; got {got}.")
        if got is None:
            raise CheckFailed(f"n={n}, w={ws}, r={rs}, heads={heads}: every pair is connected after {want} layers, "
                              "but you returned None: did you add the residual self-loops (mask | I)?")
        raise CheckFailed(f"n={n}, w={ws}, r={rs}, heads={heads}: expected {want} layers, got {got}. Take the union "
                          "over heads, add self-loops, and multiply boolean reach matrices one layer at a time.")
    return "you found the depth at which every token can influence every other (or that none does)."


@checker
def check_one_pattern_attention(fn: Callable[..., torch.Tensor]) -> str:
    """fn(q, k, v, segment_len, dilation) on (seq_len, head_dim) tensors: one pattern, offset 0, seq_len a multiple of w."""
    from . import dilated

    gen = torch.Generator().manual_seed(3)
    for n, w, r in [(32, 8, 2), (48, 16, 4), (24, 24, 1), (36, 12, 3)]:
        q, k, v = torch.randn(3, n, 8, generator=gen, dtype=torch.float64).unbind(0)
        want = dilated.dilated_attention(q[None, None], k[None, None], v[None, None], [w], [r])[0, 0]
        got = fn(q, k, v, w, r)
        if not isinstance(got, torch.Tensor) or got.shape != want.shape:
            raise CheckFailed(f"return a tensor shaped like v {tuple(v.shape)}, got {getattr(got, 'shape', type(got))}")
        if _close(got, want):
            continue
        kept = torch.zeros(n, dtype=torch.bool)
        kept[::r] = True
        if (got[~kept].abs() > 1e-9).any():
            raise CheckFailed(f"w={w}, r={r}: rows a pattern does not keep (position not 0 mod r) must be 0.")
        unscaled = dilated.dilated_attention(q[None, None] * math.sqrt(8), k[None, None], v[None, None], [w], [r])[0, 0]
        if _close(got, unscaled):
            raise CheckFailed("scale the scores by 1/sqrt(head_dim) before the softmax.")
        raise CheckFailed(f"w={w}, r={r}: kept rows differ. Gather x.view(n // w, w, d)[:, ::r], run softmax attention "
                          "inside each segment's block, and scatter the rows back to positions s*w + j*r.")
    return "your gather / attend / scatter matches lclib.dilated for one pattern."


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


# --- notebook 05: effective context (RULER-lite) -------------------------------------------------

from .ruler import metrics as ruler_metrics, tasks as ruler  # noqa: E402  (kept with its section)


@checker
def check_string_match_all(fn: Callable[[str, list[str]], float]) -> str:
    """fn(prediction, references) must return the fraction of references found, case-insensitively."""
    cases = [("The numbers are 123 and 456.", ["123", "456"]), ("only 123 here", ["123", "456", "789", "000"]),
             ("nothing", ["123"]), ("ABCDE, fghij", ["abcde", "FGHIJ", "klmno"]), ("  7  ", ["7"])]
    for pred, refs in cases:
        got, want = fn(pred, refs), ruler_metrics.string_match_all(pred, refs)
        if not isinstance(got, (int, float)) or abs(got - want) > 1e-12:
            if isinstance(got, (int, float)) and got == ruler_metrics.string_match_part(pred, refs):
                raise CheckFailed(f"on {pred!r} with {refs} you return {got}: that is string_match_part (any "
                                  "reference). string_match_all is the fraction of references found.")
            if pred == "ABCDE, fghij":
                raise CheckFailed("RULER compares in lower case: 'ABCDE' in the output matches the reference 'abcde'.")
            raise CheckFailed(f"on {pred!r} with references {refs} expected {want}, got {got}")
    return "your string_match_all scores like RULER's."


@checker
def check_effective_length(fn: Callable[[dict, float], int]) -> str:
    """fn(scores, threshold) must return RULER's effective length (contiguous reading, 0 if none)."""
    cases = [({4096: 0.95, 8192: 0.90, 16384: 0.86, 32768: 0.70, 65536: 0.88}, 0.856),
             ({160: 0.9, 320: 0.3, 640: 0.1}, 0.9), ({160: 0.5, 320: 0.2}, 0.6), ({640: 0.8, 160: 0.9, 320: 0.85}, 0.8)]
    for scores, threshold in cases:
        got, want = fn(dict(scores), threshold), ruler_metrics.effective_length(scores, threshold)
        if got != want:
            if got == ruler_metrics.effective_length(scores, threshold, contiguous=False):
                raise CheckFailed(f"{scores}, threshold {threshold}: you return {got}, a length that passes after a "
                                  "shorter one failed. The effective length stops at the first failure.")
            if got is None:
                raise CheckFailed("return 0 (not None) when even the shortest length misses the threshold.")
            raise CheckFailed(f"{scores}, threshold {threshold}: expected {want}, got {got} (sort the lengths first; "
                              "a score equal to the threshold passes).")
    return "largest length before the first miss, as RULER reads its Table 3."


@checker
def check_vt_reader(fn: Callable[[str], list[str]]) -> str:
    """fn(prompt) must return the variables of the asked chain, read from a variable-tracking prompt."""
    for seed in range(6):
        s = ruler.make_sample("vt", 400, seed, num_chains=2 if seed % 2 else 1, num_hops=2 + seed % 3,
                              layout="sentences", example=False)  # the exercise reads "VAR B = VAR A." sentences
        got = fn(s.prompt)
        if not isinstance(got, (list, tuple)):
            raise CheckFailed(f"return a list of variable names, got {type(got).__name__}")
        if sorted(got) != sorted(s.answers):
            missing, extra = sorted(set(s.answers) - set(got)), sorted(set(got) - set(s.answers))
            raise CheckFailed(f"seed {seed}: missing {missing}, extra {extra}. Start from the variable assigned the "
                              "asked value, then follow 'VAR B = VAR A' lines in order of appearance.")
    return "your reader follows every chain: the task is answerable at any length, so a miss is the model's."
