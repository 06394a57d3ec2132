"""Bad-input cases for checkpoints (issue 29, item 3): tampered, truncated, renamed and absurd ones.

Each call builds its checkpoint in a fresh tempfile.TemporaryDirectory from a tiny saved model, breaks it,
and calls lclib.checkpoint.load, save, read_metadata or stamp (and folder_problem, and lclib.digest.sha256_file). Loaded by tests/test_bad_input.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from lclib import checkpoint, digest, dilated
from lclib.model import GPT, GPTConfig


def tiny(n_layer: int = 1) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=20, n_layer=n_layer, n_head=2, d_model=8))


def broken(breaker: Callable[[Path], object], call: Callable[[Path], object]) -> Callable[[], object]:
    """A call of call(checkpoint) on a tiny checkpoint saved in a temporary folder and broken by breaker."""
    def run() -> object:
        with tempfile.TemporaryDirectory() as tmp:
            path = checkpoint.save(tiny(), Path(tmp) / "m")
            breaker(path)
            return call(path)
    return run


def in_tmp(call: Callable[[Path], object]) -> Callable[[], object]:
    def run() -> object:
        with tempfile.TemporaryDirectory() as tmp:
            return call(Path(tmp))
    return run


def edit(change: Callable[[dict], object]) -> Callable[[Path], None]:
    def breaker(path: Path) -> None:
        data = json.loads((path / "config.json").read_text())
        change(data)
        (path / "config.json").write_text(json.dumps(data))
    return breaker


def model_field(**fields: object) -> Callable[[Path], None]:
    return edit(lambda d: d["model"].update(fields))


def write(name: str, blob: bytes) -> Callable[[Path], None]:
    return lambda path: (path / name).write_bytes(blob)


def flip_last_float(path: Path) -> None:
    blob = bytearray((path / "model.safetensors").read_bytes())
    blob[-4:] = b"\x00\x00\xc0\x7f"  # NaN
    (path / "model.safetensors").write_bytes(bytes(blob))


def truncate(path: Path) -> None:
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])


def swap_files(path: Path) -> None:
    os.replace(path / "config.json", path / "tmp")
    os.replace(path / "model.safetensors", path / "config.json")
    os.replace(path / "tmp", path / "model.safetensors")


def other_weights(path: Path) -> None:
    torch.manual_seed(1)
    checkpoint.save(GPT(GPTConfig(vocab_size=20, n_layer=1, n_head=2, d_model=8)), path.parent / "other")
    os.replace(path.parent / "other" / "model.safetensors", path / "model.safetensors")


def restated(change: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]) -> Callable[[Path], None]:
    """Rewrite the tensors and store their new digest: a hand-made file whose checksum verifies."""
    def breaker(path: Path) -> None:
        weights = path / "model.safetensors"
        save_file(change(load_file(str(weights))), str(weights))
        edit(lambda d: d.update(weights_sha256=hashlib.sha256(weights.read_bytes()).hexdigest()))(path)
    return breaker


def oversized_config(path: Path) -> None:
    with open(path / "config.json", "r+b") as f:
        f.truncate(checkpoint.MAX_CONFIG_BYTES + 1)  # sparse: no 16 MB written


def unstamped(breaker: Callable[[Path], None]) -> Callable[[Path], None]:
    def both(path: Path) -> None:
        breaker(path)
        edit(lambda d: d.pop("weights_sha256", None))(path)
    return both


def with_attention(fn_of_model: Callable[[GPT], object]) -> GPT:
    model = tiny(n_layer=2)
    fn_of_model(model)
    return model


def register(case) -> None:
    L, R, S, ST = checkpoint.load, checkpoint.read_metadata, checkpoint.save, checkpoint.stamp
    # --- the checksum: required, and checked
    case("checkpoint.load", "checksum-absent", ValueError, "weights_sha256.*python -m lclib stamp",
         broken(edit(lambda d: d.pop("weights_sha256")), L))
    case("checkpoint.load", "checksum-null-nan-weights", ValueError, "weights_sha256",
         broken(lambda p: (edit(lambda d: d.update(weights_sha256=None))(p), flip_last_float(p)), L))
    case("checkpoint.load", "checksum-int", ValueError, "weights_sha256", broken(edit(lambda d: d.update(weights_sha256=5)), L))
    case("checkpoint.load", "checksum-short", ValueError, "weights_sha256",
         broken(edit(lambda d: d.update(weights_sha256="abc")), L))
    case("checkpoint.load", "weights-flipped", ValueError, "SHA-256", broken(flip_last_float, L))
    case("checkpoint.load", "weights-truncated", ValueError, "SHA-256", broken(truncate, L))
    case("checkpoint.load", "weights-empty", ValueError, "SHA-256", broken(write("model.safetensors", b""), L))
    case("checkpoint.load", "weights-of-another-checkpoint", ValueError, "SHA-256", broken(other_weights, L))
    # --- unreadable config.json
    case("checkpoint.load", "files-swapped", ValueError, "config.json", broken(swap_files, L))
    case("checkpoint.load", "config-invalid-json", ValueError, "config.json", broken(write("config.json", b"{ not json"), L))
    case("checkpoint.load", "config-nested-too-deep", ValueError, "config.json", broken(write("config.json", b"[" * 100_000), L))
    case("checkpoint.load", "config-oversized", ValueError, "config.json", broken(oversized_config, L))
    # --- format versions
    case("checkpoint.load", "format-unknown", ValueError, "format", broken(edit(lambda d: d.update(format=99)), L))
    case("checkpoint.load", "format-missing", ValueError, "format", broken(edit(lambda d: d.pop("format")), L))
    case("checkpoint.load", "format-str", ValueError, "format", broken(edit(lambda d: d.update(format="2")), L))
    case("checkpoint.load", "format-1-class-paths", ValueError, "format", broken(edit(lambda d: d.update(format=1)), L))
    # --- absurd or incomplete config values, refused before anything is allocated
    case("checkpoint.load", "n_layer-billion", ValueError, "n_layer", broken(model_field(n_layer=10**9), L))
    case("checkpoint.load", "vocab_size-trillion", ValueError, "vocab_size", broken(model_field(vocab_size=10**12), L))
    case("checkpoint.load", "d_model-huge", ValueError, "d_model", broken(model_field(d_model=2**30), L))
    case("checkpoint.load", "mlp_ratio-huge", ValueError, "mlp_ratio", broken(model_field(mlp_ratio=10**9), L))
    case("checkpoint.load", "n_head-huge", ValueError, "n_head", broken(model_field(n_head=2**20, d_model=2**21), L))
    case("checkpoint.load", "vocab_size-at-cap-not-the-weights", ValueError, "vocab_size",
         broken(model_field(vocab_size=checkpoint.CAPS["vocab_size"]), L))
    case("checkpoint.load", "n_layer-at-cap-not-the-weights", ValueError, "n_layer",
         broken(model_field(n_layer=checkpoint.CAPS["n_layer"]), L))
    case("checkpoint.load", "field-missing", ValueError, "rope_base", broken(edit(lambda d: d["model"].pop("rope_base")), L))
    case("checkpoint.load", "model-entry-a-list", ValueError, "model", broken(edit(lambda d: d.update(model=[1])), L))
    case("checkpoint.load", "rope_scaling-names-a-class", ValueError, "rope_scaling",
         broken(model_field(rope_scaling={"class": "subprocess.Popen", "params": {"args": ["true"]}}), L))
    # --- the architecture entry (grouped KV heads, dilated attention)
    case("checkpoint.load", "architecture-not-a-dict", ValueError, "architecture",
         broken(edit(lambda d: d.update(architecture=[2])), L))
    case("checkpoint.load", "n_kv_head-not-dividing", ValueError, "n_kv_head",
         broken(edit(lambda d: d.update(architecture={"n_kv_head": 3})), L))
    case("checkpoint.load", "n_kv_head-not-the-weights", ValueError, "n_kv_head",
         broken(edit(lambda d: d.update(architecture={"n_kv_head": 1})), L))
    case("checkpoint.load", "attention-unknown-kind", ValueError, "attention",
         broken(edit(lambda d: d.update(architecture={"attention": {"kind": "local", "window": 4}})), L))
    case("checkpoint.load", "attention-dilation-above-segment", ValueError, "dilation_rates",
         broken(edit(lambda d: d.update(architecture={"attention": {"kind": "dilated", "form": "bias",
                                                                    "segment_lengths": [4], "dilation_rates": [8]}})), L))
    # --- tensors that verify against their digest but not against the config
    case("checkpoint.load", "weights-integer-dtype", ValueError, "model.safetensors",
         broken(restated(lambda s: {k: (v * 100).to(torch.int64) for k, v in s.items()}), L))
    case("checkpoint.load", "weights-extra-tensor", ValueError, "model.safetensors",
         broken(restated(lambda s: {**s, "blocks.9.attn.qkv.weight": torch.zeros(2)}), L))
    case("checkpoint.load", "weights-a-tensor-missing", ValueError, "model.safetensors",
         broken(restated(lambda s: {k: v for k, v in s.items() if k != "ln_f.bias"}), L))
    case("checkpoint.load", "weights-wrong-shape", ValueError, "d_model",
         broken(restated(lambda s: {**s, "ln_f.bias": torch.zeros(9)}), L))
    # --- paths and devices
    case("checkpoint.load", "path-a-file", ValueError, "path", in_tmp(lambda t: (t / "f").write_text("x") and L(t / "f")))
    case("checkpoint.load", "path-empty", ValueError, "path", lambda: L(""))
    case("checkpoint.load", "device-unknown", ValueError, "device", broken(lambda p: None, lambda p: L(p, device="gpu0")))
    case("checkpoint.load", "device-list", ValueError, "device", broken(lambda p: None, lambda p: L(p, device=[1])))
    if not torch.cuda.is_available():
        case("checkpoint.load", "device-cuda-absent", ValueError, "device", broken(lambda p: None, lambda p: L(p, device="cuda")))

    # --- save: where it writes, and what it can store as data
    case("checkpoint.save", "path-empty", ValueError, "path", lambda: S(tiny(), ""))
    case("checkpoint.save", "path-a-file", ValueError, "path", in_tmp(lambda t: (t / "f").write_text("x") and S(tiny(), t / "f")))
    case("checkpoint.save", "path-under-a-file", ValueError, "path",
         in_tmp(lambda t: (t / "f").write_text("x") and S(tiny(), t / "f" / "m")))
    case("checkpoint.save", "metadata-architecture-key", ValueError, "metadata",
         in_tmp(lambda t: S(tiny(), t / "m", architecture={"n_kv_head": 1})))
    case("checkpoint.save", "attention-a-lambda", ValueError, "attention_fn",
         in_tmp(lambda t: S(with_attention(lambda m: m.set_attention(lambda q, k, v, c: v)), t / "m")))
    case("checkpoint.save", "attention-differs-by-block", ValueError, "attention",
         in_tmp(lambda t: S(with_attention(lambda m: setattr(m.blocks[0].attn, "attention_fn",
                                                             dilated.make_attention([4], [2]))), t / "m")))

    # --- read_metadata: the same folder, JSON and format checks as load
    case("checkpoint.read_metadata", "path-int", TypeError, "path", lambda: R(7))
    case("checkpoint.read_metadata", "path-empty", ValueError, "path", lambda: R(""))
    case("checkpoint.read_metadata", "path-a-file", ValueError, "path", in_tmp(lambda t: (t / "f").write_text("x") and R(t / "f")))
    case("checkpoint.read_metadata", "config-invalid-json", ValueError, "config.json",
         broken(write("config.json", b"{ not json"), R))
    case("checkpoint.read_metadata", "files-swapped", ValueError, "config.json", broken(swap_files, R))
    case("checkpoint.read_metadata", "format-unknown", ValueError, "format", broken(edit(lambda d: d.update(format=3)), R))

    # --- stamp: only a missing digest, and only for tensors that fit the config
    case("checkpoint.stamp", "path-int", TypeError, "path", lambda: ST(7))
    case("checkpoint.stamp", "checksum-of-other-weights", ValueError, "weights_sha256", broken(flip_last_float, ST))
    case("checkpoint.stamp", "weights-truncated", ValueError, "model.safetensors", broken(unstamped(truncate), ST))
    case("checkpoint.stamp", "weights-integer-dtype", ValueError, "model.safetensors",
         broken(unstamped(restated(lambda s: {k: v.to(torch.int64) for k, v in s.items()})), ST))
    case("checkpoint.stamp", "config-not-the-weights", ValueError, "d_model",
         broken(unstamped(model_field(d_model=16)), ST))
    case("checkpoint.stamp", "format-unknown", ValueError, "format", broken(unstamped(edit(lambda d: d.update(format=99))), ST))

    # --- folder_problem: what save and the train command ask before writing
    case("checkpoint.folder_problem", "path-int", TypeError, "path", lambda: checkpoint.folder_problem(7))
    case("checkpoint.folder_problem", "path-empty", ValueError, "path", lambda: checkpoint.folder_problem(" "))

    # --- the SHA-256 of a file (lclib.digest, shared by checkpoint and env)
    case("digest.sha256_file", "path-int", TypeError, "path", lambda: digest.sha256_file(7))
    case("digest.sha256_file", "path-none", TypeError, "path", lambda: digest.sha256_file(None))
