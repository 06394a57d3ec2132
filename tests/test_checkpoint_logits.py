"""Every shipped checkpoint computes what it computed when it was recorded (issue 28).

``tests/data/checkpoint_logits.json`` holds, for each folder under ``weights/``, the SHA-256 of its
``model.safetensors`` and a fingerprint of its logits on a fixed token sequence: the last position's
first 16 logits, the mean absolute logit and the argmax at every position. A refactor of the model, the
positions, the cache or the loader that changes what a shipped model computes fails here.
Record anew (only after a deliberate change of a shipped model):
``python tests/test_checkpoint_logits.py --write``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "checkpoint_logits.json"
FOLDERS = sorted(p.parent.relative_to(ROOT).as_posix() for p in (ROOT / "weights").glob("*/*/model.safetensors"))
SEQ_LEN = 48  # positions read: inside every shipped model's training length
ATOL = 1e-4  # logits are O(10); one build's kernels against another's differ by ~1e-6


def _load(folder: str):
    from lclib.checkpoint import load  # noqa: PLC0415

    return load(ROOT / folder)


def fingerprint(folder: str) -> dict:
    """SHA-256 of the weights and the logits on a seeded token sequence, as plain numbers."""
    model = _load(folder)
    vocab = model.config.vocab_size
    tokens = torch.randint(0, vocab, (1, SEQ_LEN), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model(tokens)
        logits = logits[0] if isinstance(logits, tuple) else logits
    logits = logits[0].double()  # (T, vocab)
    return {"sha256": hashlib.sha256((ROOT / folder / "model.safetensors").read_bytes()).hexdigest(),
            "last16": [round(float(x), 6) for x in logits[-1, :16]],
            "mean_abs": round(float(logits.abs().mean()), 6),
            "argmax": logits.argmax(-1).tolist()}


def test_every_shipped_checkpoint_is_recorded():
    assert FOLDERS, "weights/ holds no checkpoint"
    assert sorted(json.loads(DATA.read_text())) == FOLDERS


@pytest.mark.parametrize("folder", FOLDERS)
def test_shipped_checkpoint_logits_unchanged(folder):
    want = json.loads(DATA.read_text())[folder]
    got = fingerprint(folder)
    assert got["sha256"] == want["sha256"], f"{folder}: the weights file changed"
    assert got["last16"] == pytest.approx(want["last16"], abs=ATOL)
    assert got["mean_abs"] == pytest.approx(want["mean_abs"], abs=ATOL)
    # an argmax may flip only where two logits tie to within ATOL: none did when recorded
    assert got["argmax"] == want["argmax"]


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    torch.set_num_threads(1)
    DATA.write_text(json.dumps({f: fingerprint(f) for f in FOLDERS}, indent=1) + "\n")
    print(f"wrote {DATA} ({len(FOLDERS)} checkpoints)")
