"""Train the lab's small model on a task: one device-agnostic loop, seeded, with checkpoint callbacks.

AdamW with linear warm-up then cosine decay to zero (Loshchilov and Hutter 2017, 2019), gradient
clipping, cross-entropy on the tokens the task marks as targets (the answers; every token for a language
model's objective). The same seed, CPU thread count, machine and library build give the same weights bit
for bit (the batches come from one torch.Generator, the initialisation from torch.manual_seed); another
thread count splits the sums differently, and the last bits, then the weights, drift apart.
Weights are saved as safetensors with a JSON config beside them; :func:`load` reads them back.

Command line (the full recipe of notebook 04 is built from these pieces; see the notebook):
    python -m lclib.train --out runs/kv --steps 3000 --pairs 24 --key-symbols 32 --demand smooth --seed 0
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
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


def _check_path(path: object) -> None:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or a pathlib.Path, got {type(path).__name__}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save(model: GPT, path: str | Path, **metadata: object) -> Path:
    """Write path/model.safetensors and path/config.json (model config plus metadata); return path.

    RoPE scaling is stored as data (``RopeScaling.to_dict``), with the weights' SHA-256. Each file is
    written beside its final name and renamed into place, the config last, so a failed save never leaves
    new weights beside an old config.
    """
    from .scaling import RopeScaling

    if not isinstance(model, GPT):
        raise TypeError(f"model must be a lclib.model.GPT, got {type(model).__name__}")
    _check_path(path)
    reserved = sorted({"format", "model", "weights_sha256"} & set(metadata))
    if reserved:
        raise ValueError(f"metadata must not use the keys save() writes itself, got {reserved}")
    try:
        json.dumps(metadata)
    except (TypeError, ValueError) as e:
        raise TypeError(f"metadata must be JSON data (numbers, strings, lists, dicts): {e}") from None
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    scaling = model.config.rope_scaling
    if scaling is not None and not isinstance(scaling, RopeScaling):
        raise TypeError(f"model.config.rope_scaling must be None or a RopeScaling to be saved, got {type(scaling).__name__}")
    config = asdict(model.config)
    config["rope_scaling"] = None if scaling is None else scaling.to_dict()
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if k != "head.weight"
             or not model.config.tie_embeddings}
    weights_tmp, config_tmp = path / "model.safetensors.tmp", path / "config.json.tmp"
    save_file(state, str(weights_tmp))
    data = {"format": CHECKPOINT_FORMAT, "model": config, "weights_sha256": _sha256(weights_tmp), **metadata}
    config_tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    os.replace(weights_tmp, path / "model.safetensors")
    os.replace(config_tmp, path / "config.json")
    return path


def _model_config(data: dict) -> GPTConfig:
    """GPTConfig from a config.json's "model" entry; RoPE scaling rebuilt as data, never imported."""
    from .scaling import RopeScaling

    config = dict(data)
    scaling = config.get("rope_scaling")
    if isinstance(scaling, dict) and "class" in scaling:
        raise ValueError("config.json names a class for rope_scaling (an old checkpoint format); loading never imports "
                         "code from a file: re-save the checkpoint with this version of lclib")
    if scaling is not None and not isinstance(scaling, dict):
        raise ValueError(f"config.json rope_scaling must be null or a dict, got {type(scaling).__name__}")
    config["rope_scaling"] = None if scaling is None else RopeScaling.from_dict(scaling)
    fields = {f.name for f in dataclasses.fields(GPTConfig)}
    unknown = sorted(set(config) - fields)
    if unknown:
        raise ValueError(f"config.json model has unknown fields {unknown}; expected some of {sorted(fields)}")
    return GPTConfig(**config)


def load(path: str | Path, device: torch.device | str = "cpu") -> GPT:
    """Read a model written by save() (a folder with model.safetensors and config.json), in eval mode.

    Nothing named in the files is imported or called; the weights' SHA-256 is checked when stored, and
    the config against the tensors' shapes (a ValueError names what disagrees).
    """
    _check_path(path)
    path = Path(path)
    if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"path must be a folder with config.json and model.safetensors, got {path}")
    data = json.loads((path / "config.json").read_text())
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise ValueError(f"{path / 'config.json'} has no 'model' entry: not a checkpoint written by lclib.train.save")
    want = data.get("weights_sha256")
    if want is not None and _sha256(path / "model.safetensors") != want:
        raise ValueError(f"{path / 'model.safetensors'} does not match the SHA-256 stored in config.json "
                         "(corrupted or replaced weights)")
    model = GPT(_model_config(data["model"]))
    state = load_file(str(path / "model.safetensors"))
    if model.config.tie_embeddings:
        state["head.weight"] = state["embed.weight"]
    expected = model.state_dict()
    missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or extra:
        raise ValueError(f"weights and config.json disagree (n_layer, tie_embeddings?): missing {missing[:3]}, "
                         f"unexpected {extra[:3]}")
    for name, tensor in expected.items():
        if state[name].shape != tensor.shape:
            raise ValueError(f"weights and config.json disagree at {name}: stored {tuple(state[name].shape)}, "
                             f"config gives {tuple(tensor.shape)} (check vocab_size, d_model, mlp_ratio)")
    model.load_state_dict(state)
    return model.to(device).eval()


def read_metadata(path: str | Path) -> dict:
    """The config.json written beside the weights (model config and whatever save() was given)."""
    if not (Path(path) / "config.json").is_file():
        raise FileNotFoundError(f"path must be a folder with config.json (written by lclib.train.save), got {path}")
    data = json.loads((Path(path) / "config.json").read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{Path(path) / 'config.json'} is not a JSON object: not a checkpoint written by lclib.train.save")
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train the lab model on key-value retrieval and save it.")
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
    return cli.run(lambda: _train_command(args), args.debug)


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
