"""Why a path the user names cannot be read as a file: one check for the config's files and the command line's."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def unreadable_file(path: str | os.PathLike[str], what: str, missing_hint: str = "") -> str | None:
    """Why ``path`` cannot be read as a ``what`` (``"manifest file"``), or None when it is a readable regular file.

    The reasons name the path: not a path at all (empty, a NUL byte), nothing there, a symbolic link whose target
    does not exist, a path through a file, a folder, a pipe or a device, no read permission. ``missing_hint`` follows
    "does not exist" (what to do instead, from where the path was named).
    """
    text = os.fspath(path)
    if not text or "\0" in text:
        return f"{text!r} is not a path"
    try:
        found = os.stat(text)
    except FileNotFoundError:
        if Path(text).is_symlink():
            return f"{text} is a broken symbolic link (to {os.readlink(text)}, which does not exist)"
        return f"{text} does not exist{missing_hint}"
    except NotADirectoryError:
        return f"{text}: a part of this path is a file, not a folder"
    except (OSError, ValueError) as error:
        return f"{text}: {getattr(error, 'strerror', None) or error}"
    if stat.S_ISDIR(found.st_mode):
        return f"{text} is a folder, not a {what}"
    if not stat.S_ISREG(found.st_mode):
        return f"{text} is not a regular file (a pipe or a device?), not a {what}"
    if not os.access(text, os.R_OK):
        return f"{text} cannot be read (permissions)"
    return None
