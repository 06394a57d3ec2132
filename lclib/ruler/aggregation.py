"""Aggregation, RULER's common-words and frequent-words extraction (Hsieh et al. 2024; NVIDIA/RULER
common_words_extraction.py and freq_words_extraction.py).

- cwe: a numbered list "1. word 2. word ..." where num_common words occur freq_common times and the others
  freq_uncommon (RULER: 10 x 30 against x 3; 6 and 1 below 4096 tokens), after RULER's in-context example;
- fwe: random coded words whose rank k occurs int(N k^-alpha / zeta(alpha)) times, rank 1 the noise "...";
  the answer is ranks 2-4.
Neither task has a needle: depth is accepted for a uniform signature and ignored.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from .. import validate
from . import words as W
from .haystack import MAX_TERM_LEN, Sample, build, check_args, distinct, frame, token_cost


def common_words(tokenizer: object, seq_len: int, seed: int, depth: float | None = None, num_common: int = 10,
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
    check_args(tokenizer, seq_len, depth, seed)
    short = seq_len < 4096
    freq_common = (6 if short else 30) if freq_common is None else freq_common
    freq_uncommon = (1 if short else 3) if freq_uncommon is None else freq_uncommon
    _check_common(num_common, freq_common, freq_uncommon, example, short)
    rng = random.Random(seed)
    english = list(W.ENGLISH_WORDS)
    rng.shuffle(english)
    fmt = dict(num_cw=num_common)
    shot = _common_example(rng, english, num_common, short, fmt) if example else ""
    extra = list(W.extra_words())
    rng.shuffle(extra)
    pool = english + extra  # RULER samples its words at random: ours are shuffled, English first
    common = pool[:num_common]
    head, tail = frame(W.TEMPLATES["cwe"], fmt, shot)
    budget = seq_len - tokenizer.count(head) - tokenizer.count(tail)
    chosen = _uncommon(tokenizer, task, seq_len, budget, common, pool[num_common:], freq_common, freq_uncommon)
    word_list = common * freq_common + chosen * freq_uncommon
    rng.shuffle(word_list)
    order = {w: i for i, w in reversed(list(enumerate(word_list)))}
    answers = sorted(common, key=order.__getitem__)  # in order of first appearance
    context = _numbered(word_list)
    return build(tokenizer, task, W.TEMPLATES["cwe"], fmt, seq_len, lambda budget: [context], [], lambda units: [], " ",
                 answers, dict(depth=None, num_common=num_common, freq_common=freq_common, freq_uncommon=freq_uncommon,
                               example=bool(shot)), example=shot)


def _check_common(num_common: int, freq_common: int, freq_uncommon: int, example: bool, short: bool) -> None:
    for name, value in (("num_common", num_common), ("freq_common", freq_common), ("freq_uncommon", freq_uncommon)):
        validate.integer(name, value, low=1)
    if freq_common <= freq_uncommon:
        raise ValueError(f"freq_common must exceed freq_uncommon, got {freq_common} and {freq_uncommon}")
    pool_size = len(W.ENGLISH_WORDS) + len(W.extra_words())
    if num_common >= pool_size:
        raise ValueError(f"num_common must be below {pool_size} (the words available), got {num_common}")
    if example and num_common >= (20 if short else 40):
        raise ValueError(f"num_common must be below the example's {20 if short else 40} words, got {num_common}")


def _numbered(words: Sequence[str]) -> str:
    return " ".join(f"{i + 1}. {w}" for i, w in enumerate(words))


def _common_example(rng: random.Random, english: list[str], num_common: int, short: bool, fmt: dict) -> str:
    """RULER's in-context example, with its answer: 40 words, 10 x 10 and 30 x 3 (below 4096: 20 words, 3 and 1)."""
    n_ex, cr, ucr = (20, 3, 1) if short else (40, 10, 3)
    ex_words = rng.sample(english, n_ex)
    ex_list = ex_words[:num_common] * cr + ex_words[num_common:] * ucr
    rng.shuffle(ex_list)
    return (W.TEMPLATES["cwe"][0].format(context=_numbered(ex_list), **fmt) + W.TEMPLATES["cwe"][1].format(**fmt)
            + " " + _numbered(ex_words[:num_common]) + "\n")


def _uncommon(tokenizer: object, task: str, seq_len: int, budget: int, common: list[str], rare: list[str],
              freq_common: int, freq_uncommon: int) -> list[str]:
    """The uncommon words whose entries fill what the common ones leave of budget: whole words while they fit
    (RULER's binary search over num_words), then the last ones swapped for longer words to land on the length."""
    entries = len(common) * freq_common
    if entries > budget:  # each "i. word" takes a token or more: refuse before counting them one by one
        raise ValueError(f"seq_len {seq_len} is too short for task {task!r}: {len(common)} common words x {freq_common} "
                         f"are {entries} entries for {budget} tokens")
    used = sum(freq_common * tokenizer.count(w) for w in common) + sum(tokenizer.count(f"{i + 1}.") for i in range(entries))
    if used > budget:
        raise ValueError(f"seq_len {seq_len} is too short for task {task!r}: {len(common)} common words x {freq_common} "
                         f"take {used} of {budget} tokens")
    n_rare = 0
    while n_rare < len(rare):
        cost = freq_uncommon * tokenizer.count(rare[n_rare]) + sum(tokenizer.count(f"{entries + j + 1}.")
                                                                 for j in range(freq_uncommon))
        if used + cost > budget:
            break
        used += cost
        entries += freq_uncommon
        n_rare += 1
    return _lengthen(tokenizer, rare[:n_rare], rare[n_rare:n_rare + 200], freq_uncommon, budget - used)


