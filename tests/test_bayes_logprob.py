"""lclib.kv_task.bayes_logprob: the Bayes predictor's log p of the correct value and its greedy exact match."""

from __future__ import annotations

import math

import pytest
import torch

from lclib import kv_task
from lclib.kv_task import KVTask, bayes_accuracy, bayes_logprob, demand


def hand_sample(keys, values, query):
    return {"keys": torch.tensor([keys]), "values": torch.tensor([values]), "query": torch.tensor([query])}


def test_shapes_and_dtype():
    task = KVTask(n_pairs=6, key_symbols=4, questions=3)
    s = task.sample(5, torch.Generator().manual_seed(0))
    out = bayes_logprob(s, demand("smooth", 6))
    assert set(out) == {"logprob", "exact"}
    assert out["logprob"].shape == out["exact"].shape == (5, 3)
    assert out["logprob"].dtype == out["exact"].dtype == torch.float64
    assert bool((out["logprob"] <= 0).all()) and bool(((out["exact"] >= 0) & (out["exact"] <= 1)).all())


def test_a_unique_key_is_certain():
    s = KVTask(n_pairs=8, key_symbols=16, distinct_keys=True, questions=2).sample(4, torch.Generator().manual_seed(1))
    out = bayes_logprob(s, demand("smooth", 8))
    torch.testing.assert_close(out["logprob"], torch.zeros(4, 2, dtype=torch.float64))
    torch.testing.assert_close(out["exact"], torch.ones(4, 2, dtype=torch.float64))


def test_two_matches_posterior_by_demand():
    p = torch.tensor([0.5, 0.2, 0.3], dtype=torch.float64)
    s = hand_sample([0, 1, 0], [[3, 10], [7, 7], [4, 5]], [2, 0])  # pairs 0 and 2 share key 0
    out = bayes_logprob(s, p)
    torch.testing.assert_close(out["logprob"], torch.tensor([[math.log(0.375), math.log(0.625)]], dtype=torch.float64))
    torch.testing.assert_close(out["exact"], torch.tensor([[0.0, 1.0]], dtype=torch.float64))


def test_teacher_forced_tokens_when_matches_share_the_first_token():
    p = torch.tensor([0.4, 0.3, 0.3], dtype=torch.float64)
    # all three pairs hold key 0; pairs 1 and 2 share the first value token 5, so greedy picks v1 = 5 (0.6 > 0.4)
    s = hand_sample([0, 0, 0], [[3, 10], [5, 12], [5, 13]], [0, 1])
    out = bayes_logprob(s, p)
    torch.testing.assert_close(out["logprob"], torch.tensor([[math.log(0.4), math.log(0.3)]], dtype=torch.float64))
    # pair 0: v1 = 3 is not the argmax; pair 1: v1 = 5 right, then v2 = 12 or 13 tie: half the time
    torch.testing.assert_close(out["exact"], torch.tensor([[0.0, 0.5]], dtype=torch.float64))


def test_ties_split_evenly():
    s = hand_sample([2, 2, 1, 0], [[1, 1], [2, 2], [3, 3], [4, 4]], [0])
    out = bayes_logprob(s, demand("uniform", 4))
    torch.testing.assert_close(out["logprob"], torch.tensor([[math.log(0.5)]], dtype=torch.float64))
    torch.testing.assert_close(out["exact"], torch.tensor([[0.5]], dtype=torch.float64))


@pytest.mark.parametrize(("kind", "n", "k"), [("smooth", 12, 8), ("uniform", 10, 4), ("recency", 8, 6)])
def test_exact_averages_to_bayes_accuracy(kind, n, k):
    """Per position, the mean exact match over many sequences is bayes_accuracy's closed form, up to sampling
    noise and the first-token collisions the closed form ignores (measured: within 0.02 at 4,000 samples)."""
    p = demand(kind, n)
    samples = 4000
    query = torch.arange(n).repeat_interleave(samples)[:, None]
    s = KVTask(n_pairs=n, key_symbols=k, questions=1).sample(len(query), torch.Generator().manual_seed(0), n_pairs=n,
                                                             query_positions=query)
    exact = bayes_logprob(s, p)["exact"].view(n, samples).mean(1)
    assert float((exact - bayes_accuracy(p, k)).abs().max()) <= 0.03


def test_a_miss_under_uniform_demand_is_a_lost_tie():
    p = demand("uniform", 12)
    query = torch.arange(12).repeat_interleave(500)[:, None]
    s = KVTask(n_pairs=12, key_symbols=8, questions=1).sample(len(query), torch.Generator().manual_seed(2),
                                                              n_pairs=12, query_positions=query)
    out = bayes_logprob(s, p)
    miss = 1 - out["exact"]
    # the correct value holds 1/(1 + c) of the mass when c other pairs match: at most 1/2 on a miss
    assert float(out["logprob"][miss > 0].max()) <= math.log(0.5) + 1e-9


def test_validation():
    s = KVTask(n_pairs=5, key_symbols=4, questions=1).sample(2, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"p must have shape \(5,\)"):
        bayes_logprob(s, demand("smooth", 6))
    with pytest.raises(ValueError, match="finite and positive"):
        bayes_logprob(s, torch.tensor([0.5, 0.5, 0.0, 0.0, 0.0], dtype=torch.float64))
    assert kv_task.bayes_logprob is bayes_logprob
