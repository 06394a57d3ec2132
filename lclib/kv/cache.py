"""The key-value cache: what a decoder keeps per token so that each new token costs one step, not a re-read.

A causal layer's keys and values for tokens 0..t never change once computed (token t cannot see
later tokens), so decoding token t+1 needs only its own query, key and value, plus the cached keys
and values of 0..t. Prefill computes and stores them for the whole prompt in one pass; each decode
step then appends one key and one value per layer and KV head and reads the whole cache once.

The protocol a model uses, one step per forward pass: ``begin(seq_len, rope)``, then per layer
``update(layer, k, v) -> (k_all, v_all)``, then ``end()`` (or ``abort()`` if the pass failed). The new
tokens sit at ``next_position + 0..seq_len-1``; ``positions`` holds those of the tokens kept and
``policy`` (a `lclib.kv.Window`, or None) which keys a query may read. The model builds its attention
mask from these; the cache only stores, and evicts what its policy says no later query reads.

Keys are cached after RoPE, at their absolute positions (as Hugging Face's caches do), so dropping a
token never changes the keys that stay. The cache remembers the RoPE (scaling, frequencies, attention
factor) its keys were rotated with and refuses keys rotated another way: two scalings mixed in one cache,
or dynamic NTK's frequencies moving with the length, would otherwise give other tokens than the full
forward without a word. Storage kinds are subclasses: `Int8KVCache` keeps 8-bit keys and values.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .. import validate
from .compression import Window, dequantize_int8, quantize_int8

MAX_LAYERS = 4096  # KVCache(n_layer) holds a list per layer; published models have at most a few hundred

# how cached keys were rotated: (rope_scaling, inv_freq float64 (head_dim // 2,), attention_factor)
Rope = tuple[object, Tensor, float]


class KVCache:
    """Keys and values of every layer for the tokens read so far, optionally evicted by a Window policy.

    Per layer, keys and values have shape (B, n_kv_head, S, head_dim), S the tokens kept; `positions` (S,)
    holds their absolute positions. Growing by concatenation, as Hugging Face's DynamicCache does: simple,
    and each step copies the cache (a serving engine preallocates pages instead).
    """

    def __init__(self, n_layer: int, policy: Window | None = None) -> None:
        self.n_layer = validate.integer("n_layer", n_layer, low=1, high=MAX_LAYERS)
        if policy is not None and not isinstance(policy, Window):
            raise TypeError(f"policy must be None or a Window, got {type(policy).__name__}")
        self.policy = policy
        self.clear()

    def clear(self) -> None:
        """Drop every token held: the cache is as new (same n_layer and policy)."""
        self.keys: list[Tensor | None] = [None] * self.n_layer  # (B, n_kv_head, S, hs)
        self.values: list[Tensor | None] = [None] * self.n_layer
        self.positions = torch.zeros(0, dtype=torch.long)  # (S,) absolute positions of the kept tokens
        self.next_position = 0  # position of the next token to be read
        self.rope: Rope | None = None  # how the held keys were rotated; None: not yet known (or no RoPE)
        self._seq_len: int | None = None  # tokens of the step under way; None between steps
        self._rope: Rope | None = None
        self._updated: set[int] = set()  # layers that took this step's keys

    def __len__(self) -> int:
        """Tokens held."""
        return len(self.positions)

    @property
    def layout(self) -> tuple[int, int, int] | None:
        """(batch, n_kv_head, head_dim) of the held keys; None while empty."""
        k = self.keys[0]
        return None if k is None else (k.shape[0], k.shape[1], k.shape[3])

    def rope_conflict(self, rope: Rope | None) -> str | None:
        """Why keys rotated with `rope` (rope_scaling, inv_freq, attention_factor) may not join those held; None if they may.

        A query reads every cached key with the rotation it was stored with, so keys of two rotations in one
        cache give other scores than the full forward: another scaling set between steps, or a scaling
        whose frequencies depend on the length (dynamic NTK, past original_max_len), does that.
        """
        if rope is None or self.rope is None or not len(self):
            return None
        (old, old_freq, old_factor), (new, new_freq, new_factor) = self.rope, rope
        if old is not new and old != new:
            return (f"rope_scaling changed between cached steps: the cached keys were rotated under {old!r}, "
                    f"the model now uses {new!r}; start a new KVCache")
        if not torch.equal(old_freq, new_freq) or old_factor != new_factor:
            return (f"rope_scaling {new!r} gives other frequencies at this length than those the cached keys were "
                    "rotated with (a length-dependent scaling such as dynamic_ntk, past original_max_len): pass a "
                    "fixed rope_len, or decode with GPT.generate, which re-reads the sequence at such a step")
        return None

    def begin(self, seq_len: int, rope: Rope | None = None) -> None:
        """Start a step that reads seq_len new tokens, at next_position + 0..seq_len-1.

        rope: (rope_scaling, inv_freq, attention_factor) this step's keys are rotated with; refused
        (ValueError, see rope_conflict) when the held keys were rotated otherwise. None: no RoPE.
        """
        validate.integer("seq_len", seq_len, low=1)
        if rope is not None and (not isinstance(rope, tuple) or len(rope) != 3 or not isinstance(rope[1], Tensor)):
            raise TypeError(f"rope must be None or a tuple (rope_scaling, inv_freq tensor, attention_factor), "
                            f"got {type(rope).__name__}")
        if self._seq_len is not None:
            raise RuntimeError("begin() called twice without end(): a forward pass with this cache failed midway; "
                               "start a new KVCache (or call clear())")
        conflict = self.rope_conflict(rope)
        if conflict is not None:
            raise ValueError(conflict)
        self._seq_len, self._rope = seq_len, rope

    def update(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append this step's k, v (B, n_kv_head, seq_len, hs) to layer's cache; return all it holds now,
        (B, n_kv_head, S + seq_len, hs), as attention reads it (dequantized for an Int8KVCache)."""
        if self._seq_len is None:
            raise RuntimeError("update() needs begin() first")
        self._check_update(layer, k, v)
        self._updated.add(layer)
        return self._append(layer, k, v)

    def _check_update(self, layer: int, k: Tensor, v: Tensor) -> None:
        """update()'s arguments: a layer not yet updated this step, and k, v shaped like the held keys."""
        validate.integer("layer", layer, low=0, high=self.n_layer - 1)
        if layer in self._updated:
            raise ValueError(f"layer {layer} already took its keys in this step (update() once per layer and step)")
        n = self._seq_len
        for name, t in (("k", k), ("v", v)):
            if not isinstance(t, Tensor) or t.dim() != 4 or t.shape[2] != n:
                raise ValueError(f"{name} must be a tensor (B, n_kv_head, {n}, head_dim) for this step's {n} tokens, "
                                 f"got {tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__}")
            if not t.is_floating_point():
                raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}")
        if v.shape != k.shape:
            raise ValueError(f"v must have k's shape {tuple(k.shape)}, got {tuple(v.shape)}")
        held = self.keys[layer]
        if held is not None and (k.shape[:2] != held.shape[:2] or k.shape[3] != held.shape[3]):
            raise ValueError(f"k must have the (batch, n_kv_head, head_dim) of the held keys {self.layout}, "
                             f"got {(k.shape[0], k.shape[1], k.shape[3])}")
        if held is not None and k.device != held.device:
            raise ValueError(f"k must be on the held keys' device {held.device}, got {k.device}")
        if held is not None and k.dtype != self._dtype(layer):  # torch.cat would promote without a word
            raise TypeError(f"k must have the held keys' dtype {self._dtype(layer)}, got {k.dtype}")

    def abort(self) -> None:
        """Undo the current step (a forward pass failed or was interrupted midway): hold what was held at begin()."""
        if self._seq_len is None:
            return
        held = len(self)
        for layer in self._updated:
            self._keep(layer, slice(0, held) if held else None)
        self._seq_len, self._rope, self._updated = None, None, set()

    def end(self) -> None:
        """Finish the step: record the new positions, and drop the tokens no later query may read."""
        if self._seq_len is None:
            raise RuntimeError("end() needs begin() first")
        if len(self._updated) != self.n_layer:
            missing = sorted(set(range(self.n_layer)) - self._updated)
            raise RuntimeError(f"end() before every layer took its keys (missing layers {missing})")
        device = self.keys[0].device
        new = torch.arange(self.next_position, self.next_position + self._seq_len, device=device)  # (seq_len,)
        if self._rope is not None:
            self.rope = self._rope
        self._seq_len, self._rope, self._updated = None, None, set()
        self.next_position = int(new[-1]) + 1
        self.positions = torch.cat([self.positions.to(device), new])  # (S + seq_len,)
        if self.policy is None:
            return
        keep = self.policy.visible(new.new_tensor([self.next_position]), self.positions)[0]  # what the next query reads
        if bool(keep.all()):
            return
        self.positions = self.positions[keep]
        for layer in range(self.n_layer):
            if self.keys[layer] is not None:
                self._keep(layer, keep)

    def nbytes(self) -> int:
        """Bytes held by the cached tensors, measured from the tensors themselves."""
        return sum(t.numel() * t.element_size() for t in self._tensors())

    # --- storage: what a cache kind changes ------------------------------------------------------

    def _append(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store k, v after what layer holds; return everything it holds, as attention reads it."""
        if self.keys[layer] is not None:
            k, v = torch.cat([self.keys[layer], k], 2), torch.cat([self.values[layer], v], 2)
        self.keys[layer], self.values[layer] = k, v
        return k, v

    def _keep(self, layer: int, index: slice | Tensor | None) -> None:
        """Keep the tokens `index` selects along the token axis (None: none of them)."""
        if index is None:
            self.keys[layer] = self.values[layer] = None
            return
        self.keys[layer], self.values[layer] = self.keys[layer][:, :, index], self.values[layer][:, :, index]

    def _dtype(self, layer: int) -> torch.dtype:
        """The dtype of the keys layer was given (what a new step's keys must have)."""
        return self.keys[layer].dtype

    def _tensors(self) -> list[Tensor]:
        return [t for t in self.keys + self.values if t is not None]


class Int8KVCache(KVCache):
    """A KVCache that stores keys and values in int8, one scale per vector (lclib.kv.quantize_int8).

    keys and values hold the int8 codes (B, n_kv_head, S, hs); scales[layer] the (key, value) scales
    (B, n_kv_head, S, 1) in the dtype the model computes in. Attention reads them dequantized.
    """

    def clear(self) -> None:
        super().clear()
        self.scales: list[tuple[Tensor, Tensor] | None] = [None] * self.n_layer

    def _append(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        (qk, sk), (qv, sv) = quantize_int8(k), quantize_int8(v)
        if self.keys[layer] is not None:
            qk, qv = torch.cat([self.keys[layer], qk], 2), torch.cat([self.values[layer], qv], 2)
            sk, sv = torch.cat([self.scales[layer][0], sk], 2), torch.cat([self.scales[layer][1], sv], 2)
        self.keys[layer], self.values[layer], self.scales[layer] = qk, qv, (sk, sv)
        return dequantize_int8(qk, sk), dequantize_int8(qv, sv)

    def _keep(self, layer: int, index: slice | Tensor | None) -> None:
        super()._keep(layer, index)
        scales = self.scales[layer]
        self.scales[layer] = None if index is None else (scales[0][:, :, index], scales[1][:, :, index])

    def _dtype(self, layer: int) -> torch.dtype:
        return self.scales[layer][0].dtype

    def _tensors(self) -> list[Tensor]:
        return super()._tensors() + [s for pair in self.scales if pair is not None for s in pair]
