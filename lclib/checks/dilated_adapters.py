"""Checkers for notebook 03b, dilated attention inside the model: which pairs of the key-value task a depth
can answer (paths in the mask graph), and the length from which dilated attention is the cheaper one."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .. import dilated, kernels
from .answers import CheckFailed, as_int, as_tensor, describe
from .runner import call, checker

# (n_pairs, pattern, layers): the notebook's schedule at 1-3 layers, a schedule whose long pattern skips most
# positions, sliding windows (one pattern, r = 1), and a window of the previous 8 tokens without the token
# itself (("strict", w)), where only self-loops let a path wait a layer
ANSWERABLE_CASES = [(24, ([16, 32, 64, 128], [1, 2, 4, 8], 4), 1), (24, ([16, 32, 64, 128], [1, 2, 4, 8], 4), 2),
                    (24, ([16, 32, 64, 128], [1, 2, 4, 8], 4), 3), (12, ([8, 32, 64], [1, 4, 8], 2), 2),
                    (10, ([8], [1], 1), 2), (10, ([8], [1], 1), 5), (16, ([16, 64], [1, 16], 4), 1),
                    (6, ("strict", 8), 4)]


def case_mask(n_pairs: int, pattern: tuple) -> tuple[Tensor, str]:
    """The one-layer graph (seq_len, seq_len) of a case, seq_len = 3 n_pairs + 5 (BOS, the pairs, one question),
    and its name."""
    seq_len = 3 * n_pairs + 5
    if pattern[0] == "strict":
        d = torch.arange(seq_len)[:, None] - torch.arange(seq_len)[None, :]  # (seq_len, seq_len) query - key
        return (d >= 1) & (d <= pattern[1]), f"each token reads the {pattern[1]} before it (not itself)"
    ws, rs, n_head = pattern
    return dilated.attention_mask(seq_len, ws, rs, n_head, causal=True).any(0), f"w={ws}, r={rs}, {n_head} heads"


def _answer_slots(n_pairs: int) -> tuple[Tensor, Tensor, int]:
    """Pair i's value tokens (v1 at 2 + 3i, v2 at 3 + 3i) and the question's key position a = 3n + 2
    (its logits predict v1; those at a + 1 predict v2), in lclib.kv_task.KVTask's layout with one question."""
    i = torch.arange(n_pairs)
    return 2 + 3 * i, 3 + 3 * i, 3 * n_pairs + 2


def _answerable(mask: Tensor, layers: int, n_pairs: int, self_loops: bool = True, steps: int | None = None,
                only_v1: bool = False, flip: bool = False) -> Tensor:
    """The reference (defaults) and the mistakes the hints name: bool (n_pairs,)."""
    graph = mask.T if flip else mask
    step = (graph | torch.eye(len(mask), dtype=torch.bool)) if self_loops else graph.clone()
    step = step.double()
    connected = step.clone()
    for _ in range((layers if steps is None else steps) - 1):
        connected = (step @ connected).clamp(max=1.0)
    reach = connected > 0
    v1, v2, a = _answer_slots(n_pairs)
    ok = reach[a, v1]
    return ok if only_v1 else ok & reach[a + 1, v2]


@checker
def check_answerable_pairs(fn: Callable[..., object]) -> str:
    """fn(mask, layers, n_pairs) -> bool (n_pairs,): can information travel from pair i's value tokens to
    the positions that predict them, within `layers` stacked layers of the one-layer graph mask (n, n)?
    The answer may be a tensor, a numpy array or a list, of bools or of 0/1."""
    for n_pairs, pattern, layers in ANSWERABLE_CASES:
        mask, name = case_mask(n_pairs, pattern)  # (n, n)
        want = _answerable(mask, layers, n_pairs)
        where = f"{name}, {n_pairs} pairs, layers={layers}"
        raw = call(fn, mask=mask, layers=layers, n_pairs=n_pairs, hide=(dilated.reach, _answerable))
        got = as_tensor(raw, (n_pairs,), where, sequences=True)  # a tensor, an array, or a list of bools or 0/1
        if not bool(((got == 0) | (got == 1)).all()):
            raise CheckFailed(f"{where}: expected True/False (or 1/0) for each pair, got {describe(got)}.")
        got = got.bool()
        if torch.equal(got, want):
            continue
        mistakes = [
            (dict(self_loops=False), "a token keeps its own state from one layer to the next (the residual "
             "stream): add self-loops, mask | I, before stacking layers"),
            (dict(flip=True), "mask[q, k] is True when query q reads key k: information flows from the key k "
             "(earlier) to the query q (later), so ask whether the question's position reaches back to the value"),
            (dict(only_v1=True), "an exact answer needs both value tokens: v1 (2 + 3i) must reach the question's "
             "key (3n + 2) and v2 (3 + 3i) the position after it (3n + 3)"),
            (dict(steps=layers + 1), f"{layers} layers are {layers} hops, not {layers + 1}"),
            (dict(steps=max(1, layers - 1)), f"{layers} layers are {layers} hops: one product per layer "
             "beyond the first"),
        ]
        for kwargs, hint in mistakes:
            if torch.equal(got, _answerable(mask, layers, n_pairs, **kwargs)) and not torch.equal(want, got):
                raise CheckFailed(f"{where}: {hint}.")
        wrong = (got != want).nonzero().flatten().tolist()
        raise CheckFailed(f"{where}: pairs {wrong[:6]} are wrong (expected {want[wrong[0]].item()} for pair "
                          f"{wrong[0]}); v1 of pair i sits at 2 + 3i, v2 at 3 + 3i, the question's key at 3n + 2.")
    return "you read from the mask alone which pairs a model of a given depth can possibly answer."


