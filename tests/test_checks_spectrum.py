"""Notebook 05b's checker: the critical dimension, against right answers written several ways and shortcuts."""

import math

import pytest
import torch

from lclib import checks, rope, spectrum
from lclib.model import GPTConfig


def by_wavelengths(head_dim, base, context):
    return 2 * int((rope.wavelengths(rope.inv_freq(head_dim, base)) < context).sum())


def by_turns(head_dim, base, context):  # lclib's turns is a tool, not the answer: allowed
    return 2 * int((spectrum.turns(rope.inv_freq(head_dim, base), context) > 1).sum())


def by_formula(head_dim, base, context):  # Liu et al.'s closed form, clipped
    return 2 * min(max(math.ceil(head_dim / 2 * math.log(context / (2 * math.pi)) / math.log(base)), 0), head_dim // 2)


@pytest.mark.parametrize("answer", [by_wavelengths, by_turns, by_formula])
def test_right_answers_pass(answer, capsys):
    assert checks.check_critical_dimension(answer) is True


def test_the_pair_table_shortcut_is_refused():
    def shortcut(head_dim, base, context):
        config = GPTConfig(d_model=4 * head_dim, n_head=4, rope_base=base)
        return 2 * sum(row["completes_turn"] for row in spectrum.pair_table(config, context))

    with pytest.raises(checks.CheckFailed, match="write it yourself"):
        checks.check_critical_dimension(shortcut)


@pytest.mark.parametrize("wrong, hint", [
    (lambda d, b, n: by_wavelengths(d, b, n) // 2, "two per pair"),
    (lambda d, b, n: d - by_wavelengths(d, b, n), "do not turn"),
    (lambda d, b, n: 2 * max(math.floor(d / 2 * math.log(n / (2 * math.pi)) / math.log(b)), 0), "floor"),
    (lambda d, b, n: 2 * int((rope.wavelengths(rope.inv_freq(d, b)) < 2 * n).sum()), "expected"),
])
def test_slips_get_a_hint(wrong, hint):
    with pytest.raises(checks.CheckFailed, match=hint):
        checks.check_critical_dimension(wrong)
