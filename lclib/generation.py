"""Greedy decoding, written once: ``greedy_decode`` re-reads the sequence at every step; ``GenerationMixin``
gives ``lclib.model.GPT`` its ``generate``, which reads a KV cache instead (prefill, then one token per step).

The mixin asks of its host (GPT): ``config``, ``rotary`` (a RotaryEmbedding or None), ``_forward(tokens,
positions, rope_len, cache)`` on checked arguments and ``_check_cache_use(cache)``. Token ids are checked once
per call, never per step (an ``.any()`` per step would wait on a GPU).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from . import validate
from .kv import KVCache

MAX_GENERATE_LEN = 1 << 16  # prompt + new tokens that GPT.generate reads at most: longer is refused, not run for hours


def greedy_decode(logits_fn: Callable[[Tensor], Tensor], tokens: Tensor, max_new_tokens: int,
                  stop_id: int | None = None) -> Tensor:
    """Greedy decoding by re-reading: tokens (B, seq_len) -> (B, seq_len + n), n <= max_new_tokens.

    Each step appends argmax logits_fn(tokens)[:, -1] (logits_fn: (B, seq_len) -> (B, seq_len, vocab));
    with stop_id, it stops once every row has produced that token. The tokens are not checked per step.
    """
    if not callable(logits_fn):
        raise TypeError(f"logits_fn must map tokens (B, seq_len) to logits, got {type(logits_fn).__name__}")
    validate.tensor("tokens", tokens, dim=2, floating=False)
    validate.integer("max_new_tokens", max_new_tokens, low=0)
    if stop_id is not None:
        validate.integer("stop_id", stop_id, low=0)
    start = tokens.shape[1]
    for _ in range(max_new_tokens):
        tokens = torch.cat([tokens, logits_fn(tokens)[:, -1:].argmax(-1)], dim=1)  # (B, seq_len + 1)
        if stop_id is not None and bool((tokens[:, start:] == stop_id).any(1).all()):
            break
    return tokens


class GenerationMixin:
    """GPT.generate: greedy decoding with or without a KV cache, left-padded prompts included."""

    @torch.no_grad()
    def generate(self, prompt: Tensor, max_new_tokens: int, use_cache: bool = True,
                 cache: KVCache | None = None, attention_mask: Tensor | None = None) -> Tensor:
        """Greedy decoding: prompt (B, T) -> (B, T + max_new_tokens), at most MAX_GENERATE_LEN tokens in all.

        With the cache, one prefill pass over the prompt, then one token per step that reads the cache;
        without, the whole sequence is read again at every step (far more work). Both give the same
        tokens for every RoPE scaling. Dynamic NTK recomputes every frequency from the current length,
        so past original_max_len each step would read keys cached under stale frequencies: at such a
        step generate empties the cache and re-reads the whole sequence (exact, and as slow as without
        the cache). Recomputing was chosen over refusing because it is this one branch; rotating the
        cached keys again would not stay exact for an int8 cache.
        cache: a fresh KVCache to fill (to choose its Window or int8 storage); default a plain one. A Window
        or int8 cache approximates on purpose: its tokens are those of the full forward with
        lclib.kv's window_attention or int8_attention.
        attention_mask: (B, T) 0/1 (or bool), 0 for the left padding of each row, 1 for its prompt tokens.
        The model itself has no padding: rows of each prompt length are decoded together, each exactly as
        it would be alone, and the padding is kept in front of the row in the result. Without a mask every
        token of prompt is read as text. The prompt's ids are checked once, not at every step.
        """
        validate.token_ids("prompt", prompt, self.config.vocab_size)
        B, T = prompt.shape
        if B == 0 or T == 0:
            raise ValueError(f"prompt must hold at least one row of at least one token, got shape {(B, T)}")
        validate.integer("max_new_tokens", max_new_tokens, low=0)
        if T + max_new_tokens > MAX_GENERATE_LEN:
            raise ValueError(f"max_new_tokens must keep prompt length + max_new_tokens <= {MAX_GENERATE_LEN} "
                             f"(MAX_GENERATE_LEN), got {T} + {max_new_tokens}")
        if not isinstance(use_cache, bool):
            raise TypeError(f"use_cache must be a bool, got {type(use_cache).__name__}")
        if cache is not None:
            if not use_cache:
                raise ValueError("cache must be None with use_cache=False")
            self._check_cache_use(cache)
            if len(cache):
                raise ValueError(f"cache must be an empty KVCache, got one holding {len(cache)} tokens")
        elif use_cache:
            self._check_cache_use(KVCache(self.config.n_layer))
        lengths = _prompt_lengths(attention_mask, B, T)
        if len(set(lengths)) == 1 and lengths[0] == T:  # no padding
            return self._greedy(prompt, max_new_tokens, use_cache, cache)
        if cache is not None:
            raise ValueError("cache must be None with a padded attention_mask (each prompt length gets its own cache)")
        out = torch.cat([prompt, prompt.new_zeros(B, max_new_tokens)], dim=1)  # (B, T + max_new_tokens)
        for n in sorted(set(lengths)):
            rows = torch.tensor([i for i, m in enumerate(lengths) if m == n], device=prompt.device)
            out[rows, T - n:] = self._greedy(prompt[rows, T - n:], max_new_tokens, use_cache, None)
        return out

    def _greedy(self, tokens: Tensor, max_new_tokens: int, use_cache: bool, cache: KVCache | None) -> Tensor:
        """generate() on checked arguments and rows without padding: tokens (B, T) -> (B, T + max_new_tokens)."""
        if not use_cache:
            return greedy_decode(lambda ids: self._forward(ids, None, None, None), tokens, max_new_tokens)
        cache = cache if cache is not None else KVCache(self.config.n_layer)
        logits = self._forward(tokens, None, None, cache)  # prefill: (B, T, vocab)
        for step in range(max_new_tokens):
            tokens = torch.cat([tokens, logits[:, -1:].argmax(-1)], dim=1)  # (B, T + step + 1)
            if step + 1 == max_new_tokens:
                break
            rotation = None if self.rotary is None else self.rotary.rotation(tokens.shape[1])
            if cache.rope_conflict(rotation) is None:
                logits = self._forward(tokens[:, -1:], None, None, cache)  # decode: one token, (B, 1, vocab)
            else:  # dynamic NTK past L: every frequency moved, the cached keys are stale; read the sequence anew
                cache.clear()
                logits = self._forward(tokens, None, None, cache)  # (B, T + step + 1, vocab)
        return tokens


def _prompt_lengths(attention_mask: object, B: int, T: int) -> list[int]:
    """Prompt tokens per row from a left-padding mask (B, T) of 0s then 1s; all T without a mask."""
    if attention_mask is None:
        return [T] * B
    if not isinstance(attention_mask, Tensor) or tuple(attention_mask.shape) != (B, T):
        raise ValueError(f"attention_mask must be a tensor of prompt's shape {(B, T)}, "
                         f"got {getattr(attention_mask, 'shape', type(attention_mask).__name__)}")
    if attention_mask.is_floating_point() or attention_mask.is_complex():
        raise TypeError(f"attention_mask must be a bool or integer tensor of 0s and 1s, got {attention_mask.dtype}")
    mask = attention_mask.long()
    if bool(((mask != 0) & (mask != 1)).any()):
        raise ValueError("attention_mask must hold only 0s and 1s")
    if bool((mask[:, 1:] < mask[:, :-1]).any()) or not bool(mask[:, -1].all()):
        raise ValueError("attention_mask must be left padding: in each row 0s, then 1s up to the last token")
    return mask.sum(1).tolist()
