"""Train one toy model of the config and record what it published.

The plan names a toy model's branches from the config alone (schedule,
branch format, tokens per step) so the DAG builds before any training;
this module trains, then checks that what was published is exactly what was
planned, so a config whose ``tokens.per_step`` disagrees with the toy's
``batch x seq_len`` fails here with a clear message instead of mislabelling
every revision's tokens.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from circuitsweep.errors import ConfigError
from circuitsweep.io.atomic import atomic_write_text
from circuitsweep.toy.spec import ToySpec, branch_name
from circuitsweep.toy.train import train_and_publish


def toy_spec(settings: dict[str, Any]) -> ToySpec:
    """The :class:`ToySpec` of a plan's toy settings (``architecture`` plus the ``toy:`` entry)."""
    try:
        return ToySpec.of_model(settings["architecture"], settings["toy"])
    except (TypeError, ValueError) as error:
        raise ConfigError(f"models.{settings['model']}.toy: {error}") from error


def check_planned(settings: dict[str, Any], spec: ToySpec) -> None:
    """Raise :class:`ConfigError` when the config's token accounting disagrees with the toy spec."""
    per_step = settings.get("tokens_per_step")
    if per_step != spec.tokens_per_step:
        raise ConfigError(
            f"models.{settings['model']}.tokens.per_step: {per_step} disagrees with the toy model's "
            f"batch x seq_len = {spec.batch} x {spec.seq_len} = {spec.tokens_per_step}"
        )


def train_toy_suite_model(settings: dict[str, Any], hub: Path, published: Path, threads: int = 1) -> list[dict]:
    """Train the toy model of ``settings``, publish its revisions under ``hub``, list them in ``published``.

    ``published`` (JSON: branch, step, tokens, commit per revision, ``main``
    last) is written atomically after the last revision is published, so it
    marks a finished training job.
    """
    spec = toy_spec(settings)
    check_planned(settings, spec)
    branch_format = settings["toy"]["branch_format"]
    revisions = train_and_publish(spec, Path(hub), settings["repo_id"], branch_format, threads=threads)
    planned = [branch_name(branch_format, step, spec.tokens_per_step) for step in spec.schedule]
    made = [r["branch"] for r in revisions if r["branch"] != "main"]
    if made != planned:
        raise ConfigError(f"models.{settings['model']}.toy: published {made}, but the plan expected {planned}")
    atomic_write_text(published, json.dumps(revisions, indent=2) + "\n")
    return revisions
