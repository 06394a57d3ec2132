"""An associative-recall drill: the key-matching skill of RULER's multi-key task, taught on its own first.

Multi-key hides one asked key among four needles. A small model trained on it from scratch learns to find
a needle and copy it long before it learns to match the asked key, and then stays there: copying any
needle is right a quarter of the time, and the one match-the-key signal per ~250 tokens is too weak to move
it (measured in notebook 05). The drill isolates the skill. Each sequence holds 2-6 needles
"key -> 4-digit value" in a haystack, then as many questions, each asking a key drawn *with replacement*
from the sequence's keys (asked once each, the last questions could be answered by elimination, "the
needle not asked yet", without any matching), with the loss on the answers only. Three styles, from easy
to RULER's own wording, one after another in `tools/train_effective_context.py`:

- ``"compact"``:       ``One K is 1 2 3 4 .`` among one-token filler words; ``What K Answer 1 2 3 4 .``
- ``"compact_noise"``: the same needles and questions in RULER's noise haystack ("The grass is green. ...")
- ``"ruler"``:         RULER's needle sentence, `` One of the special magic numbers for K is: 1234.``, in the
                       noise haystack; the question is the end of RULER's: `` for K is:`` then the value

The interface is `lclib.train.train`'s (``vocab_size`` and ``sample``), as for
`lclib.ruler.mixture.RulerMixture`, in the same tokenizer.
"""

from __future__ import annotations

import random

import torch

from .. import validate
from . import words
from .haystack import MAX_LENGTH
from .mixture import draw_seeds, pack_rows
from .words import default_tokenizer

STYLES = ("compact", "compact_noise", "ruler")
VALUE_LEN = 4  # digits per value, as in LAB_TASKS


class RecallDrill:
    """Batches of recall drills, one length per batch drawn in [min_len, max_len] (tokens, BOS included).

    The haystack fills what the needles and questions leave of the length; where they alone exceed it (many
    keys at a short length), the row is longer than asked and has no haystack. Lengths are at most
    `lclib.ruler.tasks.MAX_LENGTH` tokens, a batch at most `lclib.ruler.mixture.MAX_BATCH` rows.
    """

    def __init__(self, min_len: int, max_len: int, style: str, num_keys: tuple[int, int] = (2, 6),
                 key_pool: int = 64, fillers: int = 16):
        for name, value in (("min_len", min_len), ("max_len", max_len), ("key_pool", key_pool), ("fillers", fillers)):
            validate.integer(name, value)
        if style not in STYLES:
            raise ValueError(f"style must be one of {STYLES}, got {style!r}")
        lo, hi = num_keys if isinstance(num_keys, (tuple, list)) and len(num_keys) == 2 else (None, None)
        if not all(validate.is_int(k) for k in (lo, hi)) or not 1 <= lo <= hi:
            raise ValueError(f"num_keys must be (lo, hi) with 1 <= lo <= hi, got {num_keys!r}")
        if not 2 <= hi <= key_pool <= len(words.KEY_WORDS):
            raise ValueError(f"key_pool must be in [num_keys[1], {len(words.KEY_WORDS)}], got {key_pool}")
        if not 1 <= fillers <= len(words.VALUE_WORDS):
            raise ValueError(f"fillers must be in [1, {len(words.VALUE_WORDS)}], got {fillers}")
        self.tokenizer = default_tokenizer()
        self.min_len, self.max_len, self.style = min_len, max_len, style
        self.num_keys, self.key_pool, self.fillers = (lo, hi), key_pool, fillers
        self.keys = words.KEY_WORDS[:key_pool]
        self._fill = [self._one(w) for w in words.VALUE_WORDS[:fillers]]  # one-token filler words
        self._digit = [self._one(str(d)) for d in range(10)]
        if not 8 <= min_len <= max_len:
            raise ValueError(f"need 8 <= min_len <= max_len, got min_len={min_len}, max_len={max_len}")
        if max_len > MAX_LENGTH:
            raise ValueError(f"max_len must be at most MAX_LENGTH = {MAX_LENGTH} (tokens), got {max_len}")
        self.vocab_size = len(self.tokenizer)

    def _one(self, word: str) -> int:
        ids = self.tokenizer.encode(word)
        if len(ids) != 1:
            raise ValueError(f"{word!r} is not one token of the RULER-lite tokenizer")
        return ids[0]

    def to_dict(self) -> dict:
        return {"drill": self.style, "min_len": self.min_len, "max_len": self.max_len,
                "num_keys": list(self.num_keys), "key_pool": self.key_pool, "fillers": self.fillers}

    def _needle_and_question(self, key: str, value: list[int]) -> tuple[list[int], tuple[list[int], list[int]]]:
        """The needle's tokens, and the question's tokens with its answer's (the value, then ".")."""
        dot = self._one(".")
        if self.style == "ruler":
            needle = self.tokenizer.encode(f" One of the special magic numbers for {key} is: ") + value + [dot]
            return needle, (self.tokenizer.encode(f" for {key} is:"), value + [dot])
        k = self._one(key)
        return [self._one("One"), k, self._one("is")] + value + [dot], ([self._one("What"), k, self._one("Answer")], value + [dot])

    def _haystack(self, rng: random.Random, n: int) -> list[int]:
        if self.style == "compact":
            return [rng.choice(self._fill) for _ in range(n)]
        out: list[int] = []
        while len(out) < n:
            out += self.tokenizer.encode(" " + rng.choice(words.NOISE))
        return out[:n]  # cut mid-sentence at the end: a drill, not a text

    def row(self, seed: int, seq_len: int) -> tuple[list[int], list[bool]]:
        """BOS haystack-with-needles questions-and-answers, and which tokens are answers (loss)."""
        validate.integer("seq_len", seq_len, low=1, high=MAX_LENGTH)
        validate.integer("seed", seed)
        rng = random.Random(seed)
        m = rng.randint(*self.num_keys)
        keys = rng.sample(self.keys, m)
        values = {k: [rng.choice(self._digit) for _ in range(VALUE_LEN)] for k in keys}
        parts = {k: self._needle_and_question(k, values[k]) for k in keys}
        needles = [parts[k][0] for k in keys]
        asked = [parts[rng.choice(keys)][1] for _ in range(m)]  # with replacement: no answer by elimination
        budget = max(0, seq_len - sum(map(len, needles)) - sum(len(q) + len(a) for q, a in asked) - 1)
        cuts = sorted(rng.randint(0, budget) for _ in keys)  # where each needle goes in the haystack
        hay = self._haystack(rng, budget)
        seq, prev = [self.tokenizer.bos_id], 0
        for cut, needle in zip(cuts, needles):
            seq += hay[prev:cut] + needle
            prev = cut
        seq += hay[prev:]
        answer = [False] * len(seq)
        for question, value in asked:
            seq += question + value
            answer += [False] * len(question) + [True] * len(value)
        return seq, answer

    def sample(self, batch: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """tokens (B, seq_len) long, targets (B, seq_len) long: the next token on answers, IGNORE elsewhere and on
        padding."""
        seq_len, seeds = draw_seeds(batch, generator, self.min_len, self.max_len)
        return pack_rows([self.row(seed, seq_len) for seed in seeds], self.tokenizer.pad_id)
