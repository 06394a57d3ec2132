"""Checkers for notebook 02, RoPE scaling: the YaRN paper's ramp, Llama 3's bands, dynamic NTK.

Two more, check_ntk_exponent and check_yarn_untouched_pairs, check results that notebook 02 derives in
its text (the NTK exponent d/(d-2), the pairs YaRN leaves untouched); none of its exercises calls them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .. import rope, scaling
from .answers import CheckFailed, as_int, as_number, as_pair, as_tensor, close
from .runner import call, checker


# --- exercise 1: the YaRN paper's ramp gamma(r) ---------------------------------------------------

def _paper_gamma(inv_freq: torch.Tensor, original_max_len: int, beta_fast: float, beta_slow: float) -> torch.Tensor:
    """gamma(r) of Peng et al. 2023, section 3.2: 0 for r < alpha, 1 for r > beta, linear in r between.

    r = L / wavelength is the number of turns pair i makes in the training context; alpha = beta_slow,
    beta = beta_fast. gamma = 1 keeps theta_i, gamma = 0 divides it by s. Shape: like inv_freq.
    """
    r = original_max_len / rope.wavelengths(inv_freq)  # (d/2,) turns in L
    return ((r - beta_slow) / (beta_fast - beta_slow)).clamp(0.0, 1.0)


def _gamma_slips(inv_freq: torch.Tensor, length: int, beta_fast: float, beta_slow: float,
                 head_dim_base: tuple[int, float] | None) -> dict[str, torch.Tensor]:
    """Ramps that common slips give, each keyed by the hint that names the slip."""
    want = _paper_gamma(inv_freq, length, beta_fast, beta_slow)
    r = length / rope.wavelengths(inv_freq)
    slips = {
        "you return the weight of theta_i / s (1 = interpolate), as scaling.yarn_ramp does; the paper's gamma is "
        "the weight of theta_i itself: 1 for the fast pairs (r > beta), 0 for the slow ones.": 1 - want,
        "gamma must stay in [0, 1]: 0 below alpha = beta_slow, 1 above beta = beta_fast (clip the line).":
            (r - beta_slow) / (beta_fast - beta_slow),
        "r is the number of turns in L, L / wavelength = L theta_i / (2 pi), not wavelength / L.":
            ((1 / r - beta_slow) / (beta_fast - beta_slow)).clamp(0.0, 1.0),
        "a turn is 2 pi radians: r = L theta_i / (2 pi), not L theta_i.":
            ((length * inv_freq - beta_slow) / (beta_fast - beta_slow)).clamp(0.0, 1.0),
    }
    if head_dim_base is not None:
        ramp = scaling.yarn_ramp(head_dim_base[0], head_dim_base[1], length, beta_fast, beta_slow)
        hint = ("that is transformers' ramp, linear in the pair index between rounded ends; the paper's ramp is "
                "linear in r = L / wavelength.")
        slips[hint] = 1 - ramp
        slips[hint + " (And gamma = 1 keeps theta_i.)"] = ramp
    return slips


@checker
def check_yarn_gamma(fn: Callable[..., torch.Tensor]) -> str:
    """fn(inv_freq, original_max_len, beta_fast, beta_slow) must return the YaRN paper's gamma per pair.

    Shapes: inv_freq (n,) float64, fastest pair first; the answer (n,), a tensor or an array.
    """
    custom = torch.tensor([2.0, 0.5, 0.05, 0.004, 1e-4], dtype=torch.float64)  # r = 318, 80, 8.0, 0.64, 0.016 at L = 1000
    cases = [((128, 10000.0), 4096, 32.0, 1.0), ((64, 10000.0), 512, 32.0, 1.0), ((128, 500000.0), 8192, 32.0, 1.0),
             ((128, 10000.0), 4096, 16.0, 2.0), ((32, 10000.0), 2048, 8.0, 0.5), (None, 1000, 32.0, 1.0)]
    for head_dim_base, length, beta_fast, beta_slow in cases:
        inv_freq = rope.inv_freq(*head_dim_base) if head_dim_base else custom
        want = _paper_gamma(inv_freq, length, beta_fast, beta_slow)
        where = (f"inv_freq of head_dim={head_dim_base[0]}, base={head_dim_base[1]:g}" if head_dim_base
                 else f"inv_freq={[float(x) for x in custom]}") + f", L={length}, beta_fast={beta_fast}, beta_slow={beta_slow}"
        got = as_tensor(call(fn, inv_freq=inv_freq, original_max_len=length, beta_fast=beta_fast, beta_slow=beta_slow,
                             hide=(scaling.llama3,)),
                        want.shape, where, like="inv_freq")
        if close(got, want, atol=1e-9):
            continue
        for hint, slip in _gamma_slips(inv_freq, length, beta_fast, beta_slow, head_dim_base).items():
            if not close(slip, want, atol=1e-6) and close(got, slip, atol=1e-6):
                raise CheckFailed(f"{where}: {hint}")
        i = int((got - want).abs().argmax())
        r = length / rope.wavelengths(inv_freq)[i].item()
        raise CheckFailed(f"{where}: at pair {i}, r = L / wavelength = {r:.4g} turns, expected gamma = "
                          f"{want[i].item():.4g}, got {got[i].item():.4g}.")
    return ("gamma(r) = clip((r - alpha) / (beta - alpha), 0, 1) with r = L theta_i / (2 pi): linear in the turns r, "
            "which fall exponentially with the pair index.")


# --- exercise 2: Llama 3's bands as pair indices ---------------------------------------------------

def _band_edges(inv_freq: torch.Tensor, length: int, low_freq_factor: float, high_freq_factor: float) -> tuple[int, int]:
    """(first blended pair, first divided pair) of Llama 3 scaling: the rule of lclib.scaling.llama3.

    Kept: wavelength < L / high_freq_factor; divided by s: wavelength > L / low_freq_factor; blended between.
    Wavelengths grow with the pair index, so the three bands are contiguous.
    """
    wavelength = rope.wavelengths(inv_freq)
    kept = int((wavelength < length / high_freq_factor).sum())
    divided = int((wavelength > length / low_freq_factor).sum())
    return kept, len(inv_freq) - divided


def _as_edges(got: object, where: str) -> tuple[int, int]:
    lo, hi = as_pair(got, where, "a pair of pair indices (first_blended, first_divided)")
    for x in (lo, hi):
        if not float(x).is_integer():
            raise CheckFailed(f"{where}: pair indices are whole numbers, got {x}.")
    return int(lo), int(hi)


@checker
def check_llama3_band_edges(fn: Callable[..., tuple[int, int]]) -> str:
    """fn(inv_freq, original_max_len, low_freq_factor, high_freq_factor) must return Llama 3's band edges.

    (first_blended, first_divided): pairs 0 .. first_blended - 1 are kept, first_blended .. first_divided - 1
    blended, first_divided .. n - 1 divided by s. Shapes: inv_freq (n,) float64, fastest pair first.
    """
    cases = [(128, 500000.0, 8192, 1.0, 4.0), (128, 10000.0, 4096, 1.0, 4.0), (64, 10000.0, 512, 1.0, 4.0),
             (128, 500000.0, 8192, 2.0, 3.0), (64, 10000.0, 2048, 1.0, 32.0),
             (16, 10000.0, 8, 1.0, 4.0),          # no pair kept: even pair 0 turns fewer than 4 times in L
             (32, 10000.0, 50000, 1.0, 4.0),      # no pair divided
             (32, 10000.0, 10_000_000, 1.0, 4.0)]  # every pair kept
    for head_dim, base, length, low, high in cases:
        inv_freq = rope.inv_freq(head_dim, base)
        want = _band_edges(inv_freq, length, low, high)
        where = f"inv_freq of head_dim={head_dim}, base={base:g}, L={length}, low={low:g}, high={high:g}"
        got = _as_edges(call(fn, inv_freq=inv_freq, original_max_len=length, low_freq_factor=low,
                             high_freq_factor=high, hide=(scaling.llama3,)), where)
        if got == want:
            continue
        kept, blended = want[0], want[1] - want[0]
        if got == (kept, blended) and blended != want[1]:
            raise CheckFailed(f"{where}: {got} are the counts (kept, blended); return where the bands start: "
                              "first_divided = kept + blended.")
        if got == _band_edges(inv_freq, length, high, low)[::-1] or got == _band_edges(inv_freq, length, high, low):
            raise CheckFailed(f"{where}: low and high are swapped: pairs turning more than high_freq_factor times in "
                              "L (wavelength < L / high_freq_factor) are kept.")
        wavelength = rope.wavelengths(inv_freq)
        by_product = (int((wavelength < length * high).sum()), len(inv_freq) - int((wavelength > length * low).sum()))
        if got == by_product and by_product != want:
            raise CheckFailed(f"{where}: the factors divide L: kept pairs have wavelength < L / high_freq_factor, "
                              "divided ones wavelength > L / low_freq_factor.")
        raise CheckFailed(f"{where}: expected (first_blended, first_divided) = {want}, got {got}. Kept: wavelength < "
                          f"L / high = {length / high:g} tokens; divided: wavelength > L / low = {length / low:g}.")
    return ("kept below L / high_freq_factor, divided above L / low_freq_factor, blended between; for Llama 3.1 "
            "(d 128, base 5e5, L 8192) pairs 29..34, six pairs, are blended.")


# --- exercise 3: dynamic NTK ----------------------------------------------------------------------

@checker
def check_dynamic_ntk(fn: Callable[..., torch.Tensor]) -> str:
    """fn(head_dim, base, scale, original_max_len, seq_len) must return dynamic NTK's inv_freq (head_dim // 2,)."""
    head_dim, base, scale, length = 16, 10000.0, 4.0, 64
    for seq_len in (1, 32, 64, 65, 128, 256, 1000):
        want = scaling.dynamic_ntk(head_dim, base, scale, length, seq_len)[0]
        got = as_tensor(call(fn, head_dim=head_dim, base=base, scale=scale, original_max_len=length, seq_len=seq_len,
                             hide=(scaling.dynamic_ntk, scaling.ntk)),  # NTK with alpha for s is the rest of the answer
                        want.shape, f"seq_len={seq_len}", like="inv_freq")
        if close(got, want, atol=1e-10):
            continue
        if seq_len > length and close(got, scaling.dynamic_ntk(head_dim, base, scale, length, seq_len - 1)[0], atol=1e-10):
            raise CheckFailed("off by one: seq_len is the number of positions (last index + 1); use it as given.")
        if seq_len < length:
            raise CheckFailed(f"at seq_len={seq_len} < L the result must be plain RoPE: use max(seq_len, L) in alpha.")
        alpha = scale * seq_len / length - (scale - 1)
        if close(got, rope.inv_freq(head_dim, base * alpha), atol=1e-10):
            raise CheckFailed("the base must grow by alpha^(d/(d-2)), not alpha, so that the last pair is divided by alpha.")
        raise CheckFailed(f"at seq_len={seq_len} expected alpha = s * seq_len / L - (s - 1) = {alpha:g} and "
                          "base' = base * alpha^(d/(d-2)).")
    return "plain RoPE up to L, then the base grows with the length: alpha = s^2 - s + 1 at s*L."