def _lengthen(tokenizer: object, chosen: list[str], candidates: list[str], freq: int, left: int) -> list[str]:
    """chosen with its last (up to 49) words swapped for the longest candidates that fit in left tokens."""
    for slot in range(len(chosen) - 1, max(-1, len(chosen) - 50), -1):
        if left < freq:
            break
        old = tokenizer.count(chosen[slot])
        best = max((w for w in candidates if w not in chosen and freq * (tokenizer.count(w) - old) <= left),
                   key=lambda w: tokenizer.count(w), default=None)
        if best is not None and tokenizer.count(best) > old:
            left -= freq * (tokenizer.count(best) - old)
            chosen[slot] = best
    return chosen


def frequent_words(tokenizer: object, seq_len: int, seed: int, depth: float | None = None, alpha: float = 2.0,
                   word_len: int = 6, task: str = "fwe") -> Sample:
    """Aggregation: coded words with Zipf counts; name the three most frequent (RULER's freq_words_extraction.py).

    RULER: a vocabulary of seq_len // 50 random word_len-letter words; the word of rank k occurs
    int(N k^-alpha / zeta(alpha)) times; rank 1 becomes the noise word "..."; the answer is ranks 2-4.
    N is the largest that fits; the last tokens take single occurrences of unused words, then "...".
    At short lengths (a few hundred tokens) the floors can tie ranks 4 and 5, as in RULER: metadata
    "unambiguous" says whether the three answers are strictly the most frequent words.
    depth is accepted for a uniform signature and ignored.
    """
    check_args(tokenizer, seq_len, depth, seed)
    validate.number("alpha", alpha, low=1.0, low_open=True)  # the Zipf sum must converge
    validate.integer("word_len", word_len, low=1, high=MAX_TERM_LEN)
    if word_len > seq_len:
        raise ValueError(f"word_len must be at most seq_len={seq_len} (a coded word is spelled letter by letter), "
                         f"got {word_len}")
    rng = random.Random(seed)
    size = max(5, seq_len // 50)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = distinct(lambda: "".join(rng.choice(letters) for _ in range(word_len)), size,
                     f"word_len={word_len} (seq_len // 50 = {size} coded words of word_len letters)")
    vocab[0] = "..."  # RULER: the top-ranked word is noise
    head, tail = frame(W.TEMPLATES["fwe"], {})
    budget = seq_len - tokenizer.count(head) - tokenizer.count(tail)
    if budget < 0:
        raise ValueError(f"seq_len {seq_len} is too short for task {task!r}: its template takes {seq_len - budget} tokens")
    cost = [token_cost(tokenizer, w) + tokenizer.count(" ") for w in vocab]  # >= 1 each: the fills below end
    counts, total = _zipf_counts(cost, alpha, budget)
    words = [w for w, ci in zip(vocab, counts) for _ in range(ci)]
    rng.shuffle(words)
    unambiguous = min(counts[1:4]) > max(counts[4:], default=0)
    return build(tokenizer, task, W.TEMPLATES["fwe"], {}, seq_len, lambda budget: [" ".join(words)], [],
                 lambda units: [], " ", vocab[1:4], dict(depth=None, alpha=alpha, num_words=total, unambiguous=unambiguous))


def _zipf(total: int, size: int, alpha: float, zeta: float) -> list[int]:
    """Occurrences of the words of rank 1..size among total: int(total k^-alpha / zeta(alpha))."""
    return [int(total * (k + 1) ** -alpha / zeta) for k in range(size)]


def _zipf_counts(cost: list[int], alpha: float, budget: int) -> tuple[list[int], int]:
    """Occurrences per word for the largest N whose text fits in budget tokens (cost: tokens per occurrence),
    then unused tail words once each and the noise word, to fill the last tokens; and N."""
    size = len(cost)
    zeta = sum(k ** -alpha for k in range(1, 100000)) + 100000 ** (1 - alpha) / (alpha - 1)
    lo, hi = 0, 2 * max(1, budget)  # each word costs >= 1 token, so N <= budget / 0.6 is plenty
    while lo < hi:  # the largest N whose text fits
        mid = (lo + hi + 1) // 2
        fits = sum(ci * wi for ci, wi in zip(_zipf(mid, size, alpha, zeta), cost)) <= budget
        lo, hi = (mid, hi) if fits else (lo, mid - 1)
    c = _zipf(lo, size, alpha, zeta)
    used = sum(ci * wi for ci, wi in zip(c, cost))
    for k in range(size - 1, 4, -1):  # unused tail words once each, then noise, fill the last tokens
        if c[k] == 0 and used + cost[k] <= budget:
            c[k], used = 1, used + cost[k]
    while used + cost[0] <= budget:
        c[0], used = c[0] + 1, used + cost[0]
    return c, lo
