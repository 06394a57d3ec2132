"""Checkers for the notebooks' exercises: run the student's function, compare with lclib, and hint.

Each checker returns True and prints one line when the answer is right, raises CheckFailed (an
AssertionError) with a specific hint when it is wrong, and, on an untouched stub (it raises
NotImplementedError), prints that the exercise is not done yet and returns False: the committed
notebooks then show no error output, yet a stub never passes.

The reference is computed before the student's function runs, which gets copies of the inputs;
NaN, inf, None, wrong types and shapes, and the student's own exceptions all become hints (see
`common`). One module per notebook topic:

- `rope` (01): check_rope_interleaved, check_relative_score, check_score_bound (and
  check_first_pair_beyond, which the browser-test fixture uses);
- `scaling` (02): check_yarn_gamma, check_llama3_band_edges, check_dynamic_ntk (and check_ntk_exponent,
  check_yarn_untouched_pairs, for results the notebook derives in its text);
- `dilated` (03): check_union_attention, check_layers_for_full_reach, check_one_pattern_attention;
- `dilated_model` (03b): check_answerable_pairs, check_crossover_length;
- `lost_in_the_middle` (04): check_bayes_curve, check_wilson;
- `ruler` (05): check_string_match_all, check_effective_length, check_vt_reader;
- `spectrum` (05b): check_critical_dimension;
- `inference` (06): check_cache_bytes, check_decode_bound, check_window_mask;
- `retrieval` (07): check_bm25_term_score, check_choose_k, check_follow_chain.
"""

from . import common
from .common import CheckFailed, checker
from .dilated import check_layers_for_full_reach, check_one_pattern_attention, check_union_attention
from .dilated_model import check_answerable_pairs, check_crossover_length
from .inference import check_cache_bytes, check_decode_bound, check_window_mask
from .lost_in_the_middle import check_bayes_curve, check_wilson
from .retrieval import check_bm25_term_score, check_choose_k, check_follow_chain
from .rope import check_first_pair_beyond, check_relative_score, check_rope_interleaved, check_score_bound
from .ruler import check_effective_length, check_string_match_all, check_vt_reader
from .spectrum import check_critical_dimension
from .scaling import (check_dynamic_ntk, check_llama3_band_edges, check_ntk_exponent, check_yarn_gamma,
                      check_yarn_untouched_pairs)

__all__ = [
    "CheckFailed", "checker",
    "check_rope_interleaved", "check_relative_score", "check_score_bound", "check_first_pair_beyond",
    "check_yarn_gamma", "check_llama3_band_edges", "check_dynamic_ntk", "check_ntk_exponent", "check_yarn_untouched_pairs",
    "check_union_attention", "check_layers_for_full_reach", "check_one_pattern_attention",
    "check_answerable_pairs", "check_crossover_length",
    "check_bayes_curve", "check_wilson",
    "check_string_match_all", "check_effective_length", "check_vt_reader",
    "check_critical_dimension",
    "check_cache_bytes", "check_decode_bound", "check_window_mask",
    "check_bm25_term_score", "check_choose_k", "check_follow_chain",
]

common.seal()  # the comparison functions and lclib's functions as imported: a check refuses if one is replaced
