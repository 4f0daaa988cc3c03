"""Load, validate and resolve the workflow configuration.

The JSON schema (``workflow/schemas/config.schema.yaml``) checks keys, types
and ranges and carries the study's default values; :func:`resolve_config`
then applies the defaults, merges per-model overrides and checks what a
schema cannot (probe geometry, first-token ids, toy settings). Every problem
is reported with the path of the offending key before any job runs.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from circuitsweep.config.architectures import TOY_ARCHITECTURES, check_at_planning, has_lm_head, is_unknown
from circuitsweep.config.patterns import branch_pattern_regex, pattern_regex
from circuitsweep.config.probes import AblationSettings, BootstrapSettings, ProbeSettings, baseline_candidates
from circuitsweep.config.schema_errors import describe, specific
from circuitsweep.config.strict_schema import StrictValidator, non_finite_values
from circuitsweep.config.thresholds import MilestoneThresholds, Thresholds
from circuitsweep.config.yaml_load import load_yaml
from circuitsweep.errors import ConfigError, config_problems

#: The checkpoint folder names of a run_dir source without a pattern: HF Trainer's.
RUN_DIR_PATTERN = "checkpoint-{step}"
SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"
STIMULI_SCHEMA_FILE = SCHEMA_FILE.with_name("primitives.schema.yaml")


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


def schema_default(*keys: str) -> Any:
    """The ``default`` of the schema node at ``keys`` (a ``$ref`` followed), e.g. ``("properties", "device")``."""
    root = schema()
    node = root
    for key in keys:
        node = node[key]
    if "$ref" in node:
        reference, node = node["$ref"], root
        for part in reference.removeprefix("#/").split("/"):
            node = node[part]
    return copy.deepcopy(node["default"])


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


def stimuli_problem(config: dict[str, Any]) -> str | None:
    """Why ``config`` is not a workflow config when it is the stimuli file of the primitives, else None."""
    required = yaml.safe_load(STIMULI_SCHEMA_FILE.read_text())["required"]
    if "models" in config or not all(key in config for key in required):
        return None
    return (
        "this is a stimuli file (the words and templates of the semantic primitives), not a workflow config:"
        " a config names it under primitives.stimuli (config/config.yaml is a workflow config)"
    )


def schema_problems(values: Any, node: dict[str, Any] | None = None, config_hint: bool = False) -> list[str]:
    """Every way ``values`` breaks schema ``node`` (default: the whole config schema), one line each naming the key.

    Shared by the config and the notebook API (a section such as ``$defs/probes``), so both refuse the same values.
    ``config_hint``: a number given as text says how Snakemake's ``--config`` makes one (a workflow config only).
    """
    root = schema()
    # finite numbers and int-only integers: NaN passes every range check of plain JSON Schema
    validator = StrictValidator(root if node is None else {**node, "$defs": root["$defs"]})
    # a oneOf's errors inside the one form the value has are listed each on its own (a repeated revision)
    errors = [leaf for error in validator.iter_errors(values) for leaf in specific(error)]
    errors = sorted(errors, key=lambda e: [str(p) for p in e.absolute_path])
    problems = [describe(e, config_hint=config_hint) for e in errors]
    problems += [p for p in non_finite_values(values) if not any(q.startswith(p.split(":")[0] + ":") for q in problems)]
    return problems


def validate_schema(config: dict[str, Any]) -> None:
    """Check ``config`` against the schema; raise :class:`ConfigError` listing every problem."""
    problem = stimuli_problem(config)
    if problem:
        raise ConfigError(problem)
    problems = schema_problems(config, config_hint=True)
    if problems:
        raise config_problems(problems)


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
    milestones: MilestoneThresholds
    duplicates: str
    primitives: dict[str, Any]
    toy: dict[str, Any] | None
    shape: dict[str, Any] | None = None  # config.json keys declared for planning (sizing), if any
    group: str | None = None  # the family (e.g. seeds of one architecture) the model belongs to
    spectral_leave_out: tuple[str, ...] = ()  # swept revisions the spectral ranking leaves out


def _sets_any(overrides: Any, *paths: tuple[str, ...]) -> bool:
    """Whether the mapping ``overrides`` sets any of the nested keys ``paths`` (``("induction", "seq_len")``)."""
    for path in paths:
        node = overrides
        for key in path:
            if not isinstance(node, dict) or key not in node:
                break
            node = node[key]
        else:
            return True
    return False


def _written_at(name: str, section: str, overrides: dict[str, Any] | None, *paths: tuple[str, ...]) -> str:
    """``models.<name>.<section>`` when the model's own ``overrides`` of ``section`` set any of ``paths`` (or are
    unknown: None), else the top-level ``<section>`` that every model inherits."""
    return f"models.{name}.{section}" if overrides is None or _sets_any(overrides, *paths) else section


def setting_key(config: dict[str, Any], name: str, section: str, *paths: tuple[str, ...]) -> str:
    """Where model ``name``'s ``section`` settings at ``paths`` were written: ``models.<name>.<section>`` when the
    model's own entry sets any of them, else the top-level ``<section>`` that every model inherits."""
    own = ((config.get("models") or {}).get(name) or {}).get(section) or {}
    return _written_at(name, section, own, *paths)


