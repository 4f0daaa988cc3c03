"""A researcher's own training run: checkpoint folders named by a pattern (``source: {type: run_dir}``).

HF Trainer saves ``<output_dir>/checkpoint-<step>/`` folders (config.json,
model.safetensors, optimizer and trainer state); other trainers use
``step<step>`` or ``iter_<step:07d>``. The source's ``pattern`` is a Python
format string with one ``{step}`` field (with an optional integer format
spec); every subfolder whose name the pattern formats back is a revision, its
step parsed from the name; a name with more leading zeros than the pattern
writes (``checkpoint-01300``) is that step too, unless another folder holds
it. Folders that look like checkpoints but do not parse (``checkpoint-best``)
are listed so that planning can say it skipped them.

Planning checks what it can without torch before any job runs (:func:`check_weights`):
every weight file must be complete (a safetensors header describing more bytes than
the file holds, a file that is no safetensors or PyTorch file at all, a shard
named in the index but missing are refused, naming the file).

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
import os
import string
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from circuitsweep.checkpoints.local_hub import commit_id, hash_file
from circuitsweep.checkpoints.safetensors_format import safetensors_header
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
#: The files :func:`has_tokenizer` looks for; a folder with any one of them ships a tokenizer.
TOKENIZER_FILES: tuple[str, ...] = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "tokenizer.model")


def has_tokenizer(folder: Path) -> bool:
    """Whether a checkpoint or snapshot folder ships tokenizer files (real checkpoints do; toy ones do not)."""
    return any((Path(folder) / name).is_file() for name in TOKENIZER_FILES)


def no_tokenizer(model: str, folder: Path, others: int = 0) -> str:
    """The one line that refuses primitives of ``model`` because ``folder`` ships no tokenizer (and ``others``
    more of its folders neither): planning says it of a run_dir, a primitive job of any other snapshot."""
    files = ", ".join(TOKENIZER_FILES[:-1]) + " or " + TOKENIZER_FILES[-1]
    more = f" (nor do {others} more of its checkpoint folders)" if others else ""
    return (
        f"models.{model}: primitives need the checkpoints' tokenizer, and {folder} holds none ({files}){more}; "
        f"save the tokenizer beside the weights (tokenizer.save_pretrained) or set models.{model}.primitives: "
        "{enabled: false}"
    )


def list_checkpoints(path: Path, pattern: str, skipped: list[str] | None = None) -> list[tuple[str, int]]:
    """``(folder name, step)`` of every checkpoint folder of ``path`` matching ``pattern``, by step.

    A name must format back (``iter_{step:07d}`` matches ``iter_0001000``, not
    ``iter_1000``), or carry more leading zeros than the pattern writes
    (``checkpoint-01300`` is step 1300). ``skipped``, when given, receives the
    names of the folders that share the pattern's fixed text but are not
    checkpoints by it (``checkpoint-best``, ``iter_1000``), in name order.
    Raises :class:`ConfigError` if ``path`` is not a folder or two folders hold
    one step (``checkpoint-1300`` and ``checkpoint-01300``), naming the key under
    the model (``source.path``, ``source``).
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"source.path {path} does not exist (a training run's output folder)")
    if not path.is_dir():
        raise ConfigError(f"source.path {path} is not a folder")
    regex = pattern_regex(pattern)
    prefix, suffix = _fixed_text(pattern)
    found: dict[int, list[str]] = {}
    near: list[str] = []
    for child in sorted(path.iterdir()):
        if child.name.startswith("."):
            continue
        match = regex.fullmatch(child.name)
        step = int(match.group(1)) if match else None
        if not child.is_dir():
            if step is not None and formats_back(child.name, pattern, step):
                if child.is_symlink() and not child.exists():
                    raise ConfigError(
                        f"source: checkpoint {child.name} of {path} is a link to {os.readlink(child)}, which does "
                        "not exist (a disk not mounted?)"
                    )
                near.append(child.name)
            continue
        if step is not None and formats_back(child.name, pattern, step):
            found.setdefault(step, []).append(child.name)
        elif _looks_like(child.name, prefix, suffix):
            near.append(child.name)
    for step, names in sorted(found.items()):
        if len(names) > 1:
            names = sorted(names, key=len)
            raise ConfigError(
                f"source: checkpoint folders {names[0]} and {names[1]} of {path} both hold step {step}: "
                "remove or rename one (a step is one checkpoint)"
            )
    if skipped is not None:
        skipped.extend(near)
    return [(names[0], step) for step, names in sorted(found.items())]


def formats_back(name: str, pattern: str, step: int) -> bool:
    """Whether ``pattern`` formats ``step`` to folder ``name``, or to ``name`` less leading zeros of the step.

    The rule that makes a folder a checkpoint: ``checkpoint-01300`` is step 1300 of ``checkpoint-{step}``,
    ``iter_1000`` is no step of ``iter_{step:07d}`` (fewer digits than it writes), and a name whose step
    is written in other digits than ASCII's (``checkpoint-٣``) is no step at all.
    """
    written = pattern.format(step=step)
    if name == written:
        return True
    prefix, suffix = _fixed_text(pattern)
    if not (name.startswith(prefix) and name.endswith(suffix)) or len(name) < len(prefix) + len(suffix):
        return False
    digits = name[len(prefix) : len(name) - len(suffix)]
    field = written[len(prefix) : len(written) - len(suffix)]
    return (
        len(digits) > len(field) and digits.isascii() and digits.isdigit() and digits.lstrip("0") == field.lstrip("0")
    )


