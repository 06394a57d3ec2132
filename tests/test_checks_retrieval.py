"""The checkers of notebook 07 pass right answers, fail wrong ones with a hint, and report stubs as not done."""

from __future__ import annotations

import math
import re

import bm25s
import numpy as np
import pytest

from lclib import checks, retrieval
from lclib.checks import retrieval as checks_07
from lclib.retrieval import BM25


# --- right answers (the logic of notebooks/solutions/07_rag_vs_long_context_solutions.ipynb) -----------------------

def bm25_term_score(tf, df, n_chunks, chunk_len, avg_len, k1=1.5, b=0.75):
    idf = math.log(1 + (n_chunks - df + 0.5) / (df + 0.5))
    return idf * tf / (tf + k1 * (1 - b + b * chunk_len / avg_len))


def choose_k(chunk_tokens, fixed_tokens, budget):
    k, used = 0, fixed_tokens
    for n in chunk_tokens:
        if used + n > budget:
            break
        k, used = k + 1, used + n
    return k


def reads(chunk):
    m = re.match(r"\s*VAR (\w+) =", chunk)
    return m.group(1) if m else None


def follow_chain(retriever, chunks, value, max_hops):
    retriever.index(chunks)
    names, taken, query = [], set(), value
    while len(names) < max_hops and len(taken) < len(chunks):
        hit = next(i for i, _ in retriever.search(query, len(taken) + 1) if i not in taken)
        taken.add(hit)
        name = reads(chunks[hit])
        if name is None or name in names:
            break
        names.append(name)
        query = name
    return names


def follow_chain_top2(retriever, chunks, value, max_hops):
    """Another right answer: the chunk that assigns FROM the name read, among its two best matches."""
    retriever.index(chunks)
    names, query = [], value
    while len(names) < max_hops:
        found = [reads(chunks[i]) for i, _ in retriever.search(query, 2)
                 if re.search(rf"= (VAR )?{re.escape(query)}\b", chunks[i])]
        if not found or found[0] in names:
            break
        names.append(found[0])
        query = found[0]
    return names


def test_right_answers_pass(capsys):
    assert checks.check_bm25_term_score(bm25_term_score)
    assert checks.check_bm25_term_score(lambda *a: np.float32(bm25_term_score(*a)))  # numpy, float32 within 1e-6
    assert checks.check_choose_k(choose_k)
    assert checks.check_choose_k(lambda s, f, b: np.int64(choose_k(s, f, b)))
    assert checks.check_choose_k(lambda s, f, b: max([k for k in range(len(s) + 1) if f + sum(s[:k]) <= b], default=0))
    assert checks.check_follow_chain(follow_chain)
    assert checks.check_follow_chain(follow_chain_top2)
    assert checks.check_follow_chain(lambda r, c, v, h: tuple(follow_chain(r, c, v, h)))
    assert capsys.readouterr().out.count("Correct") == 8


def test_the_references_are_what_the_library_computes():
    # Exercise 1: each case's corpus has the statistics it claims, and its score is the formula's
    for tf, df, n, dl, avg, k1, b in checks_07.TERM_CASES:
        chunks = checks_07.term_corpus(tf, df, n, dl, avg)
        terms = [retrieval.words(c) for c in chunks]
        assert len(chunks) == n and len(terms[0]) == dl and terms[0].count(checks_07.TERM) == tf
        assert sum(checks_07.TERM in t for t in terms) == df and sum(map(len, terms)) == n * avg
        assert checks_07.reference_term_score(tf, df, n, dl, avg, k1, b) == \
            pytest.approx(bm25_term_score(tf, df, n, dl, avg, k1, b), rel=1e-9, abs=1e-12)
    assert checks_07.reference_term_score(1, 1, 3, 3, 2.0, 1.5, 0.75) == pytest.approx(0.3202707, abs=1e-6)
    # Exercise 3: the library's own multi-hop retrieval follows every chain the checker builds
    for layout, length, seed, hops, n_chains, max_hops in checks_07.CHAIN_CASES:
        chunks, value, chain = checks_07.chain_sample(layout, length, seed, hops, n_chains)
        assert len(chain) == hops + 1 and sum(value in c for c in chunks) == 1
        taken = retrieval.iterative_retrieve(BM25(), chunks, value, reads, max_hops)
        assert [reads(chunks[i]) for i in taken][:len(chain)] == chain[:max_hops]
    # the decoy cases: retrieval still follows the chain, a reader of the whole text takes the decoy
    for layout, length, seed, hops, n_chains, max_hops in checks_07.DECOY_CASES:
        chunks, value, chain = checks_07.decoy_sample(layout, length, seed, hops, n_chains)
        assert sum(checks_07.DECOY in c for c in chunks) == 1 and max_hops == len(chain)
        taken = retrieval.iterative_retrieve(BM25(), chunks, value, reads, max_hops)
        assert [reads(chunks[i]) for i in taken] == chain
        assert without_the_retriever(None, chunks, value, max_hops)[:2] == [chain[0], checks_07.DECOY]
        assert follow_chain_top2(BM25(), chunks, value, max_hops) == chain


