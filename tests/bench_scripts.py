"""Loading the scripts of benchmarks/ as modules, shared by their tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def script_path(name: str) -> Path:
    """``benchmarks/<name>.py``."""
    return BENCHMARKS / f"{name}.py"


def load_script(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` imported as module ``name`` (registered in sys.modules: dataclasses look it up)."""
    spec = importlib.util.spec_from_file_location(name, script_path(name))
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)
    spec.loader.exec_module(module)
    return module
