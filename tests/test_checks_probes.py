"""The checkers of lclib.checks.probes (notebook 04: the Bayes policy's curve, the Wilson interval) against the
answers a student might write: each slip gets its own hint, a right answer passes however it is written, a stub
is "not done", and calling the library's own answer is refused."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lclib import checks, kv_task, probes


def _counts(p, i):
    others = torch.cat([p[:i], p[i + 1:]])
    same = torch.isclose(others, p[i], rtol=1e-9, atol=1e-15)
    return int(((others > p[i]) & ~same).sum()), int(same.sum())


def bayes_curve(p, key_symbols):
    q, out = 1.0 / key_symbols, []
    for i in range(len(p)):
        higher, ties = _counts(p, i)
        split = sum(math.comb(ties, c) * q ** c * (1 - q) ** (ties - c) / (1 + c) for c in range(ties + 1))
        out.append((1 - q) ** higher * split)
    return torch.tensor(out, dtype=torch.float64)


def bayes_curve_simulated_ties(p, key_symbols):
    """The same curve, ties by E[1/(1+C)] = (1 - (1-q)^(t+1)) / ((t+1) q): another right way to write it."""
    q, out = 1.0 / key_symbols, []
    for i in range(len(p)):
        higher, ties = _counts(p, i)
        out.append((1 - q) ** higher * (1 - (1 - q) ** (ties + 1)) / ((ties + 1) * q))
    return np.array(out)


def ties_as_wins(p, key_symbols):
    return torch.tensor([(1 - 1 / key_symbols) ** _counts(p, i)[0] for i in range(len(p))], dtype=torch.float64)


def ties_as_losses(p, key_symbols):
    return torch.tensor([(1 - 1 / key_symbols) ** sum(_counts(p, i)) for i in range(len(p))], dtype=torch.float64)


def jensen(p, key_symbols):
    q = 1 / key_symbols
    return torch.tensor([(1 - q) ** h / (1 + t * q) for h, t in (_counts(p, i) for i in range(len(p)))],
                        dtype=torch.float64)


def strict_rank_off_by_one(p, key_symbols):  # counts position i among the higher ones
    return ties_as_wins(p, key_symbols) * (1 - 1 / key_symbols)


def wilson_right(successes, trials):
    z, p, n = 1.959963984540054, successes / trials, trials
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, min(centre - half, p)), min(1.0, max(centre + half, p))


def wald(successes, trials):
    p = successes / trials
    se = math.sqrt(p * (1 - p) / trials)
    return p - 1.96 * se, p + 1.96 * se


def wilson_z_one(successes, trials):  # a 68% interval: z = 1
    p, n = successes / trials, trials
    centre = (p + 1 / (2 * n)) / (1 + 1 / n)
    half = math.sqrt(p * (1 - p) / n + 1 / (4 * n * n)) / (1 + 1 / n)
    return centre - half, centre + half


@pytest.mark.parametrize("fn", [bayes_curve, bayes_curve_simulated_ties, lambda p, k: bayes_curve(p, k).tolist()],
                         ids=["loop", "closed-form-ties-numpy", "list"])
def test_right_bayes_curves_pass(fn, capsys):
    assert checks.check_bayes_curve(fn) is True
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize(("fn", "word"), [
    (ties_as_wins, "ignore ties"),
    (ties_as_losses, "not a sure loss"),
    (jensen, "E[1/(1+C)]"),
    (lambda p, k: torch.ones(len(p), dtype=torch.float64), "ties"),  # uniform demand first: all ones ignores ties
    (lambda p, k: p.clone(), "demand p itself"),
    (strict_rank_off_by_one, "expected"),
    (lambda p, k: kv_task.bayes_accuracy(p, k), "write it yourself"),
    (lambda p, k: torch.ones(len(p) + 1), "shape"),
], ids=["ties-as-wins", "ties-as-losses", "jensen", "all-ones", "returns-p", "off-by-one", "calls-library", "shape"])
def test_wrong_bayes_curves_get_their_hint(fn, word):
    with pytest.raises(checks.CheckFailed) as info:
        checks.check_bayes_curve(fn)
    assert word in str(info.value), str(info.value)


def test_the_library_answer_works_again_after_the_check():
    with pytest.raises(checks.CheckFailed):
        checks.check_bayes_curve(lambda p, k: kv_task.bayes_accuracy(p, k))
    with pytest.raises(checks.CheckFailed):
        checks.check_wilson(lambda s, n: tuple(float(x) for x in probes.wilson_interval(torch.tensor(s), n)))
    assert kv_task.bayes_accuracy(kv_task.demand("uniform", 3), 2).shape == (3,)
    assert float(probes.wilson_interval(torch.tensor(5), 10)[0]) > 0


def test_wilson(capsys):
    assert checks.check_wilson(wilson_right) is True
    assert checks.check_wilson(lambda s, n: np.array(wilson_right(s, n))) is True
    for fn, word in [(wald, "Wald"), (wilson_z_one, "expected"), (lambda s, n: s / n, "pair"),
                     (lambda s, n: tuple(float(x) for x in probes.wilson_interval(torch.tensor(s), n)), "write it yourself")]:
        with pytest.raises(checks.CheckFailed) as info:
            checks.check_wilson(fn)
        assert word in str(info.value), str(info.value)


def test_stubs_are_not_done(capsys):
    def stub(*args):
        raise NotImplementedError

    assert checks.check_bayes_curve(stub) is False and checks.check_wilson(stub) is False
    assert capsys.readouterr().out.count("Not done yet") == 2


# --- a second set of answers, written as the worked solution and a no-ties slip ---------------------------------

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


def test_right_answers_pass(capsys):
    assert checks.check_bayes_curve(bayes_right) is True
    assert checks.check_wilson(wilson_right) is True
    assert capsys.readouterr().out.count("Correct") == 2


def test_wrong_answers_get_specific_hints():
    with pytest.raises(checks.CheckFailed, match="ties"):
        checks.check_bayes_curve(bayes_no_ties)
    with pytest.raises(checks.CheckFailed, match="expected"):
        checks.check_bayes_curve(lambda p, k: torch.full((len(p),), 0.5, dtype=torch.float64))
