"""The RULER-lite training mixture, a fine-tune through lclib.train, and the probe's command line, on tiny models."""

import json
import re

import pytest
import torch

from lclib import cli, scaling
from lclib.model import GPTConfig
from lclib.ruler import mixture as ruler_mix
from lclib.checkpoint import load, save
from lclib.train import TrainConfig, train


def test_mixture_batches_are_aligned():
    mix = ruler_mix.RulerMixture(144, 160)
    batch = mix.sample(6, torch.Generator().manual_seed(0))
    tokens, targets = batch["tokens"], batch["targets"]
    assert tokens.shape == targets.shape and tokens.shape[0] == 6
    for b in range(6):
        on = (targets[b] != ruler_mix.IGNORE).nonzero().flatten()
        assert len(on) >= 2 and on.diff().eq(1).all()  # one contiguous answer span
        torch.testing.assert_close(targets[b, on], tokens[b, on + 1])  # next-token targets
        assert targets[b, on[-1]] == mix.tokenizer.eos_id
        assert tokens[b, 0] == mix.tokenizer.bos_id
    again = mix.sample(6, torch.Generator().manual_seed(0))
    assert torch.equal(again["tokens"], tokens)  # deterministic per generator seed


def test_follow_ups_ask_keys_with_replacement_and_train_only_their_answers():
    tasks = {"niah_multikey_1": ruler_mix.LAB_TASKS["niah_multikey_1"]}
    mix = ruler_mix.RulerMixture(144, 256, tasks, follow_ups=3)
    plain = ruler_mix.RulerMixture(144, 256, tasks)
    repeats = 0
    for seed in range(40):
        row, answer = mix._row("niah_multikey_1", 256, seed=seed)
        plain_row, _ = plain._row("niah_multikey_1", 256, seed=seed)
        text = mix.tokenizer.decode(row)
        needles = dict(re.findall(r"for (\S+) is: (\d+)\.", text))  # key -> value, as hidden in the context
        asked = re.findall(r"for (\S+) mentioned", text)[::2]  # each question names its key twice
        assert len(needles) == 4 and len(asked) == 3 and set(asked) <= set(needles)  # two follow-ups fit at 256
        trained = mix.tokenizer.decode([t for t, on in zip(row, answer) if on][:-1]).replace(".", " ").split()  # EOS dropped
        assert trained == [needles[k] for k in asked]  # each answer is its own key's value, nothing else is trained
        assert len(row) <= len(plain_row) + 8  # the follow-ups come out of the length
        repeats += len(set(asked)) < len(asked)
    # with replacement, a key asked twice is common (two draws of four after the first question: 1 - 3/4 * 2/4 =
    # 0.625), so no question can be answered by elimination ("the needle not asked yet")
    assert 15 <= repeats < 40


def test_loss_on_all_trains_every_next_token_and_nothing_on_padding():
    mix = ruler_mix.RulerMixture(144, 160, loss_on="all")
    batch = mix.sample(4, torch.Generator().manual_seed(0))
    answers_only = ruler_mix.RulerMixture(144, 160).sample(4, torch.Generator().manual_seed(0))
    assert torch.equal(batch["tokens"], answers_only["tokens"])  # same data, another loss
    for b in range(4):
        real = int((batch["tokens"][b] != mix.tokenizer.pad_id).sum())
        on = batch["targets"][b] != ruler_mix.IGNORE
        assert on[:real - 1].all() and not on[real - 1:].any()
        torch.testing.assert_close(batch["targets"][b, :real - 1], batch["tokens"][b, 1:real])
    assert mix.to_dict()["loss_on"] == "all" and "weights" not in answers_only
    heavy = ruler_mix.RulerMixture(144, 160, loss_on="all", answer_weight=20.0).sample(4, torch.Generator().manual_seed(0))
    is_answer = answers_only["targets"] != ruler_mix.IGNORE  # where the plain mixture trains: the answers and EOS
    assert (heavy["weights"][is_answer] == 20.0).all() and (heavy["weights"][~is_answer] == 1.0).all()
    with pytest.raises(ValueError, match="loss_on"):
        ruler_mix.RulerMixture(144, 160, loss_on="everything")


