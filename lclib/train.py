"""Train the lab's small model on a task: one device-agnostic loop, seeded, with checkpoint callbacks.

AdamW with linear warm-up then cosine decay to zero (Loshchilov and Hutter 2017, 2019), gradient
clipping, cross-entropy on the tokens the task marks as targets (the answers; every token for a language
model's objective). The same seed, CPU thread count, machine and library build give the same weights bit
for bit (the batches come from one torch.Generator, the initialisation from torch.manual_seed); another
thread count splits the sums differently, and the last bits, then the weights, drift apart.
Weights are saved as safetensors with a JSON config beside them; :func:`load` reads them back.

Command line (the full recipe of notebook 04 is built from these pieces; see the notebook):
    python -m lclib.train --out runs/kv --steps 3000 --pairs 24 --key-symbols 32 --demand smooth --seed 0
    python -m lclib.train stamp runs/kv   # store the missing SHA-256 of a checkpoint you trust
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import shlex
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from . import cli, repro
from .model import GPT, GPTConfig
from .tasks import IGNORE, KVTask

EvalFn = Callable[[GPT, int], dict]


@dataclass
class TrainConfig:
    steps: int = 3000  # optimizer steps
    batch_size: int = 32  # sequences per step
    lr: float = 3e-3  # peak learning rate
    weight_decay: float = 0.1  # AdamW decoupled weight decay (matrices only)
    warmup: int = 100  # linear warm-up steps, then cosine to zero
    grad_clip: float = 1.0  # max global gradient norm
    seed: int = 0  # seeds the initialisation and the data generator

    def __post_init__(self) -> None:
        for name, low in (("steps", 1), ("batch_size", 1), ("warmup", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        for name, zero_ok in (("lr", False), ("grad_clip", False), ("weight_decay", True)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value < 0 or (value == 0 and not zero_ok):
                raise ValueError(f"{name} must be a finite number {'>= 0' if zero_ok else '> 0'}, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise TypeError(f"seed must be an int, got {type(self.seed).__name__}")


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate at a step: linear warm-up to cfg.lr, then cosine decay to zero at cfg.steps."""
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be an int >= 0, got {step!r}")
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def answer_loss(model: GPT, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean cross-entropy over the target tokens of a batch (the answers, or every token; IGNORE elsewhere).

    With batch["weights"] (B, T), a weighted mean: a language model's loss on every token can then keep
    the few answer tokens from drowning among the rest.
    """
    if not isinstance(batch, Mapping):
        raise TypeError(f"batch must be a dict of tensors (tokens, targets), got {type(batch).__name__}")
    for key in ("tokens", "targets"):
        if key not in batch:
            raise ValueError(f"batch must hold {key!r} (B, T), got keys {sorted(batch)}")
    for key in ("targets", "weights"):
        if key in batch and batch[key].shape != batch["tokens"].shape:
            raise ValueError(f"batch[{key!r}] must have the shape of batch['tokens'] {tuple(batch['tokens'].shape)}, "
                             f"got {tuple(batch[key].shape)}")
    logits = model(batch["tokens"])  # (B, T, vocab)
    if "weights" not in batch:
        return F.cross_entropy(logits.flatten(0, 1), batch["targets"].flatten(), ignore_index=IGNORE)
    ce = F.cross_entropy(logits.flatten(0, 1), batch["targets"].flatten(), ignore_index=IGNORE, reduction="none")
    w = batch["weights"].flatten() * (batch["targets"].flatten() != IGNORE)  # (B*T,)
    return (ce * w).sum() / w.sum()


def train(
    model_config: GPTConfig,
    task: KVTask,
    cfg: TrainConfig,
    *,
    device: torch.device | str | None = None,
    eval_fn: EvalFn | None = None,
    eval_every: int = 0,
    progress: bool = True,
    desc: str = "train",
    init_state: dict[str, torch.Tensor] | None = None,
    attention_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, bool], torch.Tensor] | None = None,
) -> tuple[GPT, dict]:
    """Train a fresh GPT(model_config, attention_fn) on task; return (model in eval mode, history).

    attention_fn (q, k, v, causal) -> out replaces every block's attention (None: scaled_dot_product_attention),
    e.g. lclib.dilated.make_attention(...) for a sparse model.

    init_state, a state_dict of a model with the same config, starts from those weights instead of
    a fresh initialisation (a fine-tune: new optimizer, new warm-up and schedule).

    eval_fn(model, step) is called (in eval mode, under no_grad) every eval_every steps and at the
    end; its dicts are collected in history["evals"] as (step, result). history also holds
    "loss" (one float per step), "wall_s" and "device".
    """
    if not isinstance(model_config, GPTConfig):
        raise TypeError(f"model_config must be a GPTConfig, got {type(model_config).__name__}")
    if not callable(getattr(task, "sample", None)) or not isinstance(getattr(task, "vocab_size", None), int):
        raise TypeError(f"task must have vocab_size and sample(batch, generator) (a KVTask or RulerMixture), "
                        f"got {type(task).__name__}")
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    if eval_fn is not None and not callable(eval_fn):
        raise TypeError(f"eval_fn must be None or a function (model, step) -> dict, got {type(eval_fn).__name__}")
    if isinstance(eval_every, bool) or not isinstance(eval_every, int) or eval_every < 0:
        raise ValueError(f"eval_every must be an int >= 0 (0: only at the end), got {eval_every!r}")
    if init_state is not None and not isinstance(init_state, Mapping):
        raise TypeError(f"init_state must be None or a state_dict, got {type(init_state).__name__}")
    if cfg.steps < 1 or cfg.batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {cfg.steps} and {cfg.batch_size}")
    if model_config.vocab_size < task.vocab_size:
        raise ValueError(f"model_config.vocab_size must be >= task.vocab_size = {task.vocab_size}, "
                         f"got {model_config.vocab_size}")
    dev = torch.device(device) if device is not None else repro.device()
    repro.seed_everything(cfg.seed)
    model = GPT(model_config, attention_fn)  # checks attention_fn
    if init_state is not None:
        model.load_state_dict(init_state)
    model = model.to(dev)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))
    history: dict = {"loss": [], "evals": [], "device": str(dev)}

    def run_eval(step: int) -> None:
        model.eval()
        with torch.no_grad():
            history["evals"].append((step, eval_fn(model, step)))
        model.train()

    def after_step(done: int) -> None:
        if eval_fn is not None and eval_every and done % eval_every == 0 and done < cfg.steps:
            run_eval(done)

    start = time.perf_counter()
    run_steps(model, opt, task.sample, cfg, history["loss"], after_step, progress=progress, desc=desc)
    if eval_fn is not None:
        run_eval(cfg.steps)
    history["wall_s"] = time.perf_counter() - start
    model.eval()
    return model, history


def run_steps(
    model: GPT,
    opt: torch.optim.Optimizer,
    sample: Callable[[int, torch.Generator], dict[str, torch.Tensor]],
    cfg: TrainConfig,
    losses: list[float],
    after_step: Callable[[int], None] | None = None,
    *,
    progress: bool = False,
    desc: str = "train",
) -> None:
    """The optimisation loop shared by training and fine-tuning: cfg.steps steps of answer loss.

    Each step sets the scheduled learning rate, draws sample(cfg.batch_size, gen) from a generator
    seeded with cfg.seed (on the CPU whatever the device), clips the gradient norm, steps opt and
    appends the loss to losses; after_step(steps done) runs after each step.
    """
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    if not callable(sample):
        raise TypeError(f"sample must be a function (batch, generator) -> dict, got {type(sample).__name__}")
    if after_step is not None and not callable(after_step):
        raise TypeError(f"after_step must be None or a function (steps done) -> None, got {type(after_step).__name__}")
    if not callable(getattr(losses, "append", None)):
        raise TypeError(f"losses must be a list (one loss is appended per step), got {type(losses).__name__}")
    gen = torch.Generator().manual_seed(cfg.seed)
    dev = next(model.parameters()).device
    model.train()
    for step in tqdm(range(cfg.steps), desc=desc, disable=not progress, mininterval=2.0):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        batch = {k: v.to(dev) for k, v in sample(cfg.batch_size, gen).items()}
        loss = answer_loss(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        losses.append(loss.item())
        if after_step is not None:
            after_step(step + 1)


CHECKPOINT_FORMAT = 2  # config.json holds data only: the model config, RoPE scaling as a dict, the weights' SHA-256
FORMATS = (2,)  # the versions load reads; format 1 named a class for rope_scaling, which is never imported
CAPS = {"vocab_size": 1 << 20, "n_layer": 256, "n_head": 1024, "d_model": 1 << 14, "mlp_ratio": 64}  # far above the lab's
# models (84 tokens, 4 layers, d_model 64): a config.json past them is refused before anything is built or allocated
MAX_CONFIG_BYTES = 1 << 24  # the shipped config.json files hold at most 10 KB of recipe and history
FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")  # safetensors' names for the dtypes weights may be stored in
STAMP_COMMAND = "python -m lclib.train stamp"


def _check_path(path: object) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or a pathlib.Path, got {type(path).__name__}")
    if not str(os.fspath(path)).strip():
        raise ValueError("path must name a checkpoint folder, got an empty path (it would mean the current folder)")
    return Path(os.fspath(path))


def _folder_problem(path: Path) -> str | None:
    """Why no checkpoint can be written at path, or None: a file in the way, or an ancestor that is a file."""
    if path.exists():
        return None if path.is_dir() else f"must be a folder, got the file {path}"
    ancestor = next(p for p in path.absolute().parents if p.exists())
    if not ancestor.is_dir():
        return f"must be a folder, but {ancestor} is a file, got {path}"
    return None if os.access(ancestor, os.W_OK) else f"must be a folder this user can create, but {ancestor} is read-only"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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
    problem = _folder_problem(path)
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
    config["rope_scaling"] = None if scaling is None else scaling.to_dict()
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if k != "head.weight"
             or not model.config.tie_embeddings}
    path.mkdir(parents=True, exist_ok=True)
    weights_tmp, config_tmp = path / "model.safetensors.tmp", path / "config.json.tmp"
    save_file(state, str(weights_tmp))
    data = {"format": CHECKPOINT_FORMAT, "model": config, "weights_sha256": _sha256(weights_tmp), **metadata}
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
                                "(written by lclib.train.save)")
    if file.stat().st_size > MAX_CONFIG_BYTES:
        raise ValueError(f"{file} must hold at most {MAX_CONFIG_BYTES} bytes, got {file.stat().st_size}")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ValueError(f"{file} must be JSON written by lclib.train.save, got unreadable text "
                         f"({type(e).__name__}: {str(e)[:80]})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{file} must hold a JSON object written by lclib.train.save, got a {type(data).__name__}")
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
                         "lclib.train.save")
    fields = [f.name for f in dataclasses.fields(GPTConfig)]
    unknown, missing = sorted(set(config) - set(fields)), [f for f in fields if f not in config]
    if unknown:
        raise ValueError(f"{file} model has unknown fields {unknown}; expected {fields}")
    if missing:
        raise ValueError(f"{file} model lacks the fields {missing} (a default could silently change the model)")
    for name, cap in CAPS.items():
        value = config[name]
        if isinstance(value, int) and not isinstance(value, bool) and value > cap:
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
    if isinstance(n_kv_head, bool) or not isinstance(n_kv_head, int) or n_kv_head < 1 or config.n_head % n_kv_head:
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
    if _sha256(weights) != want:
        raise ValueError(f"{weights} does not match the SHA-256 stored in config.json (corrupted or replaced weights)")
    _check_weights(weights, file, _expected_shapes(config, n_kv_head))
    model = GPT(config, attention_fn)
    if n_kv_head != config.n_head:
        model.group_kv_heads(n_kv_head)
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
    digest = _sha256(weights)
    have = data.get("weights_sha256")
    if have == digest:
        return digest
    if have is not None:
        raise ValueError(f"{file} already holds another weights_sha256: {weights} changed since it was saved; "
                         "stamp only adds a missing digest (re-save the model with lclib.train.save)")
    _check_weights(weights, file, _expected_shapes(config, n_kv_head))
    data["weights_sha256"] = digest
    tmp = folder / "config.json.tmp"
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, file)
    return digest


def read_metadata(path: str | Path) -> dict:
    """The config.json written beside the weights (model config and whatever save() was given), its format checked."""
    return _read_config(path)[2]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["stamp"]:
        return _stamp_main(argv[1:])
    parser = argparse.ArgumentParser(description="Train the lab model on key-value retrieval and save it "
                                     f"(or `{STAMP_COMMAND} PATH`: store the missing SHA-256 of a trusted checkpoint).")
    parser.add_argument("--out", required=True, help="folder for model.safetensors and config.json")
    parser.add_argument("--steps", type=cli.positive_int, default=3000)
    parser.add_argument("--batch-size", type=cli.positive_int, default=32)
    parser.add_argument("--lr", type=cli.positive_float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pairs", type=cli.positive_int, nargs="+", default=[24], help="n, or min max")
    parser.add_argument("--key-symbols", type=cli.positive_int, default=32)
    parser.add_argument("--distinct-keys", action="store_true")
    parser.add_argument("--demand", default="smooth")
    parser.add_argument("--tau", type=float, default=3.0)
    parser.add_argument("--eps", type=float, default=0.25)
    parser.add_argument("--d-model", type=cli.positive_int, default=64)
    parser.add_argument("--layers", type=cli.positive_int, default=2)
    parser.add_argument("--heads", type=cli.positive_int, default=4)
    parser.add_argument("--pos-encoding", default="rope")
    parser.add_argument("--threads", type=cli.non_negative_int, default=0, help="torch threads on the CPU (0: leave as is)")
    cli.add_debug(parser)
    args = parser.parse_args(argv)
    if len(args.pairs) > 2:
        parser.error(f"--pairs takes n, or min max; got {len(args.pairs)} numbers")
    if not args.out.strip():
        parser.error("--out must name a folder, got an empty path (it would mean the current folder)")
    problem = _folder_problem(Path(args.out))  # before training, not after
    if problem:
        parser.error(f"--out {problem}")
    return cli.run(lambda: _train_command(args), args.debug)


def _stamp_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m lclib.train stamp",
                                     description="Store the SHA-256 of model.safetensors in config.json where it is "
                                     "missing, for checkpoints you trust (lclib.train.load refuses those without one).")
    parser.add_argument("paths", nargs="+", help="checkpoint folders")
    cli.add_debug(parser)
    args = parser.parse_args(argv)

    def body() -> int:
        for path in args.paths:
            print(f"{path}: weights_sha256 {stamp(path)}")
        return 0

    return cli.run(body, args.debug)


def _train_command(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    pairs = args.pairs[0] if len(args.pairs) == 1 else (args.pairs[0], args.pairs[1])
    task = KVTask(n_pairs=pairs, key_symbols=args.key_symbols, distinct_keys=args.distinct_keys,
                  demand=args.demand, demand_params={"tau": args.tau, "eps": args.eps})
    mcfg = GPTConfig(vocab_size=task.vocab_size, n_layer=args.layers, n_head=args.heads, d_model=args.d_model,
                     pos_encoding=args.pos_encoding)
    tcfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    model, history = train(mcfg, task, tcfg)
    save(model, args.out, task=task.to_dict(), train=asdict(tcfg), wall_s=round(history["wall_s"], 1))
    print(f"saved {args.out} ({model.num_params()} parameters, {history['wall_s']:.0f} s, final loss {history['loss'][-1]:.3f})")
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
