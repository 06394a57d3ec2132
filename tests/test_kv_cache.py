"""Tests for lclib.kv (cache, sizing, compression) and the cached path of lclib.model (CPU, tiny shapes)."""

from __future__ import annotations

import pytest
import torch

from lclib import kv
from lclib import scaling as S
from lclib.generation import MAX_GENERATE_LEN
from lclib.kv import Int8KVCache, KVCache, Window, cache_bytes
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
    int8 = Int8KVCache(2)
    decode(model, torch.randint(0, 30, (1, 21)), 5, int8)
    assert int8.keys[1].dtype == torch.int8 and int8.scales[1][0].shape == (1, 2, 21, 1)
    assert int8.nbytes() == cache_bytes(2, 2, 8, 21, kv.bytes_per_value(8, int8=True))


def test_published_llama3_8b_at_128k_is_16_gib():
    assert kv.published_cache_bytes("Llama-3.1-8B", 128 * 1024) == 16 * 2**30
    assert kv.published_cache_bytes("Llama-3.1-8B", 1) == 128 * 1024  # 128 KiB per token
    # a sliding window caps Mistral's cache at 4096 tokens
    assert kv.published_cache_bytes("Mistral-7B-v0.1", 10**6) == kv.published_cache_bytes("Mistral-7B-v0.1", 4096)
    assert kv.kv_heads_saving(32, 8) == 4.0


@pytest.mark.parametrize("policy", [Window(recent=6), Window(recent=5, sinks=3), Window(recent=1, sinks=1)])
@pytest.mark.parametrize("n_kv_head", [4, 1])
def test_evicting_cache_equals_masked_full_forward(policy, n_kv_head):
    model = tiny(n_kv_head)
    tokens = torch.randint(0, 30, (2, 30), generator=torch.Generator().manual_seed(4))
    model.set_attention(kv.window_attention(policy))
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
        model.set_attention(kv.int8_attention)
        want = model(tokens)
        model.set_attention(None)
    got = decode(model, tokens, 4, Int8KVCache(2))
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
    q, scale = kv.quantize_int8(x)
    assert q.dtype == torch.int8 and scale.shape == (4, 3, 10, 1)
    assert bool(((kv.dequantize_int8(q, scale) - x).abs() <= scale / 2 + 1e-7).all())


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
        kv.published_cache_bytes("GPT-5", 10)
    with pytest.raises(TypeError, match="x must be"):
        kv.quantize_int8(torch.zeros(3, dtype=torch.long))


def test_hf_cache_tensors_reads_every_cache_layout():
    """The keys and values of a transformers forward pass, whatever release of transformers made them."""
    from types import SimpleNamespace

    k, v = torch.randn(2, 2, 5, 8), torch.randn(2, 2, 5, 8)
    layouts = [SimpleNamespace(cache=SimpleNamespace(layers=[SimpleNamespace(keys=k, values=v)])),  # transformers 5
               SimpleNamespace(past_key_values=SimpleNamespace(key_cache=[k], value_cache=[v])),  # 4.36-4.53
               SimpleNamespace(past_key_values=((k, v),))]  # legacy tuples (4.40's default)
    for output in layouts:
        (got_k, got_v), = kv.hf_cache_tensors(output)
        assert got_k is k and got_v is v
    with pytest.raises(ValueError, match="use_cache=True"):
        kv.hf_cache_tensors(SimpleNamespace(logits=k))
    with pytest.raises(TypeError, match="cache"):
        kv.hf_cache_tensors(SimpleNamespace(past_key_values="cache"))
    transformers = pytest.importorskip("transformers")
    config = transformers.LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    with torch.no_grad():
        out = transformers.LlamaForCausalLM(config).eval()(torch.randint(0, 50, (3, 7)), use_cache=True)
    tensors = kv.hf_cache_tensors(out)
    assert len(tensors) == 2 and all(t.shape == (3, 2, 7, 8) for pair in tensors for t in pair)


# --- issue 29: the cache and the model agree by construction ----------------------------------------

SCALINGS = {"plain": None, "linear": S.RopeScaling("linear", 2.0), "ntk": S.RopeScaling("ntk", 2.0),
            "yarn": S.RopeScaling("yarn", 4.0, original_max_len=8), "llama3": S.RopeScaling("llama3", 4.0, original_max_len=8),
            "dynamic_ntk": S.RopeScaling("dynamic_ntk", 2.0, original_max_len=8)}


def scaled(name: str, n_kv_head: int = 4) -> GPT:
    return tiny(n_kv_head).set_rope_scaling(SCALINGS[name])


