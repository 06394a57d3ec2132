"""Run RULER-lite on any causal language model: a two-method interface, adapters, and the sweep.

A model is measured through ``TextModel``, two methods and nothing else:
- ``count(text) -> int``: its tokenizer's length of text (RULER's lengths are per tokenizer);
- ``generate(prompts, max_new_tokens) -> list[str]``: greedy continuations of the prompts.
``LabModel`` adapts anything that maps token ids (B, T) to logits (B, T, vocab), the lab's `GPT` or
your own, with a tokenizer (`lclib.ruler.tokenizer.WordTokenizer` by default); ``HFModel`` adapts a
Hugging Face transformers model and tokenizer (optional: ``pip install transformers``), so that a
student with a GPU can measure a real checkpoint with the same generators and scores.

``LabModel`` also has ``teacher_forced``: one forward pass per sample, each answer token predicted
from the correct previous ones. It prints the same text as greedy decoding whenever the answer is
right, and costs one pass instead of one per new token, which is what makes CPU sweeps affordable.

Caps, checked before any sample is built or any forward pass runs: a LabModel reads at most
LAB_MAX_LENGTH tokens (prompt and answer), any other model at most `lclib.ruler.tasks.MAX_LENGTH`;
an evaluation draws at most MAX_SAMPLES samples per task and length.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

import torch
from torch import Tensor

from . import metrics as ruler_metrics, tasks as ruler
from .. import cli
from ..scaling import METHODS
from .words import default_tokenizer

LAB_MAX_LENGTH = 65536  # the lab model reads every length anew without a cache: longer requests are refused
MAX_SAMPLES = 10000  # samples per task and length in one evaluation


def _texts(name: str, values: Sequence[str]) -> list[str]:
    """values as a list of str; a bare str is refused (its characters would pass for one-letter prompts)."""
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a list of str, got {type(values).__name__}"
                        + (" (wrap one text in a list)" if isinstance(values, str) else ""))
    bad = next((v for v in values if not isinstance(v, str)), None)
    if bad is not None:
        raise TypeError(f"{name} must be a list of str, got an item of type {type(bad).__name__}")
    return list(values)


@runtime_checkable
class TextModel(Protocol):
    """What the RULER-lite sweep needs from a model."""

    def count(self, text: str) -> int: ...

    def generate(self, prompts: Sequence[str], max_new_tokens: int) -> list[str]: ...


class LabModel:
    """Adapter for a causal LM given as ``model(tokens (B, T) long) -> logits (B, T, vocab)``.

    The prompt is fed as BOS + tokens, as the RULER-lite training mixture does; decoding stops at EOS.
    rope_len says what a length-dependent RoPE scaling (dynamic NTK) counts as the sequence length:
    "sequence", every token fed so far (prompt plus the answer tokens, as when each step re-reads the
    whole sequence), or "prompt", the prompt alone (frequencies fixed once the prompt is read). Only
    the lab's `GPT` takes it; other models always see "sequence".
    """

    def __init__(self, model: Callable[[Tensor], Tensor], tokenizer: Any = None, device: torch.device | str | None = None,
                 batch_size: int = 16, rope_len: str = "sequence"):
        if not callable(model):
            raise TypeError(f"model must map token ids (B, T) to logits, got {type(model).__name__}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if rope_len not in ("sequence", "prompt"):
            raise ValueError(f"rope_len must be 'sequence' or 'prompt', got {rope_len!r}")
        if tokenizer is not None and (isinstance(tokenizer, str) or not all(
                callable(getattr(tokenizer, m, None)) for m in ("count", "encode", "decode"))):
            raise TypeError(f"tokenizer must have count, encode and decode (a WordTokenizer), got {type(tokenizer).__name__}")
        self.model, self.tok = model, tokenizer if tokenizer is not None else default_tokenizer()
        params = list(model.parameters()) if isinstance(model, torch.nn.Module) else []
        self.device = torch.device(device) if device is not None else (params[0].device if params else torch.device("cpu"))
        self.batch_size, self.rope_len = batch_size, rope_len

    def _logits(self, ids: Tensor, prompt_len: int) -> Tensor:
        """model(ids), with the RoPE length fixed at the prompt when rope_len == "prompt". ids (B, T) -> (B, T, vocab)."""
        if ids.shape[1] > LAB_MAX_LENGTH:
            raise ValueError(f"a LabModel reads at most LAB_MAX_LENGTH = {LAB_MAX_LENGTH} tokens, asked for {ids.shape[1]}")
        logits = self.model(ids, rope_len=prompt_len) if self.rope_len == "prompt" else self.model(ids)
        if not isinstance(logits, Tensor) or logits.dim() != 3 or tuple(logits.shape[:2]) != tuple(ids.shape):
            shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
            raise ValueError(f"model must map token ids {tuple(ids.shape)} to logits (B, T, vocab), got {shape}")
        return logits

    def _check_room(self, prompts: list[str], extra: int) -> None:
        """Refuse, before any forward pass, a prompt whose BOS + tokens + extra exceed LAB_MAX_LENGTH."""
        longest = max((self.tok.count(p) for p in prompts), default=0)
        if 1 + longest + extra > LAB_MAX_LENGTH:
            raise ValueError(f"prompts must fit in LAB_MAX_LENGTH = {LAB_MAX_LENGTH} tokens with their answer, "
                             f"got a prompt of {longest} tokens and {extra} more")

    def count(self, text: str) -> int:
        return self.tok.count(text)

    def _batches(self, prompts: Sequence[str]) -> list[list[int]]:
        """Indices grouped by prompt length (same length, no padding: RoPE positions stay exact)."""
        groups: dict[int, list[int]] = defaultdict(list)
        for i, p in enumerate(prompts):
            groups[self.tok.count(p)].append(i)
        return [g[j:j + self.batch_size] for g in groups.values() for j in range(0, len(g), self.batch_size)]

    @torch.no_grad()
    def generate(self, prompts: Sequence[str], max_new_tokens: int) -> list[str]:
        """Greedy decoding, one full forward pass per new token (the lab model keeps no cache).

        One str per prompt; prompt and new tokens together at most LAB_MAX_LENGTH tokens."""
        prompts = _texts("prompts", prompts)
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or not 1 <= max_new_tokens <= LAB_MAX_LENGTH:
            raise ValueError(f"max_new_tokens must be an int in [1, {LAB_MAX_LENGTH}], got {max_new_tokens!r}")
        self._check_room(prompts, max_new_tokens)
        out: list[str] = [""] * len(prompts)
        for idx in self._batches(prompts):
            ids = torch.tensor([[self.tok.bos_id] + self.tok.encode(prompts[i]) for i in idx], device=self.device)
            prompt_len, new = ids.shape[1], []
            for _ in range(max_new_tokens):
                nxt = self._logits(ids, prompt_len)[:, -1].argmax(-1, keepdim=True)  # (B, 1)
                new.append(nxt)
                ids = torch.cat([ids, nxt], dim=1)
                if bool((torch.cat(new, 1) == self.tok.eos_id).any(1).all()):
                    break
            gen = torch.cat(new, 1).tolist()  # (B, new)
            for i, row in zip(idx, gen):
                row = row[:row.index(self.tok.eos_id)] if self.tok.eos_id in row else row
                out[i] = self.tok.decode(row)
        return out

    @torch.no_grad()
    def teacher_forced(self, prompts: Sequence[str], completions: Sequence[str]) -> TeacherForced:
        """One forward pass per batch: each completion token predicted from the true prefix.

        exact[i] is True when every completion token is the argmax, which is exactly when greedy
        decoding would print the whole completion; first[i] whether the first answer token is (the
        retrieval step before any copying); logp[i] is log p(completion).
        """
        prompts, completions = _texts("prompts", prompts), _texts("completions", completions)
        if len(prompts) != len(completions):
            raise ValueError(f"prompts and completions must have the same length, got {len(prompts)} and {len(completions)}")
        n_all = len(prompts)
        self._check_room(prompts, max((self.tok.count(c) for c in completions), default=0))
        out = TeacherForced([""] * n_all, [0.0] * n_all, [False] * n_all, [False] * n_all, [0] * n_all)
        for idx in self._batches(prompts):
            comp = [self.tok.encode(completions[i]) for i in idx]
            if min(len(c) for c in comp) == 0:
                raise ValueError("every completion must have at least one token")
            n = max(len(c) for c in comp)
            rows = [[self.tok.bos_id] + self.tok.encode(prompts[i]) + c + [self.tok.eos_id] * (n - len(c)) for i, c in zip(idx, comp)]
            ids = torch.tensor(rows, device=self.device)  # (B, 1 + T + n)
            start = ids.shape[1] - n - 1  # logits at start predict the first completion token
            logits = self._logits(ids[:, :-1], start + 1)[:, start:].float()  # (B, n, vocab)
            pred = logits.argmax(-1).tolist()
            logp = torch.log_softmax(logits, -1).gather(-1, ids[:, start + 1:, None]).squeeze(-1)  # (B, n)
            for b, (i, c) in enumerate(zip(idx, comp)):
                out.text[i] = self.tok.decode(pred[b][:len(c)])
                out.logp[i] = float(logp[b, :len(c)].sum())
                out.exact[i] = pred[b][:len(c)] == c
                out.first[i], out.n_tokens[i] = pred[b][0] == c[0], len(c)
        return out


    @torch.no_grad()
    def token_nll(self, texts: Sequence[str]) -> list[Tensor]:
        """Per-token loss over whole sequences: for each text, -log p of every token of text + EOS given all
        the tokens before it (BOS first), in nats, a float tensor (n_tokens + 1,). Its mean is the log of the
        perplexity the extension papers report; it means something only for a model trained on every token."""
        texts = _texts("texts", texts)
        self._check_room(texts, 1)
        out: list[Tensor] = [torch.empty(0)] * len(texts)
        for idx in self._batches(texts):
            ids = torch.tensor([[self.tok.bos_id] + self.tok.encode(texts[i]) + [self.tok.eos_id] for i in idx],
                               device=self.device)  # (B, T + 2)
            logits = self._logits(ids[:, :-1], ids.shape[1] - 1).float()  # (B, T + 1, vocab)
            nll = -torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None]).squeeze(-1)  # (B, T + 1)
            for b, i in enumerate(idx):
                out[i] = nll[b].cpu()
        return out


class TeacherForced(NamedTuple):
    """Per-sample results of :meth:`LabModel.teacher_forced` (lists, in the order of the prompts)."""

    text: list[str]  # argmax token at each completion position, decoded
    logp: list[float]  # log p(completion | prompt), summed over its tokens
    exact: list[bool]  # every completion token is the argmax (greedy decoding prints the completion)
    first: list[bool]  # the first completion token is the argmax
    n_tokens: list[int]  # completion tokens


class HFModel:
    """Adapter for a Hugging Face causal LM (``transformers``, optional) and its tokenizer."""

    def __init__(self, model: Any, tokenizer: Any):
        if not callable(getattr(model, "generate", None)):
            raise TypeError(f"model must be a transformers causal LM (with generate), got {type(model).__name__}")
        if not callable(tokenizer):
            raise TypeError(f"tokenizer must be a transformers tokenizer (callable on text), got {type(tokenizer).__name__}")
        self.model, self.tok = model, tokenizer

    def count(self, text: str) -> int:
        return len(self.tok(text, add_special_tokens=False)["input_ids"])

    @torch.no_grad()
    def generate(self, prompts: Sequence[str], max_new_tokens: int) -> list[str]:
        """Greedy continuations, one prompt at a time; one str per prompt."""
        prompts = _texts("prompts", prompts)
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}")
        out = []
        for p in prompts:  # one at a time: no padding, positions exactly as in the prompt
            enc = self.tok(p, return_tensors="pt").to(self.model.device)
            pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else self.tok.eos_token_id
            ids = self.model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad)
            out.append(self.tok.decode(ids[0, enc["input_ids"].shape[1]:], skip_special_tokens=True))
        return out


def hf_config_with_scaling(config: Any, scaling: Any) -> Any:
    """Set a transformers config's RoPE scaling from an `lclib.scaling.RopeScaling` (None: plain RoPE).

    transformers >= 5 reads ``config.rope_parameters`` (rope_type, factor, rope_theta, ...); older
    versions read ``config.rope_scaling``. Returns the config, changed in place.
    """
    if scaling is not None and not callable(getattr(scaling, "to_hf", None)):
        raise TypeError(f"scaling must be None or a lclib.scaling.RopeScaling, got {type(scaling).__name__}")
    if config is None or isinstance(config, (dict, str)):
        raise TypeError(f"config must be a transformers config object, got {type(config).__name__}")
    hf = scaling.to_hf() if scaling is not None else None
    if hasattr(config, "rope_parameters") and isinstance(getattr(config, "rope_parameters"), dict):
        theta = config.rope_parameters.get("rope_theta", getattr(config, "rope_theta", 10000.0))
        config.rope_parameters = {"rope_type": "default", "rope_theta": theta} if hf is None else {**hf, "rope_theta": theta}
    else:
        config.rope_scaling = hf
    return config


def make_samples(count: Callable[[str], int] | None, task: str, length: int, samples: int, seed: int,
                 depths: Sequence[float] | None = None, **params) -> list[ruler.Sample]:
    """samples prompts of a task at a length; seeds seed*100003 + length*7 + i; depths cycled if given.

    At most MAX_SAMPLES samples, each at most `lclib.ruler.tasks.MAX_LENGTH` tokens."""
    _check_samples(samples)
    ruler.check_length("length", length)
    depths = _check_depths(depths)
    if count is not None and not callable(count):
        raise TypeError(f"count must be None or a function (text) -> tokens, got {type(count).__name__}")
    tok = default_tokenizer() if count is None else _Counter(count)
    return [ruler.make_sample(task, length, seed * 100003 + length * 7 + i, tokenizer=tok,
                              depth=None if not depths else depths[i % len(depths)], **params) for i in range(samples)]


def _check_samples(samples: int) -> int:
    if isinstance(samples, bool) or not isinstance(samples, int) or not 1 <= samples <= MAX_SAMPLES:
        raise ValueError(f"samples must be an int in [1, {MAX_SAMPLES}], got {samples!r}")
    return samples


def _check_depths(depths: Sequence[float] | None) -> list[float] | None:
    if depths is None:
        return None
    if isinstance(depths, str) or not isinstance(depths, Sequence) or not all(
            isinstance(d, (int, float)) and not isinstance(d, bool) and 0 <= d <= 1 for d in depths):
        raise ValueError(f"depths must be None or a list of numbers in [0, 1], got {depths!r}")
    return list(depths)


class _Counter:
    def __init__(self, count: Callable[[str], int]):
        self.count = count


SCORES = ("string_match", "exact")
MODES = ("generate", "teacher_match", "teacher_exact")
BUDGETS = ("lab", "ruler")


def tokens_to_generate(task: str) -> int:
    """RULER's answer budget for a task (scripts/synthetic.yaml): 128 for every needle task, 30 for vt, ..."""
    if task not in ruler.TASKS:
        raise ValueError(f"task must be one of {sorted(ruler.TASKS)}, got {task!r}")
    family = "niah" if task.startswith("niah") else "qa" if task.startswith("qa") else task
    return ruler.TOKENS_TO_GENERATE[family]


