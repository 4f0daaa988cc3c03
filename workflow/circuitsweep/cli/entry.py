"""``circuitsweep``'s entry point: parse, run one subcommand, and end every failure in one line on stderr with a
documented exit code (docs/errors.md)."""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import shutil
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from circuitsweep.cli.arguments import UsageError
from circuitsweep.cli.parser import build_parser

#: Commands a person runs at the prompt: their notes read like their other lines, not like a job's log.
PLAIN_LOG_COMMANDS = frozenset({"check-config", "refine", "refresh-manifest"})
PLAIN_LOG_FORMAT = "circuitsweep: %(message)s"
#: A job's log record: when, how grave, from which module.
JOB_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Exit code of an interrupted command (128 + SIGINT), as a shell reports it.
EXIT_INTERRUPTED = 130


def _argument_of(args: argparse.Namespace, filename: object) -> str:
    """The option whose value is ``filename`` (``--heads X``), or the file alone; for an OS error's line."""
    if filename is None:
        return ""
    for name, value in vars(args).items():
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, str) and v and os.path.abspath(v) == os.path.abspath(str(filename)) for v in values):
            return f"{name if name in ('config', 'folder', 'manifest') else '--' + name.replace('_', '-')} {filename}"
    return str(filename)


def describe_os_error(error: OSError, args: argparse.Namespace | None = None) -> tuple[str, bool]:
    """One line for a file-system error a command met, and whether a rerun may fail the same way.

    A full disk says so and names the path and its free space (a rerun after freeing space succeeds).
    """
    if error.filename is None:
        where = ""
    else:
        where = _argument_of(args, error.filename) if args is not None else str(error.filename)
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        free = ""
        if error.filename is not None:
            with contextlib.suppress(OSError, TypeError, ValueError):
                free = f" ({shutil.disk_usage(_existing_parent(error.filename)).free:,} bytes free)"
        return f"disk full: cannot write {where or 'a file'}{free}; free space there (or move outdir) and rerun", False
    detail = error.strerror or " ".join(str(error).split())[:300] or type(error).__name__
    if isinstance(error, FileNotFoundError) and not error.strerror:
        detail = f"{detail} does not exist"
    transient = error.errno in (errno.EIO, errno.ENOMEM, errno.EAGAIN, errno.ETIMEDOUT, errno.ESTALE)
    return (f"{where}: {detail}" if where else detail), not transient


def _existing_parent(path: object) -> Path:
    folder = Path(os.path.abspath(str(path)))
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _error_line(command: str, message: str) -> str:
    """The one line of a failed command: the log's last line says it all."""
    from circuitsweep.errors import one_line

    return f"circuitsweep {command}: error: {one_line(message)}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand. Every failure ends here in one line on stderr and a documented exit code
    (docs/errors.md): 3 when a rerun would fail the same way, 1 when it may not, 130 when interrupted."""
    from circuitsweep.plan import retry

    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), "")
    args = None
    try:
        args = build_parser().parse_args(argv)
        command = args.command
        return _run(args, argv)
    except UsageError as error:
        _say(" ".join(str(error).split()))
        return retry.EXIT_DETERMINISTIC
    except KeyboardInterrupt:
        _say(f"circuitsweep {command}: interrupted (a rerun resumes where this one stopped)")
        return EXIT_INTERRUPTED
    except OSError as error:
        line, deterministic = describe_os_error(error, args)
        _say(_error_line(command, line))
        return retry.EXIT_DETERMINISTIC if deterministic else retry.EXIT_USER_ERROR
    except RecursionError:
        _say(_error_line(command, "an input is nested too deeply to read"))
        return retry.EXIT_DETERMINISTIC
    except Exception as error:  # the boundary: a crash, or an input no check caught
        if args is not None and args.verbose:
            traceback.print_exc()
        detail = " ".join(str(error).split())[:300]
        hint = "" if args is not None and args.verbose else "; run it with -v for the traceback"
        _say(_error_line(command, f"unexpected {type(error).__name__}: {detail}{hint}"))
        return retry.EXIT_USER_ERROR


def _say(line: str) -> None:
    """Print the error line; where stderr itself cannot be written (a log on a full disk) it is lost, not raised."""
    with contextlib.suppress(OSError, ValueError):
        print(line, file=sys.stderr, flush=True)


def _run(args: argparse.Namespace, argv: list[str]) -> int:
    from circuitsweep import warm_worker

    setting = os.environ.get(warm_worker.ENV)
    if setting and args.command in warm_worker.WARM_COMMANDS and not os.environ.get(warm_worker.CHILD_ENV):
        code = warm_worker.run_warm(argv, setting, entry="circuitsweep.cli:main")
        if code is not None:
            return code
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format=PLAIN_LOG_FORMAT if args.command in PLAIN_LOG_COMMANDS else JOB_LOG_FORMAT,
        handlers=[_StderrHandler()],
    )
    from circuitsweep.errors import USER_ERRORS, error_line
    from circuitsweep.plan import retry

    if (replayed := retry.replay_failure(argv, args.attempt)) is not None:
        _say(replayed)
        return retry.EXIT_DETERMINISTIC
    try:
        args.func(args)
    except USER_ERRORS as error:
        message = error_line(error, args.command)
        _say(message)
        return retry.exit_code(argv, error, message, args.attempt)
    return 0


class _StderrHandler(logging.StreamHandler):
    """Logs to whatever ``sys.stderr`` is when a record is emitted (a command run in-process, its stderr captured)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass
