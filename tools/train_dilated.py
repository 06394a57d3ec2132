"""Train the models of notebook 03b: the lab's GPT with causal dilated attention, 1-4 layers, and a dense control.

Every model sees the same batches from the same seed, for the same number of steps (the same budget):
the key-value task of notebook 04 with distinct keys (every question has one answer) and the smooth
U-shaped demand that bootstraps retrieval; 2 layers of dense attention as the control (retrieval by
an induction-style match needs two layers even when every key is in sight), and 1, 2, 3, 4 layers
of LongNet dilated attention (Ding et al. 2023, Eq. 5-10) with a geometric schedule: segments
w_i = 16 * 2^i, dilations r_i = 2^i, head j at offset j mod r_i.

A second family starts from dense weights instead of from scratch: dense controls of 3 and 4 layers
(dense_L3, dense_L4, the same recipe as dense), and dilated_L2_warm, dilated_L3_warm, dilated_L4_warm, each
the dense model of its depth fine-tuned with dilated attention (2,400 steps, lr 1e-3, seed 1; "init" in its
config.json names the dense model). Trained from scratch, the dilated models learn nothing in this budget;
started from dense weights they learn every pair one layer connects, so what depth adds can be measured.

    python tools/train_dilated.py --out weights/dilated

Measured on the shared 2-core CPU, one thread, 1,800 steps: dense 253 s CPU, dilated_L1 159 s, dilated_L2 255 s,
dilated_L3 367 s, dilated_L4 567 s; dense_L3 325 s, dense_L4 424 s, the warm fine-tunes 7-12 min each
(about 75 min of CPU for all ten; two processes, one thread each, halve the wait). The dense controls learn
every pair (exact match 1.00); the dilated models from scratch stay near a training loss of ln 16, chance per
value token: in this budget they do not learn retrieval.

Each model goes to OUT/NAME/ (model.safetensors + config.json with the task, the model, the
attention schedule, the training config, and the final sweep: exact match by queried pair position on
--samples probes per position). The same thread count, seed and torch build give the same bits.
lclib.train.train builds each model with its attention function (GPT(config, attention_fn)).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict

import torch

from lclib import cli, dilated, probes, repro
from lclib.model import GPT, GPTConfig
from lclib.checkpoint import load, save
from lclib.kv_task import KVTask
from lclib.train import TrainConfig, train

SCHEMA = 1  # version of the "attention" and "recipe" entries of config.json
PAIRS = 24
TASK = KVTask(n_pairs=PAIRS, key_symbols=32, distinct_keys=True, demand="smooth",
              demand_params={"tau": 3.0, "eps": 0.25})
SEGMENTS = [16, 32, 64, 128]  # w_i = 16 * 2^i; the last covers the whole training sequence (105 tokens)
DILATIONS = [1, 2, 4, 8]  # r_i = 2^i
MODELS = {"dense": 2, "dilated_L1": 1, "dilated_L2": 2, "dilated_L3": 3, "dilated_L4": 4,  # name -> n_layer
          "dense_L3": 3, "dense_L4": 4, "dilated_L2_warm": 2, "dilated_L3_warm": 3, "dilated_L4_warm": 4}
WARM_INIT = {"dilated_L2_warm": "dense", "dilated_L3_warm": "dense_L3", "dilated_L4_warm": "dense_L4"}  # its dense start
WARM_TRAIN = {"steps": 2400, "lr": 1e-3, "warmup": 50, "seed": 1}  # the fine-tune from dense weights
SWEEP_SEED = 1000  # the probe sequences of the stored sweep


def attention_spec(name: str) -> dict:
    """The attention of a model, as data: {"kind": "dense"} or the dilated schedule."""
    if name not in MODELS:
        raise ValueError(f"name must be one of {sorted(MODELS)}, got {name!r}")
    if name.startswith("dense"):
        return {"kind": "dense"}
    return {"kind": "dilated", "segment_lengths": list(SEGMENTS), "dilation_rates": list(DILATIONS)}


def attention_fn(spec: dict):
    """The attention function a spec (from :func:`attention_spec` or a config.json) names: None for dense SDPA,
    else dilated attention in its bias form (lclib.dilated.make_bias_attention: at ~100 tokens one dense call
    with the n x n bias is cheaper than dilated_attention's many small blocks; equal up to rounding)."""
    if not isinstance(spec, dict) or spec.get("kind") not in ("dense", "dilated"):
        raise ValueError(f"spec must be a dict with kind 'dense' or 'dilated', got {spec!r}")
    if spec["kind"] == "dense":
        return None
    return dilated.make_bias_attention(list(spec["segment_lengths"]), list(spec["dilation_rates"]))


def apply_attention(model: GPT, spec: dict) -> GPT:
    """Plug the attention a spec names into every block of a loaded model."""
    fn = attention_fn(spec)  # checks spec first
    model.set_attention(fn)
    return model


def model_config(name: str) -> GPTConfig:
    if name not in MODELS:
        raise ValueError(f"name must be one of {sorted(MODELS)}, got {name!r}")
    return GPTConfig(vocab_size=TASK.vocab_size, n_layer=MODELS[name], n_head=4, d_model=64)


def train_config(steps: int = 1800, seed: int = 0) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=32, lr=3e-3, warmup=min(100, steps), seed=seed)


