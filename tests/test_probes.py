"""Tests for lclib.probes: the position sweep, its intervals, the U summary and the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lclib import probes
from lclib.model import GPT, GPTConfig
from lclib.checkpoint import save
from lclib.kv_task import KVTask


class Oracle(torch.nn.Module):
    """A 'model' that reads the answer from the sequence: logits peak on the true next value token."""

    def __init__(self, task: KVTask, wrong_from: int = 99) -> None:
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        self.task, self.wrong_from = task, wrong_from

    def forward(self, tokens):
        B, T = tokens.shape
        logits = torch.zeros(B, T, self.task.vocab_size)
        nxt = torch.roll(tokens, -1, dims=1)  # the token that follows each position
        logits.scatter_(2, nxt[..., None], 10.0)
        n = (T - 1 - 4) // 3
        # questions about pairs >= wrong_from are answered with another value token
        key_pos = 1 + 3 * torch.arange(n)
        asked = (tokens[:, -3:-2] == tokens[:, key_pos]).float().argmax(1)  # (B,) first pair with that key
        bad = asked >= self.wrong_from
        logits[bad, -3] = 0.0
        logits[bad, -3, (nxt[bad, -3] + 1 - 68) % 16 + 68] = 10.0
        return logits


def test_sweep_shapes_and_perfect_oracle():
    task = KVTask(n_pairs=6, key_symbols=32, distinct_keys=True)
    r = probes.position_sweep(Oracle(task), task, 6, samples=10, seed=0)
    assert r["exact"].shape == r["logprob"].shape == r["exact_lo"].shape == (6,)
    assert r["positions"].tolist() == [1, 2, 3, 4, 5, 6]
    assert (r["exact"] == 1).all() and (r["exact_lo"] <= r["exact"]).all() and (r["exact_hi"] >= r["exact"]).all()
    assert (r["logprob"] < 0).all() and (r["logprob"] > -0.5).all()


def test_sweep_sees_positional_failure():
    task = KVTask(n_pairs=6, key_symbols=32, distinct_keys=True)
    r = probes.position_sweep(Oracle(task, wrong_from=3), task, 6, samples=8, seed=0)
    assert r["exact"].tolist() == [1, 1, 1, 0, 0, 0]
    # the oracle gets only the first value token wrong past pair 2: each token is scored on its own
    assert r["token_exact"].tolist() == [[1, 1]] * 3 + [[0, 1]] * 3
    assert (r["logprob"][3:] < r["logprob"][:3] - 3).all()  # confidently wrong: low log p(value)
    assert torch.isnan(r["logprob_miss"][:3]).all()  # no miss, no mean over misses
    torch.testing.assert_close(r["logprob_miss"][3:], r["logprob"][3:])  # every probe there is a miss
    data = probes.sweep_to_json(r)
    assert data["logprob_miss"][:3] == [None, None, None] and json.loads(json.dumps(data)) == data
    assert data["token_exact"] == [[1.0, 1.0]] * 3 + [[0.0, 1.0]] * 3


def test_sweep_same_seed_same_result_and_model_mode_kept():
    task = KVTask(n_pairs=4, key_symbols=8)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=task.vocab_size, n_layer=1, n_head=2, d_model=8)).train()
    a = probes.position_sweep(model, task, 4, samples=5, seed=3, batch_size=7)
    b = probes.position_sweep(model, task, 4, samples=5, seed=3, batch_size=7)
    c = probes.position_sweep(model, task, 4, samples=5, seed=4, batch_size=7)
    torch.testing.assert_close(a["logprob"], b["logprob"])
    assert not torch.allclose(a["logprob"], c["logprob"])
    assert model.training


def test_wilson_interval():
    lo, hi = probes.wilson_interval(torch.tensor([0, 50, 100]), 100)
    assert lo[0] == pytest.approx(0.0, abs=1e-12) and hi[0] == pytest.approx(0.037, abs=1e-3)
    assert lo[1] == pytest.approx(0.404, abs=1e-3) and hi[1] == pytest.approx(0.596, abs=1e-3)
    assert hi[2] == pytest.approx(1.0)


def test_mean_ci_over_seeds():
    mean, half = probes.mean_ci(torch.tensor([[1.0, 0.0], [3.0, 0.0], [5.0, 0.0]]))
    torch.testing.assert_close(mean, torch.tensor([3.0, 0.0], dtype=torch.float64))
    assert half[0] == pytest.approx(4.303 * 2 / 3 ** 0.5, rel=1e-3) and half[1] == 0


def test_u_shape_summary():
    s = probes.u_shape(torch.tensor([0.9, 0.6, 0.5, 0.7, 0.8]))
    assert s["first"] == pytest.approx(0.9) and s["last"] == pytest.approx(0.8)
    assert s["middle_min"] == pytest.approx(0.5) and s["depth"] == pytest.approx(0.3)
    with pytest.raises(ValueError, match="acc"):
        probes.u_shape(torch.tensor([0.5, 0.5]))


def test_validation():
    task = KVTask(n_pairs=4)
    with pytest.raises(ValueError, match="samples"):
        probes.position_sweep(Oracle(task), task, 4, samples=0)


def test_cli_position_sweep_json(tmp_path):
    task = KVTask(n_pairs=4, key_symbols=8)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=task.vocab_size, n_layer=1, n_head=2, d_model=8))
    save(model, tmp_path / "ckpt", task=task.to_dict())
    out = subprocess.run([sys.executable, "-m", "lclib", "position-sweep", "--checkpoint",
                          str(tmp_path / "ckpt"), "--pairs", "5", "--samples", "4", "--seed", "1", "--json"],
                         capture_output=True, text=True, check=True, timeout=120)
    data = json.loads(out.stdout)
    assert data["n_pairs"] == 5 and data["samples"] == 4 and data["positions"] == [1, 2, 3, 4, 5]
    assert all(isinstance(p, int) for p in data["positions"])
    assert len(data["exact"]) == len(data["logprob"]) == len(data["exact_lo"]) == 5
    direct = probes.position_sweep(model.eval(), KVTask(n_pairs=1, key_symbols=8), 5, samples=4, seed=1)
    assert data["logprob"] == pytest.approx(direct["logprob"].tolist(), abs=1e-4)


def test_cli_ruler_json_on_shipped_checkpoint():
    """python -m lclib ruler ... --json prints what its --help promises, on the shipped base model."""
    ckpt = Path(__file__).resolve().parents[1] / "weights" / "effective_context" / "base"
    out = subprocess.run([sys.executable, "-m", "lclib", "ruler", "--checkpoint", str(ckpt), "--method", "yarn",
                          "--scale", "4", "--lengths", "256,512", "--samples", "4", "--seed", "0",
                          "--tasks", "niah_single_1,niah_multivalue", "--json"],
                         capture_output=True, text=True, check=True, timeout=300)
    data = json.loads(out.stdout)
    assert data["method"] == "yarn" and data["scale"] == 4.0 and data["lengths"] == [256, 512]
    assert set(data["tasks"]) == {"niah_single_1", "niah_multivalue"}
    assert all(len(v) == 2 and all(0.0 <= x <= 1.0 for x in v) for v in data["tasks"].values())
    assert len(data["average"]) == 2 and data["threshold"] == 0.85
    assert data["effective_length"] in (0, 256, 512)
    assert data["mode"] == "teacher_match" and data["score"] == "teacher-forced string_match" and data["warning"] is None
    exact = subprocess.run([sys.executable, "-m", "lclib", "ruler", "--checkpoint", str(ckpt), "--mode", "teacher_exact",
                            "--lengths", "256", "--samples", "2", "--tasks", "niah_single_1"],
                           capture_output=True, text=True, check=True, timeout=300).stdout
    assert "warning: mode teacher_exact scores exact match" in exact and "(threshold 0.85, mode teacher_exact)" in exact
    bad = subprocess.run([sys.executable, "-m", "lclib", "ruler", "--checkpoint", str(ckpt), "--method", "bogus",
                          "--lengths", "256", "--samples", "1"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr and "Traceback" not in bad.stderr


def test_sweep_does_not_depend_on_the_batch_size():
    task = KVTask(n_pairs=4, key_symbols=8)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=task.vocab_size, n_layer=1, n_head=2, d_model=16))
    samples = probes.SAMPLE_CHUNK // 4 + 3  # more probes than one chunk of sequences
    runs = [probes.position_sweep(model, task, 4, samples=samples, seed=7, batch_size=b) for b in (1000, 64, 7)]
    for other in runs[1:]:
        assert torch.equal(runs[0]["exact"], other["exact"])
        torch.testing.assert_close(runs[0]["logprob"], other["logprob"], rtol=0, atol=1e-5)  # float32 rounding


def test_t_quantile_matches_published_tables():
    # Student's t, two-sided 95% (any statistics table): 1, 2, 9, 10, 30, 100 degrees of freedom
    for dof, t in ((1, 12.706), (2, 4.303), (9, 2.262), (10, 2.228), (30, 2.042), (100, 1.984)):
        assert probes.t_quantile_95(dof) == pytest.approx(t, abs=5e-4)
    assert probes.t_quantile_95(100_000) == pytest.approx(probes.Z95, abs=1e-4)
    mean, half = probes.mean_ci(torch.arange(12.0))  # 12 values: 11 degrees of freedom (2.201), not 1.96
    assert half.item() == pytest.approx(2.201 * torch.arange(12.0).std().item() / 12 ** 0.5, rel=1e-3)


def test_t_quantile_for_huge_dof_is_immediate_and_tends_to_the_normal():
    import time

    start = time.perf_counter()
    t = probes.t_quantile_95(10**9)  # before: 100 bisection steps of a sum of 5 * 10^8 terms
    assert time.perf_counter() - start < 1 and t == pytest.approx(probes.Z95, abs=1e-8)
    # the expansion agrees with the exact sum where both apply
    dof = probes.EXACT_DOF + 1
    assert probes._t_two_sided(probes.t_quantile_95(dof), dof) == pytest.approx(0.95, abs=1e-12)
    assert probes.t_quantile_95(100) == pytest.approx(1.98397152, abs=1e-8)


def test_position_sweep_refuses_more_probe_tokens_than_its_cap():
    model = GPT(GPTConfig(vocab_size=KVTask().vocab_size, n_layer=1, n_head=2, d_model=8))
    with pytest.raises(ValueError, match="MAX_SWEEP_TOKENS"):
        probes.position_sweep(model, KVTask(n_pairs=4), 10**5, samples=256)
