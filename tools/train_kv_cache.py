"""Train the models of notebook 06: the lab model with 4 (multi-head), 2 (grouped-query) and 1 (multi-query) KV heads.

The recipe is notebook 04's skewed one (2 layers, d_model 64, 4 query heads, RoPE, PyTorch's default
initialisation; 24 pairs, keys i.i.d. from 32 symbols, smooth U-shaped demand, which bootstraps retrieval;
AdamW, batch 32, lr 3e-3, 2,000 steps, seed 0); only the number of KV heads changes. A grouped model is
built grouped, GPT(GPTConfig(..., n_kv_head=n)) (a model trained with shared heads from the start, not a
pooled multi-head one), and saved grouped (config.json's "architecture" holds n_kv_head; `kv_heads` is kept
for notebook 06). The shipped weights/kv_cache models predate this: they were built multi-head, regrouped,
their qkv projection re-drawn, and saved in the multi-head layout (`GPT.group_kv_heads(kv_heads)` after
loading gives them back bit for bit), so a rerun draws other initial weights than theirs.

    python tools/train_kv_cache.py --out weights/kv_cache --kv-heads 4 2 1

Each model goes to OUT/kv{n}/ with its recipe, wall time, the accuracy by position every --eval-every steps
(distinct keys, --eval-samples probes per position) and the final sweep (distinct keys, --samples probes).
Measured on the shared 2-core CPU, one thread each: about 5 to 6 CPU-minutes per model (20 to 35 minutes of wall time
with three models and other work side by side).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict

import torch

from lclib import cli, probes, repro
from lclib.model import GPT, GPTConfig
from lclib.checkpoint import save
from lclib.kv_task import KVTask
from lclib.train import TrainConfig, run_steps

PAIRS, KEY_SYMBOLS = 24, 32
TASK = KVTask(n_pairs=PAIRS, key_symbols=KEY_SYMBOLS, demand="smooth", demand_params={"tau": 3.0, "eps": 0.25})
PROBE = KVTask(n_pairs=PAIRS, key_symbols=KEY_SYMBOLS, distinct_keys=True, demand="uniform")  # content decides
EVAL_SEED = 5


def model_config(n_kv_head: int | None = None) -> GPTConfig:
    return GPTConfig(vocab_size=TASK.vocab_size, n_layer=2, n_head=4, d_model=64, n_kv_head=n_kv_head)


def train_config(steps: int, seed: int) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=32, lr=3e-3, warmup=min(100, steps), seed=seed)


def build(n_kv_head: int, seed: int) -> GPT:
    """A fresh model with n_kv_head KV heads, initialised as lclib.train.train initialises (seeded)."""
    repro.seed_everything(seed)
    return GPT(model_config(n_kv_head))


def train_one(n_kv_head: int, tcfg: TrainConfig, eval_every: int, eval_samples: int, progress: bool) -> tuple[GPT, dict]:
    """Train as lclib.train.train does (AdamW, decay on matrices only), recording accuracy by position."""
    model = build(n_kv_head, tcfg.seed)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": tcfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=tcfg.lr, betas=(0.9, 0.95))
    losses: list[float] = []
    points: list[dict] = []

    def after_step(done: int) -> None:
        if done % eval_every == 0:
            model.eval()
            exact = probes.position_sweep(model, PROBE, PAIRS, samples=eval_samples, seed=EVAL_SEED)["exact"]
            points.append({"step": done, "exact": [round(float(x), 5) for x in exact]})
            model.train()

    start = time.perf_counter()
    run_steps(model, opt, TASK.sample, tcfg, losses, after_step, progress=progress, desc=f"kv{n_kv_head}")
    model.eval()
    return model, {"wall_s": round(time.perf_counter() - start, 1), "points": points,
                   "final_loss": round(sum(losses[-50:]) / 50, 4)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="weights/kv_cache")
    parser.add_argument("--kv-heads", type=cli.positive_int, nargs="+", default=[4, 2, 1])
    parser.add_argument("--steps", type=cli.positive_int, default=2000)
    parser.add_argument("--seed", type=cli.non_negative_int, default=0)
    parser.add_argument("--eval-every", type=cli.positive_int, default=250)
    parser.add_argument("--eval-samples", type=cli.positive_int, default=32)
    parser.add_argument("--samples", type=cli.positive_int, default=256)
    parser.add_argument("--threads", type=cli.positive_int, default=1)
    parser.add_argument("--quiet", action="store_true")
    cli.add_debug(parser)
    args = parser.parse_args()
    return cli.run(lambda: _command(args), args.debug)


def _command(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    for n in args.kv_heads:
        tcfg = train_config(args.steps, args.seed)
        model, hist = train_one(n, tcfg, args.eval_every, args.eval_samples, progress=not args.quiet)
        sweep = probes.position_sweep(model, PROBE, PAIRS, samples=args.samples, seed=1000 + args.seed)
        save(model, f"{args.out}/kv{n}", kv_heads=n, task=TASK.to_dict(), probe_task=PROBE.to_dict(),
             train=asdict(tcfg), wall_s=hist["wall_s"], final_loss=hist["final_loss"],
             history={"eval_samples": args.eval_samples, "eval_seed": EVAL_SEED, "points": hist["points"]},
             sweep=probes.sweep_to_json(sweep), threads=torch.get_num_threads(), build=repro.build())
        print(f"kv{n}: {hist['wall_s']:.0f} s, final loss {hist['final_loss']}, distinct-key exact match "
              f"mean {float(sweep['exact'].mean()):.3f}, min {float(sweep['exact'].min()):.3f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
