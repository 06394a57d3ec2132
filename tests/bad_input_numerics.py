"""Bad calls of the numerical kernels (issue 29): lclib.kernels and lclib.kv.compression.

Wrong types and dtypes, integer tensors, shapes that would broadcast into a wrong answer, inf and NaN where
int8 has no code, causal attention with queries that see no key, and score matrices beyond kernels.MAX_SCORES.
Loaded by tests/test_bad_input.py (see _register_area_cases).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from lclib import kernels, rope
from lclib.kv import Window
from lclib.kv import compression as kv_compression

NAN, INF = float("nan"), float("inf")
Case = Callable[[str, str, type, str, Callable[[], object]], None]

EXEMPT = {"kernels.check_compiler": "no arguments"}


def x_cos_sin(T: int = 6, hs: int = 8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x (1, 2, T, hs) and the matching cos, sin (T, hs / 2)."""
    cos, sin = rope.rope_cos_sin(torch.arange(T), rope.inv_freq(hs))
    return torch.ones(1, 2, T, hs), cos, sin


def qkv(T: int = 6, S: int | None = None, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, ...]:
    """q (1, 2, T, 4), k, v (1, 2, S, 4), random."""
    g = torch.Generator().manual_seed(0)
    S = T if S is None else S
    return (torch.randn(1, 2, T, 4, generator=g).to(dtype),
            *(torch.randn(1, 2, S, 4, generator=g).to(dtype) for _ in range(2)))


def with_value(x: torch.Tensor, value: float) -> torch.Tensor:
    """x with one entry set to value (inf or NaN)."""
    x = x.clone()
    x.view(-1)[1] = value
    return x


def huge(n: int = 1 << 15) -> torch.Tensor:
    """(1, 1, n, 1) without n floats of memory: an expanded view."""
    return torch.zeros(1, 1, 1, 1).expand(1, 1, n, 1)


