"""Tests for lclib.model: shapes, causality, RoPE wiring, pluggable scaling and attention."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch

from lclib import positions, rope
from lclib.model import Attention, GPT, GPTConfig, Step, sdpa_attention
from lclib.positions import ALiBi, RotaryEmbedding


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
    assert model.head.weight is not model.embed.weight
    tied = GPT(tiny(tie_embeddings=True))
    assert tied.head.weight is tied.embed.weight
    assert model.num_params() - tied.num_params() == 11 * 8  # the tied embedding is counted once


@pytest.mark.parametrize("pos", ["rope", "alibi", "none"])
def test_causal_future_tokens_do_not_change_past_logits(pos):
    torch.manual_seed(0)
    model = GPT(tiny(pos_encoding=pos)).eval()
    a = torch.randint(0, 11, (1, 6))
    b = a.clone()
    b[0, 4:] = (b[0, 4:] + 1) % 11
    with torch.no_grad():
        torch.testing.assert_close(model(a)[0, :4], model(b)[0, :4])


@pytest.mark.parametrize("layout", ["half", "interleaved"])
def test_rotary_embedding_matches_apply_rope_cached_and_has_gradient(layout):
    x = torch.randn(2, 3, 5, 8, requires_grad=True)  # (B, nh, T, hs)
    rotary = RotaryEmbedding(8, layout=layout)
    cos, sin = rotary.cos_sin(torch.arange(5), torch.float32)  # (T, hs/2)
    torch.testing.assert_close(torch.stack([cos, sin]), torch.stack(rope.rope_cos_sin(torch.arange(5), rope.inv_freq(8))))
    assert "inv_freq" not in rotary.state_dict()  # a non-persistent buffer: checkpoints hold weights only
    got = rotary(x, cos, sin)
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
    freqs, factor = scaled.rotary.frequencies(6)
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


def test_alibi_slopes_are_the_papers_geometric_sequence():
    # Press et al. 2022, Sec. 3: for 8 heads the slopes are 1/2, 1/4, ..., 1/256
    torch.testing.assert_close(ALiBi(8).slopes, torch.tensor([2.0 ** -h for h in range(1, 9)]))
    torch.testing.assert_close(ALiBi(4).slopes, torch.tensor([2.0 ** -2, 2.0 ** -4, 2.0 ** -6, 2.0 ** -8]))


def test_alibi_attention_matches_explicit_biased_softmax():
    torch.manual_seed(0)
    config = tiny(pos_encoding="alibi")  # 2 heads of 4 dims
    attn = Attention(config).eval()
    x = torch.randn(1, 5, 8)
    bias = ALiBi(2).bias(5)  # (nh, T, T)
    assert bias[0, 3, 1] == -(2.0 ** -4) * 2 and bias[1, 4, 0] == -(2.0 ** -8) * 4 and bias[0, 1, 3] == float("-inf")
    q, k, v = (t.view(1, 5, 2, 4).transpose(1, 2) for t in attn.qkv(x).split(8, dim=2))  # (B, nh, T, hs)
    scores = q @ k.transpose(-1, -2) / math.sqrt(4) + bias  # (B, nh, T, T)
    want = attn.proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(1, 5, 8))
    with torch.no_grad():
        torch.testing.assert_close(attn(x, Step(None, bias, False, None)), want)


def test_alibi_depends_on_the_bias_and_refuses_rope_only_inputs():
    torch.manual_seed(0)
    model = GPT(tiny(pos_encoding="alibi")).eval()
    tokens = torch.randint(0, 11, (1, 7))
    with torch.no_grad():
        with_bias = model(tokens)
        flat = GPT(tiny(pos_encoding="alibi")).eval()
        flat.load_state_dict(model.state_dict())
        flat.alibi.slopes.zero_()  # a bias of zeros below the diagonal: causal masking alone
        assert torch.equal(flat.alibi.bias(7)[0], torch.zeros(7, 7).masked_fill(
            torch.triu(torch.ones(7, 7, dtype=torch.bool), 1), float("-inf")))
        assert not torch.allclose(flat(tokens), with_bias)  # the distance penalty changes what is read
    with pytest.raises(ValueError, match="positions"):
        model(tokens, positions=torch.arange(7))
    with pytest.raises(ValueError, match="rope_scaling"):
        tiny(pos_encoding="alibi", rope_scaling=S.RopeScaling("linear", 2.0))
    model.set_attention(lambda q, k, v, causal: q)
    with pytest.raises(ValueError, match="ALiBi"):
        model(tokens)


def test_sdpa_matches_explicit_softmax():
    q, k, v = torch.randn(3, 1, 2, 4, 8).unbind(0)
    scores = q @ k.transpose(-1, -2) / math.sqrt(8)
    scores = scores.masked_fill(torch.triu(torch.ones(4, 4, dtype=torch.bool), 1), float("-inf"))
    torch.testing.assert_close(sdpa_attention(q, k, v, True), scores.softmax(-1) @ v)


@pytest.mark.parametrize("kw, match", [
    ({"d_model": 10, "n_head": 4}, "divisible"),
    ({"pos_encoding": "learned"}, "pos_encoding"),
    ({"rope_layout": "zigzag"}, "rope_layout"),
    ({"n_layer": 0}, "n_layer"),
    ({"init": "xavier"}, "init"),
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


def test_init_schemes():
    torch.manual_seed(0)
    gpt2, default = GPT(tiny(init="gpt2")), GPT(tiny(init="torch"))
    assert abs(float(gpt2.embed.weight.detach().std()) - 0.02) < 0.01
    assert abs(float(default.embed.weight.detach().std()) - 1.0) < 0.3  # nn.Embedding's N(0, 1)


# --- the model owns its position scaling: YaRN's factor, dynamic NTK's length, the pair layout ------------

from lclib import scaling as S  # noqa: E402


def _recorded_qk(model: GPT, tokens: torch.Tensor, **kw) -> tuple[torch.Tensor, torch.Tensor]:
    """q and k (B, nh, T, hs) as the first block's attention receives them (after RoPE)."""
    seen = []

    def spy(q, k, v, causal):
        seen.append((q, k))
        return sdpa_attention(q, k, v, causal)

    model.set_attention(spy)
    with torch.no_grad():
        model(tokens, **kw)
    model.set_attention(None)
    return seen[0]