def test_weights_draw_tasks_in_proportion_and_default_to_the_plain_mixture():
    weights = {"niah_single_1": 1, "niah_multikey_1": 3}
    tasks = {t: ruler_mix.LAB_TASKS[t] for t in weights}
    mix = ruler_mix.RulerMixture(144, 160, tasks, weights=weights)
    assert [mix._task(s) for s in range(sum(weights.values()))].count("niah_multikey_1") == 3 and mix.to_dict()["weights"] == weights
    assert "weights" not in ruler_mix.RulerMixture(144, 160, tasks).to_dict()
    with pytest.raises(ValueError, match="weights"):
        ruler_mix.RulerMixture(144, 160, tasks, weights={"niah_single_1": 1})
    with pytest.raises(ValueError, match="weights"):
        ruler_mix.RulerMixture(144, 160, tasks, weights={"niah_single_1": 0, "niah_multikey_1": 1})
    with pytest.raises(ValueError, match="follow_ups"):
        ruler_mix.RulerMixture(144, 160, tasks, follow_ups=-1)


@pytest.mark.parametrize("args, error", [((20, 160), ValueError), ((160, 144), ValueError), ((144.0, 160), TypeError)])
def test_mixture_validation(args, error):
    with pytest.raises(error):
        ruler_mix.RulerMixture(*args)
    with pytest.raises(ValueError, match="tasks"):
        ruler_mix.RulerMixture(144, 160, {"niah_single_9": {}})


@pytest.fixture
def base(tmp_path):
    mix = ruler_mix.RulerMixture(112, 128, {"niah_single_1": {"value_len": 3}, "fwe": {}})
    cfg = GPTConfig(vocab_size=mix.vocab_size, n_layer=1, n_head=2, d_model=16)
    model, _ = train(cfg, mix, TrainConfig(steps=2, batch_size=2, warmup=1), progress=False)
    return save(model, tmp_path / "base", task=mix.to_dict()), mix


def test_finetune_goes_through_the_training_loop_with_a_scaling(base):
    path, mix = base
    before = load(path)
    cfg = GPTConfig(**{**before.config.__dict__, "rope_scaling": scaling.RopeScaling("yarn", 2.0, original_max_len=128)})
    tuned, hist = train(cfg, mix, TrainConfig(steps=2, batch_size=2, warmup=1), progress=False,
                        init_state=before.state_dict())
    assert len(hist["loss"]) == 2 and tuned.config.rope_scaling.method == "yarn"
    assert any(not torch.equal(before.state_dict()[k], v) for k, v in tuned.state_dict().items())


def test_ruler_command_line_json(base, capsys):
    path, _ = base
    assert cli.main(["ruler", "--checkpoint", str(path), "--method", "yarn", "--scale", "2",
                        "--lengths", "112,224", "--samples", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["lengths"] == [112, 224] and set(out["tasks"]) == {"niah_single_1", "fwe"}
    assert all(len(v) == 2 for v in out["tasks"].values()) and len(out["average"]) == 2
    assert out["threshold"] == 0.85 and out["effective_length"] in (0, 112, 224)
    assert out["method"] == "yarn" and out["score"] == "teacher-forced string_match" and out["mode"] == "teacher_match"
    assert out["warning"] is None
    assert cli.main(["ruler", "--checkpoint", str(path), "--lengths", "112", "--samples", "2", "--mode", "teacher_exact",
                        "--json"]) == 0
    exact = json.loads(capsys.readouterr().out)
    assert exact["score"] == "exact" and "not RULER's string match" in exact["warning"]
    with pytest.raises(SystemExit):
        cli.main(["ruler", "--checkpoint", str(path), "--mode", "teacher"])  # the old name is refused, not guessed
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--samples", "0"], "whole number >= 1"), (["--lengths", "160,,320"], "comma-separated"),
    (["--lengths", "10"], "each length"), (["--method", "bogus"], "invalid choice")])
