"""Checkers for notebook 07, retrieval against reading: one term's BM25 score, how many chunks fit a budget,
a variable chain followed by one retrieval per hop."""

from __future__ import annotations

import functools
import math
import random
import re
from collections.abc import Callable, Sequence

import bm25s
import bm25s.scoring
import numpy as np

from .. import retrieval, validate
from ..ruler import tasks
from .answers import CheckFailed, as_int, as_number, as_strings, describe, kind, name_of
from .runner import call, checker, functions_of

# --- Exercise 1: one term's contribution to one chunk's BM25 score -----------------------------------------------

# (tf, df, n_chunks, chunk_len, avg_len, k1, b): the hand-worked case of tests/test_retrieval.py first; a short and
# a long chunk; tf 0; df = N and df > N/2 (where Robertson's idf turns negative); b = 0 and b = 1; k1 varied
TERM_CASES = [(1, 1, 3, 3, 2.0, 1.5, 0.75), (5, 3, 40, 12, 20.0, 1.5, 0.75), (1, 2, 50, 60, 15.0, 1.2, 0.75),
              (0, 4, 10, 8, 10.0, 1.5, 0.75), (2, 30, 30, 10, 10.0, 1.5, 0.75), (3, 1, 20, 25, 10.0, 0.9, 0.0),
              (3, 5, 20, 5, 12.5, 2.0, 1.0), (1, 12, 16, 30, 30.0, 1.5, 0.75), (7, 2, 8, 7, 7.5, 1.5, 0.75)]
TERM = "needle"


def term_corpus(tf: int, df: int, n_chunks: int, chunk_len: int, avg_len: float) -> list[str]:
    """n_chunks chunks of mean length avg_len (in `words` terms), df of which hold TERM; the first holds it tf times
    among chunk_len terms. Indexed by BM25, the first chunk's score for TERM is the term score of these statistics."""
    total = round(n_chunks * avg_len)
    rest = total - chunk_len  # the other n_chunks - 1 chunks share it, one term at least each
    holders = df - (tf > 0)  # other chunks that hold the term once
    if (abs(total - n_chunks * avg_len) > 1e-9 or not 0 <= tf <= chunk_len or not 0 <= holders <= n_chunks - 1
            or df < 1 or rest < n_chunks - 1):
        raise ValueError(f"no corpus has tf={tf}, df={df}, n_chunks={n_chunks}, chunk_len={chunk_len}, "
                         f"avg_len={avg_len}")
    others = [rest // (n_chunks - 1) + (i < rest % (n_chunks - 1)) for i in range(n_chunks - 1)]
    chunks = [[TERM] * tf + ["filler"] * (chunk_len - tf)]
    chunks += [[TERM] * (i < holders) + ["filler"] * (n - (i < holders)) for i, n in enumerate(others)]
    return [" ".join(c) for c in chunks]


def reference_term_score(tf: int, df: int, n_chunks: int, chunk_len: int, avg_len: float, k1: float,
                         b: float) -> float:
    """The score lclib.retrieval.BM25 (bm25s) gives the first chunk of term_corpus(...) for TERM."""
    bm25 = retrieval.BM25(k1=k1, b=b)
    bm25.index(term_corpus(tf, df, n_chunks, chunk_len, avg_len))
    return float(bm25.scores(TERM)[0])


def _saturation(tf, chunk_len, avg_len, k1, b):
    return tf / (tf + k1 * (1 - b + b * chunk_len / avg_len))


def _idf(n, df):
    return math.log(1 + (n - df + 0.5) / (df + 0.5))


def _robertson_idf(n, df):
    return math.log((n - df + 0.5) / (df + 0.5))


TERM_MISTAKES: list[tuple[Callable[..., float], str]] = [  # (what the mistake computes, the hint)
    (lambda tf, df, n, dl, avg, k1, b: (k1 + 1) * _robertson_idf(n, df) * _saturation(tf, dl, avg, k1, b),
     "this is Robertson's textbook BM25: its (k1+1) factor and its idf ln((N - df + 0.5)/(df + 0.5)). Lucene's "
     "form, which bm25s follows, drops the constant (k1+1) (rankings do not change) and takes "
     "idf = ln(1 + (N - df + 0.5)/(df + 0.5)), never negative."),
    (lambda tf, df, n, dl, avg, k1, b: (k1 + 1) * _idf(n, df) * _saturation(tf, dl, avg, k1, b),
     "your scores are (k1+1) times too large: that is the textbook factor. Lucene's form, which bm25s follows, "
     "drops the constant (k1+1); rankings do not change."),
    (lambda tf, df, n, dl, avg, k1, b: _robertson_idf(n, df) * _saturation(tf, dl, avg, k1, b),
     "your idf is the classic ln((N - df + 0.5)/(df + 0.5)), negative for df > N/2 (a common term would lower "
     "a score); Lucene's adds 1 inside the log: ln(1 + (N - df + 0.5)/(df + 0.5))."),
    (lambda tf, df, n, dl, avg, k1, b: _idf(n, df) * _saturation(tf, dl, avg, k1, 0.0),
     "your score ignores the chunk's length (b): the saturation is tf / (tf + k1 (1 - b + b chunk_len/avg_len)), "
     "so a chunk longer than average needs more occurrences for the same score."),
    (lambda tf, df, n, dl, avg, k1, b: _idf(n, df) * tf,
     "your score grows linearly with tf: BM25 saturates it, tf / (tf + k1 (1 - b + b chunk_len/avg_len)), "
     "so the fifth occurrence adds less than the first."),
]


# everything that scores BM25 for the student: lclib's wrapper and bm25s itself (its index, its scores, its idf and tf
# formulas), so that indexing a corpus with the given statistics and reading the score off is no answer
HIDE_BM25 = (retrieval.BM25.scores, retrieval.BM25.index, *functions_of(bm25s.BM25, bm25s.scoring))


def _close(got: float, want: float) -> bool:
    return math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-12)


