"""A small decoder-only transformer for the lab, readable like nanoGPT.

Pre-LN blocks (Xiong et al. 2020): ``x + attn(ln(x))`` then ``x + mlp(ln(x))``; attention through
``F.scaled_dot_product_attention``; position information from RoPE (Su et al. 2021) applied to
queries and keys, from a linear distance penalty on the attention scores (``pos_encoding="alibi"``,
Press et al. 2022), or from nothing at all (``pos_encoding="none"``, causal masking alone).

Two things are pluggable because later notebooks swap them:

- ``GPTConfig.rope_scaling``: any object with ``frequencies(head_dim, base, seq_len) ->
  (inv_freq float64 (head_dim // 2,), attention_factor: float)`` (``lclib.scaling.RopeScaling``
  is one). None means plain RoPE, ``lclib.rope.inv_freq(head_dim, base)``.
- ``GPT(config, attention_fn=...)``: a function ``(q, k, v, causal) -> out`` on shapes
  (B, n_head, T, head_dim), e.g. the dilated attention of notebook 03.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import rope

POS_ENCODINGS = ("rope", "alibi", "none")
INITS = ("torch", "gpt2")
AttentionFn = Callable[[Tensor, Tensor, Tensor, bool], Tensor]


def rotate(x: Tensor, cos: Tensor, sin: Tensor, layout: str) -> Tensor:
    """RoPE with cached cos/sin (lclib.rope.apply_rope_cached; differentiable when training).

    Shapes: x (B, nh, T, hs); cos, sin (T, hs/2).
    """
    return rope.apply_rope_cached(x, cos, sin, layout)


def alibi_slopes(n_head: int) -> Tensor:
    """ALiBi's slope per head, the geometric sequence 2^(-8h/n_head) for h = 1..n_head (Press et al. 2022).

    Shape (n_head,). Head h adds -slope[h] * (i - j) to the score of query i on key j: steep heads
    look close, shallow heads far, and no position is ever embedded, so any length can be read.
    """
    return torch.tensor([2.0 ** (-8.0 * h / n_head) for h in range(1, n_head + 1)])


def alibi_bias(n_head: int, T: int, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> Tensor:
    """Additive attention bias (n_head, T, T): -slope * (i - j) for keys j <= i, -inf above the diagonal."""
    pos = torch.arange(T, device=device)
    distance = (pos[:, None] - pos[None, :]).to(torch.float32)  # (T, T), i - j
    bias = -alibi_slopes(n_head).to(device)[:, None, None] * distance  # (nh, T, T)
    return bias.masked_fill(distance < 0, float("-inf")).to(dtype)


def sdpa_attention(q: Tensor, k: Tensor, v: Tensor, causal: bool) -> Tensor:
    """Default attention: softmax(q k^T / sqrt(head_dim)) v, causal when asked. Shapes (B, nh, T, hs)."""
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal)


@dataclass
class GPTConfig:
    vocab_size: int = 84  # tokens in the vocabulary (lclib.tasks.KVTask.vocab_size for the lab task)
    n_layer: int = 2  # transformer blocks
    n_head: int = 4  # attention heads per block
    d_model: int = 64  # residual stream width; head_dim = d_model // n_head
    mlp_ratio: int = 4  # MLP hidden width = mlp_ratio * d_model
    pos_encoding: str = "rope"  # "rope" (rotary on q and k), "alibi" (distance bias per head) or "none" (mask only)
    rope_base: float = 10000.0  # RoPE base b in theta_i = b^(-2i/d) (RoFormer, Eq. 15)
    rope_layout: str = "half"  # "half" pairs (i, i + d/2) as in Llama/HF; "interleaved" pairs (2i, 2i+1)
    rope_scaling: Any = None  # None = plain RoPE; else an object with .frequencies(head_dim, base, seq_len)
    tie_embeddings: bool = False  # share the token embedding with the output head (GPT-2); untied learnt faster here
    init: str = "torch"  # "torch": PyTorch defaults (embeddings N(0, 1)); "gpt2": every weight N(0, 0.02)

    def __post_init__(self) -> None:
        for name in ("vocab_size", "n_layer", "n_head", "d_model", "mlp_ratio"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.d_model % self.n_head:
            raise ValueError(f"d_model must be divisible by n_head, got d_model={self.d_model}, n_head={self.n_head}")
        if self.pos_encoding not in POS_ENCODINGS:
            raise ValueError(f"pos_encoding must be one of {POS_ENCODINGS}, got {self.pos_encoding!r}")
        if self.pos_encoding == "rope" and self.head_dim % 2:
            raise ValueError(f"head_dim must be even for RoPE, got {self.head_dim}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if self.rope_layout not in rope.LAYOUTS:
            raise ValueError(f"rope_layout must be one of {rope.LAYOUTS}, got {self.rope_layout!r}")
        if self.rope_scaling is not None and not callable(getattr(self.rope_scaling, "frequencies", None)):
            raise TypeError("rope_scaling must be None or have a method frequencies(head_dim, base, seq_len), "
                            f"got {type(self.rope_scaling).__name__}")
        if getattr(self.rope_scaling, "method", None) == "none":
            self.rope_scaling = None  # one representation of plain RoPE: None
        if self.rope_scaling is not None and self.pos_encoding != "rope":
            raise ValueError(f"rope_scaling needs pos_encoding='rope', got pos_encoding={self.pos_encoding!r}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head


class Attention(nn.Module):
    """Multi-head causal self-attention with RoPE on q and k (RoFormer, Eq. 34), or an ALiBi bias."""

    def __init__(self, config: GPTConfig, attention_fn: AttentionFn | None = None) -> None:
        super().__init__()
        self.n_head, self.head_dim, self.layout = config.n_head, config.head_dim, config.rope_layout
        self.use_rope = config.pos_encoding == "rope"
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model, bias=False)
        self.proj = nn.Linear(config.d_model, config.d_model, bias=False)
        self.attention_fn = attention_fn or sdpa_attention

    def forward(self, x: Tensor, cos: Tensor | None, sin: Tensor | None, bias: Tensor | None = None) -> Tensor:
        """x (B, T, C); cos, sin (T, hs/2) for RoPE; bias (nh, T, T) for ALiBi (causal mask included)."""
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)  # each (B, T, C)
        q, k, v = (t.view(B, T, self.n_head, self.head_dim).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        if self.use_rope:
            q = rotate(q, cos, sin, self.layout)  # (B, nh, T, hs)
            k = rotate(k, cos, sin, self.layout)
        if bias is None:
            y = self.attention_fn(q, k, v, True)  # (B, nh, T, hs)
        elif self.attention_fn is sdpa_attention:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # (B, nh, T, hs)
        else:
            raise ValueError("an ALiBi model takes no custom attention_fn (its bias is part of the scores)")
        return self.proj(y.transpose(1, 2).reshape(B, T, C))  # (B, T, C)


class Block(nn.Module):
    """Pre-LN transformer block: x + attn(ln1(x)), then x + mlp(ln2(x))."""

    def __init__(self, config: GPTConfig, attention_fn: AttentionFn | None = None) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(config.d_model)
        self.attn = Attention(config, attention_fn)
        self.ln2 = nn.LayerNorm(config.d_model)
        hidden = config.mlp_ratio * config.d_model
        self.mlp = nn.Sequential(nn.Linear(config.d_model, hidden), nn.GELU(), nn.Linear(hidden, config.d_model))

    def forward(self, x: Tensor, cos: Tensor | None, sin: Tensor | None, bias: Tensor | None = None) -> Tensor:
        x = x + self.attn(self.ln1(x), cos, sin, bias)  # (B, T, C)
        return x + self.mlp(self.ln2(x))  # (B, T, C)


class GPT(nn.Module):
    """Token embedding, n_layer pre-LN blocks, final LayerNorm, linear head to vocabulary logits."""

    def __init__(self, config: GPTConfig, attention_fn: AttentionFn | None = None) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.blocks = nn.ModuleList(Block(config, attention_fn) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.head.weight = self.embed.weight
        if config.init == "gpt2":
            # measured on key-value retrieval (issue 5): with this small init the 2-layer model stayed at
            # chance for 3,000 steps; with PyTorch's defaults answer-token accuracy left chance near step 1,100
            self.apply(self._init_weights)
        self._rope_cache: dict[tuple, tuple[Tensor, Tensor]] = {}
        self._alibi_cache: dict[tuple, Tensor] = {}

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)  # GPT-2 initialisation
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def set_attention(self, attention_fn: AttentionFn | None) -> None:
        """Swap the attention function of every block (None restores scaled_dot_product_attention)."""
        for block in self.blocks:
            block.attn.attention_fn = attention_fn or sdpa_attention

    def set_rope_scaling(self, scaling: Any) -> GPT:
        """Read positions under another RoPE scaling from now on (no weight changes); returns self.

        scaling: None (plain RoPE) or an object with frequencies(head_dim, base, seq_len), such as
        ``lclib.scaling.RopeScaling``. The cached cos/sin tables are dropped.
        """
        self.config = dataclasses.replace(self.config, rope_scaling=scaling)  # validated by GPTConfig
        self._rope_cache = {}
        return self

    def rope_frequencies(self, seq_len: int) -> tuple[Tensor, float]:
        """inv_freq (head_dim // 2,) float64 and attention_factor for this sequence length."""
        c = self.config
        if c.rope_scaling is None:
            return rope.inv_freq(c.head_dim, c.rope_base), 1.0
        freqs, factor = c.rope_scaling.frequencies(c.head_dim, c.rope_base, seq_len)
        return torch.as_tensor(freqs, dtype=torch.float64), float(factor)

    def rope_cos_sin(self, positions: Tensor, dtype: torch.dtype, rope_len: int | None = None) -> tuple[Tensor, Tensor]:
        """cos, sin (len(positions), head_dim // 2) for these positions.

        rope_len is the sequence length the scaling is computed for (only dynamic NTK depends on it);
        default: the number of positions up to the last one, max position + 1.
        """
        seq_len = rope_len if rope_len is not None else (int(positions.max()) + 1 if positions.numel() else 1)
        freqs, factor = self.rope_frequencies(seq_len)
        return rope.rope_cos_sin(positions, freqs.to(positions.device), factor, dtype)

    def forward(self, tokens: Tensor, positions: Tensor | None = None, rope_len: int | None = None) -> Tensor:
        """Logits for every position. tokens (B, T) long; positions (T,) optional (default 0..T-1).

        rope_len: the length a length-dependent scaling (dynamic NTK) is computed for; default
        max position + 1 (the whole sequence, as when every token is fed anew). Returns (B, T, vocab_size).
        """
        if not isinstance(tokens, Tensor) or tokens.dim() != 2:
            raise ValueError(f"tokens must be a tensor of shape (batch, seq_len), got {getattr(tokens, 'shape', type(tokens))}")
        if rope_len is not None and (isinstance(rope_len, bool) or not isinstance(rope_len, int) or rope_len < 1):
            raise ValueError(f"rope_len must be a positive int or None, got {rope_len!r}")
        B, T = tokens.shape
        cos = sin = None
        if self.config.pos_encoding == "rope":
            dtype = self.embed.weight.dtype
            if positions is None:  # the usual case, 0..T-1: cached per (T, rope_len, device, dtype)
                key = (T, rope_len, tokens.device, dtype)
                if key not in self._rope_cache:
                    self._rope_cache[key] = self.rope_cos_sin(torch.arange(T, device=tokens.device), dtype, rope_len)
                cos, sin = self._rope_cache[key]  # (T, hs/2) each
            elif positions.shape != (T,):
                raise ValueError(f"positions must have shape (seq_len,) = ({T},), got {tuple(positions.shape)}")
            else:
                cos, sin = self.rope_cos_sin(positions.to(tokens.device), dtype, rope_len)  # (T, hs/2) each
        bias = None
        if self.config.pos_encoding == "alibi":
            if positions is not None:
                raise ValueError("positions are for RoPE; an ALiBi model reads distances only (pass positions=None)")
            key = (T, tokens.device, self.embed.weight.dtype)
            if key not in self._alibi_cache:
                self._alibi_cache[key] = alibi_bias(self.config.n_head, T, self.embed.weight.dtype, tokens.device)
            bias = self._alibi_cache[key]  # (nh, T, T)
        x = self.embed(tokens)  # (B, T, C)
        for block in self.blocks:
            x = block(x, cos, sin, bias)  # (B, T, C)
        return self.head(self.ln_f(x))  # (B, T, vocab)

    def num_params(self) -> int:
        """Trainable parameters, the tied embedding counted once."""
        return sum(p.numel() for p in self.parameters())
