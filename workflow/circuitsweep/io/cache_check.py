"""Verify a cache file against what the plan expects before anything reads its numbers.

Every cache file carries its run's metadata (model, revision, step, tokens,
probe settings, first-token policy, dtype, commit, weights fingerprint, cache
schema version). A reader passes the expectation the plan gives it (the rule's
params) to :func:`verify_metadata`; any difference, a missing key or a
truncated file is a :class:`CacheError` naming the file and saying
"delete it and rerun", so a copied, stale or half-written cache is never mixed
into the results. Generic: path, metadata, expected dict. No torch here: a
safetensors header is read as bytes.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from circuitsweep.errors import CacheError
from circuitsweep.io import contracts as C
from circuitsweep.io.json_text import short_json

#: Version of the cache files' layout and metadata; bump it when either changes,
#: so caches of an older layout are refused instead of misread (a planned revision whose
#: caches carry another version is measured again, once).
#: 4: the head shard keeps each induction-probe sequence's attention to every target and its
#: baseline mean (``induction.per_sequence``, n x L x H x 7 float32) and validity
#: (``induction.sequence_valid``), the statistics of the bootstrap over probe sequences; the means
#: are computed from them. Caches of version 3 lack them: every revision is measured again once.
#: 5: sink alpha in the scores averages over every query of the random batch, query 0 too (Gu et al.;
#: version 4 left it out), so version-4 scores are measured again once.
CACHE_SCHEMA_VERSION = 5
#: The metadata key holding :data:`CACHE_SCHEMA_VERSION`.
SCHEMA_KEY = "cache_schema"
#: The metadata key holding :func:`settings_digest` of the settings its measuring job was given.
SETTINGS_KEY = "settings_sha256"


def settings_digest(settings: Mapping[str, Any]) -> str:
    """sha256 of a job's settings as canonical JSON: recorded in its caches, so the plan can tell they are current."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def records_settings(path: Path | str, settings: Mapping[str, Any]) -> bool:
    """Whether the safetensors cache at ``path`` exists, is complete and was made with exactly ``settings``."""
    try:
        return safetensors_metadata(path).get(SETTINGS_KEY) == settings_digest(settings)
    except (OSError, CacheError):
        return False


def _normal(value: Any) -> Any:
    """JSON round trip: tuples become lists, so a plan's value compares equal to the stored one."""
    return json.loads(json.dumps(value, sort_keys=True))


def verify_metadata(path: Path | str, metadata: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
    """Raise :class:`CacheError` unless ``metadata`` has every key of ``expected`` with that value."""
    stored = _normal(dict(metadata))
    wanted = _normal(dict(expected))
    differences = [
        f"{key} is {short_json(stored[key]) if key in stored else 'missing'}, expected {short_json(value)}"
        for key, value in wanted.items()
        if stored.get(key, ...) != value
    ]
    if differences:
        raise CacheError(
            f"{path} does not belong to this run ({'; '.join(differences)}): it was made by another run, "
            "copied or is stale; delete it and rerun"
        )


def safetensors_metadata(path: Path | str) -> dict[str, Any]:
    """The circuitsweep metadata of a safetensors file, after checking the file is complete.

    Reads only the header (8-byte length + JSON); the file must be exactly as
    long as the header says, so a truncated or padded shard is refused.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length > size - 8:
                raise ValueError(f"header of {length} bytes in a file of {size}")
            header = json.loads(handle.read(length))
        end = max((entry["data_offsets"][1] for name, entry in header.items() if name != "__metadata__"), default=0)
        if size != 8 + length + end:
            raise ValueError(f"{size} bytes on disk, the header describes {8 + length + end}")
        metadata = json.loads(header["__metadata__"][C.META_KEY])
    except FileNotFoundError:
        raise
    except (OSError, struct.error, ValueError, KeyError, TypeError) as error:
        raise CacheError(f"{path} is truncated or not a circuitsweep shard ({error}); delete it and rerun") from error
    if not isinstance(metadata, dict):
        raise CacheError(f"{path}: its metadata is not a mapping; delete it and rerun")
    return metadata


def _header(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """``(metadata, None)`` for a readable cache file, ``(None, why)`` for one that cannot be read at all, and
    ``(None, None)`` for a missing file or another kind. Reads a safetensors header or a Parquet footer only."""
    if not path.is_file():
        return None, None
    if path.suffix == ".safetensors":
        try:
            return safetensors_metadata(path), None
        except FileNotFoundError:
            return None, None
        except CacheError as error:
            cause = error.__cause__
            return None, str(cause) if cause is not None else "its metadata is not a mapping"
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            raw = (pq.read_schema(path).metadata or {}).get(C.META_KEY.encode())
        except (OSError, ValueError) as error:
            return None, str(error).splitlines()[0] if str(error) else type(error).__name__
        try:
            metadata = json.loads(raw) if raw else {}
        except ValueError:
            metadata = {}
        return metadata if isinstance(metadata, dict) else {}, None
    return None, None


def damage(path: Path | str) -> str | None:
    """Why the cache file at ``path`` cannot be read at all (truncated, overwritten, not a cache), or None.

    None also for a missing file. Reads a safetensors header or a Parquet footer, not the data; whether a
    readable cache is current is :func:`records_settings`' question.
    """
    return _header(Path(path))[1]


def cache_problem(path: Path | str, model: str, revision: str) -> str | None:
    """Why the cache file at ``path`` is no measurement of revision ``revision`` of ``model``, or None: it cannot
    be read at all (:func:`damage`), or it records another model or revision (a file copied or moved from
    another revision's folder). Reads its header or footer once."""
    metadata, why = _header(Path(path))
    if why is not None or not metadata:
        return why
    found = {key: metadata[key] for key in ("model", "revision") if key in metadata}
    wanted = {"model": model, "revision": revision}
    if all(found[key] == wanted[key] for key in found):
        return None
    return f"it records {found.get('model', model)} {found.get('revision', revision)}, not {model} {revision}"


def verify_shard(path: Path | str, expected: Mapping[str, Any]) -> dict[str, Any]:
    """Check a safetensors cache is complete and matches ``expected``; return its metadata."""
    metadata = safetensors_metadata(path)
    verify_metadata(path, metadata, expected)
    return metadata


#: Metadata a revision's statistics shard and score table must agree on (they come from one job).
_SHARED_IDENTITY = ("model", "revision", "step", "tokens", "probes", "commit", "weights_sha256", SCHEMA_KEY)


def verify_head_cache(
    scores_path: Path, metadata: Mapping[str, Any], expected: Mapping[str, Any], stats_path: Path | None = None
) -> None:
    """Check one revision's head cache against the plan's ``expected`` metadata .

    With ``stats_path``, the statistics shard must be complete, match ``expected``
    too, and come from the same job as the scores (same identity metadata).
    """
    verify_metadata(scores_path, metadata, expected)
    if stats_path is not None:
        stats_metadata = verify_shard(stats_path, expected)
        verify_metadata(stats_path, stats_metadata, {k: metadata.get(k) for k in _SHARED_IDENTITY})
