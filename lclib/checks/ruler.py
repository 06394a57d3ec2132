"""Checkers for notebook 05, effective context (RULER-lite): string_match_all, effective length, a VT reader."""

from __future__ import annotations

from collections.abc import Callable

from ..ruler import metrics, tasks
from .answers import CheckFailed, as_int, as_number, as_strings, describe
from .runner import call, checker

HIDE_MATCH = (metrics.string_match_all, metrics.string_match_part, metrics.score)  # each would answer it


@checker
def check_string_match_all(fn: Callable[[str, list[str]], float]) -> str:
    """fn(prediction, references) must return the fraction of references found, case-insensitively."""
    cases = [("The numbers are 123 and 456.", ["123", "456"]), ("only 123 here", ["123", "456", "789", "000"]),
             ("nothing", ["123"]), ("ABCDE, fghij", ["abcde", "FGHIJ", "klmno"]), ("  7  ", ["7"])]
    for pred, refs in cases:
        want = metrics.string_match_all(pred, refs)
        where = f"on {pred!r} with references {refs}"
        got = as_number(call(fn, prediction=pred, references=refs, hide=HIDE_MATCH), where, "a fraction (a float in 0..1)")
        if abs(got - want) > 1e-12:
            if got == metrics.string_match_part(pred, refs):
                raise CheckFailed(f"on {pred!r} with {refs} you return {got}: that is string_match_part (any "
                                  "reference). string_match_all is the fraction of references found.")
            if pred == "ABCDE, fghij":
                raise CheckFailed("RULER compares in lower case: 'ABCDE' in the output matches the reference 'abcde'.")
            raise CheckFailed(f"{where} expected {want}, got {got}")
    return "your string_match_all scores like RULER's."


@checker
def check_effective_length(fn: Callable[[dict, float], int]) -> str:
    """fn(scores, threshold) must return RULER's effective length (contiguous reading, 0 if none)."""
    cases = [({4096: 0.95, 8192: 0.90, 16384: 0.86, 32768: 0.70, 65536: 0.88}, 0.856),
             ({160: 0.9, 320: 0.3, 640: 0.1}, 0.9), ({160: 0.5, 320: 0.2}, 0.6), ({640: 0.8, 160: 0.9, 320: 0.85}, 0.8)]
    for scores, threshold in cases:
        want = metrics.effective_length(scores, threshold)
        where = f"{scores}, threshold {threshold}"
        got = call(fn, scores=scores, threshold=threshold, hide=(metrics.effective_length,))
        if got is None and want == 0:
            raise CheckFailed(f"{where}: return 0 (not None) when even the shortest length misses the threshold.")
        got = as_int(got, where, "a length (an int)")
        if got != want:
            if got == metrics.effective_length(scores, threshold, contiguous=False):
                raise CheckFailed(f"{where}: you return {got}, a length that passes after a "
                                  "shorter one failed. The effective length stops at the first failure.")
            raise CheckFailed(f"{where}: expected {want}, got {got} (sort the lengths first; "
                              "a score equal to the threshold passes).")
    return "largest length before the first miss, as RULER reads its Table 3."


@checker
def check_vt_reader(fn: Callable[[str], list[str]]) -> str:
    """fn(prompt) must return the variables of the asked chain, read from a variable-tracking prompt."""
    cases = [dict(length=400, seed=seed, num_chains=2 if seed % 2 else 1, num_hops=2 + seed % 3, layout="sentences",
                  example=False) for seed in range(6)]  # the lab's "VAR B = VAR A." sentences
    cases += [dict(length=length, seed=seed) for seed, length in ((10, 600), (11, 1200), (12, 2000))]  # RULER's lines
    for case in cases:
        params = {k: v for k, v in case.items() if k not in ("length", "seed")}
        s = tasks.make_sample("vt", case["length"], case["seed"], **params)
        where = f"{case.get('layout', 'lines')} layout, seed {case['seed']}, {case['length']} tokens"
        got = as_strings(call(fn, prompt=s.prompt), where, "a list of variable names (str)")
        if sorted(got) != sorted(s.answers):
            missing, extra = sorted(set(s.answers) - set(got)), sorted(set(got) - set(s.answers))
            repeated = sorted({x for x in got if got.count(x) > 1})
            detail = f"missing {missing}, extra {extra}" if missing or extra else f"repeated {describe(repeated)}"
            raise CheckFailed(f"{where}: {detail}. Start from the variable assigned the asked value (the last "
                              "question's), then follow 'VAR B = VAR A' assignments in order of appearance; RULER "
                              "writes them one per line with no full stop, the lab's layout as sentences.")
    return "your reader follows every chain: the task is answerable at any length, so a miss is the model's."
