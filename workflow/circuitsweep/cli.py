"""The ``circuitsweep`` command line: one subcommand per workflow stage.

Snakemake rules call these subcommands; each takes its scientific settings
as one JSON argument (the rule's ``params``), so a change of settings reruns
exactly the jobs it affects. ``@PATH`` in place of the JSON reads it from that
file: the rules pass long settings (every revision's expected cache settings)
that way, so a failed job's command line stays short. Heavy libraries are imported inside the
subcommands, so a command that loads no model starts fast.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import logging
import math
import os
import re
import shutil
import stat
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from circuitsweep.plan.sweep import Plan

log = logging.getLogger("circuitsweep")

#: Commands a person runs at the prompt: their notes read like their other lines, not like a job's log.
PLAIN_LOG_COMMANDS = frozenset({"check-config", "refine", "refresh-manifest"})
PLAIN_LOG_FORMAT = "circuitsweep: %(message)s"
#: A job's log record: when, how grave, from which module.
JOB_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def workflow_root() -> str:
    """The repository holding ``workflow/Snakefile`` that this package lies in, else ``"."``.

    The Snakefile resolves a config's relative paths (a ``run_dir`` source's ``path``) against that
    folder, whatever Snakemake's working directory; commands that plan a run do the same.
    """
    repo = Path(__file__).resolve().parents[2]
    return str(repo) if (repo / "workflow" / "Snakefile").is_file() else "."


# --- the boundary: what every argument is, checked before a command runs ----------------------

#: The most a ``@FILE`` argument may hold (bytes): the workflow's longest settings (every revision's
#: expected cache settings of a 2,000-revision sweep) are a few MB.
SETTINGS_FILE_LIMIT = 64 * 2**20
#: Exit code of an interrupted command (128 + SIGINT), as a shell reports it.
EXIT_INTERRUPTED = 130
#: The steps ``circuitsweep demo-run`` saves by default (``toy.demo_run``): the loss plateau, the induction onset
#: (about step300) and after it.
DEMO_STEPS = (0, 100, 200, 250, 300, 400)


class Argument:
    """What one command-line argument is (an argparse ``type``): the boundary checks it before the command runs.

    A value that is not what it should be raises :class:`argparse.ArgumentTypeError`; the
    parser (:class:`_Parser`) turns that into one line naming the argument, exit 3.
    Every argument of every subcommand declares one (tests/test_cli_boundary.py enumerates them).
    """

    #: What the value is, in the error line and the property test (``input file``, ``count``...).
    kind = "value"

    def __call__(self, text: str) -> Any:
        return text

    def describe(self) -> str:
        """The help text of an option declared without one: what its value must be."""
        return self.kind

    def __repr__(self) -> str:
        return self.kind


def _stat(text: str) -> os.stat_result | None:
    """``os.stat`` of a path argument, None when nothing is there; refuses what cannot be a path."""
    if not text or "\0" in text:
        raise argparse.ArgumentTypeError(f"{text!r} is not a path")
    try:
        return os.stat(text)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        raise argparse.ArgumentTypeError(f"{text}: a part of this path is a file, not a folder") from None
    except (OSError, ValueError) as error:
        raise argparse.ArgumentTypeError(f"{text}: {getattr(error, 'strerror', None) or error}") from None


def _writable_parent(text: str) -> None:
    """Refuse an output path whose nearest existing parent is not a folder this process may write in."""
    parent = Path(os.path.abspath(text)).parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{text}: the folder {parent} is not writable")


class InputFile(Argument):
    """An existing regular file the command reads (``what``: its kind, e.g. ``Parquet table``).

    ``columns``: for a table, columns it must have (read from the Parquet schema or the CSV header),
    so a table of another kind is refused naming the argument. ``blank``: an empty value stands for
    no file (lists the rules pad). ``content``: whether the command reads what the file holds (False:
    only that it exists)."""

    kind = "input file"

    def __init__(
        self,
        what: str = "file",
        columns: Sequence[str] = (),
        blank: bool = False,
        content: bool = True,
        suffix: str | None = None,
    ) -> None:
        self.what = what
        self.columns = tuple(columns)
        self.blank = blank
        self.content = content
        self.suffix = suffix

    def describe(self) -> str:
        columns = f" (with columns {', '.join(self.columns)})" if self.columns else ""
        return f"{self.what}{columns} to read"

    def __call__(self, text: str) -> str:
        if self.blank and text == "":
            return text
        self.readable(text)
        if self.suffix is not None and not text.endswith(self.suffix):
            kind = {".parquet": "Parquet", ".csv": "CSV"}.get(self.suffix, self.suffix)
            raise argparse.ArgumentTypeError(
                f"{text}: the {self.what} is read as {kind}; give its {self.suffix} file (the run writes one beside it)"
            )
        if self.columns:
            missing = [c for c in self.columns if c not in _table_columns(text, self.what)]
            if missing:
                raise argparse.ArgumentTypeError(f"{text} is not a {self.what}: it has no column {', '.join(missing)}")
        return text

    def readable(self, text: str) -> None:
        """Refuse ``text`` unless it is an existing regular file this process may read."""
        found = _stat(text)
        if found is None:
            raise argparse.ArgumentTypeError(f"{text} does not exist")
        if stat.S_ISDIR(found.st_mode):
            raise argparse.ArgumentTypeError(f"{text} is a folder, not a {self.what}")
        if not stat.S_ISREG(found.st_mode):
            raise argparse.ArgumentTypeError(f"{text} is not a regular file (a pipe or a device?), not a {self.what}")
        if not os.access(text, os.R_OK):
            raise argparse.ArgumentTypeError(f"{text} cannot be read (permissions)")


class CsvTable(InputFile):
    """An existing ``.csv`` table whose header row reads as UTF-8."""

    def __init__(self) -> None:
        super().__init__("CSV table")

    def __call__(self, text: str) -> str:
        super().__call__(text)
        if not text.endswith(".csv"):
            raise argparse.ArgumentTypeError(f"{text} is not a CSV table (.csv)")
        _table_columns(text, self.what)
        return text


class RevisionScores(InputFile):
    """One revision's head scores of ``measure-revision`` (``cache/<model>/<revision>/heads.parquet``).

    A file of another kind (its statistics shard, the run's heads table, its natural-text scores) is refused
    naming it, from its suffix, columns and metadata (one revision's scores name their model and revision in
    it). A ``.parquet`` file whose schema cannot be read passes: it is a damaged cache, which the command names
    (delete it and rerun)."""

    #: Columns of a revision's head scores that no other per-revision table has all of (natural-text scores
    #: have no ``sink_alpha``; ablation rows no ``layer``).
    REQUIRED = ("layer", "head", "sel_induction", "sink_alpha")

    def __init__(self) -> None:
        super().__init__("per-revision score table", self.REQUIRED, suffix=".parquet")

    def __call__(self, text: str) -> str:
        self.readable(text)
        not_this = f"{text} is not a {self.what} (measure-revision's <model>/<revision>/heads.parquet"
        if not text.endswith(self.suffix):
            raise argparse.ArgumentTypeError(f"{not_this}; this is a {Path(text).suffix or 'suffix-less'} file)")
        try:
            import pyarrow.parquet as pq

            from circuitsweep.io.contracts import META_KEY

            schema = pq.read_schema(text)
            metadata = json.loads((schema.metadata or {}).get(META_KEY.encode(), b"{}"))
        except Exception:  # a damaged score file: the command says so, and how to measure it again
            return text
        missing = [column for column in self.columns if column not in schema.names]
        if missing:
            raise argparse.ArgumentTypeError(f"{not_this}; it has no column {', '.join(missing)})")
        if not isinstance(metadata, dict) or not all(isinstance(metadata.get(k), str) for k in ("model", "revision")):
            raise argparse.ArgumentTypeError(
                f"{not_this}; its metadata names no model and revision: a table of many revisions, such as the"
                " run's tables/heads.parquet?)"
            )
        return text


def _table_columns(path: str, what: str) -> list[str]:
    """The columns of a table file: the Parquet schema's, or a ``.csv`` file's header."""
    try:
        if path.endswith(".csv"):
            with open(path, "rb") as handle:
                header = handle.readline(1 << 20).decode("utf-8")
            return [name.strip().strip('"') for name in header.rstrip("\r\n").split(",")]
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    except (OSError, UnicodeDecodeError, ValueError) as error:
        detail = " ".join(str(error).split())[:160]
        kind = "CSV" if path.endswith(".csv") else "Parquet"
        raise argparse.ArgumentTypeError(f"{path} is not a readable {kind} {what} ({detail})") from None
    except Exception as error:  # pyarrow's own errors (ArrowInvalid is a ValueError; others are not)
        detail = " ".join(str(error).split())[:160]
        raise argparse.ArgumentTypeError(f"{path} is not a readable Parquet {what} ({detail})") from None


class InputFolder(Argument):
    """An existing folder the command reads (a snapshot, the workflow's root)."""

    kind = "input folder"

    def __init__(self, what: str = "folder") -> None:
        self.what = what

    def describe(self) -> str:
        return f"{self.what} to read"

    def __call__(self, text: str) -> str:
        found = _stat(text)
        if found is None:
            raise argparse.ArgumentTypeError(f"{text} does not exist")
        if not stat.S_ISDIR(found.st_mode):
            raise argparse.ArgumentTypeError(f"{text} is a file, not a {self.what}")
        return text


class OutputFile(Argument):
    """A file the command writes: not a folder, in a folder it may create; ``suffixes``: the formats it can write."""

    kind = "output file"

    def __init__(self, suffixes: Sequence[str] = ()) -> None:
        self.suffixes = tuple(suffixes)

    def describe(self) -> str:
        return f"file to write ({', '.join(self.suffixes)})" if self.suffixes else "file to write (atomically)"

    def __call__(self, text: str) -> str:
        found = _stat(text)
        if found is not None and stat.S_ISDIR(found.st_mode):
            raise argparse.ArgumentTypeError(f"{text} is a folder; give the file to write")
        if found is not None and not stat.S_ISREG(found.st_mode):
            raise argparse.ArgumentTypeError(f"{text} is not a regular file (a pipe or a device?)")
        if self.suffixes and Path(text).suffix.lower() not in self.suffixes:
            raise argparse.ArgumentTypeError(
                f"{text}: cannot write a {Path(text).suffix or 'suffix-less'} file; "
                f"give one of {', '.join(self.suffixes)}"
            )
        _writable_parent(text)
        return text


class OutputFolder(Argument):
    """A folder the command creates or fills (it may exist)."""

    kind = "output folder"

    def describe(self) -> str:
        return "folder to create or fill"

    def __call__(self, text: str) -> str:
        found = _stat(text)
        if found is not None and not stat.S_ISDIR(found.st_mode):
            raise argparse.ArgumentTypeError(f"{text} is a file, not a folder")
        _writable_parent(text)
        return text


class Json(Argument):
    """A JSON argument, or ``@PATH``: the JSON text of that file, read bounded (a regular file of at most
    :data:`SETTINGS_FILE_LIMIT` bytes: a pipe or a device is refused, never waited on).

    ``shape``: the JSON type it must be (``dict`` or ``list``); ``keys``: keys an object must hold;
    ``check``: what else the value must be (a function raising ``ValueError`` with the reason, e.g. the
    config schema's check of the thresholds it holds: :func:`_check_thresholds`). A
    workflow settings file (``settings/<name>-<digest>.json``) must still hold what was written: its
    content is checked against the digest in its name (``io.settings_files``).
    """

    kind = "JSON"

    def __init__(
        self, shape: type | None = None, keys: Sequence[str] = (), check: Callable[[Any], object] | None = None
    ) -> None:
        self.shape = shape
        self.keys = tuple(keys)
        self.check = check

    def describe(self) -> str:
        shape = "a JSON object" if self.shape is dict else "a JSON list" if self.shape is list else "JSON"
        keys = f" with keys {', '.join(self.keys)}" if self.keys else ""
        return f"{shape}{keys}, or @FILE holding it (set by the rules)"

    def __call__(self, text: str) -> Any:
        where = ""
        if text.startswith("@"):
            where = f"{text[1:]}: "
            text = read_settings_file(text[1:])
        try:
            value = json.loads(text)
        except (ValueError, RecursionError) as error:  # JSONDecodeError, or an integer of too many digits
            raise argparse.ArgumentTypeError(f"{where}not valid JSON: {str(error)[:200]}") from None
        names = {dict: "a JSON object ({...})", list: "a JSON list ([...])"}
        if self.shape is not None and not isinstance(value, self.shape):
            raise argparse.ArgumentTypeError(f"{where}expected {names[self.shape]}, got {type(value).__name__}")
        missing = [key for key in self.keys if key not in value]
        if missing:
            raise argparse.ArgumentTypeError(f"{where}the JSON object lacks {', '.join(map(repr, missing))}")
        if self.check is not None:
            try:
                self.check(value)
            except ValueError as error:  # a ConfigError too
                raise argparse.ArgumentTypeError(f"{where}{error}") from None
        return value


def _schema_lines(value: Any, node: dict[str, Any], name: str = "") -> list[str]:
    """The config schema's problems with ``value`` (schema ``node``: NaN, infinity, out-of-range values and unknown
    keys refused, as in a config and in the notebook API), each naming its key under ``name``."""
    from circuitsweep.config.load import schema_problems

    lines, missing = [], []
    for problem in schema_problems(value, node):
        top = problem.removeprefix("the top level: ")
        if required := re.fullmatch(r"'(\w+)' is a required property", top):
            missing.append(required.group(1))
        elif top != problem:
            lines.append(f"{name}: {top}" if name else top)
        else:
            lines.append(f"{name}.{problem}" if name else re.sub(r"^(\d+):", r"entry \1:", problem))
    if missing:
        lines.insert(0, f"{name}: no {', '.join(missing)}" if name else f"no {', '.join(missing)}")
    return lines


def _refuse_lines(lines: list[str]) -> None:
    if lines:
        raise ValueError("; ".join(lines))


def _thresholds_node(names: Sequence[str]) -> dict[str, Any]:
    """The config schema of ``thresholds``, narrowed to the keys ``names``, each required."""
    from circuitsweep.config.load import schema

    node = schema()["$defs"]["thresholds"]
    return {**node, "properties": {key: node["properties"][key] for key in names}, "required": list(names)}


def _threshold_lines(value: Any, kind: str, name: str = "") -> list[str]:
    """Problems of ``value`` as the thresholds of ``kind`` (``class``: :class:`Thresholds`, what classification
    takes; ``milestone``: :class:`MilestoneThresholds`), checked by the config's schema as
    :func:`circuitsweep.api.study_thresholds` checks them."""
    from dataclasses import fields

    from circuitsweep.config.thresholds import MilestoneThresholds, Thresholds

    cls = Thresholds if kind == "class" else MilestoneThresholds
    return _schema_lines(value, _thresholds_node([field.name for field in fields(cls)]), name)


def _check_thresholds(value: Any) -> None:
    """The classification thresholds (``classify_heads``'s params)."""
    _refuse_lines(_threshold_lines(value, "class"))


def _check_milestone_thresholds(value: dict[str, Any]) -> None:
    """Per model, its milestone thresholds (``head_tables``'s params)."""
    _refuse_lines([line for model, given in value.items() for line in _threshold_lines(given, "milestone", model)])


def _top_k_lines(value: Any, name: str = "") -> list[str]:
    """Problems of ``value`` as the config's ``ablation.spectral_top_k`` (counts, shares of the heads, elbow)."""
    from circuitsweep.config.load import schema

    return _schema_lines(value, schema()["$defs"]["ablation"]["properties"]["spectral_top_k"], name)


def _check_spectral_top_k(value: Any) -> None:
    _refuse_lines(_top_k_lines(value))


def _check_bootstrap_settings(value: dict[str, Any]) -> None:
    """``bootstrap_heads``'s params: the classification thresholds and the induction onset's head count."""
    from circuitsweep.config.load import schema

    onset = schema()["$defs"]["thresholds"]["properties"]["induction_onset_heads"]
    lines = _threshold_lines(value["thresholds"], "class", "thresholds")
    if "induction_onset_heads" in value:
        lines += _schema_lines(value["induction_onset_heads"], onset, "induction_onset_heads")
    _refuse_lines(lines)


def _check_final_ablation_settings(value: dict[str, Any]) -> None:
    """``final_ablation``'s params: the classification thresholds and the spectral K."""
    _refuse_lines(
        _threshold_lines(value["thresholds"], "class", "thresholds")
        + _top_k_lines(value["spectral_top_k"], "spectral_top_k")
    )


def read_settings_file(path: str) -> str:
    """The text of a ``@PATH`` settings file: a regular UTF-8 file of bounded size, checked against its digest."""
    from circuitsweep.io.settings_files import SettingsFileError, check_settings_text

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as error:
        raise argparse.ArgumentTypeError(f"cannot read the settings file {path}: {error.strerror}") from None
    try:
        found = os.fstat(fd)
        if not stat.S_ISREG(found.st_mode):
            kind = "a folder" if stat.S_ISDIR(found.st_mode) else "not a regular file (a pipe or a device?)"
            raise argparse.ArgumentTypeError(f"cannot read the settings file {path}: it is {kind}")
        if found.st_size > SETTINGS_FILE_LIMIT:
            raise argparse.ArgumentTypeError(
                f"the settings file {path} holds {found.st_size:,} bytes, more than the {SETTINGS_FILE_LIMIT:,} allowed"
            )
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(SETTINGS_FILE_LIMIT + 1)
    except OSError as error:
        raise argparse.ArgumentTypeError(f"cannot read the settings file {path}: {error.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > SETTINGS_FILE_LIMIT:
        raise argparse.ArgumentTypeError(f"the settings file {path} holds more than {SETTINGS_FILE_LIMIT:,} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise argparse.ArgumentTypeError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    try:
        check_settings_text(Path(path), text)
    except SettingsFileError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


#: Any JSON value, or ``@PATH`` (kept under its old name for callers).
_json = Json()


class Count(Argument):
    """A whole number between ``low`` and ``high`` (inclusive)."""

    kind = "count"

    def __init__(self, low: int = 0, high: int = 2**62) -> None:
        self.low, self.high = low, high

    def describe(self) -> str:
        return f"a whole number from {self.low} to {self.high}"

    def __call__(self, text: str) -> int:
        try:
            value = int(text.strip(), 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not self.low <= value <= self.high:
            raise argparse.ArgumentTypeError(f"{value} is out of range: give {self.low} to {self.high}")
        return value


class Real(Argument):
    """A finite number greater than ``low`` and at most ``high``."""

    kind = "number"

    def __init__(self, low: float = 0.0, high: float = 1e6) -> None:
        self.low, self.high = low, high

    def describe(self) -> str:
        return f"a number above {self.low:g}, at most {self.high:g}"

    def __call__(self, text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (math.isfinite(value) and self.low < value <= self.high):
            raise argparse.ArgumentTypeError(
                f"{text} is out of range: give a number above {self.low:g}, at most {self.high:g}"
            )
        return value


class Name(Argument):
    """A model, revision or block name: one safe path component (``io.names``)."""

    kind = "name"

    def describe(self) -> str:
        return "a model or revision name (one safe path component)"

    def __call__(self, text: str) -> str:
        from circuitsweep.io.names import unsafe_reason

        reason = unsafe_reason(text)
        if reason is None and not _is_utf8(text):
            reason = "not UTF-8 text"
        if reason is not None:
            raise argparse.ArgumentTypeError(f"{text!r} is not a name ({reason})")
        return text


def _is_utf8(text: str) -> bool:
    """Whether ``text`` (an argument: undecodable bytes arrive as surrogates) is UTF-8 text."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Text(Argument):
    """Free text, checked by ``check`` (a function raising ``ValueError`` with the reason) when given;
    ``example``: a value it accepts."""

    kind = "text"

    def __init__(self, check: Callable[[str], object] | None = None, example: str = "") -> None:
        self.check = check
        self.example = example

    def describe(self) -> str:
        return f"text, e.g. {self.example}" if self.example else "text"

    def __call__(self, text: str) -> str:
        if self.check is not None:
            try:
                self.check(text)
            except ValueError as error:
                raise argparse.ArgumentTypeError(str(error)) from None
        return text


def _check_key_value(text: str) -> None:
    from circuitsweep.config.overrides import parse_item

    parse_item(text)


def _check_endpoint(text: str) -> None:
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", text):
        raise ValueError(f"{text!r} is not an http(s) URL")


def _check_branch_pattern(text: str) -> None:
    from circuitsweep.config.patterns import branch_pattern_regex

    branch_pattern_regex(text)


def _check_run_pattern(text: str) -> None:
    from circuitsweep.config.patterns import pattern_regex

    try:
        pattern_regex(text)
    except ValueError:
        raise ValueError(
            f"--pattern {text!r} must hold exactly one {{step}} field (optionally {{step:07d}}-style)"
        ) from None


def _check_repo_id(text: str) -> None:
    from circuitsweep.checkpoints.hub import check_repo_id

    check_repo_id(text)


class _Parser(argparse.ArgumentParser):
    """argparse, with a misuse (a missing option, a bad value) raised as one line instead of usage and exit 2,
    and every option's help: an option declared without one (the rules' internal commands) says what its
    value must be (:meth:`Argument.describe`)."""

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        if kwargs.get("help") is None and isinstance(kwargs.get("type"), Argument):
            kwargs["help"] = kwargs["type"].describe()
        return super().add_argument(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        message = " ".join(message.split())
        named = re.fullmatch(r"argument ([^:]+): (.*)", message)
        if named:  # "argument --x: ..." -> "--x: ...", or the message alone when it names the option itself
            option, rest = named.group(1).split("/")[-1], named.group(2)
            message = rest if rest.startswith(option) else f"{option}: {rest}"
        raise UsageError(f"{self.prog}: error: {message}")


class UsageError(Exception):
    """A command line argparse refused: its one line (``circuitsweep <command>: error: ...``)."""


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


def parsed(args: argparse.Namespace, option: str, parse: Callable[[Any], Any]) -> Any:
    """``parse(args.<option>)`` (a JSON argument into its settings object); a value of the wrong shape inside
    it (a missing key, a list for a number) is an :class:`InputError` naming the option."""
    from circuitsweep.errors import CircuitsweepError, InputError

    try:
        return parse(getattr(args, option))
    except CircuitsweepError as error:
        raise InputError(f"--{option.replace('_', '-')}: {error}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        detail = f"no {error}" if isinstance(error, KeyError) else " ".join(str(error).split())[:200]
        raise InputError(f"--{option.replace('_', '-')}: not the settings this command takes ({detail})") from None


def describe_plan(plan: Plan, jobs: dict[str, str] | None = None) -> list[str]:
    """What a sweep plans, one line per model and then the run's notes (``circuitsweep check-config``).

    Per model: its revisions (first .. last, in training order, with the last one's tokens), the
    natural-text batch and the tokenizer that builds it, its primitive jobs and ``jobs[model]`` (its
    measurement job's size, :func:`measurement_job`).
    """
    from circuitsweep.heads.jobs import natural_batches
    from circuitsweep.primitives.jobs import primitive_models, primitive_revisions

    batches = natural_batches(plan)
    lines = []
    for model, revisions in plan.revisions.items():
        last = revisions[-1]
        parts = [f"{len(revisions)} revisions ({revisions[0].name} .. {last.name}, {last.tokens:,} tokens)"]
        natural = plan.models[model].probes.natural_text
        if natural is not None:
            builder = batches[natural.tokenizer][0]
            special = natural.special_tokens
            parts.append(f"natural text: batch {natural.tokenizer} (tokenizer of {builder}, special tokens {special})")
        primitives = len(primitive_revisions(plan, model)) if model in primitive_models(plan) else 0
        parts.append(f"{primitives} primitive jobs" if primitives else "no primitive jobs")
        settings = plan.models[model]
        if settings.source["type"] == "toy":
            from circuitsweep.toy.spec import ToySpec

            spec = ToySpec.of_model(settings.architecture, settings.toy)
            parts.append(
                f"a toy trained here ({spec.schedule[-1]:,} steps of {spec.tokens_per_step:,} tokens on one thread;"
                " the estimate below leaves its training out)"
            )
        lines.append(f"{model}: " + "; ".join(parts))
        if jobs and model in jobs:
            lines.append(f"  {jobs[model]}")
    lines.append(f"ablation: {'every revision' if plan.ablation is not None else 'off'}")
    return lines + [f"note: {note}" for note in plan.notes]


def measurement_job(plan: Plan, model: str, gpu_present: bool = True) -> str:
    """What one revision of ``model`` costs, as the rules size its job before the fetch: the download (Hub
    sources), the memory the job requests and the cost model's minutes of its largest revision job (on a GPU
    unless the run says ``device: cpu``) with the runtime it requests. Under ``device: auto`` on a machine
    without a GPU (``gpu_present`` false) it says there is none here, as the cost line does."""
    from circuitsweep.plan import costs
    from circuitsweep.plan.resources import measure_size
    from circuitsweep.primitives.jobs import measures_primitives

    settings = plan.models[model]
    device = "cpu" if plan.device == "cpu" else "cuda"
    shape = costs.model_shape(plan, model).config
    sizes = []
    for revision in plan.revisions[model]:
        work = costs.revision_job_work(
            plan, model, revision.name, shape, measures_primitives(plan, model, revision.name)
        )
        seconds = sum(costs.job_seconds(shape, settings.dtype, work, device).values())
        sizes.append((seconds, measure_size(shape, settings.dtype, settings.probes.to_dict(), device, work)))
    seconds, size = max(sizes, key=lambda pair: pair[0])
    where = "on the CPU" if device == "cpu" else "on a GPU"
    request = f"runtime request {size.runtime:,} min"
    if plan.device == "auto" and not gpu_present:
        request = f"no GPU here; {request}"
    download = ""
    if settings.source["type"] in ("hub", "hub_repos"):
        download = f"{costs.published_bytes(shape, settings.dtype) / costs.GB:,.2f} GB to download, "
    return (
        f"per revision: {download}a job of {size.mem_mb:,} MB and at most about {seconds / 60:,.1f} min {where}"
        f" ({request})"
    )


def cmd_check_config(args: argparse.Namespace) -> None:
    from circuitsweep import revision_stage
    from circuitsweep.config.load import load_config
    from circuitsweep.config.overrides import merge_config, parse_overrides
    from circuitsweep.io.contracts import Paths
    from circuitsweep.plan import costs
    from circuitsweep.plan.costs import describe_cost, describe_partial
    from circuitsweep.plan.resources import suits
    from circuitsweep.plan.sweep import plan_run, results_paths

    configfile, root = os.path.abspath(args.config), os.path.abspath(args.root)
    config = merge_config(load_config(configfile), parse_overrides(args.set))
    # the run's folder and its caches as Snakemake sees them, from its working directory (-d)
    paths = results_paths(config, [configfile])
    if Path(args.directory).is_dir():
        os.chdir(args.directory)
    else:  # Snakemake would create it: nothing is measured there yet
        paths = Paths(Path(args.directory) / paths.root)
    plan = plan_run(config, [configfile], Path(root), keep_hashes=False, paths=paths)
    gpu_present = not suits("auto")
    for line in describe_plan(plan, {model: measurement_job(plan, model, gpu_present) for model in plan.models}):
        print(line)
    warm = bool(config.get("warm_worker", True))
    cost = costs.sweep_cost(
        plan, revision_stage.pending(plan), int(config.get("snapshots_on_disk", 2)), gpu_present, warm
    )
    print(describe_cost(cost))
    for manifest in plan.partial_manifests():
        print(describe_partial(manifest))


def cmd_refresh_manifest(args: argparse.Namespace) -> None:
    from circuitsweep.checkpoints.hub import refresh_manifest
    from circuitsweep.checkpoints.revisions import same_point

    skipped: list[str] = []
    manifest = refresh_manifest(
        args.repo_id,
        Path(args.manifest),
        tokens_per_step=args.tokens_per_step,
        endpoint=args.endpoint,
        skipped=skipped,
        pattern=args.branch_pattern,
        force=args.force,
    )
    print(f"{args.manifest}: {len(manifest.revisions)} revisions of {args.repo_id}")
    for first, second in same_point(manifest.revisions):
        print(
            f"note: branches {first.name!r} and {second.name!r} are one checkpoint (step {first.step:,}, "
            f"{first.tokens:,} tokens): a sweep may select only one of them"
        )
    if skipped:
        print(f"skipped {len(skipped)} branches that are not usable checkpoint names: {', '.join(map(repr, skipped))}")


def cmd_train_toy(args: argparse.Namespace) -> None:
    from circuitsweep.toy.publish import train_toy_suite_model

    train_toy_suite_model(args.settings, Path(args.hub), Path(args.published), threads=args.threads)


def cmd_fetch_snapshot(args: argparse.Namespace) -> None:
    from circuitsweep.checkpoints.snapshots import fetch_snapshot

    fetch_snapshot(args.settings, Path(args.output))


def cmd_measure_revision(args: argparse.Namespace) -> None:
    import torch

    from circuitsweep.errors import ConfigError
    from circuitsweep.heads.stage import ExtraMeasurements, RevisionJob
    from circuitsweep.revision_stage import PrimitiveRequest, measure_revision

    job = parsed(args, "settings", RevisionJob.from_dict)
    torch.set_num_threads(args.threads)
    extra = ExtraMeasurements(
        natural_batch=Path(args.natural_batch) if args.natural_batch else None,
        natural_scores=Path(args.natural_scores) if args.natural_scores else None,
        ablation=Path(args.ablation) if args.ablation else None,
    )
    given = [args.primitive_settings is not None, args.stimuli is not None, args.primitives is not None]
    if any(given) and not all(given):
        raise ConfigError("measure-revision: give --primitive-settings, --stimuli and --primitives together")
    primitives = None
    if all(given):
        primitives = PrimitiveRequest(args.primitive_settings, Path(args.stimuli), Path(args.primitives))
    measure_revision(
        Path(args.snapshot),
        job,
        Path(args.stats),
        Path(args.scores),
        extra=extra,
        primitives=primitives,
        mem_mb=args.mem_mb,
    )


def cmd_natural_batch(args: argparse.Namespace) -> None:
    from circuitsweep.heads.natural_text import natural_batch

    natural_batch(Path(args.snapshot), args.settings, Path(args.output))


def cmd_classify_heads(args: argparse.Namespace) -> None:
    from circuitsweep.heads.classify import Thresholds
    from circuitsweep.heads.stage import classify_heads

    classify_heads(
        args.model,
        [Path(p) for p in args.scores],
        parsed(args, "thresholds", Thresholds.from_dict),
        Path(args.heads),
        Path(args.revisions),
        stats_paths=[Path(p) for p in args.stats] if args.stats else None,
        expected=args.expected,
        natural_paths=[Path(p) for p in args.natural if p],
    )


def cmd_bootstrap_heads(args: argparse.Namespace) -> None:
    from circuitsweep.config.probes import BootstrapSettings
    from circuitsweep.config.thresholds import Thresholds
    from circuitsweep.milestones.bootstrap import bootstrap_heads

    bootstrap_heads(
        args.model,
        [Path(p) for p in args.stats],
        Path(args.heads),
        Path(args.revisions),
        parsed(args, "settings", lambda settings: Thresholds.from_dict(settings["thresholds"])),
        parsed(args, "settings", lambda settings: BootstrapSettings.from_dict(settings["bootstrap"])),
        Path(args.heads_out),
        Path(args.curves_out),
        onset_heads=parsed(args, "settings", lambda settings: int(settings["induction_onset_heads"])),
        expected=args.expected,
        skip_duplicates=bool(args.settings.get("skip_duplicates")),
    )


def cmd_head_tables(args: argparse.Namespace) -> None:
    from circuitsweep.milestones.emergence import MilestoneThresholds
    from circuitsweep.milestones.tables import HeadTableOutputs, head_tables

    thresholds = parsed(
        args, "thresholds", lambda given: {model: MilestoneThresholds.from_dict(v) for model, v in given.items()}
    )
    out = HeadTableOutputs(
        heads=Path(args.heads_out),
        emergence_parquet=Path(args.emergence),
        emergence_csv=Path(args.emergence_csv),
        milestones_parquet=Path(args.milestones_parquet),
        milestones_csv=Path(args.milestones),
        milestones_md=Path(args.milestones_md),
        ablation_parquet=Path(args.ablation_out) if args.ablation_out else None,
        ablation_csv=Path(args.ablation_csv) if args.ablation_csv else None,
    )
    head_tables(
        [Path(p) for p in args.heads],
        [Path(p) for p in args.revisions],
        thresholds,
        out,
        skip_duplicates=args.skip_duplicates,
        ablation_paths=[Path(p) for p in args.ablation_rows if p],
        causal_factor=args.causal_factor,
        causal_alpha=args.causal_alpha,
        bootstrap_heads=[Path(p) for p in args.bootstrap_heads if p],
        bootstrap_curves=[Path(p) for p in args.bootstrap_curves if p],
    )


def cmd_milestone_brackets(args: argparse.Namespace) -> None:
    from circuitsweep.io.contracts import Paths
    from circuitsweep.io.tables import read_table
    from circuitsweep.milestones.refine import milestone_brackets, write_brackets
    from circuitsweep.plan.rounds import read_rounds
    from circuitsweep.plan.sweep import plan_sweep

    plan = plan_sweep(args.config, Path(args.root), Paths(Path(args.results)))
    if plan.refine is None:
        from circuitsweep.errors import ConfigError

        raise ConfigError("milestone-brackets: the config has no refine block")
    milestones, _ = read_table(Path(args.milestones))
    curves, _ = read_table(Path(args.emergence))
    added = read_rounds(plan.paths.refine_rounds())
    table = milestone_brackets(milestones, curves, plan.available, plan.revisions, plan.refine, added)
    write_brackets(table, Path(args.csv), Path(args.markdown))


def cmd_group_milestones(args: argparse.Namespace) -> None:
    from circuitsweep.io.tables import read_table, write_csv, write_markdown
    from circuitsweep.milestones.groups import group_milestones

    milestones, _ = read_table(Path(args.milestones))
    table = group_milestones(milestones, args.groups)
    write_csv(table, Path(args.csv))
    write_markdown(table, Path(args.markdown), title="Milestones per group: spread of the tokens over its models")


def cmd_refine(args: argparse.Namespace) -> None:
    from circuitsweep.config.load import load_configs
    from circuitsweep.errors import ConfigError
    from circuitsweep.io.run_folder import LOCK_ENV, lock_run_folder
    from circuitsweep.milestones.refine import (
        RefineFailed,
        RefineRun,
        dry_run,
        refine,
        refine_summary,
        snakemake_options_problem,
    )
    from circuitsweep.plan.sweep import plan_run

    root = Path(args.root)
    configfiles = tuple(Path(c) for c in args.configfile)
    configfiles_read = configfiles or (root / "config" / "config.yaml",)
    config = load_configs(configfiles_read)
    plan = plan_run(config, configfiles_read, root)
    if plan.refine is None:
        raise ConfigError(f"refine: {', '.join(map(str, configfiles)) or 'the config'} has no refine block")
    options = tuple(a for a in args.snakemake if a != "--")
    if problem := snakemake_options_problem(options):
        raise ConfigError(f"refine: the Snakemake options after --: {problem}")
    if not args.dry_run:  # the rounds' Snakemake runs take the lock this process holds (run_folder.LOCK_ENV)
        os.environ[LOCK_ENV] = str(lock_run_folder(plan.paths.root))
    run = RefineRun(root / "workflow" / "Snakefile", configfiles, options, tuple(args.targets))
    if args.dry_run:
        raise SystemExit(dry_run(run))
    try:
        added = refine(run, plan.refine, plan.paths.milestone_brackets("csv"), plan.paths.refine_rounds())
    except RefineFailed as failed:
        raise SystemExit(failed.code) from None
    final = plan_run(config, configfiles_read, root)
    for line in refine_summary(final.revisions, final.available, added):
        print(line)
    print(f"brackets: {final.paths.milestone_brackets('csv')}")


def cmd_plot_emergence(args: argparse.Namespace) -> None:
    from circuitsweep.io.tables import read_frame, read_table
    from circuitsweep.outputs.plots import emergence_plot

    curves = plotted_curves(read_frame(Path(args.emergence)), args.emergence)
    milestones, settings = read_table(Path(args.milestones)) if args.milestones else (None, {})
    models = settings.get("models", {}).values()
    levels = {((model or {}).get("milestones") or {}).get("bos_fraction_milestone") for model in models}
    level = levels.pop() if len(levels) == 1 and None not in levels else 0.5
    brackets = read_csv_frame(args.brackets[0]) if args.brackets else None
    for output in args.output:
        emergence_plot(curves, Path(output), milestones, bos_level=level, brackets=brackets, groups=args.groups)


def plotted_curves(curves: Any, path: str) -> Any:
    """The emergence table ``--emergence path`` as plotted: refused, naming it, when it holds no rows or a BOS
    fraction that is no number (NaN, infinite, empty), which no axis can show."""
    import polars as pl

    from circuitsweep.errors import InputError

    if curves.height == 0:
        raise InputError(f"--emergence {path}: no rows")
    fraction = pl.col("bos_fraction").cast(pl.Float64, strict=False)
    for what, bad in (("no value", fraction.is_null()), ("NaN", fraction.is_nan()), ("inf", fraction.is_infinite())):
        rows = curves.filter(bad)
        if rows.height:
            first = rows.row(0, named=True)
            where = f"{first.get('model')} {first.get('revision')}"
            more = f" (and {rows.height - 1} more rows)" if rows.height > 1 else ""
            raise InputError(f"--emergence {path}: bos_fraction holds {what} at {where}{more}")
    return curves


def read_csv_frame(path: str) -> Any:
    import polars as pl

    return pl.read_csv(path, infer_schema_length=None)


def known_model(args: argparse.Namespace, frame: Any, option: str) -> None:
    """Refuse ``--model`` when the table given as ``option`` holds no rows of it, naming the models it holds."""
    from circuitsweep.errors import InputError

    models = sorted(set(frame["model"].to_list()))
    if args.model not in models:
        held = ", ".join(map(str, models[:8])) + (", ..." if len(models) > 8 else "") or "no model"
        raise InputError(f"--model {args.model}: {getattr(args, option)} holds no rows of it (it holds {held})")


def cmd_plot_heatmap(args: argparse.Namespace) -> None:
    from circuitsweep.io.tables import read_frame
    from circuitsweep.outputs.plots import layer_heatmap

    milestones = read_frame(Path(args.milestones)) if args.milestones else None
    curves = read_frame(Path(args.emergence))
    known_model(args, curves, "emergence")
    layer_heatmap(curves, args.model, Path(args.output), milestones)


def cmd_plot_trajectories(args: argparse.Namespace) -> None:
    from circuitsweep.io.tables import read_table
    from circuitsweep.outputs.plots import head_trajectories

    heads, metadata = read_table(Path(args.heads))
    known_model(args, heads, "heads")
    thresholds = (metadata.get("models", {}).get(args.model) or {}).get("thresholds") or {}
    head_trajectories(heads, args.model, Path(args.output), thresholds.get("class_selectivity"))


def cmd_spectral_model(args: argparse.Namespace) -> None:
    from circuitsweep.heads.spectral import write_model_spectral

    write_model_spectral(Path(args.heads), args.model, Path(args.output))


def cmd_spectral_table(args: argparse.Namespace) -> None:
    from circuitsweep.heads.spectral import spectral_table

    spectral_table([Path(p) for p in args.models], Path(args.parquet), Path(args.csv))


def cmd_plot_spectral(args: argparse.Namespace) -> None:
    from circuitsweep.io.tables import read_table
    from circuitsweep.outputs.plots import spectral_plot

    heads, spectral = read_table(Path(args.heads))[0], read_table(Path(args.spectral))[0]
    known_model(args, heads, "heads")
    known_model(args, spectral, "spectral")
    spectral_plot(heads, spectral, args.model, Path(args.output), args.top_k)


def cmd_final_ablation(args: argparse.Namespace) -> None:
    import torch

    from circuitsweep.heads.final_ablation import run_final_ablation

    torch.set_num_threads(args.threads)
    run_final_ablation(
        args.settings,
        Path(args.snapshot),
        Path(args.heads),
        Path(args.spectral),
        Path(args.output),
        natural_batch=Path(args.natural_batch) if args.natural_batch else None,
        mem_mb=args.mem_mb,
    )


def cmd_final_ablation_table(args: argparse.Namespace) -> None:
    from circuitsweep.heads.final_ablation import final_ablation_table

    final_ablation_table([Path(p) for p in args.rows], Path(args.parquet), Path(args.csv), Path(args.markdown))


def cmd_findings(args: argparse.Namespace) -> None:
    from circuitsweep.milestones.findings import read_findings, write_findings

    result = read_findings(
        Path(args.spectral),
        Path(args.heads),
        Path(args.milestones),
        Path(args.final_ablation) if args.final_ablation else None,
        args.spectral_top_k,
    )
    write_findings(result, args.spectral_top_k, Path(args.csv), Path(args.markdown), Path(args.html))
    print(f"findings of {len(result.paragraphs)} models: {result.rows.height} rows")


def cmd_score_primitives(args: argparse.Namespace) -> None:
    from circuitsweep.primitives.stage import score_revision_primitives

    score_revision_primitives(Path(args.cache), Path(args.stimuli), args.scoring, Path(args.output), args.expected)


def cmd_primitive_tables(args: argparse.Namespace) -> None:
    from circuitsweep.primitives.stage import primitive_tables

    primitive_tables([Path(p) for p in args.revisions], Path(args.output))


def cmd_plot_primitive_gap(args: argparse.Namespace) -> None:
    from circuitsweep.io.tables import read_frame
    from circuitsweep.outputs.plots import primitive_gap_plot

    primitive_gap_plot(read_frame(Path(args.gaps)), Path(args.output), args.demonstration)


def cmd_plot_primitive_scaling(args: argparse.Namespace) -> None:
    import polars as pl

    from circuitsweep.outputs.plots import primitive_scaling_plot
    from circuitsweep.primitives.scaling import PLOTTED_KINDS

    primitive_scaling_plot(pl.read_csv(args.scaling), Path(args.output), PLOTTED_KINDS, args.demonstration)


def cmd_sweep_overhead(args: argparse.Namespace) -> None:
    from circuitsweep.io.atomic import atomic_write_text
    from circuitsweep.io.tables import write_csv
    from circuitsweep.outputs.overhead import estimate_comparison, overhead_markdown, sweep_overhead

    table = sweep_overhead(
        [Path(p) for p in args.scores],
        [Path(p) for p in args.fetch],
        [Path(p) for p in args.measure],
        [Path(p) for p in args.primitives],
    )
    write_csv(table, Path(args.csv))
    estimate = args.estimate or {"kinds": {}, "device": "-", "start_up_s": 0}
    batches = [path for path in args.natural_batch if Path(path).is_file()]  # a batch built before it had one: none
    measured = {"measure": args.measure, "final_ablation": args.final_ablation, "natural_batch": batches}
    comparison = estimate_comparison(estimate["kinds"], measured)
    if args.estimate_csv:
        write_csv(comparison, Path(args.estimate_csv))
    atomic_write_text(
        Path(args.markdown), overhead_markdown(table, comparison, estimate["device"], estimate["start_up_s"])
    )


def cmd_table_pages(args: argparse.Namespace) -> None:
    from circuitsweep.outputs.table_pages import write_table_pages

    write_table_pages([Path(p) for p in args.tables], [Path(p) for p in args.pages])


def cmd_block_record(args: argparse.Namespace) -> None:
    from circuitsweep.plan.scheduling import write_block_record

    write_block_record(args.block, [Path(p) for p in args.files], Path(args.output), args.expected or ())
    print(f"block {args.block}: {len(args.files)} files recorded in {args.output}")


def cmd_prefetch(args: argparse.Namespace) -> None:
    from circuitsweep.plan.prefetch import prefetch

    prefetch(Path(args.config), Path(args.root), models=args.models or None)


def cmd_demo_run(args: argparse.Namespace) -> None:
    from circuitsweep.toy.demo_run import save_demo_run

    for folder in save_demo_run(Path(args.folder), args.steps, args.pattern, force=args.force):
        print(folder)


def _tables() -> dict[str, InputFile]:
    """The tables commands read, each with columns that tell it from another kind (of ``io.contracts``;
    tests/test_cli_boundary.py checks each is in its contract)."""
    parquet, csv = {"suffix": ".parquet"}, {"suffix": ".csv"}
    return {
        "heads": InputFile("heads table", ("model", "revision", "layer", "head", "class"), **parquet),
        "revisions": InputFile("revisions table", ("model", "revision", "n_layers"), **parquet),
        "emergence": InputFile("emergence table", ("model", "revision", "bos_fraction"), **parquet),
        "milestones": InputFile("milestones table", ("model", "final_revision"), **parquet),
        "brackets": InputFile("milestone brackets table", ("model", "milestone", "status"), **csv),
        "spectral": InputFile("spectral ranking", ("model", "layer", "head", "rank"), **parquet),
        "final_ablation": InputFile("final-revision ablation table", ("model", "condition", "heads"), **parquet),
        "final_ablation_table": InputFile("final ablation table", ("model", "condition", "statistic"), **parquet),
        "gaps": InputFile("primitive gap table", ("model", "revision", "tokens", "score_kind", "gap")),
        "scaling": InputFile("primitive scaling table", ("model", "parameters", "score_kind", "gap"), **csv),
    }


def add_root(parser: argparse.ArgumentParser, what: str = "") -> None:
    """The ``--root`` option of a command that plans a run: the repository, by default :func:`workflow_root`."""
    what = what or "repository folder that relative paths resolve against, as in the Snakefile"
    parser.add_argument(
        "--root",
        type=InputFolder("workflow folder"),
        default=workflow_root(),
        help=f"{what} (default: the one this package lies in)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The command line: every argument declares what it is (an :class:`Argument`), checked before the command runs."""
    parser = _Parser(prog="circuitsweep", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages; show a crash's traceback")
    parser.add_argument(
        "--attempt", type=Count(1, 10**6), help="Snakemake attempt of the job running this command (set by the rules)"
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    table = _tables()
    config_file = InputFile("YAML config")
    file = InputFile()
    files = InputFile(blank=True)
    snapshot = InputFolder("snapshot folder")
    root = InputFolder("workflow folder")
    out = OutputFile()
    table_out = OutputFile()
    csv_out = OutputFile()
    md_out = OutputFile()
    figure = OutputFile((".png", ".svg"))
    threads = Count(1, 4096)
    mem_mb = Count(1, 2**40)

    def add(name: str, func: Callable[[argparse.Namespace], None], help: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help, description=help)
        command.set_defaults(func=func)
        return command

    p = add(
        "check-config",
        cmd_check_config,
        "validate a config, list the revisions it sweeps and what measuring those still to measure costs",
    )
    p.add_argument("config", type=config_file, help="YAML config file")
    add_root(p)
    p.add_argument(
        "-d",
        "--directory",
        type=OutputFolder(),
        default=".",
        help="the working directory Snakemake runs in (its -d): where results/ is",
    )
    p.add_argument(
        "--config",
        dest="set",
        type=Text(_check_key_value, "snapshots_on_disk=24"),
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="set config keys as Snakemake's --config (and a profile's config:) does, e.g. snapshots_on_disk=24",
    )

    p = add("refresh-manifest", cmd_refresh_manifest, "list a Hub repository's checkpoint branches into a manifest")
    p.add_argument(
        "repo_id", type=Text(_check_repo_id, "org/name"), help="Hub repository, e.g. allenai/OLMo-1B-0724-hf"
    )
    p.add_argument("manifest", type=OutputFile(), help="manifest JSON to write, e.g. config/revisions/olmo.json")
    p.add_argument("--tokens-per-step", type=Count(1), help="for branch names without a token count (stepN)")
    p.add_argument(
        "--endpoint",
        type=Text(_check_endpoint, "http://127.0.0.1:9"),
        help="Hub endpoint (default HF_ENDPOINT or huggingface.co)",
    )
    p.add_argument(
        "--branch-pattern",
        type=Text(_check_branch_pattern, "step{step}"),
        help="checkpoint branch names, e.g. 'stage1-step{step}-tokens{tokens}B'",
    )
    p.add_argument("--force", action="store_true", help="replace the manifest even if revisions would be lost")

    p = add("train-toy", cmd_train_toy, "train one toy model and publish its checkpoints as revisions")
    p.add_argument(
        "--settings",
        type=Json(dict, ("model", "architecture", "repo_id", "toy")),
        required=True,
        help="JSON: model name, architecture and toy settings",
    )
    p.add_argument("--hub", type=OutputFolder(), required=True, help="local hub folder (Hub cache layout)")
    p.add_argument("--published", type=out, required=True, help="JSON list of published revisions, written last")
    p.add_argument("--threads", type=threads, default=1, help="torch threads")

    p = add("demo-run", cmd_demo_run, "save a small training run's checkpoint folders, to try a run_dir sweep on")
    p.add_argument("folder", type=OutputFolder(), help="the run's output folder")
    p.add_argument(
        "--steps",
        type=Count(0, 10**9),
        nargs="+",
        default=list(DEMO_STEPS),
        help=f"steps at which to save (default: {' '.join(map(str, DEMO_STEPS))}: the loss plateau, the induction "
        "onset at about step300, and after it)",
    )
    p.add_argument(
        "--pattern",
        type=Text(_check_run_pattern, "checkpoint-{step}"),
        default="checkpoint-{step}",
        help="checkpoint folder names, with {step} (default: checkpoint-{step})",
    )
    p.add_argument("--force", action="store_true", help="replace checkpoint folders that already exist")

    p = add("fetch-snapshot", cmd_fetch_snapshot, "fetch and verify one revision's files")
    p.add_argument("--settings", type=Json(dict, ("source", "revision")), required=True, help="JSON: source, revision")
    p.add_argument("--output", type=OutputFolder(), required=True, help="snapshot folder to create")

    p = add("measure-revision", cmd_measure_revision, "load one revision once; write its head cache (and primitives)")
    p.add_argument(
        "--settings",
        type=Json(dict, ("revision",)),
        required=True,
        help="JSON: model, revision, probes, dtype, first token",
    )
    p.add_argument("--snapshot", type=snapshot, required=True, help="snapshot folder (with snapshot.json)")
    p.add_argument("--stats", type=out, required=True, help="output safetensors shard of statistics")
    p.add_argument("--scores", type=table_out, required=True, help="output Parquet of per-head scores")
    p.add_argument("--threads", type=threads, default=1, help="torch CPU threads")
    p.add_argument("--mem-mb", type=mem_mb, help="the job's memory limit in MB: refuse before loading if it cannot fit")
    p.add_argument("--natural-batch", type=file, help="natural-text batch (safetensors), with probes.natural_text")
    p.add_argument("--natural-scores", type=table_out, help="output Parquet of per-head natural-text scores")
    p.add_argument("--ablation", type=table_out, help="output Parquet of ablation rows, with settings.ablation")
    p.add_argument(
        "--primitive-settings", type=Json(dict), help="JSON: the primitive job (primitives.jobs.primitive_settings)"
    )
    p.add_argument("--stimuli", type=file, help="stimuli YAML of the primitive measurement")
    p.add_argument("--primitives", type=out, help="output safetensors shard of the primitive measurement")

    p = add("natural-batch", cmd_natural_batch, "tokenize the natural-text corpus with one revision's tokenizer")
    p.add_argument(
        "--settings", type=Json(dict), required=True, help="JSON: batch name, model and natural_text settings"
    )
    p.add_argument("--snapshot", type=snapshot, required=True, help="snapshot folder whose tokenizer is used")
    p.add_argument("--output", type=out, required=True, help="output safetensors batch")

    p = add("classify-heads", cmd_classify_heads, "classify every head of one model from its cache")
    p.add_argument("--model", type=Name(), required=True)
    p.add_argument(
        "--thresholds", type=Json(dict, check=_check_thresholds), required=True, help="JSON classification thresholds"
    )
    p.add_argument("--scores", type=RevisionScores(), nargs="+", required=True, help="per-revision score Parquet files")
    p.add_argument("--heads", type=table_out, required=True, help="output Parquet of classified heads")
    p.add_argument("--revisions", type=table_out, required=True, help="output Parquet of per-revision facts")
    p.add_argument("--stats", type=file, nargs="+", help="per-revision statistics shards (same order), verified")
    p.add_argument("--expected", type=Json(list), help="JSON list: the metadata each score file must carry")
    p.add_argument("--natural", type=files, nargs="*", default=[], help="per-revision natural-text score Parquet files")

    p = add(
        "bootstrap-heads",
        cmd_bootstrap_heads,
        "bootstrap one model's selectivities, classes and milestone counts over probe sequences (caches only)",
    )
    p.add_argument("--model", type=Name(), required=True)
    p.add_argument(
        "--settings",
        type=Json(dict, ("bootstrap", "thresholds"), check=_check_bootstrap_settings),
        required=True,
        help="JSON: bootstrap, thresholds, induction_onset_heads, skip_duplicates",
    )
    p.add_argument("--stats", type=file, nargs="+", required=True, help="per-revision statistics shards, verified")
    p.add_argument("--expected", type=Json(list), help="JSON list: the metadata each shard must carry")
    p.add_argument("--heads", type=table["heads"], required=True, help="the model's classified heads (Parquet)")
    p.add_argument("--revisions", type=table["revisions"], required=True, help="the model's revision facts (Parquet)")
    p.add_argument("--heads-out", type=table_out, required=True, help="output Parquet: intervals, class stability")
    p.add_argument("--curves-out", type=table_out, required=True, help="output Parquet: milestone counts per resample")

    p = add("head-tables", cmd_head_tables, "write the heads, emergence and milestone tables")
    p.add_argument("--heads", type=table["heads"], nargs="+", required=True)
    p.add_argument("--revisions", type=table["revisions"], nargs="+", required=True)
    p.add_argument(
        "--thresholds",
        type=Json(dict, check=_check_milestone_thresholds),
        required=True,
        help="JSON: model -> milestone thresholds",
    )
    p.add_argument("--heads-out", type=table_out, required=True, help="the heads table (Parquet)")
    p.add_argument("--emergence", type=table_out, required=True, help="the emergence table (Parquet)")
    p.add_argument("--emergence-csv", type=csv_out, required=True)
    p.add_argument("--milestones", type=csv_out, required=True, help="the milestones table (CSV)")
    p.add_argument("--milestones-parquet", type=table_out, required=True, help="the milestones table (Parquet)")
    p.add_argument("--milestones-md", type=md_out, required=True)
    p.add_argument(
        "--skip-duplicates", type=Name(), nargs="*", default=[], help="models whose duplicate revisions are left out"
    )
    p.add_argument("--ablation-rows", type=files, nargs="*", default=[], help="per-revision ablation Parquet files")
    p.add_argument("--ablation-out", type=table_out, help="the ablation table (Parquet)")
    p.add_argument("--ablation-csv", type=csv_out, help="the ablation table (CSV)")
    p.add_argument("--causal-factor", type=Real(0.0, 1e6), default=2.0, help="causal milestone factor")
    p.add_argument(
        "--causal-alpha", type=Real(0.0, 1.0), default=0.01, help="causal milestone's significance level (Holm)"
    )
    p.add_argument("--bootstrap-heads", type=files, nargs="*", default=[], help="per-model bootstrap heads (Parquet)")
    p.add_argument("--bootstrap-curves", type=files, nargs="*", default=[], help="per-model bootstrap curves (Parquet)")

    p = add("milestone-brackets", cmd_milestone_brackets, "bracket each milestone between two swept revisions")
    p.add_argument("--config", type=Json(dict), required=True, help="JSON: the workflow's config (it is planned again)")
    p.add_argument("--root", type=root, required=True, help="workflow folder that relative paths resolve against")
    p.add_argument(
        "--results", type=OutputFolder(), required=True, help="results folder (Paths root) holding the rounds"
    )
    p.add_argument("--emergence", type=table["emergence"], required=True, help="the emergence table (Parquet)")
    p.add_argument("--milestones", type=table["milestones"], required=True, help="the milestones table (Parquet)")
    p.add_argument("--csv", type=csv_out, required=True)
    p.add_argument("--markdown", type=md_out, required=True)

    p = add("group-milestones", cmd_group_milestones, "spread of each milestone's tokens over a group's models")
    p.add_argument("--milestones", type=table["milestones"], required=True, help="the milestones table (Parquet)")
    p.add_argument("--groups", type=Json(dict), required=True, help="JSON: model -> group")
    p.add_argument("--csv", type=csv_out, required=True)
    p.add_argument("--markdown", type=md_out, required=True)

    p = add(
        "refine",
        cmd_refine,
        "sweep, then add revisions where milestones lie until each is bracketed by adjacent available revisions",
    )
    p.add_argument(
        "--configfile", type=config_file, nargs="*", default=[], help="config files (default config/config.yaml)"
    )
    add_root(p, "repository folder holding workflow/Snakefile")
    p.add_argument("--dry-run", action="store_true", help="show the next round's jobs (snakemake --dry-run)")
    p.add_argument("--targets", type=Text(), nargs="*", default=[], help="what the last Snakemake run builds")
    p.add_argument(
        "snakemake", type=Text(), nargs=argparse.REMAINDER, help="snakemake options (no targets) after --: -- --cores 8"
    )

    p = add("plot-emergence", cmd_plot_emergence, "plot BOS fraction and induction heads against tokens")
    p.add_argument("--emergence", type=table["emergence"], required=True)
    p.add_argument("--milestones", type=table["milestones"], help="milestones table (Parquet), marked on the curves")
    p.add_argument(
        "--brackets", type=table["brackets"], nargs="*", default=[], help="milestone brackets table (CSV), as spans"
    )
    p.add_argument("--groups", type=Json(dict), default={}, help="JSON: model -> group, drawn as a band per group")
    p.add_argument("--output", type=figure, nargs="+", required=True, help="figure files (.png, .svg)")

    p = add("plot-heatmap", cmd_plot_heatmap, "plot one model's per-layer head counts per revision")
    p.add_argument("--emergence", type=table["emergence"], required=True)
    p.add_argument("--milestones", type=table["milestones"], help="milestones table (Parquet), marked on the panels")
    p.add_argument("--model", type=Name(), required=True)
    p.add_argument("--output", type=figure, required=True)

    p = add("plot-trajectories", cmd_plot_trajectories, "plot every head's best selectivity across training")
    p.add_argument("--heads", type=table["heads"], required=True, help="the heads table (Parquet)")
    p.add_argument("--model", type=Name(), required=True)
    p.add_argument("--output", type=figure, required=True)

    p = add("spectral-model", cmd_spectral_model, "rank one model's heads by their participation-ratio integral")
    p.add_argument("--heads", type=table["heads"], required=True, help="the model's classified heads (Parquet)")
    p.add_argument("--model", type=Name(), required=True)
    p.add_argument("--output", type=table_out, required=True, help="the model's spectral ranking (Parquet)")

    p = add("spectral-table", cmd_spectral_table, "concatenate the models' spectral rankings")
    p.add_argument(
        "--models", type=table["spectral"], nargs="+", required=True, help="per-model spectral rankings (Parquet)"
    )
    p.add_argument("--parquet", type=table_out, required=True)
    p.add_argument("--csv", type=csv_out, required=True)

    p = add("plot-spectral", cmd_plot_spectral, "plot one model's PR-integral ranking and PR trajectories by class")
    p.add_argument("--heads", type=table["heads"], required=True, help="the model's classified heads (Parquet)")
    p.add_argument("--spectral", type=table["spectral"], required=True, help="the model's spectral ranking (Parquet)")
    p.add_argument("--model", type=Name(), required=True)
    p.add_argument("--output", type=figure, required=True)
    p.add_argument(
        "--top-k",
        type=Json(list, check=_check_spectral_top_k),
        default=[],
        help="JSON: ablation.spectral_top_k, the top-K cuts drawn",
    )

    p = add("final-ablation", cmd_final_ablation, "load the final revision once; run the study's ablation conditions")
    p.add_argument(
        "--settings",
        type=Json(dict, ("job", "spectral_top_k", "thresholds"), check=_check_final_ablation_settings),
        required=True,
        help="JSON: heads.jobs.final_ablation_settings",
    )
    p.add_argument("--snapshot", type=snapshot, required=True, help="the final revision's snapshot folder")
    p.add_argument("--heads", type=table["heads"], required=True, help="the model's classified heads (Parquet)")
    p.add_argument("--spectral", type=table["spectral"], required=True, help="the model's spectral ranking (Parquet)")
    p.add_argument("--output", type=table_out, required=True, help="output Parquet of every condition's rows")
    p.add_argument("--natural-batch", type=file, help="natural-text batch (safetensors), with probes.natural_text")
    p.add_argument("--threads", type=threads, default=1, help="torch CPU threads")
    p.add_argument("--mem-mb", type=mem_mb, help="the job's memory limit in MB: refuse before loading if it cannot fit")

    p = add("final-ablation-table", cmd_final_ablation_table, "write the final-revision ablation table")
    p.add_argument(
        "--rows", type=table["final_ablation"], nargs="+", required=True, help="per-model final ablation Parquet files"
    )
    p.add_argument("--parquet", type=table_out, required=True)
    p.add_argument("--csv", type=csv_out, required=True)
    p.add_argument("--markdown", type=md_out, required=True)

    p = add("findings", cmd_findings, "the study's summaries per model and across models, from the run's tables")
    p.add_argument("--spectral", type=table["spectral"], required=True, help="tables/spectral.parquet")
    p.add_argument("--heads", type=table["heads"], required=True, help="tables/heads.parquet")
    p.add_argument("--milestones", type=table["milestones"], required=True, help="tables/milestones.parquet")
    p.add_argument(
        "--final-ablation", type=table["final_ablation_table"], help="tables/final_ablation.parquet (with ablation)"
    )
    p.add_argument(
        "--spectral-top-k",
        type=Json(list, check=_check_spectral_top_k),
        required=True,
        help="JSON: ablation.spectral_top_k (counts, shares of the heads, elbow)",
    )
    p.add_argument("--csv", type=csv_out, required=True)
    p.add_argument("--markdown", type=md_out, required=True)
    p.add_argument("--html", type=out, required=True, help="the report's Findings page")

    p = add("score-primitives", cmd_score_primitives, "score one revision's primitive shard (no model)")
    p.add_argument("--cache", type=file, required=True, help="primitive shard of measure-revision")
    p.add_argument("--stimuli", type=file, required=True)
    p.add_argument("--scoring", type=Json(dict), required=True, help="JSON: n_folds, n_perm, seed")
    p.add_argument("--output", type=OutputFolder(), required=True, help="folder for the revision's tables")
    p.add_argument("--expected", type=Json(dict), help="JSON: the metadata the shard must carry")

    p = add("primitive-tables", cmd_primitive_tables, "stack every revision's primitive tables")
    p.add_argument("--revisions", type=InputFolder(), nargs="+", required=True, help="folders of score-primitives")
    p.add_argument("--output", type=OutputFolder(), required=True, help="tables folder")

    p = add("plot-primitive-gap", cmd_plot_primitive_gap, "plot the summary primitive gap against tokens")
    p.add_argument("--gaps", type=table["gaps"], required=True, help="primitive_gaps.csv")
    p.add_argument("--output", type=figure, required=True)
    p.add_argument(
        "--demonstration", type=Json(list), default=[], help="JSON: models whose gaps mean nothing (toys), so labelled"
    )

    p = add("plot-primitive-scaling", cmd_plot_primitive_scaling, "plot each model's last gap against its size")
    p.add_argument("--scaling", type=table["scaling"], required=True, help="primitive_scaling.csv")
    p.add_argument("--output", type=figure, required=True)
    p.add_argument(
        "--demonstration", type=Json(list), default=[], help="JSON: models whose gaps mean nothing (toys), so labelled"
    )

    p = add("sweep-overhead", cmd_sweep_overhead, "compare job wall time with forward-pass time")
    p.add_argument("--scores", type=RevisionScores(), nargs="+", required=True, help="per-revision score Parquet files")
    p.add_argument("--fetch", type=file, nargs="*", default=[], help="fetch_snapshot benchmark TSVs")
    p.add_argument("--measure", type=file, nargs="+", required=True, help="benchmark TSVs of the measuring jobs")
    p.add_argument("--primitives", type=file, nargs="*", default=[], help="primitive shards (their forward seconds)")
    p.add_argument("--final-ablation", type=file, nargs="*", default=[], help="benchmark TSVs of final-ablation jobs")
    p.add_argument("--natural-batch", type=file, nargs="*", default=[], help="benchmark TSVs of natural-batch jobs")
    p.add_argument(
        "--estimate",
        type=Json(dict),
        help="JSON: device, start_up_s and per job kind the estimated jobs and seconds (plan.costs.estimate_by_kind)",
    )
    p.add_argument("--csv", type=csv_out, required=True)
    p.add_argument("--estimate-csv", type=csv_out, help="the estimate beside the measured seconds, per job kind")
    p.add_argument("--markdown", type=md_out, required=True)

    p = add("table-pages", cmd_table_pages, "write each final CSV table as an HTML page (the report's tables)")
    p.add_argument("--tables", type=CsvTable(), nargs="+", required=True, help="final CSV tables")
    p.add_argument(
        "--pages", type=OutputFile((".html",)), nargs="+", required=True, help="the HTML page of each, in order"
    )

    p = add("block-record", cmd_block_record, "record that every cache of a job block exists")
    p.add_argument("--block", type=Name(), required=True, help="block name (<model>.<first revision>)")
    p.add_argument(
        "--files", type=InputFile(content=False), nargs="*", default=[], help="the caches of the block's revisions"
    )
    p.add_argument("--output", type=OutputFile(), required=True, help="the block's JSON record")
    p.add_argument("--expected", type=Json(list), help="JSON: per revision, its head caches and expected metadata")

    p = add(
        "prefetch",
        cmd_prefetch,
        "download every planned Hub revision of a config into the shared Hub cache (HF_HOME), for offline jobs",
    )
    p.add_argument("config", type=config_file, help="YAML config file")
    add_root(p)
    p.add_argument("--models", type=Name(), nargs="*", help="only these models (default: every Hub model)")
    return parser


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


if __name__ == "__main__":
    sys.exit(main())