@checker
def check_bm25_term_score(fn: Callable[..., float]) -> str:
    """fn(tf, df, n_chunks, chunk_len, avg_len, k1, b) must return one query term's contribution to one chunk's
    BM25 score in Lucene's form, as lclib.retrieval.BM25 (bm25s) computes it: a float."""
    wants = [reference_term_score(*case) for case in TERM_CASES]  # read off small corpora indexed by BM25
    gots = []
    for (tf, df, n, dl, avg, k1, b), want in zip(TERM_CASES, wants):
        where = f"tf={tf}, df={df}, n_chunks={n}, chunk_len={dl}, avg_len={avg}, k1={k1}, b={b}"
        raw = call(fn, tf=tf, df=df, n_chunks=n, chunk_len=dl, avg_len=avg, k1=k1, b=b, hide=HIDE_BM25)
        got = as_number(raw, where, "a score (a float)")
        if tf == 0 and got != 0:
            raise CheckFailed(f"{where}: a term the chunk does not hold (tf = 0) adds nothing; you give {got:.6g}.")
        gots.append(got)
    if all(_close(g, w) for g, w in zip(gots, wants)):
        return "your term score is bm25s's, case by case: Lucene's BM25, the form lclib.retrieval.BM25 ranks with."
    for mistake, hint in TERM_MISTAKES:
        if all(_close(g, mistake(*case)) for g, case in zip(gots, TERM_CASES)):
            raise CheckFailed(hint)
    i = next(i for i, (g, w) in enumerate(zip(gots, wants)) if not _close(g, w))
    tf, df, n, dl, avg, k1, b = TERM_CASES[i]
    raise CheckFailed(f"tf={tf}, df={df}, n_chunks={n}, chunk_len={dl}, avg_len={avg}, k1={k1}, b={b}: expected "
                      f"{wants[i]:.6g}, got {gots[i]:.6g}; score = idf x tf / (tf + k1 (1 - b + b chunk_len/avg_len)) "
                      "with idf = ln(1 + (n_chunks - df + 0.5)/(df + 0.5)).")


# --- Exercise 2: how many ranked chunks fit a token budget ---------------------------------------------------------

def _largest_k(sizes: Sequence[int], fixed: int, budget: int, fits: Callable[[int, int], bool]) -> int:
    k, used = 0, fixed
    for size in sizes:
        if not fits(used + size, budget):
            break
        k, used = k + 1, used + size
    return k


def _choose_k(sizes, fixed, budget):
    return _largest_k(sizes, fixed, budget, lambda used, b: used <= b)


def _skipping(sizes, fixed, budget):  # takes every chunk that still fits, jumping over the ones that do not
    used, k = fixed, 0
    for size in sizes:
        if used + size <= budget:
            used, k = used + size, k + 1
    return k


_RANDOM = random.Random(7)
CHOOSE_CASES = [  # (chunk_tokens best first, fixed_tokens, budget)
    ([120, 80, 200, 50], 100, 400),  # two fit
    ([120, 80, 200, 50], 100, 500),  # the budget met exactly: three fit
    ([300, 10, 10], 100, 350),  # the best chunk does not fit: none, though the smaller ones would
    ([30, 40], 500, 400),  # the instruction and question alone are over budget
    ([], 50, 100),  # nothing retrieved
    ([10, 20, 30], 5, 1000),  # all fit
    ([64] * 10, 36, 36 + 64 * 4),  # exactly four
    ([_RANDOM.randint(5, 60) for _ in range(200)], 90, 2048),  # a long ranking of sentence-sized chunks
]

CHOOSE_MISTAKES: list[tuple[Callable[[list, int, int], int], str]] = [
    (lambda s, f, b: _largest_k(s, f, b, lambda used, bb: used < bb),
     "off by one where the budget is met exactly: fixed_tokens + sum(chunk_tokens[:k]) may EQUAL the budget "
     "(<=, not <)."),
    (lambda s, f, b: _choose_k(s, 0, b),
     "you left out fixed_tokens: the instruction and question are in the prompt too, so the chunks get "
     "budget - fixed_tokens tokens."),
    (lambda s, f, b: _choose_k(sorted(s), f, b),
     "you took the chunks in size order: keep the retriever's rank order (best first); k is how many of the best "
     "chunks fit."),
    (_skipping,
     "you jump over a chunk that does not fit and keep taking later, smaller ones: k counts a prefix of the "
     "ranking, chunk_tokens[:k], so stop at the first chunk that does not fit."),
    (lambda s, f, b: min(_choose_k(s, f, b) + 1, len(s)),
     "one chunk too many: you count the chunk that overflows the budget; stop before it."),
]


def _with_inputs(fn: Callable) -> Callable:
    """fn, returning (its result, the copies of the inputs it was given): shows whether it changed them."""
    @functools.wraps(fn)
    def run(*args):
        return fn(*args), args
    return run


@checker
def check_choose_k(fn: Callable[[list[int], int, int], int]) -> str:
    """fn(chunk_tokens, fixed_tokens, budget) must return the largest k (an int) with
    fixed_tokens + sum(chunk_tokens[:k]) <= budget, without changing chunk_tokens."""
    wants = [_choose_k(*case) for case in CHOOSE_CASES]
    gots = []
    for (sizes, fixed, budget), want in zip(CHOOSE_CASES, wants):
        where = f"chunk_tokens={describe(sizes)}, fixed_tokens={fixed}, budget={budget}"
        raw, (seen, _, _) = call(_with_inputs(fn), chunk_tokens=list(sizes), fixed_tokens=fixed, budget=budget)
        if seen != sizes:
            raise CheckFailed(f"{where}: {name_of(fn)} changed chunk_tokens in place (to {describe(seen)}); the "
                              "caller's ranking must stay as it was: read the list, do not sort, pop or clear it.")
        if isinstance(raw, (list, tuple)):
            raise CheckFailed(f"{where}: expected the number of chunks k (an int), got {kind(raw)}; return k, "
                              "not the chunks.")
        got = as_int(raw, where, "the number of chunks k (an int)")
        if got < 0:
            raise CheckFailed(f"{where}: k = {got} is negative; when not even the best chunk fits, k = 0.")
        gots.append(got)
    if gots == wants:
        return "your k fills the budget with the best chunks, as a RAG prompt must: in rank order, never past it."
    for mistake, hint in CHOOSE_MISTAKES:
        if all(g == mistake(*case) for g, case in zip(gots, CHOOSE_CASES)):
            raise CheckFailed(hint)
    i = next(i for i, (g, w) in enumerate(zip(gots, wants)) if g != w)
    sizes, fixed, budget = CHOOSE_CASES[i]
    raise CheckFailed(f"chunk_tokens={describe(sizes)}, fixed_tokens={fixed}, budget={budget}: expected k = "
                      f"{wants[i]}, got {gots[i]}; the largest k with fixed_tokens + sum(chunk_tokens[:k]) <= budget.")


# --- Exercise 3: a variable chain, one retrieval per hop -----------------------------------------------------------

class QueryLog(retrieval.BM25):
    """A BM25 that records every query it scores (search goes through scores), to see the hops were retrieved."""

    def __init__(self) -> None:
        super().__init__()
        self.queries: list[str] = []

    def scores(self, query: str) -> np.ndarray:
        self.queries.append(query)
        return super().scores(query)


# (layout, length, seed, num_hops, num_chains, max_hops): RULER's lines and the lab's sentences; a second chain
# as distractor; max_hops cutting the chain short, and max_hops past its end (the next hop finds only noise)
CHAIN_CASES = [("lines", 1024, 0, 4, 1, 5), ("sentences", 1024, 1, 3, 1, 4), ("lines", 2048, 2, 4, 2, 5),
               ("sentences", 2048, 3, 2, 2, 3), ("lines", 1024, 4, 4, 1, 2), ("lines", 1024, 5, 2, 1, 6),
               ("sentences", 1024, 6, 5, 1, 8)]
UNIT = {"lines": "line", "sentences": "sentence"}
# the same samples with a decoy statement "VAR XKQWV = VAR <first name> ..." right after the value's: reading the whole
# text, a regex follows it; a search for the first name ranks it below the true next statement (it is longer), so a
# retrieval loop never reads it
DECOY_CASES = [("lines", 1024, 0, 4, 1, 5), ("sentences", 1024, 1, 3, 1, 4)]
DECOY = "XKQWV"


def chain_sample(layout: str, length: int, seed: int, num_hops: int,
                 num_chains: int) -> tuple[list[str], str, list[str]]:
    """(chunks, the value asked for, the chain's names in order) of a vt sample, cut as split_context cuts it."""
    s = tasks.make_sample("vt", length, seed, num_hops=num_hops, num_chains=num_chains, layout=layout)
    value = re.findall(r"assigned the value (\d+)", s.prompt)[-1]  # the last: an in-context example asks its own
    return retrieval.split_context(s, UNIT[layout]).chunks, value, list(s.answers)


def decoy_sample(layout: str, length: int, seed: int, num_hops: int,
                 num_chains: int) -> tuple[list[str], str, list[str]]:
    """chain_sample's (chunks, value, chain) with a decoy chunk after the value's statement: a second variable
    assigned from the chain's first name, in a longer chunk than the true next statement, so BM25 ranks it lower."""
    chunks, value, chain = chain_sample(layout, length, seed, num_hops, num_chains)
    at = next(i for i, c in enumerate(chunks) if c.lstrip().startswith(f"VAR {chain[0]} ="))
    end = "\n" if layout == "lines" else " "
    decoy = f"VAR {DECOY} = VAR {chain[0]} in a note that no question asks about and no hop retrieves.{end}"
    return chunks[:at + 1] + [decoy] + chunks[at + 1:], value, chain


def _follows(queries: list[str], needed: list[str]) -> bool:
    """Whether the queries hold, in order, one query naming each of `needed` (the value, then each name read)."""
    terms = iter([set(retrieval.words(q)) for q in queries])
    return all(any(n.lower() in t for t in terms) for n in needed)  # one iterator: each match resumes after the last


