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
import logging
import os
import re
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
#: A run name taken from a config file's stem follows the schema's rule for the `run` key ($defs.safe_name).
RUN_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]*"


def run_name(config: Mapping[str, Any], configfiles: Sequence[str | Path] = ()) -> str:
    """The run's name: the config's ``run`` key, else the stem of the first config file."""
    name = config.get("run")
    if name is None:
        name = Path(configfiles[0]).stem if configfiles else FALLBACK_RUN
        where = f"the name of {configfiles[0]}" if configfiles else "run"
        if isinstance(name, str) and not re.fullmatch(RUN_NAME_PATTERN, name):
            raise ConfigError(
                f"{where}: {name!r} cannot name a results folder (a run's name is letters, digits, '_', '.' and '-',"
                " as the config's `run` key; set `run:` or rename the file)"
            )
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


def resolved(root: Path | str) -> Path:
    """A run folder as the file system will place it: absolute, symbolic links followed, ``..`` taken
    after them (``results/y/../shared1`` is ``results/shared1`` whether or not ``results/y`` exists)."""
    return Path(os.path.realpath(root))


def config_identity(configfiles: Sequence[str | Path]) -> list[str]:
    """The config files as the identity file records them (``config``): relative to the working directory."""
    return [os.path.relpath(os.path.realpath(path)) for path in configfiles]


def config_from_folder(root: Path | str, configfiles: Sequence[str | Path]) -> list[str]:
    """The config files relative to the resolved run folder (``config_from_run_folder``): the same from any
    working directory, and unchanged when the run folder moves with its config (a copied clone)."""
    folder = resolved(root)
    return [os.path.relpath(os.path.realpath(path), folder) for path in configfiles]


def _record(root: Path) -> dict[str, Any] | None:
    """The identity record of run folder ``root`` (resolved), None when it has none."""
    folder = resolved(root)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"outdir: {root} is a file, not a folder; give the run a folder (or delete the file)")
    identity = folder / IDENTITY_FILE
    if not identity.exists():
        return None
    if not identity.is_file():
        raise ConfigError(f"{identity} is not a file (a folder?); delete it to reuse {root}")
    try:
        record = json.loads(identity.read_text(encoding="utf-8"))
        if not isinstance(record, dict) or not isinstance(record["config"], list):
            raise ValueError("not a mapping with a config list")
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"{identity}: not a circuitsweep run record ({error}); delete it to reuse {root}") from error
    return record


def run_folder_refusal(root: Path, configfiles: Sequence[str | Path]) -> ConfigError | None:
    """The refusal of ``root`` when another config made it (its identity file names other config files), or None.

    The folder is compared resolved (:func:`resolved`); the config files relative to it
    (:func:`config_from_folder`), so one config run from two working directories is one run.
    The refusal says how to give this config a folder of its own: a ``run:`` name or an ``outdir:``.
    """
    record = _record(Path(root))
    if record is None:
        return None
    if "config_from_run_folder" in record:
        same = record["config_from_run_folder"] == config_from_folder(root, configfiles)
        made_by = [os.path.normpath(resolved(root) / path) for path in record["config_from_run_folder"]]
    else:  # a record of an earlier version: relative to the working directory it ran from
        same = record["config"] == config_identity(configfiles)
        made_by = record["config"]
    if same:
        return None
    theirs, mine = _shown_names(made_by), _shown_names(config_identity(configfiles))
    if any(os.path.isabs(name) for name in (*theirs, *mine)):  # one lies outside: name every one in full
        theirs, mine = [os.path.abspath(name) for name in theirs], [os.path.abspath(name) for name in mine]
    return ConfigError(
        f"{root} holds the run of {_joined(theirs)}, not of {_joined(mine)}: give this config"
        " its own run name (`run: my-run` in it writes results/my-run/) or folder (`outdir: path/to/folder`),"
        f" or delete {root} to start it again"
    )


def check_run_folder(root: Path, configfiles: Sequence[str | Path]) -> None:
    """Refuse ``root`` when another config made it (:func:`run_folder_refusal`)."""
    refusal = run_folder_refusal(root, configfiles)
    if refusal is not None:
        raise refusal


def _shown_names(files: Sequence[str]) -> list[str]:
    """Config files as a person reads them: relative inside the working directory, else absolute."""
    shown = []
    for name in files:
        if os.path.isabs(name):
            relative = os.path.relpath(name)
            name = name if relative.startswith("..") else relative
        shown.append(os.path.abspath(name) if name.startswith("..") else name)
    return shown


def _joined(names: Sequence[str]) -> str:
    return ", ".join(names) or "no config file"


def claim_run_folder(root: Path, configfiles: Sequence[str | Path]) -> None:
    """Check ``root`` (:func:`check_run_folder`) and record this run's config files in it."""
    check_run_folder(root, configfiles)
    identity = resolved(root) / IDENTITY_FILE
    if not identity.is_file():
        record = {
            "config": config_identity(configfiles),
            "config_from_run_folder": config_from_folder(root, configfiles),
        }
        atomic_write_text(identity, json.dumps(record, indent=1) + "\n")


# --- one run at a time in a run folder ---------------------------------------------

