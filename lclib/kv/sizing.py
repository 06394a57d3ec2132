"""How big a key-value cache is: the formula, published models' caches, and the decode speed it bounds.

    bytes = 2 (K and V) x n_layer x n_kv_head x head_dim x bytes_per_value x tokens

``cache_bytes`` is checked against real tensors (``KVCache.nbytes`` and a Hugging Face cache read by
``hf_cache_tensors``); ``decode_tokens_per_s_bound`` is the memory-bound limit that size sets on decoding.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .. import validate

# Published architectures (each model's config.json on its release page): layers, query heads, KV heads,
# head_dim, parameters, and the sliding window that bounds the cache (Mistral 7B v0.1, Jiang et al. 2023).
PUBLISHED: dict[str, dict] = {
    "Llama-2-7B": {"n_layer": 32, "n_head": 32, "n_kv_head": 32, "head_dim": 128, "params": 6.74e9, "window": None},
    "Llama-3.1-8B": {"n_layer": 32, "n_head": 32, "n_kv_head": 8, "head_dim": 128, "params": 8.03e9, "window": None},
    "Llama-3.1-70B": {"n_layer": 80, "n_head": 64, "n_kv_head": 8, "head_dim": 128, "params": 70.6e9, "window": None},
    "Mistral-7B-v0.1": {"n_layer": 32, "n_head": 32, "n_kv_head": 8, "head_dim": 128, "params": 7.24e9, "window": 4096},
}


def cache_bytes(n_layer: int, n_kv_head: int, head_dim: int, tokens: int, bytes_per_value: float = 2.0) -> int:
    """Bytes of a KV cache: 2 x n_layer x n_kv_head x head_dim x bytes_per_value x tokens.

    bytes_per_value: 2 for bf16/fp16, 4 for fp32, 1 + scale_bytes / head_dim for int8 with one scale per vector.
    """
    for name, value in (("n_layer", n_layer), ("n_kv_head", n_kv_head), ("head_dim", head_dim)):
        validate.integer(name, value, low=1)
    validate.integer("tokens", tokens, low=0)
    validate.number("bytes_per_value", bytes_per_value, low=0, low_open=True)
    count = 2 * n_layer * n_kv_head * head_dim * tokens  # an exact int, however large
    nbytes = count * bytes_per_value if count < 2**1000 else math.inf  # beyond, a float product overflows
    if not math.isfinite(nbytes):
        raise ValueError(f"n_layer x n_kv_head x head_dim x tokens must give a finite size, got {nbytes}")
    return round(nbytes)


def published_cache_bytes(name: str, tokens: int, bytes_per_value: float = 2.0) -> int:
    """Cache bytes of a published model (PUBLISHED) at `tokens` of context; a sliding window caps the tokens kept."""
    validate.one_of("name", name, sorted(PUBLISHED))
    c = PUBLISHED[name]
    kept = tokens if c["window"] is None else min(tokens, c["window"])
    return cache_bytes(c["n_layer"], c["n_kv_head"], c["head_dim"], kept, bytes_per_value)


def bytes_per_value(head_dim: int, int8: bool, dtype: torch.dtype = torch.float32) -> float:
    """Bytes per cached number: dtype's size, or 1 + one scale of dtype per head_dim values in int8."""
    validate.integer("head_dim", head_dim, low=1)
    if not isinstance(int8, bool):
        raise TypeError(f"int8 must be a bool, got {type(int8).__name__}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype (what keys and values are computed in), got {dtype!r}")
    size = torch.empty(0, dtype=dtype).element_size()
    return 1 + size / head_dim if int8 else float(size)


def kv_heads_saving(n_head: int, n_kv_head: int) -> float:
    """How many times smaller grouped-query attention makes the cache: n_head / n_kv_head (Ainslie et al. 2023)."""
    validate.integer("n_head", n_head, low=1)
    validate.integer("n_kv_head", n_kv_head, low=1)
    if n_head % n_kv_head:
        raise ValueError(f"n_kv_head must divide n_head = {n_head}, got {n_kv_head}")
    return n_head / n_kv_head


def gib(nbytes: float) -> float:
    """Bytes in GiB (2^30)."""
    return validate.number("nbytes", nbytes, low=0) / 2**30


def decode_tokens_per_s_bound(weight_bytes: float, cache_bytes_per_token: float, context: int, bandwidth: float) -> float:
    """Most tokens per second one sequence can decode when every step reads all weights and the whole cache once.

    bandwidth / (weight_bytes + cache_bytes_per_token x context): the memory-bound limit of decoding at batch 1
    (bytes in, bytes per second in bandwidth).
    """
    for name, value in (("weight_bytes", weight_bytes), ("cache_bytes_per_token", cache_bytes_per_token),
                        ("bandwidth", bandwidth)):
        validate.number(name, value, low=0)
    validate.integer("context", context, low=0)
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
