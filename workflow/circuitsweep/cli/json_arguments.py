"""JSON arguments: the rules' settings, given inline or as ``@PATH`` (a settings file read bounded and checked
against the digest in its name), and the config schema's checks of the thresholds and K they hold."""

from __future__ import annotations

import argparse
import json
import os
import re
import stat
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from circuitsweep.cli.arguments import Argument

#: The most a ``@FILE`` argument may hold (bytes): the workflow's longest settings (every revision's
#: expected cache settings of a 2,000-revision sweep) are a few MB.
SETTINGS_FILE_LIMIT = 64 * 2**20


class Json(Argument):
    """A JSON argument, or ``@PATH``: the JSON text of that file, read bounded (a regular file of at most
    :data:`SETTINGS_FILE_LIMIT` bytes: a pipe or a device is refused, never waited on).

    ``shape``: the JSON type it must be (``dict`` or ``list``); ``keys``: keys an object must hold;
    ``check``: what else the value must be (a function raising ``ValueError`` with the reason, e.g. the
    config schema's check of the thresholds it holds: :func:`check_thresholds`). A
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


def check_thresholds(value: Any) -> None:
    """The classification thresholds (``classify_heads``'s params)."""
    _refuse_lines(_threshold_lines(value, "class"))


def check_milestone_thresholds(value: dict[str, Any]) -> None:
    """Per model, its milestone thresholds (``head_tables``'s params)."""
    _refuse_lines([line for model, given in value.items() for line in _threshold_lines(given, "milestone", model)])


def _top_k_lines(value: Any, name: str = "") -> list[str]:
    """Problems of ``value`` as the config's ``ablation.spectral_top_k`` (counts, shares of the heads, elbow)."""
    from circuitsweep.config.load import schema

    return _schema_lines(value, schema()["$defs"]["ablation"]["properties"]["spectral_top_k"], name)


def check_spectral_top_k(value: Any) -> None:
    _refuse_lines(_top_k_lines(value))


def check_spectral_leave_out(value: Any) -> None:
    """``spectral_model``'s revisions to leave out of the ranking, as the config's ``spectral_leave_out``."""
    from circuitsweep.config.load import schema

    _refuse_lines(_schema_lines(value, schema()["$defs"]["model"]["properties"]["spectral_leave_out"]))


def check_bootstrap_settings(value: dict[str, Any]) -> None:
    """``bootstrap_heads``'s params: the classification thresholds and the induction onset's head count."""
    from circuitsweep.config.load import schema

    onset = schema()["$defs"]["thresholds"]["properties"]["induction_onset_heads"]
    lines = _threshold_lines(value["thresholds"], "class", "thresholds")
    if "induction_onset_heads" in value:
        lines += _schema_lines(value["induction_onset_heads"], onset, "induction_onset_heads")
    _refuse_lines(lines)


def check_final_ablation_settings(value: dict[str, Any]) -> None:
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
