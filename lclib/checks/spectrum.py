"""Checkers for notebook 05b, the rotary spectrum: Liu et al.'s critical dimension."""

from __future__ import annotations

import math
from collections.abc import Callable

from .. import rope, spectrum
from .answers import CheckFailed, as_int
from .runner import call, checker

HIDE = (spectrum.critical_dimension, spectrum.pair_table)  # each gives the answer (pair_table row by row)

# (head_dim, base, context): the lab's model, Llama 2 and 3, a base so small every pair turns, a context too
# short for any pair to turn, and shapes the notebook never prints
CASES = [(16, 10000.0, 256), (128, 10000.0, 4096), (128, 500000.0, 8192), (16, 50.0, 256), (16, 10000.0, 5),
         (64, 1e6, 32768), (32, 500.0, 1000), (96, 10000.0, 2048), (8, 2.0e6, 300)]


@checker
def check_critical_dimension(fn: Callable[[int, float, int], int]) -> str:
    """fn(head_dim, base, context) must return the dimensions (2 per pair) whose pair turns fully in < context tokens."""
    for head_dim, base, context in CASES:
        want = spectrum.critical_dimension(head_dim, base, context)
        where = f"head_dim {head_dim}, base {base:g}, context {context}"
        got = as_int(call(fn, head_dim=head_dim, base=base, context=context, hide=HIDE), where,
                     "a number of dimensions (an int)")
        if got == want:
            continue
        wavelengths = rope.wavelengths(rope.inv_freq(head_dim, base))
        pairs = int((wavelengths < context).sum())
        if got == pairs:
            raise CheckFailed(f"{where}: you return {got}, the number of pairs; the critical dimension counts "
                              f"dimensions, two per pair ({want}).")
        if got == head_dim - want:
            raise CheckFailed(f"{where}: expected {want}, got {got}: you count the pairs that do not turn. A pair "
                              "counts when its wavelength 2 pi base^(2i/d) is shorter than the context: the fast "
                              "pairs, from pair 0.")
        x = head_dim / 2 * math.log(context / (2 * math.pi)) / math.log(base)
        if got == 2 * math.floor(x):
            raise CheckFailed(f"{where}: expected {want}, got {got}: pairs 0 .. floor(x) complete a turn, which is "
                              "floor(x) + 1 pairs (ceil(x) in Liu et al.'s formula), not floor(x).")
        raise CheckFailed(f"{where}: expected {want}, got {got} (the {pairs} fastest pairs turn inside the context; "
                          "clip to 0 .. head_dim).")
    return "two dimensions for every pair that completes a turn inside the context, as Liu et al. count them."
