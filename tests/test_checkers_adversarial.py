"""Every exercise checker, against answers a student might really write: can a teacher trust it?

Table-driven. For each public checker in lclib.checks the table holds the worked solution (the
logic of notebooks/solutions/), the kind of answer it expects, and, where its inputs are mutable, a
function that wrecks its inputs in place. From these the test builds wrong answers (raises, returns
None, NaN, inf, the wrong shape, the wrong type, mutates its input then returns what the wrecked
input gives, off by a constant); each must be rejected with one short CheckFailed hint, never an
exception from inside the checker nor the checker's catch-all. Right answers must pass, however
computed: the solution, the solution written in place, and the solution returning numpy.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch

import bm25s
import bm25s.scoring

from lclib import checks, dilated, kernels, kv, kv_task, probes, retrieval, rope, scaling, spectrum
from lclib.checks import answers, runner
from lclib.checks import dilated as checks_03
from lclib.checks import dilated_adapters as checks_03b
from lclib.checks import retrieval as checks_07
from lclib.checks import rope as checks_01
from lclib.checks import scaling as checks_02
from lclib.checks.runner import NOT_CHECKED
from lclib.kv import Window
from lclib.ruler import metrics
# the right answers each checker's own tests hold (tests/ is on sys.path: one copy of each)
from test_checks_dilated import layers_right as layers_for_full_reach
from test_checks_kv import cache_bytes, decode_bound, window_mask
from test_checks_probes import bayes_right as bayes_curve
from test_checks_retrieval import bm25_term_score, choose_k, follow_chain, reads

NAN, INF = float("nan"), float("inf")


# --- worked solutions (the logic of notebooks/solutions/NN_*_solutions.ipynb) -----------------------

def rope_interleaved(x, positions, inv_freq):
    angles = positions.double()[:, None] * inv_freq.double()[None, :]  # (seq_len, d/2)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x_even, x_odd = x[..., 0::2], x[..., 1::2]
    return torch.stack((x_even * cos - x_odd * sin, x_even * sin + x_odd * cos), dim=-1).flatten(-2)


def relative_score(q, k, offset):
    return q @ rope.apply_rope(k[None], torch.tensor([-offset]), rope.inv_freq(q.shape[-1]))[0]


def first_pair_beyond(head_dim, base, context_len):
    return int((rope.wavelengths(rope.inv_freq(head_dim, base)) <= context_len).sum())


def score_bound(q, k, distances, inv_freq):
    h = torch.complex(q[0::2], q[1::2]) * torch.complex(k[0::2], k[1::2]).conj()
    steps = torch.cat([h[1:], h.new_zeros(1)]) - h
    angles = distances.double()[:, None] * inv_freq.double()[None, :]
    return steps.abs().max() * torch.polar(torch.ones_like(angles), angles).cumsum(dim=-1).abs().sum(dim=-1)


def yarn_gamma(inv_freq, original_max_len, beta_fast=32.0, beta_slow=1.0):
    turns = original_max_len * inv_freq / (2 * math.pi)
    return torch.clamp((turns - beta_slow) / (beta_fast - beta_slow), min=0.0, max=1.0)


def llama3_band_edges(inv_freq, original_max_len, low_freq_factor=1.0, high_freq_factor=4.0):
    wavelength = 2 * math.pi / inv_freq
    return (int((wavelength < original_max_len / high_freq_factor).sum()),
            len(inv_freq) - int((wavelength > original_max_len / low_freq_factor).sum()))


def ntk_exponent(head_dim):
    return head_dim / (head_dim - 2)


def yarn_untouched_pairs(head_dim, base, original_max_len, beta_fast=32.0):
    index = head_dim * math.log(original_max_len / (2 * math.pi * beta_fast)) / (2 * math.log(base))
    return min(max(math.floor(index), 0) + 1, head_dim // 2)


def dynamic_ntk_inv_freq(head_dim, base, scale, original_max_len, seq_len):
    alpha = scale * max(seq_len, original_max_len) / original_max_len - (scale - 1)
    return (base * alpha ** (head_dim / (head_dim - 2))) ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)


def union_attention(out_a, lse_a, out_b, lse_b, out_ab, lse_ab):
    shift = torch.maximum(lse_a, lse_b)
    shift = shift.masked_fill(shift == -math.inf, 0.0)
    z_a, z_b, z_ab = (torch.exp(lse - shift)[:, None] for lse in (lse_a, lse_b, lse_ab))
    den = z_a + z_b - z_ab
    return (z_a * out_a + z_b * out_b - z_ab * out_ab) / torch.where(den > 0, den, torch.ones_like(den))


def one_pattern_attention(q, k, v, segment_len, dilation):
    n, d = q.shape

    def gather(x):  # (n, d) -> (n // w, w / r, d)
        return x.view(n // segment_len, segment_len, -1)[:, ::dilation]

    scores = gather(q) @ gather(k).transpose(-1, -2) / math.sqrt(d)
    out = torch.zeros_like(v)
    out.view(n // segment_len, segment_len, -1)[:, ::dilation] = torch.softmax(scores, dim=-1) @ gather(v)
    return out


def answerable_pairs(mask, layers, n_pairs):
    step = (mask | torch.eye(len(mask), dtype=torch.bool)).float()
    connected = step.clone()
    for _ in range(layers - 1):
        connected = (step @ connected).clamp(max=1.0)
    i = torch.arange(n_pairs)
    a = 3 * n_pairs + 2
    return (connected[a, 2 + 3 * i] > 0) & (connected[a + 1, 3 + 3 * i] > 0)


def crossover_length(lengths, dense_s, dilated_s):
    cheaper = [s < d for d, s in zip(dense_s, dilated_s)]
    for i, n in enumerate(lengths):
        if all(cheaper[i:]):
            return n
    return None


def wilson(successes, trials):
    z, n = 1.959963984540054, trials
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, min(centre - half, p)), min(1.0, max(centre + half, p))


def string_match_all(prediction, references):
    pred = prediction.strip().lower()
    return sum(r.lower() in pred for r in references) / len(references)


def effective_length(scores, threshold):
    best = 0
    for n in sorted(scores):
        if scores[n] < threshold:
            break
        best = n
    return best


def vt_reader(prompt):
    value = re.findall(r"assigned the value (\d+) in the text", prompt)[-1]  # the last question: RULER's example comes first
    holders, names = {value}, []
    for name, rhs in re.findall(r"VAR (\w+) = (?:VAR )?(\w+)", prompt):  # RULER's lines end in a space, the lab's sentences in "."
        if rhs in holders:
            holders.add(name)
            names.append(name)
    return names


def critical_dimension(head_dim, base, context):
    x = head_dim / 2 * math.log(context / (2 * math.pi)) / math.log(base)
    return 2 * min(max(math.ceil(x), 0), head_dim // 2)


def wreck_lists(n, segment_lengths, dilation_rates, num_heads):
    segment_lengths[:], dilation_rates[:] = [n], [1]


# --- the table --------------------------------------------------------------------------------------

@dataclass
class Case:
    """One checker: its right answer, the kind of value it expects, and which inputs are tensors."""

    check: Callable[[Callable], bool]
    right: Callable
    kind: str  # "tensor", "scalar" (a 0-d tensor or a number), "number", "int", "int_or_none", "pair", "strings"
    wreck: Callable | None = None  # mutates the inputs in place; None where every input is immutable
    tensor_args: tuple[int, ...] = ()  # positions of tensor inputs: the in-place variant writes into the first


CASES = {
    "check_rope_interleaved": Case(checks.check_rope_interleaved, rope_interleaved, "tensor",
                                   lambda x, p, f: _zero(x), (0,)),
    "check_relative_score": Case(checks.check_relative_score, relative_score, "scalar",
                                 lambda q, k, o: _zero(q, k), (1,)),
    "check_first_pair_beyond": Case(checks.check_first_pair_beyond, first_pair_beyond, "int"),
    "check_score_bound": Case(checks.check_score_bound, score_bound, "tensor", lambda q, k, d, f: _zero(q, k), (0,)),
    "check_yarn_gamma": Case(checks.check_yarn_gamma, yarn_gamma, "tensor", lambda f, L, bf, bs: _zero(f), (0,)),
    "check_llama3_band_edges": Case(checks.check_llama3_band_edges, llama3_band_edges, "pair",
                                    lambda f, L, lo, hi: _zero(f)),
    "check_ntk_exponent": Case(checks.check_ntk_exponent, ntk_exponent, "number"),
    "check_yarn_untouched_pairs": Case(checks.check_yarn_untouched_pairs, yarn_untouched_pairs, "int"),
    "check_dynamic_ntk": Case(checks.check_dynamic_ntk, dynamic_ntk_inv_freq, "tensor"),
    "check_union_attention": Case(checks.check_union_attention, union_attention, "tensor",
                                  lambda *parts: _zero(*parts), (0,)),
    "check_layers_for_full_reach": Case(checks.check_layers_for_full_reach, layers_for_full_reach, "int_or_none",
                                        wreck_lists),
    "check_one_pattern_attention": Case(checks.check_one_pattern_attention, one_pattern_attention, "tensor",
                                        lambda q, k, v, w, r: _zero(q, k, v), (2,)),
    "check_answerable_pairs": Case(checks.check_answerable_pairs, answerable_pairs, "tensor",
                                   lambda mask, layers, n: _zero(mask), (0,)),
    "check_crossover_length": Case(checks.check_crossover_length, crossover_length, "int_or_none",
                                   lambda lengths, dense, sparse: dense.reverse()),
    "check_bayes_curve": Case(checks.check_bayes_curve, bayes_curve, "tensor", lambda p, k: _zero(p), (0,)),
    "check_wilson": Case(checks.check_wilson, wilson, "pair"),
    "check_string_match_all": Case(checks.check_string_match_all, string_match_all, "number",
                                   lambda pred, refs: refs.__setitem__(slice(None), refs[:1])),
    "check_effective_length": Case(checks.check_effective_length, effective_length, "int",
                                   lambda scores, threshold: scores.clear()),
    "check_vt_reader": Case(checks.check_vt_reader, vt_reader, "strings"),
    "check_critical_dimension": Case(checks.check_critical_dimension, critical_dimension, "int"),
    "check_cache_bytes": Case(checks.check_cache_bytes, cache_bytes, "number"),
    "check_decode_bound": Case(checks.check_decode_bound, decode_bound, "number"),
    "check_window_mask": Case(checks.check_window_mask, window_mask, "tensor"),
    "check_bm25_term_score": Case(checks.check_bm25_term_score, bm25_term_score, "number"),
    "check_choose_k": Case(checks.check_choose_k, choose_k, "int", lambda sizes, fixed, budget: sizes.sort()),
    "check_follow_chain": Case(checks.check_follow_chain, follow_chain, "strings",
                               lambda retriever, chunks, value, max_hops: chunks.reverse()),
}


def test_the_table_covers_every_public_checker():
    public = sorted(name for name in dir(checks) if name.startswith("check_") and callable(getattr(checks, name)))
    assert sorted(CASES) == public
    assert sorted(checks.__all__) == sorted(public + ["CheckFailed", "checker"])


# --- wrong answers built from the right one ---------------------------------------------------------

def _tensor(value) -> torch.Tensor:
    return torch.as_tensor(value, dtype=torch.float64)


def nan_like(kind: str, value):
    return {"tensor": lambda: torch.full_like(_tensor(value), NAN), "scalar": lambda: _tensor(NAN),
            "pair": lambda: (NAN, NAN), "strings": lambda: [NAN]}.get(kind, lambda: NAN)()


def inf_like(kind: str, value):
    return {"tensor": lambda: _tensor(value).index_fill(0, torch.tensor([0]), INF), "scalar": lambda: _tensor(-INF),
            "pair": lambda: (value[0], INF), "strings": lambda: [INF]}.get(kind, lambda: INF)()


def wrong_shape(kind: str, value):
    if kind == "tensor":
        return value[..., :-1]
    if kind == "scalar":
        return torch.stack([value, value])
    if kind == "pair":
        return (*value, value[1])
    if kind == "strings":
        return ", ".join(value)
    return [value, value]


def off_by_constant(kind: str, value):
    if kind in ("tensor", "scalar", "number"):
        return value + 0.5
    if kind == "pair":
        return value[0] + 0.01, value[1] + 0.01
    if kind == "strings":
        return [*value, "EXTRA"]
    return None if value is None else value + 1  # int, int_or_none


def wrong_answers(case: Case) -> dict[str, tuple[Callable, str]]:
    """name -> (wrong function, a word its hint must contain, or "" for any clear hint)."""
    right, kind = case.right, case.kind

    def raises(*args):
        raise ZeroDivisionError("student bug")

    found = {
        "raises": (raises, "ZeroDivisionError: student bug"),
        "returns_none": (lambda *a: None, "None"),
        "nan": (lambda *a: nan_like(kind, right(*a)), "" if kind == "strings" else "NaN"),
        "inf": (lambda *a: inf_like(kind, right(*a)), "" if kind == "strings" else "inf"),
        "wrong_shape": (lambda *a: wrong_shape(kind, right(*a)), "shape" if kind in ("tensor", "scalar") else "expected"),
        "wrong_type": (lambda *a: 42 if kind == "strings" else "42", "expected"),
        "off_by_constant": (lambda *a: off_by_constant(kind, right(*a)), ""),
    }
    if case.wreck is not None:
        def mutates_then_wrong(*args):
            case.wreck(*args)
            return right(*args)

        found["mutates_input"] = (mutates_then_wrong, "")
    return found


WRONG = [(name, wrong, fn, word) for name, case in CASES.items() for wrong, (fn, word) in wrong_answers(case).items()]


def rejected(check: Callable, fn: Callable) -> str:
    """The hint check gives fn: it must raise CheckFailed with one short line that is not the catch-all."""
    with pytest.raises(checks.CheckFailed) as info:
        check(fn)
    message = str(info.value)
    assert message and "\n" not in message and len(message) < 400, f"hint not one short line: {message!r}"
    assert NOT_CHECKED not in message, f"no specific hint, only the checker's catch-all: {message!r}"
    return message


@pytest.mark.parametrize(("name", "wrong", "fn", "word"), WRONG, ids=[f"{n}-{w}" for n, w, _, _ in WRONG])
def test_wrong_answers_are_rejected_with_a_clear_hint(name, wrong, fn, word, capsys):
    message = rejected(CASES[name].check, fn)
    assert word in message, f"{name} on {wrong}: the hint should mention {word!r}: {message!r}"
    if wrong == "raises":
        assert "called with" in message, f"{name}: the hint must show the inputs that raised: {message!r}"
    assert "Correct" not in capsys.readouterr().out


def test_the_table_is_large_enough():
    """26 checkers x 7 wrong answers, plus one in-place wrecker per checker with mutable inputs."""
    assert len(CASES) == 26
    wreckers = sum(case.wreck is not None for case in CASES.values())
    assert wreckers >= 10 and len(WRONG) == 7 * len(CASES) + wreckers


# --- right answers, however computed ---------------------------------------------------------------

def in_place(case: Case) -> Callable:
    """The solution that writes its answer into one of its tensor inputs and returns that input."""
    index = case.tensor_args[0]

    def solution(*args):
        out = case.right(*args)
        target = args[index]
        if out.shape == target.shape:
            return target.copy_(out)
        target.zero_()  # a scalar answer (relative_score): wreck the input after using it, return the value
        return out

    return solution


def as_numpy(case: Case) -> Callable:
    def solution(*args):
        out = case.right(*args)
        return out.numpy() if out.dim() else np.float64(out.item())

    return solution


RIGHT = ([(name, "solution", case.right) for name, case in CASES.items()]
         + [(name, "in_place", in_place(case)) for name, case in CASES.items() if case.tensor_args]
         + [(name, "numpy", as_numpy(case)) for name, case in CASES.items() if case.kind in ("tensor", "scalar")])


@pytest.mark.parametrize(("name", "how", "fn"), RIGHT, ids=[f"{n}-{h}" for n, h, _ in RIGHT])
def test_right_answers_pass_however_computed(name, how, fn, capsys):
    assert CASES[name].check(fn) is True
    assert capsys.readouterr().out.startswith("Correct: ")


def test_a_right_answer_may_come_as_float32_with_grad_and_a_list_gets_a_precise_hint(capsys):
    assert checks.check_rope_interleaved(lambda x, p, f: rope_interleaved(x, p, f).float().requires_grad_()) is True
    assert checks.check_bayes_curve(lambda p, k: bayes_curve(p, k).tolist()) is True  # a list was always accepted here
    message = rejected(checks.check_dynamic_ntk, lambda *a: dynamic_ntk_inv_freq(*a).tolist())
    assert "expected a tensor of shape (8,)" in message and "got a list" in message


# --- the contract around the answers -----------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(CASES))
def test_a_stub_is_not_done_and_a_result_is_not_a_function(name, capsys):
    def stub(*args):
        raise NotImplementedError

    assert CASES[name].check(stub) is False
    assert "Not done yet" in capsys.readouterr().out
    message = rejected(CASES[name].check, 0.5)  # check(my_function(...)) instead of check(my_function)
    assert "pass your function itself" in message


# --- an answer that only calls lclib's own version is refused (the reference is hidden while it runs) --

def _wilson_from_lclib(successes, trials):
    lo, hi = probes.wilson_interval(torch.tensor(successes), trials)
    return float(lo), float(hi)


LIBRARY_ANSWERS = {
    "check_rope_interleaved": lambda x, p, f: rope.apply_rope(x, p, f, "interleaved"),
    "check_dynamic_ntk": lambda d, b, s, L, n: scaling.dynamic_ntk(d, b, s, L, n)[0],
    "check_dynamic_ntk (through NTK)": lambda d, b, s, L, n: scaling.ntk(d, b, s * max(n, L) / L - (s - 1))[0],
    "check_one_pattern_attention": lambda q, k, v, w, r: dilated.dilated_attention(q, k, v, w, r),
    "check_answerable_pairs": lambda mask, layers, n: (lambda a, i: dilated.reach(mask, layers)[a, 2 + 3 * i]
                                                       & dilated.reach(mask, layers)[a + 1, 3 + 3 * i])(
                                                           3 * n + 2, torch.arange(n)),
    "check_bayes_curve": lambda p, k: kv_task.bayes_accuracy(p, k),
    "check_wilson": _wilson_from_lclib,
    "check_string_match_all": lambda pred, refs: metrics.string_match_all(pred, refs),
    "check_effective_length": lambda scores, t: metrics.effective_length(scores, t),
    "check_critical_dimension": lambda d, b, n: spectrum.critical_dimension(d, b, n),
    "check_first_pair_beyond": lambda d, b, n: spectrum.critical_dimension(d, b, n) // 2,
    "check_layers_for_full_reach": lambda n, ws, rs, heads: next(
        (layers for layers in range(1, n) if bool(dilated.reach(dilated.attention_mask(n, ws, rs, heads).any(0), layers).all())), None),
    "check_cache_bytes": lambda *config: kv.cache_bytes(*config),
    "check_decode_bound": lambda *args: kv.decode_tokens_per_s_bound(*args),
    "check_window_mask": lambda n, recent, sinks: Window(recent, sinks).visible(torch.arange(n), torch.arange(n)),
    "check_follow_chain": lambda r, chunks, value, hops: [reads(chunks[i]) for i in
                                                          retrieval.iterative_retrieve(r, chunks, value, reads, hops)],
}


@pytest.mark.parametrize("name", sorted(LIBRARY_ANSWERS))
def test_calling_the_library_answer_is_refused(name, capsys):
    message = rejected(CASES[name.split(" (")[0]].check, LIBRARY_ANSWERS[name])
    assert "write it yourself" in message, message


def _llama3_band_edges(inv_freq, original_max_len, low_freq_factor=1.0, high_freq_factor=4.0):
    head_dim, base = 2 * len(inv_freq), inv_freq[1].item() ** (-len(inv_freq))
    factor = rope.inv_freq(head_dim, base) / scaling.llama3(head_dim, base, 8.0, original_max_len,
                                                              low_freq_factor, high_freq_factor)[0]
    return int((factor == 1).sum()), len(inv_freq) - int(torch.isclose(factor, torch.tensor(8.0, dtype=torch.float64)).sum())


def _yarn_untouched_from_yarn(head_dim, base, original_max_len, beta_fast=32.0):
    return int((scaling.yarn(head_dim, base, 4.0, original_max_len, beta_fast)[0] == rope.inv_freq(head_dim, base)).sum())


def _term_corpus(tf, df, n, dl, avg):
    """A corpus with these statistics, built by the student (the checker's own term_corpus is hidden)."""
    rest, holders = round(n * avg) - dl, df - (tf > 0)
    sizes = [rest // (n - 1) + (i < rest % (n - 1)) for i in range(n - 1)]
    return [["needle"] * tf + ["filler"] * (dl - tf)] + [["needle"] * (i < holders) + ["filler"] * (m - (i < holders))
                                                         for i, m in enumerate(sizes)]


def _bm25_from_bm25s(tf, df, n, dl, avg, k1=1.5, b=0.75):
    if tf == 0:
        return 0.0
    model = bm25s.BM25(k1=k1, b=b, method="lucene")
    model.index(_term_corpus(tf, df, n, dl, avg), show_progress=False)
    return float(model.get_scores(["needle"])[0])


def _bm25_from_wrapper_internals(tf, df, n, dl, avg, k1=1.5, b=0.75):
    if tf == 0:
        return 0.0
    wrapper = retrieval.BM25(k1, b)
    wrapper.index([" ".join(c) for c in _term_corpus(tf, df, n, dl, avg)])
    return float(wrapper._bm25.get_scores(["needle"])[0])


def _bm25_from_bm25s_formulas(tf, df, n, dl, avg, k1=1.5, b=0.75):
    return float(bm25s.scoring._score_idf_lucene(df, n) * bm25s.scoring._score_tfc_lucene(np.array([float(tf)]), dl, avg,
                                                                                          k1, b)[0])


def _yarn_gamma_from_llama3(inv_freq, original_max_len, beta_fast=32.0, beta_slow=1.0):
    head_dim, base = 2 * len(inv_freq), inv_freq[1].item() ** (-len(inv_freq))
    theta = rope.inv_freq(head_dim, base)
    scaled = scaling.llama3(head_dim, base, 2.0, original_max_len, beta_slow, beta_fast)[0]
    return (scaled - theta / 2) / (theta / 2)  # h = (1 - gamma) theta / 2 + gamma theta


MORE_LIBRARY_ANSWERS = {  # the library function each exercise rebuilds, for the checkers the table above left out
    "check_yarn_gamma": _yarn_gamma_from_llama3,
    "check_llama3_band_edges": _llama3_band_edges,
    "check_yarn_untouched_pairs": _yarn_untouched_from_yarn,
    "check_crossover_length": lambda lengths, dense, sparse: kernels.crossover_length(lengths, dense, sparse),
    "check_bm25_term_score": _bm25_from_bm25s,
    "check_bm25_term_score (retrieval.BM25's internals)": _bm25_from_wrapper_internals,
    "check_bm25_term_score (bm25s's idf and tf formulas)": _bm25_from_bm25s_formulas,
}


@pytest.mark.parametrize("name", sorted(MORE_LIBRARY_ANSWERS))
def test_calling_the_library_function_the_exercise_rebuilds_is_refused(name, capsys):
    message = rejected(CASES[name.split(" (")[0]].check, MORE_LIBRARY_ANSWERS[name])
    assert "write it yourself" in message, message


# --- shortcuts: the checker's own references, dummy queries, a comparison talked round (issue 29) -----------

def _chain_from_the_checker(retriever, chunks, value, max_hops):
    for layout, length, seed, hops, n_chains, _ in checks_07.CHAIN_CASES:
        same, answer, chain = checks_07.chain_sample(layout, length, seed, hops, n_chains)
        if same == chunks and answer == value:
            retriever.index(chunks)
            for name in [value, *chain[:max_hops - 1]]:
                retriever.search(name, 1)
            return chain[:max_hops]
    return []


CHECKER_REFERENCES = {  # each checker module's own reference, called by the student's function
    "check_score_bound": lambda q, k, d, f: checks_01._score_bound(q, k, d, f)[0],
    "check_yarn_gamma": lambda f, L, bf, bs: checks_02._paper_gamma(f, L, bf, bs),
    "check_llama3_band_edges": lambda f, L, lo, hi: checks_02._band_edges(f, L, lo, hi),
    "check_union_attention": lambda oa, la, ob, lb, oab, lab: checks_03._combine([(oa, la), (ob, lb), (oab, lab)],
                                                                                  [1, 1, -1]),
    "check_layers_for_full_reach": lambda n, ws, rs, h: checks_03._layers_for_full_reach(n, ws, rs, h),
    "check_answerable_pairs": lambda mask, layers, n: checks_03b._answerable(mask, layers, n),
    "check_crossover_length": lambda lengths, dense, sparse: checks_03b._crossover(lengths, dense, sparse),
    "check_bm25_term_score": lambda tf, df, n, dl, avg, k1, b: checks_07._idf(n, df) * checks_07._saturation(tf, dl, avg,
                                                                                                            k1, b),
    "check_bm25_term_score (its public reference)": lambda *case: checks_07.reference_term_score(*case),
    "check_choose_k": lambda sizes, fixed, budget: checks_07._choose_k(sizes, fixed, budget),
    "check_follow_chain": _chain_from_the_checker,
}


@pytest.mark.parametrize("name", sorted(CHECKER_REFERENCES))
def test_calling_the_checkers_own_reference_is_refused(name, capsys):
    message = rejected(CASES[name.split(" (")[0]].check, CHECKER_REFERENCES[name])
    assert "the checker's own checks." in message and "write it yourself" in message, message


def test_every_function_of_the_checker_modules_is_hidden_and_their_classes_are_not():
    found = runner.checker_references()
    for f in (checks_07.chain_sample, checks_07.term_corpus, checks_07.reference_term_score, checks_03b.case_mask,
              checks_07._choose_k, checks_03b._answerable, checks_03b._crossover, checks_07.TERM_MISTAKES[0][0],
              checks_07.CHOOSE_MISTAKES[0][0]):
        assert f in found, f
    assert checks_07.QueryLog.scores not in found  # the checker hands a QueryLog to the student's function
    with runner.hidden(*found):
        for f in found:
            with pytest.raises(RuntimeError, match=runner.HIDDEN):
                f()
    assert checks_03b._crossover([1, 2], [1.0, 1.0], [2.0, 0.5]) == 2  # put back after the block


def _regex_chain(retriever, chunks, value, max_hops, queries):
    """The chain read off the whole text with a regex (vt_reader's way), then queries made to look like hops."""
    holders, names = {value}, []
    for name, source in re.findall(r"VAR (\w+) = (?:VAR )?(\w+)", " ".join(chunks)):
        if source in holders:
            holders.add(name)
            names.append(name)
    names = names[:max_hops]
    retriever.index(chunks)
    for query in queries(value, names):
        retriever.search(query, 1)
    return names


SHORTCUTS = {  # (checker, the student's function, a word the hint must contain)
    "follow_chain: a regex and dummy queries": (
        "check_follow_chain", lambda r, c, v, h: _regex_chain(r, c, v, h, lambda value, names: ["x"] * len(names)),
        "do not follow them"),
    "follow_chain: a regex, then the right queries with their results ignored": (
        "check_follow_chain", lambda r, c, v, h: _regex_chain(r, c, v, h, lambda value, names: [value, *names[:-1]]),
        "not from the whole text"),
}


@pytest.mark.parametrize("name", sorted(SHORTCUTS))
def test_retrieval_shortcuts_are_refused(name, capsys):
    checker_name, fn, word = SHORTCUTS[name]
    assert word in rejected(CASES[checker_name].check, fn)


def _wrong(case: Case) -> Callable:
    return wrong_answers(case)["off_by_constant"][0]


def _patches_comparisons(case: Case) -> Callable:
    """A wrong answer that first makes every comparison say yes: torch's, numpy's, math's and the checkers' own."""
    wrong = _wrong(case)

    def cheat(*args):
        yes = lambda *a, **k: True  # noqa: E731
        torch.equal = torch.allclose = math.isclose = np.allclose = answers.close = yes
        for module in (checks_01, checks_02, checks_03, checks_03b, checks_07):
            module.close = module._close = yes
        return wrong(*args)

    return cheat


class _Yes(torch.overrides.TorchFunctionMode):
    """A torch function mode under which every comparison says yes."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in (torch.equal, torch.allclose, torch.Tensor.__eq__, torch.Tensor.__ne__):
            return True if func is not torch.Tensor.__ne__ else False
        return func(*args, **(kwargs or {}))


def _opens_a_mode(case: Case) -> Callable:
    wrong = _wrong(case)

    def cheat(*args):
        out = wrong(*args)
        _Yes().__enter__()  # never left
        return out

    return cheat


class _Liar(torch.Tensor):
    """A tensor that answers torch.equal and torch.allclose itself."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in (torch.equal, torch.allclose):
            return True
        return super().__torch_function__(func, types, args, kwargs or {})


class _LiarStr(str):
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = str.__hash__


def _lies(case: Case) -> Callable:
    """A wrong answer of the right shape that claims to equal the reference: a tensor subclass, or str subclasses."""
    wrong = _wrong(case)

    def cheat(*args):
        if case.kind == "strings":
            return [_LiarStr(f"NOT{x}") for x in case.right(*args)]
        out = wrong(*args)
        return out.as_subclass(_Liar) if isinstance(out, torch.Tensor) else out

    return cheat


TALKED_ROUND = [(name, how, make(case)) for name, case in CASES.items()
                for how, make in (("patches_comparisons", _patches_comparisons), ("opens_a_torch_mode", _opens_a_mode),
                                  ("a_subclass_that_lies", _lies))]


@pytest.mark.parametrize(("name", "how", "fn"), TALKED_ROUND, ids=[f"{n}-{h}" for n, h, _ in TALKED_ROUND])
def test_a_comparison_talked_round_fails_and_is_put_back(name, how, fn, capsys):
    originals = (torch.equal, torch.allclose, math.isclose, np.allclose, answers.close, checks_01.close)
    try:
        message = rejected(CASES[name].check, fn)
    finally:
        restored = (torch.equal, torch.allclose, math.isclose, np.allclose, answers.close, checks_01.close)
        open_modes = torch._C._len_torch_function_stack()
        while torch._C._len_torch_function_stack():
            torch._C._pop_torch_function_stack()
        torch.equal, torch.allclose, math.isclose, np.allclose, answers.close, checks_01.close = originals
    assert restored == originals and open_modes == 0, "the checker left the student's changes in place"
    if how == "patches_comparisons":
        assert "torch.equal" in message or "and " in message, message
        assert "changed" in message and "put back" in message, message
    if how == "opens_a_torch_mode":
        assert "torch function modes" in message, message


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_comparison_replaced_before_the_check_refuses_the_check(name, monkeypatch, capsys):
    monkeypatch.setattr(torch, "equal", lambda *a, **k: True)
    monkeypatch.setattr(torch, "allclose", lambda *a, **k: True)
    monkeypatch.setattr(checks_01, "close", lambda *a, **k: True)
    message = rejected(CASES[name].check, _wrong(CASES[name]))
    assert "replaced before this check" in message and "torch." in message, message
