"""Dilated attention as a model's attention function ``(q, k, v, causal) -> out``, with the patterns fixed.

:func:`make_attention` runs the block kernel; :func:`make_bias_attention` the same attention as one dense
SDPA call with the bias log(multiplicity). Each function carries ``spec``, its description as JSON data,
which a checkpoint stores and loading turns back into the function.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch.nn.functional as F
from torch import Tensor

from .. import validate
from .kernel import KERNELS, dilated_attention
from .patterns import check_patterns, multiplicity


def _spec(form: str, segment_lengths: int | Sequence[int], dilation_rates: int | Sequence[int], **extra: str) -> dict:
    """The attention a make_* function returns, as JSON data: lclib.checkpoint.save stores it, load rebuilds it."""
    patterns = check_patterns(segment_lengths, dilation_rates)
    return {"kind": "dilated", "form": form, "segment_lengths": [w for w, _ in patterns],
            "dilation_rates": [r for _, r in patterns], **extra}


def make_attention(segment_lengths: int | Sequence[int], dilation_rates: int | Sequence[int], *,
                   kernel: str = "sdpa") -> Callable[[Tensor, Tensor, Tensor, bool], Tensor]:
    """An attention function ``(q, k, v, causal) -> out`` with the patterns fixed, for a model to plug in.

    The patterns are validated now; each call runs :func:`dilated_attention` on (batch, heads,
    seq_len, head_dim) tensors. The effective segment length min(w, seq_len) adapts to each call.
    """
    check_patterns(segment_lengths, dilation_rates)
    validate.one_of("kernel", kernel, KERNELS)

    def attention(q: Tensor, k: Tensor, v: Tensor, causal: bool = False) -> Tensor:
        return dilated_attention(q, k, v, segment_lengths, dilation_rates, causal, kernel=kernel)

    attention.__doc__ = f"Dilated attention with w={segment_lengths}, r={dilation_rates} (lclib.dilated)."
    attention.spec = _spec("gather", segment_lengths, dilation_rates, kernel=kernel)  # as data, for checkpoint.save
    return attention


def make_bias_attention(segment_lengths: int | Sequence[int], dilation_rates: int | Sequence[int]
                        ) -> Callable[[Tensor, Tensor, Tensor, bool], Tensor]:
    """The same attention as :func:`make_attention`, as one dense SDPA call with the bias log(multiplicity).

    The lse-weighted mixture of the patterns equals dense softmax in which a key reached by c patterns
    counts c times (-inf where none reaches it; lclib.dilated's docstring), so this gives
    dilated_attention's output and gradients up to rounding. It builds an (n_head, seq_len, seq_len)
    bias, cached per (seq_len, n_head, causal): cheaper than many small blocks at a few hundred tokens,
    hopeless at long ones.
    """
    check_patterns(segment_lengths, dilation_rates)
    cache: dict[tuple[int, int, bool], Tensor] = {}

    def attention(q: Tensor, k: Tensor, v: Tensor, causal: bool = False) -> Tensor:
        _, n_head, seq_len, _ = q.shape  # (B, nh, T, hs)
        if (seq_len, n_head, causal) not in cache:
            count = multiplicity(seq_len, segment_lengths, dilation_rates, n_head, causal)  # (nh, T, T)
            cache[(seq_len, n_head, causal)] = count.double().log()  # log 0 = -inf: no pattern links the pair
        bias = cache[(seq_len, n_head, causal)]
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.device, q.dtype))

    attention.__doc__ = f"Dilated attention as a biased dense call, w={segment_lengths}, r={dilation_rates} (lclib.dilated)."
    attention.spec = _spec("bias", segment_lengths, dilation_rates)  # as data, for checkpoint.save
    return attention