# (lengths, dense seconds, dilated seconds): crossing once, never, from the start, with a noisy flip back,
# and a tie (equal is not cheaper)
CROSSOVER_CASES = [
    ([1024, 2048, 4096, 8192, 16384], [0.01, 0.04, 0.16, 0.64, 2.56], [0.05, 0.08, 0.15, 0.30, 0.60]),
    ([512, 1024, 2048], [0.01, 0.02, 0.04], [0.03, 0.05, 0.09]),
    ([1024, 2048, 4096], [0.2, 0.8, 3.2], [0.1, 0.2, 0.4]),
    ([1024, 2048, 4096, 8192, 16384], [0.05, 0.1, 0.3, 1.0, 4.0], [0.06, 0.09, 0.31, 0.5, 1.0]),
    ([1024, 2048, 4096, 8192], [0.1, 0.2, 0.4, 0.8], [0.3, 0.2, 0.3, 0.4]),
]


def _crossover(lengths: Sequence[int], dense: Sequence[float], sparse: Sequence[float], stay: bool = True,
               strict: bool = True) -> int | None:
    """The reference (defaults): the shortest length from which dilated is cheaper at every longer length too."""
    cheaper = [(s < d) if strict else (s <= d) for d, s in zip(dense, sparse)]
    for i, length in enumerate(lengths):
        if cheaper[i] and (all(cheaper[i:]) or not stay):
            return int(length)
    return None


@checker
def check_crossover_length(fn: Callable[..., object]) -> str:
    """fn(lengths, dense_s, dilated_s) -> the shortest measured length from which dilated attention is
    cheaper than dense at that length and every longer one; None if there is none."""
    for lengths, dense, sparse in CROSSOVER_CASES:
        want = _crossover(lengths, dense, sparse)
        where = f"lengths={lengths}, dense_s={dense}, dilated_s={sparse}"
        raw = call(fn, lengths=list(lengths), dense_s=list(dense), dilated_s=list(sparse),
                   hide=(kernels.crossover_length, _crossover))  # the library's answer, and this checker's own
        if raw is None and want is not None:
            raise CheckFailed(f"{where}: your function returned None, but dilated is cheaper from {want} on.")
        if raw is None:
            continue
        if want is None:
            raise CheckFailed(f"{where}: dilated is never cheaper at the longest length here, so the answer is None; "
                              f"got {describe(raw)}.")
        got = as_int(raw, where, "a length (a whole number) or None")
        if got == want:
            continue
        if got == _crossover(lengths, dense, sparse, stay=False):
            raise CheckFailed(f"{where}: dilated is cheaper at {got}, but dearer again at a longer length (noise): "
                              "the crossover is where it becomes cheaper for good.")
        if got == _crossover(lengths, dense, sparse, strict=False):
            raise CheckFailed(f"{where}: at {got} the two cost the same; cheaper means strictly less time.")
        if 0 <= got < len(lengths) and lengths[got] == want:
            raise CheckFailed(f"{where}: return the length itself ({want}), not its index ({got}).")
        raise CheckFailed(f"{where}: expected {want}, got {got}.")
    return "you find where sparsity starts to pay, and ignore a length where noise flips the order."
