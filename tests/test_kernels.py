"""lclib.kernels: the fused RoPE against the eager reference, the model's compiled kernel, attention memory."""

import pytest
import torch
import torch.nn.functional as F

from lclib import kernels, rope
from lclib.model import GPT, GPTConfig


def _x_cos_sin(T: int = 12, hs: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, T, hs, generator=g)
    cos, sin = rope.rope_cos_sin(torch.arange(T), rope.inv_freq(hs))
    return x, cos, sin


@pytest.mark.parametrize("layout", rope.LAYOUTS)
def test_fused_formulation_equals_the_reference(layout):
    x, cos, sin = _x_cos_sin()
    torch.testing.assert_close(kernels.rope_fused(x, cos, sin, layout), rope.apply_rope_cached(x, cos, sin, layout))
    # and it is not the identity or a swapped layout: the other layout gives another answer
    other = [lay for lay in rope.LAYOUTS if lay != layout][0]
    assert not torch.allclose(kernels.rope_fused(x, cos, sin, layout), rope.apply_rope_cached(x, cos, sin, other))


def test_compiled_kernel_equals_the_reference_values_and_gradients():
    for layout in rope.LAYOUTS:
        for T in (12, 5):  # a second length: the compiled kernel must not keep the first one's shape
            x, cos, sin = _x_cos_sin(T)
            x.requires_grad_(True)
            y = kernels.compiled_rope(x, cos, sin, layout)
            ref = rope.apply_rope_cached(x.detach(), cos, sin, layout)
            torch.testing.assert_close(y.detach(), ref)
            (g,) = torch.autograd.grad(y.square().sum(), x)
            x2 = x.detach().clone().requires_grad_(True)
            (g_ref,) = torch.autograd.grad(rope.apply_rope_cached(x2, cos, sin, layout).square().sum(), x2)
            torch.testing.assert_close(g, g_ref)


def test_model_with_compiled_rope_gives_the_eager_logits():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50, d_model=32, n_layer=2, n_head=4)).eval()
    idx = torch.randint(0, 50, (2, 20))
    with torch.no_grad():
        eager = model(idx)
        compiled = model.set_rope_kernel("compiled")(idx)
        assert model.rotary.rotate_fn is kernels.compiled_rope and model.rotary.kernel == "compiled"
        back = model.set_rope_kernel("eager")(idx)
    torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=1e-5)
    assert torch.equal(back, eager)
    with pytest.raises(ValueError, match="kernel"):
        model.set_rope_kernel("fast")


def test_compiled_rope_refuses_bad_input():
    x, cos, sin = _x_cos_sin()
    with pytest.raises(ValueError, match="layout"):
        kernels.compiled_rope(x, cos, sin, "pairs")
    with pytest.raises(ValueError, match="cos and sin"):
        kernels.compiled_rope(x, cos[:-1], sin[:-1])
    with pytest.raises(TypeError, match="x must be"):
        kernels.compiled_rope(x.long(), cos, sin)


def test_materialised_attention_matches_sdpa():
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 3, 16, 8, generator=g) for _ in range(3))
    for causal in (True, False):
        torch.testing.assert_close(kernels.attention_materialised(q, k, v, causal),
                                   F.scaled_dot_product_attention(q, k, v, is_causal=causal))
    # decode-style: 4 new queries over 16 keys see keys up to 12 + t
    ref = F.scaled_dot_product_attention(q[:, :, -4:], k, v, attn_mask=torch.ones(4, 16, dtype=torch.bool).tril(12))
    torch.testing.assert_close(kernels.attention_materialised(q[:, :, -4:], k, v), ref)
    with pytest.raises(ValueError, match="disagree"):
        kernels.attention_materialised(q, k[..., :4], v[..., :4])
    with pytest.raises(TypeError, match="q must be"):
        kernels.attention_materialised(q[0], k, v)


