"""Checkers for notebook 02, RoPE scaling: the NTK exponent, YaRN's untouched pairs, dynamic NTK."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .. import rope, scaling
from .common import CheckFailed, as_int, as_number, as_tensor, call, checker, close


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
        got = as_int(call(fn, head_dim=head_dim, base=base, original_max_len=length, beta_fast=beta_fast), where,
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


@checker
def check_dynamic_ntk(fn: Callable[..., torch.Tensor]) -> str:
    """fn(head_dim, base, scale, original_max_len, seq_len) must return dynamic NTK's inv_freq (head_dim // 2,)."""
    head_dim, base, scale, length = 16, 10000.0, 4.0, 64
    for seq_len in (1, 32, 64, 65, 128, 256, 1000):
        want = scaling.dynamic_ntk(head_dim, base, scale, length, seq_len)[0]
        got = as_tensor(call(fn, head_dim=head_dim, base=base, scale=scale, original_max_len=length, seq_len=seq_len),
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
