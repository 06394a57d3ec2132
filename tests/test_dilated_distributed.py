"""lclib.dilated.distributed: LongNet's sequence-parallel dilated attention on 2 and 4 gloo processes.

Spawning is slow (each process imports torch), so one launch per world size runs every case, and
the tests compare what the ranks returned with single-process lclib.dilated on the whole sequence.
"""

import math
import os
import time

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F

from lclib import dilated
from lclib.dilated import distributed as dd
from lclib.dilated.processes import launch

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
    """Runs on every rank: each case on this rank's share (with the gradients of q, k, v in float64),
    then bad inputs and arguments the ranks disagree on (the error each rank raised, or None)."""
    rank, world = dist.get_rank(), dist.get_world_size()
    results, grads = [], []
    for _, n, heads, ws, rs, causal, dtype in cases:
        grad = dtype == torch.float64
        q, k, v = (dd.shard(x, rank, world).requires_grad_(grad) for x in inputs(n, heads, dtype))
        out, traffic = dd.dilated_attention_distributed(q, k, v, ws, rs, causal)
        results.append((out.detach(), traffic))
        if grad:
            (out * dd.shard(weights(out.shape[:2] + (n, V_DIM)), rank, world)).sum().backward()
            grads.append((q.grad, k.grad, v.grad))
        else:
            grads.append(None)
    q, k, v = (dd.shard(x, rank, world) for x in inputs(64 * world, 2, torch.float32))
    last = world - 1
    bad = [((q[:, :, : 32 + 8 * rank], k[:, :, : 32 + 8 * rank], v[:, :, : 32 + 8 * rank]), {}),  # n / P differs
           ((q, k[:, :1], v), {}),                                                           # k not like q on all
           ((q, k, v), dict(causal=rank == 0)),                                               # causal differs
           ((q, k, v, [16] if rank else [32], [1]), {}),                                      # segment lengths differ
           (tuple(x.double() if rank == last else x for x in (q, k, v)), {}),                 # dtype differs
           ((q, k, v), dict(causal="yes" if rank == last else False)),                        # bad on the last rank
           (tuple(x.requires_grad_(rank == 0) for x in (q.clone(), k.clone(), v.clone())), {})]  # gradients differ
    errors = []
    for args, kw in bad:
        try:
            dd.dilated_attention_distributed(*args, *([[16], [1]] if len(args) == 3 else []), **kw)
            errors.append(None)
        except (ValueError, TypeError) as e:
            errors.append(f"{type(e).__name__}: {e}")
    return results, grads, errors


def weights(shape):
    """A fixed random cotangent, so that every output row weighs in the gradient differently."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


@pytest.fixture(scope="module", params=[(2, "spawn"), (4, "fork")], ids=["P2-spawn", "P4-fork"])
def launched(request):
    """P=2 through the default spawn (fresh interpreters: about 12 s here); P=4 forked from this
    process, which already imported torch (under a second; fine on the CPU, not with CUDA)."""
    world, start_method = request.param
    return world, CASES[world], launch(run_cases, world, CASES[world], timeout=180, start_method=start_method)


def test_output_equals_single_process(launched):
    world, cases, ranks = launched
    for i, (name, n, heads, ws, rs, causal, dtype) in enumerate(cases):
        q, k, v = inputs(n, heads, dtype)
        got = torch.cat([results[i][0] for results, _, _ in ranks], dim=2)   # (B, H, n, Dv)
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
        for rank, (results, _, _) in enumerate(ranks):
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


def test_gradients_equal_single_process(launched):
    """The all-gather's backward sums the peers' gradients of each process's keys and values."""
    world, cases, ranks = launched
    for i, (name, n, heads, ws, rs, causal, dtype) in enumerate(cases):
        if dtype != torch.float64:
            continue
        q, k, v = (x.requires_grad_() for x in inputs(n, heads, dtype))
        (dilated.dilated_attention(q, k, v, ws, rs, causal) * weights((BATCH, heads, n, V_DIM))).sum().backward()
        for j, want in enumerate((q.grad, k.grad, v.grad)):
            got = torch.cat([grads[i][j] for _, grads, _ in ranks], dim=2)
            torch.testing.assert_close(got, want, atol=1e-10, rtol=0, msg=f"d/d{'qkv'[j]}, {name}, P={world}")


