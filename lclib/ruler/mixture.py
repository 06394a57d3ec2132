"""Batches of RULER-lite tasks for training the lab's small model, and the lab's named task configuration.

RULER evaluates models trained on natural text; ours have seen nothing, so they are trained on the
tasks themselves, at lengths up to L, and then read at L, 2L, 4L, 8L. ``LAB_TASKS`` is the lab's
configuration: RULER's four needle tasks with its templates, shrunk to what a small model learns in
minutes on a CPU (4-digit values instead of 7, one-token keys instead of adjective-noun pairs, the
noise haystack cut between sentences); ``LAB_OTHER_TASKS`` does the same for RULER's other categories
(variable tracking, common words, frequent words). Sequences are ``BOS prompt completion EOS`` with the
loss on the completion and EOS only, the interface of `lclib.train.train` (``vocab_size`` and ``sample``).

Two training-only knobs (the evaluation always uses the plain tasks):
- ``weights``: how often each task is drawn (whole numbers, default one each);
- ``follow_ups``: on a multi-key sample (several keys, one asked), more questions follow the answer, one
  after another, in the task's own wording, with the loss on their answers. One asked key per sequence
  gives one match-the-key signal among ~250 tokens; a model can copy a needle without matching its key
  and still be right a quarter of the time, so it learns copying long before matching. Each follow-up
  asks for a key drawn at random, with replacement, from the sample's keys: were each key asked once
  (the other keys, in some order), the last questions could be answered by elimination ("the needle
  not yet answered"), a shortcut that a small model learns instead of matching;
- ``loss_on="all"``: the loss on every token (haystack, needles, question, answer), a language model's
  objective, so that the per-token loss over whole sequences (perplexity) means something; the answer
  tokens weigh ``answer_weight`` each, the others 1 (a dozen answer tokens among ~250 would otherwise
  hardly count, and the model would forget how to retrieve).
"""

from __future__ import annotations

import bisect
import itertools
import random

import torch

from .. import validate
from ..model import IGNORE
from .haystack import check_length
from .needles import niah_question
from .tasks import TASKS, make_sample
from .words import default_tokenizer

# The lab's configuration of RULER's needle tasks (every parameter named, so that changing a generator
# default never changes what the shipped models were trained and measured on). singular=None keeps RULER's
# wording: "A special magic number is ... text is" when one value is asked, the plural otherwise, which is
# how a reader learns whether one value or several are wanted.
_LAB_NEEDLE = {"haystack": "noise_sentences", "key_kind": "vocab_words", "value_kind": "numbers", "value_len": 4,
               "singular": None}
LAB_TASKS: dict[str, dict] = {
    "niah_single_1": {**_LAB_NEEDLE, "num_keys": 1, "num_values": 1, "num_queries": 1},
    "niah_multikey_1": {**_LAB_NEEDLE, "num_keys": 4, "num_values": 1, "num_queries": 1},
    "niah_multivalue": {**_LAB_NEEDLE, "num_keys": 1, "num_values": 4, "num_queries": 1},
    "niah_multiquery": {**_LAB_NEEDLE, "num_keys": 4, "num_values": 1, "num_queries": 4},
}
# RULER's other categories at the lab's size: variable tracking with one chain of 2 hops and one-letter
# (one-token) names; common words with RULER's short-length ratio (6 against 1) for 3 common words; frequent
# words with RULER's rank rule (Zipf, alpha 2, the top word replaced by "...") on one-letter coded words.
# No in-context examples: at L = 256 an example would take a quarter to a half of the prompt.
LAB_OTHER_TASKS: dict[str, dict] = {
    "vt": {"num_chains": 1, "num_hops": 2, "name_len": 1, "example": False, "layout": "lines"},
    "cwe": {"num_common": 3, "freq_common": 6, "freq_uncommon": 1, "example": False},
    "fwe": {"alpha": 2.0, "word_len": 1},
}


MAX_BATCH = 4096  # sequences in one batch: more are refused (each is generated one by one)


