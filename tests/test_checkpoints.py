"""Checkpoints as hostile files (issue 29, item 3): the checksum required, format versions checked, sizes
capped and shapes compared before anything is allocated, grouped-KV and dilated models round-tripped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from lclib import checkpoint, cli, dilated, train
from lclib.digest import sha256_file
from lclib.model import GPT, GPTConfig

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(p.parent for p in (ROOT / "weights").glob("*/*/config.json"))
TOKENS = torch.randint(0, 20, (2, 12), generator=torch.Generator().manual_seed(0))


def tiny(**kw) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(**{"vocab_size": 20, "n_layer": 2, "n_head": 4, "d_model": 16, **kw})).eval()


def logits(model: GPT) -> torch.Tensor:
    with torch.no_grad():
        return model(TOKENS)


def edit(path: Path, change) -> None:
    data = json.loads((path / "config.json").read_text())
    change(data)
    (path / "config.json").write_text(json.dumps(data))


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    return checkpoint.save(tiny(), tmp_path / "m")


def test_every_shipped_checkpoint_has_a_checksum_that_verifies():
    assert len(SHIPPED) >= 50
    for path in SHIPPED:
        meta = checkpoint.read_metadata(path)
        assert isinstance(meta.get("weights_sha256"), str), path
        assert sha256_file(path / "model.safetensors") == meta["weights_sha256"], path
        assert isinstance(checkpoint.load(path), GPT)


# --- the checksum ---------------------------------------------------------------------------------

@pytest.mark.parametrize("change", [lambda d: d.pop("weights_sha256"), lambda d: d.update(weights_sha256=None)],
                         ids=["absent", "null"])
def test_a_checkpoint_without_checksum_is_refused_with_the_stamp_command(saved, change):
    edit(saved, change)
    blob = bytearray((saved / "model.safetensors").read_bytes())
    blob[-4:] = b"\x00\x00\xc0\x7f"  # a NaN in the last tensor: before, it loaded silently
    (saved / "model.safetensors").write_bytes(bytes(blob))
    with pytest.raises(ValueError, match=rf"no weights_sha256.*python -m lclib stamp {saved}"):
        checkpoint.load(saved)


def test_stamp_adds_a_missing_checksum_and_the_checkpoint_loads_again(saved):
    want = logits(tiny())
    digest = checkpoint.read_metadata(saved)["weights_sha256"]
    edit(saved, lambda d: d.pop("weights_sha256"))
    assert checkpoint.stamp(saved) == digest
    assert checkpoint.stamp(saved) == digest  # stamping twice changes nothing
    torch.testing.assert_close(logits(checkpoint.load(saved)), want, rtol=0, atol=0)


def test_stamp_refuses_weights_that_changed_since_they_were_saved(saved):
    blob = bytearray((saved / "model.safetensors").read_bytes())
    blob[-4:] = b"\x00\x00\x80\x7f"
    (saved / "model.safetensors").write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="already holds another weights_sha256"):
        checkpoint.stamp(saved)


def test_stamp_checks_the_tensors_before_it_writes(saved):
    edit(saved, lambda d: (d.pop("weights_sha256"), d["model"].update(d_model=32, n_head=4)))
    with pytest.raises(ValueError, match="d_model"):
        checkpoint.stamp(saved)
    assert "weights_sha256" not in checkpoint.read_metadata(saved)


def test_stamp_command_line(saved, capsys):
    edit(saved, lambda d: d.pop("weights_sha256"))
    assert cli.main(["stamp", str(saved)]) == 0
    assert "weights_sha256" in capsys.readouterr().out and isinstance(checkpoint.load(saved), GPT)
    assert cli.main(["stamp", str(saved / "nothing")]) == 1
    assert capsys.readouterr().err.count("error:") == 1


# --- format, config values, shapes before allocation -------------------------------------------------

@pytest.mark.parametrize("fmt", [99, None, "2", 2.0, True, 1])
def test_an_unknown_format_is_refused(saved, fmt):
    edit(saved, lambda d: d.update(format=fmt) if fmt is not None else d.pop("format"))
    with pytest.raises(ValueError, match="format must be one of"):
        checkpoint.load(saved)
    with pytest.raises(ValueError, match="format must be one of"):
        checkpoint.read_metadata(saved)


@pytest.mark.parametrize("field, value", [("n_layer", 10**9), ("vocab_size", 10**12), ("d_model", 2**30),
                                          ("mlp_ratio", 10**9), ("n_head", 2**20)])
def test_absurd_sizes_are_refused_in_milliseconds(saved, field, value):
    edit(saved, lambda d: d["model"].update({field: value}))
    start = time.perf_counter()
    with pytest.raises(ValueError, match=rf"{field} must be at most {checkpoint.CAPS[field]}"):
        checkpoint.load(saved)
    assert time.perf_counter() - start < 2


def test_shapes_are_compared_before_a_model_is_built(saved, monkeypatch):
    """A config within the caps but far larger than its weights: refused by the header, only meta tensors built."""
    built = []
    real = checkpoint.GPT

    def spy(config, *args):
        model = real(config, *args)
        built.append(model.embed.weight.device.type)
        return model

    monkeypatch.setattr(checkpoint, "GPT", spy)
    edit(saved, lambda d: d["model"].update(vocab_size=checkpoint.CAPS["vocab_size"], d_model=4096, n_layer=200))
    with pytest.raises(ValueError, match="disagree"):
        checkpoint.load(saved)
    assert built == ["meta"]


def test_a_missing_field_is_refused_not_defaulted(tmp_path):
    path = checkpoint.save(tiny(rope_base=500.0), tmp_path / "m")
    edit(path, lambda d: d["model"].pop("rope_base"))
    with pytest.raises(ValueError, match=r"lacks the fields \['rope_base'\]"):
        checkpoint.load(path)


def test_integer_weights_are_refused(saved):
    edit(saved, lambda d: d.pop("weights_sha256"))
    state = {k: (v * 100).to(torch.int64) for k, v in load_file(str(saved / "model.safetensors")).items()}
    save_file(state, str(saved / "model.safetensors"))
    with pytest.raises(ValueError, match="floating-point"):
        checkpoint.stamp(saved)


def test_truncated_weights_are_refused_naming_the_file(saved):
    weights = saved / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(ValueError, match="does not match the SHA-256"):
        checkpoint.load(saved)
    edit(saved, lambda d: d.pop("weights_sha256"))
    with pytest.raises(ValueError, match=r"model\.safetensors must be a safetensors file"):
        checkpoint.stamp(saved)


# --- round trips ---------------------------------------------------------------------------------

@pytest.mark.parametrize("n_kv_head", [1, 2])
def test_a_grouped_kv_model_round_trips_as_grouped(tmp_path, n_kv_head):
    model = tiny().group_kv_heads(n_kv_head)
    checkpoint.save(model, tmp_path / "m")
    assert checkpoint.read_metadata(tmp_path / "m")["architecture"] == {"n_kv_head": n_kv_head}
    again = checkpoint.load(tmp_path / "m")
    assert again.n_kv_head == n_kv_head
    torch.testing.assert_close(logits(again), logits(model), rtol=0, atol=0)


def test_the_multi_head_layout_of_the_shipped_grouped_models_still_loads(tmp_path):
    grouped = tiny().group_kv_heads(2)
    checkpoint.save(tiny().group_kv_heads(2).group_kv_heads(4), tmp_path / "m", kv_heads=2)  # as tools/train_kv_cache.py
    again = checkpoint.load(tmp_path / "m")
    assert again.n_kv_head == 4 and "architecture" not in checkpoint.read_metadata(tmp_path / "m")
    torch.testing.assert_close(logits(again.group_kv_heads(2)), logits(grouped), rtol=0, atol=0)


@pytest.mark.parametrize("make", [lambda: dilated.make_attention([4, 8], [1, 2]),
                                  lambda: dilated.make_attention(4, 2, kernel="softmax"),
                                  lambda: dilated.make_bias_attention([4, 8], [1, 2])], ids=["gather", "int", "bias"])
def test_a_dilated_model_round_trips_as_dilated(tmp_path, make):
    model = tiny()
    dense = logits(model)
    model.set_attention(make())
    checkpoint.save(model, tmp_path / "m")
    assert checkpoint.read_metadata(tmp_path / "m")["architecture"]["attention"]["kind"] == "dilated"
    again = checkpoint.load(tmp_path / "m")
    assert (logits(again) - dense).abs().max() > 1e-3  # the test means something: dilated differs from dense
    torch.testing.assert_close(logits(again), logits(model), rtol=0, atol=0)


def test_a_grouped_dilated_model_round_trips(tmp_path):
    model = tiny().group_kv_heads(2)
    model.set_attention(dilated.make_attention([4, 8], [1, 2]))
    checkpoint.save(model, tmp_path / "m")
    torch.testing.assert_close(logits(checkpoint.load(tmp_path / "m")), logits(model), rtol=0, atol=0)


def test_save_refuses_an_attention_it_cannot_store(tmp_path):
    model = tiny()
    model.set_attention(lambda q, k, v, causal: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal))
    with pytest.raises(ValueError, match="attention_fn"):
        checkpoint.save(model, tmp_path / "m")
    mixed = tiny()
    mixed.blocks[0].attn.attention_fn = dilated.make_attention([4], [2])
    with pytest.raises(ValueError, match="same attention in every block"):
        checkpoint.save(mixed, tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_an_edited_dilated_spec_is_checked(tmp_path):
    model = tiny()
    model.set_attention(dilated.make_attention([4, 8], [1, 2]))
    checkpoint.save(model, tmp_path / "m")
    edit(tmp_path / "m", lambda d: d["architecture"]["attention"].update(dilation_rates=[1, 16]))
    with pytest.raises(ValueError, match="dilation_rates"):
        checkpoint.load(tmp_path / "m")
    edit(tmp_path / "m", lambda d: d["architecture"]["attention"].update(kind="local"))
    with pytest.raises(ValueError, match="attention must be a dilated spec"):
        checkpoint.load(tmp_path / "m")


# --- unreadable and misplaced files -----------------------------------------------------------------

def test_invalid_json_names_the_file(saved):
    (saved / "config.json").write_text("{ not json")
    for fn in (checkpoint.load, checkpoint.read_metadata):
        with pytest.raises(ValueError, match=r"config\.json must be JSON"):
            fn(saved)


def test_swapped_files_are_refused(saved):
    config, weights = saved / "config.json", saved / "model.safetensors"
    os.replace(config, saved / "tmp")
    os.replace(weights, config)
    os.replace(saved / "tmp", weights)
    with pytest.raises(ValueError, match=r"config\.json must be JSON"):
        checkpoint.load(saved)


@pytest.mark.parametrize("name", ["model.safetensors", "config.json"])
def test_a_renamed_file_is_named(saved, name):
    os.replace(saved / name, saved / (name + ".bak"))
    with pytest.raises(FileNotFoundError, match=rf"has no {name}"):
        checkpoint.load(saved)


def test_a_file_or_an_empty_path_is_not_a_checkpoint(tmp_path):
    (tmp_path / "f").write_text("x")
    for fn in (checkpoint.load, checkpoint.read_metadata):
        with pytest.raises(ValueError, match="got the file"):
            fn(tmp_path / "f")
        with pytest.raises(ValueError, match="empty path"):
            fn("")
    with pytest.raises(ValueError, match="path must be a folder"):
        checkpoint.save(tiny(), tmp_path / "f")
    with pytest.raises(ValueError, match="empty path"):
        checkpoint.save(tiny(), "")


# --- the command line checks --out before training ------------------------------------------------

SMALL = ["--steps", "1", "--batch-size", "2", "--pairs", "3", "--key-symbols", "6", "--d-model", "8", "--n-head", "2",
         "--n-layer", "1"]


@pytest.mark.parametrize("out, words", [("", "empty path"), ("file", "got the file"), ("file/m", "is a file")])
def test_cli_checks_out_before_training(tmp_path, monkeypatch, capsys, out, words):
    (tmp_path / "file").write_text("x")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(train, "train", lambda *a, **k: pytest.fail("trained before checking --out"))
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", "--out", out, *SMALL])
    assert exit_.value.code == 2
    assert "--out" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_cli_stamp_is_one_line_without_a_traceback(tmp_path):
    run = subprocess.run([sys.executable, "-m", "lclib", "stamp", str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith("error:") and "config.json" in run.stderr
