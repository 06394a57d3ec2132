"""RULER's scores and its effective-length rule (Hsieh et al. 2024, RULER, Section 4 and Table 3).

Per sample, RULER checks whether each reference string occurs in the model's output
(case-insensitive substring test, after stripping the output):
- ``string_match_all``: the fraction of the references found (multi-value, multi-query,
  variable tracking, aggregation: every answer counts);
- ``string_match_part``: 1 if any reference is found (QA, where any of several phrasings is right).
A task's score is the mean over samples; RULER prints it times 100, we keep 0..1.

Effective length: RULER takes a threshold, the score of a reference model at its own native
length (Llama-2-7B at 4K: 85.6%), and calls a model's effective length the largest tested length
at which its task-average score still reaches the threshold. We read "still" as "at this length and
at every shorter one" (``contiguous=True``), which is how RULER's Table 3 reads: no model there
recovers after falling below the threshold.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from .. import validate

METRIC = {"qa": "part"}  # every other RULER task is scored with string_match_all


def _refs(references: Sequence[str] | str) -> list[str]:
    if not isinstance(references, (str, Iterable)):
        raise TypeError(f"references must be a str or a list of str, got {type(references).__name__}")
    refs = [references] if isinstance(references, str) else list(references)
    if not refs:
        raise ValueError("references must hold at least one string, got none")
    if not all(isinstance(r, str) for r in refs):
        raise TypeError(f"references must be strings, got {[type(r).__name__ for r in refs]}")
    return refs


def _pred(prediction: str) -> str:
    if not isinstance(prediction, str):
        raise TypeError(f"prediction must be a str (the model's output), got {type(prediction).__name__}")
    return prediction.strip().lower()


def string_match_all(prediction: str, references: Sequence[str] | str) -> float:
    """Fraction of references that occur in prediction (case-insensitive): RULER's string_match_all."""
    pred = _pred(prediction)
    refs = _refs(references)
    return sum(r.lower() in pred for r in refs) / len(refs)


def string_match_part(prediction: str, references: Sequence[str] | str) -> float:
    """1.0 if any reference occurs in prediction (case-insensitive), else 0.0: RULER's string_match_part."""
    pred = _pred(prediction)
    return float(any(r.lower() in pred for r in _refs(references)))


def score(task: str, predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Mean score of a task over samples, with the metric RULER uses for it (0..1)."""
    if not isinstance(task, str):
        raise TypeError(f"task must be a task name, got {type(task).__name__}")
    if isinstance(predictions, str):
        raise TypeError("predictions must be a list of str, one per sample, not a str")
    if len(predictions) != len(references) or not predictions:
        raise ValueError(f"need as many predictions as references (and at least one), got {len(predictions)} "
                         f"and {len(references)}")
    fn = string_match_part if METRIC.get(task.split("_")[0]) == "part" else string_match_all
    return sum(fn(p, r) for p, r in zip(predictions, references)) / len(predictions)


def task_average(table: Mapping[str, Mapping[int, float]]) -> dict[int, float]:
    """{task: {length: score}} -> {length: mean over tasks}; every task must cover the same lengths."""
    if not isinstance(table, Mapping) or not all(isinstance(row, Mapping) for row in table.values()):
        raise TypeError(f"table must be a dict {{task: {{length: score}}}}, got {type(table).__name__}")
    if not table:
        raise ValueError("table is empty: expected {task: {length: score}}")
    lengths = {tuple(sorted(row)) for row in table.values()}
    if len(lengths) != 1:
        raise ValueError(f"table: every task must be scored at the same lengths, got {sorted(lengths)}")
    return {seq_len: sum(row[seq_len] for row in table.values()) / len(table)
            for seq_len in sorted(next(iter(table.values())))}


def effective_length(scores: Mapping[int, float], threshold: float, contiguous: bool = True) -> int:
    """The largest tested length whose score reaches threshold (0 when even the shortest does not).

    scores: {length: task-average score}. With contiguous=True every shorter length must reach it too;
    with False a length counts on its own (a model that fails at 2L and passes at 4L gets 4L).
    """
    if not isinstance(scores, Mapping):
        raise TypeError(f"scores must be a dict {{length: score}}, got {type(scores).__name__}")
    if not scores:
        raise ValueError("scores is empty: expected {length: score}")
    validate.number("threshold", threshold)  # a finite number every length's score is compared with
    best = 0
    for seq_len in sorted(scores):
        if scores[seq_len] >= threshold:
            best = seq_len
        elif contiguous:
            break
    return best
