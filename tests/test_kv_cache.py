"""Tests for lclib.kv_cache, lclib.kv_compression and the cached path of lclib.model (CPU, tiny shapes)."""

from __future__ import annotations

import pytest
import torch

from lclib import kv_cache, kv_compression
from lclib.kv_cache import KVCache, cache_bytes
from lclib.kv_compression import Window
from lclib.model import GPT, GPTConfig


def tiny(n_kv_head: int = 4, pos_encoding: str = "rope", seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=30, n_layer=2, n_head=4, d_model=32, pos_encoding=pos_encoding)).eval()
    with torch.no_grad():  # large q/k weights, so that position visibly moves the logits
        for block in model.blocks:
            block.attn.qkv.weight.normal_(0.0, 0.5)
    return model.group_kv_heads(n_kv_head) if n_kv_head != 4 else model


def decode(model: GPT, tokens: torch.Tensor, prefill: int, cache: KVCache) -> torch.Tensor:
    """Logits (B, T, vocab): prefill the first tokens, then feed the rest one at a time through the cache."""
    with torch.no_grad():
        parts = [model(tokens[:, :prefill], cache=cache)]
        parts += [model(tokens[:, t:t + 1], cache=cache) for t in range(prefill, tokens.shape[1])]
    return torch.cat(parts, dim=1)


