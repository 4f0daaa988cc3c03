"""What each command-line argument is (an argparse ``type``), checked before the command runs.

A value that is not what it should be is refused in one line naming the argument
(:class:`Parser`, :class:`UsageError`); every argument of every subcommand declares one
(tests/test_cli_boundary.py enumerates them).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import stat
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from circuitsweep.io.readable import stat_or_none, unreadable_file


class Argument:
    """What one command-line argument is (an argparse ``type``): the boundary checks it before the command runs.

    A value that is not what it should be raises :class:`argparse.ArgumentTypeError`; the
    parser (:class:`Parser`) turns that into one line naming the argument, exit 3.
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
    try:
        return stat_or_none(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


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
        problem = unreadable_file(text, self.what)
        if problem:
            raise argparse.ArgumentTypeError(problem)


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


def check_key_value(text: str) -> None:
    from circuitsweep.config.overrides import parse_item

    parse_item(text)


def check_endpoint(text: str) -> None:
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", text):
        raise ValueError(f"{text!r} is not an http(s) URL")


def check_branch_pattern(text: str) -> None:
    from circuitsweep.config.patterns import branch_pattern_regex

    branch_pattern_regex(text)


def check_run_pattern(text: str) -> None:
    from circuitsweep.config.patterns import pattern_regex

    try:
        pattern_regex(text)
    except ValueError:
        raise ValueError(
            f"--pattern {text!r} must hold exactly one {{step}} field (optionally {{step:07d}}-style)"
        ) from None


def check_hub_repo_id(text: str) -> None:
    from circuitsweep.checkpoints.hub import check_repo_id

    check_repo_id(text)


class Parser(argparse.ArgumentParser):
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
