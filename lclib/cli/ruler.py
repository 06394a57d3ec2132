"""``python -m lclib ruler``: RULER-lite scores of a lab checkpoint per task and length, and its effective length.

    python -m lclib ruler --checkpoint weights/effective_context/base --method yarn --scale 4 \\
        --lengths 256,512,1024 --samples 32 --json
"""

from __future__ import annotations

import argparse
import importlib
import json
from collections.abc import Callable

from . import add_debug, positive_float, positive_int

EXACT_WARNING = ("mode teacher_exact scores exact match of the whole completion in text order, not RULER's string "
                 "match: this effective length is not comparable with RULER's threshold or notebook 05's")


def register(commands: argparse._SubParsersAction) -> None:
    """Add the ruler command to the subparsers of ``python -m lclib``."""
    p = commands.add_parser(
        "ruler", help="RULER-lite scores per task and length, and the effective length",
        description="RULER-lite on a lab checkpoint.",
        epilog="--json prints one object: checkpoint, method, scale, mode, score ('teacher-forced string_match' in "
               "teacher_match mode, RULER's 'string_match' in generate mode, 'exact' in teacher_exact mode), lengths "
               "[int], tasks {name: [score per length]}, average [task mean per length], threshold (a fixed number, "
               "never the model's own score), effective_length (the largest length whose average, and every "
               "shorter one's, reaches the threshold; 0 if none), and warning (null, or why the effective length "
               "is not RULER's: teacher_exact scores exact match, not RULER's string match).")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--method", type=_one_of("lclib.scaling", "METHODS"), default=None,
                   help="RoPE scaling applied without training, one of lclib.scaling.METHODS "
                        "(default: the checkpoint's own setting)")
    p.add_argument("--scale", type=positive_float, default=1.0)
    p.add_argument("--original-max-len", type=positive_int, default=None, help="L (default: the checkpoint's training length)")
    p.add_argument("--lengths", type=_lengths, default=None,
                   help="comma-separated, each in [32, LAB_MAX_LENGTH] (lclib.ruler.adapters; default: L,2L,4L,8L, "
                        "which needs 8L <= LAB_MAX_LENGTH)")
    p.add_argument("--samples", type=positive_int, default=32)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--tasks", default=None, help="comma-separated task names (default: the checkpoint's training tasks)")
    p.add_argument("--mode", type=_one_of("lclib.ruler.evaluate", "MODES"), default="teacher_match",
                   help="one of lclib.ruler.evaluate.MODES. teacher_match (default, notebook 05's score): RULER's string match on the teacher-forced "
                        "argmax text; generate: greedy decoding, RULER's string match; teacher_exact: exact match of "
                        "the whole completion in text order, stricter than RULER's score")
    p.add_argument("--threshold", type=_fraction, default=None,
                   help="effective-length threshold (default lclib.ruler.evaluate.THRESHOLD, 0.85)")
    p.add_argument("--json", action="store_true")
    add_debug(p)
    p.set_defaults(func=run)


def _one_of(module: str, name: str) -> Callable[[str], str]:
    """An argparse type: one of the names module.name lists (imported when the command runs, not before)."""
    def parse(text: str) -> str:
        choices = getattr(importlib.import_module(module), name)
        if text not in choices:
            raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {', '.join(choices)})")
        return text

    return parse


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return value


def _lengths(text: str) -> list[int]:
    from ..ruler.adapters import LAB_MAX_LENGTH

    try:
        lengths = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"lengths must be comma-separated integers, got {text!r}") from None
    if any(not 32 <= seq_len <= LAB_MAX_LENGTH for seq_len in lengths):
        raise argparse.ArgumentTypeError(f"each length must be in [32, {LAB_MAX_LENGTH}], got {text!r}")
    return lengths