def warm_train_config(steps: int = WARM_TRAIN["steps"]) -> TrainConfig:
    """The fine-tune of a dilated_L*_warm model from its dense start."""
    return TrainConfig(steps=steps, batch_size=32, lr=WARM_TRAIN["lr"], warmup=min(WARM_TRAIN["warmup"], steps),
                       seed=WARM_TRAIN["seed"])


def recipe_train_config(name: str) -> TrainConfig:
    """The training config of model `name` as the tool's defaults make it (what its config.json records)."""
    if name not in MODELS:
        raise ValueError(f"name must be one of {sorted(MODELS)}, got {name!r}")
    return warm_train_config() if name in WARM_INIT else train_config()


def train_one(name: str, tcfg: TrainConfig, progress: bool = False,
              init_state: dict[str, torch.Tensor] | None = None) -> tuple[GPT, list[float], float]:
    """Train model `name` with lclib.train.train, from scratch or from init_state (a dense model's
    state_dict of the same depth); returns (model, losses, CPU seconds)."""
    start = time.process_time()
    model, history = train(model_config(name), TASK, tcfg, device="cpu", progress=progress, desc=name,
                           attention_fn=attention_fn(attention_spec(name)), init_state=init_state)
    return model, history["loss"], time.process_time() - start


def run(name: str, args: argparse.Namespace) -> dict:
    warm = name in WARM_INIT
    tcfg = warm_train_config(args.warm_steps) if warm else train_config(args.steps, args.seed)
    init_state = load(f"{args.out}/{WARM_INIT[name]}").state_dict() if warm else None
    model, losses, cpu_s = train_one(name, tcfg, progress=not args.quiet, init_state=init_state)
    sweep = probes.position_sweep(model, TASK, PAIRS, samples=args.samples, seed=SWEEP_SEED)
    extra = {"init": WARM_INIT[name]} if warm else {}
    save(model, f"{args.out}/{name}", schema=SCHEMA, task=TASK.to_dict(), attention=attention_spec(name),
         train=asdict(tcfg), cpu_s=round(cpu_s, 1), final_loss=round(losses[-1], 4),
         sweep=probes.sweep_to_json(sweep), threads=torch.get_num_threads(), build=repro.build(), **extra)
    exact = (sweep["exact"] * 100).round().int().tolist()
    print(f"{name}: {cpu_s:.0f} s CPU, final loss {losses[-1]:.3f}, mean exact {float(sweep['exact'].mean()):.3f}; "
          f"exact % by pair: {exact}", flush=True)
    return {"name": name, "cpu_s": cpu_s}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="weights/dilated", help="folder for one subfolder per model")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--steps", type=cli.positive_int, default=1800,
                        help="optimizer steps from scratch, the same for every model")
    parser.add_argument("--warm-steps", type=cli.positive_int, default=WARM_TRAIN["steps"],
                        help="fine-tune steps of the dilated_L*_warm models (their dense start read from --out)")
    parser.add_argument("--seed", type=cli.non_negative_int, default=0)
    parser.add_argument("--samples", type=cli.positive_int, default=256, help="probe sequences per pair position")
    parser.add_argument("--threads", type=cli.positive_int, default=1, help="torch CPU threads (the bits depend on it)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    cli.add_debug(parser)
    args = parser.parse_args(argv)
    return cli.run(lambda: train_all(args), args.debug)


def train_all(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    print(repro.banner(), flush=True)
    start = time.perf_counter()
    for name in args.models:
        run(name, args)
    print(f"total {time.perf_counter() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
