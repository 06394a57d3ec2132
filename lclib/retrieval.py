"""Retrieval against reading: pick the few chunks of a long context that match the question, drop the rest.

Retrieval-augmented generation (Lewis et al. 2020, RAG) hands a reader the top-k chunks a retriever
ranks highest instead of the whole context. The retriever here is BM25 (Robertson & Zaragoza 2009),
as Lucene computes it (Kamphuis et al. 2020, "Which BM25 do you mean?"), scored by the `bm25s` library:

    score(q, d) = sum over distinct terms t of q in d of  idf(t) * tf / (tf + k1 (1 - b + b |d| / avgdl))
    idf(t)      = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))

tf: count of t in chunk d; |d|: terms in d; avgdl: mean |d|; N: chunks; df(t): chunks holding t. Robertson's
textbook form multiplies each term by the constant (k1 + 1); Lucene dropped it (8.0), bm25s follows Lucene,
and no ranking changes. Every chunk and query goes through one analyser, `words`, so BM25 and any
from-scratch check see the same terms; it folds Unicode (NFKC, then casefold), so that a decomposed "café"
(NFD) or full-width digits "５８３３" find their composed or ASCII forms.

A context is cut into chunks (`split_context`: sentences, or lines for RULER's line layouts) such that
the prompt reassembles exactly. `rag_prompt` keeps the top-k chunks, in an order that may put the best
ones at the ends (Liu et al. 2023, "Lost in the Middle"); `iterative_retrieve` follows a chain of
hops (variable tracking) by forming each query from the chunk the previous one found.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol, runtime_checkable

import bm25s
import numpy as np

from . import validate
from .ruler import words as W
from .ruler.tasks import Sample

# A term: a run of letters and digits, hyphenated runs kept whole, so that RULER's key "pink-sugar" (and a
# uuid) in the question matches the same key in its needle and not the distractor "pink-salmon".
_TERM = re.compile(r"[^\W_]+(?:-[^\W_]+)*")
# Chunk boundaries; the separator they match stays with the chunk before it. A sentence ends at
# ". ", "! ", "? " or a line break; blank lines fold into one separator.
_BOUNDARY = {"sentence": re.compile(r"(?<=[.!?]) +|\n+"), "line": re.compile(r"\n+")}
METHODS = ("lucene", "robertson", "atire", "bm25l", "bm25+")
ORDERS = ("document", "best_first", "best_last", "ends")


def words(text: str) -> list[str]:
    """The analyser: casefolded terms (letters/digits, hyphenated keys whole), in order, no stemming, no stopwords.

    "One of the special magic numbers for pink-sugar is: 5833." -> [..., "for", "pink-sugar", "is", "5833"].
    Text is normalised first (Unicode NFKC: composed accents, full-width and other compatibility forms to
    their plain ones), so that the same word typed two ways is one term; ASCII text is unchanged by it.
    Stopwords stay: RULER's filler shares "the" and "is" with the question, and BM25's idf already makes
    such terms cheap.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return _TERM.findall(unicodedata.normalize("NFKC", text).casefold())


def _check_strs(name: str, values: Sequence[str]) -> list[str]:
    """values as a list, refusing a bare str (whose characters would pass for a list of one-letter texts)."""
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a list of str, got {type(values).__name__}"
                        + (f" (wrap one text in a list: [{values[:20]!r}])" if isinstance(values, str) else ""))
    bad = next((v for v in values if not isinstance(v, str)), None)
    if bad is not None:
        raise TypeError(f"{name} must be a list of str, got an item of type {type(bad).__name__}")
    return list(values)


def _check_query(name: str, query: str) -> str:
    if not isinstance(query, str):
        raise TypeError(f"{name} must be a str, got {type(query).__name__}")
    return query


def _check_chunks(chunks: Sequence[str]) -> list[str]:
    chunks = _check_strs("chunks", chunks)
    if not chunks:
        raise ValueError("chunks must not be empty: there is nothing to retrieve from")
    return chunks


