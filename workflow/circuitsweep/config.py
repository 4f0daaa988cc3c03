"""Load, validate and resolve the workflow configuration.

The JSON schema (``workflow/schemas/config.schema.yaml``) checks keys, types
and ranges and carries the study's default values; :func:`resolve_config`
then applies the defaults, merges per-model overrides and checks what a
schema cannot (probe geometry, first-token ids, toy settings). Every problem
is reported with the path of the offending key before any job runs.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from circuitsweep.errors import ConfigError
from circuitsweep.heads.classify import Thresholds
from circuitsweep.heads.probe_settings import ProbeSettings
from circuitsweep.schema_errors import describe

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"


@cache
def schema() -> dict[str, Any]:
    """The configuration schema (JSON Schema draft 2020-12, written in YAML)."""
    return yaml.safe_load(SCHEMA_FILE.read_text())


def _defaults(node: dict[str, Any], root: dict[str, Any]) -> Any:
    """The default value a schema node implies: its ``default`` or its properties' defaults."""
    if "$ref" in node:
        target = root
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _defaults(merged, root)
    if "default" in node and node.get("type") != "object":
        return copy.deepcopy(node["default"])
    if "allOf" in node:
        return _defaults(node["allOf"][0], root)
    if "properties" in node:
        out = {}
        for key, child in node["properties"].items():
            value = _defaults(child, root)
            if value is not None:
                out[key] = value
        return out
    return copy.deepcopy(node.get("default"))


def study_defaults(section: str) -> dict[str, Any]:
    """Defaults of a schema section (``probes`` or ``thresholds``): the study's values."""
    root = schema()
    return _defaults(root["$defs"][section], root)


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def validate_schema(config: dict[str, Any]) -> None:
    """Check ``config`` against the schema; raise :class:`ConfigError` listing every problem."""
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        lines = "\n".join(f"  - {describe(e)}" for e in errors)
        raise ConfigError(f"invalid configuration ({len(errors)} problem{'s' if len(errors) > 1 else ''}):\n{lines}")


@dataclass(frozen=True)
class FirstToken:
    """What sits at position 0 of every probe (DESIGN.md 1: recorded in every output)."""

    policy: str
    token_id: int | None

    def describe(self) -> str:
        return self.policy if self.token_id is None else f"{self.policy}:{self.token_id}"


@dataclass(frozen=True)
class ModelSettings:
    """One model of the sweep, with global settings and its overrides resolved."""

    name: str
    architecture: str
    source: dict[str, Any]
    revisions: Any
    tokens: dict[str, Any]
    dtype: str
    first_token: dict[str, Any]
    probes: ProbeSettings
    thresholds: Thresholds
    duplicates: str
    primitives: dict[str, Any]
    toy: dict[str, Any] | None


def _check_probes(name: str, probes: ProbeSettings, first_token: dict[str, Any]) -> list[str]:
    where = f"models.{name}"
    low, high = probes.token_range
    problems = []
    if high - low < 3:
        problems.append(f"{where}.probes.token_range: {[low, high]} must hold at least 3 token ids (low < high)")
    ind = probes.induction
    if ind.seq_len // 2 <= ind.min_first_position:
        problems.append(
            f"{where}.probes.induction: seq_len {ind.seq_len} / 2 must exceed "
            f"min_first_position {ind.min_first_position}"
        )
    eligible = ind.seq_len - 7
    spare = 2 if probes.protocol == "clean" else 0  # clean draws two spare candidates for p and p + 1
    if ind.n_baseline + spare > eligible:
        problems.append(
            f"{where}.probes.induction.n_baseline: {ind.n_baseline}{f' + {spare}' if spare else ''} exceeds the "
            f"{eligible} eligible baseline positions at seq_len {ind.seq_len}"
        )
    policy, token_id = first_token["policy"], first_token.get("token_id")
    if policy == "fixed" and token_id is None:
        problems.append(f"{where}.first_token: policy fixed needs token_id")
    if policy != "fixed" and token_id is not None:
        problems.append(f"{where}.first_token: token_id is only used with policy fixed, not {policy}")
    if token_id is not None and low <= token_id < high:
        problems.append(
            f"{where}.first_token.token_id: {token_id} lies inside the probe token range [{low}, {high}); "
            "position 0 must be distinguishable from probe tokens"
        )
    return problems


def resolve_model(name: str, entry: dict[str, Any], config: dict[str, Any]) -> ModelSettings:
    """Merge study defaults, global settings and ``entry``'s overrides for one model."""
    probes = _deep_merge(_deep_merge(study_defaults("probes"), config.get("probes", {})), entry.get("probes", {}))
    thresholds = _deep_merge(
        _deep_merge(study_defaults("thresholds"), config.get("thresholds", {})), entry.get("thresholds", {})
    )
    return ModelSettings(
        name=name,
        architecture=entry["architecture"],
        source=dict(entry["source"]),
        revisions=entry["revisions"],
        tokens=dict(entry.get("tokens", {})),
        dtype=entry.get("dtype", "float32"),
        first_token=dict(entry.get("first_token", {"policy": "none"})),
        probes=ProbeSettings.from_dict(probes),
        thresholds=Thresholds.from_dict(thresholds),
        duplicates=entry.get("duplicates", config.get("duplicates", "mark")),
        primitives=_deep_merge(
            _deep_merge(study_defaults("primitives"), config.get("primitives", {})), entry.get("primitives", {})
        ),
        toy=entry.get("toy"),
    )


def resolve_config(config: dict[str, Any]) -> dict[str, ModelSettings]:
    """Validate ``config`` and resolve every model; raise :class:`ConfigError` on any problem."""
    validate_schema(config)
    models = {name: resolve_model(name, entry, config) for name, entry in config["models"].items()}
    problems: list[str] = []
    for name, model in models.items():
        problems += _check_probes(name, model.probes, model.first_token)
        source = model.source
        if source["type"] == "local" and "path" not in source:
            problems.append(f"models.{name}.source: a local source needs path (a folder in the Hub cache layout)")
        if source["type"] != "local" and "path" in source:
            problems.append(f"models.{name}.source.path: only a local source has a path")
        if source["type"] != "package" and not model.tokens:
            problems.append(f"models.{name}: tokens is required (per_step: N, or from_name: true)")
        if (source["type"] == "package") != ("package" in source):
            problems.append(f"models.{name}.source: the package key is required for, and only with, type package")
        if (source["type"] == "toy") != (model.toy is not None):
            problems.append(f"models.{name}: the toy key is required for, and only allowed with, source type toy")
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise ConfigError(
            f"invalid configuration ({len(problems)} problem{'s' if len(problems) > 1 else ''}):\n{lines}"
        )
    return models


def load_config(path: Path | str) -> dict[str, Any]:
    """Read a YAML config file; YAML syntax errors become :class:`ConfigError`."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from error
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data
