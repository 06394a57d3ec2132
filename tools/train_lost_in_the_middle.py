"""Train the models of notebook 04 and write their weights, training histories and position sweeps.

The recipe: 2 layers, d_model 64, 4 heads, RoPE, PyTorch's default initialisation; 24 pairs,
questions "Q key v1 v2", keys i.i.d. from 32 symbols (so a key may occur more than once);
AdamW, batch 32, warm-up then cosine to zero.

    skewed_seed{0,1,2}   from scratch, smooth U-shaped demand (tau 3, eps 0.25): 2,000 steps, lr 3e-3
    uniform_ft_seed{0,1,2}  skewed_seed{s} fine-tuned on uniform demand (the remedy, in the spirit of
                         An et al. 2024's information-intensive training): 1,500 steps, lr 3e-3

    python tools/train_lost_in_the_middle.py --out weights/lost_in_the_middle --seeds 0 1 2

Each model goes to OUT/NAME/ (model.safetensors + config.json with the task, the training config,
the history: accuracy by position every --eval-every steps on --eval-samples probes per position,
and the final sweep on --samples probes). Measured on the 2-core CPU: about 90 s per 2,000 steps
on an idle core; two seeds side by side on one thread each. Evenly trained from scratch (uniform
demand, distinct or ambiguous keys) the lab model stayed at chance for 3,000 steps here; the
skewed demand bootstraps retrieval, and the uniform fine-tune then removes the U.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict

import torch

from lclib import cli, probes, repro
from lclib.model import GPTConfig
from lclib.checkpoint import save
from lclib.kv_task import KVTask
from lclib.train import TrainConfig, train

SMOOTH = {"tau": 3.0, "eps": 0.25}
PAIRS, KEY_SYMBOLS = 24, 32
SKEWED = KVTask(n_pairs=PAIRS, key_symbols=KEY_SYMBOLS, demand="smooth", demand_params=SMOOTH)
UNIFORM = KVTask(n_pairs=PAIRS, key_symbols=KEY_SYMBOLS, demand="uniform")
EVAL_SEED = 5  # the history's probe sequences (the final sweep uses 1000 + seed)


def skewed_config(steps: int, seed: int) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=32, lr=3e-3, warmup=min(100, steps), seed=seed)


def remedy_config(steps: int, seed: int) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=32, lr=3e-3, warmup=min(100, steps), seed=100 + seed)


def history_fn(samples: int, log: list):
    """An eval callback recording exact match by position (probed on UNIFORM: every position asked)."""
    def record(model, step: int) -> dict:
        exact = probes.position_sweep(model, UNIFORM, PAIRS, samples=samples, seed=EVAL_SEED)["exact"]
        log.append({"step": step, "exact": [round(float(x), 5) for x in exact]})
        return {"mean_exact": float(exact.mean())}
    return record


def run(name: str, task: KVTask, tcfg: TrainConfig, args, init_state=None, step_offset: int = 0):
    mcfg = GPTConfig(vocab_size=task.vocab_size, n_layer=2, n_head=4, d_model=64)
    log: list = []
    model, hist = train(mcfg, task, tcfg, desc=name, eval_fn=history_fn(args.eval_samples, log),
                        eval_every=args.eval_every, init_state=init_state, progress=not args.quiet)
    for entry in log:
        entry["step"] += step_offset
    sweep = probes.position_sweep(model, UNIFORM, PAIRS, samples=args.samples, seed=1000 + tcfg.seed % 100)
    summary = {k: round(v, 4) for k, v in probes.u_shape(sweep["exact"]).items()}
    save(model, f"{args.out}/{name}", task=task.to_dict(), train=asdict(tcfg), wall_s=round(hist["wall_s"], 1),
         history={"eval_samples": args.eval_samples, "eval_seed": EVAL_SEED, "points": log},
         sweep=probes.sweep_to_json(sweep), summary=summary, threads=torch.get_num_threads(), build=repro.build())
    print(name, f"{hist['wall_s']:.0f} s", json.dumps(summary), flush=True)
    print("  exact %:", (sweep["exact"] * 100).round().int().tolist(), flush=True)
    return model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="weights/lost_in_the_middle")
    parser.add_argument("--seeds", type=cli.non_negative_int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=cli.positive_int, default=2000, help="skewed training steps")
    parser.add_argument("--remedy-steps", type=cli.positive_int, default=1500, help="uniform fine-tune steps")
    parser.add_argument("--samples", type=cli.positive_int, default=256, help="probe sequences per position, final sweep")
    parser.add_argument("--eval-every", type=cli.positive_int, default=100)
    parser.add_argument("--eval-samples", type=cli.positive_int, default=64, help="probe sequences per position, history")
    parser.add_argument("--threads", type=cli.positive_int, default=1, help="torch CPU threads (1 is fastest for this size)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    cli.add_debug(parser)
    args = parser.parse_args()
    return cli.run(lambda: train_all(args), args.debug)


def train_all(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    print(repro.banner())
    start = time.perf_counter()
    for seed in args.seeds:
        skewed = run(f"skewed_seed{seed}", SKEWED, skewed_config(args.steps, seed), args)
        run(f"uniform_ft_seed{seed}", UNIFORM, remedy_config(args.remedy_steps, seed), args,
            init_state=skewed.state_dict(), step_offset=args.steps)
    print(f"total {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
