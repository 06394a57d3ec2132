"""Train the model profile of notebook 04 and write its weights, then print each model's position sweep.

The recipe: 2 layers, d_model 64, 4 heads, RoPE, PyTorch's default initialisation; 24 pairs,
questions "Q key v1 v2"; AdamW 3e-3, batch 32, 100 warm-up steps, cosine to zero, 2,000 steps.
Measured on a 2-core CPU shared with other jobs: about 3 minutes per model with two trained side
by side on one thread each.

    skewed_seed{0,1,2}: keys i.i.d. from 32 symbols, smooth U-shaped demand (tau 3, eps 0.25)
    uniform_ambiguous:  keys i.i.d. from 32 symbols, uniform demand (the remedy)
    uniform_distinct:   distinct keys from 64 symbols, uniform demand (the evenly trained model)

    python tools/train_lost_in_the_middle.py --out weights/lost_in_the_middle --steps 2000

Each model goes to OUT/NAME/ (model.safetensors + config.json with the task and the sweep).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict

import torch

from lclib import probes, repro
from lclib.model import GPTConfig
from lclib.tasks import KVTask
from lclib.train import TrainConfig, save, train

SMOOTH = {"tau": 3.0, "eps": 0.25}
PROFILE = {
    "skewed_seed0": (KVTask(n_pairs=24, key_symbols=32, demand="smooth", demand_params=SMOOTH), 0),
    "skewed_seed1": (KVTask(n_pairs=24, key_symbols=32, demand="smooth", demand_params=SMOOTH), 1),
    "skewed_seed2": (KVTask(n_pairs=24, key_symbols=32, demand="smooth", demand_params=SMOOTH), 2),
    "uniform_ambiguous": (KVTask(n_pairs=24, key_symbols=32, demand="uniform"), 0),
    "uniform_distinct": (KVTask(n_pairs=24, key_symbols=64, distinct_keys=True, demand="uniform"), 0),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="weights/lost_in_the_middle")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=256, help="probe sequences per position")
    parser.add_argument("--only", nargs="*", default=None, help="names from the profile to train")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest for this size)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(repro.banner())
    start = time.perf_counter()
    for name, (task, seed) in PROFILE.items():
        if args.only and name not in args.only:
            continue
        mcfg = GPTConfig(vocab_size=task.vocab_size, n_layer=2, n_head=4, d_model=64)
        tcfg = TrainConfig(steps=args.steps, batch_size=32, lr=3e-3, warmup=min(100, args.steps), seed=seed)
        model, history = train(mcfg, task, tcfg, desc=name)
        sweep = probes.position_sweep(model, task, 24, samples=args.samples, seed=1000 + seed)
        summary = probes.u_shape(sweep["exact"])
        save(model, f"{args.out}/{name}", task=task.to_dict(), train=asdict(tcfg), wall_s=round(history["wall_s"], 1),
             sweep=probes.sweep_to_json(sweep), summary={k: round(v, 4) for k, v in summary.items()})
        print(name, f"{history['wall_s']:.0f} s", json.dumps({k: round(v, 3) for k, v in summary.items()}))
        print("  exact %:", (sweep["exact"] * 100).round().int().tolist())
    print(f"total {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
