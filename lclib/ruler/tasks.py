"""RULER-lite: RULER's synthetic long-context tasks at a chosen length in tokens (Hsieh et al. 2024, RULER).

Each generator takes the tokenizer that measures length (anything with ``count(text) -> int``: the
lab's, or a Hugging Face model's), a target length in tokens (the prompt, up to and including RULER's
answer prefix, hits it within a few tokens; RULER also reserves ``TOKENS_TO_GENERATE`` for the answer,
so pass ``length - TOKENS_TO_GENERATE[task]`` to reproduce its budget), a needle depth in [0, 1] where
one applies, and a seed; it returns a `Sample`: the prompt, the reference answers, the canonical
completion a model is trained to write, and metadata (depths, token offsets of needles).

With default arguments each task is built as RULER's generator builds it (NVIDIA/RULER,
scripts/data/synthetic/*.py; the parameters of scripts/synthetic.yaml are the defaults in ``TASKS``):
- niah: needle "One of the special magic numbers for {key} is: {value}."; 7-digit numbers or uuid4
  strings; adjective-noun keys; the noise haystack is RULER's 5-sentence block once per line, needles
  on lines of their own at random line positions; the essay haystack takes needles between sentences
  at depths drawn from RULER's 40 depths (0, 3, 5, ..., 100 percent); niah_multikey_2/3 make every
  line a needle; the query "k1, k2, k3, and k4"; the singular wording when one value is asked.
- vt: 4 hops, 5-letter names, a 5-digit value, RULER's lines "VAR X = 12345" and "VAR Y = VAR X "
  among noise lines, and its in-context example (3-letter names, answer listed) prepended.
- cwe: 10 common words x 30 against uncommon words x 3 (6 and 1 below 4096 tokens, as RULER), as
  "1. word 2. word ...", after RULER's example (40 words 10/3; 20 words 3/1 below 4096).
- fwe: random 6-letter coded words, rank k occurs int(N k^-alpha / zeta(alpha)) times (alpha 2),
  rank 1 is RULER's noise "...", the answer is ranks 2-4; vocabulary (length // 50) words.
- qa: "Document i:" headers and RULER's template.
Substituted (nothing may be downloaded): English word lists of our own for keys and common words,
an essay generated from a small grammar (not Paul Graham's), synthetic fact documents (not SQuAD or
HotpotQA). Where RULER leaves slack (it grows the haystack in steps of up to 500 words), the last
line or sentence here is a cut piece of the haystack, so that the length is hit: the needle haystack
ends in a line of RULER's noise, the fwe text in single words.
The lab's older layouts stay available by name (``mixture.LAB_TASKS`` uses them): key_kind
"vocab_words", haystack "noise_sentences", vt layout "sentences".
Scoring and the effective length live in `lclib.ruler.metrics`.
"""

from __future__ import annotations

import itertools
import math
import random
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import repeat

from . import words as W
from .tokenizer import WordTokenizer

# RULER's tokens_to_generate per task (scripts/synthetic.yaml; the paper's Appendix B).
TOKENS_TO_GENERATE = {"niah": 128, "vt": 30, "cwe": 120, "fwe": 50, "qa": 32}
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
    length: int
    target_length: int
    metadata: dict = field(default_factory=dict)


def _check(tok: WordTokenizer, length: int, depth: float | None, seed: int) -> None:
    # a str has a count method too (it counts substrings): it would measure 0 tokens and fill forever
    if isinstance(tok, str) or not callable(getattr(tok, "count", None)):
        raise TypeError(f"tok must be a tokenizer with count(text) -> int, got {type(tok).__name__}")
    probe = tok.count(W.NOISE[0])
    if isinstance(probe, bool) or not isinstance(probe, int) or probe < 1:
        raise ValueError(f"tok.count must give a positive number of tokens, got {probe!r} for {W.NOISE[0]!r}")
    check_length("length", length)
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, (int, float))):
        raise TypeError(f"depth must be a number in [0, 1] or None, got {type(depth).__name__}")
    if depth is not None and not 0.0 <= depth <= 1.0:
        raise ValueError(f"depth must be in [0, 1] or None, got {depth!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")


def check_length(name: str, length: int, cap: int = MAX_LENGTH) -> int:
    """length if it is an int in [32, cap] (tokens), else a ValueError naming the argument (cap: MAX_LENGTH)."""
    if isinstance(length, bool) or not isinstance(length, int) or not 32 <= length <= cap:
        raise ValueError(f"{name} must be an int in [32, {cap}] (tokens), got {length!r}")
    return length


def _cost(tok: WordTokenizer, text: str) -> int:
    """tok.count(text), refused when a non-empty text takes no token: a loop that fills a budget with
    such units would never end."""
    n = tok.count(text)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"tok.count must give at least one token for a non-empty text, got {n!r} for {text[:40]!r}")
    return n


