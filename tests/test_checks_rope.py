"""check_score_bound (notebook 01, exercise 3) against answers a student might really write.

The bound is RoFormer's (section 3.4.3): |score| <= max_i |h_{i+1} - h_i| * sum_{j=1}^{d/2} |S_j|. Each wrong
answer must be rejected with one short hint (never the checker's catch-all), the usual slips with their own
hint, and a right answer must pass however it is computed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lclib import checks, rope
from lclib.checks.runner import NOT_CHECKED


def score_bound(q, k, distances, inv_freq):
    """The worked solution (notebooks/solutions/01_rope_from_scratch_solutions.ipynb)."""
    h = torch.complex(q[0::2], q[1::2]) * torch.complex(k[0::2], k[1::2]).conj()  # (d/2,) h_i
    steps = torch.cat([h[1:], h.new_zeros(1)]) - h  # h_{i+1} - h_i, with h_{d/2} = 0
    angles = distances.double()[:, None] * inv_freq.double()[None, :]  # (n, d/2)
    partial_sums = torch.polar(torch.ones_like(angles), angles).cumsum(dim=-1)  # S_1 .. S_{d/2}
    return steps.abs().max() * partial_sums.abs().sum(dim=-1)


def with_pairs(layout="interleaved", conjugate=True, last_term=True, inclusive=True, average=False):
    """The solution with one slip switched on."""

    def fn(q, k, distances, inv_freq):
        half = q.shape[-1] // 2
        split = (lambda x: (x[0::2], x[1::2])) if layout == "interleaved" else (lambda x: (x[:half], x[half:]))
        kz = torch.complex(*split(k))
        h = torch.complex(*split(q)) * (kz.conj() if conjugate else kz)
        steps = torch.cat([h[1:], h.new_zeros(1)]) - h
        steps = steps if last_term else steps[:-1]
        angles = distances.double()[:, None] * inv_freq.double()[None, :]
        partial_sums = torch.polar(torch.ones_like(angles), angles).cumsum(dim=-1)
        if not inclusive:
            partial_sums = partial_sums - torch.polar(torch.ones_like(angles), angles)  # S_0 .. S_{d/2-1}
        sums = partial_sums.abs().mean(dim=-1) if average else partial_sums.abs().sum(dim=-1)
        return steps.abs().max() * sums

    return fn


def partial_sums(distances, inv_freq):
    """S_1 .. S_{d/2} at each distance. (n, d/2) complex."""
    angles = distances.double()[:, None] * inv_freq.double()[None, :]
    return torch.polar(torch.ones_like(angles), angles).cumsum(dim=-1)


def raises(*args):
    raise ZeroDivisionError("student bug")


def mutates_then_wrong(q, k, distances, inv_freq):
    q.zero_()
    return score_bound(q, k, distances, inv_freq)


WRONG = {
    "raises": (raises, "ZeroDivisionError: student bug"),
    "returns_none": (lambda *a: None, "None"),
    "nan": (lambda *a: torch.full_like(score_bound(*a), float("nan")), "NaN"),
    "inf": (lambda *a: score_bound(*a).index_fill(0, torch.tensor([0]), float("inf")), "inf"),
    "wrong_shape": (lambda *a: score_bound(*a)[:-1], "shape"),
    "a_number": (lambda *a: score_bound(*a).max().item(), "expected a tensor of shape (7,)"),
    "wrong_type": (lambda *a: "42", "expected"),
    "off_by_constant": (lambda *a: score_bound(*a) + 0.5, "expected"),
    "numpy_off_by_constant": (lambda *a: score_bound(*a).numpy() * 1.01, "expected"),
    "mutates_input": (mutates_then_wrong, "not an upper bound"),
    "distance_factor_alone": (lambda q, k, d, f: partial_sums(d, f).abs().sum(-1), "distance factor"),
    "relative_bound": (lambda q, k, d, f: partial_sums(d, f).abs().mean(-1), "relative bound"),
    "averages": (with_pairs(average=True), "average"),
    "no_last_term": (with_pairs(last_term=False), "h_{d/2} = 0"),
    "shifted_partial_sums": (with_pairs(inclusive=False), "shifted by one"),
    "no_conjugate": (with_pairs(conjugate=False), "conjugate"),
    "half_split": (with_pairs(layout="half"), "(2i, 2i+1)"),
}


def rejected(fn) -> str:
    with pytest.raises(checks.CheckFailed) as info:
        checks.check_score_bound(fn)
    message = str(info.value)
    assert message and "\n" not in message and len(message) < 400, f"hint not one short line: {message!r}"
    assert NOT_CHECKED not in message, f"no specific hint, only the checker's catch-all: {message!r}"
    return message


@pytest.mark.parametrize("name", sorted(WRONG))
def test_wrong_answers_get_a_clear_hint(name, capsys):
    fn, word = WRONG[name]
    message = rejected(fn)
    assert word in message, f"{name}: the hint should mention {word!r}: {message!r}"
    if name == "raises":
        assert "called with" in message
    assert "Correct" not in capsys.readouterr().out


@pytest.mark.parametrize("how", ["solution", "numpy", "float32", "list", "in_place"])
def test_right_answers_pass_however_computed(how, capsys):
    fn = {
        "solution": score_bound,
        "numpy": lambda *a: score_bound(*a).numpy(),
        "float32": lambda *a: score_bound(*a).float(),
        "list": lambda *a: score_bound(*a).tolist(),
        "in_place": lambda q, k, d, f: (lambda out: (q.zero_(), k.zero_(), out)[-1])(score_bound(q, k, d, f)),
    }[how]
    assert checks.check_score_bound(fn) is True
    assert capsys.readouterr().out.startswith("Correct: ")


def test_a_stub_is_not_done(capsys):
    def stub(q, k, distances, inv_freq):
        raise NotImplementedError

    assert checks.check_score_bound(stub) is False
    assert "Not done yet" in capsys.readouterr().out


def test_the_bound_bounds_true_scores_and_matches_the_relative_curve():
    """The reference is an upper bound on random q, k, and its distance factor is rope.decay_bound times d/2."""
    gen = torch.Generator().manual_seed(0)
    d, distances = 64, torch.arange(0, 3000, 7)
    freqs = rope.inv_freq(d)
    for _ in range(5):
        q, k = torch.randn(2, d, generator=gen, dtype=torch.float64)
        true = (rope.apply_rope(q.expand(len(distances), d), distances, freqs, layout="interleaved") @ k).abs()
        bound = score_bound(q, k, distances, freqs)
        assert bound.shape == (len(distances),) and bool((bound >= true).all())
        factor = bound / score_bound(q, k, torch.tensor([0]), freqs) * (d // 2) * (d // 2 + 1) / 2
        torch.testing.assert_close(factor, rope.decay_bound(d, 10000.0, distances) * (d // 2))


def test_a_wrong_answer_that_wrecks_its_inputs_leaves_the_checker_intact(capsys):
    """The student's function gets copies: after one zeroed them, the right answer still passes."""
    rejected(mutates_then_wrong)
    assert checks.check_score_bound(score_bound) is True