def test_peak_memory_sees_the_score_matrix_and_sdpa_does_without_it():
    B, nh, hs = 1, 2, 32
    peaks = {}
    for n in (512, 1024):
        q, k, v = (torch.randn(B, nh, n, hs) for _ in range(3))
        scores = B * nh * n * n * 4  # bytes of one float32 (n, n) matrix per head
        peaks[n] = (kernels.peak_memory(kernels.attention_materialised, q, k, v),
                    kernels.peak_memory(F.scaled_dot_product_attention, q, k, v, None, 0.0, True))
        materialised, fused = peaks[n]
        assert materialised >= scores  # at least one whole score matrix is held
        assert fused < scores / 4  # the fused kernel never holds it
    assert peaks[1024][0] / peaks[512][0] > 3.5  # quadratic: doubling n quadruples it
    assert kernels.peak_memory(lambda: None) == 0
    with pytest.raises(TypeError, match="fn must be callable"):
        kernels.peak_memory(3)


def test_crossover_length_needs_the_candidate_faster_from_there_on():
    assert kernels.crossover_length([1, 2, 3, 4], [1.0, 2.0, 3.0, 4.0], [2.0, 1.0, 4.0, 3.0]) == 4  # a flip back does not count
    assert kernels.crossover_length([1, 2], [1.0, 1.0], [1.0, 1.0]) is None  # equal is not faster
    assert kernels.crossover_length([1, 2], [2.0, 2.0], [1.0, 1.0]) == 1
    for bad, match in ((([2, 1], [1.0, 1.0], [1.0, 1.0]), "ascending"), (([1, 2], [1.0], [1.0, 1.0]), "baseline_s"),
                       (([1, 2], [1.0, 1.0], [1.0, float("nan")]), "candidate_s"), (([], [], []), "lengths")):
        with pytest.raises(ValueError, match=match):
            kernels.crossover_length(*bad)


def test_materialised_causal_alignment_and_more_queries_than_keys():
    """Queries are the last T of S positions; T > S would leave rows with no key, so it is refused (issue 29)."""
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(1, 2, 6, 4, generator=g) for _ in range(3))
    with pytest.raises(ValueError, match="q has more queries \\(6\\) than k has keys \\(4\\)"):
        kernels.attention_materialised(q, k[:, :, :4], v[:, :, :4])  # NaN rows 0 and 1 before
    out = kernels.attention_materialised(q, k[:, :, :4], v[:, :, :4], causal=False)  # no mask: every row sees keys
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k[:, :, :4], v[:, :, :4]))
    for T in range(1, 7):  # T <= S: finite, and query t sees keys up to S - T + t
        got = kernels.attention_materialised(q[:, :, -T:], k, v)
        assert bool(got.isfinite().all())
        torch.testing.assert_close(got[:, :, :1], F.scaled_dot_product_attention(
            q[:, :, -T:][:, :, :1], k[:, :, :7 - T], v[:, :, :7 - T]))


def test_materialised_refuses_a_score_matrix_beyond_the_cap():
    n = 1 << 15  # (n, n) scores: 4 GiB in float32; the views below hold one float each
    q = torch.zeros(1, 1, 1, 1).expand(1, 1, n, 1)
    with pytest.raises(ValueError, match="MAX_SCORES"):
        kernels.attention_materialised(q, q, q)


@pytest.mark.parametrize("layout", ["pairs", None])
def test_rope_fused_refuses_an_unknown_layout_instead_of_interleaving(layout):
    x, cos, sin = _x_cos_sin()
    with pytest.raises(ValueError, match="layout"):
        kernels.rope_fused(x, cos, sin, layout)  # read as "interleaved" before, without a word


def test_rope_fused_refuses_cos_that_would_broadcast():
    x, cos, sin = _x_cos_sin()
    with pytest.raises(ValueError, match="cos and sin"):
        kernels.rope_fused(x, cos[:1], sin[:1])  # one angle for every position, silently, before


def test_crossover_length_takes_numpy_numbers_and_refuses_nonsense():
    np = pytest.importorskip("numpy")
    assert kernels.crossover_length(np.array([1, 2]), np.array([2.0, 2.0], np.float32), [1.0, 1.0]) == 1
    with pytest.raises(ValueError, match="lengths"):
        kernels.crossover_length([-2, -1], [1.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="candidate_s"):
        kernels.crossover_length([1, 2], [1.0, 1.0], [-1.0, 1.0])
    with pytest.raises(TypeError, match="lengths"):
        kernels.crossover_length(None, [1.0], [1.0])
