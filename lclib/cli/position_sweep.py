"""``python -m lclib position-sweep``: exact match and log p(value) per pair position (lclib.probes.position_sweep).

    python -m lclib position-sweep --checkpoint weights/lost_in_the_middle/skewed_seed0 \
        --pairs 24 --samples 256 --seed 0 --json
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from . import add_debug, positive_int

if TYPE_CHECKING:
    from ..kv_task import KVTask


def register(commands: argparse._SubParsersAction) -> None:
    """Add the position-sweep command to the subparsers of ``python -m lclib``."""
    sweep = commands.add_parser("position-sweep", help="exact match and log p(value) per pair position")
    sweep.add_argument("--checkpoint", required=True, help="folder written by lclib.checkpoint.save")
    sweep.add_argument("--pairs", type=positive_int, required=True, help="pairs per probe sequence")
    sweep.add_argument("--samples", type=positive_int, default=256, help="probe sequences per position")
    sweep.add_argument("--seed", type=int, default=0)
    sweep.add_argument("--key-symbols", type=positive_int, default=None,
                       help="override the checkpoint task's key alphabet")
    sweep.add_argument("--distinct-keys", action="store_true", default=None, help="probe with distinct keys")
    sweep.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_debug(sweep)
    sweep.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Sweep the checkpoint's key-value task over every pair position; print a table or JSON."""
    from ..checkpoint import load, read_metadata
    from ..probes import position_sweep, sweep_to_json

    meta = read_metadata(args.checkpoint)
    if "tasks" in meta.get("task", {}):
        raise ValueError(f"{args.checkpoint} is a RULER-lite checkpoint (notebook 05), not a key-value one: "
                         "probe it with `python -m lclib ruler`")
    task = _task_from_metadata(meta, args.key_symbols, args.distinct_keys)
    result = position_sweep(load(args.checkpoint), task, args.pairs, args.samples, args.seed)
    if args.json:
        print(json.dumps(sweep_to_json(result)))
    else:
        print("position  exact  [95% CI]         log p(value)")
        for i in range(args.pairs):
            print(f"{i + 1:8d}  {result['exact'][i]:.3f}  [{result['exact_lo'][i]:.3f}, {result['exact_hi'][i]:.3f}]"
                  f"  {result['logprob'][i]:8.3f} +- {result['logprob_ci'][i]:.3f}")
    return 0


def _task_from_metadata(meta: dict, key_symbols: int | None, distinct: bool | None) -> KVTask:
    """The checkpoint's recall task (its config.json "task" entry), with the command's overrides."""
    from ..kv_task import KVTask

    params = dict(meta.get("task", {}))
    if isinstance(params.get("n_pairs"), list):
        params["n_pairs"] = tuple(params["n_pairs"])
    if key_symbols is not None:
        params["key_symbols"] = key_symbols
    if distinct is not None:
        params["distinct_keys"] = distinct
    params["n_pairs"] = 1  # the sweep sets the length itself
    return KVTask(**params)
