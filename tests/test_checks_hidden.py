"""While a student's function runs, the functions that are the exercise's answer raise (the library's, the checkers'
own, bm25s), and what it changes in torch, numpy or lclib is put back and refused."""

import pytest
import torch

from lclib import checks, rope
from lclib.checks import runner
from lclib.rope import apply_rope  # imported by name, as a student might
from lclib.ruler import metrics


def test_hidden_function_raises_inside_and_is_restored_after():
    x, pos, freqs = torch.randn(1, 4, 8), torch.arange(4), rope.inv_freq(8)
    before = rope.apply_rope(x, pos, freqs)
    with runner.hidden(rope.apply_rope):
        with pytest.raises(RuntimeError, match="rope.apply_rope"):
            apply_rope(x, pos, freqs)  # the name imported before the block is the same function object
        assert torch.equal(rope.inv_freq(8), freqs)  # what is not hidden works
    torch.testing.assert_close(apply_rope(x, pos, freqs), before, rtol=0, atol=0)


def test_hidden_is_restored_when_the_block_raises():
    with pytest.raises(ZeroDivisionError):
        with runner.hidden(metrics.string_match_all):
            1 / 0
    assert metrics.string_match_all("a 1", ["1"]) == 1.0


def test_hidden_refuses_what_it_cannot_swap():
    with pytest.raises(TypeError, match="plain module-level functions"):
        with runner.hidden(torch.sin):
            pass


def test_call_turns_a_library_call_into_a_hint():
    with pytest.raises(checks.CheckFailed, match="calls lclib's own rope.apply_rope.*write it yourself"):
        runner.call(lambda x, p, f: apply_rope(x, p, f), hide=(rope.apply_rope,),
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
    (checks.check_answerable_pairs, lambda mask, layers, n: __import__("lclib.checks.dilated_adapters", fromlist=["_"])._answerable(mask, layers, n)),
    (checks.check_crossover_length, lambda lengths, dense, sparse: __import__("lclib.checks.dilated_adapters", fromlist=["_"])._crossover(lengths, dense, sparse)),
    (checks.check_crossover_length, lambda lengths, dense, sparse: __import__("lclib.kernels", fromlist=["_"]).crossover_length(lengths, dense, sparse)),
    (checks.check_yarn_gamma, lambda f, L, bf=32.0, bs=1.0: __import__("lclib.checks.scaling", fromlist=["_"])._paper_gamma(f, L, bf, bs)),
])
def test_checkers_reject_their_own_private_references(check, cheat):
    """A checker's reference lives in lclib.checks; importing it from there is no more an answer than the library's."""
    with pytest.raises(checks.CheckFailed, match="write it yourself"):
        check(cheat)


def test_a_hidden_function_whose_code_is_put_back_is_caught_at_the_end():
    from lclib.checks import dilated_adapters

    saved = dilated_adapters._crossover.__code__  # taken before the check, put back inside the student's function

    def put_back(lengths, dense_s, dilated_s):
        dilated_adapters._crossover.__code__ = saved
        return dilated_adapters._crossover(lengths, dense_s, dilated_s)

    with pytest.raises(checks.CheckFailed, match="checker's own checks.dilated_adapters._crossover"):
        checks.check_crossover_length(put_back)
    assert dilated_adapters._crossover.__code__ is saved


def test_hidden_swaps_a_function_named_twice_once():
    with runner.hidden(metrics.string_match_all, metrics.string_match_all):
        pass
    assert metrics.string_match_all("a 1", ["1"]) == 1.0


def test_functions_of_a_library_unwraps_its_static_methods():
    import bm25s
    import bm25s.scoring

    found = runner.functions_of(bm25s.BM25, bm25s.scoring)
    assert {bm25s.BM25.index, bm25s.BM25.get_scores, bm25s.BM25._np_csc, bm25s.scoring._score_idf_lucene} <= set(found)
    assert all(f.__module__.startswith("bm25s") for f in found)


def _right_mask(seq_len, recent, sinks):
    i, j = torch.arange(seq_len)[:, None], torch.arange(seq_len)[None, :]
    return (j <= i) & ((j < sinks) | (j > i - recent))


def test_a_name_the_answer_rebinds_is_put_back_and_the_answer_refused():
    from lclib import kv

    original = kv.Window.visible

    def rebinds(seq_len, recent, sinks):
        rope.inv_freq = lambda *a, **k: None  # an lclib function
        kv.Window.visible = lambda self, q, k: _right_mask(len(q), 1, 0)  # a method the checker calls next
        return _right_mask(seq_len, recent, sinks)

    inv_freq = rope.inv_freq
    try:
        with pytest.raises(checks.CheckFailed, match=r"rebinds changed lclib\.kv\.compression\.Window\.visible, "
                                                     r"lclib\.rope\.inv_freq while it ran; put back"):
            checks.check_window_mask(rebinds)
        assert rope.inv_freq is inv_freq and kv.Window.visible is original
    finally:
        rope.inv_freq, kv.Window.visible = inv_freq, original


def test_imports_and_warning_registries_inside_the_answer_are_no_change(capsys):
    def imports_and_warns(seq_len, recent, sinks):
        import lclib.plotting  # noqa: F401  a submodule, bound in lclib on first import
        vars(rope).setdefault("__warningregistry__", {})  # what a warning raised from lclib.rope's code adds
        return _right_mask(seq_len, recent, sinks)

    try:
        assert checks.check_window_mask(imports_and_warns) is True
    finally:
        vars(rope).pop("__warningregistry__", None)


def test_a_library_function_replaced_before_the_check_refuses_it(monkeypatch, capsys):
    from lclib import kv

    monkeypatch.setattr(kv.Window, "visible", lambda self, q, k: torch.ones(len(q), len(k), dtype=torch.bool))
    assert runner.tampered() == ["lclib.kv.compression.Window.visible"]
    with pytest.raises(checks.CheckFailed, match=r"lclib\.kv\.compression\.Window\.visible is not the one lclib\.checks "
                                                 r"was imported with .*replaced before this check"):
        checks.check_window_mask(lambda n, r, s: torch.ones(n, n, dtype=torch.bool))
    monkeypatch.undo()
    assert runner.tampered() == [] and checks.check_window_mask(_right_mask) is True
