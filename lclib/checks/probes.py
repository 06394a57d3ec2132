"""Checkers for notebook 04, lost in the middle: the Bayes (MAP) policy's curve (lclib.kv_task.bayes_accuracy, the
key-value task's best possible curve, which the position sweeps of lclib.probes are read against) and the Wilson
interval (lclib.probes.wilson_interval)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .. import kv_task, probes
from .answers import CheckFailed, as_pair, as_tensor
from .runner import call, checker


def _map_curve_variants(p: torch.Tensor, k: int) -> dict[str, torch.Tensor]:
    """Curves that common slips give, each keyed by the hint that names the slip."""
    q = 1.0 / k
    n = len(p)
    higher, ties = [], []
    for i in range(n):
        others = torch.cat([p[:i], p[i + 1:]])
        same = torch.isclose(others, p[i], rtol=1e-9, atol=1e-15)
        higher.append(int(((others > p[i]) & ~same).sum()))
        ties.append(int(same.sum()))
    h, t = torch.tensor(higher, dtype=torch.float64), torch.tensor(ties, dtype=torch.float64)
    return {
        "close: you ignore ties. Positions with the same demand as i split the win: with c equal-demand "
        "matches, i wins with probability 1/(1+c).": (1 - q) ** h,
        "close: an equal-demand match is not a sure loss. Greedy decoding picks one of the c + 1 tied matches "
        "at random, so i still wins with probability 1/(1+c).": (1 - q) ** (h + t),
        "close, but E[1/(1+C)] is not 1/(1+E[C]): average 1/(1+c) over C ~ Binomial(number of ties, 1/K).":
            (1 - q) ** h / (1 + t * q),
        "every position at 1.0: the queried key also sits at other positions with probability 1/K each.":
            torch.ones(n, dtype=torch.float64),
        "that is the demand p itself: exact match is decided by which match the MAP policy picks, "
        "(1 - 1/K)^(number of positions with higher demand), not by p's size.": p.to(torch.float64),
    }


@checker
def check_bayes_curve(fn: Callable[[torch.Tensor, int], torch.Tensor]) -> str:
    """fn(p, key_symbols) must return the Bayes (MAP) policy's exact match per position (lclib.kv_task.bayes_accuracy).

    Shapes: p (n,) float64; the answer (n,), a tensor, an array or a list.
    """
    cases = [(kv_task.demand("uniform", 6), 4), (torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64), 2),
             (kv_task.demand("smooth", 24), 32), (kv_task.demand("recency", 10, tau=2.0), 8),
             (kv_task.demand("ends", 12, ends=2), 16), (torch.tensor([0.3, 0.2, 0.2, 0.2, 0.1], dtype=torch.float64), 3)]
    for p, k in cases:
        want = kv_task.bayes_accuracy(p, k)
        where = f"{len(p)} positions, key_symbols={k}"
        got = as_tensor(call(fn, p=p, key_symbols=k, hide=(kv_task.bayes_accuracy,)), want.shape, where, like="p",
                        sequences=True)
        if torch.allclose(got, want, atol=1e-6):
            continue
        for hint, curve in _map_curve_variants(p, k).items():
            if not torch.allclose(curve, want, atol=1e-6) and torch.allclose(got, curve, atol=1e-6):
                raise CheckFailed(f"{where}: {hint}")
        raise CheckFailed(f"for p = {[round(float(x), 3) for x in p[:6]]}..., K = {k}: expected "
                          f"{[round(float(x), 3) for x in want[:6]]}..., got {[round(float(x), 3) for x in got[:6]]}...; "
                          "position i wins when no higher-demand position holds the same key: (1 - 1/K)^(number higher).")
    return ("your curve matches lclib.kv_task.bayes_accuracy for uniform, U-shaped, step and one-sided demands, "
            "ties included.")


@checker
def check_wilson(fn: Callable[[int, int], tuple[float, float]]) -> str:
    """fn(successes, trials) must return the 95% Wilson score interval (lo, hi) of a proportion."""
    for hits, n in [(50, 100), (0, 256), (256, 256), (200, 256), (3, 10)]:
        lo_w, hi_w = (float(x) for x in probes.wilson_interval(torch.tensor(hits), n))
        lo, hi = as_pair(call(fn, successes=hits, trials=n, hide=(probes.wilson_interval,)), f"at {hits}/{n}")
        if abs(lo - lo_w) < 1e-4 and abs(hi - hi_w) < 1e-4:
            continue
        p = hits / n
        se = math.sqrt(p * (1 - p) / n)
        if abs(lo - (p - 1.96 * se)) < 1e-3 and abs(hi - (p + 1.96 * se)) < 1e-3:
            raise CheckFailed(f"that is the normal (Wald) interval: at {hits}/{n} it gives [{lo:.3f}, {hi:.3f}], "
                              "which collapses at 0% and 100%. Use Wilson: centre (p + z^2/2n) / (1 + z^2/n).")
        raise CheckFailed(f"at {hits}/{n} expected [{lo_w:.4f}, {hi_w:.4f}], got [{lo:.4f}, {hi:.4f}]; "
                          "half-width z sqrt(p(1-p)/n + z^2/4n^2) / (1 + z^2/n), z = 1.96.")
    return "your Wilson interval matches lclib.probes.wilson_interval, including at 0% and 100%."