@runtime_checkable
class Retriever(Protocol):
    """Anything that ranks chunks for a query: BM25 here, a dense (embedding) retriever for a real model."""

    def index(self, chunks: Sequence[str]) -> None:
        """Take the chunks to rank from now on (replaces any earlier ones)."""

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """The top min(k, len(chunks)) (chunk index, score), best first, ties broken by the lower index."""


class BM25(Retriever):
    """Lucene's BM25 over `words` terms, scored by bm25s (sparse matrices; numpy only).

    k1 saturates term frequency, b normalises by chunk length (Robertson & Zaragoza 2009, Eq. 3.15);
    method is one of bm25s's variants (METHODS; Kamphuis et al. 2020). A query term that occurs in no chunk
    adds nothing, so a query with no known term scores every chunk 0 and `search` returns the first k chunks.
    """

    def __init__(self, k1: float = 1.5, b: float = 0.75, method: str = "lucene"):
        self.k1 = validate.number("k1", k1, low=0)
        self.b = validate.number("b", b, low=0, high=1)
        self.method = validate.one_of("method", method, METHODS)
        self._bm25: bm25s.BM25 | None = None
        self._n = 0

    def index(self, chunks: Sequence[str]) -> None:
        """Index the chunks (each through `words`); at least one chunk must hold a term."""
        terms = [words(c) for c in _check_chunks(chunks)]
        if not any(terms):
            raise ValueError("chunks must hold at least one term (letters or digits), got none in any chunk")
        self._bm25 = bm25s.BM25(k1=self.k1, b=self.b, method=self.method, dtype="float64")
        self._bm25.index(terms, show_progress=False)
        self._n = len(terms)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every chunk for query: (len(chunks),) float64; each distinct query term counts once."""
        if self._bm25 is None:
            raise RuntimeError("BM25.index(chunks) must be called before scores or search")
        known = [t for t in dict.fromkeys(words(_check_query("query", query))) if t in self._bm25.vocab_dict]
        if not known:  # bm25s cannot score an empty query; no term in common means score 0 everywhere
            return np.zeros(self._n)
        return np.asarray(self._bm25.get_scores(known), dtype=np.float64)

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """The top min(k, len(chunks)) (chunk index, score), best first; equal scores in index order."""
        _check_query("query", query)
        validate.integer("k", k, low=1)
        s = self.scores(query)  # (N,)
        top = np.argsort(-s, kind="stable")[:k]  # stable: ties keep the lower index first
        return [(int(i), float(s[i])) for i in top]


class Split(NamedTuple):
    """A prompt cut around its context: head + "".join(chunks) + tail == prompt; each chunk ends with its separator."""

    head: str
    chunks: list[str]
    tail: str


def _marks(sample: Sample) -> list[tuple[str, str]]:
    """The template's fixed text next to {context}: after the head's last placeholder, before the tail's first."""
    family = next((name for name in W.TEMPLATES if sample.task.startswith(name)), None)
    if family is None:
        raise ValueError(f"sample.task must start with one of {sorted(W.TEMPLATES)}, got {sample.task!r}")
    templates = [W.TEMPLATES[family]] + ([W.singular_niah_template()] if family == "niah" else [])
    return [(t[0].split("{context}")[0].rsplit("}", 1)[-1], t[0].split("{context}")[1].split("{", 1)[0])
            for t in templates]


def _check_retriever(retriever: Retriever) -> None:
    if isinstance(retriever, type) or not isinstance(retriever, Retriever):
        raise TypeError(f"retriever must have index(chunks) and search(query, k), got {type(retriever).__name__}")