class RulerMixture:
    """Batches of RULER-lite samples, one task per sequence, one length per batch drawn in [min_len, max_len].

    max_len is at most `lclib.ruler.tasks.MAX_LENGTH` tokens and a batch at most MAX_BATCH sequences.
    """

    def __init__(self, min_len: int, max_len: int, tasks: dict[str, dict] | None = None,
                 weights: dict[str, int] | None = None, follow_ups: int = 0, loss_on: str = "answers",
                 answer_weight: float = 1.0):
        validate.integer("min_len", min_len)
        validate.integer("max_len", max_len)
        if not 32 <= min_len <= max_len:
            raise ValueError(f"need 32 <= min_len <= max_len, got min_len={min_len}, max_len={max_len}")
        check_length("max_len", max_len)  # before any sample is drawn at it
        if tasks is not None and not isinstance(tasks, dict):
            raise TypeError(f"tasks must be a dict of task name -> parameters, got {type(tasks).__name__}")
        self.min_len, self.max_len = min_len, max_len
        self.tasks = dict(LAB_TASKS if tasks is None else tasks)
        unknown = sorted(set(self.tasks) - set(TASKS))
        if unknown or not self.tasks:
            raise ValueError(f"tasks must be a non-empty dict of names from {sorted(TASKS)}, got {unknown or 'none'}")
        weights = {name: 1 for name in self.tasks} if weights is None else dict(weights)
        if set(weights) != set(self.tasks) or any(not validate.is_int(w) or w < 1 for w in weights.values()):
            raise ValueError(f"weights must give a positive int for each task of {sorted(self.tasks)}, got {weights}")
        validate.integer("follow_ups", follow_ups, low=0)
        answer_weight = _check_loss(loss_on, answer_weight)
        self.weights, self.follow_ups, self.loss_on, self.answer_weight = weights, follow_ups, loss_on, answer_weight
        # a task per seed: the (seed % total)-th entry of each task name repeated by its weight, found by its bounds
        self._bounds = list(itertools.accumulate(weights[name] for name in self.tasks))
        self.tokenizer = default_tokenizer()
        self.vocab_size = len(self.tokenizer)
        for name, params in self.tasks.items():  # one sample each: a bad parameter fails here, not mid-training
            try:
                make_sample(name, max_len, 0, tokenizer=self.tokenizer, **params)
            except (TypeError, ValueError) as e:
                raise (TypeError if isinstance(e, TypeError) else ValueError)(f"tasks[{name!r}]: {e}") from None

    def to_dict(self) -> dict:
        out = {"min_len": self.min_len, "max_len": self.max_len, "tasks": self.tasks}
        if self.follow_ups or set(self.weights.values()) != {1}:  # the plain mixture keeps its older record
            out.update(weights=self.weights, follow_ups=self.follow_ups)
        if self.loss_on != "answers":
            out.update(loss_on=self.loss_on, answer_weight=self.answer_weight)
        return out

    def _task(self, seed: int) -> str:
        """The task a seed draws: tasks weighted by weights, seed % (sum of weights) picks one."""
        return list(self.tasks)[bisect.bisect_right(self._bounds, seed % self._bounds[-1])]

    def _row(self, task: str, seq_len: int, seed: int) -> tuple[list[int], list[bool]]:
        """BOS prompt completion [follow-up questions and answers] EOS, and which tokens are answers."""
        params, tokenizer = self.tasks[task], self.tokenizer
        one_asked = task.startswith("niah") and params.get("num_queries", 1) == 1 and params.get("num_values", 1) == 1
        count = self.follow_ups if one_asked and params.get("num_keys", 1) > 1 else 0
        if count:  # make room: the follow-ups come out of the length, never past it
            # the longer (singular) wording, then " ", the value's digits and "."
            per = tokenizer.count(niah_question("x", params.get("value_kind", "numbers"), singular=True))
            per += params.get("value_len", 7) + 2
            count = min(count, max(0, (seq_len - self.min_len) // per))
            seq_len -= count * per
        s = make_sample(task, seq_len, seed, tokenizer=tokenizer, **params)
        prompt = [tokenizer.bos_id] + tokenizer.encode(s.prompt)
        completion = tokenizer.encode(s.completion)
        row, answer = prompt + completion, [False] * len(prompt) + [True] * len(completion)
        keys, rng = s.metadata.get("keys", []), random.Random(seed)
        for key in [rng.choice(keys) for _ in range(count)]:  # with replacement: no answer by elimination
            question = tokenizer.encode(niah_question(key, s.metadata["value_kind"], s.metadata["singular"]))
            values = tokenizer.encode(" " + ", ".join(s.metadata["values"][key]) + ".")
            row += question + values
            answer += [False] * len(question) + [True] * len(values)
        return row + [tokenizer.eos_id], answer + [True]

    def sample(self, batch: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """tokens (B, seq_len) long, targets (B, seq_len) long: the next token where the loss is taken (the
        completion, any follow-up answers and EOS; every token with loss_on="all"), IGNORE elsewhere and on padding."""
        seq_len, seeds = draw_seeds(batch, generator, self.min_len, self.max_len)
        rows = [self._row(self._task(seed), seq_len, seed) for seed in seeds]
        return pack_rows(rows, self.tokenizer.pad_id, self.loss_on, self.answer_weight)


def check_batch(batch: int) -> int:
    """batch if it is an int in [1, MAX_BATCH], else a TypeError or ValueError naming it."""
    return validate.integer("batch", batch, low=1, high=MAX_BATCH)


def draw_seeds(batch: int, generator: torch.Generator, min_len: int, max_len: int) -> tuple[int, list[int]]:
    """One seq_len in [min_len, max_len] for the batch and one seed per row, all drawn from generator.

    The mixture and the drill draw their batches this way: batch + 1 ints below 2^31 - 1, the first for the length."""
    check_batch(batch)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    draw = torch.randint(0, 2**31 - 1, (batch + 1,), generator=generator).tolist()
    return min_len + draw[0] % (max_len - min_len + 1), draw[1:]


def _check_loss(loss_on: str, answer_weight: float) -> float:
    """The loss options of a batch: loss_on "answers" or "all", a finite answer_weight > 0 (as a float)."""
    validate.one_of("loss_on", loss_on, ("answers", "all"))
    return validate.number("answer_weight", answer_weight, low=0.0, low_open=True)


def _flags(b: int, answer: object, n: int) -> torch.Tensor:
    """Row b's answer flags as a bool tensor (n,): bools, or the ints 0 and 1 read as False and True (never as
    indices, which is what a 0/1 long tensor would mean to a mask)."""
    if isinstance(answer, (str, bytes)) or not isinstance(answer, (list, tuple, torch.Tensor)):
        raise TypeError(f"rows[{b}] answer flags must be a list of bool, got {type(answer).__name__}")
    flags = torch.as_tensor(answer) if len(answer) else torch.zeros(0, dtype=torch.bool)
    if flags.dtype != torch.bool:
        if flags.is_floating_point() or flags.is_complex() or not bool(((flags == 0) | (flags == 1)).all()):
            raise ValueError(f"rows[{b}] answer flags must be bools (or the ints 0 and 1), got {list(answer)[:8]!r}")
        flags = flags.bool()
    if flags.shape != (n,):
        raise ValueError(f"rows[{b}] must hold as many answer flags as token ids, got {len(flags)} and {n}")
    return flags


def pack_rows(rows: list[tuple[list[int], list[bool]]], pad_id: int, loss_on: str = "answers",
              answer_weight: float = 1.0) -> dict[str, torch.Tensor]:
    """Rows of (token ids, which tokens are answers), padded into a batch for `lclib.train.train`.

    Answer flags are bools; the ints 0 and 1 are read as False and True. At most MAX_BATCH rows.
    tokens (B, seq_len) long; targets (B, seq_len) long: the next token where the loss is taken (answers, or every token
    with loss_on="all"), IGNORE elsewhere and on padding; with loss_on="all", weights (B, seq_len): answer_weight
    on the answers, 1 elsewhere.
    """
    if isinstance(rows, (str, bytes)) or not isinstance(rows, (list, tuple)) or not rows or \
            any(not isinstance(r, (list, tuple)) or len(r) != 2 for r in rows):
        raise ValueError("rows must be a non-empty list of (token ids, answer flags) pairs, "
                         f"got {type(rows).__name__} {str(rows)[:60]}")
    if len(rows) > MAX_BATCH:
        raise ValueError(f"rows must hold at most MAX_BATCH = {MAX_BATCH} rows, got {len(rows)}")
    validate.integer("pad_id", pad_id, low=0)
    _check_loss(loss_on, answer_weight)
    ids = []
    for b, (row, answer) in enumerate(rows):
        if isinstance(row, (str, bytes)) or not isinstance(row, (list, tuple, torch.Tensor)) or len(row) < 2:
            raise ValueError(f"rows[{b}] token ids must be a list of at least 2 ints, got {str(row)[:60]}")
        row_t = torch.as_tensor(row)
        if row_t.dtype in (torch.bool,) or row_t.is_floating_point() or row_t.is_complex() or row_t.dim() != 1 \
                or bool((row_t < 0).any()):
            raise ValueError(f"rows[{b}] token ids must be ints >= 0, got {list(row)[:8]!r}")
        ids.append((row_t.long(), _flags(b, answer, len(row_t))))
    seq_len = max(len(r) for r, _ in ids)
    tokens = torch.full((len(rows), seq_len), pad_id, dtype=torch.long)
    targets = torch.full((len(rows), seq_len), IGNORE, dtype=torch.long)
    weights = torch.ones(len(rows), seq_len)
    for b, (row_t, flags) in enumerate(ids):
        answer_t = flags[1:]  # answer[t + 1]: token t + 1 is an answer
        tokens[b, :len(row_t)] = row_t
        target = targets[b, :len(row_t) - 1]  # logits at t predict token t + 1
        keep = answer_t if loss_on == "answers" else torch.ones_like(answer_t)
        target[keep] = row_t[1:][keep]
        weights[b, :len(row_t) - 1][answer_t] = answer_weight
    if loss_on == "answers":
        return {"tokens": tokens, "targets": targets}
    return {"tokens": tokens, "targets": targets, "weights": weights}
