"""Checkpoints: a model as model.safetensors and config.json side by side, read back without trusting either.

:func:`save` writes the weights (safetensors: tensors only, no pickled code) and a JSON config that holds data
only: the model config, RoPE scaling as a dict, grouped KV heads and dilated attention as an "architecture"
entry, the weights' SHA-256, and whatever recipe the caller adds. :func:`load` checks all of it before it
allocates anything; :func:`stamp` adds the missing SHA-256 of a checkpoint you trust
(``python -m lclib stamp PATH``); :func:`read_metadata` returns the config.json.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .digest import sha256_file
from .model import GPT, GPTConfig
from .validate import is_int

CHECKPOINT_FORMAT = 2  # config.json holds data only: the model config, RoPE scaling as a dict, the weights' SHA-256
FORMATS = (2,)  # the versions load reads; format 1 named a class for rope_scaling, which is never imported
CAPS = {"vocab_size": 1 << 20, "n_layer": 256, "n_head": 1024, "d_model": 1 << 14, "mlp_ratio": 64}  # far above the lab's
# models (84 tokens, 4 layers, d_model 64): a config.json past them is refused before anything is built or allocated
MAX_CONFIG_BYTES = 1 << 24  # the shipped config.json files hold at most 10 KB of recipe and history
FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")  # safetensors' names for the dtypes weights may be stored in
STAMP_COMMAND = "python -m lclib stamp"


def _check_path(path: object) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or a pathlib.Path, got {type(path).__name__}")
    if not str(os.fspath(path)).strip():
        raise ValueError("path must name a checkpoint folder, got an empty path (it would mean the current folder)")
    return Path(os.fspath(path))


def folder_problem(path: str | Path) -> str | None:
    """Why no checkpoint can be written at path, or None: a file in the way, an ancestor that is a file, or a
    read-only ancestor. The command line asks before training, so that hours are not lost to a bad --out."""
    path = _check_path(path)
    if path.exists():
        return None if path.is_dir() else f"must be a folder, got the file {path}"
    ancestor = next(p for p in path.absolute().parents if p.exists())
    if not ancestor.is_dir():
        return f"must be a folder, but {ancestor} is a file, got {path}"
    return None if os.access(ancestor, os.W_OK) else f"must be a folder this user can create, but {ancestor} is read-only"


def _architecture(model: GPT) -> dict:
    """What GPT(model.config) alone would not rebuild: grouped KV heads, a dilated attention (its spec, as data)."""
    from .model import sdpa_attention

    arch: dict = {}
    kv = sorted({block.attn.n_kv_head for block in model.blocks})
    if len(kv) > 1:
        raise ValueError(f"model must have the same n_kv_head in every block to be saved, got {kv}")
    if kv[0] != model.config.n_head:
        arch["n_kv_head"] = kv[0]
    specs = []
    for block in model.blocks:
        fn = block.attn.attention_fn
        spec = None if fn is sdpa_attention else getattr(fn, "spec", None)
        if fn is not sdpa_attention and not isinstance(spec, dict):
            raise ValueError("model's attention_fn must be the default or one made by lclib.dilated.make_attention or "
                             f"make_bias_attention to be saved (config.json stores attention as data), got {fn!r}")
        specs.append(spec)
    if any(spec != specs[0] for spec in specs):
        raise ValueError("model must use the same attention in every block to be saved, got several")
    if specs[0] is not None:
        arch["attention"] = json.loads(json.dumps(specs[0]))
    return arch


def save(model: GPT, path: str | Path, **metadata: object) -> Path:
    """Write path/model.safetensors and path/config.json (model config plus metadata); return path.

    RoPE scaling is stored as data (``RopeScaling.to_dict``), with the weights' SHA-256. A model with
    grouped KV heads (GPT.group_kv_heads) or dilated attention (lclib.dilated.make_attention or
    make_bias_attention) is stored as such under "architecture" ({"n_kv_head": ..., "attention": spec}),
    so that load rebuilds it; another attention function is refused, as it would reload as dense attention.
    Each file is written beside its final name and renamed into place, the config last, so a failed save
    never leaves new weights beside an old config.
    """
    from .scaling import RopeScaling

    if not isinstance(model, GPT):
        raise TypeError(f"model must be a lclib.model.GPT, got {type(model).__name__}")
    path = _check_path(path)
    problem = folder_problem(path)
    if problem:
        raise ValueError(f"path {problem}")
    reserved = sorted({"format", "model", "architecture", "weights_sha256"} & set(metadata))
    if reserved:
        raise ValueError(f"metadata must not use the keys save() writes itself, got {reserved}")
    try:
        json.dumps(metadata)
    except (TypeError, ValueError) as e:
        raise TypeError(f"metadata must be JSON data (numbers, strings, lists, dicts): {e}") from None
    scaling = model.config.rope_scaling
    if scaling is not None and not isinstance(scaling, RopeScaling):
        raise TypeError(f"model.config.rope_scaling must be None or a RopeScaling to be saved, got {type(scaling).__name__}")
    arch = _architecture(model)
    config = asdict(model.config)
    del config["n_kv_head"]  # stored under "architecture" (read from the blocks), as files always had it
    config["rope_scaling"] = None if scaling is None else scaling.to_dict()
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if k != "head.weight"
             or not model.config.tie_embeddings}
    path.mkdir(parents=True, exist_ok=True)
    weights_tmp, config_tmp = path / "model.safetensors.tmp", path / "config.json.tmp"
    save_file(state, str(weights_tmp))
    data = {"format": CHECKPOINT_FORMAT, "model": config, "weights_sha256": sha256_file(weights_tmp), **metadata}
    if arch:
        data["architecture"] = arch
    config_tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    os.replace(weights_tmp, path / "model.safetensors")
    os.replace(config_tmp, path / "config.json")
    return path


def _read_config(path: object) -> tuple[Path, Path, dict]:
    """(folder, its config.json, the parsed object) after checking the folder, the JSON and the format version."""
    folder = _check_path(path)
    if not folder.exists():
        raise FileNotFoundError(f"path must be a checkpoint folder (config.json and model.safetensors), got {folder}, "
                                "which does not exist")
    if not folder.is_dir():
        raise ValueError(f"path must be a checkpoint folder (config.json and model.safetensors), got the file {folder}")
    file = folder / "config.json"
    if not file.is_file():
        raise FileNotFoundError(f"path must be a checkpoint folder, but {folder} has no config.json "
                                "(written by lclib.checkpoint.save)")
    if file.stat().st_size > MAX_CONFIG_BYTES:
        raise ValueError(f"{file} must hold at most {MAX_CONFIG_BYTES} bytes, got {file.stat().st_size}")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ValueError(f"{file} must be JSON written by lclib.checkpoint.save, got unreadable text "
                         f"({type(e).__name__}: {str(e)[:80]})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{file} must hold a JSON object written by lclib.checkpoint.save, got a {type(data).__name__}")
    fmt = data.get("format")
    if type(fmt) is not int or fmt not in FORMATS:
        hint = "; re-save it with this version of lclib" if fmt == 1 else ""
        raise ValueError(f"{file} format must be one of {FORMATS} (the checkpoint versions this lclib reads), "
                         f"got {fmt!r}{hint}")
    return folder, file, data


def _model_config(file: Path, data: dict) -> GPTConfig:
    """GPTConfig from a config.json's "model" entry: every field present, sizes within CAPS; RoPE scaling
    rebuilt as data, never imported."""
    from .scaling import RopeScaling

    config = data.get("model")
    if not isinstance(config, dict):
        raise ValueError(f"{file} must have a 'model' entry (a dict of GPTConfig fields): not a checkpoint written by "
                         "lclib.checkpoint.save")
    fields = [f.name for f in dataclasses.fields(GPTConfig) if f.name != "n_kv_head"]  # n_kv_head: "architecture"
    unknown, missing = sorted(set(config) - set(fields)), [f for f in fields if f not in config]
    if unknown:
        raise ValueError(f"{file} model has unknown fields {unknown}; expected {fields}")
    if missing:
        raise ValueError(f"{file} model lacks the fields {missing} (a default could silently change the model)")
    for name, cap in CAPS.items():
        value = config[name]
        if is_int(value) and value > cap:
            raise ValueError(f"{name} must be at most {cap} in a checkpoint, got {value} ({file})")
    config = dict(config)
    scaling = config["rope_scaling"]
    if isinstance(scaling, dict) and "class" in scaling:
        raise ValueError(f"{file} names a class for rope_scaling (an old checkpoint format); loading never imports "
                         "code from a file: re-save the checkpoint with this version of lclib")
    if scaling is not None and not isinstance(scaling, dict):
        raise ValueError(f"{file} rope_scaling must be null or a dict, got {type(scaling).__name__}")
    config["rope_scaling"] = None if scaling is None else RopeScaling.from_dict(scaling)
    return GPTConfig(**config)


def _read_architecture(file: Path, data: dict, config: GPTConfig) -> tuple[int, Callable | None]:
    """(n_kv_head, attention_fn or None) from a config.json's "architecture" entry (absent: multi-head, dense)."""
    arch = data.get("architecture", {})
    if not isinstance(arch, dict) or set(arch) - {"n_kv_head", "attention"}:
        raise ValueError(f"{file} architecture must be a dict with n_kv_head and attention, got {arch!r}")
    n_kv_head = arch.get("n_kv_head", config.n_head)
    if not is_int(n_kv_head) or n_kv_head < 1 or config.n_head % n_kv_head:
        raise ValueError(f"n_kv_head must be a positive int dividing n_head = {config.n_head}, got {n_kv_head!r} ({file})")
    spec = arch.get("attention")
    if spec is None:
        return n_kv_head, None
    from . import dilated

    keys = {"gather": {"kind", "form", "segment_lengths", "dilation_rates", "kernel"},
            "bias": {"kind", "form", "segment_lengths", "dilation_rates"}}
    if not isinstance(spec, dict) or spec.get("kind") != "dilated" or set(spec) != keys.get(spec.get("form")):
        raise ValueError(f"attention must be a dilated spec with keys {sorted(keys['gather'])} (form 'gather') or "
                         f"{sorted(keys['bias'])} (form 'bias'), got {spec!r} ({file})")
    if spec["form"] == "bias":
        return n_kv_head, dilated.make_bias_attention(spec["segment_lengths"], spec["dilation_rates"])
    return n_kv_head, dilated.make_attention(spec["segment_lengths"], spec["dilation_rates"], kernel=spec["kernel"])