def evaluate(model: Any, tasks: dict[str, dict] | Sequence[str], lengths: Sequence[int], samples: int = 20,
             seed: int = 0, mode: str = "generate", depths: Sequence[float] | None = None,
             budget: str | None = None) -> dict:
    """Score model on each task at each length.

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
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode != "generate" and not isinstance(model, LabModel):
        raise TypeError(f"mode {mode!r} needs a LabModel (teacher forcing), got {type(model).__name__}")
    if not isinstance(model, TextModel):
        raise TypeError(f"model must have count(text) and generate(prompts, max_new_tokens), got {type(model).__name__}")
    if isinstance(tasks, str):
        raise TypeError(f"tasks must be a dict or a list of task names, not a str (did you mean [{tasks!r}]?)")
    tasks = {t: {} for t in tasks} if not isinstance(tasks, dict) else tasks
    unknown = [t for t in tasks if t not in ruler.TASKS]
    if not tasks or unknown:
        raise ValueError(f"tasks must name at least one task of {sorted(ruler.TASKS)}, got {unknown or 'none'}")
    _check_samples(samples)
    lengths = _check_lengths(lengths, LAB_MAX_LENGTH if isinstance(model, LabModel) else ruler.MAX_LENGTH)
    _check_depths(depths)
    budget = budget if budget is not None else ("lab" if isinstance(model, LabModel) else "ruler")
    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {BUDGETS}, got {budget!r}")
    if budget == "ruler":
        for task in tasks:
            short = [n for n in lengths if n - tokens_to_generate(task) < 32]
            if short:
                raise ValueError(f"lengths {short} leave no prompt after RULER's {tokens_to_generate(task)}-token answer "
                                 f"budget for {task} (budget='ruler'): use lengths >= {tokens_to_generate(task) + 32}")
    scores: dict[str, dict[int, float]] = {}
    records: list[dict] = []
    for task, params in tasks.items():
        scores[task] = {}
        for n in lengths:
            reserve = tokens_to_generate(task) if budget == "ruler" else 0
            batch = make_samples(model.count, task, n - reserve, samples, seed, depths, **params)
            if mode != "generate":
                tf = model.teacher_forced([s.prompt for s in batch], [s.completion for s in batch])
                _check_outputs(model, "teacher_forced", tf.text, len(batch))
                _check_outputs(model, "teacher_forced", tf.exact, len(batch))
                per = [float(x) for x in tf.exact] if mode == "teacher_exact" else \
                    [ruler_metrics.score(task, [p], [s.answers]) for p, s in zip(tf.text, batch)]
            else:
                new_tokens = reserve or max(model.count(s.completion) for s in batch) + 2
                preds = _check_outputs(model, "generate", model.generate([s.prompt for s in batch], new_tokens), len(batch))
                per = [ruler_metrics.score(task, [p], [s.answers]) for p, s in zip(preds, batch)]
            scores[task][n] = sum(per) / len(per)
            for s, v in zip(batch, per):
                offsets = s.metadata.get("needle_offsets") or [None]
                records.append({"task": task, "length": n, "depth": s.metadata.get("depth"),
                                "distance": None if offsets[0] is None else s.length - offsets[0], "score": v})
    return {"scores": scores, "average": ruler_metrics.task_average(scores), "records": records,
            "score": {"teacher_exact": "exact", "teacher_match": "teacher-forced string_match", "generate": "string_match"}[mode]}


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
    if not lengths or any(isinstance(n, bool) or not isinstance(n, int) or not 32 <= n <= cap for n in lengths):
        raise ValueError(f"lengths must be a non-empty list of ints in [32, {cap}] (tokens), got {lengths}")
    return lengths


def scaling_for(method: str, scale: float, original_max_len: int | None) -> Any:
    """An `lclib.scaling.RopeScaling` for a method name ("none" gives None: plain RoPE)."""
    from ..scaling import RopeScaling

    if method == "none":
        return None
    return RopeScaling(method, scale, original_max_len=original_max_len)


EXACT_WARNING = ("mode teacher_exact scores exact match of the whole completion in text order, not RULER's string "
                 "match: this effective length is not comparable with RULER's threshold or notebook 05's")
THRESHOLD = 0.85  # RULER's threshold (85.6%: Llama-2-7B at 4K), rounded; fixed before any model is measured


def _fraction(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return value


def _parse_lengths(text: str) -> list[int]:
    import argparse

    try:
        lengths = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"lengths must be comma-separated integers, got {text!r}") from None
    if any(not 32 <= n <= LAB_MAX_LENGTH for n in lengths):
        raise argparse.ArgumentTypeError(f"each length must be in [32, {LAB_MAX_LENGTH}], got {text!r}")
    return lengths


def main(argv: list[str] | None = None) -> int:
    """``python -m lclib.probes ruler --checkpoint PATH --method yarn --scale 8 --lengths 256,512 --json``."""
    import argparse

    p = argparse.ArgumentParser(
        prog="python -m lclib.probes ruler", description="RULER-lite on a lab checkpoint.",
        epilog="--json prints one object: checkpoint, method, scale, mode, score ('teacher-forced string_match' in "
               "teacher_match mode, RULER's 'string_match' in generate mode, 'exact' in teacher_exact mode), lengths "
               "[int], tasks {name: [score per length]}, average [task mean per length], threshold (a fixed number, "
               "never the model's own score), effective_length (the largest length whose average, and every "
               "shorter one's, reaches the threshold; 0 if none), and warning (null, or why the effective length "
               "is not RULER's: teacher_exact scores exact match, not RULER's string match).")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--method", default=None, choices=METHODS,
                   help="RoPE scaling applied without training (default: the checkpoint's own setting)")
    p.add_argument("--scale", type=cli.positive_float, default=1.0)
    p.add_argument("--original-max-len", type=cli.positive_int, default=None, help="L (default: the checkpoint's training length)")
    p.add_argument("--lengths", type=_parse_lengths, default=None,
                   help=f"comma-separated, each in [32, {LAB_MAX_LENGTH}] (default: L,2L,4L,8L, which needs 8L <= {LAB_MAX_LENGTH})")
    p.add_argument("--samples", type=cli.positive_int, default=32)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--tasks", default=None, help="comma-separated task names (default: the checkpoint's training tasks)")
    p.add_argument("--mode", default="teacher_match", choices=MODES,
                   help="teacher_match (default, notebook 05's score): RULER's string match on the teacher-forced "
                        "argmax text; generate: greedy decoding, RULER's string match; teacher_exact: exact match of "
                        "the whole completion in text order, stricter than RULER's score")
    p.add_argument("--threshold", type=_fraction, default=THRESHOLD, help=f"effective-length threshold (default {THRESHOLD})")
    p.add_argument("--json", action="store_true")
    cli.add_debug(p)
    a = p.parse_args(argv)
    return cli.run(lambda: _command(a), a.debug)


def _command(a: Any) -> int:
    import json

    from ..train import load, read_metadata

    meta = read_metadata(a.checkpoint)
    task_meta = meta.get("task", {})
    if "tasks" not in task_meta:
        raise ValueError(f"{a.checkpoint} is not a RULER-lite checkpoint (its config.json has no task mixture): "
                         "a key-value checkpoint of notebook 04 is probed with `python -m lclib.probes position-sweep`")
    L = a.original_max_len or task_meta.get("max_len")
    if isinstance(L, bool) or not isinstance(L, int) or L < 1:
        raise ValueError(f"{a.checkpoint}: config.json task max_len must be a positive int, got {L!r}; "
                         "pass --original-max-len")
    lengths = a.lengths or [L, 2 * L, 4 * L, 8 * L]
    if a.lengths is None and not 32 <= L <= LAB_MAX_LENGTH // 8:  # the default lengths L..8L must be readable
        source = "--original-max-len" if a.original_max_len else "the checkpoint's training length (max_len)"
        raise ValueError(f"default lengths L..8L need L in [32, {LAB_MAX_LENGTH // 8}] (LAB_MAX_LENGTH = "
                         f"{LAB_MAX_LENGTH}), got L = {L} from {source}: pass --lengths")
    if a.samples > MAX_SAMPLES:
        raise ValueError(f"--samples must be at most {MAX_SAMPLES}, got {a.samples}")
    model = load(a.checkpoint)
    if a.method is not None:
        model.set_rope_scaling(scaling_for(a.method, a.scale, L))
    tasks = task_meta["tasks"]
    if a.tasks:
        unknown = sorted(set(a.tasks.split(",")) - set(ruler.TASKS))
        if unknown:
            raise ValueError(f"--tasks: unknown task(s) {unknown}; choose from {sorted(ruler.TASKS)}")
        tasks = {t: tasks.get(t, {}) for t in a.tasks.split(",")}
    out = evaluate(LabModel(model), tasks, lengths, a.samples, a.seed, a.mode)
    scaling = model.config.rope_scaling
    result = {"checkpoint": str(a.checkpoint), "method": getattr(scaling, "method", "none"),
              "scale": getattr(scaling, "scale", 1.0), "score": out["score"], "lengths": lengths,
              "tasks": {t: [row[n] for n in lengths] for t, row in out["scores"].items()},
              "average": [out["average"][n] for n in lengths], "threshold": a.threshold,
              "effective_length": ruler_metrics.effective_length(out["average"], a.threshold),
              "mode": a.mode, "warning": EXACT_WARNING if a.mode == "teacher_exact" else None}
    if a.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"mode {a.mode}: {out['score']}")
        for n, v in zip(lengths, result["average"]):
            print(f"{n:>6}  {v:.3f}")
        if result["warning"]:
            print(f"warning: {result['warning']}")
        print(f"effective length (threshold {a.threshold}, mode {a.mode}): {result['effective_length']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
