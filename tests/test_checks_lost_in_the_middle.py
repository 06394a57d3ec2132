"""Tests for the notebook-04 checkers: a right answer passes, a stub is "not done", wrong answers hint."""

from __future__ import annotations

import math

import pytest
import torch

from lclib import checks


def bayes_right(p, key_symbols):
    q = 1.0 / key_symbols
    out = []
    for i in range(len(p)):
        others = torch.cat([p[:i], p[i + 1:]])
        close = torch.isclose(others, p[i], rtol=1e-9, atol=1e-15)
        higher, ties = int(((others > p[i]) & ~close).sum()), int(close.sum())
        out.append((1 - q) ** higher * sum(math.comb(ties, c) * q ** c * (1 - q) ** (ties - c) / (1 + c)
                                           for c in range(ties + 1)))
    return torch.tensor(out, dtype=torch.float64)


def bayes_no_ties(p, key_symbols):
    return torch.tensor([(1 - 1 / key_symbols) ** float((p > p[i]).sum()) for i in range(len(p))])


def wilson_right(successes, trials):
    z, p, n = 1.959963984540054, successes / trials, trials
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, min(centre - half, p)), min(1.0, max(centre + half, p))


def wald(successes, trials):
    p = successes / trials
    se = math.sqrt(p * (1 - p) / trials)
    return p - 1.96 * se, p + 1.96 * se


def stub(*args):
    raise NotImplementedError


def test_right_answers_pass(capsys):
    assert checks.check_bayes_curve(bayes_right) is True
    assert checks.check_wilson(wilson_right) is True
    assert capsys.readouterr().out.count("Correct") == 2


def test_stubs_are_not_done(capsys):
    assert checks.check_bayes_curve(stub) is False
    assert checks.check_wilson(stub) is False
    assert capsys.readouterr().out.count("Not done yet") == 2


def test_wrong_answers_get_specific_hints():
    with pytest.raises(checks.CheckFailed, match="ties"):
        checks.check_bayes_curve(bayes_no_ties)
    with pytest.raises(checks.CheckFailed, match="ties"):  # uniform demand: all ones is the no-ties answer
        checks.check_bayes_curve(lambda p, k: torch.ones(len(p), dtype=torch.float64))
    with pytest.raises(checks.CheckFailed, match="expected"):
        checks.check_bayes_curve(lambda p, k: torch.full((len(p),), 0.5, dtype=torch.float64))
    with pytest.raises(checks.CheckFailed, match="Wald"):
        checks.check_wilson(wald)
    with pytest.raises(checks.CheckFailed, match="pair"):
        checks.check_wilson(lambda s, n: s / n)
