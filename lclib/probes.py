"""Probes of a trained model: the position sweep behind the lost-in-the-middle curve.

For each pair position i the sweep builds ``samples`` fresh sequences whose one question asks
about pair i, then reads, teacher-forced, (a) exact match: both value tokens are the argmax
(what greedy decoding would print), and (b) the log-probability of the correct value,
log p(v1) + log p(v2 | v1). Liu et al. (TACL 2024, Fig. 1) plot (a) against the position of the
relevant document; (b) shows whether a miss is a confident wrong answer or a shrug.

Command line (prints the per-position results as JSON with --json):
    python -m lclib.probes position-sweep --checkpoint weights/lost_in_the_middle/skewed_seed0 \
        --pairs 24 --samples 256 --seed 0 --json
and the RULER-lite measurement of notebook 05 (lclib.ruler.evaluate; scores per task and length, and
the effective length):
    python -m lclib.probes ruler --checkpoint weights/effective_context/base --method yarn --scale 4 \
        --lengths 160,320,640 --samples 50 --seed 0 --json
"""

from __future__ import annotations

import argparse
import json
import math
import sys

import torch
from torch import Tensor

from .model import GPT
from .tasks import VALUE_LEN, KVTask
from .train import load, read_metadata

Z95 = 1.959963984540054  # two-sided 95% normal quantile
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}  # Student t


def wilson_interval(successes: Tensor, trials: int, z: float = Z95) -> tuple[Tensor, Tensor]:
    """95% Wilson score interval for binomial proportions (Wilson 1927). Shapes: successes (...,) -> two (...,)."""
    if trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    p = torch.as_tensor(successes, dtype=torch.float64) / trials
    denom = 1 + z ** 2 / trials
    centre = (p + z ** 2 / (2 * trials)) / denom
    half = z * torch.sqrt(p * (1 - p) / trials + z ** 2 / (4 * trials ** 2)) / denom
    # the min/max only absorb rounding at p = 0 or 1, where the interval ends exactly at p
    return torch.minimum(centre - half, p).clamp(0.0, 1.0), torch.maximum(centre + half, p).clamp(0.0, 1.0)


def mean_ci(values: Tensor, dim: int = 0) -> tuple[Tensor, Tensor]:
    """Mean and half-width of its 95% confidence interval (Student t) along dim, e.g. over seeds.

    Shapes: values (n, ...) -> mean (...,), half-width (...,). One value gives a zero half-width.
    """
    values = torch.as_tensor(values, dtype=torch.float64)
    n = values.shape[dim]
    mean = values.mean(dim)
    if n < 2:
        return mean, torch.zeros_like(mean)
    t = T95.get(n - 1, Z95)
    return mean, t * values.std(dim, unbiased=True) / math.sqrt(n)


@torch.no_grad()
def position_sweep(model: GPT, task: KVTask, n_pairs: int, samples: int = 256, seed: int = 0,
                   batch_size: int = 512, device: torch.device | str | None = None) -> dict:
    """Exact match and log p(correct value) for a question about each pair position 0 .. n_pairs-1.

    Returns a dict of float64 tensors of shape (n_pairs,): "exact" (fraction), "exact_lo",
    "exact_hi" (95% Wilson), "logprob" (mean), "logprob_ci" (95% half-width), "logprob_miss" (mean
    log p of the correct value over the misses only, nan where there is none), plus "positions"
    (1-based, as in Liu et al.), "samples", "n_pairs". The same seed gives the same sequences.
    """
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be a positive int, got {samples!r}")
    if isinstance(n_pairs, bool) or not isinstance(n_pairs, int) or n_pairs < 1:
        raise ValueError(f"n_pairs must be a positive int, got {n_pairs!r}")
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    query = torch.arange(n_pairs).repeat_interleave(samples)  # (n * S,) position of each probe
    exact = torch.zeros(n_pairs * samples, dtype=torch.bool)
    logprob = torch.zeros(n_pairs * samples, dtype=torch.float64)
    for start in range(0, len(query), batch_size):
        q = query[start:start + batch_size, None]  # (b, 1)
        batch = task.sample(len(q), gen, n_pairs=n_pairs, query_positions=q)
        tokens = batch["tokens"].to(dev)  # (b, T)
        at = batch["answer_at"][:, 0].to(dev)  # (b,) index of the question's key
        logp = model(tokens).float().log_softmax(-1)  # (b, T, vocab)
        rows = torch.arange(len(q), device=dev)
        ok = torch.ones(len(q), dtype=torch.bool, device=dev)
        lp = torch.zeros(len(q), dtype=torch.float64, device=dev)
        for step in range(VALUE_LEN):  # logits at the key (+ step) predict value token step
            target = tokens[rows, at + 1 + step]  # (b,)
            step_logp = logp[rows, at + step]  # (b, vocab)
            ok &= step_logp.argmax(-1) == target
            lp += step_logp[rows, target].double()
        exact[start:start + len(q)] = ok.cpu()
        logprob[start:start + len(q)] = lp.cpu()
    model.train(was_training)
    hits = exact.view(n_pairs, samples).sum(1)  # (n,)
    lo, hi = wilson_interval(hits, samples)
    lp_mean, lp_ci = mean_ci(logprob.view(n_pairs, samples), dim=1)
    miss = ~exact.view(n_pairs, samples)  # (n, S)
    # how sure the model is of the right value when greedy decoding gets it wrong (nan: no miss)
    lp_miss = (logprob.view(n_pairs, samples) * miss).sum(1) / miss.sum(1)
    return {"positions": torch.arange(1, n_pairs + 1), "exact": hits.double() / samples, "exact_lo": lo,
            "exact_hi": hi, "logprob": lp_mean, "logprob_ci": lp_ci, "logprob_miss": lp_miss,
            "samples": samples, "n_pairs": n_pairs}


