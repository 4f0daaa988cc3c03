"""The snapshot stage: fetch and verify one revision, then mark the folder finished.

Where the files go depends on the source (DESIGN.md 2):

- ``toy`` and ``local``: already in a folder in the Hub cache layout; they are
  verified in place against their content-addressed blob names.
- ``hub`` with ``cache: revision`` (default): downloaded into a Hub cache
  inside the snapshot folder itself, which Snakemake deletes (``temp()``) once
  the revision's caches exist, so disk holds only a few revisions at a time.
- ``hub`` with ``cache: shared``: downloaded into the standard Hub cache
  (``HF_HOME`` / ``HF_HUB_CACHE``), shared with other tools and kept.

The snapshot folder's ``snapshot.json`` (the verification record, with the
files' path) is written last: a folder without it is not a finished snapshot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from circuitsweep import hub

RECORD_NAME = "snapshot.json"
REVISION_CACHE = "hub"


def record_path(snapshot_dir: Path) -> Path:
    """The verification record of a snapshot folder."""
    return Path(snapshot_dir) / RECORD_NAME


def cache_dir(source: dict[str, Any], snapshot_dir: Path) -> Path | None:
    """The Hub-cache-layout folder a source's files live in (None: the standard Hub cache)."""
    if source["type"] in ("toy", "local"):
        return Path(source["path"])
    if source.get("cache", "revision") == "revision":
        return Path(snapshot_dir) / REVISION_CACHE
    return None


def fetch_revision(settings: dict[str, Any], snapshot_dir: Path) -> hub.Snapshot:
    """Fetch and verify ``settings['revision']`` of ``settings['source']`` into ``snapshot_dir``."""
    source = settings["source"]
    snapshot_dir = Path(snapshot_dir)
    snapshot_dir.mkdir(parents=True, exist_ok=True)
    folder = cache_dir(source, snapshot_dir)
    if folder is None:
        from huggingface_hub import constants

        folder = Path(constants.HF_HUB_CACHE)
    hub.fetch_snapshot(
        source["repo_id"],
        settings["revision"],
        folder,
        local_files_only=source["type"] in ("toy", "local"),
        endpoint=source.get("endpoint"),
        record=record_path(snapshot_dir),
    )
    return hub.read_record(record_path(snapshot_dir))


def read_snapshot(snapshot_dir: Path) -> hub.Snapshot:
    """The verified snapshot a finished snapshot folder points to."""
    return hub.read_record(record_path(snapshot_dir))
