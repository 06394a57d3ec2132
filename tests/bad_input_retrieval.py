"""Bad input for lclib.retrieval, and the data contracts and length caps of lclib.ruler and lclib.probes (issue 29).

Loaded by tests/test_bad_input.py, which runs each call under its 10 s alarm: a loop without a cap fails there.
"""

from __future__ import annotations

import functools

import torch

from lclib import kv_task, model, probes, retrieval
from lclib.ruler import adapters, aggregation, drill, evaluate, haystack, mixture, needles, variable_tracking
from lclib.ruler import tasks as rtasks
from lclib.ruler.words import default_tokenizer

EXEMPT = {
    "retrieval.Retriever": "a Protocol (index and search): nothing to call; a retriever that breaks it is named by "
                           "rag_prompt, recall_at_k and iterative_retrieve (cases below)",
    "retrieval.Split": "a NamedTuple of results, built by split_context",
    "retrieval.RagPrompt": "a NamedTuple of results, built by rag_prompt",
}

CHUNKS = ["The cat sat on the mat.", "One of the special magic numbers for pink-sugar is: 5833.", "Noise."]


@functools.cache
def sample() -> rtasks.Sample:
    """A sample in the lab's layout (notebook 07's corpus), 512 tokens."""
    return rtasks.make_sample("niah_single_1", 512, 0, **mixture.LAB_TASKS["niah_single_1"])


def indexed() -> retrieval.BM25:
    r = retrieval.BM25()
    r.index(CHUNKS)
    return r


@functools.cache
def lab() -> adapters.LabModel:
    torch.manual_seed(0)
    return adapters.LabModel(model.GPT(model.GPTConfig(vocab_size=len(default_tokenizer()), n_layer=1, n_head=2,
                                                       d_model=8)))


class Faulty:
    """A retriever whose search returns one hit whatever k, or the same chunk k times."""

    def __init__(self, repeat: bool = False):
        self.repeat = repeat

    def index(self, chunks):
        self.n = len(chunks)

    def search(self, query, k):
        return [(0, 1.0)] * k if self.repeat else [(0, 1.0)]


class OneOutput:
    """A TextModel that answers four prompts with one output."""

    def count(self, text):
        return default_tokenizer().count(text)

    def generate(self, prompts, max_new_tokens):
        return [" 5833."]


class TextOutput(OneOutput):
    def generate(self, prompts, max_new_tokens):
        return " 5833."


class FakeHF:
    device = "cpu"

    def generate(self, **kwargs):
        raise AssertionError("never reached: the prompts are refused first")


