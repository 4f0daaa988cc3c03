"""``--config KEY=VALUE`` items read and merged as Snakemake reads and merges them.

``check-config`` takes the same items as ``snakemake --config`` (and a profile's ``config:``) and must
plan the same config, so this follows ``snakemake.cli.parse_config`` and ``snakemake.utils.update_config``
(Snakemake 9) without importing Snakemake: a value is the first of ``int``, ``float``, ``True``/``False``,
YAML read with ``yaml.BaseLoader`` (so everything inside ``{...}`` or ``[...]`` stays text) and text that
reads it; an empty value is None; a mapping merges into the config key by key, at any depth.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import yaml

from circuitsweep.errors import ConfigError

#: A key Snakemake's ``--config`` accepts (matched from the start, as ``re.match``).
KEY = re.compile(r"[a-zA-Z_][\w-]*\w$")


def _boolean(text: str) -> bool:
    if text in ("True", "False"):
        return text == "True"
    raise ValueError(text)


def _base_yaml(text: str) -> Any:
    return yaml.load(text, Loader=yaml.BaseLoader)  # noqa: S506 - BaseLoader builds only str, list and dict


_PARSERS: tuple[Callable[[str], Any], ...] = (int, float, _boolean, _base_yaml, str)


def parse_value(text: str) -> Any:
    """One ``--config`` value as Snakemake reads it: quotes around it stripped, empty -> None, else the first
    of int, float, ``True``/``False``, BaseLoader YAML (nested values as text) and the text itself."""
    text = text.strip("'\"")
    if text == "":
        return None
    for parser in _PARSERS:
        try:
            return parser(text)
        except Exception:  # noqa: BLE001, S112 - as Snakemake: any failure passes to the next reader
            continue
    return text


def parse_item(item: str) -> tuple[str, Any]:
    """``(key, value)`` of one ``KEY=VALUE`` item; a key Snakemake refuses, or a blank value, is a ConfigError."""
    key, sep, text = item.partition("=")
    if not sep:
        raise ConfigError(f"--config: {item!r} is not KEY=VALUE")
    if not KEY.match(key):
        raise ConfigError(
            f"--config: {key!r} is not a key Snakemake's --config takes (two or more letters, digits, _ or -,"
            " starting with a letter or _ and not ending in -; set nested keys as KEY={...})"
        )
    value = parse_value(text)
    if value is None and text.strip("'\""):
        raise ConfigError(f"--config: {key}: {text!r} holds no value; give one, or nothing ({key}=) for null")
    return key, value


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` items as one config, each merged over the ones before (:func:`merge_config`)."""
    out: dict[str, Any] = {}
    for item in items:
        key, value = parse_item(item)
        out = merge_config(out, {key: value})
    return out


def merge_config(config: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` with ``overrides`` merged in as Snakemake's ``update_config`` merges them: a mapping
    into the mapping at its key, key by key at any depth (its other keys stay); any other value replaces."""

    def merge(into: Any, over: Mapping[str, Any]) -> Any:
        for key, value in over.items():
            if not isinstance(into, dict):
                into = {}
            into[key] = merge(into.get(key, {}), value) if isinstance(value, Mapping) else value
        return into

    return merge(copy.deepcopy(dict(config)), copy.deepcopy(overrides))