def test_set_rope_scaling_equals_a_model_built_with_it_and_plain_rope_has_one_form():
    torch.manual_seed(0)
    plain = loud(GPT(tiny()))
    yarn = S.RopeScaling("yarn", 4.0, original_max_len=4)
    built = GPT(tiny(rope_scaling=yarn)).eval()
    built.load_state_dict(plain.state_dict())
    tokens = torch.randint(0, 11, (2, 9))
    with torch.no_grad():
        want = built(tokens)
        base_logits = plain(tokens)  # fills the cos/sin cache: set_rope_scaling must drop it
        assert plain.set_rope_scaling(yarn) is plain
        torch.testing.assert_close(plain(tokens), want)
        plain.set_rope_scaling(S.RopeScaling("none"))
        assert plain.config.rope_scaling is None  # RopeScaling("none") and None: one representation
        torch.testing.assert_close(plain(tokens), base_logits)
    with pytest.raises(TypeError, match="rope_scaling"):
        plain.set_rope_scaling("yarn")


def test_model_applies_yarns_attention_factor_to_queries_and_keys():
    torch.manual_seed(0)
    yarn = S.RopeScaling("yarn", 8.0, original_max_len=4)
    no_factor = S.RopeScaling("yarn", 8.0, original_max_len=4, attention_factor=1.0)
    model = loud(GPT(tiny(rope_scaling=yarn)))
    tokens = torch.randint(0, 11, (1, 7))
    q, k = _recorded_qk(model, tokens)
    q1, k1 = _recorded_qk(model.set_rope_scaling(no_factor), tokens)
    factor = S.yarn_temperature(8.0)
    assert factor > 1.2
    # each of q and k carries the factor, so every logit q.k is multiplied by factor ** 2 (1/t in the paper)
    torch.testing.assert_close(q @ k.transpose(-1, -2), factor ** 2 * (q1 @ k1.transpose(-1, -2)), rtol=1e-5, atol=1e-5)


