"""A small decoder-only transformer for the lab, readable like nanoGPT.

Pre-LN blocks (Xiong et al. 2020): ``x + attn(ln(x))`` then ``x + mlp(ln(x))``; attention through
``F.scaled_dot_product_attention``; position information from RoPE (Su et al. 2021) applied to
queries and keys, from a linear distance penalty on the attention scores (``pos_encoding="alibi"``,
Press et al. 2022), or from nothing at all (``pos_encoding="none"``, causal masking alone). The model
owns its position module (``lclib.positions.RotaryEmbedding`` or ``ALiBi``) and builds every mask itself.

One forward path: ``GPT.forward(tokens, positions=None, cache=None)``. With a ``lclib.kv.KVCache`` the
new tokens sit at ``cache.next_position + 0..seq_len-1``, their keys join the cache, and the queries read
what the cache holds; without one, the whole sequence is read at once. ``GPT.generate`` (from
``lclib.generation.GenerationMixin``) is the one greedy decoder; ``lclib.generation.greedy_decode`` is its
loop without a cache, which ``lclib.ruler.adapters.LabModel`` uses too.

Two things are pluggable because later notebooks swap them:

- ``GPTConfig.rope_scaling``: any object with ``frequencies(head_dim, base, seq_len) ->
  (inv_freq float64 (head_dim // 2,), attention_factor: float)`` (``lclib.scaling.RopeScaling``
  is one). None means plain RoPE, ``lclib.rope.inv_freq(head_dim, base)``.
- ``GPT(config, attention_fn=...)``: a function ``(q, k, v, causal) -> out`` on shapes
  (B, n_head, seq_len, head_dim), e.g. the dilated attention of notebook 03.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import rope, validate
from .generation import GenerationMixin
from .kv import KVCache, Window
from .positions import ALiBi, RotaryEmbedding, check_scaling

POS_ENCODINGS = ("rope", "alibi", "none")
INITS = ("torch", "gpt2")
IGNORE = -100  # the target id the loss skips (F.cross_entropy's ignore_index): prompts, padding, unasked tokens
AttentionFn = Callable[[Tensor, Tensor, Tensor, bool], Tensor]


def _check_parts(config: object, attention_fn: object) -> None:
    """The arguments of the modules: a GPTConfig, and None or a function (q, k, v, causal) -> out."""
    if not isinstance(config, GPTConfig):
        raise TypeError(f"config must be a GPTConfig, got {type(config).__name__}")
    if attention_fn is not None and not callable(attention_fn):
        raise TypeError(f"attention_fn must be None or a function (q, k, v, causal) -> out, "
                        f"got {type(attention_fn).__name__}")


def sdpa_attention(q: Tensor, k: Tensor, v: Tensor, causal: bool) -> Tensor:
    """Default attention: softmax(q k^T / sqrt(head_dim)) v, causal when asked. Shapes (B, nh, seq_len, hs)."""
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


def attention_mask(q_positions: Tensor, k_positions: Tensor, policy: Window | None = None) -> Tensor:
    """(T, S) bool: which keys each query reads, from their positions: causal (key j <= query i), and the
    Window's rule (lclib.kv.Window.visible) if a policy is given. Shapes: q_positions (T,), k_positions (S,)."""
    for name, pos in (("q_positions", q_positions), ("k_positions", k_positions)):
        if not isinstance(pos, Tensor) or pos.dim() != 1 or pos.is_floating_point() or pos.dtype == torch.bool:
            raise TypeError(f"{name} must be a 1-D integer tensor of positions, got "
                            f"{getattr(pos, 'dtype', type(pos).__name__)} {tuple(getattr(pos, 'shape', ()))}")
    if policy is None:
        return k_positions[None, :] <= q_positions[:, None]
    return policy.visible(q_positions, k_positions)


