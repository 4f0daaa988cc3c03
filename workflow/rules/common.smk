# Helpers shared by every stage: the validated sweep plan and the paths.
# All logic lives in the circuitsweep package; this file only adapts it to rules.

import json
import shlex
from pathlib import Path

from circuitsweep.contracts import Paths
from circuitsweep.plan import plan_sweep
from circuitsweep.primitives import contract as K

# Every rule runs the package of this workflow's own source tree, in whatever
# environment runs the job (the activated one, or ENV under --sdm conda).
ENV = "../../envs/circuitsweep.yaml"
shell.prefix(
    f"set -euo pipefail; export PYTHONPATH={shlex.quote(str(Path(workflow.basedir) / 'workflow'))}"
    "${{PYTHONPATH:+:$PYTHONPATH}}; "
)

# Validates the config against workflow/schemas/config.schema.yaml and resolves
# every model's revisions; a bad config stops here, before any job runs.
PLAN = plan_sweep(config, Path(workflow.basedir), Paths(Path("results")))
PATHS = PLAN.paths
MODELS = list(PLAN.models)


wildcard_constraints:
    model="|".join(MODELS),
    revision=r"[^/]+",


def as_json(value):
    """Compact, key-sorted JSON: a stable params value for rerun detection."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def revisions_of(model):
    return [revision.name for revision in PLAN.revisions[model]]


def is_toy(model):
    return PLAN.models[model].source["type"] == "toy"


def snapshot_sources(wildcards):
    """A toy model's snapshots need the model trained first."""
    return [PATHS.toy_published(wildcards.model)] if is_toy(wildcards.model) else []


def head_scores_of(wildcards):
    return [PATHS.head_scores(wildcards.model, revision) for revision in revisions_of(wildcards.model)]


def revision_table_files(model, revision):
    folder = PATHS.primitive_revision_tables(model, revision)
    return [folder / name for name in K.REVISION_TABLES.values()]


def primitive_revision_tables(wildcards):
    return [
        path
        for model in PLAN.primitive_models()
        for revision in PLAN.primitive_revisions(model)
        for path in revision_table_files(model, revision.name)
    ]


def primitive_final_tables():
    return [PATHS.primitive_table(name) for name in K.FINAL_FILES]


def primitive_targets():
    if not PLAN.primitive_models():
        return []
    return [*primitive_final_tables(), PATHS.primitive_gap_plot()]


def all_head_scores():
    return [PATHS.head_scores(model, revision) for model in MODELS for revision in revisions_of(model)]


def final_targets():
    return [
        PATHS.overhead_table("csv"),
        PATHS.overhead_table("md"),
        *primitive_targets(),
        PATHS.heads_table(),
        PATHS.emergence_table("parquet"),
        PATHS.emergence_table("csv"),
        PATHS.milestones_table("csv"),
        PATHS.milestones_table("md"),
        PATHS.milestones_table("parquet"),
        PATHS.emergence_plot("png"),
        PATHS.emergence_plot("svg"),
        *[PATHS.heatmap_plot(model) for model in MODELS],
        *[PATHS.trajectory_plot(model) for model in MODELS],
    ]
