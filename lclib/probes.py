"""Probes of a trained model: the position sweep behind the lost-in-the-middle curve.

For each pair position i the sweep builds ``samples`` fresh sequences whose one question asks
about pair i, then reads, teacher-forced, (a) exact match: both value tokens are the argmax
(what greedy decoding would print), and (b) the log-probability of the correct value,
log p(v1) + log p(v2 | v1). Liu et al. (TACL 2024, Fig. 1) plot (a) against the position of the
relevant document; (b) shows whether a miss is a confident wrong answer or a shrug.

Command line (prints the per-position results as JSON with --json):
    python -m lclib position-sweep --checkpoint weights/lost_in_the_middle/skewed_seed0 \
        --pairs 24 --samples 256 --seed 0 --json
and the RULER-lite measurement of notebook 05 (lclib.ruler.evaluate; scores per task and length, and
the effective length):
    python -m lclib ruler --checkpoint weights/effective_context/base --method yarn --scale 4 \
        --lengths 160,320,640 --samples 50 --seed 0 --json
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from .model import GPT
from .kv_task import VALUE_LEN, KVTask
from .validate import integer, is_int

Z95 = 1.959963984540054  # two-sided 95% normal quantile
SAMPLE_CHUNK = 512  # position_sweep draws its probe sequences this many at a time, whatever its batch size
EXACT_DOF = 10000  # t_quantile_95 sums the exact distribution up to this many degrees of freedom, then expands
MAX_SWEEP_TOKENS = 2**27  # tokens of all probe sequences of one position_sweep (1 GiB as int64): more is refused


def _t_two_sided(t: float, dof: int) -> float:
    """P(|T| < t) for Student's t with an integer number of degrees of freedom: the closed form of
    Abramowitz and Stegun 26.7.3-4 (a finite sum in cos^2 of atan(t / sqrt(dof)))."""
    theta = math.atan(t / math.sqrt(dof))
    sin, cos2 = math.sin(theta), math.cos(theta) ** 2
    term = total = 1.0
    if dof % 2:  # odd: 2/pi (theta + sin cos (1 + 2/3 cos^2 + 2.4/(3.5) cos^4 + ...)), dof - 3 over 2 terms
        for k in range(1, (dof - 3) // 2 + 1):
            term *= cos2 * (2 * k) / (2 * k + 1)
            total += term
        return 2 / math.pi * (theta + (sin * math.cos(theta) * total if dof > 1 else 0.0))
    for k in range(1, (dof - 2) // 2 + 1):  # even: sin (1 + 1/2 cos^2 + 1.3/(2.4) cos^4 + ...)
        term *= cos2 * (2 * k - 1) / (2 * k)
        total += term
    return sin * total


@functools.lru_cache(maxsize=1024)
def t_quantile_95(dof: int) -> float:
    """The t with P(|T| < t) = 0.95 for Student's t with dof degrees of freedom (12.706 for 1, 2.228 for 10,
    1.984 for 100), by bisection on the exact distribution function: the multiplier of a 95% interval
    on a mean of dof + 1 values. Above EXACT_DOF, whose exact sum would take a time growing with dof, the
    Cornish-Fisher expansion in 1/dof (Abramowitz and Stegun 26.7.5), which agrees to 1e-12 there."""
    integer("dof", dof, low=1)
    if dof > EXACT_DOF:
        z = Z95
        g = [(z ** 3 + z) / 4, (5 * z ** 5 + 16 * z ** 3 + 3 * z) / 96,
             (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / 384,
             (79 * z ** 9 + 776 * z ** 7 + 1482 * z ** 5 - 1920 * z ** 3 - 945 * z) / 92160]
        return z + sum(gk / dof ** (k + 1) for k, gk in enumerate(g))
    low, high = 0.0, 100.0  # P(|T| < 100) > 0.99 already for 1 degree of freedom
    for _ in range(100):
        mid = (low + high) / 2
        low, high = (mid, high) if _t_two_sided(mid, dof) < 0.95 else (low, mid)
    return (low + high) / 2


def wilson_interval(successes: Tensor, trials: int, z: float = Z95) -> tuple[Tensor, Tensor]:
    """95% Wilson score interval for binomial proportions (Wilson 1927). Shapes: successes (...,) -> two (...,)."""
    integer("trials", trials, low=1)
    successes = torch.as_tensor(successes, dtype=torch.float64)
    if bool(((successes < 0) | (successes > trials) | successes.isnan()).any()):
        raise ValueError(f"successes must lie in 0..trials = {trials}, got {successes.tolist()}")
    p = successes / trials
    denom = 1 + z ** 2 / trials
    centre = (p + z ** 2 / (2 * trials)) / denom
    half = z * torch.sqrt(p * (1 - p) / trials + z ** 2 / (4 * trials ** 2)) / denom
    # the min/max only absorb rounding at p = 0 or 1, where the interval ends exactly at p
    return torch.minimum(centre - half, p).clamp(0.0, 1.0), torch.maximum(centre + half, p).clamp(0.0, 1.0)


def mean_ci(values: Tensor, dim: int = 0) -> tuple[Tensor, Tensor]:
    """Mean and half-width of its 95% confidence interval (Student t) along dim, e.g. over seeds.

    Shapes: values (n, ...) -> mean (...,), half-width (...,). One value gives a zero half-width.
    """
    if not isinstance(values, (Tensor, list, tuple)) and not hasattr(values, "__array__"):
        raise TypeError(f"values must be a tensor or an array of numbers, got {type(values).__name__}")
    values = torch.as_tensor(values, dtype=torch.float64)
    if not is_int(dim) or not -values.dim() <= dim < max(values.dim(), 1):
        raise ValueError(f"dim must be an int in [-{values.dim()}, {values.dim()}), got {dim!r}")
    n = values.shape[dim] if values.dim() else 1
    if n == 0:
        raise ValueError("values must hold at least one value along dim, got none")
    mean = values.mean(dim)
    if n < 2:
        return mean, torch.zeros_like(mean)
    t = t_quantile_95(n - 1)
    return mean, t * values.std(dim, unbiased=True) / math.sqrt(n)


@torch.no_grad()
def position_sweep(model: GPT, task: KVTask, n_pairs: int, samples: int = 256, seed: int = 0,
                   batch_size: int = 512, device: torch.device | str | None = None) -> dict:
    """Exact match and log p(correct value) for a question about each pair position 0 .. n_pairs-1.

    Returns a dict of float64 tensors of shape (n_pairs,): "exact" (fraction), "exact_lo",
    "exact_hi" (95% Wilson), "logprob" (mean), "logprob_ci" (95% half-width), "logprob_miss" (mean
    log p of the correct value over the misses only, nan where there is none), plus "positions"
    (1-based, as in Liu et al.), "samples", "n_pairs", and "token_exact" (n_pairs, VALUE_LEN): how often each
    value token alone is the argmax, given the true tokens before it (each has its own path through the
    layers, which notebook 03b follows). The same seed gives the same sequences, whatever
    the batch size (which only sets how many sequences go through the model at once).
    The n_pairs * samples probe sequences hold at most MAX_SWEEP_TOKENS tokens together.
    """
    _check_sweep(model, task, n_pairs, samples, seed, batch_size)
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    query = torch.arange(n_pairs).repeat_interleave(samples)  # (n * S,) position of each probe
    # the sequences are drawn SAMPLE_CHUNK at a time, never batch_size at a time: the batch size only
    # decides how many go through the model at once, so it cannot change the result
    chunks = [task.sample(len(q), gen, n_pairs=n_pairs, query_positions=q[:, None])
              for q in query.split(SAMPLE_CHUNK)]
    all_tokens = torch.cat([c["tokens"] for c in chunks])  # (n * S, T)
    all_at = torch.cat([c["answer_at"][:, 0] for c in chunks])  # (n * S,) index of the question's key
    exact, token_ok, logprob = [], [], []
    for tokens, at in zip(all_tokens.split(batch_size), all_at.split(batch_size)):
        ok, lp = _read_values(model, tokens.to(dev), at.to(dev))  # (b, VALUE_LEN), (b,)
        token_ok.append(ok.cpu())
        exact.append(ok.all(1).cpu())
        logprob.append(lp.cpu())
    model.train(was_training)
    exact, token_ok, logprob = torch.cat(exact), torch.cat(token_ok), torch.cat(logprob)
    hits = exact.view(n_pairs, samples).sum(1)  # (n,)
    lo, hi = wilson_interval(hits, samples)
    lp_mean, lp_ci = mean_ci(logprob.view(n_pairs, samples), dim=1)
    miss = ~exact.view(n_pairs, samples)  # (n, S)
    # how sure the model is of the right value when greedy decoding gets it wrong (nan: no miss)
    lp_miss = (logprob.view(n_pairs, samples) * miss).sum(1) / miss.sum(1)
    return {"positions": torch.arange(1, n_pairs + 1), "exact": hits.double() / samples, "exact_lo": lo,
            "exact_hi": hi, "logprob": lp_mean, "logprob_ci": lp_ci, "logprob_miss": lp_miss,
            "token_exact": token_ok.view(n_pairs, samples, VALUE_LEN).double().mean(1), "samples": samples,
            "n_pairs": n_pairs}


def _check_sweep(model: object, task: object, n_pairs: object, samples: object, seed: object,
                 batch_size: object) -> None:
    integer("samples", samples, low=1)
    integer("n_pairs", n_pairs, low=1)
    integer("batch_size", batch_size, low=1)
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module (a GPT), got {type(model).__name__}")
    if not isinstance(task, KVTask):
        raise TypeError(f"task must be a lclib.kv_task.KVTask, got {type(task).__name__}")
    integer("seed", seed)
    total = n_pairs * samples * task.seq_len(n_pairs)
    if total > MAX_SWEEP_TOKENS:
        raise ValueError(f"n_pairs = {n_pairs} and samples = {samples} make {total} probe tokens, more than "
                         f"MAX_SWEEP_TOKENS = {MAX_SWEEP_TOKENS}: use fewer pairs or samples")


def _read_values(model: GPT, tokens: Tensor, at: Tensor) -> tuple[Tensor, Tensor]:
    """Teacher-forced reading of each question's value: which value tokens are the argmax (b, VALUE_LEN),
    and log p(v1) + log p(v2 | v1) float64 (b,). tokens (b, T); at (b,) index of the question's key."""
    logp = model(tokens).float().log_softmax(-1)  # (b, T, vocab)
    rows = torch.arange(len(tokens), device=tokens.device)
    ok = torch.zeros(len(tokens), VALUE_LEN, dtype=torch.bool, device=tokens.device)
    lp = torch.zeros(len(tokens), dtype=torch.float64, device=tokens.device)
    for step in range(VALUE_LEN):  # logits at the key (+ step) predict value token step
        target = tokens[rows, at + 1 + step]  # (b,)
        step_logp = logp[rows, at + step]  # (b, vocab)
        ok[:, step] = step_logp.argmax(-1) == target
        lp += step_logp[rows, target].double()
    return ok, lp


