"""Run RULER-lite on any causal language model: a two-method interface, adapters, and the sweep.

A model is measured through ``TextModel``, two methods and nothing else:
- ``count(text) -> int``: its tokenizer's length of text (RULER's lengths are per tokenizer);
- ``generate(prompts, max_new_tokens) -> list[str]``: greedy continuations of the prompts.
``LabModel`` adapts anything that maps token ids (B, T) to logits (B, T, vocab), the lab's `GPT` or
your own, with a tokenizer (`lclib.tokenizer.WordTokenizer` by default); ``HFModel`` adapts a
Hugging Face transformers model and tokenizer (optional: ``pip install transformers``), so that a
student with a GPU can measure a real checkpoint with the same generators and scores.

``LabModel`` also has ``teacher_forced``: one forward pass per sample, each answer token predicted
from the correct previous ones. It prints the same text as greedy decoding whenever the answer is
right, and costs one pass instead of one per new token, which is what makes CPU sweeps affordable.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from . import metrics as ruler_metrics, tasks as ruler
from ..scaling import METHODS
from .words import default_tokenizer


@runtime_checkable
class TextModel(Protocol):
    """What the RULER-lite sweep needs from a model."""

    def count(self, text: str) -> int: ...

    def generate(self, prompts: Sequence[str], max_new_tokens: int) -> list[str]: ...


class LabModel:
    """Adapter for a causal LM given as ``model(tokens (B, T) long) -> logits (B, T, vocab)``.

    The prompt is fed as BOS + tokens, as the RULER-lite training mixture does; decoding stops at EOS.
    """

    def __init__(self, model: Callable[[Tensor], Tensor], tokenizer: Any = None, device: torch.device | str | None = None,
                 batch_size: int = 16):
        self.model, self.tok = model, tokenizer if tokenizer is not None else default_tokenizer()
        params = list(model.parameters()) if isinstance(model, torch.nn.Module) else []
        self.device = torch.device(device) if device is not None else (params[0].device if params else torch.device("cpu"))
        self.batch_size = batch_size

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
        """Greedy decoding, one full forward pass per new token (the lab model keeps no cache)."""
        out: list[str] = [""] * len(prompts)
        for idx in self._batches(prompts):
            ids = torch.tensor([[self.tok.bos_id] + self.tok.encode(prompts[i]) for i in idx], device=self.device)
            new = []
            for _ in range(max_new_tokens):
                nxt = self.model(ids)[:, -1].argmax(-1, keepdim=True)  # (B, 1)
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
    def teacher_forced(self, prompts: Sequence[str], completions: Sequence[str], detail: bool = False) -> tuple:
        """(argmax text at each completion position given the true prefix, log p(completion)) per sample.

        detail=True adds two lists: whether the first answer token is the argmax (the retrieval step
        itself, before any copying), and the number of completion tokens (to average log p per token).
        """
        texts: list[str] = [""] * len(prompts)
        logps: list[float] = [0.0] * len(prompts)
        first: list[bool] = [False] * len(prompts)
        sizes: list[int] = [0] * len(prompts)
        for idx in self._batches(prompts):
            comp = [self.tok.encode(completions[i]) for i in idx]
            n = max(len(c) for c in comp)
            rows = [[self.tok.bos_id] + self.tok.encode(prompts[i]) + c + [self.tok.eos_id] * (n - len(c)) for i, c in zip(idx, comp)]
            ids = torch.tensor(rows, device=self.device)  # (B, 1 + T + n)
            start = ids.shape[1] - n - 1  # logits at start predict the first completion token
            logits = self.model(ids[:, :-1])[:, start:].float()  # (B, n, vocab)
            pred = logits.argmax(-1).tolist()
            logp = torch.log_softmax(logits, -1).gather(-1, ids[:, start + 1:, None]).squeeze(-1)  # (B, n)
            for b, (i, c) in enumerate(zip(idx, comp)):
                texts[i] = self.tok.decode(pred[b][:len(c)])
                logps[i] = float(logp[b, :len(c)].sum())
                first[i], sizes[i] = pred[b][0] == c[0], len(c)
        return (texts, logps, first, sizes) if detail else (texts, logps)


class HFModel:
    """Adapter for a Hugging Face causal LM (``transformers``, optional) and its tokenizer."""

    def __init__(self, model: Any, tokenizer: Any):
        self.model, self.tok = model, tokenizer

    def count(self, text: str) -> int:
        return len(self.tok(text, add_special_tokens=False)["input_ids"])

    @torch.no_grad()
    def generate(self, prompts: Sequence[str], max_new_tokens: int) -> list[str]:
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
    hf = scaling.to_hf() if scaling is not None else None
    if hasattr(config, "rope_parameters") and isinstance(getattr(config, "rope_parameters"), dict):
        theta = config.rope_parameters.get("rope_theta", getattr(config, "rope_theta", 10000.0))
        config.rope_parameters = {"rope_type": "default", "rope_theta": theta} if hf is None else {**hf, "rope_theta": theta}
    else:
        config.rope_scaling = hf
    return config


def set_rope_scaling(model: Any, scaling: Any) -> Any:
    """Switch the lab GPT's RoPE scaling in place (no training) and drop its cos/sin cache; return it."""
    model.config.rope_scaling = scaling
    model._rope_cache = {}
    return model


