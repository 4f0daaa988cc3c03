"""Model and revision names become path components: only single, safe components are accepted.

A revision named ``..`` would make ``results/<run>/snapshots/<model>/..`` the
snapshot folder of a job, and Snakemake deletes a failed job's outputs: every
other model's snapshots with it. Names are therefore checked wherever they
enter (config keys, manifests, Hub branch lists, local hub folders, job
settings) and refused with a message naming where they came from.
"""

from __future__ import annotations

#: Regular expression of a safe name, for Snakemake ``wildcard_constraints``:
#: not ``.`` or ``..``, no ``/`` or ``\\``, no control character, no leading ``-``.
SAFE_NAME_PATTERN = r"(?!\.\.?(?:/|$))[^/\\\x00-\x1f\x7f\-][^/\\\x00-\x1f\x7f]*"


def unsafe_reason(name: object) -> str | None:
    """Why ``name`` is not a single safe path component, or None when it is."""
    if not isinstance(name, str):
        return f"not a string ({type(name).__name__})"
    if not name:
        return "empty"
    if name in (".", ".."):
        return "a relative folder reference"
    if "/" in name or "\\" in name:
        return "contains a path separator"
    if any(ord(char) < 32 or ord(char) == 127 for char in name):
        return "contains a control character"
    if name.startswith("-"):
        return "starts with '-' (read as a command-line option)"
    return None


def is_safe_name(name: object) -> bool:
    """Whether ``name`` may be used as one path component of the results tree."""
    return unsafe_reason(name) is None


def check_name(name: object, where: str) -> str:
    """Return ``name`` if safe, else raise :class:`ValueError` naming ``where`` it came from."""
    reason = unsafe_reason(name)
    if reason is not None:
        raise ValueError(f"{where}: {name!r} is not a safe file name ({reason}); rename or remove it")
    return name  # type: ignore[return-value]