def run(args: argparse.Namespace) -> int:
    """Score the checkpoint on its tasks (or --tasks) at --lengths; print a table or one JSON object."""
    from ..checkpoint import load, read_metadata
    from ..ruler import metrics
    from ..ruler.adapters import LabModel
    from ..ruler.evaluate import THRESHOLD, evaluate
    from ..scaling import RopeScaling

    meta = read_metadata(args.checkpoint)
    original_max_len, lengths = _lengths_of(args, meta)
    model = load(args.checkpoint)
    if args.method is not None:
        model.set_rope_scaling(None if args.method == "none" else
                               RopeScaling(args.method, args.scale, original_max_len=original_max_len))
    tasks = _tasks_of(args, meta)
    threshold = THRESHOLD if args.threshold is None else args.threshold
    out = evaluate(LabModel(model), tasks, lengths, args.samples, args.seed, args.mode)
    scaling = model.config.rope_scaling
    result = {"checkpoint": str(args.checkpoint), "method": getattr(scaling, "method", "none"),
              "scale": getattr(scaling, "scale", 1.0), "score": out["score"], "lengths": lengths,
              "tasks": {t: [row[seq_len] for seq_len in lengths] for t, row in out["scores"].items()},
              "average": [out["average"][seq_len] for seq_len in lengths], "threshold": threshold,
              "effective_length": metrics.effective_length(out["average"], threshold),
              "mode": args.mode, "warning": EXACT_WARNING if args.mode == "teacher_exact" else None}
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(f"mode {args.mode}: {out['score']}")
    for seq_len, v in zip(lengths, result["average"]):
        print(f"{seq_len:>6}  {v:.3f}")
    if result["warning"]:
        print(f"warning: {result['warning']}")
    print(f"effective length (threshold {threshold}, mode {args.mode}): {result['effective_length']}")
    return 0


def _lengths_of(args: argparse.Namespace, meta: dict) -> tuple[int, list[int]]:
    """L (--original-max-len, else the checkpoint's training length) and the lengths to read (default L..8L)."""
    from ..ruler.adapters import LAB_MAX_LENGTH
    from ..ruler.evaluate import MAX_SAMPLES

    task_meta = meta.get("task", {})
    if "tasks" not in task_meta:
        raise ValueError(f"{args.checkpoint} is not a RULER-lite checkpoint (its config.json has no task mixture): "
                         "a key-value checkpoint of notebook 04 is probed with `python -m lclib position-sweep`")
    L = args.original_max_len or task_meta.get("max_len")
    if isinstance(L, bool) or not isinstance(L, int) or L < 1:
        raise ValueError(f"{args.checkpoint}: config.json task max_len must be a positive int, got {L!r}; "
                         "pass --original-max-len")
    if args.lengths is None and not 32 <= L <= LAB_MAX_LENGTH // 8:  # the default lengths L..8L must be readable
        source = "--original-max-len" if args.original_max_len else "the checkpoint's training length (max_len)"
        raise ValueError(f"default lengths L..8L need L in [32, {LAB_MAX_LENGTH // 8}] (LAB_MAX_LENGTH = "
                         f"{LAB_MAX_LENGTH}), got L = {L} from {source}: pass --lengths")
    if args.samples > MAX_SAMPLES:
        raise ValueError(f"--samples must be at most {MAX_SAMPLES}, got {args.samples}")
    return L, args.lengths or [L, 2 * L, 4 * L, 8 * L]


def _tasks_of(args: argparse.Namespace, meta: dict) -> dict[str, dict]:
    """The checkpoint's training tasks with their parameters, or those named by --tasks."""
    from ..ruler.tasks import TASKS

    tasks = meta["task"]["tasks"]
    if not args.tasks:
        return tasks
    unknown = sorted(set(args.tasks.split(",")) - set(TASKS))
    if unknown:
        raise ValueError(f"--tasks: unknown task(s) {unknown}; choose from {sorted(TASKS)}")
    return {t: tasks.get(t, {}) for t in args.tasks.split(",")}
