"""While a student's function runs, the library functions that are the exercise's answer raise."""

import pytest
import torch

from lclib import checks, rope
from lclib.checks import common
from lclib.rope import apply_rope  # imported by name, as a student might
from lclib.ruler import metrics


def test_hidden_function_raises_inside_and_is_restored_after():
    x, pos, freqs = torch.randn(1, 4, 8), torch.arange(4), rope.inv_freq(8)
    before = rope.apply_rope(x, pos, freqs)
    with common.hidden(rope.apply_rope):
        with pytest.raises(RuntimeError, match="rope.apply_rope"):
            apply_rope(x, pos, freqs)  # the name imported before the block is the same function object
        assert torch.equal(rope.inv_freq(8), freqs)  # what is not hidden works
    torch.testing.assert_close(apply_rope(x, pos, freqs), before, rtol=0, atol=0)


def test_hidden_is_restored_when_the_block_raises():
    with pytest.raises(ZeroDivisionError):
        with common.hidden(metrics.string_match_all):
            1 / 0
    assert metrics.string_match_all("a 1", ["1"]) == 1.0


def test_hidden_refuses_what_it_cannot_swap():
    with pytest.raises(TypeError, match="plain module-level functions"):
        with common.hidden(torch.sin):
            pass


def test_call_turns_a_library_call_into_a_hint():
    with pytest.raises(common.CheckFailed, match="calls lclib's own rope.apply_rope.*write it yourself"):
        common.call(lambda x, p, f: apply_rope(x, p, f), hide=(rope.apply_rope,),
                    x=torch.randn(1, 2, 4), positions=torch.arange(2), inv_freq=rope.inv_freq(4))


@pytest.mark.parametrize("check, cheat", [
    (checks.check_string_match_all, lambda prediction, references: metrics.string_match_all(prediction, references)),
    (checks.check_string_match_all, lambda prediction, references: metrics.score("niah", [prediction], [references])),
    (checks.check_effective_length, lambda scores, threshold: metrics.effective_length(scores, threshold)),
])
def test_ruler_checkers_reject_the_library_answer(check, cheat, capsys):
    with pytest.raises(checks.CheckFailed, match="write it yourself"):
        check(cheat)


@pytest.mark.parametrize("check, cheat", [
    (checks.check_choose_k, lambda sizes, fixed, budget: __import__("lclib.checks.retrieval", fromlist=["_"])._choose_k(sizes, fixed, budget)),
    (checks.check_answerable_pairs, lambda mask, layers, n: __import__("lclib.checks.dilated_model", fromlist=["_"])._answerable(mask, layers, n)),
    (checks.check_crossover_length, lambda lengths, dense, sparse: __import__("lclib.checks.dilated_model", fromlist=["_"])._crossover(lengths, dense, sparse)),
    (checks.check_crossover_length, lambda lengths, dense, sparse: __import__("lclib.kernels", fromlist=["_"]).crossover_length(lengths, dense, sparse)),
    (checks.check_yarn_gamma, lambda f, L, bf=32.0, bs=1.0: __import__("lclib.checks.scaling", fromlist=["_"])._paper_gamma(f, L, bf, bs)),
])
def test_checkers_reject_their_own_private_references(check, cheat):
    """A checker's reference lives in lclib.checks; importing it from there is no more an answer than the library's."""
    with pytest.raises(checks.CheckFailed, match="write it yourself"):
        check(cheat)
