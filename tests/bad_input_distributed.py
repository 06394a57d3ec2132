"""Bad calls for lclib.dilated.distributed and lclib.dilated.processes (issue 29), loaded by tests/test_bad_input.py.

Every call here fails in this process, before any process starts or any collective runs: the
counting functions and ``shard`` check their numbers, ``dilated_attention_distributed`` its local
tensors and arguments (no process group is initialised here, so a call that passed would be a
RuntimeError, not the expected error), and ``launch`` everything it can before spawning.
Disagreements between ranks and failing ranks need processes: tests/test_dilated_distributed.py.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from lclib.dilated import distributed as dd
from lclib.dilated.processes import launch

NAN, INF = float("nan"), float("inf")
EXEMPT = {"dilated.distributed.Traffic": "a NamedTuple of results, built by communication_bytes and "
                                         "dilated_attention_distributed"}


def qkv(n: int = 8, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """This process's share: (batch, heads, n / P, head_dim) = (1, 2, n, 4)."""
    return tuple(torch.zeros(1, 2, n, 4, dtype=dtype) for _ in range(3))


def attend(q=None, k=None, v=None, segment_lengths=(8,), dilation_rates=(1,), **kw) -> Callable[[], object]:
    q0, k0, v0 = qkv()
    return lambda: dd.dilated_attention_distributed(q0 if q is None else q, k0 if k is None else k,
                                                    v0 if v is None else v, segment_lengths, dilation_rates, **kw)


def fine(*args: object) -> int:
    """A valid fn for launch: module-level, so spawn can import it."""
    return 0


