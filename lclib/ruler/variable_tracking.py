"""Variable tracking, RULER's multi-hop tracing task (Hsieh et al. 2024; NVIDIA/RULER variable_tracking.py).

A chain of assignments "VAR A = 12345", "VAR B = VAR A ", ... (RULER's lines, with their trailing space)
hides among noise lines; the question asks for every variable that holds the value. RULER's defaults:
4 hops, 5-letter names, a 5-digit value, and its in-context example (3-letter names, the answer listed)
before the task. The lab's older layout ("sentences") lives in `lab_layouts`.
"""

from __future__ import annotations

import random
from functools import partial

from .. import validate
from . import lab_layouts, words as W
from .haystack import (MAX_TERM_LEN, Sample, build, check_args, check_room, distinct, fill_lines, frame, insert,
                       noise_lines, random_slots)


def variable_tracking(tokenizer: object, seq_len: int, seed: int, depth: float | None = None, num_chains: int = 1,
                      num_hops: int = 4, name_len: int = 5, example: bool | None = None, layout: str = "lines",
                      task: str = "vt") -> Sample:
    """Multi-hop tracing: "VAR A = 12345", "VAR B = VAR A ", ... among noise; name every variable holding the value.

    layout "lines" is RULER's (statements and noise blocks one per line); "sentences" is the lab's older
    one ("VAR B = VAR A." between noise sentences). example: RULER's in-context example first (RULER's
    is a 500-token prompt); None takes min(500, seq_len // 4) tokens for it and leaves it out when even
    a noise-free example does not fit there (RULER never goes below 4096 tokens, where it always fits).
    depth places the first assignment of the asked chain; the other assignments follow it in order.
    """
    check_args(tokenizer, seq_len, depth, seed)
    validate.one_of("layout", layout, ("lines", "sentences"))
    validate.integer("num_chains", num_chains, low=1)
    validate.integer("num_hops", num_hops, low=1)
    validate.integer("name_len", name_len, low=1, high=MAX_TERM_LEN)
    check_room(tokenizer, task, seq_len, "num_chains * (num_hops + 1) statements", num_chains * (num_hops + 1), "VAR = 1")
    if example is not None and not isinstance(example, bool):
        raise TypeError(f"example must be a bool or None, got {type(example).__name__}")
    rng = random.Random(seed)
    chains, numbers = _chains(rng, num_chains, num_hops, name_len)
    meta = dict(depth=depth, num_chains=num_chains, num_hops=num_hops, layout=layout)
    fmt = dict(query=numbers[0], num_v=num_hops + 1)
    if layout == "sentences":
        return lab_layouts.vt_in_sentences(tokenizer, task, fmt, seq_len, rng, chains, numbers, depth, meta)
    shot = ""
    if example is not False:
        shot = _example(tokenizer, random.Random(seed + 104729), min(500, seq_len // 4), num_chains, num_hops)
        if shot is None and example:
            raise ValueError(f"seq_len {seq_len} is too short for task {task!r} with its in-context example")
        shot = shot + "\n" if shot else ""  # RULER: example + answer + "\n", then "\n" before the task
    needles = [s for c, v in zip(chains, numbers) for s in _statements(c, v)]
    meta["example"] = bool(shot)
    return build(tokenizer, task, W.TEMPLATES["vt"], fmt, seq_len, partial(fill_lines, tokenizer, stream=noise_lines()),
                 needles, partial(_chain_slots, rng, num_chains, num_hops, depth), "\n", chains[0], meta, example=shot)


def _chains(rng: random.Random, num_chains: int, num_hops: int, name_len: int) -> tuple[list[list[str]], list[str]]:
    """num_chains chains of num_hops + 1 distinct names of name_len capitals, and a distinct 5-digit value each."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    names = distinct(lambda: "".join(rng.choice(letters) for _ in range(name_len)), num_chains * (num_hops + 1),
                     f"num_chains * (num_hops + 1) (names of name_len={name_len} letters)")
    # RULER: np.random.randint(10000, 99999)
    numbers = distinct(lambda: str(rng.randint(10000, 99998)), num_chains, "num_chains (5-digit values)")
    return [names[c * (num_hops + 1):(c + 1) * (num_hops + 1)] for c in range(num_chains)], numbers


def _statements(chain: list[str], value: str) -> list[str]:
    """RULER's lines: "VAR A = 12345", then "VAR B = VAR A " (with its trailing space)."""
    return [f"VAR {chain[0]} = {value}"] + [f"VAR {chain[h + 1]} = VAR {chain[h]} " for h in range(len(chain) - 1)]


def _chain_slots(rng: random.Random, num_chains: int, num_hops: int, depth: float | None, lines: int) -> list[int]:
    """RULER: each chain at sorted random line positions, in order; depth places the asked chain's first line."""
    slots = []
    for c in range(num_chains):
        if c == 0 and depth is not None:
            first = round(depth * lines)
            slots += [first] + [first + s for s in random_slots(rng, num_hops, lines - first)]
        else:
            slots += random_slots(rng, num_hops + 1, lines)
    return slots


def _example(tokenizer: object, rng: random.Random, budget: int, num_chains: int, num_hops: int) -> str | None:
    """RULER's in-context example: a VT prompt with 3-letter names (at most 10 hops) and whole noise lines,
    followed by " " and its answer and a newline, within budget tokens (None if even no noise does not fit)."""
    chains, numbers = _chains(rng, num_chains, min(10, num_hops), 3)
    statements = [_statements(c, v) for c, v in zip(chains, numbers)]
    head, tail = frame(W.TEMPLATES["vt"], dict(query=numbers[0], num_v=min(10, num_hops) + 1))
    answer = " " + " ".join(chains[0]) + "\n"
    per_block = tokenizer.count(W.NOISE_BLOCK) + 1
    bare = tokenizer.count(_example_text(rng, head, tail + answer, statements, 0))
    if bare > budget:
        return None
    return _example_text(rng, head, tail + answer, statements, (budget - bare) // per_block)


def _example_text(rng: random.Random, head: str, tail: str, statements: list[list[str]], blocks: int) -> str:
    """head, blocks noise lines with each chain's statements at sorted random lines among them, tail."""
    lines = [W.NOISE_BLOCK] * blocks
    for st in statements:
        lines, _ = insert(lines, st, sorted(rng.sample(range(blocks), len(st))) if blocks >= len(st)
                          else [blocks] * len(st))
    return head + "\n".join(lines) + tail
