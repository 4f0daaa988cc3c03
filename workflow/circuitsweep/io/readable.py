"""Why a path the user names cannot be read as a file: one check for the config's files and the command line's."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def stat_or_none(path: str | os.PathLike[str]) -> os.stat_result | None:
    """``os.stat`` of a path the user names; None when nothing is there. Raises ValueError naming the path when it
    cannot be one: empty, a NUL byte, a path through a file, or another error of the system's."""
    text = os.fspath(path)
    if not text or "\0" in text:
        raise ValueError(f"{text!r} is not a path")
    try:
        return os.stat(text)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        raise ValueError(f"{text}: a part of this path is a file, not a folder") from None
    except (OSError, ValueError) as error:
        raise ValueError(f"{text}: {getattr(error, 'strerror', None) or error}") from None


def unreadable_file(path: str | os.PathLike[str], what: str, missing_hint: str = "") -> str | None:
    """Why ``path`` cannot be read as a ``what`` (``"manifest file"``), or None when it is a readable regular file.

    The reasons name the path: not a path at all (:func:`stat_or_none`), nothing there, a symbolic link whose
    target does not exist, a folder, a pipe or a device, no read permission. ``missing_hint`` follows "does not
    exist" (what to do instead, from where the path was named).
    """
    text = os.fspath(path)
    try:
        found = stat_or_none(text)
    except ValueError as error:
        return str(error)
    if found is None:
        if Path(text).is_symlink():
            return f"{text} is a broken symbolic link (to {os.readlink(text)}, which does not exist)"
        return f"{text} does not exist{missing_hint}"
    if stat.S_ISDIR(found.st_mode):
        return f"{text} is a folder, not a {what}"
    if not stat.S_ISREG(found.st_mode):
        return f"{text} is not a regular file (a pipe or a device?), not a {what}"
    if not os.access(text, os.R_OK):
        return f"{text} cannot be read (permissions)"
    return None