# --- wrong answers, each with its hint --------------------------------------------------------------------------

def lucene_idf(n, df):
    return math.log(1 + (n - df + 0.5) / (df + 0.5))


def robertson_idf(n, df):
    return math.log((n - df + 0.5) / (df + 0.5))


def saturation(tf, dl, avg, k1, b):
    return tf / (tf + k1 * (1 - b + b * dl / avg))


def count_until_over(s, f, b):
    k, used = 0, f
    for n in s:
        k, used = k + 1, used + n
        if used > b:
            break
    return k


def skip_what_does_not_fit(s, f, b):
    k, used = 0, f
    for n in s:
        if used + n <= b:
            k, used = k + 1, used + n
    return k


def strictly_below(s, f, b):
    k, used = 0, f
    for n in s:
        if used + n >= b:
            break
        k, used = k + 1, used + n
    return k


def one_retrieval(retriever, chunks, value, max_hops):
    retriever.index(chunks)
    return [reads(chunks[retriever.search(value, 1)[0][0]])]


def top1_until_not_new(retriever, chunks, value, max_hops):  # never skips the chunks already taken
    retriever.index(chunks)
    names, query = [], value
    while len(names) < max_hops:
        name = reads(chunks[retriever.search(query, 1)[0][0]])
        if name is None or name in names:
            break
        names.append(name)
        query = name
    return names


def top1_every_hop(retriever, chunks, value, max_hops):
    retriever.index(chunks)
    names, query = [], value
    for _ in range(max_hops):
        name = reads(chunks[retriever.search(query, 1)[0][0]])
        if name is None:
            break
        names.append(name)
        query = name
    return names


def lowercase(retriever, chunks, value, max_hops):
    return [retrieval.words(n)[0] for n in follow_chain(retriever, chunks, value, max_hops)]


def without_the_retriever(retriever, chunks, value, max_hops):
    holders, names = {value}, []
    for c in chunks:
        m = re.match(r"\s*VAR (\w+) = (?:VAR )?(\w+)", c)
        if m and m.group(2) in holders and len(names) < max_hops:
            holders.add(m.group(1))
            names.append(m.group(1))
    return names


def own_retriever(retriever, chunks, value, max_hops):
    return follow_chain(BM25(), chunks, value, max_hops)


def past_max_hops(retriever, chunks, value, max_hops):
    return follow_chain(retriever, chunks, value, 10)


def no_stop(retriever, chunks, value, max_hops):  # every hop reads on, a noise chunk gives "None"
    retriever.index(chunks)
    names, taken, query = [], set(), value
    while len(names) < max_hops:
        hit = next(i for i, _ in retriever.search(query, len(taken) + 1) if i not in taken)
        taken.add(hit)
        names.append(str(reads(chunks[hit])))
        query = names[-1]
    return names


def sorts_chunks(retriever, chunks, value, max_hops):
    chunks.sort()
    return follow_chain(retriever, chunks, value, max_hops)


def sorts_sizes(s, f, b):
    s.sort()
    return choose_k(s, f, b)


