"""A small word-level tokenizer with a character fallback, so that task lengths can be counted offline.

RULER (Hsieh et al. 2024) measures every length in tokens of the model's own tokenizer: "4K" for
Llama is not "4K" for GPT-4. Our small models need a tokenizer too, and nothing may be downloaded,
so this one is built from word lists: each word of the vocabulary is one token; any other run of
letters and digits is spelled one character at a time, WordPiece style ("12345" -> "1", "##2",
"##3", "##4", "##5"), so numbers, UUID-like codes and variable names are copied digit by digit,
as a subword tokenizer would. Punctuation marks and the newline are single tokens.

Decoding puts one space before each word-initial token except after a newline or a hyphen and
before the closing punctuation ``. , : ; ? ! )`` and the hyphen, so text written in that canonical
spacing survives ``decode(encode(text))`` exactly. Three rules cover the rest of RULER's texts:
a parenthesis around one word glues to the word before it ("chain(s)"); single quotes alternate
between opening (space before, none after) and closing (none before) ("ignore the dots '....'.");
a run of dots after a word is that word's full stop (when the run has 1, 4, 7... dots) followed by
stand-alone ellipses " ..." (RULER's frequent-words noise word), and inside quotes it stays whole.
Whitespace carries no token: runs of spaces and trailing spaces (RULER's variable-tracking prefix
ends "they are: ") come back as the canonical single space or nothing.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Sequence
from functools import lru_cache

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)
PUNCTUATION = tuple(".,:;?!()-='\"")
_ATTACH_BEFORE = set(".,:;?!)-")  # no space before these
_ATTACH_AFTER = {"\n", "-", "("}  # no space after these
_PIECE = re.compile(r"[A-Za-z0-9]+|\n|[^\sA-Za-z0-9]")
_ALNUM = string.ascii_letters + string.digits


class WordTokenizer:
    """Word-level tokenizer: ``encode(text) -> list[int]``, ``decode(ids) -> str``.

    The vocabulary is: the specials ``<pad> <bos> <eos> <unk>`` (ids 0-3), then punctuation and the
    newline, the 62 letters and digits in word-initial form and in continuation form ("##a"), then
    the given words (sorted, duplicates and single characters dropped). Same words, same ids.
    """

    def __init__(self, words: Iterable[str]):
        if isinstance(words, str) or not isinstance(words, Iterable):  # a str would give its letters
            raise TypeError(f"words must be an iterable of words (not a str), got {type(words).__name__}")
        words = set(words)
        not_str = [w for w in words if not isinstance(w, str)]
        if not_str:
            raise TypeError(f"words must be strings, got {type(not_str[0]).__name__} {not_str[0]!r}")
        bad = sorted(w for w in words if not w or not all(c in _ALNUM for c in w))
        if bad:
            raise ValueError(f"words must be non-empty runs of ASCII letters and digits, got {bad[:5]}")
        chars = list(_ALNUM)
        tokens = list(SPECIALS) + list(PUNCTUATION) + ["\n"] + chars + ["##" + c for c in chars]
        tokens += sorted(w for w in words if len(w) > 1)
        self.id_to_token: list[str] = tokens
        self.token_to_id: dict[str, int] = {t: i for i, t in enumerate(tokens)}
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = (self.token_to_id[s] for s in SPECIALS)
        self._encode_cached = lru_cache(maxsize=65536)(self._encode_uncached)

    def __len__(self) -> int:
        return len(self.id_to_token)

    @property
    def vocab_size(self) -> int:
        return len(self.id_to_token)

    def _encode_uncached(self, text: str) -> tuple[int, ...]:
        ids: list[int] = []
        for piece in _PIECE.findall(text):
            known = self.token_to_id.get(piece)
            if known is not None:
                ids.append(known)
            elif piece[0] in _ALNUM:  # spell an unknown word: first char, then "##" continuations
                ids.append(self.token_to_id[piece[0]])
                ids.extend(self.token_to_id["##" + c] for c in piece[1:])
            else:
                ids.append(self.unk_id)
        return tuple(ids)

    def encode(self, text: str) -> list[int]:
        """Token ids of text (no BOS/EOS added). Whitespace other than the newline only separates words."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        return list(self._encode_cached(text))

    def count(self, text: str) -> int:
        """Number of tokens of text (cached: the generators count the same sentences many times)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        return len(self._encode_cached(text))

    def tokens(self, text: str) -> list[str]:
        """The token strings of text, for printing."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        return [self.id_to_token[i] for i in self._encode_cached(text)]

    def decode(self, ids: Sequence[int], skip_special: bool = True) -> str:
        """Text of ids in canonical spacing (see the module docstring); specials dropped unless skip_special is False."""
        if isinstance(ids, str) or not isinstance(ids, Iterable):
            raise TypeError(f"ids must be a sequence of token ids, got {type(ids).__name__}")
        toks: list[str] = []
        for i in ids:
            if isinstance(i, float):  # int() would silently round it down
                raise TypeError(f"ids must be integer token ids, got {i!r}")
            i = int(i)
            if not 0 <= i < len(self.id_to_token):
                raise ValueError(f"ids: token id {i} is outside the vocabulary of size {len(self)}")
            if not (skip_special and self.id_to_token[i] in SPECIALS):
                toks.append(self.id_to_token[i])
        out: list[str] = []
        previous, quote_open, k = "\n", False, 0
        while k < len(toks):
            tok = toks[k]
            glued = not out or previous in _ATTACH_AFTER
            if tok == "." and previous != ".":  # a run of dots: full stop and/or ellipses
                n = next((j for j in range(k, len(toks)) if toks[j] != "."), len(toks)) - k
                if glued or previous == "'" or n % 3 == 2 or n < 3:
                    out.append("." * n)
                else:
                    out.append("." * (n % 3) + " ..." * (n // 3))
                previous, k = ".", k + n
                continue
            if tok.startswith("##") and len(tok) > 2:
                out.append(tok[2:])
            elif tok == "'":
                out.append("'" if glued or quote_open else " '")
                quote_open = not quote_open
                previous, k = ("(" if quote_open else "'"), k + 1  # an opening quote glues what follows
                continue
            elif tok == "(" and previous[-1:].isalnum() and toks[k + 2:k + 3] == [")"] and toks[k + 1][:1].isalnum():
                out.append(tok)  # "chain(s)": a one-word parenthesis glued to the word before it
            elif tok == "\n" or tok in _ATTACH_BEFORE or glued:
                out.append(tok)
            else:
                out.append(" " + tok)
            previous, k = tok, k + 1
        return "".join(out)


def words_of(texts: Iterable[str]) -> set[str]:
    """Every alphanumeric word in texts: what a vocabulary must contain to encode them word by word."""
    if isinstance(texts, str):  # its letters would be taken for texts
        raise TypeError("texts must be an iterable of strings, not a str (wrap one text in a list)")
    found: set[str] = set()
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"texts must hold strings, got {type(text).__name__}")
        found.update(p for p in _PIECE.findall(text) if p[0] in _ALNUM and not p.isdigit())
    return found
