"""Bad calls of the KV cache and the model's cached decoding (issue 29): lclib.kv.cache, lclib.kv.sizing, GPT.generate,
GPT.forward with a cache, GPT.group_kv_heads. Loaded by tests/test_bad_input.py (see _register_area_cases)."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import torch

from lclib import kv, model, scaling
from lclib.kv import Int8KVCache, KVCache

NAN, INF = float("nan"), float("inf")
LINEAR = scaling.RopeScaling("linear", 2.0)
DYNAMIC = scaling.RopeScaling("dynamic_ntk", 2.0, original_max_len=4)  # past L = 4 after the 4 tokens of ids()
Case = Callable[[str, str, type, str, Callable[[], object]], None]


def gpt(n_head: int = 2, d_model: int = 8, **kw) -> model.GPT:
    """A tiny model (vocabulary 16, 2 layers) for the bad calls."""
    torch.manual_seed(0)
    return model.GPT(model.GPTConfig(vocab_size=16, n_layer=2, n_head=n_head, d_model=d_model, **kw)).eval()


def ids(B: int = 2, T: int = 4) -> torch.Tensor:
    return torch.arange(B * T).view(B, T) % 16


def filled(m: model.GPT, tokens: torch.Tensor | None = None) -> KVCache:
    """A cache that has read `tokens` (default ids()) through m."""
    cache = KVCache(m.config.n_layer)
    with torch.no_grad():
        m(ids() if tokens is None else tokens, cache=cache)
    return cache


def custom_attention_gpt() -> model.GPT:
    """gpt() with an attention function of its own (the same softmax, but not the one the cache path reads)."""
    return model.GPT(gpt().config, attention_fn=lambda q, k, v, causal: model.sdpa_attention(q, k, v, causal))


def stepped_cache() -> KVCache:
    """A 2-layer cache mid-step: begin(3) called, no layer updated yet."""
    cache = KVCache(2)
    cache.begin(3)
    return cache


def rope_cache(freq: float) -> KVCache:
    """A 1-layer cache holding 2 tokens whose keys were rotated with inv_freq = [freq]."""
    cache = KVCache(1)
    cache.begin(2, rope=(None, torch.tensor([freq], dtype=torch.float64), 1.0))
    cache.update(0, torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))
    cache.end()
    return cache


def filled_raw() -> KVCache:
    """A 1-layer float32 cache holding 3 tokens of (B, h, hs) = (1, 1, 2), midway through its next step."""
    cache = KVCache(1)
    cache.begin(3)
    cache.update(0, kvt(), kvt())
    cache.end()
    cache.begin(3)
    return cache


def kvt(B: int = 1, h: int = 1, T: int = 3, hs: int = 2, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.zeros(B, h, T, hs, dtype=dtype)


def generate(*args, m: Callable[[], model.GPT] = gpt, **kw) -> Callable[[], object]:
    return lambda: m().generate(*args, **kw)


def left_mask(*rows: list[int]) -> torch.Tensor:
    return torch.tensor(rows)


def register(case: Case) -> None:
    C = "kv.sizing.cache_bytes"
    case(C, "n_layer-zero", ValueError, "n_layer", lambda: kv.cache_bytes(0, 2, 8, 5))
    case(C, "n_kv_head-bool", TypeError, "n_kv_head", lambda: kv.cache_bytes(2, True, 8, 5))
    case(C, "head_dim-float", TypeError, "head_dim", lambda: kv.cache_bytes(2, 2, 8.0, 5))
    case(C, "tokens-negative", ValueError, "tokens", lambda: kv.cache_bytes(2, 2, 8, -1))
    case(C, "tokens-float", TypeError, "tokens", lambda: kv.cache_bytes(2, 2, 8, 5.5))
    case(C, "bytes_per_value-zero", ValueError, "bytes_per_value", lambda: kv.cache_bytes(2, 2, 8, 5, 0))
    case(C, "bytes_per_value-nan", ValueError, "bytes_per_value", lambda: kv.cache_bytes(2, 2, 8, 5, NAN))
    case(C, "bytes_per_value-inf", ValueError, "bytes_per_value", lambda: kv.cache_bytes(2, 2, 8, 5, INF))
    case(C, "bytes_per_value-str", TypeError, "bytes_per_value", lambda: kv.cache_bytes(2, 2, 8, 5, "2"))
    case(C, "size-overflows", ValueError, "n_layer", lambda: kv.cache_bytes(10**200, 10**200, 8, 5))

    P = "kv.sizing.published_cache_bytes"
    case(P, "name-unknown", ValueError, "name", lambda: kv.published_cache_bytes("GPT-5", 10))
    case(P, "name-list", ValueError, "name", lambda: kv.published_cache_bytes(["Llama-2-7B"], 10))
    case(P, "tokens-negative", ValueError, "tokens", lambda: kv.published_cache_bytes("Llama-2-7B", -1))
    case(P, "tokens-negative-windowed", ValueError, "tokens", lambda: kv.published_cache_bytes("Mistral-7B-v0.1", -1))
    case(P, "bytes_per_value-negative", ValueError, "bytes_per_value",
         lambda: kv.published_cache_bytes("Llama-2-7B", 10, -2.0))

    K = "kv.cache.KVCache"
    case(K, "n_layer-zero", ValueError, "n_layer", lambda: KVCache(0))
    case(K, "n_layer-bool", TypeError, "n_layer", lambda: KVCache(True))
    case(K, "n_layer-float", TypeError, "n_layer", lambda: KVCache(2.0))
    case(K, "n_layer-huge", ValueError, "n_layer", lambda: KVCache(10**12))
    case(K, "policy-int", TypeError, "policy", lambda: KVCache(2, policy=4))
    case(K, "policy-dict", TypeError, "policy", lambda: KVCache(2, policy={"recent": 4}))
    I = "kv.cache.Int8KVCache"
    case(I, "n_layer-zero", ValueError, "n_layer", lambda: Int8KVCache(0))
    case(I, "policy-int", TypeError, "policy", lambda: Int8KVCache(2, policy=4))
    case(I, "update-k-int", TypeError, r"\bk\b",
         lambda: (lambda c: (c.begin(3), c.update(0, kvt(dtype=torch.long), kvt())))(Int8KVCache(1)))
    case(K, "begin-seq_len-zero", ValueError, "seq_len", lambda: KVCache(2).begin(0))
    case(K, "begin-seq_len-float", TypeError, "seq_len", lambda: KVCache(2).begin(2.0))
    case(K, "begin-rope-list", TypeError, "rope", lambda: KVCache(2).begin(2, rope=[None, torch.ones(1), 1.0]))
    case(K, "begin-rope-other-frequencies", ValueError, "rope_scaling",
         lambda: rope_cache(1.0).begin(1, rope=(None, torch.tensor([0.5], dtype=torch.float64), 1.0)))
    case(K, "begin-rope-other-scaling", ValueError, "rope_scaling",
         lambda: rope_cache(1.0).begin(1, rope=(LINEAR, torch.tensor([1.0], dtype=torch.float64), 1.0)))
    case(K, "update-layer-out-of-range", ValueError, "layer", lambda: stepped_cache().update(2, kvt(), kvt()))
    case(K, "update-layer-bool", TypeError, "layer", lambda: stepped_cache().update(True, kvt(), kvt()))
    case(K, "update-layer-twice", ValueError, "layer",
         lambda: (lambda c: (c.update(0, kvt(), kvt()), c.update(0, kvt(), kvt())))(stepped_cache()))
    case(K, "update-k-3d", ValueError, r"\bk\b", lambda: stepped_cache().update(0, torch.zeros(1, 3, 2), kvt()))
    case(K, "update-k-list", ValueError, r"\bk\b", lambda: stepped_cache().update(0, [[0.0]], kvt()))
    case(K, "update-k-int", TypeError, r"\bk\b", lambda: stepped_cache().update(0, kvt(dtype=torch.long), kvt()))
    case(K, "update-k-other-T", ValueError, r"\bk\b", lambda: stepped_cache().update(0, kvt(T=5), kvt(T=5)))
    case(K, "update-v-shape", ValueError, r"\bv\b", lambda: stepped_cache().update(0, kvt(), kvt(hs=4)))
    case(K, "update-k-batch-changed", ValueError, r"\bk\b", lambda: filled_raw().update(0, kvt(B=2), kvt(B=2)))
    case(K, "update-k-dtype-changed", TypeError, r"\bk\b",
         lambda: filled_raw().update(0, kvt(dtype=torch.float64), kvt(dtype=torch.float64)))

    B = "kv.sizing.bytes_per_value"
    case(B, "head_dim-zero", ValueError, "head_dim", lambda: kv.bytes_per_value(0, int8=True))
    case(B, "head_dim-zero-float", ValueError, "head_dim", lambda: kv.bytes_per_value(0, int8=False))
    case(B, "int8-str", TypeError, "int8", lambda: kv.bytes_per_value(8, int8="no"))
    case(B, "dtype-str", TypeError, "dtype", lambda: kv.bytes_per_value(8, False, dtype="float16"))
    case(B, "dtype-int", TypeError, "dtype", lambda: kv.bytes_per_value(8, False, dtype=torch.int64))

    S = "kv.sizing.kv_heads_saving"
    case(S, "n_head-zero", ValueError, "n_head", lambda: kv.kv_heads_saving(0, 1))
    case(S, "n_kv_head-not-dividing", ValueError, "n_kv_head", lambda: kv.kv_heads_saving(32, 5))
    case(S, "n_kv_head-above-n_head", ValueError, "n_kv_head", lambda: kv.kv_heads_saving(8, 16))
    case(S, "n_kv_head-bool", TypeError, "n_kv_head", lambda: kv.kv_heads_saving(8, True))

    G = "kv.sizing.gib"
    case(G, "nbytes-str", TypeError, "nbytes", lambda: kv.gib("1024"))
    case(G, "nbytes-nan", ValueError, "nbytes", lambda: kv.gib(NAN))
    case(G, "nbytes-negative", ValueError, "nbytes", lambda: kv.gib(-1))
    case(G, "nbytes-none", TypeError, "nbytes", lambda: kv.gib(None))

    D = "kv.sizing.decode_tokens_per_s_bound"
    case(D, "weight_bytes-inf", ValueError, "weight_bytes", lambda: kv.decode_tokens_per_s_bound(INF, 1.0, 10, 1e9))
    case(D, "cache_bytes_per_token-negative", ValueError, "cache_bytes_per_token",
         lambda: kv.decode_tokens_per_s_bound(1e6, -1.0, 10, 1e9))
    case(D, "bandwidth-nan", ValueError, "bandwidth", lambda: kv.decode_tokens_per_s_bound(1e6, 1.0, 10, NAN))
    case(D, "bandwidth-zero", ValueError, "bandwidth", lambda: kv.decode_tokens_per_s_bound(1e6, 1.0, 10, 0))
    case(D, "context-float", TypeError, "context", lambda: kv.decode_tokens_per_s_bound(1e6, 1.0, 10.0, 1e9))
    case(D, "nothing-moved", ValueError, "bandwidth", lambda: kv.decode_tokens_per_s_bound(0, 1.0, 0, 1e9))

    H = "kv.sizing.hf_cache_tensors"
    case(H, "output-none", ValueError, "output", lambda: kv.hf_cache_tensors(None))
    case(H, "output-without-cache", ValueError, "output", lambda: kv.hf_cache_tensors(SimpleNamespace(logits=1)))
    case(H, "cache-str", TypeError, "cache", lambda: kv.hf_cache_tensors(SimpleNamespace(past_key_values="kv")))
    case(H, "cache-pairs-not-tensors", TypeError, "cache",
         lambda: kv.hf_cache_tensors(SimpleNamespace(past_key_values=(("k", "v"),))))
    case(H, "cache-layers-without-keys", TypeError, "cache",
         lambda: kv.hf_cache_tensors(SimpleNamespace(cache=SimpleNamespace(layers=[object()]))))

    M = "model.GPT"
    case(M, "generate-prompt-empty", ValueError, "prompt", generate(ids(2, 0), 3, use_cache=False))
    case(M, "generate-prompt-empty-cached", ValueError, "prompt", generate(ids(2, 0), 3))
    case(M, "generate-prompt-no-rows", ValueError, "prompt", generate(ids(0, 3), 3))
    case(M, "generate-prompt-list", ValueError, "prompt", generate([[1, 2, 3]], 3))
    case(M, "generate-prompt-1d", ValueError, "prompt", generate(torch.arange(3), 3))
    case(M, "generate-prompt-float", TypeError, "prompt", generate(ids().float(), 3))
    case(M, "generate-prompt-above-vocab", ValueError, "prompt", generate(ids() + 16, 3))
    case(M, "generate-max_new_tokens-negative", ValueError, "max_new_tokens", generate(ids(), -1))
    case(M, "generate-max_new_tokens-float", TypeError, "max_new_tokens", generate(ids(), 3.0))
    case(M, "generate-max_new_tokens-bool", TypeError, "max_new_tokens", generate(ids(), True))
    case(M, "generate-max_new_tokens-huge", ValueError, "max_new_tokens", generate(ids(), 10**9))
    case(M, "generate-max_new_tokens-huge-no-cache", ValueError, "max_new_tokens", generate(ids(), 10**9, use_cache=False))
    case(M, "generate-use_cache-str", TypeError, "use_cache", generate(ids(), 3, use_cache="yes"))
    case(M, "generate-cache-int", TypeError, "cache", generate(ids(), 3, cache=5))
    case(M, "generate-cache-filled", ValueError, "cache", lambda: (lambda m: m.generate(ids(), 3, cache=filled(m)))(gpt()))
    case(M, "generate-cache-without-use_cache", ValueError, "cache", generate(ids(), 3, use_cache=False, cache=KVCache(2)))
    case(M, "generate-cache-n_layer", ValueError, "n_layer", generate(ids(), 3, cache=KVCache(3)))
    case(M, "generate-alibi-cached", ValueError, "use_cache=False", generate(ids(), 3, m=lambda: gpt(pos_encoding="alibi")))
    case(M, "generate-attention_fn-cached", ValueError, "use_cache=False", generate(ids(), 3, m=custom_attention_gpt))
    case(M, "generate-attention_mask-shape", ValueError, "attention_mask", generate(ids(), 3, attention_mask=torch.ones(2, 3)))
    case(M, "generate-attention_mask-list", ValueError, "attention_mask", generate(ids(), 3, attention_mask=[[1] * 4] * 2))
    case(M, "generate-attention_mask-float", TypeError, "attention_mask",
         generate(ids(), 3, attention_mask=torch.ones(2, 4)))
    case(M, "generate-attention_mask-not-0-1", ValueError, "attention_mask",
         generate(ids(), 3, attention_mask=left_mask([0, 1, 1, 1], [2, 2, 2, 2])))
    case(M, "generate-attention_mask-right-padded", ValueError, "attention_mask",
         generate(ids(), 3, attention_mask=left_mask([1, 1, 1, 0], [1, 1, 1, 1])))
    case(M, "generate-attention_mask-empty-row", ValueError, "attention_mask",
         generate(ids(), 3, attention_mask=left_mask([0, 0, 0, 0], [1, 1, 1, 1])))
    case(M, "generate-attention_mask-padded-with-cache", ValueError, "cache",
         generate(ids(), 3, cache=KVCache(2), attention_mask=left_mask([0, 1, 1, 1], [1, 1, 1, 1])))
    case(M, "forward-cache-int", TypeError, "cache", lambda: gpt()(ids(), cache=3))
    case(M, "forward-cache-n_layer", ValueError, "n_layer", lambda: gpt()(ids(), cache=KVCache(1)))
    case(M, "forward-cache-positions", ValueError, "positions", lambda: gpt()(ids(), positions=torch.arange(4), cache=KVCache(2)))
    case(M, "forward-cache-tokens-empty", ValueError, "tokens", lambda: gpt()(ids(2, 0), cache=KVCache(2)))
    case(M, "forward-cache-tokens-above-vocab", ValueError, "tokens", lambda: gpt()(ids() + 16, cache=KVCache(2)))
    case(M, "forward-cache-batch-changed", ValueError, "tokens",
         lambda: (lambda m: m(ids(3, 1), cache=filled(m)))(gpt()))
    case(M, "forward-cache-group_kv_heads-between-steps", ValueError, "n_kv_head",
         lambda: (lambda m, c: m.group_kv_heads(1)(ids(2, 1), cache=c))(*(lambda m: (m, filled(m)))(gpt())))
    case(M, "forward-cache-scaling-changed", ValueError, "rope_scaling",
         lambda: (lambda m, c: m.set_rope_scaling(LINEAR)(ids(2, 1), cache=c))(
             *(lambda m: (m, filled(m)))(gpt())))
    case(M, "forward-cache-dynamic-ntk-past-L", ValueError, "dynamic_ntk",
         lambda: (lambda m: m(ids(2, 1), cache=filled(m)))(gpt(rope_scaling=DYNAMIC)))
    case(M, "forward-cache-alibi", ValueError, "alibi", lambda: gpt(pos_encoding="alibi")(ids(), cache=KVCache(2)))
    case(M, "forward-cache-custom-attention", ValueError, "set_attention",
         lambda: custom_attention_gpt()(ids(), cache=KVCache(2)))
    case(M, "group_kv_heads-not-dividing", ValueError, "n_kv_head", lambda: gpt(n_head=4).group_kv_heads(3))
    case(M, "group_kv_heads-zero", ValueError, "n_kv_head", lambda: gpt().group_kv_heads(0))
    case(M, "group_kv_heads-negative", ValueError, "n_kv_head", lambda: gpt().group_kv_heads(-2))
    case(M, "group_kv_heads-bool", ValueError, "n_kv_head", lambda: gpt().group_kv_heads(True))
    case(M, "group_kv_heads-float", ValueError, "n_kv_head", lambda: gpt().group_kv_heads(1.0))
    case(M, "group_kv_heads-str", ValueError, "n_kv_head", lambda: gpt().group_kv_heads("1"))
    case(M, "group_kv_heads-above-n_head", ValueError, "n_kv_head", lambda: gpt().group_kv_heads(4))
    case(M, "group_kv_heads-grow-not-a-multiple", ValueError, "n_kv_head",
         lambda: gpt(n_head=6, d_model=12).group_kv_heads(2).group_kv_heads(3))


EXEMPT = {
    "model.Step": "a NamedTuple GPT.forward builds for its layers from checked arguments",
    "generation.GenerationMixin": "a mixin: its one method, GPT.generate, has its bad calls under model.GPT",
}