@pytest.mark.parametrize("check, wrong, hint", [
    (checks.check_bm25_term_score, lambda tf, df, n, dl, avg, k1=1.5, b=0.75:
        (k1 + 1) * lucene_idf(n, df) * saturation(tf, dl, avg, k1, b), r"drops the constant \(k1\+1\)"),
    (checks.check_bm25_term_score, lambda tf, df, n, dl, avg, k1=1.5, b=0.75:
        robertson_idf(n, df) * saturation(tf, dl, avg, k1, b), r"ln\(1 \+ \(N - df"),
    (checks.check_bm25_term_score, lambda tf, df, n, dl, avg, k1=1.5, b=0.75:
        (k1 + 1) * robertson_idf(n, df) * saturation(tf, dl, avg, k1, b), "Robertson's textbook BM25"),
    (checks.check_bm25_term_score, lambda tf, df, n, dl, avg, k1=1.5, b=0.75:
        lucene_idf(n, df) * tf / (tf + k1), "ignores the chunk's length"),
    (checks.check_bm25_term_score, lambda tf, df, n, dl, avg, k1=1.5, b=0.75: lucene_idf(n, df) * tf,
     "linearly with tf"),
    (checks.check_bm25_term_score, lambda tf, df, n, dl, avg, k1=1.5, b=0.75: lucene_idf(n, df), r"tf = 0"),
    (checks.check_bm25_term_score, lambda tf, df, n, dl, avg, k1=1.5, b=0.75:
        math.log10(1 + (n - df + 0.5) / (df + 0.5)) * saturation(tf, dl, avg, k1, b), "expected 0.320271"),
    (checks.check_bm25_term_score, lambda *a: None, "None"),
    (checks.check_bm25_term_score, lambda *a: float("nan"), "NaN"),
    (checks.check_bm25_term_score, lambda *a: "0.32", "expected a score"),
    (checks.check_bm25_term_score, lambda *a: [bm25_term_score(*a)], "expected a score"),
    (checks.check_choose_k, strictly_below, r"<=, not <"),
    (checks.check_choose_k, lambda s, f, b: choose_k(s, 0, b), "left out fixed_tokens"),
    (checks.check_choose_k, lambda s, f, b: choose_k(sorted(s), f, b), "size order"),
    (checks.check_choose_k, skip_what_does_not_fit, "prefix of the ranking"),
    (checks.check_choose_k, count_until_over, "one chunk too many"),
    (checks.check_choose_k, sorts_sizes, "changed chunk_tokens in place"),
    (checks.check_choose_k, lambda s, f, b: s[:choose_k(s, f, b)], "return k, not the chunks"),
    (checks.check_choose_k, lambda s, f, b: choose_k(s, f, b) - 1, "negative"),
    (checks.check_choose_k, lambda s, f, b: None, "None"),
    (checks.check_choose_k, lambda s, f, b: float("nan"), "NaN"),
    (checks.check_choose_k, lambda s, f, b: choose_k(s, f, b) + 0.5, "not whole"),
    (checks.check_choose_k, lambda s, f, b: True, "boolean"),
    (checks.check_follow_chain, one_retrieval, "one retrieval finds only the statement holding the value"),
    (checks.check_follow_chain, top1_until_not_new, "chain needs a query per hop"),
    (checks.check_follow_chain, top1_every_hop, "repeated"),
    (checks.check_follow_chain, lambda r, c, v, h: follow_chain(r, c, v, h)[::-1], "reverse"),
    (checks.check_follow_chain, lambda r, c, v, h: [v, *follow_chain(r, c, v, h)], "not a variable"),
    (checks.check_follow_chain, lowercase, "lower case"),
    (checks.check_follow_chain, without_the_retriever, "never queried the retriever"),
    (checks.check_follow_chain, own_retriever, "never queried the retriever"),
    (checks.check_follow_chain, past_max_hops, "too many"),
    (checks.check_follow_chain, lambda r, c, v, h: follow_chain(r, c, v, h)[:-1], "stopped after"),
    (checks.check_follow_chain, lambda r, c, v, h: (r.index(c), r.search(v, 1), [])[-1], "no names"),
    (checks.check_follow_chain, no_stop, "too many"),
    (checks.check_follow_chain, sorts_chunks, "changed chunks in place"),
    (checks.check_follow_chain, lambda r, c, v, h: set(follow_chain(r, c, v, h)), "no order"),
    (checks.check_follow_chain, lambda r, c, v, h: [c.index(x) for x in c if reads(x)], "chunk indices"),
    (checks.check_follow_chain, lambda r, c, v, h: [next(x for x in c if reads(x) == n)
                                                    for n in follow_chain(r, c, v, h)], "not the chunks"),
    (checks.check_follow_chain, lambda r, c, v, h: ", ".join(follow_chain(r, c, v, h)), "one string"),
    (checks.check_follow_chain, lambda r, c, v, h: None, "None"),
    (checks.check_follow_chain, lambda r, c, v, h: [float("nan")], "holds a float"),
])
def test_wrong_answers_fail_with_a_hint(check, wrong, hint, capsys):
    with pytest.raises(checks.CheckFailed, match=hint) as info:
        check(wrong)
    assert "\n" not in str(info.value) and len(str(info.value)) < 400
    assert "could not check" not in str(info.value) and "Correct" not in capsys.readouterr().out


