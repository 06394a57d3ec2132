"""lclib.dilated_distributed: LongNet's sequence-parallel dilated attention on 2 and 4 gloo processes.

Spawning is slow (each process imports torch), so one launch per world size runs every case, and
the tests compare what the ranks returned with single-process lclib.dilated on the whole sequence.
"""

import math

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F

from lclib import dilated
from lclib import dilated_distributed as dd

HEAD_DIM, V_DIM, BATCH = 8, 6, 2


def geometric(n, w0):
    """LongNet's schedule up to n: w = w0 2^i, r = 2^i."""
    count = int(math.log2(n // w0)) + 1
    return [w0 * 2**i for i in range(count)], [2**i for i in range(count)]


CASES = {  # world size -> [(name, n, heads, segment_lengths, dilation_rates, causal, dtype)]
    2: [("geometric", 256, 4, *geometric(256, 32), False, torch.float32),     # L=128: 3 local, 1 spanning
        ("geometric causal", 256, 4, *geometric(256, 32), True, torch.float32),
        ("dense", 256, 3, [256], [1], True, torch.float64)],
    4: [("geometric", 512, 5, *geometric(512, 64), False, torch.float32),     # L=128: 2 local, 2 spanning
        ("geometric causal", 512, 5, *geometric(512, 64), True, torch.float32),
        # w=384: ranks 0-2 share a segment, rank 3 holds the short last one alone; w=1024 > n; 5 heads, r=8
        ("mixed", 512, 5, [128, 384, 1024], [2, 4, 8], False, torch.float64),
        ("mixed causal", 512, 5, [128, 384, 1024], [2, 4, 8], True, torch.float64),
        ("dense", 512, 2, [512], [1], False, torch.float64)],
}


def inputs(n, heads, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q, k = torch.randn(2, BATCH, heads, n, HEAD_DIM, generator=gen, dtype=dtype).unbind(0)
    return q, k, torch.randn(BATCH, heads, n, V_DIM, generator=gen, dtype=dtype)


def run_cases(cases):
    """Runs on every rank: each case on this rank's share, then two bad inputs (their error messages)."""
    rank, world = dist.get_rank(), dist.get_world_size()
    results = []
    for _, n, heads, ws, rs, causal, dtype in cases:
        q, k, v = (dd.shard(x, rank, world) for x in inputs(n, heads, dtype))
        results.append(dd.dilated_attention_distributed(q, k, v, ws, rs, causal))
    errors = []
    q, k, v = (dd.shard(x, rank, world) for x in inputs(64 * world, 2, torch.float32))
    for bad in ((q[:, :, : 32 + 8 * rank], k[:, :, : 32 + 8 * rank], v[:, :, : 32 + 8 * rank]),  # n / P differs
                (q, k[:, :1], v)):                                                            # k not like q
        try:
            dd.dilated_attention_distributed(*bad, [16], [1])
            errors.append(None)
        except ValueError as e:
            errors.append(str(e))
    return results, errors


@pytest.fixture(scope="module", params=[(2, "spawn"), (4, "fork")], ids=["P2-spawn", "P4-fork"])
def launched(request):
    """P=2 through the default spawn (fresh interpreters: about 12 s here); P=4 forked from this
    process, which already imported torch (under a second; fine on the CPU, not with CUDA)."""
    world, start_method = request.param
    return world, CASES[world], dd.launch(run_cases, world, CASES[world], timeout=180, start_method=start_method)


def test_output_equals_single_process(launched):
    world, cases, ranks = launched
    for i, (name, n, heads, ws, rs, causal, dtype) in enumerate(cases):
        q, k, v = inputs(n, heads, dtype)
        got = torch.cat([results[i][0] for results, _ in ranks], dim=2)      # (B, H, n, Dv)
        assert got.shape == (BATCH, heads, n, V_DIM) and got.dtype == dtype, name
        want = dilated.dilated_attention(q, k, v, ws, rs, causal)
        tol = 1e-5 if dtype == torch.float32 else 1e-10
        torch.testing.assert_close(got, want, atol=tol, rtol=0, msg=f"{name}, P={world}")
        if dtype == torch.float64:
            torch.testing.assert_close(got, dilated.dilated_attention_reference(q, k, v, ws, rs, causal),
                                       atol=1e-10, rtol=0, msg=f"{name}, P={world}")
        if name == "dense":
            torch.testing.assert_close(got, F.scaled_dot_product_attention(q, k, v, is_causal=causal),
                                       atol=1e-10, rtol=0)


def test_measured_bytes_equal_formula(launched):
    world, cases, ranks = launched
    for i, (name, n, heads, ws, rs, causal, dtype) in enumerate(cases):
        size = torch.finfo(dtype).bits // 8
        row = BATCH * heads * (HEAD_DIM + V_DIM) * size                      # one sparsified key + value
        local_len = n // world
        for rank, (results, _) in enumerate(ranks):
            measured = results[i][1]
            assert measured == dd.communication_bytes(n, world, ws, rs, heads, HEAD_DIM, V_DIM, BATCH, size, rank)
            if name.startswith("geometric"):
                # Eq. 12: a spanning pattern receives (w / L - 1) L / r = w0 - L / r rows, whatever n.
                want = [0 if w <= local_len else (ws[0] - local_len // r) * row for w, r in zip(ws, rs)]
                assert list(measured.per_pattern) == want and 0 < measured.received < len(ws) * ws[0] * row
            if name == "dense":
                assert measured.received == dd.dense_communication_bytes(n, world, heads, HEAD_DIM, V_DIM, BATCH, size)
                assert measured.received == (world - 1) * local_len * row
    mixed = [ranks[r][0][2][1].per_pattern for r in range(world)] if world == 4 else None
    if mixed is not None:  # w=384: ranks 0-2 receive 2 peers' L/4 rows; rank 3 is alone and receives nothing
        row = BATCH * 5 * (HEAD_DIM + V_DIM) * 8
        assert [p[1] for p in mixed] == [2 * 32 * row] * 3 + [0]
        assert [p[0] for p in mixed] == [0] * 4 and [p[2] for p in mixed] == [3 * 16 * row] * 4


def test_bad_input_raises_on_every_rank(launched):
    _, _, ranks = launched
    for _, errors in ranks:
        assert "same shape" in errors[0]
        assert "k must have the shape of q" in errors[1]


def test_geometric_cost_per_all_gather_is_constant_in_n():
    """Fixed tokens per process, n growing to w0 L (the largest r = n / w0 still divides L): each
    pattern's bytes stay put, while dense attention's grow with n."""
    local_len, w0, heads = 1024, 256, 4
    row = heads * 2 * 64 * 2
    previous = None
    for n in (2**12, 2**14, 2**16, 2**18):
        ws, rs = geometric(n, w0)
        traffic = dd.communication_bytes(n, n // local_len, ws, rs, heads, 64, element_size=2, rank=n // local_len - 1)
        assert all(b == (0 if w <= local_len else (w0 - local_len // r) * row)
                   for b, w, r in zip(traffic.per_pattern, ws, rs))
        assert max(traffic.per_pattern) < w0 * row
        if previous is not None:  # two more patterns per factor 4: the total grows by < 2 w0 rows
            assert traffic.per_pattern[: len(previous.per_pattern)] == previous.per_pattern
            assert traffic.received - previous.received < 2 * w0 * row
        dense = dd.dense_communication_bytes(n, n // local_len, heads, 64, element_size=2)
        assert dense == (n - local_len) * row
        previous = traffic


def test_bad_arguments():
    with pytest.raises(ValueError, match="seq_len must be divisible"):
        dd.communication_bytes(1000, 3, [8], [1], 2, 8)
    with pytest.raises(ValueError, match="seq_len must be divisible"):
        dd.shard(torch.zeros(1, 2, 10, 4), 0, 4)
    with pytest.raises(ValueError, match="w=192 must divide or be a multiple"):
        dd.communication_bytes(1024, 4, [192], [1], 2, 8)                   # L = 256
    with pytest.raises(ValueError, match="r=3 must divide"):
        dd.communication_bytes(1024, 4, [768], [3], 2, 8)
    with pytest.raises(ValueError, match="r=512 must divide"):  # geometric schedule past n = w0 L
        dd.communication_bytes(1024, 4, *geometric(1024, 2), 2, 8)
    with pytest.raises(ValueError, match="rank must be"):
        dd.shard(torch.zeros(1, 2, 8, 4), 4, 4)
    with pytest.raises(ValueError, match="same length"):
        dd.communication_bytes(64, 2, [8, 16], [1], 2, 8)
    with pytest.raises(ValueError, match="head_dim must be"):
        dd.dense_communication_bytes(64, 2, 2, 0)
    with pytest.raises(ValueError, match="world_size must be"):
        dd.launch(run_cases, 0, [])
    assert dd.shard(torch.arange(8.0).view(1, 1, 8, 1), 3, 4).flatten().tolist() == [6.0, 7.0]
    q, k, v = inputs(8, 1, torch.float32)
    with pytest.raises(ValueError, match="k must have the shape of q"):
        dd.dilated_attention_distributed(q, k[..., :4], v, [8], [1])
    with pytest.raises(TypeError, match="share one floating-point dtype"):
        dd.dilated_attention_distributed(q, k.double(), v, [8], [1])
    with pytest.raises(ValueError, match="dilation_rates must be"):
        dd.dilated_attention_distributed(q, k, v, [8], [16])
    if not dist.is_initialized():
        with pytest.raises(RuntimeError, match="torch.distributed initialised"):
            dd.dilated_attention_distributed(q, k, v, [8], [1])


def fail_on_rank_one():
    if dist.get_rank() == 1:
        raise ValueError("rank one refuses")
    return dist.get_rank()


def test_launch_reports_a_failing_rank():
    with pytest.raises(RuntimeError, match="(?s)rank 1 of 2 failed.*rank one refuses"):
        dd.launch(fail_on_rank_one, 2, start_method="fork", timeout=60)
