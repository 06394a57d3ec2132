"""The RULER-lite sweep: samples of each task at each length, a model's outputs, RULER's scores (Hsieh et al. 2024).

``evaluate`` scores any `adapters.TextModel` (``count`` and ``generate``) on tasks at lengths, greedily or,
for a `adapters.LabModel`, teacher-forced; ``make_samples`` draws the prompts it scores (seeds fixed by
task, length and index, so that two models are read on the same prompts). The command line is
``python -m lclib ruler`` (lclib/cli/ruler.py).

Caps, checked before any sample is built or any forward pass runs: a LabModel reads at most
LAB_MAX_LENGTH tokens (prompt and answer), any other model at most `lclib.ruler.tasks.MAX_LENGTH`;
an evaluation draws at most MAX_SAMPLES samples per task and length.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .. import validate
from . import metrics
from .adapters import LAB_MAX_LENGTH, LabModel, TextModel
from .haystack import MAX_LENGTH, Sample, check_length
from .tasks import TASKS, TOKENS_TO_GENERATE, make_sample
from .words import default_tokenizer

MAX_SAMPLES = 10000  # samples per task and length in one evaluation
SCORES = ("string_match", "exact")
MODES = ("generate", "teacher_match", "teacher_exact")
BUDGETS = ("lab", "ruler")
THRESHOLD = 0.85  # RULER's threshold (85.6%: Llama-2-7B at 4K), rounded; fixed before any model is measured
SCORE_NAMES = {"teacher_exact": "exact", "teacher_match": "teacher-forced string_match", "generate": "string_match"}


def make_samples(count: Callable[[str], int] | None, task: str, seq_len: int, samples: int, seed: int,
                 depths: Sequence[float] | None = None, **params) -> list[Sample]:
    """samples prompts of a task at seq_len; seeds seed*100003 + seq_len*7 + i; depths cycled if given.

    At most MAX_SAMPLES samples, each at most `lclib.ruler.tasks.MAX_LENGTH` tokens."""
    validate.integer("samples", samples, low=1, high=MAX_SAMPLES)
    check_length("seq_len", seq_len)
    depths = _check_depths(depths)
    if count is not None and not callable(count):
        raise TypeError(f"count must be None or a function (text) -> tokens, got {type(count).__name__}")
    tokenizer = default_tokenizer() if count is None else _Counter(count)
    return [make_sample(task, seq_len, seed * 100003 + seq_len * 7 + i, tokenizer=tokenizer,
                        depth=None if not depths else depths[i % len(depths)], **params) for i in range(samples)]


def _check_depths(depths: Sequence[float] | None) -> list[float] | None:
    if depths is None:
        return None
    if isinstance(depths, str) or not isinstance(depths, Sequence) or not all(
            validate.is_number(d) and 0 <= d <= 1 for d in depths):
        raise ValueError(f"depths must be None or a list of numbers in [0, 1], got {depths!r}")
    return list(depths)


class _Counter:
    """A tokenizer that only counts: what the generators need from a model's tokenizer."""

    def __init__(self, count: Callable[[str], int]):
        self.count = count