def _fixed_text(pattern: str) -> tuple[str, str]:
    """The text of ``pattern`` before and after its ``{step}`` field (``checkpoint-{step}``: ``checkpoint-``, '')."""
    parts = list(string.Formatter().parse(pattern))
    field = next(i for i, part in enumerate(parts) if part[1] is not None)
    before = "".join(literal for literal, _, _, _ in parts[: field + 1])
    return before, "".join(literal for literal, _, _, _ in parts[field + 1 :])


def _looks_like(name: str, prefix: str, suffix: str) -> bool:
    """Whether folder ``name`` looks like a checkpoint of a pattern with this fixed text (``checkpoint-best``)."""
    if prefix:
        return name.startswith(prefix)
    if suffix:
        return name.endswith(suffix)
    return name[:1].isdigit()


def pattern_display(pattern: str) -> str:
    """``pattern`` as a reader sees it: ``checkpoint-<step>`` (a padded one as written: ``iter_{step:07d}``)."""
    prefix, suffix = _fixed_text(pattern)
    return pattern if "{step:" in pattern else f"{prefix}<step>{suffix}"


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatch(name, p) for p in patterns)


def weight_files(folder: Path) -> list[Path]:
    """The weight files of a checkpoint folder (top level only; training state is not weights)."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and _matches(p.name, WEIGHT_PATTERNS))


def measured_files(folder: Path) -> list[Path]:
    """Every file a measurement reads: weights, configuration and tokenizer (not optimizer or trainer state)."""
    patterns = WEIGHT_PATTERNS + OTHER_PATTERNS
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and _matches(p.name, patterns))


#: Weight index files of sharded checkpoints (their ``weight_map`` names each tensor's shard).
SHARD_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


def check_safetensors(path: Path) -> None:
    """Refuse, naming ``path``, a ``.safetensors`` file that is not one or is shorter than its header says.

    Reads the header only (:func:`safetensors_header`, whose tensors' ``data_offsets``
    end where the file must): a truncated copy or download, a file of other bytes
    under the name. No torch: planning runs it on every checkpoint folder before any job.
    """
    start, header = safetensors_header(path)
    size = Path(path).stat().st_size
    end = start + max((entry["data_offsets"][1] for entry in header.values()), default=0)
    if end > size:
        raise SnapshotError(f"{path} is truncated: its header promises {end} bytes, the file holds {size}")


#: How every file torch.save writes begins: a zip archive (since torch 1.6), else a pickle (PROTO opcode).
_ZIP_MAGIC, _PICKLE_PROTO = b"PK\x03\x04", 0x80


def check_pickle(path: Path) -> None:
    """Refuse, naming ``path``, a ``pytorch_model*.bin`` that is neither torch.save's zip archive nor a
    pickle, or a zip archive cut short (its closing directory missing). Reads a few bytes, not the tensors."""
    path = Path(path)
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head == _ZIP_MAGIC:
        if not zipfile.is_zipfile(path):
            raise SnapshotError(f"{path} is truncated: the zip archive torch.save writes lacks its closing directory")
    elif not head or head[0] != _PICKLE_PROTO:
        raise SnapshotError(f"{path} is not a PyTorch weights file (neither a zip archive nor a pickle)")


def check_shards(snapshot: Path) -> None:
    """Refuse a sharded snapshot whose index names a shard file that is not there."""
    for index_name in SHARD_INDEXES:
        index = Path(snapshot) / index_name
        if not index.is_file():
            continue
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            shards = sorted({str(shard) for shard in weight_map.values()})
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise SnapshotError(f"{index}: not a readable weight index ({type(error).__name__})") from None
        missing = [shard for shard in shards if not (Path(snapshot) / shard).is_file()]
        if missing:
            raise SnapshotError(
                f"{snapshot}: shard {missing[0]} of {index_name} is missing ({len(missing)} of {len(shards)} shards); "
                "its tensors would be filled at random"
            )


def check_weights(folder: Path) -> None:
    """Refuse, naming the file, a checkpoint folder whose weights could not all be read (no torch, headers only).

    The files the loader reads (safetensors if any, else ``pytorch_model*.bin``) must be complete
    (:func:`check_safetensors`, :func:`check_pickle`) and every shard an index names present.
    """
    folder = Path(folder)
    files = weight_files(folder)
    if not files:
        raise SnapshotError(f"{folder} holds no model.safetensors or pytorch_model*.bin")
    for path in [p for p in files if p.suffix == ".safetensors"] or files:
        if path.suffix == ".safetensors":
            check_safetensors(path)
        else:
            check_pickle(path)
    check_shards(folder)


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