def _search(retriever: Retriever, query: str, k: int, n: int) -> list[int]:
    """The chunk indices retriever.search(query, k) ranks, checked against the Retriever contract:
    min(k, n) distinct indices in [0, n), so that a faulty retriever is named instead of mis-scored."""
    hits = retriever.search(query, k)
    name = f"{type(retriever).__name__}.search"
    if isinstance(hits, (str, bytes)) or not isinstance(hits, Sequence):
        raise TypeError(f"{name} must return a list of (chunk index, score), got {type(hits).__name__}")
    try:
        ids = [i for i, _ in hits]
    except (TypeError, ValueError):
        raise TypeError(f"{name} must return a list of (chunk index, score) pairs, got {list(hits)[:3]!r}") from None
    if len(ids) != min(k, n) or len(set(ids)) != len(ids) or \
            not all(validate.is_int(i) and 0 <= i < n for i in ids):
        raise ValueError(f"{name} must return min(k, chunks) = {min(k, n)} distinct chunk indices in [0, {n}), "
                         f"got {ids[:10]!r}{' ...' if len(ids) > 10 else ''}")
    return ids


def _split(sample: Sample, unit: str) -> tuple[str, list[str], list[str], str]:
    """head, chunk texts, the separator after each ("" after the last), tail."""
    if not isinstance(sample, Sample):
        raise TypeError(f"sample must be a lclib.ruler.Sample, got {type(sample).__name__}")
    validate.one_of("unit", unit, _BOUNDARY)
    # Searched from the end: an in-context example (vt, cwe) repeats the whole template before the task's own.
    for head_mark, tail_mark in _marks(sample):
        end = sample.prompt.rfind(tail_mark)
        start = sample.prompt.rfind(head_mark, 0, max(end, 0))
        if end >= 0 and start >= 0:
            break
    else:
        raise ValueError(f"sample.prompt does not hold the template of task {sample.task!r} around its context")
    start += len(head_mark)
    context, texts, seps, pos = sample.prompt[start:end], [], [], 0
    for m in _BOUNDARY[unit].finditer(context):
        texts.append(context[pos:m.start()])
        seps.append(m.group())
        pos = m.end()
    texts.append(context[pos:])
    seps.append("")
    return sample.prompt[:start], texts, seps, sample.prompt[end:]


def split_context(sample: Sample, unit: str = "sentence") -> Split:
    """Cut sample's context into chunks: "sentence" (the lab's one-line haystacks) or "line" (RULER's layouts).

    Each chunk keeps the separator that follows it, so head + "".join(chunks) + tail reproduces the prompt.
    A needle ("One of ... is: 5833.", "VAR A = VAR B ") is one sentence and one line, so it lands whole in a chunk.
    """
    head, texts, seps, tail = _split(sample, unit)
    return Split(head, [t + s for t, s in zip(texts, seps)], tail)


def arrange(ranked: Sequence[int], order: str) -> list[int]:
    """Chunk indices ranked best first, put in the order the reader will see them (ORDERS).

    "document": as they stand in the document; "best_first"; "best_last" (the best right before the
    question); "ends": ranks 1, 3, 5, ... from the front and 2, 4, ... from the back, so the best two sit
    at the two ends. arrange(range(24), order).index(r) is the slot where rank r (0 = best) lands.
    """
    validate.one_of("order", order, ORDERS)
    # a Sequence, not any iterable: a one-shot iterator would be used up by the check and arranged as []
    if isinstance(ranked, (str, bytes)) or not isinstance(ranked, Sequence) or \
            not all(validate.is_int(i) for i in ranked):
        raise TypeError(f"ranked must be a sequence of int chunk indices, got {ranked!r}")
    ranked = list(ranked)
    if len(set(ranked)) != len(ranked):
        raise ValueError(f"ranked must not repeat a chunk index, got {ranked!r}")
    if order == "document":
        return sorted(ranked)
    if order == "best_first":
        return ranked
    if order == "best_last":
        return ranked[::-1]
    return ranked[0::2] + ranked[1::2][::-1]


class RagPrompt(NamedTuple):
    """A prompt with only the chosen chunks of its context; chosen in the order they stand in it; tokens its length."""

    prompt: str
    chosen: list[int]
    tokens: int


