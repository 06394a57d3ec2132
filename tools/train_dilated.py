"""Train the models of notebook 03b: the lab's GPT with causal dilated attention, 1-4 layers, and a dense control.

Every model sees the same batches from the same seed, for the same number of steps (the same budget):
the key-value task of notebook 04 with distinct keys (every question has one answer) and the smooth
U-shaped demand that bootstraps retrieval; 2 layers of dense attention as the control (retrieval by
an induction-style match needs two layers even when every key is in sight), and 1, 2, 3, 4 layers
of LongNet dilated attention (Ding et al. 2023, Eq. 5-10) with a geometric schedule: segments
w_i = 16 * 2^i, dilations r_i = 2^i, head j at offset j mod r_i.

    python tools/train_dilated.py --out weights/dilated

Measured on the shared 2-core CPU, one thread, 1,800 steps: dense 253 s CPU, dilated_L1 159 s, dilated_L2 255 s,
dilated_L3 367 s, dilated_L4 567 s (27 min of CPU for all five; two processes, one thread each, halve the wait). The dense control learns every pair (exact match 1.00); the dilated
models stay near a training loss of ln 16, chance per value token: in this budget they do not learn retrieval.

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
from lclib.tasks import KVTask
from lclib.train import TrainConfig, save, train

SCHEMA = 1  # version of the "attention" and "recipe" entries of config.json
PAIRS = 24
TASK = KVTask(n_pairs=PAIRS, key_symbols=32, distinct_keys=True, demand="smooth",
              demand_params={"tau": 3.0, "eps": 0.25})
SEGMENTS = [16, 32, 64, 128]  # w_i = 16 * 2^i; the last covers the whole training sequence (105 tokens)
DILATIONS = [1, 2, 4, 8]  # r_i = 2^i
MODELS = {"dense": 2, "dilated_L1": 1, "dilated_L2": 2, "dilated_L3": 3, "dilated_L4": 4}  # name -> n_layer
SWEEP_SEED = 1000  # the probe sequences of the stored sweep


def attention_spec(name: str) -> dict:
    """The attention of a model, as data: {"kind": "dense"} or the dilated schedule."""
    if name not in MODELS:
        raise ValueError(f"name must be one of {sorted(MODELS)}, got {name!r}")
    if name == "dense":
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


def train_one(name: str, tcfg: TrainConfig, progress: bool = False) -> tuple[GPT, list[float], float]:
    """Train model `name` from scratch with lclib.train.train; returns (model, losses, CPU seconds)."""
    start = time.process_time()
    model, history = train(model_config(name), TASK, tcfg, device="cpu", progress=progress, desc=name,
                           attention_fn=attention_fn(attention_spec(name)))
    return model, history["loss"], time.process_time() - start


def run(name: str, args: argparse.Namespace) -> dict:
    tcfg = train_config(args.steps, args.seed)
    model, losses, cpu_s = train_one(name, tcfg, progress=not args.quiet)
    sweep = probes.position_sweep(model, TASK, PAIRS, samples=args.samples, seed=SWEEP_SEED)
    save(model, f"{args.out}/{name}", schema=SCHEMA, task=TASK.to_dict(), attention=attention_spec(name),
         train=asdict(tcfg), cpu_s=round(cpu_s, 1), final_loss=round(losses[-1], 4),
         sweep=probes.sweep_to_json(sweep), threads=torch.get_num_threads(), build=repro.build())
    exact = (sweep["exact"] * 100).round().int().tolist()
    print(f"{name}: {cpu_s:.0f} s CPU, final loss {losses[-1]:.3f}, mean exact {float(sweep['exact'].mean()):.3f}; "
          f"exact % by pair: {exact}", flush=True)
    return {"name": name, "cpu_s": cpu_s}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="weights/dilated", help="folder for one subfolder per model")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--steps", type=cli.positive_int, default=1800, help="optimizer steps, the same for every model")
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
