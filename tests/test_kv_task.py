"""Tests for lclib.kv_task (the key-value recall task): sequence layout, targets, demand distributions, text, Bayes curve."""

from __future__ import annotations

import pytest
import torch

from lclib import kv_task
from lclib.model import IGNORE
from lclib.kv_task import ARROW, BOS, KVTask, Q, bayes_accuracy, demand


def test_layout_targets_and_answers():
    task = KVTask(n_pairs=5, key_symbols=8, questions=3)
    b = task.sample(4, torch.Generator().manual_seed(0))
    assert b["tokens"].shape == (4, task.seq_len(5)) == (4, 1 + 15 + 12)
    assert b["keys"].shape == (4, 5) and b["values"].shape == (4, 5, 2) and b["query"].shape == (4, 3)
    tok = b["tokens"]
    assert (tok[:, 0] == BOS).all()
    for r in range(4):
        for j in range(3):
            at = int(b["answer_at"][r, j])
            i = int(b["query"][r, j])
            assert tok[r, at - 1] == Q and ARROW not in tok[r].tolist()
            assert tok[r, at] == tok[r, 1 + 3 * i]  # the question repeats the key of pair i
            torch.testing.assert_close(tok[r, at + 1:at + 3], tok[r, 2 + 3 * i:4 + 3 * i])  # answer = its value
            expected = tok[r, at + 1:at + 3] if b["counted"][r, j] else torch.full((2,), IGNORE)
            torch.testing.assert_close(b["targets"][r, at:at + 2], expected)
    assert ((b["targets"] != IGNORE).sum(1) == 2 * b["counted"].sum(1)).all()


def test_repeated_question_gets_no_loss():
    task = KVTask(n_pairs=4, key_symbols=8, questions=3)
    b = task.sample(1, torch.Generator().manual_seed(0), query_positions=torch.tensor([[2, 2, 1]]))
    assert b["counted"].tolist() == [[True, False, True]]


def test_distinct_keys_and_variable_length():
    task = KVTask(n_pairs=(3, 9), key_symbols=12, distinct_keys=True)
    gen = torch.Generator().manual_seed(0)
    lengths = set()
    for _ in range(20):
        b = task.sample(3, gen)
        n = b["keys"].shape[1]
        lengths.add(n)
        assert 3 <= n <= 9
        for row in b["keys"]:
            assert len(set(row.tolist())) == n
    assert len(lengths) > 3


def test_same_generator_seed_same_batch():
    task = KVTask()
    a = task.sample(2, torch.Generator().manual_seed(5))
    b = task.sample(2, torch.Generator().manual_seed(5))
    torch.testing.assert_close(a["tokens"], b["tokens"])


@pytest.mark.parametrize("kind", kv_task.DEMANDS)
def test_demand_is_a_distribution(kind):
    p = demand(kind, 24)
    assert p.shape == (24,) and p.dtype == torch.float64
    assert torch.isclose(p.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert (p > 0).all()


def test_demand_shapes():
    u = demand("smooth", 24, tau=3.0, eps=0.25)
    assert u[0] > u[5] > u[11] and torch.allclose(u, u.flip(0))  # graded and symmetric
    assert torch.allclose(demand("uniform", 7), torch.full((7,), 1 / 7, dtype=torch.float64))
    step = demand("ends", 12, ends=2, eps=0.0)
    assert step[:2].sum() + step[-2:].sum() == pytest.approx(1.0) and step[5] == 0
    assert demand("recency", 10)[-1] > demand("recency", 10)[0]


def test_demand_draws_follow_p():
    task = KVTask(n_pairs=10, demand="recency", questions=8)
    b = task.sample(2000, torch.Generator().manual_seed(0))
    freq = torch.bincount(b["query"].flatten(), minlength=10).double() / b["query"].numel()
    torch.testing.assert_close(freq, demand("recency", 10), atol=0.01, rtol=0)


def test_text_round_trip_is_readable():
    task = KVTask(n_pairs=3, key_symbols=8, questions=1)
    b = task.sample(1, torch.Generator().manual_seed(0), query_positions=torch.tensor([[1]]))
    text = kv_task.to_text(b["tokens"][0])
    words = text.split()
    assert words[0] == "BOS" and len([w for w in words if w.startswith("K") and ":" in w]) == 3
    pair = words[2]  # pair 1, e.g. "K03:a7"
    assert text.endswith(f"| Q {pair[:3]} -> {pair[4:]}")


def test_bayes_accuracy():
    # uniform demand: one match always, two matches half the time ...: E[1 / (1 + Binom(n-1, 1/K))]
    acc = bayes_accuracy(demand("uniform", 5), 4)
    want = sum(torch.distributions.Binomial(4, torch.tensor(0.25)).log_prob(torch.tensor(float(c))).exp() / (1 + c)
               for c in range(5))
    torch.testing.assert_close(acc, torch.full((5,), float(want), dtype=torch.float64))
    # strictly decreasing demand: position i wins only if none of the i earlier positions match
    p = torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64)
    torch.testing.assert_close(bayes_accuracy(p, 2), torch.tensor([1.0, 0.5, 0.25, 0.125], dtype=torch.float64))
    u = bayes_accuracy(demand("smooth", 24), 32)
    assert u[0] > u[11] + 0.4 and torch.allclose(u, u.flip(0))


@pytest.mark.parametrize("kw, match", [
    ({"n_pairs": 0}, "n_pairs"), ({"key_symbols": 65}, "key_symbols"),
    ({"n_pairs": 40, "key_symbols": 32, "distinct_keys": True}, "distinct_keys"),
    ({"demand": "middle"}, "kind"), ({"questions": 0}, "questions"),
])
def test_task_validation(kw, match):
    with pytest.raises(ValueError, match=match):
        KVTask(**kw)