#: The lock file of a run folder: held (``flock``) by the Snakemake process running in it.
LOCK_FILE = "run.lock"
#: Set for the Snakemake runs ``circuitsweep refine`` starts: the lock file it holds for them.
LOCK_ENV = "CIRCUITSWEEP_RUN_LOCK"
_held: dict[Path, int] = {}


def lock_run_folder(root: Path | str) -> Path:
    """Hold the lock of run folder ``root`` until this process ends; returns the lock file.

    A second run of the folder (the same config started from another working directory, whose
    Snakemake lock is another one) is refused with one line naming the first (process, host,
    working directory). The lock is the kernel's (``flock``): a killed run leaves no stale lock.
    Taken again by the process holding it, or by a run whose parent holds it (:data:`LOCK_ENV`), it is a no-op.
    """
    import errno
    import fcntl
    import socket
    import time

    folder = resolved(root)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"outdir: {root} is a file, not a folder; give the run a folder (or delete the file)")
    path = folder / LOCK_FILE
    if path in _held or os.environ.get(LOCK_ENV) == str(path):
        return path
    folder.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as error:
        raise ConfigError(f"cannot lock the run folder {root} ({path}: {error.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):  # a file system without locks
            os.close(fd)
            return path
        holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "another process"
        os.close(fd)
        raise ConfigError(
            f"{root} is in use by another run ({holder}); wait for it to finish, or give this one its own "
            "`run:` or `outdir:`"
        ) from None
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    holder = f"pid {os.getpid()} on {socket.gethostname()}, started {started} in {os.getcwd()}"
    os.ftruncate(fd, 0)
    os.pwrite(fd, holder.encode("utf-8"), 0)
    _held[path] = fd
    return path


def release_run_folder(root: Path | str) -> None:
    """Release the lock :func:`lock_run_folder` took (also released when the process ends)."""
    fd = _held.pop(resolved(root) / LOCK_FILE, None)
    if fd is not None:
        os.close(fd)


# --- a run that did not finish: its tables may be older than its config ---------------------

#: In a run folder while a run of it has started and not finished (and after one failed): what the
#: report shows at its top, since a report built then bundles tables and figures of an earlier run.
UNFINISHED_FILE = "run_unfinished.txt"


def mark_run_started(root: Path | str) -> None:
    """Record that a run of ``root`` started (Snakemake's ``onstart``); :func:`mark_run_finished` removes it."""
    import time

    _note(root, f"A run of this folder started at {time.strftime('%Y-%m-%d %H:%M')} and has not finished")


def mark_run_failed(root: Path | str) -> None:
    """Record that the last run of ``root`` failed (Snakemake's ``onerror``)."""
    import time

    _note(root, f"The last run of this folder failed at {time.strftime('%Y-%m-%d %H:%M')}")


def mark_run_finished(root: Path | str) -> None:
    """Remove the note of :func:`mark_run_started` (Snakemake's ``onsuccess``)."""
    (resolved(root) / UNFINISHED_FILE).unlink(missing_ok=True)


def finish_when_nothing_to_do(root: Path | str, logger: logging.Logger, message: str) -> None:
    """Remove the note of an earlier run of ``root`` when Snakemake finds nothing to do.

    Snakemake calls no hook (``onsuccess`` included) when every target is up to date, so a note
    left by a failed run would outlive the run that finds its outputs current (the failing input
    removed, a cache restored). This puts a filter on Snakemake's ``logger`` that waits for its
    "nothing to be done" line (``message``) and then removes the note, unless another run holds the
    folder's lock. Install it only in the main process of a run that executes (not a dry run).
    """
    logger.addFilter(_NothingToDoFilter(root, message))


class _NothingToDoFilter(logging.Filter):
    def __init__(self, root: Path | str, message: str) -> None:
        super().__init__()
        self.root, self.message = root, message

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).strip() == self.message.strip():
            try:
                lock_run_folder(self.root)
            except ConfigError:
                return True
            mark_run_finished(self.root)
        return True


def unfinished_note(root: Path | str) -> str | None:
    """The note of a run of ``root`` that did not finish, or None."""
    try:
        return (resolved(root) / UNFINISHED_FILE).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def _note(root: Path | str, what: str) -> None:
    text = (
        f"{what}: some tables and figures here may come from an earlier run, not from the config as it is"
        " now. Finish the run (run Snakemake again) before you read them.\n"
    )
    resolved(root).mkdir(parents=True, exist_ok=True)
    atomic_write_text(resolved(root) / UNFINISHED_FILE, text)


# --- a full disk, said where a failed job's own log could not say it -----------------------

#: Free space (bytes) below which a failed run says the disk under its folder is (nearly) full.
FULL_DISK_BYTES = 256 * 2**20


def disk_full_note(root: Path | str, floor: int = FULL_DISK_BYTES) -> str | None:
    """One line when the file system holding run folder ``root`` has less than ``floor`` bytes free, else None.

    A job that fails because the disk is full often cannot write its own log (the log is on that disk):
    Snakemake then reports an empty log, so the failed run says it here (``onerror``).
    """
    import shutil

    folder = Path(os.path.abspath(root))
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return None
    if free >= floor:
        return None
    return (
        f"circuitsweep: disk full: the file system of {root} has {free / 2**20:.1f} MiB free; a job that failed "
        "there (an empty log included) ran out of space: free space (or move outdir) and rerun"
    )
