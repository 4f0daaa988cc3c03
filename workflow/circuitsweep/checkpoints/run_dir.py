"""A researcher's own training run: checkpoint folders named by a pattern (``source: {type: run_dir}``).

HF Trainer saves ``<output_dir>/checkpoint-<step>/`` folders (config.json,
model.safetensors, optimizer and trainer state); other trainers use
``step<step>`` or ``iter_<step:07d>``. The source's ``pattern`` is a Python
format string with one ``{step}`` field (with an optional integer format
spec); every subfolder whose name the pattern formats back exactly is a
revision, its step parsed from the name.

Each folder is fingerprinted by the sha256 of its weight files (the same
fingerprint a Hub snapshot gets), at planning time and again when fetched,
so an overwritten checkpoint gets a new fingerprint (it is part of the
measuring rules' params, and Snakemake reruns it) and two folders with
identical weights are marked as duplicates in the emergence table. Hashes
are cached per file (keyed by size and modification time), so replanning a
large run rehashes only new or changed files. Nothing here imports torch.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from circuitsweep.checkpoints.local_hub import commit_id, hash_file
from circuitsweep.config.patterns import pattern_regex
from circuitsweep.errors import ConfigError, SnapshotError
from circuitsweep.io.atomic import atomic_write_text

#: Weight files (as in a Hub snapshot): the fingerprint covers these only.
WEIGHT_PATTERNS: tuple[str, ...] = ("*.safetensors", "pytorch_model*.bin")
#: Files a measurement reads besides the weights (configuration, tokenizer).
OTHER_PATTERNS: tuple[str, ...] = (
    "config.json",
    "generation_config.json",
    "*.safetensors.index.json",
    "pytorch_model.bin.index.json",
    "tokenizer*",
    "chat_template*",
    "special_tokens_map.json",
    "vocab*",
    "merges*",
    "*.model",
    "*.tiktoken",
)
SOURCE = "run_dir"


def list_checkpoints(path: Path, pattern: str) -> list[tuple[str, int]]:
    """``(folder name, step)`` of every checkpoint folder of ``path`` matching ``pattern``, by step.

    A name must format back exactly (``iter_{step:07d}`` matches ``iter_0001000``,
    not ``iter_1000``). Raises :class:`ConfigError` if ``path`` is not a folder.
    """
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"source.path {path} is not a folder")
    regex = pattern_regex(pattern)
    found = []
    for child in path.iterdir():
        match = regex.fullmatch(child.name)
        if match and child.is_dir() and pattern.format(step=int(match.group(1))) == child.name:
            found.append((child.name, int(match.group(1))))
    return sorted(found, key=lambda item: item[1])


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatch(name, p) for p in patterns)


def weight_files(folder: Path) -> list[Path]:
    """The weight files of a checkpoint folder (top level only; training state is not weights)."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and _matches(p.name, WEIGHT_PATTERNS))


def measured_files(folder: Path) -> list[Path]:
    """Every file a measurement reads: weights, configuration and tokenizer (not optimizer or trainer state)."""
    patterns = WEIGHT_PATTERNS + OTHER_PATTERNS
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and _matches(p.name, patterns))


class HashCache:
    """sha256 of files, remembered in a JSON file by absolute path, size and modification time (ns)."""

    def __init__(self, path: Path | None) -> None:
        self.path = None if path is None else Path(path)
        self.entries: dict[str, Any] = {}
        self.dirty = False
        if self.path is not None and self.path.is_file():
            try:
                loaded = json.loads(self.path.read_text())
                self.entries = loaded if isinstance(loaded, dict) else {}
            except (OSError, json.JSONDecodeError):
                self.entries = {}

    def sha256(self, file: Path) -> str:
        stat = file.stat()
        key = str(file.resolve())
        stamp = [stat.st_size, stat.st_mtime_ns]
        entry = self.entries.get(key)
        if isinstance(entry, dict) and entry.get("stamp") == stamp and isinstance(entry.get("sha256"), str):
            return entry["sha256"]
        digest, _ = hash_file(file)
        self.entries[key] = {"stamp": stamp, "sha256": digest}
        self.dirty = True
        return digest

    def save(self) -> None:
        if self.path is not None and self.dirty:
            atomic_write_text(self.path, json.dumps(self.entries, indent=1, sort_keys=True) + "\n")
            self.dirty = False