def rag_prompt(sample: Sample, retriever: Retriever, k: int, order: str = "document", unit: str = "sentence",
               tokenizer: object | None = None) -> RagPrompt:
    """sample's prompt with its context cut to the top-k chunks for the question, placed in order (ORDERS).

    The query is the text after the context (question and answer prefix); retriever is re-indexed on this
    sample's chunks. The chunks are joined by the context's most common separator (" " or "\\n"), so k =
    all chunks in "document" order gives back the prompt of a one-separator layout. tokens is the cost,
    counted by tokenizer (anything with count(text) -> int; default: the RULER-lite one).
    """
    validate.one_of("order", order, ORDERS)
    _check_retriever(retriever)
    validate.integer("k", k, low=1)
    if tokenizer is None:
        tokenizer = W.default_tokenizer()
    if isinstance(tokenizer, str) or not callable(getattr(tokenizer, "count", None)):
        raise TypeError(f"tokenizer must be None or have count(text) -> int, got {type(tokenizer).__name__}")
    head, texts, seps, tail = _split(sample, unit)
    retriever.index(texts)
    chosen = arrange(_search(retriever, tail, k, len(texts)), order)
    joiner = Counter(seps[:-1]).most_common(1)[0][0] if len(seps) > 1 else " "
    prompt = head + joiner.join(texts[i] for i in chosen) + tail
    return RagPrompt(prompt, chosen, tokenizer.count(prompt))


def answer_chunks(chunks: Sequence[str], answers: Sequence[str]) -> list[int]:
    """Indices of the chunks that hold an answer: every term of some answer among the chunk's terms.

    answers is a list of str (a bare str is refused: its characters would each pass for an answer)."""
    chunks, answers = _check_chunks(chunks), _check_strs("answers", answers)
    wanted = [set(words(a)) for a in answers if words(a)]
    return [i for i, c in enumerate(chunks) if any(w <= set(words(c)) for w in wanted)]


def recall_at_k(sample: Sample, retriever: Retriever, k: int, unit: str = "sentence") -> float:
    """Fraction of sample's answer-bearing chunks (`answer_chunks`) among the retriever's top k for its question.

    1.0 exactly when every one is retrieved. For a needle task that is the needle; for aggregation (cwe)
    every occurrence of a common word counts, which no small k can hold.
    """
    _check_retriever(retriever)
    validate.integer("k", k, low=1)
    head, texts, seps, tail = _split(sample, unit)
    relevant = answer_chunks(texts, sample.answers)
    if not relevant:
        raise ValueError(f"sample's answers {sample.answers!r} are in no chunk of its context")
    retriever.index(texts)
    top = set(_search(retriever, tail, k, len(texts)))
    return sum(i in top for i in relevant) / len(relevant)


def iterative_retrieve(retriever: Retriever, chunks: Sequence[str], first_query: str,
                       next_query: Callable[[str], str | None], max_hops: int) -> list[int]:
    """Multi-hop retrieval: each hop takes the best chunk not yet taken, next_query(chunk) forms the next query.

    Variable tracking: the value finds "VAR A = 12345", whose reader gives "A", which finds "VAR B = VAR A ".
    Stops after max_hops chunks, when next_query returns None, or when every chunk is taken. A query
    matching nothing still yields a chunk (BM25: the first untaken one, score 0), so next_query should
    return None for a chunk it cannot read. Returns the chunk indices in hop order.
    """
    validate.integer("max_hops", max_hops, low=1)
    _check_retriever(retriever)
    if not callable(next_query):
        raise TypeError(f"next_query must be callable(chunk) -> str | None, got {type(next_query).__name__}")
    chunks = _check_chunks(chunks)
    _check_query("first_query", first_query)
    retriever.index(chunks)
    taken: list[int] = []
    query: str | None = first_query
    while query is not None and len(taken) < min(max_hops, len(chunks)):  # at most max_hops rounds
        hit = next(i for i in _search(retriever, query, len(taken) + 1, len(chunks)) if i not in taken)
        taken.append(hit)
        query = next_query(chunks[hit])
        if query is not None and not isinstance(query, str):
            raise TypeError(f"next_query must return a str or None, got {type(query).__name__} for chunk {hit}")
    return taken