@dataclass
class GPTConfig:
    vocab_size: int = 84  # tokens in the vocabulary (lclib.kv_task.KVTask.vocab_size for the lab task)
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
    n_kv_head: int | None = None  # key-value heads (grouped-query attention, Ainslie et al. 2023); None = n_head

    def __post_init__(self) -> None:
        for name in ("vocab_size", "n_layer", "n_head", "d_model", "mlp_ratio"):
            validate.integer(name, getattr(self, name), low=1)
        if self.d_model % self.n_head:
            raise ValueError(f"d_model must be divisible by n_head, got d_model={self.d_model}, n_head={self.n_head}")
        if self.n_kv_head is not None:
            validate.integer("n_kv_head", self.n_kv_head, low=1)
            if self.n_head % self.n_kv_head:
                raise ValueError(f"n_kv_head must divide n_head = {self.n_head}, got {self.n_kv_head}")
            if self.n_kv_head == self.n_head:
                self.n_kv_head = None  # one representation of multi-head attention: None
        validate.one_of("pos_encoding", self.pos_encoding, POS_ENCODINGS)
        validate.number("rope_base", self.rope_base, low=1, low_open=True)  # theta_i = base^(-2i/d) must decrease
        if not isinstance(self.tie_embeddings, bool):
            raise TypeError(f"tie_embeddings must be a bool, got {type(self.tie_embeddings).__name__}")
        if self.pos_encoding == "rope" and self.head_dim % 2:
            raise ValueError(f"head_dim must be even for RoPE, got {self.head_dim}")
        validate.one_of("init", self.init, INITS)
        validate.one_of("rope_layout", self.rope_layout, rope.LAYOUTS)
        self.rope_scaling = check_scaling(self.rope_scaling, "rope_scaling")  # RopeScaling("none") becomes None
        if self.rope_scaling is not None and self.pos_encoding != "rope":
            raise ValueError(f"rope_scaling needs pos_encoding='rope', got pos_encoding={self.pos_encoding!r}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head


class Step(NamedTuple):
    """What every layer of one forward pass shares."""

    rotate: Callable[[Tensor], Tensor] | None  # RoPE at this pass's positions, (B, h, T, hs) -> same; None: no RoPE
    mask: Tensor | None  # (T, S) bool, or (nh, T, T) float for ALiBi; None: causal if `causal`, else every key
    causal: bool  # a None mask means causal attention over the T tokens (through the block's attention_fn)
    cache: KVCache | None  # the cache the new keys and values join, or None


class Attention(nn.Module):
    """Multi-head causal self-attention with RoPE on q and k (RoFormer, Eq. 34), or an ALiBi bias.

    With n_kv_head < n_head (grouped-query attention, Ainslie et al. 2023; multi-query at 1, Shazeer 2019)
    each group of n_head / n_kv_head consecutive query heads shares one key and one value head.
    """

    def __init__(self, config: GPTConfig, attention_fn: AttentionFn | None = None) -> None:
        super().__init__()
        _check_parts(config, attention_fn)
        self.n_head, self.head_dim = config.n_head, config.head_dim
        self.n_kv_head = config.n_kv_head or config.n_head
        self.qkv = nn.Linear(config.d_model, config.d_model + 2 * self.n_kv_head * self.head_dim, bias=False)
        self.proj = nn.Linear(config.d_model, config.d_model, bias=False)
        self.attention_fn = attention_fn or sdpa_attention

    def forward(self, x: Tensor, step: Step, layer: int = 0) -> Tensor:
        """x (B, T, C) -> (B, T, C); layer: this block's index in the cache."""
        B, T, C = x.shape
        kv = self.n_kv_head * self.head_dim
        q, k, v = self.qkv(x).split([C, kv, kv], dim=2)  # (B, T, C), (B, T, kv), (B, T, kv)
        q = q.view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, nh, T, hs)
        k, v = (t.view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2) for t in (k, v))  # (B, n_kv, T, hs)
        if step.rotate is not None:
            q, k = step.rotate(q), step.rotate(k)
        if step.cache is not None:
            k, v = step.cache.update(layer, k, v)  # (B, n_kv, S, hs): every token the cache holds, these included
        if self.n_kv_head < self.n_head:  # KV head j serves query heads j*g .. j*g + g-1
            k, v = (t.repeat_interleave(self.n_head // self.n_kv_head, dim=1) for t in (k, v))  # (B, nh, S, hs)
        if step.mask is None and step.causal:
            y = self.attention_fn(q, k, v, True)  # (B, nh, T, hs)
        elif self.attention_fn is sdpa_attention:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=step.mask)  # (B, nh, T, hs)
        else:
            raise ValueError("an ALiBi model takes no custom attention_fn (its bias is part of the scores)")
        return self.proj(y.transpose(1, 2).reshape(B, T, C))  # (B, T, C)

    def regroup_kv_heads(self, n_kv_head: int) -> None:
        """Use n_kv_head KV heads. Fewer: mean-pool the K and V projections of each group (Ainslie et al. 2023,
        Sec. 2.1; exact when a group's heads agree). More: repeat each head, which changes no output."""
        if not validate.is_int(n_kv_head) or n_kv_head < 1 or self.n_head % n_kv_head:
            raise ValueError(f"n_kv_head must be a positive int dividing n_head = {self.n_head}, got {n_kv_head!r}")
        C, hs, old = self.n_head * self.head_dim, self.head_dim, self.n_kv_head
        if n_kv_head > old and n_kv_head % old:
            raise ValueError(f"n_kv_head must be a multiple of the current {old} KV heads to grow, got {n_kv_head}")
        w = self.qkv.weight.detach()  # (C + 2 * old * hs, C)
        wq, wk, wv = w.split([C, old * hs, old * hs])

        def regroup(t: Tensor) -> Tensor:  # (old * hs, C) -> (n_kv_head * hs, C)
            if n_kv_head >= old:
                return t.view(old, 1, hs, -1).expand(old, n_kv_head // old, hs, -1).reshape(n_kv_head * hs, -1)
            heads = t.view(n_kv_head, old // n_kv_head, hs, -1)
            same = torch.equal(heads, heads[:, :1].expand_as(heads))  # already shared: keep the bits
            return (heads[:, 0] if same else heads.mean(1)).reshape(n_kv_head * hs, -1)

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

    def forward(self, x: Tensor, step: Step, layer: int = 0) -> Tensor:
        x = x + self.attn(self.ln1(x), step, layer)  # (B, T, C)
        return x + self.mlp(self.ln2(x))  # (B, T, C)


class GPT(GenerationMixin, nn.Module):
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
        rotary = config.pos_encoding == "rope"
        self.rotary = RotaryEmbedding(config.head_dim, config.rope_base, config.rope_layout,
                                      config.rope_scaling) if rotary else None
        self.alibi = ALiBi(config.n_head) if config.pos_encoding == "alibi" else None

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)  # GPT-2 initialisation
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def set_attention(self, attention_fn: AttentionFn | None) -> GPT:
        """Swap the attention function of every block (None restores scaled_dot_product_attention); returns self."""
        _check_parts(self.config, attention_fn)
        for block in self.blocks:
            block.attn.attention_fn = attention_fn or sdpa_attention
        return self

    def set_rope_kernel(self, kernel: str) -> GPT:
        """Rotate q and k with "eager" (lclib.rope's reference, the default) or "compiled" (lclib.kernels'
        torch.compile kernel: faster for long prefills, seconds to compile on first use); returns self."""
        if self.rotary is None:
            raise ValueError(f"kernel is for RoPE; this model has pos_encoding={self.config.pos_encoding!r}")
        self.rotary.set_kernel(kernel)
        return self

    def set_rope_scaling(self, scaling: Any) -> GPT:
        """Read positions under another RoPE scaling from now on (no weight changes); returns self.

        scaling: None (plain RoPE) or an object with frequencies(head_dim, base, seq_len), such as
        ``lclib.scaling.RopeScaling``. The config records it; the RotaryEmbedding drops its cos/sin tables.
        """
        self.config = dataclasses.replace(self.config, rope_scaling=scaling)  # validated by GPTConfig
        if self.rotary is not None:
            self.rotary.set_scaling(self.config.rope_scaling)
        return self

    def forward(self, tokens: Tensor, positions: Tensor | None = None, rope_len: int | None = None,
                cache: KVCache | None = None) -> Tensor:
        """Logits for every position. tokens (B, T) long; positions (T,) optional (default 0..T-1).

        rope_len: the length a length-dependent scaling (dynamic NTK) is computed for; default
        max position + 1 (the whole sequence, as when every token is fed anew). Returns (B, T, vocab_size).
        cache: a lclib.kv.KVCache holding the tokens read before these; tokens then sit at positions
        cache.next_position + 0..T-1, their keys and values join the cache, and positions must be None.
        Everything is checked before the cache is touched, so a refused call leaves it as it was.
        """
        validate.token_ids("tokens", tokens, self.config.vocab_size)
        if positions is not None and not isinstance(positions, Tensor):
            raise TypeError(f"positions must be None or a tensor (seq_len,), got {type(positions).__name__}")
        if rope_len is not None:
            validate.integer("rope_len", rope_len, low=1)
        if cache is not None:
            self._check_cache_use(cache)
            if positions is not None:
                raise ValueError("positions must be None with a cache: the cache knows where the new tokens sit")
        return self._forward(tokens, positions, rope_len, cache)

    def _forward(self, tokens: Tensor, positions: Tensor | None, rope_len: int | None, cache: KVCache | None) -> Tensor:
        """forward() on checked arguments: tokens (B, T) -> logits (B, T, vocab)."""
        step = self._step(tokens, positions, rope_len) if cache is None else self._cached_step(tokens, rope_len, cache)
        x = self.embed(tokens)  # (B, T, C)
        try:
            for i, block in enumerate(self.blocks):
                x = block(x, step, i)  # (B, T, C)
        except BaseException:  # an error or Ctrl-C midway: the cache keeps what it held, and stays usable
            if cache is not None:
                cache.abort()
            raise
        if cache is not None:
            cache.end()
        return self.head(self.ln_f(x))  # (B, T, vocab)

    def _step(self, tokens: Tensor, positions: Tensor | None, rope_len: int | None) -> Step:
        """The whole sequence read at once: RoPE at positions (default 0..T-1, cached), or ALiBi's bias."""
        T = tokens.shape[1]
        rotate = bias = None
        if self.rotary is not None:
            dtype = self.embed.weight.dtype
            if positions is None:  # the usual case, 0..T-1: a cached table
                cos, sin = self.rotary.table(T, tokens.device, dtype, rope_len)  # (T, hs/2) each
            elif positions.shape != (T,):
                raise ValueError(f"positions must have shape (seq_len,) = ({T},), got {tuple(positions.shape)}")
            else:
                cos, sin = self.rotary.cos_sin(positions.to(tokens.device), dtype, rope_len)  # (T, hs/2) each
            rotate = partial(self.rotary, cos=cos, sin=sin)
        if self.alibi is not None:
            if positions is not None:
                raise ValueError("positions are for RoPE; an ALiBi model reads distances only (pass positions=None)")
            bias = self.alibi.bias(T, self.embed.weight.dtype, tokens.device)  # (nh, T, T), causal mask included
        return Step(rotate, bias, True, None)

    def _cached_step(self, tokens: Tensor, rope_len: int | None, cache: KVCache) -> Step:
        """T new tokens after the cache's: positions next_position + 0..T-1, and the mask from the positions."""
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
        cache.begin(T, None if self.rotary is None else self.rotary.rotation(seq_len))  # refuses other rotations
        q_pos = torch.arange(cache.next_position, cache.next_position + T, device=tokens.device)  # (T,)
        rotate = None
        if self.rotary is not None:  # RoPE at the true offset, cos and sin (T, hs/2)
            cos, sin = self.rotary.cos_sin(q_pos, self.embed.weight.dtype, seq_len)
            rotate = partial(self.rotary, cos=cos, sin=sin)
        causal = cache.policy is None and len(cache) == 0  # a prefill from empty: plain causal attention
        if causal or (cache.policy is None and T == 1):  # one new token without a policy reads every key
            return Step(rotate, None, causal, cache)
        k_pos = torch.cat([cache.positions.to(tokens.device), q_pos])  # (S + T,)
        return Step(rotate, attention_mask(q_pos, k_pos, cache.policy), False, cache)  # mask (T, S + T)

    def _check_cache_use(self, cache: object) -> None:
        """The cached path's preconditions that do not depend on the tokens: a KVCache, and a model it can serve."""
        if not isinstance(cache, KVCache):
            raise TypeError(f"cache must be a lclib.kv.KVCache, got {type(cache).__name__}")
        if cache.n_layer != self.config.n_layer:
            raise ValueError(f"cache must have n_layer = {self.config.n_layer}, got {cache.n_layer}")
        if self.config.pos_encoding == "alibi":
            raise ValueError("the KV cache path supports pos_encoding 'rope' and 'none', got 'alibi' "
                             "(GPT.generate: pass use_cache=False)")
        if any(block.attn.attention_fn is not sdpa_attention for block in self.blocks):
            raise ValueError("the KV cache path reads its own attention (scaled_dot_product_attention): "
                             "call set_attention(None) first (GPT.generate: or pass use_cache=False)")

    @property
    def n_kv_head(self) -> int:
        """Key-value heads per layer: n_head (multi-head), fewer for grouped-query attention."""
        return self.blocks[0].attn.n_kv_head

    def group_kv_heads(self, n_kv_head: int) -> GPT:
        """Regroup a built model to n_kv_head KV heads per layer (1: multi-query); returns self.

        A model trained grouped is built grouped (GPTConfig.n_kv_head); this converts one already built.
        Fewer heads mean-pool the key and value projections within each group (Ainslie et al. 2023, Sec. 2.1);
        n_kv_head = n_head again repeats each shared head, an exact way to store a grouped model as a
        multi-head one (the shipped weights/kv_cache models), which group_kv_heads turns back bit for bit.
        """
        for block in self.blocks:  # every block holds the same heads: the first refuses a bad n_kv_head untouched
            block.attn.regroup_kv_heads(n_kv_head)
        self.config = dataclasses.replace(self.config, n_kv_head=n_kv_head)
        return self

    def num_params(self) -> int:
        """Trainable parameters, the tied embedding counted once."""
        return sum(p.numel() for p in self.parameters())