def test_ruler_command_line_bad_arguments_exit_2_with_one_line(base, capsys, argv, message):
    path, _ = base
    with pytest.raises(SystemExit) as e:
        cli.main(["ruler", "--checkpoint", str(path), *argv])
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_ruler_command_line_failures_exit_1_with_one_line(tmp_path, capsys):
    assert cli.main(["ruler", "--checkpoint", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and "Traceback" not in err and len(err.strip().splitlines()) == 1
    kv = "weights/lost_in_the_middle/skewed_seed0"  # a checkpoint of the wrong kind is named as such
    assert cli.main(["ruler", "--checkpoint", kv]) == 1
    assert "not a RULER-lite checkpoint" in capsys.readouterr().err


# --- issue 29: loss flags, caps and weights --------------------------------------------------------------------

def test_pack_rows_reads_0_1_int_flags_as_false_true_not_as_indices():
    row, flags = [5, 6, 7, 8, 9], [False, False, False, True, True]
    as_bools = ruler_mix.pack_rows([(row, flags)], 0)
    as_ints = ruler_mix.pack_rows([(row, [int(f) for f in flags])], 0)  # before: indices 0 and 1, other targets
    assert torch.equal(as_ints["targets"], as_bools["targets"])
    assert as_bools["targets"].tolist() == [[-100, -100, 8, 9, -100]]
    for bad, error in (([0, 0, 2, 1, 1], ValueError), ([0.0, 0, 0, 1, 1], ValueError), ("00011", TypeError),
                       ([False] * 4, ValueError)):
        with pytest.raises(error, match=r"rows\[0\]"):
            ruler_mix.pack_rows([(row, bad)], 0)
    with pytest.raises(ValueError, match="pad_id"):
        ruler_mix.pack_rows([(row, flags)], -1)
    with pytest.raises(ValueError, match=r"rows\[0\] token ids"):
        ruler_mix.pack_rows([([5.0, 6.0], [False, True])], 0)


def test_mixture_caps_are_applied_before_any_work(within):
    from lclib.ruler.tasks import MAX_LENGTH

    with pytest.raises(ValueError, match="max_len"):  # before: a sample of 10^9 tokens built at construction
        within(5, lambda: ruler_mix.RulerMixture(144, 10**9))
    with pytest.raises(ValueError, match="batch"):
        within(5, lambda: ruler_mix.RulerMixture(144, 160).sample(ruler_mix.MAX_BATCH + 1, torch.Generator()))
    with pytest.raises(ValueError, match="rows"):
        ruler_mix.pack_rows([([1, 2], [False, True])] * (ruler_mix.MAX_BATCH + 1), 0)
    assert MAX_LENGTH == 131072


def test_huge_weights_are_drawn_in_proportion_without_a_pool_of_that_size(within):
    tasks = {t: ruler_mix.LAB_TASKS[t] for t in ("niah_single_1", "niah_multikey_1")}
    # before: a list of 2 * 10^12 names was built at construction
    mix = within(10, lambda: ruler_mix.RulerMixture(144, 160, tasks, weights={"niah_single_1": 10**12,
                                                                                 "niah_multikey_1": 10**12}))
    assert mix._task(10**12 - 1) == "niah_single_1" and mix._task(10**12) == "niah_multikey_1"


def test_the_cli_refuses_default_lengths_from_an_absurd_training_length(base, capsys, within):
    path, _ = base
    config = json.loads((path / "config.json").read_text())
    config["task"]["max_len"] = 10**6  # L..8L would be read for hours, in one forward pass each
    (path / "config.json").write_text(json.dumps(config))
    assert within(20, lambda: cli.main(["ruler", "--checkpoint", str(path), "--samples", "1"])) == 1
    err = capsys.readouterr().err
    assert "training length (max_len)" in err and "--lengths" in err and len(err.strip().splitlines()) == 1
