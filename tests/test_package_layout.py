"""The package's folders are the pipeline's stages, and imports run down the data flow only.

A module may import its own stage and the stages before it in
:data:`STAGES` (config before checkpoints before the plan, and so on), never
one after it: a new import that runs back up the flow, or any import circle
between modules, fails here with the offending line. Imports inside functions
count as well: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "workflow" / "circuitsweep"

#: The stages in data-flow order (docs/development.md); each may import the ones before it.
STAGES: tuple[tuple[str, ...], ...] = (
    ("errors", "io"),
    ("config",),
    ("checkpoints",),
    ("toy",),
    ("plan",),
    ("heads",),
    ("primitives",),
    ("milestones",),
    ("outputs",),
    ("revision_stage", "warm_worker", "api", "cli", "__main__"),
)
#: The package root: its body imports nothing (the notebook API loads lazily), so any stage may read ``__version__``.
ROOT = "circuitsweep"
#: At most this many modules directly in the package (the entry points and ``errors``).
TOP_LEVEL_LIMIT = 8


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, int]]:
    """``(imported module or name, line)`` for every import of the package in ``path``, lazy ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == ROOT:
            found += [(f"{node.module}.{alias.name}", node.lineno) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names if alias.name.split(".")[0] == ROOT]
    return found


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _resolve(target: str, modules: dict[str, Path]) -> str | None:
    """The package module ``target`` names (``a.b.name`` -> ``a.b`` when ``name`` is no module)."""
    while target and target not in modules:
        target = target.rpartition(".")[0]
    return target or None


def _stage(module: str) -> int | None:
    if module == ROOT:
        return None
    first = module.split(".")[1]
    return next(rank for rank, names in enumerate(STAGES) if first in names)


def test_every_module_belongs_to_a_stage():
    """A new folder or top-level module must be placed in the data flow before it can be imported."""
    unplaced = sorted({m.split(".")[1] for m in _modules() if m != ROOT} - {n for names in STAGES for n in names})
    assert unplaced == [], f"add these to STAGES (and to docs/development.md's map): {unplaced}"


def test_imports_run_down_the_data_flow():
    modules = _modules()
    upward = []
    for module, path in modules.items():
        rank = _stage(module)
        for target, line in _imports(path):
            imported = _resolve(target, modules)
            if imported is None or rank is None or imported == ROOT:
                continue
            if _stage(imported) > rank:
                upward.append(f"{path.relative_to(PACKAGE)}:{line} imports {imported}")
    assert upward == [], "imports that run back up the data flow:\n" + "\n".join(upward)


def test_no_import_circles():
    modules = _modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in modules.items():
        for target, _ in _imports(path):
            imported = _resolve(target, modules)
            if imported not in (None, module, ROOT) and module != ROOT:
                graph[module].add(imported)
    circles = []
    state: dict[str, int] = {}

    def visit(module: str, stack: list[str]) -> None:
        state[module] = 1
        for nxt in sorted(graph[module]):
            if state.get(nxt) == 1:
                circles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[module] = 2

    for module in sorted(modules):
        if module not in state:
            visit(module, [module])
    assert circles == [], "import circles:\n" + "\n".join(circles)


def test_the_top_level_stays_small():
    top = sorted(path.stem for path in PACKAGE.glob("*.py"))
    assert len(top) <= TOP_LEVEL_LIMIT, f"{len(top)} modules at the top of the package: {top}"


def test_every_stage_folder_says_its_place():
    """Each folder's ``__init__`` docstring says where it sits in the data flow."""
    for folder in sorted(p for p in PACKAGE.iterdir() if (p / "__init__.py").exists()):
        doc = ast.get_docstring(ast.parse((folder / "__init__.py").read_text(encoding="utf-8")))
        assert doc and "import" in doc.lower(), f"{folder.name}/__init__.py needs a docstring naming what it may import"
