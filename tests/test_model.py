"""Tests for lclib.model: shapes, causality, RoPE wiring, pluggable scaling and attention."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch

from lclib import rope
from lclib.model import GPT, GPTConfig, rotate, sdpa_attention


def tiny(**kw) -> GPTConfig:
    return GPTConfig(**{"vocab_size": 11, "n_layer": 1, "n_head": 2, "d_model": 8, **kw})


def loud(model: GPT) -> GPT:
    """Large q/k weights, so that attention (and with it position) visibly moves the logits."""
    with torch.no_grad():
        for block in model.blocks:
            block.attn.qkv.weight.normal_(0.0, 1.0)
    return model.eval()


def test_logits_shape_and_param_count():
    torch.manual_seed(0)
    model = GPT(tiny())
    tokens = torch.randint(0, 11, (3, 5))
    assert model(tokens).shape == (3, 5, 11)  # (B, T, vocab)
    assert model.config.head_dim == 4
    # tied head: embedding counted once
    assert model.num_params() == sum(p.numel() for n, p in model.named_parameters())
    assert model.head.weight is model.embed.weight


@pytest.mark.parametrize("pos", ["rope", "none"])
def test_causal_future_tokens_do_not_change_past_logits(pos):
    torch.manual_seed(0)
    model = GPT(tiny(pos_encoding=pos)).eval()
    a = torch.randint(0, 11, (1, 6))
    b = a.clone()
    b[0, 4:] = (b[0, 4:] + 1) % 11
    with torch.no_grad():
        torch.testing.assert_close(model(a)[0, :4], model(b)[0, :4])


@pytest.mark.parametrize("layout", ["half", "interleaved"])
def test_rotate_matches_apply_rope_cached_and_has_gradient(layout):
    x = torch.randn(2, 3, 5, 8, requires_grad=True)  # (B, nh, T, hs)
    cos, sin = rope.rope_cos_sin(torch.arange(5), rope.inv_freq(8))  # (T, hs/2)
    got = rotate(x, cos, sin, layout)
    with torch.no_grad():
        want = rope.apply_rope_cached(x, cos, sin, layout)
    torch.testing.assert_close(got, want)
    got.sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape


def test_rope_model_sees_positions_and_none_model_does_not_care_about_shift():
    torch.manual_seed(0)
    model = loud(GPT(tiny()))
    tokens = torch.randint(0, 11, (1, 6))
    with torch.no_grad():
        base = model(tokens)
        shifted = model(tokens, positions=torch.arange(6) + 7)  # RoPE is relative: same logits
        changed = model(tokens, positions=torch.arange(6) * 2)  # different offsets: different logits
    torch.testing.assert_close(base, shifted, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(base, changed, atol=1e-4)


@dataclass
class FakeScaling:
    """Duck-typed stand-in for lclib.scaling.RopeScaling: linear position interpolation by scale."""

    scale: float = 2.0

    def frequencies(self, head_dim, base, seq_len):
        return rope.inv_freq(head_dim, base) / self.scale, 1.0


def test_rope_scaling_is_used_and_equals_scaled_positions():
    torch.manual_seed(0)
    plain = loud(GPT(tiny()))
    scaled = GPT(tiny(rope_scaling=FakeScaling(2.0))).eval()
    scaled.load_state_dict(plain.state_dict())
    tokens = torch.randint(0, 11, (1, 6))
    with torch.no_grad():
        # dividing frequencies by 2 is the same as halving positions (position interpolation)
        torch.testing.assert_close(scaled(tokens), plain(tokens, positions=torch.arange(6) / 2), atol=1e-5, rtol=1e-5)
        assert not torch.allclose(scaled(tokens), plain(tokens), atol=1e-4)
    freqs, factor = scaled.rope_frequencies(6)
    assert freqs.dtype == torch.float64 and freqs.shape == (2,) and factor == 1.0


def test_pluggable_attention_is_called():
    torch.manual_seed(0)
    calls = []

    def spy(q, k, v, causal):
        calls.append((q.shape, causal))
        return sdpa_attention(q, k, v, causal)

    model = GPT(tiny(n_layer=2), attention_fn=spy).eval()
    tokens = torch.randint(0, 11, (2, 5))
    with torch.no_grad():
        out = model(tokens)
    assert calls == [((2, 2, 5, 4), True)] * 2  # (B, nh, T, hs) per layer
    model.set_attention(None)
    with torch.no_grad():
        torch.testing.assert_close(model(tokens), out)
    assert len(calls) == 2


def test_sdpa_matches_explicit_softmax():
    q, k, v = torch.randn(3, 1, 2, 4, 8).unbind(0)
    scores = q @ k.transpose(-1, -2) / math.sqrt(8)
    scores = scores.masked_fill(torch.triu(torch.ones(4, 4, dtype=torch.bool), 1), float("-inf"))
    torch.testing.assert_close(sdpa_attention(q, k, v, True), scores.softmax(-1) @ v)


@pytest.mark.parametrize("kw, match", [
    ({"d_model": 10, "n_head": 4}, "divisible"),
    ({"pos_encoding": "alibi"}, "pos_encoding"),
    ({"rope_layout": "zigzag"}, "rope_layout"),
    ({"n_layer": 0}, "n_layer"),
])
def test_config_validation(kw, match):
    with pytest.raises(ValueError, match=match):
        tiny(**kw)


def test_config_rejects_scaling_without_frequencies():
    with pytest.raises(TypeError, match="rope_scaling"):
        tiny(rope_scaling=2.0)


def test_bad_tokens_and_positions_shapes():
    model = GPT(tiny())
    with pytest.raises(ValueError, match="tokens"):
        model(torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="positions"):
        model(torch.zeros(1, 5, dtype=torch.long), positions=torch.arange(4))
