"""Each run's outputs in a folder of its own, never mixed with another config's.

A run writes everything (caches, tables, plots, logs, benchmarks) under one
folder: the config's ``outdir`` when it sets one, else ``results/<run>``, where
``run`` is the config's ``run`` key or, without one, the stem of its (first)
config file (``config/paper.yaml`` -> ``results/paper``). The folder records
which config made it (:data:`IDENTITY_FILE`); a run of another config there is
refused with one line naming both.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from circuitsweep.errors import ConfigError
from circuitsweep.io.atomic import atomic_write_text
from circuitsweep.io.names import unsafe_reason

#: Where runs without an ``outdir`` put their folders, relative to the working directory.
RESULTS = Path("results")
#: The file in a run folder that names the config which made it.
IDENTITY_FILE = "run.json"
#: The run name when the config came from no file at all.
FALLBACK_RUN = "run"


def run_name(config: Mapping[str, Any], configfiles: Sequence[str | Path] = ()) -> str:
    """The run's name: the config's ``run`` key, else the stem of the first config file."""
    name = config.get("run")
    if name is None:
        name = Path(configfiles[0]).stem if configfiles else FALLBACK_RUN
        where = f"the name of {configfiles[0]}" if configfiles else "run"
    else:
        where = "run"
    reason = unsafe_reason(name)
    if reason:
        raise ConfigError(f"{where}: {name!r} cannot name a results folder ({reason})")
    return name


def run_root(config: Mapping[str, Any], configfiles: Sequence[str | Path] = ()) -> Path:
    """The folder of this run's outputs: ``outdir`` if the config sets it, else ``results/<run>``."""
    outdir = config.get("outdir")
    if outdir is not None:
        if not isinstance(outdir, str) or not outdir.strip():
            raise ConfigError(f"outdir: {outdir!r} is not a folder path")
        return Path(outdir)
    return RESULTS / run_name(config, configfiles)


def config_identity(configfiles: Sequence[str | Path]) -> list[str]:
    """The config files as the identity file records them: relative to the working directory."""
    return [os.path.relpath(os.path.realpath(path)) for path in configfiles]


def run_folder_refusal(root: Path, configfiles: Sequence[str | Path]) -> ConfigError | None:
    """The refusal of ``root`` when another config made it (its identity file names other config files), or None.

    The refusal says how to give this config a folder of its own: a ``run:`` name or an ``outdir:``.
    """
    identity = Path(root) / IDENTITY_FILE
    if not identity.is_file():
        return None
    try:
        made_by = json.loads(identity.read_text())["config"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        return ConfigError(f"{identity}: not a circuitsweep run record ({error}); delete it to reuse {root}")
    ours = config_identity(configfiles)
    if made_by == ours:
        return None
    return ConfigError(
        f"{root} holds the run of {_shown(made_by)}, not of {_shown(ours)}: give this config its own run name"
        f" (`run: my-run` in it writes results/my-run/) or folder (`outdir: path/to/folder`),"
        f" or delete {root} to start it again"
    )


def check_run_folder(root: Path, configfiles: Sequence[str | Path]) -> None:
    """Refuse ``root`` when another config made it (:func:`run_folder_refusal`)."""
    refusal = run_folder_refusal(root, configfiles)
    if refusal is not None:
        raise refusal


def _shown(files: Sequence[str]) -> str:
    """Config files as a person reads them: relative inside the working directory, else absolute."""
    return ", ".join(os.path.abspath(f) if f.startswith("..") else f for f in files) or "no config file"


def claim_run_folder(root: Path, configfiles: Sequence[str | Path]) -> None:
    """Check ``root`` (:func:`check_run_folder`) and record this run's config files in it."""
    check_run_folder(root, configfiles)
    identity = Path(root) / IDENTITY_FILE
    if not identity.is_file():
        atomic_write_text(identity, json.dumps({"config": config_identity(configfiles)}, indent=1) + "\n")
