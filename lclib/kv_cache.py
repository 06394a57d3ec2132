"""The key-value cache: what a decoder keeps per token so that each new token costs one step, not a re-read.

A causal layer's keys and values for tokens 0..t never change once computed (token t cannot see
later tokens), so decoding token t+1 needs only its own query, key and value, plus the cached keys
and values of 0..t. Prefill computes and stores them for the whole prompt in one pass; each decode
step then appends one key and one value per layer and KV head and reads the whole cache once.

Its size, the formula this module checks against real tensors:

    bytes = 2 (K and V) x n_layer x n_kv_head x head_dim x bytes_per_value x tokens

Keys are cached after RoPE, at their absolute positions (as Hugging Face's caches do), so dropping a
token (a `lclib.kv_compression.Window`) never changes the keys that stay. The cache remembers the RoPE
(scaling, frequencies, attention factor) its keys were rotated with and refuses keys rotated another
way: two scalings mixed in one cache, or dynamic NTK's frequencies moving with the length, would
otherwise give other tokens than the full forward without a word.
"""

from __future__ import annotations

import math

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


MAX_LAYERS = 4096  # KVCache(n_layer) holds a list per layer; published models have at most a few hundred

# how cached keys were rotated: (rope_scaling, inv_freq float64 (head_dim // 2,), attention_factor)
Rope = tuple[object, Tensor, float]


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _finite_number(name: str, value: object, low: str = ">= 0") -> float:
    """value as a float, refused unless a finite real number >= 0 (or > 0 with low="> 0")."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if not ok or value < 0 or (low == "> 0" and value == 0):
        raise ValueError(f"{name} must be a finite number {low}, got {value!r}")
    return float(value)


def cache_bytes(n_layer: int, n_kv_head: int, head_dim: int, tokens: int, bytes_per_value: float = 2.0) -> int:
    """Bytes of a KV cache: 2 x n_layer x n_kv_head x head_dim x bytes_per_value x tokens.

    bytes_per_value: 2 for bf16/fp16, 4 for fp32, 1 + scale_bytes / head_dim for int8 with one scale per vector.
    """
    for name, value in (("n_layer", n_layer), ("n_kv_head", n_kv_head), ("head_dim", head_dim)):
        _positive_int(name, value)
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
        raise ValueError(f"tokens must be an int >= 0, got {tokens!r}")
    _finite_number("bytes_per_value", bytes_per_value, "> 0")
    count = 2 * n_layer * n_kv_head * head_dim * tokens  # an exact int, however large
    nbytes = count * bytes_per_value if count < 2**1000 else math.inf  # beyond, a float product overflows
    if not math.isfinite(nbytes):
        raise ValueError(f"n_layer x n_kv_head x head_dim x tokens must give a finite size, got {nbytes}")
    return round(nbytes)


def published_cache_bytes(name: str, tokens: int, bytes_per_value: float = 2.0) -> int:
    """Cache bytes of a published model (PUBLISHED) at `tokens` of context; a sliding window caps the tokens kept."""
    if not isinstance(name, str) or name not in PUBLISHED:
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
        if n_layer > MAX_LAYERS:
            raise ValueError(f"n_layer must be at most {MAX_LAYERS} (MAX_LAYERS), got {n_layer}")
        if policy is not None and not isinstance(policy, Window):
            raise TypeError(f"policy must be None or a Window, got {type(policy).__name__}")
        if not isinstance(int8, bool):
            raise TypeError(f"int8 must be a bool, got {type(int8).__name__}")
        self.policy, self.int8 = policy, int8
        self.clear()

    def clear(self) -> None:
        """Drop every token held: the cache is as new (same n_layer, policy and int8)."""
        n = self.n_layer
        self.keys: list[Tensor | None] = [None] * n  # (B, n_kv_head, S, hs), int8 when int8
        self.values: list[Tensor | None] = [None] * n
        self.scales: list[tuple[Tensor, Tensor] | None] = [None] * n  # int8 only: (B, n_kv_head, S, 1) each
        self.positions = torch.zeros(0, dtype=torch.long)  # (S,) absolute positions of the kept tokens
        self.next_position = 0  # position of the next token to be read
        self.rope: Rope | None = None  # how the held keys were rotated; None: not yet known (or no RoPE)
        self.mask: Tensor | None = None  # (T, S + T) bool during a step; None: every key visible (or causal)
        self.causal = False  # during a step: plain causal attention over the new tokens (a prefill from empty)
        self._step: tuple[Tensor, Tensor, Rope | None] | None = None
        self._updated: set[int] = set()  # layers that took this step's keys

    def __len__(self) -> int:
        """Tokens held."""
        return len(self.positions)

    @property
    def layout(self) -> tuple[int, int, int] | None:
        """(batch, n_kv_head, head_dim) of the held keys; None while empty."""
        k = self.keys[0]
        return None if k is None else (k.shape[0], k.shape[1], k.shape[3])

    def rope_conflict(self, rope: Rope | None) -> str | None:
        """Why keys rotated with `rope` (rope_scaling, inv_freq, attention_factor) may not join those held; None if they may.

        A query reads every cached key with the rotation it was stored with, so keys of two rotations in one
        cache give other scores than the full forward: another scaling set between steps, or a scaling
        whose frequencies depend on the length (dynamic NTK, past original_max_len), does that.
        """
        if rope is None or self.rope is None or not len(self):
            return None
        (old, old_freq, old_factor), (new, new_freq, new_factor) = self.rope, rope
        if old is not new and old != new:
            return (f"rope_scaling changed between cached steps: the cached keys were rotated under {old!r}, "
                    f"the model now uses {new!r}; start a new KVCache")
        if not torch.equal(old_freq, new_freq) or old_factor != new_factor:
            return (f"rope_scaling {new!r} gives other frequencies at this length than those the cached keys were "
                    "rotated with (a length-dependent scaling such as dynamic_ntk, past original_max_len): pass a "
                    "fixed rope_len, or decode with GPT.generate, which re-reads the sequence at such a step")
        return None

    def begin(self, T: int, device: torch.device | str = "cpu", rope: Rope | None = None) -> Tensor:
        """Start a step that reads T new tokens; return their positions (T,) and set `mask` and `causal`.

        rope: (rope_scaling, inv_freq, attention_factor) this step's keys are rotated with; refused
        (ValueError, see rope_conflict) when the held keys were rotated otherwise. None: no RoPE.
        """
        _positive_int("T", T)
        if rope is not None and (not isinstance(rope, tuple) or len(rope) != 3 or not isinstance(rope[1], Tensor)):
            raise TypeError(f"rope must be None or a tuple (rope_scaling, inv_freq tensor, attention_factor), "
                            f"got {type(rope).__name__}")
        if self._step is not None:
            raise RuntimeError("begin() called twice without end(): a forward pass with this cache failed midway; "
                               "start a new KVCache (or call clear())")
        conflict = self.rope_conflict(rope)
        if conflict is not None:
            raise ValueError(conflict)
        q_pos = torch.arange(self.next_position, self.next_position + T, device=device)  # (T,)
        k_pos = torch.cat([self.positions.to(device), q_pos])  # (S + T,)
        self.causal = self.policy is None and len(self) == 0
        all_visible = self.policy is None and T == 1
        self.mask = None if self.causal or all_visible else self.visible(q_pos, k_pos)
        self._step = (q_pos, k_pos, rope)
        return q_pos

    def visible(self, q_pos: Tensor, k_pos: Tensor) -> Tensor:
        """(T, S) bool: which keys each query reads (causal, and the Window's rule if any)."""
        for name, pos in (("q_pos", q_pos), ("k_pos", k_pos)):
            if not isinstance(pos, Tensor) or pos.dim() != 1 or pos.is_floating_point() or pos.dtype == torch.bool:
                raise TypeError(f"{name} must be a 1-D integer tensor of positions, got "
                                f"{getattr(pos, 'dtype', type(pos).__name__)} {tuple(getattr(pos, 'shape', ()))}")
        if self.policy is None:
            return k_pos[None, :] <= q_pos[:, None]
        return self.policy.visible(q_pos, k_pos)

    def explicit_mask(self) -> Tensor:
        """The current step's mask as a tensor (T, S + T) even where `mask` is None."""
        if self._step is None:
            raise RuntimeError("explicit_mask() is only defined between begin() and end()")
        return self.visible(*self._step[:2])

    def update(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append this step's k, v (B, n_kv_head, T, hs) to layer's cache; return all of it, (B, n_kv_head, S + T, hs)."""
        if self._step is None:
            raise RuntimeError("update() needs begin() first")
        self._check_update(layer, k, v)
        self._updated.add(layer)
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

    def _check_update(self, layer: int, k: Tensor, v: Tensor) -> None:
        """update()'s arguments: a layer not yet updated this step, and k, v shaped like the held keys."""
        if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < self.n_layer:
            raise ValueError(f"layer must be an int in 0..{self.n_layer - 1}, got {layer!r}")
        if layer in self._updated:
            raise ValueError(f"layer {layer} already took its keys in this step (update() once per layer and step)")
        T = len(self._step[0])
        for name, t in (("k", k), ("v", v)):
            if not isinstance(t, Tensor) or t.dim() != 4 or t.shape[2] != T:
                raise ValueError(f"{name} must be a tensor (B, n_kv_head, {T}, head_dim) for this step's {T} tokens, "
                                 f"got {tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__}")
            if not t.is_floating_point():
                raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}")
        if v.shape != k.shape:
            raise ValueError(f"v must have k's shape {tuple(k.shape)}, got {tuple(v.shape)}")
        held = self.keys[layer]
        if held is not None and (k.shape[:2] != held.shape[:2] or k.shape[3] != held.shape[3]):
            raise ValueError(f"k must have the (batch, n_kv_head, head_dim) of the held keys {self.layout}, "
                             f"got {(k.shape[0], k.shape[1], k.shape[3])}")
        if held is not None and k.device != held.device:
            raise ValueError(f"k must be on the held keys' device {held.device}, got {k.device}")
        if held is not None and not self.int8 and k.dtype != held.dtype:  # torch.cat would promote without a word
            raise TypeError(f"k must have the held keys' dtype {held.dtype}, got {k.dtype}")

    def abort(self) -> None:
        """Undo the current step (a forward pass failed or was interrupted midway): hold what was held at begin()."""
        if self._step is None:
            return
        S = len(self)
        for i in self._updated:
            if S == 0:
                self.keys[i] = self.values[i] = self.scales[i] = None
                continue
            self.keys[i], self.values[i] = self.keys[i][:, :, :S], self.values[i][:, :, :S]
            if self.scales[i] is not None:
                self.scales[i] = (self.scales[i][0][:, :, :S], self.scales[i][1][:, :, :S])
        self._step, self.mask, self.causal, self._updated = None, None, False, set()

    def end(self) -> None:
        """Finish the step: record the new positions, and drop the tokens no later query may read."""
        if self._step is None:
            raise RuntimeError("end() needs begin() first")
        q_pos, k_pos, rope = self._step
        if len(self._updated) != self.n_layer:
            missing = sorted(set(range(self.n_layer)) - self._updated)
            raise RuntimeError(f"end() before every layer took its keys (missing layers {missing})")
        self._step, self.mask, self.causal, self._updated = None, None, False, set()
        if rope is not None:
            self.rope = rope
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
    _positive_int("head_dim", head_dim)
    if not isinstance(int8, bool):
        raise TypeError(f"int8 must be a bool, got {type(int8).__name__}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype (what keys and values are computed in), got {dtype!r}")
    size = torch.empty(0, dtype=dtype).element_size()
    return 1 + size / head_dim if int8 else float(size)


def kv_heads_saving(n_head: int, n_kv_head: int) -> float:
    """How many times smaller grouped-query attention makes the cache: n_head / n_kv_head (Ainslie et al. 2023)."""
    _positive_int("n_head", n_head)
    _positive_int("n_kv_head", n_kv_head)
    if n_head % n_kv_head:
        raise ValueError(f"n_kv_head must divide n_head = {n_head}, got {n_kv_head}")
    return n_head / n_kv_head


def gib(nbytes: float) -> float:
    """Bytes in GiB (2^30)."""
    return _finite_number("nbytes", nbytes) / 2**30


def decode_tokens_per_s_bound(weight_bytes: float, cache_bytes_per_token: float, context: int, bandwidth: float) -> float:
    """Most tokens per second one sequence can decode when every step reads all weights and the whole cache once.

    bandwidth / (weight_bytes + cache_bytes_per_token x context): the memory-bound limit of decoding at batch 1
    (bytes in, bytes per second in bandwidth).
    """
    for name, value in (("weight_bytes", weight_bytes), ("cache_bytes_per_token", cache_bytes_per_token),
                        ("bandwidth", bandwidth)):
        _finite_number(name, value)
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
        pairs = [(getattr(layer, "keys", None), getattr(layer, "values", None)) for layer in cache.layers]
    elif hasattr(cache, "key_cache"):
        pairs = list(zip(cache.key_cache, cache.value_cache))
    elif isinstance(cache, (tuple, list)) and all(isinstance(p, (tuple, list)) and len(p) >= 2 for p in cache):
        pairs = [(p[0], p[1]) for p in cache]
    else:
        raise TypeError(f"output's cache must be a transformers Cache or a tuple of (keys, values) per layer, "
                        f"got {type(cache).__name__}")
    bad = [type(t).__name__ for pair in pairs for t in pair if not isinstance(t, Tensor) or t.dim() != 4]
    if bad:
        raise TypeError(f"output's cache must hold 4-D tensors (batch, n_kv_head, seq_len, head_dim), got {bad[0]}")
    return pairs
