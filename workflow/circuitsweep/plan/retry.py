"""Retries that can help and retries that cannot: a deterministic failure is not retried larger.

Snakemake 9 retries every failed job the same way: ``retries`` is a count (per
rule or per run), ``attempt`` grows whatever the cause, and the SLURM executor
reports FAILED, OUT_OF_MEMORY and TIMEOUT alike. So the workflow tells the
causes apart itself, through a record beside the job's log:

- The CLI exits with :data:`EXIT_DETERMINISTIC` (3) for a failure that a new
  attempt would repeat (bad data, a bad config, a corrupt or foreign cache, an
  unknown repository or revision) and, when it runs as an attempt of a
  Snakemake job (``circuitsweep --attempt N``, which every rule passes from its
  ``attempt`` resource), writes ``<log>.deterministic``, ``<log>`` being the file its
  stderr goes to (every rule sends it to its ``log:``).
- The record holds the command line, the attempt that wrote it and the size and
  modification time of every file the command names (its inputs). Only a later
  attempt of the same command with the same inputs replays it; attempt 1 (a new
  run) deletes it, and a command run by hand (no ``--attempt``) neither
  writes nor replays one (:func:`replay_failure`).
- The rules' resources size a job whose record exists as attempt 1 (no more
  memory or time), and delete a stale record at attempt 1 (:func:`sizing_attempt`).

What a retry can fix keeps exit code 1 and grows: OUT_OF_MEMORY and TIMEOUT
(SLURM kills the job), a crash (a traceback), a job that does not fit its
``mem_mb`` (:class:`sizing.InsufficientMemoryError`), and every Hub error
other than an unknown repository or revision (network, disk, verification).
No torch here; Linux only (the log is found through ``/proc/self/fd/2``;
elsewhere nothing is recorded and every failure is retried larger).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from circuitsweep.errors import CircuitsweepError
from circuitsweep.io.atomic import atomic_write_text
from circuitsweep.plan.sizing import InsufficientMemoryError

#: Exit code of a command that failed for a reason a retry would repeat.
EXIT_DETERMINISTIC = 3
#: Exit code of a user error that a retry may fix.
EXIT_USER_ERROR = 1
RECORD_SUFFIX = ".deterministic"
#: Options whose values change between attempts of one job: not part of its identity.
VOLATILE_OPTIONS = ("--mem-mb", "--threads", "--attempt")
#: Modules whose errors are network failures (a cause among them makes a failure transient).
NETWORK_MODULES = ("httpx", "httpcore", "httpx2", "requests", "urllib3", "huggingface_hub")


def _causes(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and all(current is not e for e in seen):
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def is_deterministic(error: BaseException) -> bool:
    """Whether a new attempt of the same job would fail the same way.

    True for the package's user errors (:class:`CircuitsweepError`) except: a
    job that does not fit its memory, a Hub error other than an unknown
    repository or revision or a damaged local copy, and any error caused by an
    ``OSError`` or a network library's error (a file system or a connection that
    may recover).
    """
    if not isinstance(error, CircuitsweepError) or isinstance(error, InsufficientMemoryError):
        return False
    hub = sys.modules.get("circuitsweep.checkpoints.hub")
    if hub is not None and isinstance(error, hub.HubError):
        return isinstance(error, (hub.UnknownRepoError, hub.UnknownRevisionError, hub.LocalCopyDamaged))
    for cause in _causes(error)[1:]:
        if isinstance(cause, OSError) or type(cause).__module__.split(".")[0] in NETWORK_MODULES:
            return False
    return True


def record_path(log: Path | str) -> Path:
    """The record of a deterministic failure of the job that writes ``log``."""
    return Path(str(log) + RECORD_SUFFIX)


def stderr_log() -> Path | None:
    """The regular file this process's stderr goes to (a rule's log), or None (a terminal, a pipe, not Linux)."""
    try:
        if not stat.S_ISREG(os.fstat(2).st_mode):
            return None
        target = Path(os.readlink("/proc/self/fd/2"))
    except OSError:
        return None
    return target if target.is_absolute() and target.is_file() else None  # not a deleted temporary file


def job_key(argv: Sequence[str]) -> list[str]:
    """A command line without the options that change between attempts (:data:`VOLATILE_OPTIONS`)."""
    key: list[str] = []
    skip = False
    for item in argv:
        if skip:
            skip = False
        elif item in VOLATILE_OPTIONS:
            skip = True
        elif not item.startswith(tuple(f"{option}=" for option in VOLATILE_OPTIONS)):
            key.append(item)
    return key


def attempt_resource(wildcards: object, attempt: int) -> int:
    """A rule's ``attempt`` resource: its command gets it as ``circuitsweep --attempt {resources.attempt}``."""
    return int(attempt)


