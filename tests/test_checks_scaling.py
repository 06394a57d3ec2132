"""The notebook-02 checkers (YaRN paper's ramp, Llama 3's band edges, dynamic NTK) against answers a student
might really write: each wrong answer is rejected with one short hint (never the checker's catch-all), the
usual slips get their own hint, an answer that calls the library's own version is refused, and a right
answer passes however it is computed (tensor, numpy, list, written into its input).

The checkers are imported from lclib.checks.scaling, where they live.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lclib import rope, scaling
from lclib.checks import scaling as checks
from lclib.checks.answers import CheckFailed
from lclib.checks.runner import NOT_CHECKED


# --- the worked solutions (notebooks/solutions/02_rope_scaling_solutions.ipynb) ---------------------

def yarn_gamma(inv_freq, original_max_len, beta_fast=32.0, beta_slow=1.0):
    turns = original_max_len * inv_freq / (2 * math.pi)  # r_i = L / wavelength_i
    return torch.clamp((turns - beta_slow) / (beta_fast - beta_slow), min=0.0, max=1.0)


def llama3_band_edges(inv_freq, original_max_len, low_freq_factor=1.0, high_freq_factor=4.0):
    wavelength = 2 * math.pi / inv_freq
    kept = int((wavelength < original_max_len / high_freq_factor).sum())
    divided = int((wavelength > original_max_len / low_freq_factor).sum())
    return kept, len(inv_freq) - divided


def dynamic_ntk_inv_freq(head_dim, base, scale, original_max_len, seq_len):
    alpha = scale * max(seq_len, original_max_len) / original_max_len - (scale - 1)
    new_base = base * alpha ** (head_dim / (head_dim - 2))
    return new_base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)


RIGHT = {"gamma": (checks.check_yarn_gamma, yarn_gamma), "bands": (checks.check_llama3_band_edges, llama3_band_edges),
         "dynamic": (checks.check_dynamic_ntk, dynamic_ntk_inv_freq)}


def rejected(check, fn) -> str:
    """The hint check gives fn: one short line, not the catch-all."""
    with pytest.raises(CheckFailed) as info:
        check(fn)
    message = str(info.value)
    assert message and "\n" not in message and len(message) < 400, f"hint not one short line: {message!r}"
    assert NOT_CHECKED not in message, f"no specific hint, only the checker's catch-all: {message!r}"
    return message


# --- right answers, however computed ---------------------------------------------------------------

def _as_numpy(fn):
    def wrapped(*args):
        out = fn(*args)
        return out.numpy() if isinstance(out, torch.Tensor) else np.array(out)
    return wrapped


def _gamma_in_place(inv_freq, original_max_len, beta_fast=32.0, beta_slow=1.0):
    # a right answer that reuses its input's storage: r, then gamma, written into inv_freq
    inv_freq.mul_(original_max_len / (2 * math.pi)).sub_(beta_slow).div_(beta_fast - beta_slow).clamp_(0.0, 1.0)
    return inv_freq


def _bands_by_index(inv_freq, original_max_len, low_freq_factor=1.0, high_freq_factor=4.0):
    # the closed form: lambda_i < L / high  <=>  i < d ln(L / (2 pi high)) / (2 ln b), with b read off theta_1
    n = len(inv_freq)
    log_base = -math.log(inv_freq[1].item()) * n  # theta_1 = b^(-2/d) = b^(-1/n)
    first_blended = min(max(math.ceil(math.log(original_max_len / high_freq_factor / (2 * math.pi)) * n / log_base), 0), n)
    first_divided = min(max(math.floor(math.log(original_max_len / low_freq_factor / (2 * math.pi)) * n / log_base) + 1, 0), n)
    return first_blended, first_divided


@pytest.mark.parametrize("fn", [yarn_gamma, _as_numpy(yarn_gamma), _gamma_in_place,
                                lambda f, L, bf, bs: yarn_gamma(f, L, bf, bs).float().requires_grad_()],
                         ids=["tensor", "numpy", "in_place", "float32_grad"])
def test_gamma_right_answers_pass(fn, capsys):
    assert checks.check_yarn_gamma(fn) is True
    assert capsys.readouterr().out.startswith("Correct: ")


@pytest.mark.parametrize("fn", [llama3_band_edges, _as_numpy(llama3_band_edges), _bands_by_index,
                                lambda *a: list(llama3_band_edges(*a)), lambda *a: torch.tensor(llama3_band_edges(*a)),
                                lambda *a: tuple(float(x) for x in llama3_band_edges(*a))],
                         ids=["tuple", "numpy", "closed_form", "list", "tensor", "floats"])
def test_band_edges_right_answers_pass(fn, capsys):
    assert checks.check_llama3_band_edges(fn) is True
    assert capsys.readouterr().out.startswith("Correct: ")


@pytest.mark.parametrize("fn", [dynamic_ntk_inv_freq, _as_numpy(dynamic_ntk_inv_freq)], ids=["tensor", "numpy"])
def test_dynamic_ntk_right_answers_pass(fn, capsys):
    assert checks.check_dynamic_ntk(fn) is True
    assert capsys.readouterr().out.startswith("Correct: ")


@pytest.mark.parametrize("name", sorted(RIGHT))
def test_a_stub_is_not_done_and_a_result_is_not_a_function(name, capsys):
    def stub(*args):
        raise NotImplementedError

    check = RIGHT[name][0]
    assert check(stub) is False
    assert "Not done yet" in capsys.readouterr().out
    assert "pass your function itself" in rejected(check, 0.5)


# --- wrong answers of every class --------------------------------------------------------------------

def _raises(*args):
    raise ZeroDivisionError("student bug")


TENSOR_WRONG = {  # for the two checkers that expect a tensor like inv_freq
    "raises": (lambda fn: _raises, "ZeroDivisionError: student bug"),
    "returns_none": (lambda fn: (lambda *a: None), "None"),
    "nan": (lambda fn: (lambda *a: torch.full_like(torch.as_tensor(fn(*a), dtype=torch.float64), math.nan)), "NaN"),
    "inf": (lambda fn: (lambda *a: torch.as_tensor(fn(*a), dtype=torch.float64).index_fill(0, torch.tensor([0]), math.inf)),
            "inf"),
    "wrong_shape": (lambda fn: (lambda *a: fn(*a)[..., :-1]), "shape"),
    "wrong_type": (lambda fn: (lambda *a: "42"), "expected"),
    "off_by_constant": (lambda fn: (lambda *a: fn(*a) + 0.5), ""),
    "numpy_wrong": (lambda fn: (lambda *a: fn(*a).numpy() * 2 + 0.1), ""),
}


@pytest.mark.parametrize("wrong", sorted(TENSOR_WRONG))
@pytest.mark.parametrize("name", ["gamma", "dynamic"])
def test_tensor_answers_wrong_in_every_way_are_rejected(name, wrong, capsys):
    check, right = RIGHT[name]
    make, word = TENSOR_WRONG[wrong]
    message = rejected(check, make(right))
    assert word in message, f"{name} on {wrong}: the hint should mention {word!r}: {message!r}"
    if wrong == "raises":
        assert "called with" in message
    assert "Correct" not in capsys.readouterr().out


def test_gamma_answer_that_mutates_its_input_is_judged_on_the_checkers_own_copy():
    def mutates_then_wrong(inv_freq, original_max_len, beta_fast=32.0, beta_slow=1.0):
        inv_freq.zero_()
        return yarn_gamma(inv_freq, original_max_len, beta_fast, beta_slow)

    assert "expected gamma" in rejected(checks.check_yarn_gamma, mutates_then_wrong)


def test_band_edges_answer_that_mutates_its_input_is_rejected():
    def mutates_then_wrong(inv_freq, original_max_len, low_freq_factor=1.0, high_freq_factor=4.0):
        inv_freq.mul_(2.0)  # every wavelength halved: more pairs kept
        return llama3_band_edges(inv_freq, original_max_len, low_freq_factor, high_freq_factor)

    assert "expected (first_blended, first_divided)" in rejected(checks.check_llama3_band_edges, mutates_then_wrong)


PAIR_WRONG = {
    "raises": (_raises, "ZeroDivisionError: student bug"),
    "returns_none": (lambda *a: None, "None"),
    "nan": (lambda *a: (math.nan, math.nan), "NaN"),
    "inf": (lambda *a: (llama3_band_edges(*a)[0], math.inf), "inf"),
    "wrong_shape": (lambda *a: (*llama3_band_edges(*a), 0), "3 values"),
    "wrong_type": (lambda *a: "29, 35", "expected"),
    "not_whole": (lambda *a: tuple(x + 0.5 for x in llama3_band_edges(*a)), "whole"),
    "off_by_one": (lambda *a: tuple(x + 1 for x in llama3_band_edges(*a)), "expected (first_blended, first_divided)"),
    "numpy_wrong": (lambda *a: np.array(llama3_band_edges(*a)) - 1, ""),
    "single_number": (lambda *a: llama3_band_edges(*a)[0], "expected a pair"),
}


@pytest.mark.parametrize("wrong", sorted(PAIR_WRONG))
def test_band_edges_wrong_in_every_way_are_rejected(wrong, capsys):
    fn, word = PAIR_WRONG[wrong]
    message = rejected(checks.check_llama3_band_edges, fn)
    assert word in message, f"{wrong}: the hint should mention {word!r}: {message!r}"
    assert "Correct" not in capsys.readouterr().out


# --- the usual slips get their own hint --------------------------------------------------------------

@pytest.mark.parametrize(("slip", "word"), [
    (lambda f, L, bf, bs: 1 - yarn_gamma(f, L, bf, bs), "weight of theta_i itself"),
    (lambda f, L, bf, bs: (L * f / (2 * math.pi) - bs) / (bf - bs), "[0, 1]"),
    (lambda f, L, bf, bs: ((2 * math.pi / f / L - bs) / (bf - bs)).clamp(0, 1), "not wavelength / L"),
    (lambda f, L, bf, bs: ((L * f - bs) / (bf - bs)).clamp(0, 1), "2 pi radians"),
    (lambda f, L, bf, bs: 1 - scaling.yarn_ramp(2 * len(f), 10000.0, L, bf, bs), "transformers' ramp"),
    (lambda f, L, bf, bs: scaling.yarn_ramp(2 * len(f), 10000.0, L, bf, bs), "transformers' ramp"),
    (lambda f, L, bf, bs: ((L * f / (2 * math.pi) - bs) / (bf - bs)).clamp(0, 1).round(), "expected gamma"),
], ids=["interpolation_weight", "unclipped", "r_inverted", "radians_not_turns", "transformers", "transformers_flipped",
        "rounded"])
def test_gamma_slips_get_their_hint(slip, word):
    assert word in rejected(checks.check_yarn_gamma, slip)


def _edges(f, L, low, high):
    return llama3_band_edges(f, L, low, high)


@pytest.mark.parametrize(("slip", "word"), [
    (lambda f, L, lo, hi: (_edges(f, L, lo, hi)[0], _edges(f, L, lo, hi)[1] - _edges(f, L, lo, hi)[0]), "counts"),
    (lambda f, L, lo, hi: _edges(f, L, hi, lo), "swapped"),
    (lambda f, L, lo, hi: (int((2 * math.pi / f < L * hi).sum()), len(f) - int((2 * math.pi / f > L * lo).sum())),
     "divide L"),
    (lambda f, L, lo, hi: (int(torch.nonzero(2 * math.pi / f >= L / hi)[0]), int(torch.nonzero(2 * math.pi / f > L / lo)[0])),
     "IndexError"),
], ids=["counts_not_edges", "factors_swapped", "factors_multiply", "nonzero_on_an_empty_band"])
def test_band_edge_slips_get_their_hint(slip, word):
    assert word in rejected(checks.check_llama3_band_edges, slip)


# --- the library's own answer is out of reach ----------------------------------------------------------

def test_gamma_from_llama3_is_refused():
    def cheat(inv_freq, original_max_len, beta_fast=32.0, beta_slow=1.0):
        head_dim, base = 2 * len(inv_freq), inv_freq[1].item() ** (-len(inv_freq))
        theta, scaled = rope.inv_freq(head_dim, base), scaling.llama3(head_dim, base, 2.0, original_max_len, beta_slow, beta_fast)[0]
        return (scaled - theta / 2) / (theta / 2)  # h = (1 - gamma) theta / 2 + gamma theta

    assert "write it yourself" in rejected(checks.check_yarn_gamma, cheat)


def test_band_edges_from_llama3_are_refused():
    def cheat(inv_freq, original_max_len, low_freq_factor=1.0, high_freq_factor=4.0):
        head_dim, base = 2 * len(inv_freq), inv_freq[1].item() ** (-len(inv_freq))
        factor = rope.inv_freq(head_dim, base) / scaling.llama3(head_dim, base, 8.0, original_max_len,
                                                                  low_freq_factor, high_freq_factor)[0]
        return int((factor == 1).sum()), len(inv_freq) - int(torch.isclose(factor, torch.tensor(8.0, dtype=torch.float64)).sum())

    assert "write it yourself" in rejected(checks.check_llama3_band_edges, cheat)


def test_dynamic_ntk_from_the_library_is_refused():
    def cheat(head_dim, base, scale, original_max_len, seq_len):
        return scaling.dynamic_ntk(head_dim, base, scale, original_max_len, seq_len)[0]

    assert "write it yourself" in rejected(checks.check_dynamic_ntk, cheat)


# --- the checkers' own cases are sound -----------------------------------------------------------------

def test_reference_ramp_is_llama3s_rule_and_no_case_sits_on_a_band_edge():
    """gamma with alpha = low, beta = high gives scaling.llama3 exactly; no wavelength lies within 1e-6 of an edge,
    so a student's choice of < or <= (or of r > high against wavelength < L / high) cannot decide a case."""
    theta = rope.inv_freq(128, 10000.0)
    for low, high in ((1.0, 4.0), (1.0, 32.0), (2.0, 8.0)):
        gamma = yarn_gamma(theta, 4096, high, low)
        torch.testing.assert_close(scaling.llama3(128, 10000.0, 4.0, 4096, low, high)[0], (1 - gamma) * theta / 4 + gamma * theta)
    cases = [(128, 500000.0, 8192, 1.0, 4.0), (128, 10000.0, 4096, 1.0, 4.0), (64, 10000.0, 512, 1.0, 4.0),
             (128, 500000.0, 8192, 2.0, 3.0), (64, 10000.0, 2048, 1.0, 32.0), (16, 10000.0, 8, 1.0, 4.0),
             (32, 10000.0, 50000, 1.0, 4.0), (32, 10000.0, 10_000_000, 1.0, 4.0)]
    for head_dim, base, length, low, high in cases:
        wavelength = rope.wavelengths(rope.inv_freq(head_dim, base))
        for edge in (length / high, length / low):
            assert ((wavelength / edge - 1).abs() > 1e-6).all(), (head_dim, base, length, edge)
    assert llama3_band_edges(rope.inv_freq(16, 10000.0), 8) == (0, 1)          # an empty kept band is tested
    assert llama3_band_edges(rope.inv_freq(32, 10000.0), 50000)[1] == 16     # an empty divided band too
    assert llama3_band_edges(rope.inv_freq(32, 10000.0), 10_000_000) == (16, 16)
