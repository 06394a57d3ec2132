"""The key-value cache and what shrinks it: ``cache`` (KVCache and its kinds), ``sizing`` (its bytes, published
models' caches, the decode speed it bounds), ``compression`` (Window eviction, int8 storage, and the attention
functions that apply each to a whole sequence). ``from lclib import kv`` then ``kv.KVCache``, ``kv.cache_bytes``."""

from .cache import MAX_LAYERS, Int8KVCache, KVCache
from .compression import (INT8_MAX, Window, dequantize_int8, fake_int8, int8_attention, quantize_int8,
                          window_attention)
from .sizing import (PUBLISHED, bytes_per_value, cache_bytes, decode_tokens_per_s_bound, gib, hf_cache_tensors,
                     kv_heads_saving, published_cache_bytes)

__all__ = ["MAX_LAYERS", "KVCache", "Int8KVCache", "INT8_MAX", "Window", "quantize_int8", "dequantize_int8",
           "fake_int8", "window_attention", "int8_attention", "PUBLISHED", "cache_bytes", "published_cache_bytes",
           "bytes_per_value", "kv_heads_saving", "gib", "decode_tokens_per_s_bound", "hf_cache_tensors"]
