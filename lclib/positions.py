"""Where a token sits, as the model reads it: rotary embeddings (RoPE) and ALiBi's distance bias, as modules.

- ``RotaryEmbedding`` (Su et al. 2021, RoFormer) owns its inverse frequencies theta_i = base^(-2i/d), the
  RoPE scaling that may change them (any object with ``frequencies(head_dim, base, seq_len) -> (inv_freq,
  attention_factor)``, such as ``lclib.scaling.RopeScaling``; dynamic NTK's depend on the length read), the
  kernel that rotates q and k ("eager": ``lclib.rope.apply_rope_cached``; "compiled": ``lclib.kernels``),
  and its cos/sin tables for positions 0..seq_len-1.
- ``ALiBi`` (Press et al. 2022) owns its slope per head and its additive bias tables.

Each keeps its last ``TABLES_KEPT`` tables: a decoding loop that re-reads the sequence asks for a new length
at every step, and an ALiBi bias of 1024 tokens alone is 16 MiB, so keeping every length would grow without
bound; recomputing a dropped one gives the same numbers.

The frequencies and slopes are non-persistent buffers: they follow ``model.to(device)`` and never enter a
state_dict, so checkpoints hold the trained weights only. ``GPT`` owns one of them (none for "none").
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from . import kernels, rope, validate

KERNELS = ("eager", "compiled")
TABLES_KEPT = 4  # cos/sin or bias tables each module keeps, the least recently used dropped first (cheap to remake)
T_ = TypeVar("T_")

# how keys were rotated, which a KV cache remembers: (scaling, inv_freq float64 (head_dim // 2,), attention_factor)
Rotation = tuple[Any, Tensor, float]


def check_scaling(scaling: Any, name: str = "scaling") -> Any:
    """scaling, or None for plain RoPE (None itself, or a scaling whose method is "none": one form of plain RoPE).

    TypeError unless None or an object with a method frequencies(head_dim, base, seq_len); name is the
    argument named in that message.
    """
    if scaling is not None and not callable(getattr(scaling, "frequencies", None)):
        raise TypeError(f"{name} must be None or have a method frequencies(head_dim, base, seq_len), "
                        f"got {type(scaling).__name__}")
    return None if getattr(scaling, "method", None) == "none" else scaling


def _kept(tables: OrderedDict[tuple, T_], key: tuple, make: Callable[[], T_]) -> T_:
    """tables[key], made by make() if missing; the TABLES_KEPT most recently used are kept."""
    if key in tables:
        tables.move_to_end(key)
    else:
        tables[key] = make()
        if len(tables) > TABLES_KEPT:
            tables.popitem(last=False)
    return tables[key]


class RotaryEmbedding(nn.Module):
    """RoPE for one model: cos/sin of position * theta_i (RoFormer, Eq. 15), and the rotation of q and k (Eq. 34).

    Shapes: inv_freq (head_dim // 2,) float64; cos, sin (seq_len, head_dim // 2); x (..., seq_len, head_dim).
    """

    def __init__(self, head_dim: int, base: float = 10000.0, layout: str = "half", scaling: Any = None) -> None:
        super().__init__()
        self.register_buffer("inv_freq", rope.inv_freq(head_dim, base), persistent=False)  # checks head_dim, base
        self.head_dim, self.base = head_dim, base
        self.layout = validate.one_of("layout", layout, rope.LAYOUTS)
        self.scaling = check_scaling(scaling)
        self.kernel, self.rotate_fn = "eager", rope.apply_rope_cached
        self._tables: OrderedDict[tuple, tuple[Tensor, Tensor]] = OrderedDict()  # (seq_len, rope_len, device, dtype) -> (cos, sin)

    def set_scaling(self, scaling: Any) -> RotaryEmbedding:
        """Read positions under another scaling from now on (None: plain RoPE); drops the cached tables; returns self."""
        self.scaling = check_scaling(scaling)
        self._tables.clear()
        return self

    def set_kernel(self, kernel: str) -> RotaryEmbedding:
        """Rotate with "eager" (lclib.rope's reference) or "compiled" (lclib.kernels.compiled_rope); returns self."""
        validate.one_of("kernel", kernel, KERNELS)
        if kernel == "compiled":
            kernels.check_compiler()
        self.kernel = kernel
        self.rotate_fn = kernels.compiled_rope if kernel == "compiled" else rope.apply_rope_cached
        return self

    def frequencies(self, seq_len: int) -> tuple[Tensor, float]:
        """inv_freq (head_dim // 2,) float64 and attention_factor for a sequence of seq_len tokens."""
        if self.scaling is None:
            return self.inv_freq, 1.0
        freqs, factor = self.scaling.frequencies(self.head_dim, self.base, seq_len)
        return torch.as_tensor(freqs, dtype=torch.float64), float(factor)

    def rotation(self, seq_len: int) -> Rotation:
        """(scaling, inv_freq, attention_factor) that keys get at this sequence length: what a KV cache compares."""
        return (self.scaling, *self.frequencies(seq_len))

    def cos_sin(self, positions: Tensor, dtype: torch.dtype, rope_len: int | None = None) -> tuple[Tensor, Tensor]:
        """cos, sin (len(positions), head_dim // 2) for these positions.

        rope_len is the sequence length the scaling is computed for (only dynamic NTK depends on it);
        default: the number of positions up to the last one, max position + 1.
        """
        seq_len = rope_len if rope_len is not None else (int(positions.max()) + 1 if positions.numel() else 1)
        freqs, factor = self.frequencies(seq_len)
        return rope.rope_cos_sin(positions, freqs.to(positions.device), factor, dtype)

    def table(self, seq_len: int, device: torch.device, dtype: torch.dtype,
              rope_len: int | None = None) -> tuple[Tensor, Tensor]:
        """cos_sin of positions 0..seq_len-1, kept per (seq_len, rope_len, device, dtype): the usual forward."""
        return _kept(self._tables, (seq_len, rope_len, device, dtype),
                     lambda: self.cos_sin(torch.arange(seq_len, device=device), dtype, rope_len))

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        """x (B, nh, seq_len, head_dim) rotated pair by pair; cos, sin (seq_len, head_dim // 2) of the angles."""
        return self.rotate_fn(x, cos, sin, self.layout)


class ALiBi(nn.Module):
    """Attention with Linear Biases (Press et al. 2022): head h adds -slope[h] * (i - j) to query i's score on key j.

    Steep heads look close, shallow heads far, and no position is ever embedded, so any length can be read.
    """

    def __init__(self, n_head: int) -> None:
        super().__init__()
        self.n_head = validate.integer("n_head", n_head, low=1)
        slopes = torch.tensor([2.0 ** (-8.0 * h / n_head) for h in range(1, n_head + 1)])
        self.register_buffer("slopes", slopes, persistent=False)  # (n_head,): 2^(-8h/n_head), h = 1..n_head
        self._biases: OrderedDict[tuple, Tensor] = OrderedDict()  # (seq_len, device, dtype) -> (n_head, seq_len, seq_len)

    def bias(self, seq_len: int, dtype: torch.dtype = torch.float32,
             device: torch.device | str | None = None) -> Tensor:
        """Additive attention bias (n_head, seq_len, seq_len): -slope * (i - j) for keys j <= i, -inf above the diagonal.

        Kept per (seq_len, device, dtype), the last TABLES_KEPT of them.
        """
        validate.integer("seq_len", seq_len, low=1)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating torch.dtype (the bias holds -inf), got {dtype}")
        def make() -> Tensor:
            pos = torch.arange(seq_len, device=device)
            distance = (pos[:, None] - pos[None, :]).to(torch.float32)  # (seq_len, seq_len), i - j
            bias = -self.slopes.to(device)[:, None, None] * distance  # (nh, seq_len, seq_len)
            return bias.masked_fill(distance < 0, float("-inf")).to(dtype)

        return _kept(self._biases, (seq_len, device, dtype), make)