def test_dynamic_ntk_counts_the_sequence_length_exactly():
    torch.manual_seed(0)
    L, T, s = 4, 9, 2.0
    model = loud(GPT(tiny(rope_scaling=S.RopeScaling("dynamic_ntk", s, original_max_len=L))))
    tokens = torch.randint(0, 11, (1, T))
    q, _ = _recorded_qk(model, tokens)

    def with_static_ntk(length: int) -> torch.Tensor:
        alpha = s * length / L - (s - 1)  # Hugging Face's alpha at this many positions
        other = loud(GPT(tiny(rope_scaling=S.RopeScaling("ntk", alpha))))
        other.load_state_dict(model.state_dict())
        return _recorded_qk(other, tokens)[0]

    torch.testing.assert_close(q, with_static_ntk(T))
    assert not torch.allclose(q, with_static_ntk(T - 1)) and not torch.allclose(q, with_static_ntk(T + 1))
    # rope_len fixes the length the frequencies are computed for (the prompt alone, say)
    torch.testing.assert_close(_recorded_qk(model, tokens, rope_len=T - 1)[0], with_static_ntk(T - 1))
    # within the training context it is plain RoPE exactly
    short = tokens[:, :L]
    plain = GPT(tiny()).eval()
    plain.load_state_dict(model.state_dict())
    torch.testing.assert_close(_recorded_qk(model, short)[0], _recorded_qk(plain, short)[0], rtol=0, atol=0)


def test_rope_layout_is_used_and_a_permutation_converts_between_layouts():
    """Meta's interleaved pairs (2i, 2i+1) and Hugging Face's half split (i, i + d/2) are the same model
    once the rows of W_q and W_k are permuted (what conversion scripts do); unpermuted they differ."""
    torch.manual_seed(0)
    half = loud(GPT(tiny(rope_layout="half")))
    inter = GPT(tiny(rope_layout="interleaved")).eval()
    inter.load_state_dict(half.state_dict())
    tokens = torch.randint(0, 11, (2, 7))
    with torch.no_grad():
        assert not torch.allclose(half(tokens), inter(tokens), atol=1e-4)
        C, nh, hs = 8, 2, 4
        # interleaved feature 2i holds half's feature i, interleaved 2i+1 holds half's i + hs/2, per head
        per_head = torch.stack([torch.arange(hs // 2), torch.arange(hs // 2) + hs // 2], 1).flatten()  # (hs,)
        rows = torch.cat([h * hs + per_head for h in range(nh)])  # (C,)
        w = inter.blocks[0].attn.qkv.weight  # (3C, C): q rows, k rows, v rows
        w[:C] = half.blocks[0].attn.qkv.weight[:C][rows]
        w[C:2 * C] = half.blocks[0].attn.qkv.weight[C:2 * C][rows]
        torch.testing.assert_close(half(tokens), inter(tokens), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pos_encoding", ["rope", "alibi"])
def test_position_tables_stay_bounded_and_are_remade_the_same(pos_encoding):
    """A decoding loop asks for a new length each step: the position module keeps only its last few tables,
    and a dropped table, made again, gives the same logits bit for bit."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=20, n_layer=1, n_head=2, d_model=16, pos_encoding=pos_encoding)).eval()
    x = torch.randint(0, 20, (1, 40))
    with torch.no_grad():
        first = model(x[:, :8])
        for n in range(9, 41):
            model(x[:, :n])
        again = model(x[:, :8])
    tables = model.rotary._tables if pos_encoding == "rope" else model.alibi._biases
    assert len(tables) == positions.TABLES_KEPT
    assert (8, None, x.device, torch.float32) in tables or (8, x.device, torch.float32) in tables
    assert torch.equal(first, again)
