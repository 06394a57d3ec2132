"""Needle in a haystack, RULER's retrieval family (Hsieh et al. 2024; NVIDIA/RULER scripts/data/synthetic/niah.py).

The needle is "One of the special magic numbers for {key} is: {value}."; keys are adjective-noun pairs,
7-digit numbers or uuid4 strings, values 7-digit numbers or uuids. Haystacks (RULER's three, and the lab's):
- "noise": RULER's 5-sentence block once per line, needles on lines of their own at random line positions;
- "essay": generated essay sentences, needles between sentences at depths drawn from RULER's 40 depths;
- "needle": every line a needle with a fresh key and value (niah_multikey_2/3);
- "noise_sentences": the lab's older layout (`lab_layouts`).
The query names the asked keys ("k1, k2, k3, and k4"); one asked value takes RULER's singular wording.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from functools import partial

from .. import validate
from . import lab_layouts, words as W
from .haystack import (MAX_TERM_LEN, Sample, build, check_args, check_room, distinct, essay_sentences, fill,
                       fill_lines, noise_lines, random_slots)

NIAH_HAYSTACKS = ("noise", "essay", "needle", "noise_sentences")
KEY_KINDS = ("numbers", "words", "uuids", "vocab_words")


def niah(tokenizer: object, seq_len: int, seed: int, depth: float | None = None, haystack: str = "noise",
         key_kind: str = "words", value_kind: str = "numbers", num_keys: int = 1, num_values: int = 1,
         num_queries: int = 1, value_len: int = 7, task: str = "niah", singular: bool | None = None) -> Sample:
    """Retrieval: num_keys keys with num_values values each hidden as needles; the first num_queries keys are asked.

    RULER's generator with its defaults (key_kind "words", value_kind "numbers", value_len 7); depth places
    the first needle (RULER draws it). "vocab_words" draws the lab's one-token words (words.KEY_WORDS and
    VALUE_WORDS). singular=None takes RULER's wording: singular when one value of one key is asked.
    """
    _check_niah(tokenizer, seq_len, depth, seed, haystack, key_kind, value_kind, num_keys, num_values, num_queries,
                value_len, task, singular)
    rng = random.Random(seed)
    draw_key = partial(_draw, rng, key_kind, lab_layouts.LAB_KEY_LEN if haystack == "noise_sentences" else value_len,
                       W.KEY_WORDS)
    draw_value = partial(_draw, kind=value_kind, value_len=value_len, vocab=W.VALUE_WORDS)
    keys = distinct(draw_key, num_keys, f"num_keys (keys of kind {key_kind!r})")
    values = distinct(lambda: draw_value(rng), num_keys * num_values,
                      f"num_keys * num_values (values of kind {value_kind!r}, value_len={value_len})")
    type_v = _type_v(value_kind)
    needles = [W.NEEDLE.format(type_v=type_v, key=key, value=values[k * num_values + v])
               for k, key in enumerate(keys) for v in range(num_values)]
    asked = [k < num_queries for k in range(num_keys) for _ in range(num_values)]
    singular = num_queries * num_values == 1 if singular is None else singular
    template, fmt = _template(keys[:num_queries], type_v, singular)
    meta = dict(depth=depth, keys=keys, haystack=haystack, value_kind=value_kind, singular=singular,
                values={key: values[k * num_values:(k + 1) * num_values] for k, key in enumerate(keys)})
    hay_rng = random.Random(seed + 7919)
    if haystack == "noise_sentences":
        return lab_layouts.niah_in_sentences(tokenizer, task, template, fmt, seq_len, rng, needles, values, asked,
                                             depth, meta)
    if haystack == "essay":
        sentences = essay_sentences(hay_rng)
        fill_budget = partial(fill, tokenizer, stream=sentences, sep=" ", topup=sentences)
        place, sep = partial(_essay_slots, rng, len(needles), depth), " "
    else:
        lines = noise_lines() if haystack == "noise" else _distractors(
            draw_key, partial(draw_value, hay_rng), type_v, set(keys), set(values),
            f"num_keys={num_keys} leaves no distractors for haystack 'needle': the needles use up the keys of kind "
            f"{key_kind!r} or the values of kind {value_kind!r} (value_len={value_len})")
        fill_budget = partial(fill_lines, tokenizer, stream=lines)
        place, sep = partial(_line_slots, rng, len(needles), depth), "\n"
    return build(tokenizer, task, template, fmt, seq_len, fill_budget, needles, place, sep,
                 partial(_asked_in_order, values, asked), meta)


def _check_niah(tokenizer: object, seq_len: int, depth: float | None, seed: int, haystack: str, key_kind: str,
                value_kind: str, num_keys: int, num_values: int, num_queries: int, value_len: int, task: str,
                singular: bool | None) -> None:
    check_args(tokenizer, seq_len, depth, seed)
    validate.one_of("haystack", haystack, NIAH_HAYSTACKS)
    validate.one_of("key_kind", key_kind, KEY_KINDS)
    validate.one_of("value_kind", value_kind, KEY_KINDS)
    for name, value in (("num_keys", num_keys), ("num_values", num_values), ("num_queries", num_queries)):
        validate.integer(name, value, low=1)
    validate.integer("value_len", value_len, low=1, high=MAX_TERM_LEN)
    check_room(tokenizer, task, seq_len, "num_keys * num_values needles", num_keys * num_values,
               W.NEEDLE.format(type_v="numbers", key="", value=""))
    if not 1 <= num_queries <= num_keys:
        raise ValueError(f"num_queries must be in [1, num_keys={num_keys}], got {num_queries}")
    if haystack == "essay" and num_keys * num_values > len(W.DEPTHS):
        raise ValueError(f"num_keys * num_values must be at most {len(W.DEPTHS)} for the essay haystack (RULER's "
                         f"depths, one needle each), got {num_keys} * {num_values}")
    if singular is not None and not isinstance(singular, bool):
        raise TypeError(f"singular must be None, True or False, got {type(singular).__name__}")


def niah_question(key: str, value_kind: str = "numbers", singular: bool = True) -> str:
    """The question a niah prompt ends with, for one key: "\nWhat is the special magic number for KEY
    mentioned in the provided text? The special magic number for KEY mentioned in the provided text is"."""
    if not isinstance(key, str):
        raise TypeError(f"key must be a str, got {type(key).__name__}")
    validate.one_of("value_kind", value_kind, KEY_KINDS)
    if not isinstance(singular, bool):
        raise TypeError(f"singular must be a bool, got {type(singular).__name__}")
    template, fmt = _template([key], _type_v(value_kind), singular)
    return template[0].split("{context}")[1].format(**fmt) + template[1].format(**fmt)