def register(case) -> None:
    # --- lclib.retrieval ---------------------------------------------------------------------------------------
    case("retrieval.words", "text-bytes", TypeError, "text", lambda: retrieval.words(b"cafe"))
    case("retrieval.words", "text-list", TypeError, "text", lambda: retrieval.words(["cafe"]))
    case("retrieval.BM25", "k1-negative", ValueError, "k1", lambda: retrieval.BM25(k1=-1))
    case("retrieval.BM25", "k1-nan", ValueError, "k1", lambda: retrieval.BM25(k1=float("nan")))
    case("retrieval.BM25", "b-above-1", ValueError, r"\bb\b", lambda: retrieval.BM25(b=2))
    case("retrieval.BM25", "method-unknown", ValueError, "method", lambda: retrieval.BM25(method="okapi"))
    case("retrieval.BM25", "index-str", TypeError, "chunks", lambda: retrieval.BM25().index("one text"))
    case("retrieval.BM25", "index-empty", ValueError, "chunks", lambda: retrieval.BM25().index([]))
    case("retrieval.BM25", "index-no-terms", ValueError, "chunks", lambda: retrieval.BM25().index([" ,. ", ""]))
    case("retrieval.BM25", "index-item-int", TypeError, "chunks", lambda: retrieval.BM25().index(["a", 3]))
    case("retrieval.BM25", "search-k-zero", ValueError, r"\bk\b", lambda: indexed().search("cat", 0))
    case("retrieval.BM25", "search-k-float", TypeError, r"\bk\b", lambda: indexed().search("cat", 1.5))
    case("retrieval.BM25", "search-query-none", TypeError, "query", lambda: indexed().search(None, 1))
    case("retrieval.BM25", "scores-query-list", TypeError, "query", lambda: indexed().scores(["cat"]))
    case("retrieval.split_context", "sample-str", TypeError, "sample", lambda: retrieval.split_context("a prompt"))
    case("retrieval.split_context", "unit-unknown", ValueError, "unit",
         lambda: retrieval.split_context(sample(), "paragraph"))
    case("retrieval.arrange", "order-unknown", ValueError, "order", lambda: retrieval.arrange([0, 1], "middle"))
    case("retrieval.arrange", "ranked-str", TypeError, "ranked", lambda: retrieval.arrange("012", "document"))
    case("retrieval.arrange", "ranked-repeats", ValueError, "ranked", lambda: retrieval.arrange([1, 1], "document"))
    # before: the check used the iterator up, and the arrangement came back empty
    case("retrieval.arrange", "ranked-iterator", TypeError, "ranked",
         lambda: retrieval.arrange(iter([2, 0, 1]), "document"))
    case("retrieval.rag_prompt", "k-zero", ValueError, r"\bk\b", lambda: retrieval.rag_prompt(sample(), retrieval.BM25(), 0))
    case("retrieval.rag_prompt", "retriever-class", TypeError, "retriever",
         lambda: retrieval.rag_prompt(sample(), retrieval.BM25, 3))
    case("retrieval.rag_prompt", "order-unknown", ValueError, "order",
         lambda: retrieval.rag_prompt(sample(), retrieval.BM25(), 3, order="middle"))
    case("retrieval.rag_prompt", "tokenizer-str", TypeError, "tokenizer",
         lambda: retrieval.rag_prompt(sample(), retrieval.BM25(), 3, tokenizer="words"))
    case("retrieval.rag_prompt", "search-repeats-a-chunk", ValueError, "Faulty.search",
         lambda: retrieval.rag_prompt(sample(), Faulty(repeat=True), 3))
    # before: recall over the one chunk the retriever returned for k = 3
    case("retrieval.recall_at_k", "search-returns-fewer", ValueError, "Faulty.search",
         lambda: retrieval.recall_at_k(sample(), Faulty(), 3))
    case("retrieval.recall_at_k", "k-bool", TypeError, r"\bk\b", lambda: retrieval.recall_at_k(sample(), retrieval.BM25(), True))
    case("retrieval.recall_at_k", "sample-none", TypeError, "sample", lambda: retrieval.recall_at_k(None, retrieval.BM25(), 3))
    # before: "5833" was read as the answers "5", "8", "3", "3"
    case("retrieval.answer_chunks", "answers-str", TypeError, "answers", lambda: retrieval.answer_chunks(CHUNKS, "5833"))
    case("retrieval.answer_chunks", "answers-int-item", TypeError, "answers", lambda: retrieval.answer_chunks(CHUNKS, [5833]))
    case("retrieval.answer_chunks", "chunks-str", TypeError, "chunks", lambda: retrieval.answer_chunks("5833", ["5833"]))
    case("retrieval.iterative_retrieve", "max_hops-zero", ValueError, "max_hops",
         lambda: retrieval.iterative_retrieve(retrieval.BM25(), CHUNKS, "cat", lambda c: None, 0))
    case("retrieval.iterative_retrieve", "next_query-not-callable", TypeError, "next_query",
         lambda: retrieval.iterative_retrieve(retrieval.BM25(), CHUNKS, "cat", "cat", 2))
    case("retrieval.iterative_retrieve", "next_query-returns-int", TypeError, "next_query",
         lambda: retrieval.iterative_retrieve(retrieval.BM25(), CHUNKS, "cat", lambda c: 7, 3))
    case("retrieval.iterative_retrieve", "first_query-none", TypeError, "first_query",
         lambda: retrieval.iterative_retrieve(retrieval.BM25(), CHUNKS, None, lambda c: None, 2))
    case("retrieval.iterative_retrieve", "chunks-str", TypeError, "chunks",
         lambda: retrieval.iterative_retrieve(retrieval.BM25(), "one text", "cat", lambda c: None, 2))
    case("retrieval.iterative_retrieve", "search-repeats-a-chunk", ValueError, "Faulty.search",
         lambda: retrieval.iterative_retrieve(Faulty(repeat=True), CHUNKS, "cat", lambda c: "cat", 3))

    # --- lclib.ruler: data contracts ---------------------------------------------------------------------------
    row = [5, 6, 7, 8]
    # before: 0/1 int flags indexed tokens 0 and 1 instead of masking
    case("ruler.mixture.pack_rows", "flags-int-2", ValueError, r"rows\[0\] answer flags",
         lambda: mixture.pack_rows([(row, [0, 0, 2, 1])], 0))
    case("ruler.mixture.pack_rows", "flags-float", ValueError, r"rows\[0\] answer flags",
         lambda: mixture.pack_rows([(row, [0.0, 0.0, 1.0, 1.0])], 0))
    case("ruler.mixture.pack_rows", "flags-str", TypeError, r"rows\[0\] answer flags",
         lambda: mixture.pack_rows([(row, "0011")], 0))
    case("ruler.mixture.pack_rows", "flags-short", ValueError, r"rows\[0\]", lambda: mixture.pack_rows([(row, [True])], 0))
    case("ruler.mixture.pack_rows", "tokens-float", ValueError, r"rows\[0\] token ids",
         lambda: mixture.pack_rows([([5.0, 6.0], [False, True])], 0))
    case("ruler.mixture.pack_rows", "rows-str", ValueError, "rows", lambda: mixture.pack_rows("rows", 0))
    case("ruler.mixture.pack_rows", "pad_id-negative", ValueError, "pad_id",
         lambda: mixture.pack_rows([(row, [False] * 4)], -1))
    case("ruler.mixture.pack_rows", "answer_weight-nan", ValueError, "answer_weight",
         lambda: mixture.pack_rows([(row, [False] * 4)], 0, "all", float("nan")))
    # before: a score over the one sample the model answered
    case("ruler.evaluate.evaluate", "generate-one-output-for-four", ValueError, r"OneOutput\.generate returned 1 results for 4",
         lambda: evaluate.evaluate(OneOutput(), ["niah_single_1"], [256], samples=4, budget="lab"))
    case("ruler.evaluate.evaluate", "generate-returns-str", TypeError, r"TextOutput\.generate",
         lambda: evaluate.evaluate(TextOutput(), ["niah_single_1"], [256], samples=4, budget="lab"))
    case("ruler.evaluate.evaluate", "depths-str", ValueError, "depths",
         lambda: evaluate.evaluate(lab(), ["niah_single_1"], [256], samples=1, depths="0.5"))
    case("ruler.evaluate.evaluate", "lengths-str", ValueError, "lengths",
         lambda: evaluate.evaluate(lab(), ["niah_single_1"], "256", samples=1))
    case("ruler.adapters.LabModel", "teacher_forced-prompts-str", TypeError, "prompts",
         lambda: lab().teacher_forced("ab", "cd"))
    case("ruler.adapters.LabModel", "teacher_forced-completions-str", TypeError, "completions",
         lambda: lab().teacher_forced(["a", "b"], "cd"))
    case("ruler.adapters.LabModel", "token_nll-texts-str", TypeError, "texts", lambda: lab().token_nll("abc"))
    case("ruler.adapters.LabModel", "generate-prompt-int", TypeError, "prompts", lambda: lab().generate(["a", 3], 2))
    case("ruler.adapters.LabModel", "logits-wrong-shape", ValueError, "logits",
         lambda: adapters.LabModel(lambda ids: torch.zeros(ids.shape[0], 8)).token_nll(["a b"]))
    case("ruler.adapters.HFModel", "generate-prompts-str", TypeError, "prompts",
         lambda: adapters.HFModel(FakeHF(), lambda text, **kw: None).generate("a prompt", 4))
    case("ruler.evaluate.make_samples", "depths-str", ValueError, "depths",
         lambda: evaluate.make_samples(None, "niah_single_1", 256, 2, 0, depths="05"))

    # --- caps: every loop bounded, every entry point checks before working ----------------------------------------
    # before: a sample of 10^9 tokens built at construction
    case("ruler.mixture.RulerMixture", "max_len-huge", ValueError, "max_len", lambda: mixture.RulerMixture(144, 10**9))
    case("ruler.mixture.RulerMixture", "batch-huge", ValueError, "batch",
         lambda: mixture.RulerMixture(144, 160).sample(10**9, torch.Generator()))
    case("ruler.mixture.RulerMixture", "tasks-list", TypeError, "tasks", lambda: mixture.RulerMixture(144, 160, ["vt"]))
    case("ruler.evaluate.evaluate", "lengths-past-lab-cap", ValueError, "lengths",
         lambda: evaluate.evaluate(lab(), ["niah_single_1"], [adapters.LAB_MAX_LENGTH + 1], samples=1))
    case("ruler.evaluate.evaluate", "lengths-past-generator-cap", ValueError, "lengths",
         lambda: evaluate.evaluate(OneOutput(), ["niah_single_1"], [10**9], samples=1))
    case("ruler.evaluate.evaluate", "samples-huge", ValueError, "samples",
         lambda: evaluate.evaluate(lab(), ["niah_single_1"], [256], samples=10**9))
    case("ruler.adapters.LabModel", "max_new_tokens-huge", ValueError, "max_new_tokens",
         lambda: lab().generate(["a"], 10**9))
    case("ruler.adapters.LabModel", "prompt-past-cap", ValueError, "LAB_MAX_LENGTH",
         lambda: lab().token_nll(["word " * (adapters.LAB_MAX_LENGTH + 1)]))
    case("ruler.evaluate.make_samples", "seq_len-huge", ValueError, "seq_len",
         lambda: evaluate.make_samples(None, "niah_single_1", 10**9, 1, 0))
    case("ruler.evaluate.make_samples", "samples-huge", ValueError, "samples",
         lambda: evaluate.make_samples(None, "niah_single_1", 256, 10**9, 0))
    case("ruler.haystack.check_length", "seq_len-huge", ValueError, "max_len", lambda: haystack.check_length("max_len", 10**9))
    case("ruler.haystack.check_length", "seq_len-float", TypeError, "seq_len", lambda: haystack.check_length("seq_len", 256.0))
    case("ruler.mixture.check_batch", "batch-huge", ValueError, "batch", lambda: mixture.check_batch(10**9))
    case("ruler.mixture.check_batch", "batch-bool", TypeError, "batch", lambda: mixture.check_batch(True))
    case("ruler.tasks.make_sample", "seq_len-huge", ValueError, "seq_len", lambda: rtasks.make_sample("qa", 10**9, 0))
    case("ruler.needles.niah", "num_keys-huge", ValueError, "num_keys",
         lambda: needles.niah(default_tokenizer(), 4096, 0, num_keys=10**6))
    case("ruler.needles.niah", "value_len-huge", ValueError, "value_len",
         lambda: needles.niah(default_tokenizer(), 4096, 0, value_len=10**7))
    case("ruler.variable_tracking.variable_tracking", "num_chains-huge", ValueError, "num_chains",
         lambda: variable_tracking.variable_tracking(default_tokenizer(), 4096, 0, num_chains=10**6))
    case("ruler.variable_tracking.variable_tracking", "name_len-huge", ValueError, "name_len",
         lambda: variable_tracking.variable_tracking(default_tokenizer(), 4096, 0, name_len=10**7))
    case("ruler.aggregation.frequent_words", "word_len-huge", ValueError, "word_len",
         lambda: aggregation.frequent_words(default_tokenizer(), 131072, 0, word_len=10**5))
    case("ruler.aggregation.common_words", "seq_len-huge", ValueError, "seq_len",
         lambda: aggregation.common_words(default_tokenizer(), 10**9, 0))
    case("ruler.drill.RecallDrill", "max_len-huge", ValueError, "max_len", lambda: drill.RecallDrill(32, 10**9, "compact"))
    case("ruler.drill.RecallDrill", "row-seq_len-huge", ValueError, "seq_len",
         lambda: drill.RecallDrill(32, 64, "compact_noise").row(0, 10**9))
    case("ruler.drill.RecallDrill", "batch-huge", ValueError, "batch",
         lambda: drill.RecallDrill(32, 64, "compact").sample(10**9, torch.Generator()))
    case("probes.position_sweep", "probe-tokens-past-cap", ValueError, "MAX_SWEEP_TOKENS",
         lambda: probes.position_sweep(model.GPT(model.GPTConfig(vocab_size=kv_task.KVTask().vocab_size, n_layer=1,
                                                                   n_head=2, d_model=8)), kv_task.KVTask(n_pairs=4),
                                       10**6, samples=256))
    case("probes.position_sweep", "seed-str", TypeError, "seed",
         lambda: probes.position_sweep(model.GPT(model.GPTConfig(vocab_size=kv_task.KVTask().vocab_size, n_layer=1,
                                                                   n_head=2, d_model=8)), kv_task.KVTask(n_pairs=4),
                                       4, samples=1, seed="0"))