def u_shape(acc: Tensor, ends: int = 1) -> dict[str, float]:
    """Summary numbers of a curve of accuracies by position (n,): the bars of notebook 04.

    "first", "last": mean of the first / last ``ends`` positions; "middle_min": the minimum over
    the rest; "depth": min(first, last) - middle_min; "max_dev": largest |acc - mean|.
    """
    acc = torch.as_tensor(acc, dtype=torch.float64)
    if acc.dim() != 1 or len(acc) < 2 * ends + 1:
        raise ValueError(f"acc must be 1-D with more than {2 * ends} positions, got shape {tuple(acc.shape)}")
    first, last = float(acc[:ends].mean()), float(acc[-ends:].mean())
    middle_min = float(acc[ends:-ends].min())
    return {"first": first, "last": last, "middle_min": middle_min, "depth": min(first, last) - middle_min,
            "max_dev": float((acc - acc.mean()).abs().max()), "mean": float(acc.mean())}


def sweep_to_json(result: dict) -> dict:
    """A position_sweep result with tensors as lists, rounded, for printing or saving."""
    def convert(v: object) -> object:
        if not isinstance(v, Tensor):
            return v
        if not v.is_floating_point():
            return v.tolist()
        return [None if math.isnan(float(x)) else round(float(x), 5) for x in v]  # JSON has no NaN

    return {k: convert(v) for k, v in result.items()}


def _task_from_metadata(meta: dict, key_symbols: int | None, distinct: bool | None) -> KVTask:
    params = dict(meta.get("task", {}))
    if isinstance(params.get("n_pairs"), list):
        params["n_pairs"] = tuple(params["n_pairs"])
    if key_symbols is not None:
        params["key_symbols"] = key_symbols
    if distinct is not None:
        params["distinct_keys"] = distinct
    params["n_pairs"] = 1  # the sweep sets the length itself
    return KVTask(**params)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["ruler"]:  # its options live with the RULER-lite code
        from .ruler import evaluate as ruler_evaluate

        return ruler_evaluate.main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m lclib.probes", description="Probes of a trained lab model.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("ruler", add_help=False,
                   help="RULER-lite scores per task and length, and the effective length (see: ruler --help)")
    sweep = sub.add_parser("position-sweep", help="exact match and log p(value) per pair position")
    sweep.add_argument("--checkpoint", required=True, help="folder written by lclib.train.save")
    sweep.add_argument("--pairs", type=int, required=True, help="pairs per probe sequence")
    sweep.add_argument("--samples", type=int, default=256, help="probe sequences per position")
    sweep.add_argument("--seed", type=int, default=0)
    sweep.add_argument("--key-symbols", type=int, default=None, help="override the checkpoint task's key alphabet")
    sweep.add_argument("--distinct-keys", action="store_true", default=None, help="probe with distinct keys")
    sweep.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    model = load(args.checkpoint)
    task = _task_from_metadata(read_metadata(args.checkpoint), args.key_symbols, args.distinct_keys)
    result = position_sweep(model, task, args.pairs, args.samples, args.seed)
    if args.json:
        print(json.dumps(sweep_to_json(result)))
    else:
        print("position  exact  [95% CI]         log p(value)")
        for i in range(args.pairs):
            print(f"{i + 1:8d}  {result['exact'][i]:.3f}  [{result['exact_lo'][i]:.3f}, {result['exact_hi'][i]:.3f}]"
                  f"  {result['logprob'][i]:8.3f} +- {result['logprob_ci'][i]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