def _type_v(value_kind: str) -> str:
    """The value type the template names: "numbers", "words" or "uuids" (the lab's words are words)."""
    return "words" if value_kind == "vocab_words" else value_kind


def _template(asked: list[str], type_v: str, singular: bool) -> tuple[tuple[str, str], dict]:
    """RULER's template (singular or plural wording) and its fields for the asked keys."""
    query = asked[0] if len(asked) == 1 else ", ".join(asked[:-1]) + ", and " + asked[-1]
    template = W.singular_niah_template() if singular else W.TEMPLATES["niah"]
    return template, dict(type_v=type_v, type_v_singular=type_v[:-1], query=query)


def _draw(rng: random.Random, kind: str, value_len: int, vocab: tuple[str, ...]) -> str:
    """A key or value of RULER's kinds: value_len-digit number, adjective-noun pair, uuid4; or a word of vocab."""
    if kind == "vocab_words":
        return rng.choice(vocab)
    if kind == "numbers":  # uniform over [10^(n-1), 10^n - 1], as RULER's random.randint
        return str(rng.randint(1, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(value_len - 1))
    if kind == "words":
        return f"{rng.choice(W.ADJECTIVES)}-{rng.choice(W.NOUNS)}"
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _asked_in_order(values: list[str], asked: list[bool], where: list[int]) -> list[str]:
    """The asked needles' values in order of appearance (where: each needle's index in the context)."""
    return [values[i] for i in sorted(range(len(values)), key=lambda i: where[i]) if asked[i]]


def _line_slots(rng: random.Random, count: int, depth: float | None, lines: int) -> list[int]:
    """RULER: random.sample over the lines, a needle before its line; depth places the first needle."""
    slots = random_slots(rng, count, lines)
    rng.shuffle(slots)
    if depth is not None:
        slots[0] = round(depth * lines)
    return slots


def _essay_slots(rng: random.Random, count: int, depth: float | None, sentences: int) -> list[int]:
    """RULER: int(n * d / 100) for depths d drawn from its 40 depths; depth places the first needle."""
    slots = [int(sentences * d / 100) for d in rng.sample(W.DEPTHS, count)]
    if depth is not None:
        slots[0] = round(depth * sentences)
    return slots


def _distractors(draw_key: Callable[[], str], draw_value: Callable[[], str], type_v: str, taken_keys: set[str],
                 taken_values: set[str], used_up: str) -> Iterator[str]:
    """Needles with fresh keys and values of the task's kinds, never the real ones (the "needle" haystack)."""
    misses = 0
    while True:
        k, v = draw_key(), draw_value()
        if k not in taken_keys and v not in taken_values:
            misses = 0
            yield W.NEEDLE.format(type_v=type_v, key=k, value=v)
            continue
        misses += 1
        if misses == 1000:  # the task's own needles have used up a pool: no draw will ever fit
            raise ValueError(used_up)