def _chain_hint(got: list[str], want: list[str], value: str, max_hops: int) -> str:
    if DECOY in got:
        return (f"you read {DECOY}, which is assigned from {want[0]} in a chunk that a search for {want[0]} ranks "
                "below the true next statement: read each name from the best chunk your search returns, not from the "
                "whole text.")
    if [g.upper() for g in got] == want:
        return ("the names are in lower case: `words` lowercases its terms; read the name from the chunk's own text "
                "(\"VAR QPMZJ = ...\" -> \"QPMZJ\").")
    if any(" " in g or "=" in g for g in got):
        return (f"return the variable names, not the chunks: from {describe(got[0])} read only the name it assigns.")
    if value in got:
        return (f"the value {value} is not a variable: start the chain with the name that the value's statement "
                "assigns, and list names only.")
    if len(got) > len(want) and got[:len(want)] == want:
        return (f"{len(got) - len(want)} name(s) too many: return at most max_hops={max_hops} names, and stop when "
                "the chunk retrieved assigns no new name (noise, or a name you already have).")
    if len(got) > 1 and got == want[::-1]:
        return "the right names in reverse: list them in chain order, the variable assigned the value first."
    repeated = sorted({g for g in got if got.count(g) > 1})
    if repeated:
        return (f"{describe(repeated)} repeated: a hop re-read a chunk it had already taken (a statement is the "
                "best match for the name it assigns); take the best chunk not yet taken, and stop when it assigns no "
                "new name.")
    if len(want) > 1 and got == want[:1]:
        return ("only the first name: one retrieval finds only the statement holding the value: the chain needs a "
                "query per hop (the name just read), each taking the best chunk not yet taken (a name's own "
                "statement matches it best).")
    if not got:
        return ("no names: the first query is the value; the chunk it retrieves assigns the first name "
                "(\"VAR QPMZJ = 88892\" -> \"QPMZJ\").")
    if got == want[:len(got)]:
        return (f"stopped after {len(got)} of {len(want)} names: keep querying with the name just read while the "
                f"chunk retrieved assigns a new name, up to max_hops={max_hops} names.")
    return f"expected {want}, got {describe(got)}."


@checker
def check_follow_chain(fn: Callable[..., list[str]]) -> str:
    """fn(retriever, chunks, value, max_hops) must return the chain's variable names (a list of str) in order: the
    one assigned the value first, found by retrieving with the value, then with each name read."""
    for (layout, length, seed, hops, n_chains, max_hops), decoy in ([(c, False) for c in CHAIN_CASES]
                                                                   + [(c, True) for c in DECOY_CASES]):
        chunks, value, chain = (decoy_sample if decoy else chain_sample)(layout, length, seed, hops, n_chains)
        want = chain[:max_hops]
        where = (f"vt {layout}, seed {seed}{', 2 chains' if n_chains > 1 else ''}{', a decoy' if decoy else ''}, "
                 f"value={value!r}, max_hops={max_hops}")
        raw, (used, seen, _, _) = call(_with_inputs(fn), retriever=QueryLog(), chunks=list(chunks), value=value,
                                       max_hops=max_hops, hide=(retrieval.iterative_retrieve,))
        if seen != chunks:
            raise CheckFailed(f"{where}: {name_of(fn)} changed chunks in place; index and read them, leave them "
                              "as given.")
        if isinstance(raw, (set, frozenset)):
            raise CheckFailed(f"{where}: a set has no order; return a list, in chain order.")
        if isinstance(raw, (list, tuple)) and raw and all(validate.is_int(x) for x in raw):
            raise CheckFailed(f"{where}: you return chunk indices {describe(list(raw))}; return the variable names "
                              "the chunks assign.")
        got = as_strings(raw, where, "a list of variable names (str)")
        if not used.queries:
            raise CheckFailed(f"{where}: {name_of(fn)} never queried the retriever it was given: index the chunks with "
                              "retriever.index(chunks), then retriever.search(query, k) once per hop.")
        if got != want:
            raise CheckFailed(f"{where}: {_chain_hint(got, want, value, max_hops)}")
        if len(used.queries) < len(want):
            raise CheckFailed(f"{where}: right names, but only {len(used.queries)} retrieval(s) for {len(want)} hops: "
                              "find each statement with a query (the name just read), not by reading every chunk.")
        if not _follows(used.queries, [value, *want[:-1]]):
            raise CheckFailed(f"{where}: right names, but your queries {describe(used.queries)} do not follow them: "
                              "search with the value, then with each name just read; a name read without a search "
                              "for it is not a retrieval loop.")
    return ("your hops follow every chain, in RULER's lines and the lab's sentences: a query per hop finds what no "
            "single query for the value can.")