@pytest.mark.parametrize("name", list(SCALINGS))
@pytest.mark.parametrize("prompt_len", [5, 12])  # decoding from within L = 8 past it, and a prefill already past it
def test_generate_same_tokens_with_and_without_cache_for_every_scaling(name, prompt_len):
    model = scaled(name, n_kv_head=2)
    prompt = torch.randint(0, 30, (3, prompt_len), generator=torch.Generator().manual_seed(6))
    assert torch.equal(model.generate(prompt, 20), model.generate(prompt, 20, use_cache=False))
    # the same with a Window cache: its tokens are the windowed full forward's
    policy = Window(recent=6, sinks=2)
    windowed = model.generate(prompt, 20, cache=KVCache(2, policy=policy))
    model.set_attention(kv.window_attention(policy))
    assert torch.equal(windowed, model.generate(prompt, 20, use_cache=False))


def test_dynamic_ntk_cached_keys_go_stale_past_L_and_the_forward_refuses_them():
    """Past L dynamic NTK moves every frequency with the length: reading the old keys on would mix
    frequencies (the fault of issue 29, shown here by hand); the cached forward refuses, naming the scaling."""
    model = scaled("dynamic_ntk")
    tokens = torch.randint(0, 30, (2, 12), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        full = model(tokens)  # (B, 12, vocab): frequencies of length 12 everywhere
        cache = KVCache(2)
        model(tokens[:, :11], cache=cache)  # keys rotated with the frequencies of length 11
        with pytest.raises(ValueError, match="dynamic_ntk.*rope_len"):
            model(tokens[:, 11:], cache=cache)
        assert len(cache) == 11  # the refused step left the cache as it was
        mixed = model(tokens[:, 11:], cache=cache, rope_len=11)  # what the old code did: length-11 keys, ...
        assert (mixed[:, 0] - full[:, 11]).abs().max() > 1e-3  # ... which is not the full forward
        # a fixed rope_len keeps the frequencies, and the cache then equals the full forward with that rope_len
        fixed = KVCache(2)
        torch.testing.assert_close(decode_with(model, tokens, 4, fixed, rope_len=12), model(tokens, rope_len=12),
                                   atol=1e-5, rtol=1e-5)
        # within L dynamic NTK is plain RoPE: the cache reads on
        short = KVCache(2)
        torch.testing.assert_close(decode(model, tokens[:, :8], 3, short), model(tokens[:, :8]), atol=1e-5, rtol=1e-5)


def decode_with(model: GPT, tokens: torch.Tensor, prefill: int, cache: KVCache, rope_len: int) -> torch.Tensor:
    """decode() with a fixed rope_len at every step."""
    parts = [model(tokens[:, :prefill], cache=cache, rope_len=rope_len)]
    parts += [model(tokens[:, t:t + 1], cache=cache, rope_len=rope_len) for t in range(prefill, tokens.shape[1])]
    return torch.cat(parts, dim=1)


def test_changing_the_scaling_between_cached_steps_is_refused_naming_both():
    model = tiny()
    tokens = torch.randint(0, 30, (2, 9), generator=torch.Generator().manual_seed(8))
    cache = KVCache(2)
    with torch.no_grad():
        model(tokens[:, :6], cache=cache)
        model.set_rope_scaling(SCALINGS["yarn"])
        with pytest.raises(ValueError, match=r"rope_scaling changed.*None.*yarn"):
            model(tokens[:, 6:7], cache=cache)
        model.set_rope_scaling(None)  # back to the cache's scaling: it reads on, as if nothing happened
        got = torch.cat([model(tokens[:, t:t + 1], cache=cache) for t in range(6, 9)], dim=1)
        torch.testing.assert_close(got, model(tokens)[:, 6:], atol=1e-5, rtol=1e-5)


def test_a_step_that_fails_midway_leaves_the_cache_as_it_was():
    model = tiny(2)
    tokens = torch.randint(0, 30, (2, 10), generator=torch.Generator().manual_seed(9))
    cache = KVCache(2)

    def interrupted(*args):
        raise KeyboardInterrupt

    with torch.no_grad():
        model(tokens[:, :7], cache=cache)
        model.blocks[1].attn.forward = interrupted  # layer 0 has taken the new keys when layer 1 fails
        with pytest.raises(KeyboardInterrupt):
            model(tokens[:, 7:8], cache=cache)
        del model.blocks[1].attn.forward
        assert len(cache) == 7 and cache.keys[0].shape[2] == cache.keys[1].shape[2] == 7
        got = torch.cat([model(tokens[:, t:t + 1], cache=cache) for t in range(7, 10)], dim=1)
        torch.testing.assert_close(got, model(tokens)[:, 7:], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("name", ["plain", "dynamic_ntk"])
def test_a_left_padded_row_continues_exactly_as_the_row_alone(use_cache, name):
    model = scaled(name)
    gen = torch.Generator().manual_seed(10)
    rows = [torch.randint(0, 30, (1, n), generator=gen) for n in (9, 4, 7, 4)]
    T, pad = 9, 3
    prompt = torch.cat([torch.cat([torch.full((1, T - r.shape[1]), pad), r], 1) for r in rows])  # (4, 9)
    mask = torch.stack([torch.arange(T) >= T - r.shape[1] for r in rows])  # (4, 9) bool, 0s then 1s
    out = model.generate(prompt, 12, use_cache=use_cache, attention_mask=mask)
    assert out.shape == (4, T + 12) and torch.equal(out[:, :T], prompt)  # the padding stays in front
    for i, row in enumerate(rows):
        assert torch.equal(out[i, T - row.shape[1]:], model.generate(row, 12, use_cache=use_cache)[0])
    assert torch.equal(model.generate(prompt, 12, use_cache=use_cache, attention_mask=torch.ones(4, T, dtype=torch.long)),
                       model.generate(prompt, 12, use_cache=use_cache))  # an all-ones mask is no mask
    # without the mask the padding is read as text: the row's continuation changes (what the mask is for)
    unmasked = model.generate(prompt, 12, use_cache=use_cache)
    assert not torch.equal(unmasked[1, -12:], out[1, -12:])


def test_empty_prompt_gives_the_same_error_with_and_without_the_cache():
    model = tiny()
    for use_cache in (True, False):
        with pytest.raises(ValueError, match=r"prompt must hold at least one row of at least one token, got shape \(2, 0\)"):
            model.generate(torch.zeros(2, 0, dtype=torch.long), 3, use_cache=use_cache)


def test_generate_is_bounded_by_max_generate_len():
    model = tiny()
    prompt = torch.zeros(1, 6, dtype=torch.long)
    for use_cache in (True, False):
        with pytest.raises(ValueError, match=f"max_new_tokens.*{MAX_GENERATE_LEN}.*6 \\+ {MAX_GENERATE_LEN}"):
            model.generate(prompt, MAX_GENERATE_LEN, use_cache=use_cache)


def test_cache_refuses_a_batch_or_head_layout_that_changed_between_steps():
    model = tiny()
    cache = KVCache(2)
    with torch.no_grad():
        model(torch.zeros(2, 5, dtype=torch.long), cache=cache)
        with pytest.raises(ValueError, match="tokens must have the cache's batch size 2, got 3"):
            model(torch.zeros(3, 1, dtype=torch.long), cache=cache)
        model.group_kv_heads(2)
        with pytest.raises(ValueError, match="n_kv_head=4.*n_kv_head=2"):
            model(torch.zeros(2, 1, dtype=torch.long), cache=cache)
    assert len(cache) == 5 and cache.layout == (2, 4, 8)
    cache.clear()
    assert len(cache) == 0 and cache.layout is None and cache.rope is None and cache.next_position == 0


def test_cache_remembers_the_rope_its_keys_were_rotated_with():
    model = scaled("yarn")
    cache = KVCache(2)
    with torch.no_grad():
        model(torch.zeros(1, 5, dtype=torch.long), cache=cache)
    scaling, inv_freq, factor = cache.rope
    assert scaling == SCALINGS["yarn"] and inv_freq.shape == (4,) and factor == S.yarn_temperature(4.0)
    assert cache.rope_conflict((scaling, inv_freq.clone(), factor)) is None
    assert "other frequencies" in cache.rope_conflict((scaling, inv_freq * 2, factor))
    none_model_cache = KVCache(2)
    with torch.no_grad():
        tiny(pos_encoding="none")(torch.zeros(1, 5, dtype=torch.long), cache=none_model_cache)
    assert none_model_cache.rope is None  # no RoPE, nothing to remember


def test_group_kv_heads_refuses_before_touching_a_block():
    model = tiny()
    before = [b.attn.qkv.weight.clone() for b in model.blocks]
    for bad in (3, 0, -1, True, 2.0, "2", 8):
        with pytest.raises(ValueError, match="n_kv_head must be a positive int dividing n_head = 4"):
            model.group_kv_heads(bad)
    assert model.n_kv_head == 4 and all(torch.equal(b.attn.qkv.weight, w) for b, w in zip(model.blocks, before))
