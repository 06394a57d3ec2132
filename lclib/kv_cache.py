"""The key-value cache: what a decoder keeps per token so that each new token costs one step, not a re-read.

A causal layer's keys and values for tokens 0..t never change once computed (token t cannot see
later tokens), so decoding token t+1 needs only its own query, key and value, plus the cached keys
and values of 0..t. Prefill computes and stores them for the whole prompt in one pass; each decode
step then appends one key and one value per layer and KV head and reads the whole cache once.

Its size, the formula this module checks against real tensors:

    bytes = 2 (K and V) x n_layer x n_kv_head x head_dim x bytes_per_value x tokens

Keys are cached after RoPE, at their absolute positions (as Hugging Face's caches do), so dropping a
token (a `lclib.kv_compression.Window`) never changes the keys that stay.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .kv_compression import Window, dequantize_int8, quantize_int8

# Published architectures (each model's config.json on its release page): layers, query heads, KV heads,
# head_dim, parameters, and the sliding window that bounds the cache (Mistral 7B v0.1, Jiang et al. 2023).
PUBLISHED: dict[str, dict] = {
    "Llama-2-7B": {"n_layer": 32, "n_head": 32, "n_kv_head": 32, "head_dim": 128, "params": 6.74e9, "window": None},
    "Llama-3.1-8B": {"n_layer": 32, "n_head": 32, "n_kv_head": 8, "head_dim": 128, "params": 8.03e9, "window": None},
    "Llama-3.1-70B": {"n_layer": 80, "n_head": 64, "n_kv_head": 8, "head_dim": 128, "params": 70.6e9, "window": None},
    "Mistral-7B-v0.1": {"n_layer": 32, "n_head": 32, "n_kv_head": 8, "head_dim": 128, "params": 7.24e9, "window": 4096},
}


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def cache_bytes(n_layer: int, n_kv_head: int, head_dim: int, tokens: int, bytes_per_value: float = 2.0) -> int:
    """Bytes of a KV cache: 2 x n_layer x n_kv_head x head_dim x bytes_per_value x tokens.

    bytes_per_value: 2 for bf16/fp16, 4 for fp32, 1 + scale_bytes / head_dim for int8 with one scale per vector.
    """
    for name, value in (("n_layer", n_layer), ("n_kv_head", n_kv_head), ("head_dim", head_dim)):
        _positive_int(name, value)
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
        raise ValueError(f"tokens must be an int >= 0, got {tokens!r}")
    if isinstance(bytes_per_value, bool) or not isinstance(bytes_per_value, (int, float)) or not bytes_per_value > 0:
        raise ValueError(f"bytes_per_value must be a positive number, got {bytes_per_value!r}")
    return round(2 * n_layer * n_kv_head * head_dim * bytes_per_value * tokens)


def published_cache_bytes(name: str, tokens: int, bytes_per_value: float = 2.0) -> int:
    """Cache bytes of a published model (PUBLISHED) at `tokens` of context; a sliding window caps the tokens kept."""
    if name not in PUBLISHED:
        raise ValueError(f"name must be one of {sorted(PUBLISHED)}, got {name!r}")
    c = PUBLISHED[name]
    kept = tokens if c["window"] is None else min(tokens, c["window"])
    return cache_bytes(c["n_layer"], c["n_kv_head"], c["head_dim"], kept, bytes_per_value)


class KVCache:
    """Keys and values of every layer for the tokens read so far, optionally evicted by a Window and stored in int8.

    Per layer, keys and values have shape (B, n_kv_head, S, head_dim), S the tokens kept; `positions` (S,)
    holds their absolute positions. A forward pass with the cache calls `begin(T)` once, `update(layer, k, v)`
    per layer and `end()` once (GPT.forward does this). Growing by concatenation, as Hugging Face's
    DynamicCache does: simple, and each step copies the cache (a serving engine preallocates pages instead).
    """

    def __init__(self, n_layer: int, policy: Window | None = None, int8: bool = False) -> None:
        self.n_layer = _positive_int("n_layer", n_layer)
        if policy is not None and not isinstance(policy, Window):
            raise TypeError(f"policy must be None or a Window, got {type(policy).__name__}")
        if not isinstance(int8, bool):
            raise TypeError(f"int8 must be a bool, got {type(int8).__name__}")
        self.policy, self.int8 = policy, int8
        self.keys: list[Tensor | None] = [None] * n_layer  # (B, n_kv_head, S, hs), int8 when int8
        self.values: list[Tensor | None] = [None] * n_layer
        self.scales: list[tuple[Tensor, Tensor] | None] = [None] * n_layer  # int8 only: (B, n_kv_head, S, 1) each
        self.positions = torch.zeros(0, dtype=torch.long)  # (S,) absolute positions of the kept tokens
        self.next_position = 0  # position of the next token to be read
        self.mask: Tensor | None = None  # (T, S + T) bool during a step; None: every key visible (or causal)
        self.causal = False  # during a step: plain causal attention over the new tokens (a prefill from empty)
        self._step: tuple[Tensor, Tensor] | None = None

    def __len__(self) -> int:
        """Tokens held."""
        return len(self.positions)

    def begin(self, T: int, device: torch.device | str = "cpu") -> Tensor:
        """Start a step that reads T new tokens; return their positions (T,) and set `mask` and `causal`."""
        _positive_int("T", T)
        if self._step is not None:
            raise RuntimeError("begin() called twice without end(): a forward pass with this cache failed midway")
        q_pos = torch.arange(self.next_position, self.next_position + T, device=device)  # (T,)
        k_pos = torch.cat([self.positions.to(device), q_pos])  # (S + T,)
        self.causal = self.policy is None and len(self) == 0
        all_visible = self.policy is None and T == 1
        self.mask = None if self.causal or all_visible else self.visible(q_pos, k_pos)
        self._step = (q_pos, k_pos)
        return q_pos

    def visible(self, q_pos: Tensor, k_pos: Tensor) -> Tensor:
        """(T, S) bool: which keys each query reads (causal, and the Window's rule if any)."""
        if self.policy is None:
            return k_pos[None, :] <= q_pos[:, None]
        return self.policy.visible(q_pos, k_pos)

    def explicit_mask(self) -> Tensor:
        """The current step's mask as a tensor (T, S + T) even where `mask` is None."""
        if self._step is None:
            raise RuntimeError("explicit_mask() is only defined between begin() and end()")
        return self.visible(*self._step)

    def update(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append this step's k, v (B, n_kv_head, T, hs) to layer's cache; return all of it, (B, n_kv_head, S + T, hs)."""
        if self._step is None:
            raise RuntimeError("update() needs begin() first")
        if self.int8:
            (qk, sk), (qv, sv) = quantize_int8(k), quantize_int8(v)
            if self.keys[layer] is not None:
                qk, qv = torch.cat([self.keys[layer], qk], 2), torch.cat([self.values[layer], qv], 2)
                sk, sv = torch.cat([self.scales[layer][0], sk], 2), torch.cat([self.scales[layer][1], sv], 2)
            self.keys[layer], self.values[layer], self.scales[layer] = qk, qv, (sk, sv)
            return dequantize_int8(qk, sk), dequantize_int8(qv, sv)
        if self.keys[layer] is not None:
            k, v = torch.cat([self.keys[layer], k], 2), torch.cat([self.values[layer], v], 2)
        self.keys[layer], self.values[layer] = k, v
        return k, v

    def end(self) -> None:
        """Finish the step: record the new positions, and drop the tokens no later query may read."""
        if self._step is None:
            raise RuntimeError("end() needs begin() first")
        q_pos, k_pos = self._step
        self._step, self.mask, self.causal = None, None, False
        self.next_position = int(q_pos[-1]) + 1
        self.positions = k_pos
        if self.policy is None:
            return
        keep = self.policy.visible(k_pos.new_tensor([self.next_position]), k_pos)[0]  # (S,) what the next query reads
        if bool(keep.all()):
            return
        self.positions = k_pos[keep]
        for i in range(self.n_layer):
            if self.keys[i] is None:
                continue
            self.keys[i], self.values[i] = self.keys[i][:, :, keep], self.values[i][:, :, keep]
            if self.scales[i] is not None:
                self.scales[i] = (self.scales[i][0][:, :, keep], self.scales[i][1][:, :, keep])

    def nbytes(self) -> int:
        """Bytes held by the cached tensors (keys, values and int8 scales), measured from the tensors themselves."""
        tensors = [t for t in self.keys + self.values if t is not None]
        tensors += [s for pair in self.scales if pair is not None for s in pair]
        return sum(t.numel() * t.element_size() for t in tensors)


def bytes_per_value(head_dim: int, int8: bool, dtype: torch.dtype = torch.float32) -> float:
    """Bytes per cached number: dtype's size, or 1 + one scale of dtype per head_dim values in int8."""
    size = torch.empty(0, dtype=dtype).element_size()
    return 1 + size / _positive_int("head_dim", head_dim) if int8 else float(size)


def kv_heads_saving(n_head: int, n_kv_head: int) -> float:
    """How many times smaller grouped-query attention makes the cache: n_head / n_kv_head (Ainslie et al. 2023)."""
    _positive_int("n_head", n_head)
    _positive_int("n_kv_head", n_kv_head)
    if n_head % n_kv_head:
        raise ValueError(f"n_kv_head must divide n_head = {n_head}, got {n_kv_head}")
    return n_head / n_kv_head


def gib(nbytes: float) -> float:
    """Bytes in GiB (2^30)."""
    return nbytes / 2**30


def decode_tokens_per_s_bound(weight_bytes: float, cache_bytes_per_token: float, context: int, bandwidth: float) -> float:
    """Most tokens per second one sequence can decode when every step reads all weights and the whole cache once.

    bandwidth / (weight_bytes + cache_bytes_per_token x context): the memory-bound limit of decoding at batch 1
    (bytes in, bytes per second in bandwidth).
    """
    for name, value in (("weight_bytes", weight_bytes), ("cache_bytes_per_token", cache_bytes_per_token),
                        ("bandwidth", bandwidth)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    if isinstance(context, bool) or not isinstance(context, int) or context < 0:
        raise ValueError(f"context must be an int >= 0, got {context!r}")
    moved = weight_bytes + cache_bytes_per_token * context
    if not moved > 0 or not bandwidth > 0:
        raise ValueError(f"bandwidth and the bytes moved per token must be > 0, got {bandwidth!r} and {moved!r}")
    return bandwidth / moved


def hf_cache_tensors(output: object) -> list[tuple[Tensor, Tensor]]:
    """(keys, values) per layer from a Hugging Face transformers forward pass with use_cache=True.

    The cache has moved between releases: the output field is ``cache`` (transformers 5) or
    ``past_key_values`` (4.x); the cache is a ``DynamicCache`` whose ``layers[i].keys`` / ``.values`` hold the
    tensors (4.54 and later), one with ``key_cache`` / ``value_cache`` lists (4.36-4.53), or a tuple of
    (keys, values) per layer (earlier, and 4.40's default). Each tensor is (batch, n_kv_head, seq_len, head_dim).
    """
    cache = getattr(output, "cache", None)
    if cache is None:
        cache = getattr(output, "past_key_values", None)
    if cache is None:
        raise ValueError(f"output must come from a transformers model called with use_cache=True (it holds a "
                         f"cache or past_key_values), got {type(output).__name__} without one")
    if hasattr(cache, "layers"):
        return [(layer.keys, layer.values) for layer in cache.layers]
    if hasattr(cache, "key_cache"):
        return list(zip(cache.key_cache, cache.value_cache))
    if isinstance(cache, (tuple, list)) and all(isinstance(p, (tuple, list)) and len(p) >= 2 for p in cache):
        return [(p[0], p[1]) for p in cache]
    raise TypeError(f"output's cache must be a transformers Cache or a tuple of (keys, values) per layer, "
                    f"got {type(cache).__name__}")
