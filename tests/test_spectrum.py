"""lclib.spectrum: turns per pair, Liu et al.'s critical dimension, per-pair factors and the single-pair ablation."""

import math

import pytest
import torch

from lclib import rope, scaling, spectrum
from lclib.model import GPT, GPTConfig
from lclib.scaling import RopeScaling


def test_turns_by_hand():
    # head_dim 8, base 10000: theta = 1, 0.1, 0.01, 0.001 radians per token; 2 pi radians make one turn
    got = spectrum.turns(rope.inv_freq(8, 10000.0), 100)
    torch.testing.assert_close(got, torch.tensor([100.0, 10.0, 1.0, 0.1], dtype=torch.float64) / (2 * math.pi))
    assert got.shape == (4,) and got.dtype == torch.float64


@pytest.mark.parametrize("head_dim, base, context, dims", [
    (16, 10000.0, 256, 8),     # the lab's base model: pairs 0-3 turn inside L, pair 4 (628 tokens) does not
    (128, 10000.0, 4096, 92),  # Llama-2-7B: 46 of 64 pairs (Liu et al. 2023, section 3.2: "92")
    (128, 500000.0, 8192, 70),  # Llama-3-8B
    (16, 50.0, 256, 16),       # a base small enough that every pair turns inside L
    (16, 10000.0, 4, 0),       # even pair 0 (wavelength 2 pi) does not turn inside 4 tokens
])
def test_critical_dimension_known_values(head_dim, base, context, dims):
    assert spectrum.critical_dimension(head_dim, base, context) == dims


@pytest.mark.parametrize("head_dim, base, context", [(16, 10000.0, 256), (64, 500.0, 1000), (128, 10000.0, 4096),
                                                     (32, 1e6, 100_000), (8, 2.0, 7)])
def test_critical_dimension_counts_pairs_shorter_than_the_context(head_dim, base, context):
    wavelengths = rope.wavelengths(rope.inv_freq(head_dim, base))
    assert spectrum.critical_dimension(head_dim, base, context) == 2 * int((wavelengths < context).sum())
    rows = spectrum.pair_table(GPTConfig(d_model=4 * head_dim, n_head=4, rope_base=base), context)
    assert 2 * sum(r["completes_turn"] for r in rows) == spectrum.critical_dimension(head_dim, base, context)


def test_factors_of_each_method():
    ones = spectrum.factors(None, 16, 10000.0)
    assert torch.equal(ones, torch.ones(8, dtype=torch.float64))
    torch.testing.assert_close(spectrum.factors(RopeScaling("linear", 8.0), 16, 10000.0), 8 * ones)
    ntk = spectrum.factors(RopeScaling("ntk", 8.0), 16, 10000.0)
    torch.testing.assert_close(ntk, 8.0 ** (torch.arange(8, dtype=torch.float64) * 2 / 14))  # step 8^(2/14) = 1.35
    yarn = spectrum.factors(RopeScaling("yarn", 8.0, original_max_len=256), 16, 10000.0)
    assert yarn[0] == 1 and torch.all(yarn[4:] == 8) and torch.all((yarn[1:4] > 1) & (yarn[1:4] < 8))
    # dynamic NTK depends on the sequence read: plain RoPE up to L, NTK with alpha = s l / L - (s - 1) past it
    dyn = RopeScaling("dynamic_ntk", 8.0, original_max_len=256)
    assert torch.equal(spectrum.factors(dyn, 16, 10000.0, 256), ones)
    torch.testing.assert_close(spectrum.factors(dyn, 16, 10000.0, 512), spectrum.factors(RopeScaling("ntk", 9.0), 16, 10000.0))


def test_pair_table_rows_for_a_model():
    model = GPT(GPTConfig(vocab_size=10, n_layer=1, n_head=4, d_model=64))
    rows = spectrum.pair_table(model, 256, {"PI s=8": RopeScaling("linear", 8.0)})
    assert [r["pair"] for r in rows] == list(range(8))
    assert [r["completes_turn"] for r in rows] == [True] * 4 + [False] * 4
    assert rows[4]["wavelength"] == pytest.approx(2 * math.pi * 100) and rows[4]["turns"] == pytest.approx(256 / 628.3185, rel=1e-6)
    assert all(r["PI s=8"] == pytest.approx(8.0) for r in rows)


def test_pair_scaling_divides_the_chosen_pairs_only():
    theta = rope.inv_freq(16, 10000.0)
    got, factor = spectrum.PairScaling((4,), 8.0).frequencies(16, 10000.0)
    want = theta.clone()
    want[4] /= 8
    assert torch.equal(got, want) and factor == 1.0
    # YaRN's temperature alone: frequencies kept, cos and sin scaled as yarn() scales them
    got, factor = spectrum.PairScaling(attention_factor=scaling.yarn_temperature(8.0)).frequencies(16, 10000.0)
    assert torch.equal(got, theta) and factor == scaling.yarn(16, 10000.0, 8.0, 256)[1]


def test_pair_scaling_in_a_model_changes_only_what_it_names():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=10, n_layer=1, n_head=4, d_model=64)).eval()
    ids = torch.randint(0, 10, (1, 32))
    with torch.no_grad():
        plain = model(ids)
        assert torch.equal(model.set_rope_scaling(spectrum.PairScaling())(ids), plain)  # nothing divided: plain RoPE
        assert not torch.allclose(model.set_rope_scaling(spectrum.PairScaling((0,), 8.0))(ids), plain)


def test_published_shapes():
    assert spectrum.PUBLISHED["Llama-2-7B"] == {"head_dim": 128, "base": 10000.0, "context": 4096}
    assert spectrum.PUBLISHED["Llama-3-8B"] == {"head_dim": 128, "base": 500000.0, "context": 8192}
