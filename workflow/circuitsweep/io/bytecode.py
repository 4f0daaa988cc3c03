"""Byte-compile the package once per run, so that no job compiles it again.

Every job is a fresh ``python -m circuitsweep``. Python reads a module's cached
bytecode (``__pycache__/*.pyc``) when it is current, and otherwise compiles the
source, which for the modules a job imports costs about 0.4 s on the toy
suite's CPU: more than many table jobs' work. Where ``PYTHONDONTWRITEBYTECODE``
is set (or the first job's import is the only one), every job pays it again.
Compiling the package's files explicitly writes the caches whatever that
setting says; Python still reads them. A read-only source tree is skipped.
"""

from __future__ import annotations

import compileall
from pathlib import Path


def compile_package(package: Path) -> bool:
    """Write current bytecode caches for every module under ``package``; False where they cannot be written.

    Idempotent and cheap when the caches are current: compileall rewrites a cache only where the source's
    modification time differs from the one recorded in it.
    """
    try:
        return bool(compileall.compile_dir(package, quiet=2, workers=1))
    except OSError:
        return False