def _named_files(argv: Sequence[str]) -> list[str]:
    """The existing files a command line names: its arguments and the strings of its JSON arguments."""
    names: list[str] = []
    for item in argv:
        names.append(item)
        if item[:1] in "{[":
            with contextlib.suppress(ValueError, RecursionError):
                names.extend(_json_strings(json.loads(item)))
    return sorted({name for name in names if name and len(name) < 4096 and _is_file(name)})


def _json_strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _json_strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _json_strings(item)]
    return []


def _is_file(name: str) -> bool:
    try:
        return Path(name).is_file()
    except (OSError, ValueError):
        return False


def input_stamp(argv: Sequence[str]) -> list[list]:
    """``[path, size, mtime_ns]`` of every file the command names: a changed input makes it a new job."""
    stamp: list[list] = []
    for name in _named_files(argv):
        with contextlib.suppress(OSError):
            info = Path(name).stat()
            stamp.append([str(Path(name).resolve()), info.st_size, info.st_mtime_ns])
    return stamp


def exit_code(
    argv: Sequence[str], error: BaseException, message: str, attempt: int | None, log: Path | None = None
) -> int:
    """The exit code of a command that failed with ``error``; records a deterministic failure beside its log.

    Recorded only for an attempt of a Snakemake job (``attempt`` >= 1; None: run by hand).
    ``message``: the line the command printed; ``log``: default :func:`stderr_log`.
    """
    if not is_deterministic(error):
        return EXIT_USER_ERROR
    attempt = attempt if attempt is not None and attempt >= 1 else None
    log = log if log is not None else stderr_log()
    if log is not None and attempt is not None:
        record = {"argv": job_key(argv), "attempt": attempt, "inputs": input_stamp(argv), "message": message}
        with contextlib.suppress(OSError):  # the record only saves a retry's time
            atomic_write_text(record_path(log), json.dumps(record) + "\n")
    return EXIT_DETERMINISTIC


def replay_failure(argv: Sequence[str], attempt: int | None, log: Path | None = None) -> str | None:
    """The error recorded by an earlier attempt of this very job (same arguments, same inputs), or None.

    ``attempt``: the job's Snakemake attempt, None for a command run by hand (never replayed);
    attempt 1 (a new run) deletes a stale record. ``log``: default :func:`stderr_log`.
    """
    log = log if log is not None else stderr_log()
    if log is None or attempt is None or attempt < 1:
        return None
    record = record_path(log)
    if attempt == 1:
        with contextlib.suppress(OSError):
            record.unlink()
        return None
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("argv") != job_key(argv):
        return None
    recorded = data.get("attempt")
    if not isinstance(recorded, int) or not 1 <= recorded < attempt or data.get("inputs") != input_stamp(argv):
        return None
    return (
        f"{data.get('message')}\n(repeated from the previous attempt of this job (attempt {recorded}), which failed "
        "for a reason a retry would repeat; not run again. A new run of the workflow runs it afresh)"
    )


def sizing_attempt(log: Path | None, attempt: int) -> int:
    """The attempt to size a job for: ``attempt``, or 1 when its last attempt failed deterministically.

    At attempt 1 a record left by an earlier run is deleted (it holds only
    within one run). ``log``: the job's log file, None when it has none.
    """
    attempt = max(1, int(attempt))
    if log is None:
        return attempt
    record = record_path(log)
    if attempt == 1:
        with contextlib.suppress(OSError):
            record.unlink()
        return 1
    return 1 if record.is_file() else attempt


_WILDCARD = re.compile(r"\{(\w+)(?:,[^{}]*)?\}")


def job_log(patterns: Sequence[str], wildcards: Mapping[str, str]) -> Path | None:
    """A job's first log file from its rule's ``log:`` patterns and its wildcards (absolute), or None."""
    if not patterns:
        return None
    path = _WILDCARD.sub(lambda match: str(wildcards[match.group(1)]), str(patterns[0]))
    return Path(path).resolve()
