"""Tests for the notebook-03b checkers: right answers pass however written, stubs are "not done", and the
typical mistakes (no residual self-loops, the mask read backwards, one value token only, one hop too many;
a crossover that noise flips back, a tie counted as cheaper, an index for a length) get their own hint."""

from __future__ import annotations

import pytest
import torch

from lclib import checks, dilated


def reach_of(mask, layers, self_loops=True, transpose=False):
    graph = mask.T if transpose else mask
    step = (graph | torch.eye(len(mask), dtype=torch.bool)) if self_loops else graph
    connected = step.float()
    for _ in range(layers - 1):
        connected = (step.float() @ connected).clamp(max=1.0)
    return connected > 0


def answerable(mask, layers, n_pairs, **kw):
    reach = reach_of(mask, layers, **kw)
    i, a = torch.arange(n_pairs), 3 * n_pairs + 2
    return reach[a, 2 + 3 * i] & reach[a + 1, 3 + 3 * i]


def answerable_as_list(mask, layers, n_pairs):
    return [bool(x) for x in answerable(mask, layers, n_pairs)]


def answerable_by_bfs(mask, layers, n_pairs):  # breadth-first search backwards from each answer slot
    def sources(target):
        seen = {target}
        for _ in range(layers):
            seen |= {int(k) for q in seen for k in mask[q].nonzero().flatten()}
        return seen
    a = 3 * n_pairs + 2
    s1, s2 = sources(a), sources(a + 1)
    return torch.tensor([(2 + 3 * i in s1) and (3 + 3 * i in s2) for i in range(n_pairs)])


def stub(*args):
    raise NotImplementedError


def answerable_as_ints(mask, layers, n_pairs):
    return [int(x) for x in answerable(mask, layers, n_pairs)]  # a list of 0/1: the exercise allows it


@pytest.mark.parametrize("fn", [answerable, answerable_as_list, answerable_by_bfs, answerable_as_ints])
def test_answerable_pairs_right_answers_pass(fn, capsys):
    assert checks.check_answerable_pairs(fn) is True
    assert capsys.readouterr().out.startswith("Correct: ")


@pytest.mark.parametrize(("fn", "hint"), [
    (lambda m, L, n: answerable(m, L, n, self_loops=False), "self-loops"),
    (lambda m, L, n: answerable(m, L, n, transpose=True), "information flows from the key"),
    (lambda m, L, n: reach_of(m, L)[3 * n + 2, 2 + 3 * torch.arange(n)], "both value tokens"),
    (lambda m, L, n: answerable(m, L + 1, n), "hops"),
    (lambda m, L, n: answerable(m, L, n).int() * 2, "True/False"),
    (lambda m, L, n: dilated.reach(m, L)[3 * n + 2, 2 + 3 * torch.arange(n)], "write it yourself"),
])
def test_answerable_pairs_mistakes_get_their_hint(fn, hint):
    with pytest.raises(checks.CheckFailed, match=hint):
        checks.check_answerable_pairs(fn)


def test_the_answerable_cases_separate_the_mistakes():
    """Each mistake differs from the reference on at least one case, else its hint could never be shown."""
    from lclib.checks.dilated_adapters import ANSWERABLE_CASES, _answerable, case_mask
    for kwargs in (dict(self_loops=False), dict(flip=True), dict(only_v1=True), dict(steps=2)):
        assert any(not torch.equal(_answerable(m, L, n), _answerable(m, L, n, **kwargs))
                   for n, pattern, L in ANSWERABLE_CASES for m in [case_mask(n, pattern)[0]]), kwargs


def crossover(lengths, dense_s, dilated_s):
    for i, n in enumerate(lengths):
        if all(s < d for d, s in zip(dense_s[i:], dilated_s[i:])):
            return n
    return None


def crossover_backwards(lengths, dense_s, dilated_s):
    best = None
    for n, d, s in reversed(list(zip(lengths, dense_s, dilated_s))):
        if s >= d:
            break
        best = n
    return best


@pytest.mark.parametrize("fn", [crossover, crossover_backwards])
def test_crossover_right_answers_pass(fn, capsys):
    assert checks.check_crossover_length(fn) is True
    assert capsys.readouterr().out.startswith("Correct: ")


def first_cheaper(lengths, dense_s, dilated_s):
    return next((n for n, d, s in zip(lengths, dense_s, dilated_s) if s < d), None)


def cheaper_or_equal(lengths, dense_s, dilated_s):
    for i, n in enumerate(lengths):
        if all(s <= d for d, s in zip(dense_s[i:], dilated_s[i:])):
            return n
    return None


def index_not_length(lengths, dense_s, dilated_s):
    n = crossover(lengths, dense_s, dilated_s)
    return None if n is None else lengths.index(n)


@pytest.mark.parametrize(("fn", "hint"), [
    (first_cheaper, "for good"),
    (cheaper_or_equal, "strictly"),
    (index_not_length, "not its index"),
    (lambda *a: 4096, "None"),
])
def test_crossover_mistakes_get_their_hint(fn, hint):
    with pytest.raises(checks.CheckFailed, match=hint):
        checks.check_crossover_length(fn)


@pytest.mark.parametrize("check", [checks.check_answerable_pairs, checks.check_crossover_length])
def test_stubs_are_not_done(check, capsys):
    assert check(stub) is False
    assert "Not done yet" in capsys.readouterr().out