def test_a_chain_read_without_a_query_per_hop_is_refused():
    def one_query_then_read(retriever, chunks, value, max_hops):
        retriever.index(chunks)
        retriever.search(value, 1)
        return without_the_retriever(retriever, chunks, value, max_hops)

    with pytest.raises(checks.CheckFailed, match="a query"):
        checks.check_follow_chain(one_query_then_read)


def read_then_pretend(queries):
    """The chain read off the whole text with a regex, then searches that only look like hops."""
    def follow(retriever, chunks, value, max_hops):
        names = without_the_retriever(retriever, chunks, value, max_hops)
        retriever.index(chunks)
        for query in queries(value, names):
            retriever.search(query, 1)
        return names
    return follow


@pytest.mark.parametrize("wrong, hint", [
    (read_then_pretend(lambda value, names: ["hop"] * len(names)), "do not follow them"),
    (read_then_pretend(lambda value, names: [value] * len(names)), "do not follow them"),
    (read_then_pretend(lambda value, names: [value, *names[:-1]]), "not from the whole text"),
])
def test_a_chain_read_off_the_text_with_searches_for_show_is_refused(wrong, hint):
    with pytest.raises(checks.CheckFailed, match=hint):
        checks.check_follow_chain(wrong)


def test_scoring_with_bm25s_is_refused():
    def corpus(tf, df, n, dl, avg):
        rest, holders = round(n * avg) - dl, df - (tf > 0)
        sizes = [rest // (n - 1) + (i < rest % (n - 1)) for i in range(n - 1)]
        return [["needle"] * tf + ["filler"] * (dl - tf)] + [["needle"] * (i < holders) + ["filler"] * (m - (i < holders))
                                                             for i, m in enumerate(sizes)]

    def with_bm25s(tf, df, n_chunks, chunk_len, avg_len, k1=1.5, b=0.75):
        if tf == 0:
            return 0.0
        model = bm25s.BM25(k1=k1, b=b)
        model.index(corpus(tf, df, n_chunks, chunk_len, avg_len), show_progress=False)
        return float(model.get_scores(["needle"])[0])

    def with_the_wrappers_model(tf, df, n_chunks, chunk_len, avg_len, k1=1.5, b=0.75):
        if tf == 0:
            return 0.0
        bm25 = BM25(k1, b)
        bm25.index([" ".join(c) for c in corpus(tf, df, n_chunks, chunk_len, avg_len)])
        return float(bm25._bm25.get_scores(["needle"])[0])

    assert with_bm25s(1, 1, 3, 3, 2.0) == pytest.approx(0.3202707, abs=1e-6)  # outside a check, they work
    assert with_the_wrappers_model(1, 1, 3, 3, 2.0) == pytest.approx(0.3202707, abs=1e-6)
    for cheat, what in ((with_bm25s, "bm25s.BM25"), (with_the_wrappers_model, "retrieval.BM25.index")):
        with pytest.raises(checks.CheckFailed, match=f"calls .*{what}.*write it yourself"):
            checks.check_bm25_term_score(cheat)
    assert with_bm25s(1, 1, 3, 3, 2.0) == pytest.approx(0.3202707, abs=1e-6)  # and again after


def test_calling_the_library_answer_is_refused():
    def lazy_chain(retriever, chunks, value, max_hops):
        return [reads(chunks[i]) for i in retrieval.iterative_retrieve(retriever, chunks, value, reads, max_hops)]

    def lazy_score(tf, df, n_chunks, chunk_len, avg_len, k1=1.5, b=0.75):
        bm25 = BM25(k1, b)
        bm25.index(checks_07.term_corpus(tf, df, n_chunks, chunk_len, avg_len))
        return float(bm25.scores(checks_07.TERM)[0])

    for check, lazy in ((checks.check_follow_chain, lazy_chain), (checks.check_bm25_term_score, lazy_score)):
        with pytest.raises(checks.CheckFailed, match="write it yourself"):
            check(lazy)
    assert retrieval.iterative_retrieve(BM25(), ["VAR A = 1", "VAR B = VAR A "], "1", reads, 2) == [0, 1]  # restored


def test_a_student_exception_names_the_inputs():
    def broken(retriever, chunks, value, max_hops):
        return chunks[len(chunks)]

    with pytest.raises(checks.CheckFailed, match=r"broken raised IndexError.*called with retriever="):
        checks.check_follow_chain(broken)


@pytest.mark.parametrize("check", [checks.check_bm25_term_score, checks.check_choose_k, checks.check_follow_chain])
def test_stub_is_not_done(check, capsys):
    def stub(*args):
        raise NotImplementedError

    assert check(stub) is False
    assert "Not done yet" in capsys.readouterr().out
