"""lclib.kv.compression's int8 round trip: its stated bound for every floating dtype and magnitude (issue 29)."""

import pytest
import torch
import torch.nn.functional as F

from lclib.kv import compression as kc

DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
MAGNITUDES = (1e-30, 1e-7, 1e-4, 1e-2, 1.0, 300.0, 6e4, 1e30)


def vectors(dtype: torch.dtype, magnitude: float) -> torch.Tensor:
    """(64, 16) random vectors of about that magnitude, clipped to dtype's range, plus one of its extremes."""
    top = torch.finfo(dtype).max
    x = (torch.randn(64, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * magnitude)
    x[0, :3] = torch.tensor([top, 1.0, -2.0])  # the largest finite value next to small ones
    return x.clamp(-top, top).to(dtype)


@pytest.mark.parametrize("magnitude", MAGNITUDES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_keeps_its_stated_bound(dtype, magnitude):
    """|q * scale - x| <= scale / 2 exactly; read back in x's dtype, plus half a unit in its last place."""
    x = vectors(dtype, magnitude)
    q, scale = kc.quantize_int8(x)
    assert q.dtype == torch.int8 and scale.dtype == dtype and scale.shape == (64, 1)
    exact = q.double() * scale.double()  # no rounding below float64: 8 bits times at most 24
    if dtype != torch.float64:
        err = (exact - x.double()).abs()
        assert bool((err <= scale.double() / 2).all()), f"max err / scale {(err / scale.double()).max():.4f}"
    back = kc.dequantize_int8(q, scale)
    assert back.dtype == dtype and bool(back.isfinite().all())
    info = torch.finfo(dtype)
    ulps = 1.0 if dtype == torch.float64 else 0.5  # float64: this check's own product rounds too
    slack = ulps * info.eps * (exact.abs() + info.smallest_normal)  # rounding q * scale to dtype
    assert bool(((back.double() - x.double()).abs() <= scale.double() / 2 + slack).all())
    torch.testing.assert_close(kc.fake_int8(x), back, atol=0, rtol=0)


def test_issue_29_cases():
    """float16 near 1e-4 broke the bound by 3x; 65504 came back as inf; one inf made the vector NaN."""
    x = vectors(torch.float16, 1e-4)[1:]
    q, scale = kc.quantize_int8(x)
    assert bool(((q.double() * scale.double() - x.double()).abs() <= scale.double() / 2).all())
    top = torch.tensor([65504.0, 1.0, -2.0], dtype=torch.float16)
    assert kc.fake_int8(top).tolist() == [65504.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="x must be finite"):
        kc.fake_int8(torch.tensor([float("inf"), 1.0, -2.0]))


def test_float32_numbers_are_the_old_formula():
    """Valid float32 input gives the numbers it always gave (notebook 06 and the int8 cache rely on them)."""
    x = torch.randn(4, 3, 10, 16, generator=torch.Generator().manual_seed(1))
    q, scale = kc.quantize_int8(x)
    old_scale = x.abs().amax(-1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny) / kc.INT8_MAX
    assert torch.equal(scale, old_scale)
    assert torch.equal(q, torch.round(x / old_scale).clamp(-127, 127).to(torch.int8))
    assert torch.equal(kc.dequantize_int8(q, scale), q.float() * old_scale)


def test_zero_vector_round_trips_to_zero():
    for dtype in DTYPES:
        assert torch.equal(kc.fake_int8(torch.zeros(2, 8, dtype=dtype)), torch.zeros(2, 8, dtype=dtype))


def test_int8_attention_reads_the_round_trip_and_names_the_bad_tensor():
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(1, 2, 6, 8, generator=g) for _ in range(3))
    want = F.scaled_dot_product_attention(q, kc.fake_int8(k), kc.fake_int8(v), is_causal=True)
    assert torch.equal(kc.int8_attention(q, k, v, True), want)
    with pytest.raises(ValueError, match="v must be finite"):
        kc.int8_attention(q, k, v.index_fill(2, torch.tensor([3]), float("nan")), True)
