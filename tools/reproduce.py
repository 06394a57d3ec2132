"""Retrain one shipped model of each notebook that ships weights, and compare it with the shipped weights.

    make reproduce                        # all three (about 12 minutes on one CPU thread)
    python tools/reproduce.py --only effective_context

What is retrained, each from the recipe stored in its config.json, on one thread as it was trained:
    dilated            dilated_L1 (notebook 03b; tools/train_dilated.py)
    lost_in_the_middle skewed_seed0, then uniform_ft_seed0 from it, with the probe history the tool records
                       (notebook 04; tools/train_lost_in_the_middle.py)
    effective_context  pi_ft from base (notebooks 05 and 05b; tools/train_effective_context.py)

What can be promised depends on the machine. Floating-point addition is not associative: the thread count,
the CPU instruction set and the torch build decide the order of every sum, and training amplifies the last
bits step after step. The last two are stored beside the weights (`build` in config.json). Where they and the
thread count match, the retrained weights must equal the shipped ones bit for bit. Elsewhere the promise is
the measured curve, within its noise: 03b's accuracy by pair (mean within 0.1), 04's history by position
(ends within 0.15, mean within 0.1, at steps 2,000 and 3,500), 05's RULER score at L..8L (within three standard
errors). One line per model; exit status 1 when a promise is broken.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "weights"


def tool(name: str) -> ModuleType:
    """tools/<name>.py as a module (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def same_bits(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    shipped = b.state_dict()
    return all(torch.equal(v, shipped[k]) for k, v in a.state_dict().items())


def same_machine(meta: dict) -> bool:
    from lclib import repro

    return meta.get("build") == repro.build() and meta.get("threads", 1) == 1


def dilated() -> tuple[bool, bool, str]:
    """dilated_L1 of notebook 03b: bits, or the accuracy by pair (mean within 0.1)."""
    from lclib import checkpoint, kv_task, probes, train

    t = tool("train_dilated")
    meta = checkpoint.read_metadata(WEIGHTS / "dilated" / "dilated_L1")
    model, _, _ = t.train_one("dilated_L1", train.TrainConfig(**meta["train"]))
    identical = same_bits(model, checkpoint.load(WEIGHTS / "dilated" / "dilated_L1"))
    t.apply_attention(model, meta["attention"])
    sweep = probes.position_sweep(model, kv_task.KVTask(**meta["task"]), t.PAIRS, samples=128, seed=2000)["exact"]
    gap = abs(float(sweep.mean()) - float(np.mean(meta["sweep"]["exact"])))
    return identical, gap < 0.1, f"mean accuracy by pair within {gap:.3f} of the shipped sweep (allowed 0.1)"


def lost_in_the_middle() -> tuple[bool, bool, str]:
    """skewed_seed0 and uniform_ft_seed0 of notebook 04: bits and history, or the history's ends and mean."""
    from lclib import checkpoint, kv_task, train

    t = tool("train_lost_in_the_middle")

    def redo(name: str, init_state=None):
        meta = checkpoint.read_metadata(WEIGHTS / "lost_in_the_middle" / name)
        log: list[dict] = []  # the tool's probe history, recorded the way the tool records it
        model, _ = train.train(checkpoint.load(WEIGHTS / "lost_in_the_middle" / name).config, kv_task.KVTask(**meta["task"]),
                               train.TrainConfig(**meta["train"]), eval_fn=t.history_fn(meta["history"]["eval_samples"], log),
                               eval_every=100, init_state=init_state, progress=False)
        return model, np.array([p["exact"] for p in log]), np.array([p["exact"] for p in meta["history"]["points"]])

    skewed, live0, stored0 = redo("skewed_seed0")
    final, live1, stored1 = redo("uniform_ft_seed0", init_state=skewed.state_dict())
    live, stored = np.concatenate([live0, live1]), np.concatenate([stored0, stored1])  # (checkpoints, 24)
    identical = same_bits(final, checkpoint.load(WEIGHTS / "lost_in_the_middle" / "uniform_ft_seed0")) and np.array_equal(live, stored)
    close = all(abs(a[:3].mean() - b[:3].mean()) <= 0.15 and abs(a.mean() - b.mean()) <= 0.1
                for a, b in ((live[19], stored[19]), (live[-1], stored[-1])))  # steps 2,000 and 3,500
    return identical, close, f"largest history difference {np.abs(live - stored).max():.3f}"


def effective_context() -> tuple[bool, bool, str]:
    """pi_ft of notebooks 05 and 05b: bits, or RULER's score at L..8L within three standard errors."""
    from lclib import checkpoint
    from lclib.ruler import adapters, evaluate, metrics, mixture

    t = tool("train_effective_context")
    model, _, _, _ = t.train_one("pi_ft", WEIGHTS / "effective_context", progress=False)
    shipped = checkpoint.load(WEIGHTS / "effective_context" / "pi_ft")
    identical = same_bits(model, shipped)
    L, samples = t.L, 32
    lengths = [L, 2 * L, 4 * L, 8 * L]
    means = [metrics.task_average(evaluate.evaluate(adapters.LabModel(m), mixture.LAB_TASKS, lengths, samples=samples,
                                                    seed=1, mode="teacher_match")["scores"]) for m in (model, shipped)]
    se = lambda p: np.sqrt(max(p * (1 - p), 0.5 / samples) / (4 * samples))  # noqa: E731
    worst = max(abs(means[0][n] - means[1][n]) / np.hypot(se(means[0][n]), se(means[1][n])) for n in lengths)
    return identical, worst <= 3, f"RULER score at L..8L within {worst:.1f} standard errors of the shipped model's (allowed 3)"


CHECKS = {"dilated": ("dilated", "dilated_L1", dilated),
          "lost_in_the_middle": ("lost_in_the_middle", "skewed_seed0", lost_in_the_middle),
          "effective_context": ("effective_context", "pi_ft", effective_context)}


def main(argv: list[str] | None = None) -> int:
    from lclib import checkpoint, cli, repro

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(CHECKS), default=list(CHECKS))
    cli.add_debug(parser)
    args = parser.parse_args(argv)

    def run() -> int:
        print(repro.banner(), flush=True)
        torch.set_num_threads(1)  # as the tools trained: CPU matmuls sum in another order with more threads
        broken = 0
        for key in args.only:
            folder, name, check = CHECKS[key]
            meta = checkpoint.read_metadata(WEIGHTS / folder / name)
            start = time.perf_counter()
            identical, close, detail = check()
            machine = same_machine(meta)
            ok = identical if machine else (identical or close)
            broken += not ok
            print(f"{'ok    ' if ok else 'BROKEN'} {key:19s} {time.perf_counter() - start:5.0f} s  bit for bit: {identical}; "
                  f"same build and threads as the shipped weights: {machine}; {detail}", flush=True)
        return 1 if broken else 0

    return cli.run(run, args.debug)


if __name__ == "__main__":
    sys.exit(main())