def _expected_shapes(config: GPTConfig, n_kv_head: int) -> dict[str, tuple[int, ...]]:
    """The tensor shapes of GPT(config) after group_kv_heads(n_kv_head), from a model on the meta device (no memory)."""
    with torch.device("meta"):
        shell = GPT(config)
    shapes = {k: tuple(v.shape) for k, v in shell.state_dict().items()}
    if config.tie_embeddings:
        del shapes["head.weight"]  # stored once, as embed.weight
    kv = 2 * n_kv_head * config.head_dim  # Attention.regroup_kv_heads: q rows, then n_kv_head key and value heads
    for name in shapes:
        if name.endswith(".attn.qkv.weight"):
            shapes[name] = (config.d_model + kv, config.d_model)
    return shapes


def _check_weights(weights: Path, file: Path, expected: dict[str, tuple[int, ...]]) -> None:
    """The tensors in the safetensors header against the shapes the config implies; reads the header only."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(weights), framework="pt") as f:
            stored = {k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in f.keys()}
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{weights} must be a safetensors file, got an unreadable one ({str(e)[:80]})") from None
    missing, extra = sorted(set(expected) - set(stored)), sorted(set(stored) - set(expected))
    if missing or extra:
        raise ValueError(f"{weights} and {file} disagree (n_layer, tie_embeddings?): missing {missing[:3]}, "
                         f"unexpected {extra[:3]}")
    for name, shape in expected.items():
        if stored[name][0] != shape:
            raise ValueError(f"weights and config.json disagree at {name}: stored {stored[name][0]}, "
                             f"config gives {shape} (check vocab_size, d_model, mlp_ratio, n_kv_head)")
        if stored[name][1] not in FLOAT_DTYPES:
            raise ValueError(f"{weights} must store floating-point tensors {FLOAT_DTYPES}, got {stored[name][1]} "
                             f"for {name}")


def _checked(path: object) -> tuple[Path, Path, Path, dict, GPTConfig, int, Callable | None]:
    """Everything load and stamp check before reading any weight: folder, JSON, format, config, architecture."""
    folder, file, data = _read_config(path)
    config = _model_config(file, data)
    n_kv_head, attention_fn = _read_architecture(file, data, config)
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"path must be a checkpoint folder, but {folder} has no model.safetensors "
                                "(renamed or missing weights)")
    return folder, file, weights, data, config, n_kv_head, attention_fn


def load(path: str | Path, device: torch.device | str = "cpu") -> GPT:
    """Read a model written by save() (a folder with model.safetensors and config.json), in eval mode.

    Nothing named in the files is imported or called, and nothing is allocated before it is checked: the
    format version, every config field (sizes within CAPS), the weights' SHA-256 (required: a checkpoint
    without one is refused with the command that stamps a trusted one), then the tensor names, shapes and
    dtypes in the safetensors header against those the config implies. A ValueError names what disagrees.
    Grouped KV heads and dilated attention stored by save come back as they were.
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must name a torch device such as 'cpu' or 'cuda', got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device must be one this machine has, got {device!r} without CUDA")
    folder, file, weights, data, config, n_kv_head, attention_fn = _checked(path)
    want = data.get("weights_sha256")
    if want is None:
        raise ValueError(f"{file} has no weights_sha256, so flipped or NaN weights would load silently; if you trust "
                         f"this checkpoint, stamp it: {STAMP_COMMAND} {shlex.quote(str(folder))}")
    if not isinstance(want, str) or len(want) != 64:
        raise ValueError(f"{file} weights_sha256 must be 64 hex digits, got {want!r}")
    if sha256_file(weights) != want:
        raise ValueError(f"{weights} does not match the SHA-256 stored in config.json (corrupted or replaced weights)")
    _check_weights(weights, file, _expected_shapes(config, n_kv_head))
    model = GPT(dataclasses.replace(config, n_kv_head=n_kv_head), attention_fn)  # built grouped when grouped
    state = load_file(str(weights))
    if config.tie_embeddings:
        state["head.weight"] = state["embed.weight"]
    model.load_state_dict(state)
    return model.to(dev).eval()


def stamp(path: str | Path) -> str:
    """Store the SHA-256 of path/model.safetensors in path/config.json where it is missing; return it.

    For a checkpoint you trust that lacks one (saved by hand, or by an older lclib): load refuses those.
    The config and the tensors' shapes are checked as load checks them first; a checkpoint that already
    holds another digest is refused (its weights changed since they were saved: re-save the model instead).
    """
    folder, file, weights, data, config, n_kv_head, _ = _checked(path)
    digest = sha256_file(weights)
    have = data.get("weights_sha256")
    if have == digest:
        return digest
    if have is not None:
        raise ValueError(f"{file} already holds another weights_sha256: {weights} changed since it was saved; "
                         "stamp only adds a missing digest (re-save the model with lclib.checkpoint.save)")
    _check_weights(weights, file, _expected_shapes(config, n_kv_head))
    data["weights_sha256"] = digest
    tmp = folder / "config.json.tmp"
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, file)
    return digest


def read_metadata(path: str | Path) -> dict:
    """The config.json written beside the weights (model config and whatever save() was given), its format checked."""
    return _read_config(path)[2]