def file_hashes(folder: Path, files: list[Path], cache: HashCache) -> dict[str, str]:
    """``{file name: sha256}`` of ``files`` in ``folder``."""
    return {p.relative_to(folder).as_posix(): cache.sha256(p) for p in files}


def weights_fingerprint(hashes: dict[str, str]) -> str:
    """sha256 over the sorted (name, sha256) pairs of the weight files (the Hub snapshots' fingerprint)."""
    weights = sorted((name, digest) for name, digest in hashes.items() if _matches(name, WEIGHT_PATTERNS))
    return hashlib.sha256("\n".join(f"{n} {d}" for n, d in weights).encode()).hexdigest()


def fingerprints(path: Path, names: list[str], cache_file: Path | None) -> dict[str, str]:
    """Weights fingerprint of each checkpoint folder ``names`` of ``path``.

    Raises :class:`ConfigError` for a folder without weights.
    """
    cache = HashCache(cache_file)
    out = {}
    try:
        for name in names:
            folder = Path(path) / name
            files = weight_files(folder)
            if not files:
                raise ConfigError(f"{folder} holds no model.safetensors or pytorch_model*.bin")
            out[name] = weights_fingerprint(file_hashes(folder, files, cache))
    finally:
        cache.save()
    return out


def check_unchanged(folder: Path, recorded: Mapping[str, str]) -> None:
    """Refuse a checkpoint folder whose measured files are no longer those of its fetch record.

    ``recorded``: ``{file name: sha256}`` of the record. The files are read again
    (no hash cache), so a folder overwritten between its fetch and its load is
    never measured under the fingerprint of the weights it held before.
    """
    folder = Path(folder)
    current = file_hashes(folder, measured_files(folder), HashCache(None)) if folder.is_dir() else {}
    changed = sorted(name for name in set(current) | set(recorded) if current.get(name) != recorded.get(name))
    if changed:
        raise SnapshotError(
            f"{folder}: {', '.join(changed[:3])} changed after the folder was fetched for this measurement; "
            "run the workflow again to measure the new weights"
        )


def duplicate_groups(prints: dict[str, str]) -> list[list[str]]:
    """Groups (of two or more) of checkpoint folders whose weights are identical, in the given order."""
    groups: dict[str, list[str]] = {}
    for name, fingerprint in prints.items():
        groups.setdefault(fingerprint, []).append(name)
    return [names for names in groups.values() if len(names) > 1]


def snapshot_record(
    path: Path, name: str, expected_fingerprint: str | None, cache_file: Path | None = None
) -> dict[str, Any]:
    """The verification record of checkpoint folder ``name`` of ``path`` (the snapshot stage of a run_dir).

    The folder is read in place. Raises :class:`SnapshotError` if it has no
    weights or if its weights changed since the sweep was planned (then the
    plan, and which revisions need measuring, is out of date: run again).
    """
    from circuitsweep.checkpoints.hub import RECORD_FORMAT

    folder = Path(path) / name
    if not folder.is_dir():
        raise SnapshotError(f"checkpoint folder {folder} does not exist")
    cache = HashCache(cache_file)
    hashes = file_hashes(folder, measured_files(folder), cache)
    cache.save()
    if not any(_matches(n, WEIGHT_PATTERNS) for n in hashes):
        raise SnapshotError(f"{folder} holds no model.safetensors or pytorch_model*.bin")
    fingerprint = weights_fingerprint(hashes)
    if expected_fingerprint is not None and fingerprint != expected_fingerprint:
        raise SnapshotError(
            f"{folder}: its weights changed after the sweep was planned (sha256 {fingerprint[:12]}, planned "
            f"{expected_fingerprint[:12]}); run the workflow again to measure the new weights"
        )
    return {
        "format": RECORD_FORMAT,
        "repo_id": str(Path(path)),
        "revision": name,
        "commit": commit_id(hashes),
        "path": str(folder.resolve()),
        "source": SOURCE,
        "weights_fingerprint": fingerprint,
        "files": dict(sorted(hashes.items())),
    }
