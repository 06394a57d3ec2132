"""Rotary position embedding (RoPE) from Su et al., "RoFormer" (2021).

Each pair of features of a query or key is rotated by the angle ``position * theta_i`` with
``theta_i = base^(-2i/d)`` (RoFormer, Eq. 15). Because rotations compose, the score
``(R_t q) . (R_s k) = q . R_{s-t} k`` depends on the offset ``t - s`` only (Eq. 16).

Two pair layouts are in use and both are supported:

- ``"interleaved"`` pairs features ``(2i, 2i+1)``, as in the paper and Meta's original Llama code;
- ``"half"`` pairs ``(i, i + d/2)``, as in Hugging Face transformers (``rotate_half``).

They are the same operation up to a fixed permutation of coordinates (see :func:`layout_permutation`).
Angles are computed in float64: in float32, ``position * theta`` loses about 1e-4 rad at position
4095 and 2.7e-3 rad at 131071, enough to move a trained model's long-range scores.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from . import validate

LAYOUTS = ("half", "interleaved")


def _check_head_dim(head_dim: int) -> None:
    validate.integer("head_dim", head_dim, low=1)
    if head_dim % 2:
        raise ValueError(f"head_dim must be a positive even number for RoPE, got {head_dim}")


def _check_rope_inputs(x: Tensor, positions: Tensor, inv_freq: Tensor) -> None:
    """Shapes: x (..., seq_len, head_dim) floating, positions (seq_len,), inv_freq (head_dim // 2,) floating."""
    validate.tensor("x", x, floating=True)
    validate.tensor("positions", positions)
    validate.tensor("inv_freq", inv_freq, floating=True)
    if x.dim() < 2:
        raise ValueError(f"x must have shape (..., seq_len, head_dim), got {tuple(x.shape)}")
    if x.shape[-1] % 2:
        raise ValueError(f"head_dim (last dimension of x) must be even for RoPE, got {x.shape[-1]}")
    if inv_freq.dim() != 1 or inv_freq.shape[0] * 2 != x.shape[-1]:
        raise ValueError(
            f"inv_freq must have shape (head_dim // 2,) = ({x.shape[-1] // 2},), got {tuple(inv_freq.shape)}"
        )
    if positions.dim() != 1 or positions.shape[0] != x.shape[-2]:
        raise ValueError(
            f"positions must have shape (seq_len,) = ({x.shape[-2]},), got {tuple(positions.shape)}"
        )


def inv_freq(head_dim: int, base: float = 10000.0) -> Tensor:
    """Rotation frequencies theta_i = base^(-2i/d), i = 0 .. d/2 - 1 (RoFormer, Eq. 15).

    Returned in float64 so that angles position * theta_i stay exact at long positions.
    Shape: (head_dim // 2,).
    """
    _check_head_dim(head_dim)
    validate.number("base", base, low=1, low_open=True)  # theta_i = base^(-2i/d) must decrease
    exponents = torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim  # (d/2,)
    return float(base) ** (-exponents)


def wavelengths(inv_freq: Tensor) -> Tensor:
    """Tokens needed for pair i to complete one full turn: 2*pi / theta_i. Shape: like inv_freq."""
    validate.tensor("inv_freq", inv_freq, floating=True)
    return 2 * math.pi / inv_freq.double()


def rope_cos_sin(
    positions: Tensor, inv_freq: Tensor, attention_factor: float = 1.0, dtype: torch.dtype = torch.float32
) -> tuple[Tensor, Tensor]:
    """cos and sin of the angles positions[t] * inv_freq[i], computed in float64, scaled by attention_factor.

    This is what a model caches once per sequence length.
    Shapes: positions (seq_len,); inv_freq (head_dim // 2,); returns two (seq_len, head_dim // 2).
    """
    validate.tensor("positions", positions)
    validate.tensor("inv_freq", inv_freq, floating=True)
    validate.number("attention_factor", attention_factor, low=0, low_open=True)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype (cos and sin lie in [-1, 1]), got {dtype}")
    if positions.dim() != 1:
        raise ValueError(f"positions must be 1-D (seq_len,), got shape {tuple(positions.shape)}")
    if inv_freq.dim() != 1:
        raise ValueError(f"inv_freq must be 1-D (head_dim // 2,), got shape {tuple(inv_freq.shape)}")
    angles = positions.to(torch.float64)[:, None] * inv_freq.to(positions.device, torch.float64)[None, :]
    cos = (torch.cos(angles) * attention_factor).to(dtype)  # (seq_len, d/2)
    sin = (torch.sin(angles) * attention_factor).to(dtype)  # (seq_len, d/2)
    return cos, sin


def apply_rope_cached(x: Tensor, cos: Tensor, sin: Tensor, layout: str = "half", out: Tensor | None = None) -> Tensor:
    """Rotate feature pairs of x with precomputed cos/sin (the models' hot path).

    Writes each half of the output in place of a fresh tensor (two multiplies, two fused
    multiply-adds) instead of building rotate_half(x) and full-width cos/sin copies. out, if
    given, is a preallocated tensor like x to write into (it must not be x itself). When a gradient
    is needed (training), the same rotation is built from differentiable ops instead.
    Shapes: x (..., seq_len, head_dim); cos, sin (seq_len, head_dim // 2); returns like x.
    """
    validate.one_of("layout", layout, LAYOUTS)
    for name, value in (("x", x), ("cos", cos), ("sin", sin)):
        validate.tensor(name, value, floating=True)
    half = x.shape[-1] // 2
    if x.shape[-1] % 2 or cos.shape != (x.shape[-2], half) or sin.shape != cos.shape:
        raise ValueError(
            f"cos and sin must have shape (seq_len, head_dim // 2) = ({x.shape[-2]}, {half}) for x of shape "
            f"{tuple(x.shape)}, got {tuple(cos.shape)} and {tuple(sin.shape)}"
        )
    if layout == "half":
        x1, x2 = x[..., :half], x[..., half:]  # pair i is (i, i + d/2)
    else:
        x1, x2 = x[..., 0::2], x[..., 1::2]  # pair i is (2i, 2i + 1)
    if torch.is_grad_enabled() and any(t.requires_grad for t in (x, cos, sin)):
        # Autograd refuses out= writes: build the same rotation from differentiable ops (training).
        if out is not None:
            raise ValueError("out must be None when a gradient is needed (autograd cannot track out= writes)")
        r1, r2 = x1 * cos - x2 * sin, x1 * sin + x2 * cos
        if layout == "half":
            return torch.cat([r1, r2], dim=-1)
        return torch.stack([r1, r2], dim=-1).flatten(-2)
    if out is None:
        out = torch.empty_like(x)
    elif out.shape != x.shape or out.data_ptr() == x.data_ptr():
        raise ValueError(f"out must be a separate tensor shaped like x {tuple(x.shape)}, got {tuple(out.shape)}")
    o1, o2 = (out[..., :half], out[..., half:]) if layout == "half" else (out[..., 0::2], out[..., 1::2])
    # [o1; o2] = [[cos, -sin], [sin, cos]] [x1; x2]   (RoFormer, Eq. 13 per pair)
    torch.mul(x1, cos, out=o1).addcmul_(x2, sin, value=-1.0)
    torch.mul(x1, sin, out=o2).addcmul_(x2, cos)
    return out


def apply_rope(
    x: Tensor, positions: Tensor, inv_freq: Tensor, layout: str = "half", attention_factor: float = 1.0
) -> Tensor:
    """Rotate each feature pair of x by angle position * inv_freq (RoFormer, Eq. 34).

    layout="interleaved" pairs (2i, 2i+1) as in the paper and Meta's reference Llama code; "half" pairs
    (i, i + d/2) as in Hugging Face transformers (which permutes W_q, W_k when converting). attention_factor multiplies cos and sin, so a q.k logit scales by its square
    (the Hugging Face convention used by YaRN). positions may be integer or float.
    Shapes: x (..., seq_len, head_dim); positions (seq_len,); inv_freq (head_dim // 2,).
    """
    _check_rope_inputs(x, positions, inv_freq)
    validate.one_of("layout", layout, LAYOUTS)
    cos, sin = rope_cos_sin(positions.to(x.device), inv_freq, attention_factor, dtype=x.dtype)
    return apply_rope_cached(x, cos, sin, layout)


def apply_rope_complex(x: Tensor, positions: Tensor, inv_freq: Tensor) -> Tensor:
    """The complex form: pair (2i, 2i+1) read as x_{2i} + j x_{2i+1}, multiplied by e^{j t theta_i}.

    Same numbers as apply_rope(..., layout="interleaved"); kept for teaching (RoFormer, Eq. 12).
    Shapes: x (..., seq_len, head_dim); positions (seq_len,); inv_freq (head_dim // 2,).
    """
    _check_rope_inputs(x, positions, inv_freq)
    angles = positions.to(torch.float64)[:, None] * inv_freq.to(torch.float64)[None, :]  # (seq_len, d/2)
    rotor = torch.polar(torch.ones_like(angles), angles)  # e^{j angle}, complex128
    z = torch.view_as_complex(x.to(torch.float64).reshape(*x.shape[:-1], -1, 2).contiguous())
    return torch.view_as_real(z * rotor).reshape(x.shape).to(x.dtype)


def layout_permutation(head_dim: int) -> Tensor:
    """The fixed permutation between the layouts: p = [0, d/2, 1, d/2 + 1, ...].

    x[..., p] puts the half-split pair (i, i + d/2) at interleaved slots (2i, 2i + 1), so
    apply_rope(x[..., p], layout="interleaved") == apply_rope(x, layout="half")[..., p].
    Shape: (head_dim,).
    """
    _check_head_dim(head_dim)
    half = head_dim // 2
    return torch.stack([torch.arange(half), torch.arange(half) + half], dim=1).reshape(-1)


def decay_bound(head_dim: int, base: float, distances: Tensor) -> Tensor:
    """RoFormer's long-term decay bound (section 3.4.3) as a function of relative distance m - n.

    bound(m - n) = (1 / (d/2)) * sum_{j=1}^{d/2} |S_j|, with S_j = sum_{k<j} exp(i (m - n) theta_k).
    Equals (d/2 + 1) / 2 at distance 0; it falls over the first hundreds of tokens, then (beyond about
    2^9 for d = 128) its peaks rise again while its minima keep falling: a loose bound, not a decay law.
    Shapes: distances (n,), returns (n,) float64.
    """
    theta = inv_freq(head_dim, base)  # (d/2,)
    distances = validate.finite_vector("distances", distances)  # (n,) float64
    angles = distances[:, None] * theta[None, :]  # (n, d/2)
    partial_sums = torch.cumsum(torch.polar(torch.ones_like(angles), angles), dim=-1)  # S_1..S_{d/2}
    return partial_sums.abs().mean(dim=-1)
