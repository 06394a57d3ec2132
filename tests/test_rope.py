"""lclib.rope: both layouts, the complex form, the relative property, wavelengths, decay bound."""

import math

import pytest
import torch

from lclib import rope


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def rope_reference_hf(x, positions, base=10000.0):
    """The Hugging Face formulation: x * cos + rotate_half(x) * sin with cos/sin repeated over halves."""
    d = x.shape[-1]
    theta = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angles = positions.double()[:, None] * theta[None, :]
    emb = torch.cat((angles, angles), dim=-1)
    return x * emb.cos() + rotate_half(x) * emb.sin()


def test_inv_freq_values_and_shape():
    f = rope.inv_freq(8, base=10000.0)
    assert f.shape == (4,) and f.dtype == torch.float64
    torch.testing.assert_close(f, torch.tensor([1.0, 10000 ** -0.25, 10000 ** -0.5, 10000 ** -0.75], dtype=torch.float64))


@pytest.mark.parametrize("shape", [(5, 8), (2, 3, 5, 8), (1, 5, 64)])
def test_half_layout_equals_rotate_half_reference(shape):
    x = torch.randn(*shape, dtype=torch.float64)
    positions = torch.arange(shape[-2]) * 37
    out = rope.apply_rope(x, positions, rope.inv_freq(shape[-1]), layout="half")
    assert out.shape == x.shape
    torch.testing.assert_close(out, rope_reference_hf(x, positions))
    q, k = torch.randn(2, 5, shape[-1], dtype=torch.float64)
    scores = rope.apply_rope(q, positions, rope.inv_freq(shape[-1])) @ rope.apply_rope(k, positions, rope.inv_freq(shape[-1])).T
    torch.testing.assert_close(scores, rope_reference_hf(q, positions) @ rope_reference_hf(k, positions).T)


def test_interleaved_equals_half_after_permutation():
    d = 16
    x = torch.randn(3, 9, d, dtype=torch.float64)
    p = rope.layout_permutation(d)
    assert p.shape == (d,) and p.tolist()[:4] == [0, 8, 1, 9]
    positions = torch.arange(9)
    torch.testing.assert_close(
        rope.apply_rope(x[..., p], positions, rope.inv_freq(d), layout="interleaved"),
        rope.apply_rope(x, positions, rope.inv_freq(d), layout="half")[..., p],
    )


def test_layouts_give_different_scores_for_same_raw_vectors():
    d = 16
    q, k = torch.randn(2, 1, d, dtype=torch.float64)
    f = rope.inv_freq(d)
    t, s = torch.tensor([7]), torch.tensor([2])
    half = rope.apply_rope(q, t, f, "half") @ rope.apply_rope(k, s, f, "half").T
    inter = rope.apply_rope(q, t, f, "interleaved") @ rope.apply_rope(k, s, f, "interleaved").T
    assert not torch.allclose(half, inter)


def test_interleaved_pairs_rotate_in_2d():
    x = torch.tensor([[1.0, 0.0, 0.0, 1.0]], dtype=torch.float64)  # pair 0 = (1, 0), pair 1 = (0, 1)
    out = rope.apply_rope(x, torch.tensor([1]), torch.tensor([math.pi / 2, math.pi], dtype=torch.float64), "interleaved")
    torch.testing.assert_close(out, torch.tensor([[0.0, 1.0, 0.0, -1.0]], dtype=torch.float64))


def test_complex_form_equals_real_interleaved():
    x = torch.randn(4, 11, 32, dtype=torch.float64)
    positions = torch.arange(11) * 3
    f = rope.inv_freq(32, base=500.0)
    torch.testing.assert_close(rope.apply_rope_complex(x, positions, f), rope.apply_rope(x, positions, f, "interleaved"))


@pytest.mark.parametrize("layout", rope.LAYOUTS)
def test_relative_property(layout):
    d = 32
    q, k = torch.randn(2, d, dtype=torch.float64)
    f = rope.inv_freq(d)

    def score(t, s):
        qt = rope.apply_rope(q[None], torch.tensor([t]), f, layout)
        ks = rope.apply_rope(k[None], torch.tensor([s]), f, layout)
        return (qt @ ks.T).item()

    for offset in (0, 1, 13, -7, 1000):
        values = [score(t, t - offset) for t in (0, 5, 123, 4000, 100_000)]
        assert max(values) - min(values) < 1e-8
    assert abs(score(10, 3) - score(10, 4)) > 1e-6  # and it does depend on the offset


def test_relative_property_alone_misses_sign_bug():
    """A rotation by -angle also gives offset-only scores: why a reference test is needed too."""
    d = 16
    q, k = torch.randn(2, 1, d, dtype=torch.float64)
    f = rope.inv_freq(d)
    wrong = lambda x, t: rope.apply_rope(x, -t, f)  # noqa: E731
    a = wrong(q, torch.tensor([9])) @ wrong(k, torch.tensor([4])).T
    b = wrong(q, torch.tensor([25])) @ wrong(k, torch.tensor([20])).T
    torch.testing.assert_close(a, b)
    assert not torch.allclose(wrong(q, torch.tensor([9])), rope.apply_rope(q, torch.tensor([9]), f))