def register(case: Case) -> None:
    for target in ("kernels.rope_fused", "kernels.compiled_rope"):
        fn = getattr(kernels, target.split(".")[1])
        case(target, "x-int", TypeError, "x must be",
             lambda fn=fn: fn(x_cos_sin()[0].long(), *x_cos_sin()[1:]))
        case(target, "x-list", TypeError, "x must be", lambda fn=fn: fn([[1.0, 2.0]], *x_cos_sin()[1:]))
        case(target, "cos-int", TypeError, "cos must be",
             lambda fn=fn: fn(x_cos_sin()[0], x_cos_sin()[1].long(), x_cos_sin()[2]))
        case(target, "sin-none", TypeError, "sin must be", lambda fn=fn: fn(*x_cos_sin()[:2], None))
        case(target, "layout-unknown", ValueError, "layout", lambda fn=fn: fn(*x_cos_sin(), "pairs"))
        case(target, "layout-none", ValueError, "layout", lambda fn=fn: fn(*x_cos_sin(), None))
        case(target, "cos-one-row-broadcasts", ValueError, "cos and sin",
             lambda fn=fn: fn(x_cos_sin()[0], x_cos_sin()[1][:1], x_cos_sin()[2][:1]))
        case(target, "sin-other-shape", ValueError, "cos and sin",
             lambda fn=fn: fn(*x_cos_sin()[:2], x_cos_sin()[2][:-1]))
        case(target, "x-odd-head_dim", ValueError, "head_dim",
             lambda fn=fn: fn(torch.ones(1, 2, 6, 7), *x_cos_sin()[1:]))
        case(target, "x-1d", ValueError, "head_dim", lambda fn=fn: fn(torch.ones(8), *x_cos_sin()[1:]))
        case(target, "x-head_dim-zero", ValueError, "head_dim",
             lambda fn=fn: fn(torch.ones(1, 2, 6, 0), torch.ones(6, 0), torch.ones(6, 0)))

    AM = "kernels.attention_materialised"
    am = kernels.attention_materialised
    case(AM, "q-3d", TypeError, "q must be", lambda: am(qkv()[0][0], *qkv()[1:]))
    case(AM, "k-int", TypeError, "k must be", lambda: am(qkv()[0], qkv()[1].long(), qkv()[2]))
    case(AM, "v-list", TypeError, "v must be", lambda: am(*qkv()[:2], [[1.0]]))
    case(AM, "head_dim-disagrees", ValueError, "q .*and k, v", lambda: am(qkv()[0], *(x[..., :2] for x in qkv()[1:])))
    case(AM, "v-length-disagrees", ValueError, "k, v", lambda: am(*qkv()[:2], qkv()[2][:, :, :3]))
    case(AM, "k-float16-q-float32", TypeError, "k and v", lambda: am(qkv()[0], qkv()[1].half(), qkv()[2]))
    case(AM, "causal-str", TypeError, "causal", lambda: am(*qkv(), "no"))
    case(AM, "causal-more-queries-than-keys", ValueError, "q has more queries", lambda: am(*qkv(6, 4)))
    case(AM, "k-no-keys", ValueError, "k must hold", lambda: am(*qkv(2, 0), causal=False))
    case(AM, "head_dim-zero", ValueError, "k must hold", lambda: am(*(x[..., :0] for x in qkv())))
    case(AM, "scores-beyond-cap", ValueError, "q and k .*MAX_SCORES", lambda: am(huge(), huge(), huge()))

    PM = "kernels.peak_memory"
    case(PM, "fn-int", TypeError, "fn must be callable", lambda: kernels.peak_memory(3))
    case(PM, "fn-none", TypeError, "fn must be callable", lambda: kernels.peak_memory(None, torch.ones(2)))
    case(PM, "fn-tensor", TypeError, "fn must be callable", lambda: kernels.peak_memory(torch.ones(2)))

    CL = "kernels.crossover_length"
    cl = kernels.crossover_length
    case(CL, "lengths-none", TypeError, "lengths", lambda: cl(None, [1.0], [1.0]))
    case(CL, "lengths-str", TypeError, "lengths", lambda: cl("12", [1.0, 1.0], [1.0, 1.0]))
    case(CL, "baseline_s-number", TypeError, "baseline_s", lambda: cl([1], 1.0, [1.0]))
    case(CL, "lengths-empty", ValueError, "lengths", lambda: cl([], [], []))
    case(CL, "lengths-float", ValueError, "lengths", lambda: cl([1.0, 2.0], [1.0, 1.0], [1.0, 1.0]))
    case(CL, "lengths-bool", ValueError, "lengths", lambda: cl([True, 2], [1.0, 1.0], [1.0, 1.0]))
    case(CL, "lengths-negative", ValueError, "lengths", lambda: cl([-2, -1], [1.0, 1.0], [1.0, 1.0]))
    case(CL, "lengths-descending", ValueError, "lengths", lambda: cl([2, 1], [1.0, 1.0], [1.0, 1.0]))
    case(CL, "baseline_s-short", ValueError, "baseline_s", lambda: cl([1, 2], [1.0], [1.0, 1.0]))
    case(CL, "baseline_s-inf", ValueError, "baseline_s", lambda: cl([1, 2], [1.0, INF], [1.0, 1.0]))
    case(CL, "candidate_s-nan", ValueError, "candidate_s", lambda: cl([1, 2], [1.0, 1.0], [1.0, NAN]))
    case(CL, "candidate_s-negative", ValueError, "candidate_s", lambda: cl([1, 2], [1.0, 1.0], [-1.0, 1.0]))
    case(CL, "candidate_s-str", ValueError, "candidate_s", lambda: cl([1, 2], [1.0, 1.0], ["1", "2"]))

    W = "kv.compression.Window"
    case(W, "recent-zero", ValueError, "recent", lambda: Window(recent=0))
    case(W, "recent-float", TypeError, "recent", lambda: Window(recent=4.0))
    case(W, "recent-bool", TypeError, "recent", lambda: Window(recent=True))
    case(W, "sinks-negative", ValueError, "sinks", lambda: Window(recent=4, sinks=-1))
    case(W, "sinks-str", TypeError, "sinks", lambda: Window(recent=4, sinks="2"))
    case(W, "visible-q_positions-float", TypeError, "q_positions",
         lambda: Window(4).visible(torch.arange(4.0), torch.arange(4)))
    case(W, "visible-k_positions-2d", TypeError, "k_positions",
         lambda: Window(4).visible(torch.arange(4), torch.arange(4).view(2, 2)))
    case(W, "visible-q_positions-list", TypeError, "q_positions", lambda: Window(4).visible([0, 1], torch.arange(4)))
    case(W, "visible-k_positions-bool", TypeError, "k_positions",
         lambda: Window(4).visible(torch.arange(4), torch.ones(4, dtype=torch.bool)))

    for target in ("kv.compression.quantize_int8", "kv.compression.fake_int8"):
        fn = getattr(kv_compression, target.split(".")[-1])
        case(target, "x-int", TypeError, "x must be", lambda fn=fn: fn(torch.zeros(3, dtype=torch.long)))
        case(target, "x-bool", TypeError, "x must be", lambda fn=fn: fn(torch.zeros(3, dtype=torch.bool)))
        case(target, "x-list", TypeError, "x must be", lambda fn=fn: fn([1.0, 2.0]))
        case(target, "x-0d", ValueError, "x must have shape", lambda fn=fn: fn(torch.tensor(1.0)))
        case(target, "x-head_dim-zero", ValueError, "x must have shape", lambda fn=fn: fn(torch.ones(3, 0)))
        case(target, "x-inf", ValueError, "x must be finite", lambda fn=fn: fn(with_value(torch.ones(2, 4), INF)))
        case(target, "x-nan", ValueError, "x must be finite", lambda fn=fn: fn(with_value(torch.ones(2, 4), NAN)))
        case(target, "x-float16-minus-inf", ValueError, "x must be finite",
             lambda fn=fn: fn(with_value(torch.ones(2, 4, dtype=torch.float16), -INF)))
        case(target, "x-bfloat16-nan", ValueError, "x must be finite",
             lambda fn=fn: fn(with_value(torch.ones(2, 4, dtype=torch.bfloat16), NAN)))

    DQ = "kv.compression.dequantize_int8"
    dq = kv_compression.dequantize_int8
    q8, s8 = kv_compression.quantize_int8(torch.randn(2, 3, 8, generator=torch.Generator().manual_seed(0)))
    case(DQ, "q-float", TypeError, "q must be an int8", lambda: dq(q8.float(), s8))
    case(DQ, "q-int32", TypeError, "q must be an int8", lambda: dq(q8.int(), s8))
    case(DQ, "q-list", TypeError, "q must be an int8", lambda: dq([1, 2], s8))
    case(DQ, "scale-int", TypeError, "scale must be", lambda: dq(q8, s8.long()))
    case(DQ, "scale-number", TypeError, "scale must be", lambda: dq(q8, 0.5))
    case(DQ, "scale-per-element", ValueError, "scale must have shape", lambda: dq(q8, s8.expand(2, 3, 8)))
    case(DQ, "scale-other-vectors", ValueError, "scale must have shape", lambda: dq(q8, s8[:1]))
    case(DQ, "q-0d", ValueError, "scale must have shape", lambda: dq(torch.tensor(3, dtype=torch.int8), s8))
    case(DQ, "scale-negative", ValueError, "scale must be positive", lambda: dq(q8, -s8))
    case(DQ, "scale-zero", ValueError, "scale must be positive", lambda: dq(q8, s8 * 0))
    case(DQ, "scale-nan", ValueError, "scale must be positive", lambda: dq(q8, with_value(s8, NAN)))
    case(DQ, "scale-inf", ValueError, "scale must be positive", lambda: dq(q8, with_value(s8, INF)))

    WA = "kv.compression.window_attention"
    wa = kv_compression.window_attention
    case(WA, "policy-int", TypeError, "policy", lambda: wa(4))
    case(WA, "policy-none", TypeError, "policy", lambda: wa(None))
    case(WA, "attend-k-shorter", ValueError, "k must hold as many positions as q", lambda: wa(Window(3))(*qkv(6, 4), True))
    case(WA, "attend-not-causal", ValueError, "causal must be True", lambda: wa(Window(3))(*qkv(), False))
    case(WA, "attend-causal-str", TypeError, "causal must be a bool", lambda: wa(Window(3))(*qkv(), "yes"))
    case(WA, "attend-q-int", TypeError, "q must be", lambda: wa(Window(3))(qkv()[0].long(), *qkv()[1:], True))
    case(WA, "attend-v-float64", TypeError, "k and v", lambda: wa(Window(3))(*qkv()[:2], qkv()[2].double(), True))

    IA = "kv.compression.int8_attention"
    ia = kv_compression.int8_attention
    case(IA, "k-inf", ValueError, "k must be finite", lambda: ia(qkv()[0], with_value(qkv()[1], INF), qkv()[2], True))
    case(IA, "v-nan", ValueError, "v must be finite", lambda: ia(*qkv()[:2], with_value(qkv()[2], NAN), True))
    case(IA, "k-float16-inf", ValueError, "k must be finite",
         lambda: ia(*(with_value(x, INF) if i == 1 else x for i, x in enumerate(qkv(dtype=torch.float16))), True))
    case(IA, "q-int", TypeError, "q must be", lambda: ia(qkv()[0].long(), *qkv()[1:], True))
    case(IA, "k-3d", TypeError, "k must be", lambda: ia(qkv()[0], qkv()[1][0], qkv()[2], True))
    case(IA, "head_dim-disagrees", ValueError, "disagree", lambda: ia(qkv()[0], *(x[..., :2] for x in qkv()[1:]), True))
    case(IA, "k-float64", TypeError, "k and v", lambda: ia(qkv()[0], qkv()[1].double(), qkv()[2], True))
    case(IA, "causal-none", TypeError, "causal must be a bool", lambda: ia(*qkv(), None))
