"""The shipped weights of notebook 05 are what tools/train_effective_context.py makes, and every shipped
checkpoint loads as data (format 2: SHA-256 checked, RoPE scaling as a dict, config against the shapes)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest

from lclib import checkpoint, train
from tool_module import load_tool

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "weights" / "effective_context"


TOOL = load_tool("train_effective_context")


def test_the_shipped_set_is_the_tools_set():
    assert sorted(p.name for p in WEIGHTS.iterdir() if p.is_dir()) == sorted(TOOL.RECIPES)


@pytest.mark.parametrize("name", sorted(TOOL.RECIPES))
def test_stored_recipe_is_the_tools_default(name):
    meta = checkpoint.read_metadata(WEIGHTS / name)
    recipe = TOOL.RECIPES[name]
    assert meta["recipe"] == {"name": name, **recipe}
    assert meta["threads"] == TOOL.THREADS
    mix = TOOL.training_data(name)
    assert meta["task"] == mix.to_dict()
    assert meta["train"] == asdict(train.TrainConfig(**recipe["train"]))
    want = asdict(TOOL.model_config(name, mix.vocab_size))  # tie_embeddings, init, layout, base, scaling...
    want["rope_scaling"] = None if want["rope_scaling"] is None else TOOL.model_config(name, mix.vocab_size).rope_scaling.to_dict()
    del want["n_kv_head"]  # lclib.checkpoint keeps it under "architecture" (absent: multi-head), never under "model"
    assert meta["model"] == want


@pytest.mark.parametrize("path", sorted(p.parent for p in (ROOT / "weights").glob("**/model.safetensors")),
                         ids=lambda p: str(p.relative_to(ROOT / "weights")))
def test_every_shipped_checkpoint_loads_as_checked_data(path):
    meta = checkpoint.read_metadata(path)
    assert meta["format"] == checkpoint.CHECKPOINT_FORMAT and len(meta["weights_sha256"]) == 64
    scaling = meta["model"]["rope_scaling"]
    assert scaling is None or (isinstance(scaling, dict) and "class" not in scaling)
    model = checkpoint.load(path)
    assert not model.training
