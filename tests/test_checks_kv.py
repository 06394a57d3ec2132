"""The checkers of notebook 06 pass right answers, fail wrong ones with a hint, and report stubs as not done."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lclib import checks


def cache_bytes(n_layer, n_kv_head, head_dim, tokens, bytes_per_value):
    return 2 * n_layer * n_kv_head * head_dim * bytes_per_value * tokens


def decode_bound(weight_bytes, cache_bytes_per_token, context, bandwidth):
    return bandwidth / (weight_bytes + cache_bytes_per_token * context)


def window_mask(seq_len, recent, sinks):
    i, j = torch.arange(seq_len)[:, None], torch.arange(seq_len)[None, :]
    return (j <= i) & ((j < sinks) | (j > i - recent))


def test_right_answers_pass(capsys):
    assert checks.check_cache_bytes(cache_bytes)
    assert checks.check_decode_bound(decode_bound)
    assert checks.check_window_mask(window_mask)
    assert checks.check_window_mask(lambda seq_len, recent, sinks: window_mask(seq_len, recent, sinks).numpy().astype(np.int64))
    assert checks.check_window_mask(lambda seq_len, recent, sinks: window_mask(seq_len, recent, sinks).tolist())  # rows
    assert checks.check_window_mask(lambda seq_len, recent, sinks: [[int(x) for x in row] for row in
                                                                    window_mask(seq_len, recent, sinks).tolist()])
    assert capsys.readouterr().out.count("Correct") == 6


@pytest.mark.parametrize("check, wrong, hint", [
    (checks.check_cache_bytes, lambda l, h, d, t, b: l * h * d * t * b, "factor 2"),
    (checks.check_cache_bytes, lambda l, h, d, t, b: None, "None"),
    (checks.check_cache_bytes, lambda l, h, d, t, b: float("nan"), "NaN"),
    (checks.check_decode_bound, lambda w, c, n, bw: bw / w, "weights only"),
    (checks.check_decode_bound, lambda w, c, n, bw: bw / (c * n or 1), "cache only"),
    (checks.check_decode_bound, lambda w, c, n, bw: (w + c * n) / bw, "expected"),
    (checks.check_window_mask, lambda t, r, s: torch.ones(t, t, dtype=torch.bool), "causal"),
    (checks.check_window_mask, lambda t, r, s: window_mask(t, r + 1, s), "one key too many"),
    (checks.check_window_mask, lambda t, r, s: window_mask(t, r, 0), "sinks are missing"),
    (checks.check_window_mask, lambda t, r, s: window_mask(t, r, s)[:-1], "shape"),
    (checks.check_window_mask, lambda t, r, s: window_mask(t, r, s).tolist()[:-1], "shape"),
    (checks.check_window_mask, lambda t, r, s: torch.zeros(t, t).masked_fill(~window_mask(t, r, s), float("-inf")),
     "additive mask"),
    (checks.check_window_mask, lambda t, r, s: window_mask(t, r, s) * 0.5, r"True/False \(or 1/0\)"),
    (checks.check_cache_bytes, lambda l, h, d, t, b: cache_bytes(l, h, d, t, b) + 0.5, r"got [\d,]+\.50;"),
])
def test_wrong_answers_fail_with_a_hint(check, wrong, hint):
    with pytest.raises(checks.CheckFailed, match=hint):
        check(wrong)


def test_calling_the_library_answer_is_refused():
    from lclib.kv import Window

    def lazy(seq_len, recent, sinks):
        pos = torch.arange(seq_len)
        return Window(recent=recent, sinks=sinks).visible(pos, pos)

    with pytest.raises(checks.CheckFailed, match="answer itself"):
        checks.check_window_mask(lazy)


@pytest.mark.parametrize("check", [checks.check_cache_bytes, checks.check_decode_bound, checks.check_window_mask])
def test_stub_is_not_done(check, capsys):
    def stub(*args):
        raise NotImplementedError

    assert check(stub) is False
    assert "Not done yet" in capsys.readouterr().out
