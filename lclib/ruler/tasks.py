"""RULER-lite: RULER's synthetic long-context tasks at a chosen length in tokens (Hsieh et al. 2024, RULER).

The registry: ``TASKS`` names RULER's 13 configurations (scripts/synthetic.yaml), ``make_sample`` draws one.
Each generator takes the tokenizer that measures length (anything with ``count(text) -> int``: the
lab's, or a Hugging Face model's), a target seq_len in tokens (the prompt, up to and including RULER's
answer prefix, hits it within a few tokens; RULER also reserves ``TOKENS_TO_GENERATE`` for the answer,
so pass ``seq_len - TOKENS_TO_GENERATE[task]`` to reproduce its budget), a needle depth in [0, 1] where
one applies, and a seed; it returns a `Sample`: the prompt, the reference answers, the canonical
completion a model is trained to write, and metadata (depths, token offsets of needles).

One module per task family, beside the shared builder (`haystack`):
- `needles`: niah, RULER's 8 needle configurations (keys, values, the noise / essay / needle haystacks);
- `variable_tracking`: vt, chains of "VAR B = VAR A" among noise lines, after RULER's example;
- `aggregation`: cwe (common words in a numbered list) and fwe (Zipf-distributed coded words);
- `qa`: "Document i:" paragraphs with RULER's template;
- `lab_layouts`: the lab's older layouts (haystack "noise_sentences", vt layout "sentences"), which
  ``mixture.LAB_TASKS`` uses.
With default arguments each task is built as RULER's generator builds it. Substituted (nothing may be
downloaded): English word lists of our own for keys and common words, an essay generated from a small
grammar (not Paul Graham's), synthetic fact documents (not SQuAD or HotpotQA). Where RULER leaves slack
(it grows the haystack in steps of up to 500 words), the last line or sentence here is a cut piece of
the haystack, so that the length is hit. Scoring and the effective length live in `lclib.ruler.metrics`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from . import words as W
from .aggregation import common_words, frequent_words
from .haystack import MAX_LENGTH, Sample
from .needles import niah
from .qa import multidoc_qa
from .variable_tracking import variable_tracking

__all__ = ["CATEGORY", "MAX_LENGTH", "Sample", "TASKS", "TOKENS_TO_GENERATE", "make_sample"]

# RULER's tokens_to_generate per task (scripts/synthetic.yaml; the paper's Appendix B).
TOKENS_TO_GENERATE = {"niah": 128, "vt": 30, "cwe": 120, "fwe": 50, "qa": 32}

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


def make_sample(task: str, seq_len: int, seed: int, depth: float | None = None, tokenizer: object | None = None,
                **params) -> Sample:
    """One sample of a named task (see TASKS), measured in tokens of tokenizer (default: the RULER-lite one)."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)}, got {task!r}")
    tokenizer = tokenizer if tokenizer is not None else W.default_tokenizer()
    return TASKS[task](tokenizer, seq_len, seed, depth=depth, **params)
