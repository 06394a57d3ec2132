"""Dilated attention from Ding et al., "LongNet: Scaling Transformers to 1,000,000,000 Tokens" (2023).

One pattern (w, r) splits the sequence into segments of ``segment_len`` w, keeps every r-th
position inside each segment (``dilation`` r; head j starts at offset j mod r, LongNet Sec. 2.4)
and runs softmax attention among the kept positions of each segment (Eq. 5-7). Several patterns
are mixed per query with weights proportional to their softmax denominators (Eq. 9-10):

    O = sum_i alpha_i O_i,    alpha_i = exp(lse_i) / sum_j exp(lse_j)

where lse_i is the log-sum-exp of pattern i's scores for that query. This mixture equals dense
softmax over all keys with the bias log(multiplicity): a key reached by two patterns counts twice.
It is *not* the softmax over the union of the patterns' masks.

Conventions: the effective segment length is min(w, seq_len); when seq_len is not a multiple of w
the last segment is shorter (never padded, so no zero keys enter a softmax); the offset is counted
from each segment's start; causal keeps key <= query inside a segment; a query that a pattern does
not select gets output 0 and weight 0 from it (a query no pattern selects gets output 0).

The modules, in reading order:

- ``patterns``: the (w, r) rule (:func:`check_patterns`) and the explicit masks :func:`pattern_mask`,
  :func:`attention_mask`, :func:`multiplicity`;
- ``edges``: :func:`edge_counts` and :func:`distinct_edges` count the pairs in closed form, what
  attention costs; :func:`reach` what several layers connect;
- ``reference``: :func:`dilated_attention_reference` on the explicit seq_len x seq_len masks, for
  teaching and tests, built from one pattern's softmax and the mixture above;
- ``kernel``: :func:`dilated_attention`, which views each pattern's rows as dense blocks, runs a
  fused attention kernel on them and merges the outputs in place with the lse weights, in time
  O(n * sum_i w_i / r_i^2) and, beyond the output, memory for the lse and one block; its gradients
  are exact too (second derivatives through a dense form), so a model can be trained through it;
- ``adapters``: :func:`make_attention` and :func:`make_bias_attention` fix the patterns to give a
  model an attention function ``(q, k, v, causal) -> out``;
- ``distributed`` (``from lclib.dilated import distributed``): LongNet's split of the sequence over
  processes (Sec. 3), with ``processes.launch`` to run it on local processes.

This package re-exports the names of the first five, so ``dilated.edge_counts(...)`` needs no submodule.
"""

from .adapters import make_attention, make_bias_attention
from .edges import MAX_COUNT_HEADS, MAX_COUNT_N, MAX_COUNT_WORK, EdgeCounts, distinct_edges, edge_counts, reach
from .kernel import BLOCK_ROWS, CAUSAL_TILE, KERNELS, LSE_CHUNK, dilated_attention
from .patterns import MAX_MASK_ELEMENTS, attention_mask, multiplicity, pattern_mask
from .reference import dilated_attention_reference

__all__ = [
    "pattern_mask", "attention_mask", "multiplicity", "MAX_MASK_ELEMENTS",
    "EdgeCounts", "edge_counts", "distinct_edges", "reach", "MAX_COUNT_N", "MAX_COUNT_HEADS", "MAX_COUNT_WORK",
    "dilated_attention_reference",
    "dilated_attention", "KERNELS", "BLOCK_ROWS", "CAUSAL_TILE", "LSE_CHUNK",
    "make_attention", "make_bias_attention",
]
