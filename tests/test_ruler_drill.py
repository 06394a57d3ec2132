"""The recall drill (lclib.ruler.drill): every question is answered by its key's needle, keys are asked with
replacement, the loss is on the answers only, (bad arguments: tests/test_bad_input.py)."""

import re

import pytest
import torch

from lclib.ruler import drill
from lclib.model import IGNORE

NEEDLE = {"compact": r"One (\S+) is ((?:\d ?)+)\.", "compact_noise": r"One (\S+) is ((?:\d ?)+)\.",
          "ruler": r"special magic numbers for (\S+) is: ((?:\d ?)+)\."}
QUESTION = {"compact": r"What (\S+) Answer ((?:\d ?)+)\.", "compact_noise": r"What (\S+) Answer ((?:\d ?)+)\.",
            "ruler": r"(?<!numbers) for (\S+) is: ?((?:\d ?)+)\."}


def digits(text: str) -> str:
    return re.sub(r"\D", "", text)


@pytest.mark.parametrize("style", drill.STYLES)
def test_every_question_is_answered_by_its_keys_needle(style):
    d = drill.RecallDrill(96, 192, style, num_keys=(3, 6))
    repeats = 0
    for seed in range(30):
        row, answer = d.row(seed, 192)
        assert len(row) == 192 and len(answer) == len(row)  # the haystack fills the length
        text = d.tokenizer.decode(row)
        needles = {k: digits(v) for k, v in re.findall(NEEDLE[style], text)}
        questions = [(k, digits(v)) for k, v in re.findall(QUESTION[style], text)]
        assert 3 <= len(needles) <= 6 and len(questions) == len(needles)  # as many questions as needles
        assert all(len(v) == drill.VALUE_LEN for v in needles.values())
        for key, value in questions:
            assert needles[key] == value  # the asked key's value, not another needle's
        repeats += len({k for k, _ in questions}) < len(questions)
        # the loss: the value's digits and "." of each question, nothing else
        assert sum(answer) == len(questions) * (drill.VALUE_LEN + 1)
        assert digits(d.tokenizer.decode([t for t, a in zip(row, answer) if a])) == "".join(v for _, v in questions)
    assert repeats >= 5  # with replacement: some rows ask a key twice, so elimination cannot answer


def test_compact_haystack_is_filler_words_and_noise_haystack_is_rulers():
    compact = drill.RecallDrill(64, 64, "compact").tokenizer.decode(drill.RecallDrill(64, 64, "compact").row(1, 64)[0])
    noisy = drill.RecallDrill(64, 64, "compact_noise")
    assert "The" not in compact
    assert re.search(r"The (grass|sky|sun) is|Here we go|There and back", noisy.tokenizer.decode(noisy.row(1, 64)[0]))


def test_batches_put_targets_on_answers_only_and_repeat_per_generator_seed():
    d = drill.RecallDrill(32, 128, "compact")
    batch = d.sample(8, torch.Generator().manual_seed(0))
    tokens, targets = batch["tokens"], batch["targets"]
    assert tokens.shape == targets.shape and tokens.shape[0] == 8
    for b in range(8):
        row, answer = tokens[b], targets[b]
        on = (answer != IGNORE).nonzero().flatten()
        torch.testing.assert_close(answer[on], row[on + 1])  # next-token targets
        assert len(on) % (drill.VALUE_LEN + 1) == 0 and len(on) > 0
    again = d.sample(8, torch.Generator().manual_seed(0))
    assert torch.equal(again["tokens"], tokens) and torch.equal(again["targets"], targets)
    assert d.to_dict() == {"drill": "compact", "min_len": 32, "max_len": 128, "num_keys": [2, 6], "key_pool": 64,
                           "fillers": 16}


def test_drill_lengths_and_batches_are_capped():
    from lclib.ruler.mixture import MAX_BATCH
    from lclib.ruler.haystack import MAX_LENGTH

    with pytest.raises(ValueError, match="max_len"):
        drill.RecallDrill(32, MAX_LENGTH + 1, "compact")
    with pytest.raises(ValueError, match="seq_len"):  # before: a haystack of 10^9 tokens, one at a time
        drill.RecallDrill(32, 64, "compact_noise").row(0, 10**9)
    with pytest.raises(ValueError, match="batch"):
        drill.RecallDrill(32, 64, "compact").sample(MAX_BATCH + 1, torch.Generator())