def _probes_key(name: str, overrides: dict[str, Any] | None, *paths: tuple[str, ...]) -> str:
    """Where the probe settings ``paths`` that a check compares were written (:func:`_written_at`)."""
    return _written_at(name, "probes", overrides, *paths)


def _check_probes(
    name: str, probes: ProbeSettings, first_token: dict[str, Any], overrides: dict[str, Any] | None = None
) -> list[str]:
    """What the schema cannot say about one model's probes. ``overrides``: the model's own ``probes:``; a problem
    with settings it does not set is named at the top-level ``probes`` key (once for every model inheriting it)."""
    where = f"models.{name}"
    low, high = probes.token_range
    problems = []
    if high - low < 3:
        at = _probes_key(name, overrides, ("token_range",))
        problems.append(f"{at}.token_range: {[low, high]} must hold at least 3 token ids (low < high)")
    ind = probes.induction
    if ind.seq_len // 2 <= ind.min_first_position:
        at = _probes_key(name, overrides, ("induction", "seq_len"), ("induction", "min_first_position"))
        problems.append(
            f"{at}.induction: seq_len {ind.seq_len} / 2 must exceed min_first_position {ind.min_first_position}"
        )
    eligible = len(baseline_candidates(ind.seq_len))
    spare = 2 if probes.protocol == "clean" else 0  # clean draws two spare candidates for p and p + 1
    if ind.n_baseline + spare > eligible:
        at = _probes_key(name, overrides, ("induction", "n_baseline"), ("induction", "seq_len"), ("protocol",))
        problems.append(
            f"{at}.induction.n_baseline: {ind.n_baseline}{f' + {spare}' if spare else ''} exceeds the "
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


def _check_natural_text(name: str, model: ModelSettings, overrides: dict[str, Any] | None = None) -> list[str]:
    """What the natural-text probe of one model needs that the schema cannot say (``overrides``: as for
    :func:`_check_probes`)."""
    natural = model.probes.natural_text
    if natural is None:
        return []
    where = f"models.{name}.probes.natural_text"
    problems = []
    if model.source["type"] == "toy":
        problems.append(
            f"{where}: the toy suite has no tokenizer, and natural text must be tokenized by the model's own "
            "tokenizer; remove probes.natural_text from this run (toy models measure the random-token probes only)"
        )
    if natural.seq_len < natural.min_first_position + natural.min_filler + 8:
        at = _probes_key(
            name, overrides, *[("natural_text", k) for k in ("seq_len", "min_first_position", "min_filler")]
        )
        problems.append(
            f"{at}.natural_text.seq_len: {natural.seq_len} leaves no room for min_first_position "
            f"{natural.min_first_position} + min_filler {natural.min_filler} and the local targets"
        )
    return problems


def _resolve_natural_text(name: str, probes: dict[str, Any], overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Drop an empty natural_text block; name the batch after the model unless a tokenizer name is given."""
    natural = probes.get("natural_text") or {}
    if not natural:
        probes.pop("natural_text", None)
        return probes
    if "corpus" not in natural:
        at = _probes_key(name, overrides, ("natural_text",))
        raise ConfigError(f"{at}.natural_text.corpus: required to measure natural text")
    probes["natural_text"] = {"tokenizer": name, **natural}
    return probes


def resolve_ablation(config: dict[str, Any]) -> tuple[AblationSettings | None, float, float]:
    """The run's ablation settings (None when not enabled) and the causal milestone's factor and alpha."""
    values = _deep_merge(study_defaults("ablation"), config.get("ablation", {}))
    factor = float(values.pop("causal_factor"))
    alpha = float(values.pop("causal_alpha"))
    values.pop("spectral_top_k")  # the final-revision ablation's alone: changing it reruns no measurement
    enabled = values.pop("enabled")
    return (AblationSettings(**values) if enabled else None), factor, alpha


def resolve_bootstrap(config: dict[str, Any]) -> BootstrapSettings | None:
    """The run's bootstrap over probe sequences (``bootstrap:``); None when ``resamples`` is 0 (off)."""
    root = schema()
    values = _deep_merge(_defaults(root["properties"]["bootstrap"], root), config.get("bootstrap") or {})
    settings = BootstrapSettings.from_dict(values)
    return settings if settings.resamples > 0 else None


def resolve_spectral_top_k(config: dict[str, Any]) -> tuple[int | float | str, ...]:
    """The K of the final-revision ablation's spectral conditions (``ablation.spectral_top_k``), in config order:
    counts (int), shares of the heads (float in (0, 1)) or ``"elbow"`` (the schema refuses anything else)."""
    return tuple(_deep_merge(study_defaults("ablation"), config.get("ablation", {}))["spectral_top_k"])


def _check_run_dir(name: str, source: dict[str, Any], tokens: dict[str, Any]) -> list[str]:
    """What a ``run_dir`` source needs (path, a valid pattern, tokens per step) and no other source has."""
    where = f"models.{name}.source"
    if source["type"] != "run_dir":
        problems = [f"{where}.pattern: only a run_dir source has a pattern"] if "pattern" in source else []
        if (source["type"] == "hub_repos") != ("repos" in source):
            problems.append(f"{where}: the repos key is required for, and only with, type hub_repos")
        elif source["type"] == "hub_repos":
            return problems + [f"{where}.repo_id: a hub_repos source names its repositories in repos"] * (
                "repo_id" in source
            )
        if "repo_id" not in source:
            problems.append(f"{where}: repo_id is required for a {source['type']} source")
        return problems
    problems = []
    if "path" not in source:
        problems.append(f"{where}: a run_dir source needs path (the training run's output folder)")
    try:
        pattern_regex(source.get("pattern", RUN_DIR_PATTERN))
    except ConfigError as error:
        problems.append(f"models.{name}.{error}")
    if "from_name" in tokens:
        problems.append(f"models.{name}.tokens: a run_dir source needs per_step (folder names hold steps only)")
    return problems


def _check_branch_pattern(name: str, source: dict[str, Any]) -> list[str]:
    """A branch pattern is for hub and local sources, and must parse (:func:`patterns.branch_pattern_regex`)."""
    where = f"models.{name}.source.branch_pattern"
    if source["type"] not in ("hub", "local"):
        return [f"{where}: only a hub or local source has branches to match (a run_dir source has pattern)"]
    try:
        branch_pattern_regex(source["branch_pattern"])
    except ValueError as error:
        return [f"{where}: {error}"]
    return []


def _source(source: dict[str, Any]) -> dict[str, Any]:
    """A model's ``source`` with a ``path`` that starts with ``~`` in the home folder (as a shell reads it)."""
    out = dict(source)
    if isinstance(out.get("path"), str) and out["path"].startswith("~"):
        out["path"] = os.path.expanduser(out["path"])
    return out


def resolve_model(name: str, entry: dict[str, Any], config: dict[str, Any]) -> ModelSettings:
    """Merge study defaults, global settings and ``entry``'s overrides for one model."""
    probes = _deep_merge(_deep_merge(study_defaults("probes"), config.get("probes", {})), entry.get("probes", {}))
    probes = _resolve_natural_text(name, probes, entry.get("probes") or {})
    thresholds = _deep_merge(
        _deep_merge(study_defaults("thresholds"), config.get("thresholds", {})), entry.get("thresholds", {})
    )
    return ModelSettings(
        name=name,
        architecture=entry["architecture"],
        source=_source(entry["source"]),
        revisions=entry["revisions"],
        tokens=dict(entry.get("tokens", {})),
        dtype=entry.get("dtype", schema_default("$defs", "model", "properties", "dtype")),
        first_token=dict(entry.get("first_token", schema_default("$defs", "model", "properties", "first_token"))),
        probes=ProbeSettings.from_dict(probes),
        thresholds=Thresholds.from_dict(thresholds),
        milestones=MilestoneThresholds.from_dict(thresholds),
        duplicates=entry.get("duplicates", config.get("duplicates", schema_default("$defs", "duplicates"))),
        primitives=_deep_merge(
            _deep_merge(study_defaults("primitives"), config.get("primitives", {})), entry.get("primitives", {})
        ),
        toy=entry.get("toy"),
        shape=dict(entry["shape"]) if entry.get("shape") else None,
        group=entry.get("group"),
        spectral_leave_out=tuple(entry.get("spectral_leave_out", ())),
    )


def resolve_config(config: dict[str, Any]) -> dict[str, ModelSettings]:
    """Validate ``config`` and resolve every model; raise :class:`ConfigError` on any problem."""
    validate_schema(config)
    models = {name: resolve_model(name, entry, config) for name, entry in config["models"].items()}
    problems: list[str] = []
    natural = sorted(name for name, model in models.items() if model.probes.natural_text is not None)
    if natural and len(natural) < len(models):
        others = sorted(set(models) - set(natural))
        problems.append(
            f"probes.natural_text: set for {natural} but not for {others}; the natural-text probe is measured "
            "for every model of a run or for none"
        )
    shared: dict[str, tuple[str, dict[str, Any]]] = {}
    for name in natural:
        settings = models[name].probes.natural_text
        first, wanted = shared.setdefault(settings.tokenizer, (name, settings.batch_dict()))
        if wanted != settings.batch_dict():
            problems.append(
                f"models.{name}.probes.natural_text: shares the batch {settings.tokenizer!r} with models.{first} "
                "but not its settings; give it another tokenizer name or the same settings"
            )
    for name in natural:
        settings = models[name].probes.natural_text
        builder = settings.tokenizer_model
        if builder is not None and (
            builder not in models
            or models[builder].probes.natural_text is None
            or models[builder].probes.natural_text.tokenizer != settings.tokenizer
        ):
            problems.append(
                f"models.{name}.probes.natural_text.tokenizer_model: {builder!r} is no model of this run that "
                f"measures the batch {settings.tokenizer!r}"
            )
    ablation, _, _ = resolve_ablation(config)
    for name, model in models.items():
        overrides = config["models"][name].get("probes") or {}
        problems += _check_probes(name, model.probes, model.first_token, overrides)
        problems += _check_natural_text(name, model, overrides)
        try:
            check_at_planning(model.architecture)
        except ConfigError as error:
            problems.append(f"models.{name}.architecture: {error}")
        # a class transformers does not know (a typo) has no kind, head or toy trainer to check: its name is the
        # problem, and the checks below would only blame the ablation or the toy suite for it
        known = not is_unknown(model.architecture)
        if known and ablation is not None and not has_lm_head(model.architecture):
            problems.append(
                f"ablation.enabled: models.{name} ({model.architecture}) has no LM head to score B with; "
                "run the ablation without it"
            )
        if known and model.source["type"] == "toy" and model.architecture not in TOY_ARCHITECTURES:
            problems.append(
                f"models.{name}.architecture: the toy suite trains only {', '.join(TOY_ARCHITECTURES)}, "
                f"not {model.architecture}"
            )
        source = model.source
        if source["type"] == "local" and "path" not in source:
            problems.append(f"models.{name}.source: a local source needs path (a folder in the Hub cache layout)")
        if source["type"] not in ("local", "run_dir") and "path" in source:
            problems.append(f"models.{name}.source.path: only a local or run_dir source has a path")
        elif isinstance(source.get("path"), str) and not source["path"].strip():
            problems.append(f"models.{name}.source.path: {source['path']!r} is not a folder path")
        problems += _check_run_dir(name, source, model.tokens)
        if "branch_pattern" in source:
            problems += _check_branch_pattern(name, source)
        if source.get("gated") and source["type"] != "hub":
            problems.append(f"models.{name}.source.gated: only a hub source can be gated")
        released = source["type"] == "hub" and model.revisions == ["main"]
        counted = source["type"] == "hub_repos" and all("tokens" in repo for repo in source.get("repos", []))
        if source["type"] not in ("package",) and not released and not counted and not model.tokens:
            problems.append(f"models.{name}: tokens is required (per_step: N, or from_name: true)")
        if (source["type"] == "package") != ("package" in source):
            problems.append(f"models.{name}.source: the package key is required for, and only with, type package")
        if (source["type"] == "toy") != (model.toy is not None):
            problems.append(f"models.{name}: the toy key is required for, and only allowed with, source type toy")
    problems = list(dict.fromkeys(problems))  # a top-level setting every model inherits is named once
    if problems:
        raise config_problems(problems)
    return models


def load_configs(paths: Sequence[Path | str]) -> dict[str, Any]:
    """Config files merged in order, later keys over earlier ones (as Snakemake merges ``--configfile``)."""
    config: dict[str, Any] = {}
    for path in paths:
        config = _deep_merge(config, load_config(path))
    return config


def load_config(path: Path | str) -> dict[str, Any]:
    """Read a YAML config file; non-UTF-8 bytes, YAML syntax errors and duplicate keys become :class:`ConfigError`."""
    data = load_yaml(path, "config")
    if data is None:
        raise ConfigError(f"{path}: the config file is empty (no keys, at most comments); it needs at least `models:`")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    problem = stimuli_problem(data)
    if problem:
        raise ConfigError(f"{path}: {problem}")
    return data
