"""Question answering over many documents, in RULER's format (Hsieh et al. 2024; NVIDIA/RULER qa.py).

RULER's qa_1/qa_2 draw paragraphs from SQuAD and HotpotQA, which cannot be shipped; ours are synthetic
fact documents about invented countries ("The capital of Vorgun is Rasras."), one of which answers the
question. Documents are "Document i:" and a paragraph, blank lines between, as in RULER.
"""

from __future__ import annotations

import itertools
import random

from .. import validate
from . import words as W
from .haystack import Sample, assemble, check_args, essay_sentences, frame, prefix_fitting


def multidoc_qa(tokenizer: object, seq_len: int, seed: int, depth: float | None = None, facts_per_doc: int = 2,
                task: str = "qa") -> Sample:
    """Synthetic multi-document QA in RULER's format: "Document i:" and a paragraph, blank lines between.

    One document answers the question; the others are about other countries (RULER: SQuAD or
    HotpotQA paragraphs, which cannot be shipped). Documents are short paragraphs of facts ("The
    capital of Vorgun is Rasras."); a last document of generated prose fills the final tokens.
    depth places the answering document (RULER shuffles the documents at random).
    """
    check_args(tokenizer, seq_len, depth, seed)
    validate.integer("facts_per_doc", facts_per_doc, low=1, high=len(W.RELATIONS))
    rng = random.Random(seed)
    entities = list(W.ENTITIES)
    rng.shuffle(entities)
    gold_text, gold_facts = _document(rng, entities[0], facts_per_doc)
    relation, answer = gold_facts[0]
    head, tail = frame(W.TEMPLATES["qa"], dict(query=W.QA_QUESTION.format(relation=relation, entity=entities[0])))
    budget = seq_len - tokenizer.count(head) - tokenizer.count(tail)
    docs, used = _documents(tokenizer, rng, entities, facts_per_doc, gold_text, budget, task, seq_len)
    slot = round((rng.random() if depth is None else depth) * (len(docs) - 1))
    docs = docs[1:slot + 1] + docs[:1] + docs[slot + 1:]
    left = budget - used - tokenizer.count("\n\n") - _header(tokenizer, len(docs) + 1)
    if left > 0:  # the last tokens: a document of generated prose
        essay = itertools.islice(essay_sentences(random.Random(seed + 7919)), left)
        prose = prefix_fitting(tokenizer, " ".join(essay).split(), left)
        if prose:
            docs.append(prose)
    rendered = [f"Document {i + 1}:\n{d}" for i, d in enumerate(docs)]
    offset = tokenizer.count(head + "\n\n".join(rendered[:slot]) + ("\n\n" if slot else "") + f"Document {slot + 1}:\n")
    sample = assemble(tokenizer, task, head, "\n\n".join(rendered), tail, [offset], [answer], seq_len,
                      dict(depth=depth, entity=entities[0], relation=relation))
    sample.metadata["num_docs"] = len(docs)
    return sample


def _document(rng: random.Random, entity: str, facts_per_doc: int) -> tuple[str, list[tuple[str, str]]]:
    """A paragraph of facts_per_doc facts about entity, and the (relation, value) pairs it states."""
    facts = [(r, rng.choice(W.RELATIONS[r])) for r in rng.sample(list(W.RELATIONS), facts_per_doc)]
    return " ".join(W.QA_FACT.format(relation=r, entity=entity, value=v) for r, v in facts), facts


def _header(tokenizer: object, i: int) -> int:
    return tokenizer.count(f"Document {i}:\n")


def _documents(tokenizer: object, rng: random.Random, entities: list[str], facts_per_doc: int, gold_text: str,
               budget: int, task: str, seq_len: int) -> tuple[list[str], int]:
    """The answering document first, then documents about the other entities while they fit in budget tokens
    (headers and blank lines counted); and the tokens they take."""
    docs, sep = [gold_text], tokenizer.count("\n\n")
    used = _header(tokenizer, 1) + tokenizer.count(gold_text)
    if used > budget:
        raise ValueError(f"seq_len {seq_len} is too short for task {task!r}: template and answering document take "
                         f"{seq_len - budget + used} tokens")
    for entity in entities[1:]:
        text = _document(rng, entity, facts_per_doc)[0]
        cost = sep + _header(tokenizer, len(docs) + 1) + tokenizer.count(text)
        if used + cost > budget:
            break
        docs.append(text)
        used += cost
    return docs, used
