"""Parsed JSON values as one-line messages show them: the value as written, and its JSON type's name."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def short_json(value: Any, limit: int = 80) -> str:
    """``value`` as JSON writes it (``null``, ``NaN``, ``"5"``, keys sorted), cut to ``limit`` characters."""
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def json_type(value: object) -> str:
    """What JSON calls a parsed value's type: object, array, string, number, true/false or null."""
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return "number"