def tokens_to_generate(task: str) -> int:
    """RULER's answer budget for a task (scripts/synthetic.yaml): 128 for every needle task, 30 for vt, ..."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)}, got {task!r}")
    family = "niah" if task.startswith("niah") else "qa" if task.startswith("qa") else task
    return TOKENS_TO_GENERATE[family]


def evaluate(model: Any, tasks: dict[str, dict] | Sequence[str], lengths: Sequence[int], samples: int = 20,
             seed: int = 0, mode: str = "generate", depths: Sequence[float] | None = None,
             budget: str | None = None) -> dict:
    """Score model on each task at each length (tokens).

    Returns {"scores": {task: {length: score}}, "average": {length: mean over tasks}, "records": [dict per
    sample: task, length, depth (of the first asked needle), distance (tokens from it to the end of the
    prompt), score]}. The score is RULER's (string_match_all, or _part for QA) on the model's output.

    mode "generate": greedy decoding, any TextModel. The teacher-forced modes (a LabModel) take one pass
    per batch, each answer token predicted from the true prefix: "teacher_exact" scores exact match (the whole
    completion, punctuation included, is the argmax, which is when greedy decoding prints it), stricter
    than RULER's string match, which gives partial credit when some of several values are found and
    ignores what surrounds them; "teacher_match" scores RULER's metric on the argmax text, so that a value
    counts when each of its tokens is the model's top choice in its place.

    budget "ruler" keeps RULER's accounting: the prompt is built to length - tokens_to_generate of the task
    (TOKENS_TO_GENERATE: 128 for the needles, 30 for vt, ...) and greedy decoding writes that many tokens, so
    prompt and answer fit in the length. "lab": the prompt itself has the length and decoding writes the
    longest reference answer plus 2 tokens (the lab's lengths are prompt lengths). Default: "lab" for a
    LabModel, "ruler" for any other model (a Hugging Face checkpoint read in RULER's configuration).
    """
    tasks, lengths, budget = _check_evaluate(model, tasks, lengths, samples, mode, depths, budget)
    scores: dict[str, dict[int, float]] = {}
    records: list[dict] = []
    for task, params in tasks.items():
        scores[task] = {}
        for seq_len in lengths:
            reserve = tokens_to_generate(task) if budget == "ruler" else 0
            batch = make_samples(model.count, task, seq_len - reserve, samples, seed, depths, **params)
            per = _score_batch(model, task, batch, mode, reserve)
            scores[task][seq_len] = sum(per) / len(per)
            for s, v in zip(batch, per):
                offsets = s.metadata.get("needle_offsets") or [None]
                records.append({"task": task, "length": seq_len, "depth": s.metadata.get("depth"),
                                "distance": None if offsets[0] is None else s.length - offsets[0], "score": v})
    return {"scores": scores, "average": metrics.task_average(scores), "records": records, "score": SCORE_NAMES[mode]}


def _check_evaluate(model: Any, tasks: dict[str, dict] | Sequence[str], lengths: Sequence[int], samples: int,
                    mode: str, depths: Sequence[float] | None, budget: str | None) -> tuple[dict, list[int], str]:
    """evaluate's arguments checked: the tasks as a dict, the lengths as a list, the budget resolved."""
    validate.one_of("mode", mode, MODES)
    if mode != "generate" and not isinstance(model, LabModel):
        raise TypeError(f"mode {mode!r} needs a LabModel (teacher forcing), got {type(model).__name__}")
    if not isinstance(model, TextModel):
        raise TypeError(f"model must have count(text) and generate(prompts, max_new_tokens), got {type(model).__name__}")
    if isinstance(tasks, str):
        raise TypeError(f"tasks must be a dict or a list of task names, not a str (did you mean [{tasks!r}]?)")
    tasks = {t: {} for t in tasks} if not isinstance(tasks, dict) else tasks
    unknown = [t for t in tasks if t not in TASKS]
    if not tasks or unknown:
        raise ValueError(f"tasks must name at least one task of {sorted(TASKS)}, got {unknown or 'none'}")
    validate.integer("samples", samples, low=1, high=MAX_SAMPLES)
    lengths = _check_lengths(lengths, LAB_MAX_LENGTH if isinstance(model, LabModel) else MAX_LENGTH)
    _check_depths(depths)
    budget = validate.one_of("budget", budget if budget is not None else ("lab" if isinstance(model, LabModel) else "ruler"),
                             BUDGETS)
    if budget == "ruler":
        for task in tasks:
            short = [seq_len for seq_len in lengths if seq_len - tokens_to_generate(task) < 32]
            if short:
                raise ValueError(f"lengths {short} leave no prompt after RULER's {tokens_to_generate(task)}-token answer "
                                 f"budget for {task} (budget='ruler'): use lengths >= {tokens_to_generate(task) + 32}")
    return tasks, lengths, budget


def _score_batch(model: Any, task: str, batch: list[Sample], mode: str, reserve: int) -> list[float]:
    """The score of each sample of batch: RULER's metric on the model's output, or exact match (teacher_exact)."""
    if mode != "generate":
        tf = model.teacher_forced([s.prompt for s in batch], [s.completion for s in batch])
        _check_outputs(model, "teacher_forced", tf.text, len(batch))
        _check_outputs(model, "teacher_forced", tf.exact, len(batch))
        if mode == "teacher_exact":
            return [float(x) for x in tf.exact]
        return [metrics.score(task, [p], [s.answers]) for p, s in zip(tf.text, batch)]
    new_tokens = reserve or max(model.count(s.completion) for s in batch) + 2
    preds = _check_outputs(model, "generate", model.generate([s.prompt for s in batch], new_tokens), len(batch))
    return [metrics.score(task, [p], [s.answers]) for p, s in zip(preds, batch)]


def _check_outputs(model: Any, method: str, outputs: Any, n: int) -> list:
    """outputs as a list, when it holds exactly one result per prompt: a model that returns fewer (or more)
    would otherwise be scored over the ones it returned, a score over other samples than asked."""
    if isinstance(outputs, (str, bytes)) or not isinstance(outputs, Sequence):
        raise TypeError(f"{type(model).__name__}.{method} must return a list with one result per prompt, "
                        f"got {type(outputs).__name__}")
    if len(outputs) != n:
        raise ValueError(f"{type(model).__name__}.{method} returned {len(outputs)} results for {n} prompts: "
                         "it must return exactly one per prompt")
    if method == "generate" and not all(isinstance(o, str) for o in outputs):
        bad = next(o for o in outputs if not isinstance(o, str))
        raise TypeError(f"{type(model).__name__}.generate must return one str per prompt, got a {type(bad).__name__}")
    return list(outputs)


def _check_lengths(lengths: Sequence[int], cap: int) -> list[int]:
    if isinstance(lengths, (str, bytes)) or not isinstance(lengths, Sequence):
        raise ValueError(f"lengths must be a non-empty list of ints in [32, {cap}] (tokens), got {lengths!r}")
    lengths = list(lengths)
    if not lengths or any(not validate.is_int(seq_len) or not 32 <= seq_len <= cap for seq_len in lengths):
        raise ValueError(f"lengths must be a non-empty list of ints in [32, {cap}] (tokens), got {lengths}")
    return lengths