def u_shape(acc: Tensor, ends: int = 1) -> dict[str, float]:
    """Summary numbers of a curve of accuracies by position (n,): the bars of notebook 04.

    "first", "last": mean of the first / last ``ends`` positions; "middle_min": the minimum over
    the rest; "depth": min(first, last) - middle_min; "max_dev": largest |acc - mean|.
    """
    integer("ends", ends, low=1)
    acc = torch.as_tensor(acc, dtype=torch.float64)
    if acc.dim() != 1 or len(acc) < 2 * ends + 1:
        raise ValueError(f"acc must be 1-D with more than {2 * ends} positions, got shape {tuple(acc.shape)}")
    first, last = float(acc[:ends].mean()), float(acc[-ends:].mean())
    middle_min = float(acc[ends:-ends].min())
    return {"first": first, "last": last, "middle_min": middle_min, "depth": min(first, last) - middle_min,
            "max_dev": float((acc - acc.mean()).abs().max()), "mean": float(acc.mean())}


def sweep_to_json(result: dict) -> dict:
    """A position_sweep result with tensors as lists, rounded, for printing or saving."""
    if not isinstance(result, dict):
        raise TypeError(f"result must be the dict position_sweep returns, got {type(result).__name__}")
    def convert(v: object) -> object:
        if not isinstance(v, Tensor):
            return v
        if not v.is_floating_point():
            return v.tolist()
        if v.dim() > 1:
            return [convert(row) for row in v]
        return [None if math.isnan(float(x)) else round(float(x), 5) for x in v]  # JSON has no NaN

    return {k: convert(v) for k, v in result.items()}
