"""lclib.dilated: masks, closed-form edge counts, the reference and the fast dilated attention."""

import math

import pytest
import torch
import torch.nn.functional as F

from lclib import dilated
from lclib.dilated import kernel as dkernel

CONFIGS = [  # (seq_len, segment_lengths, dilation_rates, n_head)
    (32, (4, 8, 16), (1, 2, 4), 4),   # n a multiple of every w
    (37, (4, 8, 16), (1, 2, 4), 4),   # n not a multiple: shorter last segments
    (50, (6, 10), (3, 4), 5),         # r does not divide w; some queries selected by no pattern
    (24, (8, 64), (1, 8), 9),         # w > n: effective segment length min(w, n); offsets wrap
]


def qkv(n, heads, head_dim=8, batch=2, seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(3, batch, heads, n, head_dim, generator=gen, dtype=dtype).unbind(0)


def naive_mask(n, w, r, heads, causal):
    """Straight from the definition, with loops: segments of min(w, n), offset j mod r in each."""
    w = min(w, n)
    mask = torch.zeros(heads, n, n, dtype=torch.bool)
    for j in range(heads):
        for start in range(0, n, w):
            kept = list(range(start + j % r, min(start + w, n), r))
            for a in kept:
                for b in kept:
                    if not causal or b <= a:
                        mask[j, a, b] = True
    return mask


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("n,ws,rs,heads", CONFIGS)
def test_mask_matches_definition(n, ws, rs, heads, causal):
    mask = dilated.attention_mask(n, ws, rs, n_head=heads, causal=causal)
    assert mask.shape == (heads, n, n) and mask.dtype == torch.bool
    want = torch.zeros_like(mask)
    for w, r in zip(ws, rs):
        want |= naive_mask(n, w, r, heads, causal)
    assert torch.equal(mask, want)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("n,ws,rs,heads", CONFIGS + [(64, (8, 16, 32, 64), (1, 2, 4, 8), 8), (17, 5, 2, 3)])
def test_edge_counts_equal_mask_counts(n, ws, rs, heads, causal):
    counts = dilated.edge_counts(n, ws, rs, n_head=heads, causal=causal)
    mask = dilated.attention_mask(n, ws, rs, n_head=heads, causal=causal)
    mult = dilated.multiplicity(n, ws, rs, n_head=heads, causal=causal)
    assert counts.distinct_per_head.shape == (heads,) and counts.pattern_sum_per_head.shape == (heads,)
    assert torch.equal(counts.distinct_per_head, mask.sum(dim=(1, 2)))
    assert torch.equal(counts.pattern_sum_per_head, mult.sum(dim=(1, 2)))
    assert counts.distinct_all_heads == int(mask.any(dim=0).sum())


def test_edge_count_closed_forms():
    # one pattern, r | w | n: n * w / r^2 per head (LongNet Sec. 2.2); causal m(m+1)/2 per segment
    assert dilated.edge_counts(4096, 512, 4).pattern_sum_per_head.tolist() == [4096 * 512 // 16]
    assert dilated.edge_counts(4096, 512, 4, causal=True).pattern_sum_per_head.tolist() == [8 * 128 * 129 // 2]
    dense = dilated.edge_counts(1000, 1000, 1)
    assert dense.distinct_all_heads == 1000**2
    assert dilated.edge_counts(1000, 4096, 1, causal=True).distinct_all_heads == 1000 * 1001 // 2
    # all offsets covered: r heads of one pattern reach n * w / r distinct pairs
    assert dilated.edge_counts(256, 64, 4, n_head=4).distinct_all_heads == 256 * 64 // 4


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("n,ws,rs,heads", CONFIGS)
def test_fast_equals_reference(n, ws, rs, heads, causal):
    q, k, v = qkv(n, heads)
    fast = dilated.dilated_attention(q, k, v, ws, rs, causal=causal)
    ref = dilated.dilated_attention_reference(q, k, v, ws, rs, causal=causal)
    assert fast.shape == v.shape and fast.dtype == v.dtype
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-5)
    assert torch.isfinite(fast).all()


def test_fast_lse_chunking(monkeypatch):
    monkeypatch.setattr(dkernel, "LSE_CHUNK", 7)  # forces row chunks inside each block of the chunked softmax
    q, k, v = qkv(40, 2)
    ref = dilated.dilated_attention_reference(q, k, v, (8, 40), (1, 2), causal=True)
    for kernel in dilated.KERNELS:
        out = dilated.dilated_attention(q, k, v, (8, 40), (1, 2), causal=True, kernel=kernel)
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
def test_single_full_pattern_is_dense(causal):
    q, k, v = qkv(33, 3, dtype=torch.float64)
    dense = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    torch.testing.assert_close(dilated.dilated_attention(q, k, v, [33], [1], causal=causal), dense)
    torch.testing.assert_close(dilated.dilated_attention_reference(q, k, v, [33], [1], causal=causal), dense)
    torch.testing.assert_close(dilated.dilated_attention(q, k, v, [64], [1], causal=causal), dense)  # w > n


def test_mixture_is_log_multiplicity_bias_not_union_softmax():
    n, ws, rs, heads = 32, (8, 32), (1, 2), 2
    q, k, v = qkv(n, heads, dtype=torch.float64)
    out = dilated.dilated_attention(q, k, v, ws, rs)
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    union = torch.softmax(scores.masked_fill(~dilated.attention_mask(n, ws, rs, heads), -math.inf), -1) @ v
    biased = torch.softmax(scores + dilated.multiplicity(n, ws, rs, heads).double().log(), -1) @ v
    torch.testing.assert_close(out, biased)
    assert (out - union).abs().max() > 1e-2  # keys in both patterns weigh double: not the union softmax


def test_unselected_queries_get_zero():
    q, k, v = qkv(12, 2)
    out = dilated.dilated_attention(q, k, v, [6], [3])  # head j keeps offsets j mod 3 only
    kept = torch.zeros(2, 12, dtype=torch.bool)
    kept[0, 0::3] = True
    kept[1, 1::3] = True
    assert (out[:, ~kept] == 0).all() and (out[:, kept] != 0).any()


def test_heads_use_their_offsets():
    q, k, v = qkv(16, 3)
    out = dilated.dilated_attention(q, k, v, [16], [2])
    for j in range(3):  # head j = one pattern on positions j % 2, j % 2 + 2, ...
        pos = slice(j % 2, None, 2)
        want = F.scaled_dot_product_attention(q[:, j, pos], k[:, j, pos], v[:, j, pos])
        torch.testing.assert_close(out[:, j, pos], want)


@pytest.mark.parametrize("kwargs,word", [
    (dict(segment_lengths=[4, 8], dilation_rates=[1]), "same length"),
    (dict(segment_lengths=[4], dilation_rates=[0]), "dilation_rates"),
    (dict(segment_lengths=[0], dilation_rates=[1]), "segment_lengths"),
    (dict(segment_lengths=[4], dilation_rates=[8]), "dilation_rates"),
    (dict(segment_lengths=[], dilation_rates=[]), "segment_lengths"),
])
def test_bad_patterns_raise(kwargs, word):
    q, k, v = qkv(8, 2)
    for call in (lambda: dilated.dilated_attention(q, k, v, **kwargs),
                 lambda: dilated.dilated_attention_reference(q, k, v, **kwargs),
                 lambda: dilated.attention_mask(8, **kwargs),
                 lambda: dilated.edge_counts(8, **kwargs)):
        with pytest.raises(ValueError, match=word):
            call()


def test_bad_tensors_raise():
    q, k, v = qkv(8, 2)
    with pytest.raises(ValueError, match="k must"):
        dilated.dilated_attention(q, k[:, :1], v, [4], [1])
    with pytest.raises(ValueError, match="v must"):
        dilated.dilated_attention(q, k, v[:, :1], [4], [1])
    with pytest.raises(ValueError, match="q must"):
        dilated.dilated_attention(q[0], k, v, [4], [1])
    with pytest.raises(ValueError, match="n_head"):
        dilated.attention_mask(8, [4], [1], n_head=0)
    with pytest.raises(ValueError, match="seq_len must"):
        dilated.edge_counts(0, [4], [1])


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("n,ws,rs,heads", CONFIGS[:3])
def test_softmax_kernel_equals_reference(n, ws, rs, heads, causal):
    q, k, v = qkv(n, heads, seed=3)
    ref = dilated.dilated_attention_reference(q, k, v, ws, rs, causal=causal)
    torch.testing.assert_close(dilated.dilated_attention(q, k, v, ws, rs, causal=causal, kernel="softmax"), ref,
                               atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="kernel"):
        dilated.dilated_attention(q, k, v, ws, rs, kernel="flash")


def test_large_scores_stay_exact():
    q, k, v = qkv(24, 2, dtype=torch.float64)
    q = q * 40  # scores in the hundreds: exp would overflow without the max shift
    ref = dilated.dilated_attention_reference(q, k, v, (8, 24), (1, 3), causal=True)
    out = dilated.dilated_attention(q, k, v, (8, 24), (1, 3), causal=True)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, ref)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("n,ws,rs,heads", [(40, (8, 16, 32), (1, 2, 4), 6), (50, (12, 12, 24), (2, 3, 6), 4)])
def test_nested_and_general_counts_agree_with_mask(n, ws, rs, heads, causal):
    # (8, 16, 32)/(1, 2, 4) takes the telescoping path, (12, 12, 24)/(2, 3, 6) inclusion-exclusion
    counts = dilated.edge_counts(n, ws, rs, n_head=heads, causal=causal)
    mask = dilated.attention_mask(n, ws, rs, n_head=heads, causal=causal)
    assert torch.equal(counts.distinct_per_head, mask.sum(dim=(1, 2)))
    assert counts.distinct_all_heads == int(mask.any(dim=0).sum())


def test_reach_by_depth():
    # a path 0 - 1 - 2 - 3: k layers connect positions at most k apart (residual self-loops)
    path = torch.zeros(4, 4, dtype=torch.bool)
    for i in range(3):
        path[i, i + 1] = path[i + 1, i] = True
    assert dilated.reach(path, 1).sum() == 10 and not dilated.reach(path, 2)[0, 3] and dilated.reach(path, 3).all()
    # causal dilated attention never connects query w0 to key w0 - 1 (notebook 03, section 6)
    mask = dilated.attention_mask(64, [8, 16, 32, 64], [1, 2, 4, 8], n_head=8, causal=True).any(0)
    assert not dilated.reach(mask, 8)[8, 7]
    assert dilated.reach(dilated.attention_mask(64, [8, 16, 32, 64], [1, 2, 4, 8], n_head=8).any(0), 3).all()
    with pytest.raises(ValueError, match="layers"):
        dilated.reach(path, 0)
    with pytest.raises(ValueError, match="mask"):
        dilated.reach(path.float(), 2)


def test_make_attention_has_model_signature():
    attention = dilated.make_attention([8, 16], [1, 2])
    q, k, v = qkv(24, 2)
    for causal in (False, True):
        torch.testing.assert_close(attention(q, k, v, causal), dilated.dilated_attention(q, k, v, [8, 16], [1, 2], causal))
    with pytest.raises(ValueError, match="dilation_rates"):
        dilated.make_attention([8], [16])


def _grads(fn, q, k, v, weight):
    """d(sum(weight * fn(q, k, v))) / d(q, k, v): a random weight checks every output entry."""
    q, k, v = (x.detach().clone().requires_grad_() for x in (q, k, v))
    out = fn(q, k, v)
    return out, torch.autograd.grad((out * weight).sum(), (q, k, v))


@pytest.mark.parametrize("kernel", dilated.KERNELS)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("n,ws,rs,heads", CONFIGS)
def test_gradients_match_reference(n, ws, rs, heads, causal, kernel):
    q, k, v = qkv(n, heads, seed=5, dtype=torch.float64)
    weight = torch.randn(v.shape, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    out, fast = _grads(lambda *x: dilated.dilated_attention(*x, ws, rs, causal=causal, kernel=kernel), q, k, v, weight)
    ref_out, ref = _grads(lambda *x: dilated.dilated_attention_reference(*x, ws, rs, causal=causal), q, k, v, weight)
    torch.testing.assert_close(out, ref_out)
    for name, got, want in zip("qkv", fast, ref):
        assert got.shape == want.shape and torch.isfinite(got).all(), name
        assert want.abs().max() > 1e-3, name  # the comparison is not between zeros
        torch.testing.assert_close(got, want, msg=lambda m, name=name: f"d/d{name}: {m}")


@pytest.mark.parametrize("kernel", dilated.KERNELS)
@pytest.mark.parametrize("causal", [False, True])
def test_gradcheck_against_finite_differences(causal, kernel):
    q, k, v = qkv(13, 3, head_dim=4, batch=1, seed=7, dtype=torch.float64)
    inputs = tuple(x.clone().requires_grad_() for x in (q, k, v))
    assert torch.autograd.gradcheck(
        lambda *x: dilated.dilated_attention(*x, (4, 13), (1, 2), causal=causal, kernel=kernel), inputs, fast_mode=True)


@pytest.mark.parametrize("block_rows", [5, 100, 1000])  # blocks of segments of a head, of heads, of batches
@pytest.mark.parametrize("kernel", dilated.KERNELS)
def test_float32_gradients_and_block_chunking(monkeypatch, kernel, block_rows):
    monkeypatch.setattr(dkernel, "BLOCK_ROWS", block_rows)
    monkeypatch.setattr(dkernel, "LSE_CHUNK", 7)   # row chunks inside each block
    q, k, v = qkv(40, 4, seed=8)
    weight = torch.randn(v.shape, generator=torch.Generator().manual_seed(9))
    for causal in (False, True):
        out, fast = _grads(lambda *x: dilated.dilated_attention(*x, (8, 16, 40), (1, 2, 4), causal, kernel=kernel),
                           q, k, v, weight)
        ref_out, ref = _grads(lambda *x: dilated.dilated_attention_reference(*x, (8, 16, 40), (1, 2, 4), causal),
                              q.double(), k.double(), v.double(), weight.double())
        assert out.dtype == torch.float32 and all(g.dtype == torch.float32 for g in fast)
        torch.testing.assert_close(out, ref_out.float(), atol=1e-5, rtol=1e-5)
        for got, want in zip(fast, ref):
            torch.testing.assert_close(got, want.float(), atol=1e-4, rtol=1e-4)


def test_no_grad_path_equals_autograd_path():
    q, k, v = qkv(37, 4, seed=10)
    with torch.no_grad():
        plain = dilated.dilated_attention(q, k, v, (4, 8, 16), (1, 2, 4), causal=True)
    tracked = dilated.dilated_attention(q.requires_grad_(), k, v, (4, 8, 16), (1, 2, 4), causal=True)
    assert tracked.requires_grad and not plain.requires_grad
    assert torch.equal(plain, tracked.detach())


@pytest.mark.parametrize("causal", [False, True])
def test_sdpa_kernel_without_fused_lse(monkeypatch, causal):
    # where PyTorch exposes no lse (CUDA), kernel="sdpa" calls SDPA and recomputes the lse by _block_softmax
    monkeypatch.setattr(dkernel, "_fused_cpu", lambda q, v: False)
    q, k, v = qkv(37, 4, seed=11, dtype=torch.float64)
    weight = torch.randn(v.shape, generator=torch.Generator().manual_seed(12), dtype=torch.float64)
    out, fast = _grads(lambda *x: dilated.dilated_attention(*x, (4, 8, 16), (1, 2, 4), causal), q, k, v, weight)
    ref_out, ref = _grads(lambda *x: dilated.dilated_attention_reference(*x, (4, 8, 16), (1, 2, 4), causal),
                          q, k, v, weight)
    torch.testing.assert_close(out, ref_out)
    for got, want in zip(fast, ref):
        torch.testing.assert_close(got, want)


def test_model_layout_inputs():
    # a model's heads are a transposed view of (batch, seq_len, heads, head_dim): strided, not contiguous
    x = torch.randn(2, 37, 3, 4, 8, generator=torch.Generator().manual_seed(13))  # (B, n, 3, H, D)
    q, k, v = (t.transpose(1, 2) for t in x.unbind(2))                          # (B, H, n, D) views
    assert not q.is_contiguous()
    for kernel in dilated.KERNELS:
        out = dilated.dilated_attention(q, k, v, (8, 16), (1, 2), True, kernel=kernel)
        ref = dilated.dilated_attention_reference(q, k, v, (8, 16), (1, 2), True)
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("m,tile", [(10, 3), (9, 3), (1024, 256), (300, 256), (256, 256)])
def test_causal_pieces_partition_the_block(monkeypatch, m, tile):
    monkeypatch.setattr(dkernel, "CAUSAL_TILE", tile)
    count = torch.zeros(m, m, dtype=torch.long)
    for q0, q1, k0, k1, t, causal in dkernel._pieces(m, True):
        square = torch.ones(q1 - q0, k1 - k0, dtype=torch.long)
        if causal:
            square = square.tril()
        if t:  # a batch of causal tiles along the diagonal
            square = torch.block_diag(*[torch.ones(t, t, dtype=torch.long).tril()] * ((q1 - q0) // t))
        count[q0:q1, k0:k1] += square
    assert torch.equal(count, torch.ones(m, m, dtype=torch.long).tril())  # every causal pair exactly once


@pytest.mark.parametrize("kernel", dilated.KERNELS)
def test_causal_tiles_match_reference(monkeypatch, kernel):
    monkeypatch.setattr(dkernel, "CAUSAL_TILE", 3)  # blocks of up to 16 kept rows cut into tiles of 3
    q, k, v = qkv(37, 4, seed=14, dtype=torch.float64)
    weight = torch.randn(v.shape, generator=torch.Generator().manual_seed(15), dtype=torch.float64)
    out, fast = _grads(lambda *x: dilated.dilated_attention(*x, (16, 32), (1, 2), True, kernel=kernel), q, k, v, weight)
    ref_out, ref = _grads(lambda *x: dilated.dilated_attention_reference(*x, (16, 32), (1, 2), True), q, k, v, weight)
    torch.testing.assert_close(out, ref_out)
    for got, want in zip(fast, ref):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("causal", [False, True])
def test_values_narrower_than_keys_match_the_reference(causal):
    # the CPU flash kernel needs one head size for q, k and v; other value widths take the other path
    g = torch.Generator().manual_seed(3)
    q, k = (torch.randn(1, 2, 64, 8, generator=g, dtype=torch.float64) for _ in range(2))
    v = torch.randn(1, 2, 64, 5, generator=g, dtype=torch.float64)
    ws, rs = [16, 32], [1, 2]
    torch.testing.assert_close(dilated.dilated_attention(q, k, v, ws, rs, causal),
                               dilated.dilated_attention_reference(q, k, v, ws, rs, causal))


@pytest.mark.parametrize("kernel", dilated.KERNELS)
@pytest.mark.parametrize("causal", [False, True])
def test_gradgradcheck_second_derivatives_are_exact(causal, kernel):
    """Double backward (a gradient penalty, a Hessian-vector product) is computed, not silently dropped.

    (6, 10), (3, 4) leaves some queries selected by no pattern: their output 0 must not turn into NaN twice over.
    """
    q, k, v = qkv(11, 3, head_dim=3, batch=1, seed=10, dtype=torch.float64)
    inputs = tuple(x.clone().requires_grad_() for x in (q, k, v))
    fn = lambda *x: dilated.dilated_attention(*x, (6, 10), (3, 4), causal=causal, kernel=kernel)  # noqa: E731
    assert torch.autograd.gradcheck(fn, inputs, fast_mode=True)
    assert torch.autograd.gradgradcheck(fn, inputs, fast_mode=True)
    ref = lambda *x: dilated.dilated_attention_reference(*x, (6, 10), (3, 4), causal=causal)  # noqa: E731
    assert torch.autograd.gradgradcheck(ref, inputs, fast_mode=True)  # the reference, twice differentiable too


@pytest.mark.parametrize("causal", [False, True])
def test_gradient_penalty_equals_the_dense_reference(causal):
    """The case of issue 29: grad with create_graph=True, then backward again, off by 0.2-0.5 before."""
    ws, rs = (4, 8), (1, 2)
    q, k, v = qkv(8, 2, head_dim=4, batch=1, seed=11, dtype=torch.float64)

    def penalised(fn):
        x = tuple(t.clone().requires_grad_() for t in (q, k, v))
        out = fn(*x)
        (g,) = torch.autograd.grad(out.sum(), x[0], create_graph=True)  # d out / dq, itself differentiable
        return torch.autograd.grad(out.square().sum() + g.square().sum(), x)

    fast = penalised(lambda *x: dilated.dilated_attention(*x, ws, rs, causal))
    ref = penalised(lambda *x: dilated.dilated_attention_reference(*x, ws, rs, causal))
    for got, want in zip(fast, ref):
        torch.testing.assert_close(got, want)
    k_only = tuple(t.clone().requires_grad_(i == 1) for i, t in enumerate((q, k, v)))  # q, v without grad
    (gk,) = torch.autograd.grad(dilated.dilated_attention(*k_only, ws, rs, causal).sum(), k_only[1], create_graph=True)
    assert gk.requires_grad


def test_second_derivative_refuses_sizes_beyond_the_dense_cap(monkeypatch):
    monkeypatch.setattr(dkernel, "MAX_MASK_ELEMENTS", 100)
    q, k, v = (x.requires_grad_() for x in qkv(16, 1, batch=1))
    out = dilated.dilated_attention(q, k, v, 4, 2)
    out.sum().backward()  # first order has no such cap
    with pytest.raises(ValueError, match="q: a second derivative"):
        torch.autograd.grad(dilated.dilated_attention(q, k, v, 4, 2).sum(), q, create_graph=True)