def make_samples(count: Callable[[str], int] | None, task: str, length: int, samples: int, seed: int,
                 depths: Sequence[float] | None = None, **params) -> list[ruler.Sample]:
    """samples prompts of a task at a length; seeds seed*100003 + length*7 + i; depths cycled if given."""
    tok = default_tokenizer() if count is None else _Counter(count)
    return [ruler.make_sample(task, length, seed * 100003 + length * 7 + i, tokenizer=tok,
                              depth=None if not depths else depths[i % len(depths)], **params) for i in range(samples)]


class _Counter:
    def __init__(self, count: Callable[[str], int]):
        self.count = count


def evaluate(model: Any, tasks: dict[str, dict] | Sequence[str], lengths: Sequence[int], samples: int = 20,
             seed: int = 0, mode: str = "generate", depths: Sequence[float] | None = None) -> dict:
    """Score model on each task at each length: {"scores": {task: {length: score}}, "average":
    {length: mean over tasks}, "records": [(task, length, depth, score), ...]}.

    In teacher mode two finer views are added, same layout: "first_token" (fraction of samples whose
    first answer token is the argmax) and "logp" (mean log-probability per answer token).

    tasks: names, or {name: generator parameters}. mode "generate" (greedy, any TextModel) or
    "teacher" (LabModel.teacher_forced, one pass per sample).
    """
    if mode not in ("generate", "teacher"):
        raise ValueError(f"mode must be 'generate' or 'teacher', got {mode!r}")
    tasks = {t: {} for t in tasks} if not isinstance(tasks, dict) else tasks
    scores: dict[str, dict[int, float]] = {}
    first: dict[str, dict[int, float]] = {}
    logp: dict[str, dict[int, float]] = {}
    records = []
    for task, params in tasks.items():
        scores[task], first[task], logp[task] = {}, {}, {}
        for n in lengths:
            batch = make_samples(model.count, task, n, samples, seed, depths, **params)
            if mode == "teacher":
                preds, lps, oks, sizes = model.teacher_forced([s.prompt for s in batch], [s.completion for s in batch],
                                                              detail=True)
                first[task][n] = sum(oks) / len(oks)
                logp[task][n] = sum(lp / k for lp, k in zip(lps, sizes)) / len(lps)
            else:
                budget = max(model.count(s.completion) for s in batch) + 2
                preds = model.generate([s.prompt for s in batch], budget)
            per = [ruler_metrics.score(task, [p], [s.answers]) for p, s in zip(preds, batch)]
            scores[task][n] = sum(per) / len(per)
            records += [(task, n, s.metadata.get("depth"), v) for s, v in zip(batch, per)]
    out = {"scores": scores, "average": ruler_metrics.task_average(scores), "records": records}
    if mode == "teacher":
        out.update(first_token=first, first_token_average=ruler_metrics.task_average(first), logp=logp)
    return out


def scaling_for(method: str, scale: float, original_max_len: int) -> Any:
    """An `lclib.scaling.RopeScaling` for a method name ("none" gives None: plain RoPE)."""
    from ..scaling import RopeScaling

    if method == "none":
        return None
    return RopeScaling(method, scale, original_max_len=original_max_len)


def main(argv: list[str] | None = None) -> int:
    """``python -m lclib.probes ruler --checkpoint PATH --method yarn --scale 4 --lengths 160,320 --json``.

    (``python -m lclib.ruler_probe ...`` takes the same options.)
    """
    import argparse
    import json

    from ..train import load, read_metadata

    p = argparse.ArgumentParser(prog="python -m lclib.probes ruler", description="RULER-lite on a lab checkpoint.")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--method", default=None, choices=METHODS,
                   help="RoPE scaling applied without training (default: the checkpoint's own setting)")
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--original-max-len", type=int, default=None, help="L (default: the checkpoint's training length)")
    p.add_argument("--lengths", default="160,320,640,1280")
    p.add_argument("--samples", type=int, default=20)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--tasks", default=None, help="comma-separated task names (default: the training mixture)")
    p.add_argument("--mode", default="teacher", choices=("teacher", "generate"))
    p.add_argument("--threshold", type=float, default=None, help="effective-length threshold (default: score at L)")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    meta = read_metadata(a.checkpoint)
    task_meta = meta.get("task", {})
    L = a.original_max_len or int(task_meta.get("max_len", 0)) or None
    model = load(a.checkpoint)
    if a.method is not None:
        set_rope_scaling(model, scaling_for(a.method, a.scale, L))
    tasks = task_meta.get("tasks") or {t: {} for t in ruler.TASKS}
    if a.tasks:
        tasks = {t: tasks.get(t, {}) for t in a.tasks.split(",")}
    lengths = [int(n) for n in a.lengths.split(",")]
    out = evaluate(LabModel(model), tasks, lengths, a.samples, a.seed, a.mode)
    threshold = a.threshold if a.threshold is not None else out["average"][lengths[0]]
    scaling = model.config.rope_scaling
    result = {"checkpoint": a.checkpoint, "method": getattr(scaling, "method", "none"),
              "scale": getattr(scaling, "scale", 1.0), "scores": out["scores"],
              "average": out["average"], "threshold": threshold,
              "effective_length": ruler_metrics.effective_length(out["average"], threshold)}
    if a.mode == "teacher":  # the finer view of notebook 05: is the first answer token the top choice?
        ft = out["first_token_average"]
        result.update(first_token=out["first_token"], first_token_average=ft,
                      effective_length_first_token=ruler_metrics.effective_length(ft, ft[lengths[0]]))
    if a.json:
        print(json.dumps(result, indent=1))
    else:
        for n, v in out["average"].items():
            print(f"{n:>6}  {v:.3f}")
        print(f"effective length (threshold {threshold:.3f}): {result['effective_length']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
