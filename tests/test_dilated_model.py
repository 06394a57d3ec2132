"""tools/train_dilated.py (the weights of notebook 03b): its dilated attention equals lclib.dilated's and
differentiates correctly, its training is reproducible, and the shipped weights carry the tool's recipe."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from lclib import checkpoint, dilated
from lclib.model import GPTConfig
from tool_module import load_tool

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "weights" / "dilated"

TOOL = load_tool("train_dilated")


@pytest.mark.parametrize(("n", "causal"), [(105, True), (77, True), (40, False)])
def test_bias_form_equals_the_gather_path(n, causal):
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, n, 16, generator=gen, dtype=torch.float64) for _ in range(3))  # (B, nh, T, hs)
    got = dilated.make_bias_attention(TOOL.SEGMENTS, TOOL.DILATIONS)(q, k, v, causal)
    want = dilated.dilated_attention(q, k, v, TOOL.SEGMENTS, TOOL.DILATIONS, causal)
    assert got.shape == (2, 4, n, 16)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_bias_form_gradients_match_finite_differences():
    gen = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, 2, 12, 2, generator=gen, dtype=torch.float64, requires_grad=True) for _ in range(3))
    fn = dilated.make_bias_attention([4, 8], [1, 2])
    assert torch.autograd.gradcheck(lambda q, k, v: fn(q, k, v, True), (q, k, v))


def test_the_schedule_leaves_pairs_unconnected_in_one_layer_and_connects_more_with_depth():
    """The reason for the schedule: the hard limit must bind at one layer and loosen with depth."""
    n = TOOL.TASK.seq_len(TOOL.PAIRS, 1)
    mask = dilated.attention_mask(n, TOOL.SEGMENTS, TOOL.DILATIONS, n_head=4, causal=True).any(0)
    a, i = 3 * TOOL.PAIRS + 2, torch.arange(TOOL.PAIRS)
    counts = []
    for layers in (1, 2, 3, 4):
        reach = dilated.reach(mask, layers)
        counts.append(int((reach[a, 2 + 3 * i] & reach[a + 1, 3 + 3 * i]).sum()))
    assert counts == [6, 19, 22, 22]


def test_training_is_reproducible_bit_for_bit():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runs = [TOOL.train_one("dilated_L1", TOOL.train_config(steps=3)) for _ in range(2)]
    finally:
        torch.set_num_threads(threads)
    (m1, l1, _), (m2, l2, _) = runs
    assert l1 == l2
    for (name, a), b in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_warm_model_starts_from_its_dense_weights():
    # one step at a tiny learning rate from the shipped dense control stays next to it; from scratch it would not
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        dense = checkpoint.load(WEIGHTS / TOOL.WARM_INIT["dilated_L2_warm"]).state_dict()
        tcfg = TOOL.TrainConfig(**{**asdict(TOOL.warm_train_config(steps=1)), "lr": 1e-6})
        model, _, _ = TOOL.train_one("dilated_L2_warm", tcfg, init_state=dense)
    finally:
        torch.set_num_threads(threads)
    worst = max(float((a - dense[k]).abs().max()) for k, a in model.state_dict().items())
    assert worst < 1e-4
    assert {TOOL.MODELS[w] for w in TOOL.WARM_INIT} == {TOOL.MODELS[d] for d in TOOL.WARM_INIT.values()}  # same depths


def test_the_shipped_set_is_the_tools_set():
    assert sorted(p.name for p in WEIGHTS.iterdir() if p.is_dir()) == sorted(TOOL.MODELS)


@pytest.mark.parametrize("name", sorted(TOOL.MODELS))
def test_stored_recipe_is_the_tools_default(name):
    meta = checkpoint.read_metadata(WEIGHTS / name)
    assert meta["schema"] == TOOL.SCHEMA
    assert meta["task"] == TOOL.TASK.to_dict()
    assert meta["attention"] == TOOL.attention_spec(name)
    assert meta["train"] == asdict(TOOL.recipe_train_config(name))
    assert meta.get("init") == TOOL.WARM_INIT.get(name)  # a warm model names its dense start; the others none
    assert GPTConfig(**meta["model"]) == TOOL.model_config(name)  # fields added since (n_kv_head) at their defaults
    assert meta["threads"] == 1
    assert len(meta["sweep"]["exact"]) == TOOL.PAIRS


def test_bad_input_is_one_line():
    out = subprocess.run([sys.executable, "tools/train_dilated.py", "--steps", "0"], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 2 and "expected a whole number >= 1" in out.stderr
    with pytest.raises(ValueError, match="name must be one of"):
        TOOL.attention_spec("sparse")
    with pytest.raises(ValueError, match="name must be one of"):
        TOOL.recipe_train_config("dilated_L5")
    with pytest.raises(ValueError, match="spec must be a dict"):
        TOOL.apply_attention(None, {"kind": "local"})