def _positive(name: str, value: int, low: int = 1, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be an int >= {low}" + ("" if high is None else f" and <= {high}") + f", got {value!r}")


def _room(tok: WordTokenizer, task: str, length: int, what: str, count: int, unit: str) -> None:
    """Refuse count units (needles, statements) that cannot fit in length, before any of them is drawn."""
    need = count * _cost(tok, unit)
    if need > length:
        raise ValueError(f"length {length} is too short for task {task!r}: {what} = {count} take at least {need} tokens")


def _choice(name: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(repr(a) for a in allowed)}, got {value!r}")


def _essay(rng: random.Random) -> Iterator[str]:
    g = W.ESSAY
    while True:
        yield (f"{rng.choice(g['det'])} {rng.choice(g['adj'])} {rng.choice(g['noun'])} {rng.choice(g['verb'])} "
               f"{rng.choice(g['odet'])} {rng.choice(g['oadj'])} {rng.choice(g['obj'])} {rng.choice(g['adv'])}.")


def _noise(rng: random.Random) -> Iterator[str]:
    while True:
        yield from W.NOISE


def _fill(tok: WordTokenizer, budget: int, stream: Iterator[str], sep: str, topup: Iterator[str] | None) -> list[str]:
    """Units from stream, joined by sep, whose tokens add up to at most budget.

    When a unit no longer fits, sentences of topup (whole, then a prefix of one without its final
    mark) fill the last tokens, so that the length lands within a token or two of the budget.
    """
    units: list[str] = []
    used, sep_cost = 0, tok.count(sep)
    sources = [stream] if topup is None else [stream, topup]
    for source in sources:
        for unit in source:  # each unit costs >= 1 token (_cost): at most budget + 1 rounds
            cost = _cost(tok, unit) + (sep_cost if units else 0)
            if used + cost <= budget:
                units.append(unit)
                used += cost
                continue
            if source is topup:
                words = unit.rstrip(".").split()
                for k in range(len(words), 0, -1):
                    cost = tok.count(" ".join(words[:k])) + (sep_cost if units else 0)
                    if used + cost <= budget:
                        units.append(" ".join(words[:k]))
                        used += cost
                        break
            break
    return units


def _prefix_fitting(tok: WordTokenizer, words: list[str], budget: int) -> str:
    """The longest prefix of words (space-joined) that takes at most budget tokens ("" if none): a binary search."""
    lo, hi = 0, len(words)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if tok.count(" ".join(words[:mid])) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return " ".join(words[:lo])


def _fill_lines(tok: WordTokenizer, budget: int, stream: Iterator[str], sep: str = "\n") -> list[str]:
    """Whole units of stream (lines) while they fit, then a last line cut from RULER's noise to land on budget."""
    lines: list[str] = []
    used, sep_cost = 0, tok.count(sep)
    for unit in stream:  # each unit costs >= 1 token (_cost): at most budget + 1 rounds
        cost = _cost(tok, unit) + (sep_cost if lines else 0)
        if used + cost > budget:
            break
        lines.append(unit)
        used += cost
    left = budget - used - (sep_cost if lines else 0)
    if left > 0:
        block = W.NOISE_BLOCK.split()
        last = _prefix_fitting(tok, block * (1 + left // max(1, tok.count(W.NOISE_BLOCK))), left)
        if last:
            lines.append(last)
    return lines


def _insert(units: list[str], needles: list[str], slots: list[int]) -> tuple[list[str], list[int]]:
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


def _build(tok: WordTokenizer, task: str, template: tuple[str, str], fmt: dict, target: int,
           fill: Callable[[int], list[str]], needles: list[str], place: Callable[[int], list[int]], sep: str,
           answers: list[str] | Callable[[list[int]], list[str]], meta: dict, example: str = "") -> Sample:
    """Assemble example + template head + context + template tail + answer prefix, the context filling the length.

    fill(budget) gives the haystack units; place(number of units) the slot of each needle among them.
    """
    head, tail = template[0].split("{context}")
    head, tail = example + head.format(**fmt), tail.format(**fmt) + template[1].format(**fmt)
    fixed = tok.count(head) + tok.count(tail) + sum(tok.count(n) + tok.count(sep) for n in needles)
    budget = target - fixed
    if budget < 0:
        raise ValueError(f"length {target} is too short for task {task!r}: its template and needles take {fixed} tokens")
    haystack = fill(budget)
    units, where = _insert(haystack, needles, place(len(haystack)))
    context = sep.join(units)
    prompt = head + context + tail
    offsets = [tok.count(head + sep.join(units[:i]) + (sep if i else "")) for i in where]
    context_len = max(1, tok.count(context))
    meta = dict(meta, needle_offsets=offsets, context_start=tok.count(head), context_length=context_len,
                needle_depths=[(o - tok.count(head)) / context_len for o in offsets])
    answers = answers(where) if callable(answers) else answers
    return Sample(task, prompt, list(answers), _completion(prompt, answers), tok.count(prompt), target, meta)


def _completion(prompt: str, answers: Sequence[str]) -> str:
    """The answers after the prefix: " a, b." (no leading space where RULER's prefix ends in one, as VT's)."""
    return ("" if prompt.endswith(" ") else " ") + ", ".join(answers) + "."


def _value(rng: random.Random, kind: str, value_len: int) -> str:
    """A key or value of RULER's kinds: value_len-digit number, adjective-noun pair, uuid4; or a lab word."""
    if kind == "numbers":  # uniform over [10^(n-1), 10^n - 1], as RULER's random.randint
        return str(rng.randint(1, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(value_len - 1))
    if kind == "words":
        return f"{rng.choice(W.ADJECTIVES)}-{rng.choice(W.NOUNS)}"
    if kind == "uuids":
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    raise ValueError(f"kind must be 'numbers', 'words', 'uuids' or 'vocab_words', got {kind!r}")


def _distinct(draw: Callable[[], str], n: int, name: str, avoid: set[str] | None = None) -> list[str]:
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


def _slots(rng: random.Random, n: int, k: int, high: int) -> list[int]:
    """k sorted slots in [0, high), distinct when there is room (RULER's random.sample), else with repeats."""
    if high <= 0:
        return [0] * k
    return sorted(rng.sample(range(high), k)) if k <= high else sorted(rng.choices(range(high), k=k))


NIAH_HAYSTACKS = ("noise", "essay", "needle", "noise_sentences")
KEY_KINDS = ("numbers", "words", "uuids", "vocab_words")


def niah(tok: WordTokenizer, length: int, seed: int, depth: float | None = None, haystack: str = "noise",
         key_kind: str = "words", value_kind: str = "numbers", num_keys: int = 1, num_values: int = 1,
         num_queries: int = 1, value_len: int = 7, task: str = "niah", singular: bool | None = None) -> Sample:
    """Needle in a haystack: find every value of the asked key(s) among needles hidden in filler.

    singular: None follows RULER (the singular wording "A special magic number is ... text is" when one
    value of one key is asked); True or False forces one wording.
    haystack: "noise" (RULER's 5-sentence block once per line, needles on their own lines at random
    line positions), "essay" (generated prose, needles between sentences at RULER's 40 depths),
    "needle" (every line a needle with another key), or "noise_sentences" (the lab's older layout:
    noise sentences on one line, needles between sentences at uniform random depths).
    key_kind / value_kind: "numbers" (value_len digits; RULER: 7), "words" (adjective-noun pairs),
    "uuids" (uuid4 strings), "vocab_words" (the lab's one-token words). num_keys needles carry distinct
    keys (num_keys - num_queries are distractors); each key has num_values values. depth places the
    first asked needle; the others are placed as RULER places them.
    """
    _check(tok, length, depth, seed)
    _choice("haystack", haystack, NIAH_HAYSTACKS)
    _choice("key_kind", key_kind, KEY_KINDS)
    _choice("value_kind", value_kind, KEY_KINDS)
    for name, value in (("num_keys", num_keys), ("num_values", num_values), ("num_queries", num_queries)):
        _positive(name, value)
    _positive("value_len", value_len, high=MAX_TERM_LEN)
    _room(tok, task, length, "num_keys * num_values needles", num_keys * num_values,
          W.NEEDLE.format(type_v="numbers", key="", value=""))
    if not 1 <= num_queries <= num_keys:
        raise ValueError(f"num_queries must be in [1, num_keys={num_keys}], got {num_queries}")
    if haystack == "essay" and num_keys * num_values > len(W.DEPTHS):
        raise ValueError(f"num_keys * num_values must be at most {len(W.DEPTHS)} for the essay haystack (RULER's "
                         f"depths, one needle each), got {num_keys} * {num_values}")
    rng = random.Random(seed)
    if key_kind == "vocab_words":
        key_draw = lambda: rng.choice(W.KEY_WORDS)  # noqa: E731
    elif haystack == "noise_sentences":  # the lab's keys of other kinds were 8 characters long
        key_draw = lambda: _value(rng, key_kind, 8)  # noqa: E731
    else:
        key_draw = lambda: _value(rng, key_kind, value_len)  # noqa: E731
    value_draw = (lambda r: r.choice(W.VALUE_WORDS)) if value_kind == "vocab_words" else \
        (lambda r: _value(r, value_kind, value_len))
    keys = _distinct(key_draw, num_keys, f"num_keys (keys of kind {key_kind!r})")
    values = _distinct(lambda: value_draw(rng), num_keys * num_values,
                       f"num_keys * num_values (values of kind {value_kind!r}, value_len={value_len})")
    type_v = "words" if value_kind == "vocab_words" else value_kind
    needles, owners = [], []
    for k, key in enumerate(keys):
        for v in range(num_values):
            needles.append(W.NEEDLE.format(type_v=type_v, key=key, value=values[k * num_values + v]))
            owners.append(k)
    asked = keys[:num_queries]
    query = asked[0] if num_queries == 1 else ", ".join(asked[:-1]) + ", and " + asked[-1]
    if singular is None:
        singular = num_queries * num_values == 1  # RULER's singular wording ("A special magic number is ...")
    elif not isinstance(singular, bool):
        raise TypeError(f"singular must be None, True or False, got {type(singular).__name__}")
    template = W.singular_niah_template() if singular else W.TEMPLATES["niah"]
    fmt = dict(type_v=type_v, type_v_singular=type_v[:-1], query=query)
    meta = dict(depth=depth, keys=keys, haystack=haystack, value_kind=value_kind, singular=singular,
                values={key: values[k * num_values:(k + 1) * num_values] for k, key in enumerate(keys)})
    hay_rng = random.Random(seed + 7919)

    if haystack == "noise_sentences":  # the lab's layout, draw for draw as the shipped models saw it
        depths = [rng.random() for _ in needles]
        if depth is not None:
            depths[0] = depth
        order = sorted(range(len(needles)), key=lambda i: (depths[i], i))  # order of appearance
        answers = [values[i] for i in order if owners[i] < num_queries]
        units = _noise(hay_rng)
        return _build(tok, task, template, fmt, length, lambda b: _fill(tok, b, units, " ", units), needles,
                      lambda n: [round(d * n) for d in depths], " ", answers, meta)

    def in_order(where: list[int]) -> list[str]:  # the asked values in order of appearance
        return [values[i] for i in sorted(range(len(needles)), key=lambda i: where[i]) if owners[i] < num_queries]

    def place_lines(n: int) -> list[int]:  # RULER: random.sample over the lines; a needle goes before its line
        slots = _slots(rng, n, len(needles), n)
        rng.shuffle(slots)
        if depth is not None:
            slots[0] = round(depth * n)
        return slots

    if haystack == "essay":
        def place_essay(n: int) -> list[int]:  # RULER: int(n * d / 100) for d drawn from its 40 depths
            slots = [int(n * d / 100) for d in rng.sample(W.DEPTHS, len(needles))]
            if depth is not None:
                slots[0] = round(depth * n)
            return slots
        sentences = _essay(hay_rng)
        return _build(tok, task, template, fmt, length, lambda b: _fill(tok, b, sentences, " ", sentences),
                      needles, place_essay, " ", in_order, meta)

    if haystack == "needle":
        taken_keys, taken_values = set(keys), set(values)

        def distractors() -> Iterator[str]:  # fresh keys and values of the task's kinds, never the real ones
            misses = 0
            while True:
                k, v = key_draw(), value_draw(hay_rng)
                if k not in taken_keys and v not in taken_values:
                    misses = 0
                    yield W.NEEDLE.format(type_v=type_v, key=k, value=v)
                    continue
                misses += 1
                if misses == 1000:  # the task's own needles have used up a pool: no draw will ever fit
                    raise ValueError(f"num_keys={num_keys} leaves no distractors for haystack 'needle': the needles use "
                                     f"up the keys of kind {key_kind!r} or the values of kind {value_kind!r} "
                                     f"(value_len={value_len})")
        lines = distractors()
    else:
        lines = repeat(W.NOISE_BLOCK)
    return _build(tok, task, template, fmt, length, lambda b: _fill_lines(tok, b, lines), needles, place_lines,
                  "\n", in_order, meta)


def niah_question(key: str, value_kind: str = "numbers", singular: bool = True) -> str:
    """The question a niah prompt ends with, for one key: "\nWhat is the special magic number for KEY
    mentioned in the provided text? The special magic number for KEY mentioned in the provided text is"."""
    if not isinstance(key, str):
        raise TypeError(f"key must be a str, got {type(key).__name__}")
    _choice("value_kind", value_kind, KEY_KINDS)
    if not isinstance(singular, bool):
        raise TypeError(f"singular must be a bool, got {type(singular).__name__}")
    type_v = "words" if value_kind == "vocab_words" else value_kind
    template = W.singular_niah_template() if singular else W.TEMPLATES["niah"]
    fmt = dict(type_v=type_v, type_v_singular=type_v[:-1], query=key)
    return template[0].split("{context}")[1].format(**fmt) + template[1].format(**fmt)


def _vt_chains(rng: random.Random, num_chains: int, num_hops: int, name_len: int) -> tuple[list[list[str]], list[str]]:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    names = _distinct(lambda: "".join(rng.choice(letters) for _ in range(name_len)), num_chains * (num_hops + 1),
                      f"num_chains * (num_hops + 1) (names of name_len={name_len} letters)")
    # RULER: np.random.randint(10000, 99999)
    numbers = _distinct(lambda: str(rng.randint(10000, 99998)), num_chains, "num_chains (5-digit values)")
    return [names[c * (num_hops + 1):(c + 1) * (num_hops + 1)] for c in range(num_chains)], numbers


def _vt_statements(chain: list[str], value: str) -> list[str]:
    """RULER's lines: "VAR A = 12345", then "VAR B = VAR A " (with its trailing space)."""
    return [f"VAR {chain[0]} = {value}"] + [f"VAR {chain[h + 1]} = VAR {chain[h]} " for h in range(len(chain) - 1)]


def _vt_example(tok: WordTokenizer, rng: random.Random, budget: int, num_chains: int, num_hops: int) -> str | None:
    """RULER's in-context example: a VT prompt with 3-letter names (at most 10 hops) and whole noise lines,
    followed by " " and its answer and a newline, within budget tokens (None if even no noise does not fit)."""
    chains, numbers = _vt_chains(rng, num_chains, min(10, num_hops), 3)
    statements = [_vt_statements(c, v) for c, v in zip(chains, numbers)]
    fmt = dict(query=numbers[0], num_v=min(10, num_hops) + 1)
    head, tail = W.TEMPLATES["vt"][0].split("{context}")

    def text(blocks: int) -> str:
        lines = [W.NOISE_BLOCK] * blocks
        for st in statements:
            lines, _ = _insert(lines, st, sorted(rng.sample(range(blocks), len(st))) if blocks >= len(st)
                               else [blocks] * len(st))
        return (head.format(**fmt) + "\n".join(lines) + tail.format(**fmt) + W.TEMPLATES["vt"][1].format(**fmt)
                + " " + " ".join(chains[0]) + "\n")

    per_block = tok.count(W.NOISE_BLOCK) + 1
    bare = tok.count(text(0))
    if bare > budget:
        return None
    return text((budget - bare) // per_block)


def variable_tracking(tok: WordTokenizer, length: int, seed: int, depth: float | None = None, num_chains: int = 1,
                      num_hops: int = 4, name_len: int = 5, example: bool | None = None, layout: str = "lines",
                      task: str = "vt") -> Sample:
    """Multi-hop tracing: "VAR A = 12345", "VAR B = VAR A ", ... among noise; name every variable holding the value.

    layout "lines" is RULER's (statements and noise blocks one per line); "sentences" is the lab's older
    one ("VAR B = VAR A." between noise sentences). example: RULER's in-context example first (RULER's
    is a 500-token prompt); None takes min(500, length // 4) tokens for it and leaves it out when even
    a noise-free example does not fit there (RULER never goes below 4096 tokens, where it always fits).
    depth places the first assignment of the asked chain; the other assignments follow it in order.
    """
    _check(tok, length, depth, seed)
    _choice("layout", layout, ("lines", "sentences"))
    for name, value in (("num_chains", num_chains), ("num_hops", num_hops)):
        _positive(name, value)
    _positive("name_len", name_len, high=MAX_TERM_LEN)
    _room(tok, task, length, "num_chains * (num_hops + 1) statements", num_chains * (num_hops + 1), "VAR = 1")
    if example is not None and not isinstance(example, bool):
        raise TypeError(f"example must be a bool or None, got {type(example).__name__}")
    rng = random.Random(seed)
    chains, numbers = _vt_chains(rng, num_chains, num_hops, name_len)
    answers = chains[0]
    meta = dict(depth=depth, num_chains=num_chains, num_hops=num_hops, layout=layout)
    fmt = dict(query=numbers[0], num_v=num_hops + 1)
    if layout == "sentences":
        needles, depths = [], []
        for c, chain in enumerate(chains):
            start = depth if (c == 0 and depth is not None) else rng.random() * 0.5
            depths += sorted([start] + [start + (1 - start) * rng.random() for _ in range(num_hops)])
            needles += [f"VAR {chain[0]} = {numbers[c]}."] + [f"VAR {chain[h + 1]} = VAR {chain[h]}." for h in range(num_hops)]
        noise = _noise(rng)
        return _build(tok, task, W.TEMPLATES["vt"], fmt, length, lambda b: _fill(tok, b, noise, " ", noise), needles,
                      lambda n: [round(d * n) for d in depths], " ", answers, dict(meta, example=False))
    shot = ""
    if example is not False:
        shot = _vt_example(tok, random.Random(seed + 104729), min(500, length // 4), num_chains, num_hops)
        if shot is None and example:
            raise ValueError(f"length {length} is too short for task {task!r} with its in-context example")
        shot = shot + "\n" if shot else ""  # RULER: example + answer + "\n", then "\n" before the task
    needles = [s for c, v in zip(chains, numbers) for s in _vt_statements(c, v)]

    def place(n: int) -> list[int]:  # RULER: each chain at sorted random line positions, in order
        slots = []
        for c in range(num_chains):
            if c == 0 and depth is not None:
                first = round(depth * n)
                slots += [first] + _slots(rng, n, num_hops, n - first)
                slots[-num_hops:] = [first + s for s in slots[-num_hops:]]
            else:
                slots += _slots(rng, n, num_hops + 1, n)
        return slots

    meta["example"] = bool(shot)
    return _build(tok, task, W.TEMPLATES["vt"], fmt, length, lambda b: _fill_lines(tok, b, repeat(W.NOISE_BLOCK)),
                  needles, place, "\n", answers, meta, example=shot)


def _cwe_list(words: Sequence[str]) -> str:
    return " ".join(f"{i + 1}. {w}" for i, w in enumerate(words))


def common_words(tok: WordTokenizer, length: int, seed: int, depth: float | None = None, num_common: int = 10,
                 freq_common: int | None = None, freq_uncommon: int | None = None, example: bool = True,
                 task: str = "cwe") -> Sample:
    """Aggregation: a numbered list where num_common words occur freq_common times and the others freq_uncommon.

    RULER's rule (common_words_extraction.py; num_cw, freq_cw, freq_ucw): 10 words x 30 against x 3 from
    4096 tokens on, x 6 against x 1 below; the number of uncommon words grows with the length. Its
    in-context example (40 words, 10 x 10 and 30 x 3; below 4096, 20 words, 3 and 1) comes first.
    Words: our English list, then pseudo-words when a list needs more (RULER: a larger English list).
    The last uncommon words are swapped for longer ones until the length is hit (RULER leaves slack).
    depth is accepted for a uniform signature and ignored.
    """
    _check(tok, length, depth, seed)
    short = length < 4096
    freq_common = (6 if short else 30) if freq_common is None else freq_common
    freq_uncommon = (1 if short else 3) if freq_uncommon is None else freq_uncommon
    for name, value in (("num_common", num_common), ("freq_common", freq_common), ("freq_uncommon", freq_uncommon)):
        _positive(name, value)
    if freq_common <= freq_uncommon:
        raise ValueError(f"freq_common must exceed freq_uncommon, got {freq_common} and {freq_uncommon}")
    pool_size = len(W.ENGLISH_WORDS) + len(W.extra_words())
    if num_common >= pool_size:
        raise ValueError(f"num_common must be below {pool_size} (the words available), got {num_common}")
    rng = random.Random(seed)
    english = list(W.ENGLISH_WORDS)
    rng.shuffle(english)
    fmt = dict(num_cw=num_common)
    shot = ""
    if example:
        n_ex, cr, ucr = (20, 3, 1) if short else (40, 10, 3)
        if n_ex <= num_common:
            raise ValueError(f"num_common must be below the example's {n_ex} words, got {num_common}")
        ex_words = rng.sample(english, n_ex)
        ex_list = ex_words[:num_common] * cr + ex_words[num_common:] * ucr
        rng.shuffle(ex_list)
        shot = (W.TEMPLATES["cwe"][0].format(context=_cwe_list(ex_list), **fmt) + W.TEMPLATES["cwe"][1].format(**fmt)
                + " " + _cwe_list(ex_words[:num_common]) + "\n")
    extra = list(W.extra_words())
    rng.shuffle(extra)
    pool = english + extra  # RULER samples its words at random: ours are shuffled, English first
    common, rare = pool[:num_common], pool[num_common:]
    head, tail = W.TEMPLATES["cwe"][0].split("{context}")
    budget = length - tok.count(shot + head.format(**fmt)) - tok.count(tail.format(**fmt) + W.TEMPLATES["cwe"][1].format(**fmt))

    def entry(i: int, word: str) -> int:  # tokens of "i. word" and the space before the next one
        return tok.count(f"{i}. {word}") + tok.count(" ")

    entries = num_common * freq_common
    if entries > budget:  # each "i. word" takes a token or more: refuse before counting them one by one
        raise ValueError(f"length {length} is too short for task {task!r}: {num_common} common words x {freq_common} "
                         f"are {entries} entries for {budget} tokens")
    used = sum(freq_common * tok.count(w) for w in common) + sum(tok.count(f"{i + 1}.") for i in range(entries))
    if used > budget:
        raise ValueError(f"length {length} is too short for task {task!r}: {num_common} common words x {freq_common} "
                         f"take {used} of {budget} tokens")
    n_rare = 0
    while n_rare < len(rare):  # whole uncommon words while they fit (RULER's binary search over num_words)
        cost = freq_uncommon * tok.count(rare[n_rare]) + sum(tok.count(f"{entries + j + 1}.") for j in range(freq_uncommon))
        if used + cost > budget:
            break
        used += cost
        entries += freq_uncommon
        n_rare += 1
    chosen = rare[:n_rare]
    for slot in range(n_rare - 1, max(-1, n_rare - 50), -1):  # land on the length: longer last words
        if budget - used < freq_uncommon:
            break
        old = tok.count(chosen[slot])
        best = max((w for w in rare[n_rare:n_rare + 200] if w not in chosen and
                    freq_uncommon * (tok.count(w) - old) <= budget - used),
                   key=lambda w: tok.count(w), default=None)
        if best is not None and tok.count(best) > old:
            used += freq_uncommon * (tok.count(best) - old)
            chosen[slot] = best
    word_list = common * freq_common + chosen * freq_uncommon
    rng.shuffle(word_list)
    order = {w: i for i, w in reversed(list(enumerate(word_list)))}
    answers = sorted(common, key=order.__getitem__)  # in order of first appearance
    context = _cwe_list(word_list)
    return _build(tok, task, W.TEMPLATES["cwe"], fmt, length, lambda b: [context], [], lambda n: [], " ", answers,
                  dict(depth=None, num_common=num_common, freq_common=freq_common, freq_uncommon=freq_uncommon,
                       example=bool(shot)), example=shot)


def frequent_words(tok: WordTokenizer, length: int, seed: int, depth: float | None = None, alpha: float = 2.0,
                   word_len: int = 6, task: str = "fwe") -> Sample:
    """Aggregation: coded words with Zipf counts; name the three most frequent (RULER's freq_words_extraction.py).

    RULER: a vocabulary of length // 50 random word_len-letter words; the word of rank k occurs
    int(N k^-alpha / zeta(alpha)) times; rank 1 becomes the noise word "..."; the answer is ranks 2-4.
    N is the largest that fits; the last tokens take single occurrences of unused words, then "...".
    At short lengths (a few hundred tokens) the floors can tie ranks 4 and 5, as in RULER: metadata
    "unambiguous" says whether the three answers are strictly the most frequent words.
    depth is accepted for a uniform signature and ignored.
    """
    _check(tok, length, depth, seed)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 1.0 < alpha < math.inf:
        raise ValueError(f"alpha must be a finite number > 1 (the Zipf sum must converge), got {alpha!r}")
    _positive("word_len", word_len, high=MAX_TERM_LEN)
    if word_len > length:
        raise ValueError(f"word_len must be at most length={length} (a coded word is spelled letter by letter), "
                         f"got {word_len}")
    rng = random.Random(seed)
    size = max(5, length // 50)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = _distinct(lambda: "".join(rng.choice(letters) for _ in range(word_len)), size,
                      f"word_len={word_len} (length // 50 = {size} coded words of word_len letters)")
    vocab[0] = "..."  # RULER: the top-ranked word is noise
    zeta = sum(k ** -alpha for k in range(1, 100000)) + 100000 ** (1 - alpha) / (alpha - 1)
    head, tail = W.TEMPLATES["fwe"][0].split("{context}")
    budget = length - tok.count(head) - tok.count(tail + W.TEMPLATES["fwe"][1])
    if budget < 0:
        raise ValueError(f"length {length} is too short for task {task!r}: its template takes {length - budget} tokens")
    cost = [_cost(tok, w) + tok.count(" ") for w in vocab]  # >= 1 each: the fills below end

    def counts(n: int) -> list[int]:
        return [int(n * (k + 1) ** -alpha / zeta) for k in range(size)]

    def total(c: list[int]) -> int:
        return sum(ci * wi for ci, wi in zip(c, cost))

    lo, hi = 0, max(1, budget)  # each word costs >= 1 token, so N <= budget / 0.6 is plenty
    hi = 2 * hi
    while lo < hi:  # the largest N whose text fits
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if total(counts(mid)) <= budget else (lo, mid - 1)
    c = counts(lo)
    used = total(c)
    for k in range(size - 1, 4, -1):  # unused tail words once each, then noise, fill the last tokens
        if c[k] == 0 and used + cost[k] <= budget:
            c[k], used = 1, used + cost[k]
    while used + cost[0] <= budget:
        c[0], used = c[0] + 1, used + cost[0]
    words = [w for w, ci in zip(vocab, c) for _ in range(ci)]
    rng.shuffle(words)
    unambiguous = min(c[1:4]) > max(c[4:], default=0)
    return _build(tok, task, W.TEMPLATES["fwe"], {}, length, lambda b: [" ".join(words)], [], lambda n: [], " ",
                  vocab[1:4], dict(depth=None, alpha=alpha, num_words=lo, unambiguous=unambiguous))


def multidoc_qa(tok: WordTokenizer, length: int, seed: int, depth: float | None = None, facts_per_doc: int = 2,
                task: str = "qa") -> Sample:
    """Synthetic multi-document QA in RULER's format: "Document i:" and a paragraph, blank lines between.

    One document answers the question; the others are about other countries (RULER: SQuAD or
    HotpotQA paragraphs, which cannot be shipped). Documents are short paragraphs of facts ("The
    capital of Vorgun is Rasras."); a last document of generated prose fills the final tokens.
    depth places the answering document (RULER shuffles the documents at random).
    """
    _check(tok, length, depth, seed)
    _positive("facts_per_doc", facts_per_doc)
    if facts_per_doc > len(W.RELATIONS):
        raise ValueError(f"facts_per_doc must be at most {len(W.RELATIONS)}, got {facts_per_doc}")
    rng = random.Random(seed)
    entities = list(W.ENTITIES)
    rng.shuffle(entities)
    relations = list(W.RELATIONS)

    def document(entity: str) -> tuple[str, list[tuple[str, str]]]:
        facts = [(r, rng.choice(W.RELATIONS[r])) for r in rng.sample(relations, facts_per_doc)]
        return " ".join(W.QA_FACT.format(relation=r, entity=entity, value=v) for r, v in facts), facts

    gold_text, gold_facts = document(entities[0])
    relation, answer = gold_facts[0]
    query = W.QA_QUESTION.format(relation=relation, entity=entities[0])
    fmt = dict(query=query)
    head, tail = W.TEMPLATES["qa"][0].split("{context}")
    head, tail = head.format(**fmt), tail.format(**fmt) + W.TEMPLATES["qa"][1]
    budget = length - tok.count(head) - tok.count(tail)
    sep = tok.count("\n\n")

    def header(i: int) -> int:
        return tok.count(f"Document {i}:\n")

    docs = [gold_text]
    used = header(1) + tok.count(gold_text)
    if used > budget:
        raise ValueError(f"length {length} is too short for task {task!r}: template and answering document take "
                         f"{length - budget + used} tokens")
    for e in entities[1:]:
        text = document(e)[0]
        cost = sep + header(len(docs) + 1) + tok.count(text)
        if used + cost > budget:
            break
        docs.append(text)
        used += cost
    others = docs[1:]
    slot = round((rng.random() if depth is None else depth) * len(others))
    docs = others[:slot] + [gold_text] + others[slot:]
    left = budget - used - sep - header(len(docs) + 1)
    if left > 0:  # the last tokens: a document of generated prose
        prose = _prefix_fitting(tok, " ".join(itertools.islice(_essay(random.Random(seed + 7919)), left)).split(), left)
        if prose:
            docs.append(prose)
    rendered = [f"Document {i + 1}:\n{d}" for i, d in enumerate(docs)]
    context = "\n\n".join(rendered)
    prompt = head + context + tail
    offset = tok.count(head + "\n\n".join(rendered[:slot]) + ("\n\n" if slot else "") + f"Document {slot + 1}:\n")
    context_len = max(1, tok.count(context))
    meta = dict(depth=depth, entity=entities[0], relation=relation, needle_offsets=[offset],
                context_start=tok.count(head), context_length=context_len,
                needle_depths=[(offset - tok.count(head)) / context_len], num_docs=len(docs))
    return Sample(task, prompt, [answer], _completion(prompt, [answer]), tok.count(prompt), length, meta)


TASKS: dict[str, Callable[..., Sample]] = {  # RULER's 13 configurations (scripts/synthetic.yaml); qa stands for qa_1/2
    "niah_single_1": partial(niah, haystack="noise", key_kind="words", value_kind="numbers", task="niah_single_1"),
    "niah_single_2": partial(niah, haystack="essay", key_kind="words", value_kind="numbers", task="niah_single_2"),
    "niah_single_3": partial(niah, haystack="essay", key_kind="words", value_kind="uuids", task="niah_single_3"),
    "niah_multikey_1": partial(niah, haystack="essay", num_keys=4, task="niah_multikey_1"),
    "niah_multikey_2": partial(niah, haystack="needle", task="niah_multikey_2"),
    "niah_multikey_3": partial(niah, haystack="needle", key_kind="uuids", value_kind="uuids", task="niah_multikey_3"),
    "niah_multivalue": partial(niah, haystack="essay", num_values=4, task="niah_multivalue"),
    "niah_multiquery": partial(niah, haystack="essay", num_keys=4, num_queries=4, task="niah_multiquery"),
    "vt": variable_tracking,
    "cwe": common_words,
    "fwe": frequent_words,
    "qa": multidoc_qa,
}
CATEGORY = {name: ("retrieval" if name.startswith("niah") else "multi-hop tracing" if name == "vt"
                   else "aggregation" if name in ("cwe", "fwe") else "question answering") for name in TASKS}


def make_sample(task: str, length: int, seed: int, depth: float | None = None, tokenizer: WordTokenizer | None = None,
                **params) -> Sample:
    """One sample of a named task (see TASKS), measured in tokens of tokenizer (default: the RULER-lite one)."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)}, got {task!r}")
    tok = tokenizer if tokenizer is not None else W.default_tokenizer()
    return TASKS[task](tok, length, seed, depth=depth, **params)