def register(case: Callable[..., None]) -> None:
    cb = "dilated.distributed.communication_bytes"
    counts = dict(seq_len=64, world_size=2, segment_lengths=[16, 64], dilation_rates=[1, 2], n_head=2, head_dim=8)
    for what, kw, exc, match in [
            ("seq_len-zero", dict(seq_len=0), ValueError, "seq_len"),
            ("seq_len-float", dict(seq_len=64.0), TypeError, "seq_len"),
            ("seq_len-bool", dict(seq_len=True), TypeError, "seq_len"),
            ("seq_len-not-divisible", dict(seq_len=65), ValueError, "world_size"),
            ("world_size-zero", dict(world_size=0), ValueError, "world_size"),
            ("world_size-bool", dict(world_size=True), TypeError, "world_size"),
            ("world_size-str", dict(world_size="2"), TypeError, "world_size"),
            ("world_size-above-seq_len", dict(world_size=128), ValueError, "world_size"),
            ("rank-negative", dict(rank=-1), ValueError, "rank"),
            ("rank-equal-world_size", dict(rank=2), ValueError, "rank"),
            ("rank-bool", dict(rank=True), TypeError, "rank"),
            ("segment_lengths-none", dict(segment_lengths=None), TypeError, "segment_lengths"),
            ("segment_lengths-str", dict(segment_lengths="64", dilation_rates=1), TypeError, "segment_lengths"),
            ("segment_lengths-empty", dict(segment_lengths=[], dilation_rates=[]), ValueError, "segment_lengths"),
            ("segment_lengths-zero", dict(segment_lengths=[0, 64]), ValueError, "segment_lengths"),
            ("segment_lengths-float", dict(segment_lengths=[16.0, 64]), TypeError, "segment_lengths"),
            ("segment_lengths-misaligned", dict(segment_lengths=[24, 64]), ValueError, "segment_lengths"),
            ("dilation_rates-above-segment", dict(dilation_rates=[32, 2]), ValueError, "dilation_rates"),
            ("dilation_rates-zero", dict(dilation_rates=[0, 2]), ValueError, "dilation_rates"),
            ("dilation_rates-float", dict(dilation_rates=1.0, segment_lengths=64), TypeError, "dilation_rates"),
            ("dilation_rates-not-dividing-local", dict(dilation_rates=[1, 3]), ValueError, "dilation_rates"),
            ("dilation_rates-fewer", dict(dilation_rates=[1]), ValueError, "dilation_rates"),
            ("n_head-zero", dict(n_head=0), ValueError, "n_head"),
            ("head_dim-float", dict(head_dim=8.0), TypeError, "head_dim"),
            ("v_dim-zero", dict(v_dim=0), ValueError, "v_dim"),
            ("batch-bool", dict(batch=True), TypeError, "batch"),
            ("element_size-zero", dict(element_size=0), ValueError, "element_size")]:
        case(cb, what, exc, match, lambda kw=kw: dd.communication_bytes(**{**counts, **kw}))

    dcb = "dilated.distributed.dense_communication_bytes"
    dense = dict(seq_len=64, world_size=2, n_head=2, head_dim=8)
    for what, kw, exc, match in [("seq_len-zero", dict(seq_len=0), ValueError, "seq_len"),
                                 ("world_size-zero", dict(world_size=0), ValueError, "world_size"),
                                 ("world_size-not-dividing", dict(world_size=3), ValueError, "world_size"),
                                 ("world_size-nan", dict(world_size=NAN), TypeError, "world_size"),
                                 ("n_head-negative", dict(n_head=-2), ValueError, "n_head"),
                                 ("head_dim-str", dict(head_dim="8"), TypeError, "head_dim"),
                                 ("v_dim-negative", dict(v_dim=-1), ValueError, "v_dim"),
                                 ("element_size-float", dict(element_size=2.0), TypeError, "element_size")]:
        case(dcb, what, exc, match, lambda kw=kw: dd.dense_communication_bytes(**{**dense, **kw}))

    sh = "dilated.distributed.shard"
    x = torch.zeros(1, 2, 8, 4)
    case(sh, "x-list", TypeError, r"\bx\b", lambda: dd.shard([[0.0] * 8], 0, 2))
    case(sh, "x-3d", ValueError, r"\bx\b", lambda: dd.shard(torch.zeros(2, 8, 4), 0, 2))
    case(sh, "x-empty-sequence", ValueError, r"\bx\b", lambda: dd.shard(torch.zeros(1, 2, 0, 4), 0, 2))
    case(sh, "rank-equal-world_size", ValueError, "rank", lambda: dd.shard(x, 2, 2))
    case(sh, "rank-negative", ValueError, "rank", lambda: dd.shard(x, -1, 2))
    case(sh, "rank-bool", TypeError, "rank", lambda: dd.shard(x, True, 2))
    case(sh, "rank-float", TypeError, "rank", lambda: dd.shard(x, 0.0, 2))
    case(sh, "world_size-zero", ValueError, "world_size", lambda: dd.shard(x, 0, 0))
    case(sh, "world_size-bool", TypeError, "world_size", lambda: dd.shard(x, 0, True))
    case(sh, "world_size-above-seq_len", ValueError, "world_size", lambda: dd.shard(x, 0, 16))
    case(sh, "world_size-not-dividing", ValueError, "world_size", lambda: dd.shard(x, 0, 3))

    da = "dilated.distributed.dilated_attention_distributed"
    q, k, v = qkv()
    case(da, "q-list", TypeError, r"\bq\b", attend(q=[[0.0] * 4] * 8))
    case(da, "q-3d", ValueError, r"\bq\b", attend(q=q[0]))
    case(da, "k-shape", ValueError, r"\bk\b", attend(k=k[..., :2]))
    case(da, "v-seq-len", ValueError, r"\bv\b", attend(v=v[:, :, :4]))
    case(da, "q-empty-sequence", ValueError, r"\bq\b", attend(*(x[:, :, :0] for x in qkv())))
    case(da, "dtype-int", TypeError, "dtype", attend(*qkv(dtype=torch.int64)))
    case(da, "dtype-mixed", TypeError, "dtype", attend(k=k.double()))
    case(da, "causal-str", TypeError, "causal", attend(causal="no"))
    case(da, "causal-none", TypeError, "causal", attend(causal=None))
    case(da, "causal-int", TypeError, "causal", attend(causal=1))
    case(da, "segment_lengths-none", TypeError, "segment_lengths", attend(segment_lengths=None))
    case(da, "segment_lengths-zero", ValueError, "segment_lengths", attend(segment_lengths=[0]))
    case(da, "dilation_rates-above-segment", ValueError, "dilation_rates", attend(dilation_rates=[16]))
    case(da, "dilation_rates-fewer", ValueError, "dilation_rates", attend(segment_lengths=[4, 8]))

    la = "dilated.processes.launch"
    case(la, "fn-not-callable", TypeError, r"\bfn\b", lambda: launch("fine", 2))
    case(la, "fn-lambda-spawn", TypeError, r"\bfn\b", lambda: launch(lambda: 0, 2))
    case(la, "args-not-picklable-spawn", TypeError, "args", lambda: launch(repr, 2, lambda: 0))
    case(la, "world_size-zero", ValueError, "world_size", lambda: launch(fine, 0))
    case(la, "world_size-bool", TypeError, "world_size", lambda: launch(fine, True))
    case(la, "world_size-float", TypeError, "world_size", lambda: launch(fine, 2.0))
    case(la, "world_size-str", TypeError, "world_size", lambda: launch(fine, "2"))
    case(la, "world_size-absurd", ValueError, "world_size", lambda: launch(fine, 10**6))
    case(la, "timeout-zero", ValueError, "timeout", lambda: launch(fine, 2, timeout=0))
    case(la, "timeout-negative", ValueError, "timeout", lambda: launch(fine, 2, timeout=-1.0))
    case(la, "timeout-nan", ValueError, "timeout", lambda: launch(fine, 2, timeout=NAN))
    case(la, "timeout-inf", ValueError, "timeout", lambda: launch(fine, 2, timeout=INF))
    case(la, "timeout-str", TypeError, "timeout", lambda: launch(fine, 2, timeout="60"))
    case(la, "timeout-bool", TypeError, "timeout", lambda: launch(fine, 2, timeout=True))
    case(la, "backend-unknown", ValueError, "backend", lambda: launch(fine, 2, backend="tcp"))
    case(la, "backend-none", ValueError, "backend", lambda: launch(fine, 2, backend=None))
    if not torch.distributed.is_nccl_available():
        case(la, "backend-nccl-unavailable", ValueError, "backend", lambda: launch(fine, 2, backend="nccl"))
    case(la, "start_method-unknown", ValueError, "start_method", lambda: launch(fine, 2, start_method="thread"))
