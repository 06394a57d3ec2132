"""RULER-lite: synthetic long-context tasks of a chosen length in tokens (Hsieh et al. 2024, RULER).

Each generator takes the tokenizer that measures length, a target length in tokens (the prompt, up
to and including RULER's answer prefix, hits it within a few tokens), a needle depth in [0, 1]
where one applies, and a seed; it returns a `Sample`: the prompt, the reference answers, the
canonical completion a model is trained to write, and metadata (depths, token offsets of needles).

Task names follow RULER's 13 tasks: niah_single_1/2/3 (noise or essay haystack; number or UUID
values), niah_multikey_1/2/3 (distractor needles; every line a needle), niah_multivalue,
niah_multiquery, vt (variable tracking), cwe and fwe (aggregation), and qa, a synthetic
multi-document QA that stands in for SQuAD and HotpotQA (those data sets are not shipped here).
Scoring and the effective length live in `lclib.ruler_metrics`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial

from . import words as W
from .tokenizer import WordTokenizer


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


def _check(length: int, depth: float | None, seed: int) -> None:
    if isinstance(length, bool) or not isinstance(length, int) or length < 32:
        raise ValueError(f"length must be an int >= 32 (tokens), got {length!r}")
    if depth is not None and not 0.0 <= depth <= 1.0:
        raise ValueError(f"depth must be in [0, 1] or None, got {depth!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")


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
        for unit in source:
            cost = tok.count(unit) + (sep_cost if units else 0)
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


def _insert(units: list[str], needles: list[str], depths: list[float]) -> tuple[list[str], list[int]]:
    """Insert each needle at round(depth * len(units)) (between units); return the list and needle indices."""
    slots = sorted(zip((round(d * len(units)) for d in depths), range(len(needles))))
    out, where, previous = [], [0] * len(needles), 0
    for slot, i in slots:
        out.extend(units[previous:slot])
        where[i] = len(out)
        out.append(needles[i])
        previous = slot
    out.extend(units[previous:])
    return out, where


def _build(tok: WordTokenizer, task: str, template: tuple[str, str], fmt: dict, target: int, stream: Iterator[str],
           needles: list[str], depths: list[float], sep: str, topup: Iterator[str] | None, answers: list[str], meta: dict) -> Sample:
    head, tail = template[0].split("{context}")
    head, tail = head.format(**fmt), tail.format(**fmt) + template[1].format(**fmt)
    fixed = tok.count(head) + tok.count(tail) + sum(tok.count(n) + tok.count(sep) for n in needles)
    budget = target - fixed
    if budget < 0:
        raise ValueError(f"length {target} is too short for task {task!r}: its template and needles take {fixed} tokens")
    units, where = _insert(_fill(tok, budget, stream, sep, topup), needles, depths)
    context = sep.join(units)
    prompt = head + context + tail
    offsets = [tok.count(head + sep.join(units[:i]) + (sep if i else "")) for i in where]
    context_len = max(1, tok.count(context))
    meta = dict(meta, needle_offsets=offsets, context_start=tok.count(head), context_length=context_len,
                needle_depths=[(o - tok.count(head)) / context_len for o in offsets])
    completion = " " + ", ".join(answers) + "."
    return Sample(task, prompt, list(answers), completion, tok.count(prompt), target, meta)


def _value(rng: random.Random, kind: str, value_len: int) -> str:
    if kind == "numbers":
        return str(rng.randint(1, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(value_len - 1))
    if kind == "words":
        return rng.choice(W.VALUE_WORDS)
    if kind == "uuids":
        hexes = "0123456789abcdef"
        return "-".join("".join(rng.choice(hexes) for _ in range(4)) for _ in range(max(1, value_len // 4)))
    raise ValueError(f"value kind must be 'numbers', 'words' or 'uuids', got {kind!r}")


def _distinct(draw: Callable[[], str], n: int, avoid: set[str] | None = None) -> list[str]:
    seen, out = set(avoid or ()), []
    for _ in range(100 * n + 100):
        v = draw()
        if v not in seen:
            seen.add(v)
            out.append(v)
            if len(out) == n:
                return out
    raise ValueError(f"cannot draw {n} distinct values from this pool")


def niah(tok: WordTokenizer, length: int, seed: int, depth: float | None = None, haystack: str = "noise",
         key_kind: str = "words", value_kind: str = "numbers", num_keys: int = 1, num_values: int = 1,
         num_queries: int = 1, value_len: int = 7, task: str = "niah") -> Sample:
    """Needle in a haystack: find every value of the asked key(s) among needles hidden in filler.

    haystack: "noise" (RULER's repeated sentences), "essay" (generated prose) or "needle" (every line
    is a needle with another key). num_keys needles carry distinct keys (num_keys - num_queries are
    distractors); each key has num_values values; depth places the first asked needle, others are random.
    """
    _check(length, depth, seed)
    if haystack not in ("noise", "essay", "needle"):
        raise ValueError(f"haystack must be 'noise', 'essay' or 'needle', got {haystack!r}")
    if not 1 <= num_queries <= num_keys:
        raise ValueError(f"num_queries must be in [1, num_keys={num_keys}], got {num_queries}")
    rng = random.Random(seed)
    key_draw = (lambda: rng.choice(W.KEY_WORDS)) if key_kind == "words" else (lambda: _value(rng, key_kind, 8))
    keys = _distinct(key_draw, num_keys)
    values = _distinct(lambda: _value(rng, value_kind, value_len), num_keys * num_values)
    needles, owners = [], []
    for k, key in enumerate(keys):
        for v in range(num_values):
            needles.append(W.NEEDLE.format(type_v=value_kind, key=key, value=values[k * num_values + v]))
            owners.append(k)
    depths = [rng.random() for _ in needles]
    if depth is not None:
        depths[0] = depth
    order = sorted(range(len(needles)), key=lambda i: (depths[i], i))  # order of appearance
    asked = keys[:num_queries]
    answers = [values[i] for i in order if owners[i] < num_queries]  # in order of appearance
    query = asked[0] if num_queries == 1 else ", ".join(asked[:-1]) + ", and " + asked[-1]
    hay_rng = random.Random(seed + 7919)
    if haystack == "needle":
        def stream() -> Iterator[str]:  # distractor keys may repeat among themselves, never the asked ones
            while True:
                k, v = key_draw(), _value(hay_rng, value_kind, value_len)
                if k not in keys and v not in values:
                    yield W.NEEDLE.format(type_v=value_kind, key=k, value=v)
        units = stream()
    else:
        units = _noise(hay_rng) if haystack == "noise" else _essay(hay_rng)
    meta = dict(depth=depth, keys=keys, haystack=haystack, value_kind=value_kind)
    topup = _noise(hay_rng) if haystack == "needle" else units  # noise, never half a needle, fills the end
    singular = num_queries * num_values == 1  # RULER's singular wording ("A special magic number is ...")
    template = W.singular_niah_template() if singular else W.TEMPLATES["niah"]
    fmt = dict(type_v=value_kind, type_v_singular=value_kind[:-1], query=query)
    return _build(tok, task, template, fmt, length, units,
                  needles, depths, " ", topup, answers, meta)


def variable_tracking(tok: WordTokenizer, length: int, seed: int, depth: float | None = None, num_chains: int = 1,
                      num_hops: int = 4, name_len: int = 5, task: str = "vt") -> Sample:
    """Multi-hop tracing: "VAR A = 12345", "VAR B = VAR A", ... in noise; name every variable holding the value.

    depth places the first assignment of the asked chain; the other assignments follow it in order.
    """
    _check(length, depth, seed)
    rng = random.Random(seed)
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    names = _distinct(lambda: "".join(rng.choice(letters) for _ in range(name_len)), num_chains * (num_hops + 1))
    numbers = _distinct(lambda: str(rng.randint(10000, 99999)), num_chains)
    needles, depths = [], []
    for c in range(num_chains):
        chain = names[c * (num_hops + 1):(c + 1) * (num_hops + 1)]
        start = depth if (c == 0 and depth is not None) else rng.random() * 0.5
        steps = sorted([start] + [start + (1 - start) * rng.random() for _ in range(num_hops)])
        needles.append(f"VAR {chain[0]} = {numbers[c]}.")
        needles += [f"VAR {chain[h + 1]} = VAR {chain[h]}." for h in range(num_hops)]
        depths += steps
    answers = names[:num_hops + 1]
    meta = dict(depth=depth, num_chains=num_chains, num_hops=num_hops)
    noise = _noise(rng)
    return _build(tok, task, W.TEMPLATES["vt"], dict(query=numbers[0], num_v=num_hops + 1), length,
                  noise, needles, depths, " ", noise, answers, meta)


def common_words(tok: WordTokenizer, length: int, seed: int, depth: float | None = None, num_common: int = 10,
                 freq_common: int = 3, task: str = "cwe") -> Sample:
    """Aggregation: a numbered list where num_common words occur freq_common times and the rest fewer."""
    _check(length, depth, seed)
    rng = random.Random(seed)
    pool = list(W.CWE_WORDS)
    rng.shuffle(pool)
    common, rare = pool[:num_common], pool[num_common:]
    fmt = dict(num_cw=num_common)
    head, tail = W.TEMPLATES["cwe"][0].split("{context}")
    budget = length - tok.count(head.format(**fmt)) - tok.count(tail.format(**fmt) + W.TEMPLATES["cwe"][1].format(**fmt))
    entries = [w for w in common for _ in range(freq_common)]
    total = sum(tok.count(f"{i + 1}. {w}") + 1 for i, w in enumerate(entries))
    if total > budget:
        raise ValueError(f"length {length} is too short for {num_common} common words x {freq_common}")
    for i in range(10**6):  # rare words in turn, each strictly less often than the common ones
        cost = tok.count(f"{len(entries) + 1}. x") + 1
        if total + cost > budget:
            break
        if i // len(rare) + 1 >= freq_common:
            raise ValueError(f"length {length} needs more rare words than the pool of {len(rare)} allows")
        entries.append(rare[i % len(rare)])
        total += cost
    rng.shuffle(entries)
    answers = sorted(common, key=entries.index)
    lines = [f"{i + 1}. {w}" for i, w in enumerate(entries)]
    return _build(tok, task, W.TEMPLATES["cwe"], fmt, length, iter(lines), [], [], "\n", None, answers,
                  dict(depth=None, num_common=num_common, freq_common=freq_common))


def frequent_words(tok: WordTokenizer, length: int, seed: int, depth: float | None = None, alpha: float = 2.0,
                   task: str = "fwe") -> Sample:
    """Aggregation: coded words drawn with Zipf frequencies k^-alpha; name the three most frequent."""
    _check(length, depth, seed)
    rng = random.Random(seed)
    pool = list(W.CODED_WORDS)
    rng.shuffle(pool)
    head, tail = W.TEMPLATES["fwe"][0].split("{context}")
    n = length - tok.count(head) - tok.count(tail + W.TEMPLATES["fwe"][1])
    weights = [(k + 1) ** -alpha for k in range(len(pool))]
    counts = [int(n * w / sum(weights)) for w in weights]
    for i in range(max(0, n - sum(counts))):  # what flooring lost goes to the rare words, one each
        counts[3 + i % (len(pool) - 3)] += 1
    for k in (2, 1, 0):  # the top three strictly more frequent than the next: no ties in the answer
        counts[k] = max(counts[k], counts[k + 1] + 1)
    words = [w for w, c in zip(pool, counts) for _ in range(c)][:n]
    rng.shuffle(words)
    return _build(tok, task, W.TEMPLATES["fwe"], {}, length, iter(words), [], [], " ", None, pool[:3],
                  dict(depth=None, alpha=alpha))


def multidoc_qa(tok: WordTokenizer, length: int, seed: int, depth: float | None = None, facts_per_doc: int = 2,
                task: str = "qa") -> Sample:
    """Synthetic multi-document QA: one document answers the question; the others are about other countries.

    Documents are short paragraphs of facts ("The capital of Vorgun is Rasras."); a last paragraph of
    generated prose fills the final tokens. depth places the answering document.
    """
    _check(length, depth, seed)
    rng = random.Random(seed)
    entities = list(W.ENTITIES)
    rng.shuffle(entities)
    relations = list(W.RELATIONS)

    def document(entity: str) -> tuple[str, list[tuple[str, str]]]:
        facts = [(r, rng.choice(W.RELATIONS[r])) for r in rng.sample(relations, facts_per_doc)]
        return " ".join(W.QA_FACT.format(relation=r, entity=entity, value=v) for r, v in facts), facts

    gold_text, gold_facts = document(entities[0])
    relation, answer = gold_facts[0]

    def stream() -> Iterator[str]:
        for e in entities[1:]:
            yield document(e)[0]

    meta = dict(depth=depth, entity=entities[0], relation=relation)
    sample = _build(tok, task, W.TEMPLATES["qa"], dict(query=W.QA_QUESTION.format(relation=relation, entity=entities[0])),
                    length, stream(), [gold_text], [rng.random() if depth is None else depth], "\n\n",
                    _essay(random.Random(seed + 7919)), [answer], meta)
    sample.completion = " " + answer + "."
    return sample


TASKS: dict[str, Callable[..., Sample]] = {
    "niah_single_1": partial(niah, haystack="noise", value_kind="numbers", task="niah_single_1"),
    "niah_single_2": partial(niah, haystack="essay", value_kind="numbers", task="niah_single_2"),
    "niah_single_3": partial(niah, haystack="essay", value_kind="uuids", value_len=8, task="niah_single_3"),
    "niah_multikey_1": partial(niah, haystack="essay", num_keys=4, task="niah_multikey_1"),
    "niah_multikey_2": partial(niah, haystack="needle", task="niah_multikey_2"),
    "niah_multikey_3": partial(niah, haystack="needle", key_kind="uuids", value_kind="uuids", value_len=8,
                               task="niah_multikey_3"),
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
