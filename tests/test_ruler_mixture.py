"""The RULER-lite training mixture, the fine-tune loop and the command lines, on tiny models."""

import json

import torch

from lclib import scaling
from lclib.ruler import evaluate as ruler_probe, mixture as ruler_mix
from lclib.model import GPTConfig
from lclib.train import TrainConfig, load, save, train


def test_mixture_batches_are_aligned():
    mix = ruler_mix.RulerMixture(136, 160)
    batch = mix.sample(6, torch.Generator().manual_seed(0))
    tokens, targets = batch["tokens"], batch["targets"]
    assert tokens.shape == targets.shape and tokens.shape[0] == 6
    for b in range(6):
        on = (targets[b] != ruler_mix.IGNORE).nonzero().flatten()
        assert len(on) >= 2 and on.diff().eq(1).all()  # one contiguous answer span
        torch.testing.assert_close(targets[b, on], tokens[b, on + 1])  # next-token targets
        assert targets[b, on[-1]] == mix.tok.eos_id
        assert tokens[b, 0] == mix.tok.bos_id
    again = mix.sample(6, torch.Generator().manual_seed(0))
    assert torch.equal(again["tokens"], tokens)  # deterministic per generator seed


def test_train_finetune_and_cli(tmp_path, capsys):
    mix = ruler_mix.RulerMixture(112, 128, {"niah_single_1": {"value_len": 3}, "fwe": {}})
    cfg = GPTConfig(vocab_size=mix.vocab_size, n_layer=1, n_head=2, d_model=16)
    model, _ = train(cfg, mix, TrainConfig(steps=2, batch_size=2, warmup=1), progress=False)
    save(model, tmp_path / "base", task=mix.to_dict())
    before = load(tmp_path / "base").state_dict()
    tuned, hist = ruler_mix.finetune(load(tmp_path / "base"), scaling.RopeScaling("yarn", 2.0, original_max_len=128),
                                     mix, TrainConfig(steps=2, batch_size=2, warmup=1))
    assert len(hist["loss"]) == 2 and tuned.config.rope_scaling.method == "yarn"
    assert any(not torch.equal(before[k], v) for k, v in tuned.state_dict().items())
    assert ruler_probe.main(["--checkpoint", str(tmp_path / "base"), "--method", "yarn", "--scale", "2",
                             "--lengths", "112,224", "--samples", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["scores"]) == {"niah_single_1", "fwe"} and set(out["average"]) == {"112", "224"}
    assert out["effective_length"] in (0, 112, 224) and set(out["first_token_average"]) == {"112", "224"}
    assert ruler_mix.main(["--out", str(tmp_path / "ft"), "--init", str(tmp_path / "base"), "--length", "160",
                           "--steps", "1", "--batch-size", "2", "--method", "linear", "--scale", "2"]) == 0
    assert load(tmp_path / "ft").config.rope_scaling.method == "linear"
