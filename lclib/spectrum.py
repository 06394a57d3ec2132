"""The rotary spectrum against a training context: which pairs turn inside L, and what a method does to each.

Pair i of a RoPE head turns theta_i = base^(-2i/d) radians per token; over a training context of L tokens it
makes ``L theta_i / 2 pi`` turns (:func:`turns`). A pair that completes a turn inside L has seen every angle
it can take, so a longer input shows it nothing new; a pair that does not has seen an arc only, and every
distance past L takes it outside that arc. Liu et al. (2023, "Scaling Laws of RoPE-based Extrapolation",
ICLR 2024, Eq. 4) call the number of dimensions whose pairs complete a turn inside L the **critical
dimension** (:func:`critical_dimension`), 2 ceil((d/2) log_base(L / 2 pi)), and explain RoPE's extrapolation
limit from it: only the dimensions past it meet angles they never saw.

:func:`pair_table` puts the spectrum of a model beside what each scaling method does to each pair (the factor
theta_i / theta'_i: 1 keeps the pair, s divides it by s). :class:`PairScaling` divides chosen pairs only, an
ablation any model accepts as its ``rope_scaling``: it asks which pairs a trained model relies on at L.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from . import rope, validate

# Published RoPE shapes (each model's config.json): head_dim, base, training context L.
PUBLISHED: dict[str, dict[str, float | int]] = {
    "Llama-2-7B": {"head_dim": 128, "base": 10000.0, "context": 4096},
    "Llama-3-8B": {"head_dim": 128, "base": 500000.0, "context": 8192},
}


def turns(inv_freq: Tensor, context: int) -> Tensor:
    """Turns each pair makes over `context` tokens: context * theta_i / (2 pi). Shapes: (d/2,) -> (d/2,) float64."""
    validate.tensor("inv_freq", inv_freq, floating=True)
    return validate.integer("context", context, low=1) * inv_freq.double() / (2 * math.pi)


def critical_dimension(head_dim: int, base: float, context: int) -> int:
    """Liu et al.'s critical dimension: 2 x the pairs whose wavelength 2 pi base^(2i/d) is shorter than `context`.

    Equal to 2 ceil((d/2) log_base(context / 2 pi)) (their Eq. 4), clipped to [0, head_dim]: 8 of 16 for the lab's
    model (base 10000, L = 256), 92 of 128 for Llama-2-7B (L = 4096).
    """
    rope.inv_freq(head_dim, base)  # refuses a head_dim or base that RoPE cannot use, naming it
    validate.integer("context", context, low=1)  # the training context L, in tokens
    x = head_dim / 2 * math.log(context / (2 * math.pi)) / math.log(base)
    return 2 * min(max(math.ceil(x), 0), head_dim // 2)


def factors(scaling: Any, head_dim: int, base: float, seq_len: int | None = None) -> Tensor:
    """theta_i / theta'_i per pair under `scaling` (None: plain RoPE, all ones). Shape (head_dim // 2,) float64.

    seq_len matters for dynamic NTK only (the positions in the sequence read).
    """
    theta = rope.inv_freq(head_dim, base)  # (d/2,)
    if scaling is None:
        return torch.ones_like(theta)
    if not callable(getattr(scaling, "frequencies", None)):
        raise TypeError(f"scaling must be None or have frequencies(head_dim, base, seq_len), got {type(scaling).__name__}")
    return theta / torch.as_tensor(scaling.frequencies(head_dim, base, seq_len)[0], dtype=torch.float64)


def rope_shape(model: Any) -> tuple[int, float]:
    """(head_dim, base) of a GPT or GPTConfig with RoPE; a model without rotary pairs has no spectrum."""
    config = getattr(model, "config", model)
    if not all(hasattr(config, name) for name in ("pos_encoding", "head_dim", "rope_base")):
        raise TypeError(f"model must be a lclib GPT or GPTConfig, got {type(model).__name__}")
    if config.pos_encoding != "rope":
        raise ValueError(f"model has pos_encoding={config.pos_encoding!r}: no rotary pairs, so no spectrum to draw "
                         "(only a RoPE model has one)")
    return config.head_dim, float(config.rope_base)


def pair_table(model: Any, context: int, scalings: dict[str, Any] | None = None, seq_len: int | None = None) -> list[dict]:
    """One row per rotary pair of `model`: wavelength, turns in `context`, whether it completes a turn, and
    the factor theta_i / theta'_i under each named scaling (at seq_len positions, for dynamic NTK)."""
    head_dim, base = rope_shape(model)
    validate.integer("context", context, low=1)
    if scalings is not None and not isinstance(scalings, dict):
        raise TypeError(f"scalings must be a dict {{name: RopeScaling}}, got {type(scalings).__name__}")
    theta = rope.inv_freq(head_dim, base)  # (d/2,)
    columns = {name: factors(s, head_dim, base, seq_len) for name, s in (scalings or {}).items()}
    wavelength, turned = rope.wavelengths(theta), turns(theta, context)
    return [{"pair": i, "wavelength": float(wavelength[i]), "turns": float(turned[i]), "completes_turn": bool(wavelength[i] < context),
             **{name: float(f[i]) for name, f in columns.items()}} for i in range(head_dim // 2)]


@dataclass(frozen=True)
class PairScaling:
    """Divide the frequencies of the chosen pairs by `factor`, keep the others; multiply cos and sin by
    `attention_factor`. An ablation, not an extension method: ``PairScaling((4,), 8.0)`` asks what the model
    loses at L when pair 4 alone turns 8 times slower; ``PairScaling((), attention_factor=1.208)`` is YaRN's
    temperature alone (s = 8)."""

    pairs: tuple[int, ...] = ()  # pair indices 0 .. head_dim / 2 - 1 to divide
    factor: float = 1.0  # theta_i / factor for those pairs
    attention_factor: float = 1.0  # multiplies cos and sin (the logits by its square)

    def __post_init__(self) -> None:
        if not isinstance(self.pairs, tuple) or not all(validate.is_int(p) for p in self.pairs):
            raise TypeError(f"pairs must be a tuple of pair indices (ints >= 0), got {self.pairs!r}")
        if any(p < 0 for p in self.pairs):
            raise ValueError(f"pairs must be a tuple of pair indices (ints >= 0), got {self.pairs!r}")
        validate.number("factor", self.factor, low=0, low_open=True)
        validate.number("attention_factor", self.attention_factor, low=0, low_open=True)

    def frequencies(self, head_dim: int, base: float, seq_len: int | None = None) -> tuple[Tensor, float]:
        """(inv_freq (head_dim // 2,) float64, attention_factor); seq_len is ignored."""
        theta = rope.inv_freq(head_dim, base).clone()  # (d/2,)
        if self.pairs and max(self.pairs) >= len(theta):
            raise ValueError(f"pairs must be below head_dim // 2 = {len(theta)}, got {self.pairs}")
        theta[list(self.pairs)] /= self.factor
        return theta, float(self.attention_factor)
