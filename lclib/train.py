"""Train the lab's small model on a task: one device-agnostic loop, seeded, with evaluation callbacks.

AdamW with linear warm-up then cosine decay to zero (Loshchilov and Hutter 2017, 2019), gradient
clipping, cross-entropy on the tokens the task marks as targets (the answers; every token for a language
model's objective). The same seed, CPU thread count, machine and library build give the same weights bit
for bit (the batches come from one torch.Generator, the initialisation from torch.manual_seed); another
thread count splits the sums differently, and the last bits, then the weights, drift apart.
Weights are saved with lclib.checkpoint.save and read back with lclib.checkpoint.load.

Command line (the full recipe of notebook 04 is built from these pieces; see the notebook):
    python -m lclib train --out runs/kv --steps 3000 --pairs 24 --key-symbols 32 --demand smooth --seed 0
    python -m lclib stamp runs/kv   # store the missing SHA-256 of a checkpoint you trust
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import repro, validate
from .model import GPT, IGNORE, GPTConfig
from .kv_task import KVTask

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
            validate.integer(name, getattr(self, name), low=low)
        for name, zero_ok in (("lr", False), ("grad_clip", False), ("weight_decay", True)):
            validate.number(name, getattr(self, name), low=0, low_open=not zero_ok)
        validate.integer("seed", self.seed)


def lr_at(step: int, config: TrainConfig) -> float:
    """Learning rate at a step: linear warm-up to config.lr, then cosine decay to zero at config.steps."""
    _check_train_config(config)
    validate.integer("step", step, low=0)
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    progress = (step - config.warmup) / max(1, config.steps - config.warmup)
    return config.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _check_train_config(config: object) -> None:
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")


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
    config: TrainConfig,
    *,
    device: torch.device | str | None = None,
    eval_fn: EvalFn | None = None,
    eval_every: int = 0,
    progress: bool = True,
    desc: str = "train",
    init_state: dict[str, torch.Tensor] | None = None,
    attention_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, bool], torch.Tensor] | None = None,
) -> tuple[GPT, dict]:
    """Train a fresh GPT(model_config, attention_fn) on task with config; return (model in eval mode, history).

    attention_fn (q, k, v, causal) -> out replaces every block's attention (None: scaled_dot_product_attention),
    e.g. lclib.dilated.make_attention(...) for a sparse model.

    init_state, a state_dict of a model with the same config, starts from those weights instead of
    a fresh initialisation (a fine-tune: new optimizer, new warm-up and schedule).

    eval_fn(model, step) is called (in eval mode, under no_grad) every eval_every steps and at the
    end; its dicts are collected in history["evals"] as (step, result). history also holds
    "loss" (one float per step), "wall_s" and "device".
    """
    _check_train_args(model_config, task, config, eval_fn, eval_every, init_state)
    dev = torch.device(device) if device is not None else repro.device()
    repro.seed_everything(config.seed)
    model = GPT(model_config, attention_fn)  # checks attention_fn
    if init_state is not None:
        model.load_state_dict(init_state)
    model = model.to(dev)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=config.lr, betas=(0.9, 0.95))
    history: dict = {"loss": [], "evals": [], "device": str(dev)}

    def run_eval(step: int) -> None:
        model.eval()
        with torch.no_grad():
            history["evals"].append((step, eval_fn(model, step)))
        model.train()

    def after_step(done: int) -> None:
        if eval_fn is not None and eval_every and done % eval_every == 0 and done < config.steps:
            run_eval(done)

    start = time.perf_counter()
    run_steps(model, opt, task.sample, config, history["loss"], after_step, progress=progress, desc=desc)
    if eval_fn is not None:
        run_eval(config.steps)
    history["wall_s"] = time.perf_counter() - start
    model.eval()
    return model, history


def _check_train_args(model_config: object, task: object, config: object, eval_fn: object, eval_every: object,
                      init_state: object) -> None:
    if not isinstance(model_config, GPTConfig):
        raise TypeError(f"model_config must be a GPTConfig, got {type(model_config).__name__}")
    if not callable(getattr(task, "sample", None)) or not validate.is_int(getattr(task, "vocab_size", None)):
        raise TypeError(f"task must have vocab_size and sample(batch, generator) (a KVTask or RulerMixture), "
                        f"got {type(task).__name__}")
    _check_train_config(config)
    if eval_fn is not None and not callable(eval_fn):
        raise TypeError(f"eval_fn must be None or a function (model, step) -> dict, got {type(eval_fn).__name__}")
    validate.integer("eval_every", eval_every, low=0)
    if init_state is not None and not isinstance(init_state, Mapping):
        raise TypeError(f"init_state must be None or a state_dict, got {type(init_state).__name__}")
    if model_config.vocab_size < task.vocab_size:
        raise ValueError(f"model_config.vocab_size must be >= task.vocab_size = {task.vocab_size}, "
                         f"got {model_config.vocab_size}")


def run_steps(
    model: GPT,
    opt: torch.optim.Optimizer,
    sample: Callable[[int, torch.Generator], dict[str, torch.Tensor]],
    config: TrainConfig,
    losses: list[float],
    after_step: Callable[[int], None] | None = None,
    *,
    progress: bool = False,
    desc: str = "train",
) -> None:
    """The optimisation loop shared by training and fine-tuning: config.steps steps of answer loss.

    Each step sets the scheduled learning rate, draws sample(config.batch_size, gen) from a generator
    seeded with config.seed (on the CPU whatever the device), clips the gradient norm, steps opt and
    appends the loss to losses; after_step(steps done) runs after each step.
    """
    _check_train_config(config)
    if not callable(sample):
        raise TypeError(f"sample must be a function (batch, generator) -> dict, got {type(sample).__name__}")
    if after_step is not None and not callable(after_step):
        raise TypeError(f"after_step must be None or a function (steps done) -> None, got {type(after_step).__name__}")
    if not callable(getattr(losses, "append", None)):
        raise TypeError(f"losses must be a list (one loss is appended per step), got {type(losses).__name__}")
    gen = torch.Generator().manual_seed(config.seed)
    dev = next(model.parameters()).device
    model.train()
    for step in tqdm(range(config.steps), desc=desc, disable=not progress, mininterval=2.0):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, config)
        batch = {k: v.to(dev) for k, v in sample(config.batch_size, gen).items()}
        loss = answer_loss(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        opt.step()
        losses.append(loss.item())
        if after_step is not None:
            after_step(step + 1)
