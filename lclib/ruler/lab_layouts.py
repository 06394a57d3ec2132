"""The lab's older layouts of RULER's tasks, kept draw for draw as the shipped models saw them.

Before the generators followed RULER line by line, the lab hid its needles between noise sentences (RULER's
five sentences, cycled, one after another on a single line) at depths drawn uniformly, not on lines of
their own. The models in weights/effective_context were trained and are measured on these layouts
(``mixture.LAB_TASKS``: haystack "noise_sentences", key_kind "vocab_words"; the vt layout "sentences"),
so they stay here, apart from RULER's faithful code in `needles` and `variable_tracking`.
"""

from __future__ import annotations

import itertools
import random
from functools import partial

from . import words as W
from .haystack import Sample, build, fill

LAB_KEY_LEN = 8  # characters of the lab's keys of RULER's kinds (numbers, words, uuids) in noise sentences


def _at_depths(depths: list[float], units: int) -> list[int]:
    return [round(d * units) for d in depths]


def in_noise_sentences(tokenizer: object, task: str, template: tuple[str, str], fmt: dict, seq_len: int,
                       needles: list[str], depths: list[float], answers: list[str], meta: dict) -> Sample:
    """The prompt with needle i between noise sentences at fraction depths[i] of the haystack."""
    noise = itertools.cycle(W.NOISE)  # one stream for filling and topping up, as the lab drew it
    return build(tokenizer, task, template, fmt, seq_len, partial(fill, tokenizer, stream=noise, sep=" ", topup=noise),
                 needles, partial(_at_depths, depths), " ", answers, meta)


def niah_in_sentences(tokenizer: object, task: str, template: tuple[str, str], fmt: dict, seq_len: int,
                      rng: random.Random, needles: list[str], values: list[str], asked: list[bool],
                      depth: float | None, meta: dict) -> Sample:
    """niah's "noise_sentences" haystack: each needle at a uniform random depth (the first at depth if given);
    the answers, the asked values in order of appearance."""
    depths = [rng.random() for _ in needles]
    if depth is not None:
        depths[0] = depth
    order = sorted(range(len(needles)), key=lambda i: (depths[i], i))
    answers = [values[i] for i in order if asked[i]]
    return in_noise_sentences(tokenizer, task, template, fmt, seq_len, needles, depths, answers, meta)


def vt_in_sentences(tokenizer: object, task: str, fmt: dict, seq_len: int, rng: random.Random,
                    chains: list[list[str]], numbers: list[str], depth: float | None, meta: dict) -> Sample:
    """variable_tracking's "sentences" layout: "VAR B = VAR A." between noise sentences, each chain starting in
    the first half (the asked one at depth if given) and its later assignments after it, in order."""
    needles, depths = [], []
    for c, chain in enumerate(chains):
        start = depth if (c == 0 and depth is not None) else rng.random() * 0.5
        depths += sorted([start] + [start + (1 - start) * rng.random() for _ in range(len(chain) - 1)])
        needles += [f"VAR {chain[0]} = {numbers[c]}."] + [f"VAR {b} = VAR {a}." for a, b in zip(chain, chain[1:])]
    return in_noise_sentences(tokenizer, task, W.TEMPLATES["vt"], fmt, seq_len, needles, depths, chains[0],
                              dict(meta, example=False))
