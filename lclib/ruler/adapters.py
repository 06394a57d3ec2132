"""The two-method model interface RULER-lite measures through, and its adapters (Hsieh et al. 2024, RULER).

A model is measured through ``TextModel``, two methods and nothing else:
- ``count(text) -> int``: its tokenizer's length of text (RULER's lengths are per tokenizer);
- ``generate(prompts, max_new_tokens) -> list[str]``: greedy continuations of the prompts.
``LabModel`` adapts anything that maps token ids (B, seq_len) to logits (B, seq_len, vocab), the lab's `GPT`
or your own, with a tokenizer (`lclib.ruler.tokenizer.WordTokenizer` by default); ``HFModel`` adapts a
Hugging Face transformers model and tokenizer (optional: ``pip install transformers``), so that a
student with a GPU can measure a real checkpoint with the same generators and scores.

``LabModel`` also has ``teacher_forced``: one forward pass per sample, each answer token predicted
from the correct previous ones. It prints the same text as greedy decoding whenever the answer is
right, and costs one pass instead of one per new token, which is what makes CPU sweeps affordable.
A LabModel reads at most LAB_MAX_LENGTH tokens (prompt and answer), checked before any forward pass.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

import torch
from torch import Tensor

from .. import validate
from ..generation import greedy_decode
from .words import default_tokenizer

LAB_MAX_LENGTH = 65536  # the lab model reads every length anew without a cache: longer requests are refused


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
    """Adapter for a causal LM given as ``model(tokens (B, seq_len) long) -> logits (B, seq_len, vocab)``.

    The prompt is fed as BOS + tokens, as the RULER-lite training mixture does; decoding stops at EOS.
    rope_len says what a length-dependent RoPE scaling (dynamic NTK) counts as the sequence length:
    "sequence", every token fed so far (prompt plus the answer tokens, as when each step re-reads the
    whole sequence), or "prompt", the prompt alone (frequencies fixed once the prompt is read). Only
    the lab's `GPT` takes it; other models always see "sequence".
    """

    def __init__(self, model: Callable[[Tensor], Tensor], tokenizer: Any = None, device: torch.device | str | None = None,
                 batch_size: int = 16, rope_len: str = "sequence"):
        if not callable(model):
            raise TypeError(f"model must map token ids (B, seq_len) to logits, got {type(model).__name__}")
        validate.integer("batch_size", batch_size, low=1)
        validate.one_of("rope_len", rope_len, ("sequence", "prompt"))
        if tokenizer is not None and (isinstance(tokenizer, str) or not all(
                callable(getattr(tokenizer, m, None)) for m in ("count", "encode", "decode"))):
            raise TypeError(f"tokenizer must have count, encode and decode (a WordTokenizer), got {type(tokenizer).__name__}")
        self.model, self.tokenizer = model, tokenizer if tokenizer is not None else default_tokenizer()
        params = list(model.parameters()) if isinstance(model, torch.nn.Module) else []
        self.device = torch.device(device) if device is not None else (params[0].device if params else torch.device("cpu"))
        self.batch_size, self.rope_len = batch_size, rope_len

    def _logits(self, ids: Tensor, prompt_len: int) -> Tensor:
        """model(ids), with the RoPE length fixed at the prompt when rope_len == "prompt". ids (B, seq_len) -> (B, seq_len, vocab)."""
        if ids.shape[1] > LAB_MAX_LENGTH:
            raise ValueError(f"a LabModel reads at most LAB_MAX_LENGTH = {LAB_MAX_LENGTH} tokens, asked for {ids.shape[1]}")
        logits = self.model(ids, rope_len=prompt_len) if self.rope_len == "prompt" else self.model(ids)
        if not isinstance(logits, Tensor) or logits.dim() != 3 or tuple(logits.shape[:2]) != tuple(ids.shape):
            shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
            raise ValueError(f"model must map token ids {tuple(ids.shape)} to logits (B, seq_len, vocab), got {shape}")
        return logits

    def _check_room(self, prompts: list[str], extra: int) -> None:
        """Refuse, before any forward pass, a prompt whose BOS + tokens + extra exceed LAB_MAX_LENGTH."""
        longest = max((self.tokenizer.count(p) for p in prompts), default=0)
        if 1 + longest + extra > LAB_MAX_LENGTH:
            raise ValueError(f"prompts must fit in LAB_MAX_LENGTH = {LAB_MAX_LENGTH} tokens with their answer, "
                             f"got a prompt of {longest} tokens and {extra} more")

    def count(self, text: str) -> int:
        return self.tokenizer.count(text)

    def _batches(self, prompts: Sequence[str]) -> list[list[int]]:
        """Indices grouped by prompt length (same length, no padding: RoPE positions stay exact)."""
        groups: dict[int, list[int]] = defaultdict(list)
        for i, p in enumerate(prompts):
            groups[self.tokenizer.count(p)].append(i)
        return [g[j:j + self.batch_size] for g in groups.values() for j in range(0, len(g), self.batch_size)]

    @torch.no_grad()
    def generate(self, prompts: Sequence[str], max_new_tokens: int) -> list[str]:
        """Greedy decoding, one full forward pass per new token (the lab model keeps no cache).

        One str per prompt; prompt and new tokens together at most LAB_MAX_LENGTH tokens."""
        prompts = _texts("prompts", prompts)
        validate.integer("max_new_tokens", max_new_tokens, low=1, high=LAB_MAX_LENGTH)
        self._check_room(prompts, max_new_tokens)
        out: list[str] = [""] * len(prompts)
        for idx in self._batches(prompts):
            ids = torch.tensor([[self.tokenizer.bos_id] + self.tokenizer.encode(prompts[i]) for i in idx], device=self.device)
            prompt_len = ids.shape[1]
            ids = greedy_decode(lambda seen, n=prompt_len: self._logits(seen, n), ids, max_new_tokens,  # the model's decoder
                                stop_id=self.tokenizer.eos_id)  # (B, prompt_len + new)
            gen = ids[:, prompt_len:].tolist()  # (B, new)
            for i, row in zip(idx, gen):
                row = row[:row.index(self.tokenizer.eos_id)] if self.tokenizer.eos_id in row else row
                out[i] = self.tokenizer.decode(row)
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
        self._check_room(prompts, max((self.tokenizer.count(c) for c in completions), default=0))
        out = TeacherForced([""] * n_all, [0.0] * n_all, [False] * n_all, [False] * n_all, [0] * n_all)
        for idx in self._batches(prompts):
            comp = [self.tokenizer.encode(completions[i]) for i in idx]
            if min(len(c) for c in comp) == 0:
                raise ValueError("every completion must have at least one token")
            n = max(len(c) for c in comp)
            rows = [[self.tokenizer.bos_id] + self.tokenizer.encode(prompts[i]) + c + [self.tokenizer.eos_id] * (n - len(c)) for i, c in zip(idx, comp)]
            ids = torch.tensor(rows, device=self.device)  # (B, 1 + seq_len + n)
            start = ids.shape[1] - n - 1  # logits at start predict the first completion token
            logits = self._logits(ids[:, :-1], start + 1)[:, start:].float()  # (B, n, vocab)
            pred = logits.argmax(-1).tolist()
            logp = torch.log_softmax(logits, -1).gather(-1, ids[:, start + 1:, None]).squeeze(-1)  # (B, n)
            for b, (i, c) in enumerate(zip(idx, comp)):
                out.text[i] = self.tokenizer.decode(pred[b][:len(c)])
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
            ids = torch.tensor([[self.tokenizer.bos_id] + self.tokenizer.encode(texts[i]) + [self.tokenizer.eos_id] for i in idx],
                               device=self.device)  # (B, seq_len + 2)
            logits = self._logits(ids[:, :-1], ids.shape[1] - 1).float()  # (B, seq_len + 1, vocab)
            nll = -torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None]).squeeze(-1)  # (B, seq_len + 1)
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
        self.model, self.tokenizer = model, tokenizer

    def count(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    @torch.no_grad()
    def generate(self, prompts: Sequence[str], max_new_tokens: int) -> list[str]:
        """Greedy continuations, one prompt at a time; one str per prompt."""
        prompts = _texts("prompts", prompts)
        validate.integer("max_new_tokens", max_new_tokens, low=1)
        out = []
        for p in prompts:  # one at a time: no padding, positions exactly as in the prompt
            enc = self.tokenizer(p, return_tensors="pt").to(self.model.device)
            pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
            ids = self.model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad)
            out.append(self.tokenizer.decode(ids[0, enc["input_ids"].shape[1]:], skip_special_tokens=True))
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
