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

from . import kernels, rope
from .kv_cache import KVCache

POS_ENCODINGS = ("rope", "alibi", "none")
INITS = ("torch", "gpt2")
MAX_GENERATE_LEN = 1 << 16  # prompt + new tokens that GPT.generate reads at most: longer is refused, not run for hours
IGNORE = -100  # the target id the loss skips (F.cross_entropy's ignore_index): prompts, padding, unasked tokens
AttentionFn = Callable[[Tensor, Tensor, Tensor, bool], Tensor]


def _check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _check_tokens(name: str, tokens: object, vocab_size: int) -> Tensor:
    """tokens (B, T): an integer tensor of ids in 0..vocab_size-1 (else an IndexError deep in nn.Embedding)."""
    if not isinstance(tokens, Tensor) or tokens.dim() != 2:
        raise ValueError(f"{name} must be a tensor of shape (batch, seq_len), got {getattr(tokens, 'shape', type(tokens))}")
    if tokens.is_floating_point() or tokens.is_complex() or tokens.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor of token ids, got {tokens.dtype}")
    if tokens.numel() and bool(((tokens < 0) | (tokens >= vocab_size)).any()):
        raise ValueError(f"{name} must be ids in 0..{vocab_size - 1}, got {int(tokens.min())}..{int(tokens.max())}")
    return tokens


def _check_parts(config: object, attention_fn: object) -> None:
    """The arguments of the modules: a GPTConfig, and None or a function (q, k, v, causal) -> out."""
    if not isinstance(config, GPTConfig):
        raise TypeError(f"config must be a GPTConfig, got {type(config).__name__}")
    if attention_fn is not None and not callable(attention_fn):
        raise TypeError(f"attention_fn must be None or a function (q, k, v, causal) -> out, "
                        f"got {type(attention_fn).__name__}")


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
    _check_positive_int("n_head", n_head)
    return torch.tensor([2.0 ** (-8.0 * h / n_head) for h in range(1, n_head + 1)])


