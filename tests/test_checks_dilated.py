"""Tests for the notebook-03 checkers: right answers pass however written, stubs are "not done", and each class
of wrong answer (raises, None, NaN, inf, wrong shape, off by a constant, a mixture instead of the union, unstable,
mutating its inputs, calling the library's own answer) gets one short, specific hint."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lclib import checks, dilated
from lclib.checks.runner import NOT_CHECKED


def union_right(out_a, lse_a, out_b, lse_b, out_ab, lse_ab):
    top = torch.maximum(lse_a, lse_b)
    top = top.masked_fill(top == -math.inf, 0.0)
    za, zb, zab = (torch.exp(lse - top)[:, None] for lse in (lse_a, lse_b, lse_ab))
    num, den = za * out_a + zb * out_b - zab * out_ab, za + zb - zab
    return num / torch.where(den > 0, den, torch.ones_like(den))


def union_naive(out_a, lse_a, out_b, lse_b, out_ab, lse_ab):  # right formula, no max subtracted, no empty rows
    za, zb, zab = (torch.exp(lse)[:, None] for lse in (lse_a, lse_b, lse_ab))
    return (za * out_a + zb * out_b - zab * out_ab) / (za + zb - zab)


def union_stable_but_nan_on_empty(out_a, lse_a, out_b, lse_b, out_ab, lse_ab):
    top = torch.maximum(lse_a, lse_b)
    za, zb, zab = (torch.exp(lse - top)[:, None] for lse in (lse_a, lse_b, lse_ab))
    return (za * out_a + zb * out_b - zab * out_ab) / (za + zb - zab)


def longnet_mixture(out_a, lse_a, out_b, lse_b, out_ab, lse_ab):
    alpha = torch.softmax(torch.stack([lse_a, lse_b]), dim=0).nan_to_num(0.0)[..., None]
    return alpha[0] * out_a + alpha[1] * out_b


def _signed(out_a, lse_a, out_b, lse_b, out_ab, lse_ab, sign):
    top = torch.maximum(lse_a, lse_b).masked_fill(torch.maximum(lse_a, lse_b) == -math.inf, 0.0)
    za, zb, zab = (torch.exp(lse - top)[:, None] for lse in (lse_a, lse_b, lse_ab))
    den = za + zb + sign * zab
    return (za * out_a + zb * out_b + sign * zab * out_ab) / torch.where(den > 0, den, torch.ones_like(den))


def unweighted(out_a, lse_a, out_b, lse_b, out_ab, lse_ab):
    return out_a + out_b - out_ab


def layers_right(n, segment_lengths, dilation_rates, num_heads):
    mask = dilated.attention_mask(n, segment_lengths, dilation_rates, num_heads).any(0)
    step = (mask | torch.eye(n, dtype=torch.bool)).float()
    connected = step.clone()
    for depth in range(1, 17):
        if bool((connected > 0).all()):
            return depth
        connected = (step @ connected).clamp(max=1.0)
    return None


def one_pattern_right(q, k, v, segment_len, dilation):
    n, d = q.shape

    def gather(x):
        return x.view(n // segment_len, segment_len, -1)[:, ::dilation]

    out = torch.zeros_like(v)
    scores = gather(q) @ gather(k).transpose(-1, -2) / math.sqrt(d)
    out.view(n // segment_len, segment_len, -1)[:, ::dilation] = torch.softmax(scores, dim=-1) @ gather(v)
    return out


def stub(*args):
    raise NotImplementedError


def raises(*args):
    raise ZeroDivisionError("student bug")


def hint(check, fn) -> str:
    with pytest.raises(checks.CheckFailed) as info:
        check(fn)
    message = str(info.value)
    assert message and "\n" not in message and len(message) < 400, message
    assert NOT_CHECKED not in message, message
    return message


# --- check_union_attention ------------------------------------------------------------------------

def zero_inputs_then_right(*args):
    for t in args:
        t.zero_()
    return union_right(*args)


def right_then_zero_inputs(*args):
    out = union_right(*args)
    for t in args:
        t.zero_()
    return out


UNION_RIGHT = {
    "solution": union_right,
    "numpy": lambda *a: union_right(*a).numpy(),
    "float32": lambda *a: union_right(*a).float(),
    "written into out_a": lambda *a: a[0].copy_(union_right(*a)),
    "wrecks its inputs after computing": right_then_zero_inputs,
}


@pytest.mark.parametrize("how", sorted(UNION_RIGHT))
def test_union_right_answers_pass(how, capsys):
    assert checks.check_union_attention(UNION_RIGHT[how]) is True
    assert capsys.readouterr().out.startswith("Correct: ")


UNION_WRONG = {
    "raises": (raises, "ZeroDivisionError: student bug"),
    "returns None": (lambda *a: None, "None"),
    "NaN": (lambda *a: torch.full_like(union_right(*a), math.nan), "NaN"),
    "inf": (lambda *a: union_right(*a).index_fill(0, torch.tensor([0]), math.inf), "inf"),
    "wrong shape": (lambda *a: union_right(*a)[:, :-1], "shape"),
    "transposed": (lambda *a: union_right(*a).T, "shape"),
    "a string": (lambda *a: "42", "expected"),
    "off by a constant": (lambda *a: union_right(*a) + 0.5, "union"),
    "mutates its inputs": (zero_inputs_then_right, "union"),
    "LongNet's mixture": (longnet_mixture, "mixture"),
    "adds the overlap": (lambda *a: _signed(*a, sign=1.0), "subtract"),
    "ignores the denominators": (unweighted, "exp(lse)"),
    "no max subtracted": (union_naive, ""),
    "NaN on rows no pattern selects": (union_stable_but_nan_on_empty, "no pattern selects"),
    "numpy off by a constant": (lambda *a: union_right(*a).numpy() + 0.5, "union"),
}


@pytest.mark.parametrize("name", sorted(UNION_WRONG))
def test_union_wrong_answers_get_a_hint(name, capsys):
    fn, word = UNION_WRONG[name]
    message = hint(checks.check_union_attention, fn)
    assert word in message, f"{name}: {message!r}"
    assert "Correct" not in capsys.readouterr().out


def test_union_unstable_answer_is_told_to_factor_out_the_max():
    """The naive exp(lse) has NaN already on the empty rows; stable on those, it must still fail on large scores."""
    def stable_on_empty_rows_only(out_a, lse_a, out_b, lse_b, out_ab, lse_ab):
        if bool((torch.maximum(lse_a, lse_b) > 700).any()):
            return union_naive(out_a, lse_a, out_b, lse_b, out_ab, lse_ab)
        return union_right(out_a, lse_a, out_b, lse_b, out_ab, lse_ab)

    assert "709" in hint(checks.check_union_attention, stable_on_empty_rows_only)
    assert "no pattern selects" in hint(checks.check_union_attention, union_naive)


def test_union_cases_cover_what_the_hints_name():
    """One case has rows no pattern selects, one overflows exp(lse), and the mixture differs from the union."""
    from lclib.checks.dilated import UNION_CASES

    assert any(not bool(dilated.attention_mask(n, [a[0], b[0]], [a[1], b[1]], causal=c)[0].any(-1).all())
               for n, a, b, c, _ in UNION_CASES)
    assert max(scale for *_, scale in UNION_CASES) * 3 > 709  # a score of 3 sigma times the scale overflows exp
    assert any(c for _, _, _, c, _ in UNION_CASES) and any(a[0] % b[0] and b[0] % a[0] for _, a, b, _, _ in UNION_CASES)


def test_union_reference_is_not_corrupted_by_an_answer_that_mutates():
    seen = []

    def spy(*args):
        seen.append([t.clone() for t in args])
        for t in args:
            t.fill_(7.0)
        return union_right(*seen[-1])

    assert checks.check_union_attention(spy) is True


# --- the other two checkers: hiding the library's answer, and the basic classes -------------------

def test_layers_for_full_reach_cannot_call_reach(capsys):
    def with_library(n, segment_lengths, dilation_rates, num_heads):
        mask = dilated.attention_mask(n, segment_lengths, dilation_rates, num_heads).any(0)
        return next((d for d in range(1, 17) if bool(dilated.reach(mask, d).all())), None)

    assert "write it yourself" in hint(checks.check_layers_for_full_reach, with_library)
    assert checks.check_layers_for_full_reach(layers_right) is True
    assert dilated.reach(torch.eye(3, dtype=torch.bool), 1).all() == False  # noqa: E712  (restored after the check)


def test_one_pattern_cannot_call_dilated_attention():
    def with_library(q, k, v, segment_len, dilation):
        return dilated.dilated_attention(q[None, None], k[None, None], v[None, None], [segment_len], [dilation])[0, 0]

    def with_reference(q, k, v, segment_len, dilation):
        return dilated.dilated_attention_reference(q[None, None], k[None, None], v[None, None],
                                                   [segment_len], [dilation])[0, 0]

    assert "write it yourself" in hint(checks.check_one_pattern_attention, with_library)
    assert "write it yourself" in hint(checks.check_one_pattern_attention, with_reference)
    q = torch.randn(1, 1, 8, 4)
    torch.testing.assert_close(dilated.dilated_attention(q, q, q, [8], [1]), dilated.dilated_attention_reference(q, q, q, [8], [1]))


@pytest.mark.parametrize("how", ["solution", "numpy", "in place"])
def test_one_pattern_right_answers_pass(how):
    fn = {"solution": one_pattern_right, "numpy": lambda *a: one_pattern_right(*a).numpy(),
          "in place": lambda q, k, v, w, r: v.copy_(one_pattern_right(q, k, v, w, r))}[how]
    assert checks.check_one_pattern_attention(fn) is True


@pytest.mark.parametrize("check, right", [(checks.check_union_attention, union_right),
                                          (checks.check_layers_for_full_reach, layers_right),
                                          (checks.check_one_pattern_attention, one_pattern_right)])
def test_stub_is_not_done_and_raises_and_none_get_hints(check, right, capsys):
    assert check(stub) is False
    assert "Not done yet" in capsys.readouterr().out
    assert "called with" in hint(check, raises)
    assert "None" in hint(check, lambda *a: None) or check is checks.check_layers_for_full_reach
    assert "pass your function itself" in hint(check, 0.5)
    assert check(right) is True


def test_one_pattern_wrong_answers():
    assert "shape" in hint(checks.check_one_pattern_attention, lambda *a: one_pattern_right(*a)[:-1])
    assert "NaN" in hint(checks.check_one_pattern_attention, lambda *a: one_pattern_right(*a) * math.nan)
    assert "1/sqrt" in hint(checks.check_one_pattern_attention,
                            lambda q, k, v, w, r: one_pattern_right(q * math.sqrt(q.shape[-1]), k, v, w, r))
    assert "differ" in hint(checks.check_one_pattern_attention, lambda *a: (lambda out: out + 0.5 * (out != 0))(one_pattern_right(*a)))
    assert "0 mod r" in hint(checks.check_one_pattern_attention, lambda *a: one_pattern_right(*a) + 0.5)


def test_layers_wrong_answers():
    assert "expected" in hint(checks.check_layers_for_full_reach, lambda *a: (layers_right(*a) or 0) + 1)
    assert "return None" in hint(checks.check_layers_for_full_reach, lambda *a: layers_right(*a) or 16)
    assert "NaN" in hint(checks.check_layers_for_full_reach, lambda *a: math.nan)
    assert "self-loops" in hint(checks.check_layers_for_full_reach, lambda *a: None)

    def wreck(n, segment_lengths, dilation_rates, num_heads):
        segment_lengths[:], dilation_rates[:] = [n], [1]
        return layers_right(n, segment_lengths, dilation_rates, num_heads)

    hint(checks.check_layers_for_full_reach, wreck)  # mutating its inputs to a dense pattern: wrong depth
    assert checks.check_layers_for_full_reach(lambda *a: None if layers_right(*a) is None else np.int64(layers_right(*a)))


def test_one_pattern_attention_refuses_a_dense_masked_attention():
    """Section 3's dense attention under the pattern's mask gives the right numbers without gathering anything:
    the checker poisons the positions a pattern skips, which only a gather never reads."""
    import math

    def dense(q, k, v, segment_len, dilation):
        n, d = q.shape
        pos = torch.arange(n)
        keep = pos % dilation == 0
        mask = ((pos[:, None] // segment_len) == (pos[None, :] // segment_len)) & keep[:, None] & keep[None, :]
        scores = (q @ k.T / math.sqrt(d)).masked_fill(~mask, float("-inf"))
        return torch.nan_to_num(torch.softmax(scores, -1)) @ v * keep[:, None]

    with pytest.raises(checks.CheckFailed, match="reads positions the pattern does not keep"):
        checks.check_one_pattern_attention(dense)
