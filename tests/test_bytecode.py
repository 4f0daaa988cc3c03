"""The run compiles the package once, so that jobs read bytecode even where PYTHONDONTWRITEBYTECODE is set."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from circuitsweep.io.bytecode import compile_package


def _package(root: Path) -> Path:
    package = root / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "mod.py").write_text("VALUE = 1\n")
    return package


def test_compiled_bytecode_is_written_despite_dont_write_bytecode_and_read_by_a_job(tmp_path, monkeypatch):
    """The caches exist after compile_package; a job started with PYTHONDONTWRITEBYTECODE=1 imports from them
    (sys.modules' __cached__ file exists and Python, which would not write it, did not need to)."""
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    package = _package(tmp_path)
    assert compile_package(package)
    cached = sorted(p.name for p in (package / "__pycache__").iterdir())
    assert [name.split(".")[0] for name in cached] == ["__init__", "mod"], cached
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(tmp_path)}
    code = "import pkg.mod as m; print(m.__spec__.cached)"
    job = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True, timeout=60)
    assert Path(job.stdout.strip()).exists()


def test_a_changed_module_is_compiled_again(tmp_path):
    """A source edited after compiling gets new bytecode (compileall compares the source's mtime)."""
    package = _package(tmp_path)
    compile_package(package)
    pyc = next((package / "__pycache__").glob("mod.*.pyc"))
    before = pyc.read_bytes()
    (package / "mod.py").write_text("VALUE = 2  # a longer source\n")
    later = (package / "mod.py").stat().st_mtime + 2
    os.utime(package / "mod.py", (later, later))
    assert compile_package(package)
    assert pyc.read_bytes() != before
