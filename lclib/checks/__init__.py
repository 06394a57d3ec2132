"""Checkers for the notebooks' exercises: run the student's function, compare with lclib, and hint.

Each checker returns True and prints one line when the answer is right, raises CheckFailed (an
AssertionError) with a specific hint when it is wrong, and, on an untouched stub (it raises
NotImplementedError), prints that the exercise is not done yet and returns False: the committed
notebooks then show no error output, yet a stub never passes.

The reference is computed before the student's function runs, which gets copies of the inputs;
NaN, inf, None, wrong types and shapes, and the student's own exceptions all become hints (see
`common`). One module per notebook topic:

- `rope` (01): check_rope_interleaved, check_relative_score, check_first_pair_beyond;
- `scaling` (02): check_ntk_exponent, check_yarn_untouched_pairs, check_dynamic_ntk;
- `dilated` (03): check_pattern_edges, check_layers_for_full_reach, check_one_pattern_attention;
- `lost_in_the_middle` (04): check_bayes_curve, check_wilson;
- `ruler` (05): check_string_match_all, check_effective_length, check_vt_reader.
"""

from .common import CheckFailed, checker
from .dilated import check_layers_for_full_reach, check_one_pattern_attention, check_pattern_edges
from .lost_in_the_middle import check_bayes_curve, check_wilson
from .rope import check_first_pair_beyond, check_relative_score, check_rope_interleaved
from .ruler import check_effective_length, check_string_match_all, check_vt_reader
from .scaling import check_dynamic_ntk, check_ntk_exponent, check_yarn_untouched_pairs

__all__ = [
    "CheckFailed", "checker",
    "check_rope_interleaved", "check_relative_score", "check_first_pair_beyond",
    "check_ntk_exponent", "check_yarn_untouched_pairs", "check_dynamic_ntk",
    "check_pattern_edges", "check_layers_for_full_reach", "check_one_pattern_attention",
    "check_bayes_curve", "check_wilson",
    "check_string_match_all", "check_effective_length", "check_vt_reader",
]
