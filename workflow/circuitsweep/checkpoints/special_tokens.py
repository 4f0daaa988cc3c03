"""Which token a ``first_token: {policy: bos}`` puts at position 0, read from a checkpoint's files.

docs/methods.md: the tokenizer's BOS, else its CLS, else its EOS. The ids come from the
tokenizer files alone (no tokenizer code is run), and from the model config
only where those files name none of the three (snapshots without tokenizer
files: the toys, many run folders). Planning checks the id against the
vocabulary with the same rule the job resolves it by. Nothing here imports torch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: The tokenizer's special tokens the policy tries, in order, and the config keys it falls back to.
TOKENIZER_ORDER: tuple[str, ...] = ("bos_token", "cls_token", "eos_token")
CONFIG_ORDER: tuple[str, ...] = ("bos_token_id", "cls_token_id", "eos_token_id")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def special_token_id(snapshot: Path, name: str) -> int | None:
    """The id of the tokenizer's special token ``name`` (e.g. ``cls_token``), read from a snapshot's files.

    The token's text comes from ``tokenizer_config.json`` or ``special_tokens_map.json``;
    its id from ``tokenizer_config.json``'s ``added_tokens_decoder``, ``tokenizer.json``
    (added tokens, then the model vocabulary) or ``vocab.txt`` (line number). None if
    the files do not say.
    """
    snapshot = Path(snapshot)
    tokenizer_config = _read_json(snapshot / "tokenizer_config.json")
    text = tokenizer_config.get(name) or _read_json(snapshot / "special_tokens_map.json").get(name)
    if isinstance(text, dict):
        text = text.get("content")
    if not isinstance(text, str) or not text:
        return None
    for token_id, token in (tokenizer_config.get("added_tokens_decoder") or {}).items():
        if isinstance(token, dict) and token.get("content") == text:
            return int(token_id)
    tokenizer = _read_json(snapshot / "tokenizer.json")
    for token in tokenizer.get("added_tokens") or []:
        if isinstance(token, dict) and token.get("content") == text and "id" in token:
            return int(token["id"])
    vocab = (tokenizer.get("model") or {}).get("vocab")
    if isinstance(vocab, dict) and text in vocab:
        return int(vocab[text])
    vocab_file = snapshot / "vocab.txt"
    if vocab_file.is_file():
        for index, line in enumerate(vocab_file.read_text(encoding="utf-8").splitlines()):
            if line == text:
                return index
    return None


def config_token_id(model_config: Any, key: str) -> int | None:
    """``key`` (e.g. ``bos_token_id``) of a model config, an object or a ``config.json`` mapping; the first of
    a list; None where it is absent or not an integer."""
    value = model_config.get(key) if isinstance(model_config, Mapping) else getattr(model_config, key, None)
    if isinstance(value, list):
        value = value[0] if value else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def bos_policy_token_id(model_config: Any, snapshot: Path | None) -> int | None:
    """The id policy ``bos`` resolves to: the tokenizer's BOS, CLS or EOS (``snapshot``'s files), else the
    config's ``bos_token_id``, ``cls_token_id`` or ``eos_token_id``; None when none of them is given."""
    if snapshot is not None:
        for name in TOKENIZER_ORDER:
            value = special_token_id(snapshot, name)
            if value is not None:
                return value
    for key in CONFIG_ORDER:
        value = config_token_id(model_config, key)
        if value is not None:
            return value
    return None