@pytest.mark.parametrize("n_kv_head", [4, 2, 1])
@pytest.mark.parametrize("pos_encoding", ["rope", "none"])
def test_cached_logits_equal_full_forward(n_kv_head, pos_encoding):
    model = tiny(n_kv_head, pos_encoding)
    tokens = torch.randint(0, 30, (3, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(tokens)  # (B, T, vocab)
    for prefill in (1, 7, 39):
        torch.testing.assert_close(decode(model, tokens, prefill, KVCache(2)), full, atol=1e-5, rtol=1e-5)


def test_dropping_the_rope_offset_breaks_decoding():
    """Decoding at positions 0..T-1 of each step (the offset forgotten) gives other logits: the test can fail."""
    model = tiny()
    tokens = torch.randint(0, 30, (2, 24), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = model(tokens)
        cache = KVCache(2)
        model(tokens[:, :8], cache=cache)
        cache.next_position = 0  # as if every new token sat at position 0
        wrong = model(tokens[:, 8:9], cache=cache)
    assert (wrong[:, 0] - full[:, 8]).abs().max() > 1e-2
    torch.testing.assert_close(decode(model, tokens, 8, KVCache(2))[:, 8], full[:, 8], atol=1e-5, rtol=1e-5)


def test_generate_same_tokens_with_and_without_cache():
    model = tiny(2)
    prompt = torch.randint(0, 30, (2, 6), generator=torch.Generator().manual_seed(3))
    with_cache = model.generate(prompt, 12)
    assert with_cache.shape == (2, 18)
    assert torch.equal(with_cache, model.generate(prompt, 12, use_cache=False))
    assert torch.equal(with_cache[:, :6], prompt)
    assert torch.equal(model.generate(prompt, 0), prompt)


def test_cache_bytes_match_formula_and_tensors():
    model = tiny(2)
    cache = KVCache(2)
    decode(model, torch.randint(0, 30, (3, 21)), 5, cache)
    assert len(cache) == 21 and cache.next_position == 21
    assert cache.keys[0].shape == (3, 2, 21, 8)  # (B, n_kv_head, S, head_dim)
    assert cache.nbytes() == 3 * cache_bytes(2, 2, 8, 21, bytes_per_value=4)
    int8 = KVCache(2, int8=True)
    decode(model, torch.randint(0, 30, (1, 21)), 5, int8)
    assert int8.keys[1].dtype == torch.int8 and int8.scales[1][0].shape == (1, 2, 21, 1)
    assert int8.nbytes() == cache_bytes(2, 2, 8, 21, kv_cache.bytes_per_value(8, int8=True))


def test_published_llama3_8b_at_128k_is_16_gib():
    assert kv_cache.published_cache_bytes("Llama-3.1-8B", 128 * 1024) == 16 * 2**30
    assert kv_cache.published_cache_bytes("Llama-3.1-8B", 1) == 128 * 1024  # 128 KiB per token
    # a sliding window caps Mistral's cache at 4096 tokens
    assert kv_cache.published_cache_bytes("Mistral-7B-v0.1", 10**6) == kv_cache.published_cache_bytes("Mistral-7B-v0.1", 4096)
    assert kv_cache.kv_heads_saving(32, 8) == 4.0


@pytest.mark.parametrize("policy", [Window(recent=6), Window(recent=5, sinks=3), Window(recent=1, sinks=1)])
@pytest.mark.parametrize("n_kv_head", [4, 1])
def test_evicting_cache_equals_masked_full_forward(policy, n_kv_head):
    model = tiny(n_kv_head)
    tokens = torch.randint(0, 30, (2, 30), generator=torch.Generator().manual_seed(4))
    model.set_attention(kv_compression.window_attention(policy))
    with torch.no_grad():
        want = model(tokens)
    model.set_attention(None)
    cache = KVCache(2, policy=policy)
    torch.testing.assert_close(decode(model, tokens, 10, cache), want, atol=1e-5, rtol=1e-5)
    assert len(cache) <= policy.budget and cache.keys[0].shape[2] == len(cache)
    assert cache.positions[:policy.sinks].tolist() == list(range(policy.sinks))


def test_int8_cache_equals_int8_attention_and_is_close_to_float():
    model = tiny(2)
    tokens = torch.randint(0, 30, (2, 25), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        exact = model(tokens)
        model.set_attention(kv_compression.int8_attention)
        want = model(tokens)
        model.set_attention(None)
    got = decode(model, tokens, 4, KVCache(2, int8=True))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert 0 < (got - exact).abs().max() < 0.05 * exact.abs().max()


def test_window_visibility_rule():
    pos = torch.arange(8)
    mask = Window(recent=3, sinks=2).visible(pos, pos)  # (T, S)
    assert mask.shape == (8, 8)
    assert mask[7].tolist() == [True, True, False, False, False, True, True, True]
    assert not bool(mask.triu(1).any())  # causal
    assert Window(recent=3).visible(pos, pos).sum(1).tolist() == [1, 2, 3, 3, 3, 3, 3, 3]


def test_quantize_int8_round_trip_error_bound():
    x = torch.randn(4, 3, 10, 16)
    q, scale = kv_compression.quantize_int8(x)
    assert q.dtype == torch.int8 and scale.shape == (4, 3, 10, 1)
    assert bool(((kv_compression.dequantize_int8(q, scale) - x).abs() <= scale / 2 + 1e-7).all())


def test_group_kv_heads_round_trip_and_mean_pooling():
    model = tiny(2)
    tokens = torch.randint(0, 30, (2, 12))
    with torch.no_grad():
        before = model(tokens)
        model.group_kv_heads(4)  # the multi-head layout: each shared head repeated
        assert model.n_kv_head == 4
        torch.testing.assert_close(model(tokens), before, atol=0, rtol=0)
        model.group_kv_heads(2)
        assert torch.equal(model(tokens), before)  # back bit for bit
    mha = tiny(4)
    w = mha.blocks[0].attn.qkv.weight.detach().clone()  # (3C, C)
    mha.group_kv_heads(1)
    pooled = mha.blocks[0].attn.qkv.weight  # (C + 2 hs, C)
    assert pooled.shape == (32 + 16, 32)
    torch.testing.assert_close(pooled[32:40], w[32:64].view(4, 8, 32).mean(0))


def test_bad_input_named():
    model = tiny()
    with pytest.raises(ValueError, match="n_kv_head"):
        model.group_kv_heads(3)
    with pytest.raises(ValueError, match="recent"):
        Window(recent=0)
    with pytest.raises(ValueError, match="sinks"):
        Window(recent=2, sinks=-1)
    with pytest.raises(ValueError, match="n_layer"):
        KVCache(0)
    with pytest.raises(TypeError, match="policy"):
        KVCache(2, policy=4)
    with pytest.raises(ValueError, match="cache must have n_layer"):
        model(torch.zeros(1, 3, dtype=torch.long), cache=KVCache(3))
    with pytest.raises(ValueError, match="positions"):
        model(torch.zeros(1, 3, dtype=torch.long), positions=torch.arange(3), cache=KVCache(2))
    with pytest.raises(ValueError, match="alibi"):
        tiny(pos_encoding="alibi")(torch.zeros(1, 3, dtype=torch.long), cache=KVCache(2))
    with pytest.raises(ValueError, match="max_new_tokens"):
        model.generate(torch.zeros(1, 3, dtype=torch.long), -1)
    with pytest.raises(ValueError, match="tokens"):
        cache_bytes(2, 2, 8, -1)
    with pytest.raises(ValueError, match="bytes_per_value"):
        cache_bytes(2, 2, 8, 5, bytes_per_value=0)
    with pytest.raises(ValueError, match="name"):
        kv_cache.published_cache_bytes("GPT-5", 10)
    with pytest.raises(TypeError, match="x must be"):
        kv_compression.quantize_int8(torch.zeros(3, dtype=torch.long))


def test_hf_cache_tensors_reads_every_cache_layout():
    """The keys and values of a transformers forward pass, whatever release of transformers made them."""
    from types import SimpleNamespace

    k, v = torch.randn(2, 2, 5, 8), torch.randn(2, 2, 5, 8)
    layouts = [SimpleNamespace(cache=SimpleNamespace(layers=[SimpleNamespace(keys=k, values=v)])),  # transformers 5
               SimpleNamespace(past_key_values=SimpleNamespace(key_cache=[k], value_cache=[v])),  # 4.36-4.53
               SimpleNamespace(past_key_values=((k, v),))]  # legacy tuples (4.40's default)
    for output in layouts:
        (got_k, got_v), = kv_cache.hf_cache_tensors(output)
        assert got_k is k and got_v is v
    with pytest.raises(ValueError, match="use_cache=True"):
        kv_cache.hf_cache_tensors(SimpleNamespace(logits=k))
    with pytest.raises(TypeError, match="cache"):
        kv_cache.hf_cache_tensors(SimpleNamespace(past_key_values="cache"))
    transformers = pytest.importorskip("transformers")
    config = transformers.LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    with torch.no_grad():
        out = transformers.LlamaForCausalLM(config).eval()(torch.randint(0, 50, (3, 7)), use_cache=True)
    tensors = kv_cache.hf_cache_tensors(out)
    assert len(tensors) == 2 and all(t.shape == (3, 2, 7, 8) for pair in tensors for t in pair)
