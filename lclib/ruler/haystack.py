"""The haystack every RULER-lite task is built in, and the builder that hides needles in it (Hsieh et al. 2024, RULER).

A prompt is ``example + template head + context + template tail + answer prefix``; the context is a
haystack of units (lines or sentences) with the needles inserted among them, and it takes whatever the
template and the needles leave of the target length. The haystack kinds:
- noise lines: RULER's 5-sentence noise block once per line (``fill_lines`` over ``noise_lines()``),
  the last line a cut piece of the block so that the length is hit;
- essay sentences: sentences of the generated essay (``essay_sentences``, RULER: Paul Graham's essays),
  filled whole, the last one cut (``fill`` with the essay as its top-up);
- the needle haystack of niah_multikey_2/3 (distractor needles, one per line) is built by ``needles``.

Lengths are counted in tokens of the tokenizer given (anything with ``count(text) -> int``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import repeat

from .. import validate
from . import words as W

# The longest prompt a generator builds, in tokens: RULER's longest length (128K). Every generator, and
# everything that draws from them (the mixture, the drill, the evaluation), refuses more before it starts,
# so that a typo in a length is an error within a second and not a loop that fills memory for hours.
MAX_LENGTH = 131072
# The longest key, value, variable name or coded word a generator draws, in characters (RULER's are 5 to 36).
MAX_TERM_LEN = 64


@dataclass
class Sample:
    """One RULER-lite prompt. ``prompt`` ends with the answer prefix; ``completion`` is the target text."""

    task: str
    prompt: str
    answers: list[str]
    completion: str
    length: int  # tokens of the prompt
    target_length: int  # the seq_len asked for
    metadata: dict = field(default_factory=dict)


def check_length(name: str, seq_len: int, cap: int = MAX_LENGTH) -> int:
    """seq_len if it is an int in [32, cap] tokens (cap: MAX_LENGTH); else a TypeError or ValueError naming it."""
    return validate.integer(name, seq_len, low=32, high=cap)


def check_args(tokenizer: object, seq_len: int, depth: float | None, seed: int) -> None:
    """The arguments every generator takes: a tokenizer that counts, a length, a depth in [0, 1] or None, a seed."""
    # a str has a count method too (it counts substrings): it would measure 0 tokens and fill forever
    if isinstance(tokenizer, str) or not callable(getattr(tokenizer, "count", None)):
        raise TypeError(f"tokenizer must have count(text) -> int, got {type(tokenizer).__name__}")
    probe = tokenizer.count(W.NOISE[0])
    if not validate.is_int(probe) or probe < 1:
        raise ValueError(f"tokenizer.count must give a positive number of tokens, got {probe!r} for {W.NOISE[0]!r}")
    check_length("seq_len", seq_len)
    if depth is not None:
        validate.number("depth", depth, low=0.0, high=1.0)
    validate.integer("seed", seed)


def token_cost(tokenizer: object, text: str) -> int:
    """tokenizer.count(text), refused when a non-empty text takes no token: a loop that fills a budget with
    such units would never end."""
    n = tokenizer.count(text)
    if not validate.is_int(n) or n < 1:
        raise ValueError(f"tokenizer.count must give at least one token for a non-empty text, got {n!r} for {text[:40]!r}")
    return n


def check_room(tokenizer: object, task: str, seq_len: int, what: str, count: int, unit: str) -> None:
    """Refuse count units (needles, statements) that cannot fit in seq_len, before any of them is drawn."""
    need = count * token_cost(tokenizer, unit)
    if need > seq_len:
        raise ValueError(f"seq_len {seq_len} is too short for task {task!r}: {what} = {count} take at least {need} tokens")


def essay_sentences(rng: random.Random) -> Iterator[str]:
    """Endless sentences of the generated essay: "The busy founder builds a small company slowly." (words.ESSAY)."""
    g = W.ESSAY
    while True:
        yield (f"{rng.choice(g['det'])} {rng.choice(g['adj'])} {rng.choice(g['noun'])} {rng.choice(g['verb'])} "
               f"{rng.choice(g['odet'])} {rng.choice(g['oadj'])} {rng.choice(g['obj'])} {rng.choice(g['adv'])}.")


def noise_lines() -> Iterator[str]:
    """RULER's noise haystack: its 5-sentence block, once per line, for ever."""
    return repeat(W.NOISE_BLOCK)


def fill(tokenizer: object, budget: int, stream: Iterator[str], sep: str, topup: Iterator[str] | None) -> list[str]:
    """Units from stream, joined by sep, whose tokens add up to at most budget.

    When a unit no longer fits, sentences of topup (whole, then a prefix of one without its final
    mark) fill the last tokens, so that the length lands within a token or two of the budget.
    """
    units: list[str] = []
    used, sep_cost = 0, tokenizer.count(sep)
    sources = [stream] if topup is None else [stream, topup]
    for source in sources:
        for unit in source:  # each unit costs >= 1 token (token_cost): at most budget + 1 rounds
            cost = token_cost(tokenizer, unit) + (sep_cost if units else 0)
            if used + cost <= budget:
                units.append(unit)
                used += cost
                continue
            if source is topup:
                last = _cut_sentence(tokenizer, unit, budget - used - (sep_cost if units else 0))
                if last:
                    used += tokenizer.count(last) + (sep_cost if units else 0)
                    units.append(last)
            break
    return units


