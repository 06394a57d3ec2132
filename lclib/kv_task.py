"""Key-value recall, the lab's synthetic task for position effects (lost in the middle).

A sequence is ``BOS``, then ``n`` pairs ``key v1 v2``, then questions ``Q key v1 v2`` (printed
with an arrow, ``Q key -> v1 v2``, for reading; the arrow is not a token):

    BOS K07:3a K19:f0 K07:22 ... | Q K19 -> f0 | Q K07 -> 22

Keys are one token, values two tokens of 16 symbols each (256 values, so a guess matches by
chance with probability 1/256 = 0.4%). Which pair each question asks about is drawn from a
*demand* distribution p(i) over the pair positions i = 0 .. n-1 (Salvatore et al. 2025: the
position bias of a trained model mirrors the demand of its training data). With ``distinct_keys``
every question has one answer; with keys drawn i.i.d. from few symbols, a key can occur several
times and the question means the pair that was drawn: then only a positional prior can decide.

The loss is on the answer tokens (v1, v2) only; a repeated question in one sequence gets no loss.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor

from .model import IGNORE
from .validate import finite_vector, integer, is_int, number

PAD, BOS, Q, ARROW = 0, 1, 2, 3  # ARROW is reserved; questions read "Q key v1 v2"
N_SPECIAL = 4
MAX_KEYS = 64  # key tokens reserved in the vocabulary (a task uses the first key_symbols of them)
VALUE_SYMBOLS = 16  # symbols per value token, printed as hex digits
VALUE_LEN = 2  # tokens per value: 16 ** 2 = 256 values
DEMANDS = ("uniform", "ends", "smooth", "recency", "primacy")
DEMAND_PARAMS = ("tau", "eps", "ends")  # the keyword arguments of demand() a task may set


def demand(kind: str, n_pairs: int, *, tau: float = 3.0, eps: float = 0.25, ends: int = 4) -> Tensor:
    """p(i), the probability that a question asks about pair i, i = 0 .. n_pairs-1. Shape (n_pairs,), float64.

    - "uniform": 1/n.
    - "ends": eps/n + (1 - eps) uniform over the first and last ``ends`` pairs (a step).
    - "smooth": eps/n + (1 - eps) [exp(-i/tau) + exp(-(n-1-i)/tau)] / Z (a graded U).
    - "recency" / "primacy": eps/n + (1 - eps) exp(-(n-1-i)/tau) / Z, resp. exp(-i/tau) / Z.
    tau is in pairs, relative to each sequence's own n, so variable lengths share one shape.
    """
    if kind not in DEMANDS:
        raise ValueError(f"kind must be one of {DEMANDS}, got {kind!r}")
    integer("n_pairs", n_pairs, low=1)
    number("eps", eps, low=0.0, high=1.0)
    number("tau", tau, low=0.0, low_open=True)
    integer("ends", ends, low=1)
    i = torch.arange(n_pairs, dtype=torch.float64)
    if kind == "uniform":
        return torch.full((n_pairs,), 1.0 / n_pairs, dtype=torch.float64)
    if kind == "ends":
        shape = ((i < ends) | (i >= n_pairs - ends)).double()
    elif kind == "smooth":
        shape = torch.exp(-i / tau) + torch.exp(-(n_pairs - 1 - i) / tau)
    elif kind == "recency":
        shape = torch.exp(-(n_pairs - 1 - i) / tau)
    else:
        shape = torch.exp(-i / tau)
    return eps / n_pairs + (1 - eps) * shape / shape.sum()


@dataclass
class KVTask:
    """A key-value retrieval task: lengths, key alphabet, questions and their demand."""

    n_pairs: int | tuple[int, int] = 24  # pairs per sequence, or (min, max) drawn per batch
    key_symbols: int = 32  # keys drawn from this many symbols (<= 64)
    distinct_keys: bool = False  # True: keys distinct within a sequence, every question unambiguous
    questions: int = 8  # questions per sequence (several: one per sequence trains far slower)
    demand: str = "smooth"  # which pairs are asked about, see lclib.kv_task.demand
    demand_params: dict = field(default_factory=dict)  # tau, eps, ends for demand()

    def __post_init__(self) -> None:
        n = self.n_pairs
        if not (is_int(n) or isinstance(n, (tuple, list)) and len(n) == 2 and all(is_int(x) for x in n)):
            raise ValueError(f"n_pairs must be a positive int or (min, max) with min <= max, got {n!r}")
        lo, hi = self.length_range
        if lo < 1 or hi < lo:
            raise ValueError(f"n_pairs must be a positive int or (min, max) with min <= max, got {self.n_pairs!r}")
        integer("key_symbols", self.key_symbols, low=1, high=MAX_KEYS)
        if not isinstance(self.distinct_keys, bool):
            raise TypeError(f"distinct_keys must be a bool, got {type(self.distinct_keys).__name__}")
        if self.distinct_keys and hi > self.key_symbols:
            raise ValueError(f"distinct_keys needs key_symbols >= n_pairs, got {self.key_symbols} < {hi}")
        integer("questions", self.questions, low=1)
        if self.demand not in DEMANDS:
            raise ValueError(f"demand must be one of {DEMANDS} (the kind of lclib.kv_task.demand), got {self.demand!r}")
        if not isinstance(self.demand_params, dict):
            raise TypeError(f"demand_params must be a dict, got {type(self.demand_params).__name__}")
        unknown = sorted(set(self.demand_params) - set(DEMAND_PARAMS))
        if unknown:
            raise ValueError(f"demand_params has unknown keys {unknown}; expected some of {DEMAND_PARAMS}")
        demand(self.demand, lo, **self.demand_params)  # validates the parameters' values

    @property
    def length_range(self) -> tuple[int, int]:
        n = self.n_pairs
        return (n, n) if isinstance(n, int) else (int(n[0]), int(n[1]))

    @property
    def vocab_size(self) -> int:
        return N_SPECIAL + MAX_KEYS + VALUE_SYMBOLS

    def seq_len(self, n_pairs: int, questions: int | None = None) -> int:
        """Tokens in one sequence: BOS + 3 per pair + 4 per question."""
        return 1 + 3 * n_pairs + (2 + VALUE_LEN) * (self.questions if questions is None else questions)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["n_pairs"] = list(d["n_pairs"]) if isinstance(d["n_pairs"], tuple) else d["n_pairs"]
        return d

    def sample(self, batch: int, generator: torch.Generator, n_pairs: int | None = None,
               query_positions: Tensor | None = None) -> dict[str, Tensor]:
        """A batch of sequences (one length for the whole batch, so no padding).

        query_positions (batch, q) forces which pairs are asked (a probe); else they are drawn
        from the demand with replacement. Returns a dict of tensors:
        tokens (B, T) long, targets (B, T) long (IGNORE except answer tokens), keys (B, n),
        values (B, n, 2), query (B, q) pair indices, answer_at (B, q) index of the question's key
        token (logits there predict v1, one later v2), counted (B, q) bool (False for a repeat).
        """
        integer("batch", batch, low=1)
        lo, hi = self.length_range
        if n_pairs is None:
            n_pairs = int(torch.randint(lo, hi + 1, (1,), generator=generator))
        integer("n_pairs", n_pairs, low=1)
        n, B = n_pairs, batch
        if n > self.key_symbols and self.distinct_keys:  # argsort below cannot give more distinct keys than symbols
            raise ValueError(f"n_pairs must be <= key_symbols = {self.key_symbols} with distinct keys, got {n}")
        if self.distinct_keys:
            keys = torch.rand(B, self.key_symbols, generator=generator).argsort(dim=1)[:, :n]  # (B, n)
        else:
            keys = torch.randint(0, self.key_symbols, (B, n), generator=generator)  # (B, n)
        values = torch.randint(0, VALUE_SYMBOLS, (B, n, VALUE_LEN), generator=generator)  # (B, n, 2)
        if query_positions is None:
            p = demand(self.demand, n, **self.demand_params)
            query = torch.multinomial(p.expand(B, n), self.questions, replacement=True, generator=generator)
        else:
            query = torch.as_tensor(query_positions, dtype=torch.long)
            if query.numel() == 0 or query.numel() % B:
                raise ValueError(f"query_positions must have shape (batch, q) with batch = {B}, "
                                 f"got {tuple(query.shape)}")
            query = query.reshape(B, -1)
            if int(query.min()) < 0 or int(query.max()) >= n:
                raise ValueError(f"query_positions must be in 0..{n - 1}, got {query.min()}..{query.max()}")
        nq = query.shape[1]
        # a repeated question (same pair asked again) gets no loss: its answer was just shown
        counted = torch.ones(B, nq, dtype=torch.bool)
        for j in range(1, nq):
            counted[:, j] = ~(query[:, :j] == query[:, j:j + 1]).any(dim=1)

        pair_tokens = torch.cat([N_SPECIAL + keys[..., None], N_SPECIAL + MAX_KEYS + values], dim=2)  # (B, n, 3)
        q_keys = keys.gather(1, query)  # (B, q)
        q_values = values.gather(1, query[..., None].expand(B, nq, VALUE_LEN))  # (B, q, 2)
        # no separator between the key and its answer: "Q key v1 v2" is the same pattern as a pair
        # "key v1 v2", so one induction-style match answers it. Measured (issue 5, 2 layers, d_model 64):
        # with a "->" token the model learnt v2 from v1 but not v1 from the key in 3,000 steps; without
        # it, answer-token accuracy on the skewed task jumped from chance near step 800
        q_tokens = torch.cat([torch.full((B, nq, 1), Q), N_SPECIAL + q_keys[..., None],
                              N_SPECIAL + MAX_KEYS + q_values], dim=2)  # (B, q, 4)
        tokens = torch.cat([torch.full((B, 1), BOS), pair_tokens.reshape(B, 3 * n), q_tokens.reshape(B, 4 * nq)], dim=1)
        seq_len = tokens.shape[1]
        answer_at = 1 + 3 * n + 4 * torch.arange(nq) + 1  # (q,) index of the question's key
        answer_at = answer_at.expand(B, nq).clone()
        targets = torch.full((B, seq_len), IGNORE, dtype=torch.long)
        for step in range(VALUE_LEN):  # logits at the key predict v1, at v1 predict v2
            target_tokens = torch.where(counted, tokens.gather(1, answer_at + 1 + step), IGNORE)
            targets.scatter_(1, answer_at + step, target_tokens)
        return {"tokens": tokens, "targets": targets, "keys": keys, "values": values, "query": query,
                "answer_at": answer_at, "counted": counted}


def token_text(token: int) -> str:
    """One token as text: special words, keys K00..K63, value symbols as hex digits."""
    integer("token", token)
    if token == PAD:
        return "PAD"
    if token == BOS:
        return "BOS"
    if token == Q:
        return "Q"
    if token == ARROW:
        return "->"
    if N_SPECIAL <= token < N_SPECIAL + MAX_KEYS:
        return f"K{token - N_SPECIAL:02d}"
    if N_SPECIAL + MAX_KEYS <= token < N_SPECIAL + MAX_KEYS + VALUE_SYMBOLS:
        return format(token - N_SPECIAL - MAX_KEYS, "x")
    raise ValueError(f"token must be in 0..{N_SPECIAL + MAX_KEYS + VALUE_SYMBOLS - 1}, got {token}")


def to_text(tokens: Tensor) -> str:
    """A sequence (T,) as readable text, one pair or question per word group: 'BOS K07:3a K19:f0 | Q K19 -> f0'."""
    try:
        tokens = torch.as_tensor(tokens)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"tokens must be a tensor or list of token ids, got {type(tokens).__name__}") from None
    if tokens.is_floating_point() or tokens.is_complex():
        raise TypeError(f"tokens must hold integer token ids, got {tokens.dtype}")
    toks = [int(t) for t in tokens.flatten()]
    words, i = [], 0
    while i < len(toks):
        t = toks[i]
        if N_SPECIAL <= t < N_SPECIAL + MAX_KEYS and i + VALUE_LEN < len(toks):
            words.append(token_text(t) + ":" + "".join(token_text(v) for v in toks[i + 1:i + 1 + VALUE_LEN]))
            i += 1 + VALUE_LEN
        elif t == Q and i + 1 + VALUE_LEN < len(toks):
            answer = "".join(token_text(v) for v in toks[i + 2:i + 2 + VALUE_LEN])
            words.append(f"| Q {token_text(toks[i + 1])} -> {answer}")
            i += 2 + VALUE_LEN
        else:
            words.append(token_text(t))
            i += 1
    return " ".join(words)


def bayes_accuracy(p: Tensor, key_symbols: int) -> Tensor:
    """Best possible exact match per position when keys are i.i.d. over key_symbols and demand is p.

    The queried key also sits, independently with probability 1/K each, at other positions j.
    The best guess is the match with the highest p (ties split evenly), so position i is answered
    right when no higher-demand position matches, and with chance 1/(1+c) when c equal-demand ones
    do. Depends only on the ranking of p. Shape: p (n,) -> (n,) float64.
    """
    p = finite_vector("p", p)  # (n_pairs,) a demand distribution
    integer("key_symbols", key_symbols, low=1)
    q = 1.0 / key_symbols
    out = torch.empty_like(p)
    for i in range(len(p)):
        others = torch.cat([p[:i], p[i + 1:]])
        close = torch.isclose(others, p[i], rtol=1e-9, atol=1e-15)
        higher = int(((others > p[i]) & ~close).sum())
        ties = int(close.sum())
        tie_term = sum(math.comb(ties, c) * q ** c * (1 - q) ** (ties - c) / (1 + c) for c in range(ties + 1))
        out[i] = (1 - q) ** higher * tie_term
    return out


def bayes_logprob(sample: dict[str, Tensor], p: Tensor) -> dict[str, Tensor]:
    """The Bayes predictor's log p of the correct value, and its exact match, for each question of a sample.

    The Bayes predictor knows the task: the question "Q key" asks about one of the pairs holding
    that key, pair j with posterior probability p(j) / sum of p over the matching pairs (Bayes'
    rule with the demand p as prior), and it predicts each value token from that mixture,
    teacher-forced as the probe reads a model: p(v1) = posterior mass of the matches with first
    token v1, p(v2 | v1) the same among the matches whose first token is the true v1. "logprob" is
    log p(v1) + log p(v2 | v1) of the correct value; "exact" is the probability that greedy decoding
    prints both correct tokens (ties between equally likely tokens split evenly), the per-sequence
    form of `bayes_accuracy` (which ignores the 1-in-16 chance that two matches share a first token).
    sample: a `KVTask.sample` dict (uses "keys" (B, n), "values" (B, n, 2), "query" (B, q));
    p: the demand (n,), positive. Returns float64 tensors of shape (B, q).
    """
    keys, values, query = sample["keys"], sample["values"], sample["query"]
    B, n = keys.shape
    p = torch.as_tensor(p, dtype=torch.float64)
    if p.shape != (n,):
        raise ValueError(f"p must have shape ({n},), one demand per pair of the sample, got {tuple(p.shape)}")
    if not bool((torch.isfinite(p) & (p > 0)).all()):
        raise ValueError(f"p must be finite and positive at every position (a demand), got {p.tolist()}")
    nq = query.shape[1]
    match = keys[:, None, :] == keys.gather(1, query)[..., None]  # (B, q, n): pairs holding the asked key
    weight = match.double() * p  # (B, q, n) unnormalised posterior over the asked pair
    true = values.gather(1, query[..., None].expand(B, nq, VALUE_LEN))  # (B, q, 2)
    logprob = torch.zeros(B, nq, dtype=torch.float64)
    exact = torch.ones(B, nq, dtype=torch.float64)
    for step in range(VALUE_LEN):
        token = values[:, None, :, step].expand(B, nq, n)  # (B, q, n) this value token of every pair
        mass = torch.zeros(B, nq, VALUE_SYMBOLS, dtype=torch.float64).scatter_add_(2, token, weight)
        probs = mass / mass.sum(-1, keepdim=True)  # (B, q, 16) predictive distribution of the token
        right = probs.gather(2, true[..., step:step + 1]).squeeze(-1)  # (B, q)
        logprob += right.log()
        top = torch.isclose(probs, probs.max(-1, keepdim=True).values, rtol=1e-9, atol=0.0)  # (B, q, 16)
        exact *= torch.isclose(right, probs.max(-1).values, rtol=1e-9, atol=0.0).double() / top.sum(-1)
        weight = weight * (token == true[..., step:step + 1])  # teacher forcing: keep the true token's matches
    return {"logprob": logprob, "exact": exact}
