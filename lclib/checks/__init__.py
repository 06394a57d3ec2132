"""Checkers for the notebooks' exercises: run the student's function, compare with lclib, and hint.

Each checker returns True and prints one line when the answer is right, raises CheckFailed (an
AssertionError) with a specific hint when it is wrong, and, on an untouched stub (it raises
NotImplementedError), prints that the exercise is not done yet and returns False: the committed
notebooks then show no error output, yet a stub never passes.

The reference is computed before the student's function runs, which gets copies of the inputs;
NaN, inf, None, wrong types and shapes, and the student's own exceptions all become hints. Two
modules are the machinery: `runner` (the pass / not-done / fail contract, and a call that hides the
answer and refuses tampering) and `answers` (reading what the student returned, or a hint). The
others are named after the lclib module they check, with the notebook that calls them:

- `rope` (01): check_rope_interleaved, check_relative_score, check_score_bound (and
  check_first_pair_beyond, which the browser-test fixture uses);
- `scaling` (02): check_yarn_gamma, check_llama3_band_edges, check_dynamic_ntk (and check_ntk_exponent,
  check_yarn_untouched_pairs, for results the notebook derives in its text);
- `dilated` (03): check_union_attention, check_layers_for_full_reach, check_one_pattern_attention;
- `dilated_adapters` (03b): check_answerable_pairs, check_crossover_length;
- `probes` (04): check_bayes_curve, check_wilson;
- `ruler` (05): check_string_match_all, check_effective_length, check_vt_reader;
- `spectrum` (05b): check_critical_dimension;
- `kv` (06): check_cache_bytes, check_decode_bound, check_window_mask;
- `retrieval` (07): check_bm25_term_score, check_choose_k, check_follow_chain.
"""

from . import runner
from .answers import CheckFailed
from .dilated import check_layers_for_full_reach, check_one_pattern_attention, check_union_attention
from .dilated_adapters import check_answerable_pairs, check_crossover_length
from .kv import check_cache_bytes, check_decode_bound, check_window_mask
from .probes import check_bayes_curve, check_wilson
from .retrieval import check_bm25_term_score, check_choose_k, check_follow_chain
from .rope import check_first_pair_beyond, check_relative_score, check_rope_interleaved, check_score_bound
from .ruler import check_effective_length, check_string_match_all, check_vt_reader
from .runner import checker
from .scaling import (check_dynamic_ntk, check_llama3_band_edges, check_ntk_exponent, check_yarn_gamma,
                      check_yarn_untouched_pairs)
from .spectrum import check_critical_dimension

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

runner.seal()  # the comparison functions and lclib's functions as imported: a check refuses if one is replaced
