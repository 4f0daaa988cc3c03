"""Job settings too long for a command line, in files named by the digest of what they hold.

The workflow writes a job's long settings (every revision's expected cache
settings, the thresholds of every model) to ``results/<run>/settings/<name>-<digest>.json``
and passes ``@PATH`` to the job; the digest (the first 16 hex digits of the
sha256 of the text) is part of the rule's params, so new settings rerun the
job as inline JSON would. The file must therefore hold exactly what its name
says: planning rewrites one that differs (a hand edit, a file replaced by a
list or a folder, a write cut short) and a job refuses one that differs when it
reads it (:func:`check_settings_text`), so an edit never silently changes results.
"""

from __future__ import annotations

import hashlib
import re
import stat
from pathlib import Path

from circuitsweep.errors import ConfigError
from circuitsweep.io.atomic import atomic_write_text

#: Hex digits of the sha256 in a settings file's name.
DIGEST_LENGTH = 16
#: The folder of a run that holds its settings files (``Paths.settings_file``).
SETTINGS_FOLDER = "settings"
_NAMED = re.compile(rf".+-([0-9a-f]{{{DIGEST_LENGTH}}})\.json")


class SettingsFileError(ConfigError):
    """A settings file that does not hold what its name says."""


def settings_digest_of(text: str) -> str:
    """The digest a settings file holding ``text`` is named by."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:DIGEST_LENGTH]


def settings_name(name: str, text: str) -> str:
    """The file stem of the settings ``text`` of job ``name``: ``<name>-<digest>``."""
    return f"{name}-{settings_digest_of(text)}"


def named_digest(path: Path) -> str | None:
    """The digest in the name of a workflow settings file (``settings/<name>-<digest>.json``), else None."""
    path = Path(path)
    match = _NAMED.fullmatch(path.name)
    return match.group(1) if match and path.parent.name == SETTINGS_FOLDER else None


def check_settings_text(path: Path, text: str) -> None:
    """Refuse the text read from a workflow settings file whose digest is not the one in its name."""
    digest = named_digest(path)
    if digest is not None and settings_digest_of(text) != digest:
        raise SettingsFileError(
            f"the settings file {path} was changed after the workflow wrote it (its content does not match the "
            "digest in its name); run the workflow again to rewrite it, and change settings in the config instead"
        )


def write_settings_file(path: Path, text: str, *, dry_run: bool = False) -> bool:
    """Make ``path`` hold ``text``: write it when missing or different (hand-edited, cut short); returns whether it
    was (re)written. A folder or another non-file in its place is a :class:`ConfigError` naming it.
    A dry run writes nothing (and still refuses a folder)."""
    path = Path(path)
    try:
        found = path.lstat()
    except FileNotFoundError:
        found = None
    except OSError as error:
        raise ConfigError(f"settings file {path}: {error.strerror}") from None
    if found is not None and not stat.S_ISREG(found.st_mode):
        kind = "a folder" if stat.S_ISDIR(found.st_mode) else "not a regular file"
        raise ConfigError(f"the settings file {path} is {kind}: delete it and rerun (the workflow writes it)")
    if found is not None:
        try:
            if path.read_bytes() == text.encode("utf-8"):
                return False
        except OSError:
            pass
    if dry_run:
        return False
    atomic_write_text(path, text)
    return True


def check_settings_folder(folder: Path) -> None:
    """Refuse, when the run is planned, a settings file (``*.json`` in the run's settings folder) that is a folder
    or anything but a regular file: the workflow could not rewrite it (:func:`write_settings_file`)."""
    try:
        entries = list(Path(folder).iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as error:
        raise ConfigError(f"settings folder {folder}: {error.strerror}") from None
    for entry in sorted(entries):
        if entry.name.endswith(".json") and not entry.is_symlink() and not entry.is_file():
            raise ConfigError(f"the settings file {entry} is not a file (a folder?): delete it and rerun")