# --- results the notebook derives in its text -------------------------------------------------

@checker
def check_ntk_exponent(fn: Callable[[int], float]) -> str:
    """fn(head_dim) must return the exponent e of base' = base * s^e that divides the last pair by exactly s."""
    for head_dim in (4, 8, 64, 128):
        want = head_dim / (head_dim - 2)
        got = as_number(call(fn, head_dim=head_dim), f"head_dim={head_dim}", "a number (the exponent)")
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
        where = f"head_dim={head_dim}, base={base}, L={length}, beta_fast={beta_fast}"
        got = as_int(call(fn, head_dim=head_dim, base=base, original_max_len=length, beta_fast=beta_fast,
                          hide=(scaling.yarn, scaling.yarn_ramp, scaling.yarn_correction_range)), where,
                     "a count of pairs (an int)")
        if got != want:
            by_wavelength = int((rope.wavelengths(plain) < length / beta_fast).sum())
            hint = ""
            if got == by_wavelength:
                hint = (" Counting wavelengths below L/beta_fast is the paper's rule; transformers rounds the ramp start "
                        "down and clips it at 0, so pair 0 is always kept: use floor and max(., 0).")
            elif abs(got - want) == 1:
                hint = " Off by one: pairs 0..low are kept, that is low + 1 pairs."
            raise CheckFailed(f"{where}: expected {want}, got {got}.{hint}")
    return "pairs 0 .. floor(i(beta_fast)) keep their frequency, with i(beta) = d ln(L / (2 pi beta)) / (2 ln base)."
