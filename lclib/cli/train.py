"""``python -m lclib train``: train the lab model on key-value recall and save it as a checkpoint.

    python -m lclib train --out runs/kv --steps 3000 --pairs 24 --key-symbols 32 --demand smooth --seed 0
"""

from __future__ import annotations

import argparse
from dataclasses import asdict

from . import add_debug, non_negative_int, positive_float, positive_int


def register(commands: argparse._SubParsersAction) -> None:
    """Add the train command to the subparsers of ``python -m lclib``."""
    parser = commands.add_parser("train", help="train the lab model on key-value recall and save it",
                                 description="Train the lab model on key-value retrieval and save it (or "
                                 "`python -m lclib stamp PATH`: store the missing SHA-256 of a trusted checkpoint).")
    parser.add_argument("--out", required=True, help="folder for model.safetensors and config.json")
    parser.add_argument("--steps", type=positive_int, default=3000)
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--lr", type=positive_float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pairs", type=positive_int, nargs="+", default=[24], help="n, or min max")
    parser.add_argument("--key-symbols", type=positive_int, default=32)
    parser.add_argument("--distinct-keys", action="store_true")
    parser.add_argument("--demand", default="smooth")
    parser.add_argument("--tau", type=float, default=3.0)
    parser.add_argument("--eps", type=float, default=0.25)
    parser.add_argument("--d-model", type=positive_int, default=64)
    parser.add_argument("--n-layer", type=positive_int, default=2)
    parser.add_argument("--n-head", type=positive_int, default=4)
    parser.add_argument("--pos-encoding", default="rope")
    parser.add_argument("--threads", type=non_negative_int, default=0, help="torch threads on the CPU (0: leave as is)")
    add_debug(parser)
    parser.set_defaults(func=run, error=parser.error)


def run(args: argparse.Namespace) -> int:
    """Check --pairs and --out (before training, not after), train, save; print one summary line."""
    if len(args.pairs) > 2:
        args.error(f"--pairs takes n, or min max; got {len(args.pairs)} numbers")
    if not args.out.strip():
        args.error("--out must name a folder, got an empty path (it would mean the current folder)")
    import torch

    from ..checkpoint import folder_problem, save
    from ..model import GPTConfig
    from ..kv_task import KVTask
    from ..train import TrainConfig, train

    problem = folder_problem(args.out)
    if problem:
        args.error(f"--out {problem}")
    if args.threads:
        torch.set_num_threads(args.threads)
    pairs = args.pairs[0] if len(args.pairs) == 1 else (args.pairs[0], args.pairs[1])
    task = KVTask(n_pairs=pairs, key_symbols=args.key_symbols, distinct_keys=args.distinct_keys,
                  demand=args.demand, demand_params={"tau": args.tau, "eps": args.eps})
    model_config = GPTConfig(vocab_size=task.vocab_size, n_layer=args.n_layer, n_head=args.n_head, d_model=args.d_model,
                             pos_encoding=args.pos_encoding)
    train_config = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    model, history = train(model_config, task, train_config)
    save(model, args.out, task=task.to_dict(), train=asdict(train_config), wall_s=round(history["wall_s"], 1))
    print(f"saved {args.out} ({model.num_params()} parameters, {history['wall_s']:.0f} s, "
          f"final loss {history['loss'][-1]:.3f})")
    return 0