def _cut_sentence(tokenizer: object, sentence: str, budget: int) -> str:
    """The longest word prefix of sentence (without its final mark) that takes at most budget tokens ("" if none)."""
    words = sentence.rstrip(".").split()
    for k in range(len(words), 0, -1):
        if tokenizer.count(" ".join(words[:k])) <= budget:
            return " ".join(words[:k])
    return ""


def prefix_fitting(tokenizer: object, words: list[str], budget: int) -> str:
    """The longest prefix of words (space-joined) that takes at most budget tokens ("" if none): a binary search."""
    lo, hi = 0, len(words)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if tokenizer.count(" ".join(words[:mid])) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return " ".join(words[:lo])


def fill_lines(tokenizer: object, budget: int, stream: Iterator[str], sep: str = "\n") -> list[str]:
    """Whole units of stream (lines) while they fit, then a last line cut from RULER's noise to land on budget."""
    lines: list[str] = []
    used, sep_cost = 0, tokenizer.count(sep)
    for unit in stream:  # each unit costs >= 1 token (token_cost): at most budget + 1 rounds
        cost = token_cost(tokenizer, unit) + (sep_cost if lines else 0)
        if used + cost > budget:
            break
        lines.append(unit)
        used += cost
    left = budget - used - (sep_cost if lines else 0)
    if left > 0:
        block = W.NOISE_BLOCK.split()
        last = prefix_fitting(tokenizer, block * (1 + left // max(1, tokenizer.count(W.NOISE_BLOCK))), left)
        if last:
            lines.append(last)
    return lines


def insert(units: list[str], needles: list[str], slots: list[int]) -> tuple[list[str], list[int]]:
    """Insert needle i before units[slots[i]] (ties keep needle order); return the list and needle indices."""
    order = sorted(zip(slots, range(len(needles))))
    out, where, previous = [], [0] * len(needles), 0
    for slot, i in order:
        out.extend(units[previous:slot])
        where[i] = len(out)
        out.append(needles[i])
        previous = slot
    out.extend(units[previous:])
    return out, where


def random_slots(rng: random.Random, k: int, high: int) -> list[int]:
    """k sorted slots in [0, high), distinct when there is room (RULER's random.sample), else with repeats."""
    if high <= 0:
        return [0] * k
    return sorted(rng.sample(range(high), k)) if k <= high else sorted(rng.choices(range(high), k=k))


def distinct(draw: Callable[[], str], n: int, name: str, avoid: set[str] | None = None) -> list[str]:
    """n distinct draws, in a bounded number of tries; name says which argument asked for them."""
    seen, out = set(avoid or ()), []
    for _ in range(100 * n + 100):
        v = draw()
        if v not in seen:
            seen.add(v)
            out.append(v)
            if len(out) == n:
                return out
    raise ValueError(f"{name} asks for {n} distinct values, but {100 * n + 100} draws found only {len(out)}: "
                     "the pool is too small")


def frame(template: tuple[str, str], fmt: dict, example: str = "") -> tuple[str, str]:
    """What comes before the context (example and the template's head) and after it (the template's tail and
    the answer prefix), with the template's fields filled from fmt."""
    head, tail = template[0].split("{context}")
    return example + head.format(**fmt), tail.format(**fmt) + template[1].format(**fmt)


def build(tokenizer: object, task: str, template: tuple[str, str], fmt: dict, target: int,
          fill_budget: Callable[[int], list[str]], needles: list[str], place: Callable[[int], list[int]], sep: str,
          answers: list[str] | Callable[[list[int]], list[str]], meta: dict, example: str = "") -> Sample:
    """Assemble example + template head + context + template tail + answer prefix, the context filling target tokens.

    fill_budget(budget) gives the haystack units (it is called before place, which draws after it);
    place(number of units) the slot of each needle among them; answers, a list or a function of where
    each needle landed (its index among the units). Metadata gains the needles' token offsets and depths.
    """
    head, tail = frame(template, fmt, example)
    fixed = tokenizer.count(head) + tokenizer.count(tail) + sum(tokenizer.count(n) + tokenizer.count(sep) for n in needles)
    budget = target - fixed
    if budget < 0:
        raise ValueError(f"seq_len {target} is too short for task {task!r}: its template and needles take {fixed} tokens")
    haystack = fill_budget(budget)
    units, where = insert(haystack, needles, place(len(haystack)))
    offsets = [tokenizer.count(head + sep.join(units[:i]) + (sep if i else "")) for i in where]
    answers = answers(where) if callable(answers) else answers
    return assemble(tokenizer, task, head, sep.join(units), tail, offsets, answers, target, meta)


def assemble(tokenizer: object, task: str, head: str, context: str, tail: str, offsets: list[int],
             answers: Sequence[str], target: int, meta: dict) -> Sample:
    """The Sample of head + context + tail, its needles at token offsets (from the prompt's start)."""
    prompt = head + context + tail
    context_len = max(1, tokenizer.count(context))
    meta = dict(meta, needle_offsets=offsets, context_start=tokenizer.count(head), context_length=context_len,
                needle_depths=[(o - tokenizer.count(head)) / context_len for o in offsets])
    completion = ("" if prompt.endswith(" ") else " ") + ", ".join(answers) + "."  # no space after VT's "are: "
    return Sample(task, prompt, list(answers), completion, tokenizer.count(prompt), target, meta)
