"""Turn a text with a marked word into token ids and the token span of that word.

:class:`TokenizerEncoder` wraps a transformers tokenizer (offset mapping when
it is fast); :class:`HashWordEncoder` stands in for toy models that have no
tokenizer at all.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Protocol

from circuitsweep.config.stimuli import WordInText


@dataclass(frozen=True)
class Encoded:
    """Token ids of a text; ``ids[span[0]:span[1]]`` are the tokens of the marked word."""

    ids: tuple[int, ...]
    span: tuple[int, int]


class WordEncoder(Protocol):
    """What :func:`circuitsweep.primitives.extract.mean_word_states` needs from an encoder."""

    @property
    def pad_id(self) -> int: ...

    def encode(self, item: WordInText) -> Encoded: ...


def _overlapping(offsets: list[tuple[int, int]], start: int, end: int) -> tuple[int, int]:
    """First and one-past-last token whose character range overlaps ``[start, end)``."""
    hits = [i for i, (s, e) in enumerate(offsets) if e > s and s < end and e > start]
    if not hits:
        raise ValueError("no token covers the marked word")
    return hits[0], hits[-1] + 1


class TokenizerEncoder:
    """Encode with a transformers tokenizer, special tokens included as the model expects.

    A fast tokenizer gives character offsets, and the word's span is every token
    overlapping it (a byte-level BPE token ``" grief"`` that carries the leading
    space counts). A slow tokenizer is handled by encoding the text before the
    word, the word and the text after it separately and concatenating the ids,
    which can differ slightly from encoding the whole text.
    """

    def __init__(self, tokenizer: Any, *, add_special_tokens: bool = True) -> None:
        self.tokenizer = tokenizer
        self.add_special_tokens = add_special_tokens
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = tokenizer.eos_token_id
        self._pad_id = int(pad) if pad is not None else 0

    @property
    def pad_id(self) -> int:
        return self._pad_id

    def encode(self, item: WordInText) -> Encoded:
        tok = self.tokenizer
        if getattr(tok, "is_fast", False):
            enc = tok(item.text, return_offsets_mapping=True, add_special_tokens=self.add_special_tokens)
            offsets = [tuple(pair) for pair in enc["offset_mapping"]]
            try:
                span = _overlapping(offsets, item.start, item.end)
            except ValueError as error:
                raise ValueError(f"{error}: {item.text!r} [{item.start}:{item.end}]") from None
            return Encoded(tuple(enc["input_ids"]), span)
        pieces = [item.text[: item.start], item.text[item.start : item.end], item.text[item.end :]]
        parts = [tok.encode(p, add_special_tokens=False) if p else [] for p in pieces]
        ids = [*parts[0], *parts[1], *parts[2]]
        first = len(parts[0])
        if self.add_special_tokens and hasattr(tok, "build_inputs_with_special_tokens"):
            wrapped = list(tok.build_inputs_with_special_tokens(list(ids)))
            shift = next(i for i in range(len(wrapped) - len(ids) + 1) if wrapped[i : i + len(ids)] == ids)
            ids, first = wrapped, first + shift
        return Encoded(tuple(ids), (first, first + len(parts[1])))


_TOKEN = re.compile(r"\w+|[^\w\s]")


class HashWordEncoder:
    """A deterministic stand-in tokenizer for toy models, which have no tokenizer.

    Each word or punctuation mark of a text becomes 1..``max_ids_per_word`` ids
    in ``[low, high)``, all taken from the sha256 of its lowercased form, so the
    same word always gets the same ids. ``first_token_id``, when given, is put
    at position 0 (the toy models' first-token policy).

    The ids carry no meaning the toy model learned: on a toy model the whole
    pipeline runs and is reproducible, but its gap means nothing semantic.
    """

    def __init__(self, low: int, high: int, *, max_ids_per_word: int = 2, first_token_id: int | None = None) -> None:
        if not 0 <= low < high:
            raise ValueError(f"need 0 <= low < high, got [{low}, {high})")
        if not 1 <= max_ids_per_word <= 7:
            raise ValueError(f"max_ids_per_word must be in 1..7, got {max_ids_per_word}")
        self.low, self.high = low, high
        self.max_ids_per_word = max_ids_per_word
        self.first_token_id = first_token_id

    @property
    def pad_id(self) -> int:
        return self.low

    def word_ids(self, word: str) -> tuple[int, ...]:
        """The ids of one word (case-insensitive)."""
        digest = hashlib.sha256(word.lower().encode("utf-8")).digest()
        count = 1 + digest[0] % self.max_ids_per_word
        width = self.high - self.low
        return tuple(self.low + int.from_bytes(digest[1 + 4 * i : 5 + 4 * i], "big") % width for i in range(count))

    def encode(self, item: WordInText) -> Encoded:
        ids: list[int] = [] if self.first_token_id is None else [self.first_token_id]
        first = last = None
        for match in _TOKEN.finditer(item.text):
            piece = self.word_ids(match.group())
            if match.start() < item.end and match.end() > item.start:
                first = len(ids) if first is None else first
                last = len(ids) + len(piece)
            ids.extend(piece)
        if first is None or last is None:
            raise ValueError(f"no token covers the marked word: {item.text!r} [{item.start}:{item.end}]")
        return Encoded(tuple(ids), (first, last))
