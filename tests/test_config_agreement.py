"""check-config and the workflow's own planning agree on every config (issue 32).

A config that `circuitsweep check-config` accepts must plan when Snakemake parses
the workflow, and one it refuses must be refused there too. Mutations of the toy
suite's config are generated from the schema (every key it types, with values at,
beyond and around its bounds, of other types, empty and blank); both sides run
in-process, and a refusal is one line (check-config) or a ConfigError (planning).
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from circuitsweep import cli
from circuitsweep.errors import ConfigError
from circuitsweep.plan.sweep import plan_run

REPO = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
TOY = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
MODEL = next(iter(TOY["models"]))
#: Mutations tried beyond the explicit examples: each is one check-config and one planning, in-process.
EXAMPLES = 40


def resolve(node: dict) -> dict:
    while "$ref" in node:
        node = SCHEMA["$defs"][node["$ref"].split("/")[-1]]
    return node


def alternatives(node: dict) -> list[dict]:
    """The schemas a value of ``node`` may follow (its ``oneOf``/``anyOf`` branches, else itself)."""
    node = resolve(node)
    branches = node.get("oneOf") or node.get("anyOf")
    return [node] if not branches else [{**node, **resolve(b)} for b in branches]


def key_paths(node: dict, prefix: tuple[str, ...], depth: int = 3) -> list[tuple[tuple[str, ...], dict]]:
    """Every (key path, schema) the schema types under ``node``, ``depth`` levels down."""
    out = []
    for branch in alternatives(node):
        for key, child in (branch.get("properties") or {}).items():
            out.append(((*prefix, key), child))
            if depth > 1:
                out += key_paths(child, (*prefix, key), depth - 1)
    return out


#: Top-level keys (models left out: its one entry's keys are mutated instead) and the toy model's keys.
PATHS = [p for p in key_paths(SCHEMA, ()) if p[0][0] != "models"]
PATHS += key_paths(SCHEMA["$defs"]["model"], ("models", MODEL))


def candidates(node: dict) -> list[Any]:
    """Values to set a key of schema ``node`` to: its bounds and just beyond, other types, empty, blank."""
    values: list[Any] = [None, "", "   ", [], {}, True, -1, 0, 2**64, float("nan"), "x"]
    for branch in alternatives(node):
        types = branch.get("type", [])
        types = types if isinstance(types, list) else [types]
        for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            if key in branch:
                bound = branch[key]
                values += [bound - 1, bound, bound + 1] if isinstance(bound, int) else [bound, -bound, bound * 2]
        values += list(branch.get("enum", []))
        if "default" in branch:
            values.append(branch["default"])
        if "integer" in types:
            values += [1, 1.0, -(2**63) - 1, 2**63, "1"]
        if "number" in types:
            values += [0.5, float("inf"), 1e308]
        if "array" in types:
            values += [[2**64], [-1], [0], [None], [""], ["x", "x"], [1, 1]]
        if "string" in types:
            values += ["../x", "a/b", "-x", "\t", "results/y/../z", "{step}"]
    return values


def write_config(tmp_path: Path, path: tuple[str, ...], value: Any) -> Path:
    config = copy.deepcopy(TOY)
    node = config
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[path[-1]] = value
    folder = tmp_path / re.sub(r"[^A-Za-z0-9_.-]", "_", ".".join(path))[:80]
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "config.yaml"
    target.write_text(yaml.safe_dump(config, allow_unicode=True))
    return target


def check_config(configfile: Path) -> tuple[bool, str]:
    """``circuitsweep check-config`` in-process: whether it accepts, and its stderr."""
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = cli.main(["check-config", str(configfile), "--root", str(REPO)])
    return code == 0, err.getvalue()


def workflow_plans(configfile: Path) -> tuple[bool, str]:
    """What Snakemake does with ``--configfile``: its own YAML reader, then workflow/rules/common.smk's planning
    (strict re-read, then :func:`plan_run`, test_the_workflow_plans_with_plan_run ties the two)."""
    from snakemake.common.configfile import load_configfile

    from circuitsweep.config.yaml_load import load_yaml

    config = load_configfile(str(configfile))
    try:
        load_yaml(configfile, "config")
        plan_run(config, [str(configfile)], REPO, keep_hashes=False)
    except ConfigError as error:
        return False, str(error)
    return True, ""


def test_the_workflow_plans_with_plan_run():
    """The planning this module runs is the one the Snakefile runs."""
    text = (REPO / "workflow" / "rules" / "common.smk").read_text()
    assert "PLAN = plan_run(config, workflow.configfiles, REPO)" in text
    assert 'load_yaml(_configfile, "config")' in text


def test_every_integer_in_the_schema_is_bounded():
    """A count without a maximum (``spectral_top_k: [2**64]``) passed the schema and failed inside a job."""

    def walk(node: Any, where: str) -> list[str]:
        found = []
        if isinstance(node, dict):
            types = node.get("type", [])
            types = types if isinstance(types, list) else [types]
            if "integer" in types and "maximum" not in node and "enum" not in node and "const" not in node:
                found.append(where)
            for key, child in node.items():
                found += walk(child, f"{where}.{key}")
        elif isinstance(node, list):
            for i, child in enumerate(node):
                found += walk(child, f"{where}[{i}]")
        return found

    assert walk(SCHEMA, "schema") == []


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("config-agreement")


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.sampled_from(PATHS).flatmap(lambda p: st.tuples(st.just(p[0]), st.sampled_from(candidates(p[1])))))
@example((("outdir",), "   "))
@example((("ablation", "spectral_top_k"), [2**64]))
@example((("outdir",), "results/y/../z"))
@example((("models", MODEL, "probes", "batch_size"), 2**64))
def test_check_config_and_the_workflow_agree(sandbox, mutation):
    """Both accept or both refuse; check-config's refusal is one line naming the problem, no traceback."""
    path, value = mutation
    if isinstance(value, float) and math.isnan(value) and path[-1] == "outdir":
        value = "nan"
    configfile = write_config(sandbox, path, value)
    accepted, err = check_config(configfile)
    planned, why = workflow_plans(configfile)
    assert "Traceback" not in err, err
    if not accepted:
        assert len(err.strip().splitlines()) == 1, err
    assert accepted == planned, f"{'.'.join(path)} = {value!r}: check-config {err.strip()!r}, planning {why!r}"
