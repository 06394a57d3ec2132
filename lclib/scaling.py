"""Context extension for RoPE: new rotation frequencies for a model trained at L tokens read at s*L.

A model trained on sequences of ``original_max_len`` = L tokens has only seen the angles
``m * theta_i`` for ``m < L``. Each method below changes the frequencies ``theta_i`` (and, for
YaRN, the scale of the logits) so that longer sequences stay closer to what the model has seen:

- ``linear``: Position Interpolation (Chen et al. 2023, arXiv:2306.15595): theta_i / s for every pair;
- ``ntk``: NTK-aware base change (bloc97, 2023): base' = base * s^(d/(d-2)), so pair 0 is kept and the
  last pair is divided by exactly s;
- ``dynamic_ntk``: the same with the factor grown with the current sequence length (Hugging Face);
- ``yarn``: NTK-by-parts plus a temperature (Peng et al. 2023, arXiv:2309.00071, Eqs. 17-22);
- ``llama3``: three wavelength bands, kept / smoothed / divided by s (Meta, Llama 3.1, 2024).

Every function returns ``(inv_freq, attention_factor)`` with inv_freq float64 of shape
(head_dim // 2,). Conventions follow Hugging Face transformers (``modeling_rope_utils``), the
implementation most users meet: the attention factor multiplies cos and sin (so the q.k logits scale
by its square), and YaRN's ramp is linear in the *pair index* between the floor and ceil of the
correction dimensions (the paper writes it linear in r = L / wavelength; see :func:`yarn_ramp`).
:class:`RopeScaling` bundles a method and its parameters so that a model can switch method by config.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from . import rope, validate

METHODS = ("none", "linear", "ntk", "dynamic_ntk", "yarn", "llama3")


# --- argument checks ----------------------------------------------------------------------------

def _check_rope(head_dim: int, base: float) -> None:
    """head_dim and base as RoPE takes them: rope.inv_freq refuses the others, naming the argument."""
    rope.inv_freq(head_dim, base)


def _check_common(head_dim: int, base: float, scale: float) -> None:
    _check_rope(head_dim, base)
    validate.number("scale", scale, low=1)  # s, the context extension factor


# --- the methods ----------------------------------------------------------------------------------

def linear(head_dim: int, base: float, scale: float) -> tuple[Tensor, float]:
    """Position Interpolation: theta'_i = theta_i / s for every pair (Chen et al. 2023, Eq. 2).

    Position m is read as m / s, so positions up to s*L map into the trained range [0, L).
    Returns (inv_freq (head_dim // 2,) float64, attention_factor 1.0).
    """
    _check_common(head_dim, base, scale)
    return rope.inv_freq(head_dim, base) / scale, 1.0


def ntk(head_dim: int, base: float, scale: float) -> tuple[Tensor, float]:
    """NTK-aware scaling: base' = base * s^(d/(d-2)) (bloc97 2023; YaRN paper, Eq. 16).

    theta'_i = theta_i * s^(-2i/(d-2)): pair 0 (i = 0) is unchanged, the last pair (i = d/2 - 1) is
    divided by exactly s, and the pairs in between by s^(2i/(d-2)).
    Returns (inv_freq (head_dim // 2,) float64, attention_factor 1.0).
    """
    _check_common(head_dim, base, scale)
    if head_dim < 4:
        raise ValueError(f"head_dim must be >= 4 for NTK scaling (the exponent is d/(d-2)), got {head_dim}")
    return rope.inv_freq(head_dim, base * scale ** (head_dim / (head_dim - 2))), 1.0


def dynamic_ntk(head_dim: int, base: float, scale: float, original_max_len: int, seq_len: int) -> tuple[Tensor, float]:
    """Dynamic NTK: NTK with a factor alpha that grows with the current length (Hugging Face "dynamic").

    alpha = s * max(seq_len, L) / L - (s - 1), base' = base * alpha^(d/(d-2)). So alpha = 1 (plain
    RoPE) while seq_len <= L, and alpha = s^2 - s + 1 at seq_len = s*L (even s = 1 grows past L:
    alpha = seq_len / L, as in transformers). seq_len is the number of
    positions in the sequence (last index + 1), as in transformers' ``dynamic_rope_update``.
    Returns (inv_freq (head_dim // 2,) float64, attention_factor 1.0).
    """
    _check_common(head_dim, base, scale)
    validate.integer("original_max_len", original_max_len, low=1)
    validate.integer("seq_len", seq_len, low=1)
    alpha = scale * max(seq_len, original_max_len) / original_max_len - (scale - 1)
    return ntk(head_dim, base, alpha)[0], 1.0


def yarn_temperature(scale: float) -> float:
    """YaRN's attention factor sqrt(1/t) = 0.1 ln(s) + 1 (Peng et al. 2023, Eq. 22); 1 for s <= 1.

    It multiplies cos and sin, so the logits are multiplied by its square (1/t in the paper).
    """
    validate.number("scale", scale)
    return 1.0 if scale <= 1 else 0.1 * math.log(scale) + 1.0


def yarn_correction_range(
    head_dim: int, base: float, original_max_len: int, beta_fast: float = 32.0, beta_slow: float = 1.0, truncate: bool = True
) -> tuple[float, float]:
    """The pair indices (low, high) where YaRN's ramp starts and ends (Hugging Face convention).

    Pair i makes L / wavelength_i = L theta_i / (2 pi) turns in the training context; it makes
    exactly beta turns at the fractional index i(beta) = d ln(L / (2 pi beta)) / (2 ln base).
    low = i(beta_fast), high = i(beta_slow), rounded outward (floor, ceil) when truncate, and
    clipped to [0, head_dim - 1] as transformers does.
    """
    _check_rope(head_dim, base)
    validate.integer("original_max_len", original_max_len, low=1)
    _check_betas(beta_fast, beta_slow)
    if not isinstance(truncate, bool):
        raise TypeError(f"truncate must be a bool, got {type(truncate).__name__}")

    def index_of(turns: float) -> float:
        return head_dim * math.log(original_max_len / (turns * 2 * math.pi)) / (2 * math.log(base))

    low, high = index_of(beta_fast), index_of(beta_slow)
    if truncate:
        low, high = math.floor(low), math.ceil(high)
    return max(low, 0), min(high, head_dim - 1)


def _check_above(high_name: str, high: float, low_name: str, low: float, why: str = "") -> None:
    """Both positive numbers, and high > low; else a ValueError naming both arguments."""
    validate.number(low_name, low, low=0, low_open=True)
    validate.number(high_name, high, low=0, low_open=True)
    if not high > low:
        raise ValueError(f"{high_name} must be > {low_name}{why}, got {high_name}={high}, {low_name}={low}")


def _check_betas(beta_fast: float, beta_slow: float) -> None:
    _check_above("beta_fast", beta_fast, "beta_slow", beta_slow, " (turns in L: fast pairs make more)")


def yarn_ramp(
    head_dim: int, base: float, original_max_len: int, beta_fast: float = 32.0, beta_slow: float = 1.0, truncate: bool = True
) -> Tensor:
    """Per-pair interpolation weight gamma_i in [0, 1]: 0 keeps theta_i, 1 divides it by s.

    Linear in the pair index i between low and high of :func:`yarn_correction_range` (Hugging Face),
    not linear in r = L / wavelength as the paper's Eq. 18 writes it. Shape: (head_dim // 2,) float64.
    """
    low, high = yarn_correction_range(head_dim, base, original_max_len, beta_fast, beta_slow, truncate)
    if low == high:
        high += 0.001  # transformers' guard against a zero-width ramp
    index = torch.arange(head_dim // 2, dtype=torch.float64)  # (d/2,)
    return ((index - low) / (high - low)).clamp(0.0, 1.0)


def yarn(
    head_dim: int,
    base: float,
    scale: float,
    original_max_len: int,
    beta_fast: float = 32.0,
    beta_slow: float = 1.0,
    truncate: bool = True,
    attention_factor: float | None = None,
) -> tuple[Tensor, float]:
    """YaRN: NTK-by-parts interpolation plus a temperature (Peng et al. 2023, Eqs. 18-22).

    theta'_i = (1 - gamma_i) theta_i + gamma_i theta_i / s with gamma = :func:`yarn_ramp`: pairs that
    turn more than beta_fast times in L keep theta_i, pairs that turn less than beta_slow times are
    interpolated (divided by s), a ramp joins them. attention_factor defaults to
    0.1 ln(s) + 1 (:func:`yarn_temperature`). Returns (inv_freq (head_dim // 2,) float64, attention_factor).
    """
    _check_common(head_dim, base, scale)
    if attention_factor is not None:
        validate.number("attention_factor", attention_factor, low=0, low_open=True)
    theta = rope.inv_freq(head_dim, base)  # (d/2,)
    gamma = yarn_ramp(head_dim, base, original_max_len, beta_fast, beta_slow, truncate)  # (d/2,)
    inv_freq = theta / scale * gamma + theta * (1 - gamma)
    return inv_freq, float(attention_factor) if attention_factor is not None else yarn_temperature(scale)


def llama3(
    head_dim: int, base: float, scale: float, original_max_len: int, low_freq_factor: float = 1.0, high_freq_factor: float = 4.0
) -> tuple[Tensor, float]:
    """Llama 3.1 scaling: keep pairs with wavelength < L / high_freq_factor, divide by s those with
    wavelength > L / low_freq_factor, and in between mix with weight (L / wavelength - low) / (high - low).

    The mix equals theta_i / s at the long-wavelength edge and theta_i at the short one, so the result
    is continuous in the wavelength. Published config: s = 8, L = 8192, factors 1 and 4, base 500000.
    Returns (inv_freq (head_dim // 2,) float64, attention_factor 1.0).
    """
    _check_common(head_dim, base, scale)
    validate.integer("original_max_len", original_max_len, low=1)
    _check_freq_factors(low_freq_factor, high_freq_factor)
    theta = rope.inv_freq(head_dim, base)  # (d/2,)
    wavelength = rope.wavelengths(theta)  # (d/2,)
    smooth = (original_max_len / wavelength - low_freq_factor) / (high_freq_factor - low_freq_factor)
    mixed = (1 - smooth) * theta / scale + smooth * theta
    inv_freq = torch.where(wavelength < original_max_len / high_freq_factor, theta, mixed)
    inv_freq = torch.where(wavelength > original_max_len / low_freq_factor, theta / scale, inv_freq)
    return inv_freq, 1.0


def _check_freq_factors(low_freq_factor: float, high_freq_factor: float) -> None:
    _check_above("high_freq_factor", high_freq_factor, "low_freq_factor", low_freq_factor)


# --- one value a model can carry -----------------------------------------------------------------

_HF_NAMES = {"rope_type": "method", "type": "method", "factor": "scale",
             "original_max_position_embeddings": "original_max_len"}
_HF_METHODS = {"default": "none", "dynamic": "dynamic_ntk"}


@dataclass(frozen=True)
class RopeScaling:
    """A RoPE scaling method and its parameters: ``RopeScaling("yarn", 4.0, original_max_len=512)``.

    ``frequencies(head_dim, base, seq_len)`` gives (inv_freq, attention_factor) for the model;
    only dynamic_ntk uses seq_len (the number of positions in the current sequence).
    """

    method: str = "none"  # one of METHODS
    scale: float = 1.0  # s: the target context is s * original_max_len
    original_max_len: int | None = None  # L, the training context (needed by dynamic_ntk, yarn, llama3)
    beta_fast: float = 32.0  # yarn: pairs turning more than this many times in L are kept
    beta_slow: float = 1.0  # yarn: pairs turning fewer than this many times in L are divided by s
    low_freq_factor: float = 1.0  # llama3: wavelength > L / low_freq_factor is divided by s
    high_freq_factor: float = 4.0  # llama3: wavelength < L / high_freq_factor is kept
    attention_factor: float | None = None  # yarn: overrides 0.1 ln(s) + 1
    truncate: bool = True  # yarn: round the ramp ends to whole pairs (floor / ceil)

    def __post_init__(self) -> None:
        validate.one_of("method", self.method, METHODS)
        validate.number("scale", self.scale, low=1)
        if self.method == "none" and self.scale != 1:
            raise ValueError(f"scale must be 1 for method 'none' (plain RoPE), got {self.scale}")
        if self.method in ("dynamic_ntk", "yarn", "llama3"):
            if self.original_max_len is None:
                raise ValueError(f"original_max_len (the training context L) is required for method {self.method!r}")
        if self.original_max_len is not None:
            validate.integer("original_max_len", self.original_max_len, low=1)
        _check_betas(self.beta_fast, self.beta_slow)
        _check_freq_factors(self.low_freq_factor, self.high_freq_factor)
        if self.attention_factor is not None:
            validate.number("attention_factor", self.attention_factor, low=0, low_open=True)
        if not isinstance(self.truncate, bool):
            raise TypeError(f"truncate must be a bool, got {type(self.truncate).__name__}")

    def frequencies(self, head_dim: int, base: float, seq_len: int | None = None) -> tuple[Tensor, float]:
        """(inv_freq (head_dim // 2,) float64, attention_factor) for this method.

        seq_len (positions in the current sequence) matters only for dynamic_ntk; None there means
        a sequence within the training context, i.e. plain RoPE, as transformers does at init.
        """
        if seq_len is not None:
            validate.integer("seq_len", seq_len, low=1)
        s, L = self.scale, self.original_max_len
        if self.method == "none":
            return rope.inv_freq(head_dim, base), 1.0
        if self.method == "linear":
            return linear(head_dim, base, s)
        if self.method == "ntk":
            return ntk(head_dim, base, s)
        if self.method == "dynamic_ntk":
            return dynamic_ntk(head_dim, base, s, L, L if seq_len is None else seq_len)
        if self.method == "yarn":
            return yarn(head_dim, base, s, L, self.beta_fast, self.beta_slow, self.truncate, self.attention_factor)
        return llama3(head_dim, base, s, L, self.low_freq_factor, self.high_freq_factor)

    def to_hf(self) -> dict[str, Any] | None:
        """The ``rope_scaling`` dict a Hugging Face transformers config expects (None for plain RoPE).

        transformers has no static "ntk" type, so that method raises a ValueError. For "dynamic",
        transformers takes L from the config's ``max_position_embeddings``: set it to original_max_len.
        """
        if self.method == "none":
            return None
        if self.method == "ntk":
            raise ValueError("method 'ntk' has no transformers rope_type; use 'dynamic_ntk' or 'yarn'")
        out: dict[str, Any] = {"rope_type": {"dynamic_ntk": "dynamic"}.get(self.method, self.method), "factor": self.scale}
        if self.original_max_len is not None:
            out["original_max_position_embeddings"] = self.original_max_len
        if self.method == "yarn":
            out.update(beta_fast=self.beta_fast, beta_slow=self.beta_slow, truncate=self.truncate)
            if self.attention_factor is not None:
                out["attention_factor"] = self.attention_factor
        if self.method == "llama3":
            out.update(low_freq_factor=self.low_freq_factor, high_freq_factor=self.high_freq_factor)
        return out

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (round-trips through :meth:`from_dict`)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, config: dict[str, Any] | None) -> RopeScaling:
        """Build from a dict with lclib's field names or Hugging Face ``rope_scaling`` names.

        ``{"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096}`` works;
        None or ``{}`` gives plain RoPE. Unknown keys raise a ValueError naming them.
        """
        if not config:
            return cls("none")
        if not isinstance(config, dict):
            raise TypeError(f"config must be a dict, got {type(config).__name__}")
        fields = {f.name for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in config.items():
            name = _HF_NAMES.get(key, key)
            if name not in fields:
                raise ValueError(f"config has unknown key {key!r}; expected some of {sorted(fields)}")
            kwargs[name] = value
        kwargs["method"] = _HF_METHODS.get(kwargs.get("method", "none"), kwargs.get("method", "none"))
        if "scale" in kwargs and validate.is_number(kwargs["scale"]):
            kwargs["scale"] = float(kwargs["scale"])
        return cls(**kwargs)