def test_bad_input_and_disagreement_raise_on_every_rank(launched):
    """Every rank raises, naming the argument and each rank's value (none hangs, none runs on)."""
    world, _, ranks = launched
    last = world - 1
    for rank, (_, _, errors) in enumerate(ranks):
        assert errors[0].startswith("ValueError: q.shape") and "must be the same on every process" in errors[0]
        assert f"rank {last}: ({BATCH}, 2, {32 + 8 * last}, {HEAD_DIM})" in errors[0]
        assert "k must have the shape of q" in errors[1]
        assert errors[2] == "ValueError: causal must be the same on every process, got " + \
            ", ".join(f"rank {r}: {r == 0}" for r in range(world))
        assert errors[3].startswith("ValueError: segment_lengths, dilation_rates must be the same") and \
            "rank 0: [(32, 1)], rank 1: [(16, 1)]" in errors[3]
        assert errors[4].startswith("ValueError: dtype must be the same") and f"rank {last}: torch.float64" in errors[4]
        if rank == last:
            assert errors[5] == "TypeError: causal must be a bool, got 'yes'"
        else:
            assert errors[5] == f"ValueError: rank {last} of {world} refused its input, so every process stops: " \
                                "TypeError: causal must be a bool, got 'yes'"
        assert errors[6].startswith("ValueError: requires_grad") and "rank 0: True, rank 1: False" in errors[6]


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
        launch(run_cases, 0, [])
    assert dd.shard(torch.arange(8.0).view(1, 1, 8, 1), 3, 4).flatten().tolist() == [6.0, 7.0]
    q, k, v = inputs(8, 1, torch.float32)
    with pytest.raises(ValueError, match="k must have the shape of q"):
        dd.dilated_attention_distributed(q, k[..., :4], v, [8], [1])
    with pytest.raises(TypeError, match="k must have the dtype of q"):
        dd.dilated_attention_distributed(q, k.double(), v, [8], [1])
    with pytest.raises(ValueError, match=r"dilation_rates\[0\] must not exceed"):
        dd.dilated_attention_distributed(q, k, v, [8], [16])
    if not dist.is_initialized():
        with pytest.raises(RuntimeError, match="torch.distributed initialised"):
            dd.dilated_attention_distributed(q, k, v, [8], [1])


def fail_on_rank_one(how):
    """Rank 1 fails at once while rank 0 waits for it in a collective, which then fails too."""
    if dist.get_rank() == 1:
        if how == "raise":
            raise ValueError("boom")
        os._exit(3)  # dies without a word, as a killed process does
    dist.all_reduce(torch.ones(1))
    return dist.get_rank()


def sleep(seconds):
    time.sleep(seconds)


def test_launch_raises_the_first_failure_not_the_peers_consequences():
    """Rank 0's own error is a closed connection; the one raised is rank 1's, with its type and traceback."""
    with pytest.raises(ValueError, match=r"^rank 1 of 2 failed first: boom$") as info:
        launch(fail_on_rank_one, 2, "raise", start_method="fork", timeout=60)
    assert "in fail_on_rank_one" in str(info.value.__cause__) and 'ValueError("boom")' in str(info.value.__cause__)
    with pytest.raises(RuntimeError, match=r"rank 1 of 2 failed first: it exited with code 3 without a result"):
        launch(fail_on_rank_one, 2, "exit", start_method="fork", timeout=60)


def test_launch_stops_ranks_past_the_timeout():
    start = time.monotonic()
    with pytest.raises(TimeoutError, match=r"ranks \[0, 1\] of 2 were still running after timeout=1 s"):
        launch(sleep, 2, 60, start_method="fork", timeout=1)
    assert time.monotonic() - start < 30