def alibi_bias(n_head: int, T: int, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> Tensor:
    """Additive attention bias (n_head, T, T): -slope * (i - j) for keys j <= i, -inf above the diagonal."""
    _check_positive_int("n_head", n_head)
    _check_positive_int("T", T)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype (the bias holds -inf), got {dtype}")
    pos = torch.arange(T, device=device)
    distance = (pos[:, None] - pos[None, :]).to(torch.float32)  # (T, T), i - j
    bias = -alibi_slopes(n_head).to(device)[:, None, None] * distance  # (nh, T, T)
    return bias.masked_fill(distance < 0, float("-inf")).to(dtype)


def sdpa_attention(q: Tensor, k: Tensor, v: Tensor, causal: bool) -> Tensor:
    """Default attention: softmax(q k^T / sqrt(head_dim)) v, causal when asked. Shapes (B, nh, T, hs)."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, Tensor) or t.dim() != 4:
            raise ValueError(f"{name} must be a 4-D tensor (B, nh, T, hs), got {getattr(t, 'shape', type(t).__name__)}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}")
    if k.shape != q.shape or v.shape[:3] != q.shape[:3]:
        bad = "k" if k.shape != q.shape else "v"
        raise ValueError(f"{bad} must match q {tuple(q.shape)} in (B, nh, T{', hs' if bad == 'k' else ''}), "
                         f"got k {tuple(k.shape)} and v {tuple(v.shape)}")
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
        base = self.rope_base
        if isinstance(base, bool) or not isinstance(base, (int, float)) or not 1 < base < float("inf"):
            raise ValueError(f"rope_base must be a finite number > 1 (theta_i = base^(-2i/d)), got {base!r}")
        if not isinstance(self.tie_embeddings, bool):
            raise TypeError(f"tie_embeddings must be a bool, got {type(self.tie_embeddings).__name__}")
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
    """Multi-head causal self-attention with RoPE on q and k (RoFormer, Eq. 34), or an ALiBi bias.

    With n_kv_head < n_head (grouped-query attention, Ainslie et al. 2023; multi-query at 1, Shazeer 2019)
    each group of n_head / n_kv_head consecutive query heads shares one key and one value head.
    """

    def __init__(self, config: GPTConfig, attention_fn: AttentionFn | None = None) -> None:
        super().__init__()
        _check_parts(config, attention_fn)
        self.n_head, self.head_dim, self.layout = config.n_head, config.head_dim, config.rope_layout
        self.n_kv_head = config.n_head  # fewer after group_kv_heads
        self.use_rope = config.pos_encoding == "rope"
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model, bias=False)
        self.proj = nn.Linear(config.d_model, config.d_model, bias=False)
        self.attention_fn = attention_fn or sdpa_attention
        self.rotate_fn = rotate  # or lclib.kernels.compiled_rope (GPT.set_rope_kernel)

    def forward(self, x: Tensor, cos: Tensor | None, sin: Tensor | None, bias: Tensor | None = None,
                cache: KVCache | None = None, layer: int = 0) -> Tensor:
        """x (B, T, C); cos, sin (T, hs/2) for RoPE; bias (nh, T, T) for ALiBi (causal mask included).

        cache: a KVCache that this step's keys and values join (layer: this block's index); the queries
        read everything it holds.
        """
        B, T, C = x.shape
        kv = self.n_kv_head * self.head_dim
        q, k, v = self.qkv(x).split([C, kv, kv], dim=2)  # (B, T, C), (B, T, kv), (B, T, kv)
        q = q.view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, nh, T, hs)
        k, v = (t.view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2) for t in (k, v))  # (B, n_kv, T, hs)
        if self.use_rope:
            q = self.rotate_fn(q, cos, sin, self.layout)  # (B, nh, T, hs)
            k = self.rotate_fn(k, cos, sin, self.layout)
        if cache is not None:
            return self.proj(self._cached(q, k, v, cache, layer).transpose(1, 2).reshape(B, T, C))  # (B, T, C)
        if self.n_kv_head < self.n_head:  # KV head j serves query heads j*g .. j*g + g-1
            k, v = (t.repeat_interleave(self.n_head // self.n_kv_head, dim=1) for t in (k, v))  # (B, nh, T, hs)
        if bias is None:
            y = self.attention_fn(q, k, v, True)  # (B, nh, T, hs)
        elif self.attention_fn is sdpa_attention:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # (B, nh, T, hs)
        else:
            raise ValueError("an ALiBi model takes no custom attention_fn (its bias is part of the scores)")
        return self.proj(y.transpose(1, 2).reshape(B, T, C))  # (B, T, C)

    def _cached(self, q: Tensor, k: Tensor, v: Tensor, cache: KVCache, layer: int) -> Tensor:
        """The new queries q (B, nh, T, hs) over the cache plus this step's k, v (B, n_kv, T, hs); returns (B, nh, T, hs)."""
        B, nh, T, hs = q.shape
        k, v = cache.update(layer, k, v)  # (B, n_kv, S, hs): every token the cache holds, these included
        g = nh // self.n_kv_head
        if g == 1:
            return F.scaled_dot_product_attention(q, k, v, attn_mask=cache.mask, is_causal=cache.causal)
        # grouped: the g query heads of a group read their shared KV head once, as g * T rows of queries
        mask = cache.explicit_mask() if cache.causal else cache.mask  # (T, S) or None
        y = F.scaled_dot_product_attention(q.reshape(B, self.n_kv_head, g * T, hs), k, v,
                                           attn_mask=None if mask is None else mask.repeat(g, 1))
        return y.view(B, nh, T, hs)

    def regroup_kv_heads(self, n_kv_head: int) -> None:
        """Use n_kv_head KV heads. Fewer: mean-pool the K and V projections of each group (Ainslie et al. 2023,
        Sec. 2.1; exact when a group's heads agree). More: repeat each head, which changes no output."""
        if isinstance(n_kv_head, bool) or not isinstance(n_kv_head, int) or n_kv_head < 1 or self.n_head % n_kv_head:
            raise ValueError(f"n_kv_head must be a positive int dividing n_head = {self.n_head}, got {n_kv_head!r}")
        C, hs, old = self.n_head * self.head_dim, self.head_dim, self.n_kv_head
        w = self.qkv.weight.detach()  # (C + 2 * old * hs, C)
        wq, wk, wv = w.split([C, old * hs, old * hs])

        def regroup(t: Tensor) -> Tensor:  # (old * hs, C) -> (n_kv_head * hs, C)
            if n_kv_head >= old:
                return t.view(old, 1, hs, -1).expand(old, n_kv_head // old, hs, -1).reshape(n_kv_head * hs, -1)
            heads = t.view(n_kv_head, old // n_kv_head, hs, -1)
            same = torch.equal(heads, heads[:, :1].expand_as(heads))  # already shared: keep the bits
            return (heads[:, 0] if same else heads.mean(1)).reshape(n_kv_head * hs, -1)

        if n_kv_head > old and old * (n_kv_head // old) != n_kv_head:
            raise ValueError(f"n_kv_head must be a multiple of the current {old} KV heads to grow, got {n_kv_head}")
        self.qkv = nn.Linear(w.shape[1], C + 2 * n_kv_head * hs, bias=False, device=w.device, dtype=w.dtype)
        with torch.no_grad():
            self.qkv.weight.copy_(torch.cat([wq, regroup(wk), regroup(wv)]))
        self.n_kv_head = n_kv_head


class Block(nn.Module):
    """Pre-LN transformer block: x + attn(ln1(x)), then x + mlp(ln2(x))."""

    def __init__(self, config: GPTConfig, attention_fn: AttentionFn | None = None) -> None:
        super().__init__()
        _check_parts(config, attention_fn)
        self.ln1 = nn.LayerNorm(config.d_model)
        self.attn = Attention(config, attention_fn)
        self.ln2 = nn.LayerNorm(config.d_model)
        hidden = config.mlp_ratio * config.d_model
        self.mlp = nn.Sequential(nn.Linear(config.d_model, hidden), nn.GELU(), nn.Linear(hidden, config.d_model))

    def forward(self, x: Tensor, cos: Tensor | None, sin: Tensor | None, bias: Tensor | None = None,
                cache: KVCache | None = None, layer: int = 0) -> Tensor:
        x = x + self.attn(self.ln1(x), cos, sin, bias, cache, layer)  # (B, T, C)
        return x + self.mlp(self.ln2(x))  # (B, T, C)


class GPT(nn.Module):
    """Token embedding, n_layer pre-LN blocks, final LayerNorm, linear head to vocabulary logits."""

    def __init__(self, config: GPTConfig, attention_fn: AttentionFn | None = None) -> None:
        super().__init__()
        _check_parts(config, attention_fn)
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
        _check_parts(self.config, attention_fn)
        for block in self.blocks:
            block.attn.attention_fn = attention_fn or sdpa_attention

    def set_rope_kernel(self, kernel: str) -> GPT:
        """Rotate q and k with "eager" (lclib.rope's reference, the default) or "compiled" (lclib.kernels'
        torch.compile kernel: faster for long prefills, seconds to compile on first use); returns self."""
        if kernel not in ("eager", "compiled"):
            raise ValueError(f"kernel must be 'eager' or 'compiled', got {kernel!r}")
        if kernel == "compiled":
            kernels.check_compiler()
        for block in self.blocks:
            block.attn.rotate_fn = kernels.compiled_rope if kernel == "compiled" else rotate
        return self

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

    def forward(self, tokens: Tensor, positions: Tensor | None = None, rope_len: int | None = None,
                cache: KVCache | None = None) -> Tensor:
        """Logits for every position. tokens (B, T) long; positions (T,) optional (default 0..T-1).

        rope_len: the length a length-dependent scaling (dynamic NTK) is computed for; default
        max position + 1 (the whole sequence, as when every token is fed anew). Returns (B, T, vocab_size).
        cache: a lclib.kv_cache.KVCache holding the tokens read before these; tokens then sit at positions
        cache.next_position + 0..T-1, their keys and values join the cache, and positions must be None.
        """
        _check_tokens("tokens", tokens, self.config.vocab_size)
        if positions is not None and not isinstance(positions, Tensor):
            raise TypeError(f"positions must be None or a tensor (seq_len,), got {type(positions).__name__}")
        if rope_len is not None and (isinstance(rope_len, bool) or not isinstance(rope_len, int) or rope_len < 1):
            raise ValueError(f"rope_len must be a positive int or None, got {rope_len!r}")
        if cache is not None:
            return self._forward_cached(tokens, positions, rope_len, cache)
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

    def _cache_rope(self, seq_len: int) -> tuple[Any, Tensor, float] | None:
        """(rope_scaling, inv_freq, attention_factor) that keys get at this sequence length; None without RoPE."""
        if self.config.pos_encoding != "rope":
            return None
        return (self.config.rope_scaling, *self.rope_frequencies(seq_len))

    def _check_cache_use(self, cache: object) -> None:
        """The cached path's preconditions that do not depend on the tokens: a KVCache, and a model it can serve."""
        if not isinstance(cache, KVCache):
            raise TypeError(f"cache must be a lclib.kv_cache.KVCache, got {type(cache).__name__}")
        if cache.n_layer != self.config.n_layer:
            raise ValueError(f"cache must have n_layer = {self.config.n_layer}, got {cache.n_layer}")
        if self.config.pos_encoding == "alibi":
            raise ValueError("the KV cache path supports pos_encoding 'rope' and 'none', got 'alibi' "
                             "(GPT.generate: pass use_cache=False)")
        if any(block.attn.attention_fn is not sdpa_attention for block in self.blocks):
            raise ValueError("the KV cache path reads its own attention (scaled_dot_product_attention): "
                             "call set_attention(None) first (GPT.generate: or pass use_cache=False)")

    def _forward_cached(self, tokens: Tensor, positions: Tensor | None, rope_len: int | None, cache: KVCache) -> Tensor:
        """forward() with a KV cache: the new tokens (B, T) at positions offset by what the cache has read.

        Everything is checked before the cache is touched, so a refused call leaves it as it was.
        """
        self._check_cache_use(cache)
        if positions is not None:
            raise ValueError("positions must be None with a cache: the cache knows where the new tokens sit")
        B, T = tokens.shape
        if T == 0:
            raise ValueError(f"tokens must hold at least one token per row with a cache, got shape {(B, T)}")
        held = cache.layout  # (batch, n_kv_head, head_dim) of the cached keys, None while empty
        if held is not None and held[0] != B:
            raise ValueError(f"tokens must have the cache's batch size {held[0]}, got {B}")
        if held is not None and held[1:] != (self.n_kv_head, self.config.head_dim):
            raise ValueError(f"cache holds keys of n_kv_head={held[1]}, head_dim={held[2]}, the model now makes "
                             f"n_kv_head={self.n_kv_head}, head_dim={self.config.head_dim} (group_kv_heads between "
                             "cached steps?): start a new KVCache")
        if held is not None and cache.keys[0].device != tokens.device:
            raise ValueError(f"tokens must be on the cache's device {cache.keys[0].device}, got {tokens.device}")
        seq_len = rope_len if rope_len is not None else cache.next_position + T  # as forward(): max position + 1
        keys_rope = self._cache_rope(seq_len)  # (rope_scaling, inv_freq, attention_factor), or None
        q_pos = cache.begin(T, tokens.device, keys_rope)  # (T,) cache.next_position + 0..T-1
        cos = sin = None
        if keys_rope is not None:  # RoPE at the true offset, cos and sin (T, hs/2)
            _, freqs, factor = keys_rope
            cos, sin = rope.rope_cos_sin(q_pos, freqs.to(q_pos.device), factor, self.embed.weight.dtype)
        x = self.embed(tokens)  # (B, T, C)
        try:
            for i, block in enumerate(self.blocks):
                x = block(x, cos, sin, None, cache, i)  # (B, T, C)
        except BaseException:  # an error or Ctrl-C midway: the cache keeps what it held, and stays usable
            cache.abort()
            raise
        cache.end()
        return self.head(self.ln_f(x))  # (B, T, vocab)

    @torch.no_grad()
    def generate(self, prompt: Tensor, max_new_tokens: int, use_cache: bool = True,
                 cache: KVCache | None = None, attention_mask: Tensor | None = None) -> Tensor:
        """Greedy decoding: prompt (B, T) -> (B, T + max_new_tokens), at most MAX_GENERATE_LEN tokens in all.

        With the cache, one prefill pass over the prompt, then one token per step that reads the cache;
        without, the whole sequence is read again at every step (far more work). Both give the same
        tokens for every RoPE scaling. Dynamic NTK recomputes every frequency from the current length,
        so past original_max_len each step would read keys cached under stale frequencies: at such a
        step generate empties the cache and re-reads the whole sequence (exact, and as slow as without
        the cache). Recomputing was chosen over refusing because it is this one branch; rotating the
        cached keys again would not stay exact for an int8 cache.
        cache: a fresh KVCache to fill (to choose its Window or int8 storage); default a plain one. A Window
        or int8 cache approximates on purpose: its tokens are those of the full forward with
        lclib.kv_compression's window_attention or int8_attention.
        attention_mask: (B, T) 0/1 (or bool), 0 for the left padding of each row, 1 for its prompt tokens.
        The model itself has no padding: rows of each prompt length are decoded together, each exactly as
        it would be alone, and the padding is kept in front of the row in the result. Without a mask every
        token of prompt is read as text.
        """
        _check_tokens("prompt", prompt, self.config.vocab_size)
        B, T = prompt.shape
        if B == 0 or T == 0:
            raise ValueError(f"prompt must hold at least one row of at least one token, got shape {(B, T)}")
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
        if T + max_new_tokens > MAX_GENERATE_LEN:
            raise ValueError(f"max_new_tokens must keep prompt length + max_new_tokens <= {MAX_GENERATE_LEN} "
                             f"(MAX_GENERATE_LEN), got {T} + {max_new_tokens}")
        if not isinstance(use_cache, bool):
            raise TypeError(f"use_cache must be a bool, got {type(use_cache).__name__}")
        if cache is not None:
            if not use_cache:
                raise ValueError("cache must be None with use_cache=False")
            self._check_cache_use(cache)
            if len(cache):
                raise ValueError(f"cache must be an empty KVCache, got one holding {len(cache)} tokens")
        elif use_cache:
            self._check_cache_use(KVCache(self.config.n_layer))
        lengths = self._prompt_lengths(attention_mask, B, T)
        if len(set(lengths)) == 1 and lengths[0] == T:  # no padding
            return self._greedy(prompt, max_new_tokens, use_cache, cache)
        if cache is not None:
            raise ValueError("cache must be None with a padded attention_mask (each prompt length gets its own cache)")
        out = torch.cat([prompt, prompt.new_zeros(B, max_new_tokens)], dim=1)  # (B, T + max_new_tokens)
        for n in sorted(set(lengths)):
            rows = torch.tensor([i for i, m in enumerate(lengths) if m == n], device=prompt.device)
            out[rows, T - n:] = self._greedy(prompt[rows, T - n:], max_new_tokens, use_cache, None)
        return out

    @staticmethod
    def _prompt_lengths(attention_mask: object, B: int, T: int) -> list[int]:
        """Prompt tokens per row from a left-padding mask (B, T) of 0s then 1s; all T without a mask."""
        if attention_mask is None:
            return [T] * B
        if not isinstance(attention_mask, Tensor) or tuple(attention_mask.shape) != (B, T):
            raise ValueError(f"attention_mask must be a tensor of prompt's shape {(B, T)}, "
                             f"got {getattr(attention_mask, 'shape', type(attention_mask).__name__)}")
        if attention_mask.is_floating_point() or attention_mask.is_complex():
            raise TypeError(f"attention_mask must be a bool or integer tensor of 0s and 1s, got {attention_mask.dtype}")
        mask = attention_mask.long()
        if bool(((mask != 0) & (mask != 1)).any()):
            raise ValueError("attention_mask must hold only 0s and 1s")
        if bool((mask[:, 1:] < mask[:, :-1]).any()) or not bool(mask[:, -1].all()):
            raise ValueError("attention_mask must be left padding: in each row 0s, then 1s up to the last token")
        return mask.sum(1).tolist()

    def _greedy(self, tokens: Tensor, max_new_tokens: int, use_cache: bool, cache: KVCache | None) -> Tensor:
        """generate() on checked arguments and rows without padding: tokens (B, T) -> (B, T + max_new_tokens)."""
        if not use_cache:
            for _ in range(max_new_tokens):
                tokens = torch.cat([tokens, self(tokens)[:, -1:].argmax(-1)], dim=1)  # (B, T + 1)
            return tokens
        cache = cache if cache is not None else KVCache(self.config.n_layer)
        logits = self(tokens, cache=cache)  # prefill: (B, T, vocab)
        for step in range(max_new_tokens):
            tokens = torch.cat([tokens, logits[:, -1:].argmax(-1)], dim=1)  # (B, T + step + 1)
            if step + 1 == max_new_tokens:
                break
            if cache.rope_conflict(self._cache_rope(tokens.shape[1])) is None:
                logits = self(tokens[:, -1:], cache=cache)  # decode: one token, (B, 1, vocab)
            else:  # dynamic NTK past L: every frequency moved, the cached keys are stale; read the sequence anew
                cache.clear()
                logits = self(tokens, cache=cache)  # (B, T + step + 1, vocab)
        return tokens

    @property
    def n_kv_head(self) -> int:
        """Key-value heads per layer: n_head (multi-head), fewer after group_kv_heads."""
        return self.blocks[0].attn.n_kv_head

    def group_kv_heads(self, n_kv_head: int) -> GPT:
        """Grouped-query attention from here on: n_kv_head KV heads per layer (1: multi-query); returns self.

        Fewer heads mean-pool the key and value projections within each group (Ainslie et al. 2023, Sec. 2.1);
        n_kv_head = n_head again repeats each shared head, an exact way to store a grouped model as a
        multi-head one (train.save, train.load), which group_kv_heads turns back bit for bit.
        """
        n_head = self.config.n_head
        if isinstance(n_kv_head, bool) or not isinstance(n_kv_head, int) or n_kv_head < 1 or n_head % n_kv_head:
            raise ValueError(f"n_kv_head must be a positive int dividing n_head = {n_head}, got {n_kv_head!r}")
        if n_kv_head > self.n_kv_head and n_kv_head % self.n_kv_head:
            raise ValueError(f"n_kv_head must be a multiple of the current {self.n_kv_head} KV heads to grow, "
                             f"got {n_kv_head}")
        for block in self.blocks:
            block.attn.regroup_kv_heads(n_kv_head)
        return self

    def num_params(self) -> int:
        """Trainable parameters, the tied embedding counted once."""
        return sum(p.numel() for p in self.parameters())