def test_float_positions_and_attention_factor():
    x = torch.randn(3, 8, dtype=torch.float64)
    f = rope.inv_freq(8)
    out = rope.apply_rope(x, torch.tensor([0.0, 0.5, 1.0]), f)
    torch.testing.assert_close(out[0], x[0])
    scaled = rope.apply_rope(x, torch.arange(3), f, attention_factor=1.5)
    torch.testing.assert_close(scaled, 1.5 * rope.apply_rope(x, torch.arange(3), f))


def test_float32_angles_are_accurate_at_long_positions():
    x = torch.randn(1, 8)
    pos = torch.tensor([131071])
    out32 = rope.apply_rope(x, pos, rope.inv_freq(8))
    out64 = rope.apply_rope(x.double(), pos, rope.inv_freq(8))
    assert (out32.double() - out64).abs().max() < 1e-5


def test_wavelength_count_head128_base10000():
    lengths = rope.wavelengths(rope.inv_freq(128, 10000.0))
    assert lengths.shape == (64,)
    assert int((lengths > 4096).sum()) == 18
    torch.testing.assert_close(lengths[0], torch.tensor(2 * math.pi, dtype=torch.float64))


def test_decay_bound():
    d = 128
    distances = torch.arange(0, 2000, dtype=torch.float64)
    bound = rope.decay_bound(d, 10000.0, distances)
    assert bound.shape == (2000,)
    assert bound[0].item() == pytest.approx((d / 2 + 1) / 2)
    # brute force the definition at one distance
    theta = rope.inv_freq(d)
    m = 37.0
    s = [sum(complex(math.cos(m * theta[k]), math.sin(m * theta[k])) for k in range(j)) for j in range(1, d // 2 + 1)]
    assert bound[37].item() == pytest.approx(sum(abs(v) for v in s) / (d / 2))
    assert bound[1000] < bound[10] < bound[0]
    assert (bound.diff() > 0).any(), "the bound is not monotone"


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: rope.inv_freq(63), "head_dim"),
        (lambda: rope.inv_freq(0), "head_dim"),
        (lambda: rope.inv_freq(64, base=1.0), "base"),
        (lambda: rope.inv_freq(64, base=0.5), "base"),
        (lambda: rope.apply_rope(torch.randn(5, 8), torch.arange(5), rope.inv_freq(8), layout="llama"), "layout"),
        (lambda: rope.apply_rope(torch.randn(5, 8), torch.arange(4), rope.inv_freq(8)), "positions"),
        (lambda: rope.apply_rope(torch.randn(5, 8), torch.arange(5), rope.inv_freq(16)), "inv_freq"),
        (lambda: rope.apply_rope(torch.randn(5, 7), torch.arange(5), rope.inv_freq(8)), "head_dim"),
        (lambda: rope.apply_rope(torch.randn(8), torch.arange(1), rope.inv_freq(8)), "x"),
        (lambda: rope.decay_bound(64, 10000.0, torch.zeros(2, 2)), "distances"),
    ],
)
def test_bad_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_types():
    with pytest.raises(TypeError, match="head_dim"):
        rope.inv_freq(64.0)
    with pytest.raises(TypeError, match="x"):
        rope.apply_rope([1.0, 2.0], torch.arange(1), rope.inv_freq(2))


@pytest.mark.parametrize("layout", ["half", "interleaved"])
def test_apply_rope_cached_is_differentiable_and_matches_apply_rope(layout):
    """Training goes through apply_rope_cached: its gradient must equal that of the plain formula."""
    torch.manual_seed(0)
    positions, freqs = torch.arange(6), rope.inv_freq(8)
    cos, sin = rope.rope_cos_sin(positions, freqs)  # (6, 4)
    x = torch.randn(2, 6, 8, requires_grad=True)
    weights = torch.randn(2, 6, 8)
    (rope.apply_rope_cached(x, cos, sin, layout) * weights).sum().backward()
    grad_cached = x.grad.clone()
    x.grad = None
    (rope.apply_rope(x, positions, freqs, layout) * weights).sum().backward()
    torch.testing.assert_close(grad_cached, x.grad)
    with pytest.raises(ValueError, match="out"):
        rope.apply_rope_cached(x, cos, sin, layout, out=torch.empty(2, 6, 8))


@pytest.mark.parametrize("layout", ["half", "interleaved"])
def test_apply_rope_cached_equals_apply_rope_with_and_without_out(layout):
    torch.manual_seed(1)
    positions, freqs = torch.arange(7), rope.inv_freq(16, 500.0)
    cos, sin = rope.rope_cos_sin(positions, freqs)  # (7, 8)
    x = torch.randn(3, 7, 16)
    want = rope.apply_rope(x, positions, freqs, layout)
    torch.testing.assert_close(rope.apply_rope_cached(x, cos, sin, layout), want)
    out = torch.empty_like(x)
    assert rope.apply_rope_cached(x, cos, sin, layout, out=out) is out
    torch.testing.assert_close(out, want)
    with pytest.raises(ValueError, match="out"):
        rope.apply_rope_cached(x, cos, sin, layout, out=x)
