"""Batches of RULER-lite tasks for training the lab's small model, and the lab's named task configuration.

RULER evaluates models trained on natural text; ours have seen nothing, so they are trained on the
tasks themselves, at lengths up to L, and then read at L, 2L, 4L, 8L. ``LAB_TASKS`` is the lab's
configuration: RULER's four needle tasks with its templates, shrunk to what a small model learns in
minutes on a CPU (4-digit values instead of 7, one-token keys instead of adjective-noun pairs, the
noise haystack cut between sentences). Sequences are ``BOS prompt completion EOS`` with the loss on
the completion and EOS only, the interface of `lclib.train.train` (``vocab_size`` and ``sample``).
"""

from __future__ import annotations

import torch

from . import tasks as ruler
from .words import default_tokenizer

IGNORE = -100  # the target value F.cross_entropy skips (as lclib.tasks.IGNORE)

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


class RulerMixture:
    """Batches of RULER-lite samples, one task per sequence, one length per batch drawn in [min_len, max_len]."""

    def __init__(self, min_len: int, max_len: int, tasks: dict[str, dict] | None = None):
        for name, value in (("min_len", min_len), ("max_len", max_len)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int (tokens), got {type(value).__name__}")
        if not 32 <= min_len <= max_len:
            raise ValueError(f"need 32 <= min_len <= max_len, got min_len={min_len}, max_len={max_len}")
        self.min_len, self.max_len = min_len, max_len
        self.tasks = dict(LAB_TASKS if tasks is None else tasks)
        unknown = sorted(set(self.tasks) - set(ruler.TASKS))
        if unknown or not self.tasks:
            raise ValueError(f"tasks must be a non-empty dict of names from {sorted(ruler.TASKS)}, got {unknown or 'none'}")
        self.tok = default_tokenizer()
        self.vocab_size = len(self.tok)

    def to_dict(self) -> dict:
        return {"min_len": self.min_len, "max_len": self.max_len, "tasks": self.tasks}

    def sample(self, batch: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """tokens (B, T) long, targets (B, T) long: the next token on the completion and EOS, IGNORE elsewhere."""
        draw = torch.randint(0, 2**31 - 1, (batch + 1,), generator=generator).tolist()
        length = self.min_len + draw[0] % (self.max_len - self.min_len + 1)
        names = list(self.tasks)
        rows, answer_from = [], []
        for seed in draw[1:]:
            task = names[seed % len(names)]
            s = ruler.make_sample(task, length, seed, tokenizer=self.tok, **self.tasks[task])
            prompt = [self.tok.bos_id] + self.tok.encode(s.prompt)
            rows.append(prompt + self.tok.encode(s.completion) + [self.tok.eos_id])
            answer_from.append(len(prompt))
        T = max(len(r) for r in rows)
        tokens = torch.full((batch, T), self.tok.pad_id, dtype=torch.long)
        targets = torch.full((batch, T), IGNORE, dtype=torch.long)
        for b, (row, a) in enumerate(zip(rows, answer_from)):
            tokens[b, :len(row)] = torch.tensor(row)
            targets[b, a - 1:len(row) - 1] = torch.tensor(row[a:])  # logits at t predict token t + 1
        return {"tokens": tokens, "targets": targets}
